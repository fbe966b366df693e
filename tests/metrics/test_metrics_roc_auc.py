"""ROC AUC from ranks, and the scar AUC inside the true myocardium, on known scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from common.metrics import roc_auc, scar_auc


def test_roc_auc_known_values_and_ties():
    assert roc_auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert roc_auc(np.array([1.0]), np.array([2.0])) == 0.0
    assert roc_auc(np.array([1.0, 1.0]), np.array([1.0])) == 0.5  # ties count one half
    # 3 of the 4 (positive, negative) pairs ordered, one tied: (3 + 0.5) / 4
    assert roc_auc(torch.tensor([2.0, 3.0]), torch.tensor([1.0, 2.0])) == pytest.approx(0.875)


def test_roc_auc_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    positive = rng.integers(0, 6, 40).astype(float)  # many ties
    negative = rng.integers(0, 5, 30).astype(float)
    pairs = (positive[:, None] > negative[None]).mean() + 0.5 * (positive[:, None] == negative[None]).mean()
    assert roc_auc(positive, negative) == pytest.approx(pairs)


def test_roc_auc_undefined_and_bad_scores():
    assert np.isnan(roc_auc(np.array([]), np.array([1.0])))
    with pytest.raises(ValueError, match="negative scores"):
        roc_auc(np.array([1.0]), np.array([np.nan]))


def test_scar_auc_ranks_scar_against_healthy_myocardium_only():
    labels = np.zeros((6, 6), dtype=np.int64)
    labels[1:5, 1:5] = 2  # myocardium
    labels[1:3, 1:5] = 3  # its scar
    score = np.zeros((6, 6))
    score[labels == 3] = 0.3
    score[labels == 2] = 0.1
    score[labels == 0] = 0.9  # background scores are not read
    assert scar_auc(score, labels == 3, labels >= 2) == 1.0
    assert scar_auc(score, labels == 3, labels == 2) == 1.0  # with or without the scar in the myocardium mask
    assert scar_auc(-score, labels == 3, labels >= 2) == 0.0
    assert np.isnan(scar_auc(score, np.zeros_like(labels), labels >= 2))  # no scar: undefined
    with pytest.raises(ValueError, match="`scar_score` and `scar_mask`"):
        scar_auc(score[:5], labels == 3, labels >= 2)
