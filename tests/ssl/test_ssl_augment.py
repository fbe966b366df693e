"""Tests of common/ssl/augment.py: U-SSL two-view rotation + masking."""

from __future__ import annotations

import pytest
import torch
from common.ssl import TwoViewAugment

KEYS = {f"{name}_{v}" for name in ("rotation", "rotated", "masked", "mask") for v in (1, 2)}


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    "kwargs, input_shape",
    [({}, (3, 1, 32, 32)), ({"mask_patch_size": 8}, (2, 2, 64, 64)), ({"num_rotations": 1}, (2, 1, 16, 32))],
)
def test_keys_shapes_and_dtypes(kwargs, input_shape):
    out = TwoViewAugment(**kwargs)(torch.rand(input_shape), generator=_seeded(0))
    b, c, h, w = input_shape
    assert set(out) == KEYS
    for v in (1, 2):
        assert out[f"rotation_{v}"].shape == (b,) and out[f"rotation_{v}"].dtype == torch.int64
        assert out[f"rotated_{v}"].shape == (b, c, h, w)
        assert out[f"masked_{v}"].shape == (b, c, h, w)
        assert out[f"mask_{v}"].shape == (b, 1, h, w)


def test_mask_ratio_is_exact_and_patchwise():
    out = TwoViewAugment(mask_ratio=0.45, mask_patch_size=4)(torch.rand(4, 1, 32, 32), generator=_seeded(1))
    expected = round(0.45 * 64) / 64  # 29 of 64 patches
    for v in (1, 2):
        mask = out[f"mask_{v}"]
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        torch.testing.assert_close(mask.mean(dim=(1, 2, 3)), torch.full((4,), expected))
        patches = mask.unfold(2, 4, 4).unfold(3, 4, 4)  # (B, 1, 8, 8, 4, 4)
        assert torch.equal(patches.amax(dim=(-2, -1)), patches.amin(dim=(-2, -1)))  # constant per 4x4 patch


def test_masked_is_rotated_times_unmasked():
    images = torch.rand(2, 2, 16, 16) + 0.1  # no zero pixels
    out = TwoViewAugment(mask_patch_size=2)(images, generator=_seeded(2))
    for v in (1, 2):
        torch.testing.assert_close(out[f"masked_{v}"], out[f"rotated_{v}"] * (1 - out[f"mask_{v}"]))
        assert torch.equal(out[f"masked_{v}"] == 0, out[f"mask_{v}"].expand(-1, 2, -1, -1).bool())


def test_rotation_is_k_times_90_degrees_per_sample():
    images = torch.arange(2 * 16, dtype=torch.float32).view(2, 1, 4, 4)
    augment = TwoViewAugment(mask_ratio=0.0)
    params = augment.get_params(2, 4, 4, generator=_seeded(0))
    params["rotation_1"] = torch.tensor([1, 3])
    params["rotation_2"] = torch.tensor([2, 0])
    out = augment.apply(images, params)
    torch.testing.assert_close(out["rotated_1"][0], torch.rot90(images[0], 1, dims=(-2, -1)))
    torch.testing.assert_close(out["rotated_1"][1], torch.rot90(images[1], 3, dims=(-2, -1)))
    torch.testing.assert_close(out["rotated_2"][0], images[0].flip(-1).flip(-2))
    torch.testing.assert_close(out["rotated_2"][1], images[1])
    assert out["rotated_1"][0, 0, 0, 0] == images[0, 0, 0, 3]  # counter-clockwise: top-left <- top-right
    torch.testing.assert_close(out["masked_1"], out["rotated_1"])  # mask_ratio 0: nothing masked


def test_draws_are_independent_per_sample_and_view():
    out = TwoViewAugment()(torch.rand(64, 1, 8, 8), generator=_seeded(3))
    assert set(out["rotation_1"].tolist()) == {0, 1, 2, 3}
    assert not torch.equal(out["rotation_1"], out["rotation_2"])
    assert not torch.equal(out["mask_1"], out["mask_2"])
    assert not torch.equal(out["mask_1"][0], out["mask_1"][1])


def test_seeded_determinism():
    images = torch.rand(4, 1, 16, 16)
    augment = TwoViewAugment()
    a, b, c = (augment(images, generator=_seeded(s)) for s in (5, 5, 6))
    assert all(torch.equal(a[k], b[k]) for k in KEYS)
    assert not all(torch.equal(a[k], c[k]) for k in KEYS)
    torch.manual_seed(9)
    d = augment(images)
    torch.manual_seed(9)
    e = augment(images)
    assert all(torch.equal(d[k], e[k]) for k in KEYS)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mask_ratio": 1.0}, "mask_ratio"),
        ({"mask_ratio": -0.1}, "mask_ratio"),
        ({"mask_patch_size": 0}, "mask_patch_size"),
        ({"num_rotations": 5}, "num_rotations"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TwoViewAugment(**kwargs)


@pytest.mark.parametrize(
    "shape, match",
    [((1, 1, 16, 32), "square"), ((1, 1, 18, 18), "mask_patch_size"), ((1, 16, 16), r"\(B, C, H, W\)")],
)
def test_bad_images_raise(shape, match):
    with pytest.raises(ValueError, match=match):
        TwoViewAugment()(torch.rand(shape))
