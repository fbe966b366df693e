"""tools/quickstart.sh finds every bundle's own demo and orders it after the demos it requires (no central list)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = Path("scripts") / "quickstart.sh"


def _list(root: Path, *names: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(root / "tools" / "quickstart.sh"), "--list", *names], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def tree(tmp_path) -> Path:
    """A throwaway repository: the real quickstart script and three bundles, c requires b, b requires a."""
    (tmp_path / "tools").mkdir()
    shutil.copy(REPO_ROOT / "tools" / "quickstart.sh", tmp_path / "tools" / "quickstart.sh")
    for name, requires in (("a_base", ""), ("b_middle", "a_base"), ("c_top", "b_middle a_base"), ("d_nodemo", None)):
        (tmp_path / "bundles" / name / "scripts").mkdir(parents=True)
        if requires is not None:
            header = f"# requires: {requires}\n" if requires else ""
            (tmp_path / "bundles" / name / DEMO).write_text(f"#!/usr/bin/env bash\n{header}echo {name}\n")
    return tmp_path


def test_every_bundle_with_a_demo_runs_in_dependency_order(tree):
    result = _list(tree)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["a_base", "b_middle", "c_top"]


def test_one_bundle_brings_the_bundles_it_requires_first(tree):
    assert _list(tree, "c_top").stdout.split() == ["a_base", "b_middle", "c_top"]
    assert _list(tree, "a_base").stdout.split() == ["a_base"]


def test_an_unknown_bundle_is_named(tree):
    result = _list(tree, "nope")
    assert result.returncode == 2 and "bundles/nope/scripts/quickstart.sh does not exist" in result.stderr


def test_the_real_bundles_have_demos_and_the_pipeline_runs_after_swinssegnet():
    names = sorted(p.name for p in (REPO_ROOT / "bundles").iterdir() if (p / "configs").is_dir())
    assert all((REPO_ROOT / "bundles" / name / DEMO).is_file() for name in names), names
    order = _list(REPO_ROOT).stdout.split()
    assert sorted(order) == names
    assert order.index("lge_mi_sr_segmentation") < order.index("dti_lge_style_transfer")
