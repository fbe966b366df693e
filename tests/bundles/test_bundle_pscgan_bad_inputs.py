"""Bad inputs to the PSCGAN bundle: each is refused with a message naming the file.

- training (``train.json``, phase I, the first to read the CineLGE cases; the later phases read them the same way): a
  label value outside {0, 1, 2, 3}, an LGE or a label on another grid than its cine (both files named), a cine of 20
  frames, a 3D cine, a NaN voxel in the LGE and a case folder without its label each stop the phase before it writes
  weights, naming the offending file and what is wrong with it, and so is a truncated ``.nii.gz`` (every case file is
  read once when the items are listed, ``common.data.validation.check_nifti``);
- folder inference (``inference.json``): a 3D ``(64, 64, 25)`` file, a cine holding NaN and a corrupt ``.nii.gz``
  (random bytes) are set aside when the inputs are listed (``common.inference.FolderInputs(ndim=4)``), named with
  their reason in the log, the other files are processed, and the run fails at the end (``UnreadableInputError``
  naming each one); a cine of 20 frames and one of 48 x 48 pixels stop the run naming the file
  (``common.transforms.CheckCined``); outputs are replaced only with ``--overwrite true``, the LGE-equivalent image
  too (it is checked before the run beside the segmentation: with the segmentation and the clinical tables moved
  away, a rerun still refuses).

Inference needs only a cascade of the tiny shape: untrained weights (``inference.json``'s ``network_def`` with
tiny.json) stand in for ``models/model.pt``, since no refusal here depends on what the networks learnt.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_test_utils import bundle_scripts, exception_messages, run_tiny, slices_first, tiny_workflow
from monai.bundle import ConfigWorkflow

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "cine_lge_synthesis_segmentation"
CONFIGS = BUNDLE / "configs"
#: 1 training, 1 validation and 3 test patients of 5
FRACTIONS = [0.2, 0.2, 0.6]
#: 4x fewer keys in the tiny networks' 64 x 64 space attentions (no weight changes; ~3x faster on the CPU)
FAST = {"attention_key_pool": 2}

pytestmark = pytest.mark.slow


def _refused(files: list[str], **overrides) -> str:
    with pytest.raises(Exception) as error:
        run_tiny(BUNDLE, files, **overrides, **FAST)
    return exception_messages(error.value)


def _nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image = nib.load(path)
    return np.asarray(image.dataobj), image.affine


def _stamps(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.iterdir()}


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """5 CineLGE phantoms (64 x 64, 3 slices, 25 frames)."""
    from common.data import write_cine_lge

    return write_cine_lge(tmp_path_factory.mktemp("pscgan_bad_data"), n_cases=5, seed=0)


@pytest.fixture(scope="module")
def train_case(source) -> str:
    with bundle_scripts(BUNDLE):
        import scripts.cases

        return scripts.cases.patient_split(str(source), fractions=FRACTIONS)["train"][0]["case"]


# ------------------------------------------------------------------------------------------------------- training
def _spoil(kind: str, case: Path) -> tuple[list[Path], list[str]]:
    """Make the case folder ``case`` bad in the way ``kind``; return the files the refusal must name and the words
    it must hold besides them."""
    cine, lge, label = (case / f"{case.name}_{key}.nii.gz" for key in ("cine", "lge", "label"))
    if kind == "label_values":  # one myocardium pixel labelled 5 (another scheme's value)
        mask, affine = _nifti(label)
        mask = mask.copy()
        mask[tuple(np.argwhere(mask == 2)[0])] = 5
        nib.save(nib.Nifti1Image(mask, affine), label)
        return [label], ["value(s) 5 outside the label set {0, 1, 2, 3}"]
    if kind in ("lge_grid", "label_grid"):  # 48 x 48 of the cine's 64 x 64
        path = lge if kind == "lge_grid" else label
        volume, affine = _nifti(path)
        nib.save(nib.Nifti1Image(np.ascontiguousarray(volume[8:56, 8:56]), affine), path)
        return [path, cine], ["grid (48, 48, 3) differs from the cine's", "(64, 64, 3)"]
    if kind == "cine_frames":  # 20 frames of the network's 25
        volume, affine = _nifti(cine)
        nib.save(nib.Nifti1Image(np.ascontiguousarray(volume[..., :20]), affine), cine)
        return [cine], ["has 20 frames", "takes 25"]
    if kind == "cine_3d":  # one slice's frames, saved without the slice axis
        volume, affine = _nifti(cine)
        nib.save(nib.Nifti1Image(np.ascontiguousarray(volume[:, :, 0]), affine), cine)
        return [cine], ["shape (64, 64, 25)", "2D+T cine is a 4D NIfTI"]
    if kind == "nan_lge":
        volume, affine = _nifti(lge)
        volume = volume.astype(np.float32)
        volume[32, 32, 1] = np.nan
        nib.save(nib.Nifti1Image(volume, affine), lge)
        return [lge], ["NaN/Inf"]
    if kind == "no_label":
        label.unlink()
        return [label.parent], ["has no", label.name]
    if kind == "corrupt_label":  # a download cut off halfway
        label.write_bytes(label.read_bytes()[: label.stat().st_size // 2])
        return [label], []
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind",
    ["label_values", "lge_grid", "label_grid", "cine_frames", "cine_3d", "nan_lge", "no_label", "corrupt_label"],
)
def test_training_refuses_a_bad_case_naming_the_file(kind, source, train_case, tmp_path):
    dataset = Path(shutil.copytree(source, tmp_path / "CineLGE"))
    paths, words = _spoil(kind, dataset / train_case)
    models = tmp_path / "models"
    message = _refused(
        ["train.json"], dataset_dir=str(dataset), ckpt_dir=str(models), output_dir=str(tmp_path / "eval"),
        fractions=FRACTIONS,
    )  # fmt: skip
    assert all(str(path) in message for path in paths), message
    assert all(word in message for word in words), (words, message)
    assert not list(models.rglob("*.pt")), "a refused phase must not write weights"


# ------------------------------------------------------------------------------------------------ folder inference
@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """``models/model.pt``: an untrained cascade of inference.json's ``network_def`` with tiny.json's features."""
    with bundle_scripts(BUNDLE):
        workflow = ConfigWorkflow(
            config_file=[str(CONFIGS / f) for f in ("inference.json", "tiny.json")],
            meta_file=str(CONFIGS / "metadata.json"),
            logging_file=False,
            bundle_root=str(BUNDLE),
        )
        network = workflow.parser.get_parsed_content("network_def")
    models = tmp_path_factory.mktemp("pscgan_bad_models")
    torch.save(network.state_dict(), models / "model.pt")
    return models


@pytest.fixture(scope="module")
def cine(source) -> tuple[np.ndarray, np.ndarray]:
    """A case's cine stack (64, 64, 3, 25) and its affine."""
    return _nifti(source / "case001" / "case001_cine.nii.gz")


def _infer(folder: Path, models: Path, out: Path, **overrides) -> str:
    """inference.json over ``folder``; the messages of the error that stops it."""
    return _refused(["inference.json"], dataset_dir=str(folder), ckpt_dir=str(models), output_dir=str(out), **overrides)


def _write_unreadable(kind: str, folder: Path, cine: tuple[np.ndarray, np.ndarray]) -> tuple[Path, str]:
    """An input of ``kind`` that the folder listing sets aside; returns its path and the reason the log must give."""
    volume, affine = cine
    path = folder / f"{kind}_cine.nii.gz"
    if kind == "3d":  # (64, 64, 25): one slice's frames without the slice axis
        nib.save(nib.Nifti1Image(np.ascontiguousarray(volume[:, :, 0]), affine), path)
        return path, "a 2D+T cine is a 4D NIfTI"
    if kind == "nan":
        spoiled = volume.astype(np.float32)
        spoiled[32, 32, 1, 5] = np.nan
        nib.save(nib.Nifti1Image(spoiled, affine), path)
        return path, "NaN/Inf voxels"
    if kind == "corrupt":
        path.write_bytes(np.random.default_rng(0).bytes(20000))
        return path, "corrupt or not a NIfTI"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["3d", "nan", "corrupt"])
def test_unreadable_input_is_named_with_its_reason(kind, models, cine, tmp_path, caplog):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    path, reason = _write_unreadable(kind, folder, cine)
    with caplog.at_level(logging.ERROR, logger="common.inference"):
        message = _infer(folder, models, out)
    assert "UnreadableInputError" in message and "1 input file(s)" in message and str(path) in message, message
    logged = [r.getMessage() for r in caplog.records if r.name == "common.inference"]
    assert any(str(path) in line and reason in line for line in logged), logged
    assert not list(out.glob("*.nii.gz")), "nothing written for a bad input"


def test_folder_inference_goes_on_past_bad_files_then_fails(models, cine, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    volume, affine = cine
    good = folder / "good_cine.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), good)
    bad = [_write_unreadable(kind, folder, cine)[0] for kind in ("3d", "nan", "corrupt")]
    message = _infer(folder, models, out)
    assert "UnreadableInputError" in message and "3 input file(s)" in message, message
    assert all(str(path) in message for path in bad) and str(good) not in message, message
    # the readable stack was processed (and its clinical row written); nothing was written for the bad ones
    expected = {"good_cine_seg.nii.gz", "good_cine_lge_equivalent.nii.gz", "good_cine_aha_segments.nii.gz"}
    expected.add("clinical_cases.csv")
    assert expected | {"clinical_segments.csv"} == {p.name for p in out.iterdir()}
    assert nib.load(out / "good_cine_seg.nii.gz").shape == volume.shape[:3]
    assert len((out / "clinical_cases.csv").read_text().splitlines()) == 2


@pytest.mark.parametrize("kind", ["frames", "size"])
def test_cine_the_network_cannot_take_is_refused_naming_the_file(kind, models, cine, tmp_path):
    volume, affine = cine
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    path = folder / f"{kind}_cine.nii.gz"
    if kind == "frames":  # 20 frames of the network's 25
        nib.save(nib.Nifti1Image(np.ascontiguousarray(volume[..., :20]), affine), path)
        words = ["has 20 frames", "takes 25"]
    else:  # 48 x 48 of the network's heart-centred 64 x 64 crop
        nib.save(nib.Nifti1Image(np.ascontiguousarray(volume[8:56, 8:56]), affine), path)
        words = ["48x48", "64x64"]
    message = _infer(folder, models, out)
    assert "ValueError" in message and str(path) in message, message
    assert all(word in message for word in words), (words, message)
    assert not out.exists() or not list(out.iterdir()), "nothing written for a refused input"


def test_overwrite_true_replaces_the_outputs(models, cine, tmp_path):
    volume, affine = cine
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    nib.save(nib.Nifti1Image(volume, affine), folder / "case_cine.nii.gz")
    common = {"dataset_dir": str(folder), "ckpt_dir": str(models), "output_dir": str(out)}
    run_tiny(BUNDLE, ["inference.json"], **common, **FAST)
    before = _stamps(out)
    assert set(before) == {
        "case_cine_seg.nii.gz", "case_cine_lge_equivalent.nii.gz", "case_cine_aha_segments.nii.gz",
        "clinical_cases.csv", "clinical_segments.csv",
    }  # fmt: skip
    message = _infer(folder, models, out)
    assert "FileExistsError" in message and str(out / "case_cine_seg.nii.gz") in message, message
    assert _stamps(out) == before
    # without the segmentation, its LGE-equivalent image stops it, then the AHA segment map; without all three, the
    # clinical tables still do
    moved = []
    for name in ("case_cine_seg.nii.gz", "case_cine_lge_equivalent.nii.gz", "case_cine_aha_segments.nii.gz"):
        (out / name).rename(tmp_path / name)
        moved.append(name)
        message = _infer(folder, models, out)
        stopper = {1: "case_cine_lge_equivalent.nii.gz", 2: "case_cine_aha_segments.nii.gz"}.get(len(moved))
        assert "FileExistsError" in message and str(out / (stopper or "clinical_cases.csv")) in message, message
    for name in moved:
        (tmp_path / name).rename(out / name)
    # asked to, it replaces every output
    run_tiny(BUNDLE, ["inference.json"], **common, overwrite=True, **FAST)
    after = _stamps(out)
    assert set(after) == set(before) and all(after[name][0] != before[name][0] for name in before)


def test_a_cine_stored_with_its_slices_first_is_analysed_and_written_in_its_own_layout(models, cine, tmp_path):
    """Folder inference reads each cine's slice axis from its header: a stack stored (S, X, Y, T) gives the
    segmentation and LGE-equivalent image of the same stack stored (X, Y, S, T), each written the way its input was,
    and the same clinical rows (the analysis runs on the slices-last cine in memory)."""
    volume, affine = cine
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    nib.save(nib.Nifti1Image(volume, affine), folder / "a_cine.nii.gz")
    nib.save(nib.Nifti1Image(*slices_first(volume, affine)), folder / "b_cine.nii.gz")
    run_tiny(BUNDLE, ["inference.json"], dataset_dir=str(folder), ckpt_dir=str(models), output_dir=str(out), **FAST)
    for postfix in ("seg", "lge_equivalent"):
        last, last_affine = _nifti(out / f"a_cine_{postfix}.nii.gz")
        first, first_affine = _nifti(out / f"b_cine_{postfix}.nii.gz")
        assert last.shape == volume.shape[:3] and first.shape == (volume.shape[2], *volume.shape[:2]), first.shape
        expected, expected_affine = slices_first(last, last_affine)
        np.testing.assert_allclose(first, expected, atol=1e-5)
        np.testing.assert_allclose(first_affine, expected_affine, atol=1e-5)
    with open(out / "clinical_cases.csv") as table:
        rows = {row["case"]: row for row in csv.DictReader(table)}
    assert sorted(rows) == ["a_cine", "b_cine"]
    assert {k: v for k, v in rows["a_cine"].items() if k != "case"} == {
        k: v for k, v in rows["b_cine"].items() if k != "case"
    }


def test_clinical_rows_of_a_prediction_written_slices_first_are_those_of_the_slices_last_one(tmp_path):
    """The clinical report moves a prediction that the postprocessing wrote in a slices-first file's layout back to
    the cine's before measuring: a drawn stack (blood pool, myocardial ring, a scar arc; 1.5 x 2.0 mm pixels, 8 mm
    slices) gives the same non-zero areas whichever way it arrives (the untrained cascade of the end-to-end test
    above predicts no myocardium, so its rows cannot tell)."""
    from common.transforms import recorded_axis_key
    from monai.data import MetaTensor

    with bundle_scripts(BUNDLE):
        from scripts.clinical import ClinicalReport

    yy, xx = np.meshgrid(np.arange(32) - 15.5, np.arange(32) - 15.5, indexing="ij")
    radius, angle = np.hypot(1.5 * yy, 2.0 * xx), np.arctan2(yy, xx)
    labels = np.where(radius < 9, 1, np.where(radius < 14, 2, 0))
    labels[(labels == 2) & (np.abs(angle) < 0.8)] = 3  # a scar arc in the myocardium
    seg = np.repeat(labels[..., None], 3, axis=-1).astype(np.float32)  # (X, Y, S)
    affine = np.diag([1.5, 2.0, 8.0, 1.0])
    cine = torch.as_tensor(np.repeat((100.0 + 50 * seg)[None], 25, axis=0))  # (T, X, Y, S), ED first
    seg_first, affine_first = slices_first(seg, affine)
    rows = []
    for pred, pred_affine, axis in ((seg, affine, None), (seg_first, affine_first, 0)):
        report = ClinicalReport(str(tmp_path / f"axis_{axis}"), segment_map_postfix="aha_segments")
        (tmp_path / f"axis_{axis}").mkdir()
        item = {"pred": MetaTensor(torch.as_tensor(pred)[None], affine=torch.as_tensor(pred_affine))}
        item["pred"].meta["filename_or_obj"] = "case_cine.nii.gz"
        batch = [{"image": cine, **({recorded_axis_key("image"): axis} if axis is not None else {})}]
        engine = type("Engine", (), {"state": type("State", (), {"batch": batch, "output": [item]})()})()
        report.iteration_completed(engine)
        rows.append(report.cases[0])
    last, first = rows
    pixel_mm2 = 1.5 * 2.0
    assert last["myocardium_area_mm2"] == pytest.approx(3 * pixel_mm2 * np.isin(labels, (2, 3)).sum())
    assert last["scar_size_mm2"] == pytest.approx(3 * pixel_mm2 * (labels == 3).sum()) and last["scar_size_mm2"] > 0
    assert last["slices"] == 3 and first == last
    # the AHA segment map, written in the layout and affine the prediction arrived in: the slices-last one moved
    map_last, map_last_affine = _nifti(tmp_path / "axis_None" / "case_cine_aha_segments.nii.gz")
    map_first, map_first_affine = _nifti(tmp_path / "axis_0" / "case_cine_aha_segments.nii.gz")
    assert np.array_equal(map_last > 0, np.isin(seg, (2, 3))) and set(np.unique(map_last)) > {0}
    expected, expected_affine = slices_first(map_last, map_last_affine)
    assert np.array_equal(map_first, expected) and np.allclose(map_first_affine, expected_affine)
    assert np.allclose(map_last_affine, affine) and np.allclose(map_first_affine, affine_first)


def test_the_lge_equivalent_is_never_replaced_unasked(models, cine, tmp_path):
    volume, affine = cine
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    nib.save(nib.Nifti1Image(volume, affine), folder / "case_cine.nii.gz")
    common = {"dataset_dir": str(folder), "ckpt_dir": str(models), "output_dir": str(out)}
    run_tiny(BUNDLE, ["inference.json"], **common, **FAST)
    for name in ("case_cine_seg.nii.gz", "clinical_cases.csv", "clinical_segments.csv"):
        (out / name).rename(tmp_path / name)  # moved away; the LGE-equivalent image stays
    synthesis = out / "case_cine_lge_equivalent.nii.gz"
    before = synthesis.stat().st_mtime_ns
    with pytest.raises(Exception) as error:  # refused, naming the file (not skipped in silence)
        run_tiny(BUNDLE, ["inference.json"], **common, **FAST)
    message = exception_messages(error.value)
    assert "FileExistsError" in message and str(synthesis) in message, message
    assert synthesis.stat().st_mtime_ns == before, f"{synthesis} was replaced without --overwrite true"


# ------------------------------------------------------------------------------------------------------ evaluation
@pytest.mark.parametrize("kind", ["label_values", "lge_grid", "label_grid", "cine_frames", "nan_lge", "corrupt_label"])
def test_evaluation_refuses_a_bad_test_case_naming_the_file_before_scoring(kind, source, models, tmp_path):
    """evaluate.json checks its test cases with the training's checks (same messages) before any is scored."""
    dataset = Path(shutil.copytree(source, tmp_path / "CineLGE"))
    with bundle_scripts(BUNDLE):
        import scripts.cases

        test_case = scripts.cases.patient_split(str(dataset), fractions=FRACTIONS)["test"][-1]["case"]
    paths, words = _spoil(kind, dataset / test_case)
    out = tmp_path / "eval"
    message = _refused(
        ["inference.json", "evaluate.json"], dataset_dir=str(dataset), ckpt_dir=str(models), output_dir=str(out),
        fractions=FRACTIONS,
    )  # fmt: skip
    assert all(str(path) in message for path in paths), message
    assert all(word in message for word in words), (words, message)
    assert not out.exists() or not list(out.iterdir()), "nothing is written for a refused evaluation"


# ------------------------------------------------------------------------------------- stacks stored slices-first
def test_training_and_evaluation_take_cases_stored_with_their_slices_first(source, models, tmp_path):
    """Every file of the set stored with its slice axis first ((S, X, Y, T) cines, (S, X, Y) LGE and labels): the
    slices are moved last on loading, so training sees the same slice items and tensors, and the evaluation scores
    the same numbers, as from the set stored (X, Y, S[, T])."""
    moved = tmp_path / "CineLGE_slices_first"
    for path in source.rglob("*.nii.gz"):
        target = moved / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(*slices_first(*_nifti(path))), target)
    assert nib.load(next(moved.rglob("*_cine.nii.gz"))).shape[:3] == (3, 64, 64)
    items = {}
    for name, dataset in (("last", source), ("first", moved)):
        with bundle_scripts(BUNDLE):
            workflow = tiny_workflow(BUNDLE, ["train.json"], dataset_dir=str(dataset), fractions=FRACTIONS)
            datalist = workflow.parser.get_parsed_content("train_datalist")
            preprocessing = workflow.parser.get_parsed_content("train#preprocessing")
            items[name] = [preprocessing(dict(item)) for item in datalist]
    assert len(items["last"]) == len(items["first"]) == 3  # the training patient's three slices
    for last, first in zip(items["last"], items["first"]):
        for key in ("cine", "lge", "label"):
            torch.testing.assert_close(torch.as_tensor(first[key]), torch.as_tensor(last[key]))
    summaries = {}
    for name, dataset in (("last", source), ("first", moved)):
        out = tmp_path / f"eval_{name}"
        run_tiny(BUNDLE, ["inference.json", "evaluate.json"], dataset_dir=str(dataset), ckpt_dir=str(models),
                 output_dir=str(out), fractions=FRACTIONS, **FAST)  # fmt: skip
        summaries[name] = json.loads((out / "summary.json").read_text())
    assert summaries["last"]["n_slices"] == summaries["first"]["n_slices"] == 9
    assert json.dumps(summaries["first"], sort_keys=True) == json.dumps(summaries["last"], sort_keys=True)
