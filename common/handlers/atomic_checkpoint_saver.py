"""``CheckpointSaver`` whose writes are atomic and which deletes old checkpoints only after a new one is safe."""

from __future__ import annotations

__all__ = ["AtomicCheckpointSaver"]

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.checkpoint import TRAINING_RECORD_KEY
from common.checkpoint import training_record as make_training_record
from common.handlers.engine_state import EngineSlot, engine_checkpoint_objects
from common.run_settings import RUN_SETTINGS_KEY, RunSettings
from ignite.engine import Engine, Events
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


class _TrainingRecord:
    """The ``training_record`` of the engine's state at save time: epoch and key metric (``common.checkpoint``)."""

    def __init__(self, key_metric_name: str | None) -> None:
        self.key_metric_name = key_metric_name
        self.engine: Engine | None = None

    def state_dict(self) -> dict:
        if self.engine is None:
            raise RuntimeError("the checkpoint handler was not attached to an engine: attach it before saving.")
        state = self.engine.state
        name = self.key_metric_name or getattr(state, "key_metric_name", None) or ""
        value = state.metrics.get(name) if name else None
        # an evaluator run by ValidationHandler carries the trainer's epoch, so this is the epochs trained
        return make_training_record(state.epoch, name, math.nan if value is None else float(value))

    def load_state_dict(self, state: Mapping) -> None:
        """Nothing to restore: a record describes the saved weights and is rewritten at every save."""


#: numbered checkpoints found on disk at the start of a run rank this far below anything the run writes itself
_ADOPTED_OFFSET = 10**15


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI ``CheckpointSaver`` (same arguments, same file names) made safe against interrupted saves.

    MONAI 1.6.1's ``CheckpointSaver`` writes with ignite's ``DiskSaver(atomic=False)`` (its comment: atomic files
    were not group-readable, which ignite 0.5 fixes by adding read permissions), and ignite's ``Checkpoint`` removes
    the oldest file *before* writing the new one. A run killed during ``torch.save`` (pre-emption, full disk, OOM
    kill) therefore leaves a truncated file under the final name, and with ``n_saved=1`` no loadable checkpoint at
    all. Here every file is written to a temporary file in the same folder and renamed (``os.replace``, atomic on
    POSIX), and old checkpoints are deleted only after the next write succeeded, so a checkpoint folder always
    holds complete files only, the newest of which ``ResumeFromLatest`` resumes from.

    Two more things make a resumed run behave like one uninterrupted run:

    - at ``Events.STARTED`` the interval checkpoints already in ``save_dir`` (left by the interrupted run, or by an
      earlier run) join the rotation, oldest first, so ``n_saved`` still bounds the folder (a new ``Checkpoint``
      would otherwise never delete them);
    - ``state_dict``/``load_state_dict`` carry the best-metric tracking of ``save_key_metric``: put this saver in the
      trainer's checkpoint and ``ResumeFromLatest`` dict, and the best model (e.g. ``model.pt``) is replaced after a
      resume only by a better one, not by the first model validated after the restart.

    Args:
        save_dict: objects to save by key; may be empty when ``engine_key`` is given.
        engine_key: if given, the engine this handler is attached to is saved under this key too (a config cannot
            reference the trainer from inside its own ``train_handlers``: that is a circular reference), and so is
            everything a ``common.engines.MultiNetworkTrainer`` lists in ``checkpoint_objects()`` (networks,
            optimizers, EMA copies, GradScaler states) under its own names.
        training_record: if ``True``, every file also holds a ``common.checkpoint.TRAINING_RECORD_KEY`` entry with
            the engine's epoch and key metric at save time (``common.checkpoint.training_record``), so a later stage
            can check that the weights were trained (``common.checkpoint.require_trained_weights``). For a best-model
            saver on the validator that is the trainer epoch and the validation metric of the saved weights. A file
            of a single object then becomes a dict (``{"model": state_dict, "training_record": {...}}``), which
            ``common.checkpoint.load_weights`` reads.
        run_settings: the settings that make this run what it is (the config's ``run_settings``: method switches,
            loss weights, seed), saved in every file under ``common.run_settings.RUN_SETTINGS_KEY`` so that
            ``ResumeFromLatest`` given the same ``run_settings`` refuses a folder written with other values.
        other args: see ``monai.handlers.CheckpointSaver``.

    Examples::

        AtomicCheckpointSaver("models/ckpt", {"trainer": trainer, "network": net, "optimizer": opt},
                              save_interval=1, n_saved=2)
    """

    def __init__(
        self,
        save_dir: str,
        save_dict: dict | None = None,
        engine_key: str | None = None,
        training_record: bool = False,
        run_settings: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not save_dict and engine_key is None:
            raise ValueError("save_dict must name at least one object to save (or give engine_key).")
        # MONAI refuses an empty save_dict; the engine fills its slot at attach
        objects = dict(save_dict) if save_dict else {engine_key: EngineSlot()}
        self.training_record = _TrainingRecord(kwargs.get("key_metric_name")) if training_record else None
        if self.training_record is not None:
            if TRAINING_RECORD_KEY in objects:
                raise ValueError(f"save_dict already has a {TRAINING_RECORD_KEY!r} entry; training_record adds it.")
            objects[TRAINING_RECORD_KEY] = self.training_record
        if run_settings is not None:
            if RUN_SETTINGS_KEY in objects:
                raise ValueError(f"save_dict already has a {RUN_SETTINGS_KEY!r} entry; run_settings adds it.")
            objects[RUN_SETTINGS_KEY] = RunSettings(run_settings)
        super().__init__(save_dir, objects, **kwargs)
        self.engine_key = engine_key
        for checkpoint in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
            if checkpoint is not None:
                checkpoint.save_handler = _AtomicDiskSaver(
                    dirname=self.save_dir, filename=getattr(checkpoint.save_handler, "filename", None)
                )

    def attach(self, engine: Engine) -> None:
        if self.training_record is not None:
            self.training_record.engine = engine
        if self.engine_key is not None:
            objects = engine_checkpoint_objects(engine, self.engine_key, self.save_dict)
            for checkpoint in (self._final_checkpoint, self._key_metric_checkpoint, self._interval_checkpoint):
                if checkpoint is not None:
                    checkpoint.to_save.update(objects)
        if self._interval_checkpoint is not None:
            engine.add_event_handler(Events.STARTED, self._adopt_existing)
        super().attach(engine)

    def _adopt_existing(self, engine: Engine) -> None:
        """Add the numbered interval checkpoints on disk that this saver does not track yet to its rotation."""
        checkpoint = self._interval_checkpoint
        if not Path(self.save_dir).is_dir():
            return
        name = next(iter(checkpoint.to_save)) if len(checkpoint.to_save) == 1 else "checkpoint"  # as ignite names
        base = f"{checkpoint.filename_prefix}_{name}" if checkpoint.filename_prefix else name
        pattern = re.compile(rf"{re.escape(base)}_{checkpoint.score_name}=(\d+)\.{re.escape(checkpoint.ext)}")
        saved = [tuple(item) for item in checkpoint.state_dict()["_saved"]]
        known = {filename for _, filename in saved}
        adopted = []
        for path in Path(self.save_dir).iterdir():
            match = pattern.fullmatch(path.name)
            if match and path.is_file() and path.name not in known:
                adopted.append((int(match.group(1)) - _ADOPTED_OFFSET, path.name))
        if adopted:
            checkpoint.load_state_dict({"_saved": sorted(adopted + saved, key=lambda item: item[0])})

    def state_dict(self) -> dict:
        """The best-metric tracking, ``{"_saved": [(score, filename), ...]}`` (empty without ``save_key_metric``)."""
        if self._key_metric_checkpoint is None:
            return {"_saved": []}
        return dict(self._key_metric_checkpoint.state_dict())
