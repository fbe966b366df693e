"""Scar ratio and scar size on known masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from common.metrics import scar_ratio, scar_size


def test_scar_ratio_whole_or_healthy_myocardium_give_the_same_value():
    labels = np.zeros((10, 10), dtype=np.int64)
    labels[2:8, 2:8] = 2  # myocardium: 36
    labels[2:4, 2:8] = 3  # scar: 12 of them
    whole = labels >= 2
    healthy = labels == 2
    scar = labels == 3
    assert scar_ratio(scar, whole) == pytest.approx(12 / 36)
    assert scar_ratio(torch.as_tensor(scar), torch.as_tensor(healthy)) == pytest.approx(12 / 36)


def test_scar_ratio_edge_cases():
    empty = np.zeros((4, 4))
    assert np.isnan(scar_ratio(empty, empty))
    assert scar_ratio(empty, np.ones((4, 4))) == 0.0
    with pytest.raises(ValueError, match="`scar_mask` and `myocardium_mask`"):
        scar_ratio(np.ones((4, 4)), np.ones((4, 5)))


def test_scar_size_uses_spacing():
    scar = np.zeros((4, 4, 2))
    scar[0, :2, 0] = 1
    assert scar_size(scar) == 2.0
    assert scar_size(scar, spacing=(1.25, 1.25, 8.0)) == pytest.approx(2 * 1.25 * 1.25 * 8.0)
    with pytest.raises(ValueError, match="`spacing`"):
        scar_size(scar, spacing=(1.0, 1.0))
