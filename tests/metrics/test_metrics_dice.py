"""Dice on known label maps (numpy and torch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from common.metrics import dice

PRED = np.array([[0, 1, 1, 2], [0, 1, 2, 2], [0, 0, 2, 2]])
TARGET = np.array([[0, 1, 1, 1], [0, 1, 1, 2], [0, 0, 2, 2]])
# label 1: |P|=3, |T|=5, |P∩T|=3 -> 6/8; label 2: |P|=5, |T|=3, |P∩T|=3 -> 6/8; label 0: 4 vs 4 -> 1
EXPECTED = {0: 1.0, 1: 0.75, 2: 0.75}


@pytest.mark.parametrize("to_input", [np.asarray, torch.as_tensor, lambda a: torch.as_tensor(a).float()])
def test_hand_computed_per_label(to_input):
    scores = dice(to_input(PRED), to_input(TARGET))
    np.testing.assert_allclose(scores, [EXPECTED[1], EXPECTED[2]])


def test_include_background_and_explicit_labels():
    np.testing.assert_allclose(dice(PRED, TARGET, include_background=True), [1.0, 0.75, 0.75])
    np.testing.assert_allclose(dice(PRED, TARGET, labels=[2, 0]), [0.75, 1.0])
    assert isinstance(dice(PRED, TARGET, labels=1), float)
    assert dice(PRED, TARGET, labels=1) == pytest.approx(0.75)


def test_empty_rules():
    empty = np.zeros((4, 4), dtype=np.int64)
    assert dice(empty, empty, labels=3) == 1.0  # absent from both: documented 1.0
    one = empty.copy()
    one[0, 0] = 3
    assert dice(one, empty, labels=3) == 0.0
    assert dice(empty, one, labels=3) == 0.0
    assert dice(empty, empty).shape == (0,)  # no foreground label present


def test_bool_masks():
    a = np.zeros((5, 5), dtype=bool)
    b = a.copy()
    a[1:3, 1:3] = True  # 4
    b[1:3, 1:4] = True  # 6, overlap 4
    assert dice(a, b, labels=1) == pytest.approx(8 / 10)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="`pred` and `target`"):
        dice(np.zeros((2, 2), int), np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="`pred`"):
        dice(np.full((2, 2), 0.5), np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="`labels`"):
        dice(PRED, TARGET, labels=[])
