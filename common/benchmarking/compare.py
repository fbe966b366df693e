"""Paired comparisons of two methods on the same cases, with a bootstrap 95% interval of the mean difference.

A table states an ordering only when the interval excludes 0; otherwise the two methods are "not separated" on
these cases. On a few phantom cases a mean that differs in the third decimal is noise, and the table must say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from common.benchmarking.rows import BenchmarkRow

__all__ = ["NOT_SEPARATED", "Comparison", "bootstrap_mean_difference", "compare"]

NOT_SEPARATED = "not separated"


@dataclass(frozen=True)
class Comparison:
    """``ours`` vs ``baseline`` on one metric, over the cases both scored with finite values.

    ``difference`` is mean(ours - baseline) per case; ``low``/``high`` its bootstrap interval; ``verdict`` names the
    better method ("<ours> better" / "<baseline> better") or says :data:`NOT_SEPARATED`.
    """

    ours: str
    baseline: str
    metric: str
    n_cases: int
    difference: float
    low: float
    high: float
    verdict: str


def bootstrap_mean_difference(
    differences: list[float] | np.ndarray, n_resamples: int = 10000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of paired ``differences`` and its percentile bootstrap interval (cases resampled with replacement).

    Args:
        differences: ours - baseline, one value per case.
        n_resamples: bootstrap resamples.
        level: coverage of the interval (0.95 gives the 2.5th and 97.5th percentiles).
        seed: seed of the resampling, so a table is reproducible.

    Returns:
        ``(mean, low, high)``; all NaN when there is no difference.

    Raises:
        ValueError: naming ``level`` or ``n_resamples`` when out of range.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}.")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}.")
    values = np.asarray(differences, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_resamples, values.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(values.mean()), float(low), float(high)


def compare(
    ours: BenchmarkRow, baseline: BenchmarkRow, n_resamples: int = 10000, level: float = 0.95, seed: int = 0
) -> Comparison:
    """Pair ``ours`` and ``baseline`` by case and bootstrap the mean difference (see the module docstring).

    Raises:
        ValueError: naming both metrics when the rows score different metrics.
    """
    if ours.metric != baseline.metric:
        raise ValueError(f"cannot compare metric {ours.metric!r} of {ours.method} with {baseline.metric!r}.")
    theirs = baseline.by_case()
    pairs = [(v, theirs[c]) for c, v in ours.values if c in theirs and math.isfinite(v) and math.isfinite(theirs[c])]
    difference, low, high = bootstrap_mean_difference([a - b for a, b in pairs], n_resamples, level, seed)
    if not pairs or low <= 0.0 <= high:
        verdict = NOT_SEPARATED
    else:
        ours_ahead = (low > 0.0) == ours.higher_is_better
        verdict = f"{ours.method if ours_ahead else baseline.method} better"
    return Comparison(ours.method, baseline.method, ours.metric, len(pairs), difference, low, high, verdict)
