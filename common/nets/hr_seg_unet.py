"""REHRSeg's stage-2 segmenter: a 3D U-Net on the thick-slice volume with an LR and an HR head (Song et al., 2025)."""

from __future__ import annotations

__all__ = ["HRSegUNet"]

import math
from collections.abc import Sequence

import torch
from common.nets.recompute import call_recomputed
from torch import nn

#: nnU-Net-like anisotropic default: (x, y, z) strides per stage, in-plane pooling first, z pooled only deep
DEFAULT_STRIDES = ((1, 1, 1), (2, 2, 1), (2, 2, 1), (2, 2, 2))
#: the outputs ``forward`` can return: the HR head's (REHRSeg) or the LR head's (the LR-only baseline)
OUTPUTS = ("hr", "lr")
#: the width of the HR head's hidden layer (public code: ``sr_head``, 32 -> 16 -> classes)
_HR_HEAD_WIDTH = 16


def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    return value


Triple = tuple[int, int, int]


class _ConvNormAct(nn.Sequential):
    """nnU-Net's conv block: ``Conv3d (kernel, stride, same padding) -> InstanceNorm3d(affine) -> LeakyReLU(0.01)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Triple, stride: Triple) -> None:
        super().__init__(
            nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=tuple(k // 2 for k in kernel)),
            nn.InstanceNorm3d(out_channels, affine=True),
            nn.LeakyReLU(0.01),
        )


class _Stage(nn.Sequential):
    """Two conv blocks with the stage's kernel, the first with the stage's stride; with ``recompute`` its
    activations are recomputed in the backward pass instead of kept (eager mode; its input is kept)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: Triple, stride: Triple, recompute: bool = False
    ) -> None:
        super().__init__(
            _ConvNormAct(in_channels, out_channels, kernel, stride),
            _ConvNormAct(out_channels, out_channels, kernel, (1, 1, 1)),
        )
        self.recompute = recompute

    def _plain(self, x: torch.Tensor) -> torch.Tensor:
        for block in self:
            x = block(x)
        return x

    @torch.jit.unused
    def _recomputed(self, x: torch.Tensor) -> torch.Tensor:
        return call_recomputed(self._plain, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.recompute and not torch.jit.is_scripting():
            return self._recomputed(x)
        return self._plain(x)


class _UpStage(nn.Module):
    """One decoder stage: transposed conv (kernel = stride = the deeper encoder stage's stride), ``cat(up, skip)``, a
    stage with the skip's kernel (as nnU-Net's decoder); ``recompute`` applies to that stage (the concatenation, its
    input, is kept)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: Triple, stride: Triple, recompute: bool = False
    ) -> None:
        super().__init__()
        self.up = nn.ConvTranspose3d(in_channels, out_channels, kernel_size=stride, stride=stride)
        self.convs = _Stage(2 * out_channels, out_channels, kernel, (1, 1, 1), recompute)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.convs(torch.cat([self.up(x), skip], dim=1))


class HRSegUNet(nn.Module):
    """REHRSeg's stage-2 segmenter: a 3D U-Net on the LR (thick-slice) volume with an LR head and an HR head.

    Song et al., "REHRSeg: Unleashing the power of self-supervised super-resolution for resource-efficient 3D MRI
    segmentation", Neurocomputing 624:129425 (2025), section 3.2. The public code (zhiyuns/REHRSeg
    ``seg_model.py``) uses nnU-Net's ``PlainConvUNet`` with a ``sr_head`` on the last decoder features; this is an
    nnU-Net-like equivalent with the stages given explicitly:

    - encoder stage ``i``: 2 x (Conv3d ``kernel_sizes[i]`` (3x3x3 by default) + InstanceNorm3d(affine) +
      LeakyReLU(0.01)), the first conv with ``strides[i]``; decoder: ConvTranspose3d (kernel = stride =
      ``strides[i]``), ``cat(up, skip)``, 2 conv blocks with the skip's kernel;
    - LR head: Conv3d 1x1x1 ``features[0] -> out_channels`` on the last decoder features (nnU-Net's seg layer);
    - HR head: trilinear upsampling of the last decoder features by ``scale`` along z only
      (``align_corners=False``: thin slice ``j`` sits at thick coordinate ``(j + 0.5) / s - 0.5``, clamped at the
      ends, the grid of ``common.data.degradation.thin_slice_affine``), then Conv3d 3x3x3 ``-> 16`` + ReLU, Conv3d
      5x5x5 ``16 -> out_channels``.

    Layout: MONAI channel-first ``(B, C, X, Y, Z)`` with the through-plane (slice) axis last; strides are ``(x, y, z)``.

    Shapes: ``(B, in_channels, X, Y, Z)`` -> HR logits ``(B, out_channels, X, Y, scale * Z)`` or LR logits
    ``(B, out_channels, X, Y, Z)``; each of X, Y, Z divisible by the matching entry of :attr:`divisor` (the product
    of the strides along that axis). Input: an intensity-normalised (z-scored) image; outputs: raw logits.

    Args:
        in_channels: image channels (1).
        out_channels: classes including the background (2).
        scale: thin slices per thick slice ``s`` (REHRSeg: 4).
        features: channels per stage, at least 2 stages (stage 1 is the structural-KD student feature).
        strides: ``(x, y, z)`` stride per stage, as many as ``features``; default in-plane first, z only in the last.
        kernel_sizes: ``(x, y, z)`` odd conv kernel per stage, as many as ``features`` (nnU-Net plans ``(3, 3, 1)``
            for stages whose z spacing is still much coarser than in-plane); ``None``: 3x3x3 in every stage.
        output: what ``forward`` returns: ``"hr"`` (REHRSeg) or ``"lr"`` (the LR-only baseline).
        recompute_full_resolution: the stages at the input resolution (the first encoder stage and the last decoder
            stage) and the HR head keep no activations for the backward pass and recompute them
            (:mod:`common.nets.recompute`; eager mode, scripted networks run plainly): the same outputs and gradients,
            less memory (the full-resolution and HR tensors are the step's largest), one more forward of those
            layers per step. Off by default.

    Raises:
        ValueError: naming the offending argument; in ``forward`` naming the input shape that is not divisible by
            :attr:`divisor`.

    Examples::

        >>> net = HRSegUNet(features=(8, 16, 16, 16))
        >>> net(torch.rand(1, 1, 16, 16, 8)).shape
        torch.Size([1, 2, 16, 16, 32])
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        scale: int = 4,
        features: Sequence[int] = (32, 64, 128, 256),
        strides: Sequence[Sequence[int]] = DEFAULT_STRIDES,
        kernel_sizes: Sequence[Sequence[int]] | None = None,
        output: str = "hr",
        recompute_full_resolution: bool = False,
    ) -> None:
        super().__init__()
        _positive_int("in_channels", in_channels)
        _positive_int("out_channels", out_channels)
        _positive_int("scale", scale)
        features = tuple(features)
        if len(features) < 2 or any(not isinstance(f, int) or isinstance(f, bool) or f < 1 for f in features):
            raise ValueError(f"features must hold at least 2 positive integers, got {features!r}.")
        strides = tuple(tuple(s) for s in strides)
        if len(strides) != len(features) or any(
            len(s) != 3 or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in s) for s in strides
        ):
            raise ValueError(
                f"strides must hold one (x, y, z) triple of positive integers per stage ({len(features)}), "
                f"got {strides!r}."
            )
        kernel_sizes = (
            tuple(tuple(k) for k in kernel_sizes) if kernel_sizes is not None else ((3, 3, 3),) * len(features)
        )
        if len(kernel_sizes) != len(features) or any(
            len(k) != 3 or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 or v % 2 == 0 for v in k)
            for k in kernel_sizes
        ):
            raise ValueError(
                f"kernel_sizes must hold one (x, y, z) triple of odd positive integers per stage ({len(features)}), "
                f"got {kernel_sizes!r}."
            )
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}.")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.scale = scale
        self.features = features
        self.strides = strides
        self.kernel_sizes = kernel_sizes
        self.output = output
        #: ``(X, Y, Z)`` the input sizes must be divisible by: the product of the strides along each axis (a plain
        #: attribute rather than a property, so that a scripted network keeps it)
        self.divisor: tuple[int, int, int] = self.divisor_of(strides)

        self.recompute_full_resolution = bool(recompute_full_resolution)
        channels = (in_channels, *features)
        # stage 0 of the encoder and the last decoder stage (i == 0) work at the input resolution
        self.encoder = nn.ModuleList(
            _Stage(channels[i], channels[i + 1], kernel_sizes[i], strides[i], i == 0 and self.recompute_full_resolution)
            for i in range(len(features))
        )
        self.decoder = nn.ModuleList(
            _UpStage(
                features[i + 1], features[i], kernel_sizes[i], strides[i + 1], i == 0 and self.recompute_full_resolution
            )
            for i in reversed(range(len(features) - 1))
        )
        self.lr_head = nn.Conv3d(features[0], out_channels, kernel_size=1)
        self.hr_head = nn.Sequential(
            nn.Conv3d(features[0], _HR_HEAD_WIDTH, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv3d(_HR_HEAD_WIDTH, out_channels, kernel_size=5, padding=2),
        )

    @torch.jit.unused
    def _check_input(self, x: torch.Tensor) -> None:
        """Refuse a wrong rank or channel count and sizes the strides cannot divide (eager mode only)."""
        if x.ndim != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"HRSegUNet expects input (B, {self.in_channels}, X, Y, Z), got shape {tuple(x.shape)}.")
        if any(size % div for size, div in zip(x.shape[2:], self.divisor)):
            raise ValueError(
                f"HRSegUNet input spatial shape {list(x.shape[2:])} must be divisible by {list(self.divisor)} "
                "(the product of the strides along X, Y, Z)."
            )

    def _decode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(last decoder features (B, features[0], X, Y, Z), encoder stage 1's output)``."""
        skips: list[torch.Tensor] = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        for level, up in enumerate(self.decoder):
            x = up(x, skips[-(level + 2)])
        return x, skips[1]

    def _hr_logits(self, features: torch.Tensor) -> torch.Tensor:
        if self.recompute_full_resolution and not torch.jit.is_scripting():
            return self._hr_logits_recomputed(features)
        return self._hr_logits_plain(features)

    @torch.jit.unused
    def _hr_logits_recomputed(self, features: torch.Tensor) -> torch.Tensor:
        return call_recomputed(self._hr_logits_plain, features)

    def _hr_logits_plain(self, features: torch.Tensor) -> torch.Tensor:
        # z only: thin slice j at thick coordinate (j + 0.5) / s - 0.5 (align_corners=False), as thin_slice_affine
        upsampled = nn.functional.interpolate(
            features, scale_factor=(1.0, 1.0, float(self.scale)), mode="trilinear", align_corners=False
        )
        return self.hr_head(upsampled)

    @staticmethod
    def divisor_of(strides: Sequence[Sequence[int]]) -> tuple[int, int, int]:
        """``(X, Y, Z)`` divisor of a network with these per-stage strides, without building one: configs read it
        (e.g. a crop's slice multiple) without instantiating the network earlier than its trainer does, which would
        move the random draws of its weight initialisation."""
        return tuple(math.prod(int(s[axis]) for s in strides) for axis in range(3))

    @torch.jit.export
    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Both heads and the structural-KD student feature.

        Args:
            x: ``(B, in_channels, X, Y, Z)``, divisible by :attr:`divisor`.

        Returns:
            ``(lr_logits (B, out, X, Y, Z), hr_logits (B, out, X, Y, scale * Z), skip1)``, ``skip1`` the output of
            encoder stage 1 (``(B, features[1], X / sx, Y / sy, Z / sz)`` with ``strides[1]``; with the default
            strides ``(B, features[1], X / 2, Y / 2, Z)``).
        """
        if not torch.jit.is_scripting():
            self._check_input(x)
        features, skip1 = self._decode(x)
        return self.lr_head(features), self._hr_logits(features), skip1

    @torch.jit.export
    def forward_lr(self, x: torch.Tensor) -> torch.Tensor:
        """LR logits ``(B, out_channels, X, Y, Z)`` only (validation by LR Dice: the HR head is not run)."""
        if not torch.jit.is_scripting():
            self._check_input(x)
        features, _ = self._decode(x)
        return self.lr_head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: ``(B, in_channels, X, Y, Z)``, divisible by :attr:`divisor`.

        Returns:
            ``output="hr"``: HR logits ``(B, out_channels, X, Y, scale * Z)``; ``"lr"``: LR logits
            ``(B, out_channels, X, Y, Z)``.
        """
        if not torch.jit.is_scripting():
            self._check_input(x)
        features, _ = self._decode(x)
        # only the head asked for runs (the LR-only baseline never touches the HR head)
        return self._hr_logits(features) if self.output == "hr" else self.lr_head(features)
