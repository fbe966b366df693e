"""Tests of common/losses/segmentor_consistency.py (CycleGANSeg eqs. 1-2)."""

from __future__ import annotations

import math

import pytest
import torch

from common.losses import SegmentorConsistencyLoss


@pytest.mark.parametrize("activation", ["softmax", "sigmoid", None])
def test_identical_inputs_give_zero(activation):
    logits = torch.randn(2, 2, 8, 8)
    assert SegmentorConsistencyLoss(activation)(logits, logits.clone()).item() == 0.0


def test_hand_computed_softmax():
    """pred logits (0, 0) -> p = (0.5, 0.5); reference (log 3, 0) -> (0.75, 0.25): mean((0.25)^2) = 0.0625."""
    pred = torch.zeros(1, 2, 2, 2)
    reference = torch.zeros(1, 2, 2, 2)
    reference[:, 0] = math.log(3.0)
    torch.testing.assert_close(SegmentorConsistencyLoss("softmax")(pred, reference), torch.tensor(0.0625))
    torch.testing.assert_close(
        SegmentorConsistencyLoss("softmax", reduction="sum")(pred, reference), torch.tensor(0.0625 * 8)
    )
    per_element = SegmentorConsistencyLoss("softmax", reduction="none")(pred, reference)
    assert per_element.shape == (1, 2, 2, 2)
    torch.testing.assert_close(per_element, torch.full((1, 2, 2, 2), 0.0625))


def test_hand_computed_sigmoid_and_identity():
    pred = torch.zeros(1, 1, 2, 2)  # sigmoid -> 0.5
    reference = torch.full((1, 1, 2, 2), math.log(3.0))  # sigmoid -> 0.75
    torch.testing.assert_close(SegmentorConsistencyLoss("sigmoid")(pred, reference), torch.tensor(0.0625))
    torch.testing.assert_close(SegmentorConsistencyLoss(None)(pred, reference), torch.tensor(math.log(3.0) ** 2))


def test_probabilities_are_scale_free():
    """Confident logits of the same mask at different scales give ~0 loss (they would not on raw logits)."""
    mask = (torch.rand(1, 1, 8, 8) > 0.5).float()
    logits = torch.cat([1 - mask, mask], dim=1) * 2 - 1
    assert SegmentorConsistencyLoss("softmax")(20 * logits, 40 * logits).item() < 1e-12
    assert SegmentorConsistencyLoss(None)(20 * logits, 40 * logits).item() > 100


def test_gradient_flows_into_pred_only():
    pred = torch.randn(2, 2, 4, 4, requires_grad=True)
    reference = torch.randn(2, 2, 4, 4, requires_grad=True)
    SegmentorConsistencyLoss()(pred, reference).backward()
    assert reference.grad is None
    assert pred.grad is not None and pred.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs, match", [({"activation": "relu"}, "activation"), ({"reduction": "max"}, "reduction")])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SegmentorConsistencyLoss(**kwargs)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="reference_logits shape"):
        SegmentorConsistencyLoss()(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 8))
    with pytest.raises(ValueError, match="softmax"):
        SegmentorConsistencyLoss("softmax")(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))
