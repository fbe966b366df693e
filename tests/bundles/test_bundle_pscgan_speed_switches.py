"""PSCGAN's speed switches (issue 17): fused Adam and gradients set to None reach every phase's trainer from the
configs, take the same discriminator step as the plain path within float rounding, and the peer step times them for
``python -m tools.side_by_side``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from bundle_test_utils import bundle_scripts
from common.benchmarking import parse_config_items

from tools.benchmark import read_benchmark_info

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "cine_lge_synthesis_segmentation"


with bundle_scripts(BUNDLE):
    from scripts.benchmark import PHASE_FILES
    from scripts.peer_step import NO_DATA


def _trainer(phase: str, **overrides: object):
    """The phase's ``train#trainer`` from its configs + tiny.json, without data (the peer step's ``NO_DATA``)."""
    torch.manual_seed(0)
    overrides = {**NO_DATA, "device": "cpu", **overrides}
    files = ["train.json", *PHASE_FILES[phase], "tiny.json"]
    return parse_config_items(BUNDLE, files, overrides, ("train#trainer",))["train#trainer"]


@pytest.mark.parametrize("phase", sorted(PHASE_FILES))
def test_every_phase_trains_with_train_json_switches(phase):
    """train.json turns fused Adam and set-to-None on; each phase's trainer (its own config block) gets them, and a
    command-line flag turns them off."""
    trainer = _trainer(phase)
    assert trainer.optim_set_to_none is True
    assert all(optimizer.param_groups[0]["fused"] for optimizer in trainer.optimizers.values())
    plain = _trainer(phase, fused_optimizer="false", optim_set_to_none="false")
    assert plain.optim_set_to_none is False
    assert not any(optimizer.param_groups[0]["fused"] for optimizer in plain.optimizers.values())


def _discriminator_step(**switches: object) -> dict[str, torch.Tensor]:
    """The Sys phase's first iteration (a discriminator step only: ``d_steps_per_g_step`` 2) on a fixed batch, from
    the same initial weights; the discriminator's weights after it."""
    trainer = _trainer("sys", **switches)
    generator = torch.Generator().manual_seed(1)
    size, frames = 64, 25
    batch = {
        "cine": torch.rand(1, 1, frames, size, size, generator=generator) * 2 - 1,
        "lge": torch.rand(1, 1, size, size, generator=generator) * 2 - 1,
        "label": torch.randint(0, 4, (1, 1, size, size), generator=generator).float(),
    }
    trainer.state.iteration = 1
    trainer._iteration(trainer, batch)
    assert not trainer.generator_step_due()
    return {k: v.detach().clone() for k, v in trainer.networks["d"].state_dict().items()}


def test_fused_adam_and_set_to_none_take_the_plain_step():
    plain = _discriminator_step(fused_optimizer=False, optim_set_to_none=False)
    fast = _discriminator_step()
    start = _trainer("sys")
    assert not torch.equal(plain["head.weight"], start.networks["d"].state_dict()["head.weight"])  # it moved
    for key, value in plain.items():
        torch.testing.assert_close(fast[key], value, rtol=1e-5, atol=1e-7, msg=key)


def test_channels_last_changes_only_the_memory_layout():
    """The engine base converts every network (the frozen Pri too) to channels-last (5D weights channels_last_3d, 4D
    channels_last); the generator's output and the discriminator's first step match the contiguous ones to float
    rounding."""
    plain, fast = _trainer("sys", channels_last=False), _trainer("sys", channels_last=True)
    for name in ("g", "d"):
        assert not any(p.ndim >= 4 and not p.is_contiguous() for p in plain.networks[name].parameters())
        assert any(p.ndim >= 4 and not p.is_contiguous() for p in fast.networks[name].parameters())
    assert any(p.ndim == 5 and not p.is_contiguous() for p in fast.frozen_networks["pri"].parameters())
    cine = torch.rand(1, 1, 25, 64, 64, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        outputs = [t.networks["g"](cine, t.condition(cine)) for t in (plain, fast)]
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-4, atol=1e-5)
    weights = [_discriminator_step(channels_last=flag) for flag in (False, True)]
    for key, value in weights[0].items():
        torch.testing.assert_close(weights[1][key].contiguous(), value, rtol=1e-4, atol=1e-6, msg=key)


def test_peer_step_times_the_default_and_a_flipped_switch():
    with bundle_scripts(BUNDLE):
        from scripts.peer_step import measure

        default = measure(n=1, warmup=0, threads=1, flops=False, quick=True)
        plain = measure(n=1, warmup=0, threads=1, flops=False, quick=True, fused_optimizer="false", phase="pri")
        math = measure(n=1, warmup=0, threads=1, flops=False, quick=True, attention_kernel="math", phase="seg")
        with pytest.raises(ValueError, match="phase"):
            measure(phase="both")
        with pytest.raises(ValueError, match="attention_kernel"):
            measure(attention_kernel="flash")
    assert "train.json + train_sys.json + quick.json" in default["config"]
    assert "fused Adam, gradients set to None" in default["config"]  # train.json's switches
    assert "fused Adam" not in plain["config"] and plain["implementation"] == "ours (PriTrainer._iteration)"
    assert "unfused (math) attention" in math["config"] and "unfused" not in default["config"]
    assert math["implementation"] == "ours (SegTrainer._iteration)"
    assert default["train_iter_s"]["median"] > 0 and default["infer_s"]["median"] > 0
    assert set(default["params"]) == {"g", "d"} and default["params"]["g"] > 0
    json.dumps(default)  # one JSON line
    spec = read_benchmark_info(BUNDLE).peer_step  # what tools.side_by_side reads
    assert spec["repository"] is None
    assert spec["ours_variants"]["unfused (math) attention"] == ["--attention_kernel", "math"]
    assert spec["ours_variants"]["fused Adam and set-to-None off"] == [
        "--fused_optimizer",
        "False",
        "--optim_set_to_none",
        "False",
    ]


def test_the_benchmarks_speed_rows_time_one_generator_update_of_the_configs_trainer():
    """The speed rows and the peer step share ``build_step``: the configs' trainer with train.json's switches (fused
    Adam), and one timed step is ``d_steps_per_g_step`` iterations that end with the generator's update."""
    with bundle_scripts(BUNDLE):
        from scripts.benchmark import SPEED_PHASES
        from scripts.peer_step import build_step

        step = build_step("sys", quick=True)
    trainer = step["trainer"]
    assert set(SPEED_PHASES.values()) == {"pri", "sys", "seg"} and type(trainer).__name__ == "SysTrainer"
    assert trainer.d_steps_per_g_step == 2 and all(o.param_groups[0]["fused"] for o in trainer.optimizers.values())
    g_before = {k: v.clone() for k, v in trainer.networks["g"].state_dict().items()}
    step["train_step"]()
    assert trainer.state.iteration == 2
    assert any(not torch.equal(g_before[k], v) for k, v in trainer.networks["g"].state_dict().items())  # G updated
