"""2D slices of a 3D volume in one or more orthogonal planes: random (training) or evenly spaced (validation)."""

from __future__ import annotations

__all__ = ["OrthogonalSlicesd", "head_extent"]

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from common.transforms._meta import source_name
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable


def head_extent(volume: torch.Tensor, axis: int, threshold: float = 0.05) -> tuple[int, int]:
    """First and last index along spatial ``axis`` of ``(C, X, Y, Z)`` with a voxel above ``threshold`` x its max."""
    reduce = tuple(a for a in range(volume.ndim) if a != axis + 1)
    profile = torch.as_tensor(volume).abs().amax(dim=reduce)
    inside = torch.nonzero(profile > threshold * float(profile.max())).flatten()
    if inside.numel() == 0:
        return 0, volume.shape[axis + 1] - 1
    return int(inside[0]), int(inside[-1])


class OrthogonalSlicesd(Randomizable, MapTransform):
    """``num_samples`` 2D slices ``(C, a, b)`` of channel-first volumes ``(C, X, Y, Z)``, the same slice for all keys.

    A slice is taken along one of ``axes`` (e.g. ``(1,)``: coronal x-z slices, in which the thick-slice axis z is
    the second image axis; ``(0, 1, 2)``: all three planes, TransMRSR's prior stage) at an index inside the central
    ``central_fraction`` of the head's extent along that axis (edge slices of background teach nothing). With
    ``random=False`` the slices are evenly spaced over that range along ``axes[0]`` (a fixed validation set).
    Planes of different shapes are fine: pad them to the model size afterwards (``ResizeWithPadOrCropd``).

    Args:
        keys: volumes of one subject on one grid; the head extent is read from the first key.
        num_samples: slices per volume.
        axes: spatial axes to slice along (0, 1, 2).
        random: random axis and index per sample; else evenly spaced along ``axes[0]``.
        central_fraction: share of the head's extent sampled, centred.

    Returns:
        A list of ``num_samples`` dicts (MONAI flattens it into samples), each with the 2D slices, ``slice_axis`` and
        ``slice_index``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        num_samples: int = 1,
        axes: Sequence[int] = (1,),
        random: bool = True,
        central_fraction: float = 0.8,
    ) -> None:
        MapTransform.__init__(self, keys)
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
        if not axes or any(a not in (0, 1, 2) for a in axes):
            raise ValueError(f"axes must be spatial axes among 0, 1, 2, got {axes!r}.")
        if not 0 < central_fraction <= 1:
            raise ValueError(f"central_fraction must be in (0, 1], got {central_fraction}.")
        self.num_samples, self.axes, self.random = int(num_samples), tuple(int(a) for a in axes), bool(random)
        self.central_fraction = float(central_fraction)

    def randomize(self, data: object = None) -> None:  # the draws happen per sample in __call__
        pass

    def _indices(self, volume: torch.Tensor) -> list[tuple[int, int]]:
        picks = []
        for sample in range(self.num_samples):
            axis = int(self.R.choice(self.axes)) if self.random else self.axes[0]
            first, last = head_extent(volume, axis)
            margin = (last - first) * (1 - self.central_fraction) / 2
            low, high = int(np.ceil(first + margin)), int(np.floor(last - margin))
            high = max(low, high)
            if self.random:
                index = int(self.R.randint(low, high + 1))
            else:
                index = int(round(low + (high - low) * (sample + 0.5) / self.num_samples))
            picks.append((axis, index))
        return picks

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> list[dict]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return [d]
        for key in keys:
            if d[key].ndim != 4:
                raise ValueError(
                    f"{source_name(d, key)}: expected a channel-first 3D volume (C, X, Y, Z), got shape "
                    f"{tuple(d[key].shape)}."
                )
        samples = []
        for axis, index in self._indices(d[keys[0]]):
            sample = dict(d)
            for key in keys:
                sample[key] = torch.select(d[key], axis + 1, index)
            sample["slice_axis"], sample["slice_index"] = axis, index
            samples.append(sample)
        return samples
