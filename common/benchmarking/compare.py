"""Paired comparisons of two methods on the same cases: a bootstrap 95% interval of the mean difference, a Wilcoxon
signed-rank p-value and, when the rows carry per-seed values, whether every seed orders the two methods the same way.

A table states an ordering only when the interval excludes 0, every seed agrees with the overall sign and at least
:data:`MIN_ORDERED_CASES` cases were paired; otherwise the two methods are "not separated" on these cases ("not
separated (seeds disagree)" when only the seeds stop it, "not separated (fewer than 20 cases)" when only the count
does).
Rows without per-seed values still get an ordering from the interval alone, marked "(seeds not checked)". On a few
phantom cases a mean that differs in the third decimal is noise, and the table must say so. The p-value is reported
beside the interval; it does not enter the ordering.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from common.benchmarking.rows import BenchmarkRow

__all__ = [
    "NOT_SEPARATED",
    "SEEDS_DISAGREE",
    "SEEDS_NOT_CHECKED",
    "MIN_WILCOXON_PAIRS",
    "MIN_SEEDS",
    "MIN_ORDERED_CASES",
    "TOO_FEW_CASES",
    "Comparison",
    "bootstrap_mean_difference",
    "wilcoxon_p_value",
    "seed_differences",
    "compare",
    "compare_pairs",
    "comparison_table",
    "write_comparisons",
    "compare_pooled_auc",
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
#: fewest paired cases for an ordering: the project asks for about 30 held-out cases per comparison, and a percentile
#: bootstrap over a handful of cases is narrower than the truth (e.g. an ASD left undefined on most volumes)
MIN_ORDERED_CASES = 20
#: verdict when the interval excludes 0 and the seeds agree, but fewer than :data:`MIN_ORDERED_CASES` cases paired
TOO_FEW_CASES = f"{NOT_SEPARATED} (fewer than {MIN_ORDERED_CASES} cases)"


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

    def interval_text(self, fmt: str = ".3f") -> str:
        """The difference and its interval as a table cell, signed: ``+0.06 [+0.06, +0.07]`` for ``fmt=".2f"``."""
        return f"{self.difference:+{fmt}} [{self.low:+{fmt}}, {self.high:+{fmt}}]"


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
    # imported here: scipy.stats costs about 1.5 s of every process that imports this package (every benchmark
    # worker of tools.benchmark, which only records its peak RSS and machine with common.benchmarking.measure)
    from scipy.stats import wilcoxon

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
    ours: BenchmarkRow,
    baseline: BenchmarkRow,
    n_resamples: int = 10000,
    level: float = 0.95,
    seed: int = 0,
    min_cases: int = MIN_ORDERED_CASES,
) -> Comparison:
    """Pair ``ours`` and ``baseline`` by case: bootstrap the mean difference, test it, check the seeds.

    The per-case values (:attr:`BenchmarkRow.values`, means over seeds) give the difference, its interval and the
    Wilcoxon p-value; :attr:`BenchmarkRow.per_seed` gives the seed agreement (see the module docstring for the rule).
    Fewer than ``min_cases`` pairs name no better method (:data:`TOO_FEW_CASES`).

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
    if not pairs:
        return result
    result = _with_verdict(result, ours.higher_is_better)
    if len(pairs) < min_cases and result.verdict not in (NOT_SEPARATED, SEEDS_DISAGREE):
        result = replace(result, verdict=TOO_FEW_CASES)
    return result


def compare_pairs(rows: Sequence[BenchmarkRow], pairs: Sequence[tuple[str, str]]) -> list[Comparison]:
    """:func:`compare` of every ``(ours, baseline)`` method pair on every metric for which ``rows`` hold both (pairs
    or metrics a run did not compute are skipped), in the order of ``pairs`` and then of the metrics' first rows."""
    by_name = {(row.method, row.metric): row for row in rows}
    metrics = list(dict.fromkeys(row.metric for row in rows))
    return [
        compare(by_name[(ours, metric)], by_name[(baseline, metric)])
        for ours, baseline in pairs
        for metric in metrics
        if (ours, metric) in by_name and (baseline, metric) in by_name
    ]


def comparison_table(comparisons: Sequence[Comparison], labels: Mapping[str, str] | None = None) -> str:
    """A markdown table of ``comparisons``: the pair, the metric (its label from ``labels``), the cases paired, the
    difference with its interval, the Wilcoxon p-value, the seeds agreeing with its sign and the verdict."""
    lines = [
        "| ours vs baseline | metric | cases | difference [95 % CI] | Wilcoxon p | seeds agreeing | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        metric = (labels or {}).get(c.metric, c.metric)
        seeds = f"{c.seeds_agreeing}/{c.n_seeds}" if c.n_seeds else "not checked"
        lines.append(
            f"| {c.ours} vs {c.baseline} | {metric} | {c.n_cases} | {c.interval_text()} | {c.wilcoxon_p:.2g} | "
            f"{seeds} | {c.verdict} |"
        )
    return "\n".join(lines) + "\n"


def write_comparisons(
    rows: Sequence[BenchmarkRow],
    pairs: Sequence[tuple[str, str]],
    path: str | os.PathLike,
    title: str,
    note: str,
    labels: Mapping[str, str] | None = None,
    case: str = "case",
) -> Path:
    """A bundle run's own table of orderings: ``<path>`` (markdown) with ``title``, the run's ``note`` and
    :func:`comparison_table` of every pair of ``pairs`` the run computed (``tools.benchmark`` makes the same from the
    rows of a full run); written through a temporary file, so a stopped run leaves no half table."""
    text = (
        f"# {title}\n\n"
        + note
        + f" Per held-out {case}, the mean over the training seeds; bootstrap 95 % interval of the mean difference; an "
        f"ordering only where it excludes 0, every seed agrees and at least {MIN_ORDERED_CASES} {case}s pair "
        "(per-seed values: seed_cases.csv).\n\n" + comparison_table(compare_pairs(rows, pairs), labels)
    )
    target = Path(path)
    partial = target.with_name(target.name + ".tmp")
    partial.write_text(text)
    os.replace(partial, target)
    return target


def _with_verdict(result: Comparison, higher_is_better: bool) -> Comparison:
    """``result`` with the module's ordering rule applied to its interval and seed differences."""
    if not _excludes_zero(result.low, result.high):
        return result
    if result.seeds_agree is False:
        verdict = SEEDS_DISAGREE
    else:
        ours_ahead = (result.low > 0.0) == higher_is_better
        verdict = f"{result.ours if ours_ahead else result.baseline} better"
        if result.seeds_agree is None:
            verdict += f" {SEEDS_NOT_CHECKED}"
    return replace(result, verdict=verdict)


def _excludes_zero(low: float, high: float) -> bool:
    """Whether the interval ``[low, high]`` is finite and excludes 0."""
    return math.isfinite(low) and math.isfinite(high) and not low <= 0.0 <= high


def _mean_auc_difference(
    positive: np.ndarray, ours: Sequence[np.ndarray], baseline: Sequence[np.ndarray], index: np.ndarray
) -> float:
    """Mean over seeds of AUC(ours) - AUC(baseline) on the elements ``index`` (repeats allowed)."""
    # imported here: common.metrics imports MONAI, which the package's light users (tools.benchmark's worker) skip
    from common.metrics.roc_auc import roc_auc

    flags = positive[index]
    differences = [
        roc_auc(a[index][flags], a[index][~flags]) - roc_auc(b[index][flags], b[index][~flags])
        for a, b in zip(ours, baseline)
    ]
    return float(np.mean(differences))


def compare_pooled_auc(
    ours: str,
    baseline: str,
    metric: str,
    cases: Sequence[str],
    positive: Sequence[bool] | np.ndarray,
    ours_scores: Mapping[int, Sequence[float] | np.ndarray],
    baseline_scores: Mapping[int, Sequence[float] | np.ndarray],
    n_resamples: int = 10000,
    level: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Two scores' ROC AUC over elements pooled from many cases (e.g. the AHA segments of all test patients), paired
    on the same elements: the mean over seeds of AUC(ours) - AUC(baseline), its interval from a bootstrap that
    resamples whole cases (a case's elements are not independent, so resampling elements would be too narrow), and
    each seed's own difference for the agreement check; the verdict follows the module's rule (AUC: higher is
    better). A pooled AUC has no per-case value, so there is no Wilcoxon p-value (NaN).

    Args:
        ours, baseline: the methods' names; metric: the AUC's name in the verdict's table.
        cases: each element's case.
        positive: each element's true flag.
        ours_scores, baseline_scores: ``seed -> each element's score`` (same order as ``cases``); a method without
            a training seed gives one entry, used for every seed of the other.
        n_resamples, level, seed: as :func:`bootstrap_mean_difference`; a resample without a positive or without a
            negative element has no AUC and is left out.

    Raises:
        ValueError: naming what disagrees (lengths, seeds, a level or resample count out of range).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}.")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}.")
    flags = np.asarray(positive, dtype=bool)
    names = np.asarray(cases)
    if len(baseline_scores) == 1 and set(baseline_scores) != set(ours_scores):
        only = next(iter(baseline_scores.values()))
        baseline_scores = {s: only for s in ours_scores}
    elif len(ours_scores) == 1 and set(baseline_scores) != set(ours_scores):
        only = next(iter(ours_scores.values()))
        ours_scores = {s: only for s in baseline_scores}
    if set(ours_scores) != set(baseline_scores):
        raise ValueError(f"seeds differ: {ours} has {sorted(ours_scores)}, {baseline} {sorted(baseline_scores)}.")
    seeds = sorted(ours_scores)
    mine = [np.asarray(ours_scores[s], dtype=np.float64) for s in seeds]
    theirs = [np.asarray(baseline_scores[s], dtype=np.float64) for s in seeds]
    for values in (*mine, *theirs, flags):
        if values.shape != names.shape:
            raise ValueError(f"{len(names)} elements in cases, but a flag or score array has shape {values.shape}.")
    everything = np.arange(len(names))
    per_seed = tuple((s, _mean_auc_difference(flags, [a], [b], everything)) for s, a, b in zip(seeds, mine, theirs))
    difference = float(np.mean([d for _, d in per_seed])) if per_seed else math.nan
    unique = list(dict.fromkeys(names.tolist()))
    members = [np.flatnonzero(names == case) for case in unique]
    rng = np.random.default_rng(seed)
    resampled = []
    for draw in rng.integers(0, len(unique), size=(n_resamples, len(unique))):
        index = np.concatenate([members[i] for i in draw]) if len(unique) else everything
        resampled.append(_mean_auc_difference(flags, mine, theirs, index))
    finite = np.asarray(resampled)[np.isfinite(resampled)]
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail]) if finite.size else (math.nan, math.nan)
    result = Comparison(
        ours, baseline, metric, len(unique), difference, float(low), float(high), NOT_SEPARATED, math.nan,
        per_seed if len(seeds) >= MIN_SEEDS else (),
    )  # fmt: skip
    return _with_verdict(result, higher_is_better=True)
