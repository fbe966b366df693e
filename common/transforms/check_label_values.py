"""Reject label maps holding values outside the dataset's label set, naming the file."""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import torch
from common.transforms._meta import source_name
from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = ["CheckLabelValuesd"]


class CheckLabelValuesd(MapTransform):
    """Raise ``ValueError`` naming the file when a label map of ``keys`` holds a value not in ``values``.

    A label in another dataset's convention (e.g. ACDC's 1/2/3 where MS-CMRSeg's 200/500/600 are expected) would
    otherwise be mapped to background without a word, and the network would learn an empty heart.

    Args:
        keys: label maps.
        values: the allowed values, background included (e.g. ``[0, 200, 500, 600]``).
    """

    def __init__(self, keys: KeysCollection, values: Sequence[float], allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.values = torch.as_tensor(sorted(float(v) for v in values), dtype=torch.float64)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            found = torch.unique(torch.as_tensor(d[key]).to(torch.float64))
            bad = found[~torch.isin(found, self.values)]
            if bad.numel():
                shown = ", ".join(f"{v:g}" for v in bad[:8].tolist())
                allowed = ", ".join(f"{v:g}" for v in self.values.tolist())
                raise ValueError(
                    f"{source_name(d, key)}: '{key}' holds value(s) {shown} outside the label set {{{allowed}}}; "
                    "convert the labels to this dataset's values (or exclude the file)."
                )
        return d
