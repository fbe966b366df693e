"""Check that a second volume's spatial shape is `scale` x its image's (1 for ordinary segmentation)."""

from __future__ import annotations

from typing import Hashable, Mapping

from common.transforms._meta import source_name
from monai.transforms import MapTransform

__all__ = ["CheckShapeRatiod"]


class CheckShapeRatiod(MapTransform):
    """Raise `ValueError` naming both files when `label` is not `scale` times the `image` in-plane.

    Args:
        image_key: key of the (channel-first) image.
        label_key: key of the (channel-first) label.
        scale: expected label/image ratio of each of the first `spatial_dims` spatial axes.
        spatial_dims: how many leading spatial axes to compare.
    """

    def __init__(self, image_key: str = "image", label_key: str = "label", scale: int = 1, spatial_dims: int = 2):
        super().__init__([image_key, label_key])
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}.")
        self.image_key, self.label_key, self.scale, self.spatial_dims = image_key, label_key, int(scale), spatial_dims

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        image_shape = tuple(d[self.image_key].shape[1 : 1 + self.spatial_dims])
        label_shape = tuple(d[self.label_key].shape[1 : 1 + self.spatial_dims])
        expected = tuple(self.scale * s for s in image_shape)
        if label_shape != expected:
            axes = "in-plane shape" if self.spatial_dims == 2 else f"shape (first {self.spatial_dims} spatial axes)"
            raise ValueError(
                f"{self.label_key}/{self.image_key} shape mismatch: {self.label_key} {source_name(d, self.label_key)} "
                f"has {axes} {label_shape}, {self.image_key} {source_name(d, self.image_key)} has {image_shape}; "
                f"expected {self.label_key} = {self.scale} x {self.image_key} = {expected}. Check that the two files "
                "belong to the same case and resolution."
            )
        return d
