"""Through-plane super-resolution geometry: thick-slice training pairs and the thin-slice grid of a thick volume.

Both use :func:`common.data.degradation.acquire_thick_slices`' model (SMORE slice profile, thick slices tiling the
thin grid), so a network trained on simulated pairs sees at inference the same interpolated input on the same grid:
``n`` thick slices become ``n * s`` thin slices over the same field of view (:func:`thin_slice_affine`).
"""

from __future__ import annotations

from typing import Hashable, Mapping

import numpy as np
import torch
from common.data.degradation import acquire_thick_slices, interpolate_to_thin_slices, thin_slice_affine
from common.data.validation import slice_axis_of
from common.transforms._meta import affine_of, source_name
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

__all__ = [
    "SimulateThickSlicesd",
    "CheckThickSlicesd",
    "ThinSliceGridd",
    "ThinSliceAffined",
    "ScaleByPercentiled",
    "positive_percentile",
    "SlicesLastd",
    "slices_last_order",
    "recorded_axis_key",
    "voxel_spacing",
]


#: ``axis="auto"`` transforms record each file's through-plane axis under ``<key>`` + this suffix
AXIS_SUFFIX = "_through_plane_axis"


def recorded_axis_key(key: str) -> str:
    """The data key under which ``axis="auto"`` transforms record ``key``'s through-plane axis. A data list may set it
    itself (e.g. from the thick-slice file a thin pseudo-HR image was made from), and :class:`SlicesLastd` uses it."""
    return f"{key}{AXIS_SUFFIX}"


def require_planes_across_slices(slice_axis: int, through_plane_axis: int = 2) -> int:
    """The axis a 2D network's planes are taken along (``SliceInferer``'s ``spatial_dim``), which must not be the
    through-plane axis: those planes would not cross the thick slices, and the network would sharpen an in-plane
    axis without an error.

    Raises:
        ValueError: ``slice_axis`` is the through-plane axis or not a spatial axis (0, 1, 2).
    """
    if int(slice_axis) not in (0, 1, 2) or int(slice_axis) == int(through_plane_axis):
        others = [a for a in (0, 1, 2) if a != int(through_plane_axis)]
        raise ValueError(
            f"slice_axis {slice_axis}: the network's planes must cross the thick slices (through_plane_axis "
            f"{through_plane_axis}); take them along axis {others[0]} or {others[1]}."
        )
    return int(slice_axis)


def voxel_spacing(affine: torch.Tensor | np.ndarray) -> np.ndarray:
    """Voxel sizes (mm) of the three spatial axes of a 4x4 affine (column norms)."""
    return np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)


def _as_meta(array: np.ndarray, like: torch.Tensor, affine: np.ndarray) -> MetaTensor:
    meta = dict(getattr(like, "meta", {}) or {})
    meta["affine"] = torch.as_tensor(affine, dtype=torch.float64)
    return MetaTensor(torch.as_tensor(array, dtype=torch.float32), meta=meta)


def _require_volume(d: Mapping, key: Hashable) -> torch.Tensor:
    image = d[key]
    if image.ndim != 4:
        raise ValueError(
            f"{source_name(d, key)}: expected a channel-first 3D volume (C, X, Y, Z), got shape "
            f"{tuple(image.shape)}; through-plane super-resolution needs a stack of slices, not a 2D image."
        )
    return image


class SimulateThickSlicesd(MapTransform):
    """Training pair from a thin-slice volume: ``output_key`` = its thick slices interpolated back to its grid.

    The thin volume under ``keys`` is first cropped along ``axis`` to a multiple of ``factor`` (the last slices
    dropped), so that the thick slices tile it; the output is the network's input (TransMRSR's "interpolated LR
    image") and the cropped thin volume its target, both on the same grid and affine.

    Args:
        keys: the thin-slice (target) key, channel-first ``(C, X, Y, Z)``.
        factor: slice-thickness ratio ``s`` (4 and 8 in the TransMRSR paper).
        axis: spatial through-plane axis (0, 1 or 2; the IXI T1 acquisitions' z is 2).
        output_key: key of the interpolated thick-slice input.
        order: interpolation spline order (3 cubic, 1 linear, 0 nearest).
    """

    def __init__(
        self, keys: KeysCollection, factor: int, axis: int = 2, output_key: str = "lr", order: int = 3
    ) -> None:
        super().__init__(keys)
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be a spatial axis 0, 1 or 2, got {axis}.")
        self.factor, self.axis, self.output_key, self.order = int(factor), int(axis), output_key, int(order)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = _require_volume(d, key)
            n = image.shape[self.axis + 1]
            keep = n - n % self.factor
            if keep < 2 * self.factor:
                raise ValueError(
                    f"{source_name(d, key)}: {n} slices along axis {self.axis} give fewer than 2 thick slices of "
                    f"{self.factor}; use a smaller factor or another axis."
                )
            index = [slice(None)] * 4
            index[self.axis + 1] = slice(0, keep)
            image = image[tuple(index)]
            array = image.detach().cpu().numpy().astype(np.float32)
            thick = acquire_thick_slices(array, self.axis + 1, self.factor)
            thin = interpolate_to_thin_slices(thick, self.axis + 1, self.factor, order=self.order)
            d[key] = image
            d[self.output_key] = _as_meta(thin, image, affine_of(image).numpy())
        return d


class CheckThickSlicesd(MapTransform):
    """Refuse a volume that is not a thick-slice stack of a model's factor, each refusal naming the file.

    Checks: a 3D stack; thick along ``axis`` (the axis of the largest voxel size); a thick/thin spacing ratio within
    ``tolerance`` of ``factor`` (a x4 model on a x8 volume gives wrong anatomy without any error); at least
    ``min_slices`` slices (a k-slice SR network needs k of them).

    The tolerance is absolute, in in-plane voxels, so that it does not widen with the factor: with 1 a x4 model takes
    ratios 3-5 and a x8 model 7-9; a 6 mm stack of 1 mm pixels is refused by both (a relative 25 % let x8 take 6-10).

    ``factor`` 1 is a model of thin-slice volumes (e.g. a segmenter of super-resolved images): only the ratio (within
    ``tolerance`` of 1) and the slice count are checked; a near-isotropic volume is what it expects.

    ``axis="auto"`` reads each file's through-plane axis from its header (:func:`common.data.validation.slice_axis_of`:
    the axis clearly coarser than the others, else 2) instead of checking it against a configured one. Either way the
    axis is recorded under ``<key>_through_plane_axis`` (read by :class:`SlicesLastd`).

    Args:
        keys: image keys, channel-first ``(C, X, Y, Z)``.
        factor: the model's slice-thickness ratio.
        axis: spatial through-plane axis, or ``"auto"``.
        tolerance: accepted difference between the volume's thick/in-plane spacing ratio and ``factor``.
        min_ratio: below this spacing ratio the volume counts as isotropic and is refused.
        min_slices: fewest slices along ``axis``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        factor: int,
        axis: int | str = 2,
        tolerance: float = 1.0,
        min_ratio: float = 1.5,
        min_slices: int = 1,
    ) -> None:
        super().__init__(keys)
        if axis != "auto" and axis not in (0, 1, 2):
            raise ValueError(f"axis must be a spatial axis 0, 1 or 2 or 'auto', got {axis!r}.")
        self.auto = axis == "auto"
        self.factor, self.axis, self.min_slices = int(factor), (2 if self.auto else int(axis)), int(min_slices)
        self.tolerance, self.min_ratio = float(tolerance), float(min_ratio)
        if self.factor < 1:
            raise ValueError(f"factor must be a positive integer, got {factor!r}.")

    def axis_of(self, image: torch.Tensor) -> int:
        """The through-plane axis of ``image``: the configured one, or with ``"auto"`` the one its header gives."""
        return slice_axis_of(image.shape[1:], affine_of(image).numpy()) if self.auto else self.axis

    def check(self, d: Mapping, key: Hashable) -> int:
        """Raise ``ValueError`` naming the file when ``d[key]`` is not a thick-slice volume of this factor; return its
        through-plane axis."""
        image = _require_volume(d, key)
        name = source_name(d, key)
        spacing = voxel_spacing(affine_of(image))
        axis = self.axis_of(image)
        thick = self.factor > 1
        if thick and float(spacing.max() / spacing.min()) < self.min_ratio:
            raise ValueError(
                f"{name}: voxel size {np.round(spacing, 3).tolist()} mm is nearly isotropic; this model super-resolves "
                f"thick-slice volumes (x{self.factor} along axis {axis}), there is nothing to recover here."
            )
        if thick and int(np.argmax(spacing)) != axis:
            setting = (
                "the through-plane axis read from its header" if self.auto else "the configured through_plane_axis"
            )
            raise ValueError(
                f"{name}: the thickest axis is {int(np.argmax(spacing))} (voxel size {np.round(spacing, 3).tolist()} "
                f"mm), not {setting} {axis}; set through_plane_axis to {int(np.argmax(spacing))} (e.g. "
                f"--through_plane_axis {int(np.argmax(spacing))}; the same for every stage of this model)."
            )
        in_plane = float(np.mean([spacing[a] for a in range(3) if a != axis]))
        ratio = float(spacing[axis]) / in_plane
        if abs(ratio - self.factor) > self.tolerance:
            raise ValueError(
                f"{name}: slice spacing is {ratio:.2f} x the in-plane spacing, but this model was trained for x"
                f"{self.factor}; use the model trained for the nearest factor (set scale and its model_weights)."
            )
        if image.shape[axis + 1] < self.min_slices:
            raise ValueError(
                f"{name}: {image.shape[axis + 1]} slices along axis {axis}; this model needs at least "
                f"{self.min_slices}."
            )
        return axis

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[recorded_axis_key(key)] = self.check(d, key)
        return d


class ThinSliceGridd(CheckThickSlicesd):
    """Inference: a thick-slice volume interpolated onto ``factor`` thin slices per thick slice (same extent).

    The result is what the SR network was trained on (:class:`SimulateThickSlicesd`) and its affine is the output
    grid (:func:`common.data.degradation.thin_slice_affine`). The volume is checked first
    (:class:`CheckThickSlicesd`).

    Args:
        keys: image keys, channel-first ``(C, X, Y, Z)``.
        factor: the model's slice-thickness ratio.
        axis: spatial through-plane axis, or ``"auto"`` (as :class:`CheckThickSlicesd`).
        order: spline order (3 cubic, 1 linear, 0 nearest).
        tolerance, min_ratio, min_slices: as :class:`CheckThickSlicesd`.
    """

    def __init__(
        self,
        keys: KeysCollection,
        factor: int,
        axis: int | str = 2,
        order: int = 3,
        tolerance: float = 1.0,
        min_ratio: float = 1.5,
        min_slices: int = 1,
    ) -> None:
        super().__init__(keys, factor, axis, tolerance, min_ratio, min_slices)
        self.order = int(order)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            axis = d[recorded_axis_key(key)] = self.check(d, key)  # kept: the thin grid's header no longer shows it
            image = d[key]
            array = image.detach().cpu().numpy().astype(np.float32)
            thin = interpolate_to_thin_slices(array, axis + 1, self.factor, order=self.order)
            affine = thin_slice_affine(affine_of(image).numpy(), axis, self.factor)
            d[key] = _as_meta(thin, image, affine)
        return d


class ThinSliceAffined(MapTransform):
    """Give a prediction with ``factor`` x the input's slices the thin grid's affine over the input's extent.

    A network that outputs ``factor * N`` slices for ``N`` thick input slices (REHRSeg's HR head, the self-SR
    network) returns a tensor that still carries the thick input's affine; this sets
    :func:`common.data.degradation.thin_slice_affine` so the written volume lies on the input's field of view.

    Args:
        keys: prediction keys (``MetaTensor``, channel-first ``(C, X, Y, Z)``).
        factor: thin slices per thick slice.
        axis: spatial through-plane axis.
    """

    def __init__(self, keys: KeysCollection, factor: int, axis: int = 2, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be a spatial axis 0, 1 or 2, got {axis}.")
        self.factor, self.axis = int(factor), int(axis)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            pred = d[key]
            if not isinstance(pred, MetaTensor):
                raise TypeError(f"{key} must be a MetaTensor carrying the input's affine, got {type(pred).__name__}.")
            affine = thin_slice_affine(affine_of(pred).numpy(), self.axis, self.factor)
            pred.affine = torch.as_tensor(affine, dtype=pred.affine.dtype)
            pred.meta["spatial_shape"] = torch.as_tensor(pred.shape[1:])
            d[key] = pred
        return d


def slices_last_order(through_plane_axis: int) -> list[int]:
    """The files' spatial axes in the order :class:`SlicesLastd` puts them: the two in-plane axes as they were, then
    ``through_plane_axis``. Entry ``i`` is the file axis that in-memory axis ``i`` came from (e.g. to name, in the
    file's terms, an axis a config gives in memory terms)."""
    if int(through_plane_axis) not in (0, 1, 2):
        raise ValueError(f"through_plane_axis must be a spatial axis 0, 1 or 2, got {through_plane_axis}.")
    return [a for a in (0, 1, 2) if a != int(through_plane_axis)] + [int(through_plane_axis)]


def permute_affine_axes(affine: np.ndarray | torch.Tensor, order: list[int]) -> np.ndarray | torch.Tensor:
    """A copy of ``affine`` for the voxel array transposed so that its spatial axis ``i`` is the old axis
    ``order[i]``: the columns move with the axes, so every voxel keeps its world position."""
    moved = affine.clone() if isinstance(affine, torch.Tensor) else np.array(affine, copy=True)
    moved[:3, :3] = affine[:3, :3][:, order]
    return moved


class SlicesLastd(MapTransform):
    """Move a volume's through-plane axis to the last array axis (``inverse``: back to where it was), permuting the
    affine's columns with it: the same physical volume, stored in the layout the networks take.

    The networks multiply, or take planes across, the last axis; a user's volume may hold its slices on any array axis
    (a converter that does not keep the acquisition's slice axis third, a stack reoriented to RAS). Configs apply this
    right after loading, so everything in memory has the slices last, and ``inverse`` before writing, so outputs come
    back in the input's own layout: same array axis order, affine and extent as the input's. The order of the two
    in-plane axes is kept. A volume whose slices are already last is left untouched (the same tensor).

    With ``axis="auto"`` each volume moves along the axis recorded under ``<reference_key>_through_plane_axis``
    (default: its own key's) when there is one, else along the slice axis its header gives
    (:func:`common.data.validation.slice_axis_of`), which is then recorded under ``<key>_through_plane_axis``. So a
    folder of files in different layouts is handled file by file: the inverse restores, for each output, the axis
    recorded for the input it was made from (``reference_key``); a thin-slice volume whose header has no thick axis
    (a truth, a pseudo-HR image, a thick volume already put on its thin grid by :class:`ThinSliceGridd`, which records
    the axis it read) moves as its thick-slice input did.

    Args:
        keys: channel-first volumes ``(C, X, Y, Z)``.
        axis: the files' spatial through-plane axis (0, 1 or 2), or ``"auto"``.
        inverse: move the last axis back to ``axis`` (for outputs).
        reference_key: with ``axis="auto"``, the key whose recorded axis to use (required for ``inverse``).
    """

    def __init__(
        self,
        keys: KeysCollection,
        axis: int | str = 2,
        inverse: bool = False,
        reference_key: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.auto = axis == "auto"
        if not self.auto and axis not in (0, 1, 2):
            raise ValueError(f"axis must be a spatial axis 0, 1 or 2 or 'auto', got {axis!r}.")
        self.inverse = bool(inverse)
        if self.auto and self.inverse and reference_key is None:
            raise ValueError("axis='auto' with inverse=True needs reference_key, the input whose recorded axis to use.")
        self.axis, self.reference_key = (None if self.auto else int(axis)), reference_key

    def _order(self, axis: int) -> list[int]:
        order = slices_last_order(axis)
        return [order.index(a) for a in (0, 1, 2)] if self.inverse else order

    def _axis(self, d: Mapping, key: Hashable) -> int:
        if not self.auto:
            return self.axis
        reference = key if self.reference_key is None else self.reference_key
        recorded = recorded_axis_key(reference)
        if recorded in d:
            return int(d[recorded])
        if reference != key:
            raise KeyError(f"{recorded} is missing: put SlicesLastd(axis='auto') on {reference!r} first.")
        image = d[key]
        if image.ndim != 4:  # a 2D image has no slice axis to move; the checks after this name what it should be
            return 2
        return slice_axis_of(image.shape[1:], affine_of(image).numpy())

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            axis = self._axis(d, key)
            if self.auto and not self.inverse:
                d[recorded_axis_key(key)] = axis
            if axis == 2:
                continue
            image = _require_volume(d, key)
            order = self._order(axis)
            moved = image.permute(0, *[a + 1 for a in order]).contiguous()
            if isinstance(image, MetaTensor):
                moved.affine = permute_affine_axes(affine_of(image), order).to(image.affine.dtype)
                if self.inverse:  # an output's shape as written; an input keeps its file's (MONAI Label restores to it)
                    moved.meta["spatial_shape"] = torch.as_tensor(moved.shape[1:])
            d[key] = moved
        return d


def positive_percentile(image: torch.Tensor, percentile: float, name: str = "<in memory>") -> float:
    """The ``percentile`` of the voxels above 0 (of at most about a million of them, evenly strided): the factor
    :class:`ScaleByPercentiled` divides by.

    Raises:
        ValueError: naming ``name``, when no voxel is above 0.
    """
    values = image[image > 0]
    if values.numel() == 0:
        raise ValueError(f"{name}: the image has no voxel above 0; is it empty?")
    return float(torch.quantile(values.float()[:: max(1, values.numel() // 1_000_000)], float(percentile) / 100))


class ScaleByPercentiled(MapTransform):
    """Divide by the ``percentile`` of the non-zero voxels (to about [0, 1]) and keep the factor to undo it.

    The factor is stored under ``<key>_scale``; ``invert=True`` with ``scale_key`` multiplies another key (the SR
    output) back, so written volumes keep the input's intensity units. With ``reference_key`` every key is divided by
    that key's factor: training pairs scaled by their simulated network input's percentile get exactly the scaling
    that inference, which has only that input, applies.

    Args:
        keys: image keys.
        percentile: of the voxels above 0 (99.5 keeps a few bright vessels above 1 instead of compressing the brain).
        invert: multiply by the stored factor instead.
        scale_key: with ``invert``, the key whose factor to use (e.g. ``"image_scale"``).
        reference_key: the key whose percentile divides all ``keys`` (default: each key its own).
    """

    def __init__(
        self,
        keys: KeysCollection,
        percentile: float = 99.5,
        invert: bool = False,
        scale_key: str | None = None,
        reference_key: str | None = None,
    ) -> None:
        super().__init__(keys)
        if invert and scale_key is None:
            raise ValueError("invert=True needs scale_key, the key holding the factor (e.g. 'image_scale').")
        if invert and reference_key is not None:
            raise ValueError("reference_key sets the factor to divide by; invert=True multiplies by scale_key's.")
        self.percentile, self.invert, self.scale_key = float(percentile), bool(invert), scale_key
        self.reference_key = reference_key

    def _factor(self, d: Mapping[Hashable, torch.Tensor], key: Hashable) -> float:
        return positive_percentile(d[key], self.percentile, source_name(d, key))

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        reference = None if self.reference_key is None else self._factor(d, self.reference_key)
        for key in self.key_iterator(d):
            if self.invert:
                d[key] = d[key] * float(d[self.scale_key])
                continue
            scale = self._factor(d, key) if reference is None else reference
            d[key] = d[key] / scale
            d[f"{key}_scale"] = scale
        return d
