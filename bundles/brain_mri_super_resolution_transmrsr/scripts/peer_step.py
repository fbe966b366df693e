"""Our TransMRSR SR training step at goddesshs/TransMRSR's reference configuration, printed as one JSON line.

The counterpart of ``shared/peers/transmrsr_step.py`` (which times the public trainer's ``set_input + optimize``:
TGP7 forward, ``L1 + 0.5 (VGG19 content + Gram style)``, backward, Adam 1e-4 with betas (0.5, 0.999), batch 4 of
256 x 256 slices, truncation with 8 random centroids, VGG19 with random weights; and one inference forward of one
slice). Ours is this bundle's SR stage, built from ``configs/train.json``'s own items (``network``, ``loss``,
``optimizer``) and run through ``common.engines.SuperResolutionTrainer``'s iteration:

- network: ``common.nets.TransMRSR`` at ``--size`` (``img_size``), built without files: the generative prior is the
  decoder's random initialisation (the reference's generator is random too: ``pretrained_path`` None and
  ``model.initialize()``), and the truncation (``use_truncation`` true, as the config) pulls toward 8 random
  standard-normal centroids written into the ``centroids`` buffer (the reference writes 8 random ``.npy`` files);
  the decoder trains (``freeze_prior`` false, as the reference's ``fix_decoder`` False);
- loss: ``common.losses.SuperResolutionLoss`` (``L1 + lambda_perceptual (content + style)``, 0.5). It loads its
  VGG19 only from a path; the bundle trains L1 alone when there is none, so for the same terms as the reference a
  **randomly initialised** VGG19 feature stack is saved to a temporary file and passed as ``vgg_weights`` (the
  reference harness also keeps VGG19 random: no download on either side);
- optimizer: the config's Adam (1e-4, betas (0.5, 0.999)) over ``trainable_parameters()``;
- inputs: fresh uniform noise in [0, 1] per iteration, 1 channel (our MRI bundle is single-channel; the reference
  replicates the grey slice into 3 channels and ImageNet-normalises it, ours repeats it to RGB inside the VGG loss):
  ``hr`` ``(batch, 1, size, size)`` and ``lr`` the same slice bilinearly shrunk by the config's ``scale`` along the
  rows and interpolated back to the HR grid, as the harness makes its LR;
- inference: one ``(1, 1, size, size)`` slice through the SR network, under ``no_grad`` as the reference.

``python -m tools.side_by_side`` runs both in alternating processes.

Usage (from the bundle root)::

    python -m scripts.peer_step [--n 3] [--warmup 1] [--batch 4] [--size 256] [--threads 2] [--flops True]
        [--quick False] [--device cuda --flops False [--amp bf16|fp16]]   (a GPU: steps timed to their end)
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import fire
import torch
import torch.nn.functional as F
from common.benchmarking import (
    QUICK_OVERLAY,
    inference_times,
    iteration_times,
    parse_config_items,
    peer_step_result,
    precision_label,
    read_overlay,
    step_autocast,
    step_precision,
    trainer_precision,
)

BUNDLE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ITEMS = ("network", "loss", "optimizer", "scale", "num_centroids", "style_dim")
#: network arguments that would read files (the prior and its centroids): built without them, see the docstring
_NO_FILES = {"network_def#prior_path": None, "network_def#centroids_path": None}


def _pair(batch: int, size: int, scale: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """``hr``: (B, 1, S, S) uniform noise in [0, 1]; ``lr``: ``hr`` shrunk ``scale`` times along the rows and
    interpolated back to (S, S), both bilinear (what the reference harness feeds its trainer, on one channel)."""
    hr = torch.rand(batch, 1, size, size, generator=generator)
    thick = F.interpolate(hr, scale_factor=(1.0 / scale, 1.0), mode="bilinear")
    return {"lr": F.interpolate(thick, size=(size, size), mode="bilinear"), "hr": hr}


def build(
    batch: int = 4, size: int = 256, quick: bool = False, device: str = "cpu", dtype: torch.dtype | None = None
) -> dict[str, Any]:
    """This bundle's SR stage at the reference configuration, built from ``configs/train.json`` (no prior, centroid
    or VGG file needed) on ``device``, under autocast to ``dtype`` if given: ``network``, ``loss``, ``optimizer``,
    ``trainer`` (``SuperResolutionTrainer``), ``scale`` and ``next_batch`` (a callable giving a fresh
    ``{"lr", "hr"}`` batch on ``device``)."""
    import common.engines
    from common.losses.perceptual import VGG19Features

    with tempfile.TemporaryDirectory(prefix="transmrsr_vgg_") as folder:
        vgg_path = os.path.join(folder, "vgg19_random.pt")
        torch.save(VGG19Features().state_dict(), vgg_path)  # random weights, as the reference harness's VGG19
        overrides = dict(
            read_overlay(BUNDLE_ROOT, QUICK_OVERLAY) if quick else {},
            device=device,
            img_size=size,
            vgg_weights=vgg_path,
            **_NO_FILES,
        )
        items = parse_config_items(BUNDLE_ROOT, ["train.json"], overrides, _ITEMS)
    network, loss = items["network"], items["loss"]
    if not loss.uses_perceptual:
        raise RuntimeError("the SR loss has no VGG19 terms: the step would not compute the reference's loss.")
    with torch.no_grad():  # the reference's 8 random centroids (standard normal), in place of the centroid file
        network.centroids.copy_(torch.randn(int(items["num_centroids"]), int(items["style_dim"])).to(device))
    scale = int(items["scale"])
    generator = torch.Generator().manual_seed(0)

    def next_batch() -> dict[str, torch.Tensor]:
        return {key: value.to(device) for key, value in _pair(batch, size, scale, generator).items()}

    trainer = common.engines.SuperResolutionTrainer(
        device,
        1,
        [next_batch()],
        {"network": network},
        {"optimizer": items["optimizer"]},
        loss_function=loss,
        **trainer_precision(dtype),
    )
    return {
        "network": network,
        "loss": loss,
        "optimizer": items["optimizer"],
        "trainer": trainer,
        "scale": scale,
        "next_batch": next_batch,
    }


def measure(
    n: int = 3,
    warmup: int = 1,
    batch: int = 4,
    size: int = 256,
    threads: int = 2,
    flops: bool = True,
    quick: bool = False,
    device: str = "cpu",
    amp: str = "off",
) -> dict:
    """Time ``n`` SR training iterations (after ``warmup``) and ``n`` one-slice inferences: the JSON's content;
    ``device`` ``cuda`` runs both on the GPU (``flops`` off), under ``amp``'s autocast dtype if not ``off``."""
    dtype = step_precision(device, flops, amp)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    step = build(batch, size, quick, device, dtype)
    trainer, network, next_batch = step["trainer"], step["network"], step["next_batch"]

    def train_step() -> None:
        trainer._iteration(trainer, next_batch())

    result = iteration_times(train_step, n=n, warmup=warmup, flops=flops)
    network.eval()
    generator = torch.Generator().manual_seed(0)
    with step_autocast(device, dtype):
        infer = inference_times(
            network, lambda: _pair(1, size, step["scale"], generator)["lr"].to(device), n=n, warmup=warmup
        )
    config = (
        f"configs/train.json{' + quick.json' if quick else ''}; TransMRSR, random prior, truncation to 8 random "
        f"centroids; recompute_resolutions {sorted(network.recompute_resolutions, reverse=True)}; 1 channel "
        f"(reference: grey replicated to 3); {size}x{size}; bs{batch}; "
        "L1 + 0.5 (VGG19 content + style), VGG19 random weights; Adam 1e-4 (0.5, 0.999); "
        f"infer 1 x 1 x {size}^2{precision_label(device, amp)}"
    )
    return peer_step_result(
        result, infer, "ours (common.engines.SuperResolutionTrainer, TransMRSR)", config, {"transmrsr": network}
    )


def main(**kwargs: object) -> None:
    """Command-line entry: :func:`measure`'s result as the last line of stdout (what the side-by-side tool reads)."""
    print(json.dumps(measure(**kwargs)))


if __name__ == "__main__":
    fire.Fire(main)
