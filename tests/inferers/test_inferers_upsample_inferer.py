"""UpsampleInferer: the segment-then-interpolate baseline for 2D and 3D with per-axis factors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from common.inferers import UpsampleInferer


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


CASES = [  # (kwargs, input shape, expected output shape)
    ({"spatial_dims": 2, "scale": 8, "mode": "bilinear"}, (2, 3, 8, 6), (2, 3, 64, 48)),
    ({"spatial_dims": 2, "scale": (2, 3), "mode": "nearest"}, (1, 2, 5, 4), (1, 2, 10, 12)),
    ({"spatial_dims": 3, "scale": (1, 1, 4), "mode": "trilinear"}, (1, 2, 6, 5, 3), (1, 2, 6, 5, 12)),
    ({"spatial_dims": 3, "scale": 2, "mode": "linear"}, (1, 1, 4, 4, 4), (1, 1, 8, 8, 8)),
    ({"spatial_dims": 3, "scale": [2, 1, 3], "mode": "nearest"}, (2, 1, 3, 4, 2), (2, 1, 6, 4, 6)),
]


@pytest.mark.parametrize("kwargs, input_shape, expected_shape", CASES)
def test_per_axis_output_shape(kwargs, input_shape, expected_shape):
    out = UpsampleInferer(**kwargs)(torch.randn(input_shape), _identity)
    assert out.shape == expected_shape


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_2d_result_is_the_former_bundle_inferer(mode):
    """The lge_mi_sr_segmentation "Seg" baseline was ``F.interpolate(net(x), scale_factor=8, mode, align_corners)``."""
    torch.manual_seed(0)
    network = torch.nn.Conv2d(1, 2, 3, padding=1)
    images = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        former = F.interpolate(
            network(images), scale_factor=8, mode=mode, **({"align_corners": False} if mode == "bilinear" else {})
        )
        out = UpsampleInferer(spatial_dims=2, scale=8, mode=mode)(images, network)
    assert torch.equal(out, former)


def test_3d_z_only_factor_interpolates_along_z_and_keeps_the_slices():
    """a(x, y) + z, upsampled 4x in z only: in-plane values untouched, z linear (edge-clamped, align_corners=False)."""
    in_plane = torch.randn(1, 1, 5, 4, 1)
    volume = in_plane + torch.arange(3.0).reshape(1, 1, 1, 1, 3)
    out = UpsampleInferer(spatial_dims=3, scale=(1, 1, 4), mode="trilinear")(volume, _identity)
    z = torch.clamp((torch.arange(12.0) + 0.5) / 4 - 0.5, 0.0, 2.0)
    torch.testing.assert_close(out, in_plane + z.reshape(1, 1, 1, 1, 12))
    nearest = UpsampleInferer(spatial_dims=3, scale=(1, 1, 4), mode="nearest")(volume, _identity)
    assert torch.equal(nearest, volume.repeat_interleave(4, dim=-1))


def test_int_scale_means_every_axis():
    volume = torch.randn(1, 1, 3, 3, 3)
    assert UpsampleInferer(spatial_dims=3, scale=2).scale == (2, 2, 2)
    assert torch.equal(
        UpsampleInferer(spatial_dims=3, scale=2, mode="nearest")(volume, _identity),
        UpsampleInferer(spatial_dims=3, scale=(2, 2, 2), mode="nearest")(volume, _identity),
    )


def test_network_arguments_are_passed_through():
    out = UpsampleInferer(spatial_dims=2, scale=2, mode="nearest")(torch.ones(1, 1, 2, 2), lambda x, k: x * k, 3.0)
    assert torch.equal(out, torch.full((1, 1, 4, 4), 3.0))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"spatial_dims": 1}, "spatial_dims"),
        ({"spatial_dims": 2, "scale": 0}, "scale"),
        ({"spatial_dims": 2, "scale": 1.5}, "scale"),
        ({"spatial_dims": 3, "scale": (1, 4)}, "scale"),
        ({"spatial_dims": 2, "scale": (2, -2)}, "scale"),
        ({"spatial_dims": 2, "mode": "bicubic"}, "mode"),
        ({"spatial_dims": 3, "mode": "bilinear"}, "spatial_dims"),
        ({"spatial_dims": 2, "scale": True}, "scale"),
        ({"spatial_dims": 2, "mode": "trilinear"}, "spatial_dims"),
    ],
)
def test_bad_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        UpsampleInferer(**kwargs)


def test_network_output_of_the_wrong_dimensionality_raises():
    with pytest.raises(ValueError, match="spatial_dims"):
        UpsampleInferer(spatial_dims=3, scale=2)(torch.randn(1, 1, 4, 4), _identity)
