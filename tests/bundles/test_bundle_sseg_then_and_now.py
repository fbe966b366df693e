"""SwinSSegNet's then-and-now timing (issue 17's "1.5x today's"): the earlier commit's step is built from that
commit's own tree and configs, today's by the peer step; both sides alternate and the ratio is then / now. Checked
here with HEAD as "then" and the quick networks, so both sides build the same network."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from bundle_test_utils import bundle_scripts

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "lge_mi_sr_segmentation"

pytestmark = pytest.mark.slow


def _in_git_work_tree() -> bool:
    probe = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=BUNDLE, capture_output=True, text=True)
    return probe.returncode == 0 and probe.stdout.strip() == "true"


@pytest.mark.in_place  # a full run keeps it in the repository (tests/conftest.py): the copy has no git history
@pytest.mark.skipif(not _in_git_work_tree(), reason="the earlier commit comes from git: this copy is not a git tree")
def test_then_and_now_alternates_both_sides_and_removes_its_work_tree(tmp_path):
    with bundle_scripts(BUNDLE):
        from scripts.then_and_now import run

        result = run(then="HEAD", rounds=1, n=1, warmup=0, threads=1, quick=True, out=str(tmp_path))
    then, now = result["rounds"]["then"][0], result["rounds"]["now"][0]
    assert then["params"] == now["params"]["swin_sseg"]  # the same network on both sides
    assert then["config"].startswith("then: configs/train.json + quick.json") and "quick.json" in now["config"]
    ratio = then["train_iter_s"]["median"] / now["train_iter_s"]["median"]
    assert result["summary"]["ratio_per_round"] == [pytest.approx(ratio, rel=1e-3)]
    assert json.loads((tmp_path / "sseg_then_and_now.json").read_text())["summary"] == result["summary"]
    trees = subprocess.run(["git", "worktree", "list"], cwd=BUNDLE, capture_output=True, text=True).stdout
    assert "sseg_then_" not in trees  # the earlier commit's tree is gone
