"""A convolutional toy GAN on the engine base, plain or with the speed switches; run by torchrun for the DDP test.

``tests/engines/test_engines_acceleration.py`` imports :func:`build` and :func:`one_run` for its single-process
checks and runs this file under ``torchrun --standalone --nproc_per_node=2`` (gloo, CPU): each rank trains the toy
with channels-last and compiled networks inside DDP on its half of the batch and writes ``<out>/rank<R>.json``
(the loss terms and the flattened weights after the run), which the test compares with one plain process on the
whole batch.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from common import distributed
from common.engines import MultiNetworkTrainer, set_requires_grad
from ignite.engine import Events
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

BATCH = 4  # global batch; each of two DDP ranks gets half


class ConvToyGAN(MultiNetworkTrainer):
    """LSGAN on 1x8x8 images: ``g`` (two 3x3 convs) maps noise images to samples, ``d`` (two convs) scores them."""

    network_names = ("g", "d")
    optimizer_names = ("g_optimizer", "d_optimizer")

    def _iteration(self, engine, batchdata):
        real, noise = (t.to(engine.state.device) for t in batchdata)
        g, d = engine.networks["g"], engine.networks["d"]
        engine.train_mode()
        set_requires_grad([d], True)
        fake = g(noise)
        loss_d = ((d(real) - 1) ** 2).mean() + (d(fake.detach()) ** 2).mean()
        engine.optimizer_step("d_optimizer", loss_d)
        set_requires_grad([d], False)
        loss_g = ((d(g(noise)) - 1) ** 2).mean()
        engine.optimizer_step("g_optimizer", loss_g)
        return dict(engine.detached({"loss_d": loss_d, "loss_g": loss_g}))


def networks() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    g = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(8, 1, 3, padding=1), nn.Tanh())
    d = nn.Sequential(nn.Conv2d(1, 8, 4, stride=2, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(8, 1, 3, padding=1))
    return {"g": g, "d": d}


def data(n: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [(torch.rand(1, 8, 8, generator=generator), torch.randn(1, 8, 8, generator=generator)) for _ in range(n)]


def build(max_epochs: int = 1, ddp: bool = False, epoch_length: int | None = None, **switches) -> ConvToyGAN:
    """The toy trainer with plain SGD (lr 0.1: a step is the gradient, scaled) and ``switches`` of the engine base."""
    nets = networks()
    if ddp:  # as the multi_gpu configs' `place`: the layout is converted before wrapping, which the engine checks
        layout = bool(switches.get("channels_last"))
        nets = {name: distributed.wrap_ddp(net, device="cpu", channels_last=layout) for name, net in nets.items()}
    optimizers = {f"{name}_optimizer": torch.optim.SGD(nets[name].parameters(), lr=0.1) for name in nets}
    dataset = data()
    sampler = DistributedSampler(dataset, shuffle=False) if ddp else None
    loader = DataLoader(dataset, batch_size=BATCH // (2 if ddp else 1), shuffle=False, sampler=sampler)
    return ConvToyGAN(
        "cpu", max_epochs, loader, nets, optimizers, decollate=False, epoch_length=epoch_length, **switches
    )


def flat_weights(trainer: MultiNetworkTrainer) -> dict[str, list[float]]:
    out = {}
    for name, net in trainer.networks.items():
        inner = net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net
        out[name] = torch.cat([p.detach().reshape(-1) for p in inner.parameters()]).tolist()
    return out


def one_run(**kwargs) -> tuple[list[dict[str, float]], dict[str, list[float]]]:
    """Train; return every iteration's loss terms and the weights afterwards."""
    trainer = build(**kwargs)
    losses: list[dict[str, float]] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(
        {k: float(v) for k, v in e.state.output.items()}))  # fmt: skip
    trainer.run()
    return losses, flat_weights(trainer)


def main(out: str, switches: str = '{"channels_last": true, "compile_networks": true}') -> None:
    distributed.init(backend="gloo")
    try:
        losses, weights = one_run(max_epochs=1, ddp=True, **json.loads(switches))
        path = Path(out) / f"rank{distributed.rank()}.json"
        path.write_text(json.dumps({"losses": losses, "weights": weights}))
    finally:
        distributed.finalize()


if __name__ == "__main__":
    main(*sys.argv[1:])
