"""Affine of a super-resolved 2D prediction: same field of view as the input, `scale` x finer spacing."""

from __future__ import annotations

from typing import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

__all__ = ["super_resolve_affine", "low_resolution_affine", "SuperResolveAffined"]


def super_resolve_affine(affine: torch.Tensor, scale: int, spatial_dims: int = 2) -> torch.Tensor:
    """Affine of the grid that splits each of the first `spatial_dims` voxel axes into `scale` sub-voxels.

    A low-resolution voxel `i` has its centre at `A @ i`. Its `scale` sub-voxels have centres at
    `i - 1/2 + (j + 1/2) / scale`, so the fine grid's index-to-world map is `A @ (S @ j + o)` with
    `S = diag(1/scale)` and offset `o = (1/scale - 1) / 2` on those axes. The outer boundary of the field of view
    is unchanged. Remaining axes (e.g. the slice axis of a single-slice volume) keep their spacing.

    Args:
        affine: `(N+1, N+1)` index-to-world matrix of the input (N = 2 or 3).
        scale: integer up-sampling factor (>= 1).
        spatial_dims: how many leading voxel axes were super-resolved.
    """
    if scale < 1 or int(scale) != scale:
        raise ValueError(f"scale must be a positive integer, got {scale}.")
    affine = torch.as_tensor(affine, dtype=torch.float64)
    n = affine.shape[0] - 1
    if spatial_dims > n:
        raise ValueError(f"spatial_dims={spatial_dims} exceeds the affine's {n} axes.")
    index_map = torch.eye(n + 1, dtype=torch.float64)
    for axis in range(spatial_dims):
        index_map[axis, axis] = 1.0 / scale
        index_map[axis, n] = (1.0 / scale - 1.0) / 2.0
    return affine @ index_map


def low_resolution_affine(affine: torch.Tensor, scale: int, spatial_dims: int = 2) -> torch.Tensor:
    """Inverse of `super_resolve_affine`: the grid whose `scale`-fold subdivision is `affine`'s grid."""
    fine_from_coarse = super_resolve_affine(torch.eye(torch.as_tensor(affine).shape[0]), scale, spatial_dims)
    return torch.as_tensor(affine, dtype=torch.float64) @ torch.linalg.inv(fine_from_coarse)


class SuperResolveAffined(MapTransform):
    """Give a `scale`-times larger prediction the affine of the finer grid over the input's field of view.

    The network's output inherits the input's metadata (`MetaTensor`), whose affine describes the
    low-resolution grid. Apply this in `postprocessing` before `SaveImaged(resample=False)` so that an 8x SR mask is
    written with 8x finer in-plane spacing over exactly the same field of view (see `super_resolve_affine`).

    Args:
        keys: prediction keys (channel-first `(C, sH, sW)`).
        scale: the network's up-sampling factor.
        spatial_dims: number of super-resolved axes (2 for in-plane SR).
    """

    def __init__(
        self, keys: KeysCollection, scale: int, spatial_dims: int = 2, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if scale < 1 or int(scale) != scale:
            raise ValueError(f"scale must be a positive integer, got {scale}.")
        self.scale = int(scale)
        self.spatial_dims = spatial_dims

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            pred = d[key]
            if not isinstance(pred, MetaTensor):
                raise TypeError(f"{key} must be a MetaTensor carrying the input's affine, got {type(pred).__name__}.")
            fine = super_resolve_affine(pred.affine, self.scale, self.spatial_dims)
            pred.affine = fine.to(pred.affine.dtype)
            pred.meta["spatial_shape"] = torch.as_tensor(pred.shape[1:])
            d[key] = pred
        return d
