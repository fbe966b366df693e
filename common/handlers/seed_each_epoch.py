"""Random streams that depend on the epoch, not on how the run got there: a resumed run draws what an uninterrupted
one draws."""

from __future__ import annotations

__all__ = ["SeedEachEpoch", "epoch_seed"]

import numpy as np
from common.distributed import rank
from ignite.engine import Engine, Events
from monai.data.utils import set_rnd
from monai.utils import set_determinism


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A 32-bit seed drawn from ``(seed, epoch, rank)`` (NumPy's ``SeedSequence``: nearby inputs give unrelated
    seeds, so epoch 2 of seed 0 shares nothing with epoch 1 of seed 1)."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(rank)]).generate_state(1)[0])


class SeedEachEpoch:
    """Ignite handler: at every ``EPOCH_STARTED``, seed every random stream from ``(seed, epoch, rank)``.

    A checkpoint holds the networks, optimizers and schedules but not the random streams; a run resumed at epoch
    ``e`` would otherwise draw from the seed set at start-up, i.e. repeat epoch 1's shuffle, crops, flips and noise.
    Seeding at the start of each epoch makes every epoch's draws a function of ``(seed, epoch, rank)`` only, so a
    run killed after epoch ``e - 1`` and resumed (``common.handlers.ResumeFromLatest``) trains epoch ``e`` on what an
    uninterrupted run trains it on. Seeded: torch, NumPy and ``random`` (``monai.utils.set_determinism``; the loader's
    shuffle and its workers' seeds are drawn from torch when the epoch's iterator is made, after this event), and the
    random transforms of the engine's dataset (``monai.data.utils.set_rnd``: with ``num_workers=0`` they draw in this
    process). Each DDP rank gets its own stream (the rank is part of the seed); every rank must attach it.

    Args:
        seed: the run's seed (a config's ``@seed``).
        enabled: ``False`` makes it a no-op.

    Examples::

        "train#handlers": [{"_target_": "common.handlers.SeedEachEpoch", "seed": "@seed"}, ...]
    """

    def __init__(self, seed: int, enabled: bool = True) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}.")
        self.seed = int(seed)
        self.enabled = bool(enabled)
        self.seeds: list[int] = []  # the seed of each epoch this run started, for logs and tests

    def attach(self, engine: Engine) -> None:
        if self.enabled and not engine.has_event_handler(self, Events.EPOCH_STARTED):
            engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        seed = epoch_seed(self.seed, engine.state.epoch, rank())
        set_determinism(seed=seed)
        loader = getattr(engine, "data_loader", None)
        dataset = getattr(loader, "dataset", None)
        if dataset is not None:
            set_rnd(dataset, seed)
        self.seeds.append(seed)
