"""Sobel edge loss and the composite segmentation loss of the cascaded U-Net (Chen, Ouyang et al., section 2.2)."""

from __future__ import annotations

__all__ = ["SobelEdgeLoss", "CompositeSegmentationLoss", "PAPER_CLASS_WEIGHTS", "PAPER_LAMBDA_EDGE"]

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

#: section 3.2: "The weights for BG, LV, MYO, and RV in L_wce were empirically set to 0.2 : 0.25 : 0.3 : 0.25"
PAPER_CLASS_WEIGHTS = (0.2, 0.25, 0.3, 0.25)
#: section 2.2: "we set lambda = 0.5 to balance the contribution of the two losses"
PAPER_LAMBDA_EDGE = 0.5
DISTANCES = ("l2", "rms", "mse")
CE_NORMALIZATIONS = ("pixels", "weights")
#: Sobel & Feldman's 3x3 operator (unnormalised): horizontal derivative (S_1); the vertical one (S_2) is its transpose
_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


def _one_hot_target(target: torch.Tensor, num_classes: int, spatial_shape: Sequence[int]) -> torch.Tensor:
    """Class-index ``(B, 1, H, W)`` or ``(B, H, W)`` -> float one-hot ``(B, num_classes, H, W)``."""
    if target.ndim == len(spatial_shape) + 2 and target.shape[1] == 1:
        target = target[:, 0]
    if target.ndim != len(spatial_shape) + 1 or tuple(target.shape[1:]) != tuple(spatial_shape):
        raise ValueError(
            f"target must be class indices (B, 1, {', '.join('HWD'[:len(spatial_shape)])}) or "
            f"(B, {', '.join('HWD'[:len(spatial_shape)])}) matching the prediction's spatial shape "
            f"{tuple(spatial_shape)}, got {tuple(target.shape)}."
        )
    if target.is_floating_point():
        if not torch.equal(target, target.round()):
            raise ValueError("target holds non-integer values; it must be class indices, not a one-hot or soft map.")
    target = target.long()
    if target.numel() and (target.min() < 0 or target.max() >= num_classes):
        raise ValueError(
            f"target class indices must lie in [0, {num_classes - 1}], got [{int(target.min())}, {int(target.max())}]."
        )
    return F.one_hot(target, num_classes).movedim(-1, 1).float()


class SobelEdgeLoss(nn.Module):
    """Edge loss ``L_edge``: distance between Sobel edge maps of the predicted probabilities and of the one-hot truth.

    Chen, Ouyang et al., "Unsupervised Multi-modal Style Transfer for Cardiac MR Segmentation", section 2.2: two 2D
    3x3 Sobel filters ``S_k`` (k = 1, 2: horizontal and vertical) are applied to the soft prediction maps ``p`` and to
    the one-hot ground truth ``y``, and ``L_edge = sum_{m != BG} sum_{k=1,2} ||f_{S_k}(p^m) - f_{S_k}(y^m)||_2``.

    As in the paper, the two directional responses are compared separately (not a gradient magnitude), and
    ``distance="l2"`` (default) is the paper's l2 distance: the Euclidean norm over the pixels of one image, one class
    and one direction (not squared), summed over foreground classes and the two directions, averaged over the batch.
    ``distance="rms"`` is that norm divided by ``sqrt(H * W)`` (the root mean square over the pixels): the paper's
    form at a scale that does not grow with the image size, so ``lambda = 0.5`` keeps one balance against a
    per-pixel mean ``L_wce`` at 64x64 and at 192x192 (the unnormalised norm grows with ``sqrt(H * W)`` for the same
    relative error; the paper does not say how its ``L_wce`` is normalised). ``distance="mse"`` is the mean squared
    difference over every element (not the paper's form). Sobel kernels are Sobel & Feldman's unnormalised
    ``[-1, 0, 1; -2, 0, 2; -1, 0, 1]`` and its transpose, applied as cross-correlation with zero padding (the same
    padding for ``p`` and ``y``, so structures touching the border give no spurious difference).
    The loss is 0 for a perfect one-hot prediction.

    Shapes: ``input`` ``(B, C, H, W)`` logits (``softmax=True``) or probabilities (``softmax=False``); ``target``
    class indices ``(B, 1, H, W)`` or ``(B, H, W)`` in ``[0, C-1]``. Returns a scalar.

    Args:
        softmax: apply a softmax over channels to ``input`` first (``input`` are logits).
        include_background: compare channel ``background_index`` too (the paper excludes BG).
        background_index: the background channel (0).
        distance: ``"l2"`` (the paper: Euclidean norm per image, class and direction), ``"rms"`` (that norm over
            ``sqrt(H * W)``) or ``"mse"``.

    Raises:
        ValueError: naming ``distance`` or ``background_index``; in ``forward`` for bad shapes or class indices.

    Examples::

        >>> SobelEdgeLoss()(torch.randn(2, 4, 16, 16), torch.randint(0, 4, (2, 1, 16, 16))).shape
        torch.Size([])
    """

    def __init__(
        self, softmax: bool = True, include_background: bool = False, background_index: int = 0, distance: str = "l2"
    ) -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}.")
        if not isinstance(background_index, int) or background_index < 0:
            raise ValueError(f"background_index must be an integer >= 0, got {background_index!r}.")
        self.softmax = softmax
        self.include_background = include_background
        self.background_index = background_index
        self.distance = distance
        sobel_x = torch.tensor(_SOBEL_X)
        self.register_buffer("kernels", torch.stack([sobel_x, sobel_x.T])[:, None], persistent=False)

    def edge_maps(self, maps: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, C, 2, H, W)``: horizontal (S_1) and vertical (S_2) Sobel responses per channel."""
        batch, channels = maps.shape[:2]
        kernels = self.kernels.to(dtype=maps.dtype, device=maps.device)
        edges = F.conv2d(maps.reshape(batch * channels, 1, *maps.shape[2:]), kernels, padding=1)
        return edges.reshape(batch, channels, 2, *maps.shape[2:])

    def _foreground(self, maps: torch.Tensor) -> torch.Tensor:
        if self.include_background:
            return maps
        keep = [c for c in range(maps.shape[1]) if c != self.background_index]
        return maps[:, keep]

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input: ``(B, C, H, W)`` logits (``softmax=True``) or probabilities.
            target: class indices ``(B, 1, H, W)`` or ``(B, H, W)``.

        Returns:
            the scalar edge loss.
        """
        if input.ndim != 4:
            raise ValueError(f"SobelEdgeLoss is 2D: input must be (B, C, H, W), got {tuple(input.shape)}.")
        num_classes = input.shape[1]
        if not self.include_background and self.background_index >= num_classes:
            raise ValueError(f"background_index {self.background_index} is not a channel of {num_classes} channels.")
        if self.softmax and num_classes < 2:
            raise ValueError(f"softmax=True needs at least 2 channels, got {num_classes}.")
        probabilities = torch.softmax(input, dim=1) if self.softmax else input
        one_hot = _one_hot_target(target, num_classes, input.shape[2:]).to(probabilities.dtype)
        difference = self.edge_maps(self._foreground(probabilities)) - self.edge_maps(self._foreground(one_hot))
        if self.distance == "mse":
            return difference.pow(2).mean()
        # ||.||_2 over the pixels of each (sample, class, direction); sum over classes and directions; batch mean
        norms = torch.linalg.vector_norm(difference.flatten(3), ord=2, dim=-1)
        if self.distance == "rms":
            norms = norms / difference[0, 0, 0].numel() ** 0.5
        return norms.sum(dim=(1, 2)).mean()


class CompositeSegmentationLoss(nn.Module):
    """The paper's "composite segmentation loss" ``L_seg = L_wce + lambda L_edge`` of the cascaded U-Net.

    Chen, Ouyang et al., section 2.2: ``L_wce = -sum_m w^m y^m log(p^m)`` (weighted cross-entropy) and ``L_edge``
    the Sobel edge loss (:class:`SobelEdgeLoss`, foreground classes only), with ``lambda = 0.5``; section 3.2: class
    weights BG : LV : MYO : RV = 0.2 : 0.25 : 0.3 : 0.25. Both U-Nets of the cascade are trained with it.

    ``L_wce`` is the paper's per-pixel sum averaged over the pixels: ``mean_i w_{y_i} (-log p_{y_i})``
    (``ce_normalization="pixels"``, default). PyTorch's ``cross_entropy(weight=...)`` divides by ``sum_i w_{y_i}``
    instead (``ce_normalization="weights"``), which undoes the overall scale of the weights.

    Shapes: ``logits`` ``(B, C, H, W)`` (C = 4: BG, LV, MYO, RV), ``target`` class indices ``(B, 1, H, W)`` or
    ``(B, H, W)``. ``forward`` returns the scalar total; :meth:`terms` returns
    ``{"loss": total, "loss_wce": L_wce, "loss_edge": L_edge}`` so a trainer can log each term.

    Args:
        class_weights: ``w^m`` per class, in channel order (paper ``(0.2, 0.25, 0.3, 0.25)``).
        lambda_edge: ``lambda`` (paper 0.5).
        edge_distance: ``"l2"`` (paper), ``"rms"`` or ``"mse"``, see :class:`SobelEdgeLoss`.
        background_index: the BG channel excluded from ``L_edge`` (0).
        ce_normalization: ``"pixels"`` (default) or ``"weights"``.

    Raises:
        ValueError: naming the offending argument; in ``forward`` when ``class_weights`` does not match the channels.

    Examples::

        >>> CompositeSegmentationLoss()(torch.randn(2, 4, 16, 16), torch.randint(0, 4, (2, 16, 16))).shape
        torch.Size([])
    """

    def __init__(
        self,
        class_weights: Sequence[float] = PAPER_CLASS_WEIGHTS,
        lambda_edge: float = PAPER_LAMBDA_EDGE,
        edge_distance: str = "l2",
        background_index: int = 0,
        ce_normalization: str = "pixels",
    ) -> None:
        super().__init__()
        class_weights = tuple(float(w) for w in class_weights)
        if len(class_weights) < 2 or any(w < 0 for w in class_weights) or not any(class_weights):
            raise ValueError(
                f"class_weights must be >= 2 non-negative numbers, not all 0, got {class_weights!r} "
                "(paper: BG/LV/MYO/RV 0.2/0.25/0.3/0.25)."
            )
        if float(lambda_edge) < 0:
            raise ValueError(f"lambda_edge must be >= 0, got {lambda_edge!r}.")
        if ce_normalization not in CE_NORMALIZATIONS:
            raise ValueError(f"ce_normalization must be one of {CE_NORMALIZATIONS}, got {ce_normalization!r}.")
        self.lambda_edge = float(lambda_edge)
        self.ce_normalization = ce_normalization
        self.register_buffer("class_weights", torch.tensor(class_weights))
        self.edge_loss = SobelEdgeLoss(softmax=True, background_index=background_index, distance=edge_distance)

    def weighted_cross_entropy(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``L_wce``: ``mean_i w_{y_i} (-log softmax(logits)_{y_i})`` (``"pixels"``) or divided by ``sum_i w_{y_i}``."""
        if logits.shape[1] != len(self.class_weights):
            raise ValueError(
                f"class_weights has {len(self.class_weights)} entries but logits have {logits.shape[1]} channels."
            )
        one_hot = _one_hot_target(target, logits.shape[1], logits.shape[2:])
        weights = self.class_weights.to(device=logits.device, dtype=torch.float32)
        weight_map = (one_hot * weights.view(1, -1, *([1] * (logits.ndim - 2)))).sum(dim=1)
        nll = -(torch.log_softmax(logits.float(), dim=1) * one_hot).sum(dim=1)
        if self.ce_normalization == "weights":
            return (weight_map * nll).sum() / weight_map.sum().clamp_min(torch.finfo(torch.float32).tiny)
        return (weight_map * nll).mean()

    def terms(self, logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"loss": L_seg, "loss_wce": L_wce, "loss_edge": L_edge}`` (the two terms unweighted by lambda)."""
        loss_wce = self.weighted_cross_entropy(logits, target)
        loss_edge = self.edge_loss(logits.float(), target)
        return {"loss": loss_wce + self.lambda_edge * loss_edge, "loss_wce": loss_wce, "loss_edge": loss_edge}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            logits: ``(B, C, H, W)`` raw logits.
            target: class indices ``(B, 1, H, W)`` or ``(B, H, W)``.

        Returns:
            the scalar ``L_wce + lambda_edge * L_edge``.
        """
        return self.terms(logits, target)["loss"]
