"""Channel-first volume ``(C, H, W, D)`` from a 2D slice or a stack, keeping the 4x4 geometry."""

from __future__ import annotations

__all__ = ["AsVolumed"]

from collections.abc import Hashable, Mapping

from common.data.validation import check_slice_count
from common.transforms._meta import affine_of, source_name
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform


class AsVolumed(MapTransform):
    """``(C, H, W)`` -> ``(C, H, W, 1)``; a stack ``(C, H, W, D)`` stays as it is.

    2D bundles run slice by slice over volumes (``monai.inferers.SliceInferer`` along the last axis), so a single
    slice and a clinical multi-slice stack take the same path and the prediction is written back as a volume with
    the input's geometry.

    Args:
        keys: channel-first images.
        channels: the number of channels the model takes; a file with another number (e.g. a 4D series or an RGB
            export) is refused with its name.
        min_slices: the fewest slices a file may hold; 2 for a bundle whose steps need a stack (e.g. a heart found
            from the masks summed over the stack's slices, 3D post-processing), so a 2D file is refused there.

    Raises:
        ValueError: naming the file, for fewer than 2 or more than 3 spatial dims, another channel count or fewer
            than ``min_slices`` slices.
    """

    def __init__(
        self, keys: KeysCollection, channels: int = 1, min_slices: int = 1, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if min_slices < 1:
            raise ValueError(f"min_slices must be at least 1, got {min_slices}.")
        self.channels = channels
        self.min_slices = min_slices

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            spatial = tuple(image.shape[1:])
            if image.shape[0] != self.channels or len(spatial) not in (2, 3):
                raise ValueError(
                    f"{source_name(d, key)}: expected {self.channels} channel(s) and a 2D slice or a 3D stack, got "
                    f"{image.shape[0]} channel(s) of spatial shape {spatial}; split 4D series into 3D volumes."
                )
            if len(spatial) == 2:
                volume = image.unsqueeze(-1)
                if isinstance(image, MetaTensor):
                    volume.affine = image.affine  # a 2D file's 3x3 affine is promoted by the loader already
                d[key] = volume
            check_slice_count(source_name(d, key), d[key].shape[1:], self.min_slices, affine_of(d[key]).numpy())
        return d
