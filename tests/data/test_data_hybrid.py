"""Heart-ROI slices for the U-SSL hybrid LGE set."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from common.data import acdc_cases, dti_lge_mi_cases, emidec_cases, mscmrseg_cases, roi_slices


def _labelled_slices(cases, key="label"):
    return sum(int((np.asanyarray(nib.load(c[key]).dataobj) > 0).any(axis=(0, 1)).sum()) for c in cases)


@pytest.mark.parametrize(
    "reader",
    [emidec_cases, acdc_cases, lambda root: mscmrseg_cases(root, "C0")],
    ids=["emidec", "acdc", "mscmrseg"],
)
def test_one_crop_per_labelled_slice(tiny_data, reader):
    cases = reader(tiny_data)
    slices = roi_slices(cases, size=32)
    assert len(slices) == _labelled_slices(cases) > 0
    for item in slices:
        assert item["image"].shape == (1, 32, 32) and item["image"].dtype == np.float32
        assert item["image"].min() >= 0.0 and item["image"].max() == pytest.approx(1.0)
        assert "#z=" in item["source"]


def test_crop_is_centred_on_the_heart(tmp_path):
    image = np.zeros((100, 100, 1), np.float32)
    label = np.zeros((100, 100, 1), np.uint8)
    image[60:70, 20:30] = 1.0  # bright "heart" off-centre
    label[60:70, 20:30] = 1
    affine = np.diag([1.0, 1.0, 8.0, 1.0])
    nib.save(nib.Nifti1Image(image, affine), str(tmp_path / "i.nii.gz"))
    nib.save(nib.Nifti1Image(label, affine), str(tmp_path / "l.nii.gz"))
    case = {"case": "x", "image": str(tmp_path / "i.nii.gz"), "label": str(tmp_path / "l.nii.gz")}
    crop = roi_slices([case], size=30, margin_mm=10.0)[0]["image"][0]
    # 10 mm heart + 2 x 10 mm margin = 30 pixels: the heart fills the middle third
    assert crop[10:20, 10:20].min() == pytest.approx(1.0)
    assert crop[:9].max() == 0 and crop[21:].max() == 0


def test_whole_slices_without_labels_and_max_slices(tiny_data):
    cases = dti_lge_mi_cases(tiny_data)
    slices = roi_slices(cases, image_key="lge", label_key=None, size=64)
    assert len(slices) == len(cases) and slices[0]["image"].shape == (1, 64, 64)
    emidec = emidec_cases(tiny_data)
    limited = roi_slices(emidec, size=16, max_slices_per_case=1)
    assert len(limited) == len(emidec)


def test_bad_arguments_and_mismatched_files_raise(tiny_data):
    cases = emidec_cases(tiny_data)
    with pytest.raises(ValueError, match="size"):
        roi_slices(cases, size=0)
    with pytest.raises(ValueError, match="margin_mm"):
        roi_slices(cases, margin_mm=-1)
    with pytest.raises(KeyError, match="lge"):
        roi_slices(cases, image_key="lge")
    mixed = [{"case": "m", "image": cases[0]["image"], "label": dti_lge_mi_cases(tiny_data)[0]["mask"]}]
    with pytest.raises(ValueError, match="LGE_MI.nii.gz"):
        roi_slices(mixed)
