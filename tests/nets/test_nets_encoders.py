"""Tests of common/nets/encoders.py: shapes, strides, MONAI Swin reuse, argument checks, determinism."""

from __future__ import annotations

import pytest
import torch
from common.nets import ENCODER_NAMES, ConvNeXtEncoder, ResNetEncoder, SwinEncoder, build_encoder

TINY = {"feature_size": 12, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1)}

CASES = [
    # (kwargs, input_shape, expected shapes of the 4 maps)
    (
        {"name": name, **TINY},
        (2, 1, 32, 32),
        [(2, 12, 16, 16), (2, 24, 8, 8), (2, 48, 4, 4), (2, 96, 2, 2)],
    )
    for name in ENCODER_NAMES
] + [
    (
        {"name": "swin", **TINY, "in_channels": 3},
        (1, 3, 64, 48),
        [(1, 12, 32, 24), (1, 24, 16, 12), (1, 48, 8, 6), (1, 96, 4, 3)],
    ),
    (
        {"name": "swin", **TINY, "patch_size": 4},
        (1, 1, 64, 64),
        [(1, 12, 16, 16), (1, 24, 8, 8), (1, 48, 4, 4), (1, 96, 2, 2)],
    ),
    (
        {"name": "resnet", **TINY, "patch_size": 1},
        (1, 1, 16, 16),
        [(1, 12, 16, 16), (1, 24, 8, 8), (1, 48, 4, 4), (1, 96, 2, 2)],
    ),
    (
        {"name": "convnext", **TINY, "patch_size": 4},
        (1, 1, 32, 32),
        [(1, 12, 8, 8), (1, 24, 4, 4), (1, 48, 2, 2), (1, 96, 1, 1)],
    ),
    (
        {"name": "resnet", **TINY, "spatial_dims": 3},
        (1, 1, 16, 16, 16),
        [(1, 12, 8, 8, 8), (1, 24, 4, 4, 4), (1, 48, 2, 2, 2), (1, 96, 1, 1, 1)],
    ),
    (
        {"name": "swin", **TINY, "spatial_dims": 3},
        (1, 1, 16, 16, 16),
        [(1, 12, 8, 8, 8), (1, 24, 4, 4, 4), (1, 48, 2, 2, 2), (1, 96, 1, 1, 1)],
    ),
]


@pytest.mark.parametrize("kwargs, input_shape, expected_shapes", CASES)
def test_shapes_and_attributes(kwargs, input_shape, expected_shapes):
    encoder = build_encoder(**kwargs).eval()
    with torch.no_grad():
        features = encoder(torch.randn(input_shape))
    assert [tuple(f.shape) for f in features] == expected_shapes
    assert encoder.out_channels == [s[1] for s in expected_shapes]
    patch = kwargs.get("patch_size", 2)
    assert encoder.strides == [patch, 2 * patch, 4 * patch, 8 * patch]


def test_default_strides_are_the_papers():
    """Patch 2 / first pooling 2 (paper Table I): maps at strides 2, 4, 8, 16 with C, 2C, 4C, 8C channels."""
    for name in ENCODER_NAMES:
        encoder = build_encoder(name, **TINY)
        assert encoder.strides == [2, 4, 8, 16]
        assert encoder.out_channels == [12, 24, 48, 96]


@pytest.mark.parametrize("name, cls", [("swin", SwinEncoder), ("resnet", ResNetEncoder), ("convnext", ConvNeXtEncoder)])
def test_build_encoder_returns_class(name, cls):
    assert isinstance(build_encoder(name, **TINY), cls)


def test_swin_encoder_reuses_monai_stages():
    """Our pre-merge stage output, merged, equals MONAI's BasicLayer forward (blocks + merge) on the same input."""
    torch.manual_seed(0)
    encoder = build_encoder("swin", feature_size=12, depths=(2, 1, 1, 1), num_heads=(3, 1, 1, 1), window_size=4)
    encoder.eval()
    x0 = encoder.patch_embed(torch.randn(1, 1, 32, 32))
    with torch.no_grad():
        ours = encoder._attention_blocks(encoder.layers1[0], x0)  # (B, H, W, C) before merging
        ours_merged = encoder.layers1[0].downsample(ours).movedim(-1, 1)
        monai_merged = encoder.layers1[0](x0)
    torch.testing.assert_close(ours_merged, monai_merged)
    assert encoder.layers4[0].downsample is None  # the extra last merge is removed (it would get no gradient)


@pytest.mark.parametrize("name", ENCODER_NAMES)
def test_every_parameter_gets_a_gradient(name):
    """No unused parameters (DDP would need find_unused_parameters otherwise)."""
    encoder = build_encoder(name, **TINY, drop_path_rate=0.1 if name != "resnet" else 0.0)
    sum(f.mean() for f in encoder(torch.randn(2, 1, 32, 32))).backward()
    assert [n for n, p in encoder.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize("name", ENCODER_NAMES)
def test_seeded_determinism_and_stable_keys(name):
    torch.manual_seed(3)
    a = build_encoder(name, **TINY).eval()
    torch.manual_seed(3)
    b = build_encoder(name, **TINY).eval()
    assert list(a.state_dict()) == list(b.state_dict())
    x = torch.randn(1, 1, 32, 32)
    torch.manual_seed(4)
    c = build_encoder(name, **TINY).eval()
    with torch.no_grad():
        for fa, fb in zip(a(x), b(x)):
            torch.testing.assert_close(fa, fb)
        assert not torch.allclose(a(x)[-1], c(x)[-1])  # the weights are drawn from the seeded generator


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "vit"}, "name"),
        ({"name": "swin", "spatial_dims": 1}, "spatial_dims"),
        ({"name": "swin", "in_channels": 0}, "in_channels"),
        ({"name": "resnet", "feature_size": 0}, "feature_size"),
        ({"name": "resnet", "depths": (1, 1, 1)}, "depths"),
        ({"name": "convnext", "depths": (1, 0, 1, 1)}, "depths"),
        ({"name": "swin", "num_heads": (1, 1)}, "num_heads"),
        ({"name": "swin", "feature_size": 12, "num_heads": (5, 1, 1, 1)}, "num_heads"),
        ({"name": "swin", "window_size": 0}, "window_size"),
        ({"name": "swin", "patch_size": 3}, "patch_size"),
        ({"name": "convnext", "drop_path_rate": 1.0}, "drop_path_rate"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_encoder(**{**TINY, **kwargs})


def test_resnet_warns_on_ignored_drop_path():
    with pytest.warns(UserWarning, match="drop_path_rate"):
        build_encoder("resnet", **TINY, drop_path_rate=0.1)
