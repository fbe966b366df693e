"""U-SSL network: SwinSSegNet's encoder with rotation, contrastive and reconstruction heads (section II.C)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
from common.nets.encoders import ENCODER_NAMES, build_encoder
from monai.networks.blocks import Convolution

__all__ = ["SSLNet"]


class SSLNet(nn.Module):
    """Encoder + the three U-SSL pre-training heads (rotation, contrastive projection, masked-image reconstruction).

    Wang et al., "Style Transfer and Self-Supervised Learning Powered Myocardium Infarction Super-Resolution
    Segmentation", section II.C and Fig. 5 (after Tang et al.'s Swin UNETR pre-training, CVPR 2022), in 2D.
    ``self.encoder = build_encoder(...)`` is built exactly as :class:`common.nets.SwinSSeg` builds its encoder, so
    the ``encoder.*`` keys of a pre-trained ``SSLNet`` load one to one into a ``SwinSSeg`` with the same encoder
    arguments. On the deepest encoder map (``8 * feature_size`` channels, stride ``patch_size * 8``):

    - rotation head: global average pool + linear -> ``num_rotations`` logits (eq. 3);
    - contrastive head: global average pool + MLP (linear, ReLU, linear) -> ``proj_dim`` embedding (eq. 5;
      not normalised, the NT-Xent loss uses cosine similarity);
    - reconstruction head: ``log2(stride)`` x (2x2 stride-2 transposed conv halving the channels, InstanceNorm,
      LeakyReLU), then a 1x1 conv to ``in_channels`` (eq. 4), raw (no activation: the target is the normalised
      rotated image).

    Shapes: ``(B, in_channels, H, W)`` with ``H, W`` divisible by ``patch_size * 8`` (16 by default) ->
    ``rotation_logits (B, num_rotations)``, ``embedding (B, proj_dim)``, ``reconstruction (B, in_channels, H, W)``.

    Args:
        encoder: ``"swin"``, ``"resnet"`` or ``"convnext"``.
        in_channels: image channels.
        feature_size, depths, num_heads, window_size, patch_size, drop_path_rate: encoder arguments, as
            :func:`common.nets.build_encoder` and :class:`common.nets.SwinSSeg`.
        proj_dim: contrastive embedding size.
        hidden_dim: hidden width of the contrastive MLP.
        num_rotations: rotation classes (4: 0/90/180/270 degrees).

    Raises:
        ValueError: naming the offending argument, or the input shape in ``forward``.

    Examples::

        >>> net = SSLNet(feature_size=12, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))
        >>> net(torch.zeros(2, 1, 32, 32))["reconstruction"].shape
        torch.Size([2, 1, 32, 32])
    """

    def __init__(
        self,
        encoder: str = "swin",
        in_channels: int = 1,
        feature_size: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        patch_size: int = 2,
        drop_path_rate: float = 0.0,
        proj_dim: int = 128,
        hidden_dim: int = 512,
        num_rotations: int = 4,
    ) -> None:
        super().__init__()
        if encoder not in ENCODER_NAMES:
            raise ValueError(f"encoder must be one of {ENCODER_NAMES}, got {encoder!r}.")
        for name, value in (("proj_dim", proj_dim), ("hidden_dim", hidden_dim), ("num_rotations", num_rotations)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        self.encoder = build_encoder(
            encoder,
            spatial_dims=2,
            in_channels=in_channels,
            feature_size=feature_size,
            depths=depths,
            num_heads=num_heads,
            window_size=window_size,
            patch_size=patch_size,
            drop_path_rate=drop_path_rate,
        )
        deepest = int(self.encoder.out_channels[-1])
        self.size_divisor = int(self.encoder.strides[-1])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.rotation_head = nn.Linear(deepest, num_rotations)
        self.contrastive_head = nn.Sequential(
            nn.Linear(deepest, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, proj_dim)
        )
        layers: list[nn.Module] = []
        channels = deepest
        for _ in range(int(math.log2(self.size_divisor))):
            layers.append(
                Convolution(
                    2,
                    channels,
                    max(channels // 2, 1),
                    strides=2,
                    kernel_size=2,
                    padding=0,
                    output_padding=0,
                    is_transposed=True,
                    act="LEAKYRELU",
                    norm="INSTANCE",
                )
            )
            channels = max(channels // 2, 1)
        layers.append(Convolution(2, channels, in_channels, kernel_size=1, conv_only=True))
        self.reconstruction_head = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """
        Args:
            x: ``(B, in_channels, H, W)`` (a masked, rotated view), sizes divisible by ``size_divisor``.

        Returns:
            dict with ``rotation_logits``, ``embedding`` and ``reconstruction`` (shapes in the class docstring).
        """
        if x.dim() != 4 or any(s % self.size_divisor for s in x.shape[2:]):
            raise ValueError(
                f"SSLNet input shape {tuple(x.shape)} must be (B, C, H, W) with H, W divisible by {self.size_divisor}."
            )
        deepest = self.encoder(x)[-1]
        pooled = self.pool(deepest).flatten(1)
        return {
            "rotation_logits": self.rotation_head(pooled),
            "embedding": self.contrastive_head(pooled),
            "reconstruction": self.reconstruction_head(deepest),
        }
