"""Pixel accuracy, sensitivity and specificity per class (PSCGAN Table 1) against hand counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from common.metrics import pixel_classification


def test_hand_counts():
    pred = np.array([0, 1, 1, 2, 2, 0])
    true = np.array([0, 1, 2, 2, 2, 1])
    out = pixel_classification(pred, true, 3)
    assert out["accuracy"] == pytest.approx(4 / 6)
    # class 2: TP 2, FN 1, FP 0, TN 3
    assert out["sensitivity_2"] == pytest.approx(2 / 3) and out["specificity_2"] == pytest.approx(1.0)
    assert out["accuracy_2"] == pytest.approx(5 / 6)
    # class 0: TP 1, FP 1, FN 0
    assert out["sensitivity_0"] == 1.0 and out["specificity_0"] == pytest.approx(4 / 5)
    assert out["sensitivity"] == pytest.approx(np.mean([1.0, 0.5, 2 / 3]))


def test_absent_class_is_nan_not_perfect_and_shapes_checked():
    out = pixel_classification(np.zeros((4, 4)), np.zeros((4, 4)), 2)
    assert out["accuracy"] == 1.0 and math.isnan(out["sensitivity_1"]) and out["sensitivity"] == 1.0
    with pytest.raises(ValueError, match="same shape, got \\(4, 6\\) and \\(6, 4\\)"):  # same size, transposed
        pixel_classification(np.zeros((4, 6)), np.zeros((6, 4)), 2)
