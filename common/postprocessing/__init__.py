"""Post-processing of segmentation outputs (MONAI-style transforms): dense CRF per slice, hierarchical morphology."""

from __future__ import annotations

from common.postprocessing.dense_crf import CRF_INSTALL_HINT, DenseCRF2d, DenseCRF2dd
from common.postprocessing.morphology import STAGES, HierarchicalMorphology, HierarchicalMorphologyd

__all__ = [
    "CRF_INSTALL_HINT",
    "DenseCRF2d",
    "DenseCRF2dd",
    "HierarchicalMorphology",
    "HierarchicalMorphologyd",
    "STAGES",
]
