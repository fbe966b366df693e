"""PSCGAN's three progressive phases (Pri, Sys, Seg) and the one-generator ablation, on the engine base.

Xu et al., "Contrast agent-free synthesis and segmentation of ischemic heart disease images using progressive
sequential causal GANs", Medical Image Analysis 62, 2020 (PSCGAN), sections 5.1-5.3 and 6.3.
"""

from __future__ import annotations

__all__ = [
    "PSCGANPhaseTrainer",
    "PriTrainer",
    "SysTrainer",
    "SegTrainer",
    "JointTrainer",
    "PrepareCineBatch",
    "mask_as_image",
]

from typing import Any

import torch
import torch.nn.functional as F
from common.class_maps import class_index
from common.engines.base import MultiNetworkTrainer, set_requires_grad
from common.losses.pscgan import (
    DiscriminatorContentLoss,
    MultiClassBCE,
    PixelCountAuxLoss,
    SyntheticRegularizationLoss,
    class_fractions,
    hinge_discriminator_loss,
    hinge_generator_loss,
)
from monai.engines.utils import IterationEvents
from monai.utils import AdversarialIterationEvents


def mask_as_image(mask: torch.Tensor, num_classes: int = 4) -> torch.Tensor:
    """A label map ``(B, 1, H, W)`` or class probabilities ``(B, N, H, W)`` as an image in ``[-1, 1]`` for grids."""
    labels = class_index(mask) if mask.shape[1] > 1 else mask
    return labels.float() * (2.0 / max(num_classes - 1, 1)) - 1.0


def _one_hot(label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(B, 1, H, W)`` integer labels -> ``(B, N, H, W)`` float one-hot (the discriminator's real input)."""
    return F.one_hot(label[:, 0].long(), num_classes).permute(0, 3, 1, 2).float()


class PrepareCineBatch:
    """``prepare_batch`` of an evaluator on cine items: ``(batch[image_key], batch[label_key])`` on the device (MONAI's
    default reads ``image`` and ``label``; here the input is the cine and the target the phase's truth)."""

    def __init__(self, image_key: str = "cine", label_key: str = "label") -> None:
        self.image_key, self.label_key = image_key, label_key

    def __call__(
        self, batchdata: dict, device: str | torch.device | None = None, non_blocking: bool = False, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        for key in (self.image_key, self.label_key):
            if key not in batchdata:
                raise ValueError(f"batch has no key {key!r}; keys present: {sorted(batchdata)}.")
        move = {"device": device, "non_blocking": non_blocking, **kwargs}
        return batchdata[self.image_key].to(**move), batchdata[self.label_key].to(**move)


class PSCGANPhaseTrainer(MultiNetworkTrainer):
    """One PSCGAN phase: a generator ``g`` (cine -> output, optionally conditioned) against a discriminator ``d``.

    Every iteration makes one discriminator step with the paper's hinge loss (eq. 10, 14, 16:
    ``loss_d_adv = E relu(1 - D(real)) + E relu(1 + D(fake))``, no tanh squashing) plus the phase's discriminator
    terms; every ``d_steps_per_g_step``-th iteration (paper 6.3: 2) also makes a generator step with the phase's
    task terms plus ``loss_g_adv = -E D(G(x))`` (the discriminator frozen). Each term is its own output; ``loss_g``
    and ``loss_d`` are the weighted totals and ``loss`` is ``loss_g`` (repeated from the last generator step on the
    discriminator-only iterations).

    With ``adversarial=False`` (Table 3, "adversarial learning removed") the discriminator is never run or stepped and
    the generator steps every iteration on its task terms only.

    A phase subclass sets ``output_kind`` (``"mask"`` or ``"image"``) and writes ``condition`` (the frozen earlier
    phases' output), ``target`` (the batch's truth), ``real_for_discriminator``, ``task_terms`` and, when its
    discriminator has extra terms, ``discriminator_terms``.

    Args:
        args, kwargs: ``MultiNetworkTrainer``'s with ``networks = {"g": generator, "d": discriminator}``,
            ``optimizers = {"g_optimizer": ..., "d_optimizer": ...}`` and ``d_steps_per_g_step`` (the optional
            feature this trainer uses); Sys and Seg take the earlier phases as ``frozen_networks``.
        cine_key: batch key of the cine ``(B, 1, T, H, W)`` in ``[-1, 1]``.
        label_key: batch key of the 4-class label ``(B, 1, H, W)`` (0 other, 1 blood pool, 2 myocardium, 3 scar).
        lge_key: batch key of the real LGE image ``(B, 1, H, W)`` in ``[-1, 1]``.
        num_classes: classes of the masks (4).
        adversarial: train with the discriminator (False: the ablation without adversarial learning).
        adv_weight: weight of ``loss_g_adv`` in the generator total (the paper gives none).

    Returns (``engine.state.output``): the named terms, ``loss``, ``loss_g``, ``loss_d`` and the grid images
    ``cine_ed`` (frame 0), ``condition_image`` (the frozen phases' input to the generator), ``label_image``, ``lge``
    and the phase's prediction, all detached.

    Raises:
        ValueError: a batch without a needed key (naming it and the keys present), a negative weight, a frozen
            earlier phase missing.
    """

    network_names = ("g", "d")
    optimizer_names = ("g_optimizer", "d_optimizer")
    uses = ("d_steps_per_g_step",)
    #: the frozen earlier phases this phase conditions on
    frozen_names: tuple[str, ...] = ()
    output_kind = "mask"

    def __init__(
        self,
        *args: Any,
        cine_key: str = "cine",
        label_key: str = "label",
        lge_key: str = "lge",
        num_classes: int = 4,
        adversarial: bool = True,
        adv_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        if adv_weight < 0:
            raise ValueError(f"adv_weight must be >= 0, got {adv_weight!r}.")
        self.cine_key, self.label_key, self.lge_key = cine_key, label_key, lge_key
        self.num_classes = int(num_classes)
        self.adversarial = bool(adversarial)
        self.adv_weight = float(adv_weight)
        self.last_generator_terms: dict[str, torch.Tensor] = {}
        event_names = [*(kwargs.pop("event_names", None) or []), AdversarialIterationEvents]
        super().__init__(*args, event_names=event_names, **kwargs)
        missing = [name for name in self.frozen_names if name not in self.frozen_networks]
        if missing:
            raise ValueError(
                f"{type(self).__name__} conditions on the frozen earlier phases {list(self.frozen_names)}; missing "
                f"{missing}: train them first and pass them as frozen_networks."
            )

    # ------------------------------------------------------------------------------------------- phase hooks
    def weights(self) -> dict[str, float]:
        """Weight of each generator term in ``loss_g`` (terms absent from the dict have weight 1)."""
        return {"loss_g_adv": self.adv_weight}

    @torch.no_grad()
    def condition(self, cine: torch.Tensor) -> torch.Tensor | None:
        """The generator's condition from the frozen earlier phases (None: Pri has none)."""
        return None

    def target(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The phase's truth: the label for a mask phase, the LGE for the synthesis phase."""
        return batch[self.label_key] if self.output_kind == "mask" else batch[self.lge_key]

    def real_for_discriminator(self, target: torch.Tensor) -> torch.Tensor:
        """What the discriminator sees as real: one-hot masks (paper 6.4) or the LGE image."""
        return _one_hot(target, self.num_classes) if self.output_kind == "mask" else target

    def task_terms(
        self, fake: torch.Tensor, target: torch.Tensor, d_fake: dict | None, d_real: dict | None
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def discriminator_terms(
        self, d_real: dict, d_fake: dict, target: torch.Tensor, fake: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Extra discriminator terms besides the hinge loss (Seg: the pixel-count head); ``fake`` is detached."""
        return {}

    # ------------------------------------------------------------------------------------------- iteration
    def _needed_keys(self) -> tuple[str, ...]:
        return (self.cine_key, self.label_key if self.output_kind == "mask" else self.lge_key)

    def _generate(self, cine: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        g = self.networks["g"]
        return g(cine) if condition is None else g(cine, condition)

    def _iteration(self, engine: PSCGANPhaseTrainer, batchdata: dict[str, torch.Tensor]) -> dict:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        for key in engine._needed_keys():
            if key not in batchdata:
                raise ValueError(f"batch has no key {key!r}; keys present: {sorted(batchdata)}.")
        to = {"device": engine.state.device, "non_blocking": engine.non_blocking, **engine.to_kwargs}
        batch = {k: v.to(**to) for k, v in batchdata.items() if isinstance(v, torch.Tensor)}
        cine = batch[engine.cine_key]
        target = engine.target(batch)
        d = engine.networks["d"]
        engine.train_mode()
        out: dict[str, Any] = {}
        engine.state.output = out

        condition = engine.condition(cine)
        with engine.autocast():
            fake = engine._generate(cine, condition)
        engine.fire_event(AdversarialIterationEvents.GENERATOR_FORWARD_COMPLETED)
        real = engine.real_for_discriminator(target)

        d_terms: dict[str, torch.Tensor] = {}
        if engine.adversarial:
            set_requires_grad([d], True)
            with engine.autocast():
                d_real = d(real)
                d_fake = d(fake.detach())
                d_terms = {"loss_d_adv": hinge_discriminator_loss(d_real["logits"], d_fake["logits"])}
                d_terms.update(engine.discriminator_terms(d_real, d_fake, target, fake.detach()))
            d_terms["loss_d"] = sum(d_terms.values())
            engine.fire_event(AdversarialIterationEvents.DISCRIMINATOR_LOSS_COMPLETED)
            engine.optimizer_step(
                "d_optimizer",
                d_terms["loss_d"],
                AdversarialIterationEvents.DISCRIMINATOR_BACKWARD_COMPLETED,
                AdversarialIterationEvents.DISCRIMINATOR_MODEL_COMPLETED,
            )

        if not engine.adversarial or engine.generator_step_due():
            g_terms = engine._generator_step(fake, real, target)
            engine.last_generator_terms = dict(engine.detached(g_terms))
        terms = {**engine.last_generator_terms, **d_terms}
        terms["loss"] = terms.get("loss_g", fake.new_zeros(()))
        out.update(engine.detached(terms))
        out.update(engine.detached(engine.grid_images(batch, cine, fake, condition)))
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output

    def _generator_step(self, fake: torch.Tensor, real: torch.Tensor, target: torch.Tensor) -> dict:
        d = self.networks["d"]
        d_fake = d_real = None
        set_requires_grad([d], False)
        try:
            with self.autocast():
                if self.adversarial:
                    d_fake = d(fake)
                    with torch.no_grad():
                        d_real = d(real)
                terms = self.task_terms(fake, target, d_fake, d_real)
                if self.adversarial:
                    terms["loss_g_adv"] = hinge_generator_loss(d_fake["logits"])
            weights = self.weights()
            terms["loss_g"] = sum(weights.get(name, 1.0) * value for name, value in terms.items())
            self.fire_event(AdversarialIterationEvents.GENERATOR_LOSS_COMPLETED)
            self.optimizer_step(
                "g_optimizer",
                terms["loss_g"],
                AdversarialIterationEvents.GENERATOR_BACKWARD_COMPLETED,
                AdversarialIterationEvents.GENERATOR_MODEL_COMPLETED,
            )
        finally:
            set_requires_grad([d], True)
        return terms

    def grid_images(
        self, batch: dict[str, torch.Tensor], cine: torch.Tensor, fake: torch.Tensor, condition: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """Images for the TensorBoard grid, all ``(B, 1, H, W)`` in ``[-1, 1]``; ``condition_image`` is what the frozen
        earlier phases gave the generator (Sys: Pri's coarse mask; Seg: Sys's synthesis), when it has a condition."""
        images = {"cine_ed": cine[:, :, 0]}
        if condition is not None:
            images["condition_image"] = (
                mask_as_image(condition, self.num_classes) if condition.shape[1] > 1 else condition
            )
        if self.label_key in batch:
            images["label_image"] = mask_as_image(batch[self.label_key], self.num_classes)
        if self.lge_key in batch:
            images["lge"] = batch[self.lge_key]
        if self.output_kind == "mask":
            images["pred_image"] = mask_as_image(fake, self.num_classes)
        else:
            images["synthesis"] = fake
        return images


class PriTrainer(PSCGANPhaseTrainer):
    """Phase I (section 5.1): the coarse 4-class tissue mask from the cine; ``loss_mce`` (eqs. 8-9, multi-class
    BCE on the one-hot classes) + ``loss_g_adv`` (eq. 10)."""

    output_kind = "mask"

    def __init__(self, *args: Any, mce: MultiClassBCE | None = None, **kwargs: Any) -> None:
        self.mce = mce if mce is not None else MultiClassBCE(num_classes=kwargs.get("num_classes", 4))
        super().__init__(*args, **kwargs)

    def task_terms(self, fake, target, d_fake, d_real) -> dict[str, torch.Tensor]:
        return {"loss_mce": self.mce(fake, target)}


class SysTrainer(PSCGANPhaseTrainer):
    """Phase II (section 5.2): the LGE-equivalent image from the cine conditioned on Pri's coarse mask
    (probabilities, frozen ``pri``): ``loss_l2`` and ``loss_ogs_tv`` (the synthetic regularisation loss, eqs.
    11-13), ``loss_content`` (the discriminator-feature content loss on conv layers 2-4, eq. 15, only with the
    discriminator) and ``loss_g_adv`` (eq. 14). ``synthetic_regularization=False`` is Table 5's "synthetic
    regularization loss removed": the L2 fidelity stays (without it nothing but the discriminator features ties the
    image to its LGE) and the OGS-TV term goes.
    """

    output_kind = "image"
    frozen_names = ("pri",)

    def __init__(
        self,
        *args: Any,
        synthetic_loss: SyntheticRegularizationLoss | None = None,
        content_loss: DiscriminatorContentLoss | None = None,
        synthetic_regularization: bool = True,
        content_weight: float = 1.0,
        **kwargs: Any,
    ) -> None:
        if content_weight < 0:
            raise ValueError(f"content_weight must be >= 0, got {content_weight!r}.")
        self.synthetic_loss = synthetic_loss if synthetic_loss is not None else SyntheticRegularizationLoss()
        self.content_loss = content_loss if content_loss is not None else DiscriminatorContentLoss()
        self.synthetic_regularization = bool(synthetic_regularization)
        self.content_weight = float(content_weight)
        super().__init__(*args, **kwargs)

    def weights(self) -> dict[str, float]:
        # the synthetic loss's terms come unweighted (for logging): its nu weighs OGS-TV here (eq. 11's nu)
        return {**super().weights(), "loss_content": self.content_weight, "loss_ogs_tv": self.synthetic_loss.nu}

    @torch.no_grad()
    def condition(self, cine: torch.Tensor) -> torch.Tensor:
        return self.frozen_networks["pri"](cine)

    def task_terms(self, fake, target, d_fake, d_real) -> dict[str, torch.Tensor]:
        terms = self.synthetic_loss.terms(fake, target)
        out = {"loss_l2": terms["loss_l2"]}
        if self.synthetic_regularization:
            out["loss_ogs_tv"] = terms["loss_ogs_tv"]
        if d_fake is not None:
            out["loss_content"] = self.content_loss(d_real["features"], d_fake["features"])
        return out


#: what the Seg discriminator's pixel-count head is fitted on (see :class:`SegTrainer`)
AUX_HEAD_INPUTS = ("real_and_generated", "real")


class SegTrainer(PSCGANPhaseTrainer):
    """Phase III (section 5.3): the final 4-class segmentation from the cine conditioned on Sys's synthesis (frozen
    ``pri`` and ``sys``): ``loss_mce`` + ``loss_g_adv`` (eq. 16) + ``loss_aux`` (eq. 17: the L1 between the
    discriminator's pixel-count head on the real mask and on the generated one). The discriminator learns its head
    self-supervised, each input's own class fractions as the target: ``loss_d_aux`` on the real masks and, with
    ``aux_head_inputs="real_and_generated"`` (default), ``loss_d_aux_generated`` on the generated ones (their soft
    fractions). The paper has the head "regress the size of the 4 categories" of its input; trained on real masks
    only (``"real"``, the earlier reading) the head is never fitted on a generated mask, so eq. 17 hands the generator
    the gradient of a function that is arbitrary where the generator is: the quick Seg phase then loses the
    myocardium (Dice 0) in all 3 benchmark seeds (the bundle's docs). ``aux_weight=0`` is Table 5's "segmentation
    auxiliary loss removed" (the discriminator still has the head, trained the same way).
    """

    output_kind = "mask"
    frozen_names = ("pri", "sys")

    def __init__(
        self,
        *args: Any,
        mce: MultiClassBCE | None = None,
        aux_loss: PixelCountAuxLoss | None = None,
        aux_weight: float = 1.0,
        aux_head_inputs: str = "real_and_generated",
        **kwargs: Any,
    ) -> None:
        if aux_weight < 0:
            raise ValueError(f"aux_weight must be >= 0, got {aux_weight!r}.")
        if aux_head_inputs not in AUX_HEAD_INPUTS:
            raise ValueError(f"aux_head_inputs must be one of {AUX_HEAD_INPUTS}, got {aux_head_inputs!r}.")
        self.mce = mce if mce is not None else MultiClassBCE(num_classes=kwargs.get("num_classes", 4))
        self.aux_loss = aux_loss if aux_loss is not None else PixelCountAuxLoss()
        self.aux_weight = float(aux_weight)
        self.aux_head_inputs = aux_head_inputs
        super().__init__(*args, **kwargs)

    def weights(self) -> dict[str, float]:
        return {**super().weights(), "loss_aux": self.aux_weight}

    @torch.no_grad()
    def condition(self, cine: torch.Tensor) -> torch.Tensor:
        pri, sys = self.frozen_networks["pri"], self.frozen_networks["sys"]
        return sys(cine, pri(cine))

    def task_terms(self, fake, target, d_fake, d_real) -> dict[str, torch.Tensor]:
        terms = {"loss_mce": self.mce(fake, target)}
        if d_fake is not None and self.aux_weight > 0:
            terms["loss_aux"] = self.aux_loss.generator_terms(d_fake["counts"], d_real["counts"])
        return terms

    def discriminator_terms(
        self, d_real: dict, d_fake: dict, target: torch.Tensor, fake: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        fractions = class_fractions(target, self.num_classes)
        terms = {"loss_d_aux": self.aux_loss.discriminator_terms(d_real["counts"], fractions)}
        if self.aux_head_inputs == "real_and_generated":
            generated = class_fractions(fake, self.num_classes)  # the soft mask's own sizes
            terms["loss_d_aux_generated"] = self.aux_loss.discriminator_terms(d_fake["counts"], generated)
        return terms


class JointTrainer(PSCGANPhaseTrainer):
    """Table 3's "progressive training removed": one generator with parallel outputs, the 4 mask probabilities and
    the LGE-equivalent image (``(B, 5, H, W)``: channels 0-3 softmax, 4 tanh), against one discriminator on the
    5-channel (one-hot mask, image) pair; ``loss_mce`` + ``loss_l2`` + ``loss_ogs_tv`` + ``loss_g_adv``."""

    output_kind = "joint"

    def __init__(
        self,
        *args: Any,
        mce: MultiClassBCE | None = None,
        synthetic_loss: SyntheticRegularizationLoss | None = None,
        **kwargs: Any,
    ) -> None:
        self.mce = mce if mce is not None else MultiClassBCE(num_classes=kwargs.get("num_classes", 4))
        self.synthetic_loss = synthetic_loss if synthetic_loss is not None else SyntheticRegularizationLoss()
        super().__init__(*args, **kwargs)

    def _needed_keys(self) -> tuple[str, ...]:
        return (self.cine_key, self.label_key, self.lge_key)

    def weights(self) -> dict[str, float]:
        return {**super().weights(), "loss_ogs_tv": self.synthetic_loss.nu}

    def target(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([batch[self.label_key].float(), batch[self.lge_key]], 1)

    def real_for_discriminator(self, target: torch.Tensor) -> torch.Tensor:
        return torch.cat([_one_hot(target[:, :1], self.num_classes), target[:, 1:]], 1)

    def task_terms(self, fake, target, d_fake, d_real) -> dict[str, torch.Tensor]:
        n = self.num_classes
        terms = self.synthetic_loss.terms(fake[:, n:], target[:, 1:])
        return {
            "loss_mce": self.mce(fake[:, :n], target[:, :1]),
            "loss_l2": terms["loss_l2"],
            "loss_ogs_tv": terms["loss_ogs_tv"],
        }

    def grid_images(self, batch, cine, fake, condition) -> dict[str, torch.Tensor]:
        n = self.num_classes
        images = super().grid_images(batch, cine, fake[:, :n], condition)
        images.pop("synthesis", None)
        return {**images, "pred_image": mask_as_image(fake[:, :n], n), "synthesis": fake[:, n:]}
