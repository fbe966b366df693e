"""Input validation: errors name the file or folder and the fix."""

from __future__ import annotations

import re

import nibabel as nib
import numpy as np
import pytest
from common.data import (
    DatasetError,
    check_disjoint,
    check_files_exist,
    check_nifti,
    check_pairs,
    file_slice_axis,
    list_nifti,
    partition_readable,
    slice_axis_of,
)


def _save(path, data):
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4)), str(path))
    return str(path)


def test_check_nifti_returns_shape(tmp_path):
    path = _save(tmp_path / "ok.nii.gz", np.zeros((4, 5, 2), np.float32))
    assert check_nifti(path) == (4, 5, 2)
    assert check_nifti(path, ndim=3) == (4, 5, 2)
    assert check_nifti(path, ndim=(3, 4)) == (4, 5, 2)


def test_check_nifti_corrupt_file(tmp_path):
    path = tmp_path / "x.nii.gz"
    path.write_bytes(b"this is not a nifti file at all" * 10)
    with pytest.raises(ValueError, match="corrupt or not a NIfTI") as error:
        check_nifti(path)
    assert str(path) in str(error.value) and "re-export" in str(error.value)


def test_check_nifti_truncated_gzip(tmp_path):
    good = _save(tmp_path / "good.nii.gz", np.random.default_rng(0).random((16, 16, 8)).astype(np.float32))
    data = open(good, "rb").read()
    bad = tmp_path / "truncated.nii.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.nii.gz"):
        check_nifti(bad)


def test_check_nifti_wrong_ndim(tmp_path):
    path = _save(tmp_path / "four.nii.gz", np.zeros((4, 4, 3, 2), np.float32))
    with pytest.raises(ValueError, match=r"four\.nii\.gz has 4 dimensions.*split 4D series"):
        check_nifti(path, ndim=3)
    singleton = _save(tmp_path / "singleton.nii.gz", np.zeros((4, 4, 3, 1), np.float32))
    with pytest.raises(ValueError, match=r"singleton\.nii\.gz has 4 dimensions.*squeeze"):
        check_nifti(singleton, ndim=3)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_check_nifti_nan_and_inf(tmp_path, value):
    data = np.zeros((4, 4, 2), np.float32)
    data[1, 2, 0] = value
    path = _save(tmp_path / "nan.nii.gz", data)
    with pytest.raises(ValueError, match=r"nan\.nii\.gz holds 1 NaN/Inf"):
        check_nifti(path)
    assert check_nifti(path, allow_nan=True) == (4, 4, 2)


def test_check_nifti_with_min_slices_refuses_a_2d_file_and_a_one_slice_stack(tmp_path):
    stack = _save(tmp_path / "stack.nii.gz", np.zeros((4, 4, 2), np.float32))
    assert check_nifti(stack, min_slices=2) == (4, 4, 2)
    for name, shape in (("flat.nii.gz", (4, 4)), ("one.nii.gz", (4, 4, 1))):
        path = _save(tmp_path / name, np.zeros(shape, np.float32))
        assert check_nifti(path) == shape
        with pytest.raises(ValueError, match=re.escape(f"{name}: 1 slice (shape {shape}), ") + ".*at least 2 slices"):
            check_nifti(path, min_slices=2)
    good, bad = partition_readable([stack, tmp_path / "flat.nii.gz"], min_slices=2)
    assert good == [stack] and [path for path, _ in bad] == [str(tmp_path / "flat.nii.gz")]


def _stack(path, shape, spacing):
    nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), np.diag([*spacing, 1.0])), path)
    return path


def test_slice_axis_of_finds_the_slices_of_a_stack_stored_with_them_first_or_second(tmp_path):
    # a short-axis stack (X, Y, slices) at 2.5 x 2.5 x 8 mm, and the same stack with its slices first or second
    for shape, spacing, axis in (((12, 10, 3), (2.5, 2.5, 8), 2), ((3, 12, 10), (8, 2.5, 2.5), 0),
                                 ((12, 3, 10), (2.5, 8, 2.5), 1)):  # fmt: skip
        assert slice_axis_of(shape, np.diag([*spacing, 1.0])) == axis
    # a one-slice stack is a slice, with rectangular pixels too, whatever its third pixdim (converters often write 1)
    assert slice_axis_of((12, 10, 1), np.diag([1.25, 2.6, 1.0, 1.0])) == 2
    assert slice_axis_of((12, 10), np.diag([1.25, 2.6, 1.0, 1.0])) == 2
    # a nearly isotropic volume, and an in-plane axis less than 2x coarser, have no other slice axis to find
    assert slice_axis_of((8, 8, 8), np.diag([1.0, 1.2, 1.0, 1.0])) == 2
    assert slice_axis_of((8, 8, 8), np.diag([3.0, 1.6, 1.0, 1.0])) == 2
    # the spacing is read from the affine's columns, not the pixdims: a rotated stack with its slices first
    rotated = np.diag([8.0, 2.5, 2.5, 1.0])
    rotated[:3, :3] = rotated[:3, :3][[2, 0, 1]]
    assert slice_axis_of((3, 12, 10), rotated) == 0


def test_file_slice_axis_reads_the_header(tmp_path):
    assert file_slice_axis(_stack(tmp_path / "first.nii.gz", (3, 12, 10), (8, 2.5, 2.5))) == 0
    assert file_slice_axis(_stack(tmp_path / "last.nii.gz", (12, 10, 3), (2.5, 2.5, 8))) == 2
    (tmp_path / "bad.nii.gz").write_bytes(b"not a NIfTI")
    with pytest.raises(ValueError, match="bad.nii.gz"):
        file_slice_axis(tmp_path / "bad.nii.gz")


def test_check_nifti_counts_the_slices_of_a_stack_along_its_slice_axis(tmp_path):
    path = _stack(tmp_path / "one_slice_first.nii.gz", (1, 12, 10), (8, 2.5, 2.5))
    with pytest.raises(ValueError, match=re.escape("one_slice_first.nii.gz: 1 slice (shape (1, 12, 10))")):
        check_nifti(path, min_slices=2)
    assert check_nifti(_stack(tmp_path / "first.nii.gz", (3, 12, 10), (8, 2.5, 2.5)), min_slices=3) == (3, 12, 10)
    with pytest.raises(ValueError, match="3 slice"):
        check_nifti(tmp_path / "first.nii.gz", min_slices=4)


def test_check_nifti_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.nii.gz"):
        check_nifti(tmp_path / "absent.nii.gz")


def test_check_pairs(tmp_path):
    image = _save(tmp_path / "dti.nii.gz", np.zeros((8, 8, 1), np.float32))
    good = _save(tmp_path / "mask.nii.gz", np.zeros((64, 64, 1), np.uint8))
    bad = _save(tmp_path / "bad.nii.gz", np.zeros((60, 64, 1), np.uint8))
    shapes = check_pairs([{"case": "a", "image": image, "label": good}], "image", "label", scale=8)
    assert shapes == [((8, 8, 1), (64, 64, 1))]
    with pytest.raises(ValueError) as error:
        check_pairs([{"case": "a", "image": image, "label": bad}], "image", "label", scale=8)
    assert "bad.nii.gz" in str(error.value) and "dti.nii.gz" in str(error.value)
    with pytest.raises(ValueError, match="mask.nii.gz"):
        check_pairs([{"image": image, "label": good}], "image", "label", scale=1)
    with pytest.raises(KeyError, match="label"):
        check_pairs([{"case": "a", "image": image}], "image", "label")
    with pytest.raises(ValueError, match="scale"):
        check_pairs([], "image", "label", scale=0)


def test_check_pairs_of_a_multi_channel_image_compares_the_spatial_axes(tmp_path):
    """A DTI file ``(X, Y, 1, channels)`` against a ``(8X, 8Y, 1)`` mask: ``spatial_dims=3`` leaves the channels out."""
    image = _save(tmp_path / "dti.nii.gz", np.zeros((8, 8, 1, 3), np.float32))
    mask = _save(tmp_path / "mask.nii.gz", np.zeros((64, 64, 1), np.uint8))
    case = {"case": "a", "image": image, "label": mask}
    assert check_pairs([case], "image", "label", scale=8, spatial_dims=3) == [((8, 8, 1, 3), (64, 64, 1))]
    with pytest.raises(ValueError, match="dti.nii.gz"):
        check_pairs([case], "image", "label", scale=8)  # every axis compared: the channel axis has no partner
    bad = _save(tmp_path / "bad.nii.gz", np.zeros((64, 64, 2), np.uint8))
    with pytest.raises(ValueError, match="first 3 axes"):
        check_pairs([{**case, "label": bad}], "image", "label", scale=8, spatial_dims=3)


def test_check_disjoint_names_the_groups_and_the_shared_cases():
    train = [{"case": "Case_001"}, {"case": "Case_002"}, {"case": "Case_003"}]
    check_disjoint({"train_datalist": train, "val + test (held out)": [{"case": "Case_004"}, "Case_005"]})
    with pytest.raises(ValueError) as error:
        check_disjoint({"train_datalist": train, "val_datalist": ["Case_004"], "test (held out)": ["Case_003"]})
    message = str(error.value)
    assert "train_datalist and test (held out) share 1 case(s): Case_003" in message
    assert "val_datalist" not in message  # only the pairs that clash
    with pytest.raises(KeyError, match="judge"):
        check_disjoint({"judge": [{"image": "a.nii.gz"}], "test": []})


def test_check_files_exist(tmp_path):
    present = _save(tmp_path / "a.nii.gz", np.zeros((2, 2, 2), np.float32))
    check_files_exist([{"case": "1", "image": present, "frame": "ed"}])
    with pytest.raises(FileNotFoundError) as error:
        check_files_exist([{"case": "1", "image": present, "label": str(tmp_path / "gone.nii.gz")}])
    assert "gone.nii.gz" in str(error.value) and "'label'" in str(error.value)


def test_partition_readable_goes_on_past_bad_files(tmp_path):
    good = _save(tmp_path / "good.nii.gz", np.zeros((3, 3, 3), np.float32))
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"\x00garbage")
    nan = np.zeros((3, 3, 3), np.float32)
    nan[0, 0, 0] = np.nan
    with_nan = _save(tmp_path / "nan.nii.gz", nan)
    ok, bad = partition_readable([corrupt, good, with_nan, tmp_path / "missing.nii.gz"])
    assert ok == [good]
    assert [p for p, _ in bad] == [str(corrupt), with_nan, str(tmp_path / "missing.nii.gz")]
    assert "corrupt or not a NIfTI" in bad[0][1] and "NaN" in bad[1][1]


def test_list_nifti(tmp_path):
    with pytest.raises(DatasetError, match="missing_folder"):
        list_nifti(tmp_path / "missing_folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty"):
        list_nifti(tmp_path / "empty")
    b = _save(tmp_path / "empty" / "b.nii.gz", np.zeros((2, 2, 2), np.float32))
    a = _save(tmp_path / "empty" / "a.nii.gz", np.zeros((2, 2, 2), np.float32))
    (tmp_path / "empty" / "notes.txt").write_text("x")
    assert list_nifti(tmp_path / "empty") == [a, b]
