"""Average symmetric surface distance (ASD) and 95th-percentile Hausdorff distance (HD95) in millimetres."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from common.metrics._utils import as_bool_mask, as_spacing, check_same_shape
from scipy import ndimage

__all__ = ["surface_distances"]


def _border(mask: np.ndarray) -> np.ndarray:
    """Foreground elements with at least one face-connected background neighbour (image edges count as background)."""
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    eroded = ndimage.binary_erosion(mask, structure=structure, border_value=0)
    return np.logical_and(mask, np.logical_not(eroded))


def surface_distances(pred: Any, target: Any, spacing: float | Sequence[float] | None = None) -> dict[str, float]:
    """ASD and HD95 between the surfaces of two binary masks, in the physical unit of ``spacing`` (mm).

    Heimann, T. et al. "Comparison and evaluation of methods for liver segmentation from CT datasets."
    IEEE TMI 28(8), 2009 (the ASD/HD definitions used by the segmentation challenges).

    The surface of a mask is its foreground elements with a face-connected background neighbour (the image
    edge counts as background). Each surface point's distance to the other surface is read from a Euclidean
    distance transform with per-axis ``sampling=spacing`` (``scipy.ndimage.distance_transform_edt``), so
    anisotropic voxels are measured in mm. With ``d(P->T)`` the distances of the pred surface points to the
    target surface and ``d(T->P)`` the reverse (same conventions as MONAI's metrics, so values agree):

    - ``asd`` = mean of the concatenation of ``d(P->T)`` and ``d(T->P)``
      (``SurfaceDistanceMetric(symmetric=True)``);
    - ``hd95`` = ``max(percentile95(d(P->T)), percentile95(d(T->P)))``
      (``HausdorffDistanceMetric(percentile=95)``).

    Empty rule: when ``pred`` or ``target`` (or both) has no foreground, the distances are undefined and both
    values are ``nan`` (aggregate with ``np.nanmean`` and report the number of empty cases separately).

    Args:
        pred: predicted binary mask (nonzero = foreground), numpy array or torch tensor, shape ``(H, W)`` or
            ``(H, W, D)`` (no batch or channel axis).
        target: reference binary mask of the same shape.
        spacing: element size along each axis, in the order of the array axes (e.g. ``(0.3125, 0.3125)`` or
            the NIfTI ``pixdim[1:4]``); a scalar means isotropic, ``None`` means 1.0 (distances in voxels).

    Returns:
        ``{"asd": float, "hd95": float}``.

    Raises:
        ValueError: naming ``pred``/``target`` for a shape mismatch or a dimension other than 2 or 3, and
            ``spacing`` for a wrong length or a non-positive entry.

    Examples::

        >>> a = np.zeros((16, 16)); a[4, 2:12] = 1
        >>> b = np.roll(a, 3, axis=0)
        >>> surface_distances(b, a, spacing=(2.0, 0.5))
        {'asd': 6.0, 'hd95': 6.0}
    """
    pred_np = as_bool_mask(pred, "pred")
    target_np = as_bool_mask(target, "target")
    check_same_shape(pred_np, target_np, "pred", "target")
    if pred_np.ndim not in (2, 3):
        raise ValueError(f"`pred` and `target` must be 2D or 3D masks, got shape {pred_np.shape}.")
    sampling = as_spacing(spacing, pred_np.ndim)

    if not pred_np.any() or not target_np.any():
        return {"asd": float("nan"), "hd95": float("nan")}

    pred_border = _border(pred_np)
    target_border = _border(target_np)
    # distance of every element to the nearest border element of the other mask
    dist_to_target = ndimage.distance_transform_edt(np.logical_not(target_border), sampling=sampling)
    dist_to_pred = ndimage.distance_transform_edt(np.logical_not(pred_border), sampling=sampling)
    d_pred_to_target = dist_to_target[pred_border]
    d_target_to_pred = dist_to_pred[target_border]

    asd = float(np.concatenate([d_pred_to_target, d_target_to_pred]).mean())
    hd95 = float(max(np.percentile(d_pred_to_target, 95), np.percentile(d_target_to_pred, 95)))
    return {"asd": asd, "hd95": hd95}
