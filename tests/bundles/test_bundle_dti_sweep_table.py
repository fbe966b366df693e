"""The DTI infarct-contrast sweep's outputs: means, paired comparisons per level, per-pair CSV and the figure."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
from bundle_test_utils import bundle_scripts

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "dti_lge_style_transfer"


def _level(elevation: float, offsets: dict[str, float]) -> dict:
    rng = np.random.default_rng(0)
    base = {f"Case_{i:03d}": float(v) for i, v in enumerate(rng.uniform(0.2, 0.6, 30))}
    noise = {case: float(rng.normal(0, 0.01)) for case in base}
    cases = {label: {c: v + offset + noise[c] * (label != "DTI SSeg") for c, v in base.items()}
             for label, offset in offsets.items()}  # fmt: skip
    means = {label: float(np.mean(list(v.values()))) for label, v in cases.items()}
    sems = {label: float(np.std(list(v.values()), ddof=1) / np.sqrt(30)) for label, v in cases.items()}
    return {"md_elevation": elevation, "seed": 0, "means": means, "sems": sems, "cases": cases}


def test_sweep_table_pairs_the_pipelines_per_level(tmp_path):
    with bundle_scripts(BUNDLE):
        from scripts import benchmark

        levels = [
            _level(0.0, {"DTI SSeg": 0.0, "CycleGAN+SSeg": 0.1, "CycleGANSeg+SSeg": 0.1}),  # translation ahead
            _level(0.4, {"DTI SSeg": 0.2, "CycleGAN+SSeg": 0.0, "CycleGANSeg+SSeg": 0.0}),  # direct training ahead
        ]
        comparisons = benchmark.sweep_comparisons(levels[0])
        assert comparisons[("CycleGANSeg+SSeg", "DTI SSeg")].verdict == "CycleGANSeg+SSeg better (seeds not checked)"
        assert abs(comparisons[("CycleGANSeg+SSeg", "DTI SSeg")].difference - 0.1) < 0.01
        assert comparisons[("CycleGANSeg+SSeg", "CycleGAN+SSeg")].verdict == "not separated"
        later = benchmark.sweep_comparisons(levels[1])[("CycleGANSeg+SSeg", "DTI SSeg")]
        assert later.verdict == "DTI SSeg better (seeds not checked)" and later.high < 0
        benchmark._write_sweep(levels, tmp_path)

    table = (tmp_path / "sweep.md").read_text()
    differences = dict(re.findall(r"\| (\d+) % \| CycleGANSeg\+SSeg - DTI SSeg \| ([+-][0-9.]+) ", table))
    assert abs(float(differences["0"]) - 0.1) < 0.01 and abs(float(differences["40"]) + 0.2) < 0.01
    assert "DTI SSeg better (seeds not checked)" in table and table.count(" +- ") == 1 + 2 * 3  # header + means +- SEM
    # DTI SSeg rises by 0.2 from 0 % to 40 % on the same pairs (a paired, separated difference); CycleGAN+SSeg falls
    assert re.search(
        r"\| DTI SSeg \| 40 % \| \+0\.200 \[\+0\.2\d\d, \+0\.2\d\d\] \| [^|]+ \| DTI SSeg at 40 % better", table
    )
    assert re.search(r"\| CycleGAN\+SSeg \| 40 % \| -0\.1\d\d .* CycleGAN\+SSeg at 0 % better", table)
    with open(tmp_path / "sweep_cases.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 3 * 30
    assert {r["pipeline"] for r in rows} == {"DTI SSeg", "CycleGAN+SSeg", "CycleGANSeg+SSeg"}
    assert (tmp_path / "sweep.png").stat().st_size > 1000
