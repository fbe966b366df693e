"""Tests of common/losses/rehrseg.py: REHRSeg's SR losses, uncertainty-weighted CE and structural KD."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from common.losses.rehrseg import BCEDiceLoss, SelfSRLoss, StructuralKDLoss, UncertaintySRLoss, UncertaintyWeightedCE

SMOOTH = 1e-5
LN2 = math.log(2.0)


def _vnet_dice(p: list[float], t: list[float]) -> float:
    """(2 sum(p t) + smooth) / (sum(p^2) + sum(t^2) + smooth) in plain Python."""
    intersection = sum(a * b for a, b in zip(p, t))
    return (2 * intersection + SMOOTH) / (sum(a * a for a in p) + sum(b * b for b in t) + SMOOTH)


def _sr_pair(image_pred, image_target, label_logit, label, uncertainty=None):
    """Lists over S slices (H = W = 1) -> pred (1, 2 or 3, S, 1, 1), target (1, 2, S, 1, 1)."""
    channels = [image_pred, label_logit] + ([uncertainty] if uncertainty is not None else [])
    pred = torch.tensor(channels, dtype=torch.float32)[None, :, :, None, None]
    target = torch.tensor([image_target, label], dtype=torch.float32)[None, :, :, None, None]
    return pred, target


# ---------------------------------------------------------------------------------------------- BCEDiceLoss


def test_bce_dice_hand_computed_1x1x2():
    """logits [0, ln 3] -> p [1/2, 3/4]; target [1, 0]. BCE = (ln 2 + ln 4) / 2; Dice = (1 + s) / (13/16 + 1 + s)."""
    logits = torch.tensor([0.0, math.log(3.0)]).view(1, 1, 2)
    target = torch.tensor([1.0, 0.0]).view(1, 1, 2)
    bce = (LN2 + math.log(4.0)) / 2
    dice = (2 * 0.5 + SMOOTH) / (0.25 + 0.5625 + 1.0 + SMOOTH)
    assert dice == pytest.approx(_vnet_dice([0.5, 0.75], [1.0, 0.0]))
    assert BCEDiceLoss()(logits, target).item() == pytest.approx(bce + 1 - dice, rel=1e-6)


def test_bce_dice_averages_dice_per_sample_not_over_the_batch():
    """Sample 0: p [1/2, 1/2], t [1, 1]; sample 1: p [1/2, 1/2], t [0, 0]. BCE = ln 2 everywhere."""
    logits = torch.zeros(2, 1, 2)
    target = torch.tensor([[[1.0, 1.0]], [[0.0, 0.0]]])
    per_sample = (_vnet_dice([0.5, 0.5], [1, 1]) + _vnet_dice([0.5, 0.5], [0, 0])) / 2
    batch_dice = _vnet_dice([0.5] * 4, [1, 1, 0, 0])
    loss = BCEDiceLoss()(logits, target).item()
    assert loss == pytest.approx(LN2 + 1 - per_sample, rel=1e-6)
    assert abs(loss - (LN2 + 1 - batch_dice)) > 1e-2


def test_bce_dice_rejects_mismatched_shapes_and_bad_smooth():
    with pytest.raises(ValueError, match="target"):
        BCEDiceLoss()(torch.zeros(1, 1, 2), torch.zeros(1, 1, 3))
    with pytest.raises(ValueError, match="smooth"):
        BCEDiceLoss(smooth=0)


# ---------------------------------------------------------------------------------------------- SelfSRLoss


def test_self_sr_terms_sum_to_loss_and_l1_is_hand_computed():
    pred, target = _sr_pair([0.5, 1.0], [0.0, 0.75], [0.0, 0.0], [1.0, 0.0])
    terms = SelfSRLoss().terms(pred, target)
    assert set(terms) == {"loss", "loss_l1", "loss_bce_dice"}
    assert terms["loss_l1"].item() == pytest.approx((0.5 + 0.25) / 2)
    assert terms["loss_bce_dice"].item() == pytest.approx(LN2 + 1 - _vnet_dice([0.5, 0.5], [1, 0]), rel=1e-6)
    assert terms["loss"].item() == pytest.approx((terms["loss_l1"] + terms["loss_bce_dice"]).item())
    assert SelfSRLoss()(pred, target).item() == pytest.approx(terms["loss"].item())


def test_self_sr_weights_scale_the_terms():
    pred, target = _sr_pair([0.5, 1.0], [0.0, 0.75], [0.0, 0.0], [1.0, 0.0])
    terms = SelfSRLoss(lambda_l1=2.0, lambda_bce_dice=0.5).terms(pred, target)
    assert terms["loss"].item() == pytest.approx((2 * terms["loss_l1"] + 0.5 * terms["loss_bce_dice"]).item())


@pytest.mark.parametrize(
    "pred_shape, target_shape",
    [
        ((1, 3, 2, 4, 4), (1, 2, 2, 4, 4)),
        ((1, 2, 2, 4, 4), (1, 1, 2, 4, 4)),
        ((1, 2, 4, 4), (1, 2, 1, 4, 4)),
        ((1, 2, 4), (1, 2, 4)),
    ],
)
def test_self_sr_rejects_wrong_channels_naming_shapes(pred_shape, target_shape):
    with pytest.raises(ValueError, match=r"got pred \("):
        SelfSRLoss()(torch.zeros(pred_shape), torch.zeros(target_shape))


def test_self_sr_takes_2d_planes_as_one_slice_volumes():
    pred, target = _sr_pair([0.5, 1.0], [0.0, 0.75], [0.0, 0.0], [1.0, 0.0])
    planes = SelfSRLoss().terms(pred[:, :, 0], target[:, :, 0])  # the SMORE-style pre-upsampler's (B, 2, H, W)
    one_slice = SelfSRLoss().terms(pred[:, :, :1], target[:, :, :1])
    assert all(torch.equal(planes[k], one_slice[k]) for k in ("loss", "loss_l1", "loss_bce_dice"))


def test_self_sr_rejects_negative_weight():
    with pytest.raises(ValueError, match="lambda_l1"):
        SelfSRLoss(lambda_l1=-1.0)


# ---------------------------------------------------------------------------------------------- UncertaintySRLoss


def _uasr_example():
    """Image [0.5, 1.0] vs [0.0, 1.0] (e = [1/2, 0]), U [1/2, 1/4], label logits [0, 0] vs [1, 0]."""
    return _sr_pair([0.5, 1.0], [0.0, 1.0], [0.0, 0.0], [1.0, 0.0], uncertainty=[0.5, 0.25])


def test_uasr_hand_computed():
    pred, target = _uasr_example()
    terms = UncertaintySRLoss().terms(pred, target)
    expected = {
        "loss_l1": (0.5 + 0.0) / 2,
        # (e / U + log U): [0.5 / 0.5 + ln 0.5, 0 / 0.25 + ln 0.25] = [1 - ln 2, -2 ln 2]
        "loss_uncertainty": ((1 - LN2) + (-2 * LN2)) / 2,
        # |U - e| = [|0.5 - 0.5|, |0.25 - 0|]
        "loss_u_calibration": (0.0 + 0.25) / 2,
        "loss_bce_dice": LN2 + 1 - (1 + SMOOTH) / (1.5 + SMOOTH),
    }
    expected["loss"] = sum(expected.values())
    assert set(terms) == set(expected)
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value, rel=1e-6, abs=1e-7), name


def test_uasr_calibration_gradient_skips_the_image_but_uncertainty_term_reaches_it():
    pred, target = _uasr_example()
    pred.requires_grad_(True)
    UncertaintySRLoss().terms(pred, target)["loss_u_calibration"].backward()
    assert torch.all(pred.grad[:, 0] == 0)  # stopgrad(e): no gradient into the image prediction
    assert pred.grad[0, 2, 1].item() == pytest.approx(0.5)  # d/dU |U - 0| / 2 at U = 1/4
    pred.grad = None
    UncertaintySRLoss().terms(pred, target)["loss_uncertainty"].backward()
    # d/dx (|x - 0| / U) / 2 at x = 1/2, U = 1/2 -> 1
    assert pred.grad[0, 0, 0].item() == pytest.approx(1.0)
    # d/dU (e / U + log U) / 2 at e = 1/2, U = 1/2 -> (-e / U^2 + 1 / U) / 2 = 0
    assert pred.grad[0, 2, 0].item() == pytest.approx(0.0, abs=1e-6)


def test_uasr_clamps_zero_uncertainty():
    pred, target = _sr_pair([0.5, 1.0], [0.0, 1.0], [0.0, 0.0], [1.0, 0.0], uncertainty=[0.0, 0.0])
    terms = UncertaintySRLoss(eps=1e-3).terms(pred, target)
    assert torch.isfinite(terms["loss"])
    assert terms["loss_uncertainty"].item() == pytest.approx((0.5 / 1e-3 + 2 * math.log(1e-3)) / 2, rel=1e-5)


def test_uasr_rejects_bad_arguments_and_shapes():
    with pytest.raises(ValueError, match="eps"):
        UncertaintySRLoss(eps=0.0)
    with pytest.raises(ValueError, match="lambda_u_calibration"):
        UncertaintySRLoss(lambda_u_calibration=-1.0)
    with pytest.raises(ValueError, match=r"\(1, 2, 2, 4, 4\)"):
        UncertaintySRLoss()(torch.zeros(1, 2, 2, 4, 4), torch.zeros(1, 2, 2, 4, 4))


# ---------------------------------------------------------------------------------------------- UncertaintyWeightedCE


def _two_sample_case():
    """Sample 0: logits [0, 0] (CE = ln 2); sample 1: logits [0, ln 3] (CE = -log(1/4) = ln 4); target class 0."""
    logits = torch.zeros(2, 2, 1, 1, 2)
    logits[1, 1] = math.log(3.0)
    target = torch.zeros(2, 1, 1, 1, 2)
    return logits, target


def test_weighted_ce_zero_uncertainty_is_plain_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 3, 3, 2)
    target = torch.randint(0, 3, (2, 1, 3, 3, 2))
    expected = F.cross_entropy(logits, target[:, 0]).item()
    loss = UncertaintyWeightedCE()
    assert loss(logits, target, torch.zeros(2, 1, 3, 3, 2)).item() == pytest.approx(expected, rel=1e-6)
    assert loss(logits, target, None).item() == pytest.approx(expected, rel=1e-6)
    assert loss(logits, target.float(), None).item() == pytest.approx(expected, rel=1e-6)


def test_weighted_ce_full_uncertainty_is_one_percent():
    logits, target = _two_sample_case()
    plain = (LN2 + math.log(4.0)) / 2
    assert UncertaintyWeightedCE()(logits, target, torch.ones(2, 1, 1, 1, 2)).item() == pytest.approx(0.01 * plain)


def test_weighted_ce_weights_each_sample_by_its_own_uncertainty():
    """U = 0 for sample 0 (w = 1), U = 1 for sample 1 (w = 0.01). Per sample: (ln 2 + 0.01 ln 4) / 2. The public
    code's [B, X, Y, Z] x [B, 1, X, Y, Z] broadcast gives mean(w) * mean(CE) = 0.505 * 1.5 ln 2 instead."""
    logits, target = _two_sample_case()
    uncertainty = torch.zeros(2, 1, 1, 1, 2)
    uncertainty[1] = 1.0
    per_sample = (1.0 * LN2 + 0.01 * math.log(4.0)) / 2
    broadcast = ((1.0 + 0.01) / 2) * ((LN2 + math.log(4.0)) / 2)
    loss = UncertaintyWeightedCE()(logits, target, uncertainty).item()
    assert loss == pytest.approx(per_sample, rel=1e-6)
    assert abs(loss - broadcast) > 0.1


def test_weighted_ce_is_mean_not_normalised_by_weight_sum():
    logits, target = _two_sample_case()
    uncertainty = torch.full((2, 1, 1, 1, 2), 0.5)
    plain = (LN2 + math.log(4.0)) / 2
    assert UncertaintyWeightedCE()(logits, target, uncertainty).item() == pytest.approx((1 - 0.495) * plain)


@pytest.mark.parametrize("value", [1.5, -0.1, 255.0, float("nan")])
def test_weighted_ce_rejects_uncertainty_outside_unit_interval(value):
    logits, target = _two_sample_case()
    uncertainty = torch.zeros(2, 1, 1, 1, 2)
    uncertainty[0, 0, 0, 0, 1] = value
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        UncertaintyWeightedCE()(logits, target, uncertainty)


@pytest.mark.parametrize(
    "target_shape, uncertainty_shape",
    [
        ((2, 1, 1, 1, 2), (2, 1, 1, 2)),  # CE-map shaped weight
        ((2, 1, 1, 1, 2), (1, 1, 1, 1, 2)),  # one map for the batch: would broadcast
        ((2, 1, 1, 2), (2, 1, 1, 1, 2)),  # target without its channel
        ((2, 1, 1, 1, 3), (2, 1, 1, 1, 3)),  # spatial mismatch with the logits
    ],
)
def test_weighted_ce_rejects_mismatched_shapes(target_shape, uncertainty_shape):
    logits, _ = _two_sample_case()
    with pytest.raises(ValueError, match="got"):
        UncertaintyWeightedCE()(logits, torch.zeros(target_shape), torch.zeros(uncertainty_shape))


def test_weighted_ce_rejects_bad_targets_and_floor():
    logits, target = _two_sample_case()
    with pytest.raises(ValueError, match="non-integer"):
        UncertaintyWeightedCE()(logits, target + 0.5)
    with pytest.raises(ValueError, match="class indices"):
        UncertaintyWeightedCE()(logits, target + 2)
    with pytest.raises(ValueError, match="logits"):
        UncertaintyWeightedCE()(logits[..., 0], target[..., 0])
    with pytest.raises(ValueError, match="floor"):
        UncertaintyWeightedCE(floor=1.5)


# ---------------------------------------------------------------------------------------------- StructuralKDLoss


def _identity_kd(channels: int) -> StructuralKDLoss:
    kd = StructuralKDLoss(channels, channels)
    with torch.no_grad():
        kd.projection.weight.copy_(torch.eye(channels).view(channels, channels, 1, 1, 1))
        kd.projection.bias.zero_()
    return kd


def test_kd_zero_for_identical_features_and_identity_projection():
    torch.manual_seed(0)
    features = torch.randn(2, 8, 6, 6, 3)
    terms = _identity_kd(8).terms(features, features.clone())
    assert set(terms) == {"loss", "loss_kd_structure", "loss_kd_cosine"}
    for name, value in terms.items():
        assert abs(value.item()) < 1e-6, name


def test_kd_hand_computed_2x2_slice():
    """C = 2, one 2x2 slice, grid 2 (pooling is the identity). Student nodes all e0: A_S = ones(4, 4). Teacher nodes
    e0, e1, e0, e1: A_T has 8 ones and 8 zeros -> structure = 8 / 16. Cosine (identity projection): channel 0
    [1,1,1,1] vs [1,0,1,0] -> 1/sqrt(2); channel 1 [0,0,0,0] vs [0,1,0,1] -> 0; term = ((1 - 1/sqrt 2) + 1) / 2."""
    student = torch.zeros(1, 2, 2, 2, 1)
    student[0, 0] = 1.0
    teacher = torch.zeros(1, 2, 2, 2, 1)
    teacher[0, 0, :, 0] = 1.0
    teacher[0, 1, :, 1] = 1.0
    terms = _identity_kd(2).terms(student, teacher)
    assert terms["loss_kd_structure"].item() == pytest.approx(0.5, rel=1e-6)
    assert terms["loss_kd_cosine"].item() == pytest.approx(((1 - 1 / math.sqrt(2)) + 1) / 2, rel=1e-6)
    assert terms["loss"].item() == pytest.approx(0.5 + ((1 - 1 / math.sqrt(2)) + 1) / 2, rel=1e-6)


def test_kd_structure_max_pools_each_quadrant():
    """4x4 slice, grid 2: each 2x2 quadrant becomes its channel-wise max; a non-maximal voxel changes nothing."""
    torch.manual_seed(0)
    teacher = torch.rand(1, 3, 4, 4, 1)
    student = teacher.clone()
    student[0, :, 0, 0, 0] = -1.0  # below every quadrant maximum (features in [0, 1))
    assert _identity_kd(3).terms(student, teacher)["loss_kd_structure"].item() < 1e-6


def test_kd_positive_for_different_features():
    torch.manual_seed(0)
    terms = StructuralKDLoss(8, 8).terms(torch.randn(2, 8, 6, 6, 3), torch.randn(2, 8, 6, 6, 3))
    assert terms["loss_kd_structure"].item() > 0
    assert terms["loss_kd_cosine"].item() > 0


def test_kd_structure_term_is_channel_count_agnostic():
    """Student 4 ch, teacher 8 ch = the student's channels twice: the node cosines are equal, so structure = 0."""
    torch.manual_seed(0)
    student = torch.randn(2, 4, 6, 6, 3)
    teacher = torch.cat([student, student], dim=1)
    terms = StructuralKDLoss(4, 8).terms(student, teacher)
    assert terms["loss_kd_structure"].item() < 1e-6
    assert terms["loss_kd_cosine"].item() > 0  # the random projection is not yet trained


def test_kd_gradients_reach_projection_and_student_not_teacher():
    torch.manual_seed(0)
    kd = StructuralKDLoss(4, 8)
    student = torch.randn(2, 4, 6, 6, 3, requires_grad=True)
    teacher = torch.randn(2, 8, 6, 6, 3, requires_grad=True)
    kd(student, teacher).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert kd.projection.weight.grad is not None and kd.projection.weight.grad.abs().sum() > 0
    assert teacher.grad is None
    assert sum(p.numel() for p in kd.parameters()) == 4 * 8 + 8  # the projection is part of the state to optimise


@pytest.mark.parametrize(
    "student_shape, teacher_shape",
    [((2, 4, 6, 6, 3), (2, 8, 6, 6, 2)), ((2, 4, 6, 6, 3), (1, 8, 6, 6, 3)), ((2, 5, 6, 6, 3), (2, 8, 6, 6, 3))],
)
def test_kd_rejects_mismatched_shapes_naming_both(student_shape, teacher_shape):
    with pytest.raises(ValueError, match=r"got student \(.*teacher \("):
        StructuralKDLoss(4, 8)(torch.zeros(student_shape), torch.zeros(teacher_shape))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"student_channels": 0, "teacher_channels": 8}, "student_channels"),
        ({"student_channels": 4, "teacher_channels": 8, "pool_grid": 1}, "pool_grid"),
        ({"student_channels": 4, "teacher_channels": 8, "lambda_cosine": -1.0}, "lambda_cosine"),
    ],
)
def test_kd_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        StructuralKDLoss(**kwargs)
