"""The paper's two-stage "Seg" baseline: segment at input resolution, then interpolate the probabilities."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.inferers import Inferer

__all__ = ["UpsampledInferer"]


class UpsampledInferer(Inferer):
    """Run the network, then resize its logits by `scale` with `mode` ("bilinear" or "nearest").

    Fig. 6(B) of the paper compares SwinSSegNet ("SSeg", scale 8 inside the network) with the same network at
    scale 1 followed by bilinear upsampling ("Seg"); nearest-neighbour upsampling is added as a floor.
    """

    def __init__(self, scale: int = 8, mode: str = "bilinear") -> None:
        super().__init__()
        if mode not in ("bilinear", "nearest"):
            raise ValueError(f"mode must be 'bilinear' or 'nearest', got {mode!r}.")
        self.scale, self.mode = int(scale), mode

    def __call__(self, inputs: torch.Tensor, network, *args, **kwargs) -> torch.Tensor:
        logits = network(inputs, *args, **kwargs)
        kwargs_interp = {"align_corners": False} if self.mode == "bilinear" else {}
        return F.interpolate(logits, scale_factor=self.scale, mode=self.mode, **kwargs_interp)
