"""Bad inputs to the TransMRSR brain MRI super-resolution bundle: each is refused with a message naming the file.

- folder inference (``inference.json``) over a 2D file, a volume holding NaN and a corrupt ``.nii.gz``: each is set
  aside when the inputs are listed (``common.inference.FolderInputs(ndim=3)``), named with its reason in the log,
  the other files are super-resolved, and the run fails at the end (``UnreadableInputError`` naming every one);
- a nearly isotropic volume and a x8 thick-slice volume given to a x4 model stop the run
  (``common.transforms.ThinSliceGridd``), naming the file;
- a training volume holding NaN stops the prior and the SR stages before they train, naming the file.

One tiny SR model serves every inference here: trained without the prior (``use_prior false``,
``use_truncation false``: the 'w/o GP' ablation needs no prior stage), and run the same way.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from bundle_test_utils import (
    bundle_scripts,
    copy_slices_first,
    exception_messages,
    run_tiny,
    slices_first,
    tiny_workflow,
)
from monai.bundle import ConfigWorkflow
from monai.transforms import Compose

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "brain_mri_super_resolution_transmrsr"
CONFIGS = BUNDLE / "configs"
#: the SR network without the generative prior, in training and at inference
NO_PRIOR = {"use_prior": False, "use_truncation": False}

pytestmark = pytest.mark.slow


def _run(files: list[str], **overrides) -> ConfigWorkflow:
    """``configs/<files>`` + tiny.json run as ``monai.bundle run`` does (``bundle_test_utils.run_tiny``)."""
    return run_tiny(BUNDLE, files, **overrides)


def _refused(files: list[str], **overrides) -> str:
    with pytest.raises(Exception) as error:
        _run(files, **overrides)
    return exception_messages(error.value)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """6 small IXI phantoms (3 mm): 3 for the prior, 1 each for SR training, validation and test."""
    from common.data import write_ixi

    return write_ixi(tmp_path_factory.mktemp("transmrsr_bad_data"), n_subjects=6, seed=2, small=True)


@pytest.fixture(scope="module")
def split(source) -> dict[str, list[dict[str, str]]]:
    with bundle_scripts(BUNDLE):
        import scripts.cases

        return scripts.cases.subject_split(str(source))


@pytest.fixture(scope="module")
def models(source, tmp_path_factory) -> Path:
    """A trained tiny SR model (one epoch, validated, so models/model.pt exists), without the prior."""
    work = tmp_path_factory.mktemp("transmrsr_bad_models")
    models = work / "models"
    _run(
        ["train.json"],
        dataset_dir=str(source),
        ckpt_dir=str(models),
        output_dir=str(work / "eval"),
        val_interval=1,
        **NO_PRIOR,
    )
    assert (models / "model.pt").is_file()
    assert (models / "trained_scale.json").read_text() == '{"scale": 4}'  # what inference checks its scale against
    return models


@pytest.fixture(scope="module")
def thick(source, split, tmp_path_factory) -> tuple[np.ndarray, np.ndarray]:
    """A x4 thick-slice volume (3 x 3 x 12 mm) of the test subject, cut to 8 coronal slices (fast inference), and
    its affine."""
    from common.data import thick_slice_volume

    image = nib.load(split["test"][0]["image"])
    _, volume, affine = thick_slice_volume(np.asarray(image.dataobj, dtype=np.float32), image.affine, 2, 4)
    return np.ascontiguousarray(volume[:, 28:36]), affine


def _infer(folder: Path, models: Path, out: Path, **overrides) -> str:
    """inference.json over ``folder``; the messages of the error that stops it."""
    return _refused(["inference.json"], dataset_dir=str(folder), ckpt_dir=str(models), output_dir=str(out),
                    **NO_PRIOR, **overrides)  # fmt: skip


def _write_bad(kind: str, folder: Path, thick: tuple[np.ndarray, np.ndarray]) -> tuple[Path, str]:
    """A bad input of ``kind`` in ``folder``; returns its path and the reason the log must give."""
    volume, affine = thick
    path = folder / f"{kind}-T1.nii.gz"
    if kind == "two_d":
        nib.save(nib.Nifti1Image(volume[:, 3], affine), path)
        return path, "has 2 dimensions"
    if kind == "nan":
        spoiled = volume.copy()
        spoiled[20, 4, 6] = np.nan
        nib.save(nib.Nifti1Image(spoiled, affine), path)
        return path, "NaN/Inf voxels"
    if kind == "corrupt":  # a download cut off halfway
        nib.save(nib.Nifti1Image(volume, affine), path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return path, "corrupt or not a NIfTI"
    raise ValueError(kind)


# ----------------------------------------------------------------------------------------- files set aside and named
@pytest.mark.parametrize("kind", ["two_d", "nan", "corrupt"])
def test_unreadable_input_is_named_with_its_reason(kind, models, thick, tmp_path, caplog):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    path, reason = _write_bad(kind, folder, thick)
    with caplog.at_level(logging.ERROR, logger="common.inference"):
        message = _infer(folder, models, out)
    assert "UnreadableInputError" in message and "1 input file(s)" in message and str(path) in message, message
    logged = [r.getMessage() for r in caplog.records if r.name == "common.inference"]
    assert any(str(path) in line and reason in line for line in logged), logged
    assert not out.exists() or not list(out.iterdir()), "nothing written for a bad input"


def test_folder_inference_goes_on_past_bad_files_then_fails(models, thick, tmp_path, caplog):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    volume, affine = thick
    good = folder / "good-T1.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), good)
    bad = [_write_bad(kind, folder, thick)[0] for kind in ("two_d", "nan", "corrupt")]
    with caplog.at_level(logging.ERROR, logger="common.inference"):
        message = _infer(folder, models, out)
    assert "UnreadableInputError" in message and "3 input file(s)" in message, message
    assert all(str(path) in message for path in bad), message
    assert str(good) not in message
    # the readable file was super-resolved onto its thin grid; nothing was written for the bad ones
    assert [p.name for p in out.iterdir()] == ["good-T1_sr.nii.gz"]
    sr = nib.load(out / "good-T1_sr.nii.gz")
    assert sr.shape == volume.shape[:2] + (4 * volume.shape[2],)


# ------------------------------------------------------------------------------------------ volumes that stop the run
def test_isotropic_volume_is_refused(source, split, models, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / Path(split["test"][0]["image"]).name
    shutil.copy(split["test"][0]["image"], path)  # the thin 3 mm volume itself
    message = _infer(folder, models, tmp_path / "out")
    assert "ValueError" in message and str(path) in message and "nearly isotropic" in message, message
    assert not list((tmp_path / "out").glob("*.nii.gz"))


def test_x8_volume_is_refused_by_a_x4_model(split, models, tmp_path):
    from common.data import thick_slice_volume

    image = nib.load(split["test"][0]["image"])
    _, volume, affine = thick_slice_volume(np.asarray(image.dataobj, dtype=np.float32), image.affine, 2, 8)
    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / "x8-T1.nii.gz"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(volume[:, 28:36]), affine), path)
    message = _infer(folder, models, tmp_path / "out")
    assert "ValueError" in message and str(path) in message and "trained for x4" in message, message
    assert "8.00 x the in-plane spacing" in message, message
    assert not list((tmp_path / "out").glob("*.nii.gz"))


def test_a_x4_model_run_at_x8_is_refused_before_reading_any_input(models, tmp_path):
    """The network is scale-free (its input is already on the thin grid), so x4 weights would load into an x8 run:
    the scale train.json recorded beside them refuses it, naming the file and both fixes."""
    folder = tmp_path / "in"
    folder.mkdir()
    message = _refused(["inference.json"], dataset_dir=str(folder), ckpt_dir=str(models), scale=8,
                       output_dir=str(tmp_path / "out"), **NO_PRIOR)  # fmt: skip
    assert str(models / "trained_scale.json") in message and "was trained for x4, this run is set to x8" in message
    assert "--scale 4" in message and "--ckpt_dir of an x8 training" in message, message
    assert not (tmp_path / "out").exists()


def test_a_volume_sliced_along_another_axis_is_super_resolved_in_its_own_layout(models, thick, tmp_path):
    """through_plane_axis 0, or the default "auto" (each file's thick axis read from its header): the slices are moved
    last on loading (``common.transforms.SlicesLastd``), so the network runs on the very planes of the slices-last
    file, and the SR volume is written back slices-first on the input's affine; with through_plane_axis 2 the file is
    refused naming its thickest axis."""
    volume, affine = thick
    outputs = {}
    for name, (data, data_affine, axis) in {
        "last": (volume, affine, 2), "first": (*slices_first(volume, affine), 0)
    }.items():  # fmt: skip
        folder = tmp_path / f"in_{name}"
        folder.mkdir()
        nib.save(nib.Nifti1Image(data, data_affine), folder / "case-T1.nii.gz")
        _run(["inference.json"], dataset_dir=str(folder), ckpt_dir=str(models), through_plane_axis=axis,
             output_dir=str(tmp_path / f"out_{name}"), **NO_PRIOR)  # fmt: skip
        (written,) = (tmp_path / f"out_{name}").glob("*.nii.gz")
        outputs[name] = (np.asarray(nib.load(written).dataobj), nib.load(written).affine)
    (last, last_affine), (first, first_affine) = outputs["last"], outputs["first"]
    expected, expected_affine = slices_first(last, last_affine)
    np.testing.assert_allclose(first, expected, atol=1e-5)
    np.testing.assert_allclose(first_affine, expected_affine, atol=1e-5)
    _run(["inference.json"], dataset_dir=str(tmp_path / "in_first"), ckpt_dir=str(models),
         output_dir=str(tmp_path / "out_auto"), **NO_PRIOR)  # fmt: skip
    auto = nib.load(tmp_path / "out_auto" / written.name)
    np.testing.assert_array_equal(np.asarray(auto.dataobj), first)
    np.testing.assert_allclose(auto.affine, first_affine, atol=1e-6)
    message = _infer(tmp_path / "in_first", models, tmp_path / "refused", through_plane_axis=2)
    assert "thickest axis is 0" in message and "through_plane_axis 2" in message, message
    assert "--through_plane_axis 0" in message, message


def test_training_on_volumes_stored_slices_first_sees_the_same_pairs(source, tmp_path):
    """train.json with through_plane_axis 0 on a slices-first copy of the HR volumes makes the pairs of the
    slices-last files (same seed): the thick slices are simulated along the configured axis."""
    copy = tmp_path / "IXI"
    copy_slices_first(source, copy)
    pairs = []
    for dataset, axis in ((source, 2), (copy, 0)):
        with bundle_scripts(BUNDLE):
            parser = tiny_workflow(BUNDLE, ["train.json"], dataset_dir=str(dataset), through_plane_axis=axis,
                                   ckpt_dir=str(tmp_path / "models"), output_dir=str(tmp_path / "eval"),
                                   **NO_PRIOR).parser  # fmt: skip
            item = parser.get_parsed_content("train_datalist")[0]
            pairs.append(Compose(parser.get_parsed_content("volume_transforms"))(dict(item)))
    for key in ("hr", "lr"):
        np.testing.assert_allclose(np.asarray(pairs[1][key]), np.asarray(pairs[0][key]), atol=1e-5)


def test_inference_planes_along_the_thick_axis_are_refused(models, tmp_path):
    """slice_axis 2 on a volume thick along axis 2 takes axial planes, which do not cross the slices: refused before
    any file is read, naming the axes to use."""
    folder = tmp_path / "in"
    folder.mkdir()
    message = _refused(["inference.json"], dataset_dir=str(folder), ckpt_dir=str(models), slice_axis=2,
                       output_dir=str(tmp_path / "out"), **NO_PRIOR)  # fmt: skip
    assert "slice_axis 2: the network's planes must cross the thick slices" in message and "axis 0 or 1" in message
    assert not (tmp_path / "out").exists()


def test_training_x8_into_an_x4_folder_is_refused_and_keeps_its_weights(source, models, tmp_path):
    before = (models / "model.pt").read_bytes()
    message = _refused(["train.json"], dataset_dir=str(source), ckpt_dir=str(models), scale=8,
                       output_dir=str(tmp_path / "eval"), **NO_PRIOR)  # fmt: skip
    assert str(models / "trained_scale.json") in message and "holds an x4 SR training" in message, message
    assert "--ckpt_dir <another folder> for x8" in message and f"--prior_dir {models / 'prior'}" in message
    assert (models / "model.pt").read_bytes() == before


def test_weights_without_their_scale_record_are_run_and_the_log_says_so(models, thick, tmp_path, caplog):
    """Weights from elsewhere (no trained_scale.json beside them) still run, with one warning naming what is not
    checked."""
    elsewhere = tmp_path / "weights"
    elsewhere.mkdir()
    shutil.copy(models / "model.pt", elsewhere / "model.pt")
    folder = tmp_path / "in"
    folder.mkdir()
    nib.save(nib.Nifti1Image(*thick), folder / "case-T1.nii.gz")
    with caplog.at_level(logging.WARNING):
        _run(["inference.json"], dataset_dir=str(folder), ckpt_dir=str(elsewhere), output_dir=str(tmp_path / "out"),
             **NO_PRIOR)  # fmt: skip
    said = [r.getMessage() for r in caplog.records if "trained_scale.json not found" in r.getMessage()]
    assert len(said) == 1 and str(elsewhere / "model.pt") in said[0] and "x4" in said[0]
    assert len(list((tmp_path / "out").rglob("*.nii.gz"))) == 1


# ------------------------------------------------------------------------------------------------------ training data
@pytest.mark.parametrize(
    "files,role",
    [(["train.json", "train_prior.json"], "prior"), (["train.json"], "train"), (["train.json"], "val")],
    ids=["prior", "sr_train", "sr_val"],
)
def test_training_refuses_a_volume_holding_nan(source, split, tmp_path, files, role):
    dataset = Path(shutil.copytree(source, tmp_path / "IXI"))
    path = dataset / Path(split[role][-1]["image"]).name
    image = nib.load(path)
    volume = np.asarray(image.dataobj, dtype=np.float32)
    volume[26, 32, 27] = np.nan
    nib.save(nib.Nifti1Image(volume, image.affine), path)
    models = tmp_path / "models"
    overrides = NO_PRIOR if role != "prior" else {}
    message = _refused(
        files, dataset_dir=str(dataset), ckpt_dir=str(models), output_dir=str(tmp_path / "e"), **overrides
    )
    assert "ValueError" in message and str(path) in message and "NaN" in message, message
    assert not [p for p in models.rglob("*.pt")], "a refused stage must not write weights"
