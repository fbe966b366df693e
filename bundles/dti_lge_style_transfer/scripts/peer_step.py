"""Our CycleGAN training iteration at junyanz/pytorch-CycleGAN-and-pix2pix's reference configuration, as one JSON line.

The counterpart of ``shared/peers/cyclegan_step.py`` (which times the public code's ``set_input`` +
``optimize_parameters``): the same configuration (this bundle's ``train.json`` networks: ResNet-9 generators with
ngf 64, 70x70 PatchGAN with ndf 64, instance norm, LSGAN, cycle 10, identity 0.5, image pools of 50; 1 channel,
``--size`` 64, batch 1; plain CycleGAN, no Segmentor, as the reference), the same inputs (fresh uniform noise in
[-1, 1] per iteration) and the same inference pass (one ``G_S>T`` forward). The speed switches default to
``train.json``'s (``stack_passes``, ``fused_optimizer``, ``optim_set_to_none`` on; ``channels_last``, ``compile``
off) and each flag overrides its key; the compilation's cost is the ``warmup_train_s`` of the result.
``python -m tools.side_by_side`` runs both sides in alternating processes.

Usage (from the bundle root)::

    python -m scripts.peer_step [--n 3] [--warmup 1] [--size 64] [--threads 2] [--flops True]
        [--channels_last B] [--compile B] [--stack_passes B] [--fused_optimizer B] [--optim_set_to_none B]
        [--device cuda --flops False [--amp bf16|fp16]]   (a GPU: each step timed to its end; autocast)
"""

from __future__ import annotations

import json
import os

import fire
import torch
from common.benchmarking import (
    inference_times,
    iteration_times,
    parse_config_switches,
    peer_step_result,
    precision_label,
    step_autocast,
    step_precision,
    trainer_precision,
)

BUNDLE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ITEMS = ("network", "g_target_to_source", "d_source", "d_target", "g_optimizer", "d_optimizer", "adversarial_loss")
#: the speed switches of train.json (config key -> label in the result's implementation)
SWITCHES = {
    "channels_last": "channels-last",
    "compile": "compiled",
    "stack_passes": "stacked passes",
    "fused_optimizer": "fused Adam",
    "optim_set_to_none": "gradients set to None",
}


def measure(
    n: int = 3,
    warmup: int = 1,
    size: int = 64,
    threads: int = 2,
    flops: bool = True,
    channels_last: bool | None = None,
    compile: bool | None = None,  # noqa: A002 - the bundle key's name
    stack_passes: bool | None = None,
    fused_optimizer: bool | None = None,
    optim_set_to_none: bool | None = None,
    device: str = "cpu",
    amp: str = "off",
) -> dict:
    """Time ``n`` training iterations (after ``warmup``) and ``n`` inference passes: the JSON's content. A switch
    left at ``None`` takes ``train.json``'s value; ``device`` ``cuda`` runs both on the GPU (``flops`` off), under
    ``amp``'s autocast dtype if not ``off``."""
    import common.engines

    dtype = step_precision(device, flops, amp)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    given = dict(
        channels_last=channels_last,
        compile=compile,
        stack_passes=stack_passes,
        fused_optimizer=fused_optimizer,
        optim_set_to_none=optim_set_to_none,
    )
    items, switches = parse_config_switches(BUNDLE_ROOT, ["train.json"], {"device": device}, _ITEMS, given)
    networks = {
        "g_source_to_target": items["network"],
        "g_target_to_source": items["g_target_to_source"],
        "d_source": items["d_source"],
        "d_target": items["d_target"],
    }
    generator = torch.Generator().manual_seed(1)

    def noise() -> torch.Tensor:
        return (torch.rand(1, 1, size, size, generator=generator) * 2 - 1).to(device)

    trainer = common.engines.CycleGANTrainer(
        device,
        1,
        [],
        networks,
        {"g_optimizer": items["g_optimizer"], "d_optimizer": items["d_optimizer"]},
        source_key="dti",
        target_key="lge",
        lambda_cycle=10.0,
        lambda_identity=0.5,
        pool_size=50,
        adversarial_loss=items["adversarial_loss"],
        channels_last=switches["channels_last"],
        compile_networks=switches["compile"],
        stack_passes=switches["stack_passes"],
        optim_set_to_none=switches["optim_set_to_none"],
        **trainer_precision(dtype),
    )

    def train_step() -> None:
        trainer._iteration(trainer, {"dti": noise(), "lge": noise()})

    result = iteration_times(train_step, n=n, warmup=warmup, flops=flops)
    g = networks["g_source_to_target"].eval()
    with step_autocast(device, dtype):
        infer = inference_times(g, noise, n=n, warmup=warmup)
    on = [label for key, label in SWITCHES.items() if switches[key]]
    implementation = "ours (common.engines.CycleGANTrainer)" + (f", {' + '.join(on)}" if on else "")
    config = f"configs/train.json, use_segmentor false; 1 channel; {size}x{size}; bs1{precision_label(device, amp)}"
    return peer_step_result(result, infer, implementation, config, networks)


def main(**kwargs: object) -> None:
    """Command-line entry: :func:`measure`'s result as the last line of stdout (what the side-by-side tool reads)."""
    print(json.dumps(measure(**kwargs)))


if __name__ == "__main__":
    fire.Fire(main)
