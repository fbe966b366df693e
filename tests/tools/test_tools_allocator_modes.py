"""tools.allocator_modes: each mode reaches the step's own process, the speed-ups and the report.

A stand-in peer step reports the malloc mode ``import common`` applied in its process and prints a step time chosen
by it, so the speed-ups are known; no timing of real code is asserted."""

from __future__ import annotations

import json

import pytest
from common.allocator import MALLOC_MODES

from tools import allocator_modes as am

#: the stand-in's step time per applied mode (glibc's defaults slowest)
STEP_S = {"defaults": 2.0, "threshold": 1.0, "heap": 0.5}
STAND_IN = (
    "import json, common.allocator as a; mode = a.applied_mode(); "
    f"median = {STEP_S!r}[mode]; "
    "print(json.dumps({'train_iter_s': {'min': median, 'median': median, 'max': median}, 'mode': mode}))"
)


def _bundle(tmp_path, name: str = "stand_in_segmentation", spec: dict | None = None):
    bundle = tmp_path / "bundles" / name
    (bundle / "scripts").mkdir(parents=True)
    spec = {"repository": None, "ours_args": ["-c", STAND_IN], "configuration": "a stand-in"} if spec is None else spec
    (bundle / "scripts" / "benchmark.py").write_text(f"PEER_STEP = {spec!r}\n")
    return bundle


def test_every_malloc_mode_is_timed_glibcs_defaults_first():
    assert set(am.MODES) == set(MALLOC_MODES) and am.MODES[0] == "defaults"
    commands = am.mode_commands(["-m", "scripts.peer_step"], python="py")
    assert commands["heap"] == ["env", "COMMON_MALLOC=heap", "py", "-m", "scripts.peer_step"]


def test_each_mode_runs_in_its_own_process_and_the_report_gives_its_speed_up(tmp_path):
    bundle = _bundle(tmp_path)
    entry = am.time_modes(bundle, rounds=2, log=lambda line: None)
    summary = entry["summary"]
    # the stand-in's times follow the mode its own process applied: each mode reached `import common` there
    assert {mode: summary[mode]["step_s"] for mode in am.MODES} == STEP_S
    assert summary["threshold"]["speed_up_over_defaults"] == pytest.approx(2.0)
    assert summary["heap"]["speed_up_over_defaults"] == pytest.approx(4.0)
    assert all(len(entry["rounds"][mode]) == 2 and summary[mode]["peak_rss_mb"] > 0 for mode in am.MODES)
    out = tmp_path / "out"
    am.write_report({"other_bundle": entry}, out)
    am.write_report({bundle.name: entry}, out)  # merged: the earlier bundle's entry is kept
    assert set(json.loads((out / "allocator_modes.json").read_text())) == {"other_bundle", bundle.name}
    row = next(
        line for line in (out / "allocator_modes.md").read_text().splitlines() if line.startswith(f"| {bundle.name}")
    )
    assert "| 2.00 / 1.00 / 0.50 | 2.00, 4.00 |" in row and "| 2 |" in row


def test_a_bundle_without_a_peer_step_or_folder_is_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="has no PEER_STEP"):
        am.time_modes(_bundle(tmp_path, "no_step", spec={}))
    argv = ["--bundles", "missing", "--bundles_dir", str(tmp_path / "bundles"), "--out", str(tmp_path / "out")]
    assert am.main(argv) == 2 and "no bundle folder" in capsys.readouterr().err
