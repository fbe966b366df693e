"""A thick-slice segmenter with LR and HR heads run on a whole volume or in in-plane windows (REHRSeg stage 2)."""

from __future__ import annotations

__all__ = ["ThickSliceSegInferer"]

from collections.abc import Callable, Sequence
from typing import Any

import torch
from common.inferers._padding import pad_to_divisor
from monai.inferers import Inferer, sliding_window_inference


class ThickSliceSegInferer(Inferer):
    """Run a thick-slice segmenter (:class:`common.nets.HRSegUNet`) on a volume of any size.

    The input is replicate-padded at the end of each axis to the network's ``divisor`` and the output cropped back:
    to ``(X, Y, Z)`` for the LR head and ``(X, Y, scale * Z)`` for the HR head (the thin grid of the same extent).
    With ``roi_size`` a volume larger in-plane runs in overlapping in-plane windows of that size over all its slices
    (``monai.inferers.sliding_window_inference``, Gaussian blending; the HR head's windows are ``scale`` times as
    many slices), so the HR head's memory is bounded by the window, not the volume.

    Args:
        divisor: per-axis divisor ``(X, Y, Z)`` (the network's stride products).
        scale: HR slices per LR slice (along the last axis) when ``head`` is ``"hr"``.
        head: ``"hr"`` (``network(x)`` is the HR head), ``"lr"`` (``network.forward_lr`` when it has one) or
            ``"both"`` (``network.forward_all``; returns the LR and HR logits as a tuple).
        roi_size: in-plane window ``(X, Y)``, multiples of ``divisor``'s; ``None``: the whole volume at once.
        overlap: windows' overlap fraction.
        sw_batch_size: windows per forward.

    Raises:
        ValueError: an unknown ``head``, or ``roi_size`` not two positive multiples of the in-plane divisors.
    """

    def __init__(
        self,
        divisor: tuple[int, int, int],
        scale: int = 4,
        head: str = "hr",
        roi_size: Sequence[int] | None = None,
        overlap: float = 0.25,
        sw_batch_size: int = 1,
    ) -> None:
        super().__init__()
        if head not in ("hr", "lr", "both"):
            raise ValueError(f"head must be 'hr', 'lr' or 'both', got {head!r}.")
        self.divisor, self.scale, self.head = tuple(int(d) for d in divisor), int(scale), head
        if roi_size is not None:
            roi_size = tuple(int(r) for r in roi_size)
            if len(roi_size) != 2 or any(r < 1 or r % d for r, d in zip(roi_size, self.divisor)):
                raise ValueError(
                    f"roi_size must be two positive in-plane sizes, multiples of {self.divisor[:2]}, got {roi_size}."
                )
        self.roi_size, self.overlap, self.sw_batch_size = roi_size, float(overlap), int(sw_batch_size)

    def _run(self, x: torch.Tensor, predictor: Callable[[torch.Tensor], Any]) -> Any:
        """``predictor(x)``, or its windows blended, when ``roi_size`` is smaller than ``x`` in-plane."""
        if self.roi_size is None or all(n <= r for n, r in zip(x.shape[2:4], self.roi_size)):
            return predictor(x)
        roi = (*self.roi_size, int(x.shape[4]))
        return sliding_window_inference(
            x, roi, self.sw_batch_size, predictor, overlap=self.overlap, mode="gaussian", padding_mode="replicate"
        )

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any):
        x, (sx, sy, sz) = pad_to_divisor(inputs, self.divisor)
        module = getattr(network, "module", network)  # DDP exposes forward_all on .module
        if self.head == "lr":  # the HR head (the costliest layers, at s x the voxels) is not run
            forward_lr = getattr(module, "forward_lr", None)
            lr = self._run(x, forward_lr if forward_lr is not None else lambda t: module.forward_all(t)[0])
            return lr[..., :sx, :sy, :sz]
        if self.head == "both":
            lr, hr = self._run(x, lambda t: module.forward_all(t)[:2])
            lr, hr = lr[..., :sx, :sy, :sz], hr[..., :sx, :sy, : sz * self.scale]
            return lr, hr
        return self._run(x, lambda t: network(t, *args, **kwargs))[..., :sx, :sy, : sz * self.scale]
