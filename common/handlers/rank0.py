"""Keep the handlers that write (checkpoints, logs, TensorBoard, images) on DDP rank 0 only."""

from __future__ import annotations

__all__ = ["rank0_handlers", "RANK0_ONLY_HANDLER_TYPES"]

from collections.abc import Sequence
from typing import Any

from common.distributed import is_rank0
from common.handlers.gan_image_grid import GanImageGridHandler
from common.handlers.progress_logger import ProgressLogger
from monai.handlers import (
    CheckpointSaver,
    ClassificationSaver,
    MetricsSaver,
    StatsHandler,
    TensorBoardImageHandler,
    TensorBoardStatsHandler,
)

#: handler types that write files or logs and so run on rank 0 only (``rank0_handlers``)
RANK0_ONLY_HANDLER_TYPES: tuple[type, ...] = (
    CheckpointSaver,  # includes common.handlers.AtomicCheckpointSaver
    StatsHandler,
    TensorBoardStatsHandler,
    TensorBoardImageHandler,
    MetricsSaver,
    ClassificationSaver,
    GanImageGridHandler,
    ProgressLogger,
)


def rank0_handlers(handlers: Sequence[Any], rank0_only_types: tuple[type, ...] = RANK0_ONLY_HANDLER_TYPES) -> list:
    """Drop the handlers that write (checkpoints, logs, TensorBoard) on ranks other than 0.

    Handlers that every rank must run (validation, LR schedulers, ``ResumeFromLatest``) are kept. This only skips
    attaching: a handler that writes when it is constructed (``TensorBoardStatsHandler`` opens its event file) is
    not built at all on other ranks, by ``"_disabled_": "$not @is_main_process"`` in the base config (the
    ``multi_gpu_*.json`` overlay sets ``is_main_process``).

    Args:
        handlers: already built handler objects.
        rank0_only_types: types kept on rank 0 only (``isinstance``), default ``RANK0_ONLY_HANDLER_TYPES``.

    Examples::

        "train#trainer#train_handlers": "$common.handlers.rank0_handlers(@train#handlers)"
    """
    if is_rank0():
        return list(handlers)
    return [handler for handler in handlers if not isinstance(handler, rank0_only_types)]
