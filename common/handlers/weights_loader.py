"""MONAI's ``CheckpointLoader`` that says why a weights file does not fit the network, and what to do."""

from __future__ import annotations

__all__ = ["WeightsLoader"]

import torch
from common.checkpoint import extract_state_dict, load_encoder, require_weights_fit
from ignite.engine import Engine
from monai.handlers import CheckpointLoader


class WeightsLoader(CheckpointLoader):
    """``CheckpointLoader`` for inference and evaluation configs: before loading (strict), every network of
    ``load_dict`` is checked against the file with ``common.checkpoint.require_weights_fit``, so weights trained
    under an overlay (``configs/tiny.json``, ``configs/quick.json``) and loaded without it fail with a message that
    names the file and the overlay, not PyTorch's list of every differing tensor. Loading itself is MONAI's, except
    with ``strict_shape=False``: MONAI 1.6.1 hands the whole checkpoint dict to ``copy_model_state`` there, whose
    names then match none of the network's, so nothing loads ("updated: 0 of N variables"); here each network gets
    the file's tensors whose name and shape fit it (the others keep their values, and the log names how many).

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
        if not self.strict_shape:
            self._load_fitting()
            return
        super().__call__(engine)

    def _load_fitting(self) -> None:
        """The partial load of ``strict_shape=False``: per network, the tensors whose name and shape fit
        (``common.checkpoint.load_encoder`` with no prefix, which logs how many it copied)."""
        entries = _load_mapped(self.load_path)  # the entry names only: the values are read by load_encoder
        for name, obj in self.load_dict.items():
            if not isinstance(obj, torch.nn.Module):  # as MONAI: only networks load without a strict shape
                self.logger.warning(f"strict_shape is False: `{name}` is not a network and is not loaded.")
                continue
            load_encoder(obj, self.load_path, prefix="", min_keys=0, key=name if name in entries else None)


def _load_mapped(path: str) -> dict:
    """The file with its tensors memory-mapped: the check reads names and shapes only, so the values are read once,
    by MONAI's load after it. Files in PyTorch's pre-1.6 format cannot be mapped and are read whole."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as error:
        if "mmap" not in str(error):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)
