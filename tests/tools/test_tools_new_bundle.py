"""A new bundle is covered by verify, package, benchmark and DDP-benchmark discovery without editing any file
outside its folder: a throwaway minimal bundle is written to a temp tree and every tool finds and runs it."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import textwrap
import zipfile
from pathlib import Path

import pytest

from tools import benchmark as tb
from tools import benchmark_ddp as tbd
from tools import package
from tools import verify_bundles as vb

REPO_ROOT = Path(__file__).resolve().parents[2]
NAME = "throwaway_segmentation"
NET = {"_target_": "BasicUNet", "spatial_dims": 2, "in_channels": 1, "out_channels": 2, "features": "@features"}
INFERENCE = {
    "imports": ["$import os", "$import torch"],
    "bundle_root": ".",
    "output_dir": "$os.path.join(@bundle_root, 'outputs')",
    "ckpt_dir": "$os.path.join(@bundle_root, 'models')",
    "device": "$torch.device('cpu')",
    "features": [8, 8, 16, 16, 32, 8],
    "network_def": NET,
    "network": "$@network_def.to(@device)",
    "initialize": [],
    "run": [],
}
TRAIN = {**INFERENCE, "output_dir": "$os.path.join(@bundle_root, 'eval')", "epochs": 5, "batch_size": 2}
BENCHMARK = """
from common.benchmarking import BenchmarkRow

COMPARISONS = (("Net", "Baseline"),)
PAPER_NOTES = "Throwaway: no paper."
MODE_NOTES = {"quick": "no training"}
METRIC_LABELS = {"dice": "Dice, test split"}
DDP_OVERRIDES = {"batch_size": 2}


def run(data_root, out_dir, quick=False):
    net = [(f"c{i}", 0.8 + 0.01 * (i % 10)) for i in range(20)]  # 20 cases: enough to name a better method
    baseline = [(f"c{i}", 0.4 + 0.01 * (i % 10)) for i in range(20)]
    rows = [
        BenchmarkRow("Net", "dice", net, seeds=[0, 1], per_seed={0: net, 1: net}, seconds=1.0),
        BenchmarkRow("Baseline", "dice", baseline, seeds=[0, 1], per_seed={0: baseline, 1: baseline}, seconds=1.0),
    ]
    return [r.to_dict() for r in rows]
"""


def _metadata() -> dict:
    meta = json.loads((REPO_ROOT / "bundles" / "lge_mi_sr_segmentation" / "configs" / "metadata.json").read_text())
    meta = copy.deepcopy(meta)
    io = meta["network_data_format"]
    io["inputs"]["image"].update(spatial_shape=["16*n", "16*n"], num_channels=1)
    io["outputs"]["pred"].update(spatial_shape=["16*n", "16*n"], num_channels=2)
    return meta


@pytest.fixture
def bundles_dir(tmp_path) -> Path:
    bundle = tmp_path / "bundles" / NAME
    (bundle / "configs").mkdir(parents=True)
    (bundle / "scripts").mkdir()
    (bundle / "docs").mkdir()
    configs = {
        "metadata.json": _metadata(),
        "inference.json": INFERENCE,
        "train.json": TRAIN,
        "multi_gpu_train.json": {"network": "$@network_def.to(@device)"},
        "quick.json": {"features": [4, 4, 8, 8, 16, 4]},
        "tiny.json": {"features": [2, 2, 4, 4, 8, 2]},
    }
    for name, content in configs.items():
        (bundle / "configs" / name).write_text(json.dumps(content, indent=4))
    (bundle / "scripts" / "__init__.py").write_text("")
    (bundle / "scripts" / "benchmark.py").write_text(textwrap.dedent(BENCHMARK))
    (bundle / "docs" / "README.md").write_text("# throwaway\n")
    return tmp_path / "bundles"


@pytest.mark.slow
def test_verify_discovers_and_passes_the_new_bundle(bundles_dir, tiny_data):
    assert [b.name for b in vb.find_bundles(bundles_dir)] == [NAME]
    bundle = bundles_dir / NAME
    assert vb.tiny_overrides(bundle) == {"features": [2, 2, 4, 4, 8, 2]}
    vb._quiet_monai_logging()
    report = vb.verify_bundle(bundle, data_root=tiny_data, overrides=vb.tiny_overrides(bundle))
    assert not report.failed, vb.format_table([report])
    assert report.result("net_in_out").detail == "(1, 1, 32, 32) -> (1, 2, 32, 32)"  # smallest 16*n that runs
    assert report.result("configs").status == "PASS", report.result("configs").detail


def test_package_discovers_the_new_bundle(bundles_dir, tmp_path, capsys):
    assert package.main(["--bundles-dir", str(bundles_dir), "--out", str(tmp_path / "dist")]) == 0
    version = _metadata()["version"]
    with zipfile.ZipFile(tmp_path / "dist" / f"{NAME}_v{version}.zip") as zf:
        names = zf.namelist()
    assert f"{NAME}/configs/quick.json" in names and f"{NAME}/scripts/benchmark.py" in names


def test_benchmark_discovers_runs_and_merges_the_new_bundle(bundles_dir, tmp_path, capsys):
    assert tb.find_benchmark_bundles(bundles_dir) == [bundles_dir / NAME]
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    argv = ["--all", "--quick", "--data_root", str(data), "--out", str(out), "--bundles_dir", str(bundles_dir)]
    assert tb.main(argv) == 0
    assert list(data.iterdir()) == []  # the bundle names no REQUIRED_DATASET: no data written
    content = json.loads((out / "benchmark.json").read_text())
    (row,) = content["rows"]
    assert (row["bundle"], row["method"], row["baseline_method"], row["metric"]) == (
        NAME,
        "Net",
        "Baseline",
        "Dice, test split",
    )
    assert row["ordering"] == "Net better" and row["n_cases"] == 20
    assert (row["n_seeds"], row["seeds_agreeing"]) == (2, 2)  # per_seed went through the bundle's rows.json
    text = (out / "benchmark.md").read_text()
    assert "Throwaway: no paper." in text and "networks of configs/quick.json (features [4, 4, 8, 8, 16, 4])" in text
    assert (out / f"{NAME}_cases.csv").read_text().count("\n") == 1 + 40


def test_ddp_benchmark_discovers_the_new_bundle_with_its_quick_networks(bundles_dir, tmp_path):
    bundle = bundles_dir / NAME
    assert tbd.find_ddp_bundles(bundles_dir) == [bundle]
    overrides = tbd.ddp_overrides(bundle, tmp_path / "data", tmp_path / "work", epochs=2, quick=True)
    assert overrides["features"] == [4, 4, 8, 8, 16, 4] and overrides["batch_size"] == 2
    assert overrides["ckpt_dir"] == str(tmp_path / "work" / "models") and overrides["val_interval"] == 3
    command = tbd.command(bundle, 2, overrides)
    assert "--nproc_per_node=2" in command
    assert str(bundle / "configs" / "multi_gpu_train.json") in command[command.index("--config_file") + 1]
    assert command[command.index("--batch_size") + 1] == str(tbd.GLOBAL_BATCH // 2)
    assert command[command.index("--features") + 1] == "[4,4,8,8,16,4]"
    with pytest.raises(FileNotFoundError, match="bundle `nope`"):
        tbd.find_ddp_bundles(bundles_dir, ["nope"])


def test_ddp_benchmark_runs_each_launch_with_shared_threads_and_its_own_tmpdir(bundles_dir, tmp_path, monkeypatch):
    """The 1- and 2-process runs get the CPUs shared among their processes (OpenMP and MKL), the repository on
    PYTHONPATH, and a TMPDIR of their own (torchrun's torchelastic_* folders), which is gone after the run; the
    bundle's REQUIRED_DATASET is written first when missing."""
    launches, real_run = [], subprocess.run

    def fake_run(command, env=None, **kwargs):
        if "monai.bundle" not in command:  # e.g. the machine summary's own calls
            return real_run(command, env=env, **kwargs)
        tmpdir = Path(env["TMPDIR"])
        launches.append((command, env, tmpdir, tmpdir.is_dir()))
        return subprocess.CompletedProcess(command, 0, "", "")

    benchmark = bundles_dir / NAME / "scripts" / "benchmark.py"  # a bundle whose runs read a default dataset
    benchmark.write_text(benchmark.read_text() + '\nREQUIRED_DATASET = "EMIDEC"\n')
    ensured = []
    monkeypatch.setattr(
        tb, "ensure_data", lambda root, required: ensured.append((Path(root), list(required), len(launches)))
    )
    monkeypatch.setattr(tbd.subprocess, "run", fake_run)
    monkeypatch.setattr(tbd, "_train_samples", lambda bundle, overrides: 4)
    monkeypatch.setattr(tbd.os, "cpu_count", lambda: 4)
    rows = tbd.main(str(tmp_path / "data"), 1, str(tmp_path / "out"), [NAME], bundles_dir, quick=True)
    assert ensured == [((tmp_path / "data").resolve(), ["EMIDEC"], 0)]  # written before the runs that read it
    assert [row["processes"] for row in rows] == [1, 2]
    for (command, env, tmpdir, existed), processes in zip(launches, (1, 2)):
        assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == str(4 // processes)
        assert str(REPO_ROOT) in env["PYTHONPATH"].split(os.pathsep)
        assert existed and not tmpdir.exists() and ("--nproc_per_node=2" in command) == (processes == 2)


@pytest.mark.slow
def test_verify_never_reads_or_writes_user_folders(bundles_dir, tiny_data):
    """Garbage weights in this bundle's and a sibling's models/ (as after training) would fail any load: verify
    must neither read them nor write anything into models/, outputs/ or eval/."""
    bundle, sibling = bundles_dir / NAME, bundles_dir / "sibling"
    (sibling / "configs").mkdir(parents=True)
    (sibling / "configs" / "metadata.json").write_text(json.dumps(_metadata()))
    train = json.loads((bundle / "configs" / "train.json").read_text())
    train["loaded"] = "$torch.load(os.path.join(@ckpt_dir, 'model.pt'), weights_only=True)"
    train["sibling_weights"] = "$os.path.join(@bundle_root, '..', 'sibling', 'models', 'model.pt')"
    train["sibling_loaded"] = "$torch.load(@sibling_weights, weights_only=True)"
    (bundle / "configs" / "train.json").write_text(json.dumps(train))
    user_files = {}
    for root in (bundle, sibling):
        for folder in vb.USER_FOLDERS:
            (root / folder).mkdir()
            path = root / folder / "model.pt"
            path.write_bytes(b"not a checkpoint")
            user_files[path] = path.stat().st_mtime_ns

    vb._quiet_monai_logging()
    report = vb.verify_bundle(bundle, data_root=tiny_data, overrides=vb.tiny_overrides(bundle))
    configs = report.result("configs")
    assert not report.failed, vb.format_table([report])
    assert report.result("export").detail.endswith("fresh weights (overridden network_def)")
    # both loads asked for weights in the temporary folder (a WARN), neither read the garbage
    assert configs.status == "WARN" and "`loaded`: needs" in configs.detail
    assert "sibling/models/model.pt" in configs.detail and str(sibling) not in configs.detail
    for path, mtime in user_files.items():
        assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt"], path.parent
        assert path.read_bytes() == b"not a checkpoint" and path.stat().st_mtime_ns == mtime
