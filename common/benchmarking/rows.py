"""One row type for every benchmark: a method's values of one metric, per case (optionally per seed), with what it cost.

Keeping the per-case values (not only a mean) lets every claim of a table be checked: the CSV beside it holds them,
and paired comparisons (:mod:`common.benchmarking.compare`) bootstrap over them.
"""

from __future__ import annotations

import csv
import math
import os
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["BenchmarkRow", "write_cases_csv", "write_seed_cases_csv", "read_cases_csv", "CSV_COLUMNS"]

#: columns of the per-case CSV: one line per (method, metric, case)
CSV_COLUMNS = ("method", "metric", "case", "value", "seeds")


def _scored(value: float) -> bool:
    return not math.isnan(value)


def _nan_skipping_mean(values: Sequence[float]) -> float:
    """Mean of the values that are not NaN; NaN when every value is (numpy's nanmean without its warning)."""
    scored = [v for v in values if _scored(v)]
    return statistics.fmean(scored) if scored else float("nan")


@dataclass
class BenchmarkRow:
    """One method's scores of one metric on the same cases as its baselines.

    Args:
        method: the variant's name (e.g. ``SSeg_N``).
        metric: the metric's key (e.g. ``test_dice``); a bundle's ``METRIC_LABELS`` gives its readable name.
        values: ``(case, value)`` per case; a NaN (a case the metric could not score) stays in the CSV but is left
            out of :attr:`mean` and :attr:`std`.
        seeds: the seeds of the run(s) that produced the values.
        higher_is_better: the metric's direction (Dice: True; HD95: False), used to name the better method.
        seconds: the method's time (training + evaluation, or one step for a speed row).
        gflop_per_step: FLOPs of one training step, in GFLOP.
        ceiling_share: achieved GFLOP/s of that step over a plain conv's, measured in the same run.
        peak_rss_mb: peak resident memory.
        per_seed: ``seed -> (case, value)`` per case, each seed's own scores; :attr:`values` is then their per-case
            mean. Optional (empty: a method of no seed, or older rows that kept only the mean); when given, its
            seeds must be :attr:`seeds`. A paired comparison uses it to check that every seed orders the two methods
            the same way.
        seed_mean_skips_nan: how :attr:`values` were made from ``per_seed``: ``True``, a case's mean over the seeds
            that scored it (NaN only when none did); ``False``, NaN when any seed's value is NaN. Kept with the row so
            that ``tools.benchmark`` merges one-seed processes' rows as one process over the seeds makes them.

    Raises:
        ValueError: naming ``per_seed`` when its seeds are not ``seeds``.

    Examples::

        BenchmarkRow("SSeg_N", "test_dice", [("c0", 0.8)], seeds=[0, 1], per_seed={0: [("c0", 0.7)], 1: [("c0", 0.9)]})
    """

    method: str
    metric: str
    values: list[tuple[str, float]] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    higher_is_better: bool = True
    seconds: float | None = None
    gflop_per_step: float | None = None
    ceiling_share: float | None = None
    peak_rss_mb: float | None = None
    per_seed: dict[int, list[tuple[str, float]]] = field(default_factory=dict)
    seed_mean_skips_nan: bool = False

    def __post_init__(self) -> None:
        self.values = [(str(case), float(value)) for case, value in self.values]
        self.seeds = [int(s) for s in self.seeds]
        # int(): JSON turns the seed keys into strings
        self.per_seed = {
            int(seed): [(str(case), float(value)) for case, value in pairs] for seed, pairs in self.per_seed.items()
        }
        if self.per_seed and set(self.per_seed) != set(self.seeds):
            raise ValueError(
                f"{self.method} / {self.metric}: per_seed has seeds {sorted(self.per_seed)}, seeds are {self.seeds}."
            )

    @property
    def scored_values(self) -> list[float]:
        """The values that are not NaN."""
        return [v for _, v in self.values if _scored(v)]

    @property
    def mean(self) -> float:
        """Mean over the scored (non-NaN) per-case values (NaN when there is none)."""
        return _nan_skipping_mean([value for _, value in self.values])

    @property
    def std(self) -> float:
        """Population std over the scored (non-NaN) per-case values (0 for one value, NaN for none)."""
        finite = self.scored_values
        if not finite:
            return float("nan")
        return statistics.pstdev(finite) if len(finite) > 1 else 0.0

    @property
    def sem(self) -> float:
        """Standard error of :attr:`mean`: the sample std (``ddof=1``) of the scored values over ``sqrt(n)`` (NaN for
        fewer than two)."""
        finite = self.scored_values
        return statistics.stdev(finite) / math.sqrt(len(finite)) if len(finite) > 1 else float("nan")

    def by_case(self) -> dict[str, float]:
        return dict(self.values)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (``values`` as ``[case, value]`` lists, ``per_seed`` keyed by the seed as a string)
        plus ``mean``/``std``/``n``."""
        content = asdict(self)
        content["values"] = [[case, value] for case, value in self.values]
        content["per_seed"] = {
            str(seed): [[case, value] for case, value in pairs] for seed, pairs in self.per_seed.items()
        }
        content.update(mean=self.mean, std=self.std, n=len(self.scored_values))
        return content

    @classmethod
    def from_seeds(
        cls,
        method: str,
        metric: str,
        per_seed: Mapping[int, Mapping[str, float]],
        seed_mean_skips_nan: bool = False,
        **kwargs: Any,
    ) -> "BenchmarkRow":
        """The row of several training seeds' scores: per case the mean over the seeds, each seed's values kept.

        Only the cases every seed scored are kept (sorted), so every seed's mean is over the same cases. One seed
        keeps its ``per_seed`` too: a process that trained one seed gives rows that ``tools.benchmark
        --seed_processes`` merges with the other seeds' processes.

        Args:
            method: the variant's name.
            metric: the metric's key.
            per_seed: seed -> {case: value}.
            seed_mean_skips_nan: a case's mean over the seeds whose value is not NaN (NaN when none is); default:
                NaN when any seed's value is NaN.
            kwargs: the other fields (``higher_is_better``, ``seconds``, ...).

        Raises:
            ValueError: if ``per_seed`` is empty.

        Examples::

            BenchmarkRow.from_seeds("SSeg_N", "test_dice", {0: {"c0": 0.7}, 1: {"c0": 0.9, "c1": 0.5}})
            # values [("c0", 0.8)], seeds [0, 1], per_seed {0: [("c0", 0.7)], 1: [("c0", 0.9)]}
        """
        if not per_seed:
            raise ValueError(f"{method} / {metric}: per_seed names no seed.")
        cases = sorted(set.intersection(*(set(scores) for scores in per_seed.values())))
        seeds = sorted(int(s) for s in per_seed)
        kept = {int(s): [(case, float(scores[case])) for case in cases] for s, scores in per_seed.items()}
        mean = _nan_skipping_mean if seed_mean_skips_nan else statistics.fmean
        values = [(case, mean([float(per_seed[s][case]) for s in per_seed])) for case in cases]
        return cls(
            method, metric, values, seeds=seeds, per_seed=kept, seed_mean_skips_nan=seed_mean_skips_nan, **kwargs
        )

    @classmethod
    def from_runs(
        cls, method: str, metric: str, scores: Sequence[Mapping[str, float]], seeds: Sequence[int], **kwargs: Any
    ) -> "BenchmarkRow":
        """The row of a method evaluated once per training run: per case the mean over the runs that scored it.

        Args:
            method: the variant's name.
            metric: the metric's key.
            scores: {case: value} per run, in the order of ``seeds``.
            seeds: the training seed of each run, kept with its values (:meth:`from_seeds`, NaN-skipping); empty
                for a method that trains nothing (interpolation, registration), whose runs are repeats: no seeds.
            kwargs: the other fields (``higher_is_better``, ...).

        Raises:
            ValueError: when ``seeds`` is given and does not name one seed per run, or when there is no run.
        """
        if not scores:
            raise ValueError(f"{method} / {metric}: no run to make the row of.")
        if seeds:
            if len(seeds) != len(scores):
                raise ValueError(f"{method} / {metric}: {len(scores)} runs but seeds {list(seeds)}.")
            per_seed = {int(s): run for s, run in zip(seeds, scores)}
            return cls.from_seeds(method, metric, per_seed, seed_mean_skips_nan=True, **kwargs)
        cases = sorted(scores[0])
        values = [(case, _nan_skipping_mean([float(run[case]) for run in scores])) for case in cases]
        return cls(method, metric, values, **kwargs)

    @classmethod
    def from_dict(cls, content: dict[str, Any]) -> "BenchmarkRow":
        """The row of :meth:`to_dict` (or of its JSON); a dict without ``per_seed`` (older rows) gives an empty one."""
        known = {k: content[k] for k in cls.__dataclass_fields__ if k in content}
        known["values"] = [tuple(pair) for pair in known.get("values", [])]
        return cls(**known)


def write_cases_csv(rows: Sequence[BenchmarkRow], path: str | os.PathLike) -> Path:
    """Write every row's per-case values to ``path`` (columns :data:`CSV_COLUMNS`, seeds joined by ``;``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            seeds = ";".join(str(s) for s in row.seeds)
            for case, value in row.values:
                writer.writerow([row.method, row.metric, case, repr(float(value)), seeds])
    return path


def write_seed_cases_csv(rows: Sequence[BenchmarkRow], path: str | os.PathLike) -> Path:
    """Write every row's per-seed per-case values (:attr:`BenchmarkRow.per_seed`) to ``path``: columns method,
    metric, seed, case, value; rows without per-seed values add nothing. With :func:`write_cases_csv`'s means these
    are what a comparison's seed agreement is checked on."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("method", "metric", "seed", "case", "value"))
        for row in rows:
            for seed, values in sorted(row.per_seed.items()):
                for case, value in values:
                    writer.writerow([row.method, row.metric, seed, case, repr(float(value))])
    return path


def read_cases_csv(path: str | os.PathLike) -> list[BenchmarkRow]:
    """Rows read back from :func:`write_cases_csv` (method, metric, values, seeds; costs are not in the CSV)."""
    rows: dict[tuple[str, str], BenchmarkRow] = {}
    with open(path, newline="") as handle:
        for line in csv.DictReader(handle):
            key = (line["method"], line["metric"])
            if key not in rows:
                seeds = [int(s) for s in line["seeds"].split(";") if s]
                rows[key] = BenchmarkRow(method=key[0], metric=key[1], seeds=seeds)
            rows[key].values.append((line["case"], float(line["value"])))
    return list(rows.values())
