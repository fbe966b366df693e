"""``common.class_maps.class_index``: the same indices as ``torch.argmax``, ties included."""

from __future__ import annotations

import torch
from common.class_maps import class_index


def test_class_index_equals_argmax_on_every_axis_and_layout():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(2, 4, 6, 5, 3, generator=generator)
    for dim in range(scores.ndim):
        for keepdim in (True, False):
            expected = scores.argmax(dim, keepdim=keepdim)
            assert torch.equal(class_index(scores, dim, keepdim), expected)
    channels_last = scores.contiguous(memory_format=torch.channels_last_3d)
    assert torch.equal(class_index(channels_last), scores.argmax(1, keepdim=True))
    assert class_index(scores).shape == (2, 1, 6, 5, 3) and class_index(scores).dtype == torch.int64


def test_ties_give_the_first_maximal_class_as_argmax():
    scores = torch.tensor([[[1.0], [3.0], [3.0], [0.0]], [[2.0], [2.0], [2.0], [2.0]]])  # (B=2, C=4, 1)
    assert class_index(scores).flatten().tolist() == [1, 0]
    assert torch.equal(class_index(scores), scores.argmax(1, keepdim=True))
