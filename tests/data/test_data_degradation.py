"""SMORE-style through-plane degradation and in-plane area resampling."""

from __future__ import annotations

import math

import nibabel as nib
import numpy as np
import pytest
import torch
from common.data import (
    area_downsample,
    degrade_through_plane,
    fwhm_to_sigma,
    interpolate_through_plane,
    resize_area,
    slice_profile_blur,
    slice_profile_fwhm,
    through_plane_affine,
)


@pytest.mark.parametrize("ratio, fwhm", [(1, 0.0), (2, math.sqrt(3)), (4, math.sqrt(15)), (8, math.sqrt(63))])
def test_slice_profile_fwhm_is_sqrt_s2_minus_1(ratio, fwhm):
    assert slice_profile_fwhm(ratio) == pytest.approx(fwhm)
    assert fwhm_to_sigma(2 * math.sqrt(2 * math.log(2))) == pytest.approx(1.0)


@pytest.mark.parametrize("ratio", [4, 8])
def test_blur_of_an_impulse_has_the_stated_fwhm(ratio):
    volume = np.zeros((3, 2, 101), np.float32)
    volume[:, :, 50] = 1.0
    profile = slice_profile_blur(volume, axis=2, thickness_ratio=ratio)[0, 0].astype(np.float64)
    assert profile.sum() == pytest.approx(1.0, abs=1e-4)
    x = np.arange(101) - 50
    sigma = math.sqrt((profile * x * x).sum() / profile.sum())
    assert sigma * 2 * math.sqrt(2 * math.log(2)) == pytest.approx(math.sqrt(ratio**2 - 1), rel=0.02)
    # and only along that axis
    assert np.count_nonzero(slice_profile_blur(volume, axis=0, thickness_ratio=ratio)[:, :, 49]) == 0


def test_blur_ratio_one_is_identity_and_bad_ratio_raises():
    volume = np.random.default_rng(0).random((4, 4, 6)).astype(np.float32)
    np.testing.assert_array_equal(slice_profile_blur(volume, 2, 1), volume)
    with pytest.raises(ValueError, match="thickness_ratio"):
        slice_profile_blur(volume, 2, 0.5)
    with pytest.raises(ValueError, match="axis"):
        slice_profile_blur(volume, 3, 2)


@pytest.mark.parametrize(
    "shape, axis, factor, offset, expected",
    [
        ((8, 8, 32), 2, 4, 0, (8, 8, 8)),
        ((8, 8, 33), 2, 4, 1, (8, 8, 8)),
        ((24, 8, 8), 0, 8, 0, (3, 8, 8)),
        ((2, 8, 8, 16), -1, 2, 1, (2, 8, 8, 8)),
    ],
)
def test_degrade_through_plane_shapes(shape, axis, factor, offset, expected):
    assert degrade_through_plane(np.zeros(shape, np.float32), axis, factor, offset).shape == expected


def test_degrade_keeps_the_blurred_slices_at_offset_plus_k_factor():
    volume = np.random.default_rng(1).random((5, 5, 40)).astype(np.float32)
    low = degrade_through_plane(volume, axis=2, factor=4, offset=2)
    np.testing.assert_allclose(low, slice_profile_blur(volume, 2, 4)[:, :, 2::4], rtol=1e-6)
    # constant volumes stay constant (the profile is normalised)
    np.testing.assert_allclose(degrade_through_plane(np.full((4, 4, 16), 3.0), 2, 4), 3.0, rtol=1e-5)


def test_degrade_accepts_torch_and_returns_torch():
    volume = torch.rand(1, 6, 6, 16)
    low = degrade_through_plane(volume, axis=-1, factor=4)
    assert isinstance(low, torch.Tensor) and low.shape == (1, 6, 6, 4) and low.dtype == torch.float32


@pytest.mark.parametrize("factor, offset", [(0, 0), (2.5, 0), (4, 4), (4, -1)])
def test_degrade_bad_arguments_raise(factor, offset):
    with pytest.raises(ValueError, match="factor|offset"):
        degrade_through_plane(np.zeros((4, 4, 16)), 2, factor, offset)


def test_interpolate_back_to_high_resolution_grid():
    z = np.arange(32, dtype=np.float64)
    volume = np.broadcast_to(2.0 * z + 1.0, (3, 3, 32)).copy()  # linear along z
    low = volume[:, :, 1::4]
    high = interpolate_through_plane(low, axis=2, factor=4, offset=1, order=1, size=32)
    assert high.shape == (3, 3, 32)
    np.testing.assert_allclose(high[:, :, 1:30], volume[:, :, 1:30], atol=1e-5)  # exact inside, linear data
    np.testing.assert_allclose(high[:, :, 0], volume[:, :, 1])  # nearest end value outside
    cubic = interpolate_through_plane(low, axis=2, factor=4, offset=1, order=3)
    np.testing.assert_allclose(cubic[:, :, 1::4], low, atol=1e-5)


def test_cubic_on_fewer_than_4_slices_is_linear_and_says_so_once_per_slice_count(caplog, monkeypatch):
    import common.data.degradation as degradation

    monkeypatch.setattr(degradation, "_SAID_LINEAR_FALLBACKS", set())  # as in a fresh process
    low = np.broadcast_to(np.array([0.0, 1.0, 4.0]), (2, 2, 3)).copy()  # not linear: cubic and linear differ
    with caplog.at_level("WARNING"):
        cubic = interpolate_through_plane(low, axis=2, factor=2, order=3)
    assert "cubic interpolation needs at least 4 slices along axis 2, got 3: linear is used" in caplog.text
    np.testing.assert_allclose(cubic, interpolate_through_plane(low, axis=2, factor=2, order=1))
    caplog.clear()
    with caplog.at_level("WARNING"):  # the next sample of that size: not said again; another size: said
        interpolate_through_plane(low + 1.0, axis=2, factor=2, order=3)
        assert "cubic" not in caplog.text
        interpolate_through_plane(low[:, :, :2], axis=2, factor=2, order=3)
    assert "got 2: linear is used" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        interpolate_through_plane(np.concatenate([low, low], axis=2), axis=2, factor=2, order=3)
    assert "cubic" not in caplog.text


def test_through_plane_affine_maps_low_res_voxels_onto_their_high_res_slices():
    affine = np.array([[1.0, 0, 0, -10], [0, 1.0, 0, 5], [0, 0, 1.2, 30], [0, 0, 0, 1]])
    low = through_plane_affine(affine, axis=2, factor=4, offset=1)
    for k in range(3):
        np.testing.assert_allclose(low @ [2, 3, k, 1], affine @ [2, 3, 1 + 4 * k, 1])


def test_area_downsample_values_shapes_and_errors():
    image = np.arange(16.0).reshape(4, 4)
    np.testing.assert_allclose(area_downsample(image, 2), [[2.5, 4.5], [10.5, 12.5]])
    stack = np.random.default_rng(2).random((2, 3, 64, 48)).astype(np.float32)
    out = area_downsample(stack, (8, 4))
    assert out.shape == (2, 3, 8, 12) and out.dtype == np.float32
    np.testing.assert_allclose(out, stack.reshape(2, 3, 8, 8, 12, 4).mean(axis=(3, 5)), rtol=1e-5)
    with pytest.raises(ValueError, match="divisible"):
        area_downsample(np.zeros((10, 10)), 4)
    with pytest.raises(ValueError, match="factor"):
        area_downsample(np.zeros((8, 8)), 0)


def test_resize_area_preserves_mean_and_matches_block_average():
    image = np.random.default_rng(3).random((96, 80)).astype(np.float32)
    out = resize_area(image, (64, 64))
    assert out.shape == (64, 64)
    assert out.mean() == pytest.approx(image.mean(), rel=1e-4)
    np.testing.assert_allclose(resize_area(image, (48, 40)), area_downsample(image, 2), rtol=1e-5)
    up = resize_area(np.array([[0.0, 1.0]]), (1, 4))
    np.testing.assert_allclose(up, [[0.0, 0.25, 0.75, 1.0]])
    with pytest.raises(ValueError, match="shape"):
        resize_area(image, (0, 4))


def test_lowres_slice_averages_blocks_on_the_coarse_grid_of_the_same_field_of_view(tmp_path):
    """16x16 -> 4x4: each output is its 4x4 block's mean; the coarse voxel (0, 0) sits at the centre of the fine
    block (fine voxels 0..3: index 1.5), with 4x the spacing."""
    from common.data import lowres_slice

    data = np.arange(256, dtype=np.float32).reshape(16, 16, 1)
    affine = np.diag([0.5, 0.5, 8.0, 1.0])
    affine[:3, 3] = (10.0, -20.0, 3.0)
    path = tmp_path / "LGE.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    lowres, coarse = lowres_slice(str(path), 4)
    assert lowres.shape == (4, 4, 1) and lowres.dtype == np.float32
    assert lowres[0, 0, 0] == pytest.approx(data[:4, :4, 0].mean()) and lowres[3, 2, 0] == pytest.approx(
        data[12:, 8:12, 0].mean()
    )
    np.testing.assert_allclose(coarse @ [0, 0, 0, 1], affine @ [1.5, 1.5, 0, 1])
    np.testing.assert_allclose(np.diag(coarse)[:3], [2.0, 2.0, 8.0])
    with pytest.raises(ValueError, match="LGE.nii.gz.*multiple of 5"):
        lowres_slice(str(path), 5)
