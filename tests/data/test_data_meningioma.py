"""Meningioma (REHRSeg) default data: the lesion phantom, the nnU-Net thick-slice layout and its HR truth, readers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from common.data import (
    DATASETS,
    DEFAULT_SIZES,
    SMALL_SIZES,
    BrainPhantom,
    DatasetError,
    acquire_thick_slices,
    enhancement_ratio,
    hr_truth_cases,
    meningioma_params,
    nnunet_cases,
    render_meningioma,
    thin_slice_affine,
    write_default_data,
    write_meningioma,
)
from common.data.layouts import _CODES, _subject_seed
from scipy import ndimage

FACTOR = 4


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("meningioma") / "data"
    write_meningioma(out, n_subjects=2, seed=0, small=True)
    return out


@pytest.fixture(scope="module")
def subject() -> dict:
    return BrainPhantom(seed=3, downsample=2).sample()


def _load(path: str) -> tuple[np.ndarray, np.ndarray]:
    image = nib.load(path)
    return np.asanyarray(image.dataobj), image.affine


def test_layout_dataset_json_and_readers(written):
    folder = written / "Meningioma"
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == ["MEN_001_0000.nii.gz", "MEN_002_0000.nii.gz"]
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == ["MEN_001.nii.gz", "MEN_002.nii.gz"]
    info = json.loads((folder / "dataset.json").read_text())
    assert info["channel_names"] == {"0": "T1"} and info["labels"] == {"background": 0, "meningioma": 1}
    assert info["numTraining"] == 2 and info["file_ending"] == ".nii.gz"
    assert "generated" in info["description"].lower() and f"slice factor {FACTOR}" in info["description"]
    cases, truth = nnunet_cases(written), hr_truth_cases(written / "Meningioma_HR")
    assert [c["case"] for c in cases] == [c["case"] for c in truth] == ["MEN_001", "MEN_002"]
    assert nnunet_cases(folder) == cases and hr_truth_cases(written) == truth
    for case in cases + truth:
        assert set(case) == {"case", "image", "label"}
        for key in ("image", "label"):
            assert os.path.isabs(case[key]) and os.path.isfile(case[key])
    assert cases[0]["image"].endswith(os.path.join("Meningioma", "imagesTr", "MEN_001_0000.nii.gz"))
    assert truth[0]["label"].endswith(os.path.join("Meningioma_HR", "labelsHR", "MEN_001.nii.gz"))


def test_lr_and_hr_grids_share_the_field_of_view(written):
    for case, truth in zip(nnunet_cases(written), hr_truth_cases(written)):
        lr, lr_affine = _load(case["image"])
        hr, hr_affine = _load(truth["image"])
        label, label_affine = _load(case["label"])
        assert lr.dtype == hr.dtype == np.int16 and label.dtype == np.uint8
        assert hr.shape == (79, 98, 80) and lr.shape == (79, 98, 20) == label.shape  # 2 mm -> 8 mm slices
        np.testing.assert_array_equal(label_affine, lr_affine)
        np.testing.assert_allclose(thin_slice_affine(lr_affine, 2, FACTOR), hr_affine, atol=1e-9)
        lr_zooms, hr_zooms = nib.load(case["image"]).header.get_zooms(), nib.load(truth["image"]).header.get_zooms()
        np.testing.assert_allclose(lr_zooms, (hr_zooms[0], hr_zooms[1], FACTOR * hr_zooms[2]))
        # same physical extent: first and last slice centres, each widened by half its own spacing
        faces = []
        for affine, n, spacing in ((lr_affine, lr.shape[2], lr_zooms[2]), (hr_affine, hr.shape[2], hr_zooms[2])):
            first, last = (affine @ [0, 0, 0, 1])[2], (affine @ [0, 0, n - 1, 1])[2]
            faces.append((first - spacing / 2, last + spacing / 2))
        np.testing.assert_allclose(faces[0], faces[1], atol=1e-6)
        assert faces[0][1] - faces[0][0] == pytest.approx(80 * 2.0)
        np.testing.assert_allclose(lr_affine[:3, :2], hr_affine[:3, :2])


def test_lr_label_is_the_partial_volume_majority_and_spans_thick_slices(written):
    for case, truth in zip(nnunet_cases(written), hr_truth_cases(written)):
        hr_label, _ = _load(truth["label"])
        lr_label, _ = _load(case["label"])
        assert set(np.unique(hr_label)) == {0, 1} and set(np.unique(lr_label)) == {0, 1}
        majority = acquire_thick_slices(hr_label.astype(np.float32), 2, FACTOR) >= 0.5
        np.testing.assert_array_equal(lr_label, majority.astype(np.uint8))
        thick = np.unique(np.flatnonzero(hr_label.any(axis=(0, 1))) // FACTOR)
        assert len(thick) >= 3 and np.all(np.diff(thick) == 1)  # one connected lesion over >= 3 thick slices
        assert lr_label.any(axis=(0, 1)).sum() >= 2
        # the thick-slice image is the slice-profile acquisition of the HR image (up to int16 rounding)
        hr_image, _ = _load(truth["image"])
        lr_image, _ = _load(case["image"])
        expected = acquire_thick_slices(hr_image.astype(np.float32), 2, FACTOR)
        assert np.abs(lr_image - expected).max() <= 1.01


def test_written_lesion_enhances_above_white_and_grey_matter(written):
    hr, _ = _load(hr_truth_cases(written)[0]["image"])
    mask, _ = _load(hr_truth_cases(written)[0]["label"])
    subject = BrainPhantom(_subject_seed(0, "Meningioma", 0), downsample=2).sample()  # the tissue maps of MEN_001
    far = ~ndimage.binary_dilation(mask > 0, iterations=15)  # beyond the mass effect
    gm = hr[(subject["gm"][..., :80] > 0.9) & far].mean()
    wm = hr[(subject["wm"][..., :80] > 0.9) & far].mean()
    assert hr[mask > 0].mean() > 1.15 * max(gm, wm)


@pytest.mark.parametrize("seed, site", [(0, "falx"), (1, "convexity"), (2, "convexity"), (3, "falx")])
def test_lesion_is_dural_based_extra_axial_and_local(subject, seed, site):
    params = meningioma_params(subject, np.random.default_rng(seed), 2.0, min_extent_mm=24.0)
    assert params["site"] == site
    image, mask = render_meningioma(subject, params, 2.0)
    assert image.shape == mask.shape == subject["t1"].shape and mask.dtype == np.uint8
    lesion = mask > 0
    extent = np.flatnonzero(lesion.any(axis=(0, 1)))
    assert (extent[-1] - extent[0] + 1) * 2.0 >= 24.0
    intracranial = ndimage.binary_fill_holes((subject["gm"] + subject["wm"] + subject["csf"]) > 0.5)
    assert not (lesion & ~intracranial).any()  # inside the skull
    centroid = np.argwhere(lesion).mean(0)
    largest = max(params["semi_axes_mm"])
    if site == "convexity":  # on the brain's outer boundary, centroid within one semi-axis of it
        boundary = intracranial & ~ndimage.binary_erosion(intracranial)
        assert (lesion & boundary).any()
        depth = ndimage.distance_transform_edt(intracranial)[tuple(np.rint(centroid).astype(int))] * 2.0
        assert depth <= largest
    else:  # on the falx: against the interhemispheric plane, on one side of it
        axis, index = params["falx_axis"], params["falx_index"]
        sides = np.argwhere(lesion)[:, axis] - index
        assert (np.abs(sides) == 1).any() and (np.sign(sides) == params["side"]).all()
        assert abs(centroid[axis] - index) * 2.0 <= largest
    # brighter than white and grey matter; the image changes only near the lesion (displacement, dural tail)
    assert image[lesion].mean() > 1.15 * max(
        subject["t1"][subject["wm"] > 0.9].mean(), subject["t1"][subject["gm"] > 0.9].mean()
    )
    changed = np.argwhere(image != subject["t1"])
    reach = 2.5 * largest + params["tail_length_mm"] + 4.0
    assert np.abs(changed * 2.0 - np.asarray(params["centre"]) * 2.0).max() <= reach


def test_dural_tail_enhances_outside_the_label(subject):
    params = meningioma_params(subject, np.random.default_rng(0), 2.0)
    assert params["tail"]
    image, mask = render_meningioma(subject, params, 2.0)
    no_tail, same_mask = render_meningioma(subject, {**params, "tail": False}, 2.0)
    np.testing.assert_array_equal(mask, same_mask)  # the tail is not labelled
    brighter = (image > no_tail + 100) & (mask == 0)
    assert brighter.sum() >= 5


def test_same_seed_writes_identical_files(written, tmp_path):
    again = write_meningioma(tmp_path / "again", n_subjects=2, seed=0, small=True, workers=2).parent
    for folder in ("Meningioma", "Meningioma_HR"):
        files = sorted(p.relative_to(written) for p in (written / folder).rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(again) for p in (again / folder).rglob("*") if p.is_file())
        for path in files:
            assert (written / path).read_bytes() == (again / path).read_bytes(), path
    other = write_meningioma(tmp_path / "other", n_subjects=1, seed=1, small=True)
    assert (other / "labelsTr" / "MEN_001.nii.gz").read_bytes() != (
        written / "Meningioma" / "labelsTr" / "MEN_001.nii.gz"
    ).read_bytes()


def test_registration_keeps_the_existing_datasets_seeds():
    # append only: later datasets (e.g. CineLGE) come after Meningioma, which keeps its place and code
    assert DATASETS[:6] == ("DTI_LGE_MI", "EMIDEC", "ACDC", "MSCMRSeg", "IXI", "Meningioma")
    assert {name: _CODES[name] for name in DATASETS[:6]} == {
        "DTI_LGE_MI": 11,
        "EMIDEC": 12,
        "ACDC": 13,
        "MSCMRSeg": 14,
        "IXI": 15,
        "Meningioma": 16,
    }
    assert DEFAULT_SIZES["Meningioma"] == 40 and SMALL_SIZES["Meningioma"] == 4


def test_write_default_data_checks_the_hr_folder_first(tmp_path):
    (tmp_path / "Meningioma_HR").mkdir()
    (tmp_path / "Meningioma_HR" / "old.txt").write_text("x")
    with pytest.raises(FileExistsError, match="Meningioma_HR"):
        write_default_data(tmp_path, small=True, datasets=["Meningioma"])
    assert not (tmp_path / "Meningioma").exists()


def test_nnunet_reader_channels_nii_and_missing_labels(tmp_path):
    folder = tmp_path / "Dataset001_Any"
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    for name in ("b_0000.nii", "b_0001.nii", "a10_0000.nii.gz", "a2_0000.nii.gz"):
        (folder / "imagesTr" / name).write_bytes(b"")
    for name in ("a2.nii.gz", "a10.nii.gz", "b.nii"):
        (folder / "labelsTr" / name).write_bytes(b"")
    assert [c["case"] for c in nnunet_cases(folder)] == ["a2", "a10", "b"]
    assert nnunet_cases(folder)[2]["label"].endswith("b.nii")
    assert [c["case"] for c in nnunet_cases(folder, channel=1)] == ["b"]
    (folder / "labelsTr" / "a10.nii.gz").unlink()
    with pytest.raises(DatasetError, match="a10.nii.gz"):
        nnunet_cases(folder)
    with pytest.raises(ValueError, match="channel"):
        nnunet_cases(folder, channel=-1)
    with pytest.raises(DatasetError, match="imagesTr") as error:
        nnunet_cases(tmp_path / "nowhere")
    assert "tools.make_data" in str(error.value)
    with pytest.raises(DatasetError, match="Meningioma_HR"):
        hr_truth_cases(folder)
    (folder / "labelsTr" / "a10.nii.gz").write_bytes(b"")
    (folder / "dataset.json").write_text('{"file_ending": ".nii.gz", "channel_names": {"0": "T1"}}')
    assert len(nnunet_cases(folder)) == 3
    (folder / "dataset.json").write_text('{"file_ending": ".mha"}')
    with pytest.raises(DatasetError, match=r"dataset.json says the images are .mha files.*convert"):
        nnunet_cases(folder)


def test_enhancement_ratio_and_bad_arguments(subject, tmp_path):
    ratios = [enhancement_ratio(tr, t, ve) for tr in (400, 650) for t in (3, 10) for ve in (0.2, 0.4)]
    assert 1.2 < min(ratios) and max(ratios) < 1.9
    assert enhancement_ratio(500, 5, 0.4) > enhancement_ratio(500, 5, 0.2)
    for kwargs, name in (({"tr_ms": 0}, "tr_ms"), ({"minutes": -1}, "minutes"), ({"ve": 1.0}, "ve")):
        with pytest.raises(ValueError, match=name):
            enhancement_ratio(**{"tr_ms": 500, "minutes": 5, "ve": 0.3, **kwargs})
    with pytest.raises(ValueError, match="voxel_mm"):
        meningioma_params(subject, np.random.default_rng(0), 1.0)
    with pytest.raises(ValueError, match="factor"):
        write_meningioma(tmp_path, n_subjects=1, small=True, factor=1)
    with pytest.raises(ValueError, match="axis"):
        write_meningioma(tmp_path, n_subjects=1, small=True, axis=3)
