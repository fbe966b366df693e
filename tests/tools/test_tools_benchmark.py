"""tools.benchmark: mapping bundle rows into the merged table, the papers' numbers, the files, the driver.

No training: the bundles here are fakes whose ``scripts/benchmark.py`` returns fixed rows at once.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tools import benchmark as tb

LGE = "lge_mi_sr_segmentation"
NAN = float("nan")
# the benchmark data a bundle owns (module-level literals of its scripts/benchmark.py), as the tool reads them
LGE_INFO_SOURCE = """
REQUIRED_DATASET = "DTI_LGE_MI"
COMPARISONS = (
    ("SSeg_N", "Seg+bilinear_N"),
    ("SSeg_N", "Seg+nearest_N"),
    ("SSeg_SSL", "SSeg_N"),
    ("SSeg_N", "SSeg[resnet]"),
    ("SSeg_N", "SSeg[convnext]"),
)
PAPER_NUMBERS: dict = {
    ("SSeg_N", "SSeg[resnet]", "test_dice_mean"): (0.718, 0.755, "SwinSSegNet paper Table I (ResNet vs Swin encoder)"),
    ("SSeg_N", "SSeg[convnext]", "test_dice_mean"): (0.732, 0.755, "SwinSSegNet paper Table I (ConvNeXt)"),
}
PAPER_NOTES = "Theirs: Table I of the paper (Swin 0.755); Fig. 6(B) gives values only as plots."
MODE_NOTES = {"quick": "20 epochs per variant"}
METRIC_LABELS = {
    "test_dice_mean": "MI Dice, test split (mean)",
    "test_dice_std": "MI Dice, test split (std)",
    "test_hd95_mm": "MI HD95 mm, test split (mean)",
}
"""


def _info(tmp_path: Path, source: str = LGE_INFO_SOURCE, name: str = LGE) -> tb.BenchmarkInfo:
    (tmp_path / name / "scripts").mkdir(parents=True, exist_ok=True)
    (tmp_path / name / "scripts" / "benchmark.py").write_text(textwrap.dedent(source))
    return tb.read_benchmark_info(tmp_path / name)


@pytest.fixture
def lge_info(tmp_path) -> tb.BenchmarkInfo:
    return _info(tmp_path / "info")


def _wide(method, dice, hd95=1.5, train=10.0, evaluate=2.0, **extra):
    """A row as lge_mi_sr_segmentation's benchmark returns it (one row per method, one key per metric)."""
    return {
        "method": method,
        "encoder": "swin",
        "pretraining": "N",
        "test_dice_mean": dice,
        "test_dice_std": 0.1,
        "test_hd95_mm": hd95,
        "train_seconds": train,
        "eval_seconds": evaluate,
        **extra,
    }


LGE_ROWS = [
    _wide("SSeg_N", 0.60),
    _wide("Seg+bilinear_N", 0.50, train=8.0, evaluate=1.0),
    _wide("Seg+nearest_N", 0.45, hd95=NAN),
    _wide("SSeg[resnet]", 0.40),
    _wide("SSeg[convnext]", 0.42),
    _wide("Something else", 0.30),
    {
        "method": "SSeg training step (batch 8, 64->512)",
        "step_seconds": 0.5,
        "gflop_per_step": 12.0,
        "achieved_gflops": 24.0,
        "conv_ceiling_gflops": 48.0,
        "ceiling_share": 0.5,
        "peak_rss_mb": 900.0,
    },
]
# as dti_lge_style_transfer's benchmark returns them: one row per (method, metric), baseline beside ours
LONG_ROWS = [
    {
        "method": "CycleGANSeg+SSeg",
        "baseline_method": "DTI SSeg",
        "metric": "MI Dice 512x512 (mean, 4 test pairs)",
        "baseline": 0.2,
        "ours": 0.5,
        "seconds": 100.0,
        "baseline_seconds": 50.0,
        "data": "phantom (tools/make_data)",
        "quick": True,
    }
]


def _find(rows, **match):
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, [(r["method"], r["baseline_method"], r["metric_key"]) for r in rows])
    return found[0]


# ----------------------------------------------------------------------------------------------- mapping
def test_wide_rows_become_comparisons_per_metric(lge_info):
    rows = tb.normalize_rows(lge_info, LGE_ROWS)
    row = _find(rows, method="SSeg_N", baseline_method="Seg+bilinear_N", metric_key="test_dice_mean")
    assert (row["baseline"], row["ours"]) == (0.50, 0.60)
    assert row["metric"] == "MI Dice, test split (mean)"
    assert row["seconds"] == 12.0 and row["baseline_seconds"] == 9.0  # train + eval of each
    assert row["source"] is LGE_ROWS[0]
    assert row["paper_source"] is None  # Fig. 6 has no printed numbers

    hd95 = _find(rows, method="SSeg_N", baseline_method="Seg+nearest_N", metric_key="test_hd95_mm")
    assert hd95["baseline"] is None and hd95["ours"] == 1.5  # NaN is "no value", not a number
    # 3 metrics for each of: 2 upsampling baselines, 2 encoders (no SSL/U-SSL rows were given)
    assert sum(r["baseline_method"] is not None for r in rows) == 3 * 4


def test_table_one_rows_carry_the_papers_numbers(lge_info):
    rows = tb.normalize_rows(lge_info, LGE_ROWS)
    resnet = _find(rows, method="SSeg_N", baseline_method="SSeg[resnet]", metric_key="test_dice_mean")
    convnext = _find(rows, method="SSeg_N", baseline_method="SSeg[convnext]", metric_key="test_dice_mean")
    assert (resnet["baseline"], resnet["ours"]) == (0.40, 0.60)  # ours, measured
    assert (resnet["paper_baseline"], resnet["paper_ours"]) == (0.718, 0.755)  # theirs, Table I
    assert (convnext["paper_baseline"], convnext["paper_ours"]) == (0.732, 0.755)
    assert "Table I" in resnet["paper_source"]
    std = _find(rows, method="SSeg_N", baseline_method="SSeg[resnet]", metric_key="test_dice_std")
    assert std["paper_source"] is None


def test_methods_outside_comparisons_and_cost_rows_keep_their_own_rows(lge_info):
    rows = tb.normalize_rows(lge_info, LGE_ROWS)
    assert not [r for r in rows if r["method"] in ("Seg+bilinear_N", "Seg+nearest_N", "SSeg[resnet]")]
    alone = [r for r in rows if r["method"] == "Something else"]
    assert sorted(r["metric_key"] for r in alone) == ["test_dice_mean", "test_dice_std", "test_hd95_mm"]
    assert all(r["baseline"] is None and r["baseline_method"] is None for r in alone)
    speed = _find(rows, method="SSeg training step (batch 8, 64->512)")
    assert speed["metric"] == tb.SPEED_METRIC and speed["ours"] is None
    assert (speed["seconds"], speed["gflop_per_step"], speed["conv_ceiling_share"], speed["peak_rss_mb"]) == (
        0.5,
        12.0,
        0.5,
        900.0,
    )


def test_long_rows_pass_through_and_a_row_may_name_its_baseline():
    rows = tb.normalize_rows("dti_lge_style_transfer", LONG_ROWS)
    assert len(rows) == 1
    row = rows[0]
    assert (row["method"], row["baseline_method"], row["baseline"], row["ours"]) == (
        "CycleGANSeg+SSeg",
        "DTI SSeg",
        0.2,
        0.5,
    )
    assert row["metric"] == "MI Dice 512x512 (mean, 4 test pairs)"
    assert (row["seconds"], row["baseline_seconds"], row["gflop_per_step"]) == (100.0, 50.0, None)

    own = tb.normalize_rows("x", [_wide("A", 0.7, baseline_method="B"), _wide("B", 0.6)])
    assert {(r["method"], r["baseline_method"]) for r in own} == {("A", "B")}
    assert _find(own, metric_key="test_dice_mean")["baseline"] == 0.6


def test_row_without_method_is_named():
    with pytest.raises(ValueError, match="bundle `x`: row 1 has no `method`"):
        tb.normalize_rows("x", [_wide("A", 0.5), {"test_dice_mean": 0.5}])


# ----------------------------------------------------------------------------------------------- files
def test_write_merged_markdown_and_json(tmp_path, lge_info):
    rows = tb.merge_results({LGE: LGE_ROWS, "dti_lge_style_transfer": LONG_ROWS}, {LGE: lge_info})
    md_path, json_path = tb.write_merged(
        rows, tmp_path, ["phantom data header", lge_info.paper_notes], extra={"k": NAN}
    )
    text = md_path.read_text()
    lines = text.splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == "| " + " | ".join(name for name, _ in tb.MARKDOWN_COLUMNS) + " |"
    assert len(table) == 2 + len(rows)
    assert "phantom data header" in text and "0.718" in text and "only as plots" in text
    resnet_line = next(line for line in table if "SSeg[resnet]" in line and "(mean)" in line and "Dice" in line)
    cells = [c.strip() for c in resnet_line.strip("|").split("|")]
    assert cells[:6] == [LGE, "SSeg_N", "SSeg[resnet]", "MI Dice, test split (mean)", "0.4", "0.6"]
    paper_column = [key for _, key in tb.MARKDOWN_COLUMNS].index("paper")
    assert cells[paper_column].startswith("0.718 / 0.755 (SwinSSegNet paper Table I")

    content = json.loads(json_path.read_text())  # strict JSON: NaN written as null
    assert content["k"] is None
    assert content["header"][0] == "phantom data header"
    assert len(content["rows"]) == len(rows)
    hd95 = [r for r in content["rows"] if r["baseline_method"] == "Seg+nearest_N" and r["metric_key"] == "test_hd95_mm"]
    assert hd95[0]["baseline"] is None and hd95[0]["ours"] == 1.5


def test_merge_entries_replaces_named_entries_keeps_the_others_and_writes_paths_as_text(tmp_path):
    out = tmp_path / "new" / "folder"  # made on the first write
    path, merged = tb.merge_entries(out, "report", {"a": {"rounds": [1.0]}, "b": {"where": Path("x") / "y"}})
    assert path == out / "report.json" and merged == {"a": {"rounds": [1.0]}, "b": {"where": Path("x") / "y"}}
    path, merged = tb.merge_entries(out, "report", {"a": {"rounds": [2.0, 3.0]}})
    assert json.loads(path.read_text()) == merged == {"a": {"rounds": [2.0, 3.0]}, "b": {"where": "x/y"}}


# ----------------------------------------------------------------------------------------------- data
def test_ensure_data_writes_only_the_required_datasets_that_are_missing(tmp_path):
    calls = []

    def runner(command, **kwargs):
        calls.append((command, kwargs))
        return SimpleNamespace(returncode=0)

    (tmp_path / "ACDC").mkdir()
    command = tb.ensure_data(tmp_path, ["ACDC", "DTI_LGE_MI", "IXI"], runner=runner)
    assert command == calls[0][0]
    assert command[1:] == ["-m", "tools.make_data", "--out", str(tmp_path), "--datasets", "DTI_LGE_MI,IXI"]
    assert calls[0][1]["cwd"] == str(tb.REPO_ROOT)

    (tmp_path / "DTI_LGE_MI").mkdir()
    assert tb.ensure_data(tmp_path, ["DTI_LGE_MI"], runner=runner) is None and len(calls) == 1
    assert tb.ensure_data(tmp_path / "none_needed", [], runner=runner) is None and len(calls) == 1

    with pytest.raises(RuntimeError, match="tools.make_data .* failed with exit status 3"):
        tb.ensure_data(tmp_path / "empty", ["DTI_LGE_MI"], runner=lambda command, **kw: SimpleNamespace(returncode=3))


# ----------------------------------------------------------------------------------------------- driver
def _fake_bundle(root: Path, name: str, rows: list[dict] | None, fail: bool = False, info: str = "") -> Path:
    """A bundle whose `scripts.benchmark.run` records its arguments and returns `rows` (or raises)."""
    bundle = root / name
    (bundle / "scripts").mkdir(parents=True)
    (bundle / "scripts" / "__init__.py").write_text(f"NAME = {name!r}\n")
    if rows is None:
        return bundle
    body = f"""
        import json, os
        from scripts import NAME

        def run(data_root, out_dir, quick=False):
            if {fail!r}:
                raise RuntimeError("training diverged in " + NAME)
            os.makedirs(out_dir, exist_ok=True)
            with open(os.path.join(out_dir, "called.json"), "w") as f:
                json.dump({{"data_root": data_root, "quick": quick, "cwd": os.getcwd(), "name": NAME}}, f)
            return json.loads({json.dumps(json.dumps(rows))})
        """
    (bundle / "scripts" / "benchmark.py").write_text(textwrap.dedent(body) + textwrap.dedent(info))
    return bundle


def test_main_runs_each_bundle_in_its_own_process_and_merges(tmp_path, capsys):
    bundles, data, out = tmp_path / "bundles", tmp_path / "data", tmp_path / "out"
    _fake_bundle(bundles, LGE, LGE_ROWS[:2], info=LGE_INFO_SOURCE)
    _fake_bundle(bundles, "dti_lge_style_transfer", LONG_ROWS)
    _fake_bundle(bundles, "no_benchmark", None)

    argv = ["--all", "--quick", "--data_root", str(data), "--out", str(out), "--bundles_dir", str(bundles)]
    assert tb.main(argv) == 0
    for name in (LGE, "dti_lge_style_transfer"):  # each got its own `scripts`, its own out_dir, its own cwd
        called = json.loads((out / name / "called.json").read_text())
        assert called == {"data_root": str(data), "quick": True, "cwd": str(bundles / name), "name": name}
    assert not (out / "no_benchmark").exists()
    assert not data.exists()  # the bundles' benchmarks write their own data: nothing is written here

    content = json.loads((out / "benchmark.json").read_text())
    assert [(r["bundle"], r["method"], r["baseline_method"]) for r in content["rows"]] == [
        ("dti_lge_style_transfer", "CycleGANSeg+SSeg", "DTI SSeg")
    ] + [(LGE, "SSeg_N", "Seg+bilinear_N")] * 3
    assert content["runs"][LGE]["status"] == "PASS" and content["runs"][LGE]["process_peak_rss_mb"] > 0
    text = (out / "benchmark.md").read_text()
    assert "phantoms that each bundle's benchmark writes" in text and "Machine:" in text and "0.755" in text
    assert "--quick" in text


def test_main_reports_a_failing_bundle_and_keeps_the_others(tmp_path, capsys):
    bundles, data, out = tmp_path / "bundles", tmp_path / "data", tmp_path / "out"
    (data / "DTI_LGE_MI").mkdir(parents=True)
    _fake_bundle(bundles, "a_broken", [], fail=True)
    _fake_bundle(bundles, "b_fine", [_wide("A", 0.5)])
    argv = ["--bundles", "a_broken", "b_fine", "--data_root", str(data), "--out", str(out)]
    assert tb.main(argv + ["--bundles_dir", str(bundles)]) == 1
    printed = capsys.readouterr().out
    assert "bundle `a_broken`: benchmark failed" in printed and "training diverged in a_broken" in printed
    content = json.loads((out / "benchmark.json").read_text())
    assert {r["bundle"] for r in content["rows"]} == {"b_fine"}
    assert content["runs"]["a_broken"] == {"status": "FAIL", "log": str(out / "a_broken" / "benchmark.log")}
    assert "`a_broken` FAIL" in (out / "benchmark.md").read_text()


def test_main_rejects_unknown_bundles_and_needs_a_selection(tmp_path, capsys):
    assert tb.main(["--bundles", "nope", "--bundles_dir", str(tmp_path)]) == 2
    assert "bundle `nope`" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        tb.main(["--quick"])


def test_help_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "tools.benchmark", "--help"],
        cwd=tb.REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "--all" in result.stdout and "--data_root" in result.stdout


def test_required_bundles_are_passed_as_roots_of_siblings(tmp_path):
    bundle = tmp_path / "bundles" / "pipeline_bundle"
    (bundle / "scripts").mkdir(parents=True)
    (bundle / "scripts" / "benchmark.py").write_text('REQUIRED_BUNDLES = {"other_root": "other_bundle"}\n')
    with pytest.raises(RuntimeError, match=r"needs bundle `other_bundle` \(other_root\), not found"):
        tb.required_bundle_roots(bundle)
    (tmp_path / "bundles" / "other_bundle" / "configs").mkdir(parents=True)
    assert tb.required_bundle_roots(bundle) == {"other_root": str(tmp_path / "bundles" / "other_bundle")}


def test_the_dti_benchmark_declares_the_swinssegnet_bundle():
    dti = Path(__file__).resolve().parents[2] / "bundles" / "dti_lge_style_transfer"
    assert tb.required_bundle_roots(dti) == {"sseg_bundle_root": str(dti.parent / "lge_mi_sr_segmentation")}


def test_merge_only_merges_separate_runs_without_running_anything(tmp_path, capsys):
    bundles, data, out = tmp_path / "bundles", tmp_path / "data", tmp_path / "out"
    (data / "DTI_LGE_MI").mkdir(parents=True)
    _fake_bundle(bundles, LGE, LGE_ROWS[:2], info=LGE_INFO_SOURCE)
    _fake_bundle(bundles, "dti_lge_style_transfer", LONG_ROWS)
    common = ["--quick", "--data_root", str(data), "--out", str(out), "--bundles_dir", str(bundles)]
    assert tb.main(["--bundles", LGE, *common]) == 0  # two separate runs, e.g. two processes at once
    assert tb.main(["--bundles", "dti_lge_style_transfer", *common]) == 0
    names = (LGE, "dti_lge_style_transfer")
    separate = {name: json.loads((out / name / "rows.json").read_text()) for name in names}
    assert {name: tb.read_bundle_result(out, name) for name in names} == separate  # the copy beside the table
    for name in names:  # a fresh clone: the git-ignored run folders are gone, the committed copies are not
        shutil.rmtree(out / name)

    assert tb.main(["--all", "--merge_only", *common]) == 0
    assert not any((out / name / "called.json").exists() for name in separate)  # nothing ran again
    content = json.loads((out / "benchmark.json").read_text())
    assert {r["bundle"] for r in content["rows"]} == set(separate)
    assert content["runs"][LGE]["seconds"] == separate[LGE]["seconds"]
    assert "--merge_only" in (out / "benchmark.md").read_text()

    assert (
        tb.main(["--all", "--merge_only", "--quick", "--out", str(tmp_path / "empty"), "--bundles_dir", str(bundles)])
        == 1
    )
    assert f"{LGE}_rows.json does not exist" in capsys.readouterr().out


def test_merge_only_carries_over_a_bundle_without_rows_file_from_the_previous_table(tmp_path):
    """One bundle rerun (its rows file), the other not: its rows stay as the previous merged table had them."""
    bundles, data, out = tmp_path / "bundles", tmp_path / "data", tmp_path / "out"
    (data / "DTI_LGE_MI").mkdir(parents=True)
    _fake_bundle(bundles, LGE, LGE_ROWS[:2], info=LGE_INFO_SOURCE)
    _fake_bundle(bundles, "dti_lge_style_transfer", LONG_ROWS)
    common = ["--quick", "--data_root", str(data), "--out", str(out), "--bundles_dir", str(bundles)]
    assert tb.main(["--all", *common]) == 0
    before = json.loads((out / "benchmark.json").read_text())
    old_rows = [r for r in before["rows"] if r["bundle"] == "dti_lge_style_transfer"]
    tb.result_path(out, "dti_lge_style_transfer").unlink()  # merged before the rows files existed
    rerun = tb.read_bundle_result(out, LGE)
    rerun["rows"][0]["test_dice_mean"] += 0.25
    tb.write_bundle_result(out, LGE, rerun)

    assert tb.main(["--all", "--merge_only", *common]) == 0
    after = json.loads((out / "benchmark.json").read_text())
    assert [r for r in after["rows"] if r["bundle"] == "dti_lge_style_transfer"] == old_rows
    assert after["runs"]["dti_lge_style_transfer"]["carried_over"] is True
    assert "carried_over" not in after["runs"][LGE]
    changed = [r for r in after["rows"] if r["bundle"] == LGE] != [r for r in before["rows"] if r["bundle"] == LGE]
    assert changed  # the rerun bundle's new values are in
    assert "Carried over unchanged from the previous merged table" in (out / "benchmark.md").read_text()
    assert "`dti_lge_style_transfer`." in (out / "benchmark.md").read_text()


def test_a_bundle_result_is_written_whole_and_a_bad_one_is_refused(tmp_path):
    result = {"rows": [{"method": "m", "metric": "dice", "values": [["c1", 0.5]]}], "seconds": 1.0, "peak_rss_mb": 9}
    path = tb.write_bundle_result(tmp_path, "b", result)
    assert path == tmp_path / "b_rows.json" and not list(tmp_path.glob("*.partial"))
    assert tb.read_bundle_result(tmp_path, "b") == result
    path.write_text(json.dumps({"rows": {"method": "m"}}))
    with pytest.raises(RuntimeError, match="b_rows.json holds no list of row dicts"):
        tb.read_bundle_result(tmp_path, "b")


# ----------------------------------------------------------------------------------------------- seed processes
def _seeded_bundle(
    root: Path,
    name: str,
    fail_seed: int | None = None,
    slow_seed: int | None = None,
    seedless: bool = False,
    pause: float = 0.0,
    parts: tuple[str, ...] = (),
    details: bool = False,
) -> Path:
    """A bundle whose `run` scores two cases per seed (value = seed + case index / 10) and times a step; the
    `slow_seed`'s process sleeps a minute first. With `seedless`, `run` takes a `seedless` argument, records it and
    writes the step row (a row of no seed) only when it is true. Every process sleeps `pause` seconds and writes
    the wall-clock times of its run's start and end to `times.json`. With `parts`, the bundle names them
    (`BENCHMARK_PARTS`) and `run` takes `part`: method A's row belongs to the first part, method B's (values + 1) to
    the second, the step row (with `seedless`) to the last. With `details`, `run` writes `benchmark_details.json`
    (its seeds and part) in its folder."""
    bundle = root / name
    (bundle / "scripts").mkdir(parents=True)
    (bundle / "scripts" / "__init__.py").write_text("")
    body = f"""
        import json, os
        {f"BENCHMARK_PARTS = {parts!r}" if parts else ""}

        def run(data_root, out_dir, quick=False, seeds=(0, 1, 2){", seedless=True" if seedless else ""}{
            ", part=None" if parts else ""}):
            import time
            began = time.time()
            time.sleep({pause!r})
            if {slow_seed!r} in seeds:
                import time
                time.sleep(60)
            if {fail_seed!r} in seeds:
                raise RuntimeError("diverged")
            os.makedirs(out_dir, exist_ok=True)
            with open(os.path.join(out_dir, "called.json"), "w") as f:
                json.dump({{"seeds": list(seeds), "threads": os.environ.get("OMP_NUM_THREADS"),
                           **({{"seedless": seedless}} if {seedless!r} else {{}}),
                           **({{"part": part}} if {bool(parts)!r} else {{}})}}, f)
            if {details!r}:
                with open(os.path.join(out_dir, "benchmark_details.json"), "w") as f:
                    json.dump({{"seeds": list(seeds){", 'part': part" if parts else ""}}}, f)
            per_seed = {{str(s): [["c0", s + 0.0], ["c1", s + 0.1]] for s in seeds}}
            values = [["c0", sum(s for s in seeds) / len(seeds)], ["c1", sum(s + 0.1 for s in seeds) / len(seeds)]]
            score = {{"method": "A", "metric": "dice", "values": values, "seeds": list(seeds), "per_seed": per_seed,
                      "higher_is_better": True, "seconds": 10.0 * (1 + seeds[0])}}
            with open(os.path.join(out_dir, "times.json"), "w") as f:
                json.dump([began, time.time()], f)
            step = {{"method": "A step", "metric": "step", "values": [], "seeds": [], "seconds": 1.0 + seeds[0]}}
            if {bool(parts)!r}:
                other = dict(score, method="B", values=[[c, v + 1] for c, v in values],
                             per_seed={{k: [[c, v + 1] for c, v in pairs] for k, pairs in per_seed.items()}})
                rows = {{{parts[0] if parts else ""!r}: [score], {parts[-1] if parts else ""!r}: [other]}}[part]
                return rows + ([step] if seedless and part == {parts[-1] if parts else ""!r} else [])
            return [score, step] if {"seedless" if seedless else "True"} else [score]
        """
    (bundle / "scripts" / "benchmark.py").write_text(textwrap.dedent(body))
    return bundle


def test_seed_processes_run_one_process_per_seed_and_merge_rows_as_one_process_over_the_seeds(tmp_path):
    bundles, data, out = tmp_path / "bundles", tmp_path / "data", tmp_path / "out"
    data.mkdir()
    _seeded_bundle(bundles, "seeded")
    argv = ["--bundles", "seeded", "--data_root", str(data), "--out", str(out), "--bundles_dir", str(bundles)]
    assert tb.main(argv + ["--seed_processes", "0,2"]) == 0
    threads = str(max(1, (os.cpu_count() or 1) // 2))
    for seed in (0, 2):  # one process per seed, its own folder, the CPUs shared among them
        called = json.loads((out / "seeded" / f"seed_process_{seed}" / "called.json").read_text())
        assert called == {"seeds": [seed], "threads": threads}
    result = json.loads(tb.result_path(out, "seeded").read_text())
    score, step = result["rows"]
    assert score["seeds"] == [0, 2] and set(score["per_seed"]) == {"0", "2"}
    assert score["values"] == [["c0", 1.0], ["c1", pytest.approx(1.1)]]  # per case the mean over the seeds
    assert score["seconds"] == 20.0  # the processes' mean (10 and 30)
    assert step["seconds"] == 1.0  # a row without per-seed values: the first seed's process's
    assert set(result["seed_processes"]) == {"0", "2"} and result["peak_rss_mb"] > 0
    merged = json.loads((out / "benchmark.json").read_text())
    assert "--seed_processes 0,2" in (out / "benchmark.md").read_text()
    assert merged["runs"]["seeded"]["seed_processes"]["2"]["threads"] == int(threads)


def test_only_the_first_seed_process_computes_the_seed_independent_rows(tmp_path):
    """A bundle whose `run` takes `seedless` gets False in every seed's process but the first (lowest seed), whose
    rows of no seed the merge keeps; one process over the seeds is not told anything."""
    bundles, data, out = tmp_path / "bundles", tmp_path / "data", tmp_path / "out"
    data.mkdir()
    _seeded_bundle(bundles, "seeded", seedless=True)
    argv = ["--bundles", "seeded", "--data_root", str(data), "--out", str(out), "--bundles_dir", str(bundles)]
    assert tb.main(argv + ["--seed_processes", "2,0,1"]) == 0
    told = {
        seed: json.loads((out / "seeded" / f"seed_process_{seed}" / "called.json").read_text())["seedless"]
        for seed in (0, 1, 2)
    }
    assert told == {0: True, 1: False, 2: False}
    rows = json.loads(tb.result_path(out, "seeded").read_text())["rows"]
    assert [r["method"] for r in rows] == ["A", "A step"] and rows[1]["seconds"] == 1.0  # seed 0's step row
    assert rows[0]["seeds"] == [0, 1, 2]

    assert tb.main(argv) == 0  # one process over the seeds: run's own default
    assert json.loads((out / "seeded" / "called.json").read_text())["seedless"] is True


def test_a_bundle_with_parts_runs_one_process_per_seed_and_part_and_joins_them(tmp_path):
    """`BENCHMARK_PARTS`: each (seed, part) is a process of its own (`seed_process_<seed>_<part>`, `run(...,
    part=...)`), a seed's rows are its parts' in the order named and merge over the seeds as one process's would;
    only the lowest seed's last part computes the seed-independent rows; the table names the parts."""
    bundles, data, out = tmp_path / "bundles", tmp_path / "data", tmp_path / "out"
    data.mkdir()
    _seeded_bundle(bundles, "parted", seedless=True, parts=("first", "second"))
    argv = ["--bundles", "parted", "--data_root", str(data), "--out", str(out), "--bundles_dir", str(bundles)]
    assert tb.read_benchmark_info(bundles / "parted").parts == ("first", "second")
    assert tb.main(argv + ["--seed_processes", "1,0", "--max_processes", "2", "--threads", "1"]) == 0
    called = {
        (seed, part): json.loads((out / "parted" / f"seed_process_{seed}_{part}" / "called.json").read_text())
        for seed in (0, 1)
        for part in ("first", "second")
    }
    assert {key: (c["seeds"], c["part"], c["seedless"]) for key, c in called.items()} == {
        (0, "first"): ([0], "first", False),
        (0, "second"): ([0], "second", True),
        (1, "first"): ([1], "first", False),
        (1, "second"): ([1], "second", False),
    }
    assert not (out / "parted" / "seed_process_0").exists()
    result = json.loads(tb.result_path(out, "parted").read_text())
    assert [r["method"] for r in result["rows"]] == ["A", "B", "A step"]
    a, b, step = result["rows"]
    assert a["seeds"] == b["seeds"] == [0, 1] and a["values"] == [["c0", 0.5], ["c1", pytest.approx(0.6)]]
    assert b["values"] == [["c0", 1.5], ["c1", pytest.approx(1.6)]] and step["seconds"] == 1.0  # seed 0's
    assert list(result["seed_processes"]) == ["1:first", "1:second", "0:first", "0:second"]
    assert result["seed_processes"]["0:second"]["part"] == "second"
    merged = json.loads((out / "benchmark.json").read_text())
    assert merged["runs"]["parted"]["table"].endswith("parted/seed_process_<seed>_<part>/benchmark.md")
    assert "seed processes 0, 1 (each in parts first, second) of 1 thread(s) each" in (out / "benchmark.md").read_text()


def test_each_process_details_file_is_collected_beside_the_rows_and_a_run_without_one_removes_the_old(tmp_path):
    """`benchmark_details.json` of every seed process (and part), then of one process, lands in
    `<out>/<bundle>_details.json` keyed by the process folder, and the header names it; an earlier run's file left in
    a run folder is not collected, and a rerun whose bundle writes none removes the collected file."""
    bundles, data, out = tmp_path / "bundles", tmp_path / "data", tmp_path / "out"
    data.mkdir()
    _seeded_bundle(bundles, "parted", seedless=True, parts=("first", "second"), details=True)
    argv = ["--bundles", "parted", "--data_root", str(data), "--out", str(out), "--bundles_dir", str(bundles)]
    assert tb.main(argv + ["--seed_processes", "1,0", "--max_processes", "2", "--threads", "1"]) == 0
    details = json.loads((out / "parted_details.json").read_text())
    assert details == {
        f"seed_process_{seed}_{part}": {"seeds": [seed], "part": part}
        for seed in (1, 0)
        for part in ("first", "second")
    }
    assert list(details) == [
        "seed_process_1_first",
        "seed_process_1_second",
        "seed_process_0_first",
        "seed_process_0_second",
    ]
    assert "details parted_details.json" in (out / "benchmark.md").read_text()
    assert tb.main(argv + ["--merge_only"]) == 0  # a merge names the file its bundle's run left
    assert "details parted_details.json" in (out / "benchmark.md").read_text()

    _seeded_bundle(bundles, "seeded", details=True)
    argv = ["--bundles", "seeded", "--data_root", str(data), "--out", str(out), "--bundles_dir", str(bundles)]
    assert tb.main(argv + ["--seed_processes", "0,1"]) == 0
    assert list(json.loads((out / "seeded_details.json").read_text())) == ["seed_process_0", "seed_process_1"]
    assert tb.main(argv) == 0  # one process over the seeds: its own folder's file only, not the seed processes'
    assert json.loads((out / "seeded_details.json").read_text()) == {".": {"seeds": [0, 1, 2]}}

    script = bundles / "seeded" / "scripts" / "benchmark.py"
    script.write_text(script.read_text().replace("if True:", "if False:"))
    assert (out / "seeded" / "benchmark_details.json").is_file()  # the previous run's, still in its folder
    assert tb.main(argv) == 0
    assert not (out / "seeded_details.json").exists()
    assert "details seeded_details.json" not in (out / "benchmark.md").read_text()


def test_threads_sets_each_benchmark_process_thread_count_and_the_table_says_it(tmp_path, capsys):
    """Trained weights depend on the thread count (float sums): ``--threads`` pins it, so a committed table made with
    one thread per seed process is reproduced on a machine with more cores."""
    bundles, data, out = tmp_path / "bundles", tmp_path / "data", tmp_path / "out"
    data.mkdir()
    _seeded_bundle(bundles, "seeded")
    argv = ["--bundles", "seeded", "--data_root", str(data), "--out", str(out), "--bundles_dir", str(bundles)]
    assert tb.main(argv + ["--seed_processes", "0,2", "--threads", "3"]) == 0
    for seed in (0, 2):
        called = json.loads((out / "seeded" / f"seed_process_{seed}" / "called.json").read_text())
        assert called == {"seeds": [seed], "threads": "3"}
    table = (out / "benchmark.md").read_text()
    assert "--seed_processes 0,2 --threads 3" in table and "seed processes 0, 2 of 3 thread(s) each" in table
    # each process names the machine it ran on (CPU model, torch's kernel instruction set, the threads torch used:
    # no more than the cores, whatever OMP_NUM_THREADS asks)
    from common.benchmarking.measure import cpu_model

    machine = json.loads((out / "benchmark.json").read_text())["runs"]["seeded"]["seed_processes"]["2"]["machine"]
    assert machine.startswith(f"{cpu_model()} (") and "torch kernels " in machine
    assert re.search(r", [123] threads,", machine)
    assert f"of 3 thread(s) each, on {machine}" in table
    assert tb.main(argv + ["--merge_only"]) == 0  # a merge ran nothing: the machines are the runs'
    merged = (out / "benchmark.md").read_text()
    assert "Machine: each bundle's own run's" in merged and f", on {machine}" in merged

    assert tb.main(argv + ["--threads", "2"]) == 0  # one process over the seeds
    assert json.loads((out / "seeded" / "called.json").read_text()) == {"seeds": [0, 1, 2], "threads": "2"}
    assert "--threads 2" in (out / "benchmark.md").read_text()

    assert tb.main(argv + ["--threads", "0"]) == 2
    assert "--threads takes an integer >= 1" in capsys.readouterr().out
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        tb.env_with_repo(0)


def test_a_failing_seed_process_fails_the_bundle_naming_the_seed_and_stops_the_others(tmp_path, capsys):
    bundles, data, out = tmp_path / "bundles", tmp_path / "data", tmp_path / "out"
    data.mkdir()
    _seeded_bundle(bundles, "seeded", fail_seed=1, slow_seed=0)
    argv = ["--bundles", "seeded", "--data_root", str(data), "--out", str(out), "--bundles_dir", str(bundles)]
    start = time.perf_counter()
    assert tb.main(argv + ["--seed_processes", "0,1"]) == 1
    assert time.perf_counter() - start < 30  # seed 0 (a minute) was stopped when seed 1 failed
    printed = capsys.readouterr().out
    assert "seed 1: bundle `seeded`: benchmark failed" in printed and "diverged" in printed
    assert tb.main(argv + ["--seed_processes", "0,x"]) == 2
    assert "--seed_processes takes integers" in capsys.readouterr().out


def _process_times(out: Path, bundle: str, seed: int) -> tuple[float, float]:
    return tuple(json.loads((out / bundle / f"seed_process_{seed}" / "times.json").read_text()))


def test_max_processes_runs_one_queue_over_the_bundles_in_the_order_named(tmp_path):
    """At most --max_processes at once; the next (bundle, seed) in the order named starts as soon as one ends, so a
    bundle's last seed process overlaps the next bundle's first instead of leaving its core idle."""
    bundles, data, out = tmp_path / "bundles", tmp_path / "data", tmp_path / "out"
    data.mkdir()
    _seeded_bundle(bundles, "long", pause=1.0)
    _seeded_bundle(bundles, "short")
    argv = ["--bundles", "long", "short", "--data_root", str(data), "--out", str(out), "--bundles_dir", str(bundles)]
    assert tb.main(argv + ["--seed_processes", "0,1,2", "--max_processes", "1", "--threads", "1"]) == 0
    order = sorted((*_process_times(out, b, s), b, s) for b in ("long", "short") for s in (0, 1, 2))
    assert [(b, s) for _, _, b, s in order] == [(b, s) for b in ("long", "short") for s in (0, 1, 2)]
    assert all(order[i][1] <= order[i + 1][0] for i in range(5))  # one at a time
    assert "--max_processes 1 --threads 1" in (out / "benchmark.md").read_text()

    assert tb.main(argv + ["--seed_processes", "0,1,2", "--max_processes", "2", "--threads", "1"]) == 0
    long_ends = max(_process_times(out, "long", s)[1] for s in (0, 1, 2))
    assert _process_times(out, "short", 0)[0] < long_ends  # started in the core that seed 1 of `long` left
    rows = {b: json.loads(tb.result_path(out, b).read_text()) for b in ("long", "short")}
    for result in rows.values():  # each bundle's rows merged over its own three processes
        assert set(result["seed_processes"]) == {"0", "1", "2"} and result["rows"][0]["seeds"] == [0, 1, 2]
    assert rows["long"]["seconds"] >= 2.0  # its first start to its last end: two rounds of 1 s


def test_a_failing_bundle_in_the_queue_stops_its_own_processes_only(tmp_path, capsys):
    bundles, data, out = tmp_path / "bundles", tmp_path / "data", tmp_path / "out"
    data.mkdir()
    _seeded_bundle(bundles, "broken", fail_seed=0, slow_seed=1)
    _seeded_bundle(bundles, "fine")
    argv = ["--bundles", "broken", "fine", "--data_root", str(data), "--out", str(out), "--bundles_dir", str(bundles)]
    assert tb.main(argv + ["--seed_processes", "0,1,2", "--max_processes", "2"]) == 1
    # seed 1 of `broken` (a minute's sleep, then its files) was stopped, not waited for; its seed 2 never started.
    # Its files, not the wall time, say so: a busy machine stretched a 30 s bound (31 s in a CI-local run)
    assert (out / "broken" / "seed_process_1").is_dir() and not any((out / "broken" / "seed_process_1").rglob("*.json"))
    assert not (out / "broken" / "seed_process_2").exists()
    printed = capsys.readouterr().out
    assert "seed 0: bundle `broken`: benchmark failed" in printed and "diverged" in printed
    merged = json.loads((out / "benchmark.json").read_text())
    assert merged["runs"]["broken"]["status"] == "FAIL" and merged["runs"]["fine"]["status"] == "PASS"
    assert {r["bundle"] for r in merged["rows"]} == {"fine"}


def test_max_processes_needs_seed_processes_and_a_positive_count(tmp_path, capsys):
    argv = ["--all", "--data_root", str(tmp_path), "--out", str(tmp_path / "out"), "--bundles_dir", str(tmp_path)]
    assert tb.main(argv + ["--max_processes", "2"]) == 2
    assert "--max_processes takes an integer >= 1 and needs --seed_processes" in capsys.readouterr().out
    assert tb.main(argv + ["--seed_processes", "0,1", "--max_processes", "0"]) == 2
    with pytest.raises(ValueError, match="max_processes must be an integer >= 1"):
        tb.run_seed_process_pool([], tmp_path, [0], max_processes=0)


def test_the_header_lists_seed_processes_in_numeric_order_whatever_order_they_finished_in():
    finished = {"10": {"threads": 1}, "2": {"threads": 1}, "0": {"threads": 1}}
    assert tb._seed_process_text(finished) == ", seed processes 0, 2, 10 of 1 thread(s) each"
    assert tb._seed_process_text(None) == ""


def test_merge_seed_rows_names_a_seed_without_the_row():
    row = {"method": "A", "metric": "dice", "values": [["c0", 0.5]], "per_seed": {"0": [["c0", 0.5]]}}
    other = {**row, "per_seed": {"1": [["c0", 0.7]]}, "values": [["c0", 0.7]]}
    merged = tb.merge_seed_rows({0: [row], 1: [other]})
    assert merged[0]["values"] == [["c0", pytest.approx(0.6)]] and merged[0]["seeds"] == [0, 1]
    with pytest.raises(RuntimeError, match="seed 1's process has no per-seed row 'A' / 'dice'"):
        tb.merge_seed_rows({0: [row], 1: []})


def test_merge_seed_rows_refuses_a_seeded_row_without_per_seed_values():
    """A one-seed process's row of a trained method without per_seed (what four bundles wrote before
    BenchmarkRow.from_runs) would have been taken as every seed's: the merge stops, naming it."""
    lone = {"method": "A", "metric": "dice", "values": [["c0", 0.5]], "seeds": [1], "per_seed": {}}
    kept = {"method": "A", "metric": "dice", "values": [["c0", 0.7]], "seeds": [0], "per_seed": {"0": [["c0", 0.7]]}}
    with pytest.raises(RuntimeError, match="seed 1's process wrote row 'A' / 'dice' of seeds \\[1\\] without per-seed"):
        tb.merge_seed_rows({0: [kept], 1: [lone]})
    interpolation = {"method": "cubic", "metric": "dice", "values": [["c0", 0.4]], "seeds": [], "per_seed": {}}
    assert tb.merge_seed_rows({0: [interpolation], 1: [interpolation]}) == [interpolation]


def test_merge_seed_rows_averages_as_the_rows_own_seed_mean_does():
    """NaN-skipping rows (from_runs) merge NaN-skipping; the others give NaN where a seed's value is NaN."""
    nan = float("nan")
    for skips, expected in ((True, 0.7), (False, None)):
        first = {"method": "A", "metric": "hd", "values": [["c0", nan]], "seeds": [0], "per_seed": {"0": [["c0", nan]]}}
        second = {**first, "values": [["c0", 0.7]], "seeds": [1], "per_seed": {"1": [["c0", 0.7]]}}
        for row in (first, second):
            row["seed_mean_skips_nan"] = skips
        (merged,) = tb.merge_seed_rows({0: [first], 1: [second]})
        value = merged["values"][0][1]
        assert math.isnan(value) if expected is None else value == pytest.approx(expected), (skips, value)
