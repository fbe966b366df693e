"""The benchmark skeleton every bundle's ``scripts/benchmark.py`` uses.

- :mod:`~common.benchmarking.workflow`: the quick overlay (``configs/quick.json``), running a variant (config files
  plus overrides) through ``ConfigWorkflow``, and the variant's own ``network_def``;
- :mod:`~common.benchmarking.rows`: one row type (method, metric, values per case and optionally per seed, seeds,
  costs) and its CSV;
- :mod:`~common.benchmarking.compare`: paired comparisons: bootstrap 95% interval, Wilcoxon signed-rank p-value, seed
  agreement ("not separated" unless the interval excludes 0 and every seed agrees); an AUC pooled over many cases'
  elements compared with a bootstrap over cases;
- :mod:`~common.benchmarking.speed`: one training step's time, GFLOP and share of a conv ceiling;
- :mod:`~common.benchmarking.side_by_side`: our step and the public reference code's, timed in alternating processes;
- :mod:`~common.benchmarking.stages`: stages that run once, so a stopped benchmark continues;
- :mod:`~common.benchmarking.schedule`: schedule checks on development data (a refused benchmark seed, Dice summary,
  table);
- :mod:`~common.benchmarking.measure`: FLOPs, the conv ceiling, peak memory, timers, Markdown/JSON tables.

Benchmarks measure; tests never assert timings. Every number of a table is measured in the same run as its baseline.
"""

from __future__ import annotations

from common.benchmarking.compare import (
    NOT_SEPARATED,
    SEEDS_DISAGREE,
    SEEDS_NOT_CHECKED,
    TOO_FEW_CASES,
    Comparison,
    bootstrap_mean_difference,
    compare,
    compare_pairs,
    compare_pooled_auc,
    comparison_table,
    seed_differences,
    wilcoxon_p_value,
    write_comparisons,
)
from common.benchmarking.measure import (
    PeakRSSWindow,
    Timer,
    conv_ceiling_gflops,
    count_flops,
    machine_summary,
    peak_rss_mb,
    write_table,
)
from common.benchmarking.rows import CSV_COLUMNS, BenchmarkRow, read_cases_csv, write_cases_csv, write_seed_cases_csv
from common.benchmarking.schedule import MISSED_DICE, development_data_seed, dice_summary, write_schedule_check
from common.benchmarking.side_by_side import (
    AMP_DTYPES,
    alternate,
    inference_times,
    iteration_times,
    peer_step_result,
    precision_label,
    ratio_summary,
    run_json_process,
    step_autocast,
    step_precision,
    trainer_precision,
)
from common.benchmarking.speed import slice_scaling, slice_scaling_rows, step_speed, time_step, write_tiled_volume
from common.benchmarking.stages import StageCache
from common.benchmarking.workflow import (
    NO_DATA,
    QUICK_OVERLAY,
    TINY_OVERLAY,
    int_tuple,
    parse_config_items,
    parse_config_switches,
    read_overlay,
    run_workflow,
    trainer_steps,
)

__all__ = [
    "StageCache",
    "int_tuple",
    "count_flops",
    "conv_ceiling_gflops",
    "peak_rss_mb",
    "PeakRSSWindow",
    "machine_summary",
    "write_table",
    "MISSED_DICE",
    "development_data_seed",
    "dice_summary",
    "write_schedule_check",
    "Timer",
    "BenchmarkRow",
    "CSV_COLUMNS",
    "write_cases_csv",
    "write_seed_cases_csv",
    "read_cases_csv",
    "Comparison",
    "NOT_SEPARATED",
    "SEEDS_DISAGREE",
    "SEEDS_NOT_CHECKED",
    "bootstrap_mean_difference",
    "wilcoxon_p_value",
    "seed_differences",
    "compare",
    "compare_pairs",
    "comparison_table",
    "write_comparisons",
    "compare_pooled_auc",
    "TOO_FEW_CASES",
    "step_speed",
    "time_step",
    "slice_scaling",
    "slice_scaling_rows",
    "write_tiled_volume",
    "iteration_times",
    "inference_times",
    "AMP_DTYPES",
    "step_precision",
    "precision_label",
    "step_autocast",
    "trainer_precision",
    "peer_step_result",
    "run_json_process",
    "alternate",
    "ratio_summary",
    "QUICK_OVERLAY",
    "TINY_OVERLAY",
    "NO_DATA",
    "read_overlay",
    "run_workflow",
    "trainer_steps",
    "parse_config_items",
    "parse_config_switches",
]
