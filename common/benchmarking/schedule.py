"""Schedule checks: whether a quick benchmark trains its models long enough, judged on development data.

A bundle's ``scripts/schedule_check.py`` trains models as its benchmark does for several step counts and training
seeds on a data set written with a development seed (never the benchmark's own: the schedule must not be chosen on
the data that report it), and writes one row per trained model: its mean test Dice and how many test cases it missed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from common.benchmarking.measure import write_table

#: a test case scoring under this Dice counts as missed (a model that predicts no foreground scores 0 there)
MISSED_DICE = 0.05


def development_data_seed(data_seed: int, benchmark_seed: int) -> int:
    """``data_seed`` as an int; refused when it is the benchmark's own ``benchmark_seed``."""
    if int(data_seed) == int(benchmark_seed):
        raise ValueError(f"data_seed {data_seed} is the benchmark's own: pick a development seed.")
    return int(data_seed)


def dice_summary(scores: Mapping[str, float]) -> dict[str, float | int]:
    """One trained model's ``{case: Dice}`` on the test split as its mean, the cases under :data:`MISSED_DICE` and
    the case count."""
    values = list(scores.values())
    return {
        "test_dice": sum(values) / len(values),
        "missed_slices": sum(v < MISSED_DICE for v in values),
        "test_slices": len(values),
    }


def write_schedule_check(out: str | Path, data_seed: int, rows: Sequence[dict], metric: str) -> str:
    """``<out>/schedule_check.{md,json}`` of the rows (:func:`write_table`), ``metric`` naming what ``test_dice``
    measures; returns the Markdown."""
    note = (
        f"Development data seed {data_seed}; test_dice: {metric}; missed_slices: test cases under Dice {MISSED_DICE}."
    )
    return write_table(rows, str(out), "schedule_check", title="Schedule check on development data", note=note)
