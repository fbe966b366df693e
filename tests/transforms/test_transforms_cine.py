"""2D+T cine transforms: the layout check names the file and the fix, per-slice scaling, slicing, no-motion cine."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from common.transforms import CheckCined, CineSliced, RepeatFirstFramed, ScaleSlicesPercentiled
from monai.transforms import LoadImaged


def _write(path, shape, value=None):
    data = np.random.default_rng(0).random(shape).astype(np.float32) if value is None else np.full(shape, value)
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([1.5, 1.5, 8.0, 1.0])), str(path))
    return str(path)


def _load(path, key="cine"):
    return LoadImaged(key, ensure_channel_first=True, image_only=True)({key: path})


def test_check_cine_accepts_a_4d_stack_and_refuses_frames_3d_and_size(tmp_path):
    good = _write(tmp_path / "good.nii.gz", (16, 16, 2, 5))
    assert CheckCined("cine", n_frames=5, image_size=16)(_load(good))["cine"].shape == (5, 16, 16, 2)
    with pytest.raises(ValueError, match=r"good.nii.gz.*5 frames.*takes 7"):
        CheckCined("cine", n_frames=7)(_load(good))
    flat = _write(tmp_path / "flat.nii.gz", (16, 16, 5))
    with pytest.raises(ValueError, match=r"flat.nii.gz.*2D\+T cine is expected"):
        CheckCined("cine", n_frames=5)(_load(flat))
    with pytest.raises(ValueError, match=r"good.nii.gz.*16x16.*32x32"):
        CheckCined("cine", n_frames=5, image_size=32)(_load(good))


def test_check_cine_warns_naming_the_file_when_its_spacing_is_far_from_the_trained_one(tmp_path, caplog):
    good = _write(tmp_path / "good.nii.gz", (16, 16, 2, 5))  # 1.5 mm pixels
    with caplog.at_level("WARNING", logger="common.transforms.cine"):
        CheckCined("cine", n_frames=5, pixel_spacing=1.33)(_load(good))  # 13 % off: within 25 %
        CheckCined("cine", n_frames=5)(_load(good))  # not checked
        assert not caplog.records
        CheckCined("cine", n_frames=5, pixel_spacing=1.0)(_load(good))  # 50 % off
    [record] = caplog.records
    message = record.getMessage()
    assert "good.nii.gz" in message and "[1.5, 1.5] mm" in message and "1.00 mm" in message and "50 %" in message
    with pytest.raises(ValueError, match="pixel_spacing"):
        CheckCined("cine", n_frames=5, pixel_spacing=0.0)


def test_scale_slices_maps_each_slice_to_minus_one_one_separately():
    x = torch.zeros(3, 8, 8, 2)
    x[..., 0] = torch.linspace(0, 10, 3 * 8 * 8).reshape(3, 8, 8)
    x[..., 1] = torch.linspace(100, 1000, 3 * 8 * 8).reshape(3, 8, 8)
    out = ScaleSlicesPercentiled("x", lower=0, upper=100)({"x": x})["x"]
    for k in range(2):
        assert float(out[..., k].min()) == pytest.approx(-1.0) and float(out[..., k].max()) == pytest.approx(1.0)
    assert torch.allclose(out[..., 0], out[..., 1], atol=1e-5)  # same shape of values, different scales
    clipped = ScaleSlicesPercentiled("x", lower=10, upper=90)({"x": x})["x"]
    assert float(clipped.min()) == -1.0 and float(clipped.max()) == 1.0 and (clipped == 1.0).sum() > 1


def test_cine_sliced_cuts_one_slice_and_checks_the_grids(tmp_path):
    cine = torch.arange(5 * 4 * 4 * 3, dtype=torch.float32).reshape(5, 4, 4, 3)
    label = torch.arange(4 * 4 * 3, dtype=torch.float32).reshape(1, 4, 4, 3)
    out = CineSliced(["cine", "label"])({"cine": cine, "label": label, "slice": 2})
    assert out["cine"].shape == (1, 5, 4, 4) and torch.equal(out["cine"][0], cine[..., 2])
    assert out["label"].shape == (1, 4, 4) and torch.equal(out["label"], label[..., 2])
    with pytest.raises(ValueError, match="outside the stack of 3"):
        CineSliced(["cine"])({"cine": cine, "slice": 3})
    with pytest.raises(ValueError, match="must share one grid"):
        CineSliced(["cine", "label"])({"cine": cine, "label": label[..., :2], "slice": 0})


def test_repeat_first_frame_removes_the_motion():
    cine = torch.rand(5, 4, 4, 2)
    out = RepeatFirstFramed("cine")({"cine": cine})["cine"]
    assert out.shape == cine.shape and all(torch.equal(out[t], cine[0]) for t in range(5))
