"""A plain convolutional SR baseline on the interpolated input (EDSR-like, Lim et al., CVPRW 2017)."""

from __future__ import annotations

__all__ = ["EDSRBaseline"]

from collections.abc import Iterator

import torch
from torch import nn


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int, res_scale: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.body(x)


class EDSRBaseline(nn.Module):
    """EDSR's body (residual blocks without batch norm, residual scaling, a global skip) on the interpolated input.

    TransMRSR's Tables 1-2 compare against EDSR. Here it takes the same input as TransMRSR (the thick-slice image
    interpolated onto the thin grid), so it has no up-sampling tail, and predicts the residual to that input as
    TransMRSR does (Eq. 11): the comparison isolates the Swin encoder and the generative prior.

    Args:
        in_channels, out_channels: image channels.
        channels: feature width (EDSR baseline: 64).
        num_blocks: residual blocks (EDSR baseline: 16).
        res_scale: residual scaling inside each block (EDSR: 0.1 for its large model, 1 for the baseline).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        channels: int = 64,
        num_blocks: int = 16,
        res_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.head = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.body = nn.Sequential(
            *[_ResidualBlock(channels, res_scale) for _ in range(num_blocks)],
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        self.tail = nn.Conv2d(channels, out_channels, 3, padding=1)
        # zero residual at the start, as TransMRSR's head: both start from the interpolated input they must beat
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)
        self.in_channels, self.out_channels = in_channels, out_channels

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """All parameters (the SR bundles' optimizers ask every network for its trainable ones)."""
        return self.parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(x)
        residual = self.tail(features + self.body(features))
        return residual + x if self.in_channels == self.out_channels else residual
