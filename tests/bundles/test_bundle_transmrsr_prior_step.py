"""TransMRSR's ``scripts/prior_step.py``: the prior stage's GAN iteration as train_prior.json builds it, with and
without activation recomputation (what the docs' prior-stage memory numbers come from)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from bundle_test_utils import bundle_scripts

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "brain_mri_super_resolution_transmrsr"


def _two_iterations(recompute: bool) -> tuple[set, list[dict], torch.Tensor]:
    with bundle_scripts(BUNDLE):
        from scripts.prior_step import build_step

        torch.manual_seed(0)
        step = build_step(recompute, "tiny.json")
    generator = step["generator"]
    before = [p.detach().clone() for p in generator.parameters()]
    outputs = [step["train_step"]()[0] for _ in range(2)]
    moved = sum((p.detach() - b).abs().sum() for p, b in zip(generator.parameters(), before))
    return set(generator.recompute_resolutions), outputs, moved


def test_the_step_is_the_configs_gan_iteration_with_r1_due_and_the_switch_reaching_the_generator():
    recomputed, with_outputs, moved = _two_iterations(True)
    plain, without_outputs, _ = _two_iterations(False)
    assert recomputed == {32, 16} and plain == set()  # tiny.json: img_size 32, the config's [size, size / 2]
    assert moved > 0
    for output in with_outputs:  # every iteration carries the lazy R1 penalty (r1_every 1)
        assert output["loss_r1"] > 0 and output["loss_d"] > 0 and output["loss_g"] > 0
    # the same seed gives the same iteration either way: recomputation changes memory, not the step
    for a, b in zip(with_outputs, without_outputs):
        for key in ("loss_g", "loss_d_real", "loss_d_fake", "loss_r1"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-4, abs=1e-9), key


def test_compare_alternates_one_process_per_setting_and_round(monkeypatch):
    with bundle_scripts(BUNDLE):
        from scripts import prior_step

        commands = []
        monkeypatch.setattr(
            prior_step,
            "run_json_process",
            lambda command, cwd: commands.append(command) or {"peak_rss_mb": 1.0, "recompute": "--recompute"},
        )
        result = prior_step.compare_recomputation(rounds=2, n=1, threads=1, quick=True)
    flags = [command[command.index("--recompute") + 1] for command in commands]
    assert flags == ["True", "False", "True", "False"] and len(result["with"]) == len(result["without"]) == 2
    assert all(command[1:3] == ["-m", "scripts.prior_step"] and "--quick" in command for command in commands)
