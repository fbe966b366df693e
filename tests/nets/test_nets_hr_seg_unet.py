"""HRSegUNet (REHRSeg stage 2): the three outputs, the HR head's slice grid, the LR output, learning, rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from common.data.degradation import thin_slice_affine
from common.nets.hr_seg_unet import HRSegUNet
from torch import nn

TINY = (8, 16, 16, 16)


def _net(**kwargs) -> HRSegUNet:
    torch.manual_seed(0)
    return HRSegUNet(features=TINY, **kwargs)


def test_forward_all_gives_lr_hr_and_the_stage_1_skip():
    net = _net()
    assert net.divisor == (8, 8, 2)
    stage1 = []
    net.encoder[1].register_forward_hook(lambda module, args, out: stage1.append(out))
    lr_logits, hr_logits, skip1 = net.forward_all(torch.rand(1, 1, 16, 16, 8))
    assert lr_logits.shape == (1, 2, 16, 16, 8)
    assert hr_logits.shape == (1, 2, 16, 16, 32)
    assert skip1.shape == (1, 16, 8, 8, 8)  # (B, features[1], X/2, Y/2, Z): z is not pooled in stage 1
    torch.testing.assert_close(skip1, stage1[0], rtol=0, atol=0)


def test_forward_returns_the_head_asked_for():
    hr_net, lr_net = _net(), _net(output="lr")
    lr_net.load_state_dict(hr_net.state_dict())
    x = torch.rand(2, 1, 8, 16, 4)
    lr_logits, hr_logits, _ = hr_net.forward_all(x)
    torch.testing.assert_close(hr_net(x), hr_logits)
    torch.testing.assert_close(lr_net(x), lr_logits)


def test_hr_upsampling_puts_thin_slice_j_at_thick_coordinate_j_plus_half_over_s_minus_half():
    scale, slices = 4, 3
    net = _net(scale=scale)
    net.hr_head = nn.Identity()  # look at the upsampled features themselves
    ramp = torch.arange(slices, dtype=torch.float32).view(1, 1, 1, 1, slices).expand(1, 8, 2, 2, slices)
    upsampled = net._hr_logits(ramp)
    j = np.arange(scale * slices)
    expected = np.clip((j + 0.5) / scale - 0.5, 0, slices - 1)  # linear inside, clamped at the two ends
    np.testing.assert_allclose(upsampled[0, 0, 0, 0].numpy(), expected, atol=1e-6)
    # the project's thin-slice grid: thin voxel j at thick coordinate (j + 0.5) / s - 0.5 (thick affine = identity)
    thin = thin_slice_affine(np.eye(4), axis=2, factor=scale)
    np.testing.assert_allclose(thin[2, 2] * j + thin[2, 3], (j + 0.5) / scale - 0.5)
    # and the net calls exactly F.interpolate(..., scale_factor=(1, 1, s), trilinear, align_corners=False)
    reference = F.interpolate(ramp, scale_factor=(1, 1, scale), mode="trilinear", align_corners=False)
    torch.testing.assert_close(upsampled, reference)


def test_a_few_steps_on_a_toy_problem_reduce_the_loss():
    net = _net()
    x = torch.randn(2, 1, 16, 16, 8)
    hr_label = (x > 0).long().repeat_interleave(4, dim=-1)[:, 0]  # thin label = its thick slice's sign
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        lr_logits, hr_logits, _ = net.forward_all(x)
        loss = F.cross_entropy(hr_logits, hr_label) + F.cross_entropy(lr_logits, (x > 0).long()[:, 0])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("output", ["hr", "lr"])
def test_torchscript_matches_eager(output):
    net = _net(output=output).eval()
    scripted = torch.jit.script(net)
    assert scripted.divisor == net.divisor == (8, 8, 2)
    x = torch.rand(1, 1, 8, 8, 4)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x), rtol=0, atol=1e-5)
        for got, expected in zip(scripted.forward_all(x), net.forward_all(x)):
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("input_shape", [(1, 1, 12, 16, 8), (1, 1, 16, 16, 7), (1, 2, 16, 16, 8), (1, 16, 16, 8)])
def test_bad_input_shapes_raise(input_shape):
    with pytest.raises(ValueError, match=r"shape"):
        _net()(torch.rand(input_shape))


def test_the_divisor_follows_the_strides():
    net = HRSegUNet(features=(4, 8, 8), strides=((1, 1, 1), (2, 2, 1), (2, 2, 2)), scale=2)
    assert net.divisor == (4, 4, 2)
    assert net(torch.rand(1, 1, 4, 8, 2)).shape == (1, 2, 4, 8, 4)
    with pytest.raises(ValueError, match=r"\[4, 4, 2\]"):
        net(torch.rand(1, 1, 4, 6, 2))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"in_channels": 0}, "in_channels"),
        ({"out_channels": 0}, "out_channels"),
        ({"scale": 0}, "scale"),
        ({"features": (8,), "strides": ((1, 1, 1),)}, "features"),
        ({"strides": ((1, 1, 1), (2, 2, 1), (2, 2, 1))}, "strides"),
        ({"strides": ((1, 1, 1), (2, 2), (2, 2, 1), (2, 2, 2))}, "strides"),
        ({"strides": ((1, 1, 1), (2, 0, 1), (2, 2, 1), (2, 2, 2))}, "strides"),
        ({"output": "both"}, "output"),
        ({"kernel_sizes": ((3, 3, 3),) * 3}, "kernel_sizes"),
        ({"kernel_sizes": ((3, 3, 3), (3, 3, 2), (3, 3, 3), (3, 3, 3))}, "kernel_sizes"),
        ({"kernel_sizes": ((3, 3), (3, 3, 3), (3, 3, 3), (3, 3, 3))}, "kernel_sizes"),
    ],
)
def test_bad_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        HRSegUNet(**{"features": TINY, **kwargs})


def test_kernel_sizes_set_each_stage_and_its_decoder_stage_and_default_to_3x3x3():
    """nnU-Net's anisotropic plan: (3, 3, 1) kernels (no mixing across thick slices) in the first stages."""
    torch.manual_seed(0)
    default = HRSegUNet(features=TINY)
    torch.manual_seed(0)
    explicit = HRSegUNet(features=TINY, kernel_sizes=((3, 3, 3),) * 4)
    for (name, a), b in zip(default.state_dict().items(), explicit.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    kernels = ((3, 3, 1), (3, 3, 1), (3, 3, 3), (3, 3, 3))
    net = _net(kernel_sizes=kernels)
    for stage, kernel in zip(net.encoder, kernels):
        assert [block[0].kernel_size for block in stage] == [kernel, kernel]
        assert [block[0].padding for block in stage] == [tuple(k // 2 for k in kernel)] * 2
    # decoder stage i works at encoder stage i's resolution, with its kernel: the last one at full resolution
    assert [up.convs[0][0].kernel_size for up in net.decoder] == [kernels[2], kernels[1], kernels[0]]
    lr_logits, hr_logits, skip1 = net.forward_all(torch.rand(1, 1, 16, 16, 8))
    assert lr_logits.shape == (1, 2, 16, 16, 8) and hr_logits.shape == (1, 2, 16, 16, 32)
    # fewer taps: (3, 3, 1) stages have a third of the 3x3x3 weights
    assert sum(p.numel() for p in net.parameters()) < sum(p.numel() for p in default.parameters())
