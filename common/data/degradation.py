"""Resolution degradations: SMORE-style through-plane slice-profile blur and decimation, and in-plane area resampling.

Zhao et al., "SMORE: a self-supervised anti-aliasing and super-resolution algorithm for MRI using deep learning",
IEEE TMI 2021: a thick slice of thickness ``s`` (in high-resolution voxels) is modelled as the high-resolution
volume convolved through-plane with a slice profile whose FWHM is ``s`` voxels. The high-resolution voxel already
has a profile of FWHM 1 voxel, and Gaussian widths add in quadrature, so the extra blur to apply has
FWHM ``sqrt(s**2 - 1)`` voxels, i.e. ``sigma = sqrt(s**2 - 1) / (2 * sqrt(2 * ln 2))``. Decimation by ``s`` then gives
the thick-slice volume. REHRSeg and TransMRSR make their low-/high-resolution pairs this way.

All functions are deterministic (nothing here is random) and accept NumPy arrays; ``slice_profile_blur`` and
``degrade_through_plane`` also accept torch tensors and return the same type.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "fwhm_to_sigma",
    "slice_profile_fwhm",
    "slice_profile_blur",
    "degrade_through_plane",
    "interpolate_through_plane",
    "through_plane_affine",
    "acquire_thick_slices",
    "thick_slice_affine",
    "thin_slice_affine",
    "thick_slice_volume",
    "interpolate_to_thin_slices",
    "area_downsample",
    "resize_area",
    "lowres_slice",
]

logger = logging.getLogger(__name__)

#: (axis, slice count) pairs whose cubic-to-linear fallback was logged (``interpolate_through_plane``)
_SAID_LINEAR_FALLBACKS: set[tuple[int, int]] = set()

_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def fwhm_to_sigma(fwhm: float) -> float:
    """Standard deviation of a Gaussian with full width at half maximum ``fwhm``: ``fwhm / (2 sqrt(2 ln 2))``."""
    return float(fwhm) / _FWHM_PER_SIGMA


def slice_profile_fwhm(thickness_ratio: float) -> float:
    """FWHM in voxels of the Gaussian that turns a 1-voxel slice profile into a ``thickness_ratio``-voxel one.

    ``sqrt(thickness_ratio**2 - 1)`` (SMORE); 0 when ``thickness_ratio == 1``.

    Raises:
        ValueError: ``thickness_ratio`` is below 1.
    """
    if not np.isfinite(thickness_ratio) or thickness_ratio < 1:
        raise ValueError(
            f"thickness_ratio must be >= 1 (slice thickness in high-resolution voxels), got {thickness_ratio}."
        )
    return math.sqrt(float(thickness_ratio) ** 2 - 1.0)


def _to_numpy(volume: Any) -> tuple[np.ndarray, Any]:
    if isinstance(volume, np.ndarray):
        return volume, None
    try:  # torch is optional here: only convert when a tensor is given
        import torch
    except ImportError:  # pragma: no cover - torch is a project dependency
        torch = None
    if torch is not None and isinstance(volume, torch.Tensor):
        return volume.detach().cpu().numpy(), volume
    return np.asarray(volume), None


def _like(result: np.ndarray, reference: Any) -> Any:
    if reference is None:
        return result
    import torch

    return torch.as_tensor(result, dtype=reference.dtype, device=reference.device)


def _check_axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis must index one of the {ndim} dimensions of volume, got axis={axis}.")
    return axis % ndim


def slice_profile_blur(volume: Any, axis: int, thickness_ratio: float, mode: str = "nearest") -> Any:
    """Blur ``volume`` along ``axis`` with the Gaussian slice profile of a ``thickness_ratio``-times thicker slice.

    SMORE (Zhao et al., TMI 2021): FWHM = ``sqrt(thickness_ratio**2 - 1)`` voxels of ``volume`` along ``axis``.

    Args:
        volume: array of any shape, e.g. ``(X, Y, Z)`` or ``(C, X, Y, Z)``; a torch tensor is returned as a tensor.
        axis: the through-plane axis.
        thickness_ratio: slice thickness divided by the current voxel size along ``axis`` (>= 1; 1 leaves the
            volume unchanged).
        mode: boundary handling of ``scipy.ndimage.gaussian_filter1d``.

    Returns:
        The blurred volume, same shape (float32 unless ``volume`` is float64).

    Raises:
        ValueError: ``thickness_ratio`` < 1 or ``axis`` out of range.

    Examples::

        >>> import numpy as np
        >>> slice_profile_blur(np.ones((4, 4, 8)), axis=2, thickness_ratio=4).shape
        (4, 4, 8)
    """
    array, reference = _to_numpy(volume)
    axis = _check_axis(axis, array.ndim)
    fwhm = slice_profile_fwhm(thickness_ratio)
    dtype = np.float64 if array.dtype == np.float64 else np.float32
    array = array.astype(dtype, copy=False)
    if fwhm == 0:
        return _like(array.copy(), reference)
    blurred = ndimage.gaussian_filter1d(array, fwhm_to_sigma(fwhm), axis=axis, mode=mode, truncate=4.0)
    return _like(blurred, reference)


def degrade_through_plane(volume: Any, axis: int, factor: int, offset: int = 0) -> Any:
    """Simulate a thick-slice acquisition: slice-profile blur (FWHM ``sqrt(factor**2-1)``), keep every ``factor``-th.

    Low-resolution slice ``k`` is high-resolution slice ``offset + k * factor``; use :func:`through_plane_affine` for
    its affine and :func:`interpolate_through_plane` to go back to the high-resolution grid.

    Args:
        volume: array ``(..., N, ...)`` with ``N`` slices along ``axis`` (NumPy or torch).
        axis: the through-plane axis.
        factor: integer slice-thickness ratio ``s`` >= 1.
        offset: index of the first kept slice, ``0 <= offset < factor``.

    Returns:
        ``(..., ceil((N - offset) / factor), ...)``, float32 (float64 stays float64).

    Raises:
        ValueError: ``factor`` not a positive integer, ``offset`` outside ``[0, factor)`` or ``axis`` out of range.

    Examples::

        >>> import numpy as np
        >>> degrade_through_plane(np.zeros((8, 8, 32)), axis=2, factor=4).shape
        (8, 8, 8)
    """
    if isinstance(factor, bool) or int(factor) != factor or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor!r}.")
    factor = int(factor)
    if not 0 <= offset < factor:
        raise ValueError(f"offset must be in [0, factor={factor}), got {offset}.")
    array, reference = _to_numpy(volume)
    axis = _check_axis(axis, array.ndim)
    blurred = slice_profile_blur(array, axis, factor)
    index = [slice(None)] * array.ndim
    index[axis] = slice(offset, None, factor)
    return _like(np.ascontiguousarray(blurred[tuple(index)]), reference)


def interpolate_through_plane(
    low_res: np.ndarray, axis: int, factor: int, offset: int = 0, order: int = 3, size: int | None = None
) -> np.ndarray:
    """Interpolate a :func:`degrade_through_plane` output back onto the high-resolution slice grid.

    High-resolution slice ``j`` sits at low-resolution coordinate ``(j - offset) / factor``; coordinates outside the
    low-resolution extent take the nearest end value (no extrapolation).

    Args:
        low_res: ``(..., n, ...)`` array.
        axis: the through-plane axis.
        factor: the slice-thickness ratio used for the degradation.
        offset: the offset used for the degradation.
        order: spline order, 0 (nearest), 1 (linear) or 3 (cubic; needs ``n >= 4``, else linear is used).
        size: number of high-resolution slices (default ``n * factor``).

    Returns:
        ``(..., size, ...)`` float32 (float64 stays float64).

    Examples::

        >>> import numpy as np
        >>> interpolate_through_plane(np.zeros((8, 8, 8)), axis=2, factor=4).shape
        (8, 8, 32)
    """
    if order not in (0, 1, 3):
        raise ValueError(f"order must be 0, 1 or 3, got {order}.")
    if isinstance(factor, bool) or int(factor) != factor or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor!r}.")
    array = np.asarray(low_res)
    axis = _check_axis(axis, array.ndim)
    n = array.shape[axis]
    size = n * int(factor) if size is None else int(size)
    coords = np.clip((np.arange(size) - offset) / float(factor), 0, n - 1)
    dtype = np.float64 if array.dtype == np.float64 else np.float32
    if n == 1 or order == 0:
        return np.take(array, np.rint(coords).astype(int), axis=axis).astype(dtype)
    from scipy import interpolate  # imported here: scipy.interpolate takes ~1 s to import

    k = 3 if (order == 3 and n >= 4) else 1
    if k != order and (axis, n) not in _SAID_LINEAR_FALLBACKS:
        # a cubic spline needs 4 knots: said, so a user asking for cubic knows what ran; once per axis and slice
        # count, so a data set of short stacks does not say it for every sample
        _SAID_LINEAR_FALLBACKS.add((axis, n))
        logger.warning(
            "cubic interpolation needs at least 4 slices along axis %d, got %d: linear is used (said once per slice "
            "count).",
            axis,
            n,
        )
    spline = interpolate.make_interp_spline(np.arange(n), array.astype(np.float64), k=k, axis=axis)
    return spline(coords).astype(dtype)


def through_plane_affine(affine: np.ndarray, axis: int, factor: int, offset: int = 0) -> np.ndarray:
    """Affine of the :func:`degrade_through_plane` output: voxel ``k`` along ``axis`` is input ``offset + k*factor``.

    Args:
        affine: ``(4, 4)`` voxel-to-world matrix of the high-resolution volume (spatial axes 0-2).
        axis: spatial through-plane axis (0, 1 or 2).
        factor: slice-thickness ratio.
        offset: first kept slice.

    Returns:
        ``(4, 4)`` float64 affine.
    """
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be a spatial axis 0, 1 or 2, got {axis}.")
    affine = np.asarray(affine, dtype=np.float64)
    out = affine.copy()
    out[:3, 3] = affine[:3, 3] + affine[:3, axis] * offset
    out[:3, axis] = affine[:3, axis] * factor
    return out


def _check_factor(factor: int) -> int:
    if isinstance(factor, bool) or int(factor) != factor or factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor!r}.")
    return int(factor)


def acquire_thick_slices(volume: Any, axis: int, factor: int) -> Any:
    """Thick slices that tile the high-resolution extent: slice ``k`` covers thin slices ``k*s .. k*s + s - 1``.

    The volume is blurred through-plane by the slice profile (SMORE: FWHM ``sqrt(s**2 - 1)`` thin voxels) and sampled
    at each thick slice's centre, thin index ``k*s + (s - 1)/2`` (linear interpolation between the two middle thin
    slices when ``s`` is even). Unlike :func:`degrade_through_plane` (thick slice ``k`` centred on thin slice
    ``offset + k*s``), the thick grid covers exactly the thin grid's field of view, so super-resolving ``n`` thick
    slices by ``s`` gives back the ``n*s`` thin slices on the truth's own grid (:func:`thin_slice_affine`).

    Args:
        volume: ``(..., N, ...)`` with ``N`` a multiple of ``factor`` along ``axis`` (NumPy or torch).
        axis: the through-plane axis.
        factor: slice-thickness ratio ``s``.

    Returns:
        ``(..., N / s, ...)`` float32 (float64 stays float64), the type of ``volume``.

    Raises:
        ValueError: ``factor`` not a positive integer, or ``N`` not a multiple of it.
    """
    factor = _check_factor(factor)
    array, reference = _to_numpy(volume)
    axis = _check_axis(axis, array.ndim)
    n = array.shape[axis]
    if n % factor:
        raise ValueError(f"{n} slices along axis {axis} are not a multiple of the factor {factor}; crop them first.")
    blurred = slice_profile_blur(array, axis, factor)
    low = np.take(blurred, np.arange((factor - 1) // 2, n, factor), axis=axis)
    if factor % 2 == 0:  # the centre lies halfway between two thin slices
        low = 0.5 * (low + np.take(blurred, np.arange(factor // 2, n, factor), axis=axis))
    return _like(np.ascontiguousarray(low), reference)


def thick_slice_affine(affine: np.ndarray, axis: int, factor: int) -> np.ndarray:
    """Affine of :func:`acquire_thick_slices`' output: ``factor`` x the spacing along ``axis``, same field of view."""
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be a spatial axis 0, 1 or 2, got {axis}.")
    factor = _check_factor(factor)
    affine = np.asarray(affine, dtype=np.float64)
    out = affine.copy()
    out[:3, 3] = affine[:3, 3] + affine[:3, axis] * (factor - 1) / 2.0
    out[:3, axis] = affine[:3, axis] * factor
    return out


def thin_slice_affine(affine: np.ndarray, axis: int, factor: int) -> np.ndarray:
    """Inverse of :func:`thick_slice_affine`: the grid of ``factor`` thin slices per thick slice, same extent.

    Thin slice ``j`` sits at thick coordinate ``(j + 1/2) / s - 1/2``, so the first and last thin slices lie a
    quarter-thick-slice (for ``s = 2``) inside the thick volume's outer faces, which are unchanged.
    """
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be a spatial axis 0, 1 or 2, got {axis}.")
    factor = _check_factor(factor)
    affine = np.asarray(affine, dtype=np.float64)
    out = affine.copy()
    out[:3, axis] = affine[:3, axis] / factor
    out[:3, 3] = affine[:3, 3] - out[:3, axis] * (factor - 1) / 2.0
    return out


def thick_slice_volume(
    volume: np.ndarray, affine: np.ndarray, axis: int, factor: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(thin, thick, thick_affine)``: ``volume`` cropped along ``axis`` to a multiple of ``factor``, its thick slices
    (:func:`acquire_thick_slices`) and their affine; the crop keeps ``affine`` (its first slices are kept)."""
    factor = _check_factor(factor)
    keep = volume.shape[axis] - volume.shape[axis] % factor
    thin = np.take(np.asarray(volume), np.arange(keep), axis=axis)
    return thin, acquire_thick_slices(thin, axis, factor), thick_slice_affine(affine, axis, factor)


def interpolate_to_thin_slices(low_res: Any, axis: int, factor: int, order: int = 3) -> Any:
    """Interpolate thick slices onto :func:`thin_slice_affine`'s grid (``n * factor`` slices, same extent).

    Spline of ``order`` (0, 1 or 3) through the thick slices' centres; thin slices beyond the first or last centre
    take the end value. This is the "interpolated low-resolution input" of TransMRSR and the trilinear/cubic
    baselines.
    """
    factor = _check_factor(factor)
    array, reference = _to_numpy(low_res)
    thin = interpolate_through_plane(array, axis, factor, offset=(factor - 1) / 2.0, order=order)
    return _like(thin, reference)


def area_downsample(image: np.ndarray, factor: int | Sequence[int]) -> np.ndarray:
    """Average non-overlapping ``factor x factor`` blocks of the last two axes (band-limit then decimate).

    The output pixel centre is the centre of its input block, so the field of view is unchanged:
    output pixel ``i`` covers input pixels ``[i*f, (i+1)*f)``.

    Args:
        image: ``(..., H, W)`` array with ``H`` and ``W`` divisible by the factors.
        factor: integer, or ``(fh, fw)``.

    Returns:
        ``(..., H // fh, W // fw)`` float32 (float64 stays float64).

    Raises:
        ValueError: a factor is not a positive integer or does not divide the image size.

    Examples::

        >>> import numpy as np
        >>> area_downsample(np.arange(16.0).reshape(4, 4), 2)
        array([[ 2.5,  4.5],
               [10.5, 12.5]])
    """
    array = np.asarray(image)
    if array.ndim < 2:
        raise ValueError(f"image must have at least 2 dimensions (..., H, W), got shape {array.shape}.")
    factors = (factor, factor) if np.isscalar(factor) else tuple(factor)
    if len(factors) != 2 or any(isinstance(f, bool) or int(f) != f or f < 1 for f in factors):
        raise ValueError(f"factor must be a positive integer or a pair of them, got {factor!r}.")
    fh, fw = (int(f) for f in factors)
    h, w = array.shape[-2:]
    if h % fh or w % fw:
        raise ValueError(f"image size {(h, w)} is not divisible by factor {(fh, fw)}.")
    dtype = np.float64 if array.dtype == np.float64 else np.float32
    array = array.astype(dtype, copy=False)
    # strided sums are much faster than a mean over small interleaved axes
    columns = array[..., 0::fw].copy()
    for j in range(1, fw):
        columns += array[..., j::fw]
    out = columns[..., 0::fh, :].copy()
    for i in range(1, fh):
        out += columns[..., i::fh, :]
    out *= dtype(1.0 / (fh * fw))
    return out


def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` weights: exact area overlap when shrinking, linear (pixel-centre aligned) when enlarging."""
    scale = n_in / n_out
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    if n_out <= n_in:
        for i in range(n_out):
            start, stop = i * scale, (i + 1) * scale
            for j in range(int(math.floor(start)), min(int(math.ceil(stop)), n_in)):
                weights[i, j] = min(stop, j + 1) - max(start, j)
        return weights / scale
    centres = np.clip((np.arange(n_out) + 0.5) * scale - 0.5, 0, n_in - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, n_in - 1)
    frac = centres - low
    weights[np.arange(n_out), low] += 1 - frac
    weights[np.arange(n_out), high] += frac
    return weights


def resize_area(image: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Resize the last two axes to ``shape``: area averaging on shrunk axes, linear interpolation on enlarged ones.

    Like OpenCV's ``INTER_AREA``; the field of view is kept (pixel edges map to pixel edges), any real ratio works.

    Args:
        image: ``(..., H, W)`` array.
        shape: ``(H_out, W_out)``.

    Returns:
        ``(..., H_out, W_out)`` float32.

    Examples::

        >>> import numpy as np
        >>> resize_area(np.ones((100, 75)), (64, 64)).shape
        (64, 64)
    """
    array = np.asarray(image, dtype=np.float32)
    if array.ndim < 2:
        raise ValueError(f"image must have at least 2 dimensions (..., H, W), got shape {array.shape}.")
    if len(shape) != 2 or any(int(s) < 1 for s in shape):
        raise ValueError(f"shape must be two positive sizes (H_out, W_out), got {shape!r}.")
    rows = _resample_matrix(array.shape[-2], int(shape[0])).astype(np.float32)
    cols = _resample_matrix(array.shape[-1], int(shape[1])).astype(np.float32)
    return np.ascontiguousarray(rows @ array @ cols.T)


def lowres_slice(path: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A square ``(X, X, 1)`` NIfTI slice area-downsampled to ``(size, size, 1)`` float32, and the affine of the
    coarse grid whose ``X // size``-fold subdivision is the input's grid (same field of view), so that an
    ``X // size``-times super-resolved prediction lands exactly on the input's grid.

    Raises:
        ValueError: naming the file, when it is not one slice of a square multiple of ``size``.
    """
    import nibabel as nib
    import torch
    from common.transforms import low_resolution_affine  # here: common.transforms imports this module

    image = nib.load(path)
    data = np.asarray(image.dataobj, dtype=np.float32)
    if data.ndim != 3 or data.shape[2] != 1 or data.shape[0] != data.shape[1] or data.shape[0] % size:
        raise ValueError(f"{path}: shape {data.shape} is not one square slice (X, X, 1) with X a multiple of {size}.")
    scale = data.shape[0] // size
    affine = low_resolution_affine(torch.as_tensor(image.affine), scale).numpy()
    return area_downsample(data[..., 0], scale)[..., None], affine
