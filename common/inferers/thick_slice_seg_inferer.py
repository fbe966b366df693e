"""A thick-slice segmenter with LR and HR heads run on a whole volume (REHRSeg stage 2)."""

from __future__ import annotations

__all__ = ["ThickSliceSegInferer"]

from collections.abc import Callable
from typing import Any

import torch
from common.inferers._padding import pad_to_divisor
from monai.inferers import Inferer


class ThickSliceSegInferer(Inferer):
    """Run a thick-slice segmenter (:class:`common.nets.HRSegUNet`) on a whole volume of any size.

    The input is replicate-padded at the end of each axis to the network's ``divisor`` and the output cropped back:
    to ``(X, Y, Z)`` for the LR head and ``(X, Y, scale * Z)`` for the HR head (the thin grid of the same extent).

    Args:
        divisor: per-axis divisor ``(X, Y, Z)`` (the network's stride products).
        scale: HR slices per LR slice (along the last axis) when ``head`` is ``"hr"``.
        head: ``"hr"`` (``network(x)`` is the HR head), ``"lr"`` (``network.forward_lr`` when it has one) or
            ``"both"`` (``network.forward_all``; returns the LR and HR logits as a tuple).
    """

    def __init__(self, divisor: tuple[int, int, int], scale: int = 4, head: str = "hr") -> None:
        super().__init__()
        if head not in ("hr", "lr", "both"):
            raise ValueError(f"head must be 'hr', 'lr' or 'both', got {head!r}.")
        self.divisor, self.scale, self.head = tuple(int(d) for d in divisor), int(scale), head

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any):
        x, (sx, sy, sz) = pad_to_divisor(inputs, self.divisor)
        module = getattr(network, "module", network)  # DDP exposes forward_all on .module
        if self.head == "lr":  # the HR head (the costliest layers, at s x the voxels) is not run
            forward_lr = getattr(module, "forward_lr", None)
            lr = forward_lr(x) if forward_lr is not None else module.forward_all(x)[0]
            return lr[..., :sx, :sy, :sz]
        if self.head == "both":
            lr, hr, _ = module.forward_all(x)
            lr, hr = lr[..., :sx, :sy, :sz], hr[..., :sx, :sy, : sz * self.scale]
            return lr, hr
        return network(x, *args, **kwargs)[..., :sx, :sy, : sz * self.scale]
