"""Dictionary transforms used by the bundle configs."""

from common.transforms.as_slice_2d import AsSlice2Dd
from common.transforms.as_volume import AsVolumed
from common.transforms.check_finite import CheckFinited
from common.transforms.check_label_values import CheckLabelValuesd
from common.transforms.check_shape_ratio import CheckShapeRatiod
from common.transforms.cine import (
    CheckCined,
    CineOutputMetad,
    CineSliced,
    RepeatFirstFramed,
    ScaleSlicesPercentiled,
    scale_slices_percentile,
)
from common.transforms.class_index import ClassIndexd
from common.transforms.head_mask import HeadMaskd, head_mask
from common.transforms.heart_crop import HeartCropd, HeartUncropd, heart_centre
from common.transforms.localise_heart import LocaliseHeartd
from common.transforms.model_grid import (
    FromModelGridd,
    ToModelGridd,
    in_plane_pixel_area,
    in_plane_spacing,
    regrid_affine,
)
from common.transforms.orthogonal_slices import OrthogonalSlicesd, head_extent
from common.transforms.per_slice import PerSliced
from common.transforms.select_channels import SelectChannelsd, channel_indices, check_channel_count
from common.transforms.self_sr import (
    AcquireThickSlicesd,
    PreUpsampleThinGridd,
    RandInPlaneCropd,
    SelfSRPatchesd,
    SliceSRPairsd,
    gap_start,
)
from common.transforms.super_resolve_affine import SuperResolveAffined, low_resolution_affine, super_resolve_affine
from common.transforms.through_plane import (
    CheckThickSlicesd,
    ScaleByPercentiled,
    SimulateThickSlicesd,
    SlicesLastd,
    ThinSliceAffined,
    ThinSliceGridd,
    permute_affine_axes,
    positive_percentile,
    recorded_axis_key,
    require_planes_across_slices,
    slices_last_order,
    voxel_spacing,
)

__all__ = [
    "AsSlice2Dd",
    "AsVolumed",
    "CheckFinited",
    "CheckLabelValuesd",
    "CheckShapeRatiod",
    "ClassIndexd",
    "FromModelGridd",
    "HeartCropd",
    "HeartUncropd",
    "LocaliseHeartd",
    "PerSliced",
    "SelectChannelsd",
    "channel_indices",
    "check_channel_count",
    "ToModelGridd",
    "heart_centre",
    "in_plane_spacing",
    "in_plane_pixel_area",
    "regrid_affine",
    "SuperResolveAffined",
    "super_resolve_affine",
    "low_resolution_affine",
    "ScaleByPercentiled",
    "SimulateThickSlicesd",
    "SlicesLastd",
    "permute_affine_axes",
    "slices_last_order",
    "recorded_axis_key",
    "positive_percentile",
    "ThinSliceGridd",
    "CheckThickSlicesd",
    "ThinSliceAffined",
    "require_planes_across_slices",
    "voxel_spacing",
    "HeadMaskd",
    "head_mask",
    "OrthogonalSlicesd",
    "head_extent",
    "SelfSRPatchesd",
    "SliceSRPairsd",
    "PreUpsampleThinGridd",
    "AcquireThickSlicesd",
    "RandInPlaneCropd",
    "gap_start",
    "CheckCined",
    "CineSliced",
    "CineOutputMetad",
    "RepeatFirstFramed",
    "ScaleSlicesPercentiled",
    "scale_slices_percentile",
]
