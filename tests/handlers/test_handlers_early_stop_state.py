"""common.handlers.EarlyStopState: the early-stop count in checkpoints, and resuming a checkpoint written without it."""

from __future__ import annotations

import logging

import pytest
import torch
from common.handlers import AtomicCheckpointSaver, EarlyStopState, ResumeFromLatest
from ignite.engine import Engine, Events
from monai.handlers import EarlyStopHandler


def _trainer(max_epochs: int, scores: list[float]) -> tuple[Engine, EarlyStopHandler]:
    """An engine whose epoch-end "validation" score is ``scores[epoch - 1]``, with a patience-1 early stop."""
    trainer = Engine(lambda engine, batch: None)
    trainer.state.max_epochs = max_epochs
    stop = EarlyStopHandler(1, lambda e: scores[e.state.epoch - 1], trainer=trainer, epoch_level=True)
    stop.attach(trainer)
    return trainer, stop


def test_a_resumed_run_keeps_its_count_and_an_old_checkpoint_starts_afresh(tmp_path, caplog):
    scores = [1.0, 2.0, 1.5, 1.4]  # best at epoch 2; epoch 3 does not improve: the uninterrupted run stops there
    first, stop = _trainer(2, scores)
    saver = AtomicCheckpointSaver(
        str(tmp_path / "new"), {"early_stop": EarlyStopState(stop)}, save_interval=1, engine_key="trainer"
    )
    saver.attach(first)
    old = AtomicCheckpointSaver(
        str(tmp_path / "old"), {"other": torch.nn.Linear(1, 1)}, save_interval=1, engine_key="trainer"
    )
    old.attach(first)
    first.run(range(2), max_epochs=2)
    state = torch.load(tmp_path / "new" / "checkpoint_epoch=2.pt", weights_only=True)["early_stop"]
    assert state["counter"] == 0 and state["best_score"] == 2.0

    for folder, expected in (("new", [3]), ("old", [3, 4])):
        trainer, stop = _trainer(4, scores)
        load = {"early_stop": EarlyStopState(stop), **({"other": torch.nn.Linear(1, 1)} if folder == "old" else {})}
        ResumeFromLatest(tmp_path / folder, load, engine_key="trainer").attach(trainer)
        epochs: list[int] = []
        trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: epochs.append(e.state.epoch))
        with caplog.at_level(logging.WARNING):
            trainer.run(range(2))
        # with the count: epoch 3 is the first without improvement -> stop; afresh, epoch 3 sets the best
        assert epochs == expected, folder
    assert "has no 'early_stop' (written by an earlier version): it starts afresh" in caplog.text


def test_state_needs_the_handlers_trainer():
    stop = EarlyStopHandler(patience=1, score_function=lambda e: 0.0)
    with pytest.raises(RuntimeError, match="set_trainer"):
        EarlyStopState(stop).state_dict()
