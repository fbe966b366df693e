"""tools.gpu_peer_steps: the GPU runs built from each bundle's PEER_STEP, one process per bundle, the report.

A fake bundle's ``scripts/peer_step.py`` stands in for a real step (it records the arguments it was given and
fails on one of them), so everything but the GPU itself is exercised on the CPU."""

from __future__ import annotations

import json

import pytest

from tools import gpu_peer_steps as gps

FAKE_STEP = """
import os, time


def measure(n, warmup, threads, device, flops, amp, stage="main", **kwargs):
    if amp == "fp16":
        raise RuntimeError("CUDA out of memory (fake)")
    if kwargs.get("crash"):
        os._exit(3)  # as a process killed mid-run: no exception, no more output
    if kwargs.get("hang"):
        time.sleep(60)
    median = 0.010 if amp == "off" else 0.005
    return {
        "train_iter_s": {"min": median, "median": median, "max": median, "all": [median] * n},
        "warmup_train_s": [1.5] * warmup,
        "infer_s": {"min": 0.002, "median": 0.002, "max": 0.002},
        "config": f"{stage} on {device}, flops {flops}, {amp}",
        "given": {"n": n, "warmup": warmup, "threads": threads, **kwargs},
    }
"""


def _fake_bundle(tmp_path, spec):
    bundle = tmp_path / "bundles" / "fake_bundle"
    (bundle / "scripts").mkdir(parents=True)
    (bundle / "scripts" / "__init__.py").write_text("")
    (bundle / "scripts" / "benchmark.py").write_text(f"PEER_STEP = {spec!r}\n")
    (bundle / "scripts" / "peer_step.py").write_text(FAKE_STEP)
    return bundle


SPEC = {
    "repository": None,
    "ours_args": ["-m", "scripts.peer_step", "--n", "3", "--size", "64", "--quick", "True"],
    "ours_variants": {"compiled": ["--compile", "True"]},
    "more_steps": {"stage 2": {"ours_args": ["-m", "scripts.peer_step", "--stage", "seg", "--patch", "8,8,2"]}},
}


def test_step_kwargs_reads_the_peer_steps_arguments_as_literals():
    kwargs = gps.step_kwargs(["-m", "scripts.peer_step", "--n", "3", "--quick", "True", "--seg_patch", "8,8,2"])
    assert kwargs == {"n": 3, "quick": True, "seg_patch": (8, 8, 2)}
    assert gps.step_kwargs(["-m", "scripts.peer_step", "--stage", "seg"]) == {"stage": "seg"}
    with pytest.raises(ValueError, match="scripts.peer_step"):
        gps.step_kwargs(["scripts/peer_step.py", "--n", "3"])
    with pytest.raises(ValueError, match="expected a --key"):
        gps.step_kwargs(["-m", "scripts.peer_step", "n", "3"])


def test_each_step_runs_in_each_precision_on_cuda_with_the_timing_arguments(tmp_path):
    runs = gps.bundle_runs(_fake_bundle(tmp_path, SPEC), ["off", "bf16"], n=7, warmup=2, threads=4)
    assert [name for name, _ in runs] == [
        "fake_bundle (main, fp32)",
        "fake_bundle (main, bf16 autocast)",
        "fake_bundle (stage 2, fp32)",
        "fake_bundle (stage 2, bf16 autocast)",
    ]
    main, stage2 = runs[1][1], runs[3][1]
    assert main == {"n": 7, "size": 64, "quick": True, "warmup": 2, "threads": 4, "device": "cuda", "flops": False,
                    "amp": "bf16"}  # fmt: skip
    assert stage2["stage"] == "seg" and stage2["patch"] == (8, 8, 2) and "size" not in stage2  # its own arguments
    with_variants = dict(gps.bundle_runs(_fake_bundle(tmp_path / "v", SPEC), ["bf16"], n=7, warmup=2, threads=4,
                                         variants=True))  # fmt: skip
    assert list(with_variants) == [
        "fake_bundle (main, bf16 autocast)",
        "fake_bundle (main, compiled, bf16 autocast)",
        "fake_bundle (stage 2, bf16 autocast)",  # more_steps have no variants unless they name their own
    ]
    assert with_variants["fake_bundle (main, compiled, bf16 autocast)"] == {**main, "compile": True}


def test_one_process_per_bundle_appends_each_result_and_a_failing_step_is_a_row(tmp_path):
    bundle = _fake_bundle(tmp_path, SPEC)
    out = tmp_path / "runs.jsonl"
    runs = gps.bundle_runs(bundle, ["off", "bf16", "fp16"], n=2, warmup=1, threads=1)
    assert gps.run_bundle(bundle, runs, out) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["entry"] for line in lines] == [name for name, _ in runs]
    by_name = {line["entry"]: line for line in lines}
    assert by_name["fake_bundle (main, bf16 autocast)"]["config"] == "main on cuda, flops False, bf16"
    assert by_name["fake_bundle (stage 2, fp32)"]["given"]["patch"] == [8, 8, 2]
    assert by_name["fake_bundle (main, fp16 autocast)"]["error"] == "RuntimeError: CUDA out of memory (fake)"
    report = gps.write_report(lines, tmp_path, "a fake GPU", "2026-11-30")
    merged = json.loads(report.read_text())["runs"]
    assert merged["fake_bundle (main, fp32)"]["machine"] == "a fake GPU"
    table = (tmp_path / "gpu_peer_steps.md").read_text()
    assert (
        "| fake_bundle (main, bf16 autocast) | main on cuda, flops False, bf16 | 5.0 | 5.0-5.0 | 1.5 | 2.0 |" in table
    )
    assert "failed: RuntimeError: CUDA out of memory (fake)" in table
    gps.write_report(lines[:1], tmp_path, "another GPU", "2026-12-01")  # merged by entry: the others stay
    merged = json.loads(report.read_text())["runs"]
    assert len(merged) == len(lines) and merged["fake_bundle (main, fp32)"]["machine"] == "another GPU"


@pytest.mark.parametrize("how", ["crash", "hang"])
def test_steps_lost_to_a_crash_or_a_hang_become_error_rows_and_earlier_rows_stay(tmp_path, how):
    bundle = _fake_bundle(tmp_path, SPEC)
    out = tmp_path / "runs.jsonl"
    base = {"n": 1, "warmup": 0, "threads": 1, "device": "cuda", "flops": False, "amp": "off"}
    runs = [("first", base), ("lost", {**base, how: True}), ("after", base)]
    code = gps.run_bundle(bundle, runs, out, timeout=10 if how == "hang" else None)
    lines = {line["entry"]: line for line in map(json.loads, out.read_text().splitlines())}
    assert list(lines) == ["first", "lost", "after"] and "error" not in lines["first"]
    if how == "crash":
        assert code == 3 and "ended with code 3" in lines["lost"]["error"] and "ended" in lines["after"]["error"]
    else:
        assert code == -9 and "stopped after 10 s" in lines["lost"]["error"]


def test_without_cuda_the_tool_says_so_and_runs_nothing(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gps.main(["--out", str(tmp_path / "runs.jsonl")]) == 2
    assert not (tmp_path / "runs.jsonl").exists()
