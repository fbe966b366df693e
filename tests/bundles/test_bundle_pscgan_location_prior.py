"""The PSCGAN benchmark's scar location prior: a trivial scar-AUC baseline fitted on training labels alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bundle_test_utils import bundle_scripts
from common.metrics import scar_auc

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "cine_lge_synthesis_segmentation"

with bundle_scripts(BUNDLE):
    from scripts.benchmark import (
        COMPARISONS,
        LOCATION_PRIOR,
        PRIOR_ANGLE_BINS,
        fit_location_prior,
        location_prior_scores,
    )


def _ring(scar_side: str | None, size: int = 32) -> np.ndarray:
    """One-slice label ``(X, Y, 1)``: blood disc, myocardial ring, scar on one side of the ring (x above or below
    the centre)."""
    xx, yy = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    radius = np.hypot(xx - size / 2, yy - size / 2)
    label = np.zeros((size, size), dtype=np.int64)
    label[radius < 6] = 1
    label[(radius >= 6) & (radius < 9)] = 2
    if scar_side == "high_x":
        label[(label == 2) & (xx > size / 2 + 2)] = 3
    elif scar_side == "low_x":
        label[(label == 2) & (xx < size / 2 - 2)] = 3
    return label[..., None]


def test_prior_learns_where_training_scar_lies_and_ranks_it_first():
    prior = fit_location_prior([_ring("high_x"), _ring("high_x"), _ring(None)])
    assert prior.shape == (1, PRIOR_ANGLE_BINS)
    assert 0.0 < prior.min() and prior.max() < 1.0  # smoothed: no bin certain
    same_place = _ring("high_x")
    # 1 but for the 15-degree bins that straddle the scar border
    assert scar_auc(location_prior_scores(same_place, prior), same_place == 3, same_place == 2) > 0.95
    other_side = _ring("low_x")  # scar where training never had any: ranked below the healthy wall's mean
    assert scar_auc(location_prior_scores(other_side, prior), other_side == 3, other_side == 2) < 0.5


def test_prior_scores_nothing_without_a_blood_pool_and_is_compared_with_pscgan():
    prior = fit_location_prior([_ring("high_x")])
    no_blood = _ring("high_x")
    no_blood[no_blood == 1] = 0
    assert not location_prior_scores(no_blood, prior).any()
    assert ("PSCGAN", LOCATION_PRIOR) in COMPARISONS


def _write_case(folder: Path, name: str, label: np.ndarray) -> dict:
    """A one-slice CineLGE case on disk: the label and a 25-frame cine whose blood pool is bright (the RV search)."""
    import nibabel as nib

    affine = np.diag([1.5, 1.5, 8.0, 1.0])
    cine = np.repeat(np.where(label == 1, 1.0, 0.2).astype(np.float32)[..., None], 25, axis=3)
    paths = {"case": name, "cine": str(folder / f"{name}_cine.nii.gz"), "label": str(folder / f"{name}_label.nii.gz")}
    nib.save(nib.Nifti1Image(cine, affine), paths["cine"])
    nib.save(nib.Nifti1Image(label.astype(np.int16), affine), paths["label"])
    return paths


def test_prior_scores_each_true_segment_by_its_mean_over_the_true_myocardium(tmp_path):
    """Table 2's segment AUC baseline: the prior's segment score is the mean of its pixel scores over the segment's
    true wall, on the truth's AHA segments (the keys ``scripts.evaluate`` pairs every method on)."""
    with bundle_scripts(BUNDLE):
        from scripts.benchmark import _location_prior_results
        from scripts.clinical import analyse_stack

    train = [_write_case(tmp_path, f"train{i}", _ring("high_x")) for i in range(2)]
    test = [_write_case(tmp_path, "scar_high", _ring("high_x")), _write_case(tmp_path, "scar_low", _ring("low_x"))]
    aucs, segments = _location_prior_results(train, test)
    assert aucs["scar_high"] > 0.95 and aucs["scar_low"] < 0.5  # as the pixel-level test above
    prior = fit_location_prior([_ring("high_x")] * 2)
    for case in test:
        label = _ring("high_x" if case["case"] == "scar_high" else "low_x")
        cine_ed = np.where(label == 1, 1.0, 0.2).astype(np.float32)
        _, truth = analyse_stack(case["case"], label, cine_ed, np.diag([1.5, 1.5, 8.0, 1.0]))
        mine = {k[1:]: v for k, v in segments.items() if k[0] == case["case"]}
        assert set(mine) == {(r["slice"], r["segment"]) for r in truth}
        assert len(mine) == 6  # one basal slice: six segments
    high, low = ({k[1:]: v for k, v in segments.items() if k[0] == c} for c in ("scar_high", "scar_low"))
    assert high == low, "the prior reads where the wall is, never its scar"
    assert max(high.values()) > 2 * min(high.values())  # the training scar's side ranks first
    # the highest-scoring segment's value is the prior's mean over that segment's wall, as analyse_stack draws it
    label = _ring("high_x")
    cine_ed = np.where(label == 1, 1.0, 0.2).astype(np.float32)
    scores = location_prior_scores(label, prior)
    _, rows = analyse_stack("scar_high", label, cine_ed, np.diag([1.5, 1.5, 8.0, 1.0]), scar_probability=scores)
    assert {(r["slice"], r["segment"]): r["scar_score"] for r in rows} == {
        k[1:]: v for k, v in segments.items() if k[0] == "scar_high"
    }


def _segment_rows(case_scores: dict[str, list[float]], scar: list[bool]) -> list[dict]:
    """One patient's four segments per entry; the first is transmural scar."""
    return [
        {"case": case, "slice": 0, "segment": i + 1, "has_scar_true": scar[i],
         "transmural_true": scar[i] and i == 0, "scar_score_pred": s}
        for case, scores in case_scores.items()
        for i, s in enumerate(scores)
    ]  # fmt: skip


def test_segment_aucs_pair_methods_on_the_truth_segments_and_write_the_comparison(tmp_path):
    with bundle_scripts(BUNDLE):
        from scripts.segment_auc import compare_segment_aucs, segment_aucs, write_segment_auc

    scar = [True, True, False, False]
    cases = {f"p{i}": [0.9, 0.7, 0.2, 0.1] for i in range(8)}  # ranks every scar segment first
    chance = {f"p{i}": [0.5, 0.5, 0.5, 0.5] for i in range(8)}
    segments = {"PSCGAN": {0: _segment_rows(cases, scar), 1: _segment_rows(cases, scar)},
                "ED frame only": {0: _segment_rows(chance, scar), 1: _segment_rows(chance, scar)}}  # fmt: skip
    prior = {(c, 0, i + 1): 0.3 for c in cases for i in range(4)}
    keys, flags, scores = segment_aucs(segments, {LOCATION_PRIOR: prior})
    assert len(keys) == 32 and flags["has_scar"].sum() == 16 and flags["transmural"].sum() == 8
    assert set(scores) == {"PSCGAN", "ED frame only", LOCATION_PRIOR} and list(scores[LOCATION_PRIOR]) == [-1]
    rows = compare_segment_aucs(keys, flags, scores, [("PSCGAN", "ED frame only"), ("PSCGAN", LOCATION_PRIOR),
                                                      ("PSCGAN", "not scored")], n_resamples=200)  # fmt: skip
    assert [(r["baseline"], r["metric"]) for r in rows] == [
        ("ED frame only", "segment localisation AUC"), ("ED frame only", "segment transmurality AUC"),
        (LOCATION_PRIOR, "segment localisation AUC"), (LOCATION_PRIOR, "segment transmurality AUC"),
    ]  # fmt: skip
    localisation = rows[0]
    assert (localisation["ours_auc"], localisation["baseline_auc"], localisation["difference"]) == (1.0, 0.5, 0.5)
    assert localisation["verdict"] == "PSCGAN better" and localisation["n_cases"] == 8
    assert rows[1]["ours_auc"] == pytest.approx(1.0)  # the transmural segment scores highest in every patient
    text = write_segment_auc(str(tmp_path), keys, flags, scores, rows, "note")
    assert "| PSCGAN | ED frame only | segment localisation AUC | 1.000 | 0.500 | +0.500" in text
    lines = (tmp_path / "segment_scores.csv").read_text().splitlines()
    assert lines[0].endswith("PSCGAN seed 0,PSCGAN seed 1,ED frame only seed 0,ED frame only seed 1," + LOCATION_PRIOR)
    assert len(lines) == 33

    # a method scored on other segments (a patient missing) is refused by name
    segments["ED frame only"][1] = segments["ED frame only"][1][4:]
    with pytest.raises(ValueError, match="ED frame only seed 1"):
        segment_aucs(segments)
