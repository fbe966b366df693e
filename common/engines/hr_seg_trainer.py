"""REHRSeg stage 2: HR segmentation from LR input on pseudo-HR data, with uncertainty weighting and structural KD."""

from __future__ import annotations

__all__ = ["HRSegTrainer", "ForwardAll"]

from typing import Any

import torch
from common.class_maps import class_index
from common.engines.base import MultiNetworkTrainer
from torch import nn


class ForwardAll(nn.Module):
    """``forward(x) = network.forward_all(x)``: the (LR logits, HR logits, skip-1 features) of a segmenter.

    Training needs all three outputs through ``forward`` so that ``DistributedDataParallel`` (which only hooks
    ``forward``) synchronises the gradients; the saved and scripted network keeps its single-output ``forward``.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.network.forward_all(x)


def _average_over_ranks(gradient: torch.Tensor) -> torch.Tensor:
    gradient = gradient.clone()
    torch.distributed.all_reduce(gradient)
    return gradient / torch.distributed.get_world_size()


class HRSegTrainer(MultiNetworkTrainer):
    """REHRSeg's segmenter training (Fig. 2b): LR and HR heads, uncertainty-weighted LR CE, structural KD.

    One iteration on a batch of pseudo-HR crops (the plain self-SR net's image and label; the LR input is their
    through-plane slice-profile thick slices):

    - ``loss_lr_ce``: LR cross-entropy against the LR label, weighted per voxel and per sample by ``1 - 0.99 U``
      (``common.losses.UncertaintyWeightedCE``; ``U`` the UASR model's uncertainty on the LR grid, read from the
      batch when ``use_uncertainty``); ``loss_lr_dice``: LR soft Dice (kept when the uncertainty is on, unlike the
      public code, so that the uncertainty ablation changes one thing);
    - ``loss_hr``: Dice + CE of the HR head against the pseudo-HR label;
    - ``loss_kd_structure``, ``loss_kd_cosine``: structural knowledge distillation (Fig. 4) from the frozen UASR
      model's layer-1 features on (LR image, LR label) to the segmenter's skip-1 features
      (``common.losses.StructuralKDLoss``, whose trainable projection is the network ``distiller``).

    ``loss = lambda_lr (loss_lr_ce + lambda_lr_dice loss_lr_dice) + lambda_hr loss_hr + lambda_kd loss_kd`` (each
    term its own output); ``lambda_kd = 0`` needs no teacher and no distiller.

    Args:
        args, kwargs: ``MultiNetworkTrainer``'s, with ``networks = {"segmenter": ForwardAll(net), "distiller":
            StructuralKDLoss(...)}`` (distiller only with KD, never wrapped in DDP: its gradients are averaged over the
            ranks by a hook; both in ``optimizers["optimizer"]``) and
            ``frozen_networks = {"teacher": uasr_model}`` (only with KD).
        lr_ce: ``UncertaintyWeightedCE``. lr_dice, hr_loss: ``(logits, label) -> loss`` (e.g. MONAI ``DiceLoss`` /
            ``DiceCELoss`` with ``to_onehot_y`` and ``softmax``).
        use_uncertainty: weight the LR CE by the batch's ``uncertainty_key``.
        lambda_lr, lambda_hr, lambda_kd: term weights (>= 0).
        lambda_lr_dice: the LR Dice's weight inside the LR term (>= 0; 1, as the public code; 0 leaves the
            uncertainty-weighted CE alone on the LR grid).
        image_key, label_key, hr_label_key, uncertainty_key: batch keys (LR image, LR label, HR label, LR-grid U).

    Raises:
        ValueError: KD on without a teacher or a distiller, a negative weight, a batch missing a key (naming it).
    """

    network_names = ("segmenter",)
    optimizer_names = ("optimizer",)

    def __init__(
        self,
        *args: Any,
        lr_ce: nn.Module,
        lr_dice: nn.Module,
        hr_loss: nn.Module,
        use_uncertainty: bool = True,
        lambda_lr: float = 1.0,
        lambda_hr: float = 1.0,
        lambda_kd: float = 1.0,
        lambda_lr_dice: float = 1.0,
        image_key: str = "image",
        label_key: str = "label",
        hr_label_key: str = "hr_label",
        uncertainty_key: str = "uncertainty",
        **kwargs: Any,
    ) -> None:
        if min(lambda_lr, lambda_hr, lambda_kd, lambda_lr_dice) < 0:
            raise ValueError(
                f"loss weights must be >= 0, got lambda_lr {lambda_lr}, lambda_hr {lambda_hr}, lambda_kd {lambda_kd}, "
                f"lambda_lr_dice {lambda_lr_dice}."
            )
        self.lr_ce, self.lr_dice, self.hr_loss = lr_ce, lr_dice, hr_loss
        self.use_uncertainty = bool(use_uncertainty)
        self.lambda_lr, self.lambda_hr, self.lambda_kd = float(lambda_lr), float(lambda_hr), float(lambda_kd)
        self.lambda_lr_dice = float(lambda_lr_dice)
        self.image_key, self.label_key = image_key, label_key
        self.hr_label_key, self.uncertainty_key = hr_label_key, uncertainty_key
        super().__init__(*args, **kwargs)
        distiller = self.networks.get("distiller")
        if distiller is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
            # the distiller is called through .terms(), not forward, so DistributedDataParallel cannot hook it: its
            # (small) gradients are averaged over the ranks as they are computed instead
            for parameter in distiller.parameters():
                parameter.register_hook(_average_over_ranks)
        if self.lambda_kd > 0 and ("teacher" not in self.frozen_networks or "distiller" not in self.networks):
            raise ValueError(
                "lambda_kd > 0 needs frozen_networks['teacher'] (the UASR model) and networks['distiller'] "
                "(common.losses.StructuralKDLoss); set lambda_kd to 0 to train without structural KD."
            )

    def _batch(self, batchdata: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        keys = [self.image_key, self.label_key]
        if self.lambda_hr > 0:
            keys.append(self.hr_label_key)
        if self.use_uncertainty:
            keys.append(self.uncertainty_key)
        missing = [key for key in keys if key not in batchdata]
        if missing:
            raise ValueError(f"batch has no key(s) {missing}; keys present: {sorted(batchdata)}.")
        to = {"device": self.state.device, "non_blocking": self.non_blocking, **self.to_kwargs}
        return {key: torch.as_tensor(batchdata[key]).to(**to) for key in keys}

    def kd_terms(self, image: torch.Tensor, label: torch.Tensor, student: torch.Tensor) -> dict[str, torch.Tensor]:
        """Structural KD: the teacher's layer-1 features on (LR image, LR label) against the student's skip 1.

        The teacher (FLAVR) takes slices first, ``(B, C, Z, X, Y)``; its encoder has no stride along the slices, so
        the whole LR crop goes through in one pass and its features line up with the student's ``(B, C, X/2, Y/2,
        Z)`` skip 1 slice by slice.
        """
        pair = torch.cat([image, label.float()], dim=1).permute(0, 1, 4, 2, 3)
        with torch.no_grad():
            teacher = self.frozen_networks["teacher"].early_features(pair).permute(0, 1, 3, 4, 2)
        return self.networks["distiller"].terms(student, teacher)

    def _iteration(self, engine: HRSegTrainer, batchdata: dict[str, torch.Tensor]) -> dict:
        """Forward both heads, the named terms, one optimizer step; see the class docstring."""
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = engine._batch(batchdata)
        image, label, hr_label = batch[engine.image_key], batch[engine.label_key], batch.get(engine.hr_label_key)
        uncertainty = batch.get(engine.uncertainty_key) if engine.use_uncertainty else None
        engine.train_mode()
        with engine.autocast():
            lr_logits, hr_logits, skip1 = engine.networks["segmenter"](image)
            terms = {
                "loss_lr_ce": engine.lr_ce(lr_logits, label, uncertainty),
                "loss_lr_dice": engine.lr_dice(lr_logits, label),
            }
            total = engine.lambda_lr * (terms["loss_lr_ce"] + engine.lambda_lr_dice * terms["loss_lr_dice"])
            if engine.lambda_hr > 0:
                terms["loss_hr"] = engine.hr_loss(hr_logits, hr_label)
                total = total + engine.lambda_hr * terms["loss_hr"]
            if engine.lambda_kd > 0:
                kd = engine.kd_terms(image, label, skip1)
                terms["loss_kd_structure"], terms["loss_kd_cosine"] = kd["loss_kd_structure"], kd["loss_kd_cosine"]
                total = total + engine.lambda_kd * kd["loss"]
        engine.optimizer_step("optimizer", total)
        output = {
            "image": image,
            "label": label,
            "lr_pred": class_index(lr_logits.detach()).float(),
            "hr_pred": class_index(hr_logits.detach()).float(),
            "loss": total.detach(),
        }
        if hr_label is not None:
            output["hr_label"] = hr_label
        output.update(engine.detached(terms))
        return output
