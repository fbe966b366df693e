"""split_cases: deterministic, disjoint, by subject, non-empty splits; dti_lge_mi_split, the split both DTI-LGE
bundles share: held-out cases from the pairs only, Segmentor and judge on disjoint halves of the rest."""

from __future__ import annotations

import pytest
from common.data import dti_lge_mi_split, split_cases


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


# --------------------------------------------------------------------------------- dti_lge_mi_split (both bundles)
def _dti_lge_cases(n, n_paired):
    return [
        {"case": f"Case_{i:03d}", "lge": f"{i}/LGE.nii.gz", **({"dti": f"{i}/DTI.nii.gz"} if i < n_paired else {})}
        for i in range(n)
    ]


def _ids(parts, key):
    return {c["case"] for c in parts[key]}


@pytest.mark.parametrize("n, n_paired", [(48, 24), (20, 10), (5, 4), (4, 2), (8, 8), (6, 3)])
def test_dti_lge_mi_split_holds_out_pairs_only_and_never_trains_on_them(n, n_paired):
    cases = _dti_lge_cases(n, n_paired)
    parts = dti_lge_mi_split(cases, seed=0)
    paired = {c["case"] for c in cases if "dti" in c}
    held_out = _ids(parts, "val") | _ids(parts, "test")
    assert parts["val"] and parts["test"], "every held-out split gets a pair"
    assert held_out <= paired and not _ids(parts, "val") & _ids(parts, "test")
    assert _ids(parts, "lge_train") == {c["case"] for c in cases} - held_out  # every other case trains
    assert _ids(parts, "pair_train") == _ids(parts, "lge_train") & paired
    assert not _ids(parts, "segmentor") & _ids(parts, "judge")
    assert _ids(parts, "segmentor") | _ids(parts, "judge") == _ids(parts, "lge_train")
    assert 0 <= len(parts["segmentor"]) - len(parts["judge"]) <= 1  # two halves
    for key, entries in parts.items():
        assert entries == [c for c in cases if c in entries], f"{key} keeps the input order"


def test_dti_lge_mi_split_holds_out_what_split_cases_holds_out_of_the_pairs():
    """With three or more pairs, val/test/pair_train are ``split_cases`` of the paired cases (the benchmark's)."""
    cases = _dti_lge_cases(48, 24)
    for seed in (0, 3):
        for fractions in ((0.7, 0.15, 0.15), (0.5, 0.1, 0.4)):
            parts = dti_lge_mi_split(cases, fractions=fractions, seed=seed)
            reference = split_cases([c for c in cases if "dti" in c], fractions=fractions, seed=seed)
            assert (parts["pair_train"], parts["val"], parts["test"]) == (
                reference["train"],
                reference["val"],
                reference["test"],
            )


def test_dti_lge_mi_split_is_deterministic_and_seed_dependent():
    cases = _dti_lge_cases(30, 12)
    assert dti_lge_mi_split(cases, seed=1) == dti_lge_mi_split(cases, seed=1)
    assert dti_lge_mi_split(cases, seed=1)["test"] != dti_lge_mi_split(cases, seed=2)["test"]
    assert dti_lge_mi_split(cases, seed=1)["judge"] != dti_lge_mi_split(cases, seed=2)["judge"]


def test_dti_lge_mi_split_refuses_cases_without_pairs_or_ids():
    with pytest.raises(ValueError, match="DTI"):
        dti_lge_mi_split(_dti_lge_cases(6, 0))
    with pytest.raises(ValueError, match="'case'"):
        dti_lge_mi_split([{"lge": "a", "dti": "b"}])
    with pytest.raises(ValueError, match="fractions"):
        dti_lge_mi_split(_dti_lge_cases(6, 6), fractions=(0.5, 0.5))
