"""PSCGAN's SCLN-based GAN: the sequential causal learning network (SCLN) encoder, generator and discriminator.

Xu et al., "Contrast agent-free synthesis and segmentation of ischemic heart disease images using progressive
sequential causal GANs", Medical Image Analysis 62:101668 (2020), sections 4.1 (SCLN), 4.2 (generator and
discriminator), 6.3 (implementation) and 6.4 (shapes); the ablation encoders of section 7 (Table 6).

Layout: a cine batch is ``(B, C, T, H, W)`` (``T`` = 25 frames, ``H = W = 64``), values in ``[-1, 1]``; images and
masks are ``(B, C, H, W)``.
"""

from __future__ import annotations

__all__ = [
    "CausalTemporalConv",
    "SpatialDilatedConv",
    "DilatedStack",
    "SelfAttention",
    "MultiAttentionWeighing",
    "SCLN",
    "ConvLSTMCell",
    "CineEncoder",
    "TimeReduction",
    "PSCGANGenerator",
    "PSCGANDiscriminator",
    "CINE_ENCODER_KINDS",
]

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: the dilation rates of one residual block of either pathway (paper 4.1.1: [1, 1, 2, 4, 6, 8])
DEFAULT_DILATIONS = (1, 1, 2, 4, 6, 8)
#: residual blocks per pathway (paper 4.1.1: "stack 3 stacked dilated convolutions again")
DEFAULT_N_STACKS = 3
#: SAGAN's channel reduction C / C~ of the attention feature spaces (paper eq. 6: C~ = C / 8)
DEFAULT_REDUCTION = 8
#: the encoder variants of the paper's ablations (Table 6): the SCLN, its ablations and the three baselines
CINE_ENCODER_KINDS = ("scln", "scln_spatial", "scln_temporal", "scln_no_attention", "conv3d", "convlstm", "conv3d_lstm")
#: SCLN pathways: both (the paper's SCLN) or one of them alone (the "pathway only" ablations)
PATHWAYS = ("both", "spatial", "temporal")
#: attention axes: among the H*W positions of a frame, or among the T frames of a pixel
AXES = ("space", "time")
#: generator outputs: an image in [-1, 1] (synthesis), class probabilities (segmentation) or the raw 1x1 conv output
#: (for a caller that applies its own activations, e.g. one generator giving both the mask and the image)
OUTPUTS = ("tanh", "softmax", "none")
#: the slope of every LeakyReLU (paper 6.3: LeakyReLU in the generators and the discriminators)
_LEAKY_SLOPE = 0.2
#: the kernel size of the temporal pathway's causal convolutions (WaveNet's 2-tap filter)
_TEMPORAL_KERNEL = 2


def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    return value


def _positive_ints(name: str, values: Sequence[int], length: int | None = None) -> tuple[int, ...]:
    values = tuple(values)
    if not values or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
        raise ValueError(f"{name} must hold positive integers, got {values!r}.")
    if length is not None and len(values) != length:
        raise ValueError(f"{name} must hold {length} positive integers, got {values!r}.")
    return values


def _sizes(sizes: list[int]) -> str:
    """``str(tuple(sizes))``, written so that TorchScript compiles it too (it cannot size ``tuple(x.shape)``)."""
    return "(" + ", ".join([str(size) for size in sizes]) + ("," if len(sizes) == 1 else "") + ")"


def _shape(x: torch.Tensor) -> str:
    """``str(tuple(x.shape))`` for the error messages of forward methods, in eager and in TorchScript alike."""
    return _sizes(list(x.shape))


def _check_cine(name: str, x: torch.Tensor) -> None:
    if x.ndim != 5:
        raise ValueError(f"{name} expects a cine (B, C, T, H, W), got shape {_shape(x)}.")


class _FrameNormAct(nn.Module):
    """Layer normalisation of each frame over ``(C, H, W)``, then LeakyReLU(0.2) (paper 6.3).

    ``nn.GroupNorm(1, C)`` on ``(B * T, C, H, W)``: the statistics of each frame are its own (so the normalisation
    stays causal in time) and the affine is per channel, not per pixel (a per-pixel ``nn.LayerNorm`` would need the
    feature-map size at construction and ties the network to one image size).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, channels)
        self.act = nn.LeakyReLU(_LEAKY_SLOPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, frames, height, width = x.shape
        frames_first = x.transpose(1, 2).reshape(batch * frames, channels, height, width)
        out = self.act(self.norm(frames_first))
        return out.reshape(batch, frames, channels, height, width).transpose(1, 2)


class CausalTemporalConv(nn.Module):
    """The temporal pathway's 1D dilated causal convolution along T (paper eq. 2; WaveNet, Oord et al. 2016).

    A ``Conv3d`` with kernel ``(k, 1, 1)`` and dilation ``(d, 1, 1)`` after ``(k - 1) * d`` zero frames are padded on
    the left of T only, so the output at frame ``t`` sees frames ``t, t - d, ..., t - (k - 1) d`` and never ``t + 1``.

    Spatial stride: the paper's "temporal stride 4" is read as a 4x reduction of each frame's flattened 4096-vector
    (the pathway's "hidden units the same length as the 1D form of each frame"), realised as ``s x s = 2 x 2``: with
    ``spatial_stride = s > 1`` the kernel is ``(k, s, s)`` with stride ``(1, s, s)``, a strided patch reduction of
    each frame. Both pathways then halve H and W and stay pixel-aligned for the element-wise fusion of eq. 7. (A
    ``(k, 1, 1)`` kernel with stride ``s`` would only drop 3 pixels in 4.)

    Shapes: ``(B, in_ch, T, H, W) -> (B, out_ch, T, H / s, W / s)``; ``H`` and ``W`` divisible by ``s``.

    Args:
        in_ch: input channels.
        out_ch: output channels.
        dilation: the dilation rate ``d`` along T.
        kernel_size: taps ``k`` along T (WaveNet: 2).
        spatial_stride: ``s``, the in-plane reduction (1: none).

    Examples::

        >>> CausalTemporalConv(1, 4, dilation=2, spatial_stride=2)(torch.rand(1, 1, 6, 8, 8)).shape
        torch.Size([1, 4, 6, 4, 4])
    """

    def __init__(self, in_ch: int, out_ch: int, dilation: int, kernel_size: int = 2, spatial_stride: int = 1) -> None:
        super().__init__()
        _positive_int("in_ch", in_ch)
        _positive_int("out_ch", out_ch)
        _positive_int("dilation", dilation)
        _positive_int("kernel_size", kernel_size)
        _positive_int("spatial_stride", spatial_stride)
        self.left_padding = (kernel_size - 1) * dilation
        self.conv = nn.Conv3d(
            in_ch,
            out_ch,
            kernel_size=(kernel_size, spatial_stride, spatial_stride),
            stride=(1, spatial_stride, spatial_stride),
            dilation=(dilation, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # F.pad's last pair is the first padded dim: (W left, W right, H top, H bottom, T left, T right)
        return self.conv(F.pad(x, (0, 0, 0, 0, self.left_padding, 0)))


class SpatialDilatedConv(nn.Module):
    """The spatial pathway's 2D dilated convolution, applied to each frame independently (paper eq. 3).

    A ``Conv3d`` with kernel ``(1, 3, 3)``, dilation ``(1, d, d)``, padding ``(0, d, d)`` and stride ``(1, s, s)``:
    the output at frame ``t`` is computed from frame ``t`` only (Yu & Koltun, 2015).

    Shapes: ``(B, in_ch, T, H, W) -> (B, out_ch, T, ceil(H / s), ceil(W / s))``.

    Args:
        in_ch: input channels.
        out_ch: output channels.
        dilation: the dilation rate ``d`` in H and W.
        spatial_stride: ``s`` in H and W.

    Examples::

        >>> SpatialDilatedConv(1, 4, dilation=2, spatial_stride=2)(torch.rand(1, 1, 6, 8, 8)).shape
        torch.Size([1, 4, 6, 4, 4])
    """

    def __init__(self, in_ch: int, out_ch: int, dilation: int, spatial_stride: int = 1) -> None:
        super().__init__()
        _positive_int("in_ch", in_ch)
        _positive_int("out_ch", out_ch)
        _positive_int("dilation", dilation)
        _positive_int("spatial_stride", spatial_stride)
        self.conv = nn.Conv3d(
            in_ch,
            out_ch,
            kernel_size=(1, 3, 3),
            stride=(1, spatial_stride, spatial_stride),
            padding=(0, dilation, dilation),
            dilation=(1, dilation, dilation),
        )
        # the in-plane settings of self.conv as plain ints, for the 2D conv of forward (TorchScript cannot size the
        # slices of self.conv's tuples)
        self.spatial_stride = spatial_stride
        self.dilation = dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the same numbers as self.conv(x), computed as a 2D conv of the (B * T) frames: PyTorch's CPU dilated Conv3d
        # takes a slow path (3-6x slower on the SCLN's sizes)
        batch, channels, frames, height, width = x.shape
        frames_first = x.transpose(1, 2).reshape(batch * frames, channels, height, width)
        stride, dilation = self.spatial_stride, self.dilation
        out = F.conv2d(
            frames_first,
            self.conv.weight[:, :, 0],
            self.conv.bias,
            [stride, stride],
            [dilation, dilation],
            [dilation, dilation],
        )
        return out.reshape(batch, frames, out.shape[1], out.shape[2], out.shape[3]).transpose(1, 2)


def _shortcut(in_channels: int, out_channels: int, spatial_stride: int) -> nn.Module:
    """A residual shortcut: identity, or a 1x1x1 conv with stride ``(1, s, s)`` where channels or size change."""
    if in_channels == out_channels and spatial_stride == 1:
        return nn.Identity()
    return nn.Conv3d(in_channels, out_channels, kernel_size=1, stride=(1, spatial_stride, spatial_stride))


class _Residual(nn.Module):
    """``convs(x) + shortcut(x)``; a subclass sets both (the SCLN pathways' blocks and the 3DConv baseline's)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x) + self.shortcut(x)


class DilatedStack(_Residual):
    """One residual block of a perceptual pathway: stacked dilated convolutions plus a shortcut (paper 4.1.1).

    ``len(dilations)`` convolutions (:class:`SpatialDilatedConv` for ``pathway="spatial"``,
    :class:`CausalTemporalConv` for ``"temporal"``), each followed by per-frame layer normalisation and
    LeakyReLU(0.2); the first one carries ``spatial_stride``. The shortcut (identity, or a 1x1x1 conv with stride
    ``(1, s, s)`` where the channels or the size change) is added to the last activation (He et al., 2016). A pathway
    is ``n_stacks`` of these blocks in sequence.

    Shapes: ``(B, in_channels, T, H, W) -> (B, out_channels, T, H / s, W / s)``; causal in T.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        pathway: ``"spatial"`` or ``"temporal"``.
        dilations: the dilation rates (paper: ``(1, 1, 2, 4, 6, 8)``).
        spatial_stride: ``s``, applied by the first convolution and the shortcut.

    Examples::

        >>> DilatedStack(1, 4, "temporal", dilations=(1, 2), spatial_stride=2)(torch.rand(1, 1, 6, 8, 8)).shape
        torch.Size([1, 4, 6, 4, 4])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        pathway: str,
        dilations: Sequence[int] = DEFAULT_DILATIONS,
        spatial_stride: int = 1,
    ) -> None:
        super().__init__()
        _positive_int("in_channels", in_channels)
        _positive_int("out_channels", out_channels)
        _positive_int("spatial_stride", spatial_stride)
        dilations = _positive_ints("dilations", dilations)
        if pathway not in ("spatial", "temporal"):
            raise ValueError(f"pathway must be 'spatial' or 'temporal', got {pathway!r}.")
        layers: list[nn.Module] = []
        for index, dilation in enumerate(dilations):
            conv_in = in_channels if index == 0 else out_channels
            stride = spatial_stride if index == 0 else 1
            if pathway == "spatial":
                layers.append(SpatialDilatedConv(conv_in, out_channels, dilation, stride))
            else:
                layers.append(CausalTemporalConv(conv_in, out_channels, dilation, _TEMPORAL_KERNEL, stride))
            layers.append(_FrameNormAct(out_channels))
        self.convs = nn.Sequential(*layers)
        self.shortcut = _shortcut(in_channels, out_channels, spatial_stride)


def _pathway(
    in_channels: int, out_channels: int, pathway: str, dilations: Sequence[int], n_stacks: int, spatial_stride: int
) -> nn.Sequential:
    """``n_stacks`` residual blocks; only the first block's first convolution strides."""
    return nn.Sequential(
        *[
            DilatedStack(
                in_channels if index == 0 else out_channels,
                out_channels,
                pathway,
                dilations,
                spatial_stride if index == 0 else 1,
            )
            for index in range(n_stacks)
        ]
    )


class SelfAttention(nn.Module):
    """SAGAN self-attention as the paper's eqs. 4-6, over space or over time; returns the weighted output only.

    ``f = W_f x``, ``g = W_g x``, ``h = W_h x`` (1x1x1 convs, ``C -> C / reduction``), ``s_ij = f_i^T g_j`` (no
    ``1 / sqrt(d)`` scaling: the paper's ``s`` has none), ``alpha_ij = softmax_j(s_ij)``, output
    ``W_v (sum_j alpha_ij h_j)`` with ``W_v: C / reduction -> C`` (Zhang et al., 2018); the four maps are bias-free
    1x1x1 convs, the paper's weight matrices. No residual is added here: the
    residual and its ``gamma`` belong to :class:`MultiAttentionWeighing` (and to :class:`PSCGANDiscriminator`).

    The ``N`` "dependencies" attended among: ``axis="space"``: the ``H * W`` positions of each frame, frame by
    frame; ``axis="time"``: the ``T`` frames at each pixel, pixel by pixel. (Attention among all ``T * H * W``
    positions would need a 25600 x 25600 matrix per sample at 32 x 32 x 25.) Time attention is causal by default:
    frame ``t`` attends to frames ``<= t`` only, as the paper's "no information leakage from the future to the past"
    requires of the whole SCLN; space attention stays within a frame and is causal anyway.

    Computed with ``scaled_dot_product_attention(..., scale=1.0)``, which equals the explicit softmax (tested).
    ``key_pool = k > 1`` (space only) max-pools the keys ``g`` and values ``h`` over ``k x k`` in-plane blocks
    before attending, as the public SAGAN/BigGAN code does (there 2): ``k^2`` times fewer keys, the same queries and
    output size; the default 1 is the paper's eqs. 4-6 exactly (the quick overlay uses 2, to save CPU time: the
    level-1 attention of a 32 x 32 x 25 map attends among 1024 positions per frame).

    Shapes: ``(B, channels, T, H, W) -> (B, channels, T, H, W)``.

    Args:
        channels: ``C``.
        reduction: ``C / C~`` (paper: 8); ``C~`` is at least 1.
        axis: ``"space"`` or ``"time"``.
        causal: for ``axis="time"``, mask the frames after ``t`` (no effect on ``"space"``).
        key_pool: in-plane pooling of keys and values for ``axis="space"`` (1: none); skipped on maps whose ``H`` or
            ``W`` it does not divide.

    Examples::

        >>> SelfAttention(16, axis="time")(torch.rand(1, 16, 6, 4, 4)).shape
        torch.Size([1, 16, 6, 4, 4])
    """

    def __init__(
        self,
        channels: int,
        reduction: int = DEFAULT_REDUCTION,
        axis: str = "space",
        causal: bool = True,
        key_pool: int = 1,
    ) -> None:
        super().__init__()
        _positive_int("channels", channels)
        _positive_int("reduction", reduction)
        self.key_pool = _positive_int("key_pool", key_pool)
        if axis not in AXES:
            raise ValueError(f"axis must be one of {AXES}, got {axis!r}.")
        self.axis = axis
        self.causal = bool(causal)
        reduced = max(1, channels // reduction)
        # the paper's feature spaces f(.), g(.), h(.) and the output map v(.): weight matrices only (eq. 6); a bias on
        # g would add a constant to every s_ij of a row, which the softmax cancels (a parameter without gradient)
        self.f = nn.Conv3d(channels, reduced, kernel_size=1, bias=False)
        self.g = nn.Conv3d(channels, reduced, kernel_size=1, bias=False)
        self.h = nn.Conv3d(channels, reduced, kernel_size=1, bias=False)
        self.v = nn.Conv3d(reduced, channels, kernel_size=1, bias=False)

    def _sequences(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C~, T, H, W)`` -> ``(sequences, N, C~)``: one sequence per frame (space) or per pixel (time)."""
        batch, channels, frames, height, width = x.shape
        if self.axis == "space":
            return x.permute(0, 2, 3, 4, 1).reshape(batch * frames, height * width, channels)
        return x.permute(0, 3, 4, 2, 1).reshape(batch * height * width, frames, channels)

    def _unsequence(self, x: torch.Tensor, shape: list[int]) -> torch.Tensor:
        batch, _, frames, height, width = shape
        channels = x.shape[-1]
        if self.axis == "space":
            return x.reshape(batch, frames, height, width, channels).permute(0, 4, 1, 2, 3)
        return x.reshape(batch, height, width, frames, channels).permute(0, 4, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_cine("SelfAttention", x)
        query = self._sequences(self.f(x))
        key, value = self.g(x), self.h(x)
        k = self.key_pool
        if self.axis == "space" and k > 1 and x.shape[-2] % k == 0 and x.shape[-1] % k == 0:
            key, value = F.max_pool3d(key, (1, k, k)), F.max_pool3d(value, (1, k, k))
        # contiguous, with one head axis: PyTorch's fused (flash) CPU kernel takes only such inputs; others go to its
        # unfused math path, whose full (N, N) scores and masked-softmax checks make the 32 x 32 space attention about
        # 6x slower
        key, value = self._sequences(key), self._sequences(value)
        weighted = F.scaled_dot_product_attention(
            query.unsqueeze(1).contiguous(),
            key.unsqueeze(1).contiguous(),
            value.unsqueeze(1).contiguous(),
            is_causal=self.causal and self.axis == "time",
            scale=1.0,
        )
        return self.v(self._unsequence(weighted.squeeze(1), x.shape))


class MultiAttentionWeighing(nn.Module):
    """The multi-attention weighing unit (paper 4.1.2, eq. 7): weigh each pathway, add, weigh the fusion.

    ``F_ST = A_s(F_S) + A_t(F_T)`` (``A_s`` a space :class:`SelfAttention`, ``A_t`` a time one), ``O = A_f(F_ST)``
    (``A_f`` a space attention), output ``gamma * O + F_ST`` with a learnable scalar ``gamma`` initialised to 0 (SAGAN).
    With one pathway (``pathways="spatial"`` or ``"temporal"``) the missing term is dropped:
    ``gamma * A_f(A_p(F)) + A_p(F)``. ``attention=False`` (the "multi-attention weighing removed" ablation) gives
    ``F_S + F_T`` (or ``F`` with one pathway) and has no parameters.

    Shapes: ``forward(spatial, temporal)``, each ``(B, channels, T, H, W)`` or ``None`` for an absent pathway,
    ``-> (B, channels, T, H, W)``.

    Args:
        channels: ``C`` of both pathways.
        reduction: the attentions' channel reduction (paper: 8).
        attention: ``False`` for the ablation without attention.
        pathways: which pathways feed the unit: ``"both"``, ``"spatial"`` or ``"temporal"``.

    Raises:
        ValueError: naming the bad argument; in ``forward`` if a pathway's presence contradicts ``pathways``.

    Examples::

        >>> unit = MultiAttentionWeighing(16)
        >>> unit(torch.rand(1, 16, 6, 4, 4), torch.rand(1, 16, 6, 4, 4)).shape
        torch.Size([1, 16, 6, 4, 4])
    """

    def __init__(
        self,
        channels: int,
        reduction: int = DEFAULT_REDUCTION,
        attention: bool = True,
        pathways: str = "both",
        key_pool: int = 1,
    ) -> None:
        super().__init__()
        _positive_int("channels", channels)
        _positive_int("reduction", reduction)
        if pathways not in PATHWAYS:
            raise ValueError(f"pathways must be one of {PATHWAYS}, got {pathways!r}.")
        self.pathways = pathways
        self.attention = bool(attention)
        self.spatial_attention: SelfAttention | None = None
        self.temporal_attention: SelfAttention | None = None
        self.fused_attention: SelfAttention | None = None
        if self.attention:
            if pathways in ("both", "spatial"):
                self.spatial_attention = SelfAttention(channels, reduction, axis="space", key_pool=key_pool)
            if pathways in ("both", "temporal"):
                self.temporal_attention = SelfAttention(channels, reduction, axis="time")
            self.fused_attention = SelfAttention(channels, reduction, axis="space", key_pool=key_pool)
            self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, spatial: torch.Tensor | None, temporal: torch.Tensor | None) -> torch.Tensor:
        want_spatial, want_temporal = self.pathways != "temporal", self.pathways != "spatial"
        if (spatial is not None) != want_spatial or (temporal is not None) != want_temporal:
            raise ValueError(
                f"MultiAttentionWeighing(pathways='{self.pathways}') expects (spatial, temporal) present = "
                f"({want_spatial}, {want_temporal}), got ({spatial is not None}, {temporal is not None})."
            )
        # `self.<module> is not None` tests on the attributes themselves: TorchScript resolves them at compile time
        # (an absent module is a None constant) and compiles only the branch this instance takes
        terms: list[torch.Tensor] = []
        if spatial is not None:
            terms.append(self.spatial_attention(spatial) if self.spatial_attention is not None else spatial)
        if temporal is not None:
            terms.append(self.temporal_attention(temporal) if self.temporal_attention is not None else temporal)
        fused = terms[0] if len(terms) == 1 else terms[0] + terms[1]
        if self.fused_attention is None:
            return fused
        return self.gamma * self.fused_attention(fused) + fused


class SCLN(nn.Module):
    """The sequential causal learning network: two perceptual pathways and a multi-attention weighing unit (4.1).

    - spatial perceptual pathway: ``n_stacks`` :class:`DilatedStack` of :class:`SpatialDilatedConv` (each frame
      alone);
    - temporal perceptual pathway: ``n_stacks`` :class:`DilatedStack` of :class:`CausalTemporalConv` (each pixel
      along T, causal);
    - :class:`MultiAttentionWeighing` fuses the two.

    Both pathways halve H and W (``spatial_stride`` = 2) in their first convolution (paper 4.2: strides 2 on the
    spatial, "4" on the temporal pathway; see :class:`CausalTemporalConv` for that reading). Every operation is
    per frame or causal in T, so the outputs at frame ``t`` depend on input frames ``<= t`` only.

    With ``pathways="spatial"`` or ``"temporal"`` (the "pathway only" ablations) the other pathway is not built, its
    input is ignored, the fused output is the one-pathway weighing of :class:`MultiAttentionWeighing`, and the
    missing pathway's output is the present one's (so the next SCLN gets the same tensor on both inputs).

    Shapes: ``forward(spatial_in, temporal_in)``, each ``(B, in_channels, T, H, W)``, ``->
    (spatial_out, temporal_out, fused)``, each ``(B, out_channels, T, H / s, W / s)``; ``H``, ``W`` divisible by
    ``s``.

    Args:
        in_channels: input channels of both pathways.
        out_channels: output channels.
        spatial_stride: ``s`` (paper: 2).
        dilations: the dilation rates of each residual block (paper: ``(1, 1, 2, 4, 6, 8)``).
        n_stacks: residual blocks per pathway (paper: 3).
        reduction: the attentions' channel reduction (paper: 8).
        pathways: ``"both"``, ``"spatial"`` or ``"temporal"``.
        attention: ``False`` for the "multi-attention weighing removed" ablation (``F_S + F_T``).
        key_pool: the space attentions' key/value pooling (:class:`SelfAttention`; 1: none, the paper's).

    Examples::

        >>> scln = SCLN(1, 8, dilations=(1, 2), n_stacks=1)
        >>> x = torch.rand(1, 1, 6, 16, 16)
        >>> [out.shape[1:] for out in scln(x, x)]
        [torch.Size([8, 6, 8, 8]), torch.Size([8, 6, 8, 8]), torch.Size([8, 6, 8, 8])]
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spatial_stride: int = 2,
        dilations: Sequence[int] = DEFAULT_DILATIONS,
        n_stacks: int = DEFAULT_N_STACKS,
        reduction: int = DEFAULT_REDUCTION,
        pathways: str = "both",
        attention: bool = True,
        key_pool: int = 1,
    ) -> None:
        super().__init__()
        _positive_int("in_channels", in_channels)
        _positive_int("out_channels", out_channels)
        _positive_int("spatial_stride", spatial_stride)
        _positive_int("n_stacks", n_stacks)
        dilations = _positive_ints("dilations", dilations)
        if pathways not in PATHWAYS:
            raise ValueError(f"pathways must be one of {PATHWAYS}, got {pathways!r}.")
        self.pathways = pathways
        self.spatial_stride = spatial_stride
        self.spatial: nn.Sequential | None = None
        self.temporal: nn.Sequential | None = None
        if pathways in ("both", "spatial"):
            self.spatial = _pathway(in_channels, out_channels, "spatial", dilations, n_stacks, spatial_stride)
        if pathways in ("both", "temporal"):
            self.temporal = _pathway(in_channels, out_channels, "temporal", dilations, n_stacks, spatial_stride)
        self.weighing = MultiAttentionWeighing(out_channels, reduction, attention, pathways, key_pool)

    def forward(
        self, spatial_in: torch.Tensor, temporal_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        _check_cine("SCLN", spatial_in)
        _check_cine("SCLN", temporal_in)
        spatial = self.spatial(spatial_in) if self.spatial is not None else None
        temporal = self.temporal(temporal_in) if self.temporal is not None else None
        fused = self.weighing(spatial, temporal)
        spatial_out = spatial if spatial is not None else temporal
        temporal_out = temporal if temporal is not None else spatial
        return spatial_out, temporal_out, fused


class _CausalConv3d(nn.Module):
    """A 3x3x3 convolution that is causal in T (2 zero frames padded on the left only), stride ``(1, s, s)``."""

    def __init__(self, in_channels: int, out_channels: int, spatial_stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(
            in_channels, out_channels, kernel_size=3, stride=(1, spatial_stride, spatial_stride), padding=(0, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 0, 0, 0, 2, 0)))


class _Conv3dBlock(_Residual):
    """The "3DConv" baseline's residual block: ``depth`` causal 3x3x3 convs (norm, LeakyReLU) plus a shortcut."""

    def __init__(self, in_channels: int, out_channels: int, depth: int, spatial_stride: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for index in range(depth):
            conv_in = in_channels if index == 0 else out_channels
            layers += [
                _CausalConv3d(conv_in, out_channels, spatial_stride if index == 0 else 1),
                _FrameNormAct(out_channels),
            ]
        self.convs = nn.Sequential(*layers)
        self.shortcut = _shortcut(in_channels, out_channels, spatial_stride)


class ConvLSTMCell(nn.Module):
    """A convolutional LSTM cell (Shi et al., 2015): the four gates from one 3x3 conv of ``[x_t, h_{t-1}]``.

    ``i, f, o = sigmoid(.)``, ``g = tanh(.)``, ``c_t = f c_{t-1} + i g``, ``h_t = o tanh(c_t)``; the forget gate's bias
    starts at 1 (Jozefowicz et al., 2015). :meth:`run` unrolls it forward over T from a zero state and returns every
    step's ``h``, so it is causal by construction.

    Shapes: ``forward(x (B, in_channels, H, W), state) -> (h, c)``, each ``(B, hidden_channels, H, W)``;
    :meth:`run`: ``(B, in_channels, T, H, W) -> (B, hidden_channels, T, H, W)``.

    Args:
        in_channels: input channels.
        hidden_channels: channels of ``h`` and ``c``.
        kernel_size: the gates' conv kernel (odd; 3).

    Examples::

        >>> ConvLSTMCell(4, 8).run(torch.rand(1, 4, 6, 8, 8)).shape
        torch.Size([1, 8, 6, 8, 8])
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        _positive_int("in_channels", in_channels)
        _positive_int("hidden_channels", hidden_channels)
        if _positive_int("kernel_size", kernel_size) % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same-size gates), got {kernel_size}.")
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(
            in_channels + hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2
        )
        with torch.no_grad():  # gate order (i, f, o, g)
            self.gates.bias[hidden_channels : 2 * hidden_channels].fill_(1.0)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_channels, x.shape[2], x.shape[3])
            state = (zeros, zeros)
        hidden, cell = state
        input_gate, forget_gate, output_gate, candidate = self.gates(torch.cat([x, hidden], dim=1)).chunk(4, dim=1)
        cell = torch.sigmoid(forget_gate) * cell + torch.sigmoid(input_gate) * torch.tanh(candidate)
        hidden = torch.sigmoid(output_gate) * torch.tanh(cell)
        return hidden, cell

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """Unroll over T (dim 2) from a zero state: ``(B, C, T, H, W) -> (B, hidden_channels, T, H, W)``."""
        _check_cine("ConvLSTMCell.run", x)
        state: tuple[torch.Tensor, torch.Tensor] | None = None
        outputs = []
        for frame in x.unbind(dim=2):
            state = self(frame, state)
            outputs.append(state[0])
        return torch.stack(outputs, dim=2)


class _ConvLSTMLevel(nn.Module):
    """The "ConvLSTM" baseline's level: a strided 3x3 conv per frame (norm, LeakyReLU), then a ConvLSTM over T."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.down = nn.Sequential(
            nn.Conv3d(in_channels, out_channels, kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            _FrameNormAct(out_channels),
        )
        self.lstm = ConvLSTMCell(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm.run(self.down(x))


class _Conv3dLSTMLevel(nn.Module):
    """The "3DConv + LSTM" baseline's level: one causal 3D conv block, plus a ConvLSTM over T at the last level."""

    def __init__(self, in_channels: int, out_channels: int, depth: int, with_lstm: bool) -> None:
        super().__init__()
        self.block = _Conv3dBlock(in_channels, out_channels, depth, 2)
        self.lstm = ConvLSTMCell(out_channels, out_channels) if with_lstm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(x)
        return self.lstm.run(x) if self.lstm is not None else x


class CineEncoder(nn.Module):
    """The generator's cine encoder: 4 SCLNs (paper 4.2) or one of the ablation encoders (paper section 7, Table 6).

    Each level halves H and W; ``forward`` returns the 4 levels' outputs (for the SCLN kinds, the multi-attention
    weighing unit's fused maps). Kinds:

    - ``"scln"``: 4 :class:`SCLN`; the first gets two copies of ``x``, the next ones the previous spatial and
      temporal pathway outputs;
    - ``"scln_spatial"`` / ``"scln_temporal"``: SCLNs with one pathway (the "pathway only" ablations);
    - ``"scln_no_attention"``: SCLNs with ``attention=False`` (fused = ``F_S + F_T``);
    - ``"conv3d"`` ("3DConv"): per level ``n_stacks`` residual blocks of ``len(dilations)`` plain 3x3x3 convs, causal
      in T (2 zero frames on the left), no dilation, the first conv with stride ``(1, 2, 2)``: the same depth as one
      SCLN pathway;
    - ``"convlstm"`` ("ConvLSTM"): per level a strided 3x3 conv per frame, then a :class:`ConvLSTMCell` run forward
      over T (every step's ``h`` is output, so causal by construction);
    - ``"conv3d_lstm"`` ("3DConv + LSTM"): per level one residual block of ``len(dilations)`` causal 3x3x3 convs, and
      at the last level a :class:`ConvLSTMCell` over T after it.

    Every operation is per frame or causal in T: the outputs at frame ``t`` depend on input frames ``<= t`` only.
    The baselines' compute is of the same order as the SCLN's at the same channels (per output pixel and conv, a
    3x3x3 conv costs ``27 C^2`` against ``9 C^2 + 2 C^2`` per pathway for the SCLN; a ConvLSTM step ``72 C^2``), not
    exactly matched.

    Shapes: ``(B, in_channels, T, H, W) -> [(B, channels[i - 1], T, H / 2^i, W / 2^i) for i = 1..4]``; ``H``, ``W``
    divisible by 16.

    Every kind compiles with ``torch.jit.script``, the ConvLSTM kinds included (their loop over T stays a loop).

    Args:
        in_channels: cine channels (1).
        channels: the 4 levels' channels (paper: ``(16, 32, 64, 128)``).
        kind: one of :data:`CINE_ENCODER_KINDS`.
        dilations: SCLN kinds: each residual block's dilation rates (default ``(1, 1, 2, 4, 6, 8)``); ``"conv3d"`` and
            ``"conv3d_lstm"`` use only its length (the block depth).
        n_stacks: residual blocks per pathway (SCLN kinds) or per level (``"conv3d"``); default 3.
        reduction: the attentions' channel reduction (SCLN kinds with attention); default 8.
        key_pool: the space attentions' key/value pooling (SCLN kinds with attention, :class:`SelfAttention`);
            default 1 (none).

    Raises:
        ValueError: naming the bad argument; in ``forward`` naming the expected input shape. An argument the kind does
            not use warns (``UserWarning``) when it is given.

    Examples::

        >>> encoder = CineEncoder(channels=(4, 8, 8, 16), dilations=(1, 2), n_stacks=1)
        >>> [f.shape[1:] for f in encoder(torch.rand(1, 1, 6, 32, 32))][-1]
        torch.Size([16, 6, 2, 2])
    """

    __constants__ = ["scln_levels"]

    def __init__(
        self,
        in_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64, 128),
        kind: str = "scln",
        dilations: Sequence[int] | None = None,
        n_stacks: int | None = None,
        reduction: int | None = None,
        key_pool: int | None = None,
    ) -> None:
        super().__init__()
        _positive_int("in_channels", in_channels)
        channels = _positive_ints("channels", channels, length=4)
        if kind not in CINE_ENCODER_KINDS:
            raise ValueError(f"kind must be one of {CINE_ENCODER_KINDS}, got {kind!r}.")
        uses = {
            "dilations": kind != "convlstm",
            "n_stacks": kind.startswith("scln") or kind == "conv3d",
            "reduction": kind in ("scln", "scln_spatial", "scln_temporal"),
            "key_pool": kind in ("scln", "scln_spatial", "scln_temporal"),
        }
        named = (("dilations", dilations), ("n_stacks", n_stacks), ("reduction", reduction), ("key_pool", key_pool))
        for name, value in named:
            if value is not None and not uses[name]:
                warnings.warn(f"CineEncoder(kind={kind!r}) does not use {name}={value!r}; it is ignored.", stacklevel=2)
        dilations = _positive_ints("dilations", DEFAULT_DILATIONS if dilations is None else dilations)
        n_stacks = _positive_int("n_stacks", DEFAULT_N_STACKS if n_stacks is None else n_stacks)
        reduction = _positive_int("reduction", DEFAULT_REDUCTION if reduction is None else reduction)
        key_pool = _positive_int("key_pool", 1 if key_pool is None else key_pool)
        self.in_channels = in_channels
        self.channels = channels
        self.kind = kind
        #: the levels are SCLNs ((spatial, temporal) -> (spatial, temporal, fused)), not single-input modules: a
        #: constant, so that TorchScript compiles only the loop of forward that this encoder runs
        self.scln_levels = kind.startswith("scln")
        #: H and W must be divisible by this (4 levels of stride 2)
        self.spatial_divisor = 16

        widths = (in_channels, *channels)
        levels: list[nn.Module] = []
        for level in range(4):
            level_in, level_out = widths[level], widths[level + 1]
            if kind.startswith("scln"):
                pathways = {"scln_spatial": "spatial", "scln_temporal": "temporal"}.get(kind, "both")
                attention = kind != "scln_no_attention"
                levels.append(
                    SCLN(level_in, level_out, 2, dilations, n_stacks, reduction, pathways, attention, key_pool)
                )
            elif kind == "conv3d":
                blocks = [_Conv3dBlock(level_in, level_out, len(dilations), 2)]
                blocks += [_Conv3dBlock(level_out, level_out, len(dilations), 1) for _ in range(n_stacks - 1)]
                levels.append(nn.Sequential(*blocks))
            elif kind == "convlstm":
                levels.append(_ConvLSTMLevel(level_in, level_out))
            else:
                levels.append(_Conv3dLSTMLevel(level_in, level_out, len(dilations), with_lstm=level == 3))
        self.levels = nn.ModuleList(levels)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """
        Args:
            x: ``(B, in_channels, T, H, W)``, ``H`` and ``W`` divisible by 16.

        Returns:
            the 4 levels' feature maps, ``(B, channels[i - 1], T, H / 2^i, W / 2^i)`` for ``i = 1..4``.
        """
        if x.ndim != 5 or x.shape[1] != self.in_channels or x.shape[3] % 16 or x.shape[4] % 16:
            raise ValueError(
                f"CineEncoder expects a cine (B, {self.in_channels}, T, H, W) with H, W divisible by 16, "
                f"got shape {_shape(x)}."
            )
        features: list[torch.Tensor] = []
        if self.scln_levels:
            spatial, temporal = x, x  # the first SCLN gets two copies of the cine (paper 4.2)
            for scln in self.levels:
                spatial, temporal, fused = scln(spatial, temporal)
                features.append(fused)
            return features
        for level in self.levels:
            x = level(x)
            features.append(x)
        return features


class TimeReduction(nn.Module):
    """The paper's "dot layer": a learned weighted sum over the T frames (paper 4.2).

    ``nn.Linear(T, 1, bias=False)`` along T, initialised to ``1 / T`` (the mean over frames).

    Shapes: ``(B, C, T, H, W) -> (B, C, H, W)``.

    Args:
        n_frames: ``T``.

    Examples::

        >>> TimeReduction(6)(torch.ones(1, 2, 6, 4, 4)).shape
        torch.Size([1, 2, 4, 4])
    """

    def __init__(self, n_frames: int) -> None:
        super().__init__()
        self.n_frames = _positive_int("n_frames", n_frames)
        self.dot = nn.Linear(n_frames, 1, bias=False)
        nn.init.constant_(self.dot.weight, 1.0 / n_frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[2] != self.n_frames:
            raise ValueError(f"TimeReduction expects (B, C, {self.n_frames}, H, W), got shape {_shape(x)}.")
        return self.dot(x.movedim(2, -1)).squeeze(-1)


class _UpBlock(nn.Module):
    """The decoder's Upsampling-Conv2D-LN block: nearest x2, concatenate the skip, 3x3 conv, layer norm, LeakyReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm = nn.GroupNorm(1, out_channels)  # layer norm over (C, H, W), per-channel affine
        self.act = nn.LeakyReLU(_LEAKY_SLOPE)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.act(self.norm(self.conv(x)))


class PSCGANGenerator(nn.Module):
    """The SCLN-based GAN's generator: a 2D+T -> 2D encoder-decoder modified from U-Net (paper 4.2, Figs. 5-6).

    - encoder: :class:`CineEncoder` (4 SCLNs, or an ablation ``kind``), levels at ``H / 2 ... H / 16``;
    - bottleneck: the 4th level's fused map ``(B, 128, T, 4, 4)`` reduced over T by a :class:`TimeReduction`,
      flattened, ``Linear -> bottleneck`` (4096) + LeakyReLU; if ``condition_channels > 0`` the flattened condition
      (the coarse mask or the synthesised image of the previous phase) is concatenated to it (Fig. 6: "a fully
      connected layer to concatenate the 1x1x4096 feature and the mask"); ``Linear -> decoder_channels * 4 * 4`` +
      LeakyReLU, reshaped to ``(B, 256, 4, 4)``;
    - decoder: 4 Upsampling-Conv2D-LN blocks (nearest x2, concatenate the time-reduced skip of levels 3, 2, 1 (each
      its own :class:`TimeReduction`, the paper's "dot layer"), 3x3 conv, layer norm, LeakyReLU) with
      ``decoder_channels / 2^i`` channels (256, 128, 64, 32); the last (full-size) block has no skip; then a 1x1 conv
      to ``out_channels`` and the output activation.

    The paper flattens the whole ``25 x 4 x 4 x 128`` map into the first FC layer: 210 M weights at paper size, about
    50x the rest of the network, for a batch size of 1. By default the map is reduced over T first (the same dot
    layer the skips use), giving 8.4 M weights; ``flatten_time=True`` is the paper-literal version.

    Input: a cine ``(B, in_channels, n_frames, image_size, image_size)`` in ``[-1, 1]``, and with
    ``condition_channels > 0`` a condition ``(B, condition_channels, image_size, image_size)``.
    Output: ``(B, out_channels, image_size, image_size)``: ``output="tanh"`` an image in ``[-1, 1]`` (synthesis);
    ``"softmax"`` class probabilities summing to 1 over the channels (segmentation; take ``log`` for an NLL loss);
    ``"none"`` the raw output of the last 1x1 conv (the caller applies its own activations).

    Shape rule: ``image_size`` divisible by 16; the bottleneck's spatial size is ``image_size / 16``.

    TorchScript: ``torch.jit.script`` compiles the generator for every encoder ``kind`` (the model zoo's CI exports
    ``network_def`` that way), with the same outputs as eager; the input checks raise the same messages (as
    ``torch.jit.Error: builtins.ValueError: ...``).

    Args:
        in_channels: cine channels (1).
        out_channels: image channels (1) or classes (4: background, blood pool, healthy myocardium, scar).
        n_frames: ``T`` (25).
        image_size: ``H = W`` (64).
        channels: the encoder's 4 levels' channels (``(16, 32, 64, 128)``).
        kind: the encoder, one of :data:`CINE_ENCODER_KINDS`.
        bottleneck: the first FC layer's width (4096).
        decoder_channels: the reshaped map's channels (256), divisible by 8 (the decoder halves it 3 times).
        condition_channels: channels of the prior condition; 0 for none (phase I).
        output: ``"tanh"``, ``"softmax"`` (needs ``out_channels >= 2``) or ``"none"``.
        flatten_time: ``True`` for the paper-literal flatten of ``T x 4 x 4 x 128`` into the first FC layer.
        **encoder_kwargs: ``dilations``, ``n_stacks``, ``reduction``, ``key_pool`` of :class:`CineEncoder`.

    Raises:
        ValueError: naming the bad argument; in ``forward`` naming the expected shape of the cine or the condition.

    Examples::

        >>> net = PSCGANGenerator(n_frames=6, image_size=32, channels=(4, 8, 8, 16), bottleneck=64,
        ...                       decoder_channels=32, dilations=(1, 2), n_stacks=1)
        >>> net(torch.rand(1, 1, 6, 32, 32)).shape
        torch.Size([1, 1, 32, 32])
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        n_frames: int = 25,
        image_size: int = 64,
        channels: Sequence[int] = (16, 32, 64, 128),
        kind: str = "scln",
        bottleneck: int = 4096,
        decoder_channels: int = 256,
        condition_channels: int = 0,
        output: str = "tanh",
        flatten_time: bool = False,
        **encoder_kwargs: object,
    ) -> None:
        super().__init__()
        _positive_int("out_channels", out_channels)
        _positive_int("n_frames", n_frames)
        _positive_int("bottleneck", bottleneck)
        if _positive_int("image_size", image_size) % 16:
            raise ValueError(f"image_size must be divisible by 16 (4 stride-2 levels), got {image_size}.")
        if _positive_int("decoder_channels", decoder_channels) % 8:
            raise ValueError(f"decoder_channels must be divisible by 8 (halved 3 times), got {decoder_channels}.")
        if not isinstance(condition_channels, int) or isinstance(condition_channels, bool) or condition_channels < 0:
            raise ValueError(f"condition_channels must be an integer >= 0, got {condition_channels!r}.")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}.")
        if output == "softmax" and out_channels < 2:
            raise ValueError(f"output='softmax' needs out_channels >= 2 (one per class), got {out_channels}.")
        self.encoder = CineEncoder(in_channels, channels, kind, **encoder_kwargs)
        channels = self.encoder.channels
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.n_frames = n_frames
        self.image_size = image_size
        self.condition_channels = condition_channels
        self.output = output
        self.flatten_time = bool(flatten_time)
        self.decoder_channels = decoder_channels
        self.bottleneck_size = image_size // 16

        area = self.bottleneck_size**2
        self.skip_reductions = nn.ModuleList(TimeReduction(n_frames) for _ in range(3))
        self.bottleneck_reduction = None if self.flatten_time else TimeReduction(n_frames)
        encoded = channels[3] * area * (n_frames if self.flatten_time else 1)
        self.to_bottleneck = nn.Sequential(nn.Linear(encoded, bottleneck), nn.LeakyReLU(_LEAKY_SLOPE))
        self.from_bottleneck = nn.Sequential(
            nn.Linear(bottleneck + condition_channels * image_size**2, decoder_channels * area),
            nn.LeakyReLU(_LEAKY_SLOPE),
        )
        widths = [decoder_channels // 2**index for index in range(4)]
        skip_channels = (channels[2], channels[1], channels[0], 0)
        block_in = [decoder_channels, *widths[:3]]
        self.up_blocks = nn.ModuleList(_UpBlock(block_in[i] + skip_channels[i], widths[i]) for i in range(4))
        self.head = nn.Conv2d(widths[3], out_channels, kernel_size=1)

    def _check_inputs(self, cine: torch.Tensor, condition: torch.Tensor | None) -> None:
        expected = [self.in_channels, self.n_frames, self.image_size, self.image_size]
        if cine.ndim != 5 or list(cine.shape[1:]) != expected:
            raise ValueError(
                f"PSCGANGenerator expects a cine (B, {', '.join([str(size) for size in expected])}) (B, C, T, H, W), "
                f"got shape {_shape(cine)}."
            )
        expected_condition = [cine.shape[0], self.condition_channels, self.image_size, self.image_size]
        if self.condition_channels == 0:
            if condition is not None:
                raise ValueError(
                    f"PSCGANGenerator was built with condition_channels=0 and takes no condition, got one of shape "
                    f"{_shape(condition)}."
                )
        elif condition is None or list(condition.shape) != expected_condition:
            got = "none" if condition is None else f"shape {_shape(condition)}"
            raise ValueError(f"PSCGANGenerator expects a condition of shape {_sizes(expected_condition)}, got {got}.")

    def forward(self, cine: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """
        Args:
            cine: ``(B, in_channels, n_frames, image_size, image_size)`` in ``[-1, 1]``.
            condition: ``(B, condition_channels, image_size, image_size)``, required iff ``condition_channels > 0``.

        Returns:
            ``(B, out_channels, image_size, image_size)``: an image in ``[-1, 1]`` (tanh), class probabilities
            (softmax over dim 1) or the raw 1x1 conv output (``"none"``).
        """
        self._check_inputs(cine, condition)
        features = self.encoder(cine)
        skips: list[torch.Tensor] = []
        for index, reduce in enumerate(self.skip_reductions):
            skips.append(reduce(features[index]))
        deepest = features[3] if self.bottleneck_reduction is None else self.bottleneck_reduction(features[3])
        code = self.to_bottleneck(deepest.flatten(1))
        if condition is not None:
            code = torch.cat([code, condition.flatten(1)], dim=1)
        side = self.bottleneck_size
        x = self.from_bottleneck(code).view(cine.shape[0], self.decoder_channels, side, side)
        for index, block in enumerate(self.up_blocks):  # the skips of levels 3, 2, 1, then none
            skip: torch.Tensor | None = skips[2 - index] if index < 3 else None
            x = block(x, skip)
        x = self.head(x)
        if self.output == "tanh":
            return torch.tanh(x)
        return torch.softmax(x, dim=1) if self.output == "softmax" else x


class PSCGANDiscriminator(nn.Module):
    """The SCLN-based GAN's discriminator: 5 stride-2 convs with a self-attention layer between conv 2 and conv 3.

    Paper 4.2 and 6.4: 5 convs (kernel 4, stride 2, padding 1), each followed by layer normalisation (``GroupNorm(1,
    C)``; none after the first, as SAGAN/pix2pix) and LeakyReLU(0.2); a 2D SAGAN self-attention
    (:class:`SelfAttention` over the positions of a 1-frame tensor) with its own ``gamma`` residual
    (``x + gamma * A(x)``, ``gamma`` starting at 0) between conv 2 and conv 3; a 1-channel 3x3 conv head gives patch
    logits ``(B, 1, H / 32, W / 32)`` (2 x 2 for 64 x 64: the "1 x 4 probability values" of 6.4; hinge loss on
    raw logits, eq. 16).

    With ``aux_classes > 0`` (the enhanced segmentation GAN, eq. 17) a linear layer on the flattened conv-5 features
    regresses each class's pixel fraction ``count / (H * W)``: fractions are the paper's pixel counts scaled by a
    constant, which keeps the regression target in ``[0, 1]`` (raw output, no activation).

    Input: ``(B, in_channels, image_size, image_size)`` (an image in ``[-1, 1]``, or class probabilities / one-hot).
    Output: a dict with ``"logits"`` ``(B, 1, image_size / 32, image_size / 32)``, ``"features"`` the 5 conv outputs
    after their activation (for a feature-matching / content loss on convs 2-4), and with ``aux_classes > 0``
    ``"counts"`` ``(B, aux_classes)``, the regressed fractions.

    Args:
        in_channels: image channels (1) or classes (4).
        channels: the 5 convs' channels (``(32, 64, 128, 256, 512)``).
        aux_classes: classes of the auxiliary size regression; 0 for none.
        reduction: the attention's channel reduction (8).
        image_size: ``H = W``, divisible by 32 (sets the auxiliary layer's input size).

    Raises:
        ValueError: naming the bad argument; in ``forward`` naming the expected input shape.

    Examples::

        >>> out = PSCGANDiscriminator(4, aux_classes=4)(torch.rand(2, 4, 64, 64))
        >>> out["logits"].shape, out["counts"].shape, len(out["features"])
        (torch.Size([2, 1, 2, 2]), torch.Size([2, 4]), 5)
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int] = (32, 64, 128, 256, 512),
        aux_classes: int = 0,
        reduction: int = DEFAULT_REDUCTION,
        image_size: int = 64,
    ) -> None:
        super().__init__()
        _positive_int("in_channels", in_channels)
        channels = _positive_ints("channels", channels, length=5)
        _positive_int("reduction", reduction)
        if not isinstance(aux_classes, int) or isinstance(aux_classes, bool) or aux_classes < 0:
            raise ValueError(f"aux_classes must be an integer >= 0, got {aux_classes!r}.")
        if _positive_int("image_size", image_size) % 32:
            raise ValueError(f"image_size must be divisible by 32 (5 stride-2 convs), got {image_size}.")
        self.in_channels = in_channels
        self.image_size = image_size
        self.aux_classes = aux_classes
        widths = (in_channels, *channels)
        convs = []
        for index in range(5):
            layers: list[nn.Module] = [nn.Conv2d(widths[index], widths[index + 1], kernel_size=4, stride=2, padding=1)]
            if index > 0:
                layers.append(nn.GroupNorm(1, widths[index + 1]))
            layers.append(nn.LeakyReLU(_LEAKY_SLOPE))
            convs.append(nn.Sequential(*layers))
        self.convs = nn.ModuleList(convs)
        self.attention = SelfAttention(channels[1], reduction, axis="space")
        self.gamma = nn.Parameter(torch.zeros(1))
        self.head = nn.Conv2d(channels[4], 1, kernel_size=3, padding=1)
        side = image_size // 32
        self.aux = nn.Linear(channels[4] * side * side, aux_classes) if aux_classes > 0 else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """
        Args:
            x: ``(B, in_channels, image_size, image_size)``.

        Returns:
            ``{"logits": (B, 1, h, w), "features": [5 maps], "counts": (B, aux_classes)}`` (``"counts"`` only with
            ``aux_classes > 0``), ``h = w = image_size / 32``.
        """
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"PSCGANDiscriminator expects (B, {', '.join(map(str, expected))}) (B, C, H, W), "
                f"got shape {tuple(x.shape)}."
            )
        features: list[torch.Tensor] = []
        for index, conv in enumerate(self.convs):
            x = conv(x)
            features.append(x)
            if index == 1:  # SAGAN attention between conv 2 and conv 3, on a 1-frame cine
                x = x + self.gamma * self.attention(x.unsqueeze(2)).squeeze(2)
        out: dict[str, torch.Tensor | list[torch.Tensor]] = {"logits": self.head(x), "features": features}
        if self.aux is not None:
            out["counts"] = self.aux(x.flatten(1))
        return out
