"""TransMRSR's SR loss: L1 plus VGG19 content and Gram style terms (TransMRSR section 3.5, eqs. 12-15)."""

from __future__ import annotations

__all__ = [
    "VGG19Features",
    "gram_matrix",
    "ContentStyleLoss",
    "SuperResolutionLoss",
    "VGG19_LAYERS",
    "CONTENT_LAYERS",
    "STYLE_LAYERS",
    "PAPER_LAMBDA_PERCEPTUAL",
]

import logging
import math
import os
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers.factories import Act, Conv, Pool

logger = logging.getLogger(__name__)

#: torchvision's ``vgg19().features`` ("configuration E"): output channels of each 3x3 conv, "M" a 2x2 max-pool
VGG19_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
#: ``features`` indices of the public TransMRSR code's content loss: conv1_2, pool1, conv2_2 (before their ReLU)
CONTENT_LAYERS = (2, 4, 7)
#: ``features`` indices of its style loss: relu1_1, relu1_2, conv2_1, pool2, relu3_2
STYLE_LAYERS = (1, 3, 5, 9, 13)
#: section 3.5: ``L = L_1 + 0.5 (L_content + L_style)``
PAPER_LAMBDA_PERCEPTUAL = 0.5
#: ImageNet statistics that torchvision's VGG19 weights were trained with (RGB)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_FEATURES_PREFIX = "features."


class VGG19Features(nn.Sequential):
    """The 37 layers of torchvision's ``vgg19().features`` (Simonyan & Zisserman 2015, configuration E), frozen.

    Same layers, order and indices as torchvision (3x3 conv + ReLU blocks of 64, 64, M, 128, 128, M, 4 x 256, M,
    4 x 512, M, 4 x 512, M), so torchvision's state dict loads with :meth:`load`. The ReLUs are not in-place, so the
    output of a conv index is the conv's (pre-activation) output. Parameters are frozen and the module is in eval
    mode (it has no layer that depends on the mode). torchvision is not needed and nothing is downloaded: without
    :meth:`load` the weights are random.

    Shapes: ``(B, 3, H, W)`` ImageNet-normalised RGB -> ``{index: (B, C_index, H / 2^p, W / 2^p)}`` with ``p`` the
    pools up to and including that index.

    Examples::

        features = VGG19Features().load("vgg19.pth")(image, layers=(2, 4, 7))
    """

    def __init__(self) -> None:
        layers: list[nn.Module] = []
        in_channels = 3
        for item in VGG19_LAYERS:
            if item == "M":
                layers.append(Pool[Pool.MAX, 2](kernel_size=2, stride=2))
            else:
                layers.append(Conv[Conv.CONV, 2](in_channels, item, kernel_size=3, padding=1))
                layers.append(Act[Act.RELU](inplace=False))
                in_channels = item
        super().__init__(*layers)
        self.requires_grad_(False)
        self.eval()

    def load(self, path: str | os.PathLike) -> VGG19Features:
        """Load VGG19 weights from ``path`` and return ``self``.

        Args:
            path: a ``torch.save``d state dict: torchvision's full VGG19 (``features.N.weight``/``bias``; the
                ``classifier`` keys are ignored) or the features only (``N.weight``/``bias``).

        Raises:
            FileNotFoundError: naming ``path`` when there is no such file.
            ValueError: naming ``path`` and the first missing keys, or the shape mismatch.
        """
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"VGG19 weights file {os.fspath(path)!r} not found (a torchvision vgg19 state dict saved with "
                "torch.save; nothing is downloaded)."
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise ValueError(f"{os.fspath(path)!r} does not hold a state dict (got {type(state).__name__}).")
        if any(key.startswith(_FEATURES_PREFIX) for key in state):
            state = {k[len(_FEATURES_PREFIX) :]: v for k, v in state.items() if k.startswith(_FEATURES_PREFIX)}
        expected = list(self.state_dict())
        missing = [key for key in expected if key not in state]
        if missing:
            raise ValueError(
                f"{os.fspath(path)!r} is not a VGG19 state dict: {len(missing)} keys missing, first {missing[:5]} "
                f"(expected torchvision's 'features.N.weight' or 'N.weight')."
            )
        try:
            self.load_state_dict({key: state[key] for key in expected})
        except RuntimeError as error:
            raise ValueError(f"{os.fspath(path)!r} does not match VGG19's layers: {error}") from None
        return self

    def forward(self, x: torch.Tensor, layers: Sequence[int]) -> dict[int, torch.Tensor]:
        """Outputs after the layers ``layers`` (indices of ``features``); runs only up to ``max(layers)``."""
        wanted = set(_check_indices("layers", layers, len(self)))
        if not wanted:
            raise ValueError("layers must name at least one VGG19 features index.")
        outputs = {}
        for index in range(max(wanted) + 1):
            x = self[index](x)
            if index in wanted:
                outputs[index] = x
        return outputs


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix ``G = F F^T / (C H W)`` per sample (Gatys et al. 2016), in float32 (also under autocast).

    Args:
        features: ``(B, C, *spatial)`` feature maps, ``F`` their ``(B, C, H W)`` flattening.

    Returns:
        ``(B, C, C)``.
    """
    if features.ndim < 3:
        raise ValueError(f"features must be (B, C, *spatial), got {tuple(features.shape)}.")
    with torch.autocast(features.device.type, enabled=False):
        flat = features.float().flatten(2)
        return torch.bmm(flat, flat.transpose(1, 2)) / flat[0].numel()


class ContentStyleLoss(nn.Module):
    """VGG19 content (eq. 13) and style (eq. 14) terms of TransMRSR (section 3.5) on a frozen, locally loaded VGG19.

    ``L_content = sum_j MSE(phi_j(SR), phi_j(HR))`` over ``content_layers`` (Johnson et al. 2016) and ``L_style =
    sum_j MSE(G(phi_j(SR)), G(phi_j(HR)))`` over ``style_layers`` with ``G`` :func:`gram_matrix` (Gatys et al.). The
    paper names the 2nd, 4th, 7th and 10th VGG19 layers; the defaults are the public code's ``features`` indices
    (content conv1_2, pool1, conv2_2; style relu1_1, relu1_2, conv2_1, pool2, relu3_2). Single-channel images are
    repeated to RGB, then normalised with the ImageNet mean/std; the HR features carry no gradient.

    Shapes: ``sr``, ``hr`` ``(B, 1 or 3, H, W)`` in ``[0, 1]``; :meth:`terms` returns scalars.

    Args:
        vgg_weights: path of torchvision's VGG19 state dict (see :meth:`VGG19Features.load`).
        content_layers: ``features`` indices of the content term.
        style_layers: ``features`` indices of the style term.

    Raises:
        FileNotFoundError, ValueError: from :meth:`VGG19Features.load`; ValueError for an index outside
            ``[0, 36]`` or no index at all; in :meth:`terms` for inputs that are not 1 or 3 channels or that sit
            on another device than the loss.

    Examples::

        terms = ContentStyleLoss("vgg19.pth").terms(sr, hr)  # {"loss_content": ..., "loss_style": ...}
    """

    def __init__(
        self,
        vgg_weights: str | os.PathLike,
        content_layers: Sequence[int] = CONTENT_LAYERS,
        style_layers: Sequence[int] = STYLE_LAYERS,
    ) -> None:
        super().__init__()
        self.vgg = VGG19Features()
        self.content_layers = _check_indices("content_layers", content_layers, len(self.vgg))
        self.style_layers = _check_indices("style_layers", style_layers, len(self.vgg))
        if not self.content_layers and not self.style_layers:
            raise ValueError("content_layers and style_layers are both empty: there is no perceptual term.")
        self.vgg.load(vgg_weights)
        self.layers = sorted({*self.content_layers, *self.style_layers})
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def normalise(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 1 or 3, H, W)`` in ``[0, 1]`` -> ImageNet-normalised ``(B, 3, H, W)``."""
        if image.ndim != 4 or image.shape[1] not in (1, 3):
            raise ValueError(f"images must be (B, 1, H, W) or (B, 3, H, W), got {tuple(image.shape)}.")
        if image.shape[1] == 1:
            image = image.expand(-1, 3, -1, -1)
        return (image - self.mean) / self.std

    def terms(self, sr: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"loss_content": ..., "loss_style": ...}`` (scalars, with graph through ``sr``)."""
        if self.mean.device != sr.device:
            raise ValueError(
                f"the VGG19 of the perceptual loss is on {self.mean.device} but the images on {sr.device}: move the "
                "loss to the training device (loss.to(device))."
            )
        sr_features = self.vgg(self.normalise(sr), self.layers)
        with torch.no_grad():
            hr_features = self.vgg(self.normalise(hr), self.layers)
        content = sum((F.mse_loss(sr_features[j], hr_features[j]) for j in self.content_layers), sr.new_zeros(()))
        style = sr.new_zeros(())
        for j in self.style_layers:
            style = style + F.mse_loss(gram_matrix(sr_features[j]), gram_matrix(hr_features[j]))
        return {"loss_content": content, "loss_style": style}

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """``L_content + L_style``."""
        terms = self.terms(sr, hr)
        return terms["loss_content"] + terms["loss_style"]


class SuperResolutionLoss(nn.Module):
    """TransMRSR's total objective (section 3.5, eq. 15): ``L = L_1 + lambda (L_content + L_style)``, lambda 0.5.

    ``L_1`` is the mean absolute error (eq. 12); content and style are :class:`ContentStyleLoss`. Without
    ``vgg_weights`` the perceptual terms are off: the loss is ``L_1`` alone, content and style are reported as 0,
    and a warning says so once, when the loss is built (``uses_perceptual`` is False). The VGG weights are never
    downloaded.

    Shapes: ``sr``, ``hr`` ``(B, 1 or 3, H, W)`` in ``[0, 1]``; returns a scalar. Move the module to the training
    device (``.to(device)``) when it holds a VGG19.

    Args:
        lambda_perceptual: ``lambda``, the weight of ``L_content + L_style`` (paper 0.5).
        vgg_weights: path of torchvision's VGG19 state dict (``features.N.weight`` keys), or ``None`` for L1 only.
        content_layers, style_layers: VGG19 ``features`` indices, see :class:`ContentStyleLoss`.

    Raises:
        ValueError: ``lambda_perceptual`` negative or not finite; the errors of :class:`ContentStyleLoss`.

    Examples::

        loss = SuperResolutionLoss(vgg_weights="models/vgg19.pth").to(device)
        loss.terms(sr, hr)  # {"loss": ..., "loss_l1": ..., "loss_content": ..., "loss_style": ...}
    """

    def __init__(
        self,
        lambda_perceptual: float = PAPER_LAMBDA_PERCEPTUAL,
        vgg_weights: str | os.PathLike | None = None,
        content_layers: Sequence[int] = CONTENT_LAYERS,
        style_layers: Sequence[int] = STYLE_LAYERS,
    ) -> None:
        super().__init__()
        self.lambda_perceptual = _check_weight("lambda_perceptual", lambda_perceptual)
        self.uses_perceptual = vgg_weights is not None
        self.content_style: ContentStyleLoss | None = None
        if self.uses_perceptual:
            self.content_style = ContentStyleLoss(vgg_weights, content_layers, style_layers)
        else:
            logger.warning(
                "SuperResolutionLoss: no VGG19 weights were given, so the perceptual terms (content and style) are "
                "off and the loss is L1 only. To use them, set the `vgg_weights` config path to a file holding "
                "torchvision's vgg19 state dict (torch.save(torchvision.models.vgg19(weights='IMAGENET1K_V1')"
                ".state_dict(), path) on a machine with torchvision)."
            )

    def terms(self, sr: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"loss": total, "loss_l1": ..., "loss_content": ..., "loss_style": ...}`` (scalars; total with graph)."""
        l1 = F.l1_loss(sr, hr)
        if self.content_style is None:
            content = style = l1.new_zeros(())
        else:
            perceptual = self.content_style.terms(sr, hr)
            content, style = perceptual["loss_content"], perceptual["loss_style"]
        total = l1 + self.lambda_perceptual * (content + style)
        return {"loss": total, "loss_l1": l1, "loss_content": content, "loss_style": style}

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """The total ``L``."""
        return self.terms(sr, hr)["loss"]


def _check_weight(name: str, value: float) -> float:
    """``value`` as a float; ``ValueError`` naming ``name`` unless a finite number >= 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return number


def _check_indices(name: str, indices: Sequence[int], count: int) -> tuple[int, ...]:
    """``indices`` as a tuple of ints in ``[0, count)``; ``ValueError`` naming ``name`` otherwise."""
    checked = tuple(indices)
    if any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < count for i in checked):
        raise ValueError(f"{name} must be VGG19 features indices in [0, {count - 1}], got {indices!r}.")
    return checked
