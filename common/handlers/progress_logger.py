"""Training progress with an ETA: a tqdm bar on a terminal, plain log lines elsewhere."""

from __future__ import annotations

__all__ = ["ProgressLogger"]

import datetime
import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from ignite.engine import Events
from monai.handlers import from_engine

if TYPE_CHECKING:
    from ignite.engine import Engine


def _scalar(value: Any) -> float | None:
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    if isinstance(value, (int, float)):
        return float(value)
    return None


class ProgressLogger:
    """Ignite handler reporting progress and the estimated time to the end of training.

    On a terminal (``sys.stderr.isatty()``) it draws one tqdm bar per epoch with the loss and the overall ETA;
    otherwise (CI, log files, ``nohup``) it logs plain lines every ``log_every`` iterations. Both log a line at the end
    of each epoch, e.g. ``epoch 2/10 iter 30/120 loss 0.4100 eta 0:01:22``. The ETA is the mean time per iteration since
    this run started (a resumed run counts from its own start) times the iterations left.

    Args:
        log_every: iterations between log lines (plain mode).
        output_transform: ``engine.state.output -> scalar`` shown as ``loss``; ``None`` (default) means
            ``from_engine(["loss"], first=True)``; a value that is not a scalar is left out.
        use_tqdm: force the bar (``True``) or the log lines (``False``); ``None`` decides by ``isatty``.
        name: logger name; default the engine's logger.

    Raises:
        ValueError: if ``log_every < 1``.

    Examples::

        ProgressLogger(log_every=20).attach(trainer)
    """

    def __init__(
        self,
        log_every: int = 10,
        output_transform: Callable[[Any], Any] | None = None,
        use_tqdm: bool | None = None,
        name: str | None = None,
    ) -> None:
        if log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {log_every}.")
        self.log_every = int(log_every)
        self.output_transform = from_engine(["loss"], first=True) if output_transform is None else output_transform
        self.use_tqdm = use_tqdm
        self._name = name
        self.logger = logging.getLogger(name)
        self._bar: Any = None
        self._start_time = 0.0
        self._start_iteration = 0

    def attach(self, engine: Engine) -> None:
        if self._name is None:
            self.logger = engine.logger
        if self.use_tqdm is None:
            self.use_tqdm = sys.stderr.isatty()
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        if self.use_tqdm:
            engine.add_event_handler(Events.EPOCH_STARTED, self._open_bar)
            engine.add_event_handler(Events.EPOCH_COMPLETED, self._close_bar)
            engine.add_event_handler(Events.TERMINATE, self._close_bar)

    def _started(self, engine: Engine) -> None:
        self._start_time = time.perf_counter()
        self._start_iteration = engine.state.iteration  # after a resume this is not 0

    def eta_seconds(self, engine: Engine) -> float | None:
        """Seconds left at the current iteration, or ``None`` before the first iteration or without a length."""
        done = engine.state.iteration - self._start_iteration
        epoch_length = engine.state.epoch_length
        if done <= 0 or epoch_length is None:
            return None
        left = engine.state.max_epochs * epoch_length - engine.state.iteration
        return max(left, 0) * (time.perf_counter() - self._start_time) / done

    def _loss(self, engine: Engine) -> float | None:
        try:
            return _scalar(self.output_transform(engine.state.output))
        except (KeyError, TypeError, IndexError):
            return None

    def _iteration_completed(self, engine: Engine) -> None:
        epoch_length = engine.state.epoch_length
        local = engine.state.iteration if epoch_length is None else (engine.state.iteration - 1) % epoch_length + 1
        eta = self.eta_seconds(engine)
        eta_str = "?" if eta is None else str(datetime.timedelta(seconds=round(eta)))
        loss = self._loss(engine)
        if self.use_tqdm and self._bar is not None:
            postfix = {"eta": eta_str}
            if loss is not None:
                postfix["loss"] = f"{loss:.4f}"
            self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(1)
        if local == epoch_length or (not self.use_tqdm and local % self.log_every == 0):
            loss_str = "" if loss is None else f" loss {loss:.4f}"
            self.logger.info(
                f"epoch {engine.state.epoch}/{engine.state.max_epochs} iter {local}/{epoch_length or '?'}"
                f"{loss_str} eta {eta_str}"
            )

    def _open_bar(self, engine: Engine) -> None:
        from tqdm import tqdm

        self._bar = tqdm(
            total=engine.state.epoch_length,
            desc=f"epoch {engine.state.epoch}/{engine.state.max_epochs}",
            leave=False,
            dynamic_ncols=True,
        )

    def _close_bar(self, engine: Engine) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
