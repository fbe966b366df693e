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
        benchmark.main(out="z", quick=True, variants="TransMRSR,w/o GP", scales="8", prior_study="1000")
    assert calls[0][1] == dict(quick=True, seeds="0", fresh=False, variants="TransMRSR", scales="4", prior_study=None)
    assert calls[1][1]["variants"] is None and calls[1][1]["scales"] == "4,8"  # every row by default
    assert calls[1][1]["prior_study"] is None  # the study runs only when asked for
    assert calls[2][1]["prior_study"] == "1000"


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


def _fake_training(calls: list):
    """A ``run_workflow`` that records each stage (files and values) and writes the file that marks it finished."""

    def fake_run_workflow(bundle_root, files, values):
        calls.append((files, dict(values)))
        if "train_prior.json" in files or "centroids.json" in files:
            os.makedirs(values["prior_dir"], exist_ok=True)
            Path(values["prior_dir"], "prior.pt" if "train_prior.json" in files else "centroids.pt").touch()
        else:
            Path(values["ckpt_dir"], "model.pt").touch()

    return fake_run_workflow


def test_prior_study_level_trains_its_own_prior_for_whole_epochs_then_its_variants_on_it(tmp_path, monkeypatch):
    """1000 GAN iterations at 6 per epoch (12 prior subjects in pairs) -> 167 epochs, 1002 iterations: the level's
    prior, its centroids, then TransMRSR and w/o SDT at x8 decoding from that prior, not from the mode's."""
    calls = []
    with bundle_scripts(BUNDLE):
        import scripts.benchmark as benchmark

        monkeypatch.setattr(benchmark, "run_workflow", _fake_training(calls))
        monkeypatch.setattr(workflow, "run_workflow", _fake_training(calls))
        assert benchmark.prior_iterations_per_epoch({"prior_batch_size": 2}) == 6
        assert benchmark.prior_iterations_per_epoch({"prior_batch_size": 5}) == 2  # the partial batch is dropped
        models = benchmark._train_prior_study(0, "data", str(tmp_path), {"prior_batch_size": 2}, (10, 3, 1), 1000)
    level = tmp_path / "prior_1002"
    assert models == {
        "TransMRSR x8 (prior 1002 it)": str(level / "TransMRSR_x8" / "model.pt"),
        "w/o SDT x8 (prior 1002 it)": str(level / "wo_SDT_x8" / "model.pt"),
    }
    (prior_files, prior), (centroid_files, _), *sr = calls
    assert "train_prior.json" in prior_files and prior["epochs"] == 167 and prior["prior_dir"] == str(level / "prior")
    assert "centroids.json" in centroid_files
    assert [values["ckpt_dir"] for _, values in sr] == [str(level / "TransMRSR_x8"), str(level / "wo_SDT_x8")]
    for _, values in sr:  # SR at x8 on the level's prior, at the mode's SR schedule
        assert values["prior_dir"] == str(level / "prior") and values["scale"] == 8 and values["epochs"] == 3
    assert "use_truncation" not in sr[0][1] and sr[1][1]["use_truncation"] is False


def test_method_names_of_the_prior_study_map_back_to_their_variant_and_scale():
    with bundle_scripts(BUNDLE):
        from scripts.benchmark import method_variant

        assert method_variant("w/o SDT x8 (prior 1002 it)") == ("w/o SDT", 8)
        assert method_variant("EDSR-like x4") == ("EDSR-like", 4)
        with pytest.raises(ValueError, match="not a trained method"):
            method_variant("bicubic x8")


def test_prior_study_needs_the_rows_it_is_compared_with():
    with bundle_scripts(BUNDLE):
        import scripts.benchmark as benchmark

        with pytest.raises(ValueError, match="w/o GP"):
            benchmark.run(None, "unused", quick=True, variants="TransMRSR", scales="8", prior_study="1000")


def test_prior_study_report_pairs_each_level_with_the_random_decoder_and_the_modes_prior(tmp_path, monkeypatch):
    """Synthetic per-seed scores in which the 1002-iteration prior adds 0.5 dB to every volume over the random
    decoder (w/o GP) in every seed, and the mode's prior adds nothing: the report must call the first an ordering
    and write every seed's value of every compared row."""
    import numpy as np
    from common.benchmarking import BenchmarkRow

    rng = np.random.default_rng(0)
    cases = [f"IXI{i:03d}-T1.nii.gz" for i in range(30)]
    base = {seed: {c: 20 + rng.normal(0, 0.5) for c in cases} for seed in (0, 1, 2)}
    gains = {
        "w/o GP x8": 0.0,
        "TransMRSR x8": 0.0,
        "TransMRSR x8 (prior 1002 it)": 0.5,
        "w/o SDT x8 (prior 1002 it)": 0.4,
    }
    rows = []
    for method, gain in gains.items():
        for metric, scale in (("psnr", 1.0), ("ssim", 0.01), ("dice_avg", 0.01)):
            noise = rng.normal(0, 0.01, size=(3, len(cases)))
            scores = [{c: (base[s][c] + gain + noise[s, i]) * scale for i, c in enumerate(cases)} for s in (0, 1, 2)]
            rows.append(BenchmarkRow.from_runs(method, metric, scores, seeds=[0, 1, 2]))
    written_samples = []
    with bundle_scripts(BUNDLE):
        import scripts.benchmark as benchmark
        import scripts.figures as figures

        monkeypatch.setattr(figures, "prior_samples_figure", lambda g, p, out: written_samples.append(p) or out)
        written = benchmark.write_prior_study(rows, str(tmp_path), (0, 1, 2), {}, 60)
    report = (tmp_path / "prior_study.md").read_text()
    assert "| TransMRSR x8 (prior 1002 it) - w/o GP x8 | psnr | +0.50 [" in report
    line = next(x for x in report.splitlines() if x.startswith("| TransMRSR x8 (prior 1002 it) - w/o GP x8 | psnr"))
    assert "3/3" in line and "TransMRSR x8 (prior 1002 it) better" in line
    line = next(x for x in report.splitlines() if x.startswith("| TransMRSR x8 (prior 1002 it) - TransMRSR x8 | psnr"))
    assert line.endswith("| 3/3 | TransMRSR x8 (prior 1002 it) better |"), line  # the longer prior, not the mode's
    assert "| TransMRSR x8 | 60 |" in report and "| w/o GP x8 | none (random decoder) |" in report
    with open(tmp_path / "prior_study_cases.csv") as f:
        lines = f.read().splitlines()
    assert lines[0] == "method,prior_gan_iterations,metric,seed,case,value"
    assert len(lines) - 1 == len(gains) * 3 * 3 * len(cases)  # methods x metrics x seeds x volumes
    assert (tmp_path / "prior_study.png").stat().st_size > 0
    assert written_samples == [str(tmp_path / "seed_0" / "prior_1002" / "prior" / "prior.pt")]
    assert str(tmp_path / "prior_samples_1002it.png") in written
