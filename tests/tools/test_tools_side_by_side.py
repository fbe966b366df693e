"""tools.side_by_side and common.benchmarking.side_by_side: alternating processes, per-round ratios, the report.

Fake harnesses stand in for the reference code and for ours (each prints a fixed step time as its last JSON line),
so the ratios are known; no timing of real code is asserted."""

from __future__ import annotations

import json
import sys

import pytest
from common.benchmarking import (
    alternate,
    iteration_times,
    precision_label,
    ratio_summary,
    run_json_process,
    step_autocast,
    step_precision,
    trainer_precision,
)

from tools import side_by_side as sbs


def _printer(median: float, gflop: float = 10.0) -> str:
    row = {"train_iter_s": {"min": median, "median": median, "max": median}, "train_step_gflop": gflop}
    return f"import json; print('log line'); print(json.dumps({row!r}))"


def _argv_printer(median: str) -> str:
    """A step that prints the time ``median`` (a Python expression that may read ``sys.argv``) as its JSON line."""
    return (
        f"import json, sys; median = {median}; "
        "print(json.dumps({'train_iter_s': {'min': median, 'median': median, 'max': median}}))"
    )


def _bundle_with_peer_step(tmp_path, name: str, spec: dict):
    """A bundle folder ``<tmp>/bundles/<name>`` whose ``scripts/benchmark.py`` declares ``spec`` as PEER_STEP."""
    bundle = tmp_path / "bundles" / name
    (bundle / "scripts").mkdir(parents=True, exist_ok=True)
    (bundle / "scripts" / "benchmark.py").write_text(f"PEER_STEP = {spec!r}\n")
    return bundle


def test_iteration_times_calls_the_step_warmup_plus_n_times_and_counts_its_flops():
    import torch

    calls = []
    layer = torch.nn.Linear(8, 8)
    x = torch.randn(4, 8)

    def step():
        calls.append(1)
        layer(x).sum().backward()

    result = iteration_times(step, n=3, warmup=2, flops=False)
    assert len(calls) == 5 and len(result["train_iter_s"]["all"]) == 3 and len(result["warmup_train_s"]) == 2
    assert result["train_iter_s"]["min"] <= result["train_iter_s"]["median"] <= result["train_iter_s"]["max"]
    result = iteration_times(step, n=1, warmup=0, flops=True)
    # forward 2*4*8*8 multiply-adds and the weight gradient as many (the input needs no gradient)
    assert result["train_step_gflop"] * 1e9 == pytest.approx(2 * 2 * 4 * 8 * 8, rel=0.01)
    assert result["ceiling_share"] > 0
    with pytest.raises(ValueError, match="n >= 1"):
        iteration_times(step, n=0)


def test_count_flops_matches_torchs_counter_and_counts_recomputed_forwards():
    import torch
    from common.benchmarking import count_flops
    from common.nets.recompute import call_recomputed
    from torch.utils.flop_counter import FlopCounterMode

    mlp = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.GELU(), torch.nn.Linear(32, 8))
    x = torch.randn(4, 8, requires_grad=True)

    def plain() -> None:
        mlp(x).sum().backward()

    def recomputed() -> None:
        call_recomputed(mlp, x).sum().backward()

    with FlopCounterMode(display=False) as reference:
        plain()
    # forward 2 (4 x 8 x 32) x 2 multiply-adds; backward twice that (input and weight gradients)
    assert count_flops(plain) == reference.get_total_flops() == 3 * 2 * 2 * 4 * 8 * 32
    # the backward pass recomputes the forward up to the last tensor it needs (fc2's input): fc1 runs again, fc2 not
    assert count_flops(recomputed) == 3 * 2 * 2 * 4 * 8 * 32 + 2 * 4 * 8 * 32
    hooks = torch.nn.modules.module._global_forward_pre_hooks
    before = len(hooks)
    count_flops(lambda: hooks.__len__() > before and pytest.fail("a module hook was installed while counting"))


def test_step_precision_refuses_what_cannot_be_measured_and_autocast_casts_to_its_dtype():
    import torch

    assert step_precision("cpu", flops=True) is None
    assert step_precision("cuda", flops=False, amp="bf16") is torch.bfloat16  # validated without touching a GPU
    assert step_precision("cuda:1", flops=False, amp="fp16") is torch.float16
    with pytest.raises(ValueError, match="amp must be one of"):
        step_precision("cuda", flops=False, amp="fp8")
    with pytest.raises(ValueError, match="pass --flops False with a GPU"):
        step_precision("cuda", flops=True)
    with pytest.raises(ValueError, match="is for a CUDA device"):
        step_precision("cpu", flops=False, amp="bf16")
    assert precision_label("cpu") == "" and precision_label("cuda") == "; cuda"
    assert precision_label("cuda", "bf16") == "; cuda, bf16 autocast"
    assert trainer_precision(None) == {"amp": False, "amp_kwargs": None}
    assert trainer_precision(torch.bfloat16) == {"amp": True, "amp_kwargs": {"dtype": torch.bfloat16}}
    assert trainer_precision(torch.bfloat16, "train#trainer") == {
        "train#trainer#amp": True,
        "train#trainer#amp_kwargs": {"dtype": torch.bfloat16},
    }
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with step_autocast("cpu", torch.bfloat16):  # the CPU has a bf16 autocast too: the context really casts
        assert (a @ b).dtype == torch.bfloat16
    with step_autocast("cpu", None):
        assert (a @ b).dtype == torch.float32


def test_run_json_process_reads_the_last_line_and_the_childs_own_peak_rss(tmp_path):
    result = run_json_process([sys.executable, "-c", _printer(2.0)], tmp_path)
    assert result["train_iter_s"]["median"] == 2.0 and result["wall_s"] > 0
    # the peak is polled (every 0.05 s): the child holds its 300 MiB a moment, as a real step holds its peak, so the
    # test does not depend on whether a poll lands in the last milliseconds before it exits (it failed once so)
    holder = "b = bytearray(300 * 2**20); import time; time.sleep(0.3); "
    big = run_json_process([sys.executable, "-c", holder + _printer(1.0)], tmp_path)
    assert big["peak_rss_mb"] > result["peak_rss_mb"] + 250  # this child's own memory, not the parent's
    with pytest.raises(RuntimeError, match="failed"):
        run_json_process([sys.executable, "-c", "raise SystemExit(3)"], tmp_path)
    with pytest.raises(RuntimeError, match="JSON"):
        run_json_process([sys.executable, "-c", "print('no json')"], tmp_path)


def test_alternate_runs_the_sides_in_turn_and_the_ratio_is_reference_over_ours(tmp_path):
    order = tmp_path / "order.txt"
    commands = {
        side: ([sys.executable, "-c", f"open({str(order)!r}, 'a').write('{side[0]}'); " + _printer(t)], tmp_path)
        for side, t in (("reference", 3.0), ("ours", 1.5))
    }
    results = alternate(commands, rounds=2, log=lambda _: None)
    assert order.read_text() == "roro"
    summary = ratio_summary(results["reference"], results["ours"])
    assert summary["ratio_per_round"] == [2.0, 2.0] and summary["ratio_median"] == 2.0
    with pytest.raises(ValueError, match="same number"):
        ratio_summary(results["reference"], results["ours"][:1])


def _fake_bundle(tmp_path, ours_median: float):
    spec = {
        "repository": "someone/reference",
        "harness": "fake_step.py",
        "harness_args": ["--n", "1"],
        "ours_args": ["-c", _printer(ours_median, gflop=12.0)],
        "configuration": "tiny",
        "ours_variants": {"switched": ["--faster"]},  # the printer ignores its arguments: same numbers
    }
    bundle = _bundle_with_peer_step(tmp_path, "fake_bundle", spec)
    peers = tmp_path / "peers"
    peers.mkdir()
    # the harness gets the reference tree first, as shared/peers' harnesses do
    harness = (
        "import json, os, sys\n"
        "assert os.path.isdir(sys.argv[1]) and sys.argv[2:] == ['--n', '1'], sys.argv\n"
        "print(json.dumps({'train_iter_s': {'min': 4.0, 'median': 4.0, 'max': 4.0}, 'train_step_gflop': 11.0, "
        "'train_efficiency_vs_conv_peak': 0.5}))\n"
    )
    (peers / "fake_step.py").write_text(harness)
    tree = tmp_path / "reference_tree"
    tree.mkdir()
    return bundle, peers, tree


def test_tool_writes_the_ratio_merges_earlier_entries_and_refuses_bad_arguments(tmp_path):
    bundle, peers, tree = _fake_bundle(tmp_path, ours_median=2.0)
    out = tmp_path / "out"
    out.mkdir()
    (out / "side_by_side.json").write_text(json.dumps({"other_bundle": json.loads(json.dumps(
        {"repository": "x/y", "commit": "abc", "configuration": "", "date": "2026-01-01", "summary": {
            "ratio_per_round": [1.0], "ratio_median": 1.0, "reference_median_s": 1.0, "ours_median_s": 1.0,
            "reference_peak_rss_mb": 1.0, "ours_peak_rss_mb": 1.0, "reference_gflop_per_step": None,
            "ours_gflop_per_step": None, "reference_ceiling_share": None, "ours_ceiling_share": None}}))}))  # fmt: skip
    argv = ["--bundles", "fake_bundle", "--bundles_dir", str(bundle.parent), "--peers", str(peers), "--out", str(out)]
    assert sbs.main([*argv, "--reference", f"someone/reference={tree}", "--rounds", "2"]) == 0
    report = json.loads((out / "side_by_side.json").read_text())
    assert set(report) == {"other_bundle", "fake_bundle", "fake_bundle (switched)"}
    summary = report["fake_bundle"]["summary"]
    assert summary["ratio_per_round"] == [2.0, 2.0] and summary["ratio_median"] == 2.0
    assert summary["reference_gflop_per_step"] == 11.0 and summary["ours_gflop_per_step"] == 12.0
    assert summary["reference_ceiling_share"] == 0.5 and len(report["fake_bundle"]["rounds"]["ours"]) == 2
    table = (out / "side_by_side.md").read_text()
    assert "| fake_bundle | someone/reference" in table and "**2.00** (2.00, 2.00)" in table
    assert "| other_bundle |" in table
    variant = report["fake_bundle (switched)"]
    assert variant["summary"]["ratio_per_round"] == [2.0, 2.0] and variant["commands"]["ours"].endswith("--faster")
    assert variant["rounds"]["reference"] == report["fake_bundle"]["rounds"]["reference"]  # one alternation
    assert "| fake_bundle (switched) |" in table and "; ours: switched" in table
    # no --reference for the bundle's repository, or a folder that does not exist: exit 2, naming what to pass
    assert sbs.main(argv) == 2
    assert sbs.main([*argv, "--reference", f"someone/reference={tmp_path / 'missing'}"]) == 2
    with pytest.raises(ValueError, match="owner/name=/path"):
        sbs.parse_references(["no-equals-sign"])


def test_a_relative_peers_folder_is_resolved_before_the_harness_runs_in_it(tmp_path, monkeypatch):
    # the harness runs with --peers as its working folder: a relative path must not be applied twice
    bundle, peers, tree = _fake_bundle(tmp_path, ours_median=2.0)
    monkeypatch.chdir(tmp_path)
    argv = ["--bundles", "fake_bundle", "--bundles_dir", str(bundle.parent), "--peers", "peers", "--rounds", "1"]
    assert sbs.main([*argv, "--out", str(tmp_path / "out"), "--reference", f"someone/reference={tree}"]) == 0
    report = json.loads((tmp_path / "out" / "side_by_side.json").read_text())
    assert report["fake_bundle"]["summary"]["ratio_median"] == 2.0


def test_without_public_code_the_variants_are_timed_against_our_default_step(tmp_path):
    """``"repository": None``: ours (default) stands in as the reference side; only the variants get entries."""
    # the default prints 3.0 s; with the variant's flag it prints 1.5 s (the switch is twice as fast)
    step = _argv_printer("1.5 if '--fast' in sys.argv else 3.0")
    spec = {
        "repository": None,
        "ours_args": ["-c", step],
        "configuration": "own",
        "ours_variants": {"fast": ["--fast"]},
    }
    bundle = _bundle_with_peer_step(tmp_path, "own_bundle", spec)
    out = tmp_path / "out"
    argv = ["--bundles", "own_bundle", "--bundles_dir", str(bundle.parent), "--out", str(out), "--rounds", "2"]
    assert sbs.main(argv) == 0  # no --reference needed
    report = json.loads((out / "side_by_side.json").read_text())
    assert set(report) == {"own_bundle (fast)"}
    entry = report["own_bundle (fast)"]
    assert entry["summary"]["ratio_per_round"] == [2.0, 2.0] and entry["repository"] == "ours (default)"
    assert entry["commands"]["ours"].endswith("--fast") and not entry["commands"]["reference"].endswith("--fast")
    assert "| own_bundle (fast) | ours (default)" in (out / "side_by_side.md").read_text()
    # a PEER_STEP without public code and without variants has nothing to time
    spec.pop("ours_variants")
    _bundle_with_peer_step(tmp_path, "own_bundle", spec)
    assert sbs.main(argv) == 2


def test_more_steps_are_timed_each_beside_its_own_harness_call_and_can_be_chosen(tmp_path):
    """``more_steps``: a second step (e.g. REHRSeg's stage 2) with its own harness and our arguments, its own variants
    (the main step's are not inherited) and entries ``<bundle> (<step>)``, ``<bundle> (<step>, <variant>)``."""
    # ours: 2.0 s on the main step, 3.0 s on stage 2, halved by --fast
    ours = _argv_printer("(3.0 if '--two' in sys.argv else 2.0) / (2 if '--fast' in sys.argv else 1)")
    spec = {
        "repository": "someone/reference",
        "harness": "fake_step.py",
        "harness_args": ["--stage", "one"],
        "ours_args": ["-c", ours],
        "configuration": "main",
        "ours_variants": {"main switch": ["--other"]},
        "more_steps": {
            "stage 2": {
                "harness_args": ["--stage", "two"],
                "ours_args": ["-c", ours, "--two"],
                "ours_variants": {"fast": ["--fast"]},
                "configuration": "second",
            }
        },
    }
    bundle = _bundle_with_peer_step(tmp_path, "two_steps", spec)
    peers = tmp_path / "peers"
    peers.mkdir()
    # the reference: 4.0 s on stage one, 12.0 s on stage two
    (peers / "fake_step.py").write_text(_argv_printer("12.0 if sys.argv[2:] == ['--stage', 'two'] else 4.0"))
    tree = tmp_path / "reference_tree"
    tree.mkdir()
    out = tmp_path / "out"
    argv = ["--bundles", "two_steps", "--bundles_dir", str(bundle.parent), "--peers", str(peers), "--out", str(out)]
    argv += ["--reference", f"someone/reference={tree}", "--rounds", "1"]
    assert sbs.main(argv) == 0
    report = json.loads((out / "side_by_side.json").read_text())
    ratios = {name: entry["summary"]["ratio_median"] for name, entry in report.items()}
    assert ratios == {
        "two_steps": 2.0,  # 4 / 2
        "two_steps (main switch)": 2.0,
        "two_steps (stage 2)": 4.0,  # 12 / 3
        "two_steps (stage 2, fast)": 8.0,  # 12 / 1.5
    }
    assert report["two_steps (stage 2)"]["configuration"] == "second"
    assert report["two_steps (stage 2, fast)"]["configuration"] == "second; ours: fast"
    assert report["two_steps (stage 2)"]["commands"]["reference"].endswith("--stage two")
    table = (out / "side_by_side.md").read_text()
    assert "| two_steps (stage 2, fast) | someone/reference" in table
    # --steps: only the named steps run ("main" is the main step); an unknown step name is refused, naming the steps
    chosen = tmp_path / "chosen"
    assert sbs.main([*argv[:-4], "--out", str(chosen), *argv[-4:], "--steps", "stage 2"]) == 0
    assert set(json.loads((chosen / "side_by_side.json").read_text())) == {
        "two_steps (stage 2)",
        "two_steps (stage 2, fast)",
    }
    with pytest.raises(ValueError, match=r"no peer step\(s\) \['stage 3'\]; its steps: \['main', 'stage 2'\]"):
        sbs.side_by_side(bundle, tree, peers, rounds=1, log=lambda _: None, steps=["stage 3"])
