"""Bad inputs to the REHRSeg thick-slice HR segmentation bundle: each is refused with a message naming the file.

- the self-SR training stage (``train.json`` + ``train_sr.json``, the first stage, which reads the thick-slice
  training images and their LR labels): a case without its label file (the nnU-Net reader's ``DatasetError``), a label
  of another shape than its image, fewer thick slices than the SR network's 4-slice window, an isotropic volume, a
  NaN voxel, a truncated image or label file and a label value outside {0, 1} each stop the stage before it writes
  weights, naming the offending file and what is wrong with it;
- folder inference (``inference.json``): a volume holding NaN and a truncated ``.nii.gz`` are set aside when the
  inputs are listed (``common.inference.FolderInputs(ndim=3)``), named with their reason in the log, the other files
  are segmented, and the run fails at the end (``UnreadableInputError`` naming each one); an isotropic volume and a
  volume thick along another axis than ``through_plane_axis`` stop the run naming the file (and the setting); an
  existing output is never replaced without ``--overwrite true``.

The SR stage's ``initialize`` checks every image and label file (``check_nifti``) and their shapes
(``check_pairs``) before any batch is made: later, ``EnsureTyped(track_meta=False)`` has dropped the file names.

Inference needs only a segmenter of the tiny shape: untrained weights (``inference.json``'s ``network_def`` with
tiny.json) stand in for ``models/model.pt``, since no refusal here depends on what the network learnt.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_test_utils import bundle_scripts, exception_messages, run_tiny, slices_first
from monai.bundle import ConfigWorkflow

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "thick_slice_hr_segmentation_rehrseg"
CONFIGS = BUNDLE / "configs"
SR = ["train.json", "train_sr.json"]

pytestmark = pytest.mark.slow


def _refused(files: list[str], **overrides) -> str:
    with pytest.raises(Exception) as error:
        run_tiny(BUNDLE, files, **overrides)
    return exception_messages(error.value)


def _nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image = nib.load(path)
    return np.asarray(image.dataobj), image.affine


def _truncate(path: Path) -> None:
    """A download cut off halfway."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """5 small Meningioma-like phantoms (2 mm in-plane, 8 mm slices, 79 x 98 x 20): 3 train, 1 val, 1 test."""
    from common.data import write_meningioma

    return write_meningioma(tmp_path_factory.mktemp("rehrseg_bad_data"), n_subjects=5, seed=0, small=True)


@pytest.fixture(scope="module")
def split(source) -> dict[str, list[dict[str, str]]]:
    with bundle_scripts(BUNDLE):
        import scripts.cases

        return scripts.cases.subject_split(str(source))


# ---------------------------------------------------------------------------------------------- SR training stage
def _spoil(kind: str, dataset: Path, case: str, hr_dir: Path) -> tuple[Path, list[str]]:
    """Make the training case ``case`` of the copy ``dataset`` bad in the way ``kind``; return the offending file and
    the words the refusal must hold besides its path."""
    image, label = dataset / "imagesTr" / f"{case}_0000.nii.gz", dataset / "labelsTr" / f"{case}.nii.gz"
    volume, affine = _nifti(image)
    mask, mask_affine = _nifti(label)
    if kind == "no_label":
        label.unlink()
        return label, ["DatasetError", "has no label"]
    if kind == "label_shape":  # 90 of the image's 98 columns
        nib.save(nib.Nifti1Image(mask[:, :90], mask_affine), label)
        return label, ["shape"]
    if kind == "few_slices":  # 3 thick slices: fewer than the 4 of the SR network's window
        nib.save(nib.Nifti1Image(volume[..., 8:11], affine), image)
        nib.save(nib.Nifti1Image(mask[..., 8:11], mask_affine), label)
        return image, ["3 slices along axis 2", "at least 4"]
    if kind == "isotropic":  # the 2 mm thin-slice volume and mask where 8 mm slices are expected
        shutil.copy(hr_dir / "imagesHR" / image.name, image)
        shutil.copy(hr_dir / "labelsHR" / label.name, label)
        return image, ["nearly isotropic"]
    if kind == "nan":
        spoiled = volume.astype(np.float32)
        spoiled[40, 50, 10] = np.nan
        nib.save(nib.Nifti1Image(spoiled, affine), image)
        return image, ["NaN"]
    if kind == "corrupt_image":
        _truncate(image)
        return image, ["corrupt or not a NIfTI"]
    if kind == "corrupt_label":
        _truncate(label)
        return label, ["corrupt"]
    if kind == "label_values":  # lesion written as 2 (another dataset's convention)
        relabelled = mask.copy()
        relabelled[relabelled == 1] = 2
        nib.save(nib.Nifti1Image(relabelled, mask_affine), label)
        return label, ["value(s) 2 outside the label set {0, 1}"]
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "no_label",
        "label_shape",
        "few_slices",
        "isotropic",
        "nan",
        "corrupt_image",
        "corrupt_label",
        "label_values",
    ],
)
def test_sr_training_refuses_a_bad_case_naming_the_file(kind, source, split, tmp_path):
    dataset = Path(shutil.copytree(source, tmp_path / "Meningioma"))
    case = split["train"][-1]["case"]  # the SR stage reads the training cases only
    path, words = _spoil(kind, dataset, case, source.parent / "Meningioma_HR")
    models = tmp_path / "models"
    message = _refused(SR, dataset_dir=str(dataset), ckpt_dir=str(models), output_dir=str(tmp_path / "eval"))
    assert str(path) in message, message
    assert all(word in message for word in words), (words, message)
    assert not list(models.rglob("*.pt")), "a refused stage must not write weights"


# ------------------------------------------------------------------------------------------------ segmenter stage
@pytest.mark.parametrize("key", ["image", "hr_label", "uncertainty"])
def test_stage_2_refuses_a_pseudo_hr_file_of_another_shape_naming_it(key, source, split, tmp_path):
    """Pseudo-HR files (here: the HR truth and a constant U, as pseudo_hr.json would name them) of which one has 90 of
    the 98 columns: stage 2 stops before training, naming that file (it named ``<in memory>``: the crop that found
    the mismatch runs after the metadata is dropped)."""
    with bundle_scripts(BUNDLE):
        from scripts.cases import pseudo_hr_paths

        pseudo, hr_dir = tmp_path / "pseudo_hr", source.parent / "Meningioma_HR"
        pseudo.mkdir()
        for case in split["train"]:
            paths = pseudo_hr_paths(str(pseudo), case["case"])
            image, affine = _nifti(hr_dir / "imagesHR" / f"{case['case']}_0000.nii.gz")
            label, _ = _nifti(hr_dir / "labelsHR" / f"{case['case']}.nii.gz")
            nib.save(nib.Nifti1Image(image, affine), paths["image"])
            nib.save(nib.Nifti1Image(label.astype(np.uint8), affine), paths["hr_label"])
            nib.save(nib.Nifti1Image(np.full(image.shape, 0.05, np.float32), affine), paths["uncertainty"])
        bad = Path(pseudo_hr_paths(str(pseudo), split["train"][-1]["case"])[key])
    volume, affine = _nifti(bad)
    nib.save(nib.Nifti1Image(volume[:, :90], affine), bad)
    models = tmp_path / "models"
    message = _refused(
        ["train.json"],
        dataset_dir=str(source),
        ckpt_dir=str(models),
        pseudo_hr_dir=str(pseudo),
        lambda_kd=0.0,
        output_dir=str(tmp_path / "eval"),
    )
    assert str(bad) in message and "shape" in message, message
    assert not list(models.rglob("*.pt")), "a refused stage must not write weights"


def test_lr_baseline_refuses_a_label_of_another_shape_naming_it(source, split, tmp_path):
    """``lr_baseline.json`` trains on the dataset's own thick images and labels: a label of 90 of the 98 columns
    stops it before training, naming the label file (it named ``<in memory>``)."""
    dataset = Path(shutil.copytree(source, tmp_path / "Meningioma"))
    path, words = _spoil("label_shape", dataset, split["train"][-1]["case"], source.parent / "Meningioma_HR")
    models = tmp_path / "models"
    message = _refused(
        ["train.json", "lr_baseline.json"], dataset_dir=str(dataset), ckpt_dir=str(models), output_dir=str(tmp_path)
    )
    assert str(path) in message and all(word in message for word in words), message
    assert not list(models.rglob("*.pt")), "a refused stage must not write weights"


# ------------------------------------------------------------------------------------------------ folder inference
@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """``models/model.pt``: an untrained segmenter of inference.json's ``network_def`` with tiny.json's features."""
    with bundle_scripts(BUNDLE):
        workflow = ConfigWorkflow(
            config_file=[str(CONFIGS / f) for f in ("inference.json", "tiny.json")],
            meta_file=str(CONFIGS / "metadata.json"),
            logging_file=False,
            bundle_root=str(BUNDLE),
        )
        network = workflow.parser.get_parsed_content("network_def")
    models = tmp_path_factory.mktemp("rehrseg_bad_models")
    torch.save(network.state_dict(), models / "model.pt")
    return models


@pytest.fixture(scope="module")
def thick(split) -> tuple[np.ndarray, np.ndarray]:
    """The test subject's thick-slice volume (x4 along axis 2) and its affine."""
    return _nifti(Path(split["test"][0]["image"]))


def _infer(folder: Path, models: Path, out: Path, **overrides) -> str:
    """inference.json over ``folder``; the messages of the error that stops it."""
    return _refused(["inference.json"], dataset_dir=str(folder), ckpt_dir=str(models), output_dir=str(out), **overrides)


def _write_unreadable(kind: str, folder: Path, thick: tuple[np.ndarray, np.ndarray]) -> tuple[Path, str]:
    """An input of ``kind`` that the folder listing sets aside; returns its path and the reason the log must give."""
    volume, affine = thick
    path = folder / f"{kind}_0000.nii.gz"
    if kind == "nan":
        spoiled = volume.astype(np.float32)
        spoiled[40, 50, 10] = np.nan
        nib.save(nib.Nifti1Image(spoiled, affine), path)
        return path, "NaN/Inf voxels"
    if kind == "corrupt":
        nib.save(nib.Nifti1Image(volume, affine), path)
        _truncate(path)
        return path, "corrupt or not a NIfTI"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["nan", "corrupt"])
def test_unreadable_input_is_named_with_its_reason(kind, models, thick, tmp_path, caplog):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    path, reason = _write_unreadable(kind, folder, thick)
    with caplog.at_level(logging.ERROR, logger="common.inference"):
        message = _infer(folder, models, out)
    assert "UnreadableInputError" in message and "1 input file(s)" in message and str(path) in message, message
    logged = [r.getMessage() for r in caplog.records if r.name == "common.inference"]
    assert any(str(path) in line and reason in line for line in logged), logged
    assert not out.exists() or not list(out.iterdir()), "nothing written for a bad input"


def test_folder_inference_goes_on_past_bad_files_then_fails(models, thick, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    volume, affine = thick
    good = folder / "good_0000.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), good)
    bad = [_write_unreadable(kind, folder, thick)[0] for kind in ("nan", "corrupt")]
    message = _infer(folder, models, out)
    assert "UnreadableInputError" in message and "2 input file(s)" in message, message
    assert all(str(path) in message for path in bad) and str(good) not in message, message
    # the readable file was segmented onto its thin grid; nothing was written for the bad ones
    assert [p.name for p in out.iterdir()] == ["good_0000_hrseg.nii.gz"]
    assert nib.load(out / "good_0000_hrseg.nii.gz").shape == (*volume.shape[:2], 4 * volume.shape[2])


def test_isotropic_volume_is_refused(source, split, models, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    case = split["test"][0]["case"]
    path = folder / f"{case}_0000.nii.gz"
    shutil.copy(source.parent / "Meningioma_HR" / "imagesHR" / path.name, path)  # the 2 mm thin-slice volume
    message = _infer(folder, models, out)
    assert "ValueError" in message and str(path) in message and "nearly isotropic" in message, message
    assert not list(out.glob("*.nii.gz"))


def test_volume_thick_along_another_axis_is_segmented_in_its_own_layout(models, thick, tmp_path):
    """The default ``through_plane_axis`` "auto" reads each file's thick axis from its header: a volume stored with
    its 8 mm axis first is segmented (slices moved last in memory) and written in its own layout, with the same
    labels as the slices-last file; a configured axis that the file contradicts stops the run naming the setting."""
    volume, affine = thick
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    path = folder / "sagittal_0000.nii.gz"
    first, first_affine = slices_first(volume, affine)  # the same volume stored with its 8 mm axis first
    nib.save(nib.Nifti1Image(first, first_affine), path)
    nib.save(nib.Nifti1Image(volume, affine), folder / "axial_0000.nii.gz")
    message = _infer(folder, models, out, through_plane_axis=2)
    assert "ValueError" in message and str(path) in message, message
    assert "thickest axis is 0" in message and "through_plane_axis 2" in message, message
    assert "--through_plane_axis 0" in message, message
    assert not list(out.glob("sagittal*.nii.gz"))
    run_tiny(BUNDLE, ["inference.json"], dataset_dir=str(folder), ckpt_dir=str(models), output_dir=str(out),
             overwrite=True)  # fmt: skip
    seg, seg_affine = _nifti(out / "sagittal_0000_hrseg.nii.gz")
    assert seg.shape == (4 * volume.shape[2], volume.shape[0], volume.shape[1])
    np.testing.assert_allclose(np.linalg.norm(seg_affine[:3, :3], axis=0), np.linalg.norm(first_affine[:3, :3], axis=0)
                               / [4, 1, 1], rtol=1e-5)  # fmt: skip
    axial, axial_affine = _nifti(out / "axial_0000_hrseg.nii.gz")
    expected, expected_affine = slices_first(axial, axial_affine)  # the same labels, stored as each input was
    np.testing.assert_array_equal(seg, expected)
    np.testing.assert_allclose(seg_affine, expected_affine, atol=1e-5)


def test_inference_never_overwrites_an_output(models, thick, tmp_path):
    volume, affine = thick
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    nib.save(nib.Nifti1Image(volume, affine), folder / "case_0000.nii.gz")
    common = {"dataset_dir": str(folder), "ckpt_dir": str(models), "output_dir": str(out)}
    run_tiny(BUNDLE, ["inference.json"], **common)
    target = out / "case_0000_hrseg.nii.gz"
    assert [p.name for p in out.iterdir()] == [target.name]
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in out.iterdir()}
    message = _infer(folder, models, out)
    assert "FileExistsError" in message and str(target) in message and "--overwrite true" in message, message
    assert {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in out.iterdir()} == before
    # asked to, it replaces the output
    run_tiny(BUNDLE, ["inference.json"], **common, overwrite=True)
    assert target.stat().st_mtime_ns != before[target.name][0]
