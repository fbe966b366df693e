"""Run a 2D model on its own in-plane grid whatever the input's spacing, and put the prediction back on the input's.

A network trained on 2.5 mm pixels segments a 2 mm image at the wrong scale unless the image is resampled first.
``ToModelGridd`` records the input's grid (affine and shape) and resamples the in-plane axes to the model's spacing;
``FromModelGridd`` resamples the prediction onto the input's grid, ``scale`` times finer in-plane for a
super-resolving network, so a mask covers exactly the input's field of view with the input's orientation (oblique
and sheared headers included: the new grids are the input's own axes, re-divided).
"""

from __future__ import annotations

__all__ = ["regrid_affine", "in_plane_spacing", "in_plane_pixel_area", "ToModelGridd", "FromModelGridd"]

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from common.transforms._meta import source_name
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, SpatialResample

#: relative spacing difference under which an input is taken to be on the model's grid already (no resampling)
SPACING_TOLERANCE = 1e-3


def regrid_affine(affine: torch.Tensor, scales: Sequence[float]) -> torch.Tensor:
    """Affine of the grid that divides voxel axis ``i`` into ``scales[i]`` parts over the same field of view.

    ``scales[i] = new_size_i / old_size_i`` (2 halves the spacing, 0.8 makes it 1.25x coarser); the outer boundary of
    the field of view stays where it was (voxel centres move by ``(1 / scale - 1) / 2`` old voxels). Axes beyond
    ``len(scales)`` are unchanged. ``common.transforms.super_resolve_affine`` is the integer case.
    """
    affine = torch.as_tensor(affine, dtype=torch.float64)
    n = affine.shape[0] - 1
    index_map = torch.eye(n + 1, dtype=torch.float64)
    for axis, scale in enumerate(scales):
        if scale <= 0:
            raise ValueError(f"scales must be positive, got {list(scales)}.")
        index_map[axis, axis] = 1.0 / scale
        index_map[axis, n] = (1.0 / scale - 1.0) / 2.0
    return affine @ index_map


def in_plane_spacing(affine: torch.Tensor, axes: int = 2) -> list[float]:
    """Spacing (mm) of the first ``axes`` voxel axes: the lengths of the affine's columns (any orientation/shear)."""
    affine = torch.as_tensor(affine, dtype=torch.float64)
    n = affine.shape[0] - 1
    return [float(torch.linalg.norm(affine[:n, axis])) for axis in range(axes)]


def in_plane_pixel_area(affine: Any) -> float:
    """Area (mm^2) of one pixel of the first two voxel axes: the norm of the cross product of the affine's columns.

    Equal to the product of :func:`in_plane_spacing` only when the two axes are orthogonal; a sheared header's pixel
    is a parallelogram of smaller area, which areas summed from pixel counts must use.
    """
    affine = torch.as_tensor(np.asarray(affine, dtype=np.float64))
    n = affine.shape[0] - 1
    first, second = affine[:n, 0], affine[:n, 1]
    if n == 2:
        return float(abs(first[0] * second[1] - first[1] * second[0]))
    return float(torch.linalg.norm(torch.linalg.cross(first, second)))


def _grid_key(key: Hashable) -> str:
    return f"{key}_input_grid"


class ToModelGridd(MapTransform):
    """Resample the in-plane axes of channel-first volumes ``(C, H, W, D)`` to the model's pixel spacing.

    The input's grid is kept in ``data["<key>_input_grid"]`` (``affine`` and spatial ``shape``) for
    :class:`FromModelGridd`. An input within 0.1 % of ``pixdim`` is left untouched (bit for bit). Otherwise each
    in-plane axis ``i`` of ``n_i`` pixels at spacing ``s_i`` becomes ``round(n_i * s_i / pixdim_i)`` pixels over the
    same field of view (so the new spacing is within half a pixel per field of view of ``pixdim``); the slice axis
    and the orientation are the input's.

    Args:
        keys: images to resample (MetaTensors with their affine).
        pixdim: the model's in-plane spacing in mm, e.g. ``(2.5, 2.5)`` (``metadata.json`` says which).
        mode: interpolation (``"bilinear"`` for images).
    """

    def __init__(
        self, keys: KeysCollection, pixdim: Sequence[float], mode: str = "bilinear", allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(pixdim) != 2 or min(pixdim) <= 0:
            raise ValueError(f"pixdim must be two positive in-plane spacings (mm), got {pixdim}.")
        self.pixdim = [float(p) for p in pixdim]
        self.resample = SpatialResample(mode=mode, padding_mode="border", align_corners=True)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            if not isinstance(image, MetaTensor) or image.ndim != 4:
                raise ValueError(
                    f"{source_name(d, key)}: expected a channel-first volume (C, H, W, D) with its affine."
                )
            affine = torch.as_tensor(image.affine, dtype=torch.float64)
            shape = [int(s) for s in image.shape[1:]]
            d[_grid_key(key)] = {"affine": affine.clone(), "shape": torch.tensor(shape)}
            spacing = in_plane_spacing(affine)
            if all(abs(s - p) <= SPACING_TOLERANCE * p for s, p in zip(spacing, self.pixdim)):
                continue
            size = [max(1, round(n * s / p)) for n, s, p in zip(shape[:2], spacing, self.pixdim)]
            target = regrid_affine(affine, [m / n for m, n in zip(size, shape[:2])])
            d[key] = self.resample(image, dst_affine=target, spatial_size=[*size, shape[2]])
        return d


class FromModelGridd(MapTransform):
    """Resample predictions onto the input's grid recorded by :class:`ToModelGridd`, ``scale`` x finer in-plane.

    The prediction's own affine (the model grid's, made ``scale`` x finer by ``SuperResolveAffined``) says where it
    lies; the target is the input's affine re-divided by ``scale`` in-plane, ``(scale * H, scale * W, D)`` voxels.
    Resample probabilities (``"bilinear"``) and take the argmax afterwards, or labels with ``"nearest"``. A
    prediction already on that grid is left untouched.

    Args:
        keys: predictions ``(C, sH', sW', D)`` (MetaTensors).
        reference_key: the image key given to :class:`ToModelGridd`.
        scale: in-plane up-sampling of the network (1 for a same-size output).
        mode: interpolation.
    """

    def __init__(
        self,
        keys: KeysCollection,
        reference_key: str = "image",
        scale: int = 1,
        mode: str = "bilinear",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}.")
        self.reference_key = reference_key
        self.scale = scale
        self.resample = SpatialResample(mode=mode, padding_mode="border", align_corners=True)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        grid = d.get(_grid_key(self.reference_key))
        if grid is None:
            raise KeyError(f"{_grid_key(self.reference_key)} is missing: put ToModelGridd in the preprocessing.")
        shape = [int(s) for s in torch.as_tensor(grid["shape"]).reshape(-1)]
        target_shape = [shape[0] * self.scale, shape[1] * self.scale, *shape[2:]]
        target = regrid_affine(torch.as_tensor(grid["affine"]).reshape(4, 4), [self.scale, self.scale])
        written_shape = _file_shape(d.get(self.reference_key), target_shape)
        for key in self.key_iterator(d):
            pred = d[key]
            same_grid = list(pred.shape[1:]) == target_shape and torch.allclose(
                torch.as_tensor(pred.affine, dtype=torch.float64), target, atol=1e-4
            )
            if not same_grid:
                pred = self.resample(pred, dst_affine=target, spatial_size=target_shape)
            pred.affine = target.to(torch.as_tensor(pred.affine).dtype)
            pred.meta["spatial_shape"] = torch.as_tensor(written_shape)
            d[key] = pred
        return d


def _file_shape(reference: object, target_shape: list[int]) -> list[int]:
    """The shape to write: ``target_shape`` less the trailing singleton axes that the input file did not have (a 2D
    file ``(H, W)`` was made a volume ``(H, W, 1)``; the writer gives the output the input's axes)."""
    original = reference.meta.get("spatial_shape") if isinstance(reference, MetaTensor) else None
    if original is None:
        return target_shape
    ndim = len(torch.as_tensor(original).reshape(-1))
    if ndim < len(target_shape) and all(n == 1 for n in target_shape[ndim:]):
        return target_shape[:ndim]
    return target_shape
