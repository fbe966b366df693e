"""``models/model.pt``: the final cascade and the heart localiser in one file (what inference and MONAI Label load)."""

from __future__ import annotations

__all__ = ["write_inference_weights"]

import logging
import os

import torch
from common.checkpoint import load_weights, require_weights
from common.nets import LocalisedNetwork

logger = logging.getLogger(__name__)


def write_inference_weights(
    segmenter: torch.nn.Module, segmenter_weights: str, localiser: torch.nn.Module, localiser_weights: str, path: str
) -> str:
    """Load the last cascade stage and the localiser, save ``{"model": LocalisedNetwork state}`` to ``path``.

    Written atomically (a temporary file renamed), so a crash never leaves a half-written ``model.pt``.
    """
    load_weights(segmenter, require_weights(segmenter_weights, "train the cascade's stage unet2_ft first"))
    load_weights(localiser, require_weights(localiser_weights, "train the heart localiser first"))
    network = LocalisedNetwork(segmenter, localiser)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = f"{path}.partial"
    torch.save({"model": network.state_dict()}, partial)
    os.replace(partial, path)
    logger.info(f"inference weights (cascade + localiser) -> {path}")
    return path
