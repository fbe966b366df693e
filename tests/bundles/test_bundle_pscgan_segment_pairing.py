"""PSCGAN's cohort evaluation pairs AHA segments from the truth: a scar the prediction misses on a slice where it
found no myocardium (so no segment rows) is a false negative, not left out (Table 2's segment sensitivity)."""

from __future__ import annotations

from pathlib import Path

from bundle_test_utils import bundle_scripts
from common.metrics import segment_detection

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "cine_lge_synthesis_segmentation"


def _segment(slice_: int, segment: int, scar: bool, transmural: bool = False) -> dict:
    return {"slice": slice_, "segment": segment, "has_scar": scar, "transmural": transmural}


def test_a_truth_segment_without_a_predicted_row_counts_as_predicted_without_scar():
    with bundle_scripts(BUNDLE):
        from scripts.evaluate import paired_segments

    truth = [_segment(0, 1, True, True), _segment(0, 2, False), _segment(1, 3, True)]
    # slice 1: no predicted myocardium, no rows; slice 2 holds a predicted segment the truth does not have
    pred = [_segment(0, 1, True, False), _segment(0, 2, False), _segment(2, 5, True)]
    rows = paired_segments("case007", pred, truth)
    assert [(r["slice"], r["segment"]) for r in rows] == [(0, 1), (0, 2), (1, 3)]
    assert rows[2] == {"case": "case007", "slice": 1, "segment": 3, "has_scar_pred": False, "has_scar_true": True,
                       "transmural_pred": False, "transmural_true": False}  # fmt: skip
    found = segment_detection([r["has_scar_pred"] for r in rows], [r["has_scar_true"] for r in rows])
    assert (found["tp"], found["fn"], found["tn"], found["fp"]) == (1, 1, 1, 0) and found["sensitivity"] == 0.5
    transmural = segment_detection([r["transmural_pred"] for r in rows], [r["transmural_true"] for r in rows])
    assert transmural["fn"] == 1 and transmural["sensitivity"] == 0.0
