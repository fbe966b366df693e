"""Epoch mean of every loss term as trainer metrics, so epoch-level loggers (MLflow, StatsHandler) see each term."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from common.handlers.loss_terms import loss_terms
from ignite.exceptions import NotComputableError
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced

__all__ = ["LossTermMeans"]


class LossTermMeans(Metric):
    """Mean over the epoch of every loss term of a trainer's output, one trainer metric per term.

    Multi-network trainers return one key per paper term (``loss_g``, ``loss_cycle``, ``loss_transfer_seg``, ...;
    see ``common.handlers.loss_terms``). Handlers that log ``engine.state.metrics`` at the end of each epoch,
    such as the ``MLFlowHandler`` that ``python -m monai.bundle run ... --tracking mlflow`` attaches to
    ``train#trainer`` or ``StatsHandler``, then record every term as ``<name_prefix><term>`` (``epoch_loss_cycle``)
    without the config listing them. Give it to the trainer as ``additional_metrics`` (not ``key_train_metric``:
    the value is a dict, not one number to rank checkpoints by).

    Under DDP each rank averages its own iterations; the loggers run on rank 0.

    Args:
        term_prefix: keys of the output that are loss terms (``loss_terms``'s ``prefix``), default ``"loss"``.
        name_prefix: put before each term's name in ``engine.state.metrics``; it must not be empty, so that an
            epoch mean never shares its name with the per-iteration value (e.g. ``TensorBoardStatsHandler`` tags).
        output_transform: applied to ``engine.state.output`` before the terms are picked out.
        device: ignite's metric device (the sums are Python floats).

    Raises:
        ValueError: an empty ``name_prefix``.

    Examples::

        "additional_metrics": {"loss_term_means": {"_target_": "common.handlers.LossTermMeans"}}
    """

    def __init__(
        self,
        term_prefix: str = "loss",
        name_prefix: str = "epoch_",
        output_transform: Callable[[Any], Any] = lambda output: output,
        device: str | torch.device = "cpu",
    ) -> None:
        if not name_prefix:
            raise ValueError(
                "name_prefix must not be empty: the epoch means would take the per-iteration terms' names."
            )
        self.term_prefix = term_prefix
        self.name_prefix = name_prefix
        super().__init__(output_transform=output_transform, device=device, metrics_result_mode="flatten")

    @reinit__is_reduced
    def reset(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    @reinit__is_reduced
    def update(self, output: Any) -> None:
        for name, value in loss_terms(output, prefix=self.term_prefix).items():
            self._sums[name] = self._sums.get(name, 0.0) + value
            self._counts[name] = self._counts.get(name, 0) + 1

    def iteration_completed(self, engine: Any) -> None:
        # ignite's version expects (y_pred, y); a trainer output is a dict (or a decollated list of dicts)
        self.update(self._output_transform(engine.state.output))

    def compute(self) -> dict[str, float]:
        if not self._sums:
            raise NotComputableError(f"LossTermMeans saw no output key starting with {self.term_prefix!r} this epoch.")
        return {f"{self.name_prefix}{name}": total / self._counts[name] for name, total in sorted(self._sums.items())}
