"""split_cases: deterministic, disjoint, by subject, non-empty splits."""

from __future__ import annotations

import pytest
from common.data import split_cases


def _cases(n, frames=("ed",)):
    return [{"case": f"patient{i:03d}", "frame": f} for i in range(n) for f in frames]


@pytest.mark.parametrize("n", [3, 4, 7, 20, 48])
def test_splits_are_disjoint_complete_and_non_empty(n):
    cases = _cases(n)
    parts = split_cases(cases, seed=0)
    ids = {k: {c["case"] for c in v} for k, v in parts.items()}
    assert all(ids[k] for k in ("train", "val", "test"))
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])
    assert sum(len(v) for v in parts.values()) == n
    assert len(parts["train"]) >= len(parts["val"])


def test_split_is_deterministic_and_seed_dependent():
    cases = _cases(40)
    assert split_cases(cases, seed=1) == split_cases(cases, seed=1)
    assert split_cases(cases, seed=1) != split_cases(cases, seed=2)
    assert [len(split_cases(_cases(20))[k]) for k in ("train", "val", "test")] == [14, 3, 3]


def test_frames_of_one_subject_stay_together():
    parts = split_cases(_cases(10, frames=("ed", "es")), seed=3)
    for split in parts.values():
        assert len(split) % 2 == 0
        assert {c["case"] for c in split if c["frame"] == "ed"} == {c["case"] for c in split if c["frame"] == "es"}


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.7, 0.2, 0.2), (1.2, -0.1, -0.1)])
def test_bad_fractions_raise(fractions):
    with pytest.raises(ValueError, match="fractions"):
        split_cases(_cases(5), fractions=fractions)
