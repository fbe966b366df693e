"""CycleGAN's ResNet generator (Zhu et al., ICCV 2017; Johnson et al., ECCV 2016), used by CycleGANSeg."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv, Norm

__all__ = ["ResNetGenerator"]

NORMS = ("instance", "batch")
_REFLECTION_PAD = {2: nn.ReflectionPad2d, 3: nn.ReflectionPad3d}  # MONAI's Pad factory has no reflection padding


class _ResidualBlock(nn.Module):
    """``x + [reflect pad 1, 3x3 conv, norm, ReLU, (dropout 0.5), reflect pad 1, 3x3 conv, norm](x)``."""

    def __init__(self, spatial_dims: int, channels: int, norm: str, use_dropout: bool, use_bias: bool) -> None:
        super().__init__()
        conv, pad, norm_type = Conv[Conv.CONV, spatial_dims], _REFLECTION_PAD[spatial_dims], _norm(norm, spatial_dims)
        layers: list[nn.Module] = [
            pad(1),
            conv(channels, channels, kernel_size=3, bias=use_bias),
            norm_type(channels),
            nn.ReLU(True),
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [pad(1), conv(channels, channels, kernel_size=3, bias=use_bias), norm_type(channels)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


def _norm(norm: str, spatial_dims: int) -> type[nn.Module]:
    """InstanceNorm (no affine parameters or running stats by default, as CycleGAN's) or BatchNorm class."""
    return Norm[Norm.INSTANCE if norm == "instance" else Norm.BATCH, spatial_dims]


class ResNetGenerator(nn.Module):
    """CycleGAN's ResNet generator ("resnet_9blocks"), the G_{S>T} and G_{T>S} of CycleGANSeg.

    Wang et al., section II.A and Fig. 3 (CycleGAN generators); architecture of Zhu et al., "Unpaired
    Image-to-Image Translation using Cycle-Consistent Adversarial Networks" (ICCV 2017), appendix 7.2, as in
    junyanz/pytorch-CycleGAN-and-pix2pix ``ResnetGenerator``: reflect pad 3 + 7x7 conv (``ngf``), norm, ReLU;
    ``n_downsampling`` x (3x3 stride-2 conv, channels x2, norm, ReLU); ``n_blocks`` residual blocks (reflect padding,
    optional dropout 0.5); ``n_downsampling`` x (3x3 stride-2 transposed conv, channels / 2, norm, ReLU); reflect
    pad 3 + 7x7 conv to ``out_channels``; Tanh. Convs have a bias only with instance norm (as in the reference);
    instance norm has no affine parameters. Weights are initialised as CycleGAN's ``init_type="normal"``:
    conv weights ``N(0, 0.02)``, biases 0, BatchNorm weights ``N(1, 0.02)``.

    Shapes: ``(B, in_channels, H, W) -> (B, out_channels, H, W)`` (3D likewise); every spatial size must divide by
    ``2**n_downsampling`` (4 by default), otherwise ``forward`` raises ``ValueError``.
    Range: the input is expected in ``[-1, 1]`` and the output is in ``[-1, 1]`` (Tanh): rescale ``[0, 1]`` data
    with ``2 * x - 1`` before and ``(y + 1) / 2`` after (the authors' public fork feeds ``[0, 1]`` data to this
    ``[-1, 1]`` generator; do not).

    Args:
        spatial_dims: 2 (the paper) or 3.
        in_channels: input channels.
        out_channels: output channels.
        ngf: filters of the first conv (64).
        n_blocks: residual blocks (9 for "resnet_9blocks", 6 for "resnet_6blocks").
        n_downsampling: stride-2 downsamplings (and as many upsamplings), 2 in CycleGAN.
        norm: ``"instance"`` (CycleGAN default) or ``"batch"``.
        use_dropout: dropout 0.5 inside the residual blocks (off in CycleGAN).

    Raises:
        ValueError: naming the offending argument.

    Examples::

        >>> ResNetGenerator(ngf=8, n_blocks=2)(torch.zeros(1, 1, 64, 64)).shape
        torch.Size([1, 1, 64, 64])
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        ngf: int = 64,
        n_blocks: int = 9,
        n_downsampling: int = 2,
        norm: str = "instance",
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        for name, value, minimum in (
            ("in_channels", in_channels, 1),
            ("out_channels", out_channels, 1),
            ("ngf", ngf, 1),
            ("n_blocks", n_blocks, 0),
            ("n_downsampling", n_downsampling, 0),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}.")
        self.size_divisor = 2**n_downsampling
        use_bias = norm == "instance"
        conv, conv_transposed = Conv[Conv.CONV, spatial_dims], Conv[Conv.CONVTRANS, spatial_dims]
        pad, norm_type = _REFLECTION_PAD[spatial_dims], _norm(norm, spatial_dims)

        layers: list[nn.Module] = [
            pad(3),
            conv(in_channels, ngf, kernel_size=7, bias=use_bias),
            norm_type(ngf),
            nn.ReLU(True),
        ]
        for i in range(n_downsampling):
            c = ngf * 2**i
            layers += [
                conv(c, 2 * c, kernel_size=3, stride=2, padding=1, bias=use_bias),
                norm_type(2 * c),
                nn.ReLU(True),
            ]
        c = ngf * 2**n_downsampling
        layers += [_ResidualBlock(spatial_dims, c, norm, use_dropout, use_bias) for _ in range(n_blocks)]
        for i in range(n_downsampling):
            c = ngf * 2 ** (n_downsampling - i)
            layers += [
                conv_transposed(c, c // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=use_bias),
                norm_type(c // 2),
                nn.ReLU(True),
            ]
        layers += [pad(3), conv(ngf, out_channels, kernel_size=7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """CycleGAN ``init_weights(init_type="normal", init_gain=0.02)``."""
        if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            nn.init.normal_(module.weight, 0.0, 0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.normal_(module.weight, 1.0, 0.02)
            nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: ``(B, in_channels, H, W[, D])`` in ``[-1, 1]``, sizes divisible by ``2**n_downsampling``.

        Returns:
            ``(B, out_channels, H, W[, D])`` in ``[-1, 1]``.
        """
        for size in x.shape[2:]:
            if size % self.size_divisor != 0:
                raise ValueError(
                    f"ResNetGenerator input spatial shape {list(x.shape[2:])} must be divisible by {self.size_divisor} "
                    "(2**n_downsampling)."
                )
        return self.model(x)
