"""The inverse of `AsSlice2Dd`: `(C, H, W)` -> `(C, H, W, 1)`, so a 2D prediction is a single-slice volume again."""

from __future__ import annotations

from typing import Hashable, Mapping

from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = ["AsSingleSliceVolumed"]


class AsSingleSliceVolumed(MapTransform):
    """Append a slice axis of size 1 to each 2D channel-first tensor of `keys`, keeping its metadata.

    Needed at the end of 2D `postprocessing`: MONAI Label restores a prediction to the *last* N dimensions of the
    loaded input, so a `(C, sH, sW)` prediction of a `(H, W, 1)` input would be resized to `(W, 1)`. With the slice
    axis restored it is resized to `(H, W, 1)` as intended; `SaveImaged(squeeze_end_dims=True)` drops the axis again
    when the bundle writes its own outputs.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            if d[key].ndim != 3:
                raise ValueError(
                    f"{key}: expected a 2D channel-first tensor (C, H, W), got shape {tuple(d[key].shape)}."
                )
            d[key] = d[key].unsqueeze(-1)
        return d
