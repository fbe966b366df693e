"""MONAI's ``CheckpointLoader`` that says why a weights file does not fit the network, and what to do."""

from __future__ import annotations

__all__ = ["WeightsLoader"]

import torch
from common.checkpoint import extract_state_dict, require_weights_fit
from ignite.engine import Engine
from monai.handlers import CheckpointLoader


class WeightsLoader(CheckpointLoader):
    """``CheckpointLoader`` for inference and evaluation configs: before loading (strict), every network of
    ``load_dict`` is checked against the file with ``common.checkpoint.require_weights_fit``, so weights trained
    under an overlay (``configs/tiny.json``, ``configs/quick.json``) and loaded without it fail with a message that
    names the file and the overlay, not PyTorch's list of every differing tensor. Loading itself is MONAI's.

    Examples::

        {"_target_": "common.handlers.WeightsLoader", "load_path": "@model_weights",
         "load_dict": {"model": "@network_def"}, "map_location": "@device", "strict": true}
    """

    def __call__(self, engine: Engine) -> None:
        if self.strict:
            checkpoint = _load_mapped(self.load_path)
            for name, obj in self.load_dict.items():
                if isinstance(obj, torch.nn.Module):
                    # a file holding one network is its bare state_dict (as CheckpointLoader reads it)
                    key = name if name in checkpoint else None
                    state = extract_state_dict(checkpoint, key=key, path=self.load_path)
                    require_weights_fit(obj, state, self.load_path)
        super().__call__(engine)


def _load_mapped(path: str) -> dict:
    """The file with its tensors memory-mapped: the check reads names and shapes only, so the values are read once,
    by MONAI's load after it. Files in PyTorch's pre-1.6 format cannot be mapped and are read whole."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as error:
        if "mmap" not in str(error):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)
