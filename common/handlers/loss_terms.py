"""Pick every loss term out of an engine output, for `TensorBoardStatsHandler(output_transform=...)`."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["loss_terms"]


def loss_terms(output: Any, prefix: str = "loss") -> dict[str, float]:
    """`{name: value}` of every scalar entry whose key starts with `prefix` (first item of a decollated list).

    Multi-network trainers return one key per paper term (`loss_cycle`, `loss_transfer_seg`, ...), so this logs
    each term separately without listing them in the config.
    """
    item = output[0] if isinstance(output, (list, tuple)) and output else output
    if not isinstance(item, dict):
        raise TypeError(f"loss_terms expects a dict (or list of dicts) engine output, got {type(output).__name__}.")
    terms = {}
    for key, value in item.items():
        if not str(key).startswith(prefix):
            continue
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        if isinstance(value, (int, float)):
            terms[str(key)] = float(value)
    return terms
