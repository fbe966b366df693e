"""CycleGAN / CycleGANSeg trainer on the engine base ``common.engines.MultiNetworkTrainer``."""

from __future__ import annotations

__all__ = ["CycleGANTrainer"]

import functools
from collections.abc import Callable
from typing import Any

import torch
from common.engines.base import MultiNetworkTrainer, discriminator_logits, set_requires_grad
from common.engines.image_pool import ImagePool
from common.losses import SegmentorConsistencyLoss
from monai.engines.utils import IterationEvents
from monai.losses import PatchAdversarialLoss
from monai.utils import AdversarialIterationEvents


def _prepare_source_target(
    batchdata: dict[str, torch.Tensor],
    device: str | torch.device | None = None,
    non_blocking: bool = False,
    *,
    source_key: str,
    target_key: str,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Default ``prepare_batch``: ``batchdata[source_key], batchdata[target_key]`` moved to ``device``."""
    missing = [k for k in (source_key, target_key) if k not in batchdata]
    if missing:
        raise ValueError(f"batch has no key(s) {missing} (source_key/target_key); keys present: {sorted(batchdata)}.")
    return tuple(batchdata[k].to(device=device, non_blocking=non_blocking, **kwargs) for k in (source_key, target_key))


def _in_channels(network: torch.nn.Module) -> int | None:
    """Input channels of a network: its ``in_channels`` attribute, else its first convolution's (``None``: unknown)."""
    network = getattr(network, "module", network)  # DistributedDataParallel
    value = getattr(network, "in_channels", None)
    if isinstance(value, int):
        return value
    first = next((m for m in network.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)), None)
    return None if first is None else int(first.in_channels)


class CycleGANTrainer(MultiNetworkTrainer):
    """CycleGAN trainer, and CycleGANSeg when a frozen Segmentor is given.

    CycleGAN: Zhu et al., ICCV 2017 (least-squares GAN, cycle and identity L1 losses, image pools). CycleGANSeg:
    "CycleGANSeg + SwinSSegNet + U-SSL" paper, section II.A and Fig. 3: ``G_S>T`` translates DTI (source) to LGE
    (target), ``G_T>S`` LGE to DTI, one discriminator per domain, and a pretrained, frozen Segmentor ``S`` adds

    - ``Loss_TransferSeg = consistency(S(G_S>T(dti)), S(lge))`` (eq. 1) and
    - ``Loss_ReconSeg = consistency(S(G_S>T(G_T>S(lge))), S(lge))`` (eq. 2)

    on PAIRED inputs (each batch holds the DTI and LGE image of the same case), so the MI mask survives the
    translation. One iteration (the reference code's order):

    1. forward: ``fake_target = G_S>T(real_source)``, ``rec_source = G_T>S(fake_target)``,
       ``fake_source = G_T>S(real_target)``, ``rec_target = G_S>T(fake_source)``;
    2. generator step (both generators, one optimizer; the discriminators frozen with ``requires_grad=False``):
       ``loss_g = loss_gan + loss_cycle + loss_identity + loss_transfer_seg + loss_recon_seg`` where
       ``loss_gan = A(D_T(fake_target), real) + A(D_S(fake_source), real)``,
       ``loss_cycle = lambda_cycle * (|rec_source - real_source|_1 + |rec_target - real_target|_1)``,
       ``loss_identity = lambda_cycle * lambda_identity * (|G_S>T(real_target) - real_target|_1
       + |G_T>S(real_source) - real_source|_1)`` (the CycleGAN convention: the identity weight is relative to the
       cycle weight, so 0.5 means 5 with ``lambda_cycle=10``), ``A`` the adversarial loss;
    3. discriminator step (both discriminators, one optimizer) on fakes drawn from the image pools:
       ``loss_d_target = 0.5 * (A(D_T(real_target), real) + A(D_T(pool_T(fake_target)), fake))``, the same for
       the source domain, ``loss_d = loss_d_source + loss_d_target``.

    With the base's ``stack_passes`` the generator step makes three generator forwards instead of six
    (``G_S>T`` on ``[real_source, real_target]``, ``G_T>S`` on ``[fake_target, real_target, real_source]``, then
    ``G_S>T(fake_source)``), the Segmentor sees both of its inputs at once and each discriminator its real and pooled
    fake batch: the same values (instance norm is per sample), fewer and larger convolutions.

    The loss terms are reported as they enter ``loss_g`` (weights applied). A variant changes one method:
    ``_generator_loss`` builds the generator objective, ``_discriminator_loss`` one domain's D objective.

    The Segmentor is frozen here: set to ``eval()`` and ``requires_grad=False`` in ``__init__`` (and kept in eval
    mode every iteration); it must not be wrapped in DistributedDataParallel nor appear in either optimizer
    (``ValueError`` otherwise). Gradients still flow through it into the generators. It sees images in the
    generators' output range (Tanh, ``[-1, 1]``), so it must have been trained on LGE scaled the same way.
    Refusing to train CycleGANSeg without a trained Segmentor is the bundle's job
    (``common.checkpoint.require_trained_weights``: the file must record its training epochs and validation Dice).

    Distributed: the generators and discriminators may be wrapped in ``DistributedDataParallel`` (see
    ``common.distributed.wrap_ddp``); they are only ever called as modules and frozen through ``.parameters()``.
    Each rank keeps its own image pools (``ImagePool``); they are saved with the checkpoints (``checkpoint_objects``).

    Args:
        args, kwargs: ``common.engines.MultiNetworkTrainer``'s (device, max_epochs, train_data_loader, ``networks``,
            ``optimizers``, amp, train_handlers, ...), with
            ``networks = {"g_source_to_target": G_S>T (DTI -> LGE, e.g. common.nets.ResNetGenerator, Tanh output),
            "g_target_to_source": G_T>S (LGE -> DTI), "d_source": D_S (real DTI vs G_T>S(lge)), "d_target": D_T
            (real LGE vs G_S>T(dti))}`` (discriminators return logits, or a list whose last item is the logits, as
            ``monai.networks.nets.PatchDiscriminator``) and ``optimizers = {"g_optimizer": over both generators,
            "d_optimizer": over both discriminators}``.
        source_key: batch key of the source-domain image ``(B, C, H, W)``.
        target_key: batch key of the target-domain image.
        lambda_cycle: weight of the cycle-consistency L1 loss (paper/CycleGAN: 10).
        lambda_identity: identity weight relative to ``lambda_cycle`` (CycleGAN: 0.5); 0 skips the identity pass.
        pool_size: size of each image pool (CycleGAN: 50); 0 disables the pools.
        adversarial_loss: ``loss(logits, target_is_real, for_discriminator)``; default least-squares GAN,
            ``PatchAdversarialLoss(criterion="least_squares", no_activation_leastsq=True)``.
        segmentor: frozen pretrained Segmentor (logits out; a frozen network of the base); ``None`` trains plain
            CycleGAN.
        segmentor_consistency_loss: ``loss(pred_logits, reference_logits)``; default
            ``common.losses.SegmentorConsistencyLoss(activation="softmax")`` (MSE of probabilities).
        lambda_transfer_seg: weight of ``Loss_TransferSeg``.
        lambda_recon_seg: weight of ``Loss_ReconSeg``.
        prepare_batch: ``f(batchdata, device, non_blocking, **to_kwargs) -> (source, target)``; default takes
            ``source_key`` and ``target_key`` from the batch dict.

    Returns (``engine.state.output`` before decollation):
        ``loss`` (``loss_g + loss_d``, the one scalar that MONAI's single-loss handlers read, e.g. the
        ``MLFlowHandler`` that ``--tracking mlflow`` adds), ``loss_g``, ``loss_d``, ``loss_gan``, ``loss_cycle``,
        ``loss_identity``, ``loss_transfer_seg``, ``loss_recon_seg`` (0.0 without Segmentor), ``loss_d_source``,
        ``loss_d_target`` (detached scalars) and the
        detached images ``real_source``, ``fake_target``, ``rec_source``, ``real_target``, ``fake_source``,
        ``rec_target`` ``(B, C, H, W)``.

    Raises:
        ValueError: negative weights or pool size, a missing network or optimizer, a Segmentor wrapped in
            DistributedDataParallel, Segmentor parameters inside ``g_optimizer``/``d_optimizer``, or
            ``lambda_identity > 0`` with generators whose input channels differ (e.g. a 3-channel DTI source and a
            1-channel LGE target: ``G_S>T(lge)`` of the identity term cannot be computed).

    Examples::

        networks = {"g_source_to_target": g_st, "g_target_to_source": g_ts, "d_source": d_s, "d_target": d_t}
        trainer = CycleGANTrainer("cpu", 10, loader, networks, {"g_optimizer": g_opt, "d_optimizer": d_opt},
                                  source_key="dti", target_key="lge", segmentor=seg)
        trainer.run()
    """

    network_names = ("g_source_to_target", "g_target_to_source", "d_source", "d_target")
    optimizer_names = ("g_optimizer", "d_optimizer")
    uses = ("stack_passes",)

    def __init__(
        self,
        *args: Any,
        source_key: str,
        target_key: str,
        lambda_cycle: float = 10.0,
        lambda_identity: float = 0.5,
        pool_size: int = 50,
        adversarial_loss: Callable | None = None,
        segmentor: torch.nn.Module | None = None,
        segmentor_consistency_loss: Callable | None = None,
        lambda_transfer_seg: float = 1.0,
        lambda_recon_seg: float = 1.0,
        prepare_batch: Callable | None = None,
        **kwargs: Any,
    ) -> None:
        for name, value in (
            ("lambda_cycle", lambda_cycle),
            ("lambda_identity", lambda_identity),
            ("lambda_transfer_seg", lambda_transfer_seg),
            ("lambda_recon_seg", lambda_recon_seg),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}.")
        if prepare_batch is None:
            prepare_batch = functools.partial(_prepare_source_target, source_key=source_key, target_key=target_key)
        self.source_key = source_key
        self.target_key = target_key
        self.lambda_cycle = float(lambda_cycle)
        self.lambda_identity = float(lambda_identity)
        self.lambda_transfer_seg = float(lambda_transfer_seg)
        self.lambda_recon_seg = float(lambda_recon_seg)
        self.pool_source = ImagePool(pool_size)
        self.pool_target = ImagePool(pool_size)
        self.adversarial_loss = (
            PatchAdversarialLoss(criterion="least_squares", no_activation_leastsq=True)
            if adversarial_loss is None
            else adversarial_loss
        )
        self.cycle_loss = torch.nn.L1Loss()
        self.identity_loss = torch.nn.L1Loss()
        if segmentor is not None and segmentor_consistency_loss is None:
            segmentor_consistency_loss = SegmentorConsistencyLoss(activation="softmax")
        self.segmentor_consistency_loss = segmentor_consistency_loss
        event_names = [*(kwargs.pop("event_names", None) or []), AdversarialIterationEvents]
        super().__init__(
            *args,
            frozen_networks={"segmentor": segmentor},
            prepare_batch=prepare_batch,
            event_names=event_names,
            **kwargs,
        )
        if self.lambda_identity > 0:
            source = _in_channels(self.networks["g_source_to_target"])
            target = _in_channels(self.networks["g_target_to_source"])
            if source is not None and target is not None and source != target:
                raise ValueError(
                    f"lambda_identity={lambda_identity!r} needs source and target images with the same channels, "
                    f"but G_S>T takes {source} ({source_key}) and G_T>S takes {target} ({target_key}): the identity "
                    f"term G_S>T({target_key}) cannot be computed. Set `lambda_identity` to 0 (e.g. "
                    "`--lambda_identity 0`), or feed as many source channels as target channels."
                )

    @property
    def segmentor(self) -> torch.nn.Module | None:
        """The frozen Segmentor, or ``None`` for plain CycleGAN."""
        return self.frozen_networks.get("segmentor")

    def checkpoint_objects(self) -> dict[str, Any]:
        """The engine base's objects and the two image pools, so a resumed run draws from the pools it had."""
        return {
            **super().checkpoint_objects(),
            "image_pool_source": self.pool_source,
            "image_pool_target": self.pool_target,
        }

    def _discriminate(self, discriminator: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        return discriminator_logits(discriminator(images))

    def _generator_loss(
        self, real_source: torch.Tensor, real_target: torch.Tensor, out: dict[str, Any]
    ) -> dict[str, torch.Tensor | float]:
        """Generator objective of one iteration; fills the translated images into ``out`` and returns the terms.

        Args:
            real_source: ``(B, C, H, W)`` source-domain (DTI) batch.
            real_target: ``(B, C, H, W)`` target-domain (LGE) batch, paired with ``real_source`` for CycleGANSeg.
            out: the iteration output dict; receives ``fake_target``, ``rec_source``, ``fake_source``,
                ``rec_target`` (with graph).

        Returns:
            ``loss_g`` (with graph) and the terms ``loss_gan``, ``loss_cycle``, ``loss_identity``,
            ``loss_transfer_seg``, ``loss_recon_seg`` (weights applied; 0.0 for a skipped term).
        """
        g_st, g_ts = self.networks["g_source_to_target"], self.networks["g_target_to_source"]
        identity = self.lambda_identity > 0
        # three forwards instead of six with stack_passes: each generator's independent inputs as one batch
        fake_target, *identity_target = self.forward_stacked(g_st, real_source, *([real_target] if identity else []))
        rec_source, fake_source, *identity_source = self.forward_stacked(
            g_ts, fake_target, real_target, *([real_source] if identity else [])
        )
        rec_target = g_st(fake_source)
        out.update(fake_target=fake_target, rec_source=rec_source, fake_source=fake_source, rec_target=rec_target)
        self.fire_event(AdversarialIterationEvents.GENERATOR_FORWARD_COMPLETED)

        loss_gan = self.adversarial_loss(
            self._discriminate(self.networks["d_target"], fake_target), target_is_real=True, for_discriminator=False
        ) + self.adversarial_loss(
            self._discriminate(self.networks["d_source"], fake_source), target_is_real=True, for_discriminator=False
        )
        self.fire_event(AdversarialIterationEvents.GENERATOR_DISCRIMINATOR_FORWARD_COMPLETED)
        loss_cycle = self.lambda_cycle * (
            self.cycle_loss(rec_source, real_source) + self.cycle_loss(rec_target, real_target)
        )
        loss_identity: torch.Tensor | float = 0.0
        if identity:
            loss_identity = (
                self.lambda_cycle
                * self.lambda_identity
                * (
                    self.identity_loss(identity_target[0], real_target)
                    + self.identity_loss(identity_source[0], real_source)
                )
            )
        self.fire_event(AdversarialIterationEvents.RECONSTRUCTION_LOSS_COMPLETED)
        loss_transfer_seg: torch.Tensor | float = 0.0
        loss_recon_seg: torch.Tensor | float = 0.0
        if self.segmentor is not None and (self.lambda_transfer_seg > 0 or self.lambda_recon_seg > 0):
            if fake_target.shape != real_target.shape:
                raise ValueError(
                    f"CycleGANSeg needs paired {self.source_key}/{self.target_key} images of one size; got "
                    f"G_S>T({self.source_key}) {tuple(fake_target.shape)} vs {self.target_key} "
                    f"{tuple(real_target.shape)}."
                )
            with torch.no_grad():
                mask_original = self.segmentor(real_target)
            weights = {"transfer": self.lambda_transfer_seg, "recon": self.lambda_recon_seg}
            images = {"transfer": fake_target, "recon": rec_target}
            used = [term for term, weight in weights.items() if weight > 0]
            masks = dict(zip(used, self.forward_stacked(self.segmentor, *(images[term] for term in used))))
            if "transfer" in masks:
                loss_transfer_seg = weights["transfer"] * self.segmentor_consistency_loss(
                    masks["transfer"], mask_original
                )
            if "recon" in masks:
                loss_recon_seg = weights["recon"] * self.segmentor_consistency_loss(masks["recon"], mask_original)
        loss_g = loss_gan + loss_cycle + loss_identity + loss_transfer_seg + loss_recon_seg
        return {
            "loss_g": loss_g,
            "loss_gan": loss_gan,
            "loss_cycle": loss_cycle,
            "loss_identity": loss_identity,
            "loss_transfer_seg": loss_transfer_seg,
            "loss_recon_seg": loss_recon_seg,
        }

    def _discriminator_loss(
        self, discriminator: torch.nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> torch.Tensor:
        """Least-squares D objective of one domain: ``0.5 * (A(D(real), real) + A(D(fake), fake))``."""
        logits_real, logits_fake = map(discriminator_logits, self.forward_stacked(discriminator, real, fake))
        loss_real = self.adversarial_loss(logits_real, True, for_discriminator=True)
        loss_fake = self.adversarial_loss(logits_fake, False, for_discriminator=True)
        return 0.5 * (loss_real + loss_fake)

    def _iteration(self, engine: CycleGANTrainer, batchdata: dict[str, torch.Tensor]) -> dict:
        """One generator step then one discriminator step; see the class docstring for the returned keys."""
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        real_source, real_target = engine.prepare_batch(
            batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs
        )
        d_source, d_target = engine.networks["d_source"], engine.networks["d_target"]
        engine.train_mode()
        out: dict[str, Any] = {"real_source": real_source, "real_target": real_target}
        engine.state.output = out

        # generator step, discriminators frozen
        set_requires_grad((d_source, d_target), False)
        with engine.autocast():
            g_terms = engine._generator_loss(real_source, real_target, out)
        engine.fire_event(AdversarialIterationEvents.GENERATOR_LOSS_COMPLETED)
        engine.optimizer_step(
            "g_optimizer",
            g_terms["loss_g"],
            AdversarialIterationEvents.GENERATOR_BACKWARD_COMPLETED,
            AdversarialIterationEvents.GENERATOR_MODEL_COMPLETED,
        )

        # discriminator step on pooled fakes
        set_requires_grad((d_source, d_target), True)
        fake_target = engine.pool_target(out["fake_target"].detach())
        fake_source = engine.pool_source(out["fake_source"].detach())
        with engine.autocast():
            loss_d_target = engine._discriminator_loss(d_target, real_target, fake_target)
            loss_d_source = engine._discriminator_loss(d_source, real_source, fake_source)
            loss_d = loss_d_source + loss_d_target
        engine.fire_event(AdversarialIterationEvents.DISCRIMINATOR_LOSS_COMPLETED)
        engine.optimizer_step(
            "d_optimizer",
            loss_d,
            AdversarialIterationEvents.DISCRIMINATOR_BACKWARD_COMPLETED,
            AdversarialIterationEvents.DISCRIMINATOR_MODEL_COMPLETED,
        )

        terms = {**g_terms, "loss_d": loss_d, "loss_d_source": loss_d_source, "loss_d_target": loss_d_target}
        terms["loss"] = terms["loss_g"] + loss_d
        out.update(engine.detached(terms))
        out.update(engine.detached({k: out[k] for k in ("fake_target", "rec_source", "fake_source", "rec_target")}))
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
