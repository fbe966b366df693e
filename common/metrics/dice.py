"""Dice similarity coefficient on integer label maps."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from common.metrics._utils import check_same_shape, to_numpy

__all__ = ["dice"]


def _as_label_map(value: Any, name: str) -> np.ndarray:
    array = to_numpy(value, name)
    if array.dtype == bool:
        return array.astype(np.int64)
    if np.issubdtype(array.dtype, np.integer):
        return array
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise ValueError(
                f"`{name}` must be an integer label map (e.g. after argmax), got non-integer float values."
            )
        return array.astype(np.int64)
    raise ValueError(f"`{name}` must be an integer label map, got dtype {array.dtype}.")


def dice(
    pred: Any, target: Any, labels: int | Sequence[int] | None = None, include_background: bool = False
) -> np.ndarray | float:
    """Dice similarity coefficient ``2|P ∩ T| / (|P| + |T|)`` per label of two integer label maps.

    Dice, L. R. "Measures of the amount of ecologic association between species." Ecology 26(3), 1945.
    The standard overlap measure of the cardiac segmentation challenges (ACDC, MS-CMRSeg, EMIDEC).

    The two maps are compared over all their elements, so pass one case (an image or a volume) at a time;
    leading batch/channel axes are treated as more spatial axes.

    Empty-vs-empty rule: a label absent from both ``pred`` and ``target`` scores **1.0** (nothing to find,
    nothing found); a label present in only one of them scores 0.0.

    Args:
        pred: predicted label map, numpy array or torch tensor of integers (bool, or floats holding integral
            values such as the output of ``AsDiscrete(argmax=True)``), any shape.
        target: reference label map of the same shape.
        labels: the label value(s) to score. An ``int`` returns a ``float``; a sequence returns an array with one
            entry per label in the given order. ``None`` scores every value present in ``pred`` or ``target``
            (sorted), without 0 unless ``include_background``.
        include_background: with ``labels=None``, also score label 0. Ignored when ``labels`` is given.

    Returns:
        ``float`` for a single ``int`` label, else a float64 array of shape ``(len(labels),)``.

    Raises:
        ValueError: naming ``pred``/``target`` when shapes differ or values are not integral, and ``labels``
            when it is empty.

    Examples::

        >>> dice(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 1]]), labels=1)
        0.8
    """
    pred_np = _as_label_map(pred, "pred")
    target_np = _as_label_map(target, "target")
    check_same_shape(pred_np, target_np, "pred", "target")

    single = isinstance(labels, (int, np.integer)) and not isinstance(labels, bool)
    if labels is None:
        label_list = [int(v) for v in np.union1d(np.unique(pred_np), np.unique(target_np))]
        if not include_background:
            label_list = [v for v in label_list if v != 0]
    elif single:
        label_list = [int(labels)]  # type: ignore[arg-type]
    else:
        label_list = [int(v) for v in labels]  # type: ignore[union-attr]
        if len(label_list) == 0:
            raise ValueError("`labels` must not be empty.")

    scores = np.empty(len(label_list), dtype=np.float64)
    for i, label in enumerate(label_list):
        p = pred_np == label
        t = target_np == label
        denominator = int(p.sum()) + int(t.sum())
        scores[i] = 1.0 if denominator == 0 else 2.0 * int(np.logical_and(p, t).sum()) / denominator
    if single:
        return float(scores[0])
    return scores
