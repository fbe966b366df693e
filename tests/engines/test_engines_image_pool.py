from __future__ import annotations

import pytest
import torch
from common.engines import ImagePool


def _batch(values, size=2):
    return torch.stack([torch.full((1, size, size), float(v)) for v in values])


def _ids(batch):
    return [int(b[0, 0, 0].item()) for b in batch]


def test_passthrough_when_pool_size_zero():
    pool = ImagePool(0)
    x = torch.randn(3, 1, 4, 4, requires_grad=True)
    out = pool(x)
    assert torch.equal(out, x) and not out.requires_grad and len(pool) == 0


def test_fills_then_returns_incoming_until_full():
    pool = ImagePool(4)
    assert _ids(pool(_batch([0, 1]))) == [0, 1]
    assert _ids(pool(_batch([2, 3]))) == [2, 3]
    assert len(pool) == 4


def test_full_pool_swaps_with_probability_half_and_keeps_size():
    torch.manual_seed(0)
    pool = ImagePool(5)
    pool(_batch(range(5)))
    n, returned_stored = 2000, 0
    for i in range(n):
        out = _ids(pool(_batch([100 + i])))
        assert len(out) == 1
        returned_stored += out[0] != 100 + i
        assert len(pool) == 5
    assert 0.45 < returned_stored / n < 0.55
    # a returned stored image was replaced by the incoming one: every id in the pool is unique
    assert len(set(_ids(torch.cat(pool.images)))) == 5


def test_output_shape_and_detached():
    pool = ImagePool(3)
    x = torch.randn(5, 2, 8, 8, requires_grad=True)
    for _ in range(3):
        out = pool(x)
        assert out.shape == x.shape and not out.requires_grad


def test_seeded_generator_is_deterministic():
    def run(seed):
        pool = ImagePool(3, generator=torch.Generator().manual_seed(seed))
        return [_ids(pool(_batch([i, i + 50]))) for i in range(20)]

    assert run(1) == run(1)
    assert run(1) != run(2)


@pytest.mark.parametrize("bad", [-1, 2.5])
def test_bad_pool_size(bad):
    with pytest.raises(ValueError, match="pool_size"):
        ImagePool(bad)
