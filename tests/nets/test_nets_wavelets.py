"""The Haar wavelet transform and StyleGAN2's blur of StyleSwin's discriminator, on known inputs."""

from __future__ import annotations

import pytest
import torch
from common.nets.wavelets import blur, haar_dwt, haar_iwt


def test_haar_of_a_2x2_block_by_hand():
    """[[a, b], [c, d]] -> ((a+b+c+d), (c+d-a-b), (b+d-a-c), (a+d-b-c)) / 2, rows being the first image axis."""
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    torch.testing.assert_close(haar_dwt(x).flatten(), torch.tensor([10.0, 4.0, 2.0, 0.0]) / 2)


def test_haar_is_orthonormal_and_inverted_by_haar_iwt():
    x = torch.randn(3, 2, 8, 12, dtype=torch.float64)
    bands = haar_dwt(x)
    assert bands.shape == (3, 8, 4, 6)
    torch.testing.assert_close(bands.square().sum(), x.square().sum())  # energy kept
    torch.testing.assert_close(haar_iwt(bands), x)
    # a channel's four bands sit together: channel 1's low band is the 2x2 block sums of channel 1, halved
    torch.testing.assert_close(bands[:, 4], x[:, 1].reshape(3, 4, 2, 6, 2).sum((2, 4)) / 2)


def test_haar_refuses_odd_sides_and_band_counts():
    with pytest.raises(ValueError, match="even"):
        haar_dwt(torch.zeros(1, 1, 5, 4))
    with pytest.raises(ValueError, match="4C"):
        haar_iwt(torch.zeros(1, 3, 4, 4))


def test_blur_keeps_a_constant_away_from_the_border_and_halves_the_side():
    x = torch.full((1, 2, 16, 16), 3.0)
    down = blur(x, 1, stride=2)
    assert down.shape == (1, 2, 8, 8)
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.full((1, 2, 6, 6), 3.0))
    assert blur(x, 2).shape == (1, 2, 17, 17)  # before a 3x3 conv of stride 2: (17 - 3) / 2 + 1 = 8
    # the kernel is StyleGAN2's [1, 3, 3, 1] / 8 in each direction: an impulse spreads into its outer product
    impulse = torch.zeros(1, 1, 8, 8)
    impulse[0, 0, 4, 4] = 64.0
    spread = blur(impulse, 2)[0, 0]
    torch.testing.assert_close(spread[3:7, 3:7], torch.outer(*[torch.tensor([1.0, 3.0, 3.0, 1.0])] * 2).flip(0, 1))
