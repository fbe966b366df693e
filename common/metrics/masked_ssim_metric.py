"""``masked_ssim`` as a MONAI cumulative metric, one value per case."""

from __future__ import annotations

__all__ = ["MaskedSSIMMetric"]

import numpy as np
from common.metrics._per_case_metric import PerCaseMetric
from common.metrics.image_quality import masked_ssim


class MaskedSSIMMetric(PerCaseMetric):
    """SSIM (Wang et al., IEEE TIP 2004) per case and channel, the map averaged inside an optional mask.

    ``masked_ssim``: Gaussian window sigma 1.5, K1 0.01, K2 0.03, map on the whole image, mean inside the mask.
    Inputs ``y_pred``, ``y``: ``(B, C, H, W)`` or ``(B, C, H, W, D)`` (or lists of ``(C, ...)``), compared in
    float32 as the bundles store them; each spatial axis the window runs along needs at least 7 elements; optional
    ``mask=`` ``(B, 1 or C, ...)``. Output of a call: ``(B, C)`` float64 in ``[-1, 1]``.

    Args:
        data_range: the value range of the images (2.0 for ``[-1, 1]``); ``None`` takes ``max - min`` of each
            reference inside its mask.
        slice_axis: for volumes, a 2D SSIM map per slice along this spatial axis (0, 1 or 2 of ``(H, W, D)``:
            thick-slice MRI); ``None`` uses a window of the input's dimensionality.

    Raises:
        ValueError: naming ``data_range`` or ``slice_axis`` when out of range, and the inputs when their shapes
            differ.

    Examples::

        MaskedSSIMMetric(data_range=2.0)(translated, real_lge)  # (B, 1, 64, 64) x 2 -> (B, 1)
    """

    def __init__(self, data_range: float | None = None, slice_axis: int | None = None) -> None:
        super().__init__()
        if data_range is not None and not (np.isfinite(data_range) and data_range > 0):
            raise ValueError(f"data_range must be finite and positive (or None), got {data_range!r}.")
        if slice_axis is not None and slice_axis not in (0, 1, 2):
            raise ValueError(f"slice_axis must be None, 0, 1 or 2 (a spatial axis of a volume), got {slice_axis!r}.")
        self.data_range = None if data_range is None else float(data_range)
        self.slice_axis = slice_axis

    def _case_value(self, pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None) -> float:
        return masked_ssim(
            pred.astype(np.float32),
            target.astype(np.float32),
            mask,
            data_range=self.data_range,
            slice_axis=self.slice_axis,
        )
