"""Small helpers shared by the dictionary transforms: where a sample came from, and its affine."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor


def source_name(data: dict, key: str) -> str:
    """The file a sample's `key` was loaded from, for error messages (``<in memory>`` if unknown)."""
    value = data.get(key)
    if isinstance(value, MetaTensor):
        name = value.meta.get("filename_or_obj")
        if name:
            return str(name)
    meta = data.get(f"{key}_meta_dict")
    if isinstance(meta, dict) and meta.get("filename_or_obj"):
        return str(meta["filename_or_obj"])
    return "<in memory>"


def affine_of(value: Any) -> torch.Tensor:
    """The 4x4 (or 3x3) affine of a MetaTensor as float64, identity for plain tensors/arrays."""
    if isinstance(value, MetaTensor):
        return torch.as_tensor(value.affine, dtype=torch.float64).clone()
    ndim = np.ndim(value) - 1
    return torch.eye(ndim + 1, dtype=torch.float64)
