"""SwinSSegNet: end-to-end super-resolution segmentation (Wang et al., section II.B, Fig. 4)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from common.nets.encoders import ENCODER_NAMES, build_encoder
from monai.networks.blocks import Convolution

__all__ = ["SwinSSeg"]

SCALES = (1, 2, 4, 8)
# Part 2 halves the channels at every x2 step (96 -> 48 -> 24 -> 12 for scale 8), never below this width.
MIN_SUPER_RESOLUTION_CHANNELS = 8


class _DoubleConv(nn.Sequential):
    """Two ``3x3 conv -> ReLU -> BatchNorm`` stacks (the paper's "double convolution layer", in its order)."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int) -> None:
        super().__init__(
            *[
                Convolution(
                    spatial_dims, c_in, out_channels, kernel_size=3, act="RELU", norm="BATCH", adn_ordering="AN"
                )
                for c_in in (in_channels, out_channels)
            ]
        )


class _UpBlock(nn.Module):
    """Decoder part 1 block: transposed-conv upsampling by ``factor``, concatenation with a skip, double conv."""

    def __init__(self, spatial_dims: int, in_channels: int, skip_channels: int, out_channels: int, factor: int):
        super().__init__()
        self.up = Convolution(
            spatial_dims,
            in_channels,
            out_channels,
            strides=factor,
            kernel_size=factor,
            padding=0,
            output_padding=0,
            is_transposed=True,
            conv_only=True,
        )
        self.conv = _DoubleConv(spatial_dims, out_channels + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class _SuperResolutionBlock(nn.Module):
    """Decoder part 2 block: (bi/tri)linear x2 interpolation followed by a double conv."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.mode = "bilinear" if spatial_dims == 2 else "trilinear"
        self.conv = _DoubleConv(spatial_dims, in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode=self.mode, align_corners=False))


class SwinSSeg(nn.Module):
    """SwinSSegNet: Swin encoder + convolutional decoder that outputs a ``scale`` times larger segmentation.

    Wang et al., "Style Transfer and Self-Supervised Learning Powered Myocardium Infarction Super-Resolution
    Segmentation", section II.B and Fig. 4 (after Dual Super-Resolution Learning). Layout:

    - encoder ``self.encoder = build_encoder(encoder, ...)``: 4 maps at strides ``patch_size * (1, 2, 4, 8)``
      (2, 4, 8, 16) with ``C * (1, 2, 4, 8)`` channels, ``C = feature_size`` (see :mod:`common.nets.encoders`);
    - skips: a double conv on the raw input (``in_channels -> C``, full size) and one on each encoder map
      (width kept; the deepest one is the bottleneck);
    - decoder part 1: from the bottleneck, one block per skip (transposed conv x2, or x ``patch_size`` for the
      last, concatenation with the skip, double conv) back to ``H x W`` with ``C`` channels;
    - decoder part 2: ``log2(scale)`` blocks of bilinear x2 interpolation + double conv; the channels halve at
      every step (not below 8: the paper gives no widths, and full width at 512x512 would cost ~64x the FLOPs);
    - head: 1x1 conv to ``out_channels`` raw logits (no activation: use ``DiceCELoss(softmax=True)``).

    Every double conv is ``3x3 conv -> ReLU -> BatchNorm`` twice, the order the paper states. ``scale=1`` is the
    paper's "SwinSegNet" / two-stage "Seg" baseline (bilinear upsampling of its output is done outside).

    Shapes: ``(B, in_channels, H, W) -> (B, out_channels, scale * H, scale * W)`` (3D likewise); every spatial size
    must divide by ``patch_size * 8`` (16 by default), otherwise ``forward`` raises ``ValueError`` naming the shape
    (no silent pad-and-crop). The input is an intensity-normalised image (any range; the phantom data is ``[0, 1]``).

    TorchScript: ``torch.jit.trace`` works for every encoder (the trace is specialised to the traced input size);
    ``torch.jit.script`` fails for the Swin encoder (MONAI's Swin blocks are not scriptable).

    Args:
        spatial_dims: 2 (the paper) or 3.
        in_channels: input channels.
        out_channels: classes (logit channels), e.g. 2 for background / MI.
        scale: super-resolution factor, one of 1, 2, 4, 8 (the paper: 8, 64x64 -> 512x512).
        encoder: ``"swin"``, ``"resnet"`` or ``"convnext"`` (paper Table I).
        feature_size: ``C``, the first encoder width (Swin-T: 96).
        depths: encoder blocks per stage (Swin-T: (2, 2, 6, 2)).
        num_heads: Swin attention heads per stage (Swin-T: (3, 6, 12, 24)).
        window_size: Swin window (7).
        patch_size: stride of the first encoder map (the paper: 2).
        drop_path_rate: encoder stochastic depth rate.
        class_prior: expected fraction of each class (``out_channels`` positive numbers, normalised here); the head
            bias starts at ``log(prior)`` so the first predictions follow the class frequencies (prior-probability
            initialisation, Lin et al., ICCV 2017). Why: the decoder ends in BatchNorm, whose output has zero mean
            over the batch, so the logits' overall level is set by the head bias and the last BatchNorm shift
            alone; from PyTorch's default init a deep encoder can start with most of the 512x512 pixels foreground,
            and Adam moves those few parameters by about ``lr`` per step, so at the paper's lr 1e-4 it takes
            thousands of steps to reach a ~1 % MI prior (measured: Swin-T-sized SSeg stuck at all-foreground).
            ``None`` keeps PyTorch's default initialisation.

    Raises:
        ValueError: naming ``scale``, ``out_channels``, ``class_prior`` or an encoder argument.

    Examples::

        >>> net = SwinSSeg(scale=8, feature_size=12, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))
        >>> net(torch.zeros(1, 1, 64, 64)).shape
        torch.Size([1, 2, 512, 512])
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 2,
        scale: int = 8,
        encoder: str = "swin",
        feature_size: int = 96,
        depths: tuple[int, ...] = (2, 2, 6, 2),
        num_heads: tuple[int, ...] = (3, 6, 12, 24),
        window_size: int = 7,
        patch_size: int = 2,
        drop_path_rate: float = 0.0,
        class_prior: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}.")
        if encoder not in ENCODER_NAMES:
            raise ValueError(f"encoder must be one of {ENCODER_NAMES}, got {encoder!r}.")
        if not isinstance(out_channels, int) or out_channels < 1:
            raise ValueError(f"out_channels must be a positive integer, got {out_channels!r}.")
        self.scale = scale
        self.encoder = build_encoder(
            encoder,
            spatial_dims=spatial_dims,
            in_channels=in_channels,
            feature_size=feature_size,
            depths=depths,
            num_heads=num_heads,
            window_size=window_size,
            patch_size=patch_size,
            drop_path_rate=drop_path_rate,
        )
        channels = list(self.encoder.out_channels)
        strides = list(self.encoder.strides)
        self.size_divisor = int(strides[-1])

        self.input_skip = _DoubleConv(spatial_dims, in_channels, feature_size)
        self.encoder_skips = nn.ModuleList([_DoubleConv(spatial_dims, c, c) for c in channels])
        # part 1: deepest map -> map 2 -> map 1 -> map 0 -> input size
        up_blocks = [
            _UpBlock(spatial_dims, channels[i + 1], channels[i], channels[i], 2)
            for i in reversed(range(len(channels) - 1))
        ]
        up_blocks.append(_UpBlock(spatial_dims, channels[0], feature_size, feature_size, strides[0]))
        self.up_blocks = nn.ModuleList(up_blocks)
        # part 2: log2(scale) x (interpolation x2 + double conv)
        widths = [feature_size]
        for _ in range(int(math.log2(scale))):
            widths.append(max(widths[-1] // 2, MIN_SUPER_RESOLUTION_CHANNELS))
        self.super_resolution_blocks = nn.ModuleList(
            [_SuperResolutionBlock(spatial_dims, widths[i], widths[i + 1]) for i in range(len(widths) - 1)]
        )
        self.head = Convolution(spatial_dims, widths[-1], out_channels, kernel_size=1, conv_only=True)
        if class_prior is not None:
            self._init_head_bias(class_prior, out_channels)

    def _init_head_bias(self, class_prior: Sequence[float], out_channels: int) -> None:
        prior = torch.as_tensor([float(p) for p in class_prior], dtype=torch.float32)
        if prior.numel() != out_channels or not bool((prior > 0).all()) or not bool(torch.isfinite(prior).all()):
            raise ValueError(
                f"class_prior must hold {out_channels} positive numbers (one per output channel), got {class_prior!r}."
            )
        with torch.no_grad():
            self.head.conv.bias.copy_(torch.log(prior / prior.sum()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: ``(B, in_channels, H, W[, D])``, every spatial size divisible by ``size_divisor`` (16 by default).

        Returns:
            raw logits ``(B, out_channels, scale * H, scale * W[, scale * D])``.
        """
        for size in x.shape[2:]:
            if size % self.size_divisor != 0:
                raise ValueError(
                    f"SwinSSeg input spatial shape {list(x.shape[2:])} must be divisible by {self.size_divisor} "
                    "(patch_size * 8); pad or crop the image first."
                )
        features = self.encoder(x)
        skips: list[torch.Tensor] = []
        for i, skip_conv in enumerate(self.encoder_skips):
            skips.append(skip_conv(features[i]))
        decoder_skips = skips[-2::-1] + [self.input_skip(x)]
        y = skips[-1]
        for i, block in enumerate(self.up_blocks):
            y = block(y, decoder_skips[i])
        for block in self.super_resolution_blocks:
            y = block(y)
        return self.head(y)
