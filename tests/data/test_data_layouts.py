"""Writers and readers of the real-dataset layouts, on the session's tiny default data (tests/conftest.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from common.constants import ACDC_LABELS, DTI_CHANNELS, EMIDEC_LABELS, MSCMR_LABELS
from common.data import (
    SMALL_SIZES,
    DatasetError,
    acdc_cases,
    cine_lge_cases,
    dti_lge_mi_cases,
    emidec_cases,
    ixi_cases,
    mscmrseg_cases,
    write_default_data,
    write_emidec,
)
from common.data.brain import BRAIN_LABELS
from conftest import link_as_mscmrseg_release


def _centres(path: str) -> tuple[np.ndarray, tuple[int, ...]]:
    image = nib.load(path)
    return image.affine, image.shape


def test_dti_lge_mi_layout_shapes_dtypes_and_spacing(tiny_data):
    cases = dti_lge_mi_cases(tiny_data)
    assert [c["case"] for c in cases] == [f"Case_{i:03d}" for i in range(1, SMALL_SIZES["DTI_LGE_MI"] + 1)]
    paired = [c for c in cases if "dti" in c]
    assert len(paired) == SMALL_SIZES["DTI_LGE_MI"] // 2 and paired == cases[: len(paired)]  # first half paired
    for case in cases:
        lge, mask = nib.load(case["lge"]), nib.load(case["mask"])
        assert lge.shape == (512, 512, 1) and lge.get_data_dtype() == np.float32
        assert mask.shape == (512, 512, 1) and mask.get_data_dtype() == np.uint8
        np.testing.assert_allclose(lge.header.get_zooms(), (0.3125, 0.3125, 8.0))
        np.testing.assert_array_equal(lge.affine, mask.affine)
        values = np.unique(np.asanyarray(mask.dataobj))
        assert set(values) == {0, 1}  # every case shows scar in its slice
    for case in paired:
        dti = nib.load(case["dti"])
        assert dti.shape == (64, 64, 1, len(DTI_CHANNELS)) and dti.get_data_dtype() == np.float32
        np.testing.assert_allclose(dti.header.get_zooms()[:3], (2.5, 2.5, 8.0))
        s0, md, fa = np.moveaxis(np.asanyarray(dti.dataobj)[:, :, 0], -1, 0)
        assert s0.min() >= 0 and 0 <= md.min() and md.max() <= 4.0 and 0 <= fa.min() and fa.max() <= 1.0


def test_dti_has_its_own_grid_over_the_lge_field_of_view(tiny_data):
    """Same 160 mm field of view and slice position; the DTI grid's centre is off the LGE's by up to half a DTI voxel
    (the grids are not nested), and that offset is in the affines."""
    offsets = []
    for case in dti_lge_mi_cases(tiny_data, require_dti=True):
        a_lge, a_dti = _centres(case["lge"])[0], _centres(case["dti"])[0]
        centre_lge = (a_lge @ [255.5, 255.5, 0, 1])[:3]
        centre_dti = (a_dti @ [31.5, 31.5, 0, 1])[:3]
        offsets.append(centre_dti - centre_lge)
        np.testing.assert_allclose(np.diag(a_dti)[:3], (2.5, 2.5, 8.0))
    offsets = np.array(offsets)
    assert np.all(np.abs(offsets[:, :2]) <= 1.25 + 1e-6) and np.any(np.abs(offsets[:, :2]) > 0.01)
    np.testing.assert_allclose(offsets[:, 2], 0.0, atol=1e-6)


def test_dti_and_lge_of_a_case_come_from_the_same_anatomy(tiny_data):
    """Blood is dark at b = 0 and bright in LGE; the infarct is not an LGE-like bright region in the DTI channels."""
    for case in dti_lge_mi_cases(tiny_data, require_dti=True):
        s0, md, fa = np.moveaxis(np.asanyarray(nib.load(case["dti"]).dataobj)[:, :, 0], -1, 0)
        lge = np.asanyarray(nib.load(case["lge"]).dataobj)[..., 0]
        mask = np.asanyarray(nib.load(case["mask"]).dataobj)[..., 0]
        assert lge[mask == 1].mean() > 2 * np.median(lge)  # the mask marks bright LGE scar
        scar_fraction = mask.reshape(64, 8, 64, 8).mean(axis=(1, 3))
        lge_low = lge.reshape(64, 8, 64, 8).mean(axis=(1, 3))
        cavity = (lge_low > np.percentile(lge_low, 99)) & (scar_fraction == 0)  # LV blood, centre of the cavity
        scar = scar_fraction > 0.5
        assert s0[scar].mean() > 1.5 * s0[cavity].mean()
        assert s0[scar].mean() < 1.5 * np.percentile(s0, 90)  # at b = 0 the infarct is no outlier


def test_emidec_layout_and_labels(tiny_data):
    cases = emidec_cases(tiny_data)
    assert len(cases) == SMALL_SIZES["EMIDEC"]
    assert [c["case"] for c in cases] == sorted(c["case"] for c in cases)
    assert {c["case"][5] for c in cases} == {"P", "N"}
    for case in cases:
        name = case["case"]
        assert case["image"].endswith(os.path.join(name, "Images", f"{name}.nii.gz"))
        assert case["label"].endswith(os.path.join(name, "Contours", f"{name}.nii.gz"))
        image, label = nib.load(case["image"]), nib.load(case["label"])
        assert image.shape == label.shape and image.ndim == 3
        values = set(np.unique(np.asanyarray(label.dataobj)).tolist())
        assert values <= set(EMIDEC_LABELS.values())
        has_scar = EMIDEC_LABELS["infarction"] in values
        assert has_scar == name.startswith("Case_P")


def test_acdc_layout_info_and_frames(tiny_data):
    cases = acdc_cases(tiny_data)
    assert len(cases) == 2 * SMALL_SIZES["ACDC"]
    assert [c["frame"] for c in cases[:2]] == ["ed", "es"]
    patient = Path(cases[0]["image"]).parent
    info = dict(line.split(": ") for line in (patient / "Info.cfg").read_text().splitlines())
    assert set(info) == {"ED", "ES", "Group", "Height", "NbFrame", "Weight"}
    assert cases[0]["image"].endswith(f"{patient.name}_frame{int(info['ED']):02d}.nii.gz")
    assert cases[1]["label"].endswith(f"{patient.name}_frame{int(info['ES']):02d}_gt.nii.gz")
    cine = np.asanyarray(nib.load(str(patient / f"{patient.name}_4d.nii.gz")).dataobj)
    assert cine.shape[3] == int(info["NbFrame"])
    ed = np.asanyarray(nib.load(cases[0]["image"]).dataobj)
    np.testing.assert_array_equal(ed, cine[..., int(info["ED"]) - 1])  # frames are the 4D's frames
    labels_ed = np.asanyarray(nib.load(cases[0]["label"]).dataobj)
    labels_es = np.asanyarray(nib.load(cases[1]["label"]).dataobj)
    assert set(np.unique(labels_ed)) <= set(ACDC_LABELS.values())
    lv = ACDC_LABELS["lv"]
    assert (labels_es == lv).sum() < (labels_ed == lv).sum()  # the ventricle contracts
    assert [c["case"] for c in acdc_cases(tiny_data / "ACDC" / "training", frames=("es",))] == [
        c["case"] for c in cases[1::2]
    ]


def test_mscmrseg_layout_labels_and_natural_order(tiny_data):
    c0 = mscmrseg_cases(tiny_data, "C0")
    lge = mscmrseg_cases(tiny_data / "MSCMRSeg", "LGE")
    assert [c["case"] for c in c0] == [f"patient{i}" for i in range(1, SMALL_SIZES["MSCMRSeg"] + 1)]
    assert all("label" in c for c in c0)
    labelled = [c for c in lge if "label" in c]
    assert 1 <= len(labelled) < len(lge) and labelled == lge[: len(labelled)]
    label = np.asanyarray(nib.load(c0[0]["label"]).dataobj)
    assert set(np.unique(label).tolist()) == set(MSCMR_LABELS.values())
    c0_image, lge_image = nib.load(c0[0]["image"]), nib.load(lge[0]["image"])
    assert c0_image.header.get_zooms() != lge_image.header.get_zooms()  # unregistered, different protocols


def test_mscmrseg_release_layout_with_labels_in_sibling_folders_reads_as_the_flat_one(tiny_data, tmp_path):
    """The MS-CMRSeg 2019 release keeps images in ``c0t2lge/`` and labels in ``c0gt/``, ``lgegt/`` (and a later
    label folder): the same cases as the flat folder; a file name found twice is refused, naming both."""
    flat = tiny_data / "MSCMRSeg"
    release = link_as_mscmrseg_release(flat, tmp_path / "C0LET2_nii45_for_challenge19")
    for modality in ("C0", "LGE"):
        ours = [{k: Path(v).name for k, v in c.items()} for c in mscmrseg_cases(tmp_path, modality)]
        assert ours == [{k: Path(v).name for k, v in c.items()} for c in mscmrseg_cases(flat, modality)]
    assert Path(mscmrseg_cases(tmp_path, "C0")[0]["label"]).parent.name == "c0gt"
    # a parent holding MSCMRSeg/ is searched only there, never in the other datasets beside it
    parent = tmp_path / "data"
    (parent / "MSCMRSeg").mkdir(parents=True)
    (parent / "MSCMRSeg" / "patient1_C0.nii.gz").symlink_to(flat / "patient1_C0.nii.gz")
    (parent / "Other" / "sub").mkdir(parents=True)
    (parent / "Other" / "sub" / "patient1_LGE.nii.gz").symlink_to(flat / "patient1_LGE.nii.gz")
    assert [c["case"] for c in mscmrseg_cases(parent, "C0")] == ["patient1"]
    with pytest.raises(DatasetError, match="no MSCMRSeg case found"):
        mscmrseg_cases(parent, "LGE")
    copy = release / "backup" / "patient1_C0.nii.gz"
    copy.parent.mkdir()
    copy.symlink_to(flat / "patient1_C0.nii.gz")
    with pytest.raises(DatasetError, match="patient1_C0.nii.gz is found twice"):
        mscmrseg_cases(tmp_path, "C0")


def test_ixi_layout_and_tissue_maps(tiny_data):
    cases = ixi_cases(tiny_data, with_tissue=True)
    assert len(cases) == SMALL_SIZES["IXI"]
    for case in cases:
        assert Path(case["image"]).name.startswith("IXI0") and "-Guys-" in case["image"]
        assert Path(case["image"]).name == f"{case['case']}-T1.nii.gz"
        image = nib.load(case["image"])
        gm = np.asanyarray(nib.load(case["gm"]).dataobj)
        label = np.asanyarray(nib.load(case["label"]).dataobj)
        assert image.shape == gm.shape == label.shape and image.get_data_dtype() == np.int16
        assert gm.dtype.kind == "f" and 0 <= gm.min() and gm.max() <= 1.0 + 1e-6 and gm.max() > 0.9
        assert set(np.unique(label).tolist()) == set(BRAIN_LABELS.values())
    assert set(ixi_cases(tiny_data / "IXI")[0]) == {"case", "image"}


def test_readers_return_absolute_existing_paths(tiny_data):
    for cases in (
        dti_lge_mi_cases(tiny_data),
        emidec_cases(tiny_data),
        acdc_cases(tiny_data),
        mscmrseg_cases(tiny_data),
        ixi_cases(tiny_data),
        cine_lge_cases(tiny_data),
    ):
        for case in cases:
            for key, value in case.items():
                if key not in ("case", "frame"):
                    assert os.path.isabs(value) and os.path.isfile(value), (key, value)


@pytest.mark.parametrize(
    "reader, layout",
    [
        (dti_lge_mi_cases, "DTI_LGE_MI/Case_NNN"),
        (emidec_cases, "EMIDEC/Case_XNNN"),
        (acdc_cases, "ACDC/training/patientNNN"),
        (mscmrseg_cases, "MSCMRSeg/patientN_C0"),
        (ixi_cases, "IXI/IXINNN"),
        (cine_lge_cases, "CineLGE/caseNNN"),
    ],
)
def test_readers_raise_dataset_error_naming_the_folder(tmp_path, reader, layout):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match="nowhere") as error:
        reader(missing)
    assert layout in str(error.value) and "tools.make_data" in str(error.value)
    assert isinstance(error.value, FileNotFoundError)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="empty"):
        reader(empty)
    (empty / "unrelated.txt").write_text("x")
    with pytest.raises(DatasetError, match=str(empty)):
        reader(empty)


def test_require_dti_and_missing_mask_raise(tmp_path, tiny_data):
    folder = tmp_path / "DTI_LGE_MI" / "Case_001"
    folder.mkdir(parents=True)
    lge = dti_lge_mi_cases(tiny_data)[-1]["lge"]
    (folder / "LGE.nii.gz").write_bytes(Path(lge).read_bytes())
    with pytest.raises(DatasetError, match="LGE_MI"):
        dti_lge_mi_cases(tmp_path)
    (folder / "LGE_MI.nii.gz").write_bytes(Path(lge).read_bytes())
    assert len(dti_lge_mi_cases(tmp_path)) == 1
    with pytest.raises(DatasetError, match="require_dti"):
        dti_lge_mi_cases(tmp_path, require_dti=True)


def test_a_case_folder_with_a_misnamed_image_is_named_not_skipped(tmp_path, tiny_data):
    """A case folder whose image is missing or misnamed (``lge.nii.gz``, lower case) stops the reader naming the folder
    and the expected file, rather than training on the other cases without it."""
    dti = tmp_path / "dti"
    shutil.copytree(tiny_data / "DTI_LGE_MI", dti / "DTI_LGE_MI")
    first = sorted((dti / "DTI_LGE_MI").glob("Case_*"))[0]
    (first / "LGE.nii.gz").rename(first / "lge.nii.gz")
    with pytest.raises(DatasetError, match=rf"{first.name} has no LGE.nii.gz"):
        dti_lge_mi_cases(dti)
    emidec = tmp_path / "emidec"
    shutil.copytree(tiny_data / "EMIDEC", emidec / "EMIDEC")
    case = sorted((emidec / "EMIDEC").glob("Case_*"))[0]
    image = case / "Images" / f"{case.name}.nii.gz"
    image.rename(image.with_name(f"{case.name.lower()}.nii.gz"))
    with pytest.raises(DatasetError, match=rf"{case.name} has no image .*{case.name}.nii.gz"):
        emidec_cases(emidec)
    acdc = tmp_path / "acdc"
    shutil.copytree(tiny_data / "ACDC", acdc / "ACDC")
    patient = sorted((acdc / "ACDC" / "training").glob("patient*"))[0]
    (patient / "Info.cfg").unlink()
    with pytest.raises(DatasetError, match=rf"{patient.name} has no Info.cfg"):
        acdc_cases(acdc)


def test_uncompressed_nii_copies_read_as_the_nii_gz_ones(tmp_path, tiny_data):
    """Copies of the releases come as .nii too: every reader takes them (decompressed here, names kept)."""
    import gzip

    copy = tmp_path / "data"
    shutil.copytree(tiny_data, copy)
    for path in list(copy.rglob("*.nii.gz")):
        path.with_name(path.name[: -len(".gz")]).write_bytes(gzip.decompress(path.read_bytes()))
        path.unlink()
    for reader, args in ((dti_lge_mi_cases, ()), (emidec_cases, ()), (acdc_cases, ()), (mscmrseg_cases, ("C0",)),
                         (mscmrseg_cases, ("LGE",)), (ixi_cases, ()),):  # fmt: skip
        ours = reader(copy, *args)
        theirs = reader(tiny_data, *args)
        assert [c["case"] for c in ours] == [c["case"] for c in theirs], reader.__name__
        assert all(v.endswith(".nii") for c in ours for k, v in c.items() if k not in ("case", "frame")), ours[0]
        assert [sorted(c) for c in ours] == [sorted(c) for c in theirs], reader.__name__


def test_acdc_as_the_challenge_archive_unzips(tmp_path, tiny_data):
    archive = tmp_path / "ACDC_challenge"
    shutil.copytree(tiny_data / "ACDC" / "training", archive / "database" / "training")
    expected = [(c["case"], Path(c["image"]).name) for c in acdc_cases(tiny_data)]
    assert [(c["case"], Path(c["image"]).name) for c in acdc_cases(archive)] == expected
    data = tmp_path / "data"  # unzipped into data/ACDC: the data folder works too
    shutil.copytree(archive, data / "ACDC")
    assert [(c["case"], Path(c["image"]).name) for c in acdc_cases(data)] == expected


def test_acdc_bad_frames_raise(tiny_data):
    with pytest.raises(ValueError, match="frames"):
        acdc_cases(tiny_data, frames=("mid",))
    with pytest.raises(ValueError, match="modality"):
        mscmrseg_cases(tiny_data, modality="bSSFP")


def test_writers_are_deterministic_and_refuse_to_overwrite(tmp_path):
    first = write_emidec(tmp_path / "a", n_cases=2, seed=3, small=True)
    second = write_emidec(tmp_path / "b", n_cases=2, seed=3, small=True)
    other = write_emidec(tmp_path / "c", n_cases=2, seed=4, small=True)
    data = [np.asanyarray(nib.load(emidec_cases(root)[0]["image"]).dataobj) for root in (first, second, other)]
    np.testing.assert_array_equal(data[0], data[1])
    assert not np.array_equal(data[0], data[2])
    with pytest.raises(FileExistsError, match="overwrite"):
        write_emidec(tmp_path / "a", n_cases=2, seed=3, small=True)
    with pytest.raises(FileExistsError, match=str(tmp_path / "a" / "EMIDEC")):
        write_default_data(tmp_path / "a", small=True, datasets=["EMIDEC", "ACDC"])
    assert not (tmp_path / "a" / "ACDC").exists()  # nothing written when one folder is refused
    write_emidec(tmp_path / "a", n_cases=1, seed=3, small=True, overwrite=True)
    assert len(emidec_cases(tmp_path / "a")) == 1


def test_write_default_data_rejects_unknown_dataset(tmp_path):
    with pytest.raises(ValueError, match="datasets"):
        write_default_data(tmp_path, small=True, datasets=["LIDC"])


def test_workers_do_not_change_the_files(tmp_path):
    write_default_data(tmp_path / "one", small=True, datasets=["EMIDEC"], workers=1)
    write_default_data(tmp_path / "two", small=True, datasets=["EMIDEC"], workers=2)
    for a, b in zip(emidec_cases(tmp_path / "one"), emidec_cases(tmp_path / "two")):
        np.testing.assert_array_equal(nib.load(a["image"]).get_fdata(), nib.load(b["image"]).get_fdata())
