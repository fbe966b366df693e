"""The REHRSeg bundle's training stages on two gloo ranks (CPU, torchrun) with ``multi_gpu_train.json`` and tiny.json.

- the SMORE-style pre-upsampler (``train.json`` + ``train_sr.json`` + ``train_pre_upsampler.json``), then the plain
  self-SR network (``train.json`` + ``train_sr.json``, its pairs cut from the pre-upsampled volumes:
  ``sr_initialization smore``) and the UASR model (+ ``train_uasr.json``), each parsed as ``monai.bundle``'s command
  line, in one torchrun launch (``common.bundle_steps``): exit 0, both ranks joined the group, trained and finished,
  ``sr/pre_upsampler.pt`` / ``sr/plain.pt`` / ``sr/uasr.pt`` and their epoch checkpoint written once, by rank 0, and
  each loads strictly into its network (both ranks read the pre-upsampler; the UASR model fine-tuned from the plain
  one on both ranks);
- the pseudo-HR data in one process, and again under torchrun: each rank writes its share of the cases, every file
  once and equal to one process's;
- ``inference.json`` + ``multi_gpu_inference.json``: each rank segments its share, every output written once and
  equal to one process's (these two in one launch, after the segmenter's);
- the segmenter (``train.json``) with structural KD and the uncertainty-weighted LR loss under torchrun (a driver runs
  the stage's ``ConfigWorkflow`` as ``monai.bundle run`` does and records what each rank trained): each rank trains
  its shard, the segmenter (DDP) and the KD ``distiller`` (not DDP-wrapped: ``common.engines.HRSegTrainer``
  averages its gradients over the ranks with hooks) end with the same weights on both ranks, only rank 0 writes the
  checkpoint and ``model.pt``, and ``model.pt`` loads strictly into ``common.nets.HRSegUNet`` with the tiny features.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_test_utils import (
    bundle_scripts,
    bundle_step,
    rank_logs,
    run_tiny,
    step_logs,
    torchrun,
    torchrun_failure,
    torchrun_steps,
)
from monai.bundle import ConfigWorkflow

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "thick_slice_hr_segmentation_rehrseg"
CONFIGS = BUNDLE / "configs"
SR = ["train.json", "train_sr.json"]
UASR = [*SR, "train_uasr.json"]
PRE_UPSAMPLER = [*SR, "train_pre_upsampler.json"]
#: the self-SR stages here cut their pairs from the pre-upsampler's volumes (the default is the cubic zoom)
SMORE = {"sr_initialization": "smore"}
SAVED = re.compile(r"Saved checkpoint at epoch|saved final checkpoint: (\S+)")
#: the process id in a TensorBoard event file's name (events.out.tfevents.<time>.<host>.<pid>.<n>)
EVENT_PID = re.compile(r"events\.out\.tfevents\.\d+\..+\.(\d+)\.\d+$")

pytestmark = [pytest.mark.slow, pytest.mark.dist]

#: runs the segmenter stage (train.json + multi_gpu_train.json + tiny.json) on every rank and writes ``rank<R>.json``
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
    parser = workflow.parser
    distiller = parser.get_parsed_content("distiller")
    distiller_before = digest(distiller.state_dict())
    workflow.run()
    trainer = parser.get_parsed_content("train#trainer")
    record = {
        "rank": distributed.rank(),
        "world_size": distributed.world_size(),
        "pid": os.getpid(),
        "epoch": trainer.state.epoch,
        "iteration": trainer.state.iteration,
        "epoch_length": trainer.state.epoch_length,
        "items": len(parser.get_parsed_content("train#dataset")),
        "indices": list(parser.get_parsed_content("train#sampler")),  # this rank's shard of the last epoch
        "segmenter_type": type(trainer.networks["segmenter"]).__name__,
        "distiller_type": type(trainer.networks["distiller"]).__name__,
        "distiller_is_trained": trainer.networks["distiller"] is distiller,
        "use_uncertainty": trainer.use_uncertainty,
        "lambda_kd": trainer.lambda_kd,
        "teacher": "teacher" in trainer.frozen_networks,
        "segmenter": digest(parser.get_parsed_content("network_def").state_dict()),
        "distiller_before": distiller_before,
        "distiller": digest(distiller.state_dict()),
        "handlers": [type(h).__name__ for h in parser.get_parsed_content("train#trainer#train_handlers")],
        "val_handlers": [type(h).__name__ for h in parser.get_parsed_content("validate#evaluator#val_handlers")],
    }
    workflow.finalize()  # leaves the process group
    with open(os.path.join(out_dir, "rank%d.json" % record["rank"]), "w") as f:
        json.dump(record, f)


main(*sys.argv[1:])
"""


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


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _event_pids(folder: Path) -> list[int]:
    names = [p.name for p in folder.iterdir()]
    pids = [EVENT_PID.fullmatch(name) for name in names]
    assert all(pids), names
    return [int(match.group(1)) for match in pids]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict:
    from common.data import write_meningioma

    root = tmp_path_factory.mktemp("rehrseg_ddp")
    data = write_meningioma(root / "data", n_subjects=5, seed=0, small=True)
    return {"root": root, "data": data, "models": root / "models"}


#: the self-SR stages in the order they run: name -> (config files, extra overrides, its TensorBoard folder)
SR_STAGES = {
    "pre_upsampler": (PRE_UPSAMPLER, {}, "pre_upsampler"),
    "plain": (SR, SMORE, "sr"),
    "uasr": (UASR, SMORE, "uasr"),
}


@pytest.fixture(scope="module")
def ddp_sr(work) -> dict:
    """One torchrun launch of the three self-SR stages, each with multi_gpu_train.json + tiny.json: the
    pre-upsampler, then the plain network on its volumes, then the UASR model from the plain one."""
    steps = []
    for name, (files, extra, eval_dir) in SR_STAGES.items():
        overrides = {
            "dataset_dir": work["data"],
            "ckpt_dir": work["models"],
            "output_dir": work["root"] / "eval" / eval_dir,
        }
        steps.append(bundle_step([*files, "multi_gpu_train.json", "tiny.json"], {**overrides, **extra}))
    log_dir = work["root"] / "logs_sr"
    proc = torchrun_steps(BUNDLE, steps, log_dir)
    assert proc.returncode == 0, torchrun_failure(proc, log_dir)
    return {"logs": dict(zip(SR_STAGES, zip(*step_logs(log_dir))))}  # stage -> (rank 0's, rank 1's)


@pytest.fixture(scope="module")
def ddp_seg(work, ddp_sr) -> dict:
    """The pseudo-HR data in this process, then the segmenter stage under torchrun (the driver above)."""
    root, models = work["root"], work["models"]
    run_tiny(BUNDLE, ["train.json", "pseudo_hr.json"], dataset_dir=str(work["data"]), ckpt_dir=str(models))
    overrides = {
        "dataset_dir": str(work["data"]),
        "ckpt_dir": str(models),
        "output_dir": str(root / "eval" / "train"),
        "val_interval": 1,
    }
    (root / "overrides.json").write_text(json.dumps(overrides))
    (root / "driver.py").write_text(DRIVER)
    log_dir = root / "logs_train"
    proc = torchrun(BUNDLE, [str(root / "driver.py"), str(BUNDLE), str(root / "overrides.json"), str(root)], log_dir)
    assert proc.returncode == 0, torchrun_failure(proc, log_dir)
    ranks = [json.loads((root / f"rank{r}.json").read_text()) for r in range(2)]
    return {"ranks": ranks, "logs": rank_logs(log_dir)}


# ------------------------------------------------------------------------------------- the self-SR networks (CLI)
@pytest.mark.parametrize("name", list(SR_STAGES))
def test_sr_stage_under_torchrun_trains_on_both_ranks_and_writes_once(name, work, ddp_sr):
    r0, r1 = ddp_sr["logs"][name]
    first0, first1 = ddp_sr["logs"]["pre_upsampler"]  # both joined the gloo group, once: the later stages keep it
    assert "rank 0 of 2" in first0 and "rank 1 of 2" in first1
    assert name == "pre_upsampler" or "process group initialised" not in r0 + r1
    for log in (r0, r1):  # and both trained their epoch and finished
        assert "Epoch[1] Complete" in log and "Engine run finished" in log
    sr = work["models"] / "sr"
    assert SAVED.findall(r0) == ["", str(sr / f"{name}.pt")] and not SAVED.findall(r1)
    assert [p.name for p in (sr / f"{name}_state").iterdir()] == ["checkpoint_epoch=1.pt"]
    assert len(list((work["root"] / "eval" / SR_STAGES[name][2]).iterdir())) == 1  # rank 0's
    if name != "pre_upsampler":  # both ranks cut their pairs from the pre-upsampled volumes
        said = f"pairs cut from the thick volumes pre-upsampled by {sr / 'pre_upsampler.pt'}"
        assert all(said in log for log in (r0, r1))
    if name == "uasr":  # fine-tuned from the plain network, on both ranks
        assert all(f"UASR: started from {sr / 'plain.pt'}" in log for log in (r0, r1))


def test_sr_weights_written_under_torchrun_load(work, ddp_sr):
    sr = work["models"] / "sr"
    names = ["plain.pt", "plain_state", "pre_upsampler.pt", "pre_upsampler_state", "uasr.pt", "uasr_state"]
    assert sorted(p.name for p in sr.iterdir()) == names
    plain, uasr = _load(sr / "plain.pt"), _load(sr / "uasr.pt")
    # saved unwrapped (no DDP "module." prefix), strictly what the stages' networks load
    _parsed(["train.json"], "sr_network_def").load_state_dict(plain, strict=True)
    _parsed(["train.json"], "uasr_network_def").load_state_dict(uasr, strict=True)
    _parsed(SR, "pre_upsampler_def").load_state_dict(_load(sr / "pre_upsampler.pt"), strict=True)
    shared = [k for k in plain if k.startswith(("stem", "layer")) and k in uasr]
    assert shared and any(not torch.equal(plain[k], uasr[k]) for k in shared), "UASR fine-tuned the encoder"


# ----------------------------------------------------------------------------------------- the segmenter (driver)
def test_segmenter_trains_its_shard_with_kd_and_uncertainty_on_both_ranks(ddp_seg):
    r0, r1 = ddp_seg["ranks"]
    assert (r0["rank"], r1["rank"], r0["world_size"], r1["world_size"]) == (0, 1, 2, 2)
    for result in (r0, r1):
        assert result["segmenter_type"] == "DistributedDataParallel"
        assert result["distiller_type"] == "StructuralKDLoss" and result["distiller_is_trained"]  # not DDP-wrapped
        assert result["use_uncertainty"] and result["lambda_kd"] > 0 and result["teacher"]
        # DistributedSampler(even_divisible=True): ceil(items / 2) crops per rank at batch size 1, 1 epoch
        assert result["epoch"] == 1 and result["epoch_length"] == math.ceil(result["items"] / 2) >= 1
        assert result["iteration"] == result["epoch_length"]
    assert r0["indices"] != r1["indices"] and set(r0["indices"]) | set(r1["indices"]) == set(range(r0["items"]))


def test_segmenter_and_distiller_end_equal_on_both_ranks_and_rank0_saves_them(work, ddp_seg):
    r0, r1 = ddp_seg["ranks"]
    assert r0["segmenter"] == r1["segmenter"]  # DDP averaged the segmenter's gradients
    # the distiller trained on each rank's own shard, and its gradient hooks averaged it over the ranks
    assert r0["distiller"] == r1["distiller"] and r0["distiller"] != r0["distiller_before"]
    models = work["models"]
    state = _load(models / "train_state" / "checkpoint_epoch=1.pt")
    assert digest({k.removeprefix("network."): v for k, v in state["segmenter"].items()}) == r0["segmenter"]
    assert digest(state["distiller"]) == r0["distiller"]
    model = _load(models / "model.pt")
    assert digest(model) == r0["segmenter"]  # validated after the only epoch: the final segmenter
    # and it loads, strictly, into the HR segmenter of inference.json's shape with the tiny features
    from common.nets import HRSegUNet

    tiny = json.loads((CONFIGS / "tiny.json").read_text())
    inference = json.loads((CONFIGS / "inference.json").read_text())
    network = HRSegUNet(
        in_channels=1,
        out_channels=inference["num_classes"],
        scale=inference["scale"],
        features=tiny["seg_features"],
        strides=inference["seg_strides"],
        kernel_sizes=inference["seg_kernel_sizes"],
    )
    network.load_state_dict(model, strict=True)
    _parsed(["inference.json"], "network_def").load_state_dict(model, strict=True)


def test_only_rank0_writes_in_the_segmenter_stage(work, ddp_seg):
    (r0, r1), (log0, log1) = ddp_seg["ranks"], ddp_seg["logs"]
    assert "rank 0 of 2" in log0 and "rank 1 of 2" in log1
    assert all("Engine run finished" in log for log in (log0, log1))  # both ranks finished
    assert SAVED.findall(log0) == [""] and not SAVED.findall(log1)  # the epoch checkpoint, once
    assert "AtomicCheckpointSaver" in r0["handlers"] and "AtomicCheckpointSaver" not in r1["handlers"]
    assert {"ResumeFromLatest", "ValidationHandler", "LrScheduleHandler"} <= set(r1["handlers"])
    # the best-model saver (model.pt) is kept on rank 0 only
    assert "AtomicCheckpointSaver" in r0["val_handlers"] and not r1["val_handlers"]
    models = work["models"]
    assert sorted(p.name for p in models.iterdir()) == ["model.pt", "pseudo_hr", "sr", "train_state"]
    assert [p.name for p in (models / "train_state").iterdir()] == ["checkpoint_epoch=1.pt"]
    assert [p.name for p in models.glob("*.pt")] == ["model.pt"]  # what MONAI Label's bundle task loads
    pids = _event_pids(work["root"] / "eval" / "train")
    assert pids and set(pids) == {r0["pid"]}, (pids, r0["pid"], r1["pid"])  # rank 1 built no TensorBoard writer


# ------------------------------------------------------------------------ sharded folder inference and pseudo-HR
@pytest.fixture(scope="module")
def ddp_after_seg(work, ddp_seg) -> dict:
    """One torchrun launch, once the segmenter exists: inference.json + multi_gpu_inference.json over the 5
    thick-slice volumes, then pseudo_hr.json + multi_gpu_train.json into a folder of its own."""
    root = work["root"] / "after_seg"
    inputs = work["data"] / "imagesTr"
    steps = [
        bundle_step(
            ["inference.json", "multi_gpu_inference.json", "tiny.json"],
            {"dataset_dir": inputs, "ckpt_dir": work["models"], "output_dir": root / "sharded_inference"},
        ),
        bundle_step(
            ["train.json", "pseudo_hr.json", "multi_gpu_train.json", "tiny.json"],
            {"dataset_dir": work["data"], "ckpt_dir": work["models"], "pseudo_hr_dir": root / "sharded_pseudo_hr"},
        ),
    ]
    log_dir = root / "logs"
    proc = torchrun_steps(BUNDLE, steps, log_dir)
    assert proc.returncode == 0, torchrun_failure(proc, log_dir)
    (infer0, pseudo0), (infer1, pseudo1) = step_logs(log_dir)
    return {"root": root, "inputs": inputs, "infer_logs": [infer0, infer1], "pseudo_hr_logs": [pseudo0, pseudo1]}


def test_sharded_inference_writes_every_output_once_as_one_process_does(work, ddp_after_seg, tmp_path):
    """``inference.json`` + ``multi_gpu_inference.json`` over the 5 thick-slice volumes on 2 ranks: each HR
    segmentation written once, by the rank that read it, equal to the one-process output."""
    inputs, sharded = ddp_after_seg["inputs"], ddp_after_seg["root"] / "sharded_inference"
    infer = {"dataset_dir": str(inputs), "ckpt_dir": str(work["models"])}
    run_tiny(BUNDLE, ["inference.json"], **infer, output_dir=str(tmp_path / "single"))
    names = sorted(p.name for p in (tmp_path / "single").iterdir())
    assert len(names) == len(list(inputs.glob("*.nii.gz"))) == 5
    assert sorted(p.name for p in sharded.iterdir()) == names
    for name in names:
        a, b = nib.load(sharded / name), nib.load(tmp_path / "single" / name)
        np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj), err_msg=name)
        np.testing.assert_allclose(a.affine, b.affine)
    shares = [re.findall(r"file \d+/(\d+) (\S+)", log) for log in ddp_after_seg["infer_logs"]]
    read = [sorted(name for _, name in share) for share in shares]
    assert [len(r) for r in read] == [3, 2] and not set(read[0]) & set(read[1]), read


def test_pseudo_hr_under_torchrun_writes_each_case_once_as_one_process_does(work, ddp_after_seg):
    """``pseudo_hr.json`` + ``multi_gpu_train.json`` on 2 ranks: each rank super-resolves its share of the training
    cases; the files equal the one-process ones (``ddp_seg`` wrote them) and no case is written twice."""
    single, sharded = work["models"] / "pseudo_hr", ddp_after_seg["root"] / "sharded_pseudo_hr"
    names = sorted(p.name for p in single.glob("*.nii.gz"))
    assert names and sorted(p.name for p in sharded.glob("*.nii.gz")) == names
    for name in names:
        a, b = nib.load(sharded / name), nib.load(single / name)
        # images are in the input's units (hundreds): one float32 ulp there is 3e-5, so the bound is relative too
        np.testing.assert_allclose(np.asarray(a.dataobj), np.asarray(b.dataobj), rtol=1e-6, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(a.affine, b.affine)
    shares = [re.findall(r"pseudo-HR \d+/\d+ (\S+):", log) for log in ddp_after_seg["pseudo_hr_logs"]]
    assert all(shares) and not set(shares[0]) & set(shares[1]) and sum(map(len, shares)) == len(names) // 3, shares
