"""LossTermMeans: the epoch mean of every loss term of a trainer's output, as flat trainer metrics."""

from __future__ import annotations

import pytest
import torch
from common.handlers import LossTermMeans
from ignite.engine import Engine, Events

CASES = [
    ({}, {"epoch_loss": 2.0, "epoch_loss_cycle": 3.0}),
    ({"name_prefix": "mean_"}, {"mean_loss": 2.0, "mean_loss_cycle": 3.0}),
    ({"term_prefix": "loss_c"}, {"epoch_loss_cycle": 3.0}),
]


@pytest.mark.parametrize("kwargs, expected", CASES)
def test_epoch_means_of_every_term(kwargs, expected):
    # a decollated trainer output (list of dicts, the scalar terms repeated); images and non-scalars are left out
    def step(engine, batch):
        value = float(engine.state.iteration)  # 1, 2, 3 in the first epoch
        item = {"loss": torch.tensor(value), "loss_cycle": value + 1, "image": torch.zeros(2, 2), "case": "a"}
        return [item, dict(item)]

    engine = Engine(step)
    LossTermMeans(**kwargs).attach(engine, "loss_term_means")
    epochs = []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: epochs.append(dict(e.state.metrics)))
    engine.run([0, 1, 2], max_epochs=2)
    assert epochs[0] == pytest.approx(expected)
    assert epochs[1] == pytest.approx({key: value + 3 for key, value in expected.items()})  # reset every epoch


def test_refuses_empty_name_prefix():
    with pytest.raises(ValueError, match="name_prefix"):
        LossTermMeans(name_prefix="")
