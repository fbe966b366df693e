"""The TransMRSR brain MRI super-resolution bundle end to end, driven through `monai.bundle` as a user would.

Generative prior (``train_prior.json``) -> its latent centroids (``centroids.json``) -> TransMRSR x4 through-plane SR
(``train.json``) -> thick-slice versions of the held-out test subject (``scripts.prepare_lowres``) -> SR volumes
(``inference.json``) -> PSNR/SSIM against the thin-slice truth (``evaluate.json``), each stage run once, in order,
from an empty models folder (tiny.json networks: 32x32 slices; 6 small IXI phantoms at 3 mm: 3 for the prior,
1 each for SR training, validation and test). Also: the stages refuse to run out of order, the prior survives into
the SR network (frozen: unchanged; fine-tuned: changed), the 'w/o GP' ablation, the output grid of an oblique
thick-slice volume, and inference that never overwrites.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_test_utils import bundle_scripts, copy_slices_first, exception_messages, run_tiny
from monai.bundle import ConfigWorkflow

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "brain_mri_super_resolution_transmrsr"
CONFIGS = BUNDLE / "configs"
#: train.json's scalars with tiny.json on top (what every run below uses)
SETTINGS = {**json.loads((CONFIGS / "train.json").read_text()), **json.loads((CONFIGS / "tiny.json").read_text())}
SCALE, AXIS = SETTINGS["scale"], SETTINGS["through_plane_axis"]
#: SR training: two epochs (the zero-initialised output convolution passes no gradient to the decoder in the first
#: step), validated after each, so models/model.pt (the best validation PSNR) is written
SR_RUN = {"epochs": 2, "val_interval": 1}
#: the parts of the prior that SR does not use (their requires_grad is False even when the prior is fine-tuned)
UNUSED_DECODER_PARTS = ("decoder.style.", "decoder.to_images.")

pytestmark = pytest.mark.slow


def _run(files: list[str], **overrides) -> ConfigWorkflow:
    """``configs/<files>`` + tiny.json run as ``monai.bundle run`` does (``bundle_test_utils.run_tiny``)."""
    return run_tiny(BUNDLE, files, **overrides)


def _refused(files: list[str], **overrides) -> str:
    """The messages of the error with which a run stops (MONAI wraps config errors in RuntimeError)."""
    with pytest.raises(Exception) as error:
        _run(files, **overrides)
    return exception_messages(error.value)


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


def _nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image = nib.load(path)
    return np.asarray(image.dataobj, dtype=np.float32), image.affine


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _decoder(state: dict) -> dict[str, torch.Tensor]:
    """The ``decoder.*`` entries of a TransMRSR state dict, keyed as in the generator's own state dict."""
    return {k[len("decoder.") :]: v for k, v in state.items() if k.startswith("decoder.")}


def _split(data: Path) -> dict[str, list[dict[str, str]]]:
    with bundle_scripts(BUNDLE):
        import scripts.cases

        return scripts.cases.subject_split(str(data), seed=SETTINGS["split_seed"])


def _copy_prior(models: Path, ckpt_dir: Path) -> Path:
    """A new models folder holding only the prior stage's outputs (prior.pt and centroids.pt)."""
    (ckpt_dir / "prior").mkdir(parents=True)
    for name in ("prior.pt", "centroids.pt"):
        shutil.copy(models / "prior" / name, ckpt_dir / "prior" / name)
    return ckpt_dir


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> dict:
    """Every stage once, in order, into empty temporary models/, eval/ and outputs/ folders."""
    from common.data import write_ixi

    work = tmp_path_factory.mktemp("transmrsr")
    data = write_ixi(work / "data", n_subjects=6, seed=0, small=True)
    models = work / "models"
    common = {"dataset_dir": str(data), "ckpt_dir": str(models)}
    runs = [
        ("prior", ["train.json", "train_prior.json"], {"output_dir": str(work / "eval" / "prior")}),
        ("centroids", ["train.json", "centroids.json"], {}),
        ("sr", ["train.json"], {"output_dir": str(work / "eval" / "train"), **SR_RUN}),
    ]
    workflows, written = {}, {}
    for name, files, overrides in runs:
        before = _files(models)
        workflows[name] = _run(files, **common, **overrides)
        written[name] = _files(models) - before
    with bundle_scripts(BUNDLE):
        from scripts.prepare_lowres import prepare_lowres

        thick = [Path(p) for p in prepare_lowres(str(data), str(work / "thick"), scale=SCALE, axis=AXIS)]
    inputs = work / "thick" / f"x{SCALE}"
    infer = {"dataset_dir": str(inputs), "ckpt_dir": str(models)}
    workflows["inference"] = _run(["inference.json"], **infer, output_dir=str(work / "outputs"))
    workflows["evaluate"] = _run(["inference.json", "evaluate.json"], **infer, output_dir=str(work / "eval" / "x4"))
    return {
        "work": work,
        "data": data,
        "models": models,
        "thick": thick,
        "inputs": inputs,
        "outputs": work / "outputs",
        "workflows": workflows,
        "written": written,
        "split": _split(data),
    }


@pytest.fixture(scope="module")
def frozen(pipeline, tmp_path_factory) -> Path:
    """SR trained with ``freeze_prior true`` on the pipeline's prior and centroids; returns its models folder."""
    work = tmp_path_factory.mktemp("transmrsr_frozen")
    models = _copy_prior(pipeline["models"], work / "models")
    _run(
        ["train.json"],
        dataset_dir=str(pipeline["data"]),
        ckpt_dir=str(models),
        output_dir=str(work / "eval"),
        freeze_prior=True,
        **SR_RUN,
    )
    return models


# ------------------------------------------------------------------------------------------------ what each stage wrote
def test_each_stage_writes_its_files(pipeline):
    written, models = pipeline["written"], pipeline["models"]
    prior = os.path.join("prior", "prior.pt")
    assert written["prior"] == {prior, os.path.join("prior", "train_state", "checkpoint_epoch=1.pt")}
    assert written["centroids"] == {os.path.join("prior", "centroids.pt")}
    state = os.path.join("train_state", "checkpoint_epoch={}.pt")
    assert written["sr"] == {"model.pt", "trained_scale.json", state.format(1), state.format(2)}
    assert (models / "trained_scale.json").read_text() == '{"scale": 4}'  # the scale inference checks against
    # MONAI Label's bundle task loads the one file its glob of models/*.pt finds
    assert sorted(p.name for p in models.glob("*.pt")) == ["model.pt"]
    others = [p.name for p in models.rglob("*") if p.is_file() and not p.name.endswith(".pt")]
    assert others == ["trained_scale.json"], "no temporary files"


def test_prior_holds_the_ema_generator_and_it_loads(pipeline):
    checkpoint = _load(pipeline["models"] / "prior" / "prior.pt")
    assert {"g_ema", "g", "d"} <= set(checkpoint)
    generator = pipeline["workflows"]["centroids"].parser.get_parsed_content("generator_def")
    generator.load_state_dict(checkpoint["g_ema"], strict=True)
    # the EMA copy is not the raw generator (the SR decoder must take g_ema, the comparisons below would not tell)
    g, g_ema = checkpoint["g"], checkpoint["g_ema"]
    assert set(g) == set(g_ema) and any(not torch.equal(g[k], g_ema[k]) for k in g)


def test_centroids_are_k_means_of_the_prior_latents(pipeline):
    saved = _load(pipeline["models"] / "prior" / "centroids.pt")
    centroids = saved["centroids"]
    assert tuple(centroids.shape) == (SETTINGS["num_centroids"], SETTINGS["style_dim"])
    assert torch.isfinite(centroids).all()
    assert len({tuple(row.tolist()) for row in centroids}) == SETTINGS["num_centroids"], "distinct centroids"
    assert saved["generator_key"] == "g_ema"
    assert saved["num_samples"] == SETTINGS["centroid_samples"]  # recorded, so a file says what it was clustered from
    assert saved["prior"] == os.path.abspath(pipeline["models"] / "prior" / "prior.pt")


def test_centroids_are_k_means_of_the_prior_ema_mapping(pipeline, tmp_path):
    """centroids.json clusters the prior's EMA mapping: with the tiny prior's g_ema moved well away from its
    initialisation (a few GAN steps barely move an EMA), the written centroids are ``latent_centroids`` of that
    mapping at the recorded seed and count, not of the freshly built (untrained) generator's."""
    from common.nets.latent_centroids import latent_centroids

    models = _copy_prior(pipeline["models"], tmp_path / "models")
    prior = models / "prior" / "prior.pt"
    checkpoint = _load(prior)
    noise = torch.Generator().manual_seed(1)
    for key, value in checkpoint["g_ema"].items():
        if key.startswith("style.") and value.is_floating_point():  # the mapping MLP
            checkpoint["g_ema"][key] = value + 0.5 * torch.randn(value.shape, generator=noise)
    torch.save(checkpoint, prior)
    workflow = _run(["train.json", "centroids.json"], dataset_dir=str(pipeline["data"]), ckpt_dir=str(models),
                    overwrite=True)  # fmt: skip
    saved = _load(models / "prior" / "centroids.pt")
    generator = workflow.parser.get_parsed_content("generator_def", lazy=False)
    generator.load_state_dict(checkpoint["g_ema"], strict=True)
    expected = latent_centroids(generator, saved["num_samples"], SETTINGS["num_centroids"], seed=saved["seed"])
    torch.testing.assert_close(saved["centroids"], expected)
    original = _load(pipeline["models"] / "prior" / "centroids.pt")["centroids"]
    assert not torch.allclose(saved["centroids"], original, atol=1e-2)  # the moved mapping changed them


def test_centroids_are_not_recomputed_without_overwrite(pipeline):
    path = pipeline["models"] / "prior" / "centroids.pt"
    before = (path.stat().st_mtime_ns, path.read_bytes())
    message = _refused(
        ["train.json", "centroids.json"], dataset_dir=str(pipeline["data"]), ckpt_dir=str(path.parents[1])
    )
    assert "FileExistsError" in message and str(path) in message and "overwrite" in message, message
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before


def test_sr_refuses_centroids_of_an_earlier_prior_naming_the_fix(pipeline, tmp_path):
    """A prior retrained after its centroids (no centroids.json --overwrite true): a fresh SR run stops before it
    trains, instead of pulling every latent toward the old generator's codes."""
    from bundle_test_utils import nudged_state

    models = _copy_prior(pipeline["models"], tmp_path / "models")
    prior = models / "prior" / "prior.pt"
    torch.save(nudged_state(_load(prior)), prior)
    message = _refused(
        ["train.json"], dataset_dir=str(pipeline["data"]), ckpt_dir=str(models), output_dir=str(tmp_path / "eval")
    )
    assert "computed from another prior" in message and str(prior) in message and "overwrite true" in message
    assert _files(models) == {"prior/prior.pt", "prior/centroids.pt"}


def test_training_never_sees_a_test_subject(pipeline):
    split = pipeline["split"]
    assert [len(split[role]) for role in ("prior", "train", "val", "test")] == [3, 1, 1, 1]
    test = {c["image"] for c in split["test"]}
    parser = pipeline["workflows"]["prior"].parser
    seen = [item["image"] for item in parser.get_parsed_content("prior_datalist")]
    parser = pipeline["workflows"]["sr"].parser
    seen += [item["hr"] for key in ("train_datalist", "val_datalist") for item in parser.get_parsed_content(key)]
    assert len(seen) == 5 and not set(seen) & test
    # and the thick-slice inputs are the test subject's
    assert [p.name for p in pipeline["thick"]] == [os.path.basename(path) for path in sorted(test)]


# ---------------------------------------------------------------------------------------------- running out of order
@pytest.mark.parametrize(
    "files,present,missing,command",
    [
        (["train.json"], (), "prior.pt", "configs/train_prior.json"),
        (["train.json"], ("prior.pt",), "centroids.pt", "configs/centroids.json"),
        (["train.json", "centroids.json"], (), "prior.pt", "configs/train_prior.json"),
    ],
    ids=["sr_without_prior", "sr_without_centroids", "centroids_without_prior"],
)
def test_stage_before_its_predecessor_names_the_file_and_command(pipeline, tmp_path, files, present, missing, command):
    models = tmp_path / "models"
    if present:
        (models / "prior").mkdir(parents=True)
        for name in present:
            shutil.copy(pipeline["models"] / "prior" / name, models / "prior" / name)
    before = _files(models)
    message = _refused(files, dataset_dir=str(pipeline["data"]), ckpt_dir=str(models), output_dir=str(tmp_path / "e"))
    assert "FileNotFoundError" in message and str(models / "prior" / missing) in message, message
    assert command in message, message
    assert _files(models) == before, "a refused stage must not write anything"


def test_inference_before_training_names_model_pt(pipeline, tmp_path):
    out = tmp_path / "out"
    message = _refused(
        ["inference.json"], dataset_dir=str(pipeline["inputs"]), ckpt_dir=str(tmp_path / "models"), output_dir=str(out)
    )
    assert "FileNotFoundError" in message and str(tmp_path / "models" / "model.pt") in message, message
    assert "train_prior.json" in message and "centroids.json" in message and "train.json" in message, message
    assert not out.exists(), "refused before any input is read"


# ------------------------------------------------------------------------------------------- the prior in the SR model
def test_frozen_prior_is_the_sr_decoder(pipeline, frozen):
    g_ema = _load(pipeline["models"] / "prior" / "prior.pt")["g_ema"]
    for path in (frozen / "model.pt", frozen / "train_state" / "checkpoint_epoch=2.pt"):
        state = _load(path)
        state = state.get("network", state)
        decoder = _decoder(state)
        assert set(decoder) == set(g_ema), path
        changed = [k for k in g_ema if not torch.equal(decoder[k], g_ema[k])]
        assert not changed, (path, changed[:5])
    # while the rest of the network was trained
    final = _load(frozen / "train_state" / "checkpoint_epoch=2.pt")
    assert int(final["trainer"]["iteration"]) == 2
    assert {int(s["step"]) for s in final["optimizer"]["state"].values()} == {2}


def test_fine_tuned_prior_starts_from_g_ema_and_changes(pipeline):
    g_ema = _load(pipeline["models"] / "prior" / "prior.pt")["g_ema"]
    final = _load(pipeline["models"] / "train_state" / "checkpoint_epoch=2.pt")["network"]
    decoder = _decoder(final)
    assert set(decoder) == set(g_ema)
    changed = [k for k in g_ema if not torch.equal(decoder[k], g_ema[k])]
    assert changed, "freeze_prior false: SR training fine-tunes the prior"
    assert not [k for k in changed if ("decoder." + k).startswith(UNUSED_DECODER_PARTS)], "unused parts unchanged"
    assert all(torch.equal(decoder[k], g_ema[k]) for k in g_ema if ("decoder." + k).startswith(UNUSED_DECODER_PARTS))
    # the SR model carries the centroids to inference (inference.json builds the network without the files)
    centroids = _load(pipeline["models"] / "prior" / "centroids.pt")["centroids"]
    assert torch.equal(_load(pipeline["models"] / "model.pt")["centroids"], centroids)


def test_without_the_generative_prior_sr_trains_from_scratch(pipeline, tmp_path):
    """The 'w/o GP' ablation (Table 3): ``use_prior false`` (and no truncation: the centroids come from the prior)."""
    models = tmp_path / "models"
    _run(
        ["train.json"],
        dataset_dir=str(pipeline["data"]),
        ckpt_dir=str(models),
        output_dir=str(tmp_path / "eval"),
        use_prior=False,
        use_truncation=False,
        val_interval=1,
    )
    assert (models / "model.pt").is_file() and not (models / "prior").exists()
    state = _load(models / "model.pt")
    g_ema = _load(pipeline["models"] / "prior" / "prior.pt")["g_ema"]
    decoder = _decoder(state)
    assert set(decoder) == set(g_ema) and any(not torch.equal(decoder[k], g_ema[k]) for k in g_ema)
    assert not state["centroids"].any()


def test_use_prior_false_alone_is_refused_naming_use_truncation(pipeline, tmp_path):
    """Without a prior there are no prior latents to truncate toward: 'w/o GP' is use_prior false AND
    use_truncation false, and use_prior false alone says so before anything is built or written."""
    models = tmp_path / "models"
    with pytest.raises(RuntimeError) as error:  # MONAI wraps the config expression's ValueError
        _run(
            ["train.json"],
            dataset_dir=str(pipeline["data"]),
            ckpt_dir=str(models),
            output_dir=str(tmp_path / "eval"),
            use_prior=False,
            val_interval=1,
        )
    assert "use_prior false needs use_truncation false" in str(error.value.__cause__)
    assert not models.exists()


def test_edsr_baseline_trains_without_a_prior_and_its_inference_writes_sr_volumes(pipeline, tmp_path):
    """``edsr_baseline.json`` on ``train.json`` (Table 1's EDSR-like row) needs no prior stage and records that its run
    uses none; on ``inference.json`` (which has no run settings) it parses and super-resolves the thick volumes."""
    models, out = tmp_path / "models", tmp_path / "outputs"
    workflow = _run(
        ["train.json", "edsr_baseline.json"],
        dataset_dir=str(pipeline["data"]),
        ckpt_dir=str(models),
        output_dir=str(tmp_path / "eval"),
        **SR_RUN,
    )
    settings = workflow.parser.get_parsed_content("run_settings")
    assert settings["use_prior"] is False and settings["prior_weights"] is None and settings["centroids"] is None
    assert (models / "model.pt").is_file() and not (models / "prior").exists()
    assert not any(k.startswith("decoder.") for k in _load(models / "model.pt"))
    _run(
        ["inference.json", "edsr_baseline.json"],
        dataset_dir=str(pipeline["inputs"]),
        ckpt_dir=str(models),
        output_dir=str(out),
    )
    names = sorted(p.name.replace(".nii.gz", "_sr.nii.gz") for p in pipeline["thick"])
    assert sorted(p.name for p in out.iterdir()) == names
    for name in names:
        sr, _ = _nifti(out / name)
        truth, _ = _nifti(pipeline["inputs"] / "truth" / name.replace("_sr.nii.gz", ".nii.gz"))
        assert sr.shape == truth.shape and np.isfinite(sr).all()


# ------------------------------------------------------------------------------------------ thick slices and inference
def test_prepare_lowres_writes_thick_volumes_and_their_truths(pipeline):
    from common.data import thick_slice_affine

    inputs = pipeline["inputs"]
    assert sorted(p.name for p in inputs.glob("*.nii.gz")) == [p.name for p in pipeline["thick"]]
    for path in pipeline["thick"]:
        original, original_affine = _nifti(pipeline["data"] / path.name)
        thick, affine = _nifti(path)
        truth, truth_affine = _nifti(inputs / "truth" / path.name)
        keep = original.shape[AXIS] - original.shape[AXIS] % SCALE
        assert truth.shape == original.shape[:AXIS] + (keep,) + original.shape[AXIS + 1 :]
        np.testing.assert_array_equal(truth, np.take(original, np.arange(keep), axis=AXIS))
        np.testing.assert_allclose(truth_affine, original_affine, atol=1e-5)
        assert thick.shape[AXIS] * SCALE == keep and thick.shape[:AXIS] == original.shape[:AXIS]
        np.testing.assert_allclose(affine, thick_slice_affine(original_affine, AXIS, SCALE), atol=1e-4)
        thin_spacing = np.asarray(nib.load(pipeline["data"] / path.name).header.get_zooms()[:3])
        expected = thin_spacing * np.where(np.arange(3) == AXIS, SCALE, 1)
        np.testing.assert_allclose(nib.load(path).header.get_zooms()[:3], expected, rtol=1e-5)


def test_inference_writes_sr_volumes_on_the_thin_grid_in_input_units(pipeline):
    inputs, out = pipeline["inputs"], pipeline["outputs"]
    names = [p.name for p in pipeline["thick"]]
    assert sorted(p.name for p in out.iterdir()) == sorted(n.replace(".nii.gz", "_sr.nii.gz") for n in names)
    for name in names:
        sr, affine = _nifti(out / name.replace(".nii.gz", "_sr.nii.gz"))
        truth, truth_affine = _nifti(inputs / "truth" / name)
        assert sr.shape == truth.shape
        np.testing.assert_allclose(affine, truth_affine, atol=1e-4)
        assert np.isfinite(sr).all() and sr.min() >= 0  # ThresholdIntensityd: no negative intensities
        head = truth > 0.1 * np.percentile(truth, 99)
        ratio = float(sr[head].mean() / truth[head].mean())
        assert 0.5 < ratio < 2.0, ratio  # the input's units, not the network's [0, 1]


def test_evaluate_writes_one_row_per_test_volume_scoring_the_sr_volume_against_its_truth(pipeline):
    """Each row's PSNR and SSIM are those of the SR volume that inference.json writes, against the thin-slice truth,
    inside the truth's head mask (recomputed here from the files)."""
    from common.metrics import masked_psnr, masked_ssim
    from common.transforms import head_mask

    folder = pipeline["work"] / "eval" / "x4"
    names = sorted(p.name for p in pipeline["thick"])
    expected = {}
    for name in names:
        sr, _ = _nifti(pipeline["outputs"] / name.replace(".nii.gz", "_sr.nii.gz"))
        truth, _ = _nifti(pipeline["inputs"] / "truth" / name)
        head = head_mask(truth)
        expected[name] = {"psnr": masked_psnr(sr, truth, head), "ssim": masked_ssim(sr, truth, head, slice_axis=1)}
    for metric in ("psnr", "ssim"):
        with open(folder / f"{metric}_raw.csv") as f:
            rows = list(csv.reader(f))
        assert rows[0][0] == "filename", rows[0]
        assert sorted(row[0] for row in rows[1:]) == names, metric
        for row in rows[1:]:
            assert math.isfinite(float(row[1])), (metric, row)
            assert float(row[1]) == pytest.approx(expected[row[0]][metric], abs=1e-3), (metric, row, expected)
    assert not list(folder.glob("*.nii.gz")), "evaluate scores in memory; it writes no volumes"


@pytest.mark.parametrize("setting", [0, "auto"])
def test_evaluation_of_volumes_stored_slices_first_gives_the_same_scores(pipeline, tmp_path, setting):
    """The test volumes and their truth stored with the slice axis first, ``through_plane_axis`` 0 or the default
    "auto" (the thick input's axis, read from its header, is the truth's too): inference writes the SR volume
    slices-first and evaluate scores it with the same PSNR and SSIM (SSIM on the same planes: the SR volume, the truth
    and the head mask are moved slices-last for the metrics, so ``slice_axis`` counts as in training)."""
    inputs = tmp_path / "inputs"
    copy_slices_first(pipeline["inputs"], inputs)
    folder = tmp_path / "eval"
    _run(["inference.json", "evaluate.json"], dataset_dir=str(inputs), ckpt_dir=str(pipeline["models"]),
         through_plane_axis=setting, output_dir=str(folder))  # fmt: skip
    for metric in ("psnr", "ssim"):
        rows = sorted(list(csv.reader(open(folder / f"{metric}_raw.csv")))[1:])
        expected = sorted(list(csv.reader(open(pipeline["work"] / "eval" / "x4" / f"{metric}_raw.csv")))[1:])
        assert [r[0] for r in rows] == [r[0] for r in expected] and rows
        for row, reference in zip(rows, expected):
            assert float(row[1]) == pytest.approx(float(reference[1]), abs=1e-4), (metric, row, reference)


@pytest.mark.parametrize("planes", [10, 1], ids=["10-coronal-planes", "1-coronal-plane"])
def test_output_grid_of_an_oblique_thick_volume(pipeline, tmp_path, planes):
    """A thick-slice volume rotated 20 degrees about x, voxels 3 x 3 x 12 mm: the output lies on its thin grid.

    The inference runs plane by plane (x-z), so a volume of one coronal plane is a whole input, not a 2D image.
    """
    from common.data import thin_slice_affine

    thick, _ = _nifti(pipeline["thick"][0])
    thick = np.ascontiguousarray(thick[:, 25 : 25 + planes])
    angle = np.deg2rad(20.0)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([3.0, 3.0, 12.0])
    affine[:3, 3] = [-80.0, -30.0, -60.0]
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    nib.save(nib.Nifti1Image(thick, affine), folder / "oblique-T1.nii.gz")
    workflow = _run(["inference.json"], dataset_dir=str(folder), ckpt_dir=str(pipeline["models"]), output_dir=str(out))
    assert [p.name for p in out.iterdir()] == ["oblique-T1_sr.nii.gz"]
    # progress and ETA count the planes the network runs on, not the thick slices across them
    assert workflow.parser.get_parsed_content("inputs").total_slices() == planes
    sr, sr_affine = _nifti(out / "oblique-T1_sr.nii.gz")
    x, y, z = thick.shape
    assert sr.shape == (x, y, SCALE * z) and y == planes
    assert np.isfinite(sr).all() and sr.std() > 0
    np.testing.assert_allclose(sr_affine, thin_slice_affine(affine, AXIS, SCALE), atol=1e-4)
    assert not np.allclose(sr_affine, affine, atol=1e-2)


def test_inference_never_overwrites_an_output(pipeline):
    out = pipeline["outputs"]
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in out.iterdir()}
    message = _refused(
        ["inference.json"], dataset_dir=str(pipeline["inputs"]), ckpt_dir=str(pipeline["models"]), output_dir=str(out)
    )
    target = out / pipeline["thick"][0].name.replace(".nii.gz", "_sr.nii.gz")
    assert "FileExistsError" in message and str(target) in message and "overwrite" in message, message
    assert {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in out.iterdir()} == before


def test_benchmark_inference_scaling_times_tiled_volumes_and_writes_each_plane(pipeline, tmp_path):
    """The benchmark's speed rows: one thick volume tiled to N coronal planes, each super-resolved and timed."""
    with bundle_scripts(BUNDLE):
        from scripts.benchmark import _inference_scaling

        tiny = json.loads((CONFIGS / "tiny.json").read_text())
        result = _inference_scaling(str(pipeline["inputs"]), str(pipeline["models"] / "model.pt"), tiny, str(tmp_path))
    assert result["slice_counts"] == [16, 32, 64] and all(s > 0 for s in result["seconds"])
    assert result["per_slice"] > 0
    source = nib.load(sorted(pipeline["inputs"].glob("*.nii.gz"))[0])
    for n in result["slice_counts"]:
        (output,) = (tmp_path / f"slices_{n}" / "out").glob("*_sr.nii.gz")
        shape = nib.load(output).shape
        assert shape[1] == n and shape[0] == source.shape[0] and shape[2] == source.shape[2] * SCALE, shape


def test_x8_trains_into_its_own_folder_on_the_shared_prior_and_super_resolves_x8_volumes(pipeline, tmp_path):
    """The documented x8 path: ``--scale 8 --ckpt_dir models_x8 --prior_dir models/prior`` trains next to the x4
    model on the same prior (which stays as it was), records x8, and ``inference.json --scale 8 --ckpt_dir
    models_x8`` turns x8 thick volumes into volumes on their truth's grid."""
    models, data = pipeline["models"], pipeline["data"]
    prior_before = {p.name: p.read_bytes() for p in (models / "prior").iterdir() if p.is_file()}
    models_x8 = tmp_path / "models_x8"
    _run(
        ["train.json"],
        dataset_dir=str(data),
        ckpt_dir=str(models_x8),
        prior_dir=str(models / "prior"),
        output_dir=str(tmp_path / "eval"),
        scale=8,
        **SR_RUN,
    )
    assert json.loads((models_x8 / "trained_scale.json").read_text()) == {"scale": 8}
    # it found the prior through --prior_dir (SR refuses to start without prior.pt and centroids.pt)
    assert (models_x8 / "model.pt").is_file() and not (models_x8 / "prior").exists()
    assert {p.name: p.read_bytes() for p in (models / "prior").iterdir() if p.is_file()} == prior_before
    with bundle_scripts(BUNDLE):
        from scripts.prepare_lowres import prepare_lowres

        thick = [Path(p) for p in prepare_lowres(str(data), str(tmp_path / "thick"), scale=8, axis=AXIS)]
    inputs, out = tmp_path / "thick" / "x8", tmp_path / "outputs"
    _run(["inference.json"], dataset_dir=str(inputs), ckpt_dir=str(models_x8), scale=8, output_dir=str(out))
    for path in thick:
        sr, affine = _nifti(out / path.name.replace(".nii.gz", "_sr.nii.gz"))
        truth, truth_affine = _nifti(inputs / "truth" / path.name)
        assert sr.shape == truth.shape and _nifti(path)[0].shape[AXIS] * 8 == truth.shape[AXIS]
        np.testing.assert_allclose(affine, truth_affine, atol=1e-4)
        assert np.isfinite(sr).all()
