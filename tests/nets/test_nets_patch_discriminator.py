"""Tests of common/nets/patch_discriminator.py: CycleGAN's 70x70 PatchGAN from MONAI's PatchDiscriminator."""

from __future__ import annotations

import pytest
import torch
from common.nets import patchgan_70
from monai.losses import PatchAdversarialLoss
from monai.networks.nets import PatchDiscriminator


@pytest.mark.parametrize(
    "kwargs, input_shape, expected_logits_shape",
    [
        ({}, (2, 1, 64, 64), (2, 1, 6, 6)),  # the paper's 64x64 images
        ({"channels": 8}, (1, 1, 256, 256), (1, 1, 30, 30)),  # CycleGAN's 256x256 -> 30x30
        ({"channels": 4, "in_channels": 2, "spatial_dims": 3}, (1, 2, 32, 32, 32), (1, 1, 2, 2, 2)),
    ],
)
def test_logits_shape(kwargs, input_shape, expected_logits_shape):
    net = patchgan_70(**kwargs).eval()
    with torch.no_grad():
        outputs = net(torch.randn(input_shape))
    assert isinstance(net, PatchDiscriminator)
    assert len(outputs) == 5  # 4 intermediate feature maps, logits last
    assert tuple(outputs[-1].shape) == expected_logits_shape


def test_matches_cyclegan_nlayer_discriminator():
    """Parameter count of junyanz' NLayerDiscriminator(1, 64, n_layers=3, InstanceNorm2d): 2,762,689."""
    net = patchgan_70()
    assert sum(p.numel() for p in net.parameters()) == 2_762_689
    strides = [m.stride[0] for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert strides == [2, 2, 2, 1, 1]


def test_lsgan_loss_on_logits():
    """The LSGAN set-up we use: no activation, so the loss is MSE to the target label."""
    loss = PatchAdversarialLoss(criterion="least_squares", no_activation_leastsq=True)
    logits = torch.full((1, 1, 6, 6), 0.5)
    torch.testing.assert_close(loss(logits, target_is_real=True, for_discriminator=True), torch.tensor(0.25))
    torch.testing.assert_close(loss(logits, target_is_real=False, for_discriminator=True), torch.tensor(0.25))
    torch.testing.assert_close(
        loss(torch.ones(1, 1, 6, 6), target_is_real=True, for_discriminator=False), torch.tensor(0.0)
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [({"spatial_dims": 1}, "spatial_dims"), ({"in_channels": 0}, "in_channels"), ({"channels": 0}, "channels")],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        patchgan_70(**kwargs)


def test_seeded_determinism():
    torch.manual_seed(2)
    a = patchgan_70(channels=8)
    torch.manual_seed(2)
    b = patchgan_70(channels=8)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        torch.testing.assert_close(va, vb)
    torch.manual_seed(3)
    other = patchgan_70(channels=8)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():  # the logits (the last of the returned maps)
        torch.testing.assert_close(a(x)[-1], b(x)[-1])
        assert not torch.allclose(a(x)[-1], other(x)[-1])  # the output depends on the seeded weights
