"""The generative-prior stage's GAN iteration as ``configs/train_prior.json`` builds it: step time and peak memory.

Activation recomputation (``recompute_resolutions``, read by the prior's generator too) is the stage's memory
switch; this script measures what it saves and costs. ``--compare True`` runs one process with the config's
recomputation and one without (``recompute_resolutions`` ``[]``), alternating ``rounds`` times, and prints each
process's step seconds and peak RSS (read from the operating system, :func:`common.benchmarking.run_json_process`)
as one JSON line; without it, one process prints its own measurement.

Usage (from the bundle root)::

    python -m scripts.prior_step --compare True [--rounds 1] [--n 2] [--warmup 0] [--threads 2] [--quick False]
    python -m scripts.prior_step [--recompute True] [--n 2] [--warmup 0] [--threads 2] [--quick False]

Each timed iteration is the trainer's whole one (discriminator step, generator step, EMA update) with the lazy R1
penalty due (``r1_every`` 1 here: of the config's iterations, every 16th carries it, and it sets the stage's peak),
on a random batch of ``prior_batch_size`` slices of ``img_size`` (``train_prior.json``: 2 of 256 x 256).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import fire
import torch
from common.benchmarking import (
    NO_DATA,
    QUICK_OVERLAY,
    iteration_times,
    parse_config_items,
    read_overlay,
    run_json_process,
)

BUNDLE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = ("train.json", "train_prior.json")


def build_step(recompute: bool = True, overlay: str | None = None) -> dict[str, Any]:
    """``train#trainer`` of ``train.json + train_prior.json`` (+ ``configs/<overlay>``) without data or handlers,
    the lazy R1 penalty due every iteration, and without recomputation unless ``recompute``. Returns ``trainer``,
    ``generator`` and ``train_step`` (one iteration on a fresh random batch in the generator's range [-1, 1])."""
    overrides = {
        **(read_overlay(BUNDLE_ROOT, overlay) if overlay else {}),
        **NO_DATA,
        "split": {**NO_DATA["split"], "prior": []},
        "r1_every": 1,
    }
    if not recompute:
        overrides["recompute_resolutions"] = []
    items = parse_config_items(BUNDLE_ROOT, FILES, overrides, ("train#trainer", "prior_batch_size", "img_size"))
    trainer, batch, size = items["train#trainer"], int(items["prior_batch_size"]), int(items["img_size"])
    generator = torch.Generator().manual_seed(0)
    trainer.state.iteration = 0

    def train_step() -> dict:
        trainer.state.iteration += 1
        return trainer._iteration(trainer, {"image": torch.rand(batch, 1, size, size, generator=generator) * 2 - 1})

    return {"trainer": trainer, "generator": trainer.networks["g"], "train_step": train_step}


def measure(n: int = 2, warmup: int = 0, recompute: bool = True, threads: int = 2, quick: bool = False) -> dict:
    """Seconds of ``n`` iterations after ``warmup`` (no FLOP count: the counter's own memory would be the peak)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    step = build_step(recompute, QUICK_OVERLAY if quick else None)
    result = iteration_times(step["train_step"], n=n, warmup=warmup, flops=False)
    result["recompute_resolutions"] = sorted(step["generator"].recompute_resolutions, reverse=True)
    result["threads"] = torch.get_num_threads()
    return result


def compare_recomputation(rounds: int = 1, n: int = 2, warmup: int = 0, threads: int = 2, quick: bool = False) -> dict:
    """One process per setting and round, alternating: ``{"with": [...], "without": [...]}``, each item a process's
    :func:`measure` with its ``peak_rss_mb`` and ``wall_s``."""
    results: dict[str, list] = {"with": [], "without": []}
    for _ in range(rounds):
        for label, recompute in (("with", True), ("without", False)):
            command = [sys.executable, "-m", "scripts.prior_step", "--recompute", str(recompute), "--n", str(n)]
            command += ["--warmup", str(warmup), "--threads", str(threads), "--quick", str(quick)]
            results[label].append(run_json_process(command, BUNDLE_ROOT))
    return results


def main(compare: bool = False, **kwargs: Any) -> None:
    """Command line: :func:`compare_recomputation`'s (``--compare True``) or :func:`measure`'s result as the last
    line of stdout."""
    print(json.dumps(compare_recomputation(**kwargs) if compare else measure(**kwargs)))


if __name__ == "__main__":
    fire.Fire(main)
