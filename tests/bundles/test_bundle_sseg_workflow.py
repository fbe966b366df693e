"""The SwinSSegNet bundle end to end, driven through `monai.bundle` as a user would (tiny network, tiny data)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from bundle_test_utils import bundle_cli, exception_messages, tiny_overrides
from common.constants import DTI_CHANNELS
from monai.bundle import ConfigWorkflow

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "lge_mi_sr_segmentation"
NET = tiny_overrides(BUNDLE.name)
TINY = {**NET, "batch_size": 4, "num_workers": 0}


def _run(files, **overrides):
    workflow = ConfigWorkflow(
        config_file=[str(BUNDLE / "configs" / f) for f in files],
        meta_file=str(BUNDLE / "configs" / "metadata.json"),
        logging_file=None,
        **overrides,
    )
    workflow.initialize()
    result = workflow.run()
    workflow.finalize()
    return workflow, result


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """U-SSL pre-training then fine-tuning, 1 epoch each, into a temporary models/ folder."""
    work = tmp_path_factory.mktemp("sseg")
    common = dict(TINY, bundle_root=str(BUNDLE), ckpt_dir=str(work / "models"), seed=0, resume=False)
    _run(
        ["pretrain.json"],
        data_root=str(tiny_data),
        output_dir=str(work / "eval" / "pretrain"),
        epochs=1,
        **common,
    )
    assert (work / "models" / "pretrain" / "model_ssl.pt").is_file()
    assert not list((work / "models").glob("*.pt"))  # MONAI Label offers models/*.pt: only inference weights there
    workflow, _ = _run(
        ["train.json"],
        dataset_dir=str(tiny_data / "DTI_LGE_MI"),
        output_dir=str(work / "eval"),
        epochs=2,
        val_interval=1,
        **common,
    )
    return work, workflow, common


@pytest.mark.slow
def test_train_loads_ssl_encoder_and_saves_model(trained):
    work, workflow, _ = trained
    loaded = workflow.parser.get_parsed_content("load_ssl_encoder")
    assert loaded > 10, "the fine-tune must load the U-SSL encoder weights"
    assert (work / "models" / "model.pt").is_file()
    states = sorted(p.name for p in (work / "models" / "train_state").iterdir())
    assert states and all(name.endswith(".pt") for name in states)


@pytest.mark.slow
def test_train_refuses_missing_ssl_weights(tiny_data, tmp_path):
    with pytest.raises(Exception) as error:
        _run(
            ["train.json"],
            **dict(TINY, bundle_root=str(BUNDLE), ckpt_dir=str(tmp_path / "empty"), epochs=1),
            dataset_dir=str(tiny_data / "DTI_LGE_MI"),
            output_dir=str(tmp_path / "eval"),
        )
    message = exception_messages(error.value)
    assert "model_ssl.pt" in message and "pretrain.json" in message


@pytest.mark.slow
def test_inference_writes_8x_masks_in_input_space(trained, tiny_data, tmp_path):
    work, _, common = trained
    sys.path.insert(0, str(BUNDLE))
    from scripts.prepare_lowres import prepare_lowres

    inputs = prepare_lowres(str(tiny_data / "DTI_LGE_MI"), str(tmp_path / "lowres"), split="all")
    out = tmp_path / "masks"
    _run(
        ["inference.json"],
        **{k: v for k, v in common.items() if k not in ("batch_size", "num_workers", "seed", "resume")},
        dataset_dir=str(tmp_path / "lowres"),
        output_dir=str(out),
    )
    for path in inputs:
        lowres = nib.load(path)
        name = os.path.basename(path).replace(".nii.gz", "_mi_x8.nii.gz")
        mask = nib.load(out / name)
        assert mask.shape[:2] == (8 * lowres.shape[0], 8 * lowres.shape[1])
        np.testing.assert_allclose(mask.header.get_zooms()[:2], np.array(lowres.header.get_zooms()[:2]) / 8, rtol=1e-5)
        # same field of view: the outer corner of voxel (-0.5, -0.5) maps to the same world point
        corner_lr = lowres.affine @ np.array([-0.5, -0.5, 0, 1])
        corner_hr = mask.affine @ np.array([-0.5, -0.5, 0, 1])
        np.testing.assert_allclose(corner_lr[:3], corner_hr[:3], atol=1e-4)
        assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}
    # the 8x mask of a test case lies on the original high-resolution mask grid
    case = os.path.basename(inputs[0]).split("_LGE")[0]
    truth = nib.load(tiny_data / "DTI_LGE_MI" / case / "LGE_MI.nii.gz")
    mask = nib.load(out / os.path.basename(inputs[0]).replace(".nii.gz", "_mi_x8.nii.gz"))
    np.testing.assert_allclose(mask.affine, truth.affine, atol=1e-4)
    # running again must not overwrite without the explicit flag
    with pytest.raises(Exception) as error:
        _run(
            ["inference.json"],
            bundle_root=str(BUNDLE),
            ckpt_dir=common["ckpt_dir"],
            dataset_dir=str(tmp_path / "lowres"),
            output_dir=str(out),
            **NET,
        )
    assert "already exists" in exception_messages(error.value)


@pytest.mark.slow
def test_evaluate_writes_metrics_csv_and_overlays(trained, tiny_data):
    work, _, common = trained
    workflow, _ = _run(
        ["train.json", "evaluate.json"],
        **common,
        dataset_dir=str(tiny_data / "DTI_LGE_MI"),
        output_dir=str(work / "eval" / "test"),
    )
    rows = (work / "eval" / "test" / "test_mean_dice_raw.csv").read_text().strip().splitlines()
    assert rows[0].startswith("filename") and len(rows) >= 2
    assert sorted(p.stem for p in (work / "eval" / "test" / "overlays").glob("*.png"))[0].startswith("Case_")
    assert (work / "eval" / "test" / "test_hd95_mm_raw.csv").is_file()
    # each case's Dice is the foreground (MI) Dice of models/model.pt's argmax against the case's own mask
    import torch
    from common.checkpoint import load_weights

    scored = {line.split(",")[0]: float(line.split(",")[1]) for line in rows[1:]}
    from common.acceleration import accelerate

    network = workflow.parser.get_parsed_content("network_def", instantiate=True, lazy=False).eval()
    load_weights(network, work / "models" / "model.pt")
    network = accelerate(network, channels_last=workflow.parser["channels_last"])  # the evaluator's layout and sums
    dataset = workflow.parser.get_parsed_content("validate#dataset")
    assert sorted(scored) == sorted(item["case"] for item in dataset)
    nonempty = 0
    for item in dataset:
        with torch.no_grad():
            mask = network(item["image"][None]).argmax(1)[0] > 0
        truth = item["label"][0] > 0
        if mask.sum() + truth.sum() == 0:
            continue  # MONAI scores an empty pair as NaN
        nonempty += 1
        dice = 2 * (mask & truth).sum().item() / (mask.sum() + truth.sum()).item()
        assert scored[item["case"]] == pytest.approx(dice, abs=1e-4), item["case"]
    assert nonempty, "no case has a mask or a truth to score"


@pytest.mark.slow
def test_inference_from_bundle_root_with_a_corrupt_file(trained, tiny_data, tmp_path):
    """`python -m monai.bundle run` from the bundle root: the corrupt file is named, the rest written, exit != 0."""
    work, _, common = trained
    folder = tmp_path / "in"
    folder.mkdir()
    src = sorted((tiny_data / "DTI_LGE_MI").glob("Case_*/DTI.nii.gz"))[0]
    shutil.copy(src, folder / "good.nii.gz")
    (folder / "broken.nii.gz").write_bytes(b"not a nifti file at all")
    cmd = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        "configs/inference.json",
        "--dataset_dir",
        str(folder),
        "--output_dir",
        str(tmp_path / "out"),
        "--ckpt_dir",
        common["ckpt_dir"],
        *bundle_cli(NET),
        # the good input is a DTI file (S0, MD, FA on its last axis): the SSeg reads its MD map
        *bundle_cli({"image_channel_names": list(DTI_CHANNELS), "image_channels": ["MD"]}),
    ]
    proc = subprocess.run(cmd, cwd=BUNDLE, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "broken.nii.gz" in proc.stdout + proc.stderr
    assert (tmp_path / "out" / "good_mi_x8.nii.gz").is_file()


def test_channels_last_gives_the_same_output_and_gradients():
    """train.json's channels-last default changes only the memory layout. With the BatchNorms on their running
    statistics (eval mode) the output matches the contiguous network's to float rounding (1e-4), and each weight
    gradient of one backward to 1 % of its largest element (the 512 x 512 layers' BatchNorm gradients sum half a
    million products in another order: 0.3 % apart here). In train mode BatchNorm sums its batch statistics in
    another order per layout (a 1e-5 relative difference at the first one), which later normalisations amplify: the
    outputs then agree to 1 % of their range, not more."""
    import torch
    from monai.bundle import ConfigParser

    networks = {}
    for flag in ("false", "true"):
        parser = ConfigParser()
        parser.read_config(str(BUNDLE / "configs" / "train.json"))
        parser.update({**NET, "bundle_root": str(BUNDLE), "channels_last": flag, "compile": "false"})
        networks[flag] = parser.get_parsed_content("network")
    networks["true"].load_state_dict(networks["false"].state_dict())
    image = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    results = {}
    for flag, network in networks.items():
        network.eval()
        output = network(image)
        output.square().mean().backward()
        grads = {name: p.grad.clone() for name, p in network.named_parameters() if p.grad is not None}
        network.train()
        with torch.no_grad():
            train_output = network(image)
        results[flag] = (train_output, output.detach(), grads)
    (train_cl, output_cl, grads_cl), (train_plain, output_plain, grads_plain) = results["true"], results["false"]
    torch.testing.assert_close(output_cl, output_plain, atol=1e-4, rtol=1e-4)
    assert grads_cl.keys() == grads_plain.keys() and grads_plain
    for name, grad in grads_plain.items():  # a BatchNorm's weight gradient sums 2 x 512 x 512 products
        assert (grads_cl[name] - grad).abs().max() <= 1e-2 * grad.abs().max() + 1e-6, name
    assert (train_cl - train_plain).abs().max() < 0.01 * train_plain.abs().max()


@pytest.mark.parametrize("channels_last", ["true", "false"])
def test_the_speed_switches_reach_the_network(channels_last):
    from common.acceleration import is_compiled
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "train.json"))
    parser.update({**NET, "bundle_root": str(BUNDLE), "channels_last": channels_last, "compile": "false"})
    network = parser.get_parsed_content("network")
    reordered = [p for p in network.parameters() if p.ndim == 4 and not p.is_contiguous()]
    assert bool(reordered) == (channels_last == "true")
    assert not is_compiled(network)


@pytest.mark.slow
def test_benchmark_inference_scaling_times_stacked_test_slices_and_writes_every_slice(trained, tiny_data, tmp_path):
    """The benchmark's inference-scaling rows: the first held-out case's 64x64 LGE slice stacked to 4/8/16 slices,
    each stack run through inference.json and timed; every mask holds the stacked slices at 8x in-plane."""
    from bundle_test_utils import bundle_scripts

    work, _, common = trained
    with bundle_scripts(BUNDLE):
        from scripts.benchmark import SCALING_SLICES, _inference_scaling

        result = _inference_scaling(tiny_data, work / "models", NET, tmp_path)
    assert result["slice_counts"] == list(SCALING_SLICES) and all(s > 0 for s in result["seconds"])
    assert result["per_slice"] > 0
    assert {**result, "machine": ""} == {**json.loads((tmp_path / "scaling.json").read_text()), "machine": ""}
    for n in result["slice_counts"]:
        (mask,) = sorted((tmp_path / f"slices_{n}" / "out").glob("*.nii.gz"))
        assert nib.load(mask).shape == (512, 512, n)
