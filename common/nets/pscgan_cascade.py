"""PSCGAN's three generators chained for inference: Pri's coarse mask -> Sys's LGE-equivalent image -> Seg's mask."""

from __future__ import annotations

__all__ = ["PSCGANCascade", "JointOutput"]

import torch
from torch import nn


class PSCGANCascade(nn.Module):
    """Pri -> Sys -> Seg (PSCGAN Fig. 7): each generator takes the cine and the previous phase's output.

    ``forward(cine)`` returns the output of the last phase present: Pri's probabilities ``(B, N, H, W)`` with
    ``pri`` alone, Sys's image ``(B, 1, H, W)`` with ``pri`` and ``sys``, and with all three the final
    segmentation probabilities and the LGE-equivalent image in one tensor ``(B, N + 1, H, W)`` (channels ``0..N-1``
    Seg's probabilities, channel ``N`` Sys's image in ``[-1, 1]``): the bundle's inference output, the same layout as
    the one-generator ablation (:class:`JointOutput`).

    It compiles with ``torch.jit.script`` (as :class:`JointOutput` does) around
    :class:`~common.nets.pscgan.PSCGANGenerator` of any encoder kind: an absent ``sys`` or ``seg`` is a ``None``
    attribute, which TorchScript resolves at compile time.

    Args:
        pri: cine -> mask probabilities.
        sys: (cine, mask probabilities) -> image.
        seg: (cine, image) -> mask probabilities.
    """

    def __init__(self, pri: nn.Module, sys: nn.Module | None = None, seg: nn.Module | None = None) -> None:
        super().__init__()
        if seg is not None and sys is None:
            raise ValueError("seg conditions on the synthesis: a cascade with seg needs sys.")
        self.pri, self.sys, self.seg = pri, sys, seg

    def forward(self, cine: torch.Tensor) -> torch.Tensor:
        mask = self.pri(cine)
        if self.sys is None:
            return mask
        image = self.sys(cine, mask)
        if self.seg is None:
            return image
        return torch.cat([self.seg(cine, image), image], 1)


class JointOutput(nn.Module):
    """The one-generator ablation's output head (Table 3, "progressive training removed"): a generator with
    ``output="none"`` and ``N + 1`` raw channels -> softmax over the first ``N`` (mask probabilities) and tanh on the
    last (the image), the layout of :class:`PSCGANCascade`."""

    def __init__(self, generator: nn.Module, num_classes: int = 4) -> None:
        super().__init__()
        self.generator, self.num_classes = generator, int(num_classes)

    def forward(self, cine: torch.Tensor) -> torch.Tensor:
        raw = self.generator(cine)
        n = self.num_classes
        return torch.cat([torch.softmax(raw[:, :n], 1), torch.tanh(raw[:, n:])], 1)
