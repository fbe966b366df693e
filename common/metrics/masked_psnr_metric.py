"""``masked_psnr`` as a MONAI cumulative metric, one value per case."""

from __future__ import annotations

__all__ = ["MaskedPSNRMetric"]

import numpy as np
from common.metrics._per_case_metric import PerCaseMetric
from common.metrics.image_quality import masked_psnr


class MaskedPSNRMetric(PerCaseMetric):
    """PSNR ``10 log10(R^2 / MSE)`` per case and channel with the MSE inside an optional mask (``masked_psnr``).

    Inputs ``y_pred``, ``y``: ``(B, C, *S)`` images (or lists of ``(C, *S)``), compared in float32 as the bundles
    store them; optional ``mask=`` ``(B, 1 or C, *S)`` (nonzero = inside; ``None``: the whole image). Output of a
    call: ``(B, C)`` float64 dB (``inf`` for identical images). ``aggregate()`` is the mean of the finite values.

    Args:
        data_range: the value range ``R`` of the images (2.0 for a Tanh range ``[-1, 1]``); ``None`` takes
            ``max - min`` of each reference inside its mask.

    Raises:
        ValueError: naming ``data_range`` when not positive, and the inputs when their shapes differ.

    Examples::

        MaskedPSNRMetric(data_range=2.0)(translated, real_lge)  # (B, 1, 64, 64) x 2 -> (B, 1)
    """

    def __init__(self, data_range: float | None = None) -> None:
        super().__init__()
        if data_range is not None and not (np.isfinite(data_range) and data_range > 0):
            raise ValueError(f"data_range must be finite and positive (or None), got {data_range!r}.")
        self.data_range = None if data_range is None else float(data_range)

    def _case_value(self, pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None) -> float:
        return masked_psnr(pred.astype(np.float32), target.astype(np.float32), mask, data_range=self.data_range)
