"""A segmenter and the localiser that centres its crops, as one module with one weights file."""

from __future__ import annotations

__all__ = ["LocalisedNetwork"]

import torch
import torch.nn as nn


class LocalisedNetwork(nn.Module):
    """``forward`` is the segmenter's; the localiser rides along so that one ``model.pt`` holds both.

    A pipeline whose pre-processing crops around an organ found by a first network (the cascaded U-Net's heart
    localiser, Chen et al. 2019, section 3.2) needs that network's weights at inference too. Keeping both in one
    module gives one weights file: the model zoo's ``models/model.pt``, the only file MONAI Label's bundle task loads.
    The pre-processing reads the localiser from this module (``@network_def.localiser``).

    Args:
        segmenter: the network ``forward`` runs (e.g. ``common.nets.CascadedUNet``).
        localiser: the network the pre-processing runs (e.g. a ``BasicUNet`` with instance norm).
    """

    def __init__(self, segmenter: nn.Module, localiser: nn.Module) -> None:
        super().__init__()
        self.segmenter = segmenter
        self.localiser = localiser

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.segmenter(x)
