"""Whether the benchmark's quick variants without pre-training are trained long enough, checked on development data.

The benchmark's variants trained from scratch (default: ``Seg_N``, the paper's two-stage baseline, scored with
bilinear and nearest upsampling; ``SSeg_N`` on request) are trained for each number of epochs and training seed asked
for, exactly as ``scripts.benchmark --quick True`` trains them (``configs/quick.json``, batch 8, one split), on a data
root written with a **development** data seed (never the benchmark's ``DATA_SEED``), and scored by MI Dice on that
set's test split. It reads no benchmark result: a baseline that collapses because it is undertrained would make the
method look better than the paper's comparison does.

Command line, from the bundle root, one thread as the benchmark's seed processes::

    OMP_NUM_THREADS=1 python -m scripts.schedule_check --out eval/schedule_check --data_seed 1234 \\
        --seeds 0,1,2,3,4,5 --epochs 20,60 [--variants Seg_N,SSeg_N]

Writes ``<out>/schedule_check.{md,json}``: per method, epochs and seed the optimizer steps the trainer made, the mean
test Dice and the number of test slices under 0.05 (a model that predicts no MI scores 0 on every slice). Finished
trainings are reused.
"""

from __future__ import annotations

from pathlib import Path

import fire
from common.benchmarking import (
    QUICK_OVERLAY,
    StageCache,
    development_data_seed,
    dice_summary,
    int_tuple,
    read_overlay,
    write_schedule_check,
)
from scripts import benchmark as bm


def run(out: str, data_seed: int, seeds: tuple[int, ...], epochs: tuple[int, ...], variants: tuple[str, ...]) -> list:
    """Train and score each variant per (epochs, seed); returns the result rows (also written as tables)."""
    data_seed = development_data_seed(data_seed, bm.DATA_SEED)
    known = {v.tag: v for v in bm.VARIANTS if v.pretraining == "N"}
    unknown = [tag for tag in variants if tag not in known]
    if unknown or not variants:
        raise ValueError(f"variants must be among {sorted(known)} (trained from scratch), got {list(variants)}.")
    root = Path(out).resolve()
    data = bm.write_benchmark_data(root / "data", data_seed=data_seed)
    network = read_overlay(bm.BUNDLE_ROOT, QUICK_OVERLAY)
    stages, rows = StageCache(False), []
    for n_epochs in epochs:
        for seed in seeds:
            overrides = dict(bm.variant_overrides(data, n_epochs, seed, network), use_ssl_pretrained=False)
            work = root / f"epochs{n_epochs}" / f"seed{seed}"
            for tag in variants:
                for method, result in bm.train_and_score(stages, work, known[tag], overrides).items():
                    scores = result["scores"]["test_dice"]
                    summary = dice_summary(scores)
                    rows.append(
                        {"method": method, "epochs": n_epochs, "steps": result["steps"], "seed": seed, **summary}
                    )
    write_schedule_check(root, data_seed, rows, "MI Dice of the 512x512 masks on the test split")
    return rows


def main(
    out: str = "eval/schedule_check",
    data_seed: int = 1234,
    seeds: str = "0,1,2,3,4,5",
    epochs: str = "20,60",
    variants: str | tuple[str, ...] = "Seg_N",
) -> None:
    """Command line (see the module docstring)."""
    tags = variants.split(",") if isinstance(variants, str) else variants  # fire may pass a tuple
    run(out, data_seed, int_tuple(seeds), int_tuple(epochs), tuple(str(v).strip() for v in tags if str(v).strip()))
    print((Path(out) / "schedule_check.md").read_text())


if __name__ == "__main__":
    fire.Fire(main)
