"""Samples/s of one bundle's training with 1 vs 2 torchrun processes on this machine (issue: scale-out).

Usage (repository root)::

    python -m tools.benchmark_ddp --data_root data --epochs 2 [--out benchmarks]

Runs `bundles/lge_mi_sr_segmentation/configs/train.json` (+ `multi_gpu_train.json` under torchrun) from scratch
with the same global batch (8 = 1 x 8 or 2 x 4), no validation, and reports training samples per second from the
wall time of the whole run (start-up included, so it is a lower bound for both). On a 2-core CPU each process gets
one thread (OMP_NUM_THREADS=1 for 2 processes, 2 for 1), so the comparison is fair for the cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common.benchmarking import machine_summary, write_table
from common.data import dti_lge_mi_cases, split_cases

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundles" / "lge_mi_sr_segmentation"


def _command(processes: int, data_root: Path, work: Path, epochs: int, batch: int) -> list[str]:
    configs = ["configs/train.json"] + (["configs/multi_gpu_train.json"] if processes > 1 else [])
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    return (launcher if processes > 1 else [sys.executable]) + [
        "-m", "monai.bundle", "run", "--config_file", str([str(BUNDLE / c) for c in configs]),
        "--bundle_root", str(BUNDLE), "--dataset_dir", str(data_root / "DTI_LGE_MI"),
        "--ckpt_dir", str(work / "models"), "--output_dir", str(work / "eval"), "--use_ssl_pretrained", "false",
        "--resume", "false", "--epochs", str(epochs), "--val_interval", str(epochs + 1), "--batch_size", str(batch),
        "--num_workers", "0",
    ]  # fmt: skip


def main(data_root: str = "data", epochs: int = 2, out: str = "benchmarks") -> list[dict]:
    data = Path(data_root).resolve()
    n_train = len(split_cases(dti_lge_mi_cases(data / "DTI_LGE_MI"))["train"])
    rows = []
    for processes in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 2) // processes)))
            start = time.perf_counter()
            proc = subprocess.run(
                _command(processes, data, Path(tmp), epochs, 8 // processes), env=env, capture_output=True, text=True
            )
            seconds = time.perf_counter() - start
            if proc.returncode != 0:
                raise RuntimeError(f"{processes}-process run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        rows.append(
            {
                "processes": processes,
                "batch_per_process": 8 // processes,
                "epochs": epochs,
                "train_samples": n_train * epochs,
                "wall_seconds": seconds,
                "samples_per_second": n_train * epochs / seconds,
            }
        )
        print(rows[-1], flush=True)
    note = f"SwinSSegNet bundle, default config (feature_size 48), phantom data; machine: {machine_summary()}"
    print(write_table(rows, out, "ddp_scaling", title="DDP scaling on this machine (torchrun, gloo)", note=note))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_root", default="data")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", default="benchmarks")
    args = parser.parse_args()
    main(args.data_root, args.epochs, args.out)
