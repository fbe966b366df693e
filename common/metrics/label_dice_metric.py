"""``dice`` of one label on integer label maps as a MONAI cumulative metric, one value per case."""

from __future__ import annotations

__all__ = ["LabelDiceMetric"]

import numpy as np
from common.metrics._per_case_metric import PerCaseMetric
from common.metrics.dice import dice


class LabelDiceMetric(PerCaseMetric):
    """Dice ``2|P ∩ T| / (|P| + |T|)`` of one label value between two integer label maps, per case.

    ``common.metrics.dice`` with ``labels=label``: a label absent from both maps scores 1.0 (MONAI's ``DiceMetric``
    would give NaN or leave the case out). The inputs are label maps, not one-hot: e.g. a Segmentor's argmax
    against the manual mask, as in the Segmentor-agreement Dice of CycleGANSeg (Wang et al., section II.A).
    Inputs ``y_pred``, ``y``: ``(B, 1, *S)`` integer (or integral float) label maps, or lists of ``(1, *S)``.
    Output of a call: ``(B, 1)`` float64 in ``[0, 1]``; ``aggregate()`` is the mean over cases.

    Args:
        label: the label value scored (e.g. 1 for the infarct of a binary MI mask).

    Raises:
        ValueError: naming ``label`` when it is not an integer, and the inputs when their shapes differ or they
            hold non-integral values.

    Examples::

        LabelDiceMetric(label=1)(segmentor_masks, truth)  # (B, 1, 64, 64) x 2 -> (B, 1)
    """

    def __init__(self, label: int = 1) -> None:
        super().__init__()
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
            raise ValueError(f"label must be an integer label value, got {label!r}.")
        self.label = int(label)

    def _case_value(self, pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None) -> float:
        if mask is not None:
            raise ValueError("LabelDiceMetric compares whole label maps: mask is not supported.")
        return float(dice(pred, target, labels=self.label))
