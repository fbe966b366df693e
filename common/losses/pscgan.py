"""The loss terms of PSCGAN (Xu et al., "Contrast agent-free synthesis and segmentation of ischemic heart disease
images using progressive sequential causal GANs", Medical Image Analysis 62, 2020), section 5, eqs. 8-17.

- :func:`hinge_discriminator_loss`, :func:`hinge_generator_loss`: the hinge adversarial loss of all three phases
  (eqs. 10, 14, 16), on raw logits (no tanh, unlike MONAI's ``PatchAdversarialLoss(criterion="hinge")``).
- :class:`MultiClassBCE`: the "mce" of the priori generation and enhanced segmentation generators (eqs. 8-9, 16):
  per-class binary cross-entropy on the one-hot encoding, summed over the classes.
- :func:`overlapping_group_sparsity`: the overlapping group sparsity function ``phi`` (eqs. 12-13).
- :class:`SyntheticRegularizationLoss`: the synthesis generator's L2 + OGS anisotropic total variation (eq. 11).
- :class:`DiscriminatorContentLoss`: the synthetic content loss on the discriminator's conv 2-4 features (eq. 15).
- :func:`class_fractions`, :class:`PixelCountAuxLoss`: the self-supervised pixel-count auxiliary loss of the
  segmentation discriminator's linear head (eq. 17).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "DiscriminatorContentLoss",
    "MultiClassBCE",
    "PixelCountAuxLoss",
    "SyntheticRegularizationLoss",
    "class_fractions",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "overlapping_group_sparsity",
]

MCE_REDUCTIONS = ("sum", "mean", "none")
L2_TARGETS = ("truth", "paper")
#: added under the square root of the group norm: keeps its gradient finite where a whole group is 0 (a flat
#: region); it adds at most ``sqrt(eps) = 1e-6`` per pixel to ``phi``
OGS_EPS = 1e-12


def _as_float(tensor: torch.Tensor) -> torch.Tensor:
    """float32 for half/bfloat16/integer input (safe under autocast); float64 stays float64."""
    return tensor if tensor.dtype in (torch.float32, torch.float64) else tensor.float()


def _check_num_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}.")


def _class_maps(target: torch.Tensor, num_classes: int, name: str = "target") -> torch.Tensor:
    """Class indices ``(B, 1, H, W)`` / ``(B, H, W)`` or a one-hot/soft map ``(B, N, H, W)`` -> float ``(B, N, H, W)``.

    Raises:
        ValueError: for any other shape, non-integer or out-of-range class indices (naming the values found), or a
            one-hot/soft map with values outside ``[0, 1]``.
    """
    if target.ndim == 4 and target.shape[1] == num_classes:
        maps = _as_float(target)
        # the negated form also catches NaN
        if maps.numel() and not bool(((maps >= 0) & (maps <= 1)).all()):
            raise ValueError(
                f"{name} as a one-hot or probability map (B, {num_classes}, H, W) must lie in [0, 1], "
                f"got [{float(maps.min())}, {float(maps.max())}]."
            )
        return maps
    if target.ndim == 4 and target.shape[1] == 1:
        target = target[:, 0]
    if target.ndim != 3:
        raise ValueError(
            f"{name} must be class indices (B, 1, H, W) or (B, H, W), or a one-hot/probability map "
            f"(B, {num_classes}, H, W), got {tuple(target.shape)}."
        )
    if target.is_floating_point() and not torch.equal(target, target.round()):
        raise ValueError(f"{name} holds non-integer values; class indices must be whole numbers.")
    labels = target.long()
    outside = labels[(labels < 0) | (labels >= num_classes)]
    if outside.numel():
        found = sorted(int(value) for value in outside.unique())
        raise ValueError(f"{name} class indices must lie in [0, {num_classes - 1}], found values {found}.")
    return F.one_hot(labels, num_classes).permute(0, 3, 1, 2).float()


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's hinge adversarial loss, PSCGAN eq. 10 (and 14, 16).

    ``L_D = -E[min(0, -1 + D(real))] - E[min(0, -1 - D(G(x)))] = mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))``:
    zero once real logits are ``>= 1`` and fake logits ``<= -1``, linear inside the margin. The expectations are
    means over every element, so patch logits of any shape work (each patch is one sample); ``real_logits`` and
    ``fake_logits`` may differ in shape. Computed in float32.

    This is the hinge on the raw logits as the paper writes it. MONAI's ``PatchAdversarialLoss(criterion="hinge")``
    first squashes the logits with tanh: its real term becomes ``mean(1 - tanh(D(real)))``, which is never 0
    (``tanh < 1``), so the margin can never be met and the gradient ``1 - tanh^2`` vanishes for confident logits;
    its generator term is ``1 - tanh(D(fake))`` rather than ``-D(fake)``. That is a different loss, so it is not
    used here.

    Args:
        real_logits: raw discriminator output on real samples, any shape.
        fake_logits: raw discriminator output on generated samples, any shape.

    Returns:
        a scalar.

    Examples::

        >>> hinge_discriminator_loss(torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5]))
        tensor(1.)
    """
    real_term = -torch.clamp(_as_float(real_logits) - 1, max=0).mean()
    fake_term = -torch.clamp(-_as_float(fake_logits) - 1, max=0).mean()
    return real_term + fake_term


def hinge_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's hinge adversarial loss, PSCGAN eq. 10 (and 14, 16): ``L_G = -E[D(G(x))]``.

    The mean over every element of the raw logits (any shape; no tanh, see :func:`hinge_discriminator_loss`).
    Computed in float32.

    Examples::

        >>> hinge_generator_loss(torch.tensor([-2.0, 0.5]))
        tensor(0.7500)
    """
    return -_as_float(fake_logits).mean()


class MultiClassBCE(nn.Module):
    """PSCGAN's multi-class cross-entropy "mce" (eqs. 8-9, 16): binary cross-entropy per one-hot class channel.

    Xu et al., section 5.1: the generator's output and the ground truth are both encoded as one-hot vectors and each
    class is treated as its own binary problem (eq. 9):
    ``mce_n = -mean_{b, h, w} [y_n log p_n + (1 - y_n) log(1 - p_n)]``; eq. 8 sums over the ``N = 4`` classes:
    ``L = sum_{n=1}^N mce_n``. The ``1/N sum_n`` inside eq. 9 is read as the average over the samples (pixels), the
    symbol ``N`` being reused; the class sum is eq. 8's. ``p`` is clamped to ``[eps, 1 - eps]`` so that the logs stay
    finite (a clamped probability passes no gradient). Computed in float32.

    ``class_weights`` (a departure from the paper, off by default): ``w_c`` per class; every pixel's cross-entropy
    (all ``N`` channels) is multiplied by the weight of its true class, ``w . y`` for a soft target, as the
    class-balanced cross-entropy of Eigen and Fergus (ICCV 2015) and SegNet (Badrinarayanan et al., TPAMI 2017).
    :func:`common.data.median_frequency_weights` computes those weights from training labels (``w_c = median_f / f_c``).

    ``reduction`` sets what is returned:

    - ``"sum"`` (default, eq. 8): the sum over the classes of the per-class mean over batch and pixels, a scalar.
    - ``"mean"``: the mean over every element, i.e. the ``"sum"`` value divided by ``N``.
    - ``"none"``: the element-wise cross-entropy ``(B, N, H, W)``.

    Shapes: ``pred`` ``(B, N, H, W)`` probabilities (a softmax output, values in ``[0, 1]``); ``target`` class
    indices ``(B, 1, H, W)`` or ``(B, H, W)`` with values in ``[0, N - 1]`` (one-hot encoded inside; a float tensor of
    whole numbers is accepted), or a one-hot (or soft) map ``(B, N, H, W)`` in ``[0, 1]``.

    Args:
        num_classes: ``N`` (the paper: 4, scar / healthy myocardium / blood pool / other); at least 2.
        eps: the clamp of ``p`` (1e-6), in ``(0, 0.5)``.
        reduction: ``"sum"``, ``"mean"`` or ``"none"``.
        class_weights: ``None`` (the paper: unweighted) or ``N`` finite weights ``>= 0``, not all 0.

    Raises:
        ValueError: naming the bad argument; in ``forward`` for mismatched shapes, ``pred`` outside ``[0, 1]`` (logits
            passed instead of probabilities?), or class indices outside ``[0, N - 1]`` (naming the values found).

    Examples::

        >>> MultiClassBCE(num_classes=4)(torch.full((1, 4, 8, 8), 0.25), torch.zeros(1, 1, 8, 8)).shape
        torch.Size([])
    """

    def __init__(
        self,
        num_classes: int = 4,
        eps: float = 1e-6,
        reduction: str = "sum",
        class_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        _check_num_classes(num_classes)
        if not 0.0 < float(eps) < 0.5:
            raise ValueError(f"eps must lie in (0, 0.5), got {eps!r}.")
        if reduction not in MCE_REDUCTIONS:
            raise ValueError(f"reduction must be one of {MCE_REDUCTIONS}, got {reduction!r}.")
        self.num_classes = num_classes
        self.eps = float(eps)
        self.reduction = reduction
        weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32).flatten()
        if weights is not None:
            valid = weights.numel() == num_classes and bool(torch.isfinite(weights).all())
            if not (valid and bool((weights >= 0).all()) and bool((weights > 0).any())):
                raise ValueError(
                    f"class_weights must be {num_classes} finite weights >= 0, not all 0; got {class_weights!r}."
                )
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            pred: ``(B, N, H, W)`` class probabilities.
            target: class indices ``(B, 1, H, W)``/``(B, H, W)`` or a one-hot map ``(B, N, H, W)``.

        Returns:
            a scalar (``"sum"``, ``"mean"``) or ``(B, N, H, W)`` (``"none"``).
        """
        if pred.ndim != 4 or pred.shape[1] != self.num_classes:
            raise ValueError(f"pred must be (B, {self.num_classes}, H, W) probabilities, got {tuple(pred.shape)}.")
        probabilities = _as_float(pred)
        if probabilities.numel() and not bool(((probabilities >= 0) & (probabilities <= 1)).all()):
            raise ValueError(
                f"pred must be probabilities in [0, 1] (a softmax output, not logits), "
                f"got [{float(probabilities.min())}, {float(probabilities.max())}]."
            )
        onehot = _class_maps(target, self.num_classes).to(probabilities.dtype)
        if onehot.shape != probabilities.shape:
            raise ValueError(
                f"target {tuple(target.shape)} does not match pred {tuple(pred.shape)}: it must be (B, 1, H, W), "
                f"(B, H, W) or (B, {self.num_classes}, H, W) with the same B, H, W."
            )
        probabilities = probabilities.clamp(self.eps, 1 - self.eps)
        cross_entropy = -(onehot * torch.log(probabilities) + (1 - onehot) * torch.log(1 - probabilities))
        if self.class_weights is not None:  # each pixel weighted by its true class (w . y for a soft target)
            weights = self.class_weights.to(cross_entropy)
            cross_entropy = cross_entropy * torch.einsum("bnhw,n->bhw", onehot, weights).unsqueeze(1)
        if self.reduction == "none":
            return cross_entropy
        if self.reduction == "mean":
            return cross_entropy.mean()
        return cross_entropy.mean(dim=(0, 2, 3)).sum()


def overlapping_group_sparsity(u: torch.Tensor, group_size: int, eps: float = OGS_EPS) -> torch.Tensor:
    """The overlapping group sparsity function ``phi`` of PSCGAN eqs. 12-13 (Peyre and Fadili, 2011), per sample.

    ``phi(u) = sum_{i, j} ||u~_{i, j, K}||_2``, where ``u~_{i, j, K}`` is the ``K x K`` group of ``u`` with rows
    ``i - m1 .. i + m2`` and columns ``j - m1 .. j + m2``, ``m1 = floor((K - 1) / 2)``, ``m2 = floor(K / 2)`` (so the
    group is centred for odd ``K`` and reaches one pixel further down/right for even ``K``), and ``u = 0`` outside
    the image. Computed as ``sqrt(box_sum(u^2) + eps)``: ``avg_pool2d(u^2) * K^2`` over a zero padding of ``m1``
    before and ``m2`` after each axis, so there is one group per pixel.

    The paper sums over the pixels; here the group norms are **averaged** over pixels and channels, so a weight on
    ``phi`` does not depend on the image size. ``K = 1`` gives ``mean |u|`` (the anisotropic TV of a derivative
    image); larger ``K`` couples neighbouring derivatives, which favours smooth ramps over staircases.

    Shapes: ``u`` ``(B, C, H, W)`` -> ``(B,)``. Computed in float32 (float64 stays float64).

    Args:
        u: the image (in PSCGAN a forward difference of the synthesis).
        group_size: ``K >= 1``.
        eps: added under the square root (1e-12): the gradient stays finite on all-zero groups.

    Raises:
        ValueError: naming ``group_size`` or ``eps``, or when ``u`` is not 4-D.

    Examples::

        >>> overlapping_group_sparsity(torch.tensor([[[[3.0, -4.0]]]]), group_size=1)
        tensor([3.5000])
    """
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be an integer >= 1, got {group_size!r}.")
    if float(eps) < 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}.")
    if u.ndim != 4:
        raise ValueError(f"u must be (B, C, H, W), got {tuple(u.shape)}.")
    before, after = (group_size - 1) // 2, group_size // 2
    squared = F.pad(_as_float(u).pow(2), (before, after, before, after))
    group_energy = F.avg_pool2d(squared, kernel_size=group_size, stride=1) * group_size**2  # (B, C, H, W)
    # avg_pool2d's rounding can leave a tiny negative sum where the window is all zeros
    group_norm = torch.sqrt(group_energy.clamp_min(0) + eps)
    return group_norm.mean(dim=(1, 2, 3))


class SyntheticRegularizationLoss(nn.Module):
    """PSCGAN's synthetic regularization loss (eq. 11): L2 + overlapping-group-sparsity anisotropic TV.

    Xu et al., section 5.2, the loss of the synthesis generator ``G_Sys``:
    ``L = E[1/2 ||I_Sys - target||^2 + nu (phi(I_{i+1, j} - I_{i, j}) + phi(I_{i, j+1} - I_{i, j}))]`` with
    :func:`overlapping_group_sparsity` ``phi`` of group size ``K``. The forward differences are taken along H and
    W without padding (``(H - 1) x W`` and ``H x (W - 1)`` maps), and ``phi`` averages over their pixels and
    channels; the L2 term is the mean over every element (both are means where the paper has sums, so ``nu`` does
    not depend on the image size). The expectation is the mean over the batch. Computed in float32.

    ``l2_target``: eq. 11 literally reads ``1/2 ||I_Sys||_2^2``, a penalty on the output's magnitude that pulls
    every synthesis towards 0 (black), whatever the LGE image holds ("paper" reproduces it; it then depends on the
    output range, e.g. mid-grey is not 0 for a ``[0, 1]`` output). The term comes from the OGS-TV denoising model
    (Peyre and Fadili, 2011; ``1/2 ||f - g||^2 + nu phi(grad f)``), where the L2 term is the data fidelity to the
    observed image ``g`` and the TV term the regulariser; in paired synthesis the observation is the true LGE
    image, so the default ``"truth"`` uses ``1/2 ||I_Sys - I~_Sys||^2`` (the generator is otherwise tied to the
    ground truth only through the discriminator).

    Shapes: ``pred`` ``(B, C, H, W)`` with ``H, W >= 2``; ``target`` the same shape (required for ``"truth"``;
    shape-checked but unused by ``"paper"``). ``forward`` returns the scalar total; :meth:`terms` returns
    ``{"loss", "loss_l2", "loss_ogs_tv"}`` with ``loss = loss_l2 + nu * loss_ogs_tv`` (terms unweighted).

    Args:
        nu: weight of the OGS-TV term (0.1; the paper says only ``nu > 0`` and gives no value); ``>= 0``.
        group_size: ``K`` of eqs. 12-13 (3; not given in the paper either); ``K = 1`` is plain anisotropic TV.
        l2_target: ``"truth"`` (``1/2 ||pred - target||^2``) or ``"paper"`` (``1/2 ||pred||^2`` as printed).

    Raises:
        ValueError: naming the bad argument; in ``forward`` for bad shapes or a missing ``target`` in ``"truth"``.

    Examples::

        >>> SyntheticRegularizationLoss()(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)).item() < 1e-5
        True
    """

    def __init__(self, nu: float = 0.1, group_size: int = 3, l2_target: str = "truth") -> None:
        super().__init__()
        if float(nu) < 0:
            raise ValueError(f"nu must be >= 0, got {nu!r}.")
        if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
            raise ValueError(f"group_size must be an integer >= 1, got {group_size!r}.")
        if l2_target not in L2_TARGETS:
            raise ValueError(f"l2_target must be one of {L2_TARGETS}, got {l2_target!r}.")
        self.nu = float(nu)
        self.group_size = group_size
        self.l2_target = l2_target

    def terms(self, pred: torch.Tensor, target: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``{"loss", "loss_l2", "loss_ogs_tv"}`` for ``pred`` (and ``target``) ``(B, C, H, W)``."""
        if pred.ndim != 4 or pred.shape[2] < 2 or pred.shape[3] < 2:
            raise ValueError(f"pred must be (B, C, H, W) with H, W >= 2, got {tuple(pred.shape)}.")
        if target is None and self.l2_target == "truth":
            raise ValueError('l2_target="truth" needs a target (the real LGE image); got None.')
        if target is not None and target.shape != pred.shape:
            raise ValueError(f"target must have pred's shape {tuple(pred.shape)}, got {tuple(target.shape)}.")
        image = _as_float(pred)
        residual = image - _as_float(target) if self.l2_target == "truth" else image
        loss_l2 = 0.5 * residual.pow(2).mean()
        difference_h = image[:, :, 1:, :] - image[:, :, :-1, :]  # I_{i+1, j} - I_{i, j}
        difference_w = image[:, :, :, 1:] - image[:, :, :, :-1]  # I_{i, j+1} - I_{i, j}
        loss_ogs_tv = (
            overlapping_group_sparsity(difference_h, self.group_size)
            + overlapping_group_sparsity(difference_w, self.group_size)
        ).mean()
        loss = loss_l2 + self.nu * loss_ogs_tv
        return {"loss": loss, "loss_l2": loss_l2, "loss_ogs_tv": loss_ogs_tv}

    def forward(self, pred: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        """
        Args:
            pred: ``(B, C, H, W)`` synthesis ``I_Sys``.
            target: ``(B, C, H, W)`` real LGE image ``I~_Sys`` (``None`` allowed for ``"paper"``).

        Returns:
            the scalar ``loss_l2 + nu * loss_ogs_tv``.
        """
        return self.terms(pred, target)["loss"]


class DiscriminatorContentLoss(nn.Module):
    """PSCGAN's synthetic content loss (eq. 15): MSE between discriminator features of the real and the synthesis.

    Xu et al., section 5.2: for each chosen conv layer ``i`` of ``D_Sys`` (the paper: 2, 3 and 4, features after
    activation), ``mean_{x, y} (D^{Conv_i}(I~_Sys) - D^{Conv_i}(I_Sys))^2``; the loss is the mean over the chosen
    layers. Eq. 15 averages over ``W_i H_i``; here the mean also runs over channels and batch (the expectation).
    Computed in float32.

    Who minimises it: eq. 15 is listed with the discriminator's terms, but a discriminator that minimises it can
    zero it by mapping every input to the same features (e.g. zero weights in conv 2-4), collapsing the features
    its own adversarial term needs. It is used here as a feature-matching (perceptual, Johnson et al. 2016) loss
    for the **generator**: the real features are detached inside, the discriminator is frozen in the generator
    step, and gradients reach the synthesis through ``fake_features`` only.

    Shapes: ``real_features`` and ``fake_features`` are sequences of feature maps, one per conv layer (the PSCGAN
    discriminator returns 5 of them in its output dict under ``"features"``); the chosen layers must have matching
    shapes ``(B, C_i, H_i, W_i)`` (any shape, as long as real and fake agree). Returns a scalar.

    Args:
        layers: the 1-based conv layers to compare ((2, 3, 4)); distinct positive integers.

    Raises:
        ValueError: naming ``layers``; in ``forward`` when a list is too short for ``max(layers)`` or a chosen
            layer's shapes differ.

    Examples::

        >>> features = [torch.ones(1, 2, 4, 4)] * 5
        >>> DiscriminatorContentLoss()(features, features)
        tensor(0.)
    """

    def __init__(self, layers: Sequence[int] = (2, 3, 4)) -> None:
        super().__init__()
        layers = tuple(layers)
        if (
            not layers
            or any(isinstance(layer, bool) or not isinstance(layer, int) or layer < 1 for layer in layers)
            or len(set(layers)) != len(layers)
        ):
            raise ValueError(f"layers must be distinct 1-based conv layer numbers (integers >= 1), got {layers!r}.")
        self.layers = layers

    def forward(self, real_features: Sequence[torch.Tensor], fake_features: Sequence[torch.Tensor]) -> torch.Tensor:
        """
        Args:
            real_features: the discriminator's feature maps of the real image (detached inside).
            fake_features: the discriminator's feature maps of the synthesis.

        Returns:
            the scalar mean over ``layers`` of the per-layer mean squared difference.
        """
        needed = max(self.layers)
        if len(real_features) < needed or len(fake_features) < needed:
            raise ValueError(
                f"layers {self.layers} need at least {needed} feature maps, got {len(real_features)} real and "
                f"{len(fake_features)} fake."
            )
        per_layer = []
        for layer in self.layers:
            real, fake = real_features[layer - 1], fake_features[layer - 1]
            if real.shape != fake.shape:
                raise ValueError(
                    f"layer {layer}: real features {tuple(real.shape)} and fake features {tuple(fake.shape)} differ."
                )
            per_layer.append((_as_float(real.detach()) - _as_float(fake)).pow(2).mean())
        return torch.stack(per_layer).mean()


def class_fractions(labels_or_onehot: torch.Tensor, num_classes: int = 4) -> torch.Tensor:
    """The share of the image each class covers: pixel count / ``(H * W)``, the target of PSCGAN eq. 17's head.

    Xu et al., section 5.3: the segmentation discriminator's linear head regresses "the size (number of pixels)"
    of the 4 categories. Fractions are the counts divided by ``H * W``, a constant scale of eq. 17's counts that
    keeps the target in ``[0, 1]`` whatever the image size. For a soft map (probabilities) the "count" is the sum of
    the class probabilities, so the result is differentiable.

    Shapes: class indices ``(B, 1, H, W)`` or ``(B, H, W)`` in ``[0, N - 1]``, or a one-hot/probability map
    ``(B, N, H, W)`` in ``[0, 1]`` -> ``(B, N)`` (rows sum to 1 for labels, one-hot or a softmax). Float32.

    Args:
        labels_or_onehot: the segmentation.
        num_classes: ``N`` (4); at least 2.

    Raises:
        ValueError: naming ``num_classes``; for a bad shape, class indices outside ``[0, N - 1]`` (naming the values
            found), or map values outside ``[0, 1]``.

    Examples::

        >>> class_fractions(torch.tensor([[[0, 1], [1, 3]]]), num_classes=4)
        tensor([[0.2500, 0.5000, 0.0000, 0.2500]])
    """
    _check_num_classes(num_classes)
    maps = _class_maps(labels_or_onehot, num_classes, name="labels_or_onehot")
    return maps.sum(dim=(2, 3)) / (maps.shape[2] * maps.shape[3])


class PixelCountAuxLoss(nn.Module):
    """PSCGAN's self-supervised segmentation auxiliary loss (eq. 17) on the discriminator's pixel-count head.

    Xu et al., section 5.3: a linear layer at the end of ``D_Seg`` regresses the size of each of the 4 classes
    (``D^Aux``), and eq. 17 is ``E ||D^Aux(real) - D^Aux(G(x))||_1``. Sizes are :func:`class_fractions` (counts /
    ``(H * W)``, a constant scale of the paper's counts). Two uses:

    - :meth:`discriminator_terms` ``(aux_real, target_fractions)``: the self-supervised target that trains the head,
      ``||D^Aux(real) - fractions(true label)||_1``: the head learns to regress the size of each class. (Minimising
      eq. 17 itself in the discriminator step would only teach it to give real and fake the same output.)
    - :meth:`generator_terms` ``(aux_fake, aux_real)``: eq. 17 for the generator, ``||D^Aux(fake) -
      stopgrad(D^Aux(real))||_1``, with the discriminator frozen: the synthesis must have the class sizes that the
      head reads off the real pair.

    Both are ``forward(pred, target) = mean_b sum_n |pred_{b, n} - stopgrad(target_{b, n})|`` (the L1 norm over the
    ``N`` classes, the mean over the batch) and return that scalar (a single term each, so a tensor, not a dict: the
    trainer logs them as ``loss_d_aux`` and ``loss_aux``). Computed in float32.

    Shapes: ``(B, N)`` head outputs and targets of the same shape.

    Raises:
        ValueError: in ``forward`` when the shapes differ or are not ``(B, N)``.

    Examples::

        >>> PixelCountAuxLoss()(torch.tensor([[0.5, 0.5]]), torch.tensor([[0.25, 0.75]]))
        tensor(0.5000)
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            pred: ``(B, N)`` head output (gradients flow into it).
            target: ``(B, N)`` target (detached inside).

        Returns:
            the scalar ``mean_b ||pred_b - target_b||_1``.
        """
        if pred.ndim != 2 or pred.shape != target.shape:
            raise ValueError(
                f"pred and target must be (B, N) of the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}."
            )
        return (_as_float(pred) - _as_float(target.detach())).abs().sum(dim=1).mean()

    def discriminator_terms(self, aux_real: torch.Tensor, target_fractions: torch.Tensor) -> torch.Tensor:
        """The scalar ``L1(D^Aux(real), class_fractions(true label))``, both ``(B, N)``: trains the head."""
        return self(aux_real, target_fractions)

    def generator_terms(self, aux_fake: torch.Tensor, aux_real: torch.Tensor) -> torch.Tensor:
        """The scalar eq. 17, ``L1(D^Aux(fake), D^Aux(real).detach())``, both ``(B, N)``: trains the generator."""
        return self(aux_fake, aux_real)
