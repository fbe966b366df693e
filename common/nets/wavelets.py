"""The orthonormal 2D Haar wavelet transform and the anti-aliased x2 downsampling of StyleGAN2, as fixed convolutions.

StyleSwin's discriminator (after SWAGAN, Gal et al., 2021) looks at an image through its Haar sub-bands: the high
bands make the blocking artefacts of windowed attention easy to see (StyleSwin, section 3.4).
"""

from __future__ import annotations

__all__ = ["haar_dwt", "haar_iwt", "blur"]

import torch
import torch.nn.functional as F

#: the four 2x2 Haar filters, orthonormal: low-low (the block mean x 2), then the vertical, horizontal and diagonal
#: differences. Rows are the first image axis.
_HAAR = (
    torch.tensor(
        [[[1.0, 1.0], [1.0, 1.0]], [[-1.0, -1.0], [1.0, 1.0]], [[-1.0, 1.0], [-1.0, 1.0]], [[1.0, -1.0], [-1.0, 1.0]]]
    )
    / 2.0
)

#: StyleGAN2's [1, 3, 3, 1] blur, separable, normalised to sum 1
_BLUR = torch.tensor([1.0, 3.0, 3.0, 1.0])


def _haar_filters(channels: int, like: torch.Tensor) -> torch.Tensor:
    return _HAAR.to(like).unsqueeze(1).repeat(channels, 1, 1, 1)  # (4C, 1, 2, 2): the four bands of each channel


def haar_dwt(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W) -> (B, 4C, H/2, W/2)``: each channel's four Haar sub-bands (low-low, vertical, horizontal,
    diagonal), the bands of a channel next to each other. Orthonormal: the sum of squares is kept.

    Raises:
        ValueError: ``H`` or ``W`` is odd.
    """
    if x.ndim != 4 or x.shape[-1] % 2 or x.shape[-2] % 2:
        raise ValueError(f"haar_dwt takes (B, C, H, W) with even H and W, got {tuple(x.shape)}.")
    channels = x.shape[1]
    return F.conv2d(x, _haar_filters(channels, x), stride=2, groups=channels)


def haar_iwt(bands: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`haar_dwt`: ``(B, 4C, H, W) -> (B, C, 2H, 2W)`` (the transpose of an orthonormal map).

    Raises:
        ValueError: the channel count is not a multiple of 4.
    """
    if bands.ndim != 4 or bands.shape[1] % 4:
        raise ValueError(f"haar_iwt takes (B, 4C, H, W), got {tuple(bands.shape)}.")
    channels = bands.shape[1] // 4
    return F.conv_transpose2d(bands, _haar_filters(channels, bands), stride=2, groups=channels)


def blur(x: torch.Tensor, pad: int, stride: int = 1) -> torch.Tensor:
    """StyleGAN2's separable [1, 3, 3, 1] / 8 blur of each channel over a ``pad``-pixel zero border.

    ``blur(x, 1, stride=2)`` is its anti-aliased x2 downsampling (``(B, C, H, W) -> (B, C, H/2, W/2)`` for even sides);
    ``blur(x, 2)`` comes before a 3x3 convolution of stride 2 (``H + 1`` rows out: the convolution then halves ``H``).
    """
    channels = x.shape[1]
    kernel = torch.outer(_BLUR, _BLUR).to(x) / _BLUR.sum() ** 2
    return F.conv2d(F.pad(x, (pad,) * 4), kernel.expand(channels, 1, 4, 4), stride=stride, groups=channels)
