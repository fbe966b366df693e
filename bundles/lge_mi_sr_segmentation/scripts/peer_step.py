"""Our SwinSSegNet training step as one JSON line, for ``python -m tools.side_by_side``'s speed-switch rows.

SwinSSegNet has no public code, so ``PEER_STEP`` names no repository: the side-by-side tool times this step with
``train.json``'s speed switches (channels-last on) against the same step with one switch flipped (``--channels_last
False``; ``--fused_optimizer True``: PyTorch's fused AdamW kernel instead of its per-parameter loop; ``--compile
True``: ``torch.compile``, whose cost is the result's ``warmup_train_s``), in alternating processes. The step is what
``configs/train.json``'s ``SupervisedTrainer`` does per iteration: gradients zero-filled (MONAI's default), the
network on a batch of ``batch_size`` (8) 64 x 64 LGE slices, ``DiceCELoss`` against 512 x 512 masks, backward, AdamW
step; built from the config's own ``network``, ``loss`` and ``optimizer`` (``--quick True`` layers
``configs/quick.json``), in the config's malloc mode (``malloc``: heap unless ``COMMON_MALLOC`` names another).
Inference: one 64 x 64 slice through the network.

Usage (from the bundle root)::

    python -m scripts.peer_step [--n 3] [--warmup 1] [--threads 2] [--flops True] [--quick False]
        [--fused_optimizer B] [--channels_last B] [--compile B]   (default: train.json's)
        [--device cuda --flops False [--amp bf16|fp16]]   (a GPU: each step timed to its end; autocast)
"""

from __future__ import annotations

import json
import os

import fire
import torch
from common.allocator import applied_mode, reuse_freed_memory
from common.benchmarking import (
    QUICK_OVERLAY,
    inference_times,
    iteration_times,
    parse_config_switches,
    peer_step_result,
    precision_label,
    read_overlay,
    step_autocast,
    step_precision,
)

BUNDLE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ITEMS = ("network", "loss", "optimizer", "batch_size", "scale", "num_classes", "malloc")
#: the speed switches of train.json (config key -> label in the result's configuration)
SWITCHES = {"fused_optimizer": "fused AdamW", "channels_last": "channels-last", "compile": "compiled"}
#: the LGE slices' in-plane size the network sees (the 8x-downsampled 512 x 512 grid)
LOW_RES = 64


def measure(
    n: int = 3,
    warmup: int = 1,
    threads: int = 2,
    flops: bool = True,
    quick: bool = False,
    fused_optimizer: bool | None = None,
    channels_last: bool | None = None,
    compile: bool | None = None,  # noqa: A002 - the bundle key's name
    device: str = "cpu",
    amp: str = "off",
) -> dict:
    """Time ``n`` training iterations (after ``warmup``) and ``n`` one-slice inferences: the JSON's content. A
    switch left at ``None`` takes ``train.json``'s value; ``device`` ``cuda`` runs both on the GPU (``flops`` off),
    under ``amp``'s autocast dtype if not ``off`` (fp16 with a gradient scaler, as MONAI's trainer)."""
    dtype = step_precision(device, flops, amp)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    given = dict(fused_optimizer=fused_optimizer, channels_last=channels_last, compile=compile)
    overrides = dict(read_overlay(BUNDLE_ROOT, QUICK_OVERLAY) if quick else {}, device=f"$torch.device('{device}')")
    items, switches = parse_config_switches(BUNDLE_ROOT, ["train.json"], overrides, _ITEMS, given)
    network, loss_function, optimizer = items["network"], items["loss"], items["optimizer"]
    reuse_freed_memory(items["malloc"])  # as train.json's initialize (heap unless COMMON_MALLOC says otherwise)
    batch, high_res = int(items["batch_size"]), LOW_RES * int(items["scale"])
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(batch, 1, LOW_RES, LOW_RES, generator=generator).to(device)
    label = torch.randint(0, int(items["num_classes"]), (batch, 1, high_res, high_res), generator=generator)
    label = label.to(device)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    network.train()

    def train_step() -> None:  # MONAI SupervisedTrainer's iteration (optim_set_to_none False)
        optimizer.zero_grad(set_to_none=False)
        with step_autocast(device, dtype):
            loss = loss_function(network(image), label)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    result = iteration_times(train_step, n=n, warmup=warmup, flops=flops)
    network.eval()
    with step_autocast(device, dtype):
        infer = inference_times(network, lambda: image[:1].clone(), n=n, warmup=warmup)
    on = [label for key, label in SWITCHES.items() if switches[key]]
    config = (
        f"configs/train.json{' + quick.json' if quick else ''}; bs{batch}; {LOW_RES}x{LOW_RES} -> "
        f"{high_res}x{high_res}; {', '.join(on) or 'no speed switch'}; malloc {applied_mode()}; infer 1 x 1 x "
        f"{LOW_RES}^2"
        f"{precision_label(device, amp)}"
    )
    return peer_step_result(result, infer, "ours (SupervisedTrainer iteration)", config, {"swin_sseg": network})


def main(**kwargs: object) -> None:
    """Command-line entry: :func:`measure`'s result as the last line of stdout (what the side-by-side tool reads)."""
    print(json.dumps(measure(**kwargs)))


if __name__ == "__main__":
    fire.Fire(main)
