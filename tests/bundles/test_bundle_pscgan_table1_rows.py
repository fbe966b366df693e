"""PSCGAN's Table 1 rows: the overall Dice and the per-class pixel columns are rows of PSCGAN's own (with the paper's
value beside them in the merged table), not of every ablation, and each per-case value is the mean over the seeds."""

from __future__ import annotations

from pathlib import Path

import pytest
from bundle_test_utils import bundle_scripts

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "cine_lge_synthesis_segmentation"

with bundle_scripts(BUNDLE):
    from scripts.benchmark import METRIC_LABELS, SPEED_METRICS, TABLE1_DETAIL_METRICS, TABLE1_METHODS, score_rows


def _scores(offset: float) -> dict[str, dict[str, float]]:
    """Every scored metric of two cases, ``case_b`` without scar (its scar sensitivity is undefined)."""
    scores = {m: {"case_a": 0.5 + offset, "case_b": 0.7 + offset} for m in METRIC_LABELS if m not in SPEED_METRICS}
    scores["sensitivity_3"]["case_b"] = float("nan")
    return scores


def test_table1_detail_rows_belong_to_pscgan_alone_and_average_the_seeds():
    per_method = {name: [_scores(0.0), _scores(0.1)] for name in ("PSCGAN", "ED frame only")}
    rows = {(r.method, r.metric): r for r in score_rows(per_method, (0, 1))}
    assert "PSCGAN" in TABLE1_METHODS and "ED frame only" not in TABLE1_METHODS
    for metric in TABLE1_DETAIL_METRICS:
        assert ("PSCGAN", metric) in rows and ("ED frame only", metric) not in rows, metric
    assert ("ED frame only", "accuracy") in rows and ("ED frame only", "dice_scar") in rows  # the ablation columns
    dice = dict(rows[("PSCGAN", "dice_mean")].values)
    assert dice == {"case_a": pytest.approx(0.55), "case_b": pytest.approx(0.75)}
    # a case without scar has no scar sensitivity: the row scores the case that has one
    scar = rows[("PSCGAN", "sensitivity_3")]
    assert scar.scored_values == [pytest.approx(0.55)] and scar.mean == pytest.approx(0.55)


def test_the_merged_table_shows_the_papers_table1_value_beside_pscgans_own_row():
    from tools.benchmark import normalize_rows, read_benchmark_info

    per_method = {name: [_scores(0.0)] for name in ("PSCGAN", "ED frame only")}
    merged = normalize_rows(read_benchmark_info(BUNDLE), [r.to_dict() for r in score_rows(per_method, (0,))])
    row = next(r for r in merged if r["method"] == "PSCGAN" and r["metric_key"] == "dice_mean")
    assert row["baseline_method"] is None and row["ours"] == pytest.approx(0.6)
    assert (row["paper_ours"], row["paper_source"]) == (0.918, "Xu et al. 2020, Table 1")
    scar = next(r for r in merged if r["method"] == "PSCGAN" and r["metric_key"] == "accuracy_3")
    assert scar["paper_ours"] == 0.9713 and "scar" in scar["metric"]
