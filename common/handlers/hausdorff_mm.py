"""HD95 in millimetres from each prediction's own affine, as an ignite metric handler for MONAI evaluators."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from monai.data import MetaTensor
from monai.handlers import IgniteMetricHandler
from monai.metrics import CumulativeIterationMetric, HausdorffDistanceMetric

__all__ = ["HausdorffDistanceMMMetric", "HausdorffDistanceMM"]


def _spacing(image: torch.Tensor, spatial_dims: int) -> list[float]:
    if isinstance(image, MetaTensor):
        affine = np.asarray(image.affine, dtype=np.float64)
        return [float(np.linalg.norm(affine[:3, i])) if affine.shape[0] == 4 else 1.0 for i in range(spatial_dims)]
    return [1.0] * spatial_dims


class HausdorffDistanceMMMetric(CumulativeIterationMetric):
    """95th-percentile Hausdorff distance in mm, the spacing read per sample from the truth's affine.

    MONAI's `HausdorffDistanceMetric` takes `spacing` only as a call argument, which its handler never passes;
    a super-resolved mask has 8x finer spacing than its input, so the spacing must come from each sample's truth.
    Inputs are one-hot `(B, C, H, W[, D])`; background (channel 0) is excluded. Empty masks give NaN and are
    left out of the mean (documented in common/metrics).
    """

    def __init__(self, percentile: float = 95.0) -> None:
        super().__init__()
        self._metric = HausdorffDistanceMetric(include_background=False, percentile=percentile, reduction="none")

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        spatial_dims = y_pred.ndim - 2
        rows = []
        for i in range(y_pred.shape[0]):
            spacing = _spacing(y[i], spatial_dims)  # the truth's grid is the metric's grid
            rows.append(self._metric(y_pred[i : i + 1], y[i : i + 1], spacing=spacing))
        return torch.cat(rows, dim=0)

    def aggregate(self) -> torch.Tensor:
        data = self.get_buffer()
        if data is None:
            raise ValueError("no HD95 values were accumulated.")
        values = data.float()
        return torch.nanmean(values) if torch.isfinite(values).any() else torch.tensor(float("nan"))


class HausdorffDistanceMM(IgniteMetricHandler):
    """Handler form of `HausdorffDistanceMMMetric` for `key_val_metric` / `additional_metrics`."""

    def __init__(self, percentile: float = 95.0, output_transform: Callable = lambda x: x, save_details: bool = True):
        super().__init__(
            metric_fn=HausdorffDistanceMMMetric(percentile=percentile),
            output_transform=output_transform,
            save_details=save_details,
        )
