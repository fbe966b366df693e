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

import importlib
from typing import Any

# the function `compare` has its submodule's name: the submodule is imported here and the function bound over it
# (the import system binds a submodule to its package's attribute on first import, e.g. when `workflow` imports it)
from common.benchmarking.compare import compare

#: each submodule's public names; a name is imported from its submodule on first use (PEP 562), so that a process
#: needing only ``measure`` (``tools.benchmark``'s worker records its peak RSS and machine with it) does not import
#: MONAI, which ``workflow`` needs: about 7 s of a fresh process on the 2-core machine
_NAMES = {
    "compare": (
        "NOT_SEPARATED",
        "SEEDS_DISAGREE",
        "SEEDS_NOT_CHECKED",
        "TOO_FEW_CASES",
        "Comparison",
        "bootstrap_mean_difference",
        "compare",
        "compare_pairs",
        "compare_pooled_auc",
        "comparison_table",
        "seed_differences",
        "wilcoxon_p_value",
        "write_comparisons",
    ),
    "measure": (
        "PeakRSSWindow",
        "Timer",
        "conv_ceiling_gflops",
        "count_flops",
        "machine_summary",
        "peak_rss_mb",
        "write_table",
    ),
    "rows": ("CSV_COLUMNS", "BenchmarkRow", "read_cases_csv", "write_cases_csv", "write_seed_cases_csv"),
    "schedule": ("MISSED_DICE", "development_data_seed", "dice_summary", "write_schedule_check"),
    "side_by_side": (
        "AMP_DTYPES",
        "alternate",
        "inference_times",
        "iteration_times",
        "peer_step_result",
        "precision_label",
        "ratio_summary",
        "run_json_process",
        "step_autocast",
        "step_precision",
        "trainer_precision",
    ),
    "speed": ("slice_scaling", "slice_scaling_rows", "step_speed", "time_step", "write_tiled_volume"),
    "stages": ("StageCache",),
    "workflow": (
        "NO_DATA",
        "QUICK_OVERLAY",
        "TINY_OVERLAY",
        "int_tuple",
        "parse_config_items",
        "parse_config_switches",
        "read_overlay",
        "run_workflow",
        "trainer_steps",
    ),
}
_SUBMODULE = {name: module for module, names in _NAMES.items() for name in names}

__all__ = list(_SUBMODULE)


def __getattr__(name: str) -> Any:
    """``common.benchmarking.<name>``: imported from its submodule on first use, then kept here."""
    if name not in _SUBMODULE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_SUBMODULE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBMODULE))
