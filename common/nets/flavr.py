"""FLAVR's 3D U-Net as REHRSeg's self-supervised SR network (Song et al., Neurocomputing 2025, stage 1)."""

from __future__ import annotations

__all__ = ["FLAVRSelfSR", "from_flavr_names", "keys_cubic_weights", "load_plain_into_uasr"]

import math
import re
from collections.abc import Mapping, Sequence

import torch
from torch import nn

#: FLAVR's widths (stem, layer1, layer2, layer3, layer4): R3D-18 without BatchNorm
FLAVR_WIDTHS = (64, 64, 128, 256, 512)
#: the heads: the plain FLAVR head and the uncertainty-aware (UASR) head
HEADS = ("plain", "uasr")
#: interpolations of the image that the SR heads add their residual to
IMAGE_BASES = ("cubic", "linear")
#: the slope of every LeakyReLU of FLAVR's decoder and heads
_LEAKY_SLOPE = 0.2
#: the label logit a fresh network gives where the interpolated input label is 1 (-LABEL_LOGIT where it is 0):
#: sigmoid(4) = 0.98, confident but not saturated, so the residual can still move it
LABEL_LOGIT = 4.0
#: the state-dict prefixes of the encoder (``load_plain_into_uasr`` insists on all of them)
_ENCODER_PREFIXES = ("stem.", "layer1.", "layer2.", "layer3.", "layer4.")


def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    return value


class _SEGating(nn.Module):
    """FLAVR's feature gating: ``x * sigmoid(conv1x1x1(global average of x))`` (a squeeze-excite without bottleneck)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.attention = nn.Conv3d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.attention(self.pool(x)))


class _BasicBlock3d(nn.Module):
    """R3D-18 basic block without BatchNorm: ``relu(gate(conv(relu(conv(x)))) + shortcut(x))``."""

    def __init__(self, in_channels: int, out_channels: int, stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1)
        self.conv2 = nn.Conv3d(out_channels, out_channels, kernel_size=3, padding=1)
        self.gate = _SEGating(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != (1, 1, 1) or in_channels != out_channels:
            # R3D's projection shortcut carries no bias (it was followed by BatchNorm in the original)
            self.shortcut = nn.Conv3d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.gate(self.conv2(torch.relu(self.conv1(x))))
        return torch.relu(out + self.shortcut(x))


def _layer(in_channels: int, out_channels: int, blocks: int, stride: tuple[int, int, int]) -> nn.Sequential:
    return nn.Sequential(
        _BasicBlock3d(in_channels, out_channels, stride),
        *[_BasicBlock3d(out_channels, out_channels, (1, 1, 1)) for _ in range(blocks - 1)],
    )


def _decoder_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """FLAVR's decoder conv: 3x3x3 conv (same size) then SE gating; the LeakyReLU comes in ``forward``."""
    return nn.Sequential(nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1), _SEGating(out_channels))


def _decoder_up(in_channels: int, out_channels: int) -> nn.Sequential:
    """FLAVR's decoder up-conv: transposed conv doubling H and W (T kept) then SE gating."""
    return nn.Sequential(
        nn.ConvTranspose3d(in_channels, out_channels, kernel_size=(3, 4, 4), stride=(1, 2, 2), padding=(1, 1, 1)),
        _SEGating(out_channels),
    )


class _PlainHead(nn.Module):
    """FLAVR's fusion head: ``(B, C*k, H, W) -> (B, 2, s, H, W)`` (image, label logit) per output slice.

    Both channels are residuals on ``base``, the linear interpolation of the two middle input slices at the output
    slices' positions ``(B, 2, s, H, W)``: image ``base_image + o``, label logit ``LABEL_LOGIT (2 base_label - 1) + o``.
    The last convolution starts at zero, so a fresh network returns the interpolation (see :class:`FLAVRSelfSR`).
    """

    def __init__(self, fused_channels: int, channels: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.label_logit = LABEL_LOGIT
        self.feature_fuse = nn.Conv2d(fused_channels, channels, kernel_size=3, padding=1)
        self.act = nn.LeakyReLU(_LEAKY_SLOPE)
        self.outconv = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(channels, 2 * scale, kernel_size=7))
        nn.init.zeros_(self.outconv[1].weight)
        nn.init.zeros_(self.outconv[1].bias)

    def forward(self, fused: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        out = self.outconv(self.act(self.feature_fuse(fused)))
        batch, _, height, width = out.shape
        # the channels are slice-major: (slice 0: image, label), (slice 1: image, label), ...
        out = out.reshape(batch, self.scale, 2, height, width).transpose(1, 2)
        return out + _residual_base(base, self.label_logit)


def _residual_base(base: torch.Tensor, label_logit: float) -> torch.Tensor:
    """``(B, 2, s, H, W)`` interpolated (image, label) -> what the head's outputs are residuals on."""
    return torch.cat([base[:, :1], label_logit * (2.0 * base[:, 1:2] - 1.0)], dim=1)


class _UASRHead(nn.Module):
    """REHRSeg's uncertainty-aware SR (UASR) head: ``n_branches`` (image, label) predictions mixed by softmax weights.

    ``forward`` gives ``(B, 3, s, H, W)``: the weighted image, the weighted label logit and the uncertainty ``U``.
    """

    def __init__(self, fused_channels: int, scale: int, n_branches: int, initial_uncertainty: float) -> None:
        super().__init__()
        self.scale = scale
        self.label_logit = LABEL_LOGIT
        self.n_branches = n_branches
        self.feature_fuse = nn.Conv2d(fused_channels, fused_channels, kernel_size=3, padding=1)
        self.act = nn.LeakyReLU(_LEAKY_SLOPE)
        # per output slice: n_branches (image, label) pairs, and one mixing logit per branch
        self.branches = nn.Conv2d(fused_channels, n_branches * 2 * scale, kernel_size=1)
        self.branch_logits = nn.Conv2d(fused_channels, n_branches * scale, kernel_size=1)
        # U is a learned linear read-out of the weights (not an entropy): FLAVR_arch.py's ``uncertainty_out``
        self.uncertainty_out = nn.Conv3d(n_branches, 1, kernel_size=1)
        # U starts at the scale of the error it learns (the UASR loss's minimiser is U = |y^ - y|, a few hundredths on
        # [0, 1]-scaled images): from PyTorch's default bias U starts near 0.5 everywhere, and a short fine-tune at
        # 1e-4 leaves it there (measured: 0.49 +- 0.004 after 50 Adam steps, uncorrelated with the error). The
        # weights keep their random init: their differences are what passes U's gradient to the branch logits.
        with torch.no_grad():
            centre = math.log(initial_uncertainty / (1.0 - initial_uncertainty))
            self.uncertainty_out.bias.fill_(centre - float(self.uncertainty_out.weight.mean()))

    def branch_outputs(self, fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(images, label_logits, branch_weights)``, each ``(B, n_branches, s, H, W)``; the weights sum to 1 over
        the branch axis (dim 1); images and label logits are residuals on the interpolated input (``forward`` adds
        it)."""
        fused = self.act(self.feature_fuse(fused))
        batch, _, height, width = fused.shape
        # slice-major channels: for slice j, n_branches interleaved (image, label) pairs
        pairs = self.branches(fused).reshape(batch, self.scale, self.n_branches, 2, height, width)
        images = pairs[:, :, :, 0]  # residuals on the interpolated image, as the plain head's
        labels = pairs[:, :, :, 1]
        logits = self.branch_logits(fused).reshape(batch, self.scale, self.n_branches, height, width)
        weights = torch.softmax(logits.transpose(1, 2), dim=1)
        return images.transpose(1, 2), labels.transpose(1, 2), weights

    def uncertainty(self, branch_weights: torch.Tensor) -> torch.Tensor:
        """The uncertainty map ``U = sigmoid(conv1x1x1(w))``, ``(B, 1, s, H, W)`` in ``(0, 1)``."""
        return torch.sigmoid(self.uncertainty_out(branch_weights))

    def forward(self, fused: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        images, labels, weights = self.branch_outputs(fused)
        image = (weights * images).sum(dim=1, keepdim=True)
        label = (weights * labels).sum(dim=1, keepdim=True)
        mixed = torch.cat([image, label], dim=1) + _residual_base(base, self.label_logit)
        return torch.cat([mixed, self.uncertainty(weights)], dim=1)


def keys_cubic_weights(positions: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """Keys' cubic-convolution weights (IEEE TASSP 29:1153, 1981; ``a = -0.5``: exact for quadratics) of the samples
    at offsets -1, 0, 1, 2 for points ``positions`` in ``[0, 1]`` between samples 0 and 1: ``(len(positions), 4)``,
    each row summing to 1."""
    distances = torch.stack([positions + 1, positions, 1 - positions, 2 - positions], dim=-1).abs()
    near = (a + 2) * distances**3 - (a + 3) * distances**2 + 1
    far = a * distances**3 - 5 * a * distances**2 + 8 * a * distances - 4 * a
    return torch.where(distances <= 1, near, far)


class FLAVRSelfSR(nn.Module):
    """FLAVR's 3D U-Net used as REHRSeg's self-supervised SR network (stage 1), with the plain or the UASR head.

    Song et al., "REHRSeg: Unleashing the power of self-supervised super-resolution for resource-efficient 3D MRI
    segmentation", Neurocomputing 624:129425 (2025), section 3.1 (self-SR) and the uncertainty-aware SR (UASR) head;
    the network is FLAVR's ``UNet_3D_3D`` (Kalluri et al., "FLAVR: Flow-agnostic video representations for fast frame
    interpolation", WACV 2023) as the public REHRSeg code uses it (zhiyuns/REHRSeg ``models/FLAVR``):

    - encoder: R3D-18-like without BatchNorm: a stem ``Conv3d(in, widths[0], (3, 7, 7), stride (1, 2, 2))`` + ReLU,
      then ``layer1..layer4`` of ``blocks`` residual basic blocks (two 3x3x3 convs, SE gating, 1x1x1 projection
      shortcut where the shape changes), strides 1, (1, 2, 2), (1, 2, 2), 1. No stride along T: the slice axis is
      kept, so :meth:`early_features` accepts any number of slices;
    - decoder: FLAVR's, with concatenated skips; every conv / transposed conv (kernel (3, 4, 4), stride (1, 2, 2)) is
      followed by SE gating and LeakyReLU(0.2); it ends at full resolution with ``widths[1]`` channels per frame,
      and the ``n_inputs`` frames are then concatenated on the channels (``(B, widths[1] * n_inputs, H, W)``);
    - ``head="plain"``: Conv2d 3x3 -> ``widths[1]`` + LeakyReLU(0.2), ReflectionPad2d(3) + Conv2d 7x7 -> ``2 * scale``;
    - ``head="uasr"`` (the UASR head): Conv2d 3x3 (keeps ``widths[1] * n_inputs``) + LeakyReLU(0.2); per output slice
      1x1 convs give ``n_branches`` (image, label) pairs and ``n_branches`` logits; the softmax over the branches
      gives weights ``w``; output = interpolation (below) + ``sum_i w_i (img_i, seg_i)``; the uncertainty
      ``U = sigmoid(Conv3d 1x1x1 (n_branches -> 1)(w))``.

    Input: ``(B, in_channels, n_inputs, H, W)``, the ``n_inputs`` consecutive thick (LR) slices along T, channel 0
    the image (scaled to about ``[0, 1]``), channel 1 the label (REHRSeg feeds image and label together). The
    per-sample mean of channel 0 (over T, H, W) is subtracted before the encoder (the input is not modified).

    Output: the ``scale`` thin slices that fill the gap between input slices ``n_inputs // 2 - 1`` and
    ``n_inputs // 2`` (for 4 inputs: between the 2nd and the 3rd):

    - plain: ``(B, 2, scale, H, W)``: channel 0 the image, channel 1 the label logit;
    - uasr: ``(B, 3, scale, H, W)``: image, label logit, uncertainty ``U`` in ``(0, 1)``.

    Both heads output residuals on :meth:`interpolated`, the input interpolated at the output slices' positions
    (image: Keys' cubic convolution of the four slices around the gap, the better classical interpolator; label:
    linear, a logit of +-``LABEL_LOGIT`` where the interpolated label is 1 / 0), and the plain head's last
    convolution starts at zero, so a fresh network returns the interpolation and learns the detail it misses. The
    public code instead returns ``tanh(o + mean)`` (a residual on the input's mean, squashed) and, for UASR, absolute
    branch images ``(tanh(o) + 1) / 2``: it trains 260 000 iterations from video-interpolation weights; without those
    weights and with short schedules a network that starts at a constant learns little (our measurement: L1 0.13
    after 50 Adam steps from scratch vs 0.035 for linear interpolation on the same patches).
    We also do not repeat its in-place subtraction of the mean from the input.

    Shape rule: ``H`` and ``W`` divisible by :attr:`spatial_divisor` = 8 (stem, layer2 and layer3 each halve them,
    and the transposed convs must restore the skips' sizes); ``T == n_inputs``.

    Args:
        in_channels: input channels (2: image and label).
        n_inputs: LR slices per window ``k`` (REHRSeg: 4), at least 2.
        scale: thin slices per thick slice ``s`` (REHRSeg: 4).
        widths: channels of (stem, layer1, layer2, layer3, layer4); FLAVR: ``(64, 64, 128, 256, 512)``.
        blocks: residual blocks per layer (R3D-18: 2).
        head: ``"plain"`` (the FLAVR SR network) or ``"uasr"`` (the UASR network, fine-tuned from the plain one).
        n_branches: UASR branches per output slice; default ``max(1, widths[1] // scale)`` (public code: 64 / 4 =
            16). Only used by the UASR head.
        image_base: the image interpolation the heads' outputs are residuals on: ``"cubic"`` (needs ``n_inputs >=
            4``) or ``"linear"``.
        initial_uncertainty: the UASR head's ``U`` before training, everywhere (its read-out starts with zero weights
            and this bias): the scale of the absolute image error ``U`` learns (0.05). Only used by the UASR head.

    Raises:
        ValueError: naming the offending argument; in ``forward`` naming the input shape and the rule it breaks.

    Examples::

        >>> net = FLAVRSelfSR(widths=(8, 8, 16, 16, 16), head="uasr")
        >>> net(torch.rand(1, 2, 4, 16, 16)).shape
        torch.Size([1, 3, 4, 16, 16])
    """

    def __init__(
        self,
        in_channels: int = 2,
        n_inputs: int = 4,
        scale: int = 4,
        widths: Sequence[int] = FLAVR_WIDTHS,
        blocks: int = 2,
        head: str = "plain",
        n_branches: int | None = None,
        image_base: str = "cubic",
        initial_uncertainty: float = 0.05,
    ) -> None:
        super().__init__()
        _positive_int("in_channels", in_channels)
        _positive_int("scale", scale)
        _positive_int("blocks", blocks)
        if _positive_int("n_inputs", n_inputs) < 2:
            raise ValueError(f"n_inputs must be >= 2 (the output fills the gap between two inputs), got {n_inputs}.")
        widths = tuple(widths)
        if len(widths) != 5 or any(not isinstance(w, int) or isinstance(w, bool) or w < 1 for w in widths):
            raise ValueError(f"widths must be 5 positive integers (stem, layer1..layer4), got {widths!r}.")
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}.")
        if image_base not in IMAGE_BASES:
            raise ValueError(f"image_base must be one of {IMAGE_BASES}, got {image_base!r}.")
        if image_base == "cubic" and n_inputs < 4:
            raise ValueError(
                f"image_base 'cubic' needs n_inputs >= 4 (a slice on each side of the gap), got {n_inputs}."
            )
        if not 0.0 < float(initial_uncertainty) < 1.0:
            raise ValueError(f"initial_uncertainty must lie in (0, 1), got {initial_uncertainty!r}.")
        if n_branches is None:
            n_branches = max(1, widths[1] // scale)
        _positive_int("n_branches", n_branches)
        self.in_channels = in_channels
        self.n_inputs = n_inputs
        self.scale = scale
        self.widths = widths
        self.head_type = head
        self.n_branches = n_branches
        self.spatial_divisor = 8
        self.out_channels = 2 if head == "plain" else 3
        # where the output slices lie between the two middle inputs (0 = slice k, 1 = slice k + 1), on the thin grid
        # of common.data.degradation.thin_slice_affine: row j of the gap starts at ceil(k s + (s - 1) / 2)
        k = n_inputs // 2 - 1
        first = math.ceil(k * scale + (scale - 1) / 2.0)
        positions = [(first + m - (scale - 1) / 2.0) / scale - k for m in range(scale)]
        self.register_buffer("gap_positions", torch.tensor(positions, dtype=torch.float32), persistent=False)
        self.image_base = image_base
        self.register_buffer("cubic_weights", keys_cubic_weights(self.gap_positions), persistent=False)

        stem_w, w1, w2, w3, w4 = widths
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, stem_w, kernel_size=(3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3)), nn.ReLU()
        )
        self.layer1 = _layer(stem_w, w1, blocks, (1, 1, 1))
        self.layer2 = _layer(w1, w2, blocks, (1, 2, 2))
        self.layer3 = _layer(w2, w3, blocks, (1, 2, 2))
        self.layer4 = _layer(w3, w4, blocks, (1, 1, 1))
        for module in self.modules():  # R3D's initialisation of the encoder (the decoder keeps PyTorch's)
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

        self.decoder3 = _decoder_conv(w4, w3)
        self.decoder2 = _decoder_up(2 * w3, w2)
        self.decoder1 = _decoder_up(2 * w2, w1)
        self.decoder0 = _decoder_conv(2 * w1, w1)
        self.decoder_out = _decoder_up(w1 + stem_w, w1)
        self.act = nn.LeakyReLU(_LEAKY_SLOPE)

        fused = w1 * n_inputs
        self.head: nn.Module = (
            _PlainHead(fused, w1, scale)
            if head == "plain"
            else _UASRHead(fused, scale, n_branches, float(initial_uncertainty))
        )

    @torch.jit.unused
    def _check_input(self, x: torch.Tensor, divisor: int, fixed_t: bool) -> None:
        """Refuse a wrong rank, channel count, slice count or in-plane size (eager mode only)."""
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"FLAVRSelfSR expects input (B, {self.in_channels}, T, H, W), got shape {tuple(x.shape)}.")
        if fixed_t and x.shape[2] != self.n_inputs:
            raise ValueError(f"FLAVRSelfSR input shape {tuple(x.shape)}: T must equal n_inputs = {self.n_inputs}.")
        if x.shape[3] % divisor or x.shape[4] % divisor:
            raise ValueError(f"FLAVRSelfSR input shape {tuple(x.shape)}: H and W must be divisible by {divisor}.")

    def _centre(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x with the per-sample mean of channel 0 subtracted, that mean (B, 1, 1, 1, 1))``; ``x`` is not changed."""
        mean = x[:, :1].mean(dim=(2, 3, 4), keepdim=True)
        return torch.cat([x[:, :1] - mean, x[:, 1:]], dim=1), mean

    @torch.jit.export
    def early_features(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's ``layer1`` output, REHRSeg's structural-KD teacher feature.

        Args:
            x: ``(B, in_channels, T, H, W)`` for any ``T >= 1`` (e.g. a whole LR volume), ``H`` and ``W`` even.

        Returns:
            ``(B, widths[1], T, H / 2, W / 2)``.
        """
        if not torch.jit.is_scripting():
            self._check_input(x, 2, False)
        centred, _ = self._centre(x)
        return self.layer1(self.stem(centred))

    def _fused_features(self, centred: torch.Tensor) -> torch.Tensor:
        """Encoder and decoder: ``(B, in, k, H, W) -> (B, widths[1] * k, H, W)`` (frames concatenated frame-major)."""
        x0 = self.stem(centred)
        x1 = self.layer1(x0)
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        x4 = self.layer4(x3)
        d = self.act(self.decoder3(x4))
        d = self.act(self.decoder2(torch.cat([d, x3], dim=1)))
        d = self.act(self.decoder1(torch.cat([d, x2], dim=1)))
        d = self.act(self.decoder0(torch.cat([d, x1], dim=1)))
        d = self.act(self.decoder_out(torch.cat([d, x0], dim=1)))
        # (B, C, T, H, W) -> (B, T * C, H, W), frame 0's channels first (FLAVR's cat of the unbound frames)
        return d.transpose(1, 2).flatten(1, 2)

    def uasr_branch_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The UASR head's branches before mixing: ``(images, label_logits, branch_weights)``.

        Args:
            x: as :meth:`forward`.

        Returns:
            three ``(B, n_branches, scale, H, W)`` tensors; the weights sum to 1 over dim 1.

        Raises:
            ValueError: if ``head`` is not ``"uasr"``.
        """
        if not isinstance(self.head, _UASRHead):
            raise ValueError(f"uasr_branch_outputs needs head='uasr', this network has head={self.head_type!r}.")
        self._check_input(x, self.spatial_divisor, True)
        centred, _ = self._centre(x)
        return self.head.branch_outputs(self._fused_features(centred))

    @torch.jit.export
    def interpolated(self, x: torch.Tensor) -> torch.Tensor:
        """The input interpolated at the output slices' positions, ``(B, 2, s, H, W)``: what the heads add their
        output to. Image: Keys' cubic convolution of the four slices around the gap (``image_base="cubic"``) or the
        linear interpolation of the two middle ones; label: linear (a missing label channel reads 0.5, i.e. a zero
        logit)."""
        k = self.n_inputs // 2 - 1
        a, b = x[:, :, k], x[:, :, k + 1]
        base = a.unsqueeze(2) + self.gap_positions.view(1, 1, -1, 1, 1) * (b - a).unsqueeze(2)
        if self.image_base == "cubic":
            image = torch.einsum("sj,bjhw->bshw", self.cubic_weights, x[:, 0, k - 1 : k + 3]).unsqueeze(1)
            base = torch.cat([image, base[:, 1:]], dim=1)
        if base.shape[1] < 2:
            base = torch.cat([base, torch.full_like(base, 0.5)], dim=1)
        return base[:, :2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: ``(B, in_channels, n_inputs, H, W)``; ``H``, ``W`` divisible by 8.

        Returns:
            plain: ``(B, 2, scale, H, W)`` (image, label logit); uasr: ``(B, 3, scale, H, W)`` (image, label logit,
            uncertainty ``U``).
        """
        if not torch.jit.is_scripting():
            self._check_input(x, self.spatial_divisor, True)
        centred, _ = self._centre(x)
        return self.head(self._fused_features(centred), self.interpolated(x))


def load_plain_into_uasr(uasr: FLAVRSelfSR, plain_state: Mapping[str, torch.Tensor]) -> list[str]:
    """Start a UASR network from a trained plain one (REHRSeg fine-tunes the UASR model from the plain FLAVR).

    Copies every tensor of ``plain_state`` whose name and shape match a tensor of ``uasr`` (encoder and decoder; the
    heads differ) into ``uasr``.

    Args:
        uasr: a :class:`FLAVRSelfSR` with ``head="uasr"``.
        plain_state: the state dict of a plain :class:`FLAVRSelfSR` of the same widths.

    Returns:
        the names of ``uasr``'s tensors that were not loaded (its head), for the caller to log.

    Raises:
        ValueError: if ``uasr`` is not a UASR network, or naming the encoder tensors that ``plain_state`` lacks or
            holds with another shape (a wrong checkpoint).
    """
    if not isinstance(uasr, FLAVRSelfSR) or uasr.head_type != "uasr":
        raise ValueError(f"uasr must be a FLAVRSelfSR with head='uasr', got {type(uasr).__name__}.")
    state = uasr.state_dict()
    loaded = {
        name: value
        for name, value in plain_state.items()
        if name in state and isinstance(value, torch.Tensor) and value.shape == state[name].shape
    }
    missing_encoder = [name for name in state if name.startswith(_ENCODER_PREFIXES) and name not in loaded]
    if missing_encoder:
        raise ValueError(
            f"plain_state lacks (or has other shapes for) {len(missing_encoder)} encoder tensors of the UASR network, "
            f"e.g. {missing_encoder[:5]}: not a plain FLAVRSelfSR of the same widths."
        )
    state.update(loaded)
    uasr.load_state_dict(state)
    return [name for name in state if name not in loaded]


#: FLAVR's ``UNet_3D_3D`` decoder list index -> this module's decoder name
_FLAVR_DECODERS = {"0": "decoder3", "1": "decoder2", "2": "decoder1", "3": "decoder0", "4": "decoder_out"}
#: FLAVR's parameter names (tarun005/FLAVR ``model/Unet_3D_3D_interpolate.py``, ``model/resnet_3D_Unet.py``, without
#: BatchNorm) -> this module's, as (pattern, replacement) rules applied in order
_FLAVR_RENAMES = (
    (r"^encoder\.stem\.0\.", "stem.0."),
    (r"^encoder\.(layer\d+\.\d+)\.conv([12])\.0\.", r"\1.conv\2."),
    (r"^encoder\.(layer\d+\.\d+)\.fg\.attn_layer\.0\.", r"\1.gate.attention."),
    (r"^encoder\.(layer\d+\.\d+)\.downsample\.0\.", r"\1.shortcut."),
    (r"^decoder\.(\d)\.(?:conv|upconv)\.0\.", lambda m: f"{_FLAVR_DECODERS[m.group(1)]}.0."),
    (r"^decoder\.(\d)\.(?:conv|upconv)\.1\.attn_layer\.0\.", lambda m: f"{_FLAVR_DECODERS[m.group(1)]}.1.attention."),
    (r"^feature_fuse\.conv\.0\.", "head.feature_fuse."),
    (r"^outconv\.1\.", "head.outconv.1."),
)


def from_flavr_names(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A FLAVR frame-interpolation ``state_dict`` (``module.`` prefix already stripped) under this module's names.

    FLAVR nests its convolutions in ``Sequential`` wrappers (``encoder.layer1.0.conv1.0.weight``, the gating as
    ``fg.attn_layer.0``, the decoder as a list ``decoder.0..4``); :class:`FLAVRSelfSR` names the same tensors
    ``layer1.0.conv1.weight``, ``gate.attention``, ``decoder3..decoder_out``. Names without a rule (e.g. BatchNorm
    parameters of a model trained with it) are left out; names already in this module's form are kept as they are.
    """
    renamed = {}
    for name, tensor in state.items():
        new = name
        for pattern, replacement in _FLAVR_RENAMES:
            new = re.sub(pattern, replacement, new)
            if new != name:
                break
        if new != name or not name.startswith(("encoder.", "decoder.", "feature_fuse.", "outconv.")):
            renamed[new] = tensor
    return renamed
