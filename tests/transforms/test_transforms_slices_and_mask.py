"""Orthogonal 2D slices of a volume (random or evenly spaced) and the head mask used for PSNR/SSIM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from common.transforms import HeadMaskd, OrthogonalSlicesd, head_extent, head_mask
from monai.data import MetaTensor
from scipy import ndimage


def _ball(shape=(20, 24, 28), centre=(10, 12, 14), radius=7.0) -> torch.Tensor:
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"))
    distance = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre)))
    return torch.as_tensor((distance <= radius).astype(np.float32))[None]


def test_head_extent_is_the_first_and_last_non_background_index():
    assert head_extent(_ball(), 0) == (3, 17)
    assert head_extent(_ball(), 2) == (7, 21)


def test_evenly_spaced_coronal_slices_lie_inside_the_head_and_keep_x_then_z():
    volume = _ball()
    samples = OrthogonalSlicesd(["hr", "lr"], num_samples=4, axes=(1,), random=False, central_fraction=0.5)(
        {"hr": volume, "lr": 2 * volume}
    )
    indices = [s["slice_index"] for s in samples]
    assert indices == sorted(indices) and len(set(indices)) == 4
    assert all(12 - 4 <= i <= 12 + 4 for i in indices)  # extent 5..19, central half 8.5..15.5
    for s in samples:
        assert s["hr"].shape == (1, 20, 28) and s["slice_axis"] == 1
        torch.testing.assert_close(s["lr"], 2 * s["hr"])  # the same slice of every key
        torch.testing.assert_close(s["hr"], volume[:, :, s["slice_index"], :])


def test_random_slices_cover_all_three_planes_and_are_seeded():
    volume = MetaTensor(_ball())
    transform = OrthogonalSlicesd("image", num_samples=30, axes=(0, 1, 2), random=True)
    transform.set_random_state(3)
    first = transform({"image": volume})
    assert {s["slice_axis"] for s in first} == {0, 1, 2}
    assert {tuple(s["image"].shape) for s in first} == {(1, 24, 28), (1, 20, 28), (1, 20, 24)}

    def drawn(samples):
        return [(s["slice_axis"], s["slice_index"]) for s in samples]

    following = transform({"image": volume})  # the next call draws new slices (another epoch)
    transform.set_random_state(3)
    assert drawn(transform({"image": volume})) == drawn(first)
    transform.set_random_state(4)
    assert drawn(transform({"image": volume})) != drawn(first) and drawn(following) != drawn(first)


def test_slices_refuse_a_2d_input_naming_the_file():
    image = MetaTensor(torch.rand(1, 8, 8), meta={"filename_or_obj": "flat.nii.gz"})
    with pytest.raises(ValueError, match="flat.nii.gz"):
        OrthogonalSlicesd("image")({"image": image})


def test_head_mask_ignores_background_noise_and_fills_dark_csf():
    rng = np.random.default_rng(0)
    head = _ball()[0].numpy() * 100.0
    head[8:12, 10:14, 12:16] = 2.0  # dark ventricle inside the head
    noisy = np.abs(head + rng.normal(0, 3.0, head.shape))
    mask = head_mask(noisy)
    truth = _ball()[0].numpy() > 0
    # the sigma-1 smoothing may widen the head by up to 2 voxels, never cut into it
    assert mask[truth].all()
    assert not mask[~ndimage.binary_dilation(truth, iterations=2)].any()
    assert mask[8:12, 10:14, 12:16].all()
    assert not mask[0, 0, 0]
    out = HeadMaskd("image", output_key="mask")({"image": torch.as_tensor(noisy)[None]})
    assert out["mask"].shape == (1, 20, 24, 28) and out["mask"].dtype == torch.float32
