"""Private base of the image-quality metric handlers: ``(y_pred, y)`` or ``(y_pred, y, mask)`` from the output."""

from __future__ import annotations

__all__ = ["MaskedMetricHandler"]

from collections.abc import Sequence
from typing import Any

import torch
from ignite.metrics.metric import reinit__is_reduced
from monai.handlers import IgniteMetricHandler


class MaskedMetricHandler(IgniteMetricHandler):
    """``IgniteMetricHandler`` whose ``output_transform`` may also return a mask, passed as ``mask=`` to the metric.

    ``output_transform=from_engine(["pred", "lge"])`` scores whole images;
    ``from_engine(["pred", "image_hr", "foreground"])`` scores inside each case's foreground mask.
    Decollated lists go to the metric whole (its ``_compute_list`` pairs the cases), not unrolled by ignite, which
    accepts only pairs.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._skip_unrolling = True

    @reinit__is_reduced
    def update(self, output: Sequence[torch.Tensor]) -> None:
        """``output``: ``(y_pred, y)`` or ``(y_pred, y, mask)``, batch-first tensors or lists of channel-first ones."""
        if len(output) == 3:
            y_pred, y, mask = output
            self.metric_fn(y_pred, y, mask=mask)
            return
        super().update(output)
