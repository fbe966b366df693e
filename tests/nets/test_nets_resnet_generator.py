"""Tests of common/nets/resnet_generator.py: CycleGAN's ResNet generator."""

from __future__ import annotations

import io

import pytest
import torch
from common.nets import ResNetGenerator

CASES = [
    # (kwargs, input_shape, expected_shape)
    ({"ngf": 8, "n_blocks": 2}, (2, 1, 64, 64), (2, 1, 64, 64)),
    ({"ngf": 8, "n_blocks": 1, "in_channels": 3, "out_channels": 2}, (1, 3, 32, 48), (1, 2, 32, 48)),
    ({"ngf": 4, "n_blocks": 1, "n_downsampling": 3}, (1, 1, 40, 24), (1, 1, 40, 24)),
    ({"ngf": 4, "n_blocks": 1, "norm": "batch", "use_dropout": True}, (2, 1, 16, 16), (2, 1, 16, 16)),
    ({"ngf": 4, "n_blocks": 1, "spatial_dims": 3}, (1, 1, 16, 16, 16), (1, 1, 16, 16, 16)),
]


@pytest.mark.parametrize("kwargs, input_shape, expected_shape", CASES)
def test_shape(kwargs, input_shape, expected_shape):
    net = ResNetGenerator(**kwargs).eval()
    with torch.no_grad():
        assert tuple(net(torch.randn(input_shape)).shape) == expected_shape


def test_output_range_is_tanh():
    """Outputs lie in [-1, 1], and stay there (saturating) when the last conv's weights are blown up."""
    torch.manual_seed(0)
    net = ResNetGenerator(ngf=8, n_blocks=2).eval()
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        out = net(x)
        net.model[-2].weight.mul_(1e4)
        saturated = net(x)
    assert out.min() >= -1 and out.max() <= 1 and out.std() > 0
    assert saturated.min() >= -1 and saturated.max() <= 1
    assert (saturated.abs() > 0.999).float().mean() > 0.9
    assert isinstance(net.model[-1], torch.nn.Tanh)


def test_default_matches_cyclegan_resnet_9blocks():
    """Same parameter count as junyanz' resnet_9blocks (11,378,179 for RGB) with 1-channel in/out: 11,365,633."""
    net = ResNetGenerator()
    assert sum(p.numel() for p in net.parameters()) == 11_365_633
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules()) == 2
    assert sum(isinstance(m, torch.nn.ReflectionPad2d) for m in net.modules()) == 2 + 2 * 9


def test_normal_init():
    torch.manual_seed(0)
    net = ResNetGenerator(ngf=16, n_blocks=2)
    weight = net.model[1].weight
    assert abs(weight.std().item() - 0.02) < 0.004 and abs(weight.mean().item()) < 0.004
    assert torch.count_nonzero(net.model[1].bias) == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"norm": "group"}, "norm"),
        ({"ngf": 0}, "ngf"),
        ({"n_blocks": -1}, "n_blocks"),
        ({"n_downsampling": -1}, "n_downsampling"),
        ({"spatial_dims": 1}, "spatial_dims"),
        ({"in_channels": 0}, "in_channels"),
        ({"out_channels": 1.5}, "out_channels"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ResNetGenerator(**kwargs)


def test_indivisible_input_raises():
    with pytest.raises(ValueError, match=r"\[30, 32\]"):
        ResNetGenerator(ngf=4, n_blocks=1)(torch.zeros(1, 1, 30, 32))


def test_seeded_determinism():
    x = torch.randn(1, 1, 32, 32)
    outs = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        with torch.no_grad():
            outs.append(ResNetGenerator(ngf=8, n_blocks=1)(x))
    torch.testing.assert_close(outs[0], outs[1])
    assert not torch.allclose(outs[0], outs[2])  # the output depends on the seeded weights


def test_jit_script_round_trip():
    torch.manual_seed(0)
    net = ResNetGenerator(ngf=4, n_blocks=1).eval()
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(net), buffer)
    buffer.seek(0)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.load(buffer)(x), net(x))
