"""common.data.UnpairedDataset: two unpaired domains with a new partner at every read."""

from __future__ import annotations

import pytest
import torch
from common.data import UnpairedDataset


def _domain(key: str, n: int) -> list[dict[str, int]]:
    return [{key: i} for i in range(n)]


def test_the_larger_domain_is_read_in_order_and_the_smaller_drawn_at_random():
    dataset = UnpairedDataset(_domain("a", 5), _domain("b", 3))
    assert len(dataset) == 5
    torch.manual_seed(0)
    items = [dataset[i] for _ in range(20) for i in range(5)]
    assert [item["a"] for item in items[:5]] == [0, 1, 2, 3, 4]
    assert {item["b"] for item in items} == {0, 1, 2}
    # the partner of one item changes between reads (fixed pairs would give one partner each)
    assert all(len({item["b"] for item in items[i::5]}) > 1 for i in range(5))
    flipped = UnpairedDataset(_domain("a", 2), _domain("b", 6))
    assert len(flipped) == 6 and [flipped[i]["b"] for i in range(6)] == list(range(6))


def test_draws_follow_torchs_seed_and_the_transform_sees_both_domains():
    dataset = UnpairedDataset(_domain("a", 4), _domain("b", 4), transform=lambda d: (d["a"], d["b"]))
    torch.manual_seed(1)
    first = [dataset[i] for i in range(4)]
    torch.manual_seed(1)
    assert [dataset[i] for i in range(4)] == first and [a for a, _ in first] == [0, 1, 2, 3]


def test_empty_domains_and_shared_keys_are_refused():
    with pytest.raises(ValueError, match="domain 'b' is empty"):
        UnpairedDataset(_domain("a", 2), [])
    with pytest.raises(ValueError, match=r"both domains have the keys \['x'\]"):
        UnpairedDataset([{"x": 0}], [{"x": 1}])[0]
