"""CardiacThick (REHRSeg's second default dataset): thick-slice short-axis LGE stacks with LR myocardium labels in the
nnU-Net raw layout, their HR truth apart, and the through-plane detail the thick slices lose."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from common.data import (
    DATASETS,
    DEFAULT_SIZES,
    SMALL_SIZES,
    acquire_thick_slices,
    hr_truth_cases,
    nnunet_cases,
    thin_slice_affine,
    write_cardiac_thick,
    write_default_data,
)

FACTOR = 4


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cardiac_thick") / "data"
    write_cardiac_thick(out, n_subjects=3, seed=0, small=True)
    return out


def _load(path: str) -> tuple[np.ndarray, np.ndarray]:
    image = nib.load(path)
    return np.asanyarray(image.dataobj), image.affine


def test_registered_after_the_earlier_datasets():
    assert DATASETS.index("CardiacThick") == 7  # appended: earlier datasets keep their subject seeds
    assert DEFAULT_SIZES["CardiacThick"] == 20 and SMALL_SIZES["CardiacThick"] == 4


def test_layout_dataset_json_and_readers(written):
    info = json.loads((written / "CardiacThick" / "dataset.json").read_text())
    assert info["labels"] == {"background": 0, "myocardium": 1} and info["channel_names"] == {"0": "LGE"}
    assert info["numTraining"] == 3 and f"slice factor {FACTOR}" in info["description"]
    cases, truth = nnunet_cases(written / "CardiacThick"), hr_truth_cases(written / "CardiacThick_HR")
    assert [c["case"] for c in cases] == [c["case"] for c in truth] == ["CARD_001", "CARD_002", "CARD_003"]


def test_thick_slices_are_the_acquisition_of_the_hr_truth_on_its_field_of_view(written):
    for case, hr in zip(nnunet_cases(written / "CardiacThick"), hr_truth_cases(written / "CardiacThick_HR")):
        image, affine = _load(case["image"])
        label, label_affine = _load(case["label"])
        hr_image, hr_affine = _load(hr["image"])
        hr_label, _ = _load(hr["label"])
        assert image.dtype == np.int16 and label.dtype == np.uint8 and set(np.unique(label)) <= {0, 1}
        assert hr_image.shape[:2] == image.shape[:2] == (48, 48) and hr_image.shape[2] == FACTOR * image.shape[2]
        np.testing.assert_allclose(np.abs(np.diag(hr_affine))[:3], [2.5, 2.5, 2.5])
        np.testing.assert_allclose(thin_slice_affine(affine, 2, FACTOR), hr_affine, atol=1e-5)
        np.testing.assert_allclose(label_affine, affine)
        acquired = acquire_thick_slices(hr_image.astype(np.float32), 2, FACTOR)
        assert np.abs(acquired - image).max() <= 1.0  # int16 rounding only
        majority = acquire_thick_slices(hr_label.astype(np.float32), 2, FACTOR) >= 0.5
        np.testing.assert_array_equal(label, majority)
        # the stack runs from above the base to beyond the apex: the first and last thin slices hold no myocardium
        per_slice = hr_label.sum(axis=(0, 1))
        assert per_slice[0] == 0 and per_slice[-1] == 0 and per_slice.max() > 0


def test_thick_slices_lose_the_myocardium_s_through_plane_detail(written):
    """The premise of an HR segmentation: the LR label, repeated onto the thin grid, misses part of the HR
    myocardium at the base and apex (Dice clearly below 1), so there is something for the HR head to recover."""
    for case, hr in zip(nnunet_cases(written / "CardiacThick"), hr_truth_cases(written / "CardiacThick_HR")):
        label, hr_label = _load(case["label"])[0].astype(bool), _load(hr["label"])[0].astype(bool)
        repeated = np.repeat(label, FACTOR, axis=2)
        dice = 2 * (repeated & hr_label).sum() / (repeated.sum() + hr_label.sum())
        assert 0.8 < dice < 0.97, dice


def test_written_by_make_data_and_reproducible(tmp_path):
    first = write_default_data(tmp_path / "a", small=True, datasets=["CardiacThick"])["CardiacThick"]
    second = write_cardiac_thick(tmp_path / "b", n_subjects=SMALL_SIZES["CardiacThick"], small=True)
    names = sorted(p.relative_to(first).as_posix() for p in first.rglob("*.nii.gz"))
    assert len(names) == 2 * SMALL_SIZES["CardiacThick"]
    for name in names:
        np.testing.assert_array_equal(_load(first / name)[0], _load(second / name)[0])
    assert (tmp_path / "a" / "CardiacThick_HR" / "labelsHR").is_dir()
    with pytest.raises(FileExistsError, match="CardiacThick"):
        write_cardiac_thick(tmp_path / "b", n_subjects=1, small=True)
