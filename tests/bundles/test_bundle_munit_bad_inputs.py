"""Bad inputs to the LGE cardiac segmentation bundle (issue 19): each is named, and what can go on goes on.

- folder inference over a NaN volume, a corrupt file, a 4D file and a 2D file (one slice where the bundle takes a
  stack): each is named and skipped, the other files are written, and the run fails at the end; training on a
  bSSFP stack saved as one 2D slice stops, naming the file;
- a bSSFP label holding values outside MS-CMRSeg's {0, 200, 500, 600} stops training, naming the file;
- a C0 case without its ``_manual`` label is simply left out of training; an empty folder is a ``DatasetError``
  naming the folder.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_test_utils import bundle_scripts, exception_messages
from monai.bundle import ConfigWorkflow

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "lge_cardiac_segmentation_munit"
MSCMR_VALUES = {0, 200, 500, 600}


def _workflow(files: list[str], **overrides) -> ConfigWorkflow:
    return ConfigWorkflow(
        config_file=[str(BUNDLE / "configs" / f) for f in [*files, "tiny.json"]],
        meta_file=str(BUNDLE / "configs" / "metadata.json"),
        logging_file=False,  # keep the test session's logging configuration
        bundle_root=str(BUNDLE),
        **overrides,
    )


def _run(files: list[str], **overrides) -> ConfigWorkflow:
    """``python -m monai.bundle run --config_file "[configs/<files>..., configs/tiny.json]" --key value...``."""
    with bundle_scripts(BUNDLE):
        workflow = _workflow(files, **overrides)
        workflow.initialize()
        workflow.run()
        workflow.finalize()
    return workflow


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """6 small MS-CMRSeg phantoms (patients 1-3 with an LGE label: evaluation only; 4-6 train)."""
    from common.data import write_mscmrseg

    return write_mscmrseg(tmp_path_factory.mktemp("munit_bad_data"), n_patients=6, seed=3, small=True)


@pytest.fixture()
def dataset(source, tmp_path) -> Path:
    """A copy of the data that a test may spoil."""
    return Path(shutil.copytree(source, tmp_path / "MSCMRSeg"))


# ----------------------------------------------------------------------------------------------- folder inference
@pytest.fixture(scope="module")
def untrained_weights(tmp_path_factory) -> Path:
    """The tiny networks, untrained (inference only needs files that load), in the bundle's layout.

    ``model.pt`` is ``{"model": LocalisedNetwork state}`` (the cascade and the localiser, as ``scripts/weights.py``
    writes it); ``localiser/localiser.pt`` is its localiser alone (as ``train_localiser.json`` writes it).
    """
    from common.benchmarking import parse_config_items, read_overlay

    models = tmp_path_factory.mktemp("munit_bad_models")
    torch.manual_seed(0)
    network = parse_config_items(BUNDLE, ["inference.json"], read_overlay(BUNDLE, "tiny.json"))["network_def"]
    torch.save({"model": network.state_dict()}, models / "model.pt")
    (models / "localiser").mkdir()
    torch.save(network.localiser.state_dict(), models / "localiser" / "localiser.pt")
    return models


def _rewrite(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(data, affine), path)


def test_folder_inference_skips_and_names_bad_files_then_fails(source, untrained_weights, tmp_path, caplog):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    good = [folder / "patient4_LGE.nii.gz", folder / "patient5_LGE.nii.gz"]
    for path in good:
        shutil.copy(source / path.name, path)
    lge = nib.load(source / "patient6_LGE.nii.gz")
    volume = np.asarray(lge.dataobj, dtype=np.float32)
    nan, corrupt, four_d = folder / "nan_LGE.nii.gz", folder / "corrupt_LGE.nii.gz", folder / "fourd_LGE.nii.gz"
    volume_nan = volume.copy()
    volume_nan[10, 10, 0] = np.nan
    _rewrite(nan, volume_nan, lge.affine)
    corrupt.write_bytes(b"\x1f\x8b garbage, not a NIfTI file")
    _rewrite(four_d, np.stack([volume, volume], axis=-1), lge.affine)
    one_slice = folder / "slice_LGE.nii.gz"  # a 2D file where the bundle takes a stack
    _rewrite(one_slice, volume[..., volume.shape[-1] // 2], lge.affine)
    with pytest.raises(Exception) as error, caplog.at_level(logging.ERROR):
        _run(["inference.json"], dataset_dir=str(folder), ckpt_dir=str(untrained_weights), output_dir=str(out))
    message = exception_messages(error.value)
    assert "UnreadableInputError" in message and "4 input file(s)" in message
    for bad in (nan, corrupt, four_d, one_slice):
        assert str(bad) in message
    (said,) = [r.getMessage() for r in caplog.records if str(one_slice) in r.getMessage()]
    assert f"{one_slice}: 1 slice (shape (80, 80))" in said and "at least 2 slices" in said, said
    # the readable files were segmented, on their own grids; nothing was written for the bad ones
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name.replace(".nii.gz", "_seg.nii.gz") for p in good)
    for path in good:
        label = nib.load(out / path.name.replace(".nii.gz", "_seg.nii.gz"))
        assert label.shape == nib.load(path).shape
        np.testing.assert_allclose(label.affine, nib.load(path).affine, atol=1e-4)
        assert set(np.unique(np.asarray(label.dataobj)).tolist()) <= MSCMR_VALUES


# ------------------------------------------------------------------------------------------------------ training data
TRAINING_STAGES = pytest.mark.parametrize(
    "files,overrides",
    [
        (["train.json", "train_localiser.json"], {}),
        (["train.json", "train_translator.json"], {}),
        (["train.json"], {"stage": "unet1_bssfp"}),
    ],
    ids=["localiser", "translator", "unet1_bssfp"],
)


def _refused_training(dataset: Path, untrained_weights: Path, tmp_path: Path, files: list[str], **overrides) -> str:
    """Run a training stage that must be refused; return the messages; check it wrote no weights."""
    models = tmp_path / "models"
    shutil.copytree(untrained_weights / "localiser", models / "localiser")  # the translator crops around its mask
    with pytest.raises(Exception) as error:
        _run(
            files,
            dataset_dir=str(dataset),
            ckpt_dir=str(models),
            synthetic_dir=str(tmp_path / "synthetic"),
            output_dir=str(tmp_path / "eval"),
            **overrides,
        )
    weights = [str(p.relative_to(models)) for p in models.rglob("*.pt")]
    assert weights == [os.path.join("localiser", "localiser.pt")], "a refused stage must not write weights"
    return exception_messages(error.value)


@TRAINING_STAGES
def test_training_refuses_a_bssfp_stack_saved_as_one_2d_slice(dataset, untrained_weights, tmp_path, files, overrides):
    for name in ("patient5_C0.nii.gz", "patient5_C0_manual.nii.gz"):
        image = nib.load(dataset / name)
        data = np.asarray(image.dataobj)
        _rewrite(dataset / name, np.ascontiguousarray(data[..., data.shape[-1] // 2]), image.affine)
    message = _refused_training(dataset, untrained_weights, tmp_path, files, **overrides)
    assert "ValueError" in message and f"{dataset / 'patient5_C0'}" in message and ": 1 slice" in message


@TRAINING_STAGES
def test_training_refuses_a_bssfp_label_outside_the_label_set(dataset, untrained_weights, tmp_path, files, overrides):
    path = dataset / "patient5_C0_manual.nii.gz"
    image = nib.load(path)
    label = np.asarray(image.dataobj).copy()
    label[label == 500] = 1  # an LV in another dataset's convention (ACDC-like 1/2/3)
    _rewrite(path, label, image.affine)
    message = _refused_training(dataset, untrained_weights, tmp_path, files, **overrides)
    assert "ValueError" in message and str(path) in message and "outside the label set" in message


def _training_cases(dataset_dir: Path) -> dict:
    with bundle_scripts(BUNDLE):
        import scripts.cases

        return scripts.cases.training_cases(str(dataset_dir))


def test_a_c0_case_without_its_label_is_left_out_of_training(dataset, caplog):
    (dataset / "patient5_C0_manual.nii.gz").unlink()
    with caplog.at_level(logging.WARNING):
        cases = _training_cases(dataset)
    (said,) = [r.getMessage() for r in caplog.records if "left out of training" in r.getMessage()]
    assert str(dataset / "patient5_C0.nii.gz") in said and "patient4" not in said and "_C0_manual.nii.gz" in said
    assert [c["case"] for c in cases["bssfp"]] == ["patient4", "patient6"]
    assert [c["case"] for c in cases["lge"]] == ["patient4", "patient5", "patient6"]  # its LGE is unlabelled anyway
    with bundle_scripts(BUNDLE):
        workflow = _workflow(["train.json"], dataset_dir=str(dataset), stage="unet1_bssfp")
        datalist = workflow.parser.get_parsed_content("train_datalist")
        localiser = _workflow(["train.json", "train_localiser.json"], dataset_dir=str(dataset))
        localiser_datalist = localiser.parser.get_parsed_content("train_datalist")
    assert [Path(item["label"]).name for item in datalist] == ["patient4_C0_manual.nii.gz", "patient6_C0_manual.nii.gz"]
    assert datalist == localiser_datalist


@pytest.mark.parametrize("kind", ["empty", "missing", "evaluation_only"])
def test_no_training_case_is_a_dataset_error_naming_the_folder(source, tmp_path, kind):
    from common.data import DatasetError

    folder = tmp_path / "MSCMRSeg"
    if kind == "empty":
        folder.mkdir()
    elif kind == "evaluation_only":  # every patient has an LGE label: all are held out for evaluation
        folder.mkdir()
        for path in source.glob("patient[123]_*.nii.gz"):
            shutil.copy(path, folder / path.name)
    with pytest.raises(DatasetError) as error:
        _training_cases(folder)
    assert str(folder) in str(error.value)
    # the same through the bundle (MONAI wraps it in a RuntimeError), before anything is written
    with pytest.raises(Exception) as error:
        _run(["train.json"], dataset_dir=str(folder), ckpt_dir=str(tmp_path / "models"), output_dir=str(tmp_path / "e"))
    message = exception_messages(error.value)
    assert "DatasetError" in message and str(folder) in message
    assert not (tmp_path / "models").exists()


def test_with_every_lge_labelled_the_held_out_patients_are_named(source, tmp_path):
    """MS-CMRSeg's later release labels every LGE stack, so by default every patient is held out: the error says to
    name them; named, the others train and evaluation scores only those."""
    from common.data import DatasetError

    folder = tmp_path / "MSCMRSeg"
    shutil.copytree(source, folder)
    for case in ("patient4", "patient5", "patient6"):  # the later labels
        shutil.copy(folder / "patient1_LGE_manual.nii.gz", folder / f"{case}_LGE_manual.nii.gz")
    with pytest.raises(DatasetError, match="--evaluation_patients"):
        _training_cases(folder)
    with bundle_scripts(BUNDLE):
        import scripts.cases

        with pytest.raises(DatasetError, match="the same for training and evaluation"):  # no guess at evaluation
            scripts.cases.evaluation_cases(str(folder))

        cases = scripts.cases.training_cases(str(folder), "patient1, patient2")
        evaluation = scripts.cases.evaluation_cases(str(folder), patients=["patient1", "patient2"])
        with pytest.raises(DatasetError, match=r"\['patient9'\] have no patientN_LGE.nii.gz"):
            scripts.cases.training_cases(str(folder), "patient1,patient9")
    assert [c["case"] for c in cases["bssfp"]] == ["patient3", "patient4", "patient5", "patient6"]
    assert [c["case"] for c in evaluation] == ["patient1", "patient2"]
    with bundle_scripts(BUNDLE):  # the config key reaches the stages
        workflow = _workflow(["train.json"], dataset_dir=str(folder), evaluation_patients="patient1,patient2")
        trained = workflow.parser.get_parsed_content("cases")["bssfp"]
    assert [c["case"] for c in trained] == ["patient3", "patient4", "patient5", "patient6"]


def test_inference_refuses_a_model_pt_without_the_localiser(source, untrained_weights, tmp_path):
    """A ``model.pt`` of the former layout (the cascade alone, e.g. a copy of ``member_0/unet2_ft.pt``) is refused
    before any file is segmented: the weights check names the missing ``localiser.`` keys."""
    models, folder, out = tmp_path / "models", tmp_path / "in", tmp_path / "out"
    models.mkdir()
    folder.mkdir()
    shutil.copy(source / "patient4_LGE.nii.gz", folder)
    state = torch.load(untrained_weights / "model.pt", weights_only=True)["model"]
    cascade = {k[len("segmenter.") :]: v for k, v in state.items() if k.startswith("segmenter.")}
    assert cascade and len(cascade) < len(state)
    torch.save(cascade, models / "model.pt")
    with pytest.raises(Exception) as error:
        _run(["inference.json"], dataset_dir=str(folder), ckpt_dir=str(models), output_dir=str(out))
    message = exception_messages(error.value)
    assert "WeightsMismatchError" in message and "not in the file: localiser., segmenter." in message, message
    assert not out.exists() or not list(out.iterdir())
