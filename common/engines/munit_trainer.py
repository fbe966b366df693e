"""MUNIT trainer (bSSFP -> LGE style transfer) on the engine base ``common.engines.MultiNetworkTrainer``."""

from __future__ import annotations

__all__ = ["MUNITTrainer", "LOSS_WEIGHTS", "GENERATOR_TERMS", "IMAGE_KEYS"]

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from common.distributed import unwrap
from common.engines.base import MultiNetworkTrainer, set_requires_grad
from common.engines.cyclegan_trainer import _prepare_source_target
from common.nets.munit import lsgan_discriminator_loss, lsgan_generator_loss
from monai.engines.utils import IterationEvents
from monai.utils import AdversarialIterationEvents

#: the loss weights of MUNIT (NVlabs/MUNIT configs, Huang et al. section 3.2) -> their default
LOSS_WEIGHTS = {"gan_w": 1.0, "recon_x_w": 10.0, "recon_s_w": 1.0, "recon_c_w": 1.0, "recon_x_cyc_w": 0.0}
#: the generator's loss terms, as reported (weights applied)
GENERATOR_TERMS = tuple(
    f"loss_gen_{term}_{domain}" for term in ("adv", "recon_x", "recon_s", "recon_c", "cycrecon_x") for domain in "ab"
)
#: the images of the output (detached), for TensorBoard grids
IMAGE_KEYS = ("x_a", "x_b", "x_ab", "x_ba", "x_a_recon", "x_b_recon")


class MUNITTrainer(MultiNetworkTrainer):
    """MUNIT trainer (Huang et al., "Multimodal Unsupervised Image-to-Image Translation", ECCV 2018, section 3.2),
    the translator of "Unsupervised Multi-modal Style Transfer for Cardiac MR Segmentation" (section 2.1, Fig. 2).

    Domain ``a`` is bSSFP (``source_key``), domain ``b`` LGE (``target_key``); the two batches are unpaired. Each
    domain has a generator ``gen_*`` (``common.nets.munit.MUNITGenerator``: content encoder, style encoder, AdaIN
    decoder) and a multi-scale discriminator ``dis_*`` (``common.nets.munit.MultiScaleDiscriminator``). One iteration
    is the reference's ``dis_update`` then ``gen_update``, each with its own style codes drawn from ``N(0, I)``
    ``(B, style_dim, 1, 1)``:

    1. discriminator step (optimizer ``d``, both discriminators): ``x_ba = G_a(E^c_b(x_b), s_a)``,
       ``x_ab = G_b(E^c_a(x_a), s_b)`` (no generator graph: the same values, without the reference's unused graph),
       ``loss_dis_a = gan_w * sum_k [mean(D_a,k(x_ba)^2) + mean((D_a,k(x_a) - 1)^2)]``, ``loss_dis_b`` likewise,
       ``loss_d = loss_dis_a + loss_dis_b``;
    2. generator step (optimizer ``g``, both generators; discriminators frozen): ``(c_a, s_a') = E_a(x_a)``,
       ``(c_b, s_b') = E_b(x_b)``; within-domain reconstructions ``x_a_recon = G_a(c_a, s_a')``; cross-domain
       ``x_ba = G_a(c_b, s_a)``, ``x_ab = G_b(c_a, s_b)``; re-encoded ``(c_b_recon, s_a_recon) = E_a(x_ba)``,
       ``(c_a_recon, s_b_recon) = E_b(x_ab)``; with ``|.|_1`` the mean absolute error:

       - ``loss_gen_adv_a = gan_w * sum_k mean((D_a,k(x_ba) - 1)^2)`` (LSGAN), ``loss_gen_adv_b`` on ``x_ab``;
       - ``loss_gen_recon_x_a = recon_x_w * |x_a_recon - x_a|_1``;
       - ``loss_gen_recon_s_a = recon_s_w * |s_a_recon - s_a|_1`` (the latent reconstruction that makes the style
         encoder's codes match the prior ``N(0, I)``);
       - ``loss_gen_recon_c_a = recon_c_w * |c_a_recon - c_a|_1``;
       - ``loss_gen_cycrecon_x_a = recon_x_cyc_w * |G_a(c_a_recon, s_a') - x_a|_1`` (explicit cycle, off by default:
         with ``recon_x_cyc_w = 0`` it is not computed and reported as 0.0);
       - the same for ``b``; ``loss_g`` is their sum.

    MUNIT's perceptual (VGG) loss is off in the reference configuration (``vgg_w: 0``) and is not implemented. The
    reference's optimizers (Adam, lr 1e-4, betas (0.5, 0.999), weight decay 1e-4, lr halved every 100k
    iterations) are the config's: ``g`` over both generators, ``d`` over both discriminators.

    The generators are called through ``forward`` (``gen(x, mode="encode")``, ``gen(c, s, mode="decode")``), so they
    may be wrapped in ``DistributedDataParallel`` like the discriminators. Of the base's optional features MUNIT
    uses only ``stack_passes`` (each decoder's two decodes of the generator step, and each discriminator's fake and
    real batch, as one forward; unpaired images of different sizes run one by one); ``d_steps_per_g_step``,
    ``ema`` and ``r1_gamma`` raise.

    Args:
        args, kwargs: ``common.engines.MultiNetworkTrainer``'s (device, max_epochs, train_data_loader, ``networks``,
            ``optimizers``, amp, train_handlers, ...), with ``networks = {"gen_a": bSSFP generator, "gen_b": LGE
            generator, "dis_a": bSSFP discriminator, "dis_b": LGE discriminator}`` (generators with ``style_dim``,
            ``forward(x, mode="encode")`` and ``forward(content, style, mode="decode")``; discriminators returning a
            list of logit maps, one per scale) and ``optimizers = {"g": over both generators, "d": over both
            discriminators}``.
        source_key: batch key of the domain-``a`` (bSSFP) images ``(B, 1, H, W)`` in ``[-1, 1]``.
        target_key: batch key of the domain-``b`` (LGE) images, unpaired with ``source_key``'s.
        gan_w: weight of the adversarial losses, generator and discriminator (1).
        recon_x_w: weight of the image reconstruction loss (10).
        recon_s_w: weight of the style reconstruction loss (1).
        recon_c_w: weight of the content reconstruction loss (1).
        recon_x_cyc_w: weight of the explicit cycle reconstruction loss (0: not computed).
        prepare_batch: ``f(batchdata, device, non_blocking, **to_kwargs) -> (x_a, x_b)``; default takes
            ``source_key`` and ``target_key`` from the batch dict (``ValueError`` naming a missing key).

    Returns (``engine.state.output`` before decollation):
        ``loss`` (``loss_g + loss_d``, the one scalar MONAI's single-loss handlers read), ``loss_g``, ``loss_d``,
        ``loss_dis_a``, ``loss_dis_b``, ``loss_gen_adv_a``, ``loss_gen_adv_b``, ``loss_gen_recon_x_a``,
        ``loss_gen_recon_x_b``, ``loss_gen_recon_s_a``, ``loss_gen_recon_s_b``, ``loss_gen_recon_c_a``,
        ``loss_gen_recon_c_b``, ``loss_gen_cycrecon_x_a``, ``loss_gen_cycrecon_x_b`` (detached, weights applied, so
        ``loss_g`` is the sum of the ``loss_gen_*`` terms) and the detached images of the generator step ``x_a``,
        ``x_b``, ``x_ab``, ``x_ba``, ``x_a_recon``, ``x_b_recon``.

    Raises:
        ValueError: a weight that is negative or not a finite number, empty or equal ``source_key``/``target_key``,
            a missing network or optimizer, a generator without ``style_dim``, an optional base feature.

    Examples::

        networks = {"gen_a": MUNITGenerator(), "gen_b": MUNITGenerator(), "dis_a": MultiScaleDiscriminator(),
                    "dis_b": MultiScaleDiscriminator()}
        trainer = MUNITTrainer("cpu", 10, loader, networks, {"g": g_opt, "d": d_opt}, source_key="bssfp",
                               target_key="lge")
        trainer.run()
    """

    network_names = ("gen_a", "gen_b", "dis_a", "dis_b")
    optimizer_names = ("g", "d")
    uses = ("stack_passes",)

    def __init__(
        self,
        *args: Any,
        source_key: str,
        target_key: str,
        gan_w: float = LOSS_WEIGHTS["gan_w"],
        recon_x_w: float = LOSS_WEIGHTS["recon_x_w"],
        recon_s_w: float = LOSS_WEIGHTS["recon_s_w"],
        recon_c_w: float = LOSS_WEIGHTS["recon_c_w"],
        recon_x_cyc_w: float = LOSS_WEIGHTS["recon_x_cyc_w"],
        prepare_batch: Callable | None = None,
        **kwargs: Any,
    ) -> None:
        weights = {
            "gan_w": gan_w,
            "recon_x_w": recon_x_w,
            "recon_s_w": recon_s_w,
            "recon_c_w": recon_c_w,
            "recon_x_cyc_w": recon_x_cyc_w,
        }
        for name, value in weights.items():
            weights[name] = _check_weight(name, value)
        for name, key in (("source_key", source_key), ("target_key", target_key)):
            if not isinstance(key, str) or not key:
                raise ValueError(f"{name} must be a non-empty string, got {key!r}.")
        if source_key == target_key:
            raise ValueError(f"source_key and target_key must differ (unpaired domains), both are {source_key!r}.")
        if prepare_batch is None:
            prepare_batch = functools.partial(_prepare_source_target, source_key=source_key, target_key=target_key)
        self.source_key = source_key
        self.target_key = target_key
        self.gan_w = weights["gan_w"]
        self.recon_x_w = weights["recon_x_w"]
        self.recon_s_w = weights["recon_s_w"]
        self.recon_c_w = weights["recon_c_w"]
        self.recon_x_cyc_w = weights["recon_x_cyc_w"]
        self.recon_criterion = torch.nn.L1Loss()
        event_names = [*(kwargs.pop("event_names", None) or []), AdversarialIterationEvents]
        super().__init__(*args, prepare_batch=prepare_batch, event_names=event_names, **kwargs)
        for name in ("gen_a", "gen_b"):
            style_dim = getattr(unwrap(self.networks[name]), "style_dim", None)
            if not isinstance(style_dim, int) or style_dim < 1:
                raise ValueError(f"{name} must have an integer style_dim >= 1 (MUNITGenerator), got {style_dim!r}.")

    # ------------------------------------------------------------------------------------------- pieces
    def random_style(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """Style codes ``s ~ N(0, I)`` ``(B, style_dim, 1, 1)`` for generator ``name``, ``B`` = ``like``'s batch."""
        style_dim = unwrap(self.networks[name]).style_dim
        return torch.randn(like.shape[0], style_dim, 1, 1, device=like.device, dtype=like.dtype)

    def _translate_pair(self, x_a: torch.Tensor, x_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-domain translations ``(x_ab, x_ba)`` with fresh random styles (the discriminator step's fakes)."""
        gen_a, gen_b = self.networks["gen_a"], self.networks["gen_b"]
        c_a, _ = gen_a(x_a, mode="encode")
        c_b, _ = gen_b(x_b, mode="encode")
        x_ba = gen_a(c_b, self.random_style("gen_a", c_b), mode="decode")
        x_ab = gen_b(c_a, self.random_style("gen_b", c_a), mode="decode")
        return x_ab, x_ba

    def _discriminator_loss(self, x_a: torch.Tensor, x_b: torch.Tensor) -> dict[str, torch.Tensor]:
        """The discriminator objective of one iteration: ``loss_d``, ``loss_dis_a``, ``loss_dis_b`` (with graph)."""
        with torch.no_grad():
            x_ab, x_ba = self._translate_pair(x_a, x_b)
        dis_a, dis_b = self.networks["dis_a"], self.networks["dis_b"]
        loss_dis_a = self.gan_w * lsgan_discriminator_loss(*self.forward_stacked(dis_a, x_ba, x_a))
        loss_dis_b = self.gan_w * lsgan_discriminator_loss(*self.forward_stacked(dis_b, x_ab, x_b))
        return {"loss_d": loss_dis_a + loss_dis_b, "loss_dis_a": loss_dis_a, "loss_dis_b": loss_dis_b}

    def _generator_loss(
        self, x_a: torch.Tensor, x_b: torch.Tensor, out: dict[str, Any]
    ) -> dict[str, torch.Tensor | float]:
        """The generator objective of one iteration; fills the images into ``out`` and returns the terms.

        Args:
            x_a: ``(B, 1, H, W)`` domain-``a`` (bSSFP) batch.
            x_b: ``(B', 1, H', W')`` domain-``b`` (LGE) batch, unpaired.
            out: the iteration output; receives ``x_ab``, ``x_ba``, ``x_a_recon``, ``x_b_recon`` (with graph).

        Returns:
            ``loss_g`` (with graph) and the ``loss_gen_*`` terms, weights applied (0.0 for a skipped term).
        """
        gen_a, gen_b = self.networks["gen_a"], self.networks["gen_b"]
        dis_a, dis_b = self.networks["dis_a"], self.networks["dis_b"]
        # encode
        c_a, s_a_prime = gen_a(x_a, mode="encode")
        c_b, s_b_prime = gen_b(x_b, mode="encode")
        s_a, s_b = self.random_style("gen_a", c_b), self.random_style("gen_b", c_a)
        # decode within domain and across domains (one forward per decoder with stack_passes)
        x_a_recon, x_ba = self.forward_stacked(gen_a, (c_a, s_a_prime), (c_b, s_a), mode="decode")
        x_b_recon, x_ab = self.forward_stacked(gen_b, (c_b, s_b_prime), (c_a, s_b), mode="decode")
        out.update(x_a_recon=x_a_recon, x_b_recon=x_b_recon, x_ba=x_ba, x_ab=x_ab)
        # encode the translations again
        c_b_recon, s_a_recon = gen_a(x_ba, mode="encode")
        c_a_recon, s_b_recon = gen_b(x_ab, mode="encode")
        self.fire_event(AdversarialIterationEvents.GENERATOR_FORWARD_COMPLETED)

        recon = self.recon_criterion
        terms: dict[str, torch.Tensor | float] = {
            "loss_gen_adv_a": self.gan_w * lsgan_generator_loss(dis_a(x_ba)),
            "loss_gen_adv_b": self.gan_w * lsgan_generator_loss(dis_b(x_ab)),
        }
        self.fire_event(AdversarialIterationEvents.GENERATOR_DISCRIMINATOR_FORWARD_COMPLETED)
        terms["loss_gen_recon_x_a"] = self.recon_x_w * recon(x_a_recon, x_a)
        terms["loss_gen_recon_x_b"] = self.recon_x_w * recon(x_b_recon, x_b)
        terms["loss_gen_recon_s_a"] = self.recon_s_w * recon(s_a_recon, s_a)
        terms["loss_gen_recon_s_b"] = self.recon_s_w * recon(s_b_recon, s_b)
        terms["loss_gen_recon_c_a"] = self.recon_c_w * recon(c_a_recon, c_a)
        terms["loss_gen_recon_c_b"] = self.recon_c_w * recon(c_b_recon, c_b)
        terms["loss_gen_cycrecon_x_a"] = terms["loss_gen_cycrecon_x_b"] = 0.0
        if self.recon_x_cyc_w > 0:
            x_aba = gen_a(c_a_recon, s_a_prime, mode="decode")
            x_bab = gen_b(c_b_recon, s_b_prime, mode="decode")
            terms["loss_gen_cycrecon_x_a"] = self.recon_x_cyc_w * recon(x_aba, x_a)
            terms["loss_gen_cycrecon_x_b"] = self.recon_x_cyc_w * recon(x_bab, x_b)
        self.fire_event(AdversarialIterationEvents.RECONSTRUCTION_LOSS_COMPLETED)
        return {"loss_g": sum(terms[name] for name in GENERATOR_TERMS), **terms}

    # ------------------------------------------------------------------------------------------- iteration
    def _iteration(self, engine: MUNITTrainer, batchdata: dict[str, torch.Tensor]) -> dict:
        """One discriminator step then one generator step; see the class docstring for the returned keys."""
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        x_a, x_b = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        discriminators = (engine.networks["dis_a"], engine.networks["dis_b"])
        engine.train_mode()
        out: dict[str, Any] = {"x_a": x_a, "x_b": x_b}
        engine.state.output = out

        # discriminator step (the reference's dis_update)
        set_requires_grad(discriminators, True)
        with engine.autocast():
            d_terms = engine._discriminator_loss(x_a, x_b)
        engine.fire_event(AdversarialIterationEvents.DISCRIMINATOR_LOSS_COMPLETED)
        engine.optimizer_step(
            "d",
            d_terms["loss_d"],
            AdversarialIterationEvents.DISCRIMINATOR_BACKWARD_COMPLETED,
            AdversarialIterationEvents.DISCRIMINATOR_MODEL_COMPLETED,
        )

        # generator step (gen_update), discriminators frozen
        set_requires_grad(discriminators, False)
        try:
            with engine.autocast():
                g_terms = engine._generator_loss(x_a, x_b, out)
            engine.fire_event(AdversarialIterationEvents.GENERATOR_LOSS_COMPLETED)
            engine.optimizer_step(
                "g",
                g_terms["loss_g"],
                AdversarialIterationEvents.GENERATOR_BACKWARD_COMPLETED,
                AdversarialIterationEvents.GENERATOR_MODEL_COMPLETED,
            )
        finally:
            set_requires_grad(discriminators, True)

        terms = {**g_terms, **d_terms}
        terms["loss"] = terms["loss_g"] + terms["loss_d"]
        out.update(engine.detached(terms))
        out.update(engine.detached({key: out[key] for key in IMAGE_KEYS}))
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output


def _check_weight(name: str, value: Any) -> float:
    """``value`` as a float, refused (``ValueError`` naming ``name``) unless a finite number >= 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.") from None
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return number
