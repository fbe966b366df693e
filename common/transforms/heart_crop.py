"""Heart-centred in-plane crop of a stack (one box per volume), its inverse, and the per-volume intensity scaling.

Chen, Ouyang et al., "Unsupervised Multi-modal Style Transfer for Cardiac MR Segmentation" (STACOM 2019),
section 3.2, "Image preprocessing": all images are resampled to 1.25 x 1.25 mm, cropped to 192 x 192 pixels with
the heart roughly at the centre (from a localisation U-Net's coarse masks; "in case that this network might fail to
locate the heart on certain LGE slices, we summed the segmentation masks across slices in each volume and then
cropped them according to the center of the aggregated mask"), then "each image was intensity normalized".

Resample first with :class:`common.transforms.ToModelGridd` (``pixdim=(1.25, 1.25)``: in-plane only, the slice
axis, orientation and field of view kept), then :class:`HeartCropd`; :class:`HeartUncropd` puts a prediction made on
the crop back on the resampled grid, and :class:`common.transforms.FromModelGridd` back on the file's grid.
"""

from __future__ import annotations

__all__ = ["heart_centre", "HeartCropd", "HeartUncropd"]

import logging
import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from common.transforms._meta import source_name
from common.transforms.model_grid import SPACING_TOLERANCE, in_plane_spacing
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

logger = logging.getLogger(__name__)

#: padding modes of :class:`HeartCropd`: ``"constant"`` (zeros; the normalised floor for intensity keys) or
#: ``"edge"`` (the nearest border voxel repeated)
PADDING_MODES = ("constant", "edge")


def _crop_key(key: Hashable) -> str:
    return f"{key}_heart_crop"


def _require_volume(d: Mapping, key: Hashable, what: str) -> None:
    value = d[key]
    shape = tuple(getattr(value, "shape", ()))
    if len(shape) != 4:
        raise ValueError(
            f"{source_name(d, key)}: {what} '{key}' must be a channel-first volume (C, H, W, D), got shape {shape}; "
            "add a channel axis (EnsureChannelFirstd) and a slice axis (common.transforms.AsVolumed) first."
        )


def heart_centre(mask: torch.Tensor, threshold: float = 0.0) -> tuple[torch.Tensor, bool]:
    """In-plane centre ``(i, j)`` (voxel indices) of the heart mask summed over the slices of a volume.

    Args:
        mask: ``(C, H, W, D)``. One channel: the heart is where ``mask > threshold`` (a label map with any
            foreground values, e.g. MS-CMRSeg's 200/500/600, or a probability with ``threshold=0.5``). Several
            channels: class scores or one-hot with the background at channel 0; the heart is where the argmax is
            not 0.
        threshold: see ``mask``.

    Returns:
        ``(centre, empty)``: the centre of mass of the summed mask (float64, shape ``(2,)``), or the image centre
        ``((H - 1) / 2, (W - 1) / 2)`` with ``empty=True`` when no slice has any heart voxel.
    """
    if mask.ndim != 4:
        raise ValueError(f"mask must be a channel-first volume (C, H, W, D), got shape {tuple(mask.shape)}.")
    values = mask.as_tensor() if isinstance(mask, MetaTensor) else torch.as_tensor(mask)
    heart = values[0] > threshold if values.shape[0] == 1 else values.argmax(dim=0) != 0
    summed = heart.sum(dim=-1, dtype=torch.float64)  # (H, W): the aggregated mask of the paper
    total = summed.sum()
    height, width = summed.shape
    if total == 0:
        return torch.tensor([(height - 1) / 2.0, (width - 1) / 2.0], dtype=torch.float64), True
    rows = torch.arange(height, dtype=torch.float64)
    cols = torch.arange(width, dtype=torch.float64)
    centre = torch.stack([(summed.sum(dim=1) * rows).sum() / total, (summed.sum(dim=0) * cols).sum() / total])
    return centre, False


class HeartCropd(MapTransform):
    """Crop ``roi_size`` in-plane around the heart (one box per volume) and scale intensities per volume.

    The crop centre is the centre of mass of the heart mask summed over the volume's slices (one box per volume,
    all slices cropped alike). The paper sums the localisation masks "across slices in each volume" and crops
    "according to the center of the aggregated mask", which is one centre per volume; it also smooths the
    cropped segmentation stack with 3D morphology (section 2.3), which needs every slice on one in-plane grid. A
    slice where the localisation network found nothing is therefore cropped like its neighbours; a volume where it
    found nothing at all is cropped around the image centre, with a warning naming the file. Because the box is
    one per volume, the crop is a pure index shift: its affine is the input's affine shifted by the crop origin,
    ``A_crop = A @ T(i0, j0)``, so oblique and sheared headers are kept and voxel ``(i, j, k)`` of the crop is voxel
    ``(i + i0, j + j0, k)`` of the input at the same world position. Where the box extends past the image the
    crop is padded (``padding_mode``); a crop larger than the image is a pad.

    The box is recorded in ``data["<key>_heart_crop"]`` for every cropped key: ``origin`` ``(i0, j0)`` (may be
    negative), ``roi_size``, ``centre`` (the mask centre, in input voxels), ``empty`` (no heart found), and the
    input's ``affine`` and spatial ``shape`` ``(H, W, D)``, for :class:`HeartUncropd`.

    Intensity normalisation: the paper only says "each image was intensity normalized". Here each volume of
    ``intensity_keys`` is scaled linearly from its ``percentiles`` (default 1st and 99th, computed over the voxels of
    the crop that lie inside the image) to ``intensity_range`` and clipped: per volume ("image" in the paper is a
    volume: "30 annotated bSSFP images"), after cropping (the paper's order, so the statistics are those of the
    heart region the networks see), percentiles rather than min-max (robust to single bright voxels, bright fat and
    scar) and bounded rather than a z-score (MUNIT's decoder ends in Tanh: use ``intensity_range=(-1, 1)`` there).
    Padded voxels of intensity keys are ``intensity_range[0]`` (the normalised floor) with ``"constant"`` padding.

    Args:
        keys: channel-first volumes ``(C, H, W, D)`` on one grid (image, label, mask), all cropped with one box.
        mask_key: the heart mask (a localisation prediction or a label; see :func:`heart_centre`), on the grid
            of ``keys``; it is cropped too only if it is one of ``keys``.
        roi_size: in-plane crop size ``(h, w)`` in voxels (paper: 192 x 192).
        pixdim: the in-plane spacing (mm) the input must already have (paper: 1.25 mm; resample with
            ``ToModelGridd`` first, which keeps the field of view with a whole number ``n`` of voxels, so a spacing
            within ``pixdim / (2 n)`` (+0.1 %) is accepted); ``None`` skips the check.
        mask_threshold: heart = ``mask > mask_threshold`` for a one-channel mask.
        padding_mode: one of :data:`PADDING_MODES`.
        intensity_keys: the keys (a subset of ``keys``) whose intensities are scaled; empty for none.
        percentiles: lower and upper percentile (0-100) mapped to ``intensity_range``.
        intensity_range: output range ``(b_min, b_max)``.

    Shapes:
        ``(C, H, W, D) -> (C, h, w, D)``; labels keep their dtype, intensity keys become float32 in
        ``intensity_range``.

    Raises:
        ValueError: bad arguments (named); a key that is not ``(C, H, W, D)``; a mask on another grid; an in-plane
            spacing that is not ``pixdim``.
        KeyError: ``mask_key`` missing.

    Examples::

        >>> crop = HeartCropd(["image", "label"], mask_key="label", roi_size=(192, 192), intensity_keys="image")
    """

    def __init__(
        self,
        keys: KeysCollection,
        mask_key: str = "label",
        roi_size: Sequence[int] = (192, 192),
        pixdim: Sequence[float] | None = (1.25, 1.25),
        mask_threshold: float = 0.0,
        padding_mode: str = "constant",
        intensity_keys: KeysCollection = (),
        percentiles: Sequence[float] = (1.0, 99.0),
        intensity_range: Sequence[float] = (0.0, 1.0),
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        roi_size = [int(s) for s in roi_size]
        if len(roi_size) != 2 or min(roi_size) < 1:
            raise ValueError(f"roi_size must be two positive in-plane sizes (voxels), got {roi_size}.")
        if pixdim is not None and (len(pixdim) != 2 or min(pixdim) <= 0):
            raise ValueError(f"pixdim must be two positive in-plane spacings (mm) or None, got {pixdim}.")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}.")
        intensity_keys = [intensity_keys] if isinstance(intensity_keys, str) else list(intensity_keys)
        if not set(intensity_keys) <= set(self.keys):
            raise ValueError(f"intensity_keys {intensity_keys} must be among keys {list(self.keys)}.")
        lower, upper = (float(p) for p in percentiles)
        if not 0.0 <= lower < upper <= 100.0:
            raise ValueError(f"percentiles must be (lower, upper) with 0 <= lower < upper <= 100, got {percentiles}.")
        b_min, b_max = (float(b) for b in intensity_range)
        if not b_min < b_max:
            raise ValueError(f"intensity_range must be (b_min, b_max) with b_min < b_max, got {intensity_range}.")
        self.mask_key = mask_key
        self.roi_size = roi_size
        self.pixdim = None if pixdim is None else [float(p) for p in pixdim]
        self.mask_threshold = float(mask_threshold)
        self.padding_mode = padding_mode
        self.intensity_keys = intensity_keys
        self.percentiles = (lower, upper)
        self.intensity_range = (b_min, b_max)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        if self.mask_key not in d:
            raise KeyError(f"{self.mask_key} is missing: HeartCropd needs the heart mask (mask_key) of the volume.")
        _require_volume(d, self.mask_key, "mask")
        mask = d[self.mask_key]
        mask_shape = tuple(mask.shape[1:])
        keys = list(self.key_iterator(d))
        for key in keys:
            _require_volume(d, key, "input")
            self._check_grid(d, key, mask)
        centre, empty = heart_centre(mask, self.mask_threshold)
        if empty:
            logger.warning(
                "%s: the heart mask '%s' is empty on every slice; cropping around the image centre.",
                source_name(d, keys[0] if keys else self.mask_key),
                self.mask_key,
            )
        origin = [math.floor(c - (n - 1) / 2.0 + 0.5) for c, n in zip(centre.tolist(), self.roi_size)]
        for key in keys:
            image = d[key]
            affine = self._affine(image)
            d[_crop_key(key)] = {
                "origin": torch.tensor(origin, dtype=torch.int64),
                "roi_size": torch.tensor(self.roi_size, dtype=torch.int64),
                "centre": centre.clone(),
                "empty": torch.tensor(empty),
                "affine": affine.clone(),
                "shape": torch.tensor(mask_shape, dtype=torch.int64),
            }
            d[key] = self._crop(image, origin, affine, normalise=key in self.intensity_keys)
        return d

    def _check_grid(self, d: dict, key: Hashable, mask: torch.Tensor) -> None:
        image = d[key]
        if tuple(image.shape[1:]) != tuple(mask.shape[1:]):
            raise ValueError(
                f"{source_name(d, key)}: '{key}' has spatial shape {tuple(image.shape[1:])} but the heart mask "
                f"'{self.mask_key}' ({source_name(d, self.mask_key)}) has {tuple(mask.shape[1:])}; both must be on "
                "one grid (resample the mask onto the image first)."
            )
        affine = self._affine(image)
        if isinstance(mask, MetaTensor) and isinstance(image, MetaTensor):
            if not torch.allclose(affine, self._affine(mask), atol=1e-3):
                raise ValueError(
                    f"{source_name(d, key)}: '{key}' and the heart mask '{self.mask_key}' have different affines; "
                    "both must be on one grid (resample the mask onto the image first)."
                )
        if self.pixdim is not None and isinstance(image, MetaTensor):
            spacing = in_plane_spacing(affine)
            # ToModelGridd keeps the field of view with a whole number n of voxels: |s - p| <= p / (2 n)
            tolerance = [p * (0.5 / n + SPACING_TOLERANCE) for p, n in zip(self.pixdim, image.shape[1:3])]
            if any(abs(s - p) > t for s, p, t in zip(spacing, self.pixdim, tolerance)):
                raise ValueError(
                    f"{source_name(d, key)}: in-plane spacing {[round(s, 4) for s in spacing]} mm, expected pixdim "
                    f"{self.pixdim}; resample first (common.transforms.ToModelGridd(pixdim={self.pixdim}))."
                )

    @staticmethod
    def _affine(image: torch.Tensor) -> torch.Tensor:
        if isinstance(image, MetaTensor):
            return torch.as_tensor(image.affine, dtype=torch.float64).clone()
        return torch.eye(4, dtype=torch.float64)

    def _crop(self, image: torch.Tensor, origin: list[int], affine: torch.Tensor, normalise: bool) -> torch.Tensor:
        values = image.as_tensor() if isinstance(image, MetaTensor) else torch.as_tensor(image)
        height, width = values.shape[1:3]
        rows = torch.arange(origin[0], origin[0] + self.roi_size[0])
        cols = torch.arange(origin[1], origin[1] + self.roi_size[1])
        inside_rows = (rows >= 0) & (rows < height)
        inside_cols = (cols >= 0) & (cols < width)
        out = values[:, rows.clamp(0, height - 1)][:, :, cols.clamp(0, width - 1)]  # edge padding for free
        inside = inside_rows[:, None] & inside_cols[None, :]  # (h, w)
        if normalise:
            out = self._scale_intensity(out.to(torch.float32), inside)
        if self.padding_mode == "constant":
            fill = self.intensity_range[0] if normalise else 0
            out = torch.where(inside[None, :, :, None], out, torch.as_tensor(fill, dtype=out.dtype))
        if not isinstance(image, MetaTensor):
            return out
        shift = torch.eye(4, dtype=torch.float64)
        shift[0, 3], shift[1, 3] = float(origin[0]), float(origin[1])
        cropped = MetaTensor(out.contiguous(), meta=image.meta, applied_operations=image.applied_operations)
        cropped.affine = (affine @ shift).to(torch.as_tensor(image.affine).dtype)
        return cropped

    def _scale_intensity(self, values: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        valid = values[:, inside]  # (C, n_inside, D): the crop's voxels that lie inside the image
        b_min, b_max = self.intensity_range
        if valid.numel() == 0:
            return torch.full_like(values, b_min)
        flat = valid.reshape(-1).to(torch.float64).cpu().numpy()  # numpy: torch.quantile stops at 2**24 values
        low, high = (float(v) for v in np.percentile(flat, self.percentiles))
        if high <= low:  # a constant volume: everything at the floor
            return torch.full_like(values, b_min)
        scaled = (values.to(torch.float64) - low) / (high - low) * (b_max - b_min) + b_min
        return scaled.clamp(b_min, b_max).to(torch.float32)


class HeartUncropd(MapTransform):
    """Paste a prediction made on a :class:`HeartCropd` crop into a ``fill`` volume on the uncropped grid.

    The box and the input grid come from ``data["<reference_key>_heart_crop"]``; the output has the input's
    spatial shape ``(H, W, D)``, the prediction's channels and dtype, and the input's affine. Voxels of the crop
    that were padding are dropped; voxels outside the crop are ``fill`` (0: background for labels, zero
    probability for every class, so an argmax gives channel 0).

    Args:
        keys: predictions ``(C', h, w, D)`` on the crop grid.
        reference_key: the key whose crop record gives the box (an image key given to :class:`HeartCropd`).
        fill: value outside the crop.

    Raises:
        KeyError: the crop record is missing.
        ValueError: a prediction that is not ``(C', h, w, D)`` for the recorded ``roi_size`` and slice count.
    """

    def __init__(
        self, keys: KeysCollection, reference_key: str = "image", fill: float = 0.0, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.reference_key = reference_key
        self.fill = fill

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        record = d.get(_crop_key(self.reference_key))
        if record is None:
            raise KeyError(f"{_crop_key(self.reference_key)} is missing: put HeartCropd in the preprocessing.")
        origin = [int(v) for v in torch.as_tensor(record["origin"]).reshape(-1)]
        roi_size = [int(v) for v in torch.as_tensor(record["roi_size"]).reshape(-1)]
        shape = [int(v) for v in torch.as_tensor(record["shape"]).reshape(-1)]
        affine = torch.as_tensor(record["affine"], dtype=torch.float64).reshape(4, 4)
        for key in self.key_iterator(d):
            pred = d[key]
            expected = (roi_size[0], roi_size[1], shape[2])
            if pred.ndim != 4 or tuple(pred.shape[1:]) != expected:
                raise ValueError(
                    f"{source_name(d, key)}: prediction '{key}' has shape {tuple(pred.shape)}, expected (C, "
                    f"{expected[0]}, {expected[1]}, {expected[2]}) on the heart crop of '{self.reference_key}'."
                )
            values = pred.as_tensor() if isinstance(pred, MetaTensor) else torch.as_tensor(pred)
            out = torch.full((values.shape[0], *shape), self.fill, dtype=values.dtype, device=values.device)
            # intersection of the box [origin, origin + roi) with the image [0, shape), per in-plane axis
            src, dst = [], []
            for axis in range(2):
                start, stop = max(origin[axis], 0), min(origin[axis] + roi_size[axis], shape[axis])
                if stop <= start:
                    break
                dst.append(slice(start, stop))
                src.append(slice(start - origin[axis], stop - origin[axis]))
            if len(dst) == 2:
                out[:, dst[0], dst[1]] = values[:, src[0], src[1]]
            meta = pred.meta if isinstance(pred, MetaTensor) else {}
            restored = MetaTensor(out, meta=meta)
            restored.affine = affine.to(torch.as_tensor(restored.affine).dtype)
            restored.meta["spatial_shape"] = torch.as_tensor(shape)
            d[key] = restored
        return d
