"""TransMRSR's benchmark command line: what the table's note prints as its command must run."""

from __future__ import annotations

import os
from pathlib import Path

import common.benchmarking.workflow as workflow
import pytest
from bundle_test_utils import bundle_scripts

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "brain_mri_super_resolution_transmrsr"


def test_benchmark_command_line_passes_variants_and_scales_on(monkeypatch):
    """The table's note repeats ``--variants``/``--scales``: the command line must accept and forward them."""
    with bundle_scripts(BUNDLE):
        import scripts.benchmark as benchmark

        calls = []
        monkeypatch.setattr(benchmark, "run", lambda *a, **k: calls.append((a, k)))
        benchmark.main(out="x", quick=True, seeds="0", variants="TransMRSR", scales="4")
        benchmark.main(out="y")
    assert calls[0][1] == dict(quick=True, seeds="0", fresh=False, variants="TransMRSR", scales="4")
    assert calls[1][1]["variants"] is None and calls[1][1]["scales"] == "4,8"  # every row by default


def test_a_stopped_sr_training_trains_again_although_its_best_checkpoint_exists(tmp_path, monkeypatch):
    """``model.pt`` is the best validation checkpoint, written mid-training: a continued run must not take it for a
    finished network. Finished networks, the prior and the centroids are reused."""
    stop = {"folder": "TransMRSR_x8"}

    def fake_run_workflow(bundle_root, files, values):
        if "train_prior.json" in files or "centroids.json" in files:
            name = "prior.pt" if "train_prior.json" in files else "centroids.pt"
            os.makedirs(values["prior_dir"], exist_ok=True)
            Path(values["prior_dir"], name).touch()
            calls.append(name)
            return
        Path(values["ckpt_dir"], "model.pt").touch()  # the first validation's best checkpoint
        calls.append(os.path.basename(values["ckpt_dir"]))
        if os.path.basename(values["ckpt_dir"]) == stop["folder"]:
            raise RuntimeError("stopped after the first validation")

    with bundle_scripts(BUNDLE):
        import scripts.benchmark as benchmark

        monkeypatch.setattr(benchmark, "run_workflow", fake_run_workflow)  # prior, centroids
        monkeypatch.setattr(workflow, "run_workflow", fake_run_workflow)  # SR stages (StageCache.train)
        arguments = (0, "data", str(tmp_path), {}, (1, 1, 1), ("TransMRSR", "EDSR-like"), (4, 8))
        calls = []
        with pytest.raises(RuntimeError, match="stopped"):
            benchmark._train_seed(*arguments)
        assert calls == ["prior.pt", "centroids.pt", "TransMRSR_x4", "TransMRSR_x8"]
        stop["folder"], calls = None, []
        models = benchmark._train_seed(*arguments)
    assert calls == ["TransMRSR_x8", "EDSR-like_x4", "EDSR-like_x8"]
    assert sorted(models) == ["EDSR-like x4", "EDSR-like x8", "TransMRSR x4", "TransMRSR x8"]
