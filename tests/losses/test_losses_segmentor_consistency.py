"""Tests of common/losses/segmentor_consistency.py (CycleGANSeg eqs. 1-2)."""

from __future__ import annotations

import math

import pytest
import torch
from common.losses import SegmentorConsistencyLoss


@pytest.mark.parametrize("activation", ["softmax", "sigmoid", "instance_norm", None])
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


def test_hand_computed_instance_norm():
    """Channel (0, 0, 0, 4): mean 1, variance 3 -> (-1, -1, -1, 3) / sqrt(3); the reference has its 4 in another
    pixel, so two pixels differ by 4 / sqrt(3): mean = 2 * (16 / 3) / 4 = 8 / 3 (eps 1e-5 aside)."""
    pred = torch.tensor([0.0, 0.0, 0.0, 4.0]).reshape(1, 1, 2, 2).repeat(1, 2, 1, 1)
    reference = torch.tensor([0.0, 0.0, 4.0, 0.0]).reshape(1, 1, 2, 2).repeat(1, 2, 1, 1)
    torch.testing.assert_close(
        SegmentorConsistencyLoss("instance_norm")(pred, reference), torch.tensor(8.0 / 3.0), rtol=1e-4, atol=0
    )


def test_instance_norm_weighs_a_missed_small_structure_like_the_public_code():
    """A 1 % structure that the prediction misses: on probabilities the mean hardly notices (~1 % of the pixels
    are wrong), after instance normalisation (the public code's choice) it costs of the order of 1."""
    truth = torch.zeros(1, 1, 64, 64)
    truth[..., 30:34, 20:30] = 1.0  # 40 pixels, ~1 %
    reference = torch.cat([-8 * truth + 4, 8 * truth - 4], dim=1)  # confident Segmentor logits of the mask
    missed = torch.cat([torch.full_like(truth, 4.0), torch.full_like(truth, -4.0)], dim=1)
    missed = missed + 0.01 * torch.randn_like(missed)  # an all-background mask (not exactly constant)
    softmax_loss = SegmentorConsistencyLoss("softmax")(missed, reference).item()
    instance_loss = SegmentorConsistencyLoss("instance_norm")(missed, reference).item()
    assert softmax_loss < 0.02
    assert instance_loss > 0.5
    assert instance_loss > 50 * softmax_loss


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
