"""PSCGAN's clinical rows on known inputs: the case row of a drawn stack (``scripts.clinical.analyse_stack``, what the
inference CSVs hold), and the cohort evaluation's AHA segments paired from the truth: a scar the prediction misses on
a slice where it found no myocardium (so no segment rows) is a false negative, not left out (Table 2's segment
sensitivity)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
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
                       "transmural_pred": False, "transmural_true": False, "scar_score_pred": 0.0}  # fmt: skip
    found = segment_detection([r["has_scar_pred"] for r in rows], [r["has_scar_true"] for r in rows])
    assert (found["tp"], found["fn"], found["tn"], found["fp"]) == (1, 1, 1, 0) and found["sensitivity"] == 0.5
    transmural = segment_detection([r["transmural_pred"] for r in rows], [r["transmural_true"] for r in rows])
    assert transmural["fn"] == 1 and transmural["sensitivity"] == 0.0


def test_analyse_stack_sums_a_drawn_stack_in_mm2_from_the_affine_and_skips_slices_without_myocardium():
    """The clinical CSV's case row on a drawn 3-slice stack at 1.5 x 2.0 mm (the spacing read from the affine, not
    given): scar size and myocardium area summed over the slices with myocardium, the scar ratio of the totals."""
    with bundle_scripts(BUNDLE):
        from scripts.clinical import analyse_stack

    x, y = np.meshgrid(np.arange(48) - 23.5, np.arange(48) - 23.5, indexing="ij")
    radius = np.hypot(x, y)
    ring = (radius >= 8) & (radius < 12)
    seg = np.zeros((48, 48, 3), dtype=np.int64)
    for k in (0, 2):  # slice 1 holds no heart
        seg[..., k][radius < 8] = 1
        seg[..., k][ring] = 2
    sector = ring & (x > 0) & (np.abs(y) < 4)  # a transmural scar wedge on slice 0
    seg[..., 0][sector] = 3
    cine = np.where(seg == 1, 1.0, 0.2).astype(np.float32)
    affine = np.diag([1.5, 2.0, 8.0, 1.0])
    row, segments = analyse_stack("drawn", seg, cine, affine)
    pixel_mm2 = 1.5 * 2.0
    scar_px, myo_px = int(sector.sum()), 2 * int(ring.sum())
    assert row["slices"] == 3 and scar_px > 0
    assert row["scar_size_mm2"] == scar_px * pixel_mm2
    assert row["myocardium_area_mm2"] == myo_px * pixel_mm2
    assert row["scar_ratio"] == scar_px / myo_px
    assert row["scar_to_healthy_ratio"] == scar_px / (myo_px - scar_px)
    assert {r["slice"] for r in segments} == {0, 2}, "no segment rows for the slice without myocardium"
    assert row["scar_segments"] >= 1 and all(not r["has_scar"] for r in segments if r["slice"] == 2)
    assert all("scar_score" not in r for r in segments), "no score without a scar probability"

    # with the scar probability, each segment scores its mean over the segment's myocardium (both wall labels)
    probability = np.full(seg.shape, 0.1)
    probability[..., 0][sector] = 0.8  # on slice 0's scar wedge
    _, scored = analyse_stack("drawn", seg, cine, affine, scar_probability=probability)
    scarred = [r for r in scored if r["has_scar"]]
    assert scarred and all(r["scar_score"] > 0.1 for r in scarred)
    for r in scored:
        fraction = r["scar_px"] / r["myocardium_px"]  # the wedge is all scar: its share of the segment's wall
        assert r["scar_score"] == pytest.approx(0.1 + 0.7 * fraction), r

    # a sheared header (axis 1 leans 30 degrees towards axis 0): same column lengths, pixel area 1.5 * 2.0 * cos 30
    sheared = affine.copy()
    sheared[:2, 1] = [2.0 * np.sin(np.pi / 6), 2.0 * np.cos(np.pi / 6)]
    sheared_row, _ = analyse_stack("drawn", seg, cine, sheared)
    assert sheared_row["scar_size_mm2"] == pytest.approx(scar_px * pixel_mm2 * np.cos(np.pi / 6))
    assert sheared_row["myocardium_area_mm2"] == pytest.approx(myo_px * pixel_mm2 * np.cos(np.pi / 6))
    assert sheared_row["scar_ratio"] == row["scar_ratio"]


def test_a_stack_that_seems_to_run_apex_to_base_is_named_in_a_warning(caplog):
    """The AHA levels take slice 0 as basal; the left ventricle narrows towards the apex, so a stack whose segmented
    ventricle grows along the slices is probably stored apex first, and the log says so (the rows are unchanged)."""
    with bundle_scripts(BUNDLE):
        from scripts.clinical import analyse_stack

    x, y = np.meshgrid(np.arange(48) - 23.5, np.arange(48) - 23.5, indexing="ij")
    radius = np.hypot(x, y)
    base_first = np.zeros((48, 48, 3), dtype=np.int64)
    for k, outer in enumerate((14, 12, 9)):  # basal, mid, apical: the ventricle narrows
        base_first[..., k][radius < outer] = 2
        base_first[..., k][radius < outer - 4] = 1
    cine = np.where(base_first == 1, 1.0, 0.2).astype(np.float32)
    affine = np.diag([1.5, 1.5, 8.0, 1.0])
    with caplog.at_level("WARNING", logger="scripts.clinical"):
        expected = analyse_stack("base_first", base_first, cine, affine)
        reversed_rows = analyse_stack("apex_first", base_first[..., ::-1], cine[..., ::-1], affine)
    [record] = [r for r in caplog.records if r.name == "scripts.clinical"]  # (no RV drawn: the metrics warn too)
    assert "apex_first" in record.getMessage() and "apex to base" in record.getMessage()
    assert reversed_rows[0]["myocardium_area_mm2"] == expected[0]["myocardium_area_mm2"]


def test_the_segment_map_gives_each_wall_pixel_the_segment_of_the_rows():
    """``aha_segment_map`` (the per-pixel map inference writes beside the segmentation): every myocardium pixel, scar
    or healthy, carries a segment 1-16 of its slice's level, nothing else does, and per slice and segment its pixel
    and scar counts are the segment rows' (the same RV insertion points and levels as ``analyse_stack``)."""
    with bundle_scripts(BUNDLE):
        from scripts.clinical import aha_segment_map, analyse_stack

    x, y = np.meshgrid(np.arange(48) - 23.5, np.arange(48) - 23.5, indexing="ij")
    radius = np.hypot(x, y)
    ring = (radius >= 8) & (radius < 12)
    seg = np.zeros((48, 48, 3), dtype=np.int64)
    for k in range(3):
        seg[..., k][radius < 8] = 1
        seg[..., k][ring] = 2
    seg[..., 0][ring & (x > 0) & (np.abs(y) < 4)] = 3  # a scar wedge on the basal slice
    seg[..., 2][ring & (y > 0) & (np.abs(x) < 4)] = 3  # and one on the apical slice
    cine = np.where(seg == 1, 1.0, 0.2).astype(np.float32)
    rv = (x + 16) ** 2 + (y + 6) ** 2 < 30  # a bright RV cavity beside the LV, so the insertion points are found
    cine[rv] = 1.0
    affine = np.diag([1.5, 1.5, 8.0, 1.0])
    segment_map = aha_segment_map(seg, cine, affine)
    assert segment_map.shape == seg.shape and segment_map.dtype == np.int16
    assert np.array_equal(segment_map > 0, np.isin(seg, (2, 3)))
    for k, numbers in ((0, range(1, 7)), (1, range(7, 13)), (2, range(13, 17))):  # basal, mid, apical thirds
        assert set(np.unique(segment_map[..., k][segment_map[..., k] > 0])) == set(numbers)
    _, rows = analyse_stack("drawn", seg, cine, affine)
    for r in rows:
        inside = segment_map[..., r["slice"]] == r["segment"]
        assert (int(inside.sum()), int((inside & (seg[..., r["slice"]] == 3)).sum())) == (
            r["myocardium_px"],
            r["scar_px"],
        ), r
    assert sum(r["scar_px"] for r in rows) == int((seg == 3).sum()) > 0
