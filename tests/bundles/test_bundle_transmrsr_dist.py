"""The TransMRSR brain MRI super-resolution bundle on two gloo ranks (CPU, torchrun): both training stages with
``multi_gpu_train.json`` and tiny.json.

- the generative prior through ``monai.bundle``'s command line under torchrun (as a user runs it): exit 0, both
  ranks joined the group and trained, both end with the same G, D and EMA generator (a test overlay saves each
  rank's), ``prior/prior.pt`` written once, by rank 0, and its EMA generator loads;
- its centroids in one process (``centroids.json`` is a single-process step);
- the SR network under torchrun (a driver runs the stage's ``ConfigWorkflow`` as ``monai.bundle run`` does and
  records what each rank trained): each rank trains its shard, both end with the same weights, only rank 0 writes
  the checkpoint and ``model.pt``, and ``model.pt`` loads strictly into ``inference.json``'s network.

Rank 0 alone keeps the best-model saver: ``multi_gpu_train.json`` passes ``validate#handlers`` through
``common.handlers.rank0_handlers`` (the saver is built on every rank, so no rank holds ``None`` in its handler
list); ``test_sr_config_builds_on_ranks_other_than_0`` checks that in one process.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch
from bundle_test_utils import bundle_scripts, bundle_step, rank_logs, torchrun, torchrun_failure
from monai.bundle import ConfigWorkflow

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "brain_mri_super_resolution_transmrsr"
CONFIGS = BUNDLE / "configs"
SAVED = re.compile(r"Saved checkpoint at epoch|saved final checkpoint: (\S+)")
#: the process id in a TensorBoard event file's name (events.out.tfevents.<time>.<host>.<pid>.<n>)
EVENT_PID = re.compile(r"events\.out\.tfevents\.\d+\..+\.(\d+)\.\d+$")

pytestmark = [pytest.mark.slow, pytest.mark.dist]

#: runs the SR stage (train.json + multi_gpu_train.json + tiny.json) on every rank and writes ``rank<R>.json``
DRIVER = """
import hashlib, json, os, sys

from common import distributed
from monai.bundle import ConfigWorkflow


def digest(state):
    h = hashlib.sha256()
    for key, value in sorted(state.items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(bundle, overrides_file, out_dir):
    sys.path.insert(0, bundle)  # `monai.bundle run` from the bundle folder: `scripts` is importable
    configs = os.path.join(bundle, "configs")
    workflow = ConfigWorkflow(
        config_file=[os.path.join(configs, f) for f in ("train.json", "multi_gpu_train.json", "tiny.json")],
        meta_file=os.path.join(configs, "metadata.json"),
        logging_file=os.path.join(configs, "logging.conf"),
        bundle_root=bundle,
        **json.load(open(overrides_file)),
    )
    workflow.initialize()
    rank, world_size = distributed.rank(), distributed.world_size()
    workflow.run()
    parser = workflow.parser
    trainer = parser.get_parsed_content("train#trainer")
    network = parser.get_parsed_content("network_def")
    record = {
        "rank": rank,
        "world_size": world_size,
        "pid": os.getpid(),
        "epoch": trainer.state.epoch,
        "iteration": trainer.state.iteration,
        "epoch_length": trainer.state.epoch_length,
        "items": len(parser.get_parsed_content("train_datalist")),
        "ddp": type(parser.get_parsed_content("network")).__name__,
        "weights": digest(network.state_dict()),
        "parameters": digest(dict(network.named_parameters())),
        "handlers": [type(h).__name__ for h in parser.get_parsed_content("train#trainer#train_handlers")],
        "val_handlers": [type(h).__name__ for h in parser.get_parsed_content("validate#evaluator#val_handlers")],
    }
    workflow.finalize()  # leaves the process group
    with open(os.path.join(out_dir, "rank%d.json" % rank), "w") as f:
        json.dump(record, f)


main(*sys.argv[1:])
"""


def _cli(files: list[str], overrides: dict) -> list[str]:
    """``python -m monai.bundle run`` of ``files`` with ``overrides`` (:func:`bundle_step`)."""
    return ["-m", "monai.bundle", "run", *bundle_step(files, overrides)]


def digest(state: dict) -> str:
    """sha256 over the sorted keys and tensor bytes of a ``state_dict`` (as the driver computes it)."""
    h = hashlib.sha256()
    for key, value in sorted(state.items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _parsed(files: list[str], key: str):
    """``key`` of ``configs/<files>`` + tiny.json, parsed in this process."""
    with bundle_scripts(BUNDLE):
        workflow = ConfigWorkflow(
            config_file=[str(CONFIGS / f) for f in [*files, "tiny.json"]],
            meta_file=str(CONFIGS / "metadata.json"),
            logging_file=False,
            bundle_root=str(BUNDLE),
        )
        return workflow.parser.get_parsed_content(key)


def _event_pids(folder: Path) -> list[int]:
    names = [p.name for p in folder.iterdir()]
    pids = [EVENT_PID.fullmatch(name) for name in names]
    assert all(pids), names
    return [int(match.group(1)) for match in pids]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict:
    from common.data import write_ixi

    root = tmp_path_factory.mktemp("transmrsr_ddp")
    data = write_ixi(root / "data", n_subjects=6, seed=5, small=True)
    return {"root": root, "data": data, "models": root / "models"}


#: a test overlay's expression on the prior stage: at the end each rank saves what it trained (G, D, the EMA
#: generator) as ``<folder>/prior_rank<R>.pt``, before leaving the group (a user's run writes rank 0's, as prior.pt)
RECORD_RANKS = (
    "$torch.save({{'g': @prior_generator_def.state_dict(), 'd': @discriminator_def.state_dict(), "
    "'g_ema': @train#trainer.ema_networks['g'].state_dict()}}, "
    "os.path.join({folder!r}, 'prior_rank%d.pt' % torch.distributed.get_rank()))"
)


@pytest.fixture(scope="module")
def ddp_prior(work) -> dict:
    """``torchrun ... -m monai.bundle run`` with train.json + train_prior.json + multi_gpu_train.json + tiny.json, and
    the test's overlay that records each rank's networks (:data:`RECORD_RANKS`) and adds R1 to every step."""
    log_dir = work["root"] / "logs_prior"
    record = work["root"] / "record_ranks.json"
    # R1 at every step, so the tiny run's one step per rank is an R1 step (every 16th by default)
    overlay = {"r1_every": 1, "finalize": [RECORD_RANKS.format(folder=str(work["root"])), "$@dist_finalize"]}
    record.write_text(json.dumps(overlay))
    files = ["train.json", "train_prior.json", "multi_gpu_train.json", "tiny.json", str(record)]
    overrides = {"dataset_dir": work["data"], "ckpt_dir": work["models"], "output_dir": work["root"] / "eval" / "prior"}
    proc = torchrun(BUNDLE, _cli(files, overrides), log_dir)
    return {"proc": proc, "log_dir": log_dir}


@pytest.fixture(scope="module")
def ddp_sr(work, ddp_prior) -> dict:
    """The centroids in this process, then the SR stage under torchrun (the driver above)."""
    assert ddp_prior["proc"].returncode == 0, torchrun_failure(ddp_prior["proc"], ddp_prior["log_dir"])
    root, models = work["root"], work["models"]
    with bundle_scripts(BUNDLE):
        workflow = ConfigWorkflow(
            config_file=[str(CONFIGS / f) for f in ("train.json", "centroids.json", "tiny.json")],
            meta_file=str(CONFIGS / "metadata.json"),
            logging_file=False,
            bundle_root=str(BUNDLE),
            dataset_dir=str(work["data"]),
            ckpt_dir=str(models),
        )
        workflow.initialize()
        workflow.run()
        workflow.finalize()
    assert (models / "prior" / "centroids.pt").is_file()
    overrides = {
        "dataset_dir": str(work["data"]),
        "ckpt_dir": str(models),
        "output_dir": str(root / "eval" / "sr"),
        "val_interval": 1,
    }
    (root / "overrides.json").write_text(json.dumps(overrides))
    (root / "driver.py").write_text(DRIVER)
    log_dir = root / "logs_sr"
    proc = torchrun(BUNDLE, [str(root / "driver.py"), str(BUNDLE), str(root / "overrides.json"), str(root)], log_dir)
    assert proc.returncode == 0, torchrun_failure(proc, log_dir)
    ranks = [json.loads((root / f"rank{r}.json").read_text()) for r in range(2)]
    return {"ranks": ranks, "logs": rank_logs(log_dir)}


# --------------------------------------------------------------------------------------------------------- the prior
def test_prior_under_torchrun_trains_on_both_ranks_and_writes_once(work, ddp_prior):
    proc, log_dir = ddp_prior["proc"], ddp_prior["log_dir"]
    assert proc.returncode == 0, torchrun_failure(proc, log_dir)
    r0, r1 = rank_logs(log_dir)
    assert "rank 0 of 2" in r0 and "rank 1 of 2" in r1  # both joined the gloo group
    assert "Epoch[1] Complete" in r0 and "Epoch[1] Complete" in r1  # and both trained
    prior = work["models"] / "prior"
    assert SAVED.findall(r0) == ["", str(prior / "prior.pt")] and not SAVED.findall(r1)
    assert sorted(p.name for p in work["models"].iterdir()) == ["prior"]  # nothing for MONAI Label's models/*.pt
    assert sorted(p.name for p in prior.iterdir()) == ["prior.pt", "train_state"]
    assert [p.name for p in (prior / "train_state").iterdir()] == ["checkpoint_epoch=1.pt"]
    assert len(list((work["root"] / "eval" / "prior").iterdir())) == 1  # rank 1 built no TensorBoard writer


def test_prior_ranks_end_with_the_same_generator_discriminator_and_ema(work, ddp_prior):
    """DDP keeps G and D equal on both ranks through the GAN steps and the lazy R1 step, and the EMA copies follow;
    rank 0's are what prior.pt holds."""
    assert ddp_prior["proc"].returncode == 0, torchrun_failure(ddp_prior["proc"], ddp_prior["log_dir"])
    r0, r1 = (torch.load(work["root"] / f"prior_rank{r}.pt", map_location="cpu", weights_only=True) for r in (0, 1))
    for name in ("g", "d", "g_ema"):
        assert set(r0[name]) == set(r1[name]) and all(torch.equal(r0[name][k], r1[name][k]) for k in r0[name]), name
    assert any(not torch.equal(r0["g"][k], r0["g_ema"][k]) for k in r0["g"])  # the EMA is its own copy
    prior = torch.load(work["models"] / "prior" / "prior.pt", map_location="cpu", weights_only=True)
    assert prior["trainer"]["iteration"] >= 1  # with r1_every 1, each an R1 step
    for name in ("g", "d", "g_ema"):
        assert digest(prior[name]) == digest(r0[name]), name


def test_prior_written_under_torchrun_loads(work, ddp_prior):
    assert ddp_prior["proc"].returncode == 0, torchrun_failure(ddp_prior["proc"], ddp_prior["log_dir"])
    checkpoint = torch.load(work["models"] / "prior" / "prior.pt", map_location="cpu", weights_only=True)
    generator = _parsed(["train.json", "centroids.json"], "generator_def")
    for key in ("g_ema", "g"):  # saved unwrapped: no DDP "module." prefix
        generator.load_state_dict(checkpoint[key], strict=True)
    discriminator = _parsed(["train.json", "train_prior.json"], "discriminator_def")
    discriminator.load_state_dict(checkpoint["d"], strict=True)
    assert checkpoint["trainer"]["epoch_length"] >= 1 and checkpoint["trainer"]["iteration"] >= 1


# ------------------------------------------------------------------------------------------------------ the SR network
def test_sr_trains_its_shard_on_both_ranks(ddp_sr):
    r0, r1 = ddp_sr["ranks"]
    assert (r0["rank"], r1["rank"], r0["world_size"], r1["world_size"]) == (0, 1, 2, 2)
    for result in (r0, r1):
        assert result["ddp"] == "DistributedDataParallel"
        # DistributedSampler(even_divisible=True): ceil(items / 2) volumes per rank, 1 epoch
        assert result["epoch"] == 1 and result["epoch_length"] == math.ceil(result["items"] / 2) >= 1
        assert result["iteration"] == result["epoch_length"]


def test_sr_ends_with_the_same_weights_on_both_ranks_and_rank0_saves_them(work, ddp_sr):
    r0, r1 = ddp_sr["ranks"]
    assert r0["parameters"] == r1["parameters"] and r0["weights"] == r1["weights"]  # no BatchNorm: all equal
    models = work["models"]
    state = torch.load(models / "train_state" / "checkpoint_epoch=1.pt", map_location="cpu", weights_only=True)
    assert digest(state["network"]) == r0["weights"]
    model = torch.load(models / "model.pt", map_location="cpu", weights_only=True)
    assert digest(model) == r0["weights"]  # validated after the last epoch: the final network
    # and it is what inference.json's network_def loads, strictly
    network = _parsed(["inference.json"], "network_def")
    network.load_state_dict(model, strict=True)
    assert all(torch.equal(v, model[k]) for k, v in network.state_dict().items())


def test_only_rank0_writes_the_sr_weights(work, ddp_sr):
    (r0, r1), (log0, log1) = ddp_sr["ranks"], ddp_sr["logs"]
    assert "rank 0 of 2" in log0 and "rank 1 of 2" in log1
    assert SAVED.findall(log0) == [""] and not SAVED.findall(log1)  # the epoch checkpoint, once
    assert "AtomicCheckpointSaver" in r0["handlers"] and "AtomicCheckpointSaver" not in r1["handlers"]
    assert "ResumeFromLatest" in r1["handlers"] and "ValidationHandler" in r1["handlers"]
    # the best-model saver (model.pt) is built on rank 0 only
    assert "AtomicCheckpointSaver" in r0["val_handlers"] and "AtomicCheckpointSaver" not in r1["val_handlers"]
    models = work["models"]
    assert sorted(p.name for p in models.iterdir()) == ["model.pt", "prior", "train_state", "trained_scale.json"]
    assert [p.name for p in (models / "train_state").iterdir()] == ["checkpoint_epoch=1.pt"]
    assert [p.name for p in models.glob("*.pt")] == ["model.pt"]  # what MONAI Label's bundle task loads
    pids = _event_pids(work["root"] / "eval" / "sr")
    assert pids and set(pids) == {r0["pid"]}, (pids, r0["pid"], r1["pid"])  # rank 1 built no TensorBoard writer


def test_sr_config_builds_on_ranks_other_than_0(work, ddp_sr, tmp_path):
    """train.json as rank 1 builds it (``is_main_process`` false): every handler exists, in this process, without the
    cost of another torchrun."""
    models = tmp_path / "models"
    (models / "prior").mkdir(parents=True)
    for name in ("prior.pt", "centroids.pt"):
        shutil.copy(work["models"] / "prior" / name, models / "prior" / name)
    with bundle_scripts(BUNDLE):
        workflow = ConfigWorkflow(
            config_file=[str(CONFIGS / f) for f in ("train.json", "tiny.json")],
            meta_file=str(CONFIGS / "metadata.json"),
            logging_file=False,
            bundle_root=str(BUNDLE),
            dataset_dir=str(work["data"]),
            ckpt_dir=str(models),
            output_dir=str(tmp_path / "eval"),
            is_main_process=False,
            val_interval=1,
        )
        workflow.initialize()
        handlers = workflow.parser.get_parsed_content("validate#handlers")
        assert None not in handlers, handlers
