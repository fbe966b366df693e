"""Reproduce the paper's Fig. 6(B) and Table I rows on one data split, in one run.

Usage (from the bundle root)::

    python -m scripts.benchmark --data_root ../../data --out eval/benchmark [--quick True]

Rows: SSeg (SwinSSegNet, 8x inside the network) vs Seg + bilinear / Seg + nearest (the same network at scale 1,
probabilities interpolated), each trained from scratch (_N), after SSL on our LGE only (_SSL), and after U-SSL on
the hybrid set (our LGE + ACDC + EMIDEC; _U-SSL); encoders ResNet / ConvNeXt / Swin (from scratch). Every
variant is trained and evaluated through this bundle's own config files (overrides only), on the same split, and
scored on the held-out test split with Dice (and HD95 in mm). Speed rows: one training step's time, GFLOP and
share of a conv ceiling measured in the same run.
"""

from __future__ import annotations

import csv
import os
import statistics

import fire
import torch
from monai.bundle import ConfigWorkflow
from monai.losses import DiceCELoss

from common.benchmarking import Timer, conv_ceiling_gflops, count_flops, machine_summary, peak_rss_mb, write_table

__all__ = ["run"]

BUNDLE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(BUNDLE_ROOT, "configs")


def _workflow(files: list[str], **overrides) -> None:
    paths = [os.path.join(CONFIGS, f) for f in files]
    workflow = ConfigWorkflow(
        config_file=paths, meta_file=os.path.join(CONFIGS, "metadata.json"), logging_file=None, **overrides
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()


def _test_scores(output_dir: str, name: str) -> list[float]:
    path = os.path.join(output_dir, f"{name}_raw.csv")
    with open(path) as f:
        return [float(row["mean"]) for row in csv.DictReader(f)]


def _summary(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if v == v]
    if not finite:
        return float("nan"), float("nan")
    return statistics.fmean(finite), statistics.pstdev(finite) if len(finite) > 1 else 0.0


def _step_speed(common_overrides: dict, batch_size: int, input_size: int) -> dict:
    """Time, GFLOP and conv-ceiling share of one SwinSSeg training step (batch, forward + backward + AdamW)."""
    from common.nets import SwinSSeg

    net = SwinSSeg(
        spatial_dims=2,
        in_channels=1,
        out_channels=2,
        scale=common_overrides.get("scale", 8),
        encoder="swin",
        feature_size=common_overrides.get("feature_size", 48),
    )
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    image = torch.rand(batch_size, 1, input_size, input_size)
    label = (torch.rand(batch_size, 1, 8 * input_size, 8 * input_size) > 0.9).long()

    def step() -> None:
        optimizer.zero_grad()
        loss_fn(net(image), label).backward()
        optimizer.step()

    flops = count_flops(step)
    step()
    with Timer() as timer:
        for _ in range(3):
            step()
    seconds = timer.seconds / 3
    ceiling = conv_ceiling_gflops()
    achieved = flops / seconds / 1e9
    return {
        "step_seconds": seconds,
        "gflop_per_step": flops / 1e9,
        "achieved_gflops": achieved,
        "conv_ceiling_gflops": ceiling,
        "ceiling_share": achieved / ceiling,
    }


def run(data_root: str, out_dir: str, quick: bool = False, epochs: int | None = None, seed: int = 0) -> list[dict]:
    """Train/evaluate every variant; return the table rows and write `<out_dir>/benchmark.{md,json}`."""
    data_root = os.path.abspath(data_root)
    out_dir = os.path.abspath(out_dir)
    epochs = epochs or (20 if quick else 30)
    pre_epochs = 2 if quick else 10
    base = {
        "bundle_root": BUNDLE_ROOT,
        "dataset_dir": os.path.join(data_root, "DTI_LGE_MI"),
        "epochs": epochs,
        "val_interval": epochs,
        "seed": seed,
        "resume": False,
        "num_workers": 0,
    }
    if quick:
        base.update({"feature_size": 24, "depths": [2, 2, 2, 2], "num_heads": [3, 6, 12, 24]})
    encoder_args = {k: base[k] for k in ("feature_size", "depths", "num_heads") if k in base}

    timings: dict[str, float] = {}
    ssl_weights: dict[str, str | None] = {"N": None}
    for name, public in (("SSL", False), ("U-SSL", True)):
        ckpt = os.path.join(out_dir, f"pretrain_{name}")
        with Timer() as timer:
            _workflow(
                ["pretrain.json"],
                bundle_root=BUNDLE_ROOT,
                data_root=data_root,
                ckpt_dir=ckpt,
                output_dir=os.path.join(ckpt, "logs"),
                use_public_data=public,
                epochs=pre_epochs,
                resume=False,
                seed=seed,
                **encoder_args,
            )
        timings[f"pretrain_{name}"] = timer.seconds
        ssl_weights[name] = os.path.join(ckpt, "model_ssl.pt")

    variants = []
    for pre in ("N", "SSL", "U-SSL"):
        variants.append((f"SSeg_{pre}", ["train.json"], pre, {}, [("SSeg", {})]))
        variants.append(
            (
                f"Seg_{pre}",
                ["train.json", "seg_baseline.json"],
                pre,
                {},
                [
                    ("Seg+bilinear", {"seg_upsample_mode": "bilinear"}),
                    ("Seg+nearest", {"seg_upsample_mode": "nearest"}),
                ],
            )
        )
    for encoder in ("resnet", "convnext"):
        variants.append((f"SSeg_{encoder}_N", ["train.json"], "N", {"encoder": encoder}, [(f"SSeg[{encoder}]", {})]))

    rows = []
    for tag, files, pre, extra, evaluations in variants:
        ckpt = os.path.join(out_dir, tag)
        overrides = dict(base, ckpt_dir=ckpt, output_dir=os.path.join(ckpt, "logs"), **extra)
        overrides["use_ssl_pretrained"] = ssl_weights[pre] is not None
        if ssl_weights[pre]:
            overrides["ssl_pretrained_path"] = ssl_weights[pre]
        with Timer() as timer:
            _workflow(files, **overrides)
        train_seconds = timer.seconds
        for label, eval_extra in evaluations:
            eval_dir = os.path.join(ckpt, f"test_{label.replace('+', '_')}")
            eval_overrides = dict(overrides, output_dir=eval_dir, **eval_extra)
            with Timer() as timer:
                _workflow(files + ["evaluate.json"], **eval_overrides)
            dice_mean, dice_std = _summary(_test_scores(eval_dir, "test_mean_dice"))
            hd_mean, _ = _summary(_test_scores(eval_dir, "test_hd95_mm"))
            encoder = extra.get("encoder", "swin")
            rows.append(
                {
                    "method": f"{label}_{pre}" if not label.startswith("SSeg[") else label,
                    "encoder": encoder,
                    "pretraining": pre,
                    "test_dice_mean": dice_mean,
                    "test_dice_std": dice_std,
                    "test_hd95_mm": hd_mean,
                    "train_seconds": train_seconds,
                    "eval_seconds": timer.seconds,
                }
            )
            print(rows[-1], flush=True)

    speed = _step_speed(base, batch_size=8, input_size=64)
    speed_row = {"method": "SSeg training step (batch 8, 64->512)", **speed, "peak_rss_mb": peak_rss_mb()}
    note = (
        f"Phantom data written by tools/make_data (not the paper's private data); {epochs} epochs per variant"
        f"{' (quick mode: small Swin)' if quick else ''}; pre-training {pre_epochs} epochs "
        f"({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())}). Machine: {machine_summary()}. "
        f"Command: python -m scripts.benchmark --data_root {data_root} --out {out_dir} --quick {quick}"
    )
    text = write_table(rows, out_dir, "benchmark", title="SwinSSegNet / U-SSL benchmark", note=note)
    text += "\n" + write_table([speed_row], out_dir, "speed", title="Training step speed")
    print(text)
    return rows + [speed_row]


def main(data_root: str = "../../data", out: str = "eval/benchmark", quick: bool = False, epochs: int | None = None):
    """Command-line entry: run the benchmark and print the tables (returns nothing so fire prints nothing)."""
    run(data_root, out, quick=quick, epochs=epochs)


if __name__ == "__main__":
    fire.Fire(main)
