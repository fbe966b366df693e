"""Channel-first 2D slice from a 2D or single-slice 3D NIfTI, keeping its full 3D geometry."""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

from common.transforms._meta import source_name
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

__all__ = ["AsSlice2Dd"]


class AsSlice2Dd(MapTransform):
    """Turn `(C, H, W)` or `(C, H, W, 1)` into `(C, H, W)`, keeping the 4x4 affine.

    Cardiac short-axis slices are stored as single-slice volumes `(H, W, 1)` so that their slice position and
    thickness stay in the header. MONAI's `SqueezeDimd` drops the third row/column of the affine; this transform
    keeps it, so a prediction saved from the 2D tensor is written back in the input's physical space.

    Args:
        keys: keys of the channel-first images to convert.
        allow_missing_keys: skip keys that are absent.

    Raises:
        ValueError: a volume with more than one slice, or fewer than 2 spatial dims; the message names the file.

    Examples::

        AsSlice2Dd(keys="image")({"image": MetaTensor(torch.zeros(1, 64, 64, 1))})["image"].shape  # (1, 64, 64)
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            shape: Sequence[int] = tuple(image.shape)
            if len(shape) == 4 and shape[-1] == 1:
                squeezed = image[..., 0]
                if isinstance(image, MetaTensor) and not isinstance(squeezed, MetaTensor):
                    squeezed = MetaTensor(squeezed, meta=image.meta)
                if isinstance(squeezed, MetaTensor):
                    squeezed.affine = image.affine  # keep the 4x4 geometry (slice position and thickness)
                d[key] = squeezed
            elif len(shape) != 3:
                raise ValueError(
                    f"{source_name(d, key)}: expected one 2D slice (H, W) or (H, W, 1), got spatial shape "
                    f"{tuple(shape[1:])}. Split multi-slice volumes into single-slice NIfTI files first."
                )
        return d
