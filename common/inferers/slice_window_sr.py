"""Through-plane super-resolution of a whole volume with a k-slice network (REHRSeg's self-SR), ends included."""

from __future__ import annotations

__all__ = ["SlidingSliceSR"]

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from common.inferers._padding import pad_to_divisor
from common.transforms.self_sr import gap_start
from monai.inferers import Inferer


class SlidingSliceSR(Inferer):
    """Super-resolve ``(B, C, X, Y, Z)`` along one axis with a network that fills one gap per ``n_inputs`` slices.

    The network (:class:`common.nets.FLAVRSelfSR`) maps ``n_inputs`` consecutive thick slices to the ``scale`` thin
    slices between the middle two. A window slides with stride 1 over every gap, including the half-gaps before the
    first and after the last thick slice: the volume is mirrored by ``n_inputs // 2`` slices at both ends, so ``N``
    thick slices give ``N * scale`` thin slices covering the same extent (the thin grid of
    :func:`common.data.degradation.thin_slice_affine`). The public code zero-pads the ends and returns
    ``scale * (N - 1)`` slices, so its output is shorter than the input's field of view and misplaced by half a
    thick slice. Windows are batched (``windows_per_batch``) and the in-plane size is padded to the network's
    divisor and cropped back. Time is linear in the number of thick slices.

    Args:
        scale: thin slices per thick slice.
        n_inputs: thick slices per network input (even).
        axis: spatial through-plane axis of the input (0, 1, 2).
        windows_per_batch: windows per forward pass.
        divisor: in-plane sizes are padded to a multiple of it.

    Raises:
        ValueError: fewer than ``n_inputs`` thick slices, or a network output with the wrong number of slices.
    """

    def __init__(
        self, scale: int, n_inputs: int = 4, axis: int = 2, windows_per_batch: int = 8, divisor: int = 8
    ) -> None:
        super().__init__()
        if int(scale) < 2 or int(n_inputs) < 2 or int(n_inputs) % 2:
            raise ValueError(f"scale must be >= 2 and n_inputs even and >= 2, got {scale!r} and {n_inputs!r}.")
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be a spatial axis 0, 1 or 2, got {axis!r}.")
        self.scale, self.n_inputs, self.axis = int(scale), int(n_inputs), int(axis)
        self.windows_per_batch, self.divisor = max(1, int(windows_per_batch)), int(divisor)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        x = torch.movedim(inputs, 2 + self.axis, 2)  # (B, C, N, H, W): slices on dim 2
        n = x.shape[2]
        if n < self.n_inputs:
            raise ValueError(f"the volume has {n} slices along axis {self.axis}; at least {self.n_inputs} are needed.")
        x, (height, width) = pad_to_divisor(x, (self.divisor, self.divisor))
        half = self.n_inputs // 2
        padded = F.pad(x, (0, 0, 0, 0, half, half), mode="reflect")
        batch = x.shape[0]
        out: torch.Tensor | None = None
        starts = list(range(n + 1))  # window w covers padded slices w .. w + n_inputs - 1: the gap w - 1 | w
        for first in range(0, len(starts), self.windows_per_batch):
            chunk = starts[first : first + self.windows_per_batch]
            windows = torch.cat([padded[:, :, w : w + self.n_inputs] for w in chunk])
            pred = network(windows, *args, **kwargs)
            if pred.shape[2] != self.scale:
                raise ValueError(f"the network returned {pred.shape[2]} slices per window, expected {self.scale}.")
            if out is None:
                out = pred.new_zeros((batch, pred.shape[1], n * self.scale, *pred.shape[3:]))
            for i, w in enumerate(chunk):
                row = gap_start(self.scale, w - 1)
                for m in range(self.scale):
                    if 0 <= row + m < n * self.scale:
                        out[:, :, row + m] = pred[i * batch : (i + 1) * batch, :, m]
        assert out is not None
        out = out[..., :height, :width]
        return torch.movedim(out, 2, 2 + self.axis)
