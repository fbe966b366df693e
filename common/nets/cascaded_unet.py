"""Cascaded U-Net of Chen, Ouyang et al. (MUNIT + cascaded U-Net, STACOM/MS-CMRSeg 2019, section 2.2, Fig. 3)."""

from __future__ import annotations

__all__ = ["UNetBN", "CascadedUNet"]

from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv, Dropout, Norm, Pool

#: the vanilla U-Net's widths (Ronneberger et al. 2015, Fig. 1): the paper keeps the vanilla U-Net apart from BN and
#: dropout (Fig. 3 caption) and states no widths of its own
VANILLA_UNET_FEATURES = (64, 128, 256, 512, 1024)
#: Fig. 3 caption: "a dropout layer (dropout rate=0.1) is applied after each concatenation operation"
PAPER_DROPOUT = 0.1


class _TwoConvBN(nn.Sequential):
    """``2 x (3x3 conv, padding 1 -> BatchNorm -> ReLU)``: one level of either path."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int) -> None:
        conv, norm = Conv[Conv.CONV, spatial_dims], Norm[Norm.BATCH, spatial_dims]
        super().__init__(
            conv(in_channels, out_channels, kernel_size=3, padding=1),
            norm(out_channels),
            nn.ReLU(inplace=True),
            conv(out_channels, out_channels, kernel_size=3, padding=1),
            norm(out_channels),
            nn.ReLU(inplace=True),
        )


class _UpConcatDropout(nn.Module):
    """One level of the expanding path: ``up-conv -> concat(skip, up) -> dropout -> two conv-BN-ReLU``.

    The up-conv is a 2x2 stride-2 transposed conv that halves the channels (the vanilla U-Net's "up-convolution"),
    followed by BatchNorm and ReLU (the paper puts BN after each convolutional layer). Dropout is applied to the
    concatenated tensor itself, right after the concatenation (Fig. 3 caption); it is MONAI's ``Dropout`` factory
    type, i.e. channel-wise ``nn.Dropout2d``/``nn.Dropout3d`` (whole feature maps are dropped), as the ``up`` block of
    the first author's public U-Net (cherise215/advchain ``models/unet_parts.py``: ``cat -> nn.Dropout2d -> convs``).
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, dropout: float) -> None:
        super().__init__()
        self.up = nn.Sequential(
            Conv[Conv.CONVTRANS, spatial_dims](in_channels, out_channels, kernel_size=2, stride=2),
            Norm[Norm.BATCH, spatial_dims](out_channels),
            nn.ReLU(inplace=True),
        )
        self.dropout = Dropout[Dropout.DROPOUT, spatial_dims](p=dropout)
        self.convs = _TwoConvBN(spatial_dims, 2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.convs(self.dropout(torch.cat([skip, self.up(x)], dim=1)))


class UNetBN(nn.Module):
    """The U-Net of each stage of the cascade: the vanilla U-Net with BatchNorm and dropout after each concatenation.

    Chen, Ouyang et al., "Unsupervised Multi-modal Style Transfer for Cardiac MR Segmentation" (STACOM 2019),
    section 2.2 and Fig. 3: "the same as the vanilla U-net, except for two main differences: (1) batch normalization
    is applied after each convolutional layer; (2) a dropout layer (dropout rate=0.1) is applied after each
    concatenation operation in the network's expanding path". The vanilla U-Net (Ronneberger et al., MICCAI 2015):

    - contracting path: per level two 3x3 convs, each followed by BatchNorm and ReLU, then 2x2 max pooling;
    - expanding path: per level a 2x2 stride-2 transposed conv ("up-conv", halves the channels; followed by BN and
      ReLU), concatenation ``[skip, up]``, channel-wise dropout (``nn.Dropout2d``, rate ``dropout`` = 0.1) on the
      concatenated tensor, two 3x3 conv-BN-ReLU;
    - a 1x1 conv to ``out_channels`` raw logits (no final activation: softmax belongs to the loss/postprocessing).

    Differences from the vanilla U-Net that the paper does not state: convs are zero-padded ("same"), so the output
    has the input's size and no cropping of the skips is needed; widths are the vanilla U-Net's 64..1024 by default
    (the paper gives none; the first author's later public U-Net, cherise215/advchain, uses 64-128-256-512-512 with
    bilinear upsampling without a conv). MONAI's ``BasicUNet`` places dropout inside every conv block, hence this
    network.

    Shapes: ``(B, in_channels, H, W[, D]) -> (B, out_channels, H, W[, D])``; every spatial size must be divisible by
    ``2**depth`` (16 for the default 5 widths), otherwise ``forward`` raises ``ValueError``. Input: an intensity
    normalised image (the paper normalises each cropped image); output: logits.

    Args:
        spatial_dims: 2 (the paper) or 3.
        in_channels: input channels (1 for U-Net 1, 1 + 4 for U-Net 2 of the cascade).
        out_channels: classes (4: BG, LV, MYO, RV).
        features: channels per level, from the first level to the bottleneck; ``depth = len(features) - 1``
            poolings. Default ``(64, 128, 256, 512, 1024)`` (vanilla U-Net, depth 4).
        dropout: rate of the dropout after each concatenation of the expanding path (paper: 0.1).

    Raises:
        ValueError: naming the offending argument; in ``forward`` naming the input shape that is not divisible by
            ``2**depth``.

    Examples::

        >>> UNetBN(features=(8, 16, 32))(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 4, 32, 32])
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 4,
        features: Sequence[int] = VANILLA_UNET_FEATURES,
        dropout: float = PAPER_DROPOUT,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        features = tuple(features)
        if len(features) < 2 or any(not isinstance(f, int) or isinstance(f, bool) or f < 1 for f in features):
            raise ValueError(f"features must hold at least 2 positive integers (depth >= 1), got {features!r}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.features = features
        self.depth = len(features) - 1
        self.size_divisor = 2**self.depth

        channels = (in_channels, *features)
        self.encoder = nn.ModuleList(
            _TwoConvBN(spatial_dims, channels[i], channels[i + 1]) for i in range(len(features))
        )
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2, stride=2)
        self.decoder = nn.ModuleList(
            _UpConcatDropout(spatial_dims, features[i + 1], features[i], float(dropout))
            for i in reversed(range(self.depth))
        )
        self.head = Conv[Conv.CONV, spatial_dims](features[0], out_channels, kernel_size=1)

    @torch.jit.unused
    def _check_input(self, x: torch.Tensor) -> None:
        """Refuse a wrong number of dimensions or channels and sizes the poolings cannot halve (eager mode only)."""
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"UNetBN expects input (B, {self.in_channels}, {'H, W' if self.spatial_dims == 2 else 'H, W, D'}), "
                f"got shape {tuple(x.shape)}."
            )
        if any(size % self.size_divisor for size in x.shape[2:]):
            raise ValueError(
                f"UNetBN input spatial shape {list(x.shape[2:])} must be divisible by {self.size_divisor} "
                f"(2**depth, depth {self.depth})."
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: ``(B, in_channels, H, W[, D])``, every spatial size divisible by ``2**depth``.

        Returns:
            raw logits ``(B, out_channels, H, W[, D])``.
        """
        if not torch.jit.is_scripting():
            self._check_input(x)
        skips = []
        for level, block in enumerate(self.encoder):
            x = block(x if level == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for block in self.decoder:
            x = block(x, skips.pop())
        return self.head(x)


class CascadedUNet(nn.Module):
    """Two-stage cascaded U-Net ("Cascaded U-net"): U-Net 2 refines U-Net 1 from the image and U-Net 1's probabilities.

    Chen, Ouyang et al. (STACOM 2019), section 2.2 and Fig. 3: ``p1 = f1(x; theta)`` (U-Net 1: image -> 4-class
    probability maps), ``p2 = f2(x, p1; phi)`` (U-Net 2 on the 5-channel ``concat(x, p1)``, auto-context). Section 3.2:
    U-Net 1 is trained first (bSSFP, then fine-tuned on synthetic LGE); "this procedure was replicated to train the
    second U-net with the parameters of the first U-net being fixed". Both are :class:`UNetBN`.

    Training protocol:

    - stage 1: ``CascadedUNet(stage=1)``; ``forward`` returns U-Net 1's logits and the optimizer holds
      ``network.unet1.parameters()`` (U-Net 2 is not used);
    - stage 2: ``CascadedUNet(stage=2, freeze_unet1=True)`` with the stage-1 weights loaded; ``forward`` returns
      U-Net 2's logits and the optimizer holds ``network.unet2.parameters()`` (or :meth:`trainable_parameters`).
      A frozen U-Net 1 has ``requires_grad=False``, runs under ``torch.no_grad`` and stays in eval mode (BatchNorm
      running statistics fixed, dropout off) even when the cascade is put in train mode.

    Shapes: ``(B, in_channels, H, W[, D]) -> (B, out_channels, H, W[, D])`` logits; sizes divisible by ``2**depth``
    (see :class:`UNetBN`). U-Net 2 receives ``in_channels + out_channels`` channels (5 in the paper).

    Args:
        spatial_dims: 2 (the paper) or 3.
        in_channels: image channels (1).
        out_channels: classes (4: BG, LV, MYO, RV).
        features: widths per level of both U-Nets (default the vanilla U-Net's ``(64, 128, 256, 512, 1024)``).
        dropout: dropout after each concatenation of both U-Nets' expanding paths (0.1).
        stage: 1 (``forward`` gives U-Net 1's logits) or 2 (U-Net 2's logits, the cascade's output).
        freeze_unet1: freeze U-Net 1 (stage-2 training); see :meth:`set_unet1_frozen`.

    Raises:
        ValueError: naming ``stage``, or an argument of :class:`UNetBN`.

    Examples::

        >>> CascadedUNet(features=(8, 16, 32))(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 4, 32, 32])
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 4,
        features: Sequence[int] = VANILLA_UNET_FEATURES,
        dropout: float = PAPER_DROPOUT,
        stage: int = 2,
        freeze_unet1: bool = False,
    ) -> None:
        super().__init__()
        if stage not in (1, 2) or isinstance(stage, bool):
            raise ValueError(f"stage must be 1 or 2, got {stage!r}.")
        self.stage = stage
        self.unet1 = UNetBN(spatial_dims, in_channels, out_channels, features, dropout)
        self.unet2 = UNetBN(spatial_dims, in_channels + out_channels, out_channels, features, dropout)
        self.unet1_frozen = False
        self.set_unet1_frozen(freeze_unet1)

    def set_unet1_frozen(self, frozen: bool = True) -> CascadedUNet:
        """Freeze (``requires_grad=False``, eval mode kept through :meth:`train`) or unfreeze U-Net 1; returns self."""
        self.unet1_frozen = bool(frozen)
        for parameter in self.unet1.parameters():
            parameter.requires_grad_(not self.unet1_frozen)
        self.unet1.train(self.training and not self.unet1_frozen)
        return self

    def train(self, mode: bool = True) -> CascadedUNet:
        """As ``nn.Module.train``, but a frozen U-Net 1 stays in eval mode."""
        super().train(mode)
        if self.unet1_frozen:
            self.unet1.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters of the U-Net being trained: U-Net 1's in stage 1, U-Net 2's in stage 2."""
        return list((self.unet1 if self.stage == 1 else self.unet2).parameters())

    def forward_stage1(self, x: torch.Tensor) -> torch.Tensor:
        """U-Net 1's logits ``(B, out_channels, ...)`` (``p1`` before the softmax)."""
        if self.unet1_frozen:
            with torch.no_grad():
                return self.unet1(x)
        return self.unet1(x)

    def forward_both(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(U-Net 1 logits, U-Net 2 logits)``; U-Net 2's input is ``concat(x, softmax(U-Net 1 logits))``."""
        logits1 = self.forward_stage1(x)
        logits2 = self.unet2(torch.cat([x, torch.softmax(logits1, dim=1)], dim=1))
        return logits1, logits2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: ``(B, in_channels, H, W[, D])``.

        Returns:
            logits ``(B, out_channels, H, W[, D])``: U-Net 2's (``stage=2``) or U-Net 1's (``stage=1``).
        """
        if self.stage == 1:
            return self.forward_stage1(x)
        return self.forward_both(x)[1]
