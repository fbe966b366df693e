"""The SwinSSegNet bundle's multi-GPU files on two gloo ranks (CPU, torchrun), and without torchrun.

- DDP training with the real ``train.json`` + ``multi_gpu_train.json`` through ``monai.bundle``'s command line: each
  rank trains on its own shard, only rank 0 writes, the validation Dice is reduced over ranks, weights stay equal;
- sharded folder inference with ``inference.json`` + ``multi_gpu_inference.json``: every output written once;
- the same files in one process: torchrun with one process works, no torchrun is a clear error (training) or works
  (inference).
"""

from __future__ import annotations

import importlib.util
import json
import re
import socket
from pathlib import Path

import ignite.distributed as idist
import nibabel as nib
import numpy as np
import pytest
import torch
import torch.distributed as dist
from bundle_test_utils import (
    bundle_cli,
    eight_cases,
    exception_messages,
    handler_ids,
    rank_logs,
    tiny_overrides,
    torchrun,
    torchrun_failure,
)
from common import distributed
from common.constants import DTI_CHANNELS
from common.data import dti_lge_mi_cases, dti_lge_mi_split
from common.inference import plan_outputs
from monai.bundle import ConfigWorkflow

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "lge_mi_sr_segmentation"
CONFIGS = BUNDLE / "configs"
OBSERVER = REPO / "tests" / "dist_scripts" / "sseg_bundle_observer.py"
BARRIER_SCRIPT = REPO / "tests" / "dist_scripts" / "sseg_plan_outputs_barrier.py"
NET = tiny_overrides(BUNDLE.name)
TINY = {**NET, "batch_size": 2, "num_workers": 0}
#: 8 cases -> 4 train (2 per rank, one batch of 2), 3 validation (2 on rank 0, 1 on rank 1), 1 test
FRACTIONS = [0.5, 0.375, 0.125]
EPOCHS = 2


def _workflow(files: list[str], **overrides) -> ConfigWorkflow:
    return ConfigWorkflow(
        config_file=[str(CONFIGS / f) for f in files],
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=False,  # keep the global logging configuration of the test session
        **overrides,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _observer_module():
    spec = importlib.util.spec_from_file_location("sseg_bundle_observer", OBSERVER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------------------------------- DDP training
@pytest.fixture(scope="module")
def ddp_train(tiny_data, tmp_path_factory):
    """``train.json`` + ``multi_gpu_train.json`` on 2 ranks via ``monai.bundle``'s command line, observed per rank."""
    work = tmp_path_factory.mktemp("sseg_ddp")
    data = eight_cases(tiny_data, work / "DTI_LGE_MI")
    config_file = str([str(CONFIGS / "train.json"), str(CONFIGS / "multi_gpu_train.json")])
    overrides = {
        "meta_file": CONFIGS / "metadata.json",
        "logging_file": CONFIGS / "logging.conf",
        "bundle_root": BUNDLE,
        "dataset_dir": data,
        "split_fractions": FRACTIONS,
        "ckpt_dir": work / "models",
        "output_dir": work / "eval",
        "use_ssl_pretrained": "false",  # as typed on a command line (a string, not a bool)
        "epochs": EPOCHS,
        "val_interval": 1,
        # PyTorch's default head init: from the 1 % MI prior, 2 epochs of the tiny net predict no MI anywhere, every
        # shard's Dice is 0 and the reduction check below could not tell the shards apart
        "class_prior": "$None",  # an expression: monai.bundle drops None-valued command-line overrides
        **TINY,
    }
    target = [str(OBSERVER), str(work), "run", "--config_file", config_file, *bundle_cli(overrides)]
    proc = torchrun(REPO, target, work / "logs")
    assert proc.returncode == 0, torchrun_failure(proc, work / "logs")
    results = [json.loads((work / f"rank{r}.json").read_text()) for r in range(2)]
    split = dti_lge_mi_split(dti_lge_mi_cases(data), fractions=FRACTIONS, seed=0)
    return work, results, rank_logs(work / "logs"), split


@pytest.mark.slow
@pytest.mark.dist
def test_ddp_each_rank_trains_its_own_shard(ddp_train):
    _, (r0, r1), logs, split = ddp_train
    assert (r0["rank"], r1["rank"], r0["world_size"], r1["world_size"]) == (0, 1, 2, 2)
    assert "rank 1 of 2" in logs[1] and "rank 0 of 2" in logs[0]  # both joined the gloo group
    train = sorted(c["case"] for c in split["lge_train"])
    for result in (r0, r1):
        assert (result["epoch"], result["iteration"]) == (EPOCHS, EPOCHS)  # 4 cases / 2 ranks / batch 2 per epoch
    for epoch in map(str, range(1, EPOCHS + 1)):
        mine, theirs = r0["train_cases"][epoch], r1["train_cases"][epoch]
        assert len(mine) == len(theirs) == 2 and not set(mine) & set(theirs)
        assert sorted(mine + theirs) == train
    assert r0["train_cases"]["1"] != r0["train_cases"]["2"]  # the sampler reshuffles every epoch


@pytest.mark.slow
@pytest.mark.dist
def test_ddp_only_rank0_writes(ddp_train):
    work, (r0, r1), logs, _ = ddp_train
    assert r0["train_handlers"] == [
        "ResumeFromLatest", "SeedEachEpoch", "ValidationHandler", "ProgressLogger", "StatsHandler",
        "TensorBoardStatsHandler", "AtomicCheckpointSaver",
    ]  # fmt: skip
    assert r1["train_handlers"] == ["ResumeFromLatest", "SeedEachEpoch", "ValidationHandler"]
    assert r0["val_handlers"] == ["StatsHandler", "TensorBoardStatsHandler", "AtomicCheckpointSaver"]
    assert r1["val_handlers"] == []
    assert sorted(p.name for p in (work / "models").iterdir()) == ["model.pt", "train_state"]
    state = sorted(p.name for p in (work / "models" / "train_state").iterdir())
    assert state == [f"checkpoint_epoch={e}.pt" for e in range(1, EPOCHS + 1)]
    # a TensorBoard writer creates its file when constructed: both (train, validation) files come from one process
    events = sorted(p.name for p in (work / "eval").iterdir())
    assert len(events) == 2 and all(name.startswith("events.out.tfevents.") for name in events)
    assert len({name.split(".")[-2] for name in events}) == 1, events  # one pid
    for epoch in range(1, EPOCHS + 1):
        assert f"epoch {epoch}/{EPOCHS} iter 1/1" in logs[0]  # ProgressLogger
        assert f"Saved checkpoint at epoch: {epoch}" in logs[0]
    assert not re.search(r"epoch \d+/\d+ iter|Saved checkpoint|Metrics --", logs[1])


@pytest.mark.slow
@pytest.mark.dist
def test_ddp_validation_dice_is_reduced_over_ranks(ddp_train):
    _, (r0, r1), _, split = ddp_train
    val = sorted(c["case"] for c in split["val"])
    for epoch in map(str, range(1, EPOCHS + 1)):
        mine, theirs = r0["val_cases"][epoch], r1["val_cases"][epoch]
        assert (len(mine), len(theirs)) == (2, 1) and sorted(mine + theirs) == val  # uneven shards, no padding
        assert r0["val_dice"][epoch] == r1["val_dice"][epoch]
    # the reduced value is the Dice over the whole validation set, not over either rank's shard
    for result in (r0, r1):
        assert result["val_dice"][str(EPOCHS)] == pytest.approx(result["full_val_dice"], abs=1e-6)
    assert r0["full_val_dice"] == pytest.approx(r1["full_val_dice"], abs=1e-7)
    assert abs(r0["shard_val_dice"] - r1["shard_val_dice"]) > 1e-4  # the check can fail: shards disagree


@pytest.mark.slow
@pytest.mark.dist
def test_ddp_weights_identical_on_both_ranks_and_in_checkpoint(ddp_train):
    work, (r0, r1), _, _ = ddp_train
    assert r0["weights"] == r1["weights"]
    assert r0["gathered_weights"] == r1["gathered_weights"] == [r0["weights"]] * 2
    checkpoint = torch.load(work / "models" / "train_state" / f"checkpoint_epoch={EPOCHS}.pt", weights_only=True)
    assert _observer_module().state_hash(checkpoint["network"]) == r0["weights"]  # saved unwrapped (no "module.")
    assert checkpoint["trainer"]["iteration"] == EPOCHS
    best = torch.load(work / "models" / "model.pt", weights_only=True)
    assert set(best) == set(checkpoint["network"])


# ------------------------------------------------------------------------------------------- without torchrun
@pytest.mark.parametrize("files", [["train.json"], ["train.json", "evaluate.json"]])
def test_multi_gpu_train_without_torchrun_is_a_clear_error(files, tiny_data, tmp_path, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    workflow = _workflow(
        [*files, "multi_gpu_train.json"],
        bundle_root=str(BUNDLE),
        dataset_dir=str(tiny_data / "DTI_LGE_MI"),
        ckpt_dir=str(tmp_path / "models"),
        output_dir=str(tmp_path / "eval"),
        use_ssl_pretrained=False,
        **TINY,
    )
    with pytest.raises(RuntimeError) as error:
        workflow.initialize()
    message = exception_messages(error.value)
    assert "torchrun" in message and "multi_gpu_train.json" in message
    assert not dist.is_initialized()


@pytest.mark.slow
def test_multi_gpu_train_under_torchrun_with_one_process(tiny_data, tmp_path, monkeypatch):
    """``torchrun --nproc_per_node=1`` sets WORLD_SIZE=1: the files must still join a (1-rank) group and train."""
    env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": _free_port()}
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    workflow = _workflow(
        ["train.json", "multi_gpu_train.json"],
        bundle_root=str(BUNDLE),
        dataset_dir=str(tiny_data / "DTI_LGE_MI"),
        ckpt_dir=str(tmp_path / "models"),
        output_dir=str(tmp_path / "eval"),
        use_ssl_pretrained=False,
        epochs=1,
        **TINY,
    )
    try:
        workflow.initialize()
        assert dist.is_initialized() and dist.get_world_size() == 1
        workflow.run()
        workflow.finalize()
    finally:
        distributed.finalize()  # also on failure: later in-process tests need a serial ignite context
    assert not dist.is_initialized()
    assert idist.backend() is None and idist.get_world_size() == 1  # ignite forgot the destroyed group
    trainer = workflow.parser.get_parsed_content("train#trainer")
    n_train = len(workflow.parser.get_parsed_content("split")["lge_train"])
    assert n_train >= 2 and trainer.state.iteration == -(-n_train // TINY["batch_size"])  # one epoch of batches
    assert (tmp_path / "models" / "train_state" / "checkpoint_epoch=1.pt").is_file()


# ----------------------------------------------------------------------------------------------- sharded inference
def _prepare_lowres():
    spec = importlib.util.spec_from_file_location("sseg_prepare_lowres", BUNDLE / "scripts" / "prepare_lowres.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.prepare_lowres


@pytest.fixture(scope="module")
def inference_inputs(tiny_data, tmp_path_factory):
    """64x64 inputs (every case's area-downsampled LGE slice and one DTI slice's MD map) and a tiny random
    ``model.pt``."""
    from common.nets import SwinSSeg

    work = tmp_path_factory.mktemp("sseg_infer")
    inputs = work / "lowres"
    _prepare_lowres()(str(tiny_data / "DTI_LGE_MI"), str(inputs), split="all")
    source = sorted((tiny_data / "DTI_LGE_MI").glob("Case_*/DTI.nii.gz"))[0]
    dti = nib.load(source)
    md = np.asarray(dti.dataobj, dtype=np.float32)[..., DTI_CHANNELS.index("MD")]  # (X, Y, 1, channels) -> (X, Y, 1)
    nib.save(nib.Nifti1Image(md, dti.affine), inputs / f"{source.parent.name}_DTI.nii.gz")
    names = sorted(p.name for p in inputs.iterdir())
    assert len(names) == len(dti_lge_mi_cases(tiny_data / "DTI_LGE_MI")) + 1 >= 5
    torch.manual_seed(0)
    net = SwinSSeg(spatial_dims=2, in_channels=1, out_channels=2, scale=8, window_size=7, patch_size=2, **NET)
    (work / "models").mkdir()
    torch.save(net.state_dict(), work / "models" / "model.pt")
    return work, inputs, [n.replace(".nii.gz", "_mi_x8.nii.gz") for n in names]


@pytest.mark.slow
@pytest.mark.dist
def test_sharded_inference_writes_every_output_once(inference_inputs):
    work, inputs, expected = inference_inputs
    out = work / "masks"
    config_file = str([str(CONFIGS / "inference.json"), str(CONFIGS / "multi_gpu_inference.json")])
    overrides = {
        "meta_file": CONFIGS / "metadata.json",
        "logging_file": CONFIGS / "logging.conf",
        "bundle_root": BUNDLE,
        "dataset_dir": inputs,
        "output_dir": out,
        "ckpt_dir": work / "models",
        "overwrite": "false",
        **NET,
    }
    log_dir = work / "logs"
    proc = torchrun(REPO, ["-m", "monai.bundle", "run", "--config_file", config_file, *bundle_cli(overrides)], log_dir)
    assert proc.returncode == 0, torchrun_failure(proc, log_dir)
    assert sorted(p.name for p in out.iterdir()) == expected
    for name in expected:
        assert nib.load(out / name).shape[:2] == (512, 512)
    # each rank ran over its own share only (InferenceProgress's line for the last file: "file n/n")
    lengths = []
    for log in rank_logs(log_dir):
        (length,) = {int(n) for n in re.findall(r"file (\d+)/\1 \S+ slices", log)}
        lengths.append(length)
    n = len(expected)
    assert lengths == [(n + 1) // 2, n // 2]  # interleaved shards: rank 0 takes the odd one out


@pytest.mark.slow
@pytest.mark.dist
def test_plan_outputs_waits_for_every_rank_before_writing(inference_inputs, tmp_path):
    _, inputs, expected = inference_inputs
    proc = torchrun(REPO, [str(BARRIER_SCRIPT), str(inputs), str(tmp_path)], tmp_path / "logs", timeout=120)
    assert proc.returncode == 0, torchrun_failure(proc, tmp_path / "logs")
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert r0["error"] is None and r1["error"] is None, (r0["error"], r1["error"])
    inputs_sorted = sorted(p.name for p in inputs.iterdir())
    assert r0["share"] == inputs_sorted[0::2] and r1["share"] == inputs_sorted[1::2]
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == expected


def test_multi_gpu_inference_without_torchrun_runs_everything(inference_inputs, tmp_path, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    work, inputs, expected = inference_inputs
    workflow = _workflow(
        ["inference.json", "multi_gpu_inference.json"],
        bundle_root=str(BUNDLE),
        dataset_dir=str(inputs),
        output_dir=str(tmp_path / "masks"),
        ckpt_dir=str(work / "models"),
        **NET,
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == expected


@pytest.mark.parametrize("flag,replaced", [("false", False), ("False", False), ("true", True)])
def test_plan_outputs_reads_command_line_booleans(tmp_path, flag, replaced):
    """``monai.bundle run --overwrite false`` passes the string "false", which must not mean "overwrite"."""
    (tmp_path / "a_mi_x8.nii.gz").write_bytes(b"earlier output")
    datalist = [{"image": str(tmp_path / "in" / "a.nii.gz")}]
    if replaced:
        assert plan_outputs(datalist, tmp_path, "mi_x8", overwrite=flag) == datalist
    else:
        with pytest.raises(FileExistsError, match="already exists"):
            plan_outputs(datalist, tmp_path, "mi_x8", overwrite=flag)
    with pytest.raises(ValueError, match="overwrite"):
        plan_outputs(datalist, tmp_path, "mi_x8", overwrite="maybe")


@pytest.mark.parametrize(
    "files,sections",
    [
        (["train.json", "multi_gpu_train.json"], ["train", "validate"]),
        (["pretrain.json", "multi_gpu_pretrain.json"], ["train"]),
    ],
)
def test_tensorboard_writers_are_not_built_on_other_ranks(files, sections, tmp_path, monkeypatch):
    """A TensorBoard handler writes its event file when constructed, so ``rank0_handlers`` (which only skips
    attaching) is too late: the base config disables these entries with ``"_disabled_": "$not @is_main_process"``
    and ``multi_gpu_*.json`` sets ``is_main_process`` to "rank 0" (no handler is addressed by list index)."""
    paths = [CONFIGS / f for f in files]
    ids = [i for section in sections for i in handler_ids(paths, "TensorBoardStatsHandler", section)]
    assert len(ids) == len(sections)  # one writer per engine
    for rank, built in (("1", False), ("0", True)):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("WORLD_SIZE", "2")  # rank() reads the environment: no process group needed here
        out = tmp_path / f"rank{rank}"
        workflow = _workflow(files, bundle_root=str(BUNDLE), output_dir=str(out), ckpt_dir=str(tmp_path / "m"))
        for id_ in ids:
            assert workflow.parser[id_]["_target_"] == "TensorBoardStatsHandler"
            assert workflow.parser[id_]["_disabled_"] == "$not @is_main_process"
            handler = workflow.parser.get_parsed_content(id_)
            assert (handler is not None) == built
        events = list(out.glob("events.out.tfevents.*")) if out.exists() else []
        assert len(events) == (len(ids) if built else 0)
