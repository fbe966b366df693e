"""Multi-task U-SSL loss: rotation CE + masked-image L1 + NT-Xent (Wang et al., section II.C, eqs. 3-5)."""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.losses import ContrastiveLoss

__all__ = ["MultiTaskSSLLoss"]

RECONSTRUCTION_REGIONS = ("image", "masked")


class MultiTaskSSLLoss(nn.Module):
    """Weighted sum of the three U-SSL pre-training losses over the two augmented views.

    Wang et al., "Style Transfer and Self-Supervised Learning Powered Myocardium Infarction Super-Resolution
    Segmentation", section II.C:

    - ``loss_rotation`` (eq. 3): cross-entropy of ``rotation_logits`` against ``rotation_v``, averaged over the
      ``2B`` samples of both views;
    - ``loss_reconstruction`` (eq. 4, ``||X - I||_1``): L1 between ``reconstruction`` (from the masked view ``Y``)
      and the clean rotated view ``X = rotated_v``, averaged over both views. ``reconstruction_region="image"``
      (default, as eq. 4 and Tang et al.'s Swin UNETR pre-training) averages over every pixel;
      ``"masked"`` averages over the masked pixels only (MAE style; 0 when nothing is masked);
    - ``loss_contrastive`` (eq. 5): NT-Xent (SimCLR) between ``embedding`` of view 1 and view 2 with temperature
      ``t``, via ``monai.losses.ContrastiveLoss``: cosine similarity, the positive pair of each of the ``2B``
      embeddings against all ``2B - 1`` others, averaged over the ``2B`` anchors. Eq. 5 as printed differs (one log
      over the batch, dot product, cross-view negatives only): see the lge_mi_sr_segmentation README, "Deviations".

    ``loss = lambda_rotation * loss_rotation + lambda_reconstruction * loss_reconstruction
    + lambda_contrastive * loss_contrastive`` (the paper gives no weights; 1 each as in Tang et al.).

    Inputs: ``out1``/``out2`` are :class:`common.ssl.SSLNet` outputs for ``aug["masked_1"]``/``aug["masked_2"]``
    (``rotation_logits (B, R)``, ``embedding (B, F)``, ``reconstruction (B, C, H, W)``); ``aug`` is the
    :class:`common.ssl.TwoViewAugment` output (``rotation_v (B,)``, ``rotated_v (B, C, H, W)``,
    ``mask_v (B, 1, H, W)``). Returns a dict of scalars: ``loss``, ``loss_rotation``, ``loss_reconstruction``,
    ``loss_contrastive``.

    Args:
        lambda_rotation: weight of the rotation loss (>= 0).
        lambda_reconstruction: weight of the masked-image reconstruction loss (>= 0).
        lambda_contrastive: weight of the contrastive loss (>= 0).
        temperature: NT-Xent temperature ``t`` (> 0).
        reconstruction_region: ``"image"`` or ``"masked"``.

    Raises:
        ValueError: naming the offending argument.

    Examples::

        >>> loss = MultiTaskSSLLoss()(net(aug["masked_1"]), net(aug["masked_2"]), aug)["loss"]  # doctest: +SKIP
    """

    def __init__(
        self,
        lambda_rotation: float = 1.0,
        lambda_reconstruction: float = 1.0,
        lambda_contrastive: float = 1.0,
        temperature: float = 0.5,
        reconstruction_region: str = "image",
    ) -> None:
        super().__init__()
        for name, value in (
            ("lambda_rotation", lambda_rotation),
            ("lambda_reconstruction", lambda_reconstruction),
            ("lambda_contrastive", lambda_contrastive),
        ):
            if not value >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {value!r}.")
        if not temperature > 0.0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}.")
        if reconstruction_region not in RECONSTRUCTION_REGIONS:
            raise ValueError(
                f"reconstruction_region must be one of {RECONSTRUCTION_REGIONS}, got {reconstruction_region!r}."
            )
        self.lambda_rotation = lambda_rotation
        self.lambda_reconstruction = lambda_reconstruction
        self.lambda_contrastive = lambda_contrastive
        self.reconstruction_region = reconstruction_region
        self.contrastive_loss = ContrastiveLoss(temperature=temperature)

    def _reconstruction(self, reconstruction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if reconstruction.shape != target.shape:
            raise ValueError(
                f"reconstruction shape {tuple(reconstruction.shape)} differs from rotated image {tuple(target.shape)}."
            )
        error = (reconstruction - target).abs()
        if self.reconstruction_region == "image":
            return error.mean()
        weight = mask.expand_as(error)
        return (error * weight).sum() / weight.sum().clamp_min(1.0)

    def forward(
        self, out1: Mapping[str, torch.Tensor], out2: Mapping[str, torch.Tensor], aug: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """
        Args:
            out1: network outputs for view 1.
            out2: network outputs for view 2.
            aug: the two-view augmentation dict.

        Returns:
            ``loss``, ``loss_rotation``, ``loss_reconstruction``, ``loss_contrastive`` (scalar tensors).
        """
        outs = (out1, out2)
        loss_rotation = F.cross_entropy(
            torch.cat([o["rotation_logits"] for o in outs]), torch.cat([aug["rotation_1"], aug["rotation_2"]]).long()
        )
        loss_reconstruction = 0.5 * sum(
            self._reconstruction(o["reconstruction"], aug[f"rotated_{v}"], aug[f"mask_{v}"])
            for v, o in zip((1, 2), outs)
        )
        loss_contrastive = self.contrastive_loss(out1["embedding"], out2["embedding"])
        loss = (
            self.lambda_rotation * loss_rotation
            + self.lambda_reconstruction * loss_reconstruction
            + self.lambda_contrastive * loss_contrastive
        )
        return {
            "loss": loss,
            "loss_rotation": loss_rotation,
            "loss_reconstruction": loss_reconstruction,
            "loss_contrastive": loss_contrastive,
        }
