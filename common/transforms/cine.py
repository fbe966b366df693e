"""2D+T cine stacks: check the layout, scale each slice to [-1, 1], and cut one short-axis slice out (PSCGAN).

A cine file is a 4D NIfTI ``(X, Y, S, T)``: ``S`` short-axis slices (1 for a single slice), ``T`` frames of the
cardiac cycle with frame 0 at end-diastole. ``LoadImaged(ensure_channel_first=True)`` reads it as ``(T, X, Y, S)``
(MONAI puts the NIfTI time axis first as channels); the LGE and label of the same stack are ``(1, X, Y, S)``.
"""

from __future__ import annotations

import logging
from typing import Hashable, Mapping, Sequence

import torch
from common.transforms._meta import source_name
from common.transforms.model_grid import in_plane_spacing
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

logger = logging.getLogger(__name__)

__all__ = [
    "CheckCined",
    "ScaleSlicesPercentiled",
    "CineSliced",
    "RepeatFirstFramed",
    "CineOutputMetad",
    "scale_slices_percentile",
]


class CheckCined(MapTransform):
    """Refuse, naming the file, a cine that is not a 4D ``(X, Y, S, n_frames)`` NIfTI of ``image_size`` frames;
    warn, naming it, when its pixel spacing is far from the one the network was trained at.

    Args:
        keys: cine keys, loaded with ``ensure_channel_first=True`` (so ``(T, X, Y, S)``).
        n_frames: frames per cardiac cycle the network takes (PSCGAN: 25).
        image_size: in-plane size ``(X, Y)`` the network takes (``None``: any).
        pixel_spacing: the training crops' pixel spacing in mm (``None``: not checked). A crop of ``image_size``
            pixels at another spacing shows the heart at another size and its wall motion in other pixel units.
        spacing_tolerance: relative difference of either in-plane spacing from ``pixel_spacing`` beyond which a
            warning names the file.
    """

    def __init__(
        self,
        keys: KeysCollection,
        n_frames: int,
        image_size: Sequence[int] | int | None = None,
        pixel_spacing: float | None = None,
        spacing_tolerance: float = 0.25,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if int(n_frames) < 1:
            raise ValueError(f"n_frames must be >= 1, got {n_frames!r}.")
        self.n_frames = int(n_frames)
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        self.image_size = None if image_size is None else tuple(int(s) for s in image_size)
        if pixel_spacing is not None and float(pixel_spacing) <= 0:
            raise ValueError(f"pixel_spacing must be > 0 mm, got {pixel_spacing!r}.")
        self.pixel_spacing = None if pixel_spacing is None else float(pixel_spacing)
        self.spacing_tolerance = float(spacing_tolerance)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            value, name = d[key], source_name(d, key)
            channel_dim = value.meta.get("original_channel_dim") if isinstance(value, MetaTensor) else -1
            if channel_dim != -1 or value.ndim != 4:
                shape = tuple(value.shape[1:]) if value.ndim > 1 else tuple(value.shape)
                raise ValueError(
                    f"{name}: '{key}' is a {len(shape)}D image of shape {shape}, but a 2D+T cine is expected: a 4D "
                    f"NIfTI (X, Y, slices, {self.n_frames} frames), the frames on the 4th (time) axis; a single slice "
                    "is (X, Y, 1, frames)."
                )
            frames, spatial = int(value.shape[0]), tuple(int(s) for s in value.shape[1:3])
            if frames != self.n_frames:
                raise ValueError(
                    f"{name}: '{key}' has {frames} frames, the network takes {self.n_frames}; resample the cardiac "
                    f"cycle to {self.n_frames} frames (end-diastole first) or retrain with n_frames={frames}."
                )
            if self.image_size is not None and spatial != self.image_size:
                raise ValueError(
                    f"{name}: '{key}' frames are {spatial[0]}x{spatial[1]}, the network takes heart-centred "
                    f"{self.image_size[0]}x{self.image_size[1]} crops (PSCGAN 6.1: a region of interest around the "
                    "left ventricle); crop the stack around the heart to that size first."
                )
            self._check_spacing(value, name)
        return d

    def _check_spacing(self, value: object, name: str) -> None:
        if self.pixel_spacing is None or not isinstance(value, MetaTensor):
            return
        spacing = in_plane_spacing(torch.as_tensor(value.affine, dtype=torch.float64))
        if max(abs(s - self.pixel_spacing) for s in spacing) > self.spacing_tolerance * self.pixel_spacing:
            logger.warning(
                "%s: pixel spacing %s mm, the network was trained on crops at %.2f mm (pixel_spacing): the heart and "
                "its wall motion appear %.0f %% larger or smaller than in training; resample the cine to %.2f mm "
                "before cropping, or set pixel_spacing to the spacing of the data the model was trained on.",
                name,
                [round(s, 3) for s in spacing],
                self.pixel_spacing,
                100 * max(abs(s / self.pixel_spacing - 1) for s in spacing),
                self.pixel_spacing,
            )


def scale_slices_percentile(
    image: torch.Tensor, lower: float = 1.0, upper: float = 99.0, b_min: float = -1.0, b_max: float = 1.0
) -> torch.Tensor:
    """Each slice (last axis) mapped from its ``[lower, upper]`` percentiles (over every other axis: all frames of
    a cine slice together, so the contraction's intensity changes survive) to ``[b_min, b_max]``, clipped."""
    x = image.float()
    flat = x.movedim(-1, 0).reshape(x.shape[-1], -1)
    q = torch.tensor([lower / 100.0, upper / 100.0], dtype=flat.dtype)
    low, high = torch.quantile(flat, q.to(flat.device), dim=1)
    span = torch.clamp(high - low, min=1e-6)
    shape = (1,) * (x.ndim - 1) + (-1,)
    scaled = (x - low.reshape(shape)) / span.reshape(shape)
    return torch.clamp(scaled * (b_max - b_min) + b_min, b_min, b_max)


class ScaleSlicesPercentiled(MapTransform):
    """:func:`scale_slices_percentile` on ``keys`` (PSCGAN 6.3: pixel values normalised to ``[-1, 1]``); the
    MetaTensor's metadata is kept."""

    def __init__(
        self,
        keys: KeysCollection,
        lower: float = 1.0,
        upper: float = 99.0,
        b_min: float = -1.0,
        b_max: float = 1.0,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if not 0.0 <= lower < upper <= 100.0:
            raise ValueError(f"need 0 <= lower < upper <= 100, got {lower!r}, {upper!r}.")
        self.lower, self.upper, self.b_min, self.b_max = float(lower), float(upper), float(b_min), float(b_max)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            scaled = scale_slices_percentile(torch.as_tensor(d[key]), self.lower, self.upper, self.b_min, self.b_max)
            value = d[key]
            d[key] = MetaTensor(scaled, meta=value.meta) if isinstance(value, MetaTensor) else scaled
        return d


class CineSliced(MapTransform):
    """Cut short-axis slice ``data[slice_key]`` out of a cine stack and its companions.

    The cine ``(T, X, Y, S)`` becomes ``(1, T, X, Y)`` (channel, time, space: what ``common.nets.PSCGANGenerator``
    takes), every other key ``(1, X, Y, S)`` becomes ``(1, X, Y)``. The stacks must share ``(X, Y, S)``.

    Args:
        keys: the cine and the per-slice images/labels of the same stack (LGE, label).
        cine_key: which of ``keys`` is the cine.
        slice_key: the item's slice index.

    Raises:
        ValueError: naming the files, when the stacks' grids differ or the index is outside the stack.
    """

    def __init__(
        self, keys: KeysCollection, cine_key: str = "cine", slice_key: str = "slice", allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.cine_key, self.slice_key = cine_key, slice_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        cine = d[self.cine_key]
        grid = tuple(int(s) for s in cine.shape[1:])
        index = int(d[self.slice_key])
        if not 0 <= index < grid[-1]:
            raise ValueError(
                f"{source_name(d, self.cine_key)}: slice {index} is outside the stack of {grid[-1]} slices."
            )
        for key in self.key_iterator(d):
            if key == self.cine_key:
                continue
            other = tuple(int(s) for s in d[key].shape[1:])
            if other != grid:
                raise ValueError(
                    f"{source_name(d, key)}: '{key}' grid {other} differs from the cine's (X, Y, slices) {grid} "
                    f"({source_name(d, self.cine_key)}); the cine, LGE and label of a case must share one grid."
                )
            d[key] = torch.as_tensor(d[key])[..., index].clone()
        d[self.cine_key] = torch.as_tensor(cine)[..., index].unsqueeze(0).clone()
        return d


class RepeatFirstFramed(MapTransform):
    """Replace every frame of a cine ``(T, ...)`` by its first (end-diastolic) frame: a cine without motion.

    The PSCGAN benchmark's premise check ("ED frame only"): the same networks fed no motion can use only the
    intensities of one frame, in which chronic scar is not visible on non-enhanced cine.
    """

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            value = d[key]
            repeated = torch.as_tensor(value)[:1].expand_as(torch.as_tensor(value)).clone()
            d[key] = MetaTensor(repeated, meta=value.meta) if isinstance(value, MetaTensor) else repeated
        return d


class CineOutputMetad(MapTransform):
    """Mark outputs made from a cine stack as channel-first images of the stack's grid ``(C, X, Y, S)``.

    A 4D cine is loaded with its time axis as channels (``original_channel_dim = -1``); an output that inherits
    that metadata would be written with its channel moved back to the end, which for a single slice (``S = 1``)
    leaves no axis for the writer to match with the grid ``(X, Y, 1)``. Outputs have no time axis: this sets
    ``original_channel_dim`` to ``"no_channel"`` (a 1-channel output is written as ``(X, Y, S)``).
    """

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            if isinstance(d[key], MetaTensor):
                d[key].meta["original_channel_dim"] = "no_channel"
        return d
