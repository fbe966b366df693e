"""Image-quality metrics restricted to a mask: PSNR, SSIM and NRMSE."""

from __future__ import annotations

from typing import Any

import numpy as np
from common.metrics._utils import as_bool_mask, check_same_shape, to_numpy
from skimage.metrics import structural_similarity

__all__ = ["masked_psnr", "masked_ssim", "masked_nrmse"]

_NRMSE_NORMALIZATIONS = ("euclidean", "min-max", "mean")


def _prepare(pred: Any, target: Any, mask: Any | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred_np = to_numpy(pred, "pred").astype(np.float64)
    target_np = to_numpy(target, "target").astype(np.float64)
    check_same_shape(pred_np, target_np, "pred", "target")
    if mask is None:
        mask_np = np.ones(target_np.shape, dtype=bool)
    else:
        mask_np = as_bool_mask(mask, "mask")
        check_same_shape(mask_np, target_np, "mask", "target")
    if not mask_np.any():
        raise ValueError("`mask` is empty: there is no element to compute the metric on.")
    return pred_np, target_np, mask_np


def _data_range(target: np.ndarray, mask: np.ndarray, data_range: float | None) -> float:
    if data_range is None:
        values = target[mask]
        data_range = float(values.max() - values.min())
        if data_range <= 0:
            raise ValueError("`data_range` is None and `target` is constant inside `mask`: give `data_range`.")
    elif not np.isfinite(data_range) or data_range <= 0:
        raise ValueError(f"`data_range` must be finite and positive, got {data_range}.")
    return float(data_range)


def masked_psnr(pred: Any, target: Any, mask: Any | None = None, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio ``10 log10(R^2 / MSE)`` with the MSE taken inside ``mask``.

    Masking keeps padding and air from inflating the score (a PSNR over zero padding is a common error in SR
    papers). ``R`` is ``data_range``; when ``None`` it is ``max - min`` of ``target`` inside ``mask``.

    Args:
        pred: reconstructed image, numpy array or torch tensor, any shape.
        target: reference image, same shape.
        mask: region to evaluate (nonzero = inside), same shape; ``None`` means the whole image.
        data_range: the value range ``R`` of the images (e.g. 1.0 for [0, 1], 2.0 for [-1, 1]).

    Returns:
        PSNR in dB (``inf`` when the images are identical inside the mask).

    Raises:
        ValueError: naming ``pred``/``target``/``mask`` for shape mismatches or an empty mask, and
            ``data_range`` when it is not positive or cannot be derived.

    Examples::

        >>> masked_psnr(np.full((4, 4), 0.1), np.zeros((4, 4)), data_range=1.0)  # MSE 0.01 -> 20 dB
        20.0
    """
    pred_np, target_np, mask_np = _prepare(pred, target, mask)
    value_range = _data_range(target_np, mask_np, data_range)
    mse = float(np.mean((pred_np[mask_np] - target_np[mask_np]) ** 2))
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(value_range**2 / mse))


def masked_ssim(
    pred: Any, target: Any, mask: Any | None = None, data_range: float | None = None, slice_axis: int | None = None
) -> float:
    """Structural similarity, computed as a map on the full image and averaged inside ``mask``.

    Wang, Z. et al. "Image quality assessment: from error visibility to structural similarity." IEEE TIP 13(4),
    2004: Gaussian window ``sigma = 1.5`` (11 taps), ``K1 = 0.01``, ``K2 = 0.03``, population covariance
    (``skimage.metrics.structural_similarity`` with ``gaussian_weights=True, use_sample_covariance=False``).
    The map is computed on the whole image, so windows near the mask edge still see their true neighbourhood;
    only the averaging is restricted to the mask.

    Args:
        pred: reconstructed image, numpy array or torch tensor, 2D ``(H, W)`` or 3D ``(H, W, D)``; each axis the
            window runs along must have at least 7 elements.
        target: reference image, same shape.
        mask: region to average over (nonzero = inside), same shape; ``None`` means the whole image.
        data_range: the value range of the images; when ``None``, ``max - min`` of ``target`` inside ``mask``.
        slice_axis: for a 3D input, compute a 2D SSIM map per slice along this axis (thick-slice MRI, where
            a 3D window would mix distant slices); ``None`` uses a 2D or 3D window matching the input.

    Returns:
        Mean SSIM inside the mask (1.0 for identical images).

    Raises:
        ValueError: naming ``pred``/``target``/``mask``/``data_range``/``slice_axis`` for invalid inputs.

    Examples::

        >>> image = np.random.default_rng(0).random((32, 32))
        >>> masked_ssim(image, image, data_range=1.0)
        1.0
    """
    pred_np, target_np, mask_np = _prepare(pred, target, mask)
    if pred_np.ndim not in (2, 3):
        raise ValueError(f"`pred` and `target` must be 2D or 3D images, got shape {pred_np.shape}.")
    value_range = _data_range(target_np, mask_np, data_range)
    kwargs = dict(data_range=value_range, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, full=True)

    if slice_axis is None:
        ssim_map = structural_similarity(target_np, pred_np, **kwargs)[1]
    else:
        if pred_np.ndim != 3 or not -3 <= slice_axis < 3:
            raise ValueError(f"`slice_axis` needs a 3D input and an axis in [-3, 2], got {slice_axis}.")
        moved_target = np.moveaxis(target_np, slice_axis, 0)
        moved_pred = np.moveaxis(pred_np, slice_axis, 0)
        maps = [structural_similarity(t, p, **kwargs)[1] for t, p in zip(moved_target, moved_pred)]
        ssim_map = np.moveaxis(np.stack(maps), 0, slice_axis)
    return float(ssim_map[mask_np].mean())


def masked_nrmse(pred: Any, target: Any, mask: Any | None = None, normalization: str = "euclidean") -> float:
    """Normalised root-mean-square error inside ``mask``.

    With ``e = pred - target`` and ``t = target`` restricted to the mask (the definitions of
    ``skimage.metrics.normalized_root_mse``):

    - ``"euclidean"`` (default): ``||e||_2 / ||t||_2``;
    - ``"min-max"``: ``RMSE / (max(t) - min(t))``;
    - ``"mean"``: ``RMSE / mean(t)``.

    Args:
        pred: reconstructed image, numpy array or torch tensor, any shape.
        target: reference image, same shape.
        mask: region to evaluate (nonzero = inside), same shape; ``None`` means the whole image.
        normalization: one of ``"euclidean"``, ``"min-max"``, ``"mean"``.

    Returns:
        NRMSE (0.0 for identical images).

    Raises:
        ValueError: naming ``normalization`` for an unknown option or a zero denominator, and
            ``pred``/``target``/``mask`` for invalid inputs.

    Examples::

        >>> masked_nrmse(np.array([1.0, 1.0]), np.array([1.0, 2.0]))  # 1 / sqrt(5)
        0.4472135954999579
    """
    if normalization not in _NRMSE_NORMALIZATIONS:
        raise ValueError(f"`normalization` must be one of {_NRMSE_NORMALIZATIONS}, got {normalization!r}.")
    pred_np, target_np, mask_np = _prepare(pred, target, mask)
    t = target_np[mask_np]
    e = pred_np[mask_np] - t
    rmse = float(np.sqrt(np.mean(e**2)))
    if normalization == "euclidean":
        denominator = float(np.sqrt(np.mean(t**2)))
    elif normalization == "min-max":
        denominator = float(t.max() - t.min())
    else:
        denominator = float(t.mean())
    if denominator == 0:
        raise ValueError(f"`normalization={normalization!r}` gives a zero denominator for this `target` and `mask`.")
    return rmse / denominator
