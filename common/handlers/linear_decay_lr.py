"""CycleGAN's learning-rate policy (used by GAN trainers generally): constant, then linear decay to zero."""

from __future__ import annotations

__all__ = ["LinearDecayLR"]

from collections.abc import Sequence

from ignite.engine import Engine, Events
from torch.optim import Optimizer


class LinearDecayLR:
    """Ignite handler setting the optimizers' learning rate at the start of each epoch (CycleGAN ``lr_policy=linear``).

    Zhu et al., ICCV 2017, section 4 / reference code ``networks.get_scheduler``: the rate stays at ``lr`` for
    ``epochs - decay_epochs`` epochs and then decays linearly; in epoch index ``e`` (0-based) it is

        ``lr * (1 - max(0, e + 1 - (epochs - decay_epochs)) / (decay_epochs + 1))``,

    so the last epoch runs at ``lr / (decay_epochs + 1)``. ``decay_epochs=0`` keeps ``lr`` throughout.

    Unlike a ``LambdaLR`` whose position is saved in checkpoints, the rate is a function of ``engine.state.epoch``
    alone: a resumed run (``common.handlers.ResumeFromLatest`` restores the epoch) gets the right rate at once, also
    when it is resumed with a larger ``epochs``, and there is no scheduler state to save.

    Args:
        optimizers: the optimizers to drive (CycleGAN: the generators' and the discriminators'); every parameter
            group gets the same rate.
        lr: the initial learning rate.
        epochs: total number of epochs of the run (the trainer's ``max_epochs``).
        decay_epochs: number of final epochs over which the rate decays.

    Raises:
        ValueError: naming ``lr``, ``epochs`` or ``decay_epochs`` when out of range.

    Examples::

        LinearDecayLR([g_optimizer, d_optimizer], lr=2e-4, epochs=200, decay_epochs=100).attach(trainer)
    """

    def __init__(self, optimizers: Sequence[Optimizer], lr: float, epochs: int, decay_epochs: int = 0) -> None:
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr!r}.")
        if int(epochs) != epochs or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}.")
        if int(decay_epochs) != decay_epochs or not 0 <= decay_epochs <= epochs:
            raise ValueError(f"decay_epochs must be an integer in [0, epochs={epochs}], got {decay_epochs!r}.")
        self.optimizers = list(optimizers)
        self.lr = float(lr)
        self.epochs = int(epochs)
        self.decay_epochs = int(decay_epochs)

    def factor(self, epoch_index: int) -> float:
        """Multiplier of ``lr`` in epoch ``epoch_index`` (0-based)."""
        constant = self.epochs - self.decay_epochs
        return 1.0 - max(0, epoch_index + 1 - constant) / float(self.decay_epochs + 1)

    def attach(self, engine: Engine) -> None:
        """Set the rate at every ``EPOCH_STARTED`` of ``engine``."""
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        rate = self.lr * self.factor(engine.state.epoch - 1)
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = rate
