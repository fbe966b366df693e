"""Segmentor-consistency loss of CycleGANSeg (Wang et al., section II.A, eqs. 1-2)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["SegmentorConsistencyLoss"]

ACTIVATIONS = ("softmax", "sigmoid", "instance_norm", None)
REDUCTIONS = ("mean", "sum", "none")
#: epsilon of ``nn.InstanceNorm2d``'s default, the public code's normalisation
INSTANCE_NORM_EPS = 1e-5


class SegmentorConsistencyLoss(nn.Module):
    """MSE between the frozen Segmentor's masks of a generated image and of the original LGE image.

    Wang et al., "Style Transfer and Self-Supervised Learning Powered Myocardium Infarction Super-Resolution
    Segmentation", section II.A: ``Loss_TransferSeg = (Mask_trans - Mask_ori)^2`` (eq. 1; ``pred`` is the
    Segmentor on ``G_{S>T}(DTI)``) and ``Loss_ReconSeg = (Mask_recon - Mask_ori)^2`` (eq. 2; ``pred`` is the
    Segmentor on ``G_{S>T}(G_{T>S}(LGE))``); ``reference`` is the Segmentor on the original (paired) LGE image.

    ``loss = reduce((act(pred) - act(reference).detach())**2)``: the reference mask is a target, so gradients flow
    into ``pred`` only (and from there into the generators; the Segmentor itself is frozen by the trainer).

    ``activation`` says what is compared:

    - ``"softmax"`` (over channels) or ``"sigmoid"``: probabilities. Bounded in ``[0, 1]`` and scale-free
      (confident logits +-20 vs +-40 that give the same mask give almost zero loss). Averaged over every pixel,
      a small structure (an MI covers ~1 % of the slice) contributes ~1 % of the mean, so the term is weak next to
      the cycle loss unless its lambda is large.
    - ``"instance_norm"``: each channel of each sample standardised over its pixels (zero mean, unit variance,
      no affine), as the authors' public CycleGAN fork does (``InstanceNorm2d`` on the 2-channel Segmentor output).
      Standardisation rescales a channel by its own spread, so the few MI pixels stand out at several units and
      a missed or misplaced MI costs about as much as a wrong background: it corrects the imbalance.
    - ``None``: the raw logits.

    Shapes: ``pred`` and ``reference`` ``(B, C, H, W[, D])`` logits of the same shape (``C >= 2`` for softmax).
    Returns a scalar (``"mean"``/``"sum"``) or a ``(B, C, H, W[, D])`` tensor (``"none"``).

    Args:
        activation: ``"softmax"`` (over channel dim 1), ``"sigmoid"``, ``"instance_norm"`` or ``None``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Raises:
        ValueError: naming ``activation``/``reduction`` in ``__init__``; in ``forward`` for shape mismatch or
            softmax over a single channel (which would be constant 1: use ``"sigmoid"``).

    Examples::

        >>> SegmentorConsistencyLoss()(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4))
        tensor(0.)
    """

    def __init__(self, activation: str | None = "softmax", reduction: str = "mean") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}.")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}.")
        self.activation = activation
        self.reduction = reduction

    def _activate(self, logits: torch.Tensor) -> torch.Tensor:
        if self.activation == "softmax":
            return torch.softmax(logits, dim=1)
        if self.activation == "sigmoid":
            return torch.sigmoid(logits)
        if self.activation == "instance_norm":
            return F.instance_norm(logits.float(), eps=INSTANCE_NORM_EPS)
        return logits

    def forward(self, pred_logits: torch.Tensor, reference_logits: torch.Tensor) -> torch.Tensor:
        """
        Args:
            pred_logits: Segmentor logits of the generated (translated or reconstructed) image ``(B, C, *S)``.
            reference_logits: Segmentor logits of the original LGE image, same shape (detached here).

        Returns:
            the reduced squared difference of the activated masks.
        """
        if pred_logits.shape != reference_logits.shape:
            raise ValueError(
                f"pred_logits shape {tuple(pred_logits.shape)} differs from reference_logits shape "
                f"{tuple(reference_logits.shape)}."
            )
        if self.activation == "softmax" and pred_logits.shape[1] < 2:
            raise ValueError(
                f"activation='softmax' needs at least 2 channels, got {pred_logits.shape[1]}; use 'sigmoid'."
            )
        return F.mse_loss(
            self._activate(pred_logits), self._activate(reference_logits).detach(), reduction=self.reduction
        )
