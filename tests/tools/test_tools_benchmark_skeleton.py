"""common.benchmarking's skeleton: the row type, its per-case CSV, paired comparisons (bootstrap interval, Wilcoxon
p-value, seed agreement), and how tools.benchmark merges such rows with a bundle's own comparisons, labels and notes."""

from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import pytest
from common.benchmarking import (
    NOT_SEPARATED,
    SEEDS_DISAGREE,
    TOO_FEW_CASES,
    BenchmarkRow,
    StageCache,
    bootstrap_mean_difference,
    compare,
    compare_pairs,
    compare_pooled_auc,
    comparison_table,
    development_data_seed,
    dice_summary,
    parse_config_switches,
    read_cases_csv,
    seed_differences,
    wilcoxon_p_value,
    write_cases_csv,
    write_comparisons,
    write_schedule_check,
    write_seed_cases_csv,
)
from common.metrics import roc_auc
from scipy.stats import wilcoxon

from tools import benchmark as tb

NAN = float("nan")


def _row(method, values, metric="dice", **kwargs):
    return BenchmarkRow(method, metric, [(f"case{i}", v) for i, v in enumerate(values)], seeds=[0], **kwargs)


def _seeded(method, per_seed, metric="dice", **kwargs):
    """A row from ``seed -> values per case``; ``values`` is their per-case mean, as a bundle passes it."""
    seeds = sorted(per_seed)
    cases = [f"case{i}" for i in range(len(per_seed[seeds[0]]))]
    means = [sum(per_seed[s][i] for s in seeds) / len(seeds) for i in range(len(cases))]
    return BenchmarkRow(
        method,
        metric,
        list(zip(cases, means)),
        seeds=seeds,
        per_seed={s: list(zip(cases, per_seed[s])) for s in seeds},
        **kwargs,
    )


BASE = [0.5, 0.4, 0.6, 0.55, 0.45, 0.5]


def _compare(ours, baseline):
    """``compare`` without its case-count floor: these tests check the interval and seed rules on a few cases."""
    return compare(ours, baseline, min_cases=1)


def test_fewer_than_twenty_paired_cases_name_no_better_method():
    """The interval and the seeds would name ours on 19 cases; the floor (about 30 cases per comparison asked, 20
    the least) says not separated. At 20 cases the same differences name ours."""
    for n, verdict in ((19, TOO_FEW_CASES), (20, "ours better")):
        base = [0.5 + 0.01 * (i % 5) for i in range(n)]
        ours = _seeded("ours", {s: [b + 0.1 + 0.01 * s for b in base] for s in (0, 1, 2)})
        result = compare(ours, _seeded("base", {s: base for s in (0, 1, 2)}))
        assert result.n_cases == n and result.low > 0 and result.seeds_agree and result.verdict == verdict
    assert TOO_FEW_CASES == "not separated (fewer than 20 cases)"
    # an interval that holds 0 stays plainly not separated, whatever the count
    mixed = compare(_row("ours", [0.6, 0.4] * 5), _row("base", [0.4, 0.6] * 5))
    assert mixed.verdict == NOT_SEPARATED


def test_row_summary_leaves_out_nan_and_round_trips_through_a_dict():
    row = _row("A", [0.5, NAN, 0.7], seconds=3.0)
    assert row.mean == pytest.approx(0.6) and row.std == pytest.approx(0.1)
    assert row.to_dict()["n"] == 2 and row.to_dict()["values"][1][0] == "case1"
    back = BenchmarkRow.from_dict(row.to_dict())
    assert back.values[0] == ("case0", 0.5) and math.isnan(back.values[1][1]) and back.seconds == 3.0
    assert math.isnan(_row("B", []).mean) and _row("C", [0.4]).std == 0.0
    # standard error of the mean: sample std (0.1 * sqrt(2) for 0.5 and 0.7) over sqrt(2) = 0.1; NaN below two values
    assert row.sem == pytest.approx(0.1) and _row("D", [1.0, 2.0, 3.0, 4.0]).sem == pytest.approx(math.sqrt(5 / 3) / 2)
    assert math.isnan(_row("C", [0.4]).sem) and math.isnan(_row("B", []).sem)


def test_cases_csv_round_trip(tmp_path):
    rows = [_row("A", [0.5, 0.25]), _row("B", [1 / 3, NAN], metric="hd95", higher_is_better=False)]
    rows[1].seeds = [0, 1]
    path = write_cases_csv(rows, tmp_path / "sub" / "cases.csv")
    assert path.read_text().splitlines()[0] == "method,metric,case,value,seeds"
    back = read_cases_csv(path)
    assert [(r.method, r.metric, r.seeds) for r in back] == [("A", "dice", [0]), ("B", "hd95", [0, 1])]
    assert back[0].values == rows[0].values
    assert back[1].values[0] == ("case0", 1 / 3) and math.isnan(back[1].values[1][1])  # exact floats


def test_bootstrap_of_constant_differences_is_that_constant():
    assert bootstrap_mean_difference([0.1] * 5) == pytest.approx((0.1, 0.1, 0.1))
    assert all(math.isnan(v) for v in bootstrap_mean_difference([]))


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    differences = [0.0, 0.0, 0.0, 1.0]
    mean, low, high = bootstrap_mean_difference(differences, seed=3)
    assert mean == 0.25 and 0.0 <= low <= mean <= high <= 1.0
    assert bootstrap_mean_difference(differences, seed=3) == (mean, low, high)
    # the resampled mean is k/4 with k ~ Binomial(4, 1/4): P(k = 0) = 0.32, so the 2.5th and 25th percentiles are 0;
    # P(k <= 2) = 0.95 < 0.975 <= P(k <= 3) = 0.996, so the 97.5th is 3/4; P(k <= 1) = 0.74 < 0.75, so the 75th is 1/2
    assert (low, high) == (0.0, 0.75)
    assert bootstrap_mean_difference(differences, level=0.5, seed=3) == (0.25, 0.0, 0.5)
    with pytest.raises(ValueError, match="level"):
        bootstrap_mean_difference(differences, level=1.0)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_mean_difference(differences, n_resamples=0)


def test_compare_claims_an_ordering_only_when_the_interval_excludes_zero():
    ours, baseline = _row("ours", [0.8, 0.7, 0.9, 0.6]), _row("base", [0.5, 0.5, 0.6, 0.4])
    result = _compare(ours, baseline)
    assert result.n_cases == 4 and result.difference == pytest.approx(0.25) and result.low > 0
    assert result.verdict == "ours better (seeds not checked)"  # no per-seed values: the interval alone

    mixed = _compare(_row("ours", [0.6, 0.4, 0.6, 0.4]), _row("base", [0.4, 0.6, 0.4, 0.6]))
    assert mixed.low < 0 < mixed.high and mixed.verdict == NOT_SEPARATED

    # lower is better (HD95): a smaller distance makes ours the better one
    assert result.interval_text(".2f") == f"+0.25 [+{result.low:.2f}, +{result.high:.2f}]"
    assert " [-0." in mixed.interval_text() and mixed.interval_text().endswith("]")  # a negative low keeps its sign

    hd = _compare(_row("ours", [1.0, 2.0, 1.5], "hd", higher_is_better=False), _row("b", [3.0, 4.0, 3.5], "hd"))
    assert hd.high < 0 and hd.verdict == "ours better (seeds not checked)"
    assert (hd.n_seeds, hd.seeds_agree, hd.seed_differences) == (0, None, ())


def test_compare_pairs_by_case_and_skips_unscored_cases():
    ours = BenchmarkRow("ours", "dice", [("a", 0.9), ("b", NAN), ("c", 0.8)])
    baseline = BenchmarkRow("base", "dice", [("c", 0.7), ("a", 0.6), ("z", 0.1)])
    result = _compare(ours, baseline)
    assert result.n_cases == 2 and result.difference == pytest.approx(0.2)
    assert _compare(ours, BenchmarkRow("base", "dice")).verdict == NOT_SEPARATED
    with pytest.raises(ValueError, match="cannot compare metric"):
        _compare(ours, BenchmarkRow("base", "hd95", [("a", 1.0)]))


def test_row_per_seed_round_trips_through_json_and_old_rows_still_load():
    row = _seeded("A", {0: [0.5, NAN], 3: [0.7, 0.2]}, seconds=2.0)
    assert row.values[0] == ("case0", pytest.approx(0.6)) and row.seeds == [0, 3]
    back = BenchmarkRow.from_dict(json.loads(json.dumps(row.to_dict())))  # JSON makes the seed keys strings
    assert sorted(back.per_seed) == [0, 3] and back.per_seed[3] == [("case0", 0.7), ("case1", 0.2)]
    assert back.per_seed[0][0] == ("case0", 0.5) and math.isnan(back.per_seed[0][1][1])
    old = {k: v for k, v in _row("B", [0.5]).to_dict().items() if k != "per_seed"}  # written before the field
    assert BenchmarkRow.from_dict(old).per_seed == {}
    with pytest.raises(ValueError, match="per_seed has seeds \\[0, 1\\], seeds are \\[0\\]"):
        BenchmarkRow("C", "dice", [("c", 0.5)], seeds=[0], per_seed={0: [("c", 0.4)], 1: [("c", 0.6)]})


def test_row_from_seeds_averages_the_cases_every_seed_scored_and_keeps_each_seed():
    row = BenchmarkRow.from_seeds(
        "A", "dice", {2: {"b": 0.2, "a": 0.4, "only2": 1.0}, 0: {"a": 0.8, "b": 0.6}}, higher_is_better=False
    )
    assert row.seeds == [0, 2] and [case for case, _ in row.values] == ["a", "b"]  # "only2": not scored by seed 0
    assert row.by_case() == {"a": pytest.approx(0.6), "b": pytest.approx(0.4)}
    assert row.per_seed == {0: [("a", 0.8), ("b", 0.6)], 2: [("a", 0.4), ("b", 0.2)]}
    assert row.higher_is_better is False
    # the same row as the hand-built one: the seed check of compare() sees each seed's difference
    ours = BenchmarkRow.from_seeds("ours", "dice", {0: {"a": 0.9, "b": 0.7}, 1: {"a": 0.5, "b": 0.5}})
    base = BenchmarkRow.from_seeds("base", "dice", {0: {"a": 0.6, "b": 0.6}, 1: {"a": 0.6, "b": 0.6}})
    assert seed_differences(ours, base) == {0: pytest.approx(0.2), 1: pytest.approx(-0.1)}
    with pytest.raises(ValueError, match="names no seed"):
        BenchmarkRow.from_seeds("A", "dice", {})


def test_row_from_runs_keeps_one_seed_skips_nan_and_gives_untrained_methods_no_seeds():
    nan = float("nan")
    one = BenchmarkRow.from_runs("A", "hd", [{"b": 2.0, "a": 1.0}], seeds=[3], higher_is_better=False)
    # one seed keeps its values: a one-seed process's row can be merged with the other seeds' (--seed_processes)
    assert one.seeds == [3] and one.per_seed == {3: [("a", 1.0), ("b", 2.0)]} and one.higher_is_better is False
    two = BenchmarkRow.from_runs("A", "hd", [{"a": nan, "b": 2.0}, {"a": 4.0, "b": nan}], seeds=[0, 1])
    assert two.by_case() == {"a": 4.0, "b": 2.0} and two.seed_mean_skips_nan  # the seeds that scored the case
    assert math.isnan(two.per_seed[0][0][1])
    assert BenchmarkRow.from_dict(two.to_dict()).seed_mean_skips_nan
    strict = BenchmarkRow.from_seeds("A", "hd", {0: {"a": nan}, 1: {"a": 4.0}})
    assert math.isnan(strict.by_case()["a"]) and not strict.seed_mean_skips_nan
    untrained = BenchmarkRow.from_runs("cubic", "hd", [{"a": 1.0}, {"a": 3.0}, {"a": nan}], seeds=[])
    assert untrained.seeds == [] and untrained.per_seed == {} and untrained.by_case() == {"a": 2.0}
    with pytest.raises(ValueError, match="2 runs but seeds \\[0\\]"):
        BenchmarkRow.from_runs("A", "hd", [{"a": 1.0}, {"a": 2.0}], seeds=[0])
    with pytest.raises(ValueError, match="no run"):
        BenchmarkRow.from_runs("A", "hd", [], seeds=[])


def test_stage_cache_runs_a_stage_once_and_a_stopped_one_again(tmp_path):
    calls = []

    def work(value):
        def run():
            calls.append(value)
            return {"value": value}

        return run

    stages = StageCache()
    assert stages.once(tmp_path / "s1", "s1", work(1)) == {"value": 1}
    assert stages.done(tmp_path / "s1") and "s1" in stages.seconds
    again = StageCache()  # a rerun: reads the result back, runs nothing, keeps the recorded seconds
    assert again.once(tmp_path / "s1", "s1", work(2)) == {"value": 1} and calls == [1]
    assert again.seconds["s1"] == pytest.approx(stages.seconds["s1"])
    # a stage stopped before its marker runs again; clear=True deletes what it left first
    (tmp_path / "s2").mkdir()
    (tmp_path / "s2" / "partial.pt").write_text("half")
    assert again.once(tmp_path / "s2", "s2", work(3), clear=True) == {"value": 3}
    assert not (tmp_path / "s2" / "partial.pt").exists() and calls == [1, 3]
    # fresh: every stage runs again
    assert StageCache(fresh=True).once(tmp_path / "s1", "s1", work(4)) == {"value": 4} and calls == [1, 3, 4]
    assert StageCache().once(tmp_path / "s1", "s1", work(5)) == {"value": 4}


def test_stage_cache_marks_nothing_when_the_stage_fails(tmp_path):
    def fail():
        raise RuntimeError("stopped")

    stages = StageCache()
    with pytest.raises(RuntimeError, match="stopped"):
        stages.once(tmp_path / "s", "s", fail)
    assert not stages.done(tmp_path / "s")
    assert stages.once(tmp_path / "s", "s", lambda: 7) == 7


def test_stage_cache_trains_a_workflow_once_and_a_stopped_training_again_from_an_empty_folder(tmp_path, monkeypatch):
    """A training leaves its best checkpoint before it ends: only ``.done`` marks it finished."""
    import common.benchmarking.workflow as workflow

    calls = []

    def fake_run_workflow(bundle_root, files, overrides):
        calls.append((bundle_root, tuple(files), overrides["ckpt_dir"], sorted(p.name for p in tmp_path.iterdir())))
        (tmp_path / "model.pt").touch()
        if overrides.get("stop"):
            raise RuntimeError("stopped after the first validation")
        return object()  # a workflow: not stored

    monkeypatch.setattr(workflow, "run_workflow", fake_run_workflow)
    with pytest.raises(RuntimeError, match="stopped"):
        StageCache().train(tmp_path, "net", "root", ["train.json"], {"ckpt_dir": str(tmp_path), "stop": True})
    assert (tmp_path / "model.pt").is_file() and not (tmp_path / ".done").exists()
    stages = StageCache()
    stages.train(tmp_path, "net", "root", ["train.json"], {"ckpt_dir": str(tmp_path)})
    assert calls[1][3] == []  # the stopped run's files were removed first
    assert (tmp_path / ".done").is_file() and "net" in stages.seconds
    StageCache().train(tmp_path, "net", "root", ["train.json"], {"ckpt_dir": str(tmp_path)})
    assert len(calls) == 2 and calls[0][:3] == ("root", ("train.json",), str(tmp_path))


def test_wilcoxon_p_value_matches_scipy_and_a_hand_count():
    # all 6 of one sign: exact two-sided p = 2 / 2**6
    assert wilcoxon_p_value([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) == pytest.approx(2 / 64)
    # one negative of rank 1 among 6 non-zero (the zero is dropped): W- = 1, P(W- <= 1) = 2/64, two-sided 4/64
    differences = [0.5, -0.1, 0.3, 0.2, 0.6, 0.4, 0.0]
    assert wilcoxon_p_value(differences) == pytest.approx(0.0625)
    assert wilcoxon_p_value(differences) == wilcoxon(differences, zero_method="wilcox").pvalue
    known = [0.12, -0.03, 0.08, 0.2, -0.07, 0.15, 0.01, 0.09, 0.0, 0.11]
    assert wilcoxon_p_value(known) == wilcoxon(known, zero_method="wilcox", alternative="two-sided").pvalue
    # too few non-zero differences, or all zero: NaN
    assert math.isnan(wilcoxon_p_value([0.1, 0.2, 0.3, 0.4, 0.5, 0.0, 0.0]))
    assert math.isnan(wilcoxon_p_value([0.0] * 8)) and math.isnan(wilcoxon_p_value([]))
    with pytest.raises(ValueError, match="min_pairs"):
        wilcoxon_p_value(known, min_pairs=0)


def test_compare_reports_the_wilcoxon_p_value_of_the_per_case_differences():
    ours = [b + d for b, d in zip(BASE + [0.3], [0.5, -0.1, 0.3, 0.2, 0.6, 0.4, 0.0])]
    result = _compare(_row("ours", ours), _row("base", BASE + [0.3]))
    differences = [o - b for o, b in zip(ours, BASE + [0.3])]
    assert result.wilcoxon_p == wilcoxon(differences, zero_method="wilcox").pvalue
    assert result.wilcoxon_p == pytest.approx(0.0625)


def test_seeds_that_disagree_stop_an_ordering_the_interval_allows():
    """Per case, ours - base is +0.3, +0.3 and -0.1 in the three seeds: the mean difference is 1/6 on every case,
    so the interval is [1/6, 1/6] and excludes 0, but seed 2 says the opposite."""
    base = _seeded("base", {s: BASE for s in (0, 1, 2)})
    ours = _seeded("ours", {0: [b + 0.3 for b in BASE], 1: [b + 0.3 for b in BASE], 2: [b - 0.1 for b in BASE]})
    result = _compare(ours, base)
    assert result.low == pytest.approx(1 / 6) and result.high == pytest.approx(1 / 6)
    assert [s for s, _ in result.seed_differences] == [0, 1, 2]
    assert [d for _, d in result.seed_differences] == pytest.approx([0.3, 0.3, -0.1])
    assert (result.n_seeds, result.seeds_agreeing, result.seeds_agree) == (3, 2, False)
    assert result.verdict == SEEDS_DISAGREE == "not separated (seeds disagree)"

    agree = _compare(_seeded("ours", {s: [b + 0.1 * (s + 1) for b in BASE] for s in (0, 1, 2)}), base)
    assert (agree.seeds_agreeing, agree.seeds_agree, agree.verdict) == (3, True, "ours better")
    # lower is better: the baseline's larger distance in every seed names ours
    hd = _compare(
        _seeded("ours", {0: [1.0, 2.0], 1: [1.5, 2.5]}, "hd", higher_is_better=False),
        _seeded("b", {0: [3.0, 4.0], 1: [3.5, 4.5]}, "hd"),
    )
    assert (hd.seeds_agreeing, hd.verdict) == (2, "ours better")


def test_compare_pairs_takes_every_pair_and_metric_a_run_has_and_the_table_shows_each(tmp_path):
    base = BASE * 4  # 24 subjects: enough to name an ordering
    per_seed = {s: [b + 0.1 * (s + 1) for b in base] for s in (0, 1, 2)}
    rows = [
        _seeded("base", {s: base for s in (0, 1, 2)}),
        _seeded("ours", per_seed),
        _seeded("base", {s: base for s in (0, 1, 2)}, "hd", higher_is_better=False),
        _seeded("ours", {s: [b + 1.0 for b in base] for s in (0, 1, 2)}, "hd", higher_is_better=False),
    ]
    compared = compare_pairs(rows, [("ours", "base"), ("missing", "base"), ("base", "ours")])
    assert [(c.ours, c.baseline, c.metric) for c in compared] == [
        ("ours", "base", "dice"),
        ("ours", "base", "hd"),
        ("base", "ours", "dice"),
        ("base", "ours", "hd"),
    ]
    assert [c.verdict for c in compared] == ["ours better", "base better", "ours better", "base better"]
    table = comparison_table(compared, {"dice": "Dice"}).splitlines()
    assert len(table) == 2 + 4 and table[2].startswith("| ours vs base | Dice | ")
    assert table[2].endswith(f"| {compared[0].interval_text()} | {compared[0].wilcoxon_p:.2g} | 3/3 | ours better |")
    assert "| ours vs base | hd | " in table[3]

    written = write_comparisons(rows, [("ours", "base")], tmp_path / "comparisons.md", "Run: pairs", "The note.", {})
    text = written.read_text()
    assert text.startswith("# Run: pairs\n\nThe note. Per held-out case, the mean over the training seeds;")
    assert "at least 20 cases pair" in text and text.endswith("\n\n" + comparison_table(compared[:2]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comparisons.md"]  # no temporary file left

    path = write_seed_cases_csv(rows[:2], tmp_path / "seed_cases.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "method,metric,seed,case,value" and len(lines) == 1 + 2 * 3 * len(base)
    assert lines[1 + 3 * len(base)] == f"ours,dice,0,case0,{per_seed[0][0]!r}"


def test_seed_agreement_needs_the_same_two_or_more_seeds_in_both_rows():
    one = _compare(_seeded("ours", {0: [b + 0.2 for b in BASE]}), _seeded("base", {0: BASE}))
    assert one.n_seeds == 0 and one.verdict == "ours better (seeds not checked)"
    other = _seeded("base", {0: BASE, 2: BASE})
    assert seed_differences(_seeded("ours", {0: BASE, 1: BASE}), other) == {}
    assert seed_differences(_seeded("ours", {0: BASE, 1: BASE}), _row("base", BASE)) == {}
    # a seed's cases pair by name and skip the unscored ones; a seed with no pair counts as not agreeing
    ours = BenchmarkRow("o", "dice", [("a", 0.6)], seeds=[0, 1], per_seed={0: [("a", 0.7)], 1: [("a", NAN)]})
    base = BenchmarkRow("b", "dice", [("a", 0.5)], seeds=[0, 1], per_seed={0: [("a", 0.5)], 1: [("a", 0.5)]})
    differences = seed_differences(ours, base)
    assert differences[0] == pytest.approx(0.2) and math.isnan(differences[1])
    assert _compare(ours, base).seeds_agreeing == 1


def test_a_baseline_without_seeds_is_compared_with_every_seed():
    """Registration or interpolation has no training seed: its one result stands against each seed of ours."""
    deterministic = BenchmarkRow("registration", "dice", [(f"case{i}", b) for i, b in enumerate(BASE)])
    ours = _seeded("ours", {0: [b + 0.2 for b in BASE], 1: [b + 0.1 for b in BASE], 2: [b - 0.05 for b in BASE]})
    assert seed_differences(ours, deterministic) == pytest.approx({0: 0.2, 1: 0.1, 2: -0.05})
    result = _compare(ours, deterministic)
    assert (result.n_seeds, result.seeds_agreeing, result.verdict) == (3, 2, SEEDS_DISAGREE)
    assert _compare(deterministic, ours).verdict == SEEDS_DISAGREE  # either side may be the seedless one


def _segments(n_cases=12, per_case=6):
    """Elements of ``n_cases`` cases, every other one positive, with an informative and a constant score."""
    cases = [f"case{i}" for i in range(n_cases) for _ in range(per_case)]
    positive = np.array([k % 2 == 0 for k in range(n_cases * per_case)])
    informative = np.where(positive, 0.8, 0.2) + np.linspace(0.0, 0.1, positive.size)
    return cases, positive, informative, np.full(positive.size, 0.5)


def test_pooled_auc_difference_is_the_seeds_mean_of_each_seeds_auc_difference():
    cases, positive, informative, constant = _segments()
    noisy = np.random.default_rng(3).random(positive.size)
    result = compare_pooled_auc("ours", "prior", "segment AUC", cases, positive,
                                {0: informative, 1: noisy}, {0: constant}, n_resamples=500)  # fmt: skip
    by_hand = {0: roc_auc(informative[positive], informative[~positive]) - 0.5,
               1: roc_auc(noisy[positive], noisy[~positive]) - 0.5}  # fmt: skip
    assert by_hand[0] == 0.5  # every positive outranks every negative
    assert dict(result.seed_differences) == pytest.approx(by_hand)
    assert result.difference == pytest.approx((by_hand[0] + by_hand[1]) / 2)
    assert result.n_cases == 12 and math.isnan(result.wilcoxon_p)


def test_pooled_auc_claims_an_ordering_only_when_the_case_bootstrap_excludes_zero_and_seeds_agree():
    cases, positive, informative, constant = _segments()
    better = compare_pooled_auc("ours", "prior", "auc", cases, positive,
                                {0: informative, 1: informative}, {0: constant}, n_resamples=500)  # fmt: skip
    assert better.low == better.high == 0.5 and better.verdict == "ours better"
    worse = compare_pooled_auc("prior", "network", "auc", cases, positive, {0: constant, 1: constant},
                               {0: informative, 1: informative}, n_resamples=500)  # fmt: skip
    assert worse.difference == -0.5 and worse.verdict == "network better"  # the baseline named as the better one
    same = compare_pooled_auc("ours", "prior", "auc", cases, positive, {0: constant, 1: constant}, {0: constant},
                              n_resamples=500)  # fmt: skip
    assert same.difference == 0.0 and same.verdict == NOT_SEPARATED
    # seed 2 ranks every negative first: the seeds' mean is 1/6 in every resample, but seed 2 disagrees
    flipped = compare_pooled_auc("ours", "prior", "auc", cases, positive,
                                 {0: informative, 1: informative, 2: 1.0 - informative}, {0: constant},
                                 n_resamples=500)  # fmt: skip
    assert dict(flipped.seed_differences) == {0: 0.5, 1: 0.5, 2: -0.5}
    assert flipped.low == pytest.approx(1 / 6) and flipped.verdict == SEEDS_DISAGREE


def test_pooled_auc_bootstrap_resamples_cases_not_elements():
    """Scores that separate the classes in half the cases and invert them in the other half: a case-level bootstrap
    must see that spread; an element-level one would be narrower. Two cases only, so every case resample is one of
    four: both good (AUC 1), both bad (0), or one of each (0.5)."""
    cases = ["a"] * 10 + ["b"] * 10
    positive = np.array([k % 2 == 0 for k in range(20)])
    scores = np.where(positive, 1.0, 0.0)
    scores[10:] = 1.0 - scores[10:]
    result = compare_pooled_auc("ours", "prior", "auc", cases, positive, {0: scores}, {0: np.zeros(20)},
                                n_resamples=2000)  # fmt: skip
    assert result.difference == 0.0  # pooled, the halves cancel
    assert result.low == -0.5 and result.high == 0.5 and result.verdict == NOT_SEPARATED


def test_pooled_auc_refuses_mismatched_inputs():
    cases, positive, informative, constant = _segments()
    with pytest.raises(ValueError, match="seeds differ"):
        compare_pooled_auc("o", "b", "auc", cases, positive, {0: informative, 1: informative},
                           {0: constant, 2: constant})  # fmt: skip
    with pytest.raises(ValueError, match="elements in cases"):
        compare_pooled_auc("o", "b", "auc", cases, positive, {0: informative[:-1]}, {0: constant})


def _cells(line):
    names = [name for name, _ in tb.MARKDOWN_COLUMNS]
    return dict(zip(names, [c.strip() for c in line.strip().strip("|").split("|")]))


# ----------------------------------------------------------------------------------------------- merged by the tool
INFO = """
COMPARISONS = (("ours", "base"),)
PAPER_NUMBERS = {("ours", "base", "dice"): (0.5, 0.6, "Table 9")}
PAPER_NOTES = "Theirs: Table 9 of a paper."
MODE_NOTES = {"quick": "3 epochs", "full": "300 epochs"}
METRIC_LABELS = {"dice": "Dice, test split"}
"""


def _info(tmp_path, source=INFO):
    (tmp_path / "b" / "scripts").mkdir(parents=True)
    (tmp_path / "b" / "scripts" / "benchmark.py").write_text(textwrap.dedent(source))
    (tmp_path / "b" / "configs").mkdir()
    (tmp_path / "b" / "configs" / "quick.json").write_text('{"features": [4, 8]}')
    return tb.read_benchmark_info(tmp_path / "b")


def test_tool_merges_skeleton_rows_with_the_bundles_comparisons(tmp_path):
    info = _info(tmp_path)
    rows = [
        _row("ours", [0.8, 0.7, 0.9, 0.6], seconds=10.0).to_dict(),
        _row("base", [0.5, 0.5, 0.6, 0.4], seconds=4.0).to_dict(),
        _row("alone", [0.3, 0.2]).to_dict(),
        {**BenchmarkRow("step", "step", seconds=0.5).to_dict(), "step_seconds": 0.5, "gflop_per_step": 2.0},
    ]
    merged = tb.normalize_rows(info, rows)
    assert [(r["method"], r["baseline_method"]) for r in merged] == [("ours", "base"), ("alone", None), ("step", None)]
    pair = merged[0]
    assert (pair["baseline"], pair["ours"], pair["n_cases"]) == (pytest.approx(0.5), pytest.approx(0.75), 4)
    assert pair["difference"] == pytest.approx(0.25) and 0 < pair["ci_low"] <= pair["ci_high"]
    # the interval excludes 0 (ours better, seeds not checked), but 4 cases are too few to name a better method
    assert pair["ordering"] == TOO_FEW_CASES and pair["metric"] == "Dice, test split"
    assert (pair["n_seeds"], pair["seeds_agreeing"], pair["seed_differences"]) == (0, None, {})
    assert pair["wilcoxon_p"] is None  # 4 cases: fewer than 6 non-zero differences
    assert (pair["seconds"], pair["baseline_seconds"]) == (10.0, 4.0)
    assert (pair["paper_baseline"], pair["paper_ours"], pair["paper_source"]) == (0.5, 0.6, "Table 9")
    assert "values" not in pair["source"] and "per_seed" not in pair["source"]
    assert merged[1]["ours"] == pytest.approx(0.25) and merged[1]["ordering"] is None
    assert merged[2]["metric"] == tb.SPEED_METRIC and merged[2]["gflop_per_step"] == 2.0

    text = tb.format_markdown(merged, ["header"])
    line = next(x for x in text.splitlines() if x.startswith("| b | ours | base |"))
    assert TOO_FEW_CASES in line and f"{pair['difference']:.4g} [" in line
    cells = _cells(line)
    assert (cells["Wilcoxon p"], cells["seeds"]) == ("-", "-")  # compared, but no p-value and no seeds to check
    alone = _cells(next(x for x in text.splitlines() if x.startswith("| b | alone |")))
    assert (alone["Wilcoxon p"], alone["seeds"]) == ("", "")  # no comparison at all

    path = tb.write_cases("b", rows, tmp_path / "out")
    assert path == tmp_path / "out" / "b_cases.csv"
    assert {(r.method, len(r.values)) for r in read_cases_csv(path)} == {("ours", 4), ("base", 4), ("alone", 2)}


def test_tool_shows_the_wilcoxon_p_value_and_the_seeds_in_the_table_and_the_json(tmp_path):
    info = _info(tmp_path)
    base = _seeded("base", {s: BASE for s in (0, 1, 2)}, seconds=4.0)
    ours = _seeded("ours", {0: [b + 0.3 for b in BASE], 1: [b + 0.3 for b in BASE], 2: [b - 0.1 for b in BASE]})
    rows = json.loads(json.dumps([ours.to_dict(), base.to_dict()]))  # as read back from a bundle's rows.json
    (pair,) = tb.normalize_rows(info, rows)
    assert pair["ordering"] == SEEDS_DISAGREE and (pair["n_seeds"], pair["seeds_agreeing"]) == (3, 2)
    assert pair["seed_differences"] == {"0": pytest.approx(0.3), "1": pytest.approx(0.3), "2": pytest.approx(-0.1)}
    assert pair["wilcoxon_p"] == pytest.approx(2 / 64)  # 6 cases, all 1/6 apart: the smallest exact p
    assert "per_seed" not in pair["source"] and "values" not in pair["source"]
    cells = _cells(next(x for x in tb.format_markdown([pair], []).splitlines() if x.startswith("| b |")))
    assert (cells["Wilcoxon p"], cells["seeds"], cells["ordering (CI excludes 0, seeds agree)"]) == (
        "0.03125",
        "2/3",
        "not separated (seeds disagree)",
    )

    many = BASE * 4  # 24 cases: enough to name a better method
    agree = _seeded("ours", {s: [b + 0.3 for b in many] for s in (0, 1, 2)})
    base = _seeded("base", {s: many for s in (0, 1, 2)})
    (pair,) = tb.normalize_rows(info, [agree.to_dict(), base.to_dict()])
    cells = _cells(next(x for x in tb.format_markdown([pair], []).splitlines() if x.startswith("| b |")))
    assert (cells["seeds"], cells["ordering (CI excludes 0, seeds agree)"]) == ("3/3 agree", "ours better")

    _, json_path = tb.write_merged([pair], tmp_path / "out", ["header"])
    content = json.loads(json_path.read_text())
    assert content["columns"]["Wilcoxon p"] == "wilcoxon_p" and content["columns"]["seeds"] == "seeds_agreeing"
    written = content["rows"][0]
    differences = [a - b for (_, a), (_, b) in zip(agree.values, base.values)]  # every case 0.3 apart, to rounding
    assert written["wilcoxon_p"] == pytest.approx(wilcoxon(differences, zero_method="wilcox").pvalue)
    assert written["wilcoxon_p"] < 1e-4
    assert (written["n_seeds"], written["seeds_agreeing"], written["n_cases"]) == (3, 3, 24)
    assert written["seed_differences"] == {"0": pytest.approx(0.3), "1": pytest.approx(0.3), "2": pytest.approx(0.3)}


def test_header_is_written_from_the_bundles_notes(tmp_path):
    info = _info(tmp_path)
    runs = {"b": {"status": "PASS", "seconds": 5.0, "process_peak_rss_mb": 100.0, "table": "out/b/benchmark.md"}}
    quick = "\n".join(tb.header_lines({"b": info}, runs, True, "python -m tools.benchmark --all --quick", 6.0, "cpu"))
    assert "phantoms that each bundle's benchmark writes" in quick and "Machine: cpu" in quick
    assert "`b` (quick): networks of configs/quick.json (features [4, 8]); 3 epochs." in quick
    assert "Theirs: Table 9 of a paper." in quick and "not separated" in quick
    assert "Wilcoxon p" in quick and "every seed agrees" in quick and "(seeds not checked)" in quick
    assert "not separated (seeds disagree)" in quick and "at least 20 cases paired" in quick and TOO_FEW_CASES in quick
    full = "\n".join(tb.header_lines({"b": info}, runs, False, "python -m tools.benchmark --all", 6.0, "cpu"))
    assert "`b` (full): 300 epochs." in full and "quick.json" not in full


def test_bundle_data_must_be_literals(tmp_path):
    with pytest.raises(ValueError, match="bundle `b`: COMPARISONS in scripts/benchmark.py must be a literal"):
        _info(tmp_path, "COMPARISONS = tuple((m, 'base') for m in 'ab')\n")


def test_int_tuple_reads_seeds_and_scales_as_fire_and_callers_give_them():
    from common.benchmarking import int_tuple

    assert int_tuple("0,1,2") == (0, 1, 2)
    assert int_tuple("(4, 8)") == (4, 8)  # fire passes a tuple literal through as text
    assert int_tuple(3) == (3,)  # fire turns "--seeds 3" into an int
    assert int_tuple([4, 8]) == (4, 8)
    assert int_tuple("") == ()


def test_slice_scaling_fits_seconds_per_slice_after_a_warm_up(monkeypatch, tmp_path):
    """A fake clock where a volume of n slices costs 1 + 0.5 n seconds: the fit gives 0.5 s per slice, intercept 1,
    no residual; the first count runs once more as warm-up."""
    import common.benchmarking.speed as speed
    from common.benchmarking import slice_scaling

    clock = {"now": 0.0}
    calls = []

    class FakeTimer:
        def __enter__(self):
            self.start = clock["now"]
            return self

        def __exit__(self, *args):
            self.seconds = clock["now"] - self.start

    def run(n):
        calls.append(n)
        clock["now"] += 1.0 + 0.5 * n

    monkeypatch.setattr(speed, "Timer", FakeTimer)
    result = slice_scaling(run, (2, 4, 8))
    assert calls == [2, 2, 4, 8]
    assert result["seconds"] == [2.0, 3.0, 5.0]
    assert result["per_slice"] == pytest.approx(0.5) and result["intercept"] == pytest.approx(1.0)
    assert result["max_relative_residual"] == pytest.approx(0.0, abs=1e-9)
    # written as JSON with the machine when asked (the committed record of a run)
    calls.clear()
    written = slice_scaling(run, (2, 4), json_path=tmp_path / "new" / "scaling.json")
    record = json.loads((tmp_path / "new" / "scaling.json").read_text())
    assert record.pop("machine") == speed.machine_summary() and record == written and calls == [2, 2, 4]
    with pytest.raises(ValueError, match="at least 2"):
        slice_scaling(run, (4,))


def test_write_tiled_volume_repeats_slices_cyclically_keeping_the_geometry(tmp_path):
    import nibabel as nib
    import numpy as np
    from common.benchmarking import write_tiled_volume

    volume = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    affine = np.diag([1.0, 2.0, 5.0, 1.0])
    nib.save(nib.Nifti1Image(volume, affine), tmp_path / "v.nii.gz")
    out = write_tiled_volume(str(tmp_path / "v.nii.gz"), 10, 2, str(tmp_path / "new" / "t.nii.gz"))
    tiled = nib.load(out)
    np.testing.assert_array_equal(np.asarray(tiled.dataobj), volume[..., [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]])
    np.testing.assert_array_equal(tiled.affine, affine)
    fewer = write_tiled_volume(str(tmp_path / "v.nii.gz"), 2, 1, str(tmp_path / "f.nii.gz"))
    np.testing.assert_array_equal(np.asarray(nib.load(fewer).dataobj), volume[:, :2])
    with pytest.raises(ValueError, match="n must be >= 1"):
        write_tiled_volume(str(tmp_path / "v.nii.gz"), 0, 2, str(tmp_path / "z.nii.gz"))
    # a 2D slice is stacked along a new last axis, its in-plane geometry kept
    nib.save(nib.Nifti1Image(volume[..., 1], affine), tmp_path / "s.nii.gz")
    stack = nib.load(write_tiled_volume(str(tmp_path / "s.nii.gz"), 3, 2, str(tmp_path / "st.nii.gz")))
    np.testing.assert_array_equal(np.asarray(stack.dataobj), volume[..., [1, 1, 1]])
    np.testing.assert_array_equal(stack.affine[:3, :2], affine[:3, :2])


def test_slice_scaling_rows_are_one_row_per_count_then_the_fit():
    from common.benchmarking import slice_scaling_rows

    rows = slice_scaling_rows("X inference", {"slice_counts": [2, 4], "seconds": [2.0, 3.0], "per_slice": 0.5})
    assert [r.method for r in rows] == [
        "X inference, 2 slices",
        "X inference, 4 slices",
        "X inference, per slice (fit)",
    ]
    assert [r.seconds for r in rows] == [2.0, 3.0, 0.5] and all(r.metric == "inference_seconds" for r in rows)
    assert not any(r.higher_is_better for r in rows) and rows[0].peak_rss_mb > 0 and rows[2].peak_rss_mb is None


def test_inference_times_times_only_the_forward_after_the_warm_up_without_autograd():
    import time

    import torch
    from common.benchmarking import inference_times

    made, seen = [], []

    def make_input():
        time.sleep(0.05)  # input preparation: outside the clock
        made.append(len(made))
        return torch.ones(2, requires_grad=True) * len(made)

    def forward(x):
        seen.append((float(x[0]), torch.is_grad_enabled()))

    times = inference_times(forward, make_input, n=3, warmup=2)
    assert len(times) == 3 and all(t < 0.04 for t in times)
    assert [v for v, _ in seen] == [1.0, 2.0, 3.0, 4.0, 5.0] and not any(grad for _, grad in seen)
    with pytest.raises(ValueError, match="n >= 1"):
        inference_times(forward, make_input, n=0)


def test_parse_config_switches_keeps_the_config_value_unless_given_and_reaches_the_items(tmp_path):
    """What the peer steps use: a switch flag left at None keeps the config's value, a given one (a command-line
    string too) overrides it for every item that reads it; each comes back as a bool."""
    (tmp_path / "configs").mkdir()
    config = {"fast": True, "layout": "false", "label": {"fast": "@fast"}}
    (tmp_path / "configs" / "train.json").write_text(json.dumps(config))
    items, switches = parse_config_switches(tmp_path, ["train.json"], None, ["label"], {"fast": None, "layout": None})
    assert switches == {"fast": True, "layout": False} and items["label"] == {"fast": True}
    items, switches = parse_config_switches(tmp_path, ["train.json"], {}, ["label"], {"fast": "no", "layout": True})
    assert switches == {"fast": False, "layout": True} and items["label"] == {"fast": "no"}
    with pytest.raises(ValueError, match="fast"):
        parse_config_switches(tmp_path, ["train.json"], {}, ["label"], {"fast": "sometimes"})


# ----------------------------------------------------------------------------------------------- schedule checks
def test_schedule_check_refuses_the_benchmark_seed_summarises_dice_and_writes_its_table(tmp_path):
    with pytest.raises(ValueError, match="data_seed 2031 is the benchmark's own: pick a development seed"):
        development_data_seed(2031, 2031)
    assert development_data_seed("1234", 2031) == 1234

    summary = dice_summary({"a": 0.8, "b": 0.0, "c": 0.04, "d": 0.05})  # 0.05 itself is not missed
    assert summary == {"test_dice": pytest.approx(0.2225), "missed_slices": 2, "test_slices": 4}

    rows = [{"method": "Seg", "epochs": 20, "seed": 0, **summary}]
    text = write_schedule_check(tmp_path, 1234, rows, "MI Dice")
    assert "Development data seed 1234; test_dice: MI Dice" in text and "| Seg | 20 | 0 | 0.2225 | 2 | 4 |" in text
    written = json.loads((tmp_path / "schedule_check.json").read_text())
    assert written["rows"] == rows and (tmp_path / "schedule_check.md").read_text() == text


def test_peak_rss_window_reads_its_own_block_not_the_process_high_water_mark():
    """Per-step memory rows: after a large allocation, a later window that allocates little reads far less than the
    process peak (Linux resets the mark); each window sees at least its own allocation."""
    import numpy as np
    from common.benchmarking import PeakRSSWindow, peak_rss_mb

    with PeakRSSWindow() as big:
        block = np.ones(60_000_000)  # 458 MiB touched
        del block
    with PeakRSSWindow() as small:
        block = np.ones(6_000_000)  # 46 MiB
        del block
    assert big.peak_mb >= 440 and small.peak_mb <= peak_rss_mb()
    if small.reset:  # Linux: the window's own peak, not the 458 MiB block's
        assert small.peak_mb < big.peak_mb - 300
    assert peak_rss_mb() >= big.peak_mb  # the process's lifetime peak survives the windows' resets
