"""Folder-inference output planning never overwrites and reports unreadable inputs."""

from __future__ import annotations

import pytest
from common.inference import UnreadableInputError, output_path, plan_outputs, report_unreadable


def test_output_path_naming(tmp_path):
    assert output_path("/in/case_1.nii.gz", tmp_path, "mi_x8") == str(tmp_path / "case_1_mi_x8.nii.gz")


def test_plan_outputs_refuses_existing_output(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a_seg.nii.gz").write_bytes(b"old")
    data = [{"image": str(tmp_path / "a.nii.gz")}, {"image": str(tmp_path / "b.nii.gz")}]
    with pytest.raises(FileExistsError, match="a_seg.nii.gz"):
        plan_outputs(data, tmp_path / "out", "seg")
    assert plan_outputs(data, tmp_path / "out", "seg", overwrite=True) == data


def test_plan_outputs_never_overwrites_inputs(tmp_path):
    data = [{"image": str(tmp_path / "a.nii.gz")}, {"image": str(tmp_path / "a_seg.nii.gz")}]
    with pytest.raises(FileExistsError, match="overwrite an input"):
        plan_outputs(data, tmp_path, "seg", overwrite=True)


def test_report_unreadable():
    report_unreadable([])
    with pytest.raises(UnreadableInputError, match="bad.nii.gz"):
        report_unreadable([("/x/bad.nii.gz", "corrupt")])


def test_plan_outputs_refuses_two_inputs_with_one_output_name(tmp_path):
    data = [{"image": str(tmp_path / "a" / "DTI.nii.gz")}, {"image": str(tmp_path / "b" / "DTI.nii.gz")}]
    with pytest.raises(FileExistsError, match="both be written"):
        plan_outputs(data, tmp_path / "out", "seg")


def test_folder_inputs_touch_nothing_until_listed(tmp_path):
    import nibabel as nib
    import numpy as np
    from common.data import DatasetError
    from common.inference import FolderInputs

    inputs = FolderInputs(tmp_path / "missing", output_dir=tmp_path / "out", postfix="seg")
    assert not (tmp_path / "out").exists()
    with pytest.raises(DatasetError, match="missing"):
        inputs.datalist()
    folder = tmp_path / "in"
    folder.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 1), np.float32), np.eye(4)), str(folder / "a.nii.gz"))
    (folder / "b.nii.gz").write_bytes(b"not a nifti")
    inputs = FolderInputs(folder, output_dir=tmp_path / "out", postfix="seg")
    assert inputs.datalist() == [{"image": str((folder / "a.nii.gz").resolve())}]
    assert (tmp_path / "out").is_dir() and [p for p, _ in inputs.unreadable] == [str((folder / "b.nii.gz").resolve())]
    with pytest.raises(UnreadableInputError, match="b.nii.gz"):
        inputs.report_unreadable()


def test_deferred_dataset_has_no_length_until_opened():
    from common.inference import DeferredDataset

    calls = []
    dataset = DeferredDataset(lambda: calls.append(1) or [{"x": 1}, {"x": 2}], transform=None)
    assert not calls
    with pytest.raises(TypeError, match="open"):
        len(dataset)  # MONAI's engines then leave epoch_length unset instead of listing the data
    with pytest.raises(RuntimeError, match="open"):
        dataset[0]
    assert dataset.open() == 2 and dataset.open() == 2 and calls == [1]
    assert len(dataset) == 2 and dataset[1] == {"x": 2}
    with pytest.raises(TypeError, match="callable"):
        DeferredDataset([{"x": 1}])
