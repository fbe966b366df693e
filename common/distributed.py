"""torchrun / DistributedDataParallel helpers used by the bundles' ``configs/multi_gpu_*.json``.

Launch a bundle on N processes with::

    torchrun --standalone --nproc_per_node=N -m monai.bundle run \\
        --config_file "['configs/train.json','configs/multi_gpu_train.json']"

``multi_gpu_train.json`` sets the base config's ``dist_init`` step to ``init()`` and its ``finalize`` to
``finalize()``, wraps the trained networks with ``wrap_ddp``, gives the data loader a ``DistributedSampler`` (or
splits file lists with ``shard``) and keeps writers on rank 0 (``is_main_process`` and
``common.handlers.rank0_handlers``). The backend is NCCL on GPUs and gloo on CPU, so the same config runs (slowly)
on a CPU-only machine. This module knows nothing of handlers (``common.handlers`` builds on it, not the reverse).
"""

from __future__ import annotations

__all__ = [
    "unwrap",
    "init",
    "finalize",
    "barrier",
    "gather_objects",
    "in_process_group",
    "rank",
    "world_size",
    "is_rank0",
    "local_rank",
    "local_device",
    "wrap_ddp",
    "shard",
]

import logging
import os
import weakref
from collections.abc import Sequence
from typing import Any, TypeVar

import ignite.distributed as idist
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

T = TypeVar("T")
logger = logging.getLogger(__name__)
#: the wrappers ``wrap_ddp`` made, so ``finalize`` can make them let go of the group
_WRAPPERS: weakref.WeakSet[DistributedDataParallel] = weakref.WeakSet()
#: what a ``DistributedDataParallel`` holds of its process group (the C++ logger holds the reducer)
_GROUP_HOLDERS = ("logger", "reducer", "process_group")


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def _launched_by_torchrun() -> bool:
    """Whether the ``env://`` rendezvous variables are set (torchrun sets them, even for one process)."""
    world = os.environ.get("WORLD_SIZE")
    return world is not None and (int(world) > 1 or "MASTER_ADDR" in os.environ)


def init(backend: str | None = None, required: bool = False) -> None:
    """Join the torchrun process group (``env://``); outside torchrun do nothing, or raise if ``required``.

    Under torchrun the group is joined for any ``WORLD_SIZE``, 1 included (``--nproc_per_node=1``), so the
    ``DistributedSampler`` and DDP of ``multi_gpu_*.json`` work there too.

    Args:
        backend: ``"nccl"``, ``"gloo"``...; ``None`` picks NCCL when CUDA is available, gloo otherwise. On CUDA the
            current device is set to ``cuda:LOCAL_RANK`` first.
        required: raise instead of returning when the process was not launched by torchrun (the training
            ``multi_gpu_*.json`` files need a process group).

    Raises:
        RuntimeError: ``required`` is true and ``WORLD_SIZE``/``MASTER_ADDR`` are not set (no torchrun).

    Examples::

        "dist_init": "$common.distributed.init(@dist_backend, required=True)"
    """
    if _initialized():
        return
    if not _launched_by_torchrun():
        if required:
            raise RuntimeError(
                "this multi-GPU config needs torchrun (WORLD_SIZE and MASTER_ADDR are not set): launch it with, e.g., "
                "`torchrun --nproc_per_node=N -m monai.bundle run --config_file \"['configs/train.json',"
                "'configs/multi_gpu_train.json']\"`, or leave out multi_gpu_*.json to run in one process."
            )
        return
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend, init_method="env://")
    idist.sync()  # ignite caches the distributed context it saw first (its savers and metrics ask it for ranks)
    logger.info(f"process group initialised: backend {backend}, rank {rank()} of {world_size()}")


def finalize() -> None:
    """Leave the process group if one is initialised (call from the config's ``finalize``).

    All ranks meet at a barrier first, so no rank tears the group down while another is still in a collective or
    writing (rank 0's last checkpoint). ``destroy_process_group`` alone leaves gloo's threads running: every DDP
    wrapper (still referenced by the workflow) keeps the group alive, and it was then destroyed only during the
    interpreter's shutdown, which now and then aborted a finished rank ("terminate called without an active
    exception": twice in about five full CI runs). So the wrappers from ``wrap_ddp`` drop their hold here and
    the group's threads end while Python is still whole; a wrapper cannot run after this. ignite's cached
    distributed context is reset too, so later workflows in the same process run serially.
    """
    if _initialized():
        dist.barrier()
        dist.destroy_process_group()
        _release_wrappers()
        idist.sync()


def _release_wrappers() -> None:
    """Make every live ``wrap_ddp`` wrapper drop its reducer, logger and group (the group's last references)."""
    for wrapper in list(_WRAPPERS):
        for name in _GROUP_HOLDERS:
            if hasattr(wrapper, name):
                delattr(wrapper, name)
    _WRAPPERS.clear()


def barrier() -> None:
    """Wait for every rank (``torch.distributed.barrier``); a no-op without a process group."""
    if _initialized():
        dist.barrier()


def in_process_group() -> bool:
    """Whether a process group is initialised (a torchrun run with a ``multi_gpu_*.json`` overlay)."""
    return _initialized()


def gather_objects(value: T) -> list[T]:
    """Every rank's ``value`` in rank order (``torch.distributed.all_gather_object``); ``[value]`` without a process
    group. Collective: every rank must call it."""
    if not _initialized() or dist.get_world_size() == 1:
        return [value]
    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def _current_rank() -> int:
    return dist.get_rank() if _initialized() else int(os.environ.get("RANK", "0"))


def _current_world_size() -> int:
    return dist.get_world_size() if _initialized() else int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """Global rank: from the process group, else ``$RANK`` (set by torchrun), else 0."""
    return _current_rank()


def world_size() -> int:
    """Number of processes: from the process group, else ``$WORLD_SIZE``, else 1."""
    return _current_world_size()


def is_rank0() -> bool:
    """Whether this is the global rank 0 (always true outside torchrun)."""
    return rank() == 0


def local_rank() -> int:
    """Rank on this node: ``$LOCAL_RANK`` (set by torchrun), else 0."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def local_device() -> torch.device:
    """``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``."""
    return torch.device(f"cuda:{local_rank()}") if torch.cuda.is_available() else torch.device("cpu")


def unwrap(network: torch.nn.Module) -> torch.nn.Module:
    """The module inside a ``DistributedDataParallel`` / ``DataParallel`` wrapper, or ``network`` itself."""
    return network.module if isinstance(network, (DistributedDataParallel, torch.nn.DataParallel)) else network


def wrap_ddp(
    module: torch.nn.Module,
    device: str | torch.device | None = None,
    find_unused_parameters: bool = False,
    channels_last: bool = False,
    **kwargs: Any,
) -> DistributedDataParallel:
    """Move ``module`` to ``device`` and wrap it in ``DistributedDataParallel``.

    Args:
        module: network to wrap (a frozen network, e.g. CycleGANSeg's Segmentor, must not be wrapped).
        device: target device; ``None`` means ``local_device()``. ``device_ids`` is passed only for CUDA.
        find_unused_parameters: passed to DDP; needed when some parameters get no gradient in an iteration.
        channels_last: convert the module to the channels-last layout first (``common.acceleration``): after
            wrapping it would break DDP's gradient averaging.
        kwargs: other ``DistributedDataParallel`` arguments.

    Raises:
        RuntimeError: if no process group is initialised (call ``init()`` under torchrun first).

    Examples::

        "network": "$common.distributed.wrap_ddp(@network_def.to(@device))"
    """
    if not _initialized():
        raise RuntimeError("wrap_ddp needs an initialised process group: run under torchrun and call init() first.")
    device = local_device() if device is None else torch.device(device)
    module = module.to(device)
    if channels_last:
        from common.acceleration import to_channels_last  # here: common.acceleration imports this module

        to_channels_last(module)
    if device.type == "cuda":
        index = torch.cuda.current_device() if device.index is None else device.index
        kwargs.setdefault("device_ids", [index])
        kwargs.setdefault("output_device", index)
    wrapper = DistributedDataParallel(module, find_unused_parameters=find_unused_parameters, **kwargs)
    _WRAPPERS.add(wrapper)
    return wrapper


def shard(items: Sequence[T], rank: int | None = None, world_size: int | None = None) -> list[T]:
    """This rank's share of ``items``: ``items[rank::world_size]`` (each item on exactly one rank).

    Use it for file lists that are not fed through a ``DistributedSampler`` (e.g. inference or evaluation); shares
    differ by at most one item.

    Args:
        items: the full, identically ordered list on every rank.
        rank: defaults to ``rank()``.
        world_size: defaults to ``world_size()``.

    Raises:
        ValueError: if ``world_size < 1`` or ``rank`` is outside ``[0, world_size)``.

    Examples::

        "data": "$common.distributed.shard(@test_files)"
    """
    rank = _current_rank() if rank is None else int(rank)
    world_size = _current_world_size() if world_size is None else int(world_size)
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}.")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}.")
    return list(items[rank::world_size])
