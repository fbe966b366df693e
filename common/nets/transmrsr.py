"""TransMRSR: Swin encoder + pretrained StyleSwin prior for brain MRI super-resolution (Huang et al., 2023, Fig. 2).

Sections 3.1-3.4 of the paper: shallow convolutional features, a Swin encoder down to 4x4 whose last map becomes one
latent per decoder block, the self-distilled truncation of those latents toward the nearest k-means centroid of the
prior's latents (Eq. 5), a StyleSwin decoder pretrained as a GAN (:class:`common.nets.styleswin.StyleSwinGenerator`)
modulated at every layer input by the encoder map of the same size (CWSS, Eqs. 6-9), a long skip (Eq. 10) and a
reconstruction head whose residual is added to the interpolated low-resolution input (Eq. 11).

Public-code bugs avoided here (goddesshs/TransMRSR, see the bundle README): the truncation picks the farthest
centroid (``argmax``), the encoder attention is not scaled by ``1 / sqrt(head_dim)``, and ``model.initialize()``
after loading the prior re-draws most of its weights.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn as nn
from common.nets.latent_centroids import check_centroids_prior
from common.nets.recompute import call_recomputed
from common.nets.styleswin import StyleSwinGenerator, WindowAttention
from monai.networks.layers.factories import Conv

__all__ = ["TransMRSR", "ChannelSplitScaleShift", "nearest_centroid_truncation"]

_CONV = Conv[Conv.CONV, 2]
_LEAKY_SLOPE = 0.2
#: keys of a GAN checkpoint that hold the generator, in order of preference (the EMA copy first)
PRIOR_KEYS = ("g_ema", "g")


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")


def _check_psi(psi: float) -> None:
    if isinstance(psi, bool) or not isinstance(psi, (int, float)) or not 0.0 <= psi <= 1.0:
        raise ValueError(f"psi must be a number in [0, 1], got {psi!r}.")


def nearest_centroid_truncation(latents: torch.Tensor, centroids: torch.Tensor, psi: float) -> torch.Tensor:
    """Self-distilled truncation (TransMRSR Eq. 5; Mokady et al., "Self-Distilled StyleGAN", 2022).

    Each latent vector moves toward its **nearest** centroid (Euclidean): ``c + psi (w - c)``. The centroids are
    k-means centres of latents sampled from the pretrained prior's mapping network, computed once; pulling the
    encoder's latents toward them keeps them out of the sparse margins of the prior's latent space. Every one of the
    ``L`` latents of a sample picks its centroid on its own. (The public TransMRSR code takes ``argmax`` of the
    distances, i.e. the **farthest** centroid: a bug, not reproduced.)

    Args:
        latents: ``w`` ``(B, L, D)``.
        centroids: ``(K, D)``.
        psi: truncation level in ``[0, 1]``; 1 leaves ``w`` unchanged, 0 replaces it by its centroid.

    Returns:
        the truncated latents ``(B, L, D)``.

    Raises:
        ValueError: ``psi`` outside ``[0, 1]`` or shapes that do not match.

    Examples::

        >>> w = torch.tensor([[[1.0, 0.0]]])
        >>> nearest_centroid_truncation(w, torch.tensor([[0.0, 0.0], [5.0, 5.0]]), 0.5)
        tensor([[[0.5000, 0.0000]]])
    """
    _check_psi(psi)
    if not torch.jit.is_tracing() and (
        latents.ndim != 3 or centroids.ndim != 2 or latents.shape[2] != centroids.shape[1]
    ):
        raise ValueError(
            f"latents must be (B, L, D) and centroids (K, D) with the same D, got {tuple(latents.shape)} and "
            f"{tuple(centroids.shape)}."
        )
    distances = (latents[:, :, None, :] - centroids[None, None]).pow(2).sum(dim=-1)  # (B, L, K)
    nearest = centroids[distances.argmin(dim=-1)]  # (B, L, D)
    return nearest + psi * (latents - nearest)


class ChannelSplitScaleShift(nn.Module):
    """Channel-wise scale and shift on half of the channels (CWSS; TransMRSR Eqs. 6-9, Fig. 3; GFPGAN's CS-SFT).

    ``scale`` and ``shift`` (``decoder_channels // 2`` channels each) come from two branches
    ``conv3x3 -> LeakyReLU(0.2) -> conv3x3`` on the encoder map ``condition`` of the same size. The first
    ``decoder_channels // 2`` channels of the decoder features become ``x (1 + scale) + shift``; the others pass
    unchanged (the split balances fidelity, from the encoder, and realness, from the prior), and both are
    concatenated back.

    Why ``1 + scale`` with zero-initialised last convolutions: the paper's equation images are missing from its
    text, and the public code uses ``x * scale + shift``, under which the prior's features vanish wherever the scale
    is near zero (at initialisation, for example). Here ``scale = shift = 0`` at the start of SR training, so the
    modulation is the identity and the pretrained prior's features pass unchanged until the encoder learns to
    adjust them.

    Shapes: ``features (B, decoder_channels, H, W)``, ``condition (B, encoder_channels, H, W)`` -> same as
    ``features``.

    Args:
        encoder_channels: channels of the encoder map.
        decoder_channels: channels of the decoder features (>= 2).

    Raises:
        ValueError: naming the offending argument, or at call time mismatched shapes.

    Examples::

        >>> cwss = ChannelSplitScaleShift(8, 16)
        >>> cwss(torch.randn(1, 16, 4, 4), torch.randn(1, 8, 4, 4)).shape
        torch.Size([1, 16, 4, 4])
    """

    def __init__(self, encoder_channels: int, decoder_channels: int) -> None:
        super().__init__()
        _check_int("encoder_channels", encoder_channels, 1)
        _check_int("decoder_channels", decoder_channels, 2)
        self.encoder_channels, self.decoder_channels = encoder_channels, decoder_channels
        self.split = decoder_channels // 2
        self.scale = self._branch(encoder_channels, self.split)
        self.shift = self._branch(encoder_channels, self.split)

    @staticmethod
    def _branch(in_channels: int, out_channels: int) -> nn.Sequential:
        branch = nn.Sequential(
            _CONV(in_channels, in_channels, 3, padding=1),
            nn.LeakyReLU(_LEAKY_SLOPE),
            _CONV(in_channels, out_channels, 3, padding=1),
        )
        nn.init.zeros_(branch[-1].weight)
        nn.init.zeros_(branch[-1].bias)
        return branch

    def forward(self, features: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """
        Args:
            features: decoder features ``(B, decoder_channels, H, W)``.
            condition: encoder map ``(B, encoder_channels, H, W)``.

        Returns:
            ``cat[x1 (1 + scale) + shift, x2]``, same shape as ``features``.
        """
        if not torch.jit.is_tracing() and (
            features.ndim != 4
            or condition.ndim != 4
            or features.shape[1] != self.decoder_channels
            or condition.shape[1] != self.encoder_channels
            or features.shape[0] != condition.shape[0]
            or features.shape[2:] != condition.shape[2:]
        ):
            raise ValueError(
                f"ChannelSplitScaleShift expects features (B, {self.decoder_channels}, H, W) and condition "
                f"(B, {self.encoder_channels}, H, W), got {tuple(features.shape)} and {tuple(condition.shape)}."
            )
        modulated = features[:, : self.split] * (1.0 + self.scale(condition)) + self.shift(condition)
        return torch.cat([modulated, features[:, self.split :]], dim=1)


class _ResidualBlock(nn.Module):
    """``x + conv3x3(ReLU(conv3x3(x)))``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _CONV(channels, channels, 3, padding=1), nn.ReLU(inplace=True), _CONV(channels, channels, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _ConvFeatures(nn.Sequential):
    """``conv3x3 -> ReLU -> 2 residual blocks`` at full resolution (the public code's ``Conv2D``: the shallow
    feature extractor, and the first part of the reconstruction head)."""

    def __init__(self, in_channels: int, channels: int, num_blocks: int = 2) -> None:
        super().__init__(
            _CONV(in_channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            *[_ResidualBlock(channels) for _ in range(num_blocks)],
        )


class _SwinBlock(nn.Module):
    """Swin block (Liu et al., 2021): ``x + proj(W-MSA or SW-MSA(LN(x)))``, then ``x + MLP(LN(x))``.

    The attention is scaled by ``1 / sqrt(head_dim)`` (:class:`WindowAttention`); the public TransMRSR encoder
    leaves it unscaled.
    """

    def __init__(
        self, channels: int, resolution: int, num_heads: int, window_size: int, shifted: bool, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.channels, self.resolution = channels, resolution
        self.norm1 = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.attention = WindowAttention(channels, num_heads, resolution, window_size, shifted)
        self.proj = nn.Linear(channels, channels)
        self.norm2 = nn.LayerNorm(channels)
        hidden = max(1, int(channels * mlp_ratio))
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))

    def attend(self, tokens: torch.Tensor) -> torch.Tensor:
        """``proj(attention(qkv(LN(tokens))))``: the residual branch of the attention, ``(B, H*W, C)``."""
        batch = tokens.shape[0]
        qkv = self.qkv(self.norm1(tokens)).reshape(batch, self.resolution, self.resolution, 3, self.channels)
        attended = self.attention(*qkv.unbind(dim=3))
        return self.proj(attended.reshape(batch, -1, self.channels))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens + self.attend(tokens)
        return tokens + self.mlp(self.norm2(tokens))


class _ResidualSwinStage(nn.Module):
    """RSTB (TransMRSR Eqs. 2-3, after SwinIR): ``depth`` Swin blocks (regular, then shifted windows, alternating),
    a conv3x3 for feature enhancement, and a shortcut from the stage input. With ``recompute`` each block's
    activations are recomputed in the backward pass instead of kept."""

    def __init__(
        self,
        channels: int,
        resolution: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        recompute: bool = False,
    ) -> None:
        super().__init__()
        self.resolution, self.recompute = resolution, recompute
        self.blocks = nn.Sequential(
            *[_SwinBlock(channels, resolution, num_heads, window_size, i % 2 == 1, mlp_ratio) for i in range(depth)]
        )
        self.conv = _CONV(channels, channels, 3, padding=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, H*W, C) -> (B, C, H, W)``."""
        batch, _, channels = tokens.shape
        out = tokens
        for block in self.blocks:
            out = call_recomputed(block, out) if self.recompute else block(out)
        out = out.transpose(1, 2).reshape(batch, channels, self.resolution, self.resolution)
        return self.conv(out) + tokens.transpose(1, 2).reshape(batch, channels, self.resolution, self.resolution)


class _PatchMerging(nn.Module):
    """Patch merging (Swin): each 2x2 group of neighbours concatenated (``4 C``), LayerNorm, linear to
    ``out_channels``; the resolution halves."""

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * channels)
        self.reduction = nn.Linear(4 * channels, out_channels, bias=False)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, H/2 * W/2, out_channels)``."""
        neighbours = [feature_map[:, :, i::2, j::2] for i in (0, 1) for j in (0, 1)]
        merged = torch.cat(neighbours, dim=1).flatten(2).transpose(1, 2)
        return self.reduction(self.norm(merged))


def _init_swin(module: nn.Module) -> None:
    """Swin's initialisation: ``nn.Linear`` weights truncated ``N(0, 0.02)``, biases 0; LayerNorm 1 and 0."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def _load_file(path: str, what: str) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{what} file not found: {path}") from error


class TransMRSR(nn.Module):
    """TransMRSR (Huang et al., "TransMRSR: Transformer-based Self-Distilled Generative Prior for Brain MRI
    Super-Resolution", 2023; sections 3.1-3.4, Fig. 2): interpolated LR slice -> SR slice on the same grid.

    - shallow features (section 3.1): ``conv3x3(in_channels -> shallow_channels) -> ReLU -> 2 residual blocks``;
    - encoder (section 3.2, Eqs. 1-3): a 1x1 projection to the decoder's width at ``img_size`` (if it differs),
      then one RSTB stage per resolution ``img_size, img_size / 2, ..., 8`` (``encoder_depth`` Swin blocks with
      regular then shifted windows, ``window = min(window_size, r)``, ``num_heads`` heads, attention scaled by
      ``1 / sqrt(head_dim)``, relative position bias; a conv3x3 and a shortcut), each followed by patch merging to
      the next resolution and its width. Widths follow the decoder (``decoder.layer_shapes``). The maps at
      ``4, ..., img_size / 2`` condition the decoder layer whose input has that resolution (the layer at
      ``img_size`` gets no condition, as the public code);
    - latents (Eq. 4): LayerNorm over the channels of the 4x4 map, flatten, linear to
      ``num_latents x style_dim`` (one latent per decoder block: 14 for 256 px);
    - self-distilled truncation (Eq. 5): :func:`nearest_centroid_truncation` with the ``centroids`` buffer
      ``(num_centroids, style_dim)`` and ``psi``;
    - decoder (section 3.3): :class:`StyleSwinGenerator` (the generative prior) from its learned 4x4 constant,
      each layer input modulated by :class:`ChannelSplitScaleShift` from the encoder map; its last feature map
      (1x1-projected to ``shallow_channels`` if needed) is the deep feature. The decoder's mapping network and
      toRGB layers take no part in SR (the latents come from the encoder, the image from the reconstruction head):
      their ``requires_grad`` is False, so they need no DDP ``find_unused_parameters`` (``multi_gpu_train.json``
      sets it anyway, for both stages and every ablation switch);
    - long skip (Eq. 10): ``deep + shallow``; reconstruction: ``conv3x3 -> ReLU -> 2 residual blocks ->
      conv1x1 -> out_channels``; residual learning (Eq. 11): output = reconstruction + input.

    The prior (``prior_path``) is loaded after everything else is built and initialised and nothing is
    re-initialised afterwards (the public code's ``model.initialize()`` after loading wipes most of the prior).
    The ablation switches are the paper's Table 3 rows: ``use_truncation`` (w/o SDT), ``use_encoder_features``
    (w/o MRSE: no CWSS), ``use_skip`` (w/o skip); no ``prior_path`` is "w/o GP"; ``freeze_decoder`` is Table 4's
    frozen prior.

    Shapes: ``(B, in_channels, img_size, img_size) -> (B, out_channels, img_size, img_size)``; ``out_channels``
    equals ``in_channels`` (the residual is added to the input). The input is the LR slice interpolated to the HR
    grid, intensities in ``[0, 1]``; the output is linear (no clamp). ``torch.jit.trace`` works.

    Args:
        img_size: side of the slices, a power of 2 in ``[8, 1024]`` (256).
        in_channels: image channels (1).
        out_channels: output channels, equal to ``in_channels``.
        shallow_channels: width of the shallow features and the reconstruction head (64).
        style_dim: latent dimension (512).
        n_mlp: layers of the decoder's mapping network (8; must match the prior).
        channel_multiplier: decoder width multiplier (1).
        max_channels: cap of the decoder and encoder widths (512).
        window_size: attention window of the encoder and decoder (8).
        encoder_depth: Swin blocks per encoder stage (2).
        num_heads: attention heads of every encoder stage (4); must divide every width.
        mlp_ratio: MLP ratio of the encoder blocks (4; the decoder keeps StyleSwin's 4).
        psi: truncation level (0.9).
        num_centroids: number of k-means centroids (8).
        prior_path: the pretrained generator: a state dict of :class:`StyleSwinGenerator`, or a checkpoint dict with
            key ``"g_ema"`` (preferred) or ``"g"`` holding one. ``None``: a randomly initialised decoder.
        centroids_path: a torch file holding the centroids ``(num_centroids, style_dim)``, as a tensor or a dict with
            key ``"centroids"``. ``None``: the ``centroids`` buffer starts at zeros and is filled by loading a trained
            SR checkpoint (it is part of the state dict); a training config must give the path (the bundle's
            ``train.json`` refuses to start without the centroid step's file). A dict that records its prior's content
            (``common.nets.latent_centroids.PRIOR_FINGERPRINT_KEY``) is refused with another ``prior_path`` content.
        use_truncation: apply the self-distilled truncation with the ``centroids`` buffer.
        use_encoder_features: modulate the decoder with the encoder maps (CWSS).
        use_skip: add the shallow features to the deep features.
        freeze_decoder: the decoder's parameters get ``requires_grad = False``.
        recompute_resolutions: resolutions (e.g. ``[256, 128]``) whose encoder stages and decoder layers keep no
            activations for the backward pass and recompute them (:mod:`common.nets.recompute`): the same outputs
            and gradients, much less memory (the high-resolution blocks hold most of the activations, not most of
            the FLOPs), one more forward of those blocks per step. Empty by default.

    Raises:
        ValueError: naming the offending argument or file (wrong centroids shape, centroids of another prior, a
            prior whose keys do not match the decoder), or at call time an input of the wrong shape.
        FileNotFoundError: naming a missing ``prior_path`` or ``centroids_path``.

    Examples::

        >>> net = TransMRSR(img_size=16, shallow_channels=8, style_dim=16, n_mlp=1, max_channels=16,
        ...                 use_truncation=False)
        >>> net(torch.zeros(1, 1, 16, 16)).shape
        torch.Size([1, 1, 16, 16])
    """

    def __init__(
        self,
        img_size: int = 256,
        in_channels: int = 1,
        out_channels: int = 1,
        shallow_channels: int = 64,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 1,
        max_channels: int = 512,
        window_size: int = 8,
        encoder_depth: int = 2,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        psi: float = 0.9,
        num_centroids: int = 8,
        prior_path: str | None = None,
        centroids_path: str | None = None,
        use_truncation: bool = True,
        use_encoder_features: bool = True,
        use_skip: bool = True,
        freeze_decoder: bool = False,
        recompute_resolutions: Sequence[int] = (),
    ) -> None:
        super().__init__()
        for name, value, minimum in (
            ("in_channels", in_channels, 1),
            ("out_channels", out_channels, 1),
            ("shallow_channels", shallow_channels, 1),
            ("encoder_depth", encoder_depth, 1),
            ("num_heads", num_heads, 1),
            ("num_centroids", num_centroids, 1),
        ):
            _check_int(name, value, minimum)
        if out_channels != in_channels:
            raise ValueError(
                f"out_channels ({out_channels}) must equal in_channels ({in_channels}): the output is the input plus "
                "a residual (residual learning, Eq. 11)."
            )
        _check_psi(psi)
        self.img_size, self.in_channels, self.out_channels = img_size, in_channels, out_channels
        self.psi = float(psi)
        self.use_truncation, self.use_encoder_features, self.use_skip = use_truncation, use_encoder_features, use_skip
        self.freeze_decoder = freeze_decoder

        # decoder first: its widths set the encoder's (random initialisation here, the prior is loaded at the end)
        self.decoder = StyleSwinGenerator(
            size=img_size,
            style_dim=style_dim,
            n_mlp=n_mlp,
            channel_multiplier=channel_multiplier,
            out_channels=out_channels,
            window_size=window_size,
            max_channels=max_channels,
            recompute_resolutions=recompute_resolutions,
        )
        widths = dict(self.decoder.layer_shapes)
        self.recompute_resolutions = self.decoder.recompute_resolutions
        for resolution, channels in widths.items():
            if resolution >= 8 and channels % num_heads != 0:
                raise ValueError(
                    f"num_heads ({num_heads}) must divide every encoder width; the width at resolution {resolution} "
                    f"is {channels}."
                )

        self.shallow = _ConvFeatures(in_channels, shallow_channels)
        first = widths[img_size]
        self.encoder_input = _CONV(shallow_channels, first, 1) if shallow_channels != first else nn.Identity()
        encoder_resolutions = [r for r in sorted(widths, reverse=True) if r >= 8]
        self.encoder_stages = nn.ModuleList(
            [
                _ResidualSwinStage(
                    widths[r], r, encoder_depth, num_heads, window_size, mlp_ratio, r in self.recompute_resolutions
                )
                for r in encoder_resolutions
            ]
        )
        self.patch_merging = nn.ModuleList([_PatchMerging(widths[r], widths[r // 2]) for r in encoder_resolutions])
        self.latent_norm = nn.LayerNorm(widths[4])
        self.latent_head = nn.Linear(16 * widths[4], self.decoder.num_latents * style_dim)
        self.condition_resolutions = [r for r, _ in self.decoder.layer_shapes if r < img_size]
        if use_encoder_features:
            self.cwss = nn.ModuleList(
                [ChannelSplitScaleShift(widths[r], widths[r]) for r in self.condition_resolutions]
            )
        self.register_buffer("centroids", torch.zeros(num_centroids, style_dim))
        # the switches travel with the weights: loading weights trained with other switches is refused by name
        # (use_truncation and use_skip change no weight key, so a mismatch would otherwise pass unnoticed)
        switches = [float(use_truncation), float(use_encoder_features), float(use_skip)]
        self.register_buffer("architecture_switches", torch.tensor(switches))
        # psi too: the truncation level is part of what training fitted, like the switches
        self.register_buffer("truncation_psi", torch.tensor(float(psi)))
        last = self.decoder.layer_shapes[-1][1]
        self.deep_projection = _CONV(last, shallow_channels, 1) if last != shallow_channels else nn.Identity()
        self.reconstruction = _ConvFeatures(shallow_channels, shallow_channels)
        self.output_conv = _CONV(shallow_channels, out_channels, 1)
        # zero residual at the start: training starts from the interpolated input (the baseline it must beat), not
        # from the random residual of an untrained head, which costs about 10 dB of PSNR in the first epochs
        nn.init.zeros_(self.output_conv.weight)
        nn.init.zeros_(self.output_conv.bias)
        for module in (self.encoder_stages, self.patch_merging, self.latent_norm, self.latent_head):
            module.apply(_init_swin)

        # everything is built and initialised: only now the files, and no re-initialisation after this point
        if centroids_path is not None:
            self._load_centroids(centroids_path, (num_centroids, style_dim), prior_path)
        if prior_path is not None:
            self._load_prior(prior_path)
        for module in (self.decoder.style, self.decoder.to_images):
            module.requires_grad_(False)
        if freeze_decoder:
            self.decoder.requires_grad_(False)

    def _load_centroids(self, path: str, shape: tuple[int, int], prior_path: str | None) -> None:
        loaded = _load_file(path, "centroids")
        if isinstance(loaded, dict):
            if "centroids" not in loaded:
                raise ValueError(f"centroids file {path} holds a dict without the key 'centroids' ({list(loaded)}).")
            if prior_path is not None:  # centroids of another prior would pull latents toward its codes
                check_centroids_prior(loaded, path, prior_path)
            loaded = loaded["centroids"]
        centroids = torch.as_tensor(loaded, dtype=torch.float32)
        if tuple(centroids.shape) != shape:
            raise ValueError(
                f"centroids in {path} have shape {tuple(centroids.shape)}, expected (num_centroids, style_dim) = "
                f"{shape}."
            )
        with torch.no_grad():
            self.centroids.copy_(centroids)

    def _load_prior(self, path: str) -> None:
        loaded = _load_file(path, "prior")
        if not isinstance(loaded, dict):
            raise ValueError(f"prior {path} must hold a state dict or a dict with key 'g_ema' or 'g'.")
        state = next((loaded[key] for key in PRIOR_KEYS if key in loaded), loaded)
        expected = self.decoder.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        mismatched = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
        if missing or unexpected or mismatched:
            raise ValueError(
                f"prior {path} does not match the decoder (StyleSwinGenerator with this img_size, style_dim, n_mlp, "
                f"channel_multiplier, out_channels, window_size, max_channels): missing keys {missing[:5]}, "
                f"unexpected keys {unexpected[:5]}, shape mismatches {mismatched[:5]} "
                f"({len(missing)}, {len(unexpected)}, {len(mismatched)} in all)."
            )
        self.decoder.load_state_dict(state, strict=True)

    _SWITCH_NAMES = ("use_truncation", "use_encoder_features", "use_skip")

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any, **kwargs: Any) -> None:
        """Refuse weights trained with other ablation switches, naming them (before any tensor is copied)."""
        key = prefix + "architecture_switches"
        if key in state_dict:
            trained = [bool(v) for v in state_dict[key].tolist()]
            here = [bool(v) for v in self.architecture_switches.tolist()]
            if trained != here:
                settings = ", ".join(f"{n}={t}" for n, t, h in zip(self._SWITCH_NAMES, trained, here) if t != h)
                raise ValueError(
                    f"these TransMRSR weights were trained with {settings}; build the network with the same switches "
                    "(e.g. inference.json: "
                    + " ".join(f"--{n} {str(t).lower()}" for n, t in zip(self._SWITCH_NAMES, trained))
                    + ")."
                )
        psi_key = prefix + "truncation_psi"
        if psi_key not in state_dict:  # weights saved before psi was stored (bundle 0.2.3 and earlier)
            state_dict[psi_key] = self.truncation_psi.clone()
        trained_psi = float(state_dict[psi_key])
        if self.use_truncation and abs(trained_psi - self.psi) > 1e-6:
            raise ValueError(
                f"these TransMRSR weights were trained with the truncation psi {trained_psi:g}, this network has "
                f"{self.psi:g}; build it with the same (e.g. inference.json: --psi {trained_psi:g})."
            )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters that SR training updates: all with ``requires_grad`` (not the decoder when it is frozen, nor
        the decoder's mapping network and toRGB layers, which SR does not use)."""
        return (p for p in self.parameters() if p.requires_grad)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Shallow features and encoder.

        Args:
            x: ``(B, in_channels, img_size, img_size)``.

        Returns:
            ``(shallow, latents, conditions)``: the shallow features ``(B, shallow_channels, img_size, img_size)``,
            the (untruncated) latents ``(B, num_latents, style_dim)``, and the encoder maps at resolutions
            ``condition_resolutions`` (4 first).
        """
        shallow = self.shallow(x)
        tokens = self.encoder_input(shallow).flatten(2).transpose(1, 2)
        conditions: list[torch.Tensor] = []
        for stage, merge in zip(self.encoder_stages, self.patch_merging):
            feature_map = stage(tokens)
            if stage.resolution < self.img_size:
                conditions.append(feature_map)
            tokens = merge(feature_map)
        batch, _, channels = tokens.shape
        conditions.append(tokens.transpose(1, 2).reshape(batch, channels, 4, 4))
        latents = self.latent_head(self.latent_norm(tokens).flatten(1))
        return shallow, latents.reshape(batch, self.decoder.num_latents, self.decoder.style_dim), conditions[::-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: the LR slice interpolated to the HR grid, ``(B, in_channels, img_size, img_size)``.

        Returns:
            the SR slice ``(B, out_channels, img_size, img_size)``: input + predicted residual.

        Raises:
            ValueError: an input of another shape (both shapes named).
        """
        expected = (self.in_channels, self.img_size, self.img_size)
        if not torch.jit.is_tracing() and (x.ndim != 4 or tuple(x.shape[1:]) != expected):
            raise ValueError(f"TransMRSR expects input (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}.")
        shallow, latents, conditions = self.encode(x)
        if self.use_truncation:
            latents = nearest_centroid_truncation(latents, self.centroids, self.psi)
        modulators = None
        if self.use_encoder_features:
            modulators = [functools.partial(cwss, condition=c) for cwss, c in zip(self.cwss, conditions)] + [None]
        _, features = self.decoder.synthesis(latents, modulators=modulators, return_features=True)
        deep = self.deep_projection(features)
        if self.use_skip:
            deep = deep + shallow
        return self.output_conv(self.reconstruction(deep)) + x
