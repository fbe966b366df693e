"""Evaluation metrics on numpy arrays or torch tensors: Dice, ASD/HD95 in mm, masked PSNR/SSIM/NRMSE, scar
ratio and scar AUC.

Every function takes one case (an image or a volume) at a time and returns plain Python/numpy numbers; the
conventions for empty masks are stated in each docstring (Dice: empty-vs-empty = 1.0; surface distances: nan).
The ``*Metric`` classes wrap these functions as MONAI cumulative metrics (one value per case, for evaluators; their
ignite handlers are in ``common.handlers``).
"""

from __future__ import annotations

from common.metrics.cardiac_clinical import (
    aha_segments,
    bland_altman_plot,
    clinical_metrics,
    cohort_agreement,
    find_rv_insertion,
    lv_centre,
    segment_detection,
    segment_scar,
    slice_level,
)
from common.metrics.dice import dice
from common.metrics.image_quality import masked_nrmse, masked_psnr, masked_ssim
from common.metrics.label_asd_metric import LabelASDMetric
from common.metrics.label_dice_metric import LabelDiceMetric
from common.metrics.masked_psnr_metric import MaskedPSNRMetric
from common.metrics.masked_ssim_metric import MaskedSSIMMetric
from common.metrics.pixel_classification import pixel_classification
from common.metrics.roc_auc import roc_auc
from common.metrics.scar import scar_auc, scar_ratio, scar_size
from common.metrics.surface_distance import surface_distances

__all__ = [
    "dice",
    "surface_distances",
    "masked_psnr",
    "masked_ssim",
    "masked_nrmse",
    "roc_auc",
    "scar_auc",
    "scar_ratio",
    "scar_size",
    "LabelASDMetric",
    "LabelDiceMetric",
    "MaskedPSNRMetric",
    "MaskedSSIMMetric",
    "aha_segments",
    "bland_altman_plot",
    "clinical_metrics",
    "cohort_agreement",
    "find_rv_insertion",
    "lv_centre",
    "segment_detection",
    "segment_scar",
    "slice_level",
    "pixel_classification",
]
