"""Two unpaired domains read as one dataset whose partners change every time an item is read."""

from __future__ import annotations

__all__ = ["UnpairedDataset"]

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from monai.transforms import apply_transform


class UnpairedDataset(torch.utils.data.Dataset):
    """Items of domain ``a`` joined with items of domain ``b``; the smaller domain's partner is drawn anew at random
    each time an item is read.

    An unpaired translator (MUNIT, CycleGAN) must not see the same two volumes together in every epoch: the
    reference implementations draw each domain from its own shuffled loader, so the pairs change from one epoch to
    the next. Here one epoch visits every item of the larger domain once (the sampler shuffles it, and a
    ``DistributedSampler`` splits it over ranks); the other domain's partner is drawn uniformly with ``torch``'s
    random generator, which the data loader seeds per epoch and per worker (deterministic under
    ``monai.utils.set_determinism`` and ``common.handlers.SeedEachEpoch``). Each domain keeps its own dataset, so a
    ``CacheDataset`` caches each volume once.

    Args:
        a: dataset of domain ``a`` (items are dicts).
        b: dataset of domain ``b`` (items are dicts); its keys must differ from ``a``'s.
        transform: applied to the joined dict (e.g. the slice sampling and augmentation that follow the cache).

    Raises:
        ValueError: a domain is empty.

    Examples::

        {"_target_": "common.data.UnpairedDataset",
         "a": {"_target_": "CacheDataset", "data": "@bssfp_datalist", "transform": "@bssfp_transforms"},
         "b": {"_target_": "CacheDataset", "data": "@lge_datalist", "transform": "@lge_transforms"},
         "transform": {"_target_": "Compose", "transforms": "@slice_transforms"}}
    """

    def __init__(
        self,
        a: Sequence[Mapping[str, Any]],
        b: Sequence[Mapping[str, Any]],
        transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        for name, domain in (("a", a), ("b", b)):
            if len(domain) == 0:
                raise ValueError(f"UnpairedDataset: domain {name!r} is empty; both domains need at least one item.")
        self.a, self.b, self.transform = a, b, transform

    def __len__(self) -> int:
        return max(len(self.a), len(self.b))

    def partners(self, index: int) -> tuple[int, int]:
        """The ``(a, b)`` item indices read for ``index``: the larger domain's item ``index``, a random other one."""
        if len(self.a) >= len(self.b):
            return index, int(torch.randint(len(self.b), ()))
        return int(torch.randint(len(self.a), ())), index

    def __getitem__(self, index: int) -> Any:
        i, j = self.partners(int(index))
        item_a, item_b = self.a[i], self.b[j]
        shared = set(item_a) & set(item_b)
        if shared:
            raise ValueError(f"UnpairedDataset: both domains have the keys {sorted(shared)}; give each its own keys.")
        joined = {**item_a, **item_b}
        return joined if self.transform is None else apply_transform(self.transform, joined)
