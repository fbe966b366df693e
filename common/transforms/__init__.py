"""Dictionary transforms used by the bundle configs."""

from common.transforms.as_single_slice_volume import AsSingleSliceVolumed
from common.transforms.as_slice_2d import AsSlice2Dd
from common.transforms.check_finite import CheckFinited
from common.transforms.check_shape_ratio import CheckShapeRatiod
from common.transforms.super_resolve_affine import SuperResolveAffined, low_resolution_affine, super_resolve_affine

__all__ = [
    "AsSingleSliceVolumed",
    "AsSlice2Dd",
    "CheckFinited",
    "CheckShapeRatiod",
    "SuperResolveAffined",
    "super_resolve_affine",
    "low_resolution_affine",
]
