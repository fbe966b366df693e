"""Area under the ROC curve of scores of two groups, from ranks (the Mann-Whitney U statistic)."""

from __future__ import annotations

from typing import Any

import numpy as np
from common.metrics._utils import to_numpy

__all__ = ["roc_auc"]


def roc_auc(positive: Any, negative: Any) -> float:
    """ROC AUC of ``positive`` scores over ``negative`` ones: the probability that a random positive element scores
    higher than a random negative one, ties counting one half.

    Computed as Mann-Whitney's ``U / (n1 * n0)`` from the mid-ranks of the pooled scores (so ties are exact, and no
    threshold is chosen): 1 when every positive outranks every negative, 0.5 for scores that carry no information.

    Args:
        positive: scores of the positive elements (any shape, flattened); numpy array or torch tensor.
        negative: scores of the negative elements.

    Returns:
        The AUC in [0, 1]; ``nan`` when either group is empty (undefined).

    Raises:
        ValueError: naming the group that holds a non-finite score.

    Examples::

        >>> roc_auc(np.array([3.0, 4.0]), np.array([1.0, 2.0]))
        1.0
        >>> roc_auc(np.array([1.0, 1.0]), np.array([1.0]))
        0.5
    """
    groups = {}
    for name, scores in (("positive", positive), ("negative", negative)):
        values = np.asarray(to_numpy(scores, name), dtype=np.float64).ravel()
        if not np.isfinite(values).all():
            raise ValueError(f"roc_auc: the {name} scores hold NaN or infinite values.")
        groups[name] = values
    n1, n0 = len(groups["positive"]), len(groups["negative"])
    if n1 == 0 or n0 == 0:
        return float("nan")
    values = np.concatenate([groups["positive"], groups["negative"]])
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    # the mid-rank of a value shared by `count` elements: the ranks below it plus (count + 1) / 2
    mid_ranks = (np.cumsum(counts) - counts + (counts + 1) / 2.0)[inverse]
    return float((mid_ranks[:n1].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))
