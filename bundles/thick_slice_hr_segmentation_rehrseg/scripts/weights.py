"""Where the self-SR networks start: a frame-interpolation checkpoint (optional) and the plain model for UASR."""

from __future__ import annotations

__all__ = ["initialise_sr", "initialise_uasr", "uasr_param_groups", "SR_INITIALIZATIONS", "pre_upsampler"]

import logging

import torch
from common.checkpoint import extract_state_dict, load_weights, require_weights
from common.nets import from_flavr_names, load_plain_into_uasr
from monai.networks.utils import copy_model_state

logger = logging.getLogger(__name__)


def initialise_sr(network: torch.nn.Module, init_weights: str | None) -> int:
    """Start the plain self-SR network from a video frame-interpolation checkpoint, or say that it starts from scratch.

    REHRSeg initialises FLAVR from its public 4x frame-interpolation weights (a download we never make). With
    ``init_weights`` (FLAVR's own checkpoint, its ``state_dict`` under FLAVR's names, ``module.`` prefix or not, or a
    checkpoint of this network) the tensors whose names (FLAVR's mapped by ``common.nets.from_flavr_names``) and
    shapes match are copied: FLAVR's encoder and decoder; its 3-channel stem and its heads differ from this 2-channel
    network's, as in the public code, and stay random. The number copied is logged; none matching is refused.

    Returns:
        The number of tensors copied (0 without ``init_weights``).

    Raises:
        ValueError: the checkpoint shares no tensor with the network.
    """
    if init_weights is None:
        logger.info("self-SR: no frame-interpolation checkpoint (init_weights is null): training from scratch.")
        return 0
    checkpoint = torch.load(init_weights, map_location="cpu", weights_only=True)
    state = from_flavr_names(extract_state_dict(checkpoint, path=init_weights))
    _, copied, _ = copy_model_state(network, state, inplace=True)
    if not copied:
        raise ValueError(f"{init_weights}: no tensor matches the self-SR network by name and shape; is it FLAVR's?")
    left = len(network.state_dict()) - len(copied)
    logger.info(f"self-SR: {len(copied)} tensors initialised from {init_weights}; {left} keep their initialisation.")
    return len(copied)


def initialise_uasr(network: torch.nn.Module, plain_weights: str) -> list[str]:
    """Fine-tune the UASR model from the trained plain self-SR network (the public code loads a file that does not
    exist yet on a fresh run); returns the names of the UASR-only tensors left at their initialisation."""
    state = extract_state_dict(torch.load(plain_weights, map_location="cpu", weights_only=True), path=plain_weights)
    fresh = load_plain_into_uasr(network, state)
    logger.info(f"UASR: started from {plain_weights}; {len(fresh)} UASR-head tensors are new.")
    return fresh


def uasr_param_groups(network: torch.nn.Module, lr: float, head_lr: float) -> list[dict]:
    """Adam parameter groups of the UASR fine-tune: the encoder and decoder (loaded from the plain network) at ``lr``,
    the UASR head (new: no tensor of it comes from the plain network) at ``head_lr``.

    The head is what the fine-tune has to learn from its initialisation, in a few hundred steps where the public code
    takes 20 000; at the body's small fine-tuning rate the uncertainty read-out barely moves from where it starts.
    """
    head = [p for name, p in network.named_parameters() if name.startswith("head.")]
    if not head:
        raise ValueError(f"{type(network).__name__} has no 'head.' parameters: not a FLAVRSelfSR.")
    body = [p for name, p in network.named_parameters() if not name.startswith("head.")]
    return [{"params": body, "lr": float(lr)}, {"params": head, "lr": float(head_lr)}]


#: where the self-SR pairs are cut from: the thick volume's cubic zoom onto the thin grid (the public code's fallback)
#: or that zoom refined by the SMORE-style pre-upsampler (its stage 1a, ``train_pre_upsampler.json``)
SR_INITIALIZATIONS = ("cubic", "smore")


def pre_upsampler(sr_initialization: str, network: torch.nn.Module, weights: str, hint: str) -> torch.nn.Module | None:
    """The trained SMORE-style pre-upsampler for ``sr_initialization: "smore"`` (loaded from ``weights`` on the CPU,
    refused with ``hint`` when the file is missing; ``common.transforms.PreUpsampleThinGridd`` runs it on the training
    device), ``None`` for ``"cubic"``.

    Raises:
        ValueError: ``sr_initialization`` is neither, naming both choices.
        FileNotFoundError: ``"smore"`` without the weights file (the message says which command writes it).
    """
    if sr_initialization not in SR_INITIALIZATIONS:
        raise ValueError(f"sr_initialization must be one of {SR_INITIALIZATIONS}, got {sr_initialization!r}.")
    if sr_initialization == "cubic":
        return None
    load_weights(network, require_weights(weights, hint), map_location="cpu")
    logger.info(f"self-SR: pairs cut from the thick volumes pre-upsampled by {weights} (SMORE-style stage 1a).")
    return network.eval()
