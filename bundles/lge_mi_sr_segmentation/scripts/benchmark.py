"""Reproduce the paper's Fig. 6(B) and Table I rows on one data split, in one run.

Usage (from the bundle root)::

    python -m scripts.benchmark --data_root ../../data --out eval/benchmark [--quick True]

Rows: SSeg (SwinSSegNet, 8x inside the network) vs Seg + bilinear / Seg + nearest (the same network at scale 1,
probabilities interpolated), each trained from scratch (_N), after SSL on our LGE only (_SSL), and after U-SSL on
the hybrid set (our LGE + ACDC + EMIDEC; _U-SSL); encoders ResNet / ConvNeXt / Swin (from scratch). Every
variant is trained and evaluated through this bundle's own config files (overrides only; quick mode layers
``configs/quick.json``), on the same split, and scored per case on the held-out test split with Dice and HD95 (mm).
Speed row: one training step of the bundle's own ``network_def``/``loss`` with the trained variant's overrides.

The module-level names below are this bundle's benchmark data, read (as literals, without importing this module)
by ``python -m tools.benchmark``: which variants are compared, the paper's numbers, the header notes.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from typing import Any

import fire
import torch
from common.benchmarking import (
    QUICK_OVERLAY,
    BenchmarkRow,
    Timer,
    machine_summary,
    parse_config_items,
    peak_rss_mb,
    read_overlay,
    run_workflow,
    step_speed,
    write_cases_csv,
    write_table,
)

__all__ = ["run", "VARIANTS", "Variant", "COMPARISONS", "PAPER_NUMBERS", "PAPER_NOTES", "METRIC_LABELS"]

BUNDLE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: dataset folder (under the data root) the benchmark needs; ``tools.benchmark`` writes the default data if missing
REQUIRED_DATASET = "DTI_LGE_MI"

#: (ours, baseline) method pairs compared per case, as in the paper's Fig. 6(B) and Table I
COMPARISONS = (
    # Fig. 6(B): end-to-end SSeg vs 2-stage Seg (segmentation + interpolation), per pre-training
    ("SSeg_N", "Seg+bilinear_N"),
    ("SSeg_N", "Seg+nearest_N"),
    ("SSeg_SSL", "Seg+bilinear_SSL"),
    ("SSeg_SSL", "Seg+nearest_SSL"),
    ("SSeg_U-SSL", "Seg+bilinear_U-SSL"),
    ("SSeg_U-SSL", "Seg+nearest_U-SSL"),
    # Fig. 6(B): pre-training strategies
    ("SSeg_SSL", "SSeg_N"),
    ("SSeg_U-SSL", "SSeg_N"),
    ("SSeg_U-SSL", "SSeg_SSL"),
    # Table I: encoders (ours: Swin), all from scratch here
    ("SSeg_N", "SSeg[resnet]"),
    ("SSeg_N", "SSeg[convnext]"),
)

#: the paper's printed numbers: (ours, baseline, metric) -> (their baseline, their ours, where)
PAPER_NUMBERS = {
    ("SSeg_N", "SSeg[resnet]", "test_dice"): (0.718, 0.755, "SwinSSegNet paper Table I (ResNet vs Swin encoder)"),
    ("SSeg_N", "SSeg[convnext]", "test_dice"): (0.732, 0.755, "SwinSSegNet paper Table I (ConvNeXt vs Swin encoder)"),
}

#: what the merged table's header says about the paper's numbers
PAPER_NOTES = (
    "Theirs = numbers reported by Wang et al., *Style Transfer and Self-Supervised Learning Powered Myocardium "
    "Infarction Super-Resolution Segmentation* (SwinSSegNet / CycleGANSeg paper), on their private DTI-LGE data, "
    "not on ours. Table I (DSC by encoder): ResNet 0.718 +- 0.0094, ConvNeXt 0.732 +- 0.0093, BiFormer "
    "0.745 +- 0.0093 (not implemented here), Swin 0.755 +- 0.0090; the paper does not say which pre-training "
    "Table I used (ours are trained from scratch). Fig. 6(A)/(B) (SSeg vs Seg, N/SSL/U-SSL pre-training) gives "
    "its values only as plots: no number is quoted for them."
)

#: what the merged table's header says about the modes (the quick networks come from configs/quick.json)
MODE_NOTES = {
    "quick": "20 epochs per variant (100 AdamW steps at 1e-4), 2 pre-training epochs",
    "full": "30 epochs per variant, 10 pre-training epochs, the configs' networks",
}

#: overrides of a fresh DDP-scaling run (``python -m tools.benchmark_ddp``): no SSL weights exist there
DDP_OVERRIDES = {"use_ssl_pretrained": False}

#: readable names of the metric keys
METRIC_LABELS = {"test_dice": "MI Dice, test split", "test_hd95_mm": "MI HD95 mm, test split"}

#: metric key -> (MetricsSaver raw CSV of evaluate.json, higher is better)
_METRIC_FILES = {"test_dice": ("test_mean_dice", True), "test_hd95_mm": ("test_hd95_mm", False)}


@dataclass(frozen=True)
class Variant:
    """One trained model: config files, overrides, pre-training, and the evaluations scored from it.

    ``evaluations`` maps a method name to extra overrides of ``evaluate.json`` (a Seg model is scored twice, with
    bilinear and with nearest upsampling).
    """

    tag: str
    files: tuple[str, ...]
    pretraining: str
    overrides: dict[str, Any] = field(default_factory=dict)
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)


VARIANTS: tuple[Variant, ...] = (
    *(
        variant
        for pre in ("N", "SSL", "U-SSL")
        for variant in (
            Variant(f"SSeg_{pre}", ("train.json",), pre, evaluations={f"SSeg_{pre}": {}}),
            Variant(
                f"Seg_{pre}",
                ("train.json", "seg_baseline.json"),
                pre,
                evaluations={
                    f"Seg+bilinear_{pre}": {"seg_upsample_mode": "bilinear"},
                    f"Seg+nearest_{pre}": {"seg_upsample_mode": "nearest"},
                },
            ),
        )
    ),
    *(
        Variant(f"SSeg_{enc}_N", ("train.json",), "N", {"encoder": enc}, evaluations={f"SSeg[{enc}]": {}})
        for enc in ("resnet", "convnext")
    ),
)

#: pre-training runs: name -> use_public_data (U-SSL adds the public ACDC + EMIDEC images)
PRETRAININGS = {"SSL": False, "U-SSL": True}


def _per_case(eval_dir: str, name: str) -> list[tuple[str, float]]:
    """``(case, mean over classes)`` per row of MONAI's ``MetricsSaver`` raw CSV ``<name>_raw.csv``."""
    with open(os.path.join(eval_dir, f"{name}_raw.csv")) as f:
        return [(row.get("filename") or str(i), float(row["mean"])) for i, row in enumerate(csv.DictReader(f))]


def _speed_row(overrides: dict[str, Any], batch_size: int = 8) -> dict[str, Any]:
    """One training step of the bundle's own ``network_def``/``loss`` with the trained variant's overrides."""
    items = parse_config_items(BUNDLE_ROOT, ["train.json"], overrides, ("network_def", "loss", "scale", "input_size"))
    size, scale = int(items["input_size"]), int(items["scale"])
    image = torch.rand(batch_size, 1, size, size)
    label = (torch.rand(batch_size, 1, scale * size, scale * size) > 0.9).long()
    speed = step_speed(items["network_def"], items["loss"], image, label)
    method = f"SSeg training step (batch {batch_size}, {size}->{scale * size})"
    row = BenchmarkRow(method, "step", seconds=speed["step_seconds"], peak_rss_mb=peak_rss_mb()).to_dict()
    row.pop("per_seed")  # one timed step: no seeds, and no empty column in the speed table
    return {**row, **speed}


def run(data_root: str, out_dir: str, quick: bool = False, epochs: int | None = None, seed: int = 0) -> list[dict]:
    """Train/evaluate every variant; write `<out_dir>/benchmark.{md,json}` and `cases.csv`; return the rows.

    Rows are :class:`common.benchmarking.BenchmarkRow` dicts (one per method and metric, values per test case),
    then the speed row.
    """
    data_root = os.path.abspath(data_root)
    out_dir = os.path.abspath(out_dir)
    epochs = epochs or (20 if quick else 30)
    pre_epochs = 2 if quick else 10
    network = read_overlay(BUNDLE_ROOT, QUICK_OVERLAY) if quick else {}
    base = {
        "dataset_dir": os.path.join(data_root, "DTI_LGE_MI"),
        "epochs": epochs,
        "val_interval": epochs,
        "seed": seed,
        "resume": False,
        "num_workers": 0,
        **network,
    }

    timings: dict[str, float] = {}
    ssl_weights: dict[str, str | None] = {"N": None}
    for name, public in PRETRAININGS.items():
        ckpt = os.path.join(out_dir, f"pretrain_{name}")
        overrides = {
            "data_root": data_root,
            "ckpt_dir": ckpt,
            "output_dir": os.path.join(ckpt, "logs"),
            "use_public_data": public,
            "epochs": pre_epochs,
            "resume": False,
            "seed": seed,
            **network,
        }
        with Timer() as timer:
            run_workflow(BUNDLE_ROOT, ["pretrain.json"], overrides)
        timings[f"pretrain_{name}"] = timer.seconds
        ssl_weights[name] = os.path.join(ckpt, "pretrain", "model_ssl.pt")

    rows: list[BenchmarkRow] = []
    for variant in VARIANTS:
        ckpt = os.path.join(out_dir, variant.tag)
        overrides = dict(base, ckpt_dir=ckpt, output_dir=os.path.join(ckpt, "logs"), **variant.overrides)
        overrides["use_ssl_pretrained"] = ssl_weights[variant.pretraining] is not None
        if ssl_weights[variant.pretraining]:
            overrides["ssl_pretrained_path"] = ssl_weights[variant.pretraining]
        with Timer() as timer:
            run_workflow(BUNDLE_ROOT, variant.files, overrides)
        train_seconds = timer.seconds
        for method, eval_extra in variant.evaluations.items():
            eval_dir = os.path.join(ckpt, f"test_{method.split('_')[0].replace('+', '_')}")
            with Timer() as timer:
                run_workflow(
                    BUNDLE_ROOT, [*variant.files, "evaluate.json"], dict(overrides, output_dir=eval_dir, **eval_extra)
                )
            for metric, (name, higher_is_better) in _METRIC_FILES.items():
                rows.append(
                    BenchmarkRow(
                        method,
                        metric,
                        _per_case(eval_dir, name),
                        seeds=[seed],
                        higher_is_better=higher_is_better,
                        seconds=train_seconds + timer.seconds,
                    )
                )
                print(rows[-1].method, metric, rows[-1].mean, flush=True)

    speed_row = _speed_row(dict(base, **VARIANTS[0].overrides))
    write_cases_csv(rows, os.path.join(out_dir, "cases.csv"))
    summary = [
        {"method": r.method, "metric": METRIC_LABELS[r.metric], "mean": r.mean, "std": r.std, "n": len(r.values)}
        | {"seconds": r.seconds}
        for r in rows
    ]
    note = (
        f"Phantom data written by tools/make_data (not the paper's private data); {epochs} epochs per variant"
        f"{' (quick mode: configs/quick.json)' if quick else ''}; pre-training {pre_epochs} epochs "
        f"({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())}). Machine: {machine_summary()}. "
        f"Command: python -m scripts.benchmark --data_root {data_root} --out {out_dir} --quick {quick}. "
        "Per-case values: cases.csv."
    )
    text = write_table(summary, out_dir, "benchmark", title="SwinSSegNet / U-SSL benchmark", note=note)
    text += "\n" + write_table([speed_row], out_dir, "speed", title="Training step speed")
    print(text)
    return [r.to_dict() for r in rows] + [speed_row]


def main(data_root: str = "../../data", out: str = "eval/benchmark", quick: bool = False, epochs: int | None = None):
    """Command-line entry: run the benchmark and print the tables (returns nothing so fire prints nothing)."""
    run(data_root, out, quick=quick, epochs=epochs)


if __name__ == "__main__":
    fire.Fire(main)
