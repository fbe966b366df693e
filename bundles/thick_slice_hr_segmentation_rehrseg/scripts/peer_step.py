"""Our UASR self-SR training step at zhiyuns/REHRSeg's reference configuration, printed as one JSON line.

The counterpart of ``shared/peers/rehrseg_step.py --stage sr`` (which times the public code's
``train_all.train_sr(..., enable_uncertainty=True)`` on one batch): the same configuration (this bundle's
``uasr_network_def``: the FLAVR-style 3D U-Net with the uncertainty head, 2 channels (image, label), 4 thick slices in
and the 4 thin slices of the middle gap out; ``--batch`` 32 patches of ``--patch`` 96 x 96 as ``configs/brain.yaml``;
Adam (0.9, 0.99) at 5e-4 with OneCycleLR stepped every iteration), the same inputs (uniform noise image, a thresholded
noise label; the LR rows are every ``scale``-th HR row as the harness makes them) and the same inference path (one
4-slice window of ``--infer_size`` 256 x 256). Our step is ``common.engines.SuperResolutionTrainer``'s iteration with
``common.losses.UncertaintySRLoss`` (train_uasr.json), ``python -m tools.side_by_side`` runs both in alternating
processes.

Usage (from the bundle root)::

    python -m scripts.peer_step [--n 3] [--warmup 1] [--batch 32] [--patch 96] [--infer_size 256] [--threads 2]
        [--flops True] [--quick False] [--channels_last B]   (default: train_sr.json's sr_channels_last)
"""

from __future__ import annotations

import json
import os

import fire
import torch
from common.benchmarking import (
    QUICK_OVERLAY,
    inference_times,
    iteration_times,
    parse_config_switches,
    peer_step_result,
    read_overlay,
)
from common.transforms.self_sr import gap_start

BUNDLE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ITEMS = ("uasr_network_def", "sr_loss", "sr_lr", "sr_betas", "n_inputs", "scale")
#: the reference's learning rate (configs/brain.yaml ``lr_sr``), used for both sides' OneCycleLR
REFERENCE_LR = 5e-4


def _pair(batch: int, n_inputs: int, scale: int, size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """``lr``: (B, 2, n_inputs, P, P), every ``scale``-th row of an HR slab (as the harness decimates); ``hr``:
    (B, 2, scale, P, P), the slab's rows of the middle gap (``gap_start``); channel 0 uniform noise, channel 1 a 0/1
    label (noise above 0.7)."""
    slab = torch.rand(batch, 2, n_inputs * scale, size, size, generator=generator)
    slab[:, 1] = (slab[:, 1] > 0.7).float()
    start = gap_start(scale, n_inputs // 2 - 1)
    return {"lr": slab[:, :, ::scale].clone(), "hr": slab[:, :, start : start + scale].clone()}


def measure(
    n: int = 3,
    warmup: int = 1,
    batch: int = 32,
    patch: int = 96,
    infer_size: int = 256,
    threads: int = 2,
    flops: bool = True,
    quick: bool = False,
    channels_last: bool | None = None,
) -> dict:
    """Time ``n`` UASR training iterations (after ``warmup``) and ``n`` one-window inferences: the JSON's content;
    ``channels_last`` ``None`` takes ``train_sr.json``'s ``sr_channels_last``."""
    import common.engines
    from common.acceleration import accelerate

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    overrides = dict(read_overlay(BUNDLE_ROOT, QUICK_OVERLAY) if quick else {}, device="cpu")
    files = ["train.json", "train_sr.json", "train_uasr.json"]
    items, switches = parse_config_switches(BUNDLE_ROOT, files, overrides, _ITEMS, {"sr_channels_last": channels_last})
    channels_last = switches["sr_channels_last"]
    network = accelerate(items["uasr_network_def"], channels_last=channels_last)
    n_inputs, scale = int(items["n_inputs"]), int(items["scale"])
    optimizer = torch.optim.Adam(network.parameters(), lr=REFERENCE_LR, betas=tuple(items["sr_betas"]))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=REFERENCE_LR, total_steps=n + warmup + 2)
    generator = torch.Generator().manual_seed(0)
    data = _pair(batch, n_inputs, scale, patch, generator)
    trainer = common.engines.SuperResolutionTrainer(
        "cpu", 1, [data], {"network": network}, {"optimizer": optimizer}, loss_function=items["sr_loss"]
    )

    def train_step() -> None:
        trainer._iteration(trainer, {key: value.clone() for key, value in data.items()})
        scheduler.step()

    result = iteration_times(train_step, n=n, warmup=warmup, flops=flops)
    window = _pair(1, n_inputs, scale, infer_size, generator)["lr"]
    network.eval()
    infer = inference_times(network, window.clone, n=n, warmup=warmup)
    config = (
        f"configs/train_sr.json + train_uasr.json{' + quick.json' if quick else ''}; 2 channels; "
        f"{n_inputs} x {patch}x{patch} -> {scale} slices; bs{batch}; infer 1 x 2 x {n_inputs} x {infer_size}^2"
        f"{'; channels-last' if channels_last else ''}"
    )
    return peer_step_result(
        result, infer, "ours (common.engines.SuperResolutionTrainer, UASR)", config, {"uasr": network}
    )


def main(**kwargs: object) -> None:
    """Command-line entry: :func:`measure`'s result as the last line of stdout (what the side-by-side tool reads)."""
    print(json.dumps(measure(**kwargs)))


if __name__ == "__main__":
    fire.Fire(main)
