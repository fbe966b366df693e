"""Apply an array transform to each slice of a volume on its own (per-slice intensity normalisation)."""

from __future__ import annotations

__all__ = ["PerSliced"]

from collections.abc import Callable, Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform


class PerSliced(MapTransform):
    """``transform`` on every slice ``(C, H, W)`` of ``(C, H, W, D)`` along the last axis, results stacked again.

    A 2D model was trained on slices normalised one by one (e.g. 1st-99th percentile of the slice); a stack must be
    normalised the same way, not with the percentiles of the whole volume. A single-slice volume gives exactly
    ``transform`` of its one slice.

    Args:
        keys: channel-first volumes.
        transform: array transform of one ``(C, H, W)`` slice that keeps its shape, e.g.
            ``ScaleIntensityRangePercentiles(1, 99, 0.0, 1.0, clip=True)``.
    """

    def __init__(self, keys: KeysCollection, transform: Callable, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = transform

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            volume = d[key]
            slices = [torch.as_tensor(self.transform(volume[..., k])) for k in range(volume.shape[-1])]
            stacked = torch.stack([s.as_tensor() if isinstance(s, MetaTensor) else s for s in slices], dim=-1)
            d[key] = MetaTensor(stacked, meta=volume.meta) if isinstance(volume, MetaTensor) else stacked
        return d
