"""The generative-prior stage of TransMRSR: a StyleSwin generator trained as a GAN on HR slices (engine base)."""

from __future__ import annotations

__all__ = ["PriorGANTrainer"]

from typing import Any

import torch
import torch.nn.functional as F
from common.distributed import unwrap
from common.engines.base import MultiNetworkTrainer, discriminator_logits, set_requires_grad
from monai.engines.utils import IterationEvents
from monai.utils import AdversarialIterationEvents


class PriorGANTrainer(MultiNetworkTrainer):
    """Unconditional GAN training of the generative prior (TransMRSR section 3.3; StyleSwin, Zhang et al. 2022, which
    trains as StyleGAN2, Karras et al. 2020): latents ``z ~ N(0, I)`` -> images, against HR slices.

    One iteration, with ``z`` of shape ``(B, style_dim)`` and ``fake = G(z)`` made once:

    1. discriminator step (``d_optimizer``): the non-saturating logistic loss
       ``loss_d_real = mean softplus(-D(real))``, ``loss_d_fake = mean softplus(D(fake.detach()))``, plus, on the
       iterations where it is due, the lazy R1 penalty ``loss_r1 = r1_every * r1_penalty(D, real)`` (the base's
       ``r1_gamma / 2 * E ||grad_x D(x)||^2``, computed in float32; every ``r1_every``-th iteration (1-based) and
       multiplied by ``r1_every``, as StyleGAN2's lazy regularisation, but in the same step as the logistic loss);
       ``loss_d`` is their sum;
    2. generator step (``g_optimizer``, ``D`` frozen): ``loss_g = mean softplus(-D(fake))`` through the same
       ``fake`` (the generator's weights have not changed since it was made, so this equals a fresh ``G(z)``);
    3. ``update_ema("g")`` when ``ema={"g": decay}`` is set (StyleSwin keeps ``g_ema`` with decay
       ``0.5 ** (batch / 10000)``, about 0.998 at batch 32; TransMRSR's ``train_prior.json`` sets 0.999);
       ``ema_warmup=True`` (TransMRSR's ``train_prior.json``) ramps the decay up as
       ``min(decay, (1 + n) / (10 + n))``, so that a short run's ``g_ema`` is not its random initialisation.

    The EMA generator (or ``g`` in eval mode without an EMA) draws ``samples`` from fixed latents under ``no_grad``
    on the first iteration and every ``sample_every``-th; in between the output repeats the previous samples, so an
    image grid (``common.handlers.GanImageGridHandler(keys=["real", "fake", "samples"])``) always finds the key.
    ``num_fixed_samples`` latents are drawn once from ``fixed_seed`` (on the CPU, then moved to the engine's
    device, so the same seed gives the same latents on any device); all of their images are ``engine.samples``,
    and the output's ``samples`` has the batch's size (the first ``B``, repeated cyclically when
    ``num_fixed_samples < B``) so that decollation keeps ``real``, ``fake`` and ``samples`` aligned per item.

    The generator is any module with an integer ``style_dim`` and ``forward(z) -> (B, C, H, W)``
    (``common.nets.StyleSwinGenerator``); the discriminator returns ``(B, 1)`` logits (or a list whose last item is
    the logits). Either may be wrapped in ``DistributedDataParallel``.

    Args:
        args, kwargs: ``common.engines.MultiNetworkTrainer``'s, with ``networks = {"g": generator, "d":
            discriminator}``, ``optimizers = {"g_optimizer": ..., "d_optimizer": ...}``, ``r1_gamma`` (StyleSwin:
            10) and ``ema`` (``{"g": decay}``), the two optional features this trainer uses.
        image_key: batch key of the real images ``(B, C, H, W)`` (the generator's range, e.g. ``[-1, 1]``).
        r1_every: the R1 penalty every ``r1_every`` discriminator steps, multiplied by ``r1_every`` (StyleGAN2:
            16; 1 = every step).
        num_fixed_samples: number of fixed latents for ``samples``.
        sample_every: iterations between two draws of ``samples``.
        fixed_seed: seed of the fixed latents.

    Returns (``engine.state.output`` before decollation):
        ``loss`` (= ``loss_g``, for the progress logger), ``loss_g``, ``loss_d``, ``loss_d_real``, ``loss_d_fake``,
        ``loss_r1`` (0 when not due) and the images ``real``, ``fake``, ``samples``, all detached.

    Raises:
        ValueError: a batch without ``image_key`` (naming it and the keys present); ``r1_every``,
            ``num_fixed_samples`` or ``sample_every`` below 1; an empty ``image_key``; a generator without an integer
            ``style_dim >= 1``; the base's errors (``d_steps_per_g_step`` is not used and refused).

    Examples::

        trainer = PriorGANTrainer("cpu", 10, loader, {"g": StyleSwinGenerator(...), "d": StyleSwinDiscriminator(...)},
                                  {"g_optimizer": g_opt, "d_optimizer": d_opt}, ema={"g": 0.999}, r1_gamma=10.0)
    """

    network_names = ("g", "d")
    optimizer_names = ("g_optimizer", "d_optimizer")
    uses = ("ema", "r1_gamma")

    def __init__(
        self,
        *args: Any,
        image_key: str = "image",
        r1_every: int = 1,
        num_fixed_samples: int = 8,
        sample_every: int = 100,
        fixed_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        if not isinstance(image_key, str) or not image_key:
            raise ValueError(f"image_key must be a non-empty string, got {image_key!r}.")
        for name, value in (
            ("r1_every", r1_every),
            ("num_fixed_samples", num_fixed_samples),
            ("sample_every", sample_every),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        self.image_key = image_key
        self.r1_every = r1_every
        self.num_fixed_samples = num_fixed_samples
        self.sample_every = sample_every
        self.fixed_seed = int(fixed_seed)
        self.samples: torch.Tensor | None = None
        event_names = [*(kwargs.pop("event_names", None) or []), AdversarialIterationEvents]
        super().__init__(*args, event_names=event_names, **kwargs)
        style_dim = getattr(unwrap(self.networks["g"]), "style_dim", None)
        if isinstance(style_dim, bool) or not isinstance(style_dim, int) or style_dim < 1:
            raise ValueError(f"g must have an integer style_dim >= 1 (StyleSwinGenerator), got {style_dim!r}.")
        self.style_dim = style_dim
        generator = torch.Generator().manual_seed(self.fixed_seed)
        fixed = torch.randn(num_fixed_samples, style_dim, generator=generator)
        self.fixed_latents = fixed.to(self.state.device if self.state.device is not None else "cpu")

    # ------------------------------------------------------------------------------------------- pieces
    def random_latents(self, like: torch.Tensor) -> torch.Tensor:
        """``z ~ N(0, I)`` ``(B, style_dim)`` with ``B`` = ``like``'s batch, on its device."""
        return torch.randn(like.shape[0], self.style_dim, device=like.device)

    def r1_due(self) -> bool:
        """True on the iterations that add the R1 penalty: every ``r1_every``-th (1-based), when ``r1_gamma > 0``."""
        return self.r1_gamma > 0 and self.state.iteration % self.r1_every == 0

    def sample_due(self) -> bool:
        """True when ``samples`` are drawn anew: the first iteration and every ``sample_every``-th."""
        return self.samples is None or self.state.iteration % self.sample_every == 0

    @torch.no_grad()
    def draw_samples(self) -> torch.Tensor:
        """Images of the fixed latents by the EMA generator (``g`` in eval mode when there is no EMA)."""
        generator = self.ema_networks.get("g", unwrap(self.networks["g"]))
        was_training = generator.training
        generator.eval()
        try:
            return generator(self.fixed_latents).detach()
        finally:
            generator.train(was_training)

    def batch_samples(self, batch_size: int) -> torch.Tensor:
        """``batch_size`` of ``samples``: the first ones, repeated cyclically when there are fewer."""
        index = torch.arange(batch_size, device=self.samples.device) % self.samples.shape[0]
        return self.samples[index]

    def _discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """``loss_d_real``, ``loss_d_fake`` (logistic, with graph) for the discriminator step."""
        d = self.networks["d"]
        return {
            "loss_d_real": F.softplus(-discriminator_logits(d(real))).mean(),
            "loss_d_fake": F.softplus(discriminator_logits(d(fake.detach()))).mean(),
        }

    # ------------------------------------------------------------------------------------------- iteration
    def _iteration(self, engine: PriorGANTrainer, batchdata: dict[str, torch.Tensor]) -> dict:
        """One discriminator step, one generator step, the EMA update; see the class docstring for the keys."""
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        if engine.image_key not in batchdata:
            raise ValueError(f"batch has no key {engine.image_key!r} (image_key); keys present: {sorted(batchdata)}.")
        to = {"device": engine.state.device, "non_blocking": engine.non_blocking, **engine.to_kwargs}
        real = batchdata[engine.image_key].to(**to)
        g, d = engine.networks["g"], engine.networks["d"]
        engine.train_mode()
        out: dict[str, Any] = {"real": real}
        engine.state.output = out

        with engine.autocast():
            fake = g(engine.random_latents(real))
        engine.fire_event(AdversarialIterationEvents.GENERATOR_FORWARD_COMPLETED)

        # discriminator step: logistic loss (+ lazy R1 on real images)
        set_requires_grad([d], True)
        with engine.autocast():
            d_terms = engine._discriminator_loss(real, fake)
        d_terms["loss_r1"] = engine.r1_every * engine.r1_penalty(d, real) if engine.r1_due() else real.new_zeros(())
        d_terms["loss_d"] = d_terms["loss_d_real"] + d_terms["loss_d_fake"] + d_terms["loss_r1"]
        engine.fire_event(AdversarialIterationEvents.DISCRIMINATOR_LOSS_COMPLETED)
        engine.optimizer_step(
            "d_optimizer",
            d_terms["loss_d"],
            AdversarialIterationEvents.DISCRIMINATOR_BACKWARD_COMPLETED,
            AdversarialIterationEvents.DISCRIMINATOR_MODEL_COMPLETED,
        )

        # generator step, discriminator frozen
        set_requires_grad([d], False)
        try:
            with engine.autocast():
                loss_g = F.softplus(-discriminator_logits(d(fake))).mean()
            engine.fire_event(AdversarialIterationEvents.GENERATOR_LOSS_COMPLETED)
            engine.optimizer_step(
                "g_optimizer",
                loss_g,
                AdversarialIterationEvents.GENERATOR_BACKWARD_COMPLETED,
                AdversarialIterationEvents.GENERATOR_MODEL_COMPLETED,
            )
        finally:
            set_requires_grad([d], True)
        if "g" in engine.ema_networks:
            engine.update_ema("g")

        if engine.sample_due():
            engine.samples = engine.draw_samples()
        terms = {"loss": loss_g, "loss_g": loss_g, **d_terms}
        out.update(engine.detached(terms))
        out.update(engine.detached({"real": real, "fake": fake, "samples": engine.batch_samples(real.shape[0])}))
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
