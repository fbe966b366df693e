"""Our MUNIT training iteration at NVlabs/MUNIT's reference configuration, printed as one JSON line.

The counterpart of ``shared/peers/munit_step.py`` (which times the public code's ``dis_update`` + ``gen_update``):
the same configuration (the configs' translator networks, 1 channel, ``--size`` 192, batch 1, LSGAN, loss weights
1/10/1/1, no VGG term), the same inputs (fresh uniform noise in [-1, 1] per iteration) and the same inference path
(``gen_a.encode`` then ``gen_b.decode`` with a random style). ``python -m tools.side_by_side`` runs both in
alternating processes.

Usage (from the bundle root)::

    python -m scripts.peer_step [--n 3] [--warmup 1] [--size 192] [--threads 2] [--flops True] [--quick False]
        [--stack_passes B] [--device cuda --flops False [--amp bf16|fp16]]   (a GPU: steps timed to their end)
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
    precision_label,
    read_overlay,
    step_autocast,
    step_precision,
    trainer_precision,
)

BUNDLE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ITEMS = ("network", "gen_b", "dis_a", "dis_b", "g_optimizer", "d_optimizer", "style_dim")


def measure(
    n: int = 3,
    warmup: int = 1,
    size: int = 192,
    threads: int = 2,
    flops: bool = True,
    quick: bool = False,
    stack_passes: bool | None = None,
    device: str = "cpu",
    amp: str = "off",
) -> dict:
    """Time ``n`` training iterations (after ``warmup``) and ``n`` inference passes: the JSON's content;
    ``stack_passes`` ``None`` takes ``train_translator.json``'s; ``device`` ``cuda`` runs both on the GPU (``flops``
    off), under ``amp``'s autocast dtype if not ``off``."""
    import common.engines

    dtype = step_precision(device, flops, amp)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    overrides = dict(read_overlay(BUNDLE_ROOT, QUICK_OVERLAY) if quick else {}, device=device)
    files = ["train.json", "train_translator.json"]
    items, switches = parse_config_switches(BUNDLE_ROOT, files, overrides, _ITEMS, {"stack_passes": stack_passes})
    stack_passes = switches["stack_passes"]
    networks = {"gen_a": items["network"], "gen_b": items["gen_b"], "dis_a": items["dis_a"], "dis_b": items["dis_b"]}
    generator = torch.Generator().manual_seed(1)

    def noise() -> torch.Tensor:
        return (torch.rand(1, 1, size, size, generator=generator) * 2 - 1).to(device)

    batch = {"bssfp": noise(), "lge": noise()}
    trainer = common.engines.MUNITTrainer(
        device,
        1,
        [batch],
        networks,
        {"g": items["g_optimizer"], "d": items["d_optimizer"]},
        source_key="bssfp",
        target_key="lge",
        stack_passes=stack_passes,
        **trainer_precision(dtype),
    )

    def train_step() -> None:
        trainer.state.iteration = 1
        trainer._iteration(trainer, {"bssfp": noise(), "lge": noise()})

    result = iteration_times(train_step, n=n, warmup=warmup, flops=flops)
    gen_a, gen_b = networks["gen_a"].eval(), networks["gen_b"].eval()

    def translate(x: torch.Tensor) -> None:
        content, _ = gen_a.encode(x)
        gen_b.decode(content, torch.randn(1, items["style_dim"], 1, 1, generator=generator).to(device))

    with step_autocast(device, dtype):
        infer = inference_times(translate, noise, n=n, warmup=warmup)
    config = (
        f"configs/train_translator.json{' + quick.json' if quick else ''}; 1 channel; {size}x{size}; bs1"
        f"{precision_label(device, amp)}"
    )
    implementation = "ours (common.engines.MUNITTrainer)" + (", stacked passes" if stack_passes else "")
    return peer_step_result(result, infer, implementation, config, networks)


def main(**kwargs: object) -> None:
    """Command-line entry: :func:`measure`'s result as the last line of stdout (what the side-by-side tool reads)."""
    print(json.dumps(measure(**kwargs)))


if __name__ == "__main__":
    fire.Fire(main)
