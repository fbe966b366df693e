"""The PSCGAN bundle's training phases on two gloo ranks (CPU, torchrun) with ``multi_gpu_train.json`` and tiny.json.

Each phase runs as ``monai.bundle``'s command line parses it, in one torchrun launch (``common.bundle_steps``: one
step a phase, then the sharded inference), each phase in its own models folder:

- Pri (``train.json``) from an empty folder;
- Sys (+ ``train_sys.json``) from a folder holding ``pri/pri.pt`` only;
- Seg (+ ``train_seg.json``) from a folder holding ``pri/pri.pt`` and ``sys/sys.pt`` only;

the earlier phases' weights made by single-process tiny runs beforehand, so that each phase stands alone. The launch
exits 0; in every phase both ranks join the gloo group, train their shard (1 training patient = 3 slices: 2
iterations a rank with ``DistributedSampler(even_divisible=True)``) and finish; only rank 0 writes the epoch
checkpoint, the phase's weights and the TensorBoard logs; the weights are saved unwrapped (no DDP ``module.`` prefix)
and load strictly into the phase's network (Seg's ``model.pt`` into inference.json's cascade, the frozen Pri and Sys
in it unchanged).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from bundle_test_utils import bundle_scripts, bundle_step, run_tiny, step_logs, torchrun_failure, torchrun_steps
from common.checkpoint import extract_state_dict
from monai.bundle import ConfigWorkflow

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "cine_lge_synthesis_segmentation"
CONFIGS = BUNDLE / "configs"
PHASES = {"pri": ["train.json"], "sys": ["train.json", "train_sys.json"], "seg": ["train.json", "train_seg.json"]}
#: what each phase writes in its models folder
PRODUCTS = {
    "pri": {"pri/pri.pt", "pri/train_state/checkpoint_epoch=1.pt"},
    "sys": {"sys/sys.pt", "sys/train_state/checkpoint_epoch=1.pt"},
    "seg": {"model.pt", "seg/train_state/checkpoint_epoch=1.pt"},
}
#: the earlier phases' weights each phase starts from
NEEDS = {"pri": (), "sys": ("pri",), "seg": ("pri", "sys")}
#: 1 training, 1 validation and 3 test patients of 5
FRACTIONS = [0.2, 0.2, 0.6]
#: 4x fewer keys in the tiny networks' 64 x 64 space attentions (no weight changes; ~3x faster on the CPU)
FAST = {"attention_key_pool": 2}
#: the process id in a TensorBoard event file's name (events.out.tfevents.<time>.<host>.<pid>.<n>)
EVENT_PID = re.compile(r"events\.out\.tfevents\.\d+\..+\.(\d+)\.\d+$")

pytestmark = [pytest.mark.slow, pytest.mark.dist]


def _parsed(files: list[str], key: str):
    """``key`` of ``configs/<files>`` + tiny.json, parsed in this process."""
    with bundle_scripts(BUNDLE):
        workflow = ConfigWorkflow(
            config_file=[str(CONFIGS / f) for f in [*files, "tiny.json"]],
            meta_file=str(CONFIGS / "metadata.json"),
            logging_file=False,
            bundle_root=str(BUNDLE),
            **FAST,
        )
        return workflow.parser.get_parsed_content(key)


def _load(path: Path) -> dict:
    return extract_state_dict(torch.load(path, map_location="cpu", weights_only=True))


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict:
    """5 CineLGE phantoms, and pri.pt and sys.pt of single-process tiny runs."""
    from common.data import write_cine_lge

    root = tmp_path_factory.mktemp("pscgan_ddp")
    data = write_cine_lge(root / "data", n_cases=5, seed=0)
    single = root / "single"
    common = {"dataset_dir": str(data), "ckpt_dir": str(single), "fractions": FRACTIONS, **FAST}
    for phase in ("pri", "sys"):
        run_tiny(BUNDLE, PHASES[phase], **common, output_dir=str(root / "eval_single" / phase))
    return {"root": root, "data": data, "single": single}


#: the cine stacks the sharded inference segments
INFER_CASES = ("case001", "case002", "case003")


@pytest.fixture(scope="module")
def ddp(work) -> dict:
    """One torchrun launch: each phase with multi_gpu_train.json + tiny.json in its own folder, then inference.json +
    multi_gpu_inference.json with Seg's cascade over 3 cine stacks."""
    root, steps, runs = work["root"], [], {}
    for phase, files in PHASES.items():
        models = root / f"models_{phase}"
        for earlier in NEEDS[phase]:
            (models / earlier).mkdir(parents=True)
            shutil.copy(work["single"] / earlier / f"{earlier}.pt", models / earlier)
        runs[phase] = {"models": models, "before": _files(models) if models.is_dir() else set()}
        overrides = {
            "dataset_dir": work["data"], "ckpt_dir": models, "output_dir": root / "eval" / phase,
            "fractions": FRACTIONS, **FAST,
        }  # fmt: skip
        steps.append(bundle_step([*files, "multi_gpu_train.json", "tiny.json"], overrides))
    inputs = root / "cine"
    inputs.mkdir()
    for case in INFER_CASES:
        shutil.copy(work["data"] / case / f"{case}_cine.nii.gz", inputs)
    infer = {"dataset_dir": inputs, "ckpt_dir": runs["seg"]["models"], "output_dir": root / "sharded", **FAST}
    steps.append(bundle_step(["inference.json", "multi_gpu_inference.json", "tiny.json"], infer))
    log_dir = root / "logs"
    proc = torchrun_steps(BUNDLE, steps, log_dir)
    assert proc.returncode == 0, torchrun_failure(proc, log_dir)
    logs = step_logs(log_dir)
    for i, phase in enumerate(PHASES):
        runs[phase]["logs"] = [logs[0][i], logs[1][i]]
    return {**runs, "inputs": inputs, "sharded": root / "sharded"}


@pytest.mark.parametrize("phase", list(PHASES))
def test_phase_under_torchrun_trains_on_both_ranks_and_writes_once(phase, work, ddp):
    run = ddp[phase]
    r0, r1 = ddp[phase]["logs"]
    first0, first1 = ddp["pri"]["logs"]  # both joined the gloo group, once: the later phases keep it
    assert "rank 0 of 2" in first0 and "rank 1 of 2" in first1
    assert phase == "pri" or "process group initialised" not in r0 + r1
    for log in (r0, r1):  # and both trained their epoch and finished
        assert "Epoch[1] Complete" in log and "Engine run finished" in log
    assert "iter 2/2" in r0  # 3 training slices: 2 a rank
    assert r0.count("Saved checkpoint at epoch: 1") == 1 and "Saved checkpoint" not in r1
    assert _files(run["models"]) - run["before"] == PRODUCTS[phase]
    for earlier in NEEDS[phase]:  # read, never written
        copied, made = run["models"] / earlier / f"{earlier}.pt", work["single"] / earlier / f"{earlier}.pt"
        assert copied.read_bytes() == made.read_bytes(), earlier
    # one process (rank 0) wrote the TensorBoard logs
    names = [p.name for p in (work["root"] / "eval" / phase).iterdir()]
    matches = [EVENT_PID.fullmatch(name) for name in names]
    assert names and all(matches) and len({m.group(1) for m in matches}) == 1, names


def test_pri_and_sys_weights_written_under_torchrun_load(work, ddp):
    for phase in ("pri", "sys"):
        state = _load(ddp[phase]["models"] / phase / f"{phase}.pt")
        assert not any(key.startswith("module.") for key in state)
        _parsed(PHASES[phase], f"{phase}_def").load_state_dict(state, strict=True)


def test_the_cascade_written_under_torchrun_loads_with_the_frozen_phases_unchanged(work, ddp):
    model = _load(ddp["seg"]["models"] / "model.pt")
    assert {key.split(".", 1)[0] for key in model} == {"pri", "sys", "seg"}
    _parsed(["inference.json"], "network_def").load_state_dict(model, strict=True)
    for phase in ("pri", "sys"):
        frozen = _load(work["single"] / phase / f"{phase}.pt")
        cascade = {k.removeprefix(f"{phase}."): v for k, v in model.items() if k.startswith(f"{phase}.")}
        assert set(cascade) == set(frozen) and all(torch.equal(cascade[k], frozen[k]) for k in frozen), phase


def test_sharded_inference_writes_every_output_and_one_clinical_report_of_all_cases(work, ddp, tmp_path):
    """``inference.json`` + ``multi_gpu_inference.json`` on 3 cine stacks over 2 ranks: each stack's outputs written
    once, and rank 0 writes the clinical CSVs of every rank's stacks, equal to those of one process."""
    import csv

    single_infer = {"dataset_dir": str(ddp["inputs"]), "ckpt_dir": str(ddp["seg"]["models"]), **FAST}
    run_tiny(BUNDLE, ["inference.json"], **single_infer, output_dir=str(tmp_path / "single"))
    sharded, single = _files(ddp["sharded"]), _files(tmp_path / "single")
    # per case: the segmentation, the LGE-equivalent image and the AHA segment map
    assert sharded == single and len([name for name in single if name.endswith(".nii.gz")]) == 3 * len(INFER_CASES)
    for name in ("clinical_cases.csv", "clinical_segments.csv"):
        with open(ddp["sharded"] / name) as a, open(tmp_path / "single" / name) as b:
            rows, expected = list(csv.DictReader(a)), list(csv.DictReader(b))
        assert rows == expected, name
    with open(ddp["sharded"] / "clinical_cases.csv") as f:
        assert [row["case"] for row in csv.DictReader(f)] == [f"{case}_cine" for case in INFER_CASES]
