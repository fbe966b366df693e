"""The LGE cardiac segmentation bundle (issue 19) on two gloo ranks (CPU, torchrun): every training stage and the
sharded folder inference, with ``multi_gpu_train.json`` / ``multi_gpu_inference.json`` and tiny.json.

All in one torchrun launch (a driver runs each step's ``ConfigWorkflow`` in turn, as ``monai.bundle run`` does, in
one process group: a launch costs about 10 s of imports on 2 cores; the other bundles' tests run the command line's
own parsing of such steps, ``common.bundle_steps``):

- the heart localiser: ``localiser/localiser.pt`` written once;
- the translator, the synthetic set and the four U-Net cascade stages: each training stage trains on its own shard
  per rank, ends with the same weights on both ranks, and only rank 0 writes them, once; after ``unet2_ft`` rank 0
  alone writes ``model.pt`` (the cascade and the localiser); ``generate.json`` translates each rank's share of the
  cases and writes the set that one process writes;
- ``inference.json`` + ``multi_gpu_inference.json``: every output written once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_test_utils import rank_logs, run_recorded, run_tiny, torchrun, torchrun_failure

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "lge_cardiac_segmentation_munit"
CONFIGS = BUNDLE / "configs"
STAGES = ("unet1_bssfp", "unet1_ft", "unet2_bssfp", "unet2_ft")
MSCMR_VALUES = {0, 200, 500, 600}
SAVED = re.compile(r"Saved checkpoint at epoch|saved final checkpoint: (\S+)")
#: scripts/weights.py's log line for models/model.pt
INFERENCE_WEIGHTS = re.compile(r"inference weights \(cascade \+ localiser\) -> (\S+)")
#: the two networks in models/model.pt (common.nets.LocalisedNetwork)
PARTS = ("segmenter.", "localiser.")

pytestmark = [pytest.mark.slow, pytest.mark.dist]

#: runs the steps of a JSON plan on every rank, in one process group, and writes ``rank<R>.json``
DRIVER = """
import hashlib, json, os, sys

import torch.distributed as dist
from common import distributed
from monai.bundle import ConfigWorkflow


def digest(state):
    h = hashlib.sha256()
    for key, value in sorted(state.items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(bundle, plan_file, out_dir):
    sys.path.insert(0, bundle)  # `monai.bundle run` from the bundle folder: `scripts` is importable
    configs = os.path.join(bundle, "configs")
    record, logging_file = {}, os.path.join(configs, "logging.conf")
    for step in json.load(open(plan_file)):
        print("=== step", step["name"], flush=True)
        workflow = ConfigWorkflow(
            config_file=[os.path.join(configs, f) for f in step["files"]],
            meta_file=os.path.join(configs, "metadata.json"),
            logging_file=logging_file,
            bundle_root=bundle,
            **step["overrides"],
        )
        logging_file = False  # applied once
        workflow.initialize()
        workflow.run()
        workflow.finalize()
        dist.barrier()  # the next step starts once every rank is done, as the next torchrun command would
        if not step.get("networks"):  # not a training stage
            continue
        parser = workflow.parser
        trainer = parser.get_parsed_content("train#trainer")
        record[step["name"]] = {
            "epoch": trainer.state.epoch,
            "iteration": trainer.state.iteration,
            "epoch_length": trainer.state.epoch_length,
            "items": len(parser.get_parsed_content("train#dataset")),
            "weights": {n: digest(parser.get_parsed_content(n).state_dict()) for n in step["networks"]},
            "parameters": {
                n: digest(dict(parser.get_parsed_content(n).named_parameters())) for n in step["networks"]
            },
            "handlers": [type(h).__name__ for h in parser.get_parsed_content("train#trainer#train_handlers")],
        }
    record.update(rank=distributed.rank(), world_size=distributed.world_size())
    with open(os.path.join(out_dir, "rank%d.json" % record["rank"]), "w") as f:
        json.dump(record, f)
    distributed.finalize()


main(*sys.argv[1:])
"""


def digest(state: dict) -> str:
    """sha256 over the sorted keys and tensor bytes of a ``state_dict`` (as the driver computes it)."""
    h = hashlib.sha256()
    for key, value in sorted(state.items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _steps(log: str) -> dict[str, str]:
    """A driver rank's log cut at its ``=== step <name>`` lines."""
    parts = re.split(r"^=== step (\S+)$", log, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict:
    from common.data import write_mscmrseg

    root = tmp_path_factory.mktemp("munit_ddp")
    data = write_mscmrseg(root / "data", n_patients=6, seed=3, small=True)
    paths = {"root": root, "data": data, "models": root / "models", "synthetic": root / "synthetic"}
    common = {"dataset_dir": data, "ckpt_dir": paths["models"], "synthetic_dir": paths["synthetic"]}
    return {**paths, "common": common}


@pytest.fixture(scope="module")
def ddp_stages(work) -> dict:
    """The localiser, the translator, the synthetic set, the four cascade stages and the sharded inference, in one
    torchrun launch."""
    root = work["root"]
    common = {key: str(value) for key, value in work["common"].items()}
    multi = ["multi_gpu_train.json", "tiny.json"]
    plan = [
        {
            "name": "localiser",
            "files": ["train.json", "train_localiser.json", *multi],
            "overrides": {**common, "output_dir": str(root / "eval" / "localiser"), "dist_finalize": None},
        },
        {
            "name": "translator",
            "files": ["train.json", "train_translator.json", *multi],
            "overrides": {**common, "output_dir": str(root / "eval" / "translator"), "dist_finalize": None},
            "networks": ["gen_a_def", "gen_b_def", "dis_a_def", "dis_b_def"],
        },
        {
            "name": "generate",
            "files": ["train.json", "generate.json", *multi],
            "overrides": {**common, "dist_finalize": None},
        },
        *(
            {
                "name": stage,
                "files": ["train.json", *multi],
                "overrides": {
                    **common,
                    "stage": stage,
                    "output_dir": str(root / "eval" / stage),
                    "dist_finalize": None,
                },
                "networks": ["network_def"],
            }
            for stage in STAGES
        ),
        {
            "name": "inference",
            "files": ["inference.json", "multi_gpu_inference.json", "tiny.json"],
            "overrides": {
                "dataset_dir": str(work["data"]),
                "ckpt_dir": str(work["models"]),
                "output_dir": str(root / "outputs"),
                "dist_finalize": None,
            },
        },
    ]
    (root / "plan.json").write_text(json.dumps(plan))
    (root / "driver.py").write_text(DRIVER)
    log_dir = root / "logs_stages"
    proc = torchrun(BUNDLE, [str(root / "driver.py"), str(BUNDLE), str(root / "plan.json"), str(root)], log_dir)
    assert proc.returncode == 0, torchrun_failure(proc, log_dir)
    ranks = [json.loads((root / f"rank{r}.json").read_text()) for r in range(2)]
    return {"ranks": ranks, "logs": [_steps(log) for log in rank_logs(log_dir)]}


def test_localiser_under_torchrun_writes_its_weights_once(work, ddp_stages):
    r0, r1 = (log["localiser"] for log in ddp_stages["logs"])
    assert "rank 0 of 2" in r0 and "rank 1 of 2" in r1  # both joined the gloo group
    localiser = work["models"] / "localiser"
    assert SAVED.findall(r0) == ["", str(localiser / "localiser.pt")] and not SAVED.findall(r1)
    assert sorted(p.name for p in localiser.iterdir()) == ["localiser.pt", "train_state"]
    assert [p.name for p in (localiser / "train_state").iterdir()] == ["checkpoint_epoch=1.pt"]
    events = list((work["root"] / "eval" / "localiser").iterdir())
    assert len(events) == 1 and events[0].name.startswith("events.out.tfevents.")  # rank 1 built no writer


def test_a_two_rank_checkpoint_resumes_in_one_process_at_its_epoch_length(work, ddp_stages, tmp_path, caplog):
    """The localiser's 2-rank epoch (3 volumes: 2 iterations per rank) resumed by one process for a second epoch: the
    networks load (no ``module.`` prefix in the checkpoint) and epoch 2 reads all 3 volumes, not the checkpoint's 2."""
    models = tmp_path / "models"
    shutil.copytree(work["models"] / "localiser", models / "localiser")
    saved = torch.load(models / "localiser" / "train_state" / "checkpoint_epoch=1.pt", weights_only=True)
    assert saved["trainer"]["epoch_length"] == 2 and not any(k.startswith("module.") for k in saved["network"])
    overrides = {**work["common"], "ckpt_dir": models, "output_dir": tmp_path / "eval"}
    with caplog.at_level(logging.WARNING):
        run = run_recorded(BUNDLE, ["train.json", "train_localiser.json"], epochs=2, **overrides)
    assert run["epochs"] == [2] and run["trainer"].state.epoch_length == 3 and run["trainer"].state.iteration == 6
    assert "was written with 2 iterations per epoch, this run has 3" in caplog.text


def test_every_training_stage_trains_its_shard_on_both_ranks(ddp_stages):
    r0, r1 = ddp_stages["ranks"]
    assert (r0["rank"], r1["rank"], r0["world_size"], r1["world_size"]) == (0, 1, 2, 2)
    for stage in ("translator", *STAGES):
        for result in (r0[stage], r1[stage]):
            # DistributedSampler(even_divisible=True): ceil(items / 2) volumes per rank, batch size 1, 1 epoch
            assert result["epoch"] == 1 and result["epoch_length"] == math.ceil(result["items"] / 2), stage
            assert result["iteration"] == result["epoch_length"], stage
    assert r0["unet1_ft"]["items"] == 15 and r0["unet1_bssfp"]["items"] == 3  # 3 cases x 5 styles; 3 bSSFP cases


def test_every_training_stage_ends_with_the_same_weights_on_both_ranks(work, ddp_stages):
    r0, r1 = ddp_stages["ranks"]
    for stage in ("translator", *STAGES):
        # DDP keeps the parameters equal; BatchNorm running statistics are each rank's own (DDP broadcasts rank 0's
        # buffers before each forward, which then updates them on local data), and rank 0 saves its own
        assert r0[stage]["parameters"] == r1[stage]["parameters"], stage
    assert r0["translator"]["weights"] == r1["translator"]["weights"]  # MUNIT has no BatchNorm: everything equal
    # the saved files hold rank 0's networks
    translator = torch.load(work["models"] / "translator" / "translator.pt", weights_only=True)
    assert digest(translator["gen_a"]) == r0["translator"]["weights"]["gen_a_def"]
    assert digest(translator["gen_b"]) == r0["translator"]["weights"]["gen_b_def"]
    for stage in STAGES:
        saved = torch.load(work["models"] / "member_0" / f"{stage}.pt", weights_only=True)
        assert digest(saved) == r0[stage]["weights"]["network_def"], stage
    # model.pt: {"model": LocalisedNetwork state}, rank 0's final cascade (segmenter.*) and the localiser (localiser.*)
    model = torch.load(work["models"] / "model.pt", weights_only=True)
    assert set(model) == {"model"}
    parts = {p: {k[len(p) :]: v for k, v in model["model"].items() if k.startswith(p)} for p in PARTS}
    assert sum(len(part) for part in parts.values()) == len(model["model"])
    assert digest(parts["segmenter."]) == r0["unet2_ft"]["weights"]["network_def"]
    localiser = torch.load(work["models"] / "localiser" / "localiser.pt", weights_only=True)
    assert digest(parts["localiser."]) == digest(localiser)


def test_only_rank0_writes_and_each_stage_writes_its_weights_once(work, ddp_stages):
    (r0, r1), (log0, log1) = ddp_stages["ranks"], ddp_stages["logs"]
    models = work["models"]
    finals = {
        "translator": [str(models / "translator" / "translator.pt")],
        **{stage: [str(models / "member_0" / f"{stage}.pt")] for stage in STAGES},
    }
    for stage, files in finals.items():
        saved = SAVED.findall(log0[stage])
        assert sorted(saved) == sorted(["", *files]), (stage, saved)  # one epoch checkpoint, each final file once
        assert not SAVED.findall(log1[stage]), stage
        # models/model.pt (scripts/weights.py, train.json's finalize): after unet2_ft only, by rank 0 only
        inference = INFERENCE_WEIGHTS.findall(log0[stage])
        assert inference == ([str(models / "model.pt")] if stage == "unet2_ft" else []), (stage, inference)
        assert not INFERENCE_WEIGHTS.findall(log1[stage]), stage
        assert "AtomicCheckpointSaver" in r0[stage]["handlers"] and "AtomicCheckpointSaver" not in r1[stage]["handlers"]
        assert "ResumeFromLatest" in r1[stage]["handlers"]
        events = list((work["root"] / "eval" / stage).iterdir())
        assert len(events) == 1 and events[0].name.startswith("events.out.tfevents."), stage
    assert sorted(p.name for p in (models / "member_0").iterdir()) == sorted(
        [f"{stage}.pt" for stage in STAGES] + [f"train_state_{stage}" for stage in STAGES]
    )
    for stage in STAGES:
        assert [p.name for p in (models / "member_0" / f"train_state_{stage}").iterdir()] == ["checkpoint_epoch=1.pt"]
    assert sorted(p.name for p in models.iterdir()) == ["localiser", "member_0", "model.pt", "translator"]
    assert [p.name for p in models.glob("*.pt")] == ["model.pt"]  # what MONAI Label's bundle task loads
    # the synthetic set: each rank translated its share of the 3 labelled bSSFP volumes, rank 0 wrote the datalist
    datalist = json.loads((work["synthetic"] / "set_0" / "datalist.json").read_text())
    assert len(datalist["training"]) == 15
    assert "synthetic LGE set: 15 volumes" in log0["generate"] and "synthetic LGE set" not in log1["generate"]
    progress = [re.findall(r"synthetic LGE: (\d)/3", log["generate"]) for log in (log0, log1)]
    assert progress == [["1", "3"], ["2"]], progress


def test_the_synthetic_set_of_two_ranks_is_the_set_of_one_process(work, ddp_stages, tmp_path):
    """generate.json under torchrun writes the files and datalist that one process writes from the same translator:
    every rank draws the style codes of every case in order and keeps its own."""
    common = {key: str(value) for key, value in work["common"].items()}
    run_tiny(BUNDLE, ["train.json", "generate.json"], **{**common, "synthetic_dir": str(tmp_path)})
    two_ranks, one = work["synthetic"] / "set_0", tmp_path / "set_0"
    assert json.loads((two_ranks / "datalist.json").read_text()) == json.loads((one / "datalist.json").read_text())
    names = sorted(p.name for p in one.glob("*.nii.gz"))
    assert len(names) == 18 and names == sorted(p.name for p in two_ranks.glob("*.nii.gz"))  # 3 x (5 styles + label)
    for name in names:
        a, b = nib.load(two_ranks / name), nib.load(one / name)
        np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj), err_msg=name)
        np.testing.assert_array_equal(a.affine, b.affine)


def test_sharded_inference_writes_every_output_once(work, ddp_stages):
    out, logs = work["root"] / "outputs", [log["inference"] for log in ddp_stages["logs"]]
    inputs = sorted(work["data"].glob("patient*_LGE.nii.gz"))
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name.replace(".nii.gz", "_seg.nii.gz") for p in inputs)
    for path in inputs:
        label = nib.load(out / path.name.replace(".nii.gz", "_seg.nii.gz"))
        assert label.shape == nib.load(path).shape
        assert set(np.unique(np.asarray(label.dataobj)).tolist()) <= MSCMR_VALUES
    # each rank segmented its own half: InferenceProgress names every file it finished ("file n/N <name> ...")
    shares = [re.findall(r"file \d+/(\d+) (\S+)", log) for log in logs]
    names = [sorted(name for _, name in share) for share in shares]
    assert [len(n) for n in names] == [3, 3] and not set(names[0]) & set(names[1])
    assert all(total == "3" for share in shares for total, _ in share)
    assert sorted(names[0] + names[1]) == [p.name for p in inputs]
