"""The cine slice inferer runs every slice of a stack, several per forward pass, and keeps the stack's metadata."""

from __future__ import annotations

import pytest
import torch
from common.inferers import CineSliceInferer
from monai.data import MetaTensor


class _FrameMean(torch.nn.Module):
    """(N, 1, T, X, Y) -> (N, 2, X, Y): the frame mean and the first frame, counting its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = []

    def forward(self, x):
        self.calls.append(x.shape[0])
        return torch.cat([x.mean(2), x[:, :, 0]], 1)


def test_every_slice_once_in_batches_and_equal_to_a_slice_loop():
    torch.manual_seed(0)
    stack = torch.rand(2, 5, 8, 8, 7)  # (B, T, X, Y, S)
    net = _FrameMean()
    out = CineSliceInferer(slices_per_batch=4)(stack, net)
    assert out.shape == (2, 2, 8, 8, 7)
    assert net.calls == [4, 4, 4, 2]
    for b in range(2):
        for s in range(7):
            expected = torch.stack([stack[b, :, :, :, s].mean(0), stack[b, 0, :, :, s]])
            assert torch.allclose(out[b, :, :, :, s], expected)


def test_metadata_kept_and_bad_rank_refused():
    affine = torch.diag(torch.tensor([1.3, 1.3, 8.0, 1.0], dtype=torch.float64))
    stack = MetaTensor(torch.rand(1, 3, 4, 4, 2), affine=affine)
    out = CineSliceInferer()(stack, _FrameMean())
    assert isinstance(out, MetaTensor) and torch.equal(out.affine, stack.affine)
    with pytest.raises(ValueError, match=r"\(B, T, X, Y, S\)"):
        CineSliceInferer()(torch.rand(1, 3, 4, 4), _FrameMean())
    with pytest.raises(ValueError, match="slices_per_batch"):
        CineSliceInferer(0)
