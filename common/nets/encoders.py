"""Pluggable hierarchical encoders of SwinSSegNet (Swin Transformer, ResNet, ConvNeXt).

Wang et al., "Style Transfer and Self-Supervised Learning Powered Myocardium Infarction Super-Resolution
Segmentation", section II.B ("different backbones can be plugged in as the encoder") and Table I (ResNet,
ConvNeXt and SwinTransformer encoders, "patch size 2" for Swin and "downsample size 2 for the first pooling
layer" for ResNet and ConvNeXt).

Every encoder maps ``(B, in_channels, *S)`` to a list of 4 feature maps at strides ``patch_size * (1, 2, 4, 8)``
(2, 4, 8, 16 with the default ``patch_size=2``) with ``feature_size * (1, 2, 4, 8)`` channels, and exposes them as
``out_channels`` and ``strides``. The state-dict keys of an encoder depend only on its own arguments, so the
``encoder.*`` weights of :class:`common.ssl.SSLNet` load into :class:`common.nets.SwinSSeg` one to one.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers import DropPath
from monai.networks.layers.factories import Conv
from monai.networks.nets.resnet import ResNet
from monai.networks.nets.swin_unetr import SwinTransformer, compute_mask, get_window_size
from monai.utils import ensure_tuple_rep

__all__ = ["ENCODER_NAMES", "build_encoder", "SwinEncoder", "ResNetEncoder", "ConvNeXtEncoder"]

ENCODER_NAMES = ("swin", "resnet", "convnext")
_NUM_STAGES = 4
_SUPPORTED_PATCH_SIZES = (1, 2, 4)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """(B, C, *S) -> (B, *S, C)."""
    return x.movedim(1, -1)


def _channels_first(x: torch.Tensor) -> torch.Tensor:
    """(B, *S, C) -> (B, C, *S)."""
    return x.movedim(-1, 1)


class SwinEncoder(SwinTransformer):
    """Swin Transformer encoder (MONAI's ``SwinTransformer``) returning the 4 stage outputs before patch merging.

    MONAI's ``SwinTransformer.forward`` returns 5 maps at strides ``p * (1, 2, 4, 8, 16)``: the patch embedding
    (no attention block applied yet) and the output of each stage *after* its patch merging, the last one after an
    extra merge to ``16 * embed_dim`` channels. This class keeps MONAI's modules (and state-dict keys) but returns,
    as the original Swin-T hierarchy does, the output of each stage's attention blocks *before* merging: strides
    ``p * (1, 2, 4, 8)`` with ``feature_size * (1, 2, 4, 8)`` channels. The extra last merge is removed
    (``layers4[0].downsample = None``): it would be an unused ~``512 * feature_size**2``-parameter layer. Each
    output is layer-normalised over channels without affine parameters, as in MONAI's ``proj_out(normalize=True)``.

    Windows that do not tile a map are padded by MONAI (maps no larger than the window use one window and no
    shift), so any size divisible by ``patch_size * 8`` works.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        feature_size: embedding dimension ``C`` of the first stage.
        depths: Swin blocks per stage (4 values).
        num_heads: attention heads per stage (4 values); ``feature_size * 2**i`` must divide by ``num_heads[i]``.
        window_size: attention window edge.
        patch_size: patch-embedding edge (stride of the first map).
        drop_path_rate: stochastic depth rate, linearly increased over the blocks.

    Examples::

        >>> SwinEncoder(2, 1, 12, (1, 1, 1, 1), (1, 1, 1, 1))(torch.zeros(1, 1, 32, 32))[-1].shape
        torch.Size([1, 96, 2, 2])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        feature_size: int,
        depths: Sequence[int],
        num_heads: Sequence[int],
        window_size: int = 7,
        patch_size: int = 2,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__(
            in_chans=in_channels,
            embed_dim=feature_size,
            window_size=ensure_tuple_rep(window_size, spatial_dims),
            patch_size=ensure_tuple_rep(patch_size, spatial_dims),
            depths=tuple(depths),
            num_heads=tuple(num_heads),
            drop_path_rate=drop_path_rate,
            spatial_dims=spatial_dims,
        )
        self.layers4[0].downsample = None
        self.out_channels = [feature_size * 2**i for i in range(_NUM_STAGES)]
        self.strides = [patch_size * 2**i for i in range(_NUM_STAGES)]

    @staticmethod
    def _attention_blocks(stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Run a MONAI ``BasicLayer``'s blocks (not its merge): (B, C, *S) -> (B, *S, C)."""
        spatial = list(x.shape[2:])
        window_size, shift_size = get_window_size(spatial, stage.window_size, stage.shift_size)
        padded = [-(-s // w) * w for s, w in zip(spatial, window_size)]
        attn_mask = compute_mask(padded, window_size, shift_size, x.device)
        x = _channels_last(x)
        for block in stage.blocks:
            x = block(x, attn_mask)
        return x

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # type: ignore[override]
        """(B, in_channels, *S) -> 4 maps ``(B, out_channels[i], *S / strides[i])``."""
        x = self.pos_drop(self.patch_embed(x))
        features = []
        for stage in (self.layers1[0], self.layers2[0], self.layers3[0], self.layers4[0]):
            x = self._attention_blocks(stage, x.contiguous())
            features.append(_channels_first(F.layer_norm(x, [x.shape[-1]])))
            if stage.downsample is not None:
                x = _channels_first(stage.downsample(x))
        return features


class ResNetEncoder(ResNet):
    """ResNet encoder of basic blocks (MONAI's ``ResNet``) with a stride-``patch_size`` stem and no max pooling.

    Stem: ``7x7`` conv with stride ``patch_size`` + BatchNorm + ReLU (the paper sets the first downsampling of
    ResNet to 2, so the stem is the only downsampling before stage 1); stage 1 keeps that resolution and stages 2-4
    each halve it with a strided basic block (1x1 conv + BatchNorm shortcut). Stage ``i`` has ``depths[i]`` basic
    blocks with ``feature_size * 2**i`` channels (``depths=(2, 2, 2, 2)`` is ResNet-18's layout).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        feature_size: channels of stage 1.
        depths: basic blocks per stage (4 values).
        patch_size: stem stride (stride of the first map).

    Examples::

        >>> ResNetEncoder(2, 1, 8, (1, 1, 1, 1))(torch.zeros(1, 1, 32, 32))[0].shape
        torch.Size([1, 8, 16, 16])
    """

    def __init__(
        self, spatial_dims: int, in_channels: int, feature_size: int, depths: Sequence[int], patch_size: int = 2
    ) -> None:
        super().__init__(
            block="basic",
            layers=list(depths),
            block_inplanes=[feature_size * 2**i for i in range(_NUM_STAGES)],
            spatial_dims=spatial_dims,
            n_input_channels=in_channels,
            conv1_t_size=7,
            conv1_t_stride=patch_size,
            no_max_pool=True,
            shortcut_type="B",
            feed_forward=False,
            bias_downsample=False,
        )
        self.out_channels = [feature_size * 2**i for i in range(_NUM_STAGES)]
        self.strides = [patch_size * 2**i for i in range(_NUM_STAGES)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # type: ignore[override]
        """(B, in_channels, *S) -> 4 maps ``(B, out_channels[i], *S / strides[i])``."""
        x = self.act(self.bn1(self.conv1(x)))
        x1 = self.layer1(x)
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        x4 = self.layer4(x3)
        return [x1, x2, x3, x4]


class _LayerNormChannelsFirst(nn.LayerNorm):
    """LayerNorm over the channel axis of a channels-first tensor (B, C, *S)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(_channels_last(x), self.normalized_shape, self.weight, self.bias, self.eps)
        return _channels_first(y)


class _ConvNeXtBlock(nn.Module):
    """ConvNeXt block: depthwise 7x7 conv, LayerNorm, 1x1 expand x4, GELU, 1x1 project, layer scale, residual."""

    def __init__(self, spatial_dims: int, dim: int, drop_path: float, layer_scale_init_value: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = Conv[Conv.CONV, spatial_dims](dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale_init_value))
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _channels_last(self.dwconv(x))
        y = self.gamma * self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + self.drop_path(_channels_first(y))


class ConvNeXtEncoder(nn.Module):
    """ConvNeXt encoder (Liu et al., "A ConvNet for the 2020s", CVPR 2022) with a stride-``patch_size`` stem.

    Stem: ``patch_size`` x ``patch_size`` patchify conv with stride ``patch_size`` + LayerNorm (ConvNeXt uses 4; the
    paper uses 2). Stages 2-4 start with LayerNorm + 2x2 stride-2 conv. Stage ``i`` has ``depths[i]`` ConvNeXt blocks
    (depthwise 7x7, LayerNorm, inverted bottleneck x4 with GELU, layer scale 1e-6, stochastic depth) with
    ``feature_size * 2**i`` channels; each output is LayerNorm-ed, as in ConvNeXt's dense-prediction backbone.
    Key names follow the official implementation (``downsample_layers``, ``stages``, ``norms``).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        feature_size: channels of stage 1.
        depths: ConvNeXt blocks per stage (4 values).
        patch_size: stem stride (stride of the first map).
        drop_path_rate: stochastic depth rate, linearly increased over the blocks.

    Examples::

        >>> ConvNeXtEncoder(2, 1, 8, (1, 1, 1, 1))(torch.zeros(1, 1, 32, 32))[-1].shape
        torch.Size([1, 64, 2, 2])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        feature_size: int,
        depths: Sequence[int],
        patch_size: int = 2,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        self.out_channels = [feature_size * 2**i for i in range(_NUM_STAGES)]
        self.strides = [patch_size * 2**i for i in range(_NUM_STAGES)]
        channels = self.out_channels
        self.downsample_layers = nn.ModuleList(
            [
                nn.Sequential(
                    conv(in_channels, channels[0], kernel_size=patch_size, stride=patch_size),
                    _LayerNormChannelsFirst(channels[0], eps=1e-6),
                )
            ]
            + [
                nn.Sequential(
                    _LayerNormChannelsFirst(channels[i - 1], eps=1e-6),
                    conv(channels[i - 1], channels[i], kernel_size=2, stride=2),
                )
                for i in range(1, _NUM_STAGES)
            ]
        )
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        starts = [sum(depths[:i]) for i in range(_NUM_STAGES)]
        self.stages = nn.ModuleList(
            [
                nn.Sequential(
                    *[_ConvNeXtBlock(spatial_dims, channels[i], rates[starts[i] + j]) for j in range(depths[i])]
                )
                for i in range(_NUM_STAGES)
            ]
        )
        self.norms = nn.ModuleList([_LayerNormChannelsFirst(c, eps=1e-6) for c in channels])
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, in_channels, *S) -> 4 maps ``(B, out_channels[i], *S / strides[i])``."""
        features = []
        for downsample, stage, norm in zip(self.downsample_layers, self.stages, self.norms):
            x = stage(downsample(x))
            features.append(norm(x))
        return features


def _check_positive_ints(name: str, values: Sequence[int], length: int) -> tuple[int, ...]:
    values = tuple(values)
    if len(values) != length or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
        raise ValueError(f"{name} must be {length} positive integers, got {values!r}.")
    return values


def build_encoder(
    name: str,
    spatial_dims: int = 2,
    in_channels: int = 1,
    feature_size: int = 96,
    depths: Sequence[int] = (2, 2, 6, 2),
    num_heads: Sequence[int] = (3, 6, 12, 24),
    window_size: int = 7,
    patch_size: int = 2,
    drop_path_rate: float = 0.0,
) -> nn.Module:
    """Build a SwinSSegNet encoder by name (paper Table I).

    Wang et al., section II.B and Table I. The defaults are Swin-T's (embed 96, depths (2, 2, 6, 2), heads
    (3, 6, 12, 24), window 7) with the paper's patch size 2; the paper does not give them.

    Args:
        name: ``"swin"`` (:class:`SwinEncoder`), ``"resnet"`` (:class:`ResNetEncoder`) or ``"convnext"``
            (:class:`ConvNeXtEncoder`).
        spatial_dims: 2 or 3.
        in_channels: input channels.
        feature_size: channels ``C`` of the first map; map ``i`` has ``C * 2**i``.
        depths: blocks per stage (4 values), used by every encoder.
        num_heads: Swin attention heads per stage (4 values); checked for every name, used by ``"swin"`` only.
        window_size: Swin window edge (``"swin"`` only).
        patch_size: stride of the first map: Swin patch embedding, ResNet/ConvNeXt stem stride; 1, 2 or 4.
        drop_path_rate: stochastic depth rate in ``[0, 1)`` (``"swin"`` and ``"convnext"``; ResNet has none).

    Returns:
        an ``nn.Module`` mapping ``(B, in_channels, *S)`` to 4 maps ``(B, C * 2**i, *S / (patch_size * 2**i))`` with
        attributes ``out_channels`` and ``strides``. Input sizes must divide by ``strides[-1]`` for the decoder.

    Raises:
        ValueError: naming the offending argument.

    Examples::

        >>> build_encoder("resnet", feature_size=8, depths=(1, 1, 1, 1)).strides
        [2, 4, 8, 16]
    """
    if name not in ENCODER_NAMES:
        raise ValueError(f"name must be one of {ENCODER_NAMES}, got {name!r}.")
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
    _check_positive_ints("in_channels", (in_channels,), 1)
    _check_positive_ints("feature_size", (feature_size,), 1)
    depths = _check_positive_ints("depths", depths, _NUM_STAGES)
    num_heads = _check_positive_ints("num_heads", num_heads, _NUM_STAGES)
    _check_positive_ints("window_size", (window_size,), 1)
    if patch_size not in _SUPPORTED_PATCH_SIZES:
        raise ValueError(f"patch_size must be one of {_SUPPORTED_PATCH_SIZES}, got {patch_size!r}.")
    if not 0.0 <= drop_path_rate < 1.0:
        raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate!r}.")
    if name == "swin":
        for i, heads in enumerate(num_heads):
            if (feature_size * 2**i) % heads:
                raise ValueError(
                    f"num_heads[{i}]={heads} must divide the stage-{i} width feature_size * 2**{i} = "
                    f"{feature_size * 2**i}."
                )
        return SwinEncoder(
            spatial_dims, in_channels, feature_size, depths, num_heads, window_size, patch_size, drop_path_rate
        )
    if name == "resnet":
        if drop_path_rate > 0.0:
            warnings.warn(f"drop_path_rate={drop_path_rate} is ignored by the 'resnet' encoder (no stochastic depth).")
        return ResNetEncoder(spatial_dims, in_channels, feature_size, depths, patch_size)
    return ConvNeXtEncoder(spatial_dims, in_channels, feature_size, depths, patch_size, drop_path_rate)
