"""Run a 2D+T slice network over every short-axis slice of a cine stack, several slices per forward pass."""

from __future__ import annotations

__all__ = ["CineSliceInferer"]

from typing import Any, Callable

import torch
from monai.data import MetaTensor
from monai.inferers import Inferer


class CineSliceInferer(Inferer):
    """``(B, T, X, Y, S)`` cine stacks (``LoadImaged`` puts the NIfTI time axis first) -> ``(B, C, X, Y, S)``.

    The slices go through ``network`` as ``(slices, 1, T, X, Y)`` batches of at most ``slices_per_batch``, so the
    time is linear in the number of slices and one forward pass serves many slices. A MetaTensor input gives a
    MetaTensor output with its metadata (the spatial affine of ``(X, Y, S)`` is the output's).

    Args:
        slices_per_batch: slices per forward pass (>= 1).
    """

    def __init__(self, slices_per_batch: int = 16) -> None:
        if int(slices_per_batch) < 1:
            raise ValueError(f"slices_per_batch must be >= 1, got {slices_per_batch!r}.")
        self.slices_per_batch = int(slices_per_batch)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        if inputs.ndim != 5:
            raise ValueError(f"expected a (B, T, X, Y, S) cine stack, got shape {tuple(inputs.shape)}.")
        b, t, x, y, s = inputs.shape
        plain = inputs.as_tensor() if isinstance(inputs, MetaTensor) else torch.as_tensor(inputs)
        slices = plain.permute(0, 4, 1, 2, 3).reshape(b * s, 1, t, x, y)
        outputs = [
            network(slices[i : i + self.slices_per_batch], *args, **kwargs)
            for i in range(0, slices.shape[0], self.slices_per_batch)
        ]
        out = torch.cat(outputs, 0)
        out = out.reshape(b, s, *out.shape[1:]).permute(0, 2, 3, 4, 1).contiguous()
        if isinstance(inputs, MetaTensor):  # keep the stack's affine and file name for the writers
            out = MetaTensor(out)
            out.copy_meta_from(inputs)
        return out
