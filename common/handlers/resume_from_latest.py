"""Resume a run from the newest checkpoint of its checkpoint folder."""

from __future__ import annotations

__all__ = ["ResumeFromLatest"]

import copy
import logging
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from common.checkpoint import latest_checkpoint, set_aside_checkpoints
from common.flags import as_flag
from common.handlers.engine_state import engine_checkpoint_objects
from common.run_settings import RUN_SETTINGS_KEY, RunSettings
from common.typing import PathLike
from ignite.engine import Events
from ignite.handlers import Checkpoint

if TYPE_CHECKING:
    from ignite.engine import Engine

#: attributes of torch's LR schedulers that set the schedule's horizon (OneCycleLR's total steps and the phases made
#: from them; PolynomialLR's, LinearLR's and ConstantLR's total_iters; CosineAnnealingLR's T_max): this run's config
#: decides them, not the checkpoint, so a finished run resumed with more epochs continues on the longer schedule
HORIZON_KEYS = ("total_steps", "_schedule_phases", "total_iters", "T_max")


def _horizon(scheduler: Any) -> dict[str, Any]:
    return {key: copy.deepcopy(scheduler.__dict__[key]) for key in HORIZON_KEYS if key in scheduler.__dict__}


def _lr_now(scheduler: torch.optim.lr_scheduler.LRScheduler) -> list[float]:
    """The scheduler's learning rates at its current step, from its formula (not from the optimizer's last value:
    recursive schedules such as PolynomialLR would carry the old horizon's decay over)."""
    if hasattr(scheduler, "_get_closed_form_lr"):
        return list(scheduler._get_closed_form_lr())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "use get_last_lr()": here the current step's value is wanted
        return list(scheduler.get_lr())


class ResumeFromLatest:
    """Ignite handler: at ``Events.STARTED`` load the newest checkpoint of ``ckpt_dir`` into ``load_dict``.

    The newest file is chosen by ``common.checkpoint.latest_checkpoint`` (the step number in ``CheckpointSaver``
    names) when the run starts, and loaded as MONAI's ``CheckpointLoader`` does (``torch.load(weights_only=True)``,
    ignite's ``Checkpoint.load_objects``).
    Put the trainer itself in ``load_dict`` (as in ``CheckpointSaver.save_dict``) so epoch and iteration continue:
    a run saved after epoch 2 and restarted with ``max_epochs=4`` runs epochs 3 and 4. Optimizer and LR-scheduler
    states come back the same way. Without a checkpoint the run starts from scratch and says so once (INFO). Every
    DDP rank must attach it (it is not a writer; ``common.handlers.rank0_handlers`` keeps it).

    Args:
        ckpt_dir: folder written by ``CheckpointSaver``/``AtomicCheckpointSaver``.
        load_dict: objects to restore, keyed as in the saver's ``save_dict``, e.g.
            ``{"trainer": trainer, "network": net, "optimizer": opt, "lr_scheduler": sched}``.
        map_location: ``torch.load`` map location; ``None`` loads onto the CPU (``load_state_dict`` then copies to
            each object's device), so DDP ranks do not all allocate on the saving rank's GPU.
        enabled: ``False`` starts from scratch (a config switch, e.g. ``"resume": false``): nothing is loaded, and
            the numbered checkpoints already in ``ckpt_dir`` are moved into a ``previous_<time>`` folder there
            (``common.checkpoint.set_aside_checkpoints``, rank 0), so a later resume cannot pick an earlier run's;
            the strings ``"true"``/``"false"`` (what ``monai.bundle run --resume false`` passes) are accepted.
        pattern: glob of candidate files in ``ckpt_dir``.
        strict: ``load_state_dict`` strictness.
        name: logger name; default the engine's logger.
        engine_key: if given, the engine this handler is attached to is restored under this key too (a config
            cannot reference the trainer from inside its own ``train_handlers``), with everything a
            ``common.engines.MultiNetworkTrainer`` lists in ``checkpoint_objects()``.
        run_settings: this run's settings (the config's ``run_settings``, which the train-state
            ``AtomicCheckpointSaver`` records): a checkpoint that recorded other values is refused before anything is
            loaded (``common.run_settings.RunSettings.check``), e.g. an ablation started in a half-finished run's
            folder.

    Raises:
        ValueError: if ``load_dict`` is empty, or ``enabled`` is a string other than true/false.

    Examples::

        ResumeFromLatest("models/ckpt", {"trainer": trainer, "network": net, "optimizer": opt}).attach(trainer)
    """

    def __init__(
        self,
        ckpt_dir: PathLike,
        load_dict: dict | None = None,
        map_location: str | dict | None = None,
        enabled: bool | str = True,
        pattern: str = "*.pt",
        strict: bool = True,
        name: str | None = None,
        engine_key: str | None = None,
        run_settings: Mapping[str, Any] | None = None,
    ) -> None:
        if not load_dict and engine_key is None:
            raise ValueError("load_dict must name at least one object to restore.")
        self.ckpt_dir = ckpt_dir
        self.load_dict = dict(load_dict or {})
        self.map_location = "cpu" if map_location is None else map_location
        self.enabled = as_flag(enabled, "enabled")
        self.pattern = pattern
        self.strict = strict
        self._name = name
        self.logger = logging.getLogger(name)
        self.loaded_path: str | None = None
        self.engine_key = engine_key
        self.run_settings = None if run_settings is None else RunSettings(run_settings)

    def attach(self, engine: Engine) -> None:
        if self.engine_key is not None:  # the engine itself (counters, and its networks...), see AtomicCheckpointSaver
            self.load_dict = {**self.load_dict, **engine_checkpoint_objects(engine, self.engine_key, self.load_dict)}
        if self._name is None:
            self.logger = engine.logger
        if not self.enabled:
            self.logger.info("ResumeFromLatest disabled: training starts from scratch.")
            engine.add_event_handler(Events.STARTED, self._set_aside)
            return
        engine.add_event_handler(Events.STARTED, self)

    def _set_aside(self, engine: Engine) -> None:
        """A fresh start moves the folder's earlier numbered checkpoints aside (rank 0 only), so that a resume after
        this run is killed continues this run, not an earlier one with more epochs."""
        from common.distributed import is_rank0

        if not is_rank0():
            return
        moved = set_aside_checkpoints(self.ckpt_dir, self.pattern)
        if moved is not None:
            self.logger.warning(
                f"--resume false: the earlier run's checkpoints in {self.ckpt_dir} were moved to {moved} (kept, "
                "never resumed from)."
            )

    def __call__(self, engine: Engine) -> None:
        path = latest_checkpoint(self.ckpt_dir, self.pattern)
        if path is None:
            self.logger.info(f"no checkpoint in {self.ckpt_dir}: training starts from scratch.")
            return
        self.logger.info(f"resuming from {path}")
        schedulers = {
            key: obj for key, obj in self.load_dict.items() if isinstance(obj, torch.optim.lr_scheduler.LRScheduler)
        }
        horizons = {key: _horizon(obj) for key, obj in schedulers.items()}
        epoch_length = engine.state.epoch_length  # this run's (its data loader, its process count)
        try:
            self._load(engine, path)
        except RuntimeError as error:  # load_state_dict's key or shape mismatch: another network than the config's
            raise RuntimeError(
                f"{path} does not fit this config's networks (written by another bundle version or config?): "
                f"{error}; start afresh with --resume false, or move {self.ckpt_dir} away."
            ) from error
        for key, scheduler in schedulers.items():
            self._keep_horizon(key, scheduler, horizons[key])
        self._keep_epoch_length(engine, epoch_length, path)
        self.loaded_path = path
        self.logger.info(f"resumed from {path} at epoch {engine.state.epoch}, iteration {engine.state.iteration}")
        if engine.state.epoch >= engine.state.max_epochs:
            self.logger.warning(
                f"{path} is a finished run (epoch {engine.state.epoch} of {engine.state.max_epochs}): nothing is "
                f"trained and the models beside {self.ckpt_dir} stay as they are. A run with other settings "
                "(an ablation, another pre-training) needs its own --ckpt_dir, or --resume false to start afresh; "
                "more epochs: --epochs."
            )

    def _load(self, engine: Engine, path: str) -> None:
        """``load_dict``'s states from ``path`` (as MONAI's ``CheckpointLoader``: ``weights_only``, the engine's
        ``max_epochs`` kept); an object marked ``optional_in_checkpoint`` that the file lacks (written before it was
        saved, e.g. ``EarlyStopState``) keeps its fresh state, and a warning says so."""
        checkpoint = torch.load(path, map_location=self.map_location, weights_only=True)
        if self.run_settings is not None:
            self.run_settings.check(checkpoint.get(RUN_SETTINGS_KEY) if isinstance(checkpoint, Mapping) else None, path)
        load_dict = dict(self.load_dict)
        first = next(iter(load_dict))
        if len(load_dict) == 1 and first not in checkpoint:  # a single object saved as its bare state_dict
            checkpoint = {first: checkpoint}
        absent = [
            k for k, obj in load_dict.items() if k not in checkpoint and getattr(obj, "optional_in_checkpoint", 0)
        ]
        for key in absent:
            del load_dict[key]
            self.logger.warning(f"{path} has no '{key}' (written by an earlier version): it starts afresh.")
        max_epochs = engine.state.max_epochs
        Checkpoint.load_objects(to_load=load_dict, checkpoint=checkpoint, strict=self.strict)
        if max_epochs is not None and engine.state.epoch > max_epochs:
            raise ValueError(
                f"{path} is at epoch {engine.state.epoch}, beyond this run's {max_epochs} epochs: give --epochs "
                f"{engine.state.epoch} or more to train on, or start afresh with --resume false."
            )
        engine.state.max_epochs = max_epochs

    def _keep_epoch_length(self, engine: Engine, epoch_length: int | None, path: str) -> None:
        """Keep this run's iterations per epoch when the checkpoint's differ (written with another number of DDP
        processes, batch size or data set): ignite would otherwise end every resumed epoch after the checkpoint's
        count (half epochs after a 2-process run resumed in one) or draw past this loader's end. The run continues at
        the start of the epoch after the checkpoint's last completed one."""
        saved = engine.state.epoch_length
        if epoch_length is None or saved is None or saved == epoch_length:
            return
        engine.state.epoch_length = epoch_length
        engine.state.iteration = engine.state.epoch * epoch_length
        self.logger.warning(
            f"{path} was written with {saved} iterations per epoch, this run has {epoch_length} (another number of "
            f"processes, batch size or data set): continuing after epoch {engine.state.epoch} at {epoch_length} "
            "iterations per epoch."
        )

    def _keep_horizon(self, key: str, scheduler: torch.optim.lr_scheduler.LRScheduler, configured: dict) -> None:
        """Put back this run's schedule horizon where the checkpoint's differs, and the learning rates of the
        current step on that schedule (a 1-epoch run resumed with ``--epochs 2`` trains epoch 2 as a 2-epoch run
        does, instead of stopping with OneCycleLR's "Tried to step ..." or training at PolynomialLR's final 0)."""
        restored = _horizon(scheduler)
        changed = sorted(k for k in configured if restored.get(k) != configured[k])
        if not changed:
            return
        scheduler.__dict__.update(configured)
        lrs = _lr_now(scheduler)
        for group, lr in zip(scheduler.optimizer.param_groups, lrs):
            group["lr"] = lr
        scheduler._last_lr = lrs
        shown = ", ".join(f"{k} {restored[k]} -> {configured[k]}" for k in changed if not k.startswith("_"))
        self.logger.warning(
            f"{key}: the checkpoint's schedule horizon differs from this run's ({shown}): continuing at step "
            f"{scheduler.last_epoch} of this run's schedule (learning rate {lrs[0]:.3g})."
        )
