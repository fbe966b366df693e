"""MONAI inferers shared by the bundles (one public class per file)."""

from __future__ import annotations

from common.inferers.cine_slice_inferer import CineSliceInferer
from common.inferers.slice_window_sr import SlidingSliceSR
from common.inferers.thick_slice_seg_inferer import ThickSliceSegInferer
from common.inferers.upsample_inferer import UpsampleInferer

__all__ = ["CineSliceInferer", "UpsampleInferer", "SlidingSliceSR", "ThickSliceSegInferer"]
