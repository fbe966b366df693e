"""REHRSeg's optional stage 1a: a SMORE-style 2D pre-upsampling network of (image, label) planes."""

from __future__ import annotations

__all__ = ["SMOREPreUpsampler"]

import torch
from common.nets.edsr import EDSRBaseline
from common.nets.flavr import LABEL_LOGIT
from torch import nn


class SMOREPreUpsampler(nn.Module):
    """A SMORE-style 2D SR network of an (image, label) plane interpolated onto the thin grid, giving (image, label
    logit) with the plane's thick axis restored.

    SMORE (Zhao et al., IEEE TMI 2021) trains a 2D EDSR on the volume's own in-plane slices, one in-plane axis
    degraded to the slice thickness and interpolated back, and applies it to the planes that contain the real
    through-plane axis. REHRSeg's public code runs such a 2D network (a WDSR there, with the label as a second
    channel, trained with L1 + BCE-Dice) before its FLAVR stage, so the self-SR pairs are cut from that
    pre-upsampled volume instead of a cubic zoom (``train_all.py:265-330``). Here the body is
    :class:`common.nets.EDSRBaseline` on the interpolated plane, as SMORE's own network, and the output is a residual:
    image ``image + o``, label logit ``LABEL_LOGIT (2 label - 1) + o`` (the FLAVR-style networks' form); the last
    convolution starts at zero, so a fresh network returns the interpolation it has to improve on.

    Shapes: ``(B, 2, H, W)`` (image, label in [0, 1]) in, ``(B, 2, H, W)`` (image, label logit) out; the thick axis
    is the last one (:class:`common.transforms.SliceSRPairsd` and :class:`common.transforms.PreUpsampleThinGridd`
    keep that convention).

    Args:
        channels: feature width (the public code's WDSR: 32).
        num_blocks: residual blocks (16 there).

    Examples::

        >>> SMOREPreUpsampler(channels=8, num_blocks=1)(torch.zeros(1, 2, 16, 16)).shape
        torch.Size([1, 2, 16, 16])
    """

    def __init__(self, channels: int = 32, num_blocks: int = 16) -> None:
        super().__init__()
        self.body = EDSRBaseline(in_channels=2, out_channels=2, channels=int(channels), num_blocks=int(num_blocks))
        self.label_logit = LABEL_LOGIT

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 2:
            raise ValueError(f"SMOREPreUpsampler takes (B, 2, H, W) (image, label), got {tuple(x.shape)}.")
        base = torch.cat([x[:, :1], self.label_logit * (2.0 * x[:, 1:2] - 1.0)], dim=1)
        return self.body(base)  # EDSRBaseline adds its input: base + the learnt residual
