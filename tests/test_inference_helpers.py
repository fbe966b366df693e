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
