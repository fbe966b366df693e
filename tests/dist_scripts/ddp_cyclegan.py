"""Run by tests/test_distributed_torchrun.py under ``torchrun --standalone --nproc_per_node=2`` (gloo, CPU).

Each rank writes ``<out>/rank<R>.json`` with:
- ``grad_max_abs_diff``: DDP gradient with a local batch b vs one process on the global batch 2b (no batch norm);
- ``local_vs_ddp_diff``: the same DDP gradient vs this rank's gradient without DDP (must be clearly non-zero);
- ``shard``: ``common.distributed.shard(range(7))`` on this rank;
- ``handlers_kept``: how many of [AtomicCheckpointSaver, StatsHandler] ``rank0_handlers`` kept;
- ``hashes``: sha256 of the four CycleGANSeg networks' weights after training (DDP, DistributedSampler);
- ``losses``: the loss terms of every iteration on this rank; ``segmentor_unchanged``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path

import torch
from common import distributed
from common.engines import CycleGANTrainer
from common.handlers import AtomicCheckpointSaver, rank0_handlers
from ignite.engine import Events
from monai.handlers import StatsHandler, from_engine
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, DistributedSampler

LOSS_KEYS = ["loss_g", "loss_d", "loss_gan", "loss_cycle", "loss_identity", "loss_transfer_seg", "loss_recon_seg"]


def state_hash(module: nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def gradient_check(rank: int, world_size: int, local_batch: int = 2) -> dict:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 1))
    single = copy.deepcopy(net)
    local = copy.deepcopy(net)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(local_batch * world_size, 1, 8, 8, generator=g)
    y = torch.randn(local_batch * world_size, 1, generator=g)
    part = slice(rank * local_batch, (rank + 1) * local_batch)
    ddp = distributed.wrap_ddp(net, device="cpu")
    F.mse_loss(ddp(x[part]), y[part]).backward()
    F.mse_loss(single(x), y).backward()  # one process, batch 2b
    F.mse_loss(local(x[part]), y[part]).backward()  # this rank alone
    pairs = list(zip(net.parameters(), single.parameters(), local.parameters()))
    return {
        "grad_max_abs_diff": max((a.grad - b.grad).abs().max().item() for a, b, _ in pairs),
        "local_vs_ddp_diff": max((a.grad - c.grad).abs().max().item() for a, _, c in pairs),
    }


def generator() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1), nn.Tanh())


class PatchD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 4, stride=2, padding=1), nn.LeakyReLU(0.2))
        self.head = nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, x):
        features = self.body(x)
        return [features, self.head(features)]


class Consistency(nn.Module):
    def forward(self, pred_logits, reference_logits):
        return torch.mean((pred_logits.softmax(1) - reference_logits.detach().softmax(1)) ** 2)


def cyclegan_check(rank: int, world_size: int, out_dir: Path) -> dict:
    g = torch.Generator().manual_seed(0)
    data = [
        {"dti": torch.rand(1, 16, 16, generator=g) * 2 - 1, "lge": torch.rand(1, 16, 16, generator=g) * 2 - 1}
        for _ in range(8)
    ]
    sampler = DistributedSampler(data, num_replicas=world_size, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=2, sampler=sampler)

    torch.manual_seed(7)  # the same frozen Segmentor everywhere
    segmentor = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    segmentor_before = state_hash(segmentor)
    torch.manual_seed(100 + rank)  # different initial weights per rank: DDP must broadcast rank 0's
    nets = {
        "g_source_to_target": generator(),
        "g_target_to_source": generator(),
        "d_source": PatchD(),
        "d_target": PatchD(),
    }
    wrapped = {name: distributed.wrap_ddp(net, device="cpu") for name, net in nets.items()}
    g_opt = torch.optim.Adam(
        [*wrapped["g_source_to_target"].parameters(), *wrapped["g_target_to_source"].parameters()], lr=1e-3
    )
    d_opt = torch.optim.Adam([*wrapped["d_source"].parameters(), *wrapped["d_target"].parameters()], lr=1e-3)
    trainer = CycleGANTrainer(
        "cpu",
        2,
        loader,
        wrapped,
        {"g_optimizer": g_opt, "d_optimizer": d_opt},
        source_key="dti",
        target_key="lge",
        pool_size=2,
        segmentor=segmentor,
        segmentor_consistency_loss=Consistency(),
    )
    handlers = [
        AtomicCheckpointSaver(str(out_dir / f"ckpt_rank{rank}"), engine_key="trainer", save_interval=1),
        StatsHandler(name="ddp_cyclegan", output_transform=from_engine(["loss_g"], first=True)),
    ]
    kept = rank0_handlers(handlers)
    for handler in kept:
        handler.attach(trainer)
    losses = []
    trainer.add_event_handler(
        Events.ITERATION_COMPLETED,
        lambda e: losses.append([float(v) for v in from_engine(LOSS_KEYS, first=True)(e.state.output)]),
    )
    trainer.run()
    return {
        "handlers_kept": len(kept),
        "iterations": trainer.state.iteration,
        "hashes": {name: state_hash(unwrap(net)) for name, net in wrapped.items()},
        "losses": losses,
        "segmentor_unchanged": state_hash(segmentor) == segmentor_before,
    }


def main() -> None:
    out_dir = Path(sys.argv[1])
    distributed.init("gloo")
    rank, world_size = distributed.rank(), distributed.world_size()
    result = {"rank": rank, "world_size": world_size, "is_rank0": distributed.is_rank0()}
    result["shard"] = distributed.shard(list(range(7)))
    result.update(gradient_check(rank, world_size))
    result.update(cyclegan_check(rank, world_size, out_dir))
    kept_alive = distributed.wrap_ddp(torch.nn.Linear(2, 2), device="cpu")  # as a workflow's networks outlive finalize
    result["threads_before_finalize"] = native_threads()
    distributed.finalize()
    result["threads_after_finalize"] = native_threads()
    result["wrapper_still_referenced"] = kept_alive is not None
    (out_dir / f"rank{rank}.json").write_text(json.dumps(result))


def native_threads() -> list[str]:
    """The names of this process's threads (Linux: /proc/self/task/*/comm; empty elsewhere)."""
    return sorted(path.read_text().strip() for path in Path("/proc/self/task").glob("*/comm"))


if __name__ == "__main__":
    main()
