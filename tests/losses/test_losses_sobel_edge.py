"""Tests of common/losses/sobel_edge.py: the Sobel edge loss and the composite segmentation loss (section 2.2)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from common.losses.sobel_edge import PAPER_CLASS_WEIGHTS, CompositeSegmentationLoss, SobelEdgeLoss

#: the entries of Sobel & Feldman's 3x3 kernel [-1 0 1; -2 0 2; -1 0 1] (and of its transpose)
SOBEL_ENTRIES = (-1, 0, 1, -2, 0, 2, -1, 0, 1)
#: ||S_k * delta||_2 for a unit impulse away from the border: the kernel's Euclidean norm, sqrt(1+4+1+1+4+1)
IMPULSE_EDGE_NORM = math.sqrt(sum(v * v for v in SOBEL_ENTRIES))


def _one_hot(labels: torch.Tensor, num_classes: int = 4) -> torch.Tensor:
    return F.one_hot(labels, num_classes).movedim(-1, 1).float()


def _single_pixel_target(size: int = 5, label: int = 1) -> torch.Tensor:
    target = torch.zeros(1, size, size, dtype=torch.long)
    target[0, size // 2, size // 2] = label
    return target


def test_the_kernels_are_sobel_and_feldmans_unnormalised_pair():
    """The hand values below rest on these kernels: [-1 0 1; -2 0 2; -1 0 1] (x) and its transpose (y), each of
    Euclidean norm sqrt(12)."""
    kernels = SobelEdgeLoss().kernels
    sobel_x = torch.tensor(SOBEL_ENTRIES, dtype=kernels.dtype).reshape(3, 3)
    assert kernels.shape == (2, 1, 3, 3)
    assert torch.equal(kernels[0, 0], sobel_x) and torch.equal(kernels[1, 0], sobel_x.T)
    assert IMPULSE_EDGE_NORM == pytest.approx(math.sqrt(12.0))


@pytest.mark.parametrize("distance", ["l2", "mse"])
def test_zero_for_a_perfect_one_hot_prediction(distance):
    torch.manual_seed(0)
    target = torch.randint(0, 4, (2, 1, 12, 12))
    loss = SobelEdgeLoss(softmax=False, distance=distance)(_one_hot(target[:, 0]), target)
    assert loss.item() == 0.0
    confident_logits = 30.0 * _one_hot(target[:, 0])
    assert SobelEdgeLoss(distance=distance)(confident_logits, target).item() < 1e-6


@pytest.mark.parametrize("distance", ["l2", "rms", "mse"])
def test_positive_for_a_wrong_prediction(distance):
    torch.manual_seed(0)
    target = torch.randint(0, 4, (2, 1, 12, 12))
    assert SobelEdgeLoss(distance=distance)(torch.randn(2, 4, 12, 12), target).item() > 0


def test_hand_computed_missed_pixel_l2():
    """5x5, truth: one LV pixel in the centre; prediction: all background (one-hot). Only the LV channel differs, by
    a unit impulse; each of the two Sobel responses of an impulse has norm sqrt(12): L = 2 sqrt(12)."""
    target = _single_pixel_target(label=1)
    prediction = _one_hot(torch.zeros(1, 5, 5, dtype=torch.long))
    expected = 2 * IMPULSE_EDGE_NORM
    loss = SobelEdgeLoss(softmax=False)(prediction, target)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(6.928203, rel=1e-6)


def test_hand_computed_missed_pixel_rms_is_l2_over_root_pixel_count():
    """Same map, ``rms``: 2 sqrt(12) / sqrt(25); a 4x larger map with the same impulse halves it (1/sqrt(H W))."""
    target = _single_pixel_target(label=1)
    prediction = _one_hot(torch.zeros(1, 5, 5, dtype=torch.long))
    loss = SobelEdgeLoss(softmax=False, distance="rms")(prediction, target)
    assert loss.item() == pytest.approx(2 * math.sqrt(12.0) / 5.0, rel=1e-6)
    big_target = torch.zeros(1, 1, 10, 10, dtype=torch.long)
    big_target[0, 0, 5, 5] = 1
    big = SobelEdgeLoss(softmax=False, distance="rms")(_one_hot(torch.zeros(1, 10, 10, dtype=torch.long)), big_target)
    assert big.item() == pytest.approx(2 * math.sqrt(12.0) / 10.0, rel=1e-6)


def test_hand_computed_missed_pixel_mse():
    """Same map, ``mse``: squared differences 2 x 12 over 3 foreground channels x 2 directions x 25 pixels."""
    target = _single_pixel_target(label=1)
    prediction = _one_hot(torch.zeros(1, 5, 5, dtype=torch.long))
    expected = 2 * IMPULSE_EDGE_NORM**2 / (3 * 2 * 25)
    assert SobelEdgeLoss(softmax=False, distance="mse")(prediction, target).item() == pytest.approx(expected)


def test_hand_computed_wrong_class_and_half_probability():
    target = _single_pixel_target(label=1)
    # MYO predicted where the truth is LV: the LV and MYO channels each differ by an impulse -> 4 sqrt(12)
    wrong_class = _one_hot(_single_pixel_target(label=2))
    assert SobelEdgeLoss(softmax=False)(wrong_class, target).item() == pytest.approx(4 * IMPULSE_EDGE_NORM)
    # p(LV) = 0.5 at the centre (the rest background): the LV channel differs by 0.5 impulse -> 2 x 0.5 sqrt(12)
    half = _one_hot(torch.zeros(1, 5, 5, dtype=torch.long))
    half[0, :, 2, 2] = torch.tensor([0.5, 0.5, 0.0, 0.0])
    assert SobelEdgeLoss(softmax=False)(half, target).item() == pytest.approx(IMPULSE_EDGE_NORM)
    # with the background channel included, BG differs by the same impulse (border edges cancel) -> 4 sqrt(12)
    missed = _one_hot(torch.zeros(1, 5, 5, dtype=torch.long))
    loss = SobelEdgeLoss(softmax=False, include_background=True)(missed, target)
    assert loss.item() == pytest.approx(4 * IMPULSE_EDGE_NORM)


def test_batch_mean_and_target_layouts():
    """Batch of a perfect and a missed sample: mean = sqrt(12). (B, 1, H, W) and (B, H, W) targets agree."""
    target = torch.cat([_single_pixel_target(label=3)] * 2)
    prediction = torch.cat([_one_hot(target[:1]), _one_hot(torch.zeros(1, 5, 5, dtype=torch.long))])
    loss_fn = SobelEdgeLoss(softmax=False)
    assert loss_fn(prediction, target).item() == pytest.approx(IMPULSE_EDGE_NORM)
    assert loss_fn(prediction, target[:, None]).item() == pytest.approx(IMPULSE_EDGE_NORM)


def test_edge_maps_are_horizontal_and_vertical_sobel():
    """A vertical step edge gives a horizontal response (S_1) of 4 along it and no vertical response (S_2)."""
    step = torch.zeros(1, 1, 5, 6)
    step[..., 3:] = 1.0
    edges = SobelEdgeLoss().edge_maps(step)
    assert edges.shape == (1, 1, 2, 5, 6)
    torch.testing.assert_close(edges[0, 0, 0, 1:-1, 2:4], torch.full((3, 2), 4.0))
    assert edges[0, 0, 1, 1:-1].abs().sum() == 0


def test_gradient_is_finite_at_zero_distance():
    target = _single_pixel_target(label=1)
    prediction = _one_hot(target).requires_grad_()
    SobelEdgeLoss(softmax=False)(prediction, target).backward()
    assert torch.isfinite(prediction.grad).all()


@pytest.mark.parametrize(
    "kwargs, match", [({"distance": "l1"}, "distance"), ({"background_index": -1}, "background_index")]
)
def test_edge_loss_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SobelEdgeLoss(**kwargs)


def test_edge_loss_bad_inputs():
    loss_fn = SobelEdgeLoss()
    with pytest.raises(ValueError, match="2D"):
        loss_fn(torch.zeros(1, 4, 4, 4, 4), torch.zeros(1, 4, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="class indices"):
        loss_fn(torch.zeros(1, 4, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        loss_fn(torch.zeros(1, 4, 4, 4), torch.full((1, 4, 4), 4))
    with pytest.raises(ValueError, match="non-integer"):
        loss_fn(torch.zeros(1, 4, 4, 4), torch.full((1, 4, 4), 0.5))


def test_weighted_cross_entropy_hand_value():
    """2x2 map, truth BG, LV, MYO, RV; logits 0 except log 3 for MYO at the MYO pixel: p_y = 1/4, 1/4, 3/6, 1/4.
    L_wce = mean_i w_{y_i} (-log p_{y_i}) = (0.2 log 4 + 0.25 log 4 + 0.3 log 2 + 0.25 log 4) / 4."""
    target = torch.tensor([[[0, 1], [2, 3]]])
    logits = torch.zeros(1, 4, 2, 2)
    logits[0, 2, 1, 0] = math.log(3.0)
    expected = (0.2 * math.log(4) + 0.25 * math.log(4) + 0.3 * math.log(2) + 0.25 * math.log(4)) / 4
    loss_fn = CompositeSegmentationLoss()
    assert loss_fn.weighted_cross_entropy(logits, target).item() == pytest.approx(expected, rel=1e-6)
    # normalised by the weights of the target pixels (0.2 + 0.25 + 0.3 + 0.25 = 1) instead of the pixel count
    by_weights = CompositeSegmentationLoss(ce_normalization="weights").weighted_cross_entropy(logits, target)
    assert by_weights.item() == pytest.approx(4 * expected, rel=1e-6)
    reference = F.cross_entropy(logits, target, weight=torch.tensor(PAPER_CLASS_WEIGHTS))
    assert by_weights.item() == pytest.approx(reference.item(), rel=1e-6)


def test_composite_terms_and_total():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 4, 8, 8), torch.randint(0, 4, (2, 1, 8, 8))
    loss_fn = CompositeSegmentationLoss()
    terms = loss_fn.terms(logits, target)
    assert set(terms) == {"loss", "loss_wce", "loss_edge"}
    torch.testing.assert_close(terms["loss"], terms["loss_wce"] + 0.5 * terms["loss_edge"])
    torch.testing.assert_close(terms["loss_edge"], SobelEdgeLoss()(logits, target))
    torch.testing.assert_close(loss_fn(logits, target), terms["loss"])
    torch.testing.assert_close(loss_fn(logits, target[:, 0]), terms["loss"])
    assert CompositeSegmentationLoss(lambda_edge=0.0)(logits, target).item() == pytest.approx(terms["loss_wce"].item())


def test_composite_gradient_flows():
    logits = torch.randn(1, 4, 8, 8, requires_grad=True)
    CompositeSegmentationLoss()(logits, torch.randint(0, 4, (1, 8, 8))).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"class_weights": (1.0,)}, "class_weights"),
        ({"class_weights": (0.2, -0.1, 0.3, 0.25)}, "class_weights"),
        ({"lambda_edge": -1.0}, "lambda_edge"),
        ({"edge_distance": "l1"}, "distance"),
        ({"ce_normalization": "none"}, "ce_normalization"),
    ],
)
def test_composite_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CompositeSegmentationLoss(**kwargs)


def test_composite_weights_must_match_channels():
    with pytest.raises(ValueError, match="class_weights has 4 entries"):
        CompositeSegmentationLoss()(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))
