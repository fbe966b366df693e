"""Pixel classification scores of a multi-class label map: accuracy, sensitivity and specificity per class."""

from __future__ import annotations

from typing import Any

import numpy as np
from common.metrics._utils import check_same_shape, to_numpy

__all__ = ["pixel_classification"]


def pixel_classification(pred: Any, target: Any, num_classes: int) -> dict[str, float]:
    """One-vs-rest pixel accuracy, sensitivity and specificity per class, their means, and the overall accuracy.

    PSCGAN (Xu et al., Medical Image Analysis 62, 2020), section 6.5 and Table 1: "overall pixel segmentation
    accuracy" (the fraction of pixels with the right class), "sensitivity" and "specificity" (read here as the means
    over the classes of the one-vs-rest values: the paper does not define them further), and the accuracy of each
    class (one-vs-rest: the pixels rightly called that class or rightly called another).

    Args:
        pred: integer label map (one case), values in ``0..num_classes-1``.
        target: reference of the same shape.
        num_classes: number of classes, background included.

    Returns:
        ``accuracy`` and per class ``c``: ``accuracy_c``, ``sensitivity_c``, ``specificity_c`` (nan where the
        class is absent from the target: no positive to find), then ``sensitivity`` and ``specificity`` (nan-means
        over the classes).

    Raises:
        ValueError: shapes differ.

    Examples::

        >>> pixel_classification(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 3)["accuracy"]
        0.75
    """
    p, t = to_numpy(pred, "pred").astype(np.int64), to_numpy(target, "target").astype(np.int64)
    check_same_shape(p, t, "pred", "target")  # before flattening: a transposed map has the same size
    p, t = p.ravel(), t.ravel()
    out: dict[str, float] = {"accuracy": float(np.mean(p == t)) if t.size else float("nan")}
    sens, spec = [], []
    for c in range(int(num_classes)):
        tp = int(np.sum((p == c) & (t == c)))
        tn = int(np.sum((p != c) & (t != c)))
        fp = int(np.sum((p == c) & (t != c)))
        fn = int(np.sum((p != c) & (t == c)))
        out[f"accuracy_{c}"] = (tp + tn) / t.size if t.size else float("nan")
        out[f"sensitivity_{c}"] = tp / (tp + fn) if tp + fn else float("nan")
        out[f"specificity_{c}"] = tn / (tn + fp) if tn + fp else float("nan")
        sens.append(out[f"sensitivity_{c}"])
        spec.append(out[f"specificity_{c}"])
    out["sensitivity"] = float(np.nanmean(sens)) if not np.all(np.isnan(sens)) else float("nan")
    out["specificity"] = float(np.nanmean(spec)) if not np.all(np.isnan(spec)) else float("nan")
    return out
