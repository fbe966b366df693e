"""FLAVRSelfSR (REHRSeg stage 1): shapes, the UASR head, the mean residual, learning, loading, TorchScript, rules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from common.nets.flavr import FLAVRSelfSR, load_plain_into_uasr

TINY = (8, 8, 16, 16, 16)


def _net(**kwargs) -> FLAVRSelfSR:
    torch.manual_seed(0)
    return FLAVRSelfSR(widths=TINY, **kwargs)


@pytest.mark.parametrize(
    "kwargs, input_shape, expected_shape",
    [
        ({}, (2, 2, 4, 16, 16), (2, 2, 4, 16, 16)),
        ({"scale": 2}, (1, 2, 4, 16, 24), (1, 2, 2, 16, 24)),
        ({"head": "uasr"}, (2, 2, 4, 16, 16), (2, 3, 4, 16, 16)),
        (
            {"head": "uasr", "scale": 3, "n_inputs": 2, "in_channels": 1, "image_base": "linear"},
            (1, 1, 2, 8, 16),
            (1, 3, 3, 8, 16),
        ),
    ],
)
def test_output_shape(kwargs, input_shape, expected_shape):
    net = _net(**kwargs)
    assert net(torch.rand(input_shape)).shape == expected_shape
    assert net.out_channels == expected_shape[1] and net.spatial_divisor == 8


def test_uasr_mixes_branches_with_softmax_weights_and_gives_an_uncertainty_in_0_1():
    net = _net(head="uasr")
    assert net.n_branches == 8 // 4  # widths[1] // scale, as 64 // 4 = 16 in the public code
    x = torch.rand(2, 2, 4, 16, 16)
    out = net(x)
    images, labels, weights = net.uasr_branch_outputs(x)
    assert weights.shape == images.shape == labels.shape == (2, net.n_branches, 4, 16, 16)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2, 4, 16, 16))
    base = net.interpolated(x)  # both outputs are residuals on the interpolated middle slices
    torch.testing.assert_close(out[:, 0], base[:, 0] + (weights * images).sum(dim=1))
    torch.testing.assert_close(out[:, 1], 4.0 * (2 * base[:, 1] - 1) + (weights * labels).sum(dim=1))
    uncertainty = out[:, 2]
    assert (uncertainty > 0).all() and (uncertainty < 1).all()
    torch.testing.assert_close(out[:, 2:], net.head.uncertainty(weights))


def test_uasr_branch_outputs_refuses_the_plain_head():
    with pytest.raises(ValueError, match="head"):
        _net().uasr_branch_outputs(torch.rand(1, 2, 4, 16, 16))


@pytest.mark.parametrize("head", ["plain", "uasr"])
def test_forward_does_not_modify_its_input(head):
    x = torch.rand(1, 2, 4, 16, 16) + 1.0
    copy = x.clone()
    _net(head=head)(x)
    _net(head=head).early_features(x)
    torch.testing.assert_close(x, copy, rtol=0, atol=0)


def test_plain_image_is_a_residual_on_the_input_mean():
    # channel 0's per-sample mean is taken out before the encoder and added back to the image: a constant shift of
    # the input image shifts the output image by the same constant and leaves the label logits unchanged
    net = _net()
    x = torch.rand(2, 2, 4, 16, 16)
    shifted = x.clone()
    shifted[:, 0] += torch.tensor([0.3, -0.2]).view(2, 1, 1, 1)
    out, out_shifted = net(x), net(shifted)
    torch.testing.assert_close(out_shifted[:, 0], out[:, 0] + torch.tensor([0.3, -0.2]).view(2, 1, 1, 1))
    torch.testing.assert_close(out_shifted[:, 1], out[:, 1])


def test_uasr_image_shifts_with_a_constant_shift_of_the_input_image_and_nothing_else_changes():
    net = _net(head="uasr")
    x = torch.rand(1, 2, 4, 16, 16)
    shifted, out = net(x + torch.tensor([0.5, 0.0]).view(1, 2, 1, 1, 1)), net(x)
    torch.testing.assert_close(shifted[:, 0], out[:, 0] + 0.5)
    torch.testing.assert_close(shifted[:, 1:], out[:, 1:])


def test_a_fresh_plain_network_returns_the_interpolation_on_the_thin_grid():
    """A ramp: cubic (the default) and linear interpolation agree on it; the label is interpolated linearly."""
    net = _net()
    ramp = torch.arange(4, dtype=torch.float32).view(1, 1, 4, 1, 1).expand(1, 1, 4, 8, 8)
    label = (ramp > 1.5).float()  # the label switches between the two middle slices
    out = net(torch.cat([ramp, label], dim=1))
    # s = 4: the gap's thin rows 6..9 lie at thick coordinates 1.125, 1.375, 1.625, 1.875 (thin_slice_affine)
    torch.testing.assert_close(out[0, 0, :, 0, 0], torch.tensor([1.125, 1.375, 1.625, 1.875]))
    torch.testing.assert_close(out[0, 1, :, 0, 0], 4.0 * (2 * torch.tensor([0.125, 0.375, 0.625, 0.875]) - 1))


def test_keys_weights_sum_to_one_and_interpolate_samples_exactly():
    from common.nets.flavr import keys_cubic_weights

    weights = keys_cubic_weights(torch.tensor([0.0, 0.3, 0.5, 1.0]))
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(4))
    torch.testing.assert_close(weights[0], torch.tensor([0.0, 1.0, 0.0, 0.0]))  # on sample 0
    torch.testing.assert_close(weights[3], torch.tensor([0.0, 0.0, 1.0, 0.0]))  # on sample 1
    torch.testing.assert_close(weights[2], torch.tensor([-0.0625, 0.5625, 0.5625, -0.0625]))  # Keys at the midpoint


@pytest.mark.parametrize("image_base, exact", [("cubic", True), ("linear", False)])
def test_a_fresh_network_reproduces_a_quadratic_only_with_the_cubic_base(image_base, exact):
    """Keys' kernel (a = -0.5) is exact for quadratics; linear interpolation of t^2 overshoots inside the gap."""
    net = _net(image_base=image_base)
    t = torch.arange(4, dtype=torch.float32)
    x = torch.cat([(t**2).view(1, 1, 4, 1, 1).expand(1, 1, 4, 8, 8), torch.zeros(1, 1, 4, 8, 8)], dim=1)
    positions = torch.tensor([1.125, 1.375, 1.625, 1.875])  # the gap's thin rows in thick coordinates (s = 4)
    image = net(x)[0, 0, :, 0, 0]
    assert torch.allclose(image, positions**2, atol=1e-5) == exact
    if not exact:
        assert (image > positions**2).all()


def test_cubic_base_needs_four_inputs():
    with pytest.raises(ValueError, match="n_inputs >= 4"):
        FLAVRSelfSR(widths=TINY, n_inputs=2)
    with pytest.raises(ValueError, match="image_base"):
        FLAVRSelfSR(widths=TINY, image_base="spline")


@pytest.mark.parametrize("slices", [4, 7, 1])
def test_early_features_take_any_number_of_slices(slices):
    net = _net()
    x = torch.rand(1, 2, slices, 16, 24)
    features = net.early_features(x)
    assert features.shape == (1, 8, slices, 8, 12)  # (B, widths[1], T, H/2, W/2)
    centred = torch.cat([x[:, :1] - x[:, :1].mean(), x[:, 1:]], dim=1)
    torch.testing.assert_close(features, net.layer1(net.stem(centred)))


@pytest.mark.parametrize("head", ["plain", "uasr"])
def test_a_few_adam_steps_reduce_the_l1_loss(head):
    net = _net(head=head, scale=2)
    image = F.interpolate(torch.rand(2, 1, 4, 4, 4), size=(4, 16, 16), mode="trilinear", align_corners=False)
    x = torch.cat([image, (image > 0.5).float()], dim=1)
    target = x[:, :, 1:3]  # toy target: the two input slices around the gap
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = F.l1_loss(net(x)[:, :2], target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert min(losses) < 0.7 * losses[0]
    assert sum(losses[-5:]) / 5 < 0.8 * losses[0], losses  # and it stays down (not one lucky dip)


def test_load_plain_into_uasr_copies_encoder_and_decoder_and_returns_the_head():
    plain = _net()
    torch.manual_seed(1)
    uasr = FLAVRSelfSR(widths=TINY, head="uasr")
    not_loaded = load_plain_into_uasr(uasr, plain.state_dict())
    assert not_loaded and all(name.startswith("head.") for name in not_loaded)
    assert "head.uncertainty_out.weight" in not_loaded
    plain_state, uasr_state = plain.state_dict(), uasr.state_dict()
    for name in uasr_state:
        if name not in not_loaded:
            torch.testing.assert_close(uasr_state[name], plain_state[name], rtol=0, atol=0)
    x = torch.rand(1, 2, 5, 16, 16)
    torch.testing.assert_close(uasr.early_features(x), plain.early_features(x))


def test_load_plain_into_uasr_refuses_a_state_dict_without_the_encoder():
    plain_state = _net().state_dict()
    del plain_state["layer2.0.conv1.weight"]
    uasr = _net(head="uasr")
    with pytest.raises(ValueError, match="layer2.0.conv1.weight"):
        load_plain_into_uasr(uasr, plain_state)
    wider = FLAVRSelfSR(widths=(8, 8, 16, 16, 32)).state_dict()  # another width: layer4 shapes differ
    with pytest.raises(ValueError, match="layer4"):
        load_plain_into_uasr(uasr, wider)
    with pytest.raises(ValueError, match="uasr"):
        load_plain_into_uasr(_net(), _net().state_dict())


@pytest.mark.parametrize("head", ["plain", "uasr"])
def test_torchscript_matches_eager(head):
    net = _net(head=head).eval()
    scripted = torch.jit.script(net)
    assert (scripted.spatial_divisor, scripted.out_channels) == (net.spatial_divisor, net.out_channels)
    x = torch.rand(1, 2, 4, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x), rtol=0, atol=1e-5)
        y = torch.rand(1, 2, 6, 16, 16)
        torch.testing.assert_close(scripted.early_features(y), net.early_features(y), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "input_shape, match",
    [
        ((1, 2, 4, 12, 16), "divisible by 8"),
        ((1, 2, 4, 16, 20), "divisible by 8"),
        ((1, 2, 3, 16, 16), "n_inputs"),
        ((1, 1, 4, 16, 16), r"\(B, 2, T, H, W\)"),
        ((2, 4, 16, 16), r"\(B, 2, T, H, W\)"),
    ],
)
def test_forward_refuses_bad_shapes(input_shape, match):
    with pytest.raises(ValueError, match=match):
        _net()(torch.rand(input_shape))


def test_early_features_need_even_sizes_only():
    net = _net()
    assert net.early_features(torch.rand(1, 2, 3, 6, 10)).shape == (1, 8, 3, 3, 5)
    with pytest.raises(ValueError, match="divisible by 2"):
        net.early_features(torch.rand(1, 2, 3, 7, 10))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"in_channels": 0}, "in_channels"),
        ({"n_inputs": 1}, "n_inputs"),
        ({"scale": 0}, "scale"),
        ({"widths": (8, 8, 16, 16)}, "widths"),
        ({"widths": (8, 8, 16, 16, 0)}, "widths"),
        ({"blocks": 0}, "blocks"),
        ({"head": "fancy"}, "head"),
        ({"head": "uasr", "n_branches": 0}, "n_branches"),
    ],
)
def test_bad_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        FLAVRSelfSR(**{"widths": TINY, **kwargs})
