"""The DTI -> LGE style-transfer bundle end to end, driven through `monai.bundle` as a user would.

Segmentor -> CycleGANSeg -> folder inference -> DTI -> MI-mask pipeline -> evaluation, with tiny networks on a
tiny paired dataset (4 paired cases, so the paired split has a train, a val and a test case).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_test_utils import (
    bundle_cli,
    bundle_scripts,
    exception_messages,
    run_bundle,
    small_dti_lge_mi,
    tiny_overrides,
    tiny_sseg_bundle,
)
from common.acceleration import is_channels_last
from common.checkpoint import TRAINING_RECORD_KEY, extract_state_dict, training_record
from common.transforms import super_resolve_affine

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "dti_lge_style_transfer"
SSEG_BUNDLE = BUNDLE.parent / "lge_mi_sr_segmentation"
TINY_SEGMENTOR = tiny_overrides(BUNDLE.name, ("segmentor_channels", "segmentor_strides", "segmentor_num_res_units"))
TINY_GAN = tiny_overrides(BUNDLE.name, ("ngf", "n_blocks"))
TINY_TRAIN = tiny_overrides(BUNDLE.name)
#: the SwinSSegNet size of the stand-in SSeg bundle: the lge bundle's own tiny.json
TINY_SSEG = tiny_overrides(SSEG_BUNDLE.name)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return small_dti_lge_mi(tmp_path_factory.mktemp("dti_lge_data"))


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """Segmentor (1 epoch) then CycleGANSeg (1 epoch), tiny networks, into a temporary models/ folder."""
    work = tmp_path_factory.mktemp("dti_style")
    common = dict(dataset_dir=str(data), ckpt_dir=str(work / "models"), resume=False)
    run_bundle(
        BUNDLE,
        ["train.json", "train_segmentor.json"],
        **common,
        **TINY_SEGMENTOR,
        epochs=1,
        val_interval=1,
        output_dir=str(work / "eval" / "segmentor"),
    )
    segmentor_checkpoint = torch.load(work / "models" / "segmentor.pt", weights_only=True)
    segmentor_file = {k: v.clone() for k, v in extract_state_dict(segmentor_checkpoint).items()}
    workflow = run_bundle(BUNDLE, ["train.json"], **common, **TINY_TRAIN, epochs=1, output_dir=str(work / "eval"))
    return work, workflow, common, segmentor_file


@pytest.mark.slow
def test_training_writes_models_and_keeps_the_segmentor_frozen(trained):
    work, workflow, _, segmentor_file = trained
    models = work / "models"
    assert (models / "segmentor.pt").is_file() and list((models / "segmentor_state").glob("*.pt"))
    # the Segmentor file records its training: 1 epoch, validated, and CycleGANSeg accepted it
    record = torch.load(models / "segmentor.pt", weights_only=True)[TRAINING_RECORD_KEY]
    assert record["epochs"] == 1 and record["metric_name"] == "val_mean_dice", record
    state = sorted(p.name for p in (models / "train_state").glob("*.pt"))
    assert state, "CycleGANSeg must write resumable state"
    checkpoint = torch.load(models / "train_state" / state[-1], weights_only=True)
    expected = {"g_source_to_target", "g_target_to_source", "d_source", "d_target", "g_optimizer", "d_optimizer"}
    assert expected | {"trainer"} <= set(checkpoint)
    # models/model.pt is G_S>T's state dict, loadable strictly into the bundle's network_def
    from common.nets import ResNetGenerator

    generator = ResNetGenerator(**TINY_GAN)
    generator.load_state_dict(torch.load(models / "model.pt", weights_only=True), strict=True)
    # the Segmentor was used (CycleGANSeg) but not trained: its weights equal the file
    trainer = workflow.parser.get_parsed_content("train#trainer")
    assert trainer.segmentor is workflow.parser.get_parsed_content("segmentor")
    for key, value in trainer.segmentor.state_dict().items():
        torch.testing.assert_close(value.cpu(), segmentor_file[key], msg=f"Segmentor weight {key} changed")
    assert not any(p.requires_grad for p in trainer.segmentor.parameters())
    output = trainer.state.output
    item = output[0] if isinstance(output, list) else output
    assert float(item["loss_transfer_seg"]) > 0 and float(item["loss_recon_seg"]) > 0
    assert list((work / "eval").glob("events.out.tfevents.*")), "TensorBoard logs expected"


@pytest.mark.slow
def test_cycleganseg_refuses_to_start_without_segmentor_but_plain_cyclegan_runs(data, tmp_path):
    empty = tmp_path / "models"
    with pytest.raises(Exception) as error:
        run_bundle(
            BUNDLE,
            ["train.json"],
            dataset_dir=str(data),
            ckpt_dir=str(empty),
            output_dir=str(tmp_path),
            **TINY_TRAIN,
            epochs=1,
        )
    chain = exception_messages(error.value)
    assert "FileNotFoundError" in chain and str(empty / "segmentor.pt") in chain
    assert "train_segmentor.json" in chain, "the message must say how to produce the Segmentor"
    assert not (empty / "model.pt").exists()
    workflow = run_bundle(
        BUNDLE,
        ["train.json"],
        dataset_dir=str(data),
        ckpt_dir=str(empty),
        output_dir=str(tmp_path / "eval"),
        use_segmentor=False,
        channels_last="true",  # the engine's speed switch, as the command line passes it
        **TINY_TRAIN,
        epochs=1,
    )
    assert (empty / "model.pt").is_file()
    trainer = workflow.parser.get_parsed_content("train#trainer")
    assert all(is_channels_last(net) for net in trainer.networks.values())
    assert any(p.ndim == 4 and not p.is_contiguous() for p in trainer.networks["d_source"].parameters())
    # train.json's other speed switches (timed in docs/README.md "Speed beside the public code")
    assert trainer.stack_passes and trainer.optim_set_to_none
    assert all(group["fused"] for opt in trainer.optimizers.values() for group in opt.param_groups)
    output = trainer.state.output
    item = output[0] if isinstance(output, list) else output
    assert float(item["loss_transfer_seg"]) == 0.0 and float(item["loss_recon_seg"]) == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("record", [None, training_record(0, "val_mean_dice", 0.0)], ids=["no_record", "zero_epochs"])
def test_cycleganseg_refuses_an_untrained_segmentor(data, tmp_path, record):
    """A Segmentor file that exists but does not record a training (hand-made, random weights) is refused at start,
    with a message that names the file and the Segmentor training command."""
    from monai.networks.nets import UNet

    models = tmp_path / "models"
    models.mkdir()
    segmentor = UNet(
        2,
        1,
        2,
        channels=TINY_SEGMENTOR["segmentor_channels"],
        strides=TINY_SEGMENTOR["segmentor_strides"],
        num_res_units=TINY_SEGMENTOR["segmentor_num_res_units"],
    )
    checkpoint = {"model": segmentor.state_dict()}
    if record is not None:
        checkpoint[TRAINING_RECORD_KEY] = record
    torch.save(checkpoint, models / "segmentor.pt")
    with pytest.raises(Exception) as error:
        run_bundle(
            BUNDLE,
            ["train.json"],
            dataset_dir=str(data),
            ckpt_dir=str(models),
            output_dir=str(tmp_path),
            **TINY_TRAIN,
            epochs=1,
        )
    chain = exception_messages(error.value)
    assert "ValueError" in chain and str(models / "segmentor.pt") in chain
    assert ("no training record" if record is None else "0 training epochs") in chain
    assert "train_segmentor.json" in chain, "the message must say how to produce the Segmentor"
    assert not (models / "model.pt").exists()


@pytest.fixture(scope="module")
def dti_folder(data, tmp_path_factory) -> list[str]:
    with bundle_scripts(BUNDLE):
        from scripts.prepare_dti_folder import prepare_dti_folder

        return prepare_dti_folder(str(data), str(tmp_path_factory.mktemp("dti_in")), split="all")


@pytest.mark.slow
def test_inference_keeps_the_input_geometry_and_never_overwrites(trained, dti_folder, tmp_path):
    work, _, common, _ = trained
    folder = os.path.dirname(dti_folder[0])
    args = dict(ckpt_dir=common["ckpt_dir"], dataset_dir=folder, output_dir=str(tmp_path / "out"), **TINY_GAN)
    run_bundle(BUNDLE, ["inference.json"], **args)
    for path in dti_folder:
        source = nib.load(path)
        output = nib.load(tmp_path / "out" / os.path.basename(path).replace(".nii.gz", "_lge_style.nii.gz"))
        # one LGE-style image per DTI slice: the source's channels (S0, MD, FA on the last axis) are not kept
        assert output.shape[:2] == source.shape[:2] and int(np.prod(output.shape)) == int(np.prod(source.shape[:3]))
        np.testing.assert_allclose(output.affine, source.affine, atol=1e-5)
        values = np.asarray(output.dataobj)
        assert values.dtype == np.float32 and values.min() >= 0.0 and values.max() <= 1.0
    with pytest.raises(Exception) as error:
        run_bundle(BUNDLE, ["inference.json"], **args)
    assert "FileExistsError" in exception_messages(error.value) and "already exists" in exception_messages(error.value)


@pytest.mark.slow
def test_pipeline_writes_8x_masks_on_the_lge_grid(trained, dti_folder, data, tmp_path):
    work, _, common, _ = trained
    sseg_root = tiny_sseg_bundle(tmp_path / "sseg_bundle")
    out = tmp_path / "masks"
    workflow = run_bundle(
        BUNDLE,
        ["inference.json", "pipeline.json"],
        ckpt_dir=common["ckpt_dir"],
        dataset_dir=os.path.dirname(dti_folder[0]),
        output_dir=str(out),
        sseg_bundle_root=str(sseg_root),
        **TINY_GAN,
    )
    # hyper-parameters come from the SSeg bundle's own inference.json
    assert workflow.parser.get_parsed_content("sseg_feature_size") == TINY_SSEG["feature_size"]
    for path in dti_folder:
        source = nib.load(path)
        mask = nib.load(out / os.path.basename(path).replace(".nii.gz", "_mi_x8.nii.gz"))
        assert mask.shape[:2] == (8 * source.shape[0], 8 * source.shape[1])
        np.testing.assert_allclose(mask.header.get_zooms()[:2], np.array(source.header.get_zooms()[:2]) / 8, rtol=1e-5)
        corner_source = source.affine @ np.array([-0.5, -0.5, 0, 1])
        corner_mask = mask.affine @ np.array([-0.5, -0.5, 0, 1])
        np.testing.assert_allclose(corner_mask[:3], corner_source[:3], atol=1e-4)  # same field of view
        assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}
        # on the DTI grid subdivided 8x (the DTI has its own grid, misregistered from the LGE and its manual mask)
        expected = super_resolve_affine(torch.as_tensor(source.affine), 8).numpy()
        np.testing.assert_allclose(mask.affine, expected, atol=1e-4)


@pytest.mark.slow
def test_pipeline_refuses_missing_sseg_weights(trained, dti_folder, tmp_path):
    _, _, common, _ = trained
    sseg_root = tiny_sseg_bundle(tmp_path / "sseg_bundle")
    missing = tmp_path / "nowhere" / "model.pt"
    with pytest.raises(Exception) as error:
        run_bundle(
            BUNDLE,
            ["inference.json", "pipeline.json"],
            ckpt_dir=common["ckpt_dir"],
            dataset_dir=os.path.dirname(dti_folder[0]),
            output_dir=str(tmp_path / "masks"),
            sseg_bundle_root=str(sseg_root),
            sseg_weights=str(missing),
            **TINY_GAN,
        )
    assert str(missing) in exception_messages(error.value)


@pytest.mark.slow
def test_evaluate_writes_metrics_csv_summary_and_grids(trained, data):
    work, _, common, _ = trained
    out = work / "eval" / "test"
    workflow = run_bundle(BUNDLE, ["train.json", "evaluate.json"], **common, **TINY_TRAIN, output_dir=str(out))
    split = workflow.parser.get_parsed_content("split")
    rows = (out / "dice_translated_vs_truth_raw.csv").read_text().strip().splitlines()
    assert rows[0].split(",") == ["filename", "class0", "mean"]  # MetricsSaver's per-case file
    assert [row.split(",")[0] for row in rows[1:]] == [c["case"] for c in split["test"]]
    means = dict(line.split(",") for line in (out / "metrics.csv").read_text().splitlines())
    for name in ("dice_translated_vs_source_lge", "ssim_translated_vs_lge", "psnr_translated_vs_lge"):
        summary = {r.split(",")[0]: r.split(",") for r in (out / f"{name}_summary.csv").read_text().splitlines()}
        assert summary["class"][-1] == "notnans" and float(summary["class0"][-1]) == len(split["test"])
        assert np.isfinite(float(means[name]))
    assert 0.0 <= float(means["dice_translated_vs_truth"]) <= 1.0
    assert sorted(p.stem for p in (out / "overlays").glob("*.png")) == [c["case"] for c in split["test"]]
    # per case: the Segmentor's MI Dice on G(DTI) (models/model.pt) and on the real LGE against the case's mask,
    # recomputed here (empty-vs-empty is 1, as LabelDice scores it; the CSV keeps 4 decimals)
    import torch
    from common.checkpoint import load_weights

    def per_case(name):
        return {r.split(",")[0]: float(r.split(",")[1]) for r in (out / f"{name}_raw.csv").read_text().splitlines()[1:]}

    def mi_dice(a, b):
        a, b = a == 1, b == 1
        total = (a.sum() + b.sum()).item()
        return 1.0 if total == 0 else 2 * (a & b).sum().item() / total

    generator = workflow.parser.get_parsed_content("network_def", instantiate=True, lazy=False).eval()
    load_weights(generator, Path(common["ckpt_dir"]) / "model.pt")
    segmentor = workflow.parser.get_parsed_content("segmentor_def", instantiate=True, lazy=False).eval()
    load_weights(segmentor, workflow.parser.get_parsed_content("segmentor_path"))
    translated, source = per_case("dice_translated_vs_truth"), per_case("dice_source_lge_vs_truth")
    for item in workflow.parser.get_parsed_content("validate#dataset"):
        with torch.no_grad():  # one batch of both, as SegmentorMasks runs it (near-tied logits: the same sums)
            on_translation, on_lge = segmentor(torch.cat([generator(item["image"][None]), item["lge"][None]])).argmax(1)
        truth = item["label"][0]
        assert translated[item["case"]] == pytest.approx(mi_dice(on_translation, truth), abs=1e-4), item["case"]
        assert source[item["case"]] == pytest.approx(mi_dice(on_lge, truth), abs=1e-4), item["case"]


@pytest.mark.slow
def test_inference_from_the_bundle_root_names_a_corrupt_file(trained, dti_folder, tmp_path):
    """`python -m monai.bundle run` from the bundle root: the corrupt file is named, the rest written, exit != 0."""
    _, _, common, _ = trained
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(dti_folder[0], folder / "good.nii.gz")
    (folder / "broken.nii.gz").write_bytes(b"not a nifti file at all")
    command = [
        sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/inference.json",
        "--dataset_dir", str(folder), "--output_dir", str(tmp_path / "out"), "--ckpt_dir", common["ckpt_dir"],
        *bundle_cli(TINY_GAN),
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(BUNDLE.parents[1]), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(command, cwd=BUNDLE, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode != 0
    assert "broken.nii.gz" in proc.stdout + proc.stderr
    assert (tmp_path / "out" / "good_lge_style.nii.gz").is_file()
    assert not (tmp_path / "out" / "broken_lge_style.nii.gz").exists()
