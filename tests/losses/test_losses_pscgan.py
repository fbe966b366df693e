"""Tests of common/losses/pscgan.py: PSCGAN's hinge, mce, OGS-TV, content and pixel-count auxiliary losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from common.losses.pscgan import (
    DiscriminatorContentLoss,
    MultiClassBCE,
    PixelCountAuxLoss,
    SyntheticRegularizationLoss,
    class_fractions,
    hinge_discriminator_loss,
    hinge_generator_loss,
    overlapping_group_sparsity,
)
from monai.losses import PatchAdversarialLoss

#: the bias sqrt(1e-12) per pixel that the OGS square root adds, with room for float32 rounding
OGS_ATOL = 1e-5


def _features(values: list[float], shape: tuple[int, ...] = (1, 2, 3, 3)) -> list[torch.Tensor]:
    """One constant feature map per conv layer."""
    return [torch.full(shape, value) for value in values]


# ------------------------------------------------------------------------------------------------------- hinge (eq. 10)


def test_hinge_discriminator_loss_hand_computed():
    """real [2, 0.5] -> relu(1 - x) = [0, 0.5], mean 0.25; fake [-2, 0.5] -> relu(1 + x) = [0, 1.5], mean 0.75."""
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(1.0)


def test_hinge_discriminator_loss_is_the_papers_min_form_on_patch_logits():
    generator = torch.Generator().manual_seed(0)
    real, fake = torch.randn(2, 1, 5, 5, generator=generator), torch.randn(2, 1, 3, 3, generator=generator)
    paper = -torch.minimum(torch.zeros(()), -1 + real).mean() - torch.minimum(torch.zeros(()), -1 - fake).mean()
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(paper.item(), rel=1e-6)


def test_hinge_generator_loss_is_minus_the_mean():
    assert hinge_generator_loss(torch.tensor([-2.0, 0.5])).item() == pytest.approx(0.75)
    assert hinge_generator_loss(torch.tensor([[1.0, 2.0], [3.0, 6.0]])).item() == pytest.approx(-3.0)


def test_hinge_differs_from_the_tanh_squashed_monai_hinge():
    """real [2, -3], fake [-2, 3]: the hinge is (0 + 4) / 2 + (0 + 4) / 2 = 4; through tanh the wrong-side logits
    cost at most 2 each: (1 - tanh 2 + 1 + tanh 3) / 2 * 2 = 2.03. G: -mean(fake) = -0.5 vs mean(1 - tanh(fake))."""
    real, fake = torch.tensor([2.0, -3.0]), torch.tensor([-2.0, 3.0])
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(4.0)
    assert hinge_generator_loss(fake).item() == pytest.approx(-0.5)
    tanh_d = (1 - torch.tanh(real)).clamp_min(0).mean() + (1 + torch.tanh(fake)).clamp_min(0).mean()
    monai_hinge = PatchAdversarialLoss(criterion="hinge")
    monai_d = monai_hinge(real, target_is_real=True, for_discriminator=True) + monai_hinge(
        fake, target_is_real=False, for_discriminator=True
    )
    assert monai_d.item() == pytest.approx(tanh_d.item(), rel=1e-6)
    assert abs(hinge_discriminator_loss(real, fake).item() - monai_d.item()) > 1.0
    monai_g = monai_hinge(fake, target_is_real=True, for_discriminator=False)
    assert monai_g.item() == pytest.approx((1 - torch.tanh(fake)).mean().item(), rel=1e-6)
    assert abs(hinge_generator_loss(fake).item() - monai_g.item()) > 1.0


# --------------------------------------------------------------------------------------------- MultiClassBCE (eqs. 8-9)


def _two_class_example() -> tuple[torch.Tensor, torch.Tensor]:
    """labels [[0, 1], [1, 1]], p(class 1) [[0.25, 0.5], [0.8, 0.9]] -> probabilities (1, 2, 2, 2)."""
    labels = torch.tensor([[[[0, 1], [1, 1]]]])
    p1 = torch.tensor([[0.25, 0.5], [0.8, 0.9]])
    return torch.stack([1 - p1, p1])[None], labels


def test_mce_hand_computed_2x2():
    """Per pixel both class channels give -ln 0.75, ln 2, -ln 0.8, -ln 0.9; each class mean is their mean, and eq. 8
    sums the two classes."""
    probabilities, labels = _two_class_example()
    per_class = (-math.log(0.75) + math.log(2.0) - math.log(0.8) - math.log(0.9)) / 4
    assert MultiClassBCE(num_classes=2)(probabilities, labels).item() == pytest.approx(2 * per_class, rel=1e-5)
    assert MultiClassBCE(num_classes=2, reduction="mean")(probabilities, labels).item() == pytest.approx(
        per_class, rel=1e-5
    )
    elementwise = MultiClassBCE(num_classes=2, reduction="none")(probabilities, labels)
    assert elementwise.shape == (1, 2, 2, 2)
    assert elementwise[0, 1, 0, 0].item() == pytest.approx(-math.log(0.75), rel=1e-5)


def test_mce_sums_the_per_class_means_with_unequal_classes():
    """3 classes, 1 pixel labelled 2: class 0 p=0.5, y=0 -> ln 2; class 1 p=0.3, y=0 -> -ln 0.7; class 2 p=0.2, y=1 ->
    -ln 0.2."""
    probabilities = torch.tensor([0.5, 0.3, 0.2]).view(1, 3, 1, 1)
    expected = math.log(2.0) - math.log(0.7) - math.log(0.2)
    assert MultiClassBCE(num_classes=3)(probabilities, torch.tensor([[[2]]])).item() == pytest.approx(
        expected, rel=1e-5
    )


@pytest.mark.parametrize("label_layout", ["b1hw", "bhw", "float_b1hw"])
def test_mce_labels_and_their_one_hot_agree(label_layout):
    generator = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 4, (2, 1, 5, 6), generator=generator)
    probabilities = torch.softmax(torch.randn(2, 4, 5, 6, generator=generator), dim=1)
    onehot = torch.nn.functional.one_hot(labels[:, 0], 4).permute(0, 3, 1, 2)
    target = {"b1hw": labels, "bhw": labels[:, 0], "float_b1hw": labels.float()}[label_layout]
    loss = MultiClassBCE()
    assert loss(probabilities, target).item() == pytest.approx(loss(probabilities, onehot.float()).item(), rel=1e-6)


def test_mce_class_weights_weight_each_pixel_by_its_true_class():
    """The 2x2 example with w = (3, 0.5): the class-0 pixel's two channel terms (-ln 0.75 each) count 3 times, the
    class-1 pixels' half; the weight multiplies both channels of a pixel, so eq. 8's two class means stay equal."""
    probabilities, labels = _two_class_example()
    per_class = (3 * -math.log(0.75) + 0.5 * (math.log(2.0) - math.log(0.8) - math.log(0.9))) / 4
    loss = MultiClassBCE(num_classes=2, class_weights=[3.0, 0.5])
    assert loss(probabilities, labels).item() == pytest.approx(2 * per_class, rel=1e-5)
    onehot = torch.nn.functional.one_hot(labels[:, 0], 2).permute(0, 3, 1, 2).float()
    assert loss(probabilities, onehot).item() == pytest.approx(2 * per_class, rel=1e-5)  # soft target: w . y
    assert MultiClassBCE(num_classes=2, class_weights=[1, 1])(probabilities, labels).item() == pytest.approx(
        MultiClassBCE(num_classes=2)(probabilities, labels).item(), rel=1e-6
    )


def test_mce_class_weights_push_a_rare_class_up():
    """One rare-class pixel among 63: its gradient towards the rare class is larger with the weight than without."""
    labels = torch.zeros(1, 1, 8, 8, dtype=torch.long)
    labels[0, 0, 3, 3] = 1
    logits = torch.zeros(1, 2, 8, 8, requires_grad=True)
    grads = []
    for weights in (None, [64 / 63 / 2, 64 / 2]):
        logits.grad = None
        MultiClassBCE(num_classes=2, class_weights=weights)(torch.softmax(logits, 1), labels).backward()
        grads.append(-logits.grad[0, 1, 3, 3].item())
    assert grads[0] > 0 and grads[1] > 10 * grads[0]


@pytest.mark.parametrize("weights", [[1.0, 2.0, 3.0], [1.0, -1.0], [0.0, 0.0], [1.0, float("nan")]])
def test_mce_refuses_bad_class_weights(weights):
    with pytest.raises(ValueError, match="class_weights must be 2 finite weights"):
        MultiClassBCE(num_classes=2, class_weights=weights)


def test_mce_perfect_prediction_is_about_zero():
    labels = torch.tensor([[[0, 1], [2, 3]]])
    onehot = torch.nn.functional.one_hot(labels, 4).permute(0, 3, 1, 2).float()
    assert MultiClassBCE()(onehot, labels).item() == pytest.approx(0.0, abs=1e-4)
    assert MultiClassBCE()(1 - onehot, labels).item() > 10


def test_mce_refuses_an_out_of_range_label_naming_it():
    probabilities = torch.full((1, 4, 2, 2), 0.25)
    with pytest.raises(ValueError, match=r"found values \[4\]"):
        MultiClassBCE()(probabilities, torch.tensor([[[0, 1], [4, 3]]]))
    with pytest.raises(ValueError, match=r"found values \[-1, 7\]"):
        MultiClassBCE()(probabilities, torch.tensor([[[-1, 1], [7, 3]]]))


def test_mce_refuses_bad_shapes_logits_and_arguments():
    probabilities = torch.full((1, 4, 2, 2), 0.25)
    with pytest.raises(ValueError, match="does not match"):
        MultiClassBCE()(probabilities, torch.zeros(1, 1, 2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="target must be"):
        MultiClassBCE()(probabilities, torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="pred must be"):
        MultiClassBCE()(torch.full((1, 3, 2, 2), 0.25), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="not logits"):
        MultiClassBCE()(torch.full((1, 4, 2, 2), 2.0), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="non-integer"):
        MultiClassBCE()(probabilities, torch.full((1, 2, 2), 0.5))
    with pytest.raises(ValueError, match="num_classes"):
        MultiClassBCE(num_classes=1)
    with pytest.raises(ValueError, match="eps"):
        MultiClassBCE(eps=0)
    with pytest.raises(ValueError, match="reduction"):
        MultiClassBCE(reduction="max")


# ----------------------------------------------------------------------------------------------------- OGS (eqs. 12-13)


def _ogs_by_loops(image: list[list[float]], group_size: int) -> float:
    """Eq. 12-13 with explicit loops: rows i - m1 .. i + m2, columns j - m1 .. j + m2, zero outside; mean over
    pixels."""
    height, width = len(image), len(image[0])
    m1, m2 = (group_size - 1) // 2, group_size // 2
    total = 0.0
    for i in range(height):
        for j in range(width):
            energy = 0.0
            for row in range(i - m1, i + m2 + 1):
                for col in range(j - m1, j + m2 + 1):
                    if 0 <= row < height and 0 <= col < width:
                        energy += image[row][col] ** 2
            total += math.sqrt(energy)
    return total / (height * width)


def test_ogs_k2_on_a_3x3_image_matches_explicit_loops():
    """K = 2: m1 = 0, m2 = 1, so each group is the pixel and its right, lower and lower-right neighbours."""
    image = [[1.0, -2.0, 0.0], [3.0, 0.5, -1.0], [0.0, 2.0, 4.0]]
    # the nine groups' energies, row by row: {1, -2, 3, 0.5} 14.25, {-2, 0, 0.5, -1} 5.25, {0, -1} 1,
    # {3, 0.5, 0, 2} 13.25, {0.5, -1, 2, 4} 21.25, {-1, 4} 17, {0, 2} 4, {2, 4} 20, {4} 16
    by_hand = sum(math.sqrt(e) for e in (14.25, 5.25, 1, 13.25, 21.25, 17, 4, 20, 16)) / 9
    assert by_hand == pytest.approx(3.323475, abs=1e-6)
    expected = _ogs_by_loops(image, 2)
    assert expected == pytest.approx(by_hand, rel=1e-12)
    u = torch.tensor(image, dtype=torch.float64)[None, None]
    assert overlapping_group_sparsity(u, 2).item() == pytest.approx(by_hand, rel=1e-9)
    assert overlapping_group_sparsity(u, 2).item() != pytest.approx(_ogs_by_loops(image[::-1], 2), rel=1e-3)


@pytest.mark.parametrize("group_size", [3, 4, 5])
def test_ogs_matches_explicit_loops_for_larger_groups(group_size):
    generator = torch.Generator().manual_seed(group_size)
    u = torch.randn(1, 1, 4, 5, generator=generator, dtype=torch.float64)
    expected = _ogs_by_loops(u[0, 0].tolist(), group_size)
    assert overlapping_group_sparsity(u, group_size).item() == pytest.approx(expected, rel=1e-9)


def test_ogs_is_per_sample_and_averages_channels():
    u = torch.zeros(2, 2, 3, 3)
    u[1, 0, 1, 1] = 3.0  # K = 1: mean |u| of sample 1 = 3 / 18
    values = overlapping_group_sparsity(u, 1)
    assert values.shape == (2,)
    assert values[0].item() == pytest.approx(0.0, abs=OGS_ATOL)
    assert values[1].item() == pytest.approx(3.0 / 18, abs=OGS_ATOL)


def test_ogs_k1_is_anisotropic_tv():
    generator = torch.Generator().manual_seed(2)
    u = torch.randn(3, 2, 6, 7, generator=generator)
    expected = u.abs().mean(dim=(1, 2, 3))
    assert torch.allclose(overlapping_group_sparsity(u, 1), expected, atol=OGS_ATOL)


def test_ogs_larger_group_differs_from_k1_on_noise():
    generator = torch.Generator().manual_seed(3)
    u = torch.randn(1, 1, 8, 8, generator=generator)
    k1, k3 = overlapping_group_sparsity(u, 1).item(), overlapping_group_sparsity(u, 3).item()
    assert abs(k3 - k1) > 0.1


def test_ogs_gradient_is_finite_on_zeros_and_refuses_bad_arguments():
    u = torch.zeros(1, 1, 4, 4, requires_grad=True)
    overlapping_group_sparsity(u, 3).sum().backward()
    assert torch.isfinite(u.grad).all()
    with pytest.raises(ValueError, match="group_size"):
        overlapping_group_sparsity(torch.zeros(1, 1, 4, 4), 0)
    with pytest.raises(ValueError, match="u must be"):
        overlapping_group_sparsity(torch.zeros(4, 4), 1)


# ------------------------------------------------------------------------------------------ SyntheticRegularizationLoss


def test_synthetic_regularization_tv_is_zero_on_a_constant_image():
    image = torch.full((2, 1, 5, 5), 0.7)
    terms = SyntheticRegularizationLoss(group_size=3).terms(image, image)
    assert terms["loss_ogs_tv"].item() == pytest.approx(0.0, abs=OGS_ATOL)
    assert terms["loss"].item() == pytest.approx(0.0, abs=OGS_ATOL)


def test_synthetic_regularization_uses_forward_differences_without_padding():
    """I = row index -> I_{i+1, j} - I_{i, j} = 1 on the (H - 1) x W map, 0 along W: K = 1 TV is exactly 1 (a zero
    padded difference map would give (H - 1) / H)."""
    image = torch.arange(5.0).view(1, 1, 5, 1).expand(1, 1, 5, 4)
    terms = SyntheticRegularizationLoss(group_size=1).terms(image, image)
    assert terms["loss_ogs_tv"].item() == pytest.approx(1.0, abs=OGS_ATOL)
    transposed = image.transpose(2, 3)
    assert SyntheticRegularizationLoss(group_size=1).terms(transposed, transposed)["loss_ogs_tv"].item() == (
        pytest.approx(1.0, abs=OGS_ATOL)
    )


def test_synthetic_regularization_k1_is_anisotropic_tv_of_the_image():
    generator = torch.Generator().manual_seed(4)
    image = torch.randn(2, 1, 6, 5, generator=generator)
    anisotropic_tv = (image.diff(dim=2).abs().mean(dim=(1, 2, 3)) + image.diff(dim=3).abs().mean(dim=(1, 2, 3))).mean()
    terms = SyntheticRegularizationLoss(group_size=1).terms(image, image)
    assert terms["loss_ogs_tv"].item() == pytest.approx(anisotropic_tv.item(), abs=OGS_ATOL)


def test_synthetic_regularization_l2_terms_and_their_sum():
    generator = torch.Generator().manual_seed(5)
    pred, target = torch.randn(2, 1, 4, 4, generator=generator), torch.randn(2, 1, 4, 4, generator=generator)
    truth = SyntheticRegularizationLoss(nu=0.3).terms(pred, target)
    assert set(truth) == {"loss", "loss_l2", "loss_ogs_tv"}
    assert truth["loss_l2"].item() == pytest.approx(0.5 * (pred - target).pow(2).mean().item(), rel=1e-6)
    assert truth["loss"].item() == pytest.approx((truth["loss_l2"] + 0.3 * truth["loss_ogs_tv"]).item(), rel=1e-6)
    paper = SyntheticRegularizationLoss(nu=0.3, l2_target="paper").terms(pred, target)
    assert paper["loss_l2"].item() == pytest.approx(0.5 * pred.pow(2).mean().item(), rel=1e-6)
    assert paper["loss_ogs_tv"].item() == pytest.approx(truth["loss_ogs_tv"].item(), rel=1e-6)
    assert SyntheticRegularizationLoss(l2_target="paper")(pred).item() == pytest.approx(
        SyntheticRegularizationLoss(l2_target="paper")(pred, target).item(), rel=1e-6
    )
    assert SyntheticRegularizationLoss(nu=0.3)(pred, target).item() == pytest.approx(truth["loss"].item())


def test_synthetic_regularization_refuses_bad_arguments_and_shapes():
    with pytest.raises(ValueError, match="nu"):
        SyntheticRegularizationLoss(nu=-0.1)
    with pytest.raises(ValueError, match="group_size"):
        SyntheticRegularizationLoss(group_size=0)
    with pytest.raises(ValueError, match="l2_target"):
        SyntheticRegularizationLoss(l2_target="zero")
    with pytest.raises(ValueError, match="needs a target"):
        SyntheticRegularizationLoss()(torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="target must have"):
        SyntheticRegularizationLoss()(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="H, W >= 2"):
        SyntheticRegularizationLoss()(torch.zeros(1, 1, 1, 4), torch.zeros(1, 1, 1, 4))


# --------------------------------------------------------------------------------------------- DiscriminatorContentLoss


def test_content_loss_is_zero_for_identical_features():
    features = [torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(i)) for i in range(5)]
    assert DiscriminatorContentLoss()(features, features).item() == 0.0


def test_content_loss_hand_computed():
    """Layers 2, 3, 4 differ by 1, 2, 3 everywhere -> (1 + 4 + 9) / 3."""
    real = _features([0.0, 0.0, 0.0, 0.0, 0.0])
    fake = _features([0.0, 1.0, 2.0, 3.0, 0.0])
    assert DiscriminatorContentLoss()(real, fake).item() == pytest.approx(14.0 / 3)
    assert DiscriminatorContentLoss(layers=(3,))(real, fake).item() == pytest.approx(4.0)


def test_content_loss_ignores_layers_1_and_5():
    real = _features([0.0, 0.0, 0.0, 0.0, 0.0])
    fake = _features([0.0, 1.0, 2.0, 3.0, 0.0])
    reference = DiscriminatorContentLoss()(real, fake).item()
    changed = list(fake)
    changed[0], changed[4] = torch.full((1, 2, 3, 3), 50.0), torch.full((1, 2, 3, 3), -9.0)
    assert DiscriminatorContentLoss()(real, changed).item() == pytest.approx(reference)
    assert DiscriminatorContentLoss(layers=(1, 2, 3, 4, 5))(real, changed).item() != pytest.approx(reference)


def test_content_loss_gradient_reaches_the_fake_features_only():
    real = [feature.requires_grad_() for feature in _features([0.0] * 5)]
    fake = [feature.requires_grad_() for feature in _features([1.0] * 5)]
    DiscriminatorContentLoss()(real, fake).backward()
    assert all(feature.grad is None for feature in real)
    assert fake[0].grad is None and fake[4].grad is None
    for feature in fake[1:4]:
        assert feature.grad is not None and bool((feature.grad > 0).all())


def test_content_loss_refuses_bad_layers_and_inputs():
    for layers in [(), (0, 2), (2, 2), (1.5,)]:
        with pytest.raises(ValueError, match="layers"):
            DiscriminatorContentLoss(layers=layers)
    with pytest.raises(ValueError, match="at least 4"):
        DiscriminatorContentLoss()(_features([0.0] * 3), _features([0.0] * 3))
    fake = _features([0.0] * 5)
    fake[2] = torch.zeros(1, 2, 2, 2)
    with pytest.raises(ValueError, match="layer 3"):
        DiscriminatorContentLoss()(_features([0.0] * 5), fake)


# ---------------------------------------------------------------------------------------- class_fractions, aux (eq. 17)


def test_class_fractions_match_bincount_on_a_random_label_map():
    rng = np.random.default_rng(6)
    labels = rng.integers(0, 4, size=(3, 1, 5, 7))
    expected = np.stack([np.bincount(sample.ravel(), minlength=4) / 35 for sample in labels])
    tensor = torch.from_numpy(labels)
    onehot = torch.nn.functional.one_hot(tensor[:, 0], 4).permute(0, 3, 1, 2)
    for layout in (tensor, tensor[:, 0], onehot):
        fractions = class_fractions(layout, num_classes=4)
        assert fractions.shape == (3, 4)
        np.testing.assert_allclose(fractions.numpy(), expected, rtol=1e-6)


def test_class_fractions_of_probabilities_sum_them():
    probabilities = torch.tensor([[0.5, 0.1], [0.2, 0.4]])  # class 1; class 0 is 1 - this
    soft = torch.stack([1 - probabilities, probabilities])[None]
    fractions = class_fractions(soft, num_classes=2)
    assert fractions[0, 1].item() == pytest.approx(1.2 / 4)
    assert fractions[0, 0].item() == pytest.approx(2.8 / 4)


def test_class_fractions_refuse_out_of_range_labels_and_bad_shapes():
    with pytest.raises(ValueError, match=r"found values \[5\]"):
        class_fractions(torch.tensor([[[0, 5]]]), num_classes=4)
    with pytest.raises(ValueError, match="labels_or_onehot must be"):
        class_fractions(torch.zeros(1, 3, 2, 2), num_classes=4)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        class_fractions(torch.full((1, 4, 2, 2), 2.0), num_classes=4)
    with pytest.raises(ValueError, match="num_classes"):
        class_fractions(torch.zeros(1, 2, 2, dtype=torch.long), num_classes=1)


def test_pixel_count_aux_discriminator_terms_hand_computed():
    """|[0.5, 0.2, 0.2, 0.1] - 0.25| summed = 0.25 + 0.05 + 0.05 + 0.15 = 0.5; sample 2 matches: mean 0.25."""
    aux_real = torch.tensor([[0.5, 0.2, 0.2, 0.1], [0.25, 0.5, 0.0, 0.25]], requires_grad=True)
    labels = torch.tensor([[[0, 1], [2, 3]], [[0, 1], [1, 3]]])
    loss = PixelCountAuxLoss().discriminator_terms(aux_real, class_fractions(labels))
    assert loss.shape == ()
    assert loss.item() == pytest.approx(0.25)
    loss.backward()
    assert aux_real.grad is not None


def test_pixel_count_aux_generator_terms_is_eq_17_with_the_real_side_detached():
    aux_fake = torch.tensor([[0.1, 0.2, 0.3, 0.4]], requires_grad=True)
    aux_real = torch.tensor([[0.4, 0.2, 0.1, 0.3]], requires_grad=True)
    loss = PixelCountAuxLoss().generator_terms(aux_fake, aux_real)
    assert loss.item() == pytest.approx(0.3 + 0.0 + 0.2 + 0.1)
    loss.backward()
    assert aux_real.grad is None
    assert aux_fake.grad is not None
    assert aux_fake.grad.tolist() == [[-1.0, 0.0, 1.0, 1.0]]


def test_pixel_count_aux_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        PixelCountAuxLoss()(torch.zeros(2, 4), torch.zeros(2, 3))
