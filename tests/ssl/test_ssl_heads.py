"""Tests of common/ssl/heads.py: SSLNet shapes, encoder-key compatibility with SwinSSeg, argument checks."""

from __future__ import annotations

import pytest
import torch
from common.nets import ENCODER_NAMES, SwinSSeg
from common.ssl import SSLNet
from monai.networks.utils import copy_model_state

TINY = {"feature_size": 12, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1)}


@pytest.mark.parametrize(
    "kwargs, input_shape, expected",
    [
        (
            {**TINY, "encoder": name},
            (2, 1, 32, 32),
            {"rotation_logits": (2, 4), "embedding": (2, 128), "reconstruction": (2, 1, 32, 32)},
        )
        for name in ENCODER_NAMES
    ]
    + [
        (
            {**TINY, "in_channels": 2, "proj_dim": 16, "hidden_dim": 32, "num_rotations": 2, "patch_size": 4},
            (3, 2, 64, 32),
            {"rotation_logits": (3, 2), "embedding": (3, 16), "reconstruction": (3, 2, 64, 32)},
        )
    ],
)
def test_shapes(kwargs, input_shape, expected):
    net = SSLNet(**kwargs).eval()
    with torch.no_grad():
        out = net(torch.randn(input_shape))
    assert {k: tuple(v.shape) for k, v in out.items()} == expected


@pytest.mark.parametrize("name", ENCODER_NAMES)
def test_encoder_keys_load_into_swin_sseg(name):
    """SSL-pretrained encoder.* keys load into SwinSSeg's encoder with a strict, complete key match."""
    torch.manual_seed(0)
    ssl = SSLNet(encoder=name, **TINY)
    seg = SwinSSeg(encoder=name, scale=2, **TINY)
    ssl_keys = {k for k in ssl.state_dict() if k.startswith("encoder.")}
    seg_keys = {k for k in seg.state_dict() if k.startswith("encoder.")}
    assert ssl_keys == seg_keys and len(ssl_keys) > 0
    pretrained = {k: v for k, v in ssl.state_dict().items() if k.startswith("encoder.")}
    _, loaded, unchanged = copy_model_state(seg, pretrained)
    assert set(loaded) == ssl_keys and len(loaded) == len(ssl_keys)
    assert not any(k.startswith("encoder.") for k in unchanged)  # only the decoder keeps its own weights
    for key in ssl_keys:
        torch.testing.assert_close(seg.state_dict()[key], ssl.state_dict()[key])
    # and back, strictly, through the encoder sub-module
    ssl.encoder.load_state_dict(seg.encoder.state_dict(), strict=True)


def test_every_parameter_gets_a_gradient():
    net = SSLNet(**TINY)
    out = net(torch.randn(2, 1, 32, 32))
    sum(v.mean() for v in out.values()).backward()
    assert [n for n, p in net.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"encoder": "vit"}, "encoder"),
        ({"proj_dim": 0}, "proj_dim"),
        ({"hidden_dim": 0}, "hidden_dim"),
        ({"num_rotations": 0}, "num_rotations"),
        ({"num_heads": (5, 1, 1, 1)}, "num_heads"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SSLNet(**{**TINY, **kwargs})


def test_indivisible_input_raises():
    with pytest.raises(ValueError, match="divisible by 16"):
        SSLNet(**TINY)(torch.zeros(1, 1, 24, 24))


def test_seeded_determinism():
    x = torch.randn(2, 1, 32, 32)
    outs = []
    for seed in (4, 4, 5):
        torch.manual_seed(seed)
        with torch.no_grad():
            outs.append(SSLNet(**TINY).eval()(x))
    for key in outs[0]:
        torch.testing.assert_close(outs[0][key], outs[1][key])
        assert not torch.allclose(outs[0][key], outs[2][key]), key  # every head depends on the seeded weights
