"""Activation recomputation: trade a second forward of a block for not keeping its activations until backward.

A transformer block at a high resolution keeps several token-sized tensors per sample for its backward pass (the
LayerNorm and MLP inputs, the GELU output, q, k and v): at 256 x 256 tokens these dominate a step's memory, while its
FLOPs are no larger than a low-resolution block's (window attention costs the same per token; width halves as the
side doubles). Recomputing only the high-resolution blocks therefore removes most of the activation memory for a
small share of extra compute.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any

import torch
import torch.utils.checkpoint

__all__ = ["call_recomputed", "check_recompute_resolutions"]


def call_recomputed(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)``; when autograd records the call, its intermediate activations are dropped and recomputed
    in the backward pass (``torch.utils.checkpoint``, non-reentrant: works under DDP, with parameters that do not
    require gradients and with inputs that do not). Results and gradients equal the plain call's. Without autograd
    (inference, ``no_grad``) or while tracing it is the plain call."""
    if torch.is_grad_enabled() and not torch.jit.is_tracing():
        return torch.utils.checkpoint.checkpoint(function, *args, use_reentrant=False)
    return function(*args)


def check_recompute_resolutions(resolutions: Iterable[int] | None, available: Collection[int], owner: str) -> set[int]:
    """The set of ``resolutions`` (e.g. ``[256, 128]``); each must be one of ``available`` (the owner's block
    resolutions), else a ``ValueError`` naming both."""
    chosen = set() if resolutions is None else {int(r) for r in resolutions}
    unknown = sorted(chosen - set(available))
    if unknown:
        raise ValueError(
            f"{owner}: recompute_resolutions {unknown} are not resolutions of its blocks {sorted(available)}."
        )
    return chosen
