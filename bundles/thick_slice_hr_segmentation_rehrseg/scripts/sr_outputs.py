"""Folder inference's optional outputs beside the HR segmentation: the self-SR image and the UASR uncertainty map.

The self-SR networks take an (image, label) pair (``train_sr.json``), and a new volume has no label: the segmenter's
own LR head gives it (foreground where its LR prediction is not background), the input the networks had in training
(the LR annotation). The plain network's image channel is the SR image and the UASR model's third channel is U,
exactly as ``pseudo_hr.json`` makes the segmenter's training data, so a user sees what stage 2 trained on. Both come
out on the HR head's thin grid (``N * scale`` slices over the input's extent).
"""

from __future__ import annotations

__all__ = ["HRSegWithSRInferer"]

from collections.abc import Callable, Sequence
from typing import Any

import torch
from common.checkpoint import load_weights, require_weights
from common.inferers import SlidingSliceSR, ThickSliceSegInferer
from monai.inferers import Inferer
from scripts.pseudo_hr import sliding_sr


class HRSegWithSRInferer(Inferer):
    """The HR head's logits, and with SR networks given, the SR image and U map as two more channels.

    Without ``sr_network`` (``save_sr`` off: inference.json disables the SR network definitions, so they arrive as
    ``None``) this is :class:`common.inferers.ThickSliceSegInferer` with the HR head, unchanged. With them, the
    output is ``(B, C + 2, X, Y, scale * Z)``: the ``C`` HR logits, the plain self-SR image (the scaled input's units)
    and U in (0, 1).

    Args:
        divisor, scale, roi_size, overlap: as :class:`common.inferers.ThickSliceSegInferer`.
        axis: spatial through-plane axis (the segmenter's is the last; the SR window slides along this one).
        sr_network, uasr_network: ``common.nets.FLAVRSelfSR`` with the plain and the UASR head, or ``None``.
        sr_weights, uasr_weights: their trained weights (``train_sr.json`` and ``train_uasr.json`` write them).
        hint: what to run when a weights file is missing.
        windows_per_batch: SR windows per forward pass.
        device: where the SR networks run.

    Raises:
        FileNotFoundError: a weights file is missing (naming it and ``hint``), when the SR networks are given.
        ValueError: one SR network given without the other.
    """

    def __init__(
        self,
        divisor: Sequence[int],
        scale: int,
        axis: int = 2,
        roi_size: Sequence[int] | None = None,
        overlap: float = 0.25,
        sr_network: torch.nn.Module | None = None,
        uasr_network: torch.nn.Module | None = None,
        sr_weights: str | None = None,
        uasr_weights: str | None = None,
        hint: str = "",
        windows_per_batch: int = 8,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        if (sr_network is None) != (uasr_network is None):
            raise ValueError("give both SR networks (plain and UASR) or neither.")
        self.segment = ThickSliceSegInferer(divisor, scale=scale, head="hr", roi_size=roi_size, overlap=overlap)
        self.lr_segment = ThickSliceSegInferer(divisor, scale=scale, head="lr", roi_size=roi_size, overlap=overlap)
        self.networks: tuple[torch.nn.Module, torch.nn.Module] | None = None
        self.super_resolve: SlidingSliceSR | None = None
        if sr_network is not None and uasr_network is not None:
            for network, weights in ((sr_network, sr_weights), (uasr_network, uasr_weights)):
                load_weights(network, require_weights(str(weights), hint), map_location=device)
                network.to(device).eval()
            self.networks = (sr_network, uasr_network)
            self.super_resolve = sliding_sr(sr_network, scale, axis, windows_per_batch)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        hr_logits = self.segment(inputs, network)
        if self.networks is None or self.super_resolve is None:
            return hr_logits
        sr_network, uasr_network = self.networks
        with torch.no_grad():
            foreground = (self.lr_segment(inputs, network).argmax(1, keepdim=True) > 0).to(inputs.dtype)
            pair = torch.cat([inputs, foreground], 1)
            image = self.super_resolve(pair, sr_network)[:, :1]
            uncertainty = self.super_resolve(pair, uasr_network)[:, 2:3].clamp(0, 1)
        return torch.cat([hr_logits, image.to(hr_logits), uncertainty.to(hr_logits)], 1)
