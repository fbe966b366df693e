"""Paired comparisons of two methods on the same cases: a bootstrap 95% interval of the mean difference, a Wilcoxon
signed-rank p-value and, when the rows carry per-seed values, whether every seed orders the two methods the same way.

A table states an ordering only when the interval excludes 0 and every seed agrees with the overall sign; otherwise
the two methods are "not separated" on these cases ("not separated (seeds disagree)" when only the seeds stop it).
Rows without per-seed values still get an ordering from the interval alone, marked "(seeds not checked)". On a few
phantom cases a mean that differs in the third decimal is noise, and the table must say so. The p-value is reported
beside the interval; it does not enter the ordering.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace

import numpy as np
from common.benchmarking.rows import BenchmarkRow
from scipy.stats import wilcoxon

__all__ = [
    "NOT_SEPARATED",
    "SEEDS_DISAGREE",
    "SEEDS_NOT_CHECKED",
    "MIN_WILCOXON_PAIRS",
    "MIN_SEEDS",
    "Comparison",
    "bootstrap_mean_difference",
    "wilcoxon_p_value",
    "seed_differences",
    "compare",
]

NOT_SEPARATED = "not separated"
#: verdict when the interval excludes 0 but a seed's own mean difference has the other sign (or is 0)
SEEDS_DISAGREE = f"{NOT_SEPARATED} (seeds disagree)"
#: appended to "<method> better" when the rows carry no per-seed values to check
SEEDS_NOT_CHECKED = "(seeds not checked)"
#: fewest non-zero differences for a Wilcoxon p-value: with 5, even all of one sign gives p = 2 / 2**5 = 0.0625
MIN_WILCOXON_PAIRS = 6
#: fewest seeds (common to both rows) for a seed-agreement check
MIN_SEEDS = 2


@dataclass(frozen=True)
class Comparison:
    """``ours`` vs ``baseline`` on one metric, over the cases both scored with finite values.

    ``difference`` is mean(ours - baseline) per case; ``low``/``high`` its bootstrap interval; ``verdict`` names the
    better method ("<ours> better" / "<baseline> better", followed by :data:`SEEDS_NOT_CHECKED` when there were no
    per-seed values) or says :data:`NOT_SEPARATED` / :data:`SEEDS_DISAGREE`. ``wilcoxon_p`` is the two-sided
    signed-rank p-value of the per-case differences (NaN with fewer than :data:`MIN_WILCOXON_PAIRS` non-zero ones);
    ``seed_differences`` the ``(seed, mean difference)`` of each seed, empty when not checked.
    """

    ours: str
    baseline: str
    metric: str
    n_cases: int
    difference: float
    low: float
    high: float
    verdict: str
    wilcoxon_p: float = math.nan
    seed_differences: tuple[tuple[int, float], ...] = ()

    @property
    def n_seeds(self) -> int:
        """Seeds whose agreement was checked (0: not checked)."""
        return len(self.seed_differences)

    @property
    def seeds_agreeing(self) -> int:
        """Seeds whose own mean difference has the (non-zero) sign of :attr:`difference`."""
        return sum(1 for _, d in self.seed_differences if d * self.difference > 0.0)

    @property
    def seeds_agree(self) -> bool | None:
        """Whether every checked seed agrees; None when the seeds were not checked."""
        return None if not self.seed_differences else self.seeds_agreeing == self.n_seeds


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


def wilcoxon_p_value(differences: list[float] | np.ndarray, min_pairs: int = MIN_WILCOXON_PAIRS) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired ``differences`` (``scipy.stats.wilcoxon``).

    Zero differences are dropped (``zero_method="wilcox"``): a case both methods scored the same (e.g. both perfect
    on an empty mask) says nothing about which is better, and without zeros or ties scipy uses the exact null
    distribution (n <= 50), which is what our few phantom cases need. "zsplit" would keep the zeros as half a win
    each, but then scipy can no longer use the exact distribution, and the count of informative pairs, which
    ``min_pairs`` bounds, would be blurred.

    Args:
        differences: ours - baseline, one value per case; non-finite ones are left out.
        min_pairs: fewest non-zero differences for a p-value.

    Returns:
        The p-value; NaN when fewer than ``min_pairs`` differences are non-zero (all zero included).

    Raises:
        ValueError: naming ``min_pairs`` when it is below 1.
    """
    if min_pairs < 1:
        raise ValueError(f"min_pairs must be >= 1, got {min_pairs}.")
    values = np.asarray(differences, dtype=np.float64)
    values = values[np.isfinite(values)]
    if np.count_nonzero(values) < min_pairs:
        return math.nan
    return float(wilcoxon(values, zero_method="wilcox", alternative="two-sided").pvalue)


def _seed_values(row: BenchmarkRow, seeds: set[int]) -> dict[int, dict[str, float]] | None:
    """The row's per-case values for each of ``seeds``: its own per-seed values, or, for a row without seeds (a
    deterministic method such as registration or interpolation), its one result for every seed."""
    if row.per_seed:
        return {s: dict(row.per_seed[s]) for s in seeds} if set(row.per_seed) == seeds else None
    return {s: dict(row.values) for s in seeds} if not row.seeds else None


def seed_differences(ours: BenchmarkRow, baseline: BenchmarkRow) -> dict[int, float]:
    """Mean paired difference (ours - baseline) of each seed, over the cases both scored with finite values in it.

    A row without seeds (deterministic) is compared with every seed of the other row.

    Returns:
        ``seed -> mean difference`` (NaN for a seed with no such case); empty unless the seeded rows carry per-seed
        values for the same seeds, at least :data:`MIN_SEEDS` of them.
    """
    seeds = set(ours.per_seed) | set(baseline.per_seed)
    if len(seeds) < MIN_SEEDS:
        return {}
    mine, theirs = _seed_values(ours, seeds), _seed_values(baseline, seeds)
    if mine is None or theirs is None:
        return {}
    result = {}
    for seed in sorted(seeds):
        differences = [
            value - theirs[seed][case]
            for case, value in mine[seed].items()
            if case in theirs[seed] and math.isfinite(value) and math.isfinite(theirs[seed][case])
        ]
        result[seed] = statistics.fmean(differences) if differences else math.nan
    return result


def compare(
    ours: BenchmarkRow, baseline: BenchmarkRow, n_resamples: int = 10000, level: float = 0.95, seed: int = 0
) -> Comparison:
    """Pair ``ours`` and ``baseline`` by case: bootstrap the mean difference, test it, check the seeds.

    The per-case values (:attr:`BenchmarkRow.values`, means over seeds) give the difference, its interval and the
    Wilcoxon p-value; :attr:`BenchmarkRow.per_seed` gives the seed agreement (see the module docstring for the rule).

    Raises:
        ValueError: naming both metrics when the rows score different metrics.
    """
    if ours.metric != baseline.metric:
        raise ValueError(f"cannot compare metric {ours.metric!r} of {ours.method} with {baseline.metric!r}.")
    theirs = baseline.by_case()
    pairs = [(v, theirs[c]) for c, v in ours.values if c in theirs and math.isfinite(v) and math.isfinite(theirs[c])]
    differences = [a - b for a, b in pairs]
    difference, low, high = bootstrap_mean_difference(differences, n_resamples, level, seed)
    per_seed = tuple(seed_differences(ours, baseline).items())
    result = Comparison(
        ours.method,
        baseline.method,
        ours.metric,
        len(pairs),
        difference,
        low,
        high,
        NOT_SEPARATED,
        wilcoxon_p_value(differences),
        per_seed,
    )
    if not pairs or low <= 0.0 <= high:
        return result
    if result.seeds_agree is False:
        verdict = SEEDS_DISAGREE
    else:
        ours_ahead = (low > 0.0) == ours.higher_is_better
        verdict = f"{ours.method if ours_ahead else baseline.method} better"
        if result.seeds_agree is None:
            verdict += f" {SEEDS_NOT_CHECKED}"
    return replace(result, verdict=verdict)
