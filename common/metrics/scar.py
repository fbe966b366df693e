"""Clinical scar metrics: scar ratio of the myocardium and scar size."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from common.metrics._utils import as_bool_mask, as_spacing, check_same_shape, to_numpy
from common.metrics.roc_auc import roc_auc

__all__ = ["scar_auc", "scar_ratio", "scar_size"]


def scar_ratio(scar_mask: Any, myocardium_mask: Any) -> float:
    """Fraction of the myocardium that is scar: ``|scar| / |myocardium ∪ scar|``.

    Xu, C. et al. "Contrast agent-free synthesis and segmentation of ischemic heart disease images using
    progressive sequential causal GANs" (PSCGAN), Medical Image Analysis 62, 2020, Table 2 (scar ratio, the
    clinical index compared with Pearson r and Bland-Altman).

    Scar is part of the myocardium, so the denominator is the union of both masks: passing either the whole
    myocardium (EMIDEC labels 2-4) or only the healthy myocardium (EMIDEC label 2) gives the same ratio.

    Args:
        scar_mask: scar (infarct, optionally with no-reflow) mask, nonzero = scar; numpy array or torch tensor.
        myocardium_mask: myocardium mask of the same shape, with or without the scar.

    Returns:
        The ratio in [0, 1]; ``nan`` when both masks are empty (no myocardium: undefined).

    Raises:
        ValueError: naming ``scar_mask``/``myocardium_mask`` when the shapes differ.

    Examples::

        >>> scar_ratio(np.array([1, 0, 0, 0]), np.array([1, 1, 1, 1]))
        0.25
    """
    scar = as_bool_mask(scar_mask, "scar_mask")
    myocardium = as_bool_mask(myocardium_mask, "myocardium_mask")
    check_same_shape(scar, myocardium, "scar_mask", "myocardium_mask")
    denominator = int(np.logical_or(scar, myocardium).sum())
    if denominator == 0:
        return float("nan")
    return int(scar.sum()) / denominator


def scar_size(scar_mask: Any, spacing: float | Sequence[float] | None = None) -> float:
    """Scar size: the number of scar elements times the element area/volume (mm^2 in 2D, mm^3 in 3D).

    PSCGAN (Xu et al., Medical Image Analysis 62, 2020), Table 2 (scar size).

    Args:
        scar_mask: scar mask (nonzero = scar), numpy array or torch tensor, any dimension.
        spacing: element size per axis (scalar = isotropic, ``None`` = 1.0, giving a count).

    Returns:
        The scar size in the unit of ``spacing`` to the power of the mask dimension.

    Raises:
        ValueError: naming ``spacing`` when its length does not match the mask dimension.

    Examples::

        >>> scar_size(np.ones((2, 3)), spacing=(0.5, 2.0))
        6.0
    """
    scar = as_bool_mask(scar_mask, "scar_mask")
    element = float(np.prod(as_spacing(spacing, scar.ndim)))
    return float(scar.sum()) * element


def scar_auc(scar_score: Any, scar_mask: Any, myocardium_mask: Any) -> float:
    """How well a scar score ranks the true scar above the healthy myocardium: the ROC AUC of ``scar_score`` over the
    scar elements against the healthy myocardium elements (``myocardium_mask`` minus ``scar_mask``).

    A threshold-free view of a segmenter's scar output (e.g. its scar probability) inside the true myocardium: it is
    above 0.5 when the network ranks scarred wall above healthy wall, even where no pixel's scar probability wins the
    argmax (PSCGAN, Xu et al., Medical Image Analysis 62, 2020: scar shows in a cine only through the wall's motion,
    so this asks whether that signal reached the network's scar channel).

    Args:
        scar_score: the score per element (higher = more likely scar), same shape as the masks.
        scar_mask: true scar, nonzero = scar.
        myocardium_mask: true myocardium, with or without the scar (only its non-scar part is used).

    Returns:
        The AUC in [0, 1]; ``nan`` when there is no scar or no healthy myocardium (undefined).

    Raises:
        ValueError: naming the argument whose shape differs, or non-finite scores.

    Examples::

        >>> scar_auc(np.array([0.9, 0.2, 0.1, 0.5]), np.array([1, 0, 0, 0]), np.array([1, 1, 1, 0]))
        1.0
    """
    scar = as_bool_mask(scar_mask, "scar_mask")
    myocardium = as_bool_mask(myocardium_mask, "myocardium_mask")
    check_same_shape(scar, myocardium, "scar_mask", "myocardium_mask")
    score = np.asarray(to_numpy(scar_score, "scar_score"), dtype=np.float64)
    check_same_shape(score, scar, "scar_score", "scar_mask")
    return roc_auc(score[scar], score[myocardium & ~scar])
