"""Heart-ROI slices for the U-SSL hybrid LGE set (SwinSSegNet paper, section III.A).

"From each slice, the region of interest is cropped and upsampled" (the paper: to 512x512; here any ``size``):
every labelled slice of EMIDEC, ACDC or MS-CMRSeg volumes gives one square crop around the heart labels plus a
margin, resized with area averaging; the heart-centred 2D DTI_LGE_MI LGE images are used whole.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import nibabel as nib
import numpy as np
from common.data.degradation import resize_area

__all__ = ["roi_slices"]


def _scale01(image: np.ndarray) -> np.ndarray:
    low, high = np.percentile(image, (0.5, 99.5))
    if high <= low:
        return np.zeros_like(image, dtype=np.float32)
    return np.clip((image - low) / (high - low), 0.0, 1.0).astype(np.float32)


def _crop(image: np.ndarray, centre: Sequence[float], sides: Sequence[int]) -> np.ndarray:
    """``sides`` crop centred at ``centre`` (voxels), zero-padded where it leaves the image."""
    out = np.zeros(tuple(sides), dtype=np.float32)
    starts = [int(math.floor(c - 0.5 * side + 0.5)) for c, side in zip(centre, sides)]
    src = [slice(max(s, 0), min(s + side, n)) for s, side, n in zip(starts, sides, image.shape)]
    dst = [slice(a.start - s, a.stop - s) for a, s in zip(src, starts)]
    if all(a.stop > a.start for a in src):
        out[dst[0], dst[1]] = image[src[0], src[1]]
    return out


def _load(path: str) -> tuple[np.ndarray, tuple[float, ...]]:
    image = nib.load(path)
    data = np.asanyarray(image.dataobj).astype(np.float32)
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3:
        raise ValueError(f"{path} has shape {data.shape}; roi_slices needs 3D (X, Y, Z) volumes (2D as (X, Y, 1)).")
    return data, tuple(float(z) for z in image.header.get_zooms()[:3])


def roi_slices(
    cases: Sequence[Mapping[str, str]],
    image_key: str = "image",
    label_key: str | None = "label",
    size: int = 64,
    margin_mm: float = 10.0,
    max_slices_per_case: int | None = None,
) -> list[dict]:
    """Square heart-ROI crops of every labelled slice, resized to ``size x size`` and scaled to [0, 1].

    For each case the image volume ``(X, Y, Z)`` is read; each slice ``z`` whose label has foreground (any
    non-zero value: EMIDEC, ACDC and MS-CMRSeg labels all mark the heart) gives the square around the
    foreground's bounding box, enlarged by ``margin_mm`` on each side (using the voxel spacing), zero-padded at the
    image border, resized by area averaging (:func:`~common.data.degradation.resize_area`) and scaled to [0, 1]
    by its 0.5/99.5 percentiles. Without a label (``label_key=None`` or a case lacking it, e.g. DTI_LGE_MI whose
    mask marks only the scar) every slice is used whole: ``roi_slices(dti_lge_mi_cases(root), "lge", None)``.

    Args:
        cases: reader dicts (:mod:`common.data.readers`).
        image_key: key of the image path.
        label_key: key of the label path, or ``None`` for whole slices.
        size: output side (pixels).
        margin_mm: margin added around the heart on each side (mm).
        max_slices_per_case: keep at most this many slices per case, evenly spread (``None``: all).

    Returns:
        ``[{"image": (1, size, size) float32 in [0, 1], "source": "<path>#z=<slice>"}]``, in case then slice order.

    Raises:
        KeyError: a case lacks ``image_key``.
        ValueError: bad ``size``/``margin_mm``/``max_slices_per_case``, a volume is not 3D, or label and image
            shapes differ (both files named).

    Examples::

        >>> slices = roi_slices(emidec_cases("data"), size=64)  # doctest: +SKIP
        >>> slices[0]["image"].shape  # doctest: +SKIP
        (1, 64, 64)
    """
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}.")
    if margin_mm < 0:
        raise ValueError(f"margin_mm must be >= 0, got {margin_mm}.")
    if max_slices_per_case is not None and max_slices_per_case < 1:
        raise ValueError(f"max_slices_per_case must be >= 1 or None, got {max_slices_per_case}.")
    out = []
    for case in cases:
        if image_key not in case:
            raise KeyError(f"case {case.get('case', case)!r} has no key {image_key!r}; keys are {sorted(case)}.")
        path = str(case[image_key])
        image, spacing = _load(path)
        label = None
        if label_key is not None and label_key in case:
            label, _ = _load(str(case[label_key]))
            if label.shape != image.shape:
                raise ValueError(
                    f"label {case[label_key]} has shape {label.shape} but image {path} has shape {image.shape}."
                )
        if label is None:
            indices = list(range(image.shape[2]))
        else:
            indices = [z for z in range(image.shape[2]) if np.any(label[..., z] > 0)]
        if max_slices_per_case is not None and len(indices) > max_slices_per_case:
            picks = np.linspace(0, len(indices) - 1, max_slices_per_case).round().astype(int)
            indices = [indices[i] for i in picks]
        for z in indices:
            plane = image[..., z]
            if label is not None:
                points = np.argwhere(label[..., z] > 0)
                low, high = points.min(0), points.max(0)
                centre = 0.5 * (low + high)
                extent_mm = max((high[a] - low[a] + 1) * spacing[a] for a in range(2)) + 2 * margin_mm
                # a square in mm (so in voxels when the pixels are square), resized to size x size
                sides = [int(math.ceil(extent_mm / spacing[a])) for a in range(2)]
                plane = _crop(plane, centre, sides)
            resized = resize_area(plane, (size, size))
            out.append({"image": _scale01(resized)[None], "source": f"{path}#z={z}"})
    return out
