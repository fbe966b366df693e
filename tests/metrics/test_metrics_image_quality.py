"""Masked PSNR/SSIM/NRMSE on known inputs (numpy and torch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from common.metrics import masked_nrmse, masked_psnr, masked_ssim
from skimage.metrics import normalized_root_mse, structural_similarity


def _images(shape=(32, 32), seed=0):
    rng = np.random.default_rng(seed)
    target = rng.random(shape)
    pred = np.clip(target + 0.05 * rng.standard_normal(shape), 0, 1)
    return pred, target


@pytest.mark.parametrize("to_input", [np.asarray, torch.as_tensor])
def test_psnr_of_known_mse(to_input):
    target = np.zeros((8, 8))
    pred = np.full((8, 8), 0.1)  # MSE 0.01 -> 10 log10(1 / 0.01) = 20 dB
    assert masked_psnr(to_input(pred), to_input(target), data_range=1.0) == pytest.approx(20.0)
    assert masked_psnr(pred, target, data_range=2.0) == pytest.approx(20.0 + 20 * np.log10(2))
    assert masked_psnr(target, target, data_range=1.0) == float("inf")


def test_psnr_mask_restricts_the_region():
    target = np.zeros((8, 8))
    pred = target.copy()
    pred[:, 4:] = 0.5  # error only in the right half
    mask = np.zeros((8, 8), dtype=bool)
    mask[:, :4] = True
    assert masked_psnr(pred, target, mask=mask, data_range=1.0) == float("inf")
    mask[:, :2] = False
    mask[:, 4:6] = True  # columns 2-5: half of the masked elements carry squared error 0.25 -> MSE 0.125
    assert masked_psnr(pred, target, mask=mask, data_range=1.0) == pytest.approx(10 * np.log10(1 / 0.125))


def test_psnr_default_data_range_is_target_range_inside_mask():
    target = np.linspace(0, 4, 16).reshape(4, 4)
    pred = target + 0.1
    assert masked_psnr(pred, target) == pytest.approx(10 * np.log10(16 / 0.01))


@pytest.mark.parametrize("shape", [(32, 32), (16, 16, 12)])
def test_ssim_identical_is_one(shape):
    _, target = _images(shape)
    assert masked_ssim(torch.as_tensor(target), torch.as_tensor(target), data_range=1.0) == pytest.approx(1.0)


def test_ssim_without_mask_matches_skimage_map_mean():
    pred, target = _images()
    kwargs = dict(data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True)
    expected = structural_similarity(target, pred, **kwargs)[1].mean()
    assert masked_ssim(pred, target, data_range=1.0) == pytest.approx(expected)


def test_ssim_mask_averages_the_full_image_map():
    pred, target = _images()
    pred[:, 16:] = np.random.default_rng(1).random((32, 16))  # destroy the right half
    mask = np.zeros((32, 32), dtype=bool)
    mask[:, :8] = True  # far from the damage: the map is ~ the undamaged one
    left = masked_ssim(pred, target, mask=mask, data_range=1.0)
    whole = masked_ssim(pred, target, data_range=1.0)
    right = masked_ssim(pred, target, mask=~mask & (np.arange(32) >= 16)[None, :], data_range=1.0)
    assert right < whole < left
    # the map is computed on the full image: masking equals cropping the full map, not SSIM of the crop
    full_map = structural_similarity(
        target, pred, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True
    )[1]
    assert left == pytest.approx(full_map[:, :8].mean())


def test_ssim_slice_axis_computes_2d_maps():
    pred, target = _images((16, 16, 3))
    per_slice = [
        structural_similarity(
            target[..., k],
            pred[..., k],
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            full=True,
        )[1].mean()
        for k in range(3)
    ]
    assert masked_ssim(pred, target, data_range=1.0, slice_axis=-1) == pytest.approx(np.mean(per_slice))


def test_nrmse_known_values_and_mask():
    assert masked_nrmse(np.array([1.0, 1.0]), np.array([1.0, 2.0])) == pytest.approx(1 / np.sqrt(5))
    pred, target = _images()
    assert masked_nrmse(pred, target) == pytest.approx(normalized_root_mse(target, pred))
    mask = np.zeros_like(target, dtype=bool)
    mask[:10] = True
    assert masked_nrmse(pred, target, mask=mask, normalization="min-max") == pytest.approx(
        normalized_root_mse(target[:10], pred[:10], normalization="min-max")
    )
    same = target.copy()
    same[mask] = pred[mask]
    assert masked_nrmse(same, target, mask=~mask) == 0.0


def test_errors_name_the_argument():
    image = np.ones((8, 8))
    with pytest.raises(ValueError, match="`mask`"):
        masked_psnr(image, image, mask=np.zeros((8, 8)), data_range=1.0)
    with pytest.raises(ValueError, match="`mask` and `target`"):
        masked_ssim(image, image, mask=np.ones((4, 4)), data_range=1.0)
    with pytest.raises(ValueError, match="`data_range`"):
        masked_psnr(image * 0.5, image)  # constant target, no data_range
    with pytest.raises(ValueError, match="`data_range`"):
        masked_psnr(image, image, data_range=-1.0)
    with pytest.raises(ValueError, match="`normalization`"):
        masked_nrmse(image, image, normalization="max")
    with pytest.raises(ValueError, match="`slice_axis`"):
        masked_ssim(image, image + 0.1, data_range=1.0, slice_axis=0)
