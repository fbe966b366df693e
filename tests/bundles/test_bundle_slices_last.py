"""The 2D-slice bundles' folder inference sets aside a stack whose slices lie on its first or second axis (a stack
reoriented to RAS may store them first): the network would run on planes across the slices and write a resampled
stack without an error. The file is named with how to move its slice axis last; a stack (X, Y, slices) runs."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.bundle import ConfigParser

BUNDLES_DIR = Path(__file__).resolve().parents[2] / "bundles"


@pytest.mark.parametrize(
    "bundle", ["lge_mi_sr_segmentation", "dti_lge_style_transfer", "lge_cardiac_segmentation_munit"]
)
def test_folder_inference_sets_aside_a_stack_with_its_slices_first(bundle, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    stack = np.random.default_rng(0).random((24, 20, 3)).astype(np.float32)
    nib.save(nib.Nifti1Image(stack, np.diag([2.5, 2.5, 8.0, 1.0])), folder / "a_sax.nii.gz")
    first = np.ascontiguousarray(np.moveaxis(stack, 2, 0))
    nib.save(nib.Nifti1Image(first, np.diag([8.0, 2.5, 2.5, 1.0])), folder / "b_slices_first.nii.gz")
    parser = ConfigParser()
    parser.read_config(str(BUNDLES_DIR / bundle / "configs" / "inference.json"))
    parser.update({"bundle_root": str(BUNDLES_DIR / bundle), "dataset_dir": str(folder),
                   "output_dir": str(tmp_path / "out"), "file_pattern": "*.nii.gz"})  # fmt: skip
    inputs = parser.get_parsed_content("inputs")
    assert [Path(item["image"]).name for item in inputs.datalist()] == ["a_sax.nii.gz"]
    [(path, reason)] = inputs.unreadable
    assert Path(path).name == "b_slices_first.nii.gz"
    assert "slices lie along axis 0" in reason and "third axis (X, Y, slices)" in reason, reason
