"""common.distributed without torchrun (env fallbacks, shard, wrap_ddp on a 1-process group) and
common.handlers.rank0_handlers."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from common import distributed
from common.handlers import AtomicCheckpointSaver, GanImageGridHandler, ProgressLogger, ResumeFromLatest, rank0_handlers
from monai.handlers import CheckpointSaver, LrScheduleHandler, StatsHandler, TensorBoardStatsHandler
from torch import nn


@pytest.fixture
def no_torchrun(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert not dist.is_initialized()


def test_single_process_defaults(no_torchrun):
    distributed.init()  # no WORLD_SIZE: nothing to join
    assert not dist.is_initialized()
    assert (distributed.rank(), distributed.world_size(), distributed.is_rank0()) == (0, 1, True)
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert str(distributed.local_device()) == expected
    distributed.finalize()  # no-op


def test_rank_from_torchrun_environment(no_torchrun, monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert (distributed.rank(), distributed.world_size(), distributed.local_rank()) == (3, 4, 1)
    assert not distributed.is_rank0()


@pytest.mark.parametrize("n_items,world", [(0, 2), (7, 2), (8, 3), (2, 4), (10, 1)])
def test_shard_covers_every_item_once(n_items, world):
    items = [f"case_{i}" for i in range(n_items)]
    shards = [distributed.shard(items, rank=r, world_size=world) for r in range(world)]
    assert sorted(sum(shards, [])) == sorted(items)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert distributed.shard(items, 0, world) == items[::world]


@pytest.mark.parametrize("rank,world,name", [(2, 2, "rank"), (-1, 2, "rank"), (0, 0, "world_size")])
def test_shard_bad_arguments(rank, world, name):
    with pytest.raises(ValueError, match=name):
        distributed.shard([1, 2, 3], rank=rank, world_size=world)


def _handlers(tmp_path):
    net = nn.Linear(1, 1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    writers = [
        CheckpointSaver(str(tmp_path), {"net": net}, save_interval=1),
        AtomicCheckpointSaver(str(tmp_path), {"net": net}, save_interval=1),
        StatsHandler(),
        TensorBoardStatsHandler(log_dir=str(tmp_path / "tb")),
        GanImageGridHandler(log_dir=str(tmp_path / "tb")),
        ProgressLogger(),
    ]
    everyone = [
        ResumeFromLatest(tmp_path, {"net": net}),
        LrScheduleHandler(torch.optim.lr_scheduler.StepLR(optimizer, 1)),
    ]
    return writers, everyone


def test_rank0_handlers_drops_writers_on_other_ranks(no_torchrun, monkeypatch, tmp_path):
    writers, everyone = _handlers(tmp_path)
    handlers = writers + everyone
    assert rank0_handlers(handlers) == handlers
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert rank0_handlers(handlers) == everyone
    assert rank0_handlers(handlers, rank0_only_types=(StatsHandler,)) == [
        h for h in handlers if not isinstance(h, StatsHandler)
    ]


def test_wrap_ddp_needs_a_process_group(no_torchrun):
    with pytest.raises(RuntimeError, match="init"):
        distributed.wrap_ddp(nn.Linear(2, 2))


def test_wrap_ddp_on_one_process_group(no_torchrun, tmp_path):
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        wrapped = distributed.wrap_ddp(nn.Linear(2, 2), device="cpu", find_unused_parameters=True)
        assert isinstance(wrapped, nn.parallel.DistributedDataParallel)
        assert wrapped.device_ids is None and wrapped.find_unused_parameters
        assert (distributed.rank(), distributed.world_size()) == (0, 1)
        distributed.init()  # already initialised: no-op
    finally:
        distributed.finalize()
    assert not dist.is_initialized()


def test_gather_objects_without_a_process_group_is_this_ranks_value_alone():
    from common.distributed import gather_objects, in_process_group

    assert not in_process_group()
    rows = [{"case": "a"}]
    assert gather_objects(rows) == [rows]  # two ranks' rows: tests/bundles/test_bundle_*_dist.py under torchrun
