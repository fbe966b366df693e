"""Self-SR pairs (REHRSeg/SMORE), thick slices of thin-grid volumes, and the in-plane crop shared by two grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from common.data.degradation import acquire_thick_slices, thick_slice_affine
from common.transforms import AcquireThickSlicesd, CheckThickSlicesd, RandInPlaneCropd, SelfSRPatchesd, gap_start
from monai.data import MetaTensor


def test_gap_start_tiles_the_thin_grid():
    for scale in (2, 3, 4, 5):
        rows = [gap_start(scale, gap) + m for gap in range(-1, 6) for m in range(scale)]
        assert rows == list(range(rows[0], rows[0] + len(rows)))  # consecutive, no overlap, no hole
        centre_1, centre_2 = scale + (scale - 1) / 2, 2 * scale + (scale - 1) / 2
        assert centre_1 <= gap_start(scale, 1) < centre_1 + 1 and gap_start(scale, 1) + scale - 1 < centre_2
    assert gap_start(4, 1) == 6 and gap_start(3, 1) == 4


def _ramp_volume(shape=(40, 40, 40)):
    x, y, z = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    image = (0.5 * x + 0.25 * y + 0.125 * z)[None]
    label = ((x - 20) ** 2 + (y - 20) ** 2 + (z - 20) ** 2 < 64).astype(np.float32)[None]
    return torch.as_tensor(image), torch.as_tensor(label)


def test_self_sr_pairs_are_simulated_thick_slices_and_the_middle_gap_rows():
    image, label = _ramp_volume()
    transform = SelfSRPatchesd(scale=4, axis=2, patch_size=12, num_samples=6, foreground_prob=0.0)
    transform.set_random_state(0)
    samples = transform({"image": image, "label": label})
    assert len(samples) == 6
    for sample in samples:
        lr, hr = sample["lr"], sample["hr"]
        assert lr.shape == (2, 4, 12, 12) and hr.shape == (2, 4, 12, 12)
        assert set(torch.unique(lr[1]).tolist()) <= {0.0, 1.0} and set(torch.unique(hr[1]).tolist()) <= {0.0, 1.0}
        # on a linear ramp the blur is exact: thick slice k is the value at thin row k*4 + 1.5, and the target rows
        # 6..9 lie between thick slices 1 (row 5.5) and 2 (row 9.5), one row step apart
        step = (lr[0, 2] - lr[0, 1]) / 4
        assert torch.all(step.abs() > 0.1)
        for m in range(4):
            torch.testing.assert_close(hr[0, m], lr[0, 1] + (6 + m - 5.5) * step, atol=1e-3, rtol=0)


def test_foreground_patches_contain_the_label():
    image, label = _ramp_volume()
    transform = SelfSRPatchesd(scale=4, axis=2, patch_size=12, num_samples=8, foreground_prob=1.0)
    transform.set_random_state(1)
    assert all(
        sample["hr"][1].sum() > 0 or sample["lr"][1].sum() > 0 for sample in transform({"image": image, "label": label})
    )


def test_self_sr_pairs_refuse_a_volume_too_small_in_plane():
    image, label = torch.zeros(1, 12, 40, 40), torch.zeros(1, 12, 40, 40)
    with pytest.raises(ValueError, match="too small"):
        SelfSRPatchesd(scale=4, axis=2)({"image": image, "label": label})


def test_acquire_thick_slices_d_matches_the_function_and_sets_the_affine():
    thin = np.random.default_rng(0).random((1, 6, 5, 16)).astype(np.float32)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    out = AcquireThickSlicesd("image", factor=4, axis=2)({"image": MetaTensor(torch.as_tensor(thin), affine=affine)})
    np.testing.assert_allclose(out["image"].numpy(), acquire_thick_slices(thin, 3, 4), atol=1e-6)
    np.testing.assert_allclose(out["image"].affine.numpy(), thick_slice_affine(affine, 2, 4))
    with pytest.raises(ValueError, match="multiple of 4"):
        AcquireThickSlicesd("image", factor=4)({"image": torch.zeros(1, 4, 4, 10)})


def test_acquire_thick_slices_d_takes_a_label_s_partial_volume_majority():
    """A label key gets the class with the largest slice-profile share, not the mean of the class values: a thin run
    of 3 foreground slices of 4 stays foreground, 1 of 4 becomes background, and classes 0/2 never average to 1."""
    binary = np.zeros((1, 2, 2, 8), dtype=np.float32)
    binary[..., 1:4] = 1  # thick slice 0: 3 of its 4 thin slices
    binary[..., 7] = 1  # thick slice 1: 1 of 4
    affine = np.eye(4)
    out = AcquireThickSlicesd("label", factor=4, label_keys="label")({"label": MetaTensor(torch.as_tensor(binary))})
    np.testing.assert_array_equal(out["label"].numpy()[0, 0, 0], [1.0, 0.0])
    shares = acquire_thick_slices(binary, 3, 4)[0, 0, 0]
    assert 0.5 < shares[0] < 1 and 0 < shares[1] < 0.5  # what the plain (image) path would have kept
    # the majority, not the thin slice at the centre: each thick slice's 2 centre thin slices disagree, the share says 1
    split = np.zeros((1, 1, 1, 8), dtype=np.float32)
    split[..., [0, 2, 3, 4, 5, 7]] = 1  # thin 1, 0, 1, 1 | 1, 1, 0, 1
    out = AcquireThickSlicesd("label", factor=4, label_keys="label")({"label": MetaTensor(torch.as_tensor(split))})
    np.testing.assert_array_equal(out["label"].numpy()[0, 0, 0], [1.0, 1.0])
    assert (acquire_thick_slices(split, 3, 4)[0, 0, 0] > 0.5).all()
    three = np.zeros((1, 1, 1, 4), dtype=np.float32)
    three[..., :2], three[..., 2:] = 0, 2  # half class 0, half class 2: the mean would be class 1
    thin = MetaTensor(torch.as_tensor(three), affine=affine)
    assert AcquireThickSlicesd("label", factor=4, label_keys=["label"])({"label": thin})["label"].item() in (0.0, 2.0)


def test_in_plane_crop_is_the_same_window_on_both_grids():
    lr = torch.arange(20 * 20 * 5, dtype=torch.float32).reshape(1, 20, 20, 5)
    hr = lr.repeat_interleave(4, dim=3)
    crop = RandInPlaneCropd(["lr", "hr"], roi_size=(8, 8), axis=2, foreground_key="lr", foreground_prob=0.5)
    crop.set_random_state(3)
    for _ in range(5):
        out = crop({"lr": lr, "hr": hr})
        assert out["lr"].shape == (1, 8, 8, 5) and out["hr"].shape == (1, 8, 8, 20)
        torch.testing.assert_close(out["hr"][..., ::4], out["lr"])
    small = crop({"lr": lr[:, :6], "hr": hr[:, :6]})
    assert small["lr"].shape == (1, 8, 8, 5) and small["hr"].shape == (1, 8, 8, 20)  # zero-padded
    assert small["lr"][:, 6:].abs().sum() == 0


def test_in_plane_crop_with_slice_multiple_cuts_both_grids_to_aligned_whole_multiples():
    """A stack of 11 thick slices for a network whose strides need a multiple of 2: 10 consecutive slices at a random
    start, and the HR grid's 40 thin slices under them; without slice_multiple nothing is cut through-plane."""
    lr = torch.arange(8 * 8 * 11, dtype=torch.float32).reshape(1, 8, 8, 11)
    hr = lr.repeat_interleave(4, dim=3)
    crop = RandInPlaneCropd(["lr", "hr"], roi_size=(8, 8), axis=2, slice_multiple=2)
    crop.set_random_state(0)
    starts = set()
    for _ in range(20):
        out = crop({"lr": lr, "hr": hr})
        assert out["lr"].shape == (1, 8, 8, 10) and out["hr"].shape == (1, 8, 8, 40)
        torch.testing.assert_close(out["hr"][..., ::4], out["lr"])
        start = int(out["lr"][0, 0, 0, 0])  # voxel (0, 0, 0, z) holds z
        starts.add(start)
        torch.testing.assert_close(out["lr"], lr[..., start : start + 10])
    assert starts == {0, 1}, "both windows of 10 slices are drawn"
    even = RandInPlaneCropd(["lr", "hr"], roi_size=(8, 8), axis=2, slice_multiple=2)(
        {"lr": lr[..., :10], "hr": hr[..., :40]}
    )
    assert torch.equal(even["lr"], lr[..., :10]), "a stack already a multiple is kept whole"
    for bad, match in (
        ({"lr": lr[..., :1], "hr": hr[..., :4]}, "1 slice"),
        ({"lr": lr, "hr": hr[..., :42]}, "not a multiple"),
    ):
        with pytest.raises(ValueError, match=match):
            crop(bad)
    with pytest.raises(ValueError, match="slice_multiple"):
        RandInPlaneCropd(["lr"], roi_size=(8, 8), slice_multiple=0)


def test_check_thick_slices_refuses_too_few_slices_naming_the_file():
    affine = np.diag([1.0, 1.0, 4.0, 1.0])
    image = MetaTensor(torch.zeros(1, 8, 8, 3), affine=affine, meta={"filename_or_obj": "/x/case_0000.nii.gz"})
    with pytest.raises(ValueError, match="case_0000.nii.gz.*3 slices"):
        CheckThickSlicesd("image", factor=4, axis=2, min_slices=4)({"image": image})
    CheckThickSlicesd("image", factor=4, axis=2, min_slices=3)({"image": image})
