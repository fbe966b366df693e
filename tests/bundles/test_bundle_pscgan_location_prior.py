"""The PSCGAN benchmark's scar location prior: a trivial scar-AUC baseline fitted on training labels alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
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
