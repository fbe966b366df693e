"""Our REHRSeg training steps at zhiyuns/REHRSeg's reference configurations, printed as one JSON line.

``--stage sr`` (the default): the counterpart of ``shared/peers/rehrseg_step.py --stage sr`` (which times the public
code's ``train_all.train_sr(..., enable_uncertainty=True)`` on one batch): the same configuration (this bundle's
``uasr_network_def``: the FLAVR-style 3D U-Net with the uncertainty head, 2 channels (image, label), 4 thick slices in
and the 4 thin slices of the middle gap out; ``--batch`` 32 patches of ``--patch`` 96 x 96 as ``configs/brain.yaml``;
Adam (0.9, 0.99) at 5e-4 with OneCycleLR stepped every iteration), the same inputs (uniform noise image, a thresholded
noise label; the LR rows are every ``scale``-th HR row as the harness makes them) and the same inference path (one
4-slice window of ``--infer_size`` 256 x 256). Our step is ``common.engines.SuperResolutionTrainer``'s iteration with
``common.losses.UncertaintySRLoss`` (train_uasr.json), ``python -m tools.side_by_side`` runs both in alternating
processes.

``--stage seg``: the counterpart of ``rehrseg_step.py --stage seg`` (the public code's stage-2 iteration,
``train_all.py:521-556``): this bundle's ``train.json`` trainer (``common.engines.HRSegTrainer``: LR and HR heads,
uncertainty-weighted LR CE + LR Dice, HR Dice + CE, structural KD from the frozen UASR model's early features; Adam as
the config) with its data loader and handlers replaced (``NO_DATA``), its segmenter sized as the harness's assumed
nnU-Net plan (``PLAN``: 7 stages, 32-320 features, ``(3, 3, 1)`` kernels and in-plane strides first), on the
harness's inputs: ``--seg_batch`` 2 LR crops of ``--seg_patch`` 128 x 128 x 14 (x, y, z; the harness's 14 x 128 x 128
z, y, x) of Gaussian noise, a thresholded noise HR label and its every ``scale``-th slice as the LR label, a uniform
U. Inference: one crop through the HR head (what ``inference.json`` runs; the harness runs the public code's
8-fold mirrored LR-head prediction).

Usage (from the bundle root)::

    python -m scripts.peer_step [--stage sr] [--n 3] [--warmup 1] [--batch 32] [--patch 96] [--infer_size 256]
        [--threads 2] [--flops True] [--quick False] [--channels_last B]   (default: train_sr.json's sr_channels_last)
    python -m scripts.peer_step --stage seg [--n 3] [--warmup 1] [--seg_batch 2] [--seg_patch 128,128,14]
        [--threads 2] [--flops True] [--quick False] [--channels_last B] [--fused_optimizer B]
        [--optim_set_to_none B] [--recompute B]   (default: train.json's seg_channels_last, seg_fused_optimizer,
        seg_optim_set_to_none, seg_recompute_full_resolution)
    either stage on a GPU: [--device cuda --flops False [--amp bf16|fp16]]   (steps timed to their end; autocast)
"""

from __future__ import annotations

import json
import os

import fire
import torch
from common.benchmarking import (
    NO_DATA,
    QUICK_OVERLAY,
    inference_times,
    iteration_times,
    parse_config_switches,
    peer_step_result,
    precision_label,
    read_overlay,
    step_autocast,
    step_precision,
    trainer_precision,
)
from common.benchmarking.workflow import int_tuple
from common.transforms.self_sr import gap_start

BUNDLE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ITEMS = ("uasr_network_def", "sr_loss", "sr_lr", "sr_betas", "n_inputs", "scale")
#: the reference's learning rate (configs/brain.yaml ``lr_sr``), used for both sides' OneCycleLR
REFERENCE_LR = 5e-4
#: the stages that can be timed
STAGES = ("sr", "seg")
#: the segmenter of shared/peers/rehrseg_step.py's ``ASSUMED_PLAN`` (an nnU-Net 3d_fullres plan for 1 x 1 x 4 mm
#: data) in this bundle's (x, y, z) order: the harness's (z, y, x) strides and kernels reversed
PLAN = {
    "seg_features": [32, 64, 128, 256, 320, 320, 320],
    "seg_strides": [[1, 1, 1], [2, 2, 1], [2, 2, 1], [2, 2, 2], [2, 2, 1], [2, 2, 1], [2, 2, 1]],
    "seg_kernel_sizes": [[3, 3, 1], [3, 3, 1]] + [[3, 3, 3]] * 5,
}
#: train.json's stage-2 speed switches (config key -> label in the result's configuration)
SEG_SWITCHES = {
    "seg_channels_last": "channels-last",
    "seg_fused_optimizer": "fused Adam",
    "seg_optim_set_to_none": "gradients set to None",
    "seg_recompute_full_resolution": "full-resolution recomputation",
}


def _pair(batch: int, n_inputs: int, scale: int, size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """``lr``: (B, 2, n_inputs, P, P), every ``scale``-th row of an HR slab (as the harness decimates); ``hr``:
    (B, 2, scale, P, P), the slab's rows of the middle gap (``gap_start``); channel 0 uniform noise, channel 1 a 0/1
    label (noise above 0.7)."""
    slab = torch.rand(batch, 2, n_inputs * scale, size, size, generator=generator)
    slab[:, 1] = (slab[:, 1] > 0.7).float()
    start = gap_start(scale, n_inputs // 2 - 1)
    return {"lr": slab[:, :, ::scale].clone(), "hr": slab[:, :, start : start + scale].clone()}


def _generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _seg_batch(
    batch: int, size: tuple[int, int, int], scale: int, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """The harness's stage-2 inputs in this bundle's layout: ``image`` (B, 1, X, Y, Z) Gaussian noise, ``hr_label``
    (B, 1, X, Y, scale Z) noise above 0.8, ``label`` its every ``scale``-th slice, ``uncertainty`` uniform in [0, 1]."""
    x, y, z = size
    image = torch.randn(batch, 1, x, y, z, generator=generator)
    hr_label = (torch.rand(batch, 1, x, y, z * scale, generator=generator) > 0.8).float()
    uncertainty = torch.rand(batch, 1, x, y, z, generator=generator)
    return {"image": image, "label": hr_label[..., ::scale].clone(), "hr_label": hr_label, "uncertainty": uncertainty}


def _measure_seg(
    n: int,
    warmup: int,
    seg_batch: int,
    seg_patch: tuple[int, int, int],
    flops: bool,
    quick: bool,
    switches: dict[str, bool | None],
    device: str,
    amp: str,
    dtype: torch.dtype | None,
) -> dict:
    """Time ``n`` stage-2 iterations (after ``warmup``) and ``n`` one-crop HR inferences at the reference's plan."""
    overrides = {
        **(read_overlay(BUNDLE_ROOT, QUICK_OVERLAY) if quick else {}),
        **NO_DATA,
        **PLAN,
        **trainer_precision(dtype, "train#trainer"),
        "device": device,
    }
    items, switches = parse_config_switches(
        BUNDLE_ROOT, ["train.json"], overrides, ("train#trainer", "scale"), switches
    )
    trainer, scale = items["train#trainer"], int(items["scale"])
    data = {key: value.to(device) for key, value in _seg_batch(seg_batch, seg_patch, scale, _generator()).items()}
    result = iteration_times(lambda: trainer._iteration(trainer, data), n=n, warmup=warmup, flops=flops)
    network = trainer.networks["segmenter"].network.eval()
    with step_autocast(device, dtype):
        infer = inference_times(network, lambda: data["image"][:1].clone(), n=n, warmup=warmup)
    x, y, z = seg_patch
    config = (
        f"configs/train.json{' + quick.json' if quick else ''} with the plan's segmenter (7 stages); bs{seg_batch}; "
        f"LR {x}x{y}x{z} -> HR x{scale} in z; LR CE (U) + LR Dice + HR Dice-CE + KD; infer 1 crop, HR head"
        f"{''.join(f'; {label}' for key, label in SEG_SWITCHES.items() if switches[key])}"
        f"{precision_label(device, amp)}"
    )
    networks = {"segmenter": network, **trainer.frozen_networks}
    return peer_step_result(result, infer, "ours (common.engines.HRSegTrainer)", config, networks)


def measure(
    n: int = 3,
    warmup: int = 1,
    stage: str = "sr",
    batch: int = 32,
    patch: int = 96,
    infer_size: int = 256,
    seg_batch: int = 2,
    seg_patch: str | tuple[int, int, int] = (128, 128, 14),
    threads: int = 2,
    flops: bool = True,
    quick: bool = False,
    channels_last: bool | None = None,
    fused_optimizer: bool | None = None,
    optim_set_to_none: bool | None = None,
    recompute: bool | None = None,
    device: str = "cpu",
    amp: str = "off",
) -> dict:
    """Time ``n`` training iterations of ``stage`` (after ``warmup``) and ``n`` inferences: the JSON's content.
    ``sr``: the UASR step (``batch``, ``patch``, ``infer_size``; ``channels_last`` ``None`` takes ``train_sr.json``'s
    ``sr_channels_last``); ``seg``: the stage-2 step (``seg_batch``, ``seg_patch`` (x, y, z); ``channels_last``
    ``None`` takes ``train.json``'s ``seg_channels_last``, ``fused_optimizer``, ``optim_set_to_none`` and
    ``recompute`` its ``seg_fused_optimizer``, ``seg_optim_set_to_none`` and ``seg_recompute_full_resolution``).
    ``device`` ``cuda``: the same steps on the GPU (the shared timers wait for its work); ``flops`` must then be off
    (the conv ceiling is measured on the CPU); ``amp`` ``bf16`` or ``fp16`` runs the GPU step and inference under that
    autocast dtype."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {list(STAGES)}, got {stage!r}.")
    # every refusal before the process's thread count and seed are touched
    dtype = step_precision(device, flops, amp)
    if stage == "seg":
        patch_size = int_tuple(seg_patch)
        if len(patch_size) != 3:
            raise ValueError(f"seg_patch takes 3 sizes (x, y, z), got {seg_patch!r}.")
    elif fused_optimizer is not None or optim_set_to_none is not None or recompute is not None:
        raise ValueError(
            "fused_optimizer, optim_set_to_none and recompute are stage-2 switches: pass them with --stage seg."
        )
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if stage == "seg":
        given = dict(zip(SEG_SWITCHES, (channels_last, fused_optimizer, optim_set_to_none, recompute)))
        return _measure_seg(n, warmup, seg_batch, patch_size, flops, quick, given, device, amp, dtype)
    return _measure_sr(n, warmup, batch, patch, infer_size, flops, quick, channels_last, device, amp, dtype)


def _measure_sr(
    n: int,
    warmup: int,
    batch: int,
    patch: int,
    infer_size: int,
    flops: bool,
    quick: bool,
    channels_last: bool | None,
    device: str,
    amp: str,
    dtype: torch.dtype | None,
) -> dict:
    """Time ``n`` UASR training iterations (after ``warmup``) and ``n`` one-window inferences."""
    import common.engines
    from common.acceleration import accelerate

    overrides = dict(read_overlay(BUNDLE_ROOT, QUICK_OVERLAY) if quick else {}, device="cpu")
    files = ["train.json", "train_sr.json", "train_uasr.json"]
    items, switches = parse_config_switches(BUNDLE_ROOT, files, overrides, _ITEMS, {"sr_channels_last": channels_last})
    channels_last = switches["sr_channels_last"]
    network = accelerate(items["uasr_network_def"].to(device), channels_last=channels_last)
    n_inputs, scale = int(items["n_inputs"]), int(items["scale"])
    optimizer = torch.optim.Adam(network.parameters(), lr=REFERENCE_LR, betas=tuple(items["sr_betas"]))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=REFERENCE_LR, total_steps=n + warmup + 2)
    generator = _generator()
    data = {key: value.to(device) for key, value in _pair(batch, n_inputs, scale, patch, generator).items()}
    trainer = common.engines.SuperResolutionTrainer(
        device,
        1,
        [data],
        {"network": network},
        {"optimizer": optimizer},
        loss_function=items["sr_loss"],
        **trainer_precision(dtype),
    )

    def train_step() -> None:
        trainer._iteration(trainer, {key: value.clone() for key, value in data.items()})
        scheduler.step()

    result = iteration_times(train_step, n=n, warmup=warmup, flops=flops)
    window = _pair(1, n_inputs, scale, infer_size, generator)["lr"].to(device)
    network.eval()
    with step_autocast(device, dtype):
        infer = inference_times(network, window.clone, n=n, warmup=warmup)
    config = (
        f"configs/train_sr.json + train_uasr.json{' + quick.json' if quick else ''}; 2 channels; "
        f"{n_inputs} x {patch}x{patch} -> {scale} slices; bs{batch}; infer 1 x 2 x {n_inputs} x {infer_size}^2"
        f"{'; channels-last' if channels_last else ''}{precision_label(device, amp)}"
    )
    return peer_step_result(
        result, infer, "ours (common.engines.SuperResolutionTrainer, UASR)", config, {"uasr": network}
    )


def main(**kwargs: object) -> None:
    """Command-line entry: :func:`measure`'s result as the last line of stdout (what the side-by-side tool reads)."""
    print(json.dumps(measure(**kwargs)))


if __name__ == "__main__":
    fire.Fire(main)
