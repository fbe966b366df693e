"""CycleGANSeg training of the DTI -> LGE bundle: resume from its state, and DDP on two gloo ranks (CPU, torchrun).

- resume: a 1-epoch run, then the same command with ``epochs=2`` continues at epoch 2 with the saved generators,
  discriminators and optimizers (no epoch repeated) and the new run's learning-rate schedule;
- DDP, in one torchrun launch (each step parsed as ``monai.bundle``'s command line): ``train.json`` +
  ``multi_gpu_train.json``; the generators and discriminators are wrapped, the frozen Segmentor is not, only rank 0
  writes, ``models/model.pt`` has no ``module.`` prefix; ``inference.json`` + ``multi_gpu_inference.json`` writes
  every output exactly once; the Segmentor stage (``train_segmentor.json`` + ``multi_gpu_train_segmentor.json``) with
  its sharded validation.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from bundle_test_utils import (
    bundle_cli,
    bundle_scripts,
    load_state,
    run_recorded,
    same_state,
    tiny_overrides,
    torchrun_steps,
)
from monai.bundle import ConfigWorkflow

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "dti_lge_style_transfer"
CONFIGS = BUNDLE / "configs"
TINY = tiny_overrides(BUNDLE.name)
SEGMENTOR = tiny_overrides(BUNDLE.name, ("segmentor_channels", "segmentor_strides", "segmentor_num_res_units"))
GENERATOR = tiny_overrides(BUNDLE.name, ("ngf", "n_blocks"))
#: 8 paired cases -> 4 training pairs (2 per rank), 2 val, 2 test
FRACTIONS = [0.5, 0.25, 0.25]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """8 paired cases and an (untrained, tiny) Segmentor file: these tests need a Segmentor that CycleGANSeg accepts,
    not a good one, so the file carries a hand-written training record (CycleGANSeg refuses a file without one)."""
    from common.checkpoint import TRAINING_RECORD_KEY, training_record
    from common.data import write_dti_lge_mi
    from monai.networks.nets import UNet

    root = tmp_path_factory.mktemp("dti_resume_dist")
    write_dti_lge_mi(root, n_cases=8, n_paired=8, seed=3)
    segmentor = UNet(2, 1, 2, channels=SEGMENTOR["segmentor_channels"], strides=SEGMENTOR["segmentor_strides"],
                     num_res_units=SEGMENTOR["segmentor_num_res_units"])  # fmt: skip
    (root / "models").mkdir()
    record = training_record(1, "val_mean_dice", 0.0)
    torch.save({"model": segmentor.state_dict(), TRAINING_RECORD_KEY: record}, root / "models" / "segmentor.pt")
    return root


def _overrides(work: Path, ckpt: Path, **extra) -> dict:
    return dict(
        TINY,
        bundle_root=str(BUNDLE),
        dataset_dir=str(work / "DTI_LGE_MI"),
        ckpt_dir=str(ckpt),
        segmentor_path=str(work / "models" / "segmentor.pt"),
        output_dir=str(ckpt / "eval"),
        split_fractions=FRACTIONS,
        **extra,
    )


def _train(files, **overrides):
    workflow = ConfigWorkflow(
        config_file=[str(CONFIGS / f) for f in files], meta_file=str(CONFIGS / "metadata.json"), **overrides
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return workflow


@pytest.mark.slow
def test_cycleganseg_resumes_every_network_and_optimizer(work, tmp_path):
    ckpt = tmp_path / "models"
    first = _train(["train.json"], **_overrides(work, ckpt, epochs=1, lr_decay_epochs=0))
    saved = torch.load(ckpt / "train_state" / "checkpoint_epoch=1.pt", weights_only=True)
    iterations = saved["trainer"]["iteration"]
    assert iterations == 4, "4 training pairs at batch size 1"
    assert {"g_source_to_target", "g_target_to_source", "d_source", "d_target", "g_optimizer", "d_optimizer"} <= set(
        saved
    )
    generator_after_1 = {k: v.clone() for k, v in first.parser.get_parsed_content("network").state_dict().items()}

    # the same command with more epochs (and a decay over the last one) continues at epoch 2
    second = _train(["train.json"], **_overrides(work, ckpt, epochs=2, lr_decay_epochs=1))
    trainer = second.parser.get_parsed_content("train#trainer")
    assert trainer.state.epoch == 2 and trainer.state.iteration == 2 * iterations
    state_2 = torch.load(ckpt / "train_state" / "checkpoint_epoch=2.pt", weights_only=True)
    step_1 = float(saved["g_optimizer"]["state"][0]["step"])
    assert float(state_2["g_optimizer"]["state"][0]["step"]) == 2 * step_1, "optimizer moments restored"
    assert saved["g_optimizer"]["param_groups"][0]["lr"] == pytest.approx(2e-4)
    # epoch 2 ran at the resumed run's schedule: 2e-4 * (1 - (1 + 1 - 1) / 2)
    for name in ("g_optimizer", "d_optimizer"):
        assert state_2[name]["param_groups"][0]["lr"] == pytest.approx(1e-4)
    changed = any(
        not torch.equal(value, generator_after_1[key])
        for key, value in second.parser.get_parsed_content("network").state_dict().items()
    )
    assert changed, "epoch 2 must have trained the generator"


@pytest.mark.slow
def test_cycleganseg_killed_after_epoch_1_resumes_to_the_uninterrupted_weights(work, tmp_path):
    """With image pools of 2, epoch 2's discriminator steps draw from the fakes pooled in epoch 1: the pools are in
    the checkpoint (``CycleGANTrainer.checkpoint_objects``), so a run killed after epoch 1 and resumed ends with the
    uninterrupted run's networks and optimizers, bit for bit (with empty pools after the restart it would not)."""
    runs = {}
    for name, kill_after in (("reference", None), ("killed", 1), ("resumed", None)):
        ckpt = tmp_path / ("reference" if name == "reference" else "run")
        overrides = _overrides(work, ckpt, epochs=2, lr_decay_epochs=1, pool_size=2)
        overrides.pop("bundle_root")
        runs[name] = run_recorded(BUNDLE, ["train.json"], kill_after=kill_after, **overrides)
    assert runs["killed"]["killed"] and runs["resumed"]["epochs"] == [2]
    saved = load_state(tmp_path / "run" / "train_state" / "checkpoint_epoch=1.pt")
    assert saved["image_pool_target"]["images"].shape[0] == 2 and saved["image_pool_source"]["images"].shape[0] == 2
    final = load_state(tmp_path / "run" / "train_state" / "checkpoint_epoch=2.pt")
    reference = load_state(tmp_path / "reference" / "train_state" / "checkpoint_epoch=2.pt")
    assert same_state({**final, "trainer": None}, {**reference, "trainer": None})


def _writer_processes(log_dir: Path) -> int:
    """How many processes wrote TensorBoard event files (``events.out.tfevents.<time>.<host>.<pid>.<n>``)."""
    return len({path.name.split(".")[-2] for path in log_dir.glob("events.out.tfevents.*")})


def _errors(proc: subprocess.CompletedProcess, log_dir: Path) -> str:
    logs = "".join(p.read_text()[-3000:] for p in sorted(log_dir.glob("*/attempt_0/*/std*.log")))
    return proc.stdout[-2000:] + proc.stderr[-3000:] + logs


@pytest.fixture(scope="module")
def ddp(work, tmp_path_factory) -> dict:
    """One torchrun launch (``common.bundle_steps``: each step parsed as ``monai.bundle run``'s command line):
    CycleGANSeg with multi_gpu_train.json, sharded folder inference with its generator over the 8 DTI slices, then
    the Segmentor stage with multi_gpu_train_segmentor.json in a models folder of its own."""
    root = tmp_path_factory.mktemp("dti_ddp")
    ckpt, segmentor_ckpt = root / "models", root / "segmentor_models"
    train = {k: v for k, v in _overrides(work, ckpt, epochs=1).items() if k != "bundle_root"}
    with bundle_scripts(BUNDLE):
        from scripts.prepare_dti_folder import prepare_dti_folder

        inputs = prepare_dti_folder(str(work / "DTI_LGE_MI"), str(root / "dti"), split="all")
    infer = {"dataset_dir": str(root / "dti"), "output_dir": str(root / "out"), "ckpt_dir": str(ckpt), **GENERATOR}
    segmentor = {
        k: v for k, v in _overrides(work, segmentor_ckpt, epochs=1, val_interval=1).items() if k != "bundle_root"
    }
    steps = [
        ["--config_file", "['configs/train.json','configs/multi_gpu_train.json']", *bundle_cli(train)],
        ["--config_file", "['configs/inference.json','configs/multi_gpu_inference.json']", *bundle_cli(infer)],
        [
            "--config_file",
            "['configs/train.json','configs/train_segmentor.json','configs/multi_gpu_train_segmentor.json']",
            *bundle_cli(segmentor),
        ],
    ]
    proc = torchrun_steps(BUNDLE, steps, root / "logs")
    assert proc.returncode == 0, _errors(proc, root / "logs")
    return {"root": root, "ckpt": ckpt, "segmentor_ckpt": segmentor_ckpt, "inputs": inputs}


@pytest.mark.slow
@pytest.mark.dist
def test_multi_gpu_training_and_sharded_inference_on_two_gloo_ranks(ddp):
    ckpt = ddp["ckpt"]
    weights = torch.load(ckpt / "model.pt", weights_only=True)
    assert weights and not any(key.startswith("module.") for key in weights)
    from common.nets import ResNetGenerator

    ResNetGenerator(**GENERATOR).load_state_dict(weights, strict=True)
    assert sorted(p.name for p in (ckpt / "train_state").glob("*.pt")) == ["checkpoint_epoch=1.pt"]
    state = torch.load(ckpt / "train_state" / "checkpoint_epoch=1.pt", weights_only=True)
    assert state["trainer"]["iteration"] == 2, "4 training pairs over 2 ranks at batch size 1: 2 iterations"
    assert _writer_processes(ckpt / "eval") == 1, "TensorBoard on rank 0 only"

    # sharded folder inference: each of the 8 DTI slices written exactly once
    written = sorted(p.name for p in (ddp["root"] / "out").glob("*.nii.gz"))
    assert written == sorted(Path(p).name.replace(".nii.gz", "_lge_style.nii.gz") for p in ddp["inputs"])


@pytest.mark.slow
@pytest.mark.dist
def test_multi_gpu_segmentor_stage_on_two_gloo_ranks(ddp):
    ckpt = ddp["segmentor_ckpt"]
    checkpoint = torch.load(ckpt / "segmentor.pt", weights_only=True)
    weights = checkpoint["model"]
    assert weights and not any(key.startswith("module.") for key in weights)
    assert checkpoint["training_record"]["epochs"] == 1, "the Segmentor file records its training on rank 0 too"
    state = torch.load(ckpt / "segmentor_state" / "checkpoint_epoch=1.pt", weights_only=True)
    assert {"network", "optimizer", "best_model_saver", "trainer"} <= set(state)
    assert _writer_processes(ckpt / "eval") == 1, "TensorBoard on rank 0 only"
