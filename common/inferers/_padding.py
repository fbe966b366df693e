"""Padding shared by the inferers."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_divisor(x: torch.Tensor, divisors: tuple[int, ...]) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Replicate-pad the trailing ``len(divisors)`` axes of ``(B, C, *spatial)`` at their end to multiples of
    ``divisors``; returns the padded tensor and the original sizes of those axes."""
    sizes = tuple(x.shape[-len(divisors) :])
    spatial = x.ndim - 2  # replicate padding takes all spatial axes at once
    full = (1,) * (spatial - len(divisors)) + tuple(int(d) for d in divisors)
    pad: list[int] = []
    for size, divisor in zip(reversed(x.shape[2:]), reversed(full)):
        pad += [0, (-size) % divisor]
    if any(pad):
        x = F.pad(x, pad, mode="replicate")
    return x, sizes
