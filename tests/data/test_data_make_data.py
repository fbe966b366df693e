"""tools.make_data: the command line writes every dataset and a montage per dataset."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from common.data import DATASETS, cine_lge_cases, dti_lge_mi_cases, ixi_cases
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def _run(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "tools.make_data", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def test_make_data_small_writes_everything_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "data"
    result = _run("--out", str(out), "--small", "--seed", "1")
    assert result.returncode == 0, result.stderr
    for name in DATASETS:
        assert name in result.stdout and "cases" in result.stdout
        png = out / "montage" / f"{name}.png"
        assert png.is_file() and min(Image.open(png).size) >= 100
    assert (out / "IXI_tissue").is_dir()
    assert len(dti_lge_mi_cases(out)) >= 2 and len(ixi_cases(out, with_tissue=True)) >= 1
    assert len(cine_lge_cases(out)) == 4
    again = _run("--out", str(out), "--small", "--datasets", "EMIDEC")
    assert again.returncode == 2 and "--overwrite" in again.stderr and "EMIDEC" in again.stderr
    forced = _run("--out", str(out), "--small", "--datasets", "EMIDEC", "--overwrite", "--no-montage")
    assert forced.returncode == 0, forced.stderr
