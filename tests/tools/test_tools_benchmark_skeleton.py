"""common.benchmarking's skeleton: the row type, its per-case CSV, paired bootstrap comparisons, and how
tools.benchmark merges such rows with a bundle's own comparisons, labels and notes."""

from __future__ import annotations

import math
import textwrap

import pytest
from common.benchmarking import (
    NOT_SEPARATED,
    BenchmarkRow,
    bootstrap_mean_difference,
    compare,
    read_cases_csv,
    write_cases_csv,
)

from tools import benchmark as tb

NAN = float("nan")


def _row(method, values, metric="dice", **kwargs):
    return BenchmarkRow(method, metric, [(f"case{i}", v) for i, v in enumerate(values)], seeds=[0], **kwargs)


def test_row_summary_leaves_out_nan_and_round_trips_through_a_dict():
    row = _row("A", [0.5, NAN, 0.7], seconds=3.0)
    assert row.mean == pytest.approx(0.6) and row.std == pytest.approx(0.1)
    assert row.to_dict()["n"] == 2 and row.to_dict()["values"][1][0] == "case1"
    back = BenchmarkRow.from_dict(row.to_dict())
    assert back.values[0] == ("case0", 0.5) and math.isnan(back.values[1][1]) and back.seconds == 3.0
    assert math.isnan(_row("B", []).mean) and _row("C", [0.4]).std == 0.0


def test_cases_csv_round_trip(tmp_path):
    rows = [_row("A", [0.5, 0.25]), _row("B", [1 / 3, NAN], metric="hd95", higher_is_better=False)]
    rows[1].seeds = [0, 1]
    path = write_cases_csv(rows, tmp_path / "sub" / "cases.csv")
    assert path.read_text().splitlines()[0] == "method,metric,case,value,seeds"
    back = read_cases_csv(path)
    assert [(r.method, r.metric, r.seeds) for r in back] == [("A", "dice", [0]), ("B", "hd95", [0, 1])]
    assert back[0].values == rows[0].values
    assert back[1].values[0] == ("case0", 1 / 3) and math.isnan(back[1].values[1][1])  # exact floats


def test_bootstrap_of_constant_differences_is_that_constant():
    assert bootstrap_mean_difference([0.1] * 5) == pytest.approx((0.1, 0.1, 0.1))
    assert all(math.isnan(v) for v in bootstrap_mean_difference([]))


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    differences = [0.0, 0.0, 0.0, 1.0]
    mean, low, high = bootstrap_mean_difference(differences, seed=3)
    assert mean == 0.25 and 0.0 <= low <= mean <= high <= 1.0
    assert bootstrap_mean_difference(differences, seed=3) == (mean, low, high)
    # the 2.5th percentile of the resampled means is 0: P(no 1 drawn in 4) = (3/4)^4 = 0.32 > 0.025
    assert low == 0.0
    with pytest.raises(ValueError, match="level"):
        bootstrap_mean_difference(differences, level=1.0)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_mean_difference(differences, n_resamples=0)


def test_compare_claims_an_ordering_only_when_the_interval_excludes_zero():
    ours, baseline = _row("ours", [0.8, 0.7, 0.9, 0.6]), _row("base", [0.5, 0.5, 0.6, 0.4])
    result = compare(ours, baseline)
    assert result.n_cases == 4 and result.difference == pytest.approx(0.25) and result.low > 0
    assert result.verdict == "ours better"

    mixed = compare(_row("ours", [0.6, 0.4, 0.6, 0.4]), _row("base", [0.4, 0.6, 0.4, 0.6]))
    assert mixed.low < 0 < mixed.high and mixed.verdict == NOT_SEPARATED

    # lower is better (HD95): a smaller distance makes ours the better one
    hd = compare(_row("ours", [1.0, 2.0, 1.5], "hd", higher_is_better=False), _row("b", [3.0, 4.0, 3.5], "hd"))
    assert hd.high < 0 and hd.verdict == "ours better"


def test_compare_pairs_by_case_and_skips_unscored_cases():
    ours = BenchmarkRow("ours", "dice", [("a", 0.9), ("b", NAN), ("c", 0.8)])
    baseline = BenchmarkRow("base", "dice", [("c", 0.7), ("a", 0.6), ("z", 0.1)])
    result = compare(ours, baseline)
    assert result.n_cases == 2 and result.difference == pytest.approx(0.2)
    assert compare(ours, BenchmarkRow("base", "dice")).verdict == NOT_SEPARATED
    with pytest.raises(ValueError, match="cannot compare metric"):
        compare(ours, BenchmarkRow("base", "hd95", [("a", 1.0)]))


# ----------------------------------------------------------------------------------------------- merged by the tool
INFO = """
COMPARISONS = (("ours", "base"),)
PAPER_NUMBERS = {("ours", "base", "dice"): (0.5, 0.6, "Table 9")}
PAPER_NOTES = "Theirs: Table 9 of a paper."
MODE_NOTES = {"quick": "3 epochs", "full": "300 epochs"}
METRIC_LABELS = {"dice": "Dice, test split"}
"""


def _info(tmp_path, source=INFO):
    (tmp_path / "b" / "scripts").mkdir(parents=True)
    (tmp_path / "b" / "scripts" / "benchmark.py").write_text(textwrap.dedent(source))
    (tmp_path / "b" / "configs").mkdir()
    (tmp_path / "b" / "configs" / "quick.json").write_text('{"features": [4, 8]}')
    return tb.read_benchmark_info(tmp_path / "b")


def test_tool_merges_skeleton_rows_with_the_bundles_comparisons(tmp_path):
    info = _info(tmp_path)
    rows = [
        _row("ours", [0.8, 0.7, 0.9, 0.6], seconds=10.0).to_dict(),
        _row("base", [0.5, 0.5, 0.6, 0.4], seconds=4.0).to_dict(),
        _row("alone", [0.3, 0.2]).to_dict(),
        {**BenchmarkRow("step", "step", seconds=0.5).to_dict(), "step_seconds": 0.5, "gflop_per_step": 2.0},
    ]
    merged = tb.normalize_rows(info, rows)
    assert [(r["method"], r["baseline_method"]) for r in merged] == [("ours", "base"), ("alone", None), ("step", None)]
    pair = merged[0]
    assert (pair["baseline"], pair["ours"], pair["n_cases"]) == (pytest.approx(0.5), pytest.approx(0.75), 4)
    assert pair["difference"] == pytest.approx(0.25) and 0 < pair["ci_low"] <= pair["ci_high"]
    assert pair["ordering"] == "ours better" and pair["metric"] == "Dice, test split"
    assert (pair["seconds"], pair["baseline_seconds"]) == (10.0, 4.0)
    assert (pair["paper_baseline"], pair["paper_ours"], pair["paper_source"]) == (0.5, 0.6, "Table 9")
    assert "values" not in pair["source"]
    assert merged[1]["ours"] == pytest.approx(0.25) and merged[1]["ordering"] is None
    assert merged[2]["metric"] == tb.SPEED_METRIC and merged[2]["gflop_per_step"] == 2.0

    text = tb.format_markdown(merged, ["header"])
    line = next(x for x in text.splitlines() if x.startswith("| b | ours | base |"))
    assert "ours better" in line and f"{pair['difference']:.4g} [" in line

    path = tb.write_cases("b", rows, tmp_path / "out")
    assert path == tmp_path / "out" / "b_cases.csv"
    assert {(r.method, len(r.values)) for r in read_cases_csv(path)} == {("ours", 4), ("base", 4), ("alone", 2)}


def test_header_is_written_from_the_bundles_notes(tmp_path):
    info = _info(tmp_path)
    runs = {"b": {"status": "PASS", "seconds": 5.0, "process_peak_rss_mb": 100.0, "table": "out/b/benchmark.md"}}
    quick = "\n".join(tb.header_lines({"b": info}, runs, True, "python -m tools.benchmark --all --quick", 6.0, "cpu"))
    assert "phantoms written by `python -m tools.make_data`" in quick and "Machine: cpu" in quick
    assert "`b` (quick): networks of configs/quick.json (features [4, 8]); 3 epochs." in quick
    assert "Theirs: Table 9 of a paper." in quick and "not separated" in quick
    full = "\n".join(tb.header_lines({"b": info}, runs, False, "python -m tools.benchmark --all", 6.0, "cpu"))
    assert "`b` (full): 300 epochs." in full and "quick.json" not in full


def test_bundle_data_must_be_literals(tmp_path):
    with pytest.raises(ValueError, match="bundle `b`: COMPARISONS in scripts/benchmark.py must be a literal"):
        _info(tmp_path, "COMPARISONS = tuple((m, 'base') for m in 'ab')\n")


def test_int_tuple_reads_seeds_and_scales_as_fire_and_callers_give_them():
    from common.benchmarking import int_tuple

    assert int_tuple("0,1,2") == (0, 1, 2)
    assert int_tuple("(4, 8)") == (4, 8)  # fire passes a tuple literal through as text
    assert int_tuple(3) == (3,)  # fire turns "--seeds 3" into an int
    assert int_tuple([4, 8]) == (4, 8)
    assert int_tuple("") == ()


def test_slice_scaling_fits_seconds_per_slice_after_a_warm_up(monkeypatch):
    """A fake clock where a volume of n slices costs 1 + 0.5 n seconds: the fit gives 0.5 s per slice, intercept 1,
    no residual; the first count runs once more as warm-up."""
    import common.benchmarking.speed as speed
    from common.benchmarking import slice_scaling

    clock = {"now": 0.0}
    calls = []

    class FakeTimer:
        def __enter__(self):
            self.start = clock["now"]
            return self

        def __exit__(self, *args):
            self.seconds = clock["now"] - self.start

    def run(n):
        calls.append(n)
        clock["now"] += 1.0 + 0.5 * n

    monkeypatch.setattr(speed, "Timer", FakeTimer)
    result = slice_scaling(run, (2, 4, 8))
    assert calls == [2, 2, 4, 8]
    assert result["seconds"] == [2.0, 3.0, 5.0]
    assert result["per_slice"] == pytest.approx(0.5) and result["intercept"] == pytest.approx(1.0)
    assert result["max_relative_residual"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="at least 2"):
        slice_scaling(run, (4,))
