"""A compact StyleSwin generator and its discriminator (Zhang et al., "StyleSwin: Transformer-based GAN for
High-resolution Image Generation", CVPR 2022).

The generator is the generative prior of TransMRSR (Huang et al., section 3.3): pretrained as a GAN on
high-resolution slices, then used as the decoder of :class:`common.nets.transmrsr.TransMRSR`. Layout as the
StyleSwin paper (section 3): a StyleGAN2 mapping network, a learned 4x4 constant, one layer per resolution
``4, 8, ..., size`` of style-modulated Swin blocks whose attention heads are split between regular and shifted
windows ("double attention"), bilinear x2 upsampling between layers, and StyleGAN2's skip "toRGB" outputs. The
discriminator is StyleSwin's wavelet one (its ``models/discriminator.py``, after SWAGAN: the image enters as Haar
sub-bands, again at every scale, through plain conv blocks), which StyleSwin uses against the blocking artefacts of
windowed attention (TransMRSR 0.2.2 and earlier used StyleGAN2's residual discriminator). Everything here is 2D.

Differences from the public StyleSwin code, each chosen on purpose:

- the image output is linear (no Tanh; MRI intensities in ``[0, 1]``) with ``out_channels`` channels;
- the position encoding is added to the tokens at the input of every layer (StyleSwin: after each upsampling, so
  not at 4 px), scaled by a learned gain that starts at 0 as StyleSwin's ``alpha``. Without the gain (this module
  before TransMRSR 0.2.0) the unit-amplitude encoding dominated the early images: a quick prior trained for 900
  iterations still drew a lattice of its stripes, never anatomy;
- "toRGB" is a modulated 1x1 projection (StyleGAN2's, without demodulation) from the layer's last latent, on the
  layer's own output, and the previous image is upsampled bilinearly (no blur kernel);
- the AdaIN scale starts at 1 (the affine map's bias is 1 for the scale, 0 for the shift, as StyleGAN2's modulation);
- widths are capped by ``max_channels`` so that tests and quick runs can use small networks;
- the discriminator uses plain convolutions and leaky ReLUs with PyTorch's default initialisation (no equalised
  learning rate, no bias-and-sqrt(2) fused activation); its blur and Haar filters are StyleSwin's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from common.nets.recompute import call_recomputed, check_recompute_resolutions
from common.nets.wavelets import blur, haar_dwt, haar_iwt
from monai.networks.layers.factories import Conv

__all__ = ["StyleSwinGenerator", "StyleSwinDiscriminator", "WindowAttention", "styleswin_channels"]

_CONV = Conv[Conv.CONV, 2]
#: StyleGAN2 / StyleSwin width per resolution; the entries from 64 on are multiplied by ``channel_multiplier``
_BASE_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
_MULTIPLIED_FROM = 64
_LEAKY_SLOPE = 0.2


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def _check_size(name: str, size: object, minimum: int = 8) -> int:
    """``size`` is a power of two in ``[minimum, 1024]``; returns ``log2(size)``."""
    if (
        not isinstance(size, int)
        or isinstance(size, bool)
        or size < minimum
        or size > max(_BASE_CHANNELS)
        or size & (size - 1) != 0
    ):
        raise ValueError(f"{name} must be a power of 2 in [{minimum}, {max(_BASE_CHANNELS)}], got {size!r}.")
    return int(math.log2(size))


def styleswin_channels(size: int, channel_multiplier: int = 1, max_channels: int = 512) -> dict[int, int]:
    """Width of each resolution ``4, 8, ..., size``: StyleGAN2's table, capped at ``max_channels``.

    Args:
        size: the image size, a power of 2 in ``[8, 1024]``.
        channel_multiplier: multiplies the widths from resolution 64 on (StyleSwin: 1 for the compact model, 2).
        max_channels: upper bound of every width.

    Returns:
        ``{resolution: channels}`` in increasing resolution.

    Raises:
        ValueError: naming the offending argument.
    """
    _check_size("size", size)
    _check_int("channel_multiplier", channel_multiplier, 1)
    _check_int("max_channels", max_channels, 1)
    widths = {}
    for resolution in (2**i for i in range(2, int(math.log2(size)) + 1)):
        base = _BASE_CHANNELS[resolution]
        if resolution >= _MULTIPLIED_FROM:
            base *= channel_multiplier
        widths[resolution] = min(max_channels, base)
    return widths


def _has_shape(x: torch.Tensor, expected: Sequence[int | None]) -> bool:
    """``x`` has ``len(expected)`` dims and each size equals its entry (``None``: any size).

    Always true while ``torch.jit.trace`` records: sizes are then traced values, and a traced graph is specialised
    to the shapes it was traced with anyway (the eager call checks them).
    """
    if torch.jit.is_tracing():
        return True
    return x.ndim == len(expected) and all(e is None or s == e for s, e in zip(x.shape, expected))


def _tokens_to_map(tokens: torch.Tensor, resolution: int) -> torch.Tensor:
    """``(B, H*W, C) -> (B, C, H, W)`` with ``H = W = resolution``."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], resolution, resolution)


def _map_to_tokens(feature_map: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W) -> (B, H*W, C)``."""
    return feature_map.flatten(2).transpose(1, 2)


def _window_partition(x: torch.Tensor, resolution: int, window: int) -> torch.Tensor:
    """``(B, H, W, C) -> (B, nW, window**2, C)``: non-overlapping windows in row-major window order."""
    per_side = resolution // window
    x = x.reshape(x.shape[0], per_side, window, per_side, window, x.shape[-1])
    return x.permute(0, 1, 3, 2, 4, 5).reshape(x.shape[0], per_side * per_side, window * window, x.shape[-1])


def _window_merge(windows: torch.Tensor, resolution: int, window: int) -> torch.Tensor:
    """Inverse of :func:`_window_partition`: ``(B, nW, window**2, C) -> (B, H, W, C)``."""
    per_side = resolution // window
    x = windows.reshape(windows.shape[0], per_side, per_side, window, window, windows.shape[-1])
    return x.permute(0, 1, 3, 2, 4, 5).reshape(windows.shape[0], resolution, resolution, windows.shape[-1])


def _shifted_window_mask(resolution: int, window: int, shift: int) -> torch.Tensor:
    """Additive attention mask ``(nW, N, N)`` (0 or ``-inf``) for windows of a map rolled by ``-shift``.

    After the roll, the last ``shift`` rows (columns) hold the first rows (columns) of the image: they wrapped
    around. Inside one window two tokens may attend to each other only when both or neither wrapped, along each
    axis; otherwise they are far apart in the image and only adjacent because of the cyclic roll (Swin, section 3.2).
    """
    wrapped = (torch.arange(resolution) >= resolution - shift).long()
    region = (2 * wrapped[:, None] + wrapped[None, :]).float()  # 4 regions, labelled by (row wrapped, column wrapped)
    labels = _window_partition(region[None, :, :, None], resolution, window)[0, :, :, 0]  # (nW, N)
    same_region = labels[:, :, None] == labels[:, None, :]
    return torch.zeros(same_region.shape).masked_fill(~same_region, float("-inf"))


def _relative_position_index(window: int) -> torch.Tensor:
    """``(N, N)`` index into a ``((2 window - 1)**2, heads)`` table of the offset between two tokens of a window."""
    rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([rows.flatten(), cols.flatten()])  # (2, N)
    offset = coords[:, :, None] - coords[:, None, :] + (window - 1)  # (2, N, N), each in [0, 2 window - 2]
    return offset[0] * (2 * window - 1) + offset[1]


def _sinusoidal_encoding_1d(positions: torch.Tensor, channels: int) -> torch.Tensor:
    """``(P,) -> (P, channels)``: ``sin`` then ``cos`` of the positions at geometric frequencies (Vaswani et al.)."""
    half = channels // 2
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / max(half, 1))
    angles = positions.float()[:, None] * frequencies[None, :]
    encoding = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    return F.pad(encoding, (0, channels - 2 * half))


def _sinusoidal_position_encoding(resolution: int, channels: int) -> torch.Tensor:
    """``(1, H*W, C)``: the first ``C // 2`` channels encode the row, the others the column (StyleSwin's SPE)."""
    positions = torch.arange(resolution)
    row_channels = channels // 2
    rows = _sinusoidal_encoding_1d(positions, row_channels)  # (H, C/2)
    cols = _sinusoidal_encoding_1d(positions, channels - row_channels)  # (W, C - C/2)
    grid = torch.cat(
        [rows[:, None, :].expand(-1, resolution, -1), cols[None, :, :].expand(resolution, -1, -1)], dim=2
    )  # (H, W, C)
    return grid.reshape(1, resolution * resolution, channels)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside (shifted) windows with a relative position bias (Swin, Liu et al. 2021).

    ``softmax(q k^T / sqrt(head_dim) + B + M) v`` per window and head: ``B`` a learned bias per relative offset
    inside the window, ``M`` the shifted-window mask (0 or ``-inf``; only when ``shift > 0``). With ``shift > 0`` the
    map is rolled by ``-shift`` before partitioning and rolled back afterwards. The queries, keys and values are
    computed outside (the StyleSwin block splits one projection between a regular and a shifted instance).

    Window and shift follow Swin: ``window = min(window_size, resolution)``, and a map that fits in one window
    is not shifted (``shift = 0``), since a single window already sees every token.

    Args:
        channels: channels of ``q``, ``k`` and ``v``.
        num_heads: heads; must divide ``channels``.
        resolution: side of the square token map.
        window_size: requested window side; must divide ``resolution`` once capped at it.
        shifted: shift the windows by ``window // 2`` (SW-MSA) instead of using regular windows (W-MSA).

    Raises:
        ValueError: naming the offending argument.
    """

    def __init__(self, channels: int, num_heads: int, resolution: int, window_size: int, shifted: bool) -> None:
        super().__init__()
        for name, value in (("channels", channels), ("num_heads", num_heads), ("resolution", resolution)):
            _check_int(name, value, 1)
        _check_int("window_size", window_size, 1)
        if channels % num_heads != 0:
            raise ValueError(f"num_heads ({num_heads}) must divide channels ({channels}).")
        window = min(window_size, resolution)
        if resolution % window != 0:
            raise ValueError(f"window_size {window} must divide the resolution {resolution}.")
        self.channels, self.num_heads, self.resolution, self.window = channels, num_heads, resolution, window
        self.head_dim = channels // num_heads
        self.scale = self.head_dim**-0.5
        self.shift = window // 2 if shifted and resolution > window else 0
        self.relative_position_bias = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias, std=0.02)
        self.register_buffer("relative_position_index", _relative_position_index(window).flatten(), persistent=False)
        mask = _shifted_window_mask(resolution, window, self.shift) if self.shift > 0 else torch.zeros(1, 1, 1)
        self.register_buffer("shift_mask", mask, persistent=False)

    def attention_bias(self) -> torch.Tensor:
        """The additive term ``B + M``: ``(nW or 1, heads, N, N)``."""
        n = self.window * self.window
        bias = self.relative_position_bias[self.relative_position_index].reshape(n, n, self.num_heads)
        return bias.permute(2, 0, 1)[None] + self.shift_mask[:, None]

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """
        Args:
            q, k, v: ``(B, H, W, channels)`` with ``H = W = resolution``.

        Returns:
            the attended values, ``(B, H, W, channels)``, in the input's (unshifted) layout.
        """
        batch, num_windows, n = q.shape[0], (self.resolution // self.window) ** 2, self.window * self.window
        bias = self.attention_bias()
        # windows and heads are independent attention problems: with a shift, stack them as (B, nW * heads) so that
        # the (nW, heads) bias broadcasts over the batch; without, as (B * nW, heads) with one (heads) bias
        layout = (batch, num_windows * self.num_heads) if self.shift > 0 else (batch * num_windows, self.num_heads)
        windows = []
        for t in (q, k, v):
            if self.shift > 0:
                t = torch.roll(t, shifts=(-self.shift, -self.shift), dims=(1, 2))
            t = _window_partition(t, self.resolution, self.window)  # (B, nW, N, C)
            t = t.reshape(batch, num_windows, n, self.num_heads, self.head_dim).transpose(2, 3)
            windows.append(t.reshape(*layout, n, self.head_dim))
        bias = bias.reshape(1, -1, n, n).to(windows[0].dtype)  # autocast: the mask must match the queries
        out = F.scaled_dot_product_attention(*windows, attn_mask=bias, scale=self.scale)  # layout + (N, head_dim)
        out = out.reshape(batch, num_windows, self.num_heads, n, self.head_dim).transpose(2, 3)
        out = out.reshape(batch, num_windows, n, self.channels)
        out = _window_merge(out, self.resolution, self.window)
        if self.shift > 0:
            out = torch.roll(out, shifts=(self.shift, self.shift), dims=(1, 2))
        return out

    def extra_repr(self) -> str:
        return f"channels={self.channels}, heads={self.num_heads}, window={self.window}, shift={self.shift}"


class _EqualLinear(nn.Module):
    """Linear layer with equalised learning rate (Karras et al., ProGAN): weights ``N(0, 1) / lr_mul``, scaled at
    run time by ``lr_mul / sqrt(in_features)``; optional leaky ReLU(0.2) with StyleGAN2's ``sqrt(2)`` gain."""

    def __init__(
        self, in_features: int, out_features: int, bias_init: float = 0.0, lr_mul: float = 1.0, activation: bool = False
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), bias_init / lr_mul))
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight * self.weight_gain, self.bias * self.lr_mul)
        if self.activation:
            out = F.leaky_relu(out, _LEAKY_SLOPE) * math.sqrt(2.0)
        return out


class _PixelNorm(nn.Module):
    """``z / sqrt(mean(z**2) + 1e-8)`` over the latent dimension (StyleGAN's input normalisation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class _AdaptiveInstanceNorm(nn.Module):
    """AdaIN on tokens: each channel normalised over the tokens, then ``gamma(w) * x + beta(w)`` (StyleSwin eq. 1).

    ``gamma`` and ``beta`` come from an equalised affine map of the block's latent; ``gamma`` starts around 1.
    """

    def __init__(self, channels: int, style_dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.style = _EqualLinear(style_dim, 2 * channels)
        with torch.no_grad():
            self.style.bias[:channels] = 1.0
        self.channels = channels
        self.eps = eps

    def forward(self, tokens: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        mean = tokens.mean(dim=1, keepdim=True)
        var = tokens.var(dim=1, unbiased=False, keepdim=True)
        normalised = (tokens - mean) * torch.rsqrt(var + self.eps)
        gamma, beta = self.style(latent)[:, None, :].split(self.channels, dim=2)
        return gamma * normalised + beta


class _Mlp(nn.Sequential):
    """``Linear(C, ratio C) -> GELU -> Linear(ratio C, C)``: the transformer feed-forward network."""

    def __init__(self, channels: int, mlp_ratio: float) -> None:
        hidden = max(1, int(channels * mlp_ratio))
        super().__init__(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))


class _StyleSwinBlock(nn.Module):
    """StyleSwin block (StyleSwin section 3.2): AdaIN, double attention, residual; AdaIN, MLP, residual.

    Double attention: one ``qkv`` projection; its first half of the channels (half of the heads) attends within
    regular windows, the second half within windows shifted by ``window // 2``, so each block sees both window
    layouts (a larger receptive field than alternating W-MSA and SW-MSA blocks).
    """

    def __init__(
        self, channels: int, resolution: int, num_heads: int, window_size: int, mlp_ratio: float, style_dim: int
    ) -> None:
        super().__init__()
        self.channels, self.resolution = channels, resolution
        self.norm1 = _AdaptiveInstanceNorm(channels, style_dim)
        self.qkv = nn.Linear(channels, 3 * channels)
        half = channels // 2
        self.attention = nn.ModuleList(
            [WindowAttention(half, num_heads // 2, resolution, window_size, shifted) for shifted in (False, True)]
        )
        self.proj = nn.Linear(channels, channels)
        self.norm2 = _AdaptiveInstanceNorm(channels, style_dim)
        self.mlp = _Mlp(channels, mlp_ratio)

    def forward(self, tokens: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        batch, half = tokens.shape[0], self.channels // 2
        qkv = self.qkv(self.norm1(tokens, latent)).reshape(batch, self.resolution, self.resolution, 3, self.channels)
        q, k, v = qkv.unbind(dim=3)
        regular = self.attention[0](q[..., :half], k[..., :half], v[..., :half])
        shifted = self.attention[1](q[..., half:], k[..., half:], v[..., half:])
        attended = torch.cat([regular, shifted], dim=3).reshape(batch, -1, self.channels)
        tokens = tokens + self.proj(attended)
        return tokens + self.mlp(self.norm2(tokens, latent))


class _StyleSwinLayer(nn.Module):
    """One resolution of the generator: sinusoidal position encoding, then ``depth`` StyleSwin blocks (each
    recomputed in the backward pass instead of keeping its activations if ``recompute``)."""

    def __init__(
        self,
        channels: int,
        resolution: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        style_dim: int,
        recompute: bool = False,
    ) -> None:
        super().__init__()
        self.resolution, self.channels, self.recompute = resolution, channels, recompute
        self.register_buffer("position_encoding", _sinusoidal_position_encoding(resolution, channels), persistent=False)
        self.position_gain = nn.Parameter(torch.zeros(()))
        self.blocks = nn.ModuleList(
            [_StyleSwinBlock(channels, resolution, num_heads, window_size, mlp_ratio, style_dim) for _ in range(depth)]
        )

    def forward(self, tokens: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """``tokens (B, H*W, C)``, ``latents (B, depth, style_dim)`` -> ``(B, H*W, C)``."""
        tokens = tokens + self.position_gain * self.position_encoding
        for i, block in enumerate(self.blocks):
            tokens = call_recomputed(block, tokens, latents[:, i]) if self.recompute else block(tokens, latents[:, i])
        return tokens


class _BilinearUpsample(nn.Module):
    """Bilinear x2 upsampling of the token map, LayerNorm, then a linear map to the next width (StyleSwin's)."""

    def __init__(self, resolution: int, channels: int, out_channels: int) -> None:
        super().__init__()
        self.resolution = resolution
        self.norm = nn.LayerNorm(channels)
        self.reduction = nn.Linear(channels, out_channels, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        feature_map = F.interpolate(
            _tokens_to_map(tokens, self.resolution), scale_factor=2.0, mode="bilinear", align_corners=False
        )
        return self.reduction(self.norm(_map_to_tokens(feature_map)))


class _ToImage(nn.Module):
    """StyleGAN2's "toRGB": a 1x1 projection to the image channels whose input channels are scaled by an affine map
    of the latent (modulation, no demodulation), plus a bias. Linear: no activation."""

    def __init__(self, channels: int, out_channels: int, style_dim: int) -> None:
        super().__init__()
        self.modulation = _EqualLinear(style_dim, channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(channels)

    def forward(self, tokens: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        """``tokens (B, H*W, C)``, ``latent (B, style_dim)`` -> ``(B, H*W, out_channels)``."""
        style = self.modulation(latent)[:, None, :]
        return F.linear(tokens * style, self.weight * self.weight_gain, self.bias)


def _init_transformer_linear(module: nn.Module) -> None:
    """StyleSwin's initialisation of the transformer layers: ``nn.Linear`` weights truncated ``N(0, 0.02)``,
    biases 0; LayerNorm weight 1, bias 0. (Equalised layers keep their own ``N(0, 1)``.)"""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class StyleSwinGenerator(nn.Module):
    """StyleSwin generator (Zhang et al., CVPR 2022, section 3): latent ``z`` -> image, with a skip to features.

    - mapping network (StyleGAN2's): PixelNorm, then ``n_mlp`` equalised linear layers (learning-rate multiplier
      ``lr_mlp``, leaky ReLU 0.2 with gain ``sqrt(2)``), ``z (B, style_dim) -> w (B, style_dim)``;
    - a learned constant ``self.input`` ``(1, C_4, 4, 4)``;
    - one layer per resolution ``r = 4, 8, ..., size`` (``n_layers = log2(size) - 1``) with ``C_r`` channels
      (:func:`styleswin_channels`): a fixed sinusoidal 2D position encoding times a learned gain (0 at the start)
      added to the tokens, then ``depth``
      StyleSwin blocks: AdaIN from the block's latent (before the attention and before the MLP), double attention
      with ``max(C_r // 32, 4)`` heads, half on regular and half on shifted windows (``window = min(window_size,
      r)``, shift ``window // 2``; a map that fits in one window is not shifted, as in StyleSwin), attention scaled
      by ``1 / sqrt(head_dim)`` with a relative position bias; MLP of ratio ``mlp_ratio``; residuals;
    - between layers: bilinear x2 upsampling, LayerNorm and a linear map to the next width;
    - after every layer a modulated 1x1 "toRGB" to ``out_channels`` from that layer's last latent, summed with the
      bilinearly upsampled previous image (StyleGAN2's skip architecture). The output is **linear** (no Tanh):
      MRI intensities in ``[0, 1]``.

    One latent per block: ``num_latents = depth * n_layers`` (14 for 256 px). ``layer_shapes[i]`` is the
    ``(resolution, channels)`` of layer ``i``'s input, which is where TransMRSR's CWSS modulators act
    (``synthesis(..., modulators=...)``).

    Shapes: ``z (B, style_dim) -> (B, out_channels, size, size)``. ``torch.jit.trace`` works (no branching on
    tensor values; window masks and position encodings are buffers computed once).

    Args:
        size: output side, a power of 2 in ``[8, 1024]``.
        style_dim: dimension of ``z`` and ``w`` (512).
        n_mlp: layers of the mapping network (8).
        channel_multiplier: widths from resolution 64 on are multiplied by it (1: StyleSwin's compact model).
        out_channels: image channels (1).
        window_size: attention window side (8).
        mlp_ratio: hidden width of the MLP over the channels (4).
        lr_mlp: learning-rate multiplier of the mapping network (0.01).
        max_channels: cap of every width (512, i.e. no cap for ``channel_multiplier`` 1).
        depth: StyleSwin blocks per layer (2).
        recompute_resolutions: resolutions whose layers keep no activations for the backward pass and recompute
            them (:func:`common.nets.recompute.call_recomputed`): less memory, the same gradients, one more forward
            of those layers per step. Empty by default.

    Raises:
        ValueError: naming the offending argument (e.g. a ``size`` that is not a power of 2, or widths that do not
            split into the layer's heads).

    Examples::

        >>> g = StyleSwinGenerator(size=16, style_dim=16, n_mlp=2, max_channels=16)
        >>> g(torch.randn(2, 16)).shape
        torch.Size([2, 1, 16, 16])
    """

    def __init__(
        self,
        size: int = 256,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 1,
        out_channels: int = 1,
        window_size: int = 8,
        mlp_ratio: float = 4.0,
        lr_mlp: float = 0.01,
        max_channels: int = 512,
        depth: int = 2,
        recompute_resolutions: Sequence[int] = (),
    ) -> None:
        super().__init__()
        log_size = _check_size("size", size)
        for name, value, minimum in (
            ("style_dim", style_dim, 1),
            ("n_mlp", n_mlp, 1),
            ("out_channels", out_channels, 1),
            ("window_size", window_size, 1),
            ("depth", depth, 1),
        ):
            _check_int(name, value, minimum)
        if not mlp_ratio > 0:
            raise ValueError(f"mlp_ratio must be positive, got {mlp_ratio!r}.")
        if not lr_mlp > 0:
            raise ValueError(f"lr_mlp must be positive, got {lr_mlp!r}.")
        widths = styleswin_channels(size, channel_multiplier, max_channels)
        self.size, self.style_dim, self.out_channels, self.depth = size, style_dim, out_channels, depth
        self.n_layers = log_size - 1
        self.num_latents = depth * self.n_layers
        self.layer_shapes: list[tuple[int, int]] = list(widths.items())
        self.recompute_resolutions = check_recompute_resolutions(recompute_resolutions, widths, "StyleSwinGenerator")

        mapping_layers = [_EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation=True) for _ in range(n_mlp)]
        self.style = nn.Sequential(_PixelNorm(), *mapping_layers)
        self.input = nn.Parameter(torch.randn(1, widths[4], 4, 4))
        self.layers = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        self.to_images = nn.ModuleList()
        for i, (resolution, channels) in enumerate(self.layer_shapes):
            num_heads = max(channels // 32, 4)
            if channels % num_heads != 0:
                raise ValueError(
                    f"the layer at resolution {resolution} has {channels} channels, which do not split into "
                    f"{num_heads} attention heads (two groups): choose max_channels or channel_multiplier so that "
                    f"every width is a multiple of {num_heads}."
                )
            self.layers.append(
                _StyleSwinLayer(
                    channels,
                    resolution,
                    depth,
                    num_heads,
                    window_size,
                    mlp_ratio,
                    style_dim,
                    recompute=resolution in self.recompute_resolutions,
                )
            )
            self.to_images.append(_ToImage(channels, out_channels, style_dim))
            if i < self.n_layers - 1:
                self.upsamples.append(_BilinearUpsample(resolution, channels, self.layer_shapes[i + 1][1]))
        self.layers.apply(_init_transformer_linear)
        self.upsamples.apply(_init_transformer_linear)

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """The mapping network ``f``: ``z (B, style_dim) -> w (B, style_dim)``."""
        if not _has_shape(z, (None, self.style_dim)):
            raise ValueError(f"StyleSwinGenerator expects z of shape (B, {self.style_dim}), got {tuple(z.shape)}.")
        return self.style(z)

    def forward(
        self, z: torch.Tensor, truncation: float = 1.0, truncation_latent: torch.Tensor | None = None
    ) -> torch.Tensor:
        """
        Args:
            z: ``(B, style_dim)`` latent codes (standard normal).
            truncation: ``t`` of the truncation trick ``w_avg + t (w - w_avg)``; 1 leaves ``w`` unchanged.
            truncation_latent: ``w_avg`` ``(style_dim,)`` or ``(1, style_dim)``, needed when ``truncation != 1``
                (e.g. ``g.mapping(torch.randn(4096, style_dim)).mean(0)``).

        Returns:
            the image ``(B, out_channels, size, size)``, linear output.

        Raises:
            ValueError: a wrong ``z`` shape, or ``truncation != 1`` without ``truncation_latent``.
        """
        w = self.mapping(z)
        if truncation != 1.0:
            if truncation_latent is None:
                raise ValueError(f"truncation {truncation} needs truncation_latent (the mean w).")
            w = truncation_latent + truncation * (w - truncation_latent)
        latents = w[:, None, :].expand(-1, self.num_latents, -1)
        return self.synthesis(latents)

    def synthesis(
        self,
        latents: torch.Tensor,
        modulators: Sequence[Callable[[torch.Tensor], torch.Tensor] | None] | None = None,
        return_features: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The synthesis network: from the learned constant, one latent per block.

        Args:
            latents: ``(B, num_latents, style_dim)``; block ``j`` of layer ``i`` uses ``latents[:, depth * i + j]``
                and layer ``i``'s toRGB its last block's latent.
            modulators: ``None`` or one entry per layer; entry ``i``, when not ``None``, receives layer ``i``'s input
                feature map ``(B, C, H, W)`` (``layer_shapes[i]``) and returns the same shape, which replaces it
                (TransMRSR's CWSS).
            return_features: also return the last layer's output feature map.

        Returns:
            the image ``(B, out_channels, size, size)``, or ``(image, features)`` with ``features``
            ``(B, C_size, size, size)`` when ``return_features``.

        Raises:
            ValueError: wrong ``latents`` shape or number of modulators.
        """
        if not _has_shape(latents, (None, self.num_latents, self.style_dim)):
            raise ValueError(
                f"StyleSwinGenerator.synthesis expects latents of shape (B, {self.num_latents}, {self.style_dim}), "
                f"got {tuple(latents.shape)}."
            )
        if modulators is not None and len(modulators) != self.n_layers:
            raise ValueError(f"modulators must have one entry per layer ({self.n_layers}), got {len(modulators)}.")
        tokens = _map_to_tokens(self.input.expand(latents.shape[0], -1, -1, -1))
        image: torch.Tensor | None = None
        for i, layer in enumerate(self.layers):
            resolution = self.layer_shapes[i][0]
            modulator = None if modulators is None else modulators[i]
            if modulator is not None:
                tokens = _map_to_tokens(modulator(_tokens_to_map(tokens, resolution)))
            tokens = layer(tokens, latents[:, self.depth * i : self.depth * (i + 1)])
            layer_image = _tokens_to_map(self.to_images[i](tokens, latents[:, self.depth * (i + 1) - 1]), resolution)
            if image is None:
                image = layer_image
            else:
                image = F.interpolate(image, scale_factor=2.0, mode="bilinear", align_corners=False) + layer_image
            if i < self.n_layers - 1:
                tokens = self.upsamples[i](tokens)
        assert image is not None  # n_layers >= 2
        if return_features:
            return image, _tokens_to_map(tokens, self.size)
        return image


class _FromImage(nn.Module):
    """StyleSwin's ``FromRGB``: the image's Haar sub-bands, brought down one scale first (inverse transform,
    anti-aliased x2 downsampling, transform again) except at the first scale, then 1x1 conv + lrelu to ``width``
    features added to the running ones. Returns the sub-bands at this scale (for the next) and the features."""

    def __init__(self, in_channels: int, width: int, downsample: bool) -> None:
        super().__init__()
        self.downsample = downsample
        self.conv = _CONV(4 * in_channels, width, 1)

    def forward(self, bands: torch.Tensor, features: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.downsample:
            bands = haar_dwt(blur(haar_iwt(bands), 1, stride=2))
        out = F.leaky_relu(self.conv(bands), _LEAKY_SLOPE)
        return bands, out if features is None else out + features


class _DiscriminatorBlock(nn.Module):
    """StyleSwin's ``ConvBlock``: conv3x3 + lrelu, then blur and conv3x3 of stride 2 + lrelu; the resolution halves."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = _CONV(in_channels, in_channels, 3, padding=1)
        self.conv2 = _CONV(in_channels, out_channels, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.conv1(x), _LEAKY_SLOPE)
        return F.leaky_relu(self.conv2(blur(out, 2)), _LEAKY_SLOPE)


def _minibatch_group_size(batch: int, max_group: int = 4) -> int:
    """The largest group size ``<= max_group`` that divides ``batch`` (StyleGAN2 uses ``min(4, batch)``)."""
    return max(g for g in range(1, min(max_group, batch) + 1) if batch % g == 0)


class StyleSwinDiscriminator(nn.Module):
    """StyleSwin's wavelet discriminator (its ``models/discriminator.py``, after SWAGAN, Gal et al., 2021).

    The image enters as its Haar sub-bands (:func:`common.nets.wavelets.haar_dwt`, ``size / 2``) and again at every
    lower scale (the sub-bands brought down by inverse transform, anti-aliased x2 downsampling and transform): at
    each scale ``size / 2, ..., 8`` a 1x1 conv + lrelu of the sub-bands is added to the running features, then a
    conv block (conv3x3 + lrelu, blur and conv3x3 of stride 2 + lrelu) halves the resolution; at 4x4 the last
    sub-bands are added the same way. Then the minibatch standard deviation channel (the std of each feature over a
    group of samples, averaged over channels and pixels; group size the largest divisor of ``B`` up to 4, so any
    batch size works); conv3x3 (+ lrelu), flatten, linear (+ lrelu), linear to one logit. Widths from
    :func:`styleswin_channels` as StyleSwin's (the features at scale ``size / 2`` have the width of ``size``, each
    block gives the width of the scale it halves to). Leaky ReLU slope 0.2. Plain convolutions and linears with
    PyTorch's default initialisation (StyleSwin: equalised learning rate and a scaled, biased leaky ReLU).

    Shapes: ``(B, in_channels, size, size) -> (B, 1)`` raw logits (use a non-saturating / softplus loss outside).

    Args:
        size: input side, a power of 2 in ``[16, 1024]``.
        in_channels: image channels (1).
        channel_multiplier: as the generator's.
        max_channels: cap of every width.

    Raises:
        ValueError: naming the offending argument, or at call time an input of the wrong shape.

    Examples::

        >>> StyleSwinDiscriminator(size=16, max_channels=16)(torch.zeros(3, 1, 16, 16)).shape
        torch.Size([3, 1])
    """

    #: the minibatch standard deviation mixes the samples of a batch: its real and fake images must not be stacked
    #: into one forward (``common.engines.batch_statistics_layers`` lists it, so ``stack_passes`` is refused)
    mixes_batch_samples = True

    def __init__(
        self, size: int = 256, in_channels: int = 1, channel_multiplier: int = 1, max_channels: int = 512
    ) -> None:
        super().__init__()
        _check_int("in_channels", in_channels, 1)
        widths = styleswin_channels(size, channel_multiplier, max_channels)
        if size < 16:
            raise ValueError(f"size must be at least 16 for the wavelet discriminator, got {size}.")
        self.size, self.in_channels = size, in_channels
        scales = [r for r in sorted(widths, reverse=True) if 4 < r < size]  # size / 2, ..., 8
        # the width at each scale (StyleSwin's in_channel): that of ``size`` at the first, then what the block gave
        inputs = [widths[size]] + [widths[r] for r in scales[1:]]
        self.from_images = nn.ModuleList(
            [_FromImage(in_channels, width, downsample=r != size // 2) for r, width in zip(scales, inputs)]
        )
        self.blocks = nn.ModuleList([_DiscriminatorBlock(width, widths[r // 2]) for r, width in zip(scales, inputs)])
        final = widths[4]
        self.from_image_4 = _FromImage(in_channels, final, downsample=True)
        self.final_conv = _CONV(final + 1, final, 3, padding=1)
        self.final_linear = nn.Linear(final * 4 * 4, final)
        self.logit = nn.Linear(final, 1)

    @staticmethod
    def minibatch_stddev(x: torch.Tensor) -> torch.Tensor:
        """Append one channel: per group, the mean over ``(C, H, W)`` of each feature's std over the group."""
        batch, channels, height, width = x.shape
        group = _minibatch_group_size(batch)
        grouped = x.reshape(group, batch // group, channels, height, width)
        std = torch.sqrt(grouped.var(dim=0, unbiased=False) + 1e-8)  # (B / G, C, H, W)
        std = std.mean(dim=(1, 2, 3)).reshape(1, batch // group, 1, 1, 1)
        std = std.expand(group, -1, 1, height, width).reshape(batch, 1, height, width)
        return torch.cat([x, std], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: ``(B, in_channels, size, size)``.

        Returns:
            raw logits ``(B, 1)``.
        """
        if not _has_shape(x, (None, self.in_channels, self.size, self.size)):
            raise ValueError(
                f"StyleSwinDiscriminator expects (B, {self.in_channels}, {self.size}, {self.size}), "
                f"got {tuple(x.shape)}."
            )
        bands, out = haar_dwt(x), None
        for from_image, block in zip(self.from_images, self.blocks):
            bands, out = from_image(bands, out)
            out = block(out)
        _, out = self.from_image_4(bands, out)
        out = F.leaky_relu(self.final_conv(self.minibatch_stddev(out)), _LEAKY_SLOPE)
        out = F.leaky_relu(self.final_linear(out.flatten(1)), _LEAKY_SLOPE)
        return self.logit(out)
