"""``CheckpointSaver`` whose writes are atomic and which deletes old checkpoints only after a new one is safe."""

from __future__ import annotations

__all__ = ["AtomicCheckpointSaver"]

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ignite.engine import Engine
from ignite.handlers import DiskSaver
from monai.handlers import CheckpointSaver


class _AtomicDiskSaver(DiskSaver):
    """``DiskSaver(atomic=True)`` with MONAI's fixed-filename option and removals deferred until the next save."""

    def __init__(self, dirname: str | Path, filename: str | None = None) -> None:
        super().__init__(dirname=dirname, atomic=True, require_empty=False)
        self.filename = filename
        self.pending_removals: list[str] = []

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        filename = self.filename or filename
        super().__call__(checkpoint=checkpoint, filename=filename, metadata=metadata)
        pending, self.pending_removals = self.pending_removals, []
        for old in pending:
            path = self.dirname / old
            if old != filename and path.exists():
                super().remove(old)

    def remove(self, filename: str) -> None:
        self.pending_removals.append(self.filename or filename)


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI ``CheckpointSaver`` (same arguments, same file names) made safe against interrupted saves.

    MONAI 1.6.1's ``CheckpointSaver`` writes with ignite's ``DiskSaver(atomic=False)`` (its comment: atomic files
    were not group-readable, which ignite 0.5 fixes by adding read permissions), and ignite's ``Checkpoint`` removes
    the oldest file *before* writing the new one. A run killed during ``torch.save`` (pre-emption, full disk, OOM
    kill) therefore leaves a truncated file under the final name, and with ``n_saved=1`` no loadable checkpoint at
    all. Here every file is written to a temporary file in the same folder and renamed (``os.replace``, atomic on
    POSIX), and old checkpoints are deleted only after the next write succeeded, so a checkpoint folder always
    holds complete files only, the newest of which ``ResumeFromLatest`` resumes from.

    Args:
        engine_key: if given, the engine this handler is attached to is saved under this key too (a config cannot
            reference the trainer from inside its own ``train_handlers``: that is a circular reference).
        other args: see ``monai.handlers.CheckpointSaver``.

    Examples::

        AtomicCheckpointSaver("models/ckpt", {"trainer": trainer, "network": net, "optimizer": opt},
                              save_interval=1, n_saved=2)
    """

    def __init__(self, save_dir: str, save_dict: dict, engine_key: str | None = None, **kwargs: Any) -> None:
        super().__init__(save_dir, save_dict, **kwargs)
        self.engine_key = engine_key
        for checkpoint in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if checkpoint is not None:
                checkpoint.save_handler = _AtomicDiskSaver(
                    dirname=self.save_dir, filename=getattr(checkpoint.save_handler, "filename", None)
                )

    def attach(self, engine: Engine) -> None:
        if self.engine_key is not None:
            for checkpoint in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
                if checkpoint is not None:
                    checkpoint.to_save[self.engine_key] = engine
        super().attach(engine)
