"""Reject NaN/Inf images early, naming the file."""

from __future__ import annotations

from typing import Hashable, Mapping

import torch
from common.transforms._meta import source_name
from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = ["CheckFinited"]


class CheckFinited(MapTransform):
    """Raise `ValueError` naming the file if any voxel of `keys` is NaN or infinite.

    NaNs silently poison every loss and metric downstream, so they are stopped at load time.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            values = torch.as_tensor(d[key])
            if values.is_floating_point() and not bool(torch.isfinite(values).all()):
                bad = int((~torch.isfinite(values)).sum())
                raise ValueError(
                    f"{source_name(d, key)}: {bad} NaN/Inf voxel(s) in '{key}'. Fix or exclude this file "
                    "(e.g. re-export it from the scanner/DICOM converter)."
                )
        return d
