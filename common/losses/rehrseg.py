"""The loss terms of REHRSeg (Song et al., Neurocomputing 624:129425, 2025), with the public-code bugs avoided.

Stage 1 (self-supervised SR of (image, label) slabs):

- :class:`BCEDiceLoss`: BCE-with-logits + (1 - V-Net soft Dice) on the label channel.
- :class:`SelfSRLoss`: the plain SR model's ``L1(image) + BCEDice(label)``.
- :class:`UncertaintySRLoss`: the uncertainty-aware SR (UASR) loss as the public code has it: four terms, not the
  paper's three (the extra one calibrates ``U`` against the detached error).

Stage 2 (HR segmenter trained on pseudo-HR data):

- :class:`UncertaintyWeightedCE`: the LR cross-entropy weighted by ``1 - 0.99 U``, per voxel and per sample (the
  public code broadcasts the weight across the batch and wraps ``U`` in ``uint8`` after scaling it by 255 twice).
- :class:`StructuralKDLoss`: structural knowledge distillation from the SR network's encoder into the segmenter's
  (Fig. 4): affinity-graph correlation distillation + per-channel spatial cosine distillation after a 1x1x1
  projection.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers import Conv

__all__ = ["BCEDiceLoss", "SelfSRLoss", "StructuralKDLoss", "UncertaintySRLoss", "UncertaintyWeightedCE"]


def _check_non_negative(**weights: float) -> None:
    for name, value in weights.items():
        if float(value) < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}.")


def _check_sr_pair(pred: torch.Tensor, target: torch.Tensor, pred_channels: int, loss_name: str) -> None:
    """``pred`` ``(B, pred_channels, S, H, W)`` and ``target`` ``(B, 2, S, H, W)`` with the same B, S, H, W (or 2D
    ``(B, C, H, W)`` planes: the SMORE-style pre-upsampler's)."""
    if (
        pred.ndim not in (4, 5)
        or target.ndim != pred.ndim
        or pred.shape[1] != pred_channels
        or target.shape[1] != 2
        or pred.shape[0] != target.shape[0]
        or pred.shape[2:] != target.shape[2:]
    ):
        raise ValueError(
            f"{loss_name} needs pred (B, {pred_channels}, S, H, W) and target (B, 2, S, H, W) (image, binary label) "
            f"with the same B, S, H, W, got pred {tuple(pred.shape)} and target {tuple(target.shape)}."
        )


class BCEDiceLoss(nn.Module):
    """``BCEWithLogits(x, t) + (1 - Dice(sigmoid(x), t))``: the label loss of REHRSeg's SR stages.

    Song et al., REHRSeg, stage 1: the SR network also predicts the label slices, supervised with binary
    cross-entropy plus the V-Net soft Dice (Milletari et al., 2016, eq. 1) with a squared denominator:
    ``Dice = (2 sum(p t) + smooth) / (sum(p^2) + sum(t^2) + smooth)``, ``p = sigmoid(x)``, ``smooth = 1e-5``,
    computed per sample and per channel over the spatial voxels and then averaged. The BCE is the mean over every
    element. Both terms have weight 1 (as coded). Computed in float32 (safe under autocast).

    Shapes: ``input`` ``(B, C, *spatial)`` logits and ``target`` of the same shape, binary (0/1; soft values in
    ``[0, 1]`` are accepted and not checked). Returns a scalar.

    Args:
        smooth: the Dice smoothing constant (1e-5).

    Raises:
        ValueError: naming ``smooth``; in ``forward`` when the shapes differ or have no spatial dimension.

    Examples::

        >>> BCEDiceLoss()(torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)).shape
        torch.Size([])
    """

    def __init__(self, smooth: float = 1e-5) -> None:
        super().__init__()
        if float(smooth) <= 0:
            raise ValueError(f"smooth must be > 0, got {smooth!r}.")
        self.smooth = float(smooth)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input: ``(B, C, *spatial)`` logits.
            target: ``(B, C, *spatial)`` binary labels.

        Returns:
            the scalar ``BCE + (1 - Dice)``.
        """
        if input.ndim < 3 or input.shape != target.shape:
            raise ValueError(
                f"input and target must be (B, C, *spatial) of the same shape, "
                f"got input {tuple(input.shape)} and target {tuple(target.shape)}."
            )
        logits, target = input.float(), target.float()
        bce = F.binary_cross_entropy_with_logits(logits, target)
        probabilities = torch.sigmoid(logits)
        spatial = tuple(range(2, logits.ndim))
        intersection = (probabilities * target).sum(dim=spatial)
        denominator = probabilities.pow(2).sum(dim=spatial) + target.pow(2).sum(dim=spatial)
        dice = (2 * intersection + self.smooth) / (denominator + self.smooth)
        return bce + (1 - dice.mean())


class SelfSRLoss(nn.Module):
    """``L = L1(img^, img) + BCEDice(label^, label)``: the loss of REHRSeg's plain self-supervised SR model.

    Song et al., REHRSeg, stage 1: the SR network (FLAVR-style) maps ``k`` LR (image, label) slices to ``S`` HR
    slices; it is trained on pairs made by degrading the in-plane axes to the through-plane resolution. Channel 0
    is the image (in the network's output range), channel 1 the label logit. Weights 1/1 as coded.

    Shapes: ``pred`` ``(B, 2, S, H, W)`` (image, label logit); ``target`` ``(B, 2, S, H, W)`` (image, binary
    label); or 2D planes ``(B, 2, H, W)`` (the SMORE-style pre-upsampler's). ``forward`` returns the scalar total;
    :meth:`terms` returns ``{"loss": total, "loss_l1": L1, "loss_bce_dice": BCEDice}`` (terms unweighted) so a
    trainer can log each term.

    Args:
        lambda_l1: weight of the image L1 term (1).
        lambda_bce_dice: weight of the label BCE-Dice term (1).

    Raises:
        ValueError: naming the negative weight; in ``forward`` when the shapes or channel counts are wrong.

    Examples::

        >>> SelfSRLoss()(torch.zeros(1, 2, 4, 8, 8), torch.zeros(1, 2, 4, 8, 8)).shape
        torch.Size([])
    """

    def __init__(self, lambda_l1: float = 1.0, lambda_bce_dice: float = 1.0) -> None:
        super().__init__()
        _check_non_negative(lambda_l1=lambda_l1, lambda_bce_dice=lambda_bce_dice)
        self.lambda_l1 = float(lambda_l1)
        self.lambda_bce_dice = float(lambda_bce_dice)
        self.bce_dice = BCEDiceLoss()

    def terms(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"loss", "loss_l1", "loss_bce_dice"}`` for ``pred``/``target`` ``(B, 2, S, H, W)``."""
        _check_sr_pair(pred, target, 2, "SelfSRLoss")
        loss_l1 = F.l1_loss(pred[:, :1].float(), target[:, :1].float())
        loss_bce_dice = self.bce_dice(pred[:, 1:2], target[:, 1:2])
        loss = self.lambda_l1 * loss_l1 + self.lambda_bce_dice * loss_bce_dice
        return {"loss": loss, "loss_l1": loss_l1, "loss_bce_dice": loss_bce_dice}

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            pred: ``(B, 2, S, H, W)``: image, label logit.
            target: ``(B, 2, S, H, W)``: image, binary label.

        Returns:
            the scalar ``lambda_l1 L1 + lambda_bce_dice BCEDice``.
        """
        return self.terms(pred, target)["loss"]


class UncertaintySRLoss(nn.Module):
    """The uncertainty-aware SR (UASR) loss, with the four terms of the public code.

    Song et al., REHRSeg, stage 1 (UASR): the SR network also predicts a voxel-wise uncertainty ``U`` in (0, 1)
    (a sigmoid read-out). With ``e = |img^ - img|``:

    ``L = mean(e) + mean(e / U + log U) + mean(|U - stopgrad(e)|) + BCEDice(label^, label)``

    - ``loss_l1``: ``mean(e)``, the plain image L1.
    - ``loss_uncertainty``: the aleatoric (Laplace negative log-likelihood) term ``e / U + log U``: large ``U`` buys a
      small error penalty at the cost of ``log U``; its minimiser over ``U`` is ``U = e``. ``U`` is clamped to
      ``>= eps`` inside this term only.
    - ``loss_u_calibration``: ``mean(|U - stopgrad(e)|)``, the term the paper leaves out but the code has: it pulls
      ``U`` directly towards the detached error, so it trains ``U`` only, never the image prediction.
    - ``loss_bce_dice``: :class:`BCEDiceLoss` on the label channel.

    All weights 1 as coded (configurable). The terms are computed in float32.

    Shapes: ``pred`` ``(B, 3, S, H, W)`` (image, label logit, ``U`` in (0, 1)); ``target`` ``(B, 2, S, H, W)``
    (image, binary label). ``forward`` returns the scalar total; :meth:`terms` returns
    ``{"loss", "loss_l1", "loss_uncertainty", "loss_u_calibration", "loss_bce_dice"}`` (terms unweighted).

    Args:
        lambda_l1: weight of ``loss_l1`` (1).
        lambda_uncertainty: weight of ``loss_uncertainty`` (1).
        lambda_u_calibration: weight of ``loss_u_calibration`` (1).
        lambda_bce_dice: weight of ``loss_bce_dice`` (1).
        eps: lower clamp of ``U`` in the aleatoric term (1e-3).

    Raises:
        ValueError: naming the negative weight or a non-positive ``eps``; in ``forward`` when the shapes or channel
            counts are wrong.

    Examples::

        >>> pred = torch.cat([torch.zeros(1, 2, 4, 8, 8), torch.full((1, 1, 4, 8, 8), 0.5)], dim=1)
        >>> UncertaintySRLoss()(pred, torch.zeros(1, 2, 4, 8, 8)).shape
        torch.Size([])
    """

    def __init__(
        self,
        lambda_l1: float = 1.0,
        lambda_uncertainty: float = 1.0,
        lambda_u_calibration: float = 1.0,
        lambda_bce_dice: float = 1.0,
        eps: float = 1e-3,
    ) -> None:
        super().__init__()
        _check_non_negative(
            lambda_l1=lambda_l1,
            lambda_uncertainty=lambda_uncertainty,
            lambda_u_calibration=lambda_u_calibration,
            lambda_bce_dice=lambda_bce_dice,
        )
        if float(eps) <= 0:
            raise ValueError(f"eps must be > 0, got {eps!r}.")
        self.lambda_l1 = float(lambda_l1)
        self.lambda_uncertainty = float(lambda_uncertainty)
        self.lambda_u_calibration = float(lambda_u_calibration)
        self.lambda_bce_dice = float(lambda_bce_dice)
        self.eps = float(eps)
        self.bce_dice = BCEDiceLoss()

    def terms(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """The total and the four unweighted terms for ``pred`` ``(B, 3, S, H, W)``, ``target`` ``(B, 2, S, H, W)``."""
        _check_sr_pair(pred, target, 3, "UncertaintySRLoss")
        error = (pred[:, :1].float() - target[:, :1].float()).abs()
        uncertainty = pred[:, 2:3].float()
        # a sigmoid saturates to exactly 0 (float32 below about -104, half much sooner): e / U and log U would be
        # inf, and near 0 the gradient -e / U^2 explodes; eps bounds both (the calibration term still trains U there)
        clamped = uncertainty.clamp_min(self.eps)
        loss_l1 = error.mean()
        loss_uncertainty = (error / clamped + torch.log(clamped)).mean()
        loss_u_calibration = (uncertainty - error.detach()).abs().mean()
        loss_bce_dice = self.bce_dice(pred[:, 1:2], target[:, 1:2])
        loss = (
            self.lambda_l1 * loss_l1
            + self.lambda_uncertainty * loss_uncertainty
            + self.lambda_u_calibration * loss_u_calibration
            + self.lambda_bce_dice * loss_bce_dice
        )
        return {
            "loss": loss,
            "loss_l1": loss_l1,
            "loss_uncertainty": loss_uncertainty,
            "loss_u_calibration": loss_u_calibration,
            "loss_bce_dice": loss_bce_dice,
        }

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            pred: ``(B, 3, S, H, W)``: image, label logit, uncertainty ``U``.
            target: ``(B, 2, S, H, W)``: image, binary label.

        Returns:
            the scalar weighted sum of the four terms.
        """
        return self.terms(pred, target)["loss"]


class UncertaintyWeightedCE(nn.Module):
    """Stage-2 LR cross-entropy weighted per voxel and per sample by ``w = 1 - floor * U``.

    Song et al., REHRSeg, stage 2: the segmenter's LR head is trained on the real LR annotation (the public code
    subsamples the pseudo-HR label to the LR grid; the bundle's ``docs/README.md`` says why not); voxels where the
    UASR model is uncertain count less: ``L = mean_{b, v} (1 - floor U_{b, v}) CE_{b, v}`` with ``floor = 0.99``
    (so the smallest weight is ``1 - floor = 0.01``). This is the plain mean of ``w * CE`` over all
    voxels of all samples, **not** normalised by ``sum(w)``: confident batches weigh more than uncertain ones, as
    in the public code.

    Differences from the public code (both are its bugs): ``U`` must already lie in ``[0, 1]`` (the public code
    scaled it by 255 twice and wrapped it in ``uint8``, so values outside ``[0, 1]`` here mean a broken map and
    raise); and the weight is per sample: the public code multiplies a ``(B, X, Y, Z)`` CE map by a
    ``(B, 1, X, Y, Z)`` weight, which broadcasts to ``(B, B, X, Y, Z)`` and averages the weights across the batch.
    Shapes are checked strictly here so that broadcast cannot happen. ``U`` is detached: it is a data weight, and
    minimising ``w * CE`` through it would only push ``U`` to 1.

    Shapes: ``logits`` ``(B, C, X, Y, Z)``; ``target`` ``(B, 1, X, Y, Z)`` integer class indices in ``[0, C-1]``
    (a float tensor of whole numbers is accepted); ``uncertainty`` ``(B, 1, X, Y, Z)`` in ``[0, 1]`` or ``None``
    (plain CE). Returns a scalar.

    Args:
        floor: ``w = 1 - floor * U``, in ``[0, 1]`` (0.99).

    Raises:
        ValueError: naming ``floor``; in ``forward`` for mismatched shapes, non-integer or out-of-range class indices,
            or ``U`` outside ``[0, 1]``.

    Examples::

        >>> UncertaintyWeightedCE()(torch.zeros(2, 3, 4, 4, 2), torch.zeros(2, 1, 4, 4, 2), torch.ones(2, 1, 4, 4, 2))
        tensor(0.0110)
    """

    def __init__(self, floor: float = 0.99) -> None:
        super().__init__()
        if not 0.0 <= float(floor) <= 1.0:
            raise ValueError(f"floor must lie in [0, 1] (weights 1 - floor * U must stay >= 0), got {floor!r}.")
        self.floor = float(floor)

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, uncertainty: torch.Tensor | None = None
    ) -> torch.Tensor:
        """
        Args:
            logits: ``(B, C, X, Y, Z)`` raw logits.
            target: ``(B, 1, X, Y, Z)`` class indices.
            uncertainty: ``(B, 1, X, Y, Z)`` in ``[0, 1]``, or ``None`` for unweighted CE.

        Returns:
            the scalar ``mean(w * CE)``.
        """
        if logits.ndim != 5:
            raise ValueError(f"logits must be (B, C, X, Y, Z), got {tuple(logits.shape)}.")
        expected = (logits.shape[0], 1, *logits.shape[2:])
        if tuple(target.shape) != expected:
            raise ValueError(f"target must be {expected} for logits {tuple(logits.shape)}, got {tuple(target.shape)}.")
        if uncertainty is not None and tuple(uncertainty.shape) != expected:
            raise ValueError(
                f"uncertainty must be {expected} for logits {tuple(logits.shape)} (one map per sample), "
                f"got {tuple(uncertainty.shape)}."
            )
        if target.is_floating_point() and not torch.equal(target, target.round()):
            raise ValueError("target holds non-integer values; it must be class indices, not a one-hot or soft map.")
        classes = target[:, 0].long()
        num_classes = logits.shape[1]
        if classes.numel() and (classes.min() < 0 or classes.max() >= num_classes):
            raise ValueError(
                f"target class indices must lie in [0, {num_classes - 1}], "
                f"got [{int(classes.min())}, {int(classes.max())}]."
            )
        cross_entropy = F.cross_entropy(logits.float(), classes, reduction="none")  # (B, X, Y, Z)
        if uncertainty is None:
            return cross_entropy.mean()
        uncertainty = uncertainty.detach().float()
        # the negated form also catches NaN
        if not bool(((uncertainty >= 0) & (uncertainty <= 1)).all()):
            raise ValueError(
                f"uncertainty must lie in [0, 1], got [{float(uncertainty.min())}, {float(uncertainty.max())}] "
                "(a map scaled to [0, 255] or wrapped in uint8?)."
            )
        weight = 1 - self.floor * uncertainty[:, 0]  # (B, X, Y, Z): same shape as the CE map, no broadcast
        return (weight * cross_entropy).mean()


class StructuralKDLoss(nn.Module):
    """REHRSeg's structural knowledge distillation: correlation (affinity-graph) + spatial (cosine) distillation.

    Song et al., REHRSeg, Fig. 4: the segmenter's encoder features (student) learn the structure of the SR
    network's encoder features (teacher):

    - **Correlation distillation** (``loss_kd_structure``): per sample and per slice ``z``, the ``(C, X, Y)`` map is
      adaptive-max-pooled to a ``pool_grid x pool_grid`` grid, giving ``N = pool_grid^2`` nodes, each a C-vector;
      the L2-normalised node vectors give the affinity ``A = [cos(n_i, n_j)]`` (``N x N``).
      ``loss_kd_structure = mean_{b, z} mean_{i, j} (A^T_{ij} - A^S_{ij})^2``. The affinity does not depend on the
      channel count, so this term uses the raw student map (4 student and 8 teacher channels work).
    - **Spatial distillation** (``loss_kd_cosine``): ``P = projection(student)``, a trainable 1x1x1 Conv3d
      ``student_channels -> teacher_channels``; the voxel channel vectors of ``P`` and of the teacher are
      L2-normalised over channels, then for each sample and channel the cosine similarity between ``P`` and the
      teacher along the flattened spatial axis gives ``loss_kd_cosine = mean_{b, c} (1 - cos)``.

    ``loss = lambda_structure * loss_kd_structure + lambda_cosine * loss_kd_cosine`` (paper config: 1 and 1). The
    teacher is always detached. **This module owns trainable parameters** (the projection): put them in the
    student's optimizer and in the checkpoint's ``save_dict``, or the projection stays random and is lost on resume.
    The paper's structure term is an average over the ``N x N`` affinity entries, samples and slices; here it is
    their plain mean (the public code's extra normalisation constants are not reproduced). Computed in float32.

    Shapes: ``student`` ``(B, Cs, X, Y, Z)`` and ``teacher`` ``(B, Ct, X, Y, Z)`` with the same ``B, X, Y, Z``
    (``Z`` = slices; in REHRSeg the segmenter's skip 1 and the SR encoder's layer-1 output, 64 channels each).
    ``forward`` returns the scalar total; :meth:`terms` returns ``{"loss", "loss_kd_structure", "loss_kd_cosine"}``.

    Args:
        student_channels: ``Cs``.
        teacher_channels: ``Ct``.
        pool_grid: nodes per in-plane axis of the affinity graph (2, i.e. 4 nodes per slice); at least 2.
        lambda_structure: weight of the correlation term (1).
        lambda_cosine: weight of the spatial cosine term (1).

    Raises:
        ValueError: naming the bad argument; in ``forward`` for mismatched shapes or channel counts.

    Examples::

        >>> kd = StructuralKDLoss(student_channels=4, teacher_channels=8)
        >>> kd(torch.randn(2, 4, 8, 8, 3), torch.randn(2, 8, 8, 8, 3)).shape
        torch.Size([])
    """

    def __init__(
        self,
        student_channels: int,
        teacher_channels: int,
        pool_grid: int = 2,
        lambda_structure: float = 1.0,
        lambda_cosine: float = 1.0,
    ) -> None:
        super().__init__()
        for name, value in (("student_channels", student_channels), ("teacher_channels", teacher_channels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if not isinstance(pool_grid, int) or pool_grid < 2:
            # one node has the constant affinity 1: the term would be identically 0
            raise ValueError(f"pool_grid must be an integer >= 2, got {pool_grid!r}.")
        _check_non_negative(lambda_structure=lambda_structure, lambda_cosine=lambda_cosine)
        self.student_channels = student_channels
        self.teacher_channels = teacher_channels
        self.pool_grid = pool_grid
        self.lambda_structure = float(lambda_structure)
        self.lambda_cosine = float(lambda_cosine)
        self.projection = Conv[Conv.CONV, 3](student_channels, teacher_channels, kernel_size=1)

    def affinity(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, C, X, Y, Z) -> (B * Z, N, N)``: per-slice cosine affinity of the ``N = pool_grid^2`` pooled nodes."""
        batch, channels, size_x, size_y, slices = features.shape
        per_slice = features.permute(0, 4, 1, 2, 3).reshape(batch * slices, channels, size_x, size_y)
        nodes = F.adaptive_max_pool2d(per_slice, self.pool_grid).flatten(2)  # (B * Z, C, N)
        nodes = F.normalize(nodes, dim=1)
        return nodes.transpose(1, 2) @ nodes

    def terms(self, student: torch.Tensor, teacher: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"loss", "loss_kd_structure", "loss_kd_cosine"}`` (terms unweighted)."""
        if (
            student.ndim != 5
            or teacher.ndim != 5
            or student.shape[0] != teacher.shape[0]
            or student.shape[2:] != teacher.shape[2:]
            or student.shape[1] != self.student_channels
            or teacher.shape[1] != self.teacher_channels
        ):
            raise ValueError(
                f"student must be (B, {self.student_channels}, X, Y, Z) and teacher (B, {self.teacher_channels}, "
                f"X, Y, Z) with the same B, X, Y, Z, got student {tuple(student.shape)} and "
                f"teacher {tuple(teacher.shape)}."
            )
        teacher = teacher.detach().float()
        student = student.float()
        loss_kd_structure = (self.affinity(teacher) - self.affinity(student)).pow(2).mean()
        projected = F.normalize(self.projection(student).float(), dim=1).flatten(2)  # (B, Ct, X*Y*Z)
        reference = F.normalize(teacher, dim=1).flatten(2)
        loss_kd_cosine = (1 - F.cosine_similarity(projected, reference, dim=2)).mean()
        loss = self.lambda_structure * loss_kd_structure + self.lambda_cosine * loss_kd_cosine
        return {"loss": loss, "loss_kd_structure": loss_kd_structure, "loss_kd_cosine": loss_kd_cosine}

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """
        Args:
            student: ``(B, Cs, X, Y, Z)`` segmenter features.
            teacher: ``(B, Ct, X, Y, Z)`` SR-network features (detached inside).

        Returns:
            the scalar ``lambda_structure * structure + lambda_cosine * cosine``.
        """
        return self.terms(student, teacher)["loss"]
