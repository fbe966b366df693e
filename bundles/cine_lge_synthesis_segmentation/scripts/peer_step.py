"""Our PSCGAN training iteration as one JSON line, for ``python -m tools.side_by_side``'s speed-switch rows.

PSCGAN has no public code, so ``PEER_STEP`` names no repository: the side-by-side tool times this step with
``train.json``'s speed switches (fused Adam and gradients set to None on) against the same step with a switch
flipped (``--fused_optimizer False``, ``--optim_set_to_none False``, ``--channels_last True``, ``--compile True``:
``torch.compile``, whose cost is the result's ``warmup_train_s``; ``--attention_kernel math``: the attentions on
PyTorch's unfused math kernel, which they ran on before they were laid out for the fused one), in alternating
processes. The step is the phase trainer of the configs (``--phase sys``, the default: ``train.json`` +
``train_sys.json``; ``pri``: ``train.json``; ``seg``: + ``train_seg.json``; the benchmark's ``PHASE_FILES``),
built from the config's own ``train#trainer`` (networks, losses, optimizers, ``d_steps_per_g_step``, switches) with
its data loader and handlers replaced: ``_iteration`` on one batch of ``batch_size`` random cines (``n_frames`` x
``image_size``^2, in [-1, 1]) with a random LGE and 4-class label. The frozen earlier phases keep their random
initialisation (their cost is what matters here, not their weights). One timed step is one generator update:
``d_steps_per_g_step`` (2) iterations, each a discriminator step, the last also the generator step. Inference:
one cine through the phase's generator.

Usage (from the bundle root)::

    python -m scripts.peer_step [--n 3] [--warmup 1] [--phase sys] [--threads 2] [--flops True] [--quick False]
        [--fused_optimizer B] [--optim_set_to_none B] [--channels_last B] [--compile B]   (default: train.json's)
        [--attention_kernel default|math] [--device cuda --flops False [--amp bf16|fp16]]   (a GPU: steps timed
        to their end; autocast)
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

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
from scripts.benchmark import PHASE_FILES
from torch.nn.attention import SDPBackend, sdpa_kernel

BUNDLE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: the phases whose step can be timed (their overlays on train.json: ``PHASE_FILES``)
PHASES = ("pri", "sys", "seg")
_ITEMS = ("train#trainer", "batch_size", "n_frames", "image_size", "num_classes")
#: the speed switches of train.json (config key -> label in the result's configuration)
SWITCHES = {
    "fused_optimizer": "fused Adam",
    "optim_set_to_none": "gradients set to None",
    "channels_last": "channels-last",
    "compile": "compiled",
}
#: ``--attention_kernel``: PyTorch's choice (the fused flash kernel for the attentions' layout), or its math kernel
ATTENTION_KERNELS = {"default": contextlib.nullcontext, "math": lambda: sdpa_kernel([SDPBackend.MATH])}


def build_step(
    phase: str = "sys",
    quick: bool = False,
    device: str = "cpu",
    dtype: torch.dtype | None = None,
    switches: dict[str, bool | None] | None = None,
) -> dict[str, Any]:
    """The phase's training step as the configs build it: ``train#trainer`` of ``train.json`` + the phase's files
    (+ ``quick.json``) with its data and handlers replaced (``NO_DATA``), on ``device``, under autocast to ``dtype``
    if given, each of ``switches`` not None overriding its config key. Returns ``trainer``, ``data`` (one random
    batch of ``batch_size``), ``train_step`` (one generator update: ``d_steps_per_g_step`` iterations, the engine's
    iteration counter making the last one discriminator + generator), ``files`` and ``switches`` (the values used).
    The benchmark's speed rows time this step too."""
    overrides = {
        **(read_overlay(BUNDLE_ROOT, QUICK_OVERLAY) if quick else {}),
        **NO_DATA,
        **trainer_precision(dtype, "train#trainer"),
        "device": device,
    }
    files = ["train.json", *PHASE_FILES[phase]]
    items, switches = parse_config_switches(BUNDLE_ROOT, files, overrides, _ITEMS, switches or {})
    trainer = items["train#trainer"]
    batch, frames, size = int(items["batch_size"]), int(items["n_frames"]), int(items["image_size"])
    generator = torch.Generator().manual_seed(0)
    data = {
        "cine": torch.rand(batch, 1, frames, size, size, generator=generator) * 2 - 1,
        "lge": torch.rand(batch, 1, size, size, generator=generator) * 2 - 1,
        "label": torch.randint(0, int(items["num_classes"]), (batch, 1, size, size), generator=generator).float(),
    }
    data = {key: value.to(device) for key, value in data.items()}
    trainer.state.iteration = 0

    def train_step() -> None:
        for _ in range(trainer.d_steps_per_g_step):
            trainer.state.iteration += 1
            trainer._iteration(trainer, data)

    return {"trainer": trainer, "data": data, "train_step": train_step, "files": files, "switches": switches}


def measure(
    n: int = 3,
    warmup: int = 1,
    phase: str = "sys",
    threads: int = 2,
    flops: bool = True,
    quick: bool = False,
    fused_optimizer: bool | None = None,
    optim_set_to_none: bool | None = None,
    channels_last: bool | None = None,
    compile: bool | None = None,  # noqa: A002 - the bundle key's name
    attention_kernel: str = "default",
    device: str = "cpu",
    amp: str = "off",
) -> dict:
    """Time ``n`` training steps (after ``warmup``) and ``n`` one-cine inferences: the JSON's content. A switch
    left at ``None`` takes ``train.json``'s value; ``device`` ``cuda`` runs both on the GPU (``flops`` off), under
    ``amp``'s autocast dtype if not ``off``."""
    dtype = step_precision(device, flops, amp)
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {sorted(PHASES)}, got {phase!r}.")
    if attention_kernel not in ATTENTION_KERNELS:
        raise ValueError(f"attention_kernel must be one of {sorted(ATTENTION_KERNELS)}, got {attention_kernel!r}.")
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    given = dict(
        fused_optimizer=fused_optimizer,
        optim_set_to_none=optim_set_to_none,
        channels_last=channels_last,
        compile=compile,
    )
    step = build_step(phase, quick, device, dtype, given)
    trainer, data, train_step, switches = step["trainer"], step["data"], step["train_step"], step["switches"]
    files, (batch, _, frames, size, _) = step["files"], step["data"]["cine"].shape
    with ATTENTION_KERNELS[attention_kernel]():
        result = iteration_times(train_step, n=n, warmup=warmup, flops=flops)
        network = trainer.networks["g"].eval()
        with step_autocast(device, dtype):
            condition = trainer.condition(data["cine"][:1])
            infer = inference_times(
                (lambda cine: network(cine, condition)) if condition is not None else network,
                lambda: data["cine"][:1].clone(),
                n=n,
                warmup=warmup,
            )
    on = [label for key, label in SWITCHES.items() if switches[key]]
    on += ["unfused (math) attention"] if attention_kernel == "math" else []
    config = (
        f"{' + '.join(files)}{' + quick.json' if quick else ''}; bs{batch}; {frames} x {size}^2 cine; "
        f"{', '.join(on) or 'no speed switch'}; infer 1 cine{precision_label(device, amp)}"
    )
    return peer_step_result(result, infer, f"ours ({type(trainer).__name__}._iteration)", config, trainer.networks)


def main(**kwargs: object) -> None:
    """Command-line entry: :func:`measure`'s result as the last line of stdout (what the side-by-side tool reads)."""
    print(json.dumps(measure(**kwargs)))


if __name__ == "__main__":
    fire.Fire(main)
