"""Average symmetric surface distance (mm) of one label on integer label maps as a MONAI cumulative metric."""

from __future__ import annotations

__all__ = ["LabelASDMetric"]

from typing import Any

import numpy as np
import torch
from common.metrics._per_case_metric import PerCaseMetric
from common.metrics.surface_distance import surface_distances
from monai.data import MetaTensor


def _spacings(reference: Any, spatial_dims: int, batch: int) -> list[list[float]]:
    """Voxel sizes (mm) of the spatial axes per case from a MetaTensor's affine (one per case when batched, else
    shared); 1.0 without one."""
    if not isinstance(reference, MetaTensor):
        return [[1.0] * spatial_dims] * batch
    affine = np.asarray(reference.affine, dtype=np.float64)
    affines = list(affine) if affine.ndim == 3 else [affine] * batch
    return [[float(np.linalg.norm(a[:-1, i])) for i in range(spatial_dims)] for a in affines]


class LabelASDMetric(PerCaseMetric):
    """ASD in mm of one label value between two integer label maps, per case (``common.metrics.surface_distances``).

    The spacing is read per call from the truth's affine (``y`` as a MetaTensor on its own grid; plain tensors count
    in voxels). A label missing from the prediction or the truth gives NaN (the paper's "N/A"), left out of
    ``aggregate()``'s mean; count them from the per-case values.

    Inputs ``y_pred``, ``y``: ``(B, 1, *S)`` integer label maps (or lists of ``(1, *S)``) on the same grid.

    Args:
        label: the label value scored (e.g. 500 for MS-CMRSeg's LV).

    Examples::

        LabelASDMetric(label=200)(prediction, truth)  # (1, 1, H, W, D) x 2 -> (1, 1) mm
    """

    def __init__(self, label: int = 1) -> None:
        super().__init__()
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise ValueError(f"label must be an integer label value, got {label!r}.")
        self.label = int(label)
        self._spacing: list[float] | None = None

    def _compute_tensor(  # type: ignore[override]
        self, y_pred: torch.Tensor, y: torch.Tensor | None = None, mask: torch.Tensor | None = None, **kwargs: Any
    ) -> torch.Tensor:
        if y is None:
            return super()._compute_tensor(y_pred, y, mask, **kwargs)  # the base names the missing reference
        rows = []  # one case at a time, each with the spacing of its own truth
        for case, spacing in enumerate(_spacings(y, y_pred.ndim - 2, y_pred.shape[0])):
            self._spacing = spacing
            case_mask = None if mask is None else mask[case : case + 1]
            rows.append(super()._compute_tensor(y_pred[case : case + 1], y[case : case + 1], case_mask, **kwargs))
        return torch.cat(rows, dim=0)

    def _case_value(self, pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None) -> float:
        if mask is not None:
            raise ValueError("LabelASDMetric compares whole label maps: mask is not supported.")
        spacing = self._spacing
        return float(surface_distances(pred == self.label, target == self.label, spacing=spacing)["asd"])
