"""LinearDecayLR: CycleGAN's constant-then-linear learning-rate policy, a function of the epoch only."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from common.handlers import LinearDecayLR
from ignite.engine import Engine


def _optimizers():
    parameter = torch.nn.Parameter(torch.zeros(1))
    return [torch.optim.Adam([parameter], lr=1.0), torch.optim.SGD([parameter], lr=1.0)]


def test_follows_cyclegan_and_depends_on_the_epoch_only():
    optimizers = _optimizers()
    policy = LinearDecayLR(optimizers, lr=0.3, epochs=4, decay_epochs=2)
    assert [policy.factor(e) for e in range(4)] == pytest.approx([1.0, 1.0, 2 / 3, 1 / 3])
    for epoch in (4, 1, 3):  # any order, e.g. a resumed run: only engine.state.epoch matters
        policy(SimpleNamespace(state=SimpleNamespace(epoch=epoch)))
        assert [o.param_groups[0]["lr"] for o in optimizers] == pytest.approx([0.3 * policy.factor(epoch - 1)] * 2)
    constant = LinearDecayLR(optimizers, lr=0.1, epochs=3, decay_epochs=0)
    assert [constant.factor(e) for e in range(3)] == [1.0, 1.0, 1.0]


def test_attached_to_an_engine_sets_the_rate_at_each_epoch_start():
    optimizers = _optimizers()
    seen = []
    engine = Engine(lambda e, b: seen.append(optimizers[0].param_groups[0]["lr"]))
    LinearDecayLR(optimizers, lr=0.2, epochs=3, decay_epochs=3).attach(engine)
    engine.run([0], max_epochs=3)
    assert seen == pytest.approx([0.2 * 3 / 4, 0.2 * 2 / 4, 0.2 * 1 / 4])  # the last epoch at lr / (decay + 1)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"lr": 0.1, "epochs": 3, "decay_epochs": 4}, "decay_epochs"),
        ({"lr": 0.1, "epochs": 3, "decay_epochs": 1.5}, "decay_epochs"),
        ({"lr": 0.0, "epochs": 3}, "lr"),
        ({"lr": 0.1, "epochs": 0}, "epochs"),
    ],
)
def test_bad_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        LinearDecayLR(_optimizers(), **kwargs)
