"""Samples/s of each bundle's training with 1 vs 2 torchrun processes on this machine (issue: scale-out).

Usage (repository root)::

    python -m tools.benchmark_ddp --data_root data --epochs 2 [--out benchmarks] [--bundles NAME ...] [--no-quick]

Every bundle with ``configs/multi_gpu_train.json`` is covered (a new bundle needs no edit here). Each runs
``configs/train.json`` (+ ``multi_gpu_train.json`` under torchrun) from scratch with its ``configs/quick.json``
networks (``--no-quick``: the configs' own), the same global batch (8 = 1 x 8 or 2 x 4), no validation, plus the
bundle's own ``DDP_OVERRIDES`` (a literal of its ``scripts/benchmark.py``, e.g. no pre-trained weights in a fresh
run). It reports training samples per second from the wall time of the whole run (start-up included, so it is a
lower bound for both). On a 2-core CPU each process gets one thread (OMP_NUM_THREADS=1 for 2 processes, 2 for 1),
so the comparison is fair for the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

__all__ = ["MULTI_GPU_TRAIN", "find_ddp_bundles", "ddp_overrides", "command", "main"]

ROOT = Path(__file__).resolve().parents[1]
MULTI_GPU_TRAIN = "multi_gpu_train.json"
GLOBAL_BATCH = 8


def find_ddp_bundles(
    bundles_dir: str | os.PathLike = ROOT / "bundles", names: Sequence[str] | None = None
) -> list[Path]:
    """Bundle folders with ``configs/train.json`` and ``configs/multi_gpu_train.json``, sorted by name.

    Raises:
        FileNotFoundError: naming the bundle when one of ``names`` lacks one of the two configs.
    """
    root = Path(bundles_dir)
    candidates = [root / n for n in names] if names else sorted(p for p in root.iterdir() if p.is_dir())
    found = []
    for bundle in candidates:
        has = all((bundle / "configs" / f).is_file() for f in ("train.json", MULTI_GPU_TRAIN))
        if not has and names:
            raise FileNotFoundError(f"bundle `{bundle.name}`: configs/train.json or configs/{MULTI_GPU_TRAIN} missing.")
        if has:
            found.append(bundle)
    return found


def ddp_overrides(bundle: Path, data_root: Path, work: Path, epochs: int, quick: bool) -> dict[str, Any]:
    """Config overrides of one run: the bundle's quick networks and DDP_OVERRIDES, data, folders, epochs."""
    from tools.benchmark import read_benchmark_info

    info = read_benchmark_info(bundle)
    train = json.loads((bundle / "configs" / "train.json").read_text())
    overrides: dict[str, Any] = dict(info.quick_overlay) if quick else {}
    overrides.update(info.ddp_overrides)
    if info.required_dataset and "dataset_dir" in train:
        overrides["dataset_dir"] = str(data_root / info.required_dataset)
    if "data_root" in train:
        overrides["data_root"] = str(data_root)
    overrides.update(
        bundle_root=str(bundle),
        ckpt_dir=str(work / "models"),
        output_dir=str(work / "eval"),
        resume=False,
        epochs=epochs,
        val_interval=epochs + 1,
        num_workers=0,
    )
    return overrides


def command(bundle: Path, processes: int, overrides: dict[str, Any]) -> list[str]:
    """``monai.bundle run`` of train.json (+ multi_gpu_train.json under torchrun) with per-process batch size."""
    configs = ["train.json"] + ([MULTI_GPU_TRAIN] if processes > 1 else [])
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    args = (launcher if processes > 1 else [sys.executable]) + ["-m", "monai.bundle", "run", "--config_file"]
    args.append(str([str(bundle / "configs" / c) for c in configs]))
    for key, value in {**overrides, "batch_size": GLOBAL_BATCH // processes}.items():
        args += [f"--{key}", value if isinstance(value, str) else json.dumps(value).replace(" ", "")]
    return args


def _train_samples(bundle: Path, overrides: dict[str, Any]) -> int:
    """Training samples per epoch: the length of the bundle's own ``train#dataset#data`` with these overrides."""
    from common.benchmarking import parse_config_items

    return len(parse_config_items(bundle, ["train.json"], overrides, ("train#dataset#data",))["train#dataset#data"])


def main(
    data_root: str = "data",
    epochs: int = 2,
    out: str = "benchmarks",
    bundles: Sequence[str] | None = None,
    bundles_dir: str | os.PathLike = ROOT / "bundles",
    quick: bool = True,
) -> list[dict]:
    """Run 1 and 2 processes per bundle; write ``<out>/ddp_scaling.{md,json}``; return the rows."""
    from common.benchmarking import machine_summary, write_table

    from tools.benchmark import ensure_data, env_with_repo, read_benchmark_info

    data = Path(data_root).resolve()
    found = find_ddp_bundles(bundles_dir, bundles)
    ensure_data(data, sorted({d for d in (read_benchmark_info(b).required_dataset for b in found) if d}))
    rows = []
    for bundle in found:
        for processes in (1, 2):
            with tempfile.TemporaryDirectory() as tmp:
                overrides = ddp_overrides(bundle.resolve(), data, Path(tmp), epochs, quick)
                n_train = _train_samples(bundle.resolve(), overrides)
                # the CPUs shared among the processes (OpenMP and MKL, as tools.benchmark's processes); torchrun's
                # own torchelastic_* folders go to the run's temporary folder, not the machine's /tmp
                env = {**env_with_repo(max(1, (os.cpu_count() or 2) // processes)), "TMPDIR": tmp}
                start = time.perf_counter()
                proc = subprocess.run(
                    command(bundle.resolve(), processes, overrides), env=env, capture_output=True, text=True
                )
                seconds = time.perf_counter() - start
                if proc.returncode != 0:
                    raise RuntimeError(
                        f"{bundle.name}: {processes}-process run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
                    )
            rows.append(
                {
                    "bundle": bundle.name,
                    "processes": processes,
                    "batch_per_process": GLOBAL_BATCH // processes,
                    "epochs": epochs,
                    "train_samples": n_train * epochs,
                    "wall_seconds": seconds,
                    "samples_per_second": n_train * epochs / seconds,
                }
            )
            print(rows[-1], flush=True)
    networks = "configs/quick.json networks" if quick else "the configs' own networks"
    note = f"Each bundle's train.json with {networks}, phantom data; machine: {machine_summary()}"
    print(write_table(rows, out, "ddp_scaling", title="DDP scaling on this machine (torchrun, gloo)", note=note))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_root", default="data")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", default="benchmarks")
    parser.add_argument("--bundles", nargs="+", default=None, help="bundle folder names (default: all with DDP)")
    parser.add_argument("--bundles_dir", "--bundles-dir", default=str(ROOT / "bundles"))
    parser.add_argument("--quick", action=argparse.BooleanOptionalAction, default=True, help="configs/quick.json")
    args = parser.parse_args()
    main(args.data_root, args.epochs, args.out, args.bundles, args.bundles_dir, args.quick)
