"""Sliding k-slice SR over a whole volume: ends included, thin grid, batched windows; the thick-slice seg inferer."""

from __future__ import annotations

import pytest
import torch
from common.inferers import SlidingSliceSR, ThickSliceSegInferer


class LinearGapNet(torch.nn.Module):
    """Fills the middle gap of 4 slices by linear interpolation at the thin positions (s = 4): 1.125 + m / 4."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x[:, :, 1], x[:, :, 2]
        return torch.stack([a + (0.125 + m / 4) * (b - a) for m in range(4)], dim=2)


def test_output_covers_the_input_extent_on_the_thin_grid():
    n = 7
    volume = torch.arange(n, dtype=torch.float32).view(1, 1, 1, 1, n).expand(2, 1, 8, 8, n).clone()
    out = SlidingSliceSR(scale=4, n_inputs=4, axis=2, windows_per_batch=3)(volume, LinearGapNet())
    assert out.shape == (2, 1, 8, 8, 4 * n)
    positions = (torch.arange(4 * n) + 0.5) / 4 - 0.5  # thick coordinate of every thin slice
    expected = positions.clone()
    expected[positions < 0] = -positions[positions < 0]  # mirrored before the first thick slice
    expected[positions > n - 1] = 2 * (n - 1) - positions[positions > n - 1]  # and after the last
    torch.testing.assert_close(out[0, 0, 3, 3], expected)


def test_axis_and_in_plane_padding_are_undone():
    volume = torch.rand(1, 1, 6, 10, 9)  # thick along axis 0, in-plane 10 x 9 (not multiples of 8)
    out = SlidingSliceSR(scale=4, axis=0)(volume, LinearGapNet())
    assert out.shape == (1, 1, 24, 10, 9)
    torch.testing.assert_close(
        out[0, 0, 6:10],
        volume[0, 0, 1:2] + (0.125 + torch.arange(4).view(4, 1, 1) / 4) * (volume[0, 0, 2:3] - volume[0, 0, 1:2]),
    )


def test_too_few_slices_are_refused():
    with pytest.raises(ValueError, match="at least 4"):
        SlidingSliceSR(scale=4)(torch.rand(1, 1, 8, 8, 3), LinearGapNet())


def test_time_is_linear_in_slices_by_counting_forward_windows():
    calls = []

    class Counting(LinearGapNet):
        def forward(self, x):
            calls.append(x.shape[0])
            return super().forward(x)

    for n in (5, 10, 20):
        calls.clear()
        SlidingSliceSR(scale=4, windows_per_batch=4)(torch.rand(1, 1, 8, 8, n), Counting())
        assert sum(calls) == n + 1  # one window per gap, both half-gaps at the ends included


class TwoHeads(torch.nn.Module):
    def forward_all(self, x):
        lr = x.repeat(1, 2, 1, 1, 1)
        hr = lr.repeat_interleave(4, dim=-1)
        return lr, hr, x

    def forward(self, x):
        return self.forward_all(x)[1]


def test_seg_inferer_pads_to_the_divisor_and_crops_both_grids():
    x = torch.rand(1, 1, 10, 12, 5)
    lr, hr = ThickSliceSegInferer(divisor=(8, 8, 2), scale=4, head="both")(x, TwoHeads())
    assert lr.shape == (1, 2, 10, 12, 5) and hr.shape == (1, 2, 10, 12, 20)
    torch.testing.assert_close(lr[:, :1], x)
    assert ThickSliceSegInferer(divisor=(8, 8, 2), scale=4)(x, TwoHeads()).shape == (1, 2, 10, 12, 20)
    assert ThickSliceSegInferer(divisor=(8, 8, 2), head="lr")(x, TwoHeads()).shape == (1, 2, 10, 12, 5)


def test_seg_inferer_in_in_plane_windows_runs_the_network_on_windows_and_blends_to_the_whole_volume_result():
    """With roi_size a 40 x 44 volume runs in 16 x 16 in-plane windows over all its slices (the HR head's memory
    bounded by the window); for a pointwise network the blended result is the whole-volume one."""
    seen = []

    class Recording(TwoHeads):
        def forward_all(self, x):
            seen.append(tuple(x.shape[2:]))
            return super().forward_all(x)

    x = torch.rand(1, 1, 40, 44, 5)
    whole = ThickSliceSegInferer(divisor=(8, 8, 2), scale=4, head="both")(x, Recording())
    assert seen == [(40, 48, 6)]  # padded to the divisor, one forward
    seen.clear()
    windowed = ThickSliceSegInferer(divisor=(8, 8, 2), scale=4, head="both", roi_size=(16, 16))(x, Recording())
    assert len(seen) > 4 and set(seen) == {(16, 16, 6)}
    for a, b in zip(windowed, whole):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b)
    hr = ThickSliceSegInferer(divisor=(8, 8, 2), scale=4, roi_size=(16, 16))(x, Recording())
    torch.testing.assert_close(hr, whole[1])
    small = torch.rand(1, 1, 10, 12, 5)  # no larger than a window: one forward, as without roi_size
    seen.clear()
    ThickSliceSegInferer(divisor=(8, 8, 2), head="lr", roi_size=(16, 16))(small, Recording())
    assert seen == [(16, 16, 6)]
    with pytest.raises(ValueError, match="multiples of"):
        ThickSliceSegInferer(divisor=(8, 8, 2), roi_size=(12, 16))
