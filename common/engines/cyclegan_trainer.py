"""CycleGAN / CycleGANSeg trainer on ``monai.engines.Trainer``."""

from __future__ import annotations

__all__ = ["CycleGANTrainer"]

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from monai.engines import Trainer
from monai.engines.utils import IterationEvents, default_metric_cmp_fn
from monai.losses import PatchAdversarialLoss
from monai.transforms import Transform
from monai.utils import AdversarialIterationEvents
from torch.nn.parallel import DistributedDataParallel
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

from common.engines.image_pool import ImagePool

if TYPE_CHECKING:
    from ignite.engine import Engine, EventEnum
    from ignite.metrics import Metric


def _prepare_source_target(
    batchdata: dict[str, torch.Tensor],
    device: str | torch.device | None = None,
    non_blocking: bool = False,
    source_key: str = "dti",
    target_key: str = "lge",
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Default ``prepare_batch``: ``batchdata[source_key], batchdata[target_key]`` moved to ``device``."""
    missing = [k for k in (source_key, target_key) if k not in batchdata]
    if missing:
        raise ValueError(f"batch has no key(s) {missing} (source_key/target_key); keys present: {sorted(batchdata)}.")
    return tuple(batchdata[k].to(device=device, non_blocking=non_blocking, **kwargs) for k in (source_key, target_key))


def _logits(discriminator_output: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """Logits of a discriminator; ``PatchDiscriminator`` returns all feature maps with the logits last."""
    if isinstance(discriminator_output, (list, tuple)):
        return discriminator_output[-1]
    return discriminator_output


def _set_requires_grad(networks: Iterable[torch.nn.Module], flag: bool) -> None:
    for network in networks:
        for parameter in network.parameters():  # DistributedDataParallel exposes the wrapped parameters
            parameter.requires_grad_(flag)


class CycleGANTrainer(Trainer):
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

    The loss terms are reported as they enter ``loss_g`` (weights applied). A variant changes one method:
    ``_generator_loss`` builds the generator objective, ``_discriminator_loss`` one domain's D objective.

    The Segmentor is frozen here: set to ``eval()`` and ``requires_grad=False`` in ``__init__`` (and kept in eval
    mode every iteration); it must not be wrapped in DistributedDataParallel nor appear in either optimizer
    (``ValueError`` otherwise). Gradients still flow through it into the generators. It sees images in the
    generators' output range (Tanh, ``[-1, 1]``), so it must have been trained on LGE scaled the same way.
    Refusing to train CycleGANSeg without a trained Segmentor is the bundle's job
    (``common.checkpoint.require_weights``).

    Distributed: the generators and discriminators may be wrapped in ``DistributedDataParallel`` (see
    ``common.distributed.wrap_ddp``); they are only ever called as modules and frozen through ``.parameters()``.
    Each rank keeps its own image pools (``ImagePool``).

    Args:
        device: device of the iteration.
        max_epochs: number of epochs.
        train_data_loader: yields dicts holding ``source_key`` and ``target_key`` tensors ``(B, C, H, W)``.
        g_source_to_target: ``G_S>T`` (DTI -> LGE), e.g. ``common.nets.ResNetGenerator`` (Tanh output).
        g_target_to_source: ``G_T>S`` (LGE -> DTI).
        d_source: discriminator of the source domain (real DTI vs ``G_T>S(lge)``); a tensor of logits or a list
            whose last item is the logits (``monai.networks.nets.PatchDiscriminator``).
        d_target: discriminator of the target domain (real LGE vs ``G_S>T(dti)``).
        g_optimizer: one optimizer over the parameters of both generators.
        d_optimizer: one optimizer over the parameters of both discriminators.
        source_key: batch key of the source-domain image.
        target_key: batch key of the target-domain image.
        lambda_cycle: weight of the cycle-consistency L1 loss (paper/CycleGAN: 10).
        lambda_identity: identity weight relative to ``lambda_cycle`` (CycleGAN: 0.5); 0 skips the identity pass.
        pool_size: size of each image pool (CycleGAN: 50); 0 disables the pools.
        adversarial_loss: ``loss(logits, target_is_real, for_discriminator)``; default least-squares GAN,
            ``PatchAdversarialLoss(criterion="least_squares", no_activation_leastsq=True)``.
        segmentor: frozen pretrained Segmentor (logits out); ``None`` trains plain CycleGAN.
        segmentor_consistency_loss: ``loss(pred_logits, reference_logits)``; default
            ``common.losses.SegmentorConsistencyLoss(activation="softmax")`` (MSE of probabilities).
        lambda_transfer_seg: weight of ``Loss_TransferSeg``.
        lambda_recon_seg: weight of ``Loss_ReconSeg``.
        epoch_length: iterations per epoch, default ``len(train_data_loader)``.
        non_blocking: passed to ``Tensor.to``.
        prepare_batch: ``f(batchdata, device, non_blocking, **to_kwargs) -> (source, target)``; default takes
            ``source_key`` and ``target_key`` from the batch dict.
        iteration_update: replaces ``_iteration`` when given (ignite).
        postprocessing: transform applied to the output at ``MODEL_COMPLETED``.
        key_train_metric: key metric attached to the engine.
        additional_metrics: other metrics attached to the engine.
        metric_cmp_fn: compares a metric with the best so far.
        train_handlers: handlers with ``attach(engine)``.
        amp: automatic mixed precision (``torch.autocast`` on the device type; gradient scaling on CUDA).
        event_names: extra events to register.
        event_to_attr: map of events to state attributes.
        decollate: decollate the output into per-sample dicts (needed by ``from_engine([...], first=True)``).
        optim_set_to_none: ``zero_grad(set_to_none=...)``.
        to_kwargs: extra ``Tensor.to`` arguments for ``prepare_batch``.
        amp_kwargs: extra ``torch.autocast`` arguments.

    Returns (``engine.state.output`` before decollation):
        ``loss_g``, ``loss_d``, ``loss_gan``, ``loss_cycle``, ``loss_identity``, ``loss_transfer_seg``,
        ``loss_recon_seg`` (0.0 without Segmentor), ``loss_d_source``, ``loss_d_target`` (detached scalars) and the
        detached images ``real_source``, ``fake_target``, ``rec_source``, ``real_target``, ``fake_source``,
        ``rec_target`` ``(B, C, H, W)``.

    Raises:
        ValueError: negative weights or pool size, a Segmentor wrapped in DistributedDataParallel, or Segmentor
            parameters inside ``g_optimizer``/``d_optimizer``.

    Examples::

        trainer = CycleGANTrainer("cpu", 10, loader, g_st, g_ts, d_s, d_t, g_opt, d_opt, segmentor=seg)
        trainer.run()
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        g_source_to_target: torch.nn.Module,
        g_target_to_source: torch.nn.Module,
        d_source: torch.nn.Module,
        d_target: torch.nn.Module,
        g_optimizer: Optimizer,
        d_optimizer: Optimizer,
        source_key: str = "dti",
        target_key: str = "lge",
        lambda_cycle: float = 10.0,
        lambda_identity: float = 0.5,
        pool_size: int = 50,
        adversarial_loss: Callable | None = None,
        segmentor: torch.nn.Module | None = None,
        segmentor_consistency_loss: Callable | None = None,
        lambda_transfer_seg: float = 1.0,
        lambda_recon_seg: float = 1.0,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        prepare_batch: Callable | None = None,
        iteration_update: Callable[[Engine, Any], Any] | None = None,
        postprocessing: Transform | None = None,
        key_train_metric: dict[str, Metric] | None = None,
        additional_metrics: dict[str, Metric] | None = None,
        metric_cmp_fn: Callable = default_metric_cmp_fn,
        train_handlers: Sequence | None = None,
        amp: bool = False,
        event_names: list[str | EventEnum | type[EventEnum]] | None = None,
        event_to_attr: dict | None = None,
        decollate: bool = True,
        optim_set_to_none: bool = False,
        to_kwargs: dict | None = None,
        amp_kwargs: dict | None = None,
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

            def prepare_batch(batchdata, device=None, non_blocking=False, **kwargs):
                return _prepare_source_target(batchdata, device, non_blocking, source_key, target_key, **kwargs)

        super().__init__(
            device=device,
            max_epochs=max_epochs,
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            prepare_batch=prepare_batch,
            iteration_update=iteration_update,
            postprocessing=postprocessing,
            key_metric=key_train_metric,
            additional_metrics=additional_metrics,
            metric_cmp_fn=metric_cmp_fn,
            handlers=None,  # attached at the end, once every attribute exists
            amp=amp,
            event_names=event_names,
            event_to_attr=event_to_attr,
            decollate=decollate,
            to_kwargs=to_kwargs,
            amp_kwargs=amp_kwargs,
        )
        self.register_events(*AdversarialIterationEvents)
        self.g_source_to_target = g_source_to_target
        self.g_target_to_source = g_target_to_source
        self.d_source = d_source
        self.d_target = d_target
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
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
        self.optim_set_to_none = optim_set_to_none
        self.segmentor = self._freeze_segmentor(segmentor, (g_optimizer, d_optimizer))
        if segmentor is not None and segmentor_consistency_loss is None:
            from common.losses import SegmentorConsistencyLoss

            segmentor_consistency_loss = SegmentorConsistencyLoss(activation="softmax")
        self.segmentor_consistency_loss = segmentor_consistency_loss
        self.device_type = self.state.device.type if self.state.device is not None else "cpu"
        self.g_scaler = torch.amp.GradScaler("cuda", enabled=amp and self.device_type == "cuda")
        self.d_scaler = torch.amp.GradScaler("cuda", enabled=amp and self.device_type == "cuda")
        if train_handlers is not None:
            self._register_handlers(train_handlers)

    @staticmethod
    def _freeze_segmentor(segmentor: torch.nn.Module | None, optimizers: Sequence[Optimizer]) -> torch.nn.Module | None:
        """Put the Segmentor in eval mode without gradients; refuse it wrapped in DDP or inside an optimizer."""
        if segmentor is None:
            return None
        if isinstance(segmentor, (DistributedDataParallel, torch.nn.DataParallel)):
            raise ValueError("segmentor must not be wrapped in DistributedDataParallel/DataParallel: it is frozen.")
        segmentor_parameters = {id(p) for p in segmentor.parameters()}
        for name, optimizer in zip(("g_optimizer", "d_optimizer"), optimizers):
            for group in optimizer.param_groups:
                if any(id(p) in segmentor_parameters for p in group["params"]):
                    raise ValueError(f"segmentor parameters found in {name}: the Segmentor is frozen, remove them.")
        segmentor.eval()
        segmentor.requires_grad_(False)
        return segmentor

    def _discriminate(self, discriminator: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
        return _logits(discriminator(images))

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
        g_st, g_ts = self.g_source_to_target, self.g_target_to_source
        out["fake_target"] = fake_target = g_st(real_source)
        out["rec_source"] = rec_source = g_ts(fake_target)
        out["fake_source"] = fake_source = g_ts(real_target)
        out["rec_target"] = rec_target = g_st(fake_source)
        self.fire_event(AdversarialIterationEvents.GENERATOR_FORWARD_COMPLETED)

        loss_gan = self.adversarial_loss(
            self._discriminate(self.d_target, fake_target), target_is_real=True, for_discriminator=False
        ) + self.adversarial_loss(
            self._discriminate(self.d_source, fake_source), target_is_real=True, for_discriminator=False
        )
        self.fire_event(AdversarialIterationEvents.GENERATOR_DISCRIMINATOR_FORWARD_COMPLETED)
        loss_cycle = self.lambda_cycle * (
            self.cycle_loss(rec_source, real_source) + self.cycle_loss(rec_target, real_target)
        )
        loss_identity: torch.Tensor | float = 0.0
        if self.lambda_identity > 0:
            loss_identity = (
                self.lambda_cycle
                * self.lambda_identity
                * (
                    self.identity_loss(g_st(real_target), real_target)
                    + self.identity_loss(g_ts(real_source), real_source)
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
            if self.lambda_transfer_seg > 0:
                loss_transfer_seg = self.lambda_transfer_seg * self.segmentor_consistency_loss(
                    self.segmentor(fake_target), mask_original
                )
            if self.lambda_recon_seg > 0:
                loss_recon_seg = self.lambda_recon_seg * self.segmentor_consistency_loss(
                    self.segmentor(rec_target), mask_original
                )
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
        loss_real = self.adversarial_loss(self._discriminate(discriminator, real), True, for_discriminator=True)
        loss_fake = self.adversarial_loss(self._discriminate(discriminator, fake), False, for_discriminator=True)
        return 0.5 * (loss_real + loss_fake)

    def _iteration(self, engine: CycleGANTrainer, batchdata: dict[str, torch.Tensor]) -> dict:
        """One generator step then one discriminator step; see the class docstring for the returned keys."""
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        real_source, real_target = engine.prepare_batch(
            batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs
        )
        generators = (engine.g_source_to_target, engine.g_target_to_source)
        discriminators = (engine.d_source, engine.d_target)
        for network in (*generators, *discriminators):
            network.train()
        if engine.segmentor is not None:
            engine.segmentor.eval()
        out: dict[str, Any] = {"real_source": real_source, "real_target": real_target}
        engine.state.output = out

        # generator step, discriminators frozen
        _set_requires_grad(discriminators, False)
        engine.g_optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        with torch.autocast(engine.device_type, enabled=engine.amp, **engine.amp_kwargs):
            g_terms = engine._generator_loss(real_source, real_target, out)
        engine.fire_event(AdversarialIterationEvents.GENERATOR_LOSS_COMPLETED)
        engine.g_scaler.scale(g_terms["loss_g"]).backward()
        engine.fire_event(AdversarialIterationEvents.GENERATOR_BACKWARD_COMPLETED)
        engine.g_scaler.step(engine.g_optimizer)
        engine.g_scaler.update()
        engine.fire_event(AdversarialIterationEvents.GENERATOR_MODEL_COMPLETED)

        # discriminator step on pooled fakes
        _set_requires_grad(discriminators, True)
        engine.d_optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        fake_target = engine.pool_target(out["fake_target"].detach())
        fake_source = engine.pool_source(out["fake_source"].detach())
        with torch.autocast(engine.device_type, enabled=engine.amp, **engine.amp_kwargs):
            loss_d_target = engine._discriminator_loss(engine.d_target, real_target, fake_target)
            loss_d_source = engine._discriminator_loss(engine.d_source, real_source, fake_source)
            loss_d = loss_d_source + loss_d_target
        engine.fire_event(AdversarialIterationEvents.DISCRIMINATOR_LOSS_COMPLETED)
        engine.d_scaler.scale(loss_d).backward()
        engine.fire_event(AdversarialIterationEvents.DISCRIMINATOR_BACKWARD_COMPLETED)
        engine.d_scaler.step(engine.d_optimizer)
        engine.d_scaler.update()
        engine.fire_event(AdversarialIterationEvents.DISCRIMINATOR_MODEL_COMPLETED)

        terms = {**g_terms, "loss_d": loss_d, "loss_d_source": loss_d_source, "loss_d_target": loss_d_target}
        for key, value in terms.items():
            out[key] = value.detach() if isinstance(value, torch.Tensor) else value
        for key in ("fake_target", "rec_source", "fake_source", "rec_target"):
            out[key] = out[key].detach()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
