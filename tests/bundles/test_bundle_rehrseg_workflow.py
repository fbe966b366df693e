"""The REHRSeg bundle end to end, driven through `monai.bundle` as a user would, from an empty models folder.

Plain self-SR network (``train_sr.json``) -> UASR model fine-tuned from it (``train_uasr.json``) -> pseudo-HR data
(``pseudo_hr.json``: SR image, SR label, uncertainty) -> segmenter with LR and HR heads (``train.json``) -> HR
segmentations of thick-slice volumes (``inference.json``) -> Dice/HD95 on the HR and the LR grid (``evaluate.json``);
tiny.json networks on 5 small Meningioma-like phantoms (3 train, 1 val, 1 test). Also: the stages refuse to run out
of order naming the command, the uncertainty map is non-trivial and read by stage 2, no training config reaches the
HR truth, and the HR output lies on the input's field of view.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_test_utils import bundle_scripts, copy_slices_first, exception_messages, run_tiny, tiny_workflow
from common.checkpoint import extract_state_dict
from common.data.degradation import thin_slice_affine

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "thick_slice_hr_segmentation_rehrseg"
CONFIGS = BUNDLE / "configs"
SETTINGS = {**json.loads((CONFIGS / "train.json").read_text()), **json.loads((CONFIGS / "tiny.json").read_text())}
SCALE, AXIS = SETTINGS["scale"], 2  # the phantom's thick axis, which through_plane_axis "auto" reads
SR = ["train.json", "train_sr.json"]
UASR = [*SR, "train_uasr.json"]
PSEUDO = ["train.json", "pseudo_hr.json"]

pytestmark = pytest.mark.slow


def _refused(files: list[str], **overrides) -> str:
    with pytest.raises(Exception) as error:
        run_tiny(BUNDLE, files, **overrides)
    return exception_messages(error.value)


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


def _nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image = nib.load(path)
    return np.asarray(image.dataobj, dtype=np.float32), image.affine


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> dict:
    from common.data import write_meningioma

    work = tmp_path_factory.mktemp("rehrseg")
    data = write_meningioma(work / "data", n_subjects=5, seed=0, small=True)
    models = work / "models"
    common = {"dataset_dir": str(data), "ckpt_dir": str(models)}
    runs = [
        ("sr", SR, {"output_dir": str(work / "eval" / "sr"), "epochs": 2}),
        ("uasr", UASR, {"output_dir": str(work / "eval" / "uasr"), "epochs": 2}),
        ("pseudo_hr", PSEUDO, {}),
        ("train", ["train.json"], {"output_dir": str(work / "eval" / "train"), "epochs": 2}),
    ]
    workflows, written = {}, {}
    for name, files, overrides in runs:
        before = _files(models)
        workflows[name] = run_tiny(BUNDLE, files, **common, **overrides)
        written[name] = _files(models) - before
    infer = {"dataset_dir": str(data / "imagesTr"), "ckpt_dir": str(models), "output_dir": str(work / "outputs")}
    workflows["inference"] = run_tiny(BUNDLE, ["inference.json"], **infer)
    for grid in ("hr", "lr"):
        workflows[f"evaluate_{grid}"] = run_tiny(
            BUNDLE,
            ["inference.json", "evaluate.json"],
            **common,
            eval_grid=grid,
            output_dir=str(work / "eval" / f"test_{grid}"),
        )
    with bundle_scripts(BUNDLE):
        import scripts.cases

        split = scripts.cases.subject_split(str(data), seed=SETTINGS["split_seed"])
    return {"work": work, "data": data, "models": models, "workflows": workflows, "written": written, "split": split}


@pytest.fixture(scope="module")
def sr_outputs(pipeline) -> Path:
    """The inference's outputs with ``save_sr`` (segmentation, SR image, U) on the slices-last subjects; read by
    more than one test, written once."""
    out = pipeline["work"] / "outputs_save_sr"
    infer = {"dataset_dir": str(pipeline["data"] / "imagesTr"), "ckpt_dir": str(pipeline["models"])}
    run_tiny(BUNDLE, ["inference.json"], **infer, output_dir=str(out), save_sr=True)
    return out


def test_each_stage_writes_its_files(pipeline):
    written = pipeline["written"]
    assert {"sr/plain.pt"} <= written["sr"] and any(p.startswith("sr/plain_state/") for p in written["sr"])
    assert {"sr/uasr.pt"} <= written["uasr"]
    cases = [c["case"] for c in pipeline["split"]["train"]]
    expected = {f"pseudo_hr/{c}_{kind}.nii.gz" for c in cases for kind in ("image", "label", "uncertainty")}
    assert written["pseudo_hr"] == expected
    assert "model.pt" in written["train"]
    # MONAI Label's bundle task loads the one file its glob of models/*.pt finds
    assert sorted(p.name for p in pipeline["models"].glob("*.pt")) == ["model.pt"]


def test_a_self_sr_step_holds_sr_batch_size_patches(pipeline):
    """``sr_batch_size`` counts patches per optimizer step (the public code's ``batch_size_sr``): the loader batches
    ``sr_batch_size / sr_patches_per_volume`` volumes; until bundle 0.2.3 it took ``sr_batch_size`` volumes."""
    parser = pipeline["workflows"]["sr"].parser
    loader = parser.get_parsed_content("train#dataloader")
    batch, per_volume = SETTINGS["sr_batch_size"], SETTINGS["sr_patches_per_volume"]
    assert per_volume > 1 and loader.batch_size == batch // per_volume
    assert next(iter(loader))["lr"].shape[0] == batch
    n_train = len(pipeline["split"]["train"])
    assert parser.get_parsed_content("train#trainer").state.iteration == 2 * -(-n_train // loader.batch_size)


def test_sr_batch_size_must_be_a_multiple_of_the_patches_per_volume(pipeline):
    with bundle_scripts(BUNDLE):
        from scripts.sr_batches import volumes_per_step

        assert volumes_per_step(32, 16) == 2 and volumes_per_step(16, 16) == 1
        with pytest.raises(ValueError, match="must be >= 1"):
            volumes_per_step(0, 4)
    message = _refused(SR, dataset_dir=str(pipeline["data"]), sr_batch_size=3, sr_patches_per_volume=2)
    assert "sr_batch_size 3" in message and "not a multiple of sr_patches_per_volume 2" in message


def test_the_sr_stages_train_in_the_channels_last_layout_and_inference_reads_their_weights(pipeline):
    from common.acceleration import is_channels_last

    for stage in ("sr", "uasr"):  # train_sr.json's sr_channels_last (timed in docs/README.md "Speed")
        network = pipeline["workflows"][stage].parser.get_parsed_content("sr_trained")
        assert is_channels_last(network) and any(p.ndim == 5 and not p.is_contiguous() for p in network.parameters())
    # pseudo_hr.json ran the saved weights through contiguous networks: the very tensors train_sr.json saved
    saved = extract_state_dict(
        torch.load(pipeline["models"] / "sr" / "plain.pt", map_location="cpu", weights_only=True)
    )
    network = pipeline["workflows"]["pseudo_hr"].parser.get_parsed_content("sr_network")
    assert not is_channels_last(network) and all(p.is_contiguous() for p in network.parameters())
    assert saved.keys() == network.state_dict().keys()
    assert all(torch.equal(value, saved[key]) for key, value in network.state_dict().items())


def test_the_uasr_model_starts_from_the_plain_one_and_then_differs(pipeline):
    plain, uasr = (
        extract_state_dict(torch.load(pipeline["models"] / "sr" / name, map_location="cpu", weights_only=True))
        for name in ("plain.pt", "uasr.pt")
    )
    shared = [k for k in plain if k.startswith(("stem", "layer")) and k in uasr]  # the encoder
    assert shared and all(plain[k].shape == uasr[k].shape for k in shared)
    assert any(not torch.equal(plain[k], uasr[k]) for k in shared), "fine-tuned, not a copy"
    assert any(k.startswith("head.") and k not in plain for k in uasr)


def test_pseudo_hr_covers_the_lr_extent_and_the_uncertainty_is_non_trivial(pipeline):
    case = pipeline["split"]["train"][0]
    lr, lr_affine = _nifti(Path(case["image"]))
    models = pipeline["models"] / "pseudo_hr"
    image, affine = _nifti(models / f"{case['case']}_image.nii.gz")
    label, _ = _nifti(models / f"{case['case']}_label.nii.gz")
    u, _ = _nifti(models / f"{case['case']}_uncertainty.nii.gz")
    assert image.shape == label.shape == u.shape == (*lr.shape[:2], SCALE * lr.shape[2])
    np.testing.assert_allclose(affine, thin_slice_affine(lr_affine, AXIS, SCALE), atol=1e-5)
    assert set(np.unique(label)) <= {0.0, 1.0}
    assert 0.0 < u.min() and u.max() < 1.0 and u.std() > 1e-4, "U is neither constant nor zero"
    # written in the input's intensity units (the networks see it divided by its 99.5th percentile)
    assert np.isfinite(image).all() and abs(float(image.mean()) / float(lr.mean()) - 1) < 0.5


def test_stage_2_reads_the_uncertainty_map(pipeline):
    parser = pipeline["workflows"]["train"].parser
    items = parser.get_parsed_content("train_datalist")
    assert all(
        item["uncertainty"].endswith("_uncertainty.nii.gz") and os.path.isfile(item["uncertainty"]) for item in items
    )
    batch = parser.get_parsed_content("train#preprocessing")(dict(items[0]))
    u, _ = _nifti(Path(items[0]["uncertainty"]))
    assert batch["uncertainty"].shape[-1] == u.shape[-1] // SCALE == batch["image"].shape[-1]
    assert float(batch["uncertainty"].std()) > 1e-5
    # min-max scaled per volume before the crop (the public code's zeroonenorm): U near the error scale (a few
    # hundredths) would leave the weight 1 - 0.99 U near 1 everywhere
    assert 0.0 <= float(batch["uncertainty"].min()) and float(batch["uncertainty"].max()) <= 1.0
    assert float(batch["uncertainty"].max()) > 2 * float(u.max())
    trainer = parser.get_parsed_content("train#trainer")
    assert trainer.use_uncertainty and trainer.lambda_kd > 0 and "teacher" in trainer.frozen_networks


def test_stage_2_lr_input_is_the_reacquired_pseudo_hr_or_the_subjects_own_thick_slices(pipeline):
    """``lr_input``: "pseudo_hr" re-acquires the SR image as thick slices (blur, decimate), "acquired" feeds the
    subject's own thick-slice image (what inference sees); both keep the thin pseudo-HR label and the LR-grid U."""
    common = {"dataset_dir": str(pipeline["data"]), "ckpt_dir": str(pipeline["models"]), "lambda_kd": 0.0}
    batches = {}
    for lr_input in ("pseudo_hr", "acquired"):
        with bundle_scripts(BUNDLE):
            parser = tiny_workflow(BUNDLE, ["train.json"], **common, lr_input=lr_input).parser
            item = parser.get_parsed_content("train_datalist")[0]
            batches[lr_input] = parser.get_parsed_content("train#preprocessing")(dict(item))
        source = item["image"]
        assert source.endswith("_image.nii.gz") == (lr_input == "pseudo_hr"), source
    thick, _ = _nifti(Path(pipeline["split"]["train"][0]["image"]))
    reacquired, acquired = batches["pseudo_hr"], batches["acquired"]
    for batch in batches.values():
        assert batch["image"].shape[-1] == batch["uncertainty"].shape[-1] == batch["hr_label"].shape[-1] // SCALE
    # the same crop (same seed) of two different inputs: the real thick slices, scaled, and the re-acquired SR image
    assert acquired["image"].shape == reacquired["image"].shape
    assert not torch.allclose(acquired["image"], reacquired["image"])
    assert thick.shape[-1] == acquired["image"].shape[-1]
    with pytest.raises(Exception) as error:
        with bundle_scripts(BUNDLE):
            tiny_workflow(BUNDLE, ["train.json"], **common, lr_input="raw").parser.get_parsed_content("train_datalist")
    assert "lr_input must be one of" in exception_messages(error.value)


def test_stage_2_lr_target_is_the_annotation_or_the_pseudo_hr_label_s_thick_slices(pipeline):
    """``lr_target``: "annotation" (default) trains the LR head on the subject's own LR label; "pseudo_hr" on the
    pseudo-HR label re-acquired as thick slices (partial-volume majority), the public code's target, where U has
    errors to discount; the HR target is the pseudo-HR label either way."""
    common = {"dataset_dir": str(pipeline["data"]), "ckpt_dir": str(pipeline["models"]), "lambda_kd": 0.0}
    items, batches = {}, {}
    for target in ("annotation", "pseudo_hr"):
        with bundle_scripts(BUNDLE):
            parser = tiny_workflow(BUNDLE, ["train.json"], **common, lr_target=target).parser
            items[target] = parser.get_parsed_content("train_datalist")[0]
            batches[target] = parser.get_parsed_content("train#preprocessing")(dict(items[target]))
            assert parser.get_parsed_content("run_settings")["lr_target"] == target
    assert items["annotation"]["label"] == pipeline["split"]["train"][0]["label"]
    assert items["pseudo_hr"]["label"] == items["pseudo_hr"]["hr_label"]
    for batch in batches.values():
        assert batch["label"].shape == batch["image"].shape
        assert set(torch.unique(batch["label"]).tolist()) <= {0.0, 1.0}
    with pytest.raises(Exception) as error:
        with bundle_scripts(BUNDLE):
            tiny_workflow(BUNDLE, ["train.json"], **common, lr_target="hr").parser.get_parsed_content("train_datalist")
    assert "lr_target must be one of" in exception_messages(error.value)


def test_stage_2_uncertainty_scaling_minmax_or_raw(pipeline):
    """``uncertainty_scaling``: "minmax" (default, the public code's) scales each subject's U to [0, 1] before the
    crop; "raw" keeps U as the UASR head wrote it, so the weights follow the error scale it learnt; either is
    recorded in the run settings (a resume with the other is refused); anything else is refused by name."""
    common = {"dataset_dir": str(pipeline["data"]), "ckpt_dir": str(pipeline["models"]), "lambda_kd": 0.0}
    batches = {}
    for scaling in ("minmax", "raw"):
        with bundle_scripts(BUNDLE):
            parser = tiny_workflow(BUNDLE, ["train.json"], **common, uncertainty_scaling=scaling).parser
            item = parser.get_parsed_content("train_datalist")[0]
            batches[scaling] = parser.get_parsed_content("train#preprocessing")(dict(item))
            assert parser.get_parsed_content("run_settings")["uncertainty_scaling"] == scaling
    written, _ = _nifti(Path(item["uncertainty"]))
    # the same crop (same seed): min-max is an increasing affine map of the raw values on the subject's whole map
    raw, scaled = batches["raw"]["uncertainty"], batches["minmax"]["uncertainty"]
    assert raw.shape == scaled.shape and float(raw.max()) > float(raw.min())
    assert written.min() <= float(raw.min()) and float(raw.max()) <= written.max()
    span = float(written.max() - written.min())
    torch.testing.assert_close(scaled, (raw - float(written.min())) / span, atol=1e-3, rtol=1e-3)
    assert float(scaled.max()) > 2 * float(raw.max())
    with pytest.raises(Exception) as error:
        with bundle_scripts(BUNDLE):
            parser = tiny_workflow(BUNDLE, ["train.json"], **common, uncertainty_scaling="softmax").parser
            parser.get_parsed_content("train#preprocessing")
    assert "uncertainty_scaling must be one of" in exception_messages(error.value)


@pytest.mark.parametrize("setting", ["auto", 0])
def test_volumes_with_the_slices_on_another_axis_train_and_segment_the_same(pipeline, sr_outputs, tmp_path, setting):
    """``through_plane_axis`` 0, or the default "auto" (each case's thick axis read from its header; the thin-slice
    pseudo-HR data and truths move as their thick input): the configs move the slices last on loading
    (``common.transforms.SlicesLastd``), so every stage sees the very tensors of the slices-last files, and the
    written pseudo-HR data and segmentations come back in the input's own layout (array order, affine, extent)."""
    data, models = tmp_path / "Meningioma", tmp_path / "models"
    copy_slices_first(pipeline["data"], data)
    copy_slices_first(pipeline["data"].parent / "Meningioma_HR", tmp_path / "Meningioma_HR")
    copy_slices_first(pipeline["models"] / "pseudo_hr", tmp_path / "expected_pseudo_hr")
    moved = {"dataset_dir": str(data), "through_plane_axis": setting}
    # self-SR patches (train_sr.json; same seed, same draws)
    batches = []
    for overrides in ({"dataset_dir": str(pipeline["data"])}, moved):
        with bundle_scripts(BUNDLE):
            parser = tiny_workflow(BUNDLE, SR, **overrides).parser
            item = parser.get_parsed_content("sr_datalist")[0]
            batches.append(parser.get_parsed_content("train#preprocessing")(dict(item)))
    for key in ("lr", "hr"):
        torch.testing.assert_close(batches[1][0][key], batches[0][0][key])
    # pseudo-HR data: the trained self-SR networks on the moved volumes, written in their layout
    shutil.copytree(pipeline["models"] / "sr", models / "sr")
    run_tiny(BUNDLE, PSEUDO, **moved, ckpt_dir=str(models))
    for path in sorted((tmp_path / "expected_pseudo_hr").glob("*.nii.gz")):
        written, affine = _nifti(models / "pseudo_hr" / path.name)
        expected, expected_affine = _nifti(path)
        np.testing.assert_allclose(written, expected, atol=1e-4, err_msg=path.name)
        np.testing.assert_allclose(affine, expected_affine, atol=1e-5)
    # stage 2's training batch and its validation volume
    stage_2 = {}
    for overrides in ({"dataset_dir": str(pipeline["data"]), "ckpt_dir": str(pipeline["models"])},
                      {**moved, "ckpt_dir": str(models)}):  # fmt: skip
        with bundle_scripts(BUNDLE):
            parser = tiny_workflow(BUNDLE, ["train.json"], **overrides, lambda_kd=0.0).parser
            train = parser.get_parsed_content("train#preprocessing")(
                dict(parser.get_parsed_content("train_datalist")[0])
            )
            val = parser.get_parsed_content("validate#preprocessing")(
                dict(parser.get_parsed_content("val_datalist")[0])
            )
            stage_2[overrides["dataset_dir"]] = (train, val)
    (train, val), (moved_train, moved_val) = stage_2.values()
    for key in ("image", "label", "hr_label", "uncertainty"):
        torch.testing.assert_close(moved_train[key], train[key], atol=1e-4, rtol=1e-4)
    for key in ("image", "label"):
        torch.testing.assert_close(torch.as_tensor(moved_val[key]), torch.as_tensor(val[key]))
    # inference (with the SR image and U): the slices-first volume's outputs are the slices-last one's, stored
    # slices-first on the input's affine
    out = tmp_path / "outputs" / "first"
    run_tiny(BUNDLE, ["inference.json"], dataset_dir=str(data / "imagesTr"), ckpt_dir=str(pipeline["models"]),
             output_dir=str(out), through_plane_axis=setting, save_sr=True)  # fmt: skip
    outputs = {name: {p.name: _nifti(p) for p in folder.glob("*.nii.gz")}
               for name, folder in (("last", sr_outputs), ("first", out))}  # fmt: skip
    assert sorted(outputs["first"]) == sorted(outputs["last"]) and len(outputs["last"]) == 3 * 5
    for name, (expected, expected_affine) in outputs["last"].items():
        written, affine = outputs["first"][name]
        np.testing.assert_allclose(written, np.moveaxis(expected, 2, 0), atol=1e-5, err_msg=name)
        np.testing.assert_allclose(affine[:, :3], expected_affine[:, [2, 0, 1]], atol=1e-5)
        np.testing.assert_allclose(affine[:, 3], expected_affine[:, 3], atol=1e-5)
    assert any(written.std() > 0 for written, _ in outputs["first"].values())
    # evaluation against the HR truth stored slices-first: the same Dice and HD95 mm on both grids
    for grid in ("hr", "lr"):
        folder = tmp_path / "eval" / grid
        run_tiny(BUNDLE, ["inference.json", "evaluate.json"], dataset_dir=str(data), ckpt_dir=str(pipeline["models"]),
                 through_plane_axis=setting, eval_grid=grid, output_dir=str(folder))  # fmt: skip
        for metric in ("dice", "hd95_mm"):
            rows = list(csv.reader(open(folder / f"{metric}_raw.csv")))
            expected = list(csv.reader(open(pipeline["work"] / "eval" / f"test_{grid}" / f"{metric}_raw.csv")))
            assert len(rows) == len(expected) == 2 and rows[1][0] == expected[1][0], (rows, expected)
            np.testing.assert_allclose(float(rows[1][1]), float(expected[1][1]), atol=1e-4, equal_nan=True)


def test_no_training_config_reaches_the_hr_truth(pipeline):
    skip = ("evaluate.json", "inference.json", "metadata.json")  # the evaluation, the inference it layers on, prose
    training = [p.name for p in CONFIGS.glob("*.json") if p.name not in skip]
    assert {"train_sr.json", "train_uasr.json", "pseudo_hr.json", "train.json", "lr_baseline.json"} <= set(training)
    for name in training:  # every config but the evaluation's (and the inference it layers on)
        text = (CONFIGS / name).read_text()
        assert "_HR" not in text and "@hr_dir" not in text and '"hr_dir"' not in text and "labelsHR" not in text, name
    seen = []
    for name in ("sr", "uasr", "train"):
        parser = pipeline["workflows"][name].parser
        for key in ("sr_datalist", "train_datalist", "val_datalist"):
            if parser.get(key) is not None:
                seen += [v for item in parser.get_parsed_content(key) for v in item.values() if isinstance(v, str)]
    assert seen and not [v for v in seen if "Meningioma_HR" in v]
    test = {c["image"] for c in pipeline["split"]["test"]}
    assert not test & set(seen)


def test_inference_writes_hr_segmentations_on_the_input_extent(pipeline):
    outputs = sorted((pipeline["work"] / "outputs").glob("*_hrseg.nii.gz"))
    inputs = sorted((pipeline["data"] / "imagesTr").glob("*.nii.gz"))
    assert len(outputs) == len(inputs) == 5
    for source, output in zip(inputs, outputs):
        lr, lr_affine = _nifti(source)
        seg, affine = _nifti(output)
        assert seg.shape == (*lr.shape[:2], SCALE * lr.shape[2]) and set(np.unique(seg)) <= {0.0, 1.0}
        np.testing.assert_allclose(affine, thin_slice_affine(lr_affine, AXIS, SCALE), atol=1e-5)
        # first and last slice centres lie half a thin slice inside the thick volume's outer faces
        step, n = lr_affine[:3, AXIS], lr.shape[AXIS]
        first_face, last_face = lr_affine[:3, 3] - step / 2, lr_affine[:3, 3] + (n - 0.5) * step
        last = (affine @ np.array([0, 0, SCALE * n - 1, 1]))[:3]
        np.testing.assert_allclose(affine[:3, 3], first_face + step / SCALE / 2, atol=1e-4)
        np.testing.assert_allclose(last, last_face - step / SCALE / 2, atol=1e-4)


def test_inference_can_write_the_sr_image_and_the_uncertainty_map_beside_each_segmentation(
    pipeline, sr_outputs, tmp_path
):
    """``save_sr``: the plain self-SR image (in the input's intensity units) and the UASR model's U, fed the input and
    the segmenter's own LR prediction, on the HR segmentation's thin grid and affine; the segmentation is the one
    written without them. Missing SR weights are refused naming the file and the command; nothing is overwritten."""
    from common.data import interpolate_to_thin_slices

    models, out = pipeline["models"], sr_outputs
    infer = {"dataset_dir": str(pipeline["data"] / "imagesTr"), "ckpt_dir": str(models), "output_dir": str(out)}
    inputs = sorted((pipeline["data"] / "imagesTr").glob("*.nii.gz"))
    assert len(list(out.glob("*.nii.gz"))) == 3 * len(inputs)
    for source in inputs:
        stem = source.name[: -len(".nii.gz")]
        lr, _ = _nifti(source)
        seg, affine = _nifti(out / f"{stem}_hrseg.nii.gz")
        plain_seg, _ = _nifti(pipeline["work"] / "outputs" / f"{stem}_hrseg.nii.gz")
        np.testing.assert_array_equal(seg, plain_seg)
        sr, sr_affine = _nifti(out / f"{stem}_sr.nii.gz")
        u, u_affine = _nifti(out / f"{stem}_uncertainty.nii.gz")
        assert sr.shape == u.shape == seg.shape
        np.testing.assert_allclose(sr_affine, affine, atol=1e-5)
        np.testing.assert_allclose(u_affine, affine, atol=1e-5)
        cubic = interpolate_to_thin_slices(lr, AXIS, SCALE, order=3)
        assert np.corrcoef(sr.ravel(), cubic.ravel())[0, 1] > 0.9  # the image channel, in the input's units
        assert abs(float(sr.mean()) / float(lr.mean()) - 1) < 0.2
        assert 0.0 <= u.min() and u.max() <= 1.0 and u.std() > 1e-4
    before = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    message = _refused(["inference.json"], **infer, save_sr=True)
    assert "FileExistsError" in message and "_hrseg.nii.gz already exists" in message, message
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == before
    message = _refused(["inference.json"], **dict(infer, output_dir=str(tmp_path / "b")), save_sr=True,
                       sr_dir=str(tmp_path / "no_sr"))  # fmt: skip
    assert "plain.pt" in message and "train_sr.json" in message, message
    # the SR window takes 4 thick slices: a 3-slice volume is set aside and named (the segmentation alone takes it)
    volume, affine = _nifti(inputs[0])
    thin = tmp_path / "thin" / "three_0000.nii.gz"
    thin.parent.mkdir()
    nib.save(nib.Nifti1Image(volume[..., :3], affine), thin)
    folder = {"dataset_dir": str(thin.parent), "ckpt_dir": str(models)}
    message = _refused(["inference.json"], **folder, output_dir=str(tmp_path / "c"), save_sr=True)
    assert "UnreadableInputError" in message and str(thin) in message, message
    run_tiny(BUNDLE, ["inference.json"], **folder, output_dir=str(tmp_path / "d"))
    assert nib.load(tmp_path / "d" / "three_0000_hrseg.nii.gz").shape[AXIS] == 3 * SCALE


def test_evaluation_scores_the_test_subject_on_both_grids(pipeline):
    """Each grid's evaluation scores the head of that grid against the truth of that grid: the HR prediction (s x the
    slices) against the held-back HR label, the LR one against the LR annotation; the CSV's Dice is that pair's."""
    shapes = {}
    for grid in ("hr", "lr"):
        folder = pipeline["work"] / "eval" / f"test_{grid}"
        rows = list(csv.reader(open(folder / "dice_raw.csv")))
        assert len(rows) == 2 and rows[1][0].startswith(pipeline["split"]["test"][0]["case"])
        assert (folder / "hd95_mm_raw.csv").is_file()
        parser = pipeline["workflows"][f"evaluate_{grid}"].parser
        assert parser.get_parsed_content("inferer#head") == grid
        (item,) = parser.get_parsed_content("datalist")
        truth = np.asarray(nib.load(item["label"]).dataobj) > 0
        (output,) = parser.get_parsed_content("evaluator").state.output  # the one test subject's pred and label
        pred = np.asarray(output["pred"])[1] > 0.5  # one-hot: the foreground channel
        assert pred.shape == truth.shape
        overlap = 2 * np.logical_and(pred, truth).sum() / (pred.sum() + truth.sum())
        assert float(rows[1][1]) == pytest.approx(overlap, abs=1e-5)
        shapes[grid] = truth.shape
    assert shapes["hr"][AXIS] == SCALE * shapes["lr"][AXIS]  # scored on the thin-slice grid


def test_stages_refuse_to_run_out_of_order_naming_the_command(tmp_path):
    from common.data import write_meningioma

    data = write_meningioma(tmp_path / "data", n_subjects=3, seed=1, small=True)
    empty = {"dataset_dir": str(data), "ckpt_dir": str(tmp_path / "models")}
    message = _refused(UASR, **empty)
    assert "plain.pt" in message and "train_sr.json" in message, message
    message = _refused(PSEUDO, **empty)
    assert "plain.pt" in message and "train_sr.json" in message, message
    message = _refused(["train.json"], **empty)
    assert "uasr.pt" in message and "train_uasr.json" in message, message
    message = _refused(["train.json"], **empty, lambda_kd=0.0, use_uncertainty=True)
    assert "pseudo_hr" in message and "pseudo_hr.json" in message, message
    assert not (tmp_path / "models" / "model.pt").exists()


def test_pseudo_hr_never_overwrites(pipeline):
    target = pipeline["models"] / "pseudo_hr"
    before = {p: p.stat().st_mtime_ns for p in target.iterdir()}
    message = _refused(PSEUDO, dataset_dir=str(pipeline["data"]), ckpt_dir=str(pipeline["models"]))
    assert "FileExistsError" in message and "--overwrite true" in message, message
    assert {p: p.stat().st_mtime_ns for p in target.iterdir()} == before


def test_benchmark_inference_scaling_times_tiled_volumes_of_both_networks(pipeline, tmp_path):
    """The benchmark's speed rows: one LR volume tiled to N thick slices, segmented (inference.json) and
    super-resolved (self-SR), each timed; the segmentation of N slices has N x s thin slices."""
    models = pipeline["models"]
    with bundle_scripts(BUNDLE):
        from scripts.benchmark import SCALING_SLICES, _inference_scaling

        tiny = json.loads((CONFIGS / "tiny.json").read_text())
        path = str(sorted((pipeline["data"] / "imagesTr").glob("*.nii.gz"))[0])
        weights = {"REHRSeg": str(models / "model.pt"), "self-SR": str(models / "sr" / "plain.pt")}
        result = _inference_scaling(path, weights, tiny, str(tmp_path))
    assert set(result) == {"REHRSeg inference", "self-SR inference"}
    for scaling in result.values():
        assert scaling["slice_counts"] == list(SCALING_SLICES) and all(s > 0 for s in scaling["seconds"])
    for n in SCALING_SLICES:
        (output,) = (tmp_path / f"slices_{n}" / "out").glob("*_hrseg.nii.gz")
        assert nib.load(output).shape[AXIS] == n * SCALE


def test_benchmark_overlay_figure_shows_the_largest_lesion_where_the_slices_are_thick(pipeline, tmp_path, monkeypatch):
    """``overlay.png``: the held-out subject with the largest lesion, cut at the coronal plane where it is widest."""
    models = pipeline["models"]
    with bundle_scripts(BUNDLE):
        import scripts.figures as figures
        from scripts.benchmark import _test_cases, write_overlay_figure
        from scripts.figures import busiest_plane

        drawn = []
        draw = figures.overlay_figure
        monkeypatch.setattr(figures, "overlay_figure", lambda *args: drawn.append(args) or draw(*args))

        label = np.zeros((4, 5, 6))
        label[1, 3, :] = label[2, 3, 1] = label[0, 1, 0] = 1
        assert busiest_plane(label, axis=1) == 3 and busiest_plane(label, axis=0) == 1
        cases = _test_cases(str(pipeline["data"]))
        weights = {name: str(models / "model.pt") for name in ("LR seg", "HR head", "REHRSeg")}
        tiny = json.loads((CONFIGS / "tiny.json").read_text())
        png = write_overlay_figure(cases, weights, tiny, str(tmp_path / "overlay.png"), seed=0)
    import matplotlib.image

    image = matplotlib.image.imread(png)
    assert cases and image.shape[1] > 2 * image.shape[0] and image.std() > 0.05  # five panels side by side
    largest = max(cases, key=lambda c: int((c["hr_label"] > 0).sum()))
    sizes = sorted(int((c["hr_label"] > 0).sum()) for c in cases)
    assert len(cases) > 1 and sizes[-1] > sizes[0]  # the choice of case is tested only where the lesions differ
    ((_, hr_image, hr_label, _, _, plane, title),) = drawn
    assert hr_label is largest["hr_label"] and hr_image is largest["hr_image"] and largest["name"] in title
    assert plane == busiest_plane(largest["hr_label"], axis=1) and f"y = {plane}" in title


def test_benchmark_scores_u_and_the_boundary_rule_on_the_pseudo_hr_label_errors(pipeline, monkeypatch):
    """The ``UASR U`` rows: per test subject the ROC AUC, for the pseudo-HR label's wrong voxels, of the UASR model's U
    and of closeness to the pseudo-HR label's boundary. A U that is the error itself scores 1; a constant U 0.5."""
    models = pipeline["models"]
    with bundle_scripts(BUNDLE):
        import scripts.benchmark as benchmark
        import scripts.pseudo_hr as pseudo_hr  # builds the benchmark's sliding SR inferers (``sliding_sr``)

        cases = benchmark._test_cases(str(pipeline["data"]))[:1]
        tiny = json.loads((CONFIGS / "tiny.json").read_text())
        plain, uasr = str(models / "sr" / "plain.pt"), str(models / "sr" / "uasr.pt")
        plain_outputs = benchmark._plain_self_sr(plain, tiny, cases)
        rows = benchmark._score_uncertainty(plain_outputs, uasr, tiny, cases)
        assert set(rows) == {"UASR U", "label-boundary distance"}
        for method in rows.values():
            assert set(method) == {"u_label_auc"} and set(method["u_label_auc"]) == {cases[0]["name"]}
        boundary = rows["label-boundary distance"]["u_label_auc"][cases[0]["name"]]
        assert boundary > 0.7  # the tiny network's label errors lie along its label's boundary

        # known U: the truth's own error map (AUC 1), then a constant (AUC 0.5)
        real = pseudo_hr.SlidingSliceSR

        class KnownU(real):
            def __call__(self, x, net):
                out = real.__call__(self, x, net)
                if net.head_type == "uasr":
                    label = real.__call__(self, x, plain_net)[0, 1] > 0
                    wrong = label.numpy() != (cases[0]["hr_label"] > 0.5)
                    out[0, 2] = torch.as_tensor(wrong, dtype=out.dtype) * known["scale"]
                return out

        plain_net = benchmark._self_sr(plain, tiny)
        monkeypatch.setattr(pseudo_hr, "SlidingSliceSR", KnownU)
        for scale, expected in ((1.0, 1.0), (0.0, 0.5)):
            known = {"scale": scale}
            rows = benchmark._score_uncertainty(plain_outputs, uasr, tiny, cases)
            score = rows["UASR U"]["u_label_auc"][cases[0]["name"]]
            assert score == pytest.approx(expected)


def test_benchmark_trains_a_stopped_segmenter_again_although_its_best_checkpoint_exists(tmp_path, monkeypatch):
    """A segmenter's ``model.pt`` is its best validation checkpoint: a continued benchmark trains a stopped one again
    and reuses the finished ones, the SR networks and the pseudo-HR data."""
    import common.benchmarking.workflow as workflow

    stop, calls = {"folder": "HR_head"}, []

    def fake_run_workflow(bundle_root, files, values):
        if "pseudo_hr.json" in files:
            os.makedirs(os.path.join(values["ckpt_dir"], "pseudo_hr"), exist_ok=True)
            calls.append("pseudo")
        elif "train_sr.json" in files:
            name = "uasr.pt" if "train_uasr.json" in files else "plain.pt"
            os.makedirs(os.path.join(values["ckpt_dir"], "sr"), exist_ok=True)
            Path(values["ckpt_dir"], "sr", name).touch()
            calls.append(name)
        else:
            Path(values["ckpt_dir"], "model.pt").touch()  # the first validation's best checkpoint
            calls.append(os.path.basename(values["ckpt_dir"]))
            if calls[-1] == stop["folder"]:
                raise RuntimeError("stopped after the first validation")

    with bundle_scripts(BUNDLE):
        import scripts.benchmark as benchmark

        monkeypatch.setattr(benchmark, "run_workflow", fake_run_workflow)  # SR stages, pseudo-HR data
        monkeypatch.setattr(workflow, "run_workflow", fake_run_workflow)  # segmenters (StageCache.train)
        arguments = (0, "data", str(tmp_path), {}, (1, 1, 1, 1), ("LR seg", "HR head", "REHRSeg"))
        with pytest.raises(RuntimeError, match="stopped"):
            benchmark._train_seed(*arguments)
        assert calls == ["plain.pt", "uasr.pt", "pseudo", "LR_seg", "HR_head"]
        stop["folder"], calls[:] = None, []
        models = benchmark._train_seed(*arguments)
    assert calls == ["HR_head", "REHRSeg"]
    assert sorted(models) == ["HR head", "LR seg", "REHRSeg", "UASR U", "self-SR"]


def test_benchmark_smore_init_variant_trains_the_sr_stages_alone(tmp_path, monkeypatch):
    """``--variants "self-SR (SMORE init)"``: the plain network, the pre-upsampler, then the plain network on its
    volumes (sr_initialization smore, its own file); no UASR model, pseudo-HR data or segmenter."""
    calls = []

    def fake_run_workflow(bundle_root, files, values):
        name = "pre_upsampler.pt" if "train_pre_upsampler.json" in files else values.get("sr_final_name", "plain.pt")
        os.makedirs(os.path.join(values["ckpt_dir"], "sr"), exist_ok=True)
        Path(values["ckpt_dir"], "sr", name).touch()
        calls.append((name, values.get("sr_initialization")))

    with bundle_scripts(BUNDLE):
        import scripts.benchmark as benchmark

        monkeypatch.setattr(benchmark, "run_workflow", fake_run_workflow)
        models = benchmark._train_seed(0, "data", str(tmp_path), {}, (1, 1, 1, 1), ("self-SR (SMORE init)",))
        with pytest.raises(ValueError, match="unknown variants"):
            benchmark.run(None, str(tmp_path), variants="SMORE init")
    assert calls == [("plain.pt", None), ("pre_upsampler.pt", None), ("plain_smore.pt", "smore")]
    assert sorted(models) == ["pre-upsampled", "self-SR", "self-SR (SMORE init)"]


def test_benchmark_scores_a_fresh_pre_upsampler_as_the_cubic_zoom(pipeline, tmp_path):
    """The ``pre-upsampled`` rows refine the cubic zoom: a pre-upsampler at its initialisation (a zero residual) scores
    what the ``cubic`` row scores; one whose residual is not zero scores otherwise."""
    from common.nets import SMOREPreUpsampler

    tiny = json.loads((CONFIGS / "tiny.json").read_text())
    network = SMOREPreUpsampler(tiny["pre_upsampler_channels"], tiny["pre_upsampler_blocks"])
    weights = tmp_path / "pre_upsampler.pt"
    torch.save(network.state_dict(), weights)
    with bundle_scripts(BUNDLE):
        import scripts.benchmark as benchmark

        cases = benchmark._test_cases(str(pipeline["data"]))[:1]
        cubic = benchmark._score_self_sr(None, cases)["cubic"]
        fresh = benchmark._score_self_sr(benchmark._pre_upsampled(str(weights), tiny, cases), cases, "pre-upsampled")
        torch.nn.init.normal_(network.body.tail.weight, std=0.05)
        torch.save(network.state_dict(), weights)
        moved = benchmark._score_self_sr(benchmark._pre_upsampled(str(weights), tiny, cases), cases, "pre-upsampled")
    name = cases[0]["name"]
    for metric in ("psnr", "ssim"):
        assert fresh["pre-upsampled"][metric][name] == pytest.approx(cubic[metric][name], rel=1e-5)
        assert moved["pre-upsampled"][metric][name] != pytest.approx(cubic[metric][name], rel=1e-3)
