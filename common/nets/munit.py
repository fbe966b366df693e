"""MUNIT's networks (Huang et al., ECCV 2018): content and style encoders, AdaIN decoder, multi-scale discriminator.

Used by the "MUNIT + cascaded U-Net" bundle (bSSFP -> LGE translation, section 2.1 of the paper) and trained by
``common.engines.munit_trainer.MUNITTrainer``. Layer by layer as the public NVlabs/MUNIT networks (configuration
``edges2handbags_folder``: ``dim 64, style_dim 8, n_downsample 2, n_res 4, mlp_dim 256``; discriminator
``dim 64, n_layer 4, num_scales 3``, LSGAN), single channel in and out. Everything here is 2D.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers.factories import Conv, Norm, Pool

__all__ = [
    "AdaptiveInstanceNorm2d",
    "MUNITContentEncoder",
    "MUNITStyleEncoder",
    "MUNITDecoder",
    "MUNITGenerator",
    "MultiScaleDiscriminator",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "translate",
]

_CONV = Conv[Conv.CONV, 2]
#: the generator's modes of ``forward`` (``DistributedDataParallel`` synchronises gradients only through ``forward``)
GENERATOR_MODES = ("reconstruct", "encode", "decode")


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def _check_image(owner: str, x: torch.Tensor, channels: int, min_size: int, divisor: int = 1) -> None:
    """``x`` is ``(B, channels, H, W)`` with ``H, W >= min_size`` and divisible by ``divisor``, else ``ValueError``."""
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{owner} expects (B, {channels}, H, W) input, got shape {tuple(x.shape)}.")
    sizes = list(x.shape[2:])
    if any(size < min_size or size % divisor != 0 for size in sizes):
        rule = f"at least {min_size}" + (f" and divisible by {divisor}" if divisor > 1 else "")
        raise ValueError(f"{owner} input spatial shape {sizes} must be {rule}.")


class AdaptiveInstanceNorm2d(nn.Module):
    """Adaptive instance normalisation (AdaIN; Huang and Belongie, ICCV 2017; MUNIT section 3.1, eq. 7).

    For each sample ``b`` and channel ``c`` of ``x`` ``(B, C, H, W)``:

    ``AdaIN(x, gamma, beta) = gamma * (x - mu(x)) / sigma(x) + beta``

    with ``mu(x)`` the mean of the ``(H, W)`` plane and ``sigma(x) = sqrt(var(x) + eps)`` its biased standard
    deviation. ``gamma`` (``weight``) and ``beta`` (``bias``) are not learned parameters of this layer: they are
    assigned from outside before every call, one ``(B, C)`` pair per batch, by ``MUNITDecoder`` from its style MLP.

    Args:
        num_features: channels ``C``.
        eps: added to the variance.

    Raises:
        ValueError: ``num_features < 1``; at call time an input that is not ``(B, num_features, H, W)`` or
            parameters that are not ``(B, num_features)``.
        RuntimeError: called before ``weight`` and ``bias`` are assigned.

    Examples::

        >>> norm = AdaptiveInstanceNorm2d(2)
        >>> norm.weight, norm.bias = torch.ones(1, 2), torch.zeros(1, 2)
        >>> norm(torch.randn(1, 2, 4, 4)).shape
        torch.Size([1, 2, 4, 4])
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        _check_int("num_features", num_features, 1)
        self.num_features = num_features
        self.eps = eps
        self.weight: torch.Tensor | None = None  # gamma, (B, C), assigned by MUNITDecoder.assign_adain_params
        self.bias: torch.Tensor | None = None  # beta, (B, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: ``(B, num_features, H, W)``.

        Returns:
            ``gamma * (x - mu(x)) / sigma(x) + beta``, same shape.
        """
        if self.weight is None or self.bias is None:
            raise RuntimeError(
                "AdaptiveInstanceNorm2d needs weight and bias (B, num_features) assigned before it is called "
                "(MUNITDecoder.assign_adain_params)."
            )
        batch, channels = x.shape[0], self.num_features
        if x.ndim != 4 or x.shape[1] != channels:
            raise ValueError(f"AdaptiveInstanceNorm2d expects (B, {channels}, H, W), got shape {tuple(x.shape)}.")
        for name, value in (("weight", self.weight), ("bias", self.bias)):
            if tuple(value.shape) != (batch, channels):
                raise ValueError(
                    f"AdaptiveInstanceNorm2d {name} must be (B, C) = {(batch, channels)}, got {tuple(value.shape)}."
                )
        # each (sample, channel) plane as one channel of a single sample: one fused instance norm with a
        # per-(sample, channel) affine transform
        out = F.instance_norm(
            x.reshape(1, batch * channels, *x.shape[2:]),
            weight=self.weight.reshape(-1),
            bias=self.bias.reshape(-1),
            eps=self.eps,
        )
        return out.view_as(x)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


def _layer_norm(channels: int) -> nn.GroupNorm:
    """MUNIT's layer norm: statistics over ``(C, H, W)`` per sample, affine per channel, ``gamma ~ U(0, 1)``."""
    norm = nn.GroupNorm(1, channels, eps=1e-5)
    nn.init.uniform_(norm.weight, 0.0, 1.0)
    nn.init.zeros_(norm.bias)
    return norm


class _ConvBlock(nn.Sequential):
    """Reflect pad, conv (with bias), optional norm (``"in"``, ``"ln"``, ``"adain"``), optional activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        norm: str = "none",
        activation: str = "relu",
    ) -> None:
        layers: list[nn.Module] = [nn.ReflectionPad2d(padding), _CONV(in_channels, out_channels, kernel_size, stride)]
        if norm == "in":
            layers.append(Norm[Norm.INSTANCE, 2](out_channels))  # no affine parameters, no running statistics
        elif norm == "ln":
            layers.append(_layer_norm(out_channels))
        elif norm == "adain":
            layers.append(AdaptiveInstanceNorm2d(out_channels))
        if activation == "relu":
            layers.append(nn.ReLU(inplace=True))
        elif activation == "lrelu":
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        elif activation == "tanh":
            layers.append(nn.Tanh())
        super().__init__(*layers)


class _ResBlock(nn.Module):
    """``x + [3x3 conv, norm, ReLU, 3x3 conv, norm](x)`` with reflect padding; no activation after the sum."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.model = nn.Sequential(
            _ConvBlock(channels, channels, 3, 1, 1, norm=norm, activation="relu"),
            _ConvBlock(channels, channels, 3, 1, 1, norm=norm, activation="none"),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.model(x)


def _kaiming_init(module: nn.Module) -> None:
    """NVlabs/MUNIT ``weights_init("kaiming")`` of the generators: conv/linear weights He-normal (fan in), bias 0."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight, a=0, mode="fan_in")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _gaussian_init(module: nn.Module) -> None:
    """NVlabs/MUNIT ``weights_init("gaussian")`` of the discriminators: conv weights ``N(0, 0.02)``, bias 0."""
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class MUNITContentEncoder(nn.Module):
    """MUNIT content encoder ``E^c`` (Huang et al., ECCV 2018, section 3.1 and appendix B; the paper's Fig. 2).

    Reflect pad 3 + 7x7 conv (``dim``), instance norm, ReLU; ``n_downsample`` x (reflect pad 1 + 4x4 stride-2 conv,
    channels x2, instance norm, ReLU); ``n_res`` residual blocks (3x3 convs, instance norm, ReLU between them).
    Instance norm has no affine parameters and always uses the statistics of the input (no running statistics).

    Shapes: ``(B, input_dim, H, W) -> (B, dim * 2**n_downsample, H / 2**n_downsample, W / 2**n_downsample)``;
    ``H`` and ``W`` must be divisible by ``2**n_downsample`` and at least ``max(4, 2**(n_downsample + 1))``
    (``ValueError`` otherwise). The content code is the domain-invariant anatomy.

    Args:
        input_dim: image channels (1).
        dim: filters of the first conv (64).
        n_downsample: stride-2 downsamplings (2).
        n_res: residual blocks (4).

    Raises:
        ValueError: naming the offending argument or input shape.

    Examples::

        >>> MUNITContentEncoder(dim=8)(torch.zeros(1, 1, 32, 32)).shape
        torch.Size([1, 32, 8, 8])
    """

    def __init__(self, input_dim: int = 1, dim: int = 64, n_downsample: int = 2, n_res: int = 4) -> None:
        super().__init__()
        for name, value, minimum in (("input_dim", input_dim, 1), ("dim", dim, 1)):
            _check_int(name, value, minimum)
        for name, value in (("n_downsample", n_downsample), ("n_res", n_res)):
            _check_int(name, value, 0)
        self.input_dim = input_dim
        self.size_divisor = 2**n_downsample
        self.min_size = max(4, 2 * self.size_divisor)
        layers: list[nn.Module] = [_ConvBlock(input_dim, dim, 7, 1, 3, norm="in")]
        for _ in range(n_downsample):
            layers.append(_ConvBlock(dim, 2 * dim, 4, 2, 1, norm="in"))
            dim *= 2
        layers += [_ResBlock(dim, norm="in") for _ in range(n_res)]
        self.model = nn.Sequential(*layers)
        self.output_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: ``(B, input_dim, H, W)`` in ``[-1, 1]``.

        Returns:
            the content code ``(B, output_dim, H / 2**n_downsample, W / 2**n_downsample)``.
        """
        _check_image("MUNITContentEncoder", x, self.input_dim, self.min_size, self.size_divisor)
        return self.model(x)


class MUNITStyleEncoder(nn.Module):
    """MUNIT style encoder ``E^s`` (Huang et al., ECCV 2018, appendix B): the image's style code.

    Reflect pad 3 + 7x7 conv (``dim``), ReLU; ``n_downsample`` x (reflect pad 1 + 4x4 stride-2 conv, ReLU), the
    channels doubling on the first two only (as the reference: ``4 * dim`` = 256 for ``dim`` 64, then constant);
    global average pooling; 1x1 conv to ``style_dim``. No normalisation (it would remove the style).

    Shapes: ``(B, input_dim, H, W) -> (B, style_dim, 1, 1)``; ``H`` and ``W`` must be at least
    ``max(4, 2**n_downsample)`` (16 by default; ``ValueError`` otherwise).

    Args:
        input_dim: image channels (1).
        dim: filters of the first conv (64).
        style_dim: length of the style code (8).
        n_downsample: stride-2 downsamplings (4 in MUNIT).

    Raises:
        ValueError: naming the offending argument or input shape.

    Examples::

        >>> MUNITStyleEncoder(dim=8)(torch.zeros(2, 1, 32, 32)).shape
        torch.Size([2, 8, 1, 1])
    """

    def __init__(self, input_dim: int = 1, dim: int = 64, style_dim: int = 8, n_downsample: int = 4) -> None:
        super().__init__()
        for name, value, minimum in (("input_dim", input_dim, 1), ("dim", dim, 1), ("style_dim", style_dim, 1)):
            _check_int(name, value, minimum)
        _check_int("n_downsample", n_downsample, 0)
        self.input_dim = input_dim
        self.style_dim = style_dim
        self.min_size = max(4, 2**n_downsample)
        layers: list[nn.Module] = [_ConvBlock(input_dim, dim, 7, 1, 3)]
        for i in range(n_downsample):
            out_dim = 2 * dim if i < 2 else dim
            layers.append(_ConvBlock(dim, out_dim, 4, 2, 1))
            dim = out_dim
        layers += [Pool[Pool.ADAPTIVEAVG, 2](1), _CONV(dim, style_dim, 1)]
        self.model = nn.Sequential(*layers)
        self.output_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: ``(B, input_dim, H, W)`` in ``[-1, 1]``.

        Returns:
            the style code ``(B, style_dim, 1, 1)``.
        """
        _check_image("MUNITStyleEncoder", x, self.input_dim, self.min_size)
        return self.model(x)


class MUNITDecoder(nn.Module):
    """MUNIT decoder ``G`` (Huang et al., ECCV 2018, section 3.1, appendix B): content code + style code -> image.

    ``n_res`` residual blocks whose norms are ``AdaptiveInstanceNorm2d``; ``n_upsample`` x (nearest x2, reflect
    pad 2 + 5x5 conv, channels / 2, layer norm, ReLU); reflect pad 3 + 7x7 conv to ``output_dim``; Tanh. An MLP
    (``style_dim -> mlp_dim -> ... -> num_adain_params``, ``n_mlp`` linear layers, ReLU between them, none at the
    end) maps the style code to every AdaIN ``(beta, gamma)`` pair: for each AdaIN layer in order, ``C`` values of
    ``beta`` (bias) then ``C`` of ``gamma`` (weight), as the reference. The layer norm normalises each sample over
    ``(C, H, W)`` with a per-channel affine (``gamma ~ U(0, 1)`` at init), as the reference's.

    Shapes: content ``(B, dim * 2**n_upsample, h, w)`` and style ``(B, style_dim, 1, 1)`` (or ``(B, style_dim)``)
    -> ``(B, output_dim, h * 2**n_upsample, w * 2**n_upsample)`` in ``[-1, 1]`` (Tanh); ``h, w >= 2``.

    Args:
        output_dim: image channels (1).
        dim: channels after the last upsampling (64, the encoders' ``dim``); the content code has
            ``dim * 2**n_upsample``.
        n_upsample: upsamplings (2, the content encoder's ``n_downsample``).
        n_res: AdaIN residual blocks (4, >= 1: they carry the style).
        style_dim: length of the style code (8).
        mlp_dim: width of the MLP (256).
        n_mlp: linear layers of the MLP (3, >= 2).

    Raises:
        ValueError: naming the offending argument or input shape.

    Examples::

        >>> MUNITDecoder(dim=8)(torch.zeros(1, 32, 8, 8), torch.randn(1, 8, 1, 1)).shape
        torch.Size([1, 1, 32, 32])
    """

    def __init__(
        self,
        output_dim: int = 1,
        dim: int = 64,
        n_upsample: int = 2,
        n_res: int = 4,
        style_dim: int = 8,
        mlp_dim: int = 256,
        n_mlp: int = 3,
    ) -> None:
        super().__init__()
        for name, value, minimum in (
            ("output_dim", output_dim, 1),
            ("dim", dim, 1),
            ("n_upsample", n_upsample, 0),
            ("n_res", n_res, 1),
            ("style_dim", style_dim, 1),
            ("mlp_dim", mlp_dim, 1),
            ("n_mlp", n_mlp, 2),
        ):
            _check_int(name, value, minimum)
        self.style_dim = style_dim
        self.content_dim = channels = dim * 2**n_upsample
        layers: list[nn.Module] = [_ResBlock(channels, norm="adain") for _ in range(n_res)]
        for _ in range(n_upsample):
            layers += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                _ConvBlock(channels, channels // 2, 5, 1, 2, norm="ln"),
            ]
            channels //= 2
        layers.append(_ConvBlock(channels, output_dim, 7, 1, 3, activation="tanh"))
        self.model = nn.Sequential(*layers)
        self.adain_layers = [m for m in self.model.modules() if isinstance(m, AdaptiveInstanceNorm2d)]
        self.num_adain_params = sum(2 * m.num_features for m in self.adain_layers)
        mlp: list[nn.Module] = [nn.Linear(style_dim, mlp_dim), nn.ReLU(inplace=True)]
        for _ in range(n_mlp - 2):
            mlp += [nn.Linear(mlp_dim, mlp_dim), nn.ReLU(inplace=True)]
        mlp.append(nn.Linear(mlp_dim, self.num_adain_params))
        self.mlp = nn.Sequential(*mlp)

    def assign_adain_params(self, adain_params: torch.Tensor) -> None:
        """Give every AdaIN layer its ``(B, C)`` bias (``beta``) and weight (``gamma``) from the MLP's output.

        Args:
            adain_params: ``(B, num_adain_params)``; per layer, in order, ``C`` biases then ``C`` weights.
        """
        if adain_params.ndim != 2 or adain_params.shape[1] != self.num_adain_params:
            raise ValueError(
                f"adain_params must be (B, {self.num_adain_params}), got shape {tuple(adain_params.shape)}."
            )
        offset = 0
        for layer in self.adain_layers:
            channels = layer.num_features
            layer.bias = adain_params[:, offset : offset + channels]
            layer.weight = adain_params[:, offset + channels : offset + 2 * channels]
            offset += 2 * channels

    def _clear_adain_params(self) -> None:
        """Drop the assigned tensors so that no autograd graph outlives the call (and the module can be copied)."""
        for layer in self.adain_layers:
            layer.weight = layer.bias = None

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """
        Args:
            content: ``(B, dim * 2**n_upsample, h, w)``.
            style: ``(B, style_dim, 1, 1)`` or ``(B, style_dim)``.

        Returns:
            ``(B, output_dim, h * 2**n_upsample, w * 2**n_upsample)`` in ``[-1, 1]``.
        """
        if content.ndim != 4 or content.shape[1] != self.content_dim or min(content.shape[2:]) < 2:
            raise ValueError(
                f"MUNITDecoder expects a content code (B, {self.content_dim}, h, w) with h, w >= 2, got shape "
                f"{tuple(content.shape)}."
            )
        if style.shape[0] != content.shape[0] or style[0].numel() != self.style_dim:
            raise ValueError(
                f"MUNITDecoder expects a style code (B, {self.style_dim}, 1, 1) with B = {content.shape[0]}, got "
                f"shape {tuple(style.shape)}."
            )
        self.assign_adain_params(self.mlp(style.reshape(style.shape[0], -1)))
        try:
            return self.model(content)
        finally:
            self._clear_adain_params()


class MUNITGenerator(nn.Module):
    """MUNIT auto-encoder of one domain (Huang et al., ECCV 2018; the paper's Fig. 2): ``E^c``, ``E^s`` and ``G``.

    One per domain: bSSFP (``a``) and LGE (``b``). ``encode(x) = (E^c(x), E^s(x))``; ``decode(c, s) = G(c, s)``;
    ``forward(x)`` reconstructs ``x`` from its own codes. Translation swaps codes across domains: bSSFP -> LGE is
    ``gen_b.decode(gen_a.encode(x_a)[0], s_b)`` with ``s_b ~ N(0, I)`` (``translate`` does it for N styles).
    Weights are initialised as the reference's ``init: kaiming`` (He-normal, fan in, biases 0).

    Shapes: ``(B, input_dim, H, W)`` in ``[-1, 1]``; content ``(B, dim * 2**n_downsample, H / 2**n_downsample,
    W / 2**n_downsample)``; style ``(B, style_dim, 1, 1)``; images out in ``[-1, 1]`` (Tanh). ``H`` and ``W`` must be
    divisible by ``2**n_downsample`` (4) and at least ``min_size`` (16 by default: the style encoder's four
    downsamplings); ``ValueError`` otherwise.

    Args:
        input_dim: image channels (1).
        dim: filters of the first conv of each encoder and of the decoder's last block (64).
        n_downsample: downsamplings of the content encoder (2) and upsamplings of the decoder.
        n_res: residual blocks of the content encoder and of the decoder (4, >= 1).
        style_dim: length of the style code (8).
        mlp_dim: width of the AdaIN MLP (256).
        n_mlp: linear layers of the AdaIN MLP (3).
        style_n_downsample: downsamplings of the style encoder (4 in MUNIT).

    Raises:
        ValueError: naming the offending argument or input shape.

    Examples::

        >>> gen = MUNITGenerator(dim=8)
        >>> content, style = gen.encode(torch.zeros(1, 1, 32, 32))
        >>> gen.decode(content, torch.randn(1, 8, 1, 1)).shape
        torch.Size([1, 1, 32, 32])
    """

    def __init__(
        self,
        input_dim: int = 1,
        dim: int = 64,
        n_downsample: int = 2,
        n_res: int = 4,
        style_dim: int = 8,
        mlp_dim: int = 256,
        n_mlp: int = 3,
        style_n_downsample: int = 4,
    ) -> None:
        super().__init__()
        self.style_encoder = MUNITStyleEncoder(input_dim, dim, style_dim, style_n_downsample)
        self.content_encoder = MUNITContentEncoder(input_dim, dim, n_downsample, n_res)
        self.decoder = MUNITDecoder(input_dim, dim, n_downsample, n_res, style_dim, mlp_dim, n_mlp)
        self.input_dim = input_dim
        self.style_dim = style_dim
        self.size_divisor = self.content_encoder.size_divisor
        self.min_size = max(self.style_encoder.min_size, self.content_encoder.min_size)
        self.apply(_kaiming_init)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Content and style codes of ``x`` ``(B, input_dim, H, W)``: ``((B, C_c, h, w), (B, style_dim, 1, 1))``."""
        _check_image("MUNITGenerator", x, self.input_dim, self.min_size, self.size_divisor)
        return self.content_encoder(x), self.style_encoder(x)

    def decode(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """The image ``(B, input_dim, H, W)`` in ``[-1, 1]`` decoded from a content code and a style code."""
        return self.decoder(content, style)

    def forward(
        self, x: torch.Tensor, style: torch.Tensor | None = None, mode: str = "reconstruct"
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction by default; ``mode`` reaches ``encode``/``decode`` through ``forward``.

        Trainers call the generator as ``gen(x, mode="encode")`` and ``gen(content, style, mode="decode")`` so that
        a generator wrapped in ``DistributedDataParallel`` synchronises its gradients (DDP hooks only ``forward``).

        Args:
            x: the image ``(B, input_dim, H, W)`` (``"reconstruct"``, ``"encode"``) or the content code
                (``"decode"``).
            style: the style code (``"decode"`` only).
            mode: ``"reconstruct"`` (``decode(*encode(x))``), ``"encode"`` or ``"decode"``.

        Returns:
            the reconstruction ``(B, input_dim, H, W)``, ``(content, style)``, or the decoded image.
        """
        if mode not in GENERATOR_MODES:
            raise ValueError(f"mode must be one of {GENERATOR_MODES}, got {mode!r}.")
        if mode == "decode" and style is None:
            raise ValueError("mode 'decode' needs a style code (B, style_dim, 1, 1).")
        if mode != "decode" and style is not None:
            raise ValueError(f"a style code is used only with mode 'decode', got mode {mode!r}.")
        if mode == "encode":
            return self.encode(x)
        if mode == "decode":
            return self.decode(x, style)
        return self.decode(*self.encode(x))


class MultiScaleDiscriminator(nn.Module):
    """MUNIT's multi-scale discriminator (Huang et al., ECCV 2018, appendix B; Wang et al. pix2pixHD, CVPR 2018).

    ``num_scales`` identical, independent nets see the image at full, 1/2, 1/4, ... resolution (3x3 average pooling
    with stride 2 and padding 1, padding excluded from the mean, between scales). Each net: reflect pad 1 +
    4x4 stride-2 conv (``dim``), LeakyReLU 0.2; ``n_layer - 1`` x (reflect pad 1 + 4x4 stride-2 conv, channels x2,
    LeakyReLU 0.2); 1x1 conv to one logit. No normalisation. Weights ``N(0, 0.02)``, biases 0 (the reference's
    discriminator init). Use ``lsgan_discriminator_loss`` / ``lsgan_generator_loss`` (or the methods
    ``calc_dis_loss`` / ``calc_gen_loss``) on its outputs. Unlike ``monai.networks.nets.PatchDiscriminator`` (stride 1
    on its last layer, zero padding) it returns one logit map per scale, not intermediate features.

    Shapes: ``(B, input_dim, H, W)`` -> a list of ``num_scales`` raw logit maps; scale ``k`` (0 = full resolution)
    sees ``ceil(H / 2**k)`` and returns ``(B, 1, ceil(H / 2**k) // 2**n_layer, ...)``: ``(4, 2, 1)`` for 64x64,
    ``(12, 6, 3)`` for the paper's 192x192. ``H`` and ``W`` must be at least ``min_size``
    (``2**(num_scales - 1) * (2**n_layer - 1) + 1``, 61 by default); ``ValueError`` otherwise.

    Args:
        input_dim: image channels (1).
        dim: filters of the first conv (64).
        n_layer: stride-2 convs per scale (4).
        num_scales: scales (3).

    Raises:
        ValueError: naming the offending argument or input shape.

    Examples::

        >>> [o.shape[-1] for o in MultiScaleDiscriminator(dim=8)(torch.zeros(1, 1, 64, 64))]
        [4, 2, 1]
    """

    def __init__(self, input_dim: int = 1, dim: int = 64, n_layer: int = 4, num_scales: int = 3) -> None:
        super().__init__()
        for name, value in (("input_dim", input_dim), ("dim", dim), ("n_layer", n_layer), ("num_scales", num_scales)):
            _check_int(name, value, 1)
        self.input_dim = input_dim
        self.n_layer = n_layer
        self.num_scales = num_scales
        self.downsample = Pool[Pool.AVG, 2](3, stride=2, padding=1, count_include_pad=False)
        self.cnns = nn.ModuleList([self._make_net(input_dim, dim, n_layer) for _ in range(num_scales)])
        self.min_size = (2 ** (num_scales - 1)) * (2**n_layer - 1) + 1
        self.apply(_gaussian_init)

    @staticmethod
    def _make_net(input_dim: int, dim: int, n_layer: int) -> nn.Sequential:
        layers: list[nn.Module] = [_ConvBlock(input_dim, dim, 4, 2, 1, activation="lrelu")]
        for _ in range(n_layer - 1):
            layers.append(_ConvBlock(dim, 2 * dim, 4, 2, 1, activation="lrelu"))
            dim *= 2
        layers.append(_CONV(dim, 1, 1))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """
        Args:
            x: ``(B, input_dim, H, W)`` in ``[-1, 1]``.

        Returns:
            ``num_scales`` logit maps ``(B, 1, h_k, w_k)``, full resolution first.
        """
        _check_image("MultiScaleDiscriminator", x, self.input_dim, self.min_size)
        outputs = []
        for k, net in enumerate(self.cnns):
            if k > 0:
                x = self.downsample(x)
            outputs.append(net(x))
        return outputs

    def calc_dis_loss(self, input_fake: torch.Tensor, input_real: torch.Tensor) -> torch.Tensor:
        """LSGAN discriminator loss of fake and real images (``lsgan_discriminator_loss`` of both outputs)."""
        return lsgan_discriminator_loss(self(input_fake), self(input_real))

    def calc_gen_loss(self, input_fake: torch.Tensor) -> torch.Tensor:
        """LSGAN generator loss of fake images (``lsgan_generator_loss`` of the outputs)."""
        return lsgan_generator_loss(self(input_fake))


def lsgan_discriminator_loss(outputs_fake: list[torch.Tensor], outputs_real: list[torch.Tensor]) -> torch.Tensor:
    """Least-squares GAN loss of a multi-scale discriminator (Mao et al., ICCV 2017), as MUNIT's: summed over scales.

    ``sum_k mean(D_k(fake)^2) + mean((D_k(real) - 1)^2)`` (no factor 1/2).

    Args:
        outputs_fake: the discriminator's logit maps of fake images, one per scale.
        outputs_real: the same for real images.

    Raises:
        ValueError: the two lists differ in length or are empty.

    Examples::

        >>> lsgan_discriminator_loss([torch.zeros(1, 1, 2, 2)], [torch.ones(1, 1, 2, 2)]).item()
        0.0
    """
    if not outputs_fake or len(outputs_fake) != len(outputs_real):
        raise ValueError(
            f"outputs_fake and outputs_real must be non-empty lists of one map per scale, got {len(outputs_fake)} "
            f"and {len(outputs_real)}."
        )
    return sum(torch.mean(fake**2) + torch.mean((real - 1) ** 2) for fake, real in zip(outputs_fake, outputs_real))


def lsgan_generator_loss(outputs_fake: list[torch.Tensor]) -> torch.Tensor:
    """Least-squares GAN generator loss, as MUNIT's: ``sum_k mean((D_k(fake) - 1)^2)`` over the scales.

    Args:
        outputs_fake: the discriminator's logit maps of fake images, one per scale.

    Raises:
        ValueError: an empty list.

    Examples::

        >>> lsgan_generator_loss([torch.ones(1, 1, 2, 2)]).item()
        0.0
    """
    if not outputs_fake:
        raise ValueError("outputs_fake must be a non-empty list of one map per scale.")
    return sum(torch.mean((fake - 1) ** 2) for fake in outputs_fake)


@torch.no_grad()
def translate(
    gen_src: nn.Module,
    gen_tgt: nn.Module,
    x: torch.Tensor,
    styles: int | torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Translate one image into the target domain with several styles: ``G_tgt(E^c_src(x), s_i)``.

    The paper's synthetic LGE set: each labelled bSSFP slice with 5 style codes ``s_i ~ N(0, I)`` (section 3).
    The content code is computed once and decoded with every style in one batch; no gradients. A network wrapped in
    ``DistributedDataParallel`` is unwrapped.

    Args:
        gen_src: ``MUNITGenerator`` of the source domain (bSSFP).
        gen_tgt: ``MUNITGenerator`` of the target domain (LGE).
        x: one image ``(1, C, H, W)`` or ``(C, H, W)`` in ``[-1, 1]``.
        styles: the number ``N`` of style codes to draw from ``N(0, I)``, or the codes ``(N, style_dim[, 1, 1])``.
        generator: random generator of the drawn codes (seeded generation); ``None`` uses the global one.

    Returns:
        ``(N, C, H, W)`` translations in ``[-1, 1]``, in the order of the style codes.

    Raises:
        ValueError: ``x`` is not one image, ``styles < 1`` or codes of the wrong shape.

    Examples::

        synthetic_lge = translate(gen_a, gen_b, bssfp_slice, 5, torch.Generator().manual_seed(0))  # (5, 1, H, W)
    """
    gen_src, gen_tgt = getattr(gen_src, "module", gen_src), getattr(gen_tgt, "module", gen_tgt)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"translate expects one image (1, C, H, W) or (C, H, W), got shape {tuple(x.shape)}.")
    style_dim = gen_tgt.style_dim
    if isinstance(styles, torch.Tensor):
        if styles.ndim not in (2, 4) or styles.shape[0] < 1 or styles[0].numel() != style_dim:
            raise ValueError(f"styles must be (N, {style_dim}[, 1, 1]) style codes, got shape {tuple(styles.shape)}.")
        codes = styles.reshape(styles.shape[0], style_dim, 1, 1).to(device=x.device, dtype=x.dtype)
    else:
        _check_int("styles", styles, 1)
        device = generator.device if generator is not None else x.device
        codes = torch.randn(styles, style_dim, 1, 1, generator=generator, device=device).to(x.device, x.dtype)
    content, _ = gen_src.encode(x)
    return gen_tgt.decode(content.expand(codes.shape[0], *content.shape[1:]), codes)
