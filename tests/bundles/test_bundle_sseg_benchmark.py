"""The SwinSSegNet benchmark's pre-training schedule: SSL and U-SSL make the same number of optimizer steps.

Pure functions of `bundles/lge_mi_sr_segmentation/scripts/benchmark.py`; nothing is trained.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import numpy as np
import pytest
from bundle_test_utils import bundle_scripts, tiny_overrides

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "lge_mi_sr_segmentation"


@pytest.fixture(scope="module")
def benchmark():
    with bundle_scripts(BUNDLE):
        return importlib.import_module("scripts.benchmark")


# (own LGE slices, hybrid U-SSL slices, batch size, fewest steps)
SIZES = [
    (41, 519, 16, 128),  # the phantom data now: 2 and 32 steps per epoch
    (34, 512, 16, 128),  # the committed quick run's sets (4 and 64 steps at 2 epochs each)
    (41, 519, 16, 320),
    (100, 300, 8, 50),  # 12 and 37 steps per epoch: the common count is their product
    (16, 1000, 16, 10),  # one step per epoch for SSL
    (70, 70, 16, 9),  # equal sets
]


@pytest.mark.parametrize("own, hybrid, batch_size, min_steps", SIZES)
def test_ssl_and_ussl_get_equal_steps_in_whole_epochs(benchmark, own, hybrid, batch_size, min_steps):
    per_epoch = {
        "SSL": benchmark.steps_per_epoch(own, batch_size),
        "U-SSL": benchmark.steps_per_epoch(hybrid, batch_size),
    }
    steps, epochs = benchmark.same_steps(per_epoch, min_steps)
    assert set(epochs) == {"SSL", "U-SSL"}
    assert epochs["SSL"] * per_epoch["SSL"] == epochs["U-SSL"] * per_epoch["U-SSL"] == steps
    assert min(epochs.values()) >= 1
    period = math.lcm(*per_epoch.values())
    assert min_steps <= steps < min_steps + period  # the fewest whole-epoch steps that reach min_steps


def test_equal_epochs_were_unequal_steps(benchmark):
    """The old schedule (2 quick pre-training epochs each) on the committed run's sets: 4 vs 64 steps."""
    assert 2 * benchmark.steps_per_epoch(34, 16) == 4
    assert 2 * benchmark.steps_per_epoch(512, 16) == 64


@pytest.mark.parametrize("mode, steps, ssl_epochs, ussl_epochs", [("quick", 128, 64, 4), ("full", 320, 160, 10)])
def test_benchmark_schedules_on_the_phantom_sets(benchmark, mode, steps, ssl_epochs, ussl_epochs):
    per_epoch = {"SSL": benchmark.steps_per_epoch(41, 16), "U-SSL": benchmark.steps_per_epoch(519, 16)}
    min_steps = benchmark.PRETRAINING_STEPS[mode]
    assert benchmark.same_steps(per_epoch, min_steps, 2 * min_steps) == (
        steps,
        {"SSL": ssl_epochs, "U-SSL": ussl_epochs},
    )
    # the benchmark's own data (42 own slices, 509 hybrid: 2 and 31 steps per epoch), as its mode note says
    own = {"SSL": benchmark.steps_per_epoch(42, 16), "U-SSL": benchmark.steps_per_epoch(509, 16)}
    steps_own, _ = benchmark.same_steps(own, min_steps, 2 * min_steps)
    assert steps_own == {"quick": 186, "full": 372}[mode]
    assert f"{steps_own} optimizer steps" in benchmark.MODE_NOTES[mode] and str(min_steps) in benchmark.MODE_NOTES[mode]


def test_steps_per_epoch_follows_drop_last(benchmark):
    assert benchmark.steps_per_epoch(41, 16) == 2
    assert benchmark.steps_per_epoch(41, 16, drop_last=False) == 3
    assert benchmark.steps_per_epoch(48, 16, drop_last=False) == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dataset_size": 10, "batch_size": 16},  # drop_last: no full batch
        {"dataset_size": 0, "batch_size": 16, "drop_last": False},
        {"dataset_size": 10, "batch_size": 0},
        {"dataset_size": -1, "batch_size": 1},
    ],
)
def test_steps_per_epoch_rejects_epochs_without_steps(benchmark, kwargs):
    with pytest.raises(ValueError):
        benchmark.steps_per_epoch(**kwargs)


@pytest.mark.parametrize(
    "args, match",
    [
        (({}, 10), "at least one run"),
        (({"SSL": 0, "U-SSL": 2}, 10), "epoch_steps"),
        (({"SSL": 2, "U-SSL": 32}, 0), "min_steps"),
        (({"SSL": 31, "U-SSL": 33}, 10, 100), "max_steps"),  # lcm 1023
    ],
)
def test_same_steps_rejects_bad_arguments(benchmark, args, match):
    with pytest.raises(ValueError, match=match):
        benchmark.same_steps(*args)


def test_loss_summary_windows(benchmark):
    values = [float(v) for v in range(20, 0, -1)]  # 20 steps falling from 20 to 1
    summary = benchmark._loss_summary(values)
    assert summary == {
        "first": 20.0,
        "last": 1.0,
        "window": 2,
        "first_window_mean": 19.5,
        "last_window_mean": 1.5,
    }


def test_benchmark_split_holds_its_test_slices_and_the_default_training_size(benchmark):
    from common.data import dti_lge_mi_split

    n = benchmark.N_PAIRED + benchmark.N_LGE_ONLY
    cases = [{"case": f"Case_{i:03d}", **({"dti": "d"} if i < benchmark.N_PAIRED else {})} for i in range(n)]
    split = dti_lge_mi_split(cases, fractions=benchmark.SPLIT, seed=benchmark.SPLIT_SEED)
    assert len(split["test"]) == benchmark.N_TEST >= 30
    assert len(split["val"]) == benchmark.N_VAL
    assert len(split["lge_train"]) == benchmark.N_TRAIN_PAIRS + benchmark.N_LGE_ONLY == 42
    assert benchmark.DATA_SEED not in (0,)  # the development data's seed


def test_split_seed_fixes_the_split_and_the_pretraining_set_across_training_seeds(tiny_data):
    """Several training seeds on one split: the test cases, the training list and U-SSL's own slices stay put."""
    from common.benchmarking import parse_config_items
    from common.data import dti_lge_mi_cases, dti_lge_mi_split

    dataset_dir = str(tiny_data / "DTI_LGE_MI")
    cases = dti_lge_mi_cases(dataset_dir)
    by_seed = {s: dti_lge_mi_split(cases, seed=s) for s in (0, 1, 2)}
    moving = next(s for s in (1, 2) if by_seed[s]["test"] != by_seed[0]["test"])  # a split seed that moves the split
    own = parse_config_items(BUNDLE, ["train.json"], {"dataset_dir": dataset_dir, "split_seed": moving}, ("split",))
    assert own["split"]["test"] == by_seed[moving]["test"]
    fixed = parse_config_items(  # the training seed alone does not move it: split_seed is 0 by default
        BUNDLE,
        ["train.json", "evaluate.json"],
        {"dataset_dir": dataset_dir, "seed": moving},
        ("split", "train_datalist", "test_datalist"),
    )
    assert fixed["split"]["test"] == by_seed[0]["test"]
    assert [d["case"] for d in fixed["test_datalist"]] == [c["case"] for c in by_seed[0]["test"]]
    assert [d["case"] for d in fixed["train_datalist"]] == [c["case"] for c in by_seed[0]["lge_train"]]

    def own_slices(**extra) -> list:
        overrides = {"dataset_dir": dataset_dir, "use_public_data": False, **extra}
        with bundle_scripts(BUNDLE):  # pretrain.json's datalist is this bundle's scripts.ssl_data
            items = parse_config_items(BUNDLE, ["pretrain.json"], overrides, ("train#datalist",))
        return [item["image"] for item in items["train#datalist"]]

    def same(a: list, b: list) -> bool:
        return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))

    seed0 = own_slices(seed=0)
    assert same(own_slices(seed=moving), seed0)
    assert not same(own_slices(seed=moving, split_seed=moving), seed0)


def test_schedule_check_refuses_the_benchmarks_data_seed_and_pretrained_variants(tmp_path):
    """The schedule is checked on development data, on the variants trained from scratch; both refusals come before
    anything is written."""
    with bundle_scripts(BUNDLE):
        check = importlib.import_module("scripts.schedule_check")
    with pytest.raises(ValueError, match=f"data_seed {check.bm.DATA_SEED} is the benchmark's own"):
        check.run(str(tmp_path / "out"), check.bm.DATA_SEED, (0,), (1,), ("Seg_N",))
    with pytest.raises(ValueError, match=r"among \['SSeg_N', 'SSeg_convnext_N', 'SSeg_resnet_N', 'Seg_N'\]"):
        check.run(str(tmp_path / "out"), 1234, (0,), (1,), ("Seg_SSL",))
    assert not (tmp_path / "out").exists()


def test_quick_note_states_the_steps_train_json_makes_on_the_benchmarks_training_set(benchmark):
    """The merged table's header quotes the variants' optimizer steps: what train.json's loader makes per epoch on the
    benchmark's training slices (the last batch kept) times the quick epochs."""
    import json

    config = json.loads((BUNDLE / "configs" / "train.json").read_text())
    drop_last = config["train"]["dataloader"].get("drop_last", False)
    per_epoch = benchmark.steps_per_epoch(
        benchmark.N_TRAIN_PAIRS + benchmark.N_LGE_ONLY, config["batch_size"], drop_last
    )
    assert per_epoch == 6  # 42 slices at batch 8: five full batches and one of 2
    assert f"{benchmark.EPOCHS['quick']} epochs per variant ({benchmark.EPOCHS['quick'] * per_epoch} AdamW steps" in (
        benchmark.MODE_NOTES["quick"]
    )
    assert f"{benchmark.EPOCHS['full']} epochs per variant ({benchmark.EPOCHS['full'] * per_epoch} AdamW steps" in (
        benchmark.MODE_NOTES["full"]
    )


@pytest.mark.slow
def test_train_and_score_reads_the_steps_back_from_the_trainer(benchmark, tiny_data, tmp_path):
    """One variant trained for 2 epochs on the tiny data: the steps come from the trainer (the last short batch
    counted), every test case is scored, and a second call reuses the stored stages with the same steps."""
    from common.benchmarking import StageCache, parse_config_items

    overrides = dict(
        benchmark.variant_overrides(tiny_data, 2, 0, tiny_overrides(BUNDLE.name)), use_ssl_pretrained=False
    )
    items = parse_config_items(BUNDLE, ["train.json", "evaluate.json"], overrides, ("train_datalist", "test_datalist"))
    n_train, n_test = len(items["train_datalist"]), len(items["test_datalist"])
    variant = benchmark.VARIANTS[0]
    result = benchmark.train_and_score(StageCache(False), tmp_path / "seed0", variant, overrides)
    method = next(iter(variant.evaluations))
    assert result[method]["steps"] == 2 * math.ceil(n_train / 8)
    assert len(result[method]["scores"]["test_dice"]) == n_test
    again = benchmark.train_and_score(StageCache(False), tmp_path / "seed0", variant, overrides)
    assert again[method]["steps"] == result[method]["steps"]
    assert again[method]["scores"]["test_dice"] == result[method]["scores"]["test_dice"]  # (HD95 may be NaN)


def test_only_the_seedless_process_times_the_step(benchmark, tmp_path, monkeypatch):
    """``tools.benchmark --seed_processes`` passes ``seedless=False`` to every seed's process but the first: those
    skip the speed row (no seed changes it; the merge keeps the first process's). The trainings are stubbed out."""
    loss = {"loss": {"window": 1, "first_window_mean": 5.0, "last_window_mean": 4.0}}
    run = {"weights": "w.pt", "epochs": 1, "steps_per_epoch": 1, "dataset_size": 8, "steps": 1, "losses": loss}
    pretraining = {"SSL": run, "U-SSL": run}
    timed = []
    monkeypatch.setattr(benchmark, "train_and_score", lambda *args: {})
    monkeypatch.setattr(benchmark, "write_benchmark_data", lambda out: Path(out))
    monkeypatch.setattr(benchmark, "_pretrain", lambda *args: pretraining)
    monkeypatch.setattr(benchmark, "_speed_row", lambda overrides: timed.append(overrides) or {"method": "step"})
    scaled = []
    scaling = {"slice_counts": [4, 8], "seconds": [1.0, 1.5], "per_slice": 0.125, "intercept": 0.5}
    monkeypatch.setattr(benchmark, "_inference_scaling", lambda *args: scaled.append(args) or scaling)
    assert benchmark.run(None, str(tmp_path / "a"), quick=True, seeds=(1,), seedless=False) == []
    assert timed == [] == scaled and not (tmp_path / "a" / "speed.md").exists()
    rows = benchmark.run(None, str(tmp_path / "b"), quick=True, seeds=(0,))
    assert [r["method"] for r in rows] == [
        "SSeg inference, 4 slices", "SSeg inference, 8 slices", "SSeg inference, per slice (fit)", "step"
    ]  # fmt: skip
    assert [r["seconds"] for r in rows[:3]] == [1.0, 1.5, 0.125] and rows[0]["metric"] == "inference_seconds"
    assert len(timed) == 1 and (tmp_path / "b" / "speed.md").is_file()
    # timed with the first seed's model of the bundle's own network: SSeg_N, not a Seg baseline or another encoder
    assert len(scaled) == 1 and scaled[0][1] == (tmp_path / "b").resolve() / "seed0" / "SSeg_N" / "model"


def test_each_part_trains_only_its_variants_and_their_pretraining(benchmark, tmp_path, monkeypatch):
    """``run(..., part=name)`` (one process per seed and part under ``tools.benchmark --seed_processes``) trains the
    variants of that pre-training only, and pre-trains only what they start from; the parts together train every
    variant once, in the order one run over every part trains them. The trainings are stubbed out."""
    loss = {"loss": {"window": 1, "first_window_mean": 5.0, "last_window_mean": 4.0}}
    trained, pretrained = [], []

    def pretrain(data, out, network, seed, min_steps, names):
        pretrained.append(names)
        run = {"weights": "w.pt", "epochs": 1, "steps_per_epoch": 1, "dataset_size": 8, "steps": 1, "losses": loss}
        return {name: dict(run, weights=f"{name}.pt") for name in names}

    def train_and_score(stages, work, variant, overrides):
        trained.append((variant.tag, overrides.get("ssl_pretrained_path")))
        return {}

    monkeypatch.setattr(benchmark, "train_and_score", train_and_score)
    monkeypatch.setattr(benchmark, "write_benchmark_data", lambda out: Path(out))
    monkeypatch.setattr(benchmark, "_pretrain", pretrain)
    monkeypatch.setattr(benchmark, "_speed_row", lambda overrides: {"method": "step"})
    assert benchmark.BENCHMARK_PARTS == ("N", "SSL", "U-SSL")
    every = []
    for part in benchmark.BENCHMARK_PARTS:
        trained.clear(), pretrained.clear()
        benchmark.run(None, str(tmp_path / part), quick=True, seeds=(0,), seedless=False, part=part)
        assert pretrained == ([] if part == "N" else [(part,)])
        expected = None if part == "N" else f"{part}.pt"
        assert trained and all(weights == expected for _, weights in trained)
        assert all(benchmark.VARIANTS[[v.tag for v in benchmark.VARIANTS].index(tag)].pretraining == part
                   for tag, _ in trained)  # fmt: skip
        every += [tag for tag, _ in trained]
    assert sorted(every) == sorted(v.tag for v in benchmark.VARIANTS)  # each variant in exactly one part
    trained.clear(), pretrained.clear()
    benchmark.run(None, str(tmp_path / "all"), quick=True, seeds=(0,), seedless=False)
    assert [tag for tag, _ in trained] == every and pretrained == [("SSL", "U-SSL")]
    with pytest.raises(ValueError, match="benchmark part 'SimCLR' is not one of"):
        benchmark.run(None, str(tmp_path / "x"), quick=True, seeds=(0,), part="SimCLR")
