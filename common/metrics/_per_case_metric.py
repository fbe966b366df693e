"""Private base of the per-case metric classes: one value per case and channel from a numpy metric function."""

from __future__ import annotations

__all__ = ["PerCaseMetric"]

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from common.metrics._utils import to_numpy
from monai.metrics import CumulativeIterationMetric


class PerCaseMetric(CumulativeIterationMetric):
    """Base of ``MaskedPSNRMetric``, ``MaskedSSIMMetric`` and ``LabelDiceMetric``.

    ``y_pred`` and ``y`` are ``(B, C, *S)`` tensors (or lists of ``(C, *S)``); ``_case_value`` is called on every
    ``(*S)`` pair (and the case's mask, ``(*S)``, when a ``mask`` of shape ``(B, 1 or C, *S)`` is given). The buffer
    holds ``(N, C)`` float64 values, which ``MetricsSaver`` writes one row per case; ``aggregate`` is the mean over
    the cases of the per-case channel mean, leaving out non-finite values (an infinite PSNR of identical images, a
    NaN), so that it equals the mean of the finite per-case values that the bundles reported before.
    """

    def _case_value(self, pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None) -> float:
        raise NotImplementedError(f"{type(self).__name__} must implement _case_value.")

    def _compute_list(self, y_pred: Any, y: Any = None, mask: Any = None, **kwargs: Any) -> torch.Tensor:
        if y is None or not isinstance(y_pred, Sequence) or not isinstance(y, Sequence) or len(y_pred) != len(y):
            raise ValueError("y_pred and y must be lists of channel-first tensors of the same length.")
        masks = mask if isinstance(mask, Sequence) else [mask] * len(y_pred)
        if len(masks) != len(y_pred):
            raise ValueError(f"mask must have one entry per case ({len(y_pred)}), got {len(masks)}.")
        rows = [
            self._compute_tensor(
                torch.as_tensor(p)[None], torch.as_tensor(t)[None], None if m is None else torch.as_tensor(m)[None]
            )
            for p, t, m in zip(y_pred, y, masks)
        ]
        return torch.cat(rows, dim=0)

    def _compute_tensor(  # type: ignore[override]
        self, y_pred: torch.Tensor, y: torch.Tensor | None = None, mask: torch.Tensor | None = None, **kwargs: Any
    ) -> torch.Tensor:
        if y is None:
            raise ValueError(f"{type(self).__name__} needs y (the reference), got None.")
        pred_np, target_np = to_numpy(y_pred, "y_pred"), to_numpy(y, "y")
        if pred_np.shape != target_np.shape or pred_np.ndim < 3:
            raise ValueError(
                f"y_pred and y must be (B, C, *spatial) of the same shape, got {pred_np.shape} and {target_np.shape}."
            )
        mask_np = None if mask is None else to_numpy(mask, "mask")
        if mask_np is not None and (
            mask_np.shape[0] != pred_np.shape[0]
            or mask_np.shape[1] not in (1, pred_np.shape[1])
            or mask_np.shape[2:] != pred_np.shape[2:]
        ):
            raise ValueError(f"mask must be (B, 1 or C, *spatial) like y {target_np.shape}, got {mask_np.shape}.")
        values = np.empty(pred_np.shape[:2], dtype=np.float64)
        for b in range(pred_np.shape[0]):
            for c in range(pred_np.shape[1]):
                case_mask = None if mask_np is None else mask_np[b, min(c, mask_np.shape[1] - 1)]
                values[b, c] = self._case_value(pred_np[b, c], target_np[b, c], case_mask)
        return torch.from_numpy(values)

    def aggregate(self) -> torch.Tensor:  # type: ignore[override]
        """Mean over the cases of their channel mean, over finite values only; NaN when there is none."""
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError(f"{type(self).__name__}: the buffer is not a tensor ({type(data).__name__}).")
        values = data.detach().cpu().double().numpy().reshape(data.shape[0], -1)
        per_case = values[:, 0] if values.shape[1] == 1 else np.nanmean(values, axis=1)
        finite = per_case[np.isfinite(per_case)]
        return torch.tensor(float(finite.mean()) if finite.size else float("nan"), dtype=torch.float64)
