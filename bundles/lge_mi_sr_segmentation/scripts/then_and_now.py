"""The SwinSSegNet training step now against the same step at an earlier commit, in alternating processes.

Issue 17 asks for the step at ``train.json``'s configuration (feature 48, depths 2/2/6/2, batch 8, 64 -> 512, 2
threads) to become at least 1.5x faster than it was when the issue was filed. This times both in one run:

- **then**: :data:`THEN_STEP`, a self-contained harness run with ``<then tree>`` first on ``sys.path`` (that
  commit's ``common``, ``configs/train.json`` and MONAI config parsing; nothing of today's code), doing what today's
  peer step does per iteration: the config's ``network``, ``loss`` and ``optimizer``, gradients zero-filled, the
  network on ``batch_size`` random 64 x 64 slices, the loss against random 512 x 512 masks, backward, step;
- **now**: ``python -m scripts.peer_step`` (this bundle's configs and switches, the same inputs' shapes).

The earlier tree comes from ``git worktree add --detach`` of ``--then`` in a temporary folder (removed afterwards).
Per round, each side runs in its own process, one after the other; the ratio per round is then / now (> 1: faster
now) and the result (every round, the medians, the ratio's median) goes to ``<out>/sseg_then_and_now.json``.

Usage (from the bundle root)::

    python -m scripts.then_and_now [--then bbbfc4c~1] [--rounds 3] [--n 3] [--warmup 1] [--threads 2]
        [--quick False] [--out ../../benchmarks]

(``--quick True`` layers ``configs/quick.json`` on both sides: a short check, not issue 17's configuration.)
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import fire
from common.benchmarking import alternate, ratio_summary
from scripts.peer_step import LOW_RES

BUNDLE_ROOT = Path(__file__).resolve().parents[1]
REPO_ROOT = BUNDLE_ROOT.parents[1]
#: the commit before the engine's first speed switch (bbbfc4c, 2026-11-29): the step as issue 17 measured it
THEN = "bbbfc4c~1"
THEN_STEP = r"""
import json, statistics, sys, time
tree, n, warmup, threads, quick, low_res = sys.argv[1], *map(int, sys.argv[2:5]), sys.argv[5] == "1", int(sys.argv[6])
sys.path.insert(0, tree)
import torch
from monai.bundle import ConfigParser

torch.set_num_threads(threads)
torch.manual_seed(0)
parser = ConfigParser()
configs = f"{tree}/bundles/lge_mi_sr_segmentation/configs"
parser.read_config([f"{configs}/train.json", *([f"{configs}/quick.json"] if quick else [])])
parser["device"] = "$torch.device('cpu')"
network, loss_function, optimizer = parser.get_parsed_content("network"), parser.get_parsed_content("loss"), \
    parser.get_parsed_content("optimizer")
batch, scale = int(parser.get_parsed_content("batch_size")), int(parser.get_parsed_content("scale"))
generator = torch.Generator().manual_seed(0)
image = torch.rand(batch, 1, low_res, low_res, generator=generator)
label = torch.randint(0, int(parser.get_parsed_content("num_classes")), (batch, 1, low_res * scale, low_res * scale),
                      generator=generator)
network.train()
times = []
for index in range(warmup + n):
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=False)
    loss_function(network(image), label).backward()
    optimizer.step()
    if index >= warmup:
        times.append(time.perf_counter() - start)
stats = {"min": min(times), "median": statistics.median(times), "max": max(times), "all": [round(t, 4) for t in times]}
config = (f"then: configs/train.json{' + quick.json' if quick else ''}; bs{batch}; "
          f"{low_res}x{low_res} -> {low_res * scale}")
print(json.dumps({"train_iter_s": stats, "config": config,
                  "params": sum(p.numel() for p in network.parameters()), "threads": torch.get_num_threads()}))
"""


def _then_tree(commit: str, folder: str) -> Path:
    """A detached work tree of ``commit`` in ``folder`` (``git worktree add``; the caller removes it)."""
    tree = Path(folder) / "then"
    subprocess.run(["git", "worktree", "add", "--detach", "-f", str(tree), commit], cwd=REPO_ROOT, check=True,
                   capture_output=True)  # fmt: skip
    return tree


def run(
    then: str = THEN, rounds: int = 3, n: int = 3, warmup: int = 1, threads: int = 2, quick: bool = False, out: str = ""
) -> dict:
    """Time the step then and now for ``rounds`` alternating rounds; the result (also written to ``out``)."""
    python = sys.executable
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    commit = subprocess.run(["git", "rev-parse", "--short", then], cwd=REPO_ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="sseg_then_") as folder:
        tree = _then_tree(then, folder)
        try:
            commands = {
                "then": (
                    [python, "-c", THEN_STEP, str(tree), str(n), str(warmup), str(threads), str(int(quick)),
                     str(LOW_RES)],
                    BUNDLE_ROOT,
                ),
                "now": (
                    [python, "-m", "scripts.peer_step", "--n", str(n), "--warmup", str(warmup), "--threads",
                     str(threads), "--flops", "False", "--quick", str(quick)], BUNDLE_ROOT,
                ),
            }  # fmt: skip
            sides = alternate(commands, rounds=rounds, env=env)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO_ROOT, capture_output=True)
    summary = ratio_summary(sides["then"], sides["now"])
    result = {
        "then": commit,
        "now": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True).stdout.strip(),
        "date": datetime.date.today().isoformat(),
        "summary": summary,
        "rounds": sides,
    }  # fmt: skip
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "sseg_then_and_now.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(**kwargs: object) -> None:
    """Command-line entry: :func:`run`, then its summary (ratio per round and median, both sides' medians)."""
    print(json.dumps(run(**kwargs)["summary"]))


if __name__ == "__main__":
    fire.Fire(main)
