"""REHRSeg's side of ``tools.side_by_side``: ``scripts/peer_step.py`` times our UASR step at the reference's shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from bundle_test_utils import bundle_scripts

from tools.benchmark import read_benchmark_info

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "thick_slice_hr_segmentation_rehrseg"


def test_pair_is_the_decimated_slab_and_the_rows_of_its_middle_gap():
    with bundle_scripts(BUNDLE):
        from scripts.peer_step import _pair

        pair = _pair(3, 4, 4, 8, torch.Generator().manual_seed(0))
        again = _pair(3, 4, 4, 8, torch.Generator().manual_seed(0))
    assert pair["lr"].shape == (3, 2, 4, 8, 8) and pair["hr"].shape == (3, 2, 4, 8, 8)
    assert set(pair["lr"][:, 1].unique().tolist()) <= {0.0, 1.0} and set(pair["hr"][:, 1].unique().tolist()) == {0, 1}
    assert torch.equal(pair["lr"], again["lr"]) and torch.equal(pair["hr"], again["hr"])  # seeded inputs
    # s = 4, thick slices centred at rows 1.5, 5.5, 9.5, 13.5: the middle gap is rows 6..9, so the decimated LR row 2
    # (slab row 8) is the gap's third row
    assert torch.equal(pair["hr"][:, :, 2], pair["lr"][:, :, 2])
    assert not torch.equal(pair["hr"][:, :, 0], pair["lr"][:, :, 1])


def test_peer_step_times_our_uasr_iteration_and_prints_what_the_tool_reads():
    with bundle_scripts(BUNDLE):
        from scripts.peer_step import measure

        result = measure(n=1, warmup=1, batch=2, patch=16, infer_size=16, threads=1, flops=False, quick=True)
        plain = measure(n=1, warmup=0, batch=2, patch=16, infer_size=16, threads=1, flops=False, channels_last="no")
    assert result["config"].endswith("; channels-last") and "channels-last" not in plain["config"]  # train_sr.json's
    assert set(result["params"]) == {"uasr"} and result["params"]["uasr"] > 0
    assert result["train_iter_s"]["median"] > 0 and result["infer_s"]["median"] > 0
    assert "bs2" in result["config"] and "16x16" in result["config"] and "quick.json" in result["config"]
    json.dumps(result)  # one JSON line


def test_benchmark_declares_the_side_by_side_with_the_public_code():
    spec = read_benchmark_info(BUNDLE).peer_step  # what tools.side_by_side reads
    assert spec["repository"] == "zhiyuns/REHRSeg" and spec["harness"] == "rehrseg_step.py"
    assert spec["harness_args"][:2] == ["--stage", "sr"] and spec["ours_args"][:2] == ["-m", "scripts.peer_step"]
    assert spec["ours_variants"] == {"channels-last off": ["--channels_last", "False"]}


def test_stage_2_batch_is_the_harness_inputs_in_our_layout():
    with bundle_scripts(BUNDLE):
        from scripts.peer_step import _seg_batch

        batch = _seg_batch(2, (8, 6, 3), 4, torch.Generator().manual_seed(0))
    assert batch["image"].shape == (2, 1, 8, 6, 3) and batch["hr_label"].shape == (2, 1, 8, 6, 12)
    assert torch.equal(batch["label"], batch["hr_label"][..., ::4])  # the LR label: every s-th thin slice
    assert set(batch["hr_label"].unique().tolist()) == {0.0, 1.0}
    assert batch["uncertainty"].min() >= 0 and batch["uncertainty"].max() <= 1


def test_stage_2_peer_step_times_our_segmenter_at_the_references_plan():
    with bundle_scripts(BUNDLE):
        from scripts.peer_step import measure

        result = measure(stage="seg", n=1, warmup=0, seg_batch=1, seg_patch="128,128,2", threads=1, flops=False)
        switched = measure(stage="seg", n=1, warmup=0, seg_batch=1, seg_patch="128,128,2", threads=1, flops=False,
                           quick=True, channels_last=True, fused_optimizer=True, optim_set_to_none="yes",
                           recompute=False)  # fmt: skip
        with pytest.raises(ValueError, match="stage must be one of"):
            measure(stage="stage2")
        with pytest.raises(ValueError, match="seg_patch takes 3 sizes"):
            measure(stage="seg", seg_patch="64,64")
        with pytest.raises(ValueError, match="stage-2 switches"):  # the SR step has none: refused, not ignored
            measure(stage="sr", fused_optimizer=True)
        with pytest.raises(ValueError, match="stage-2 switches"):
            measure(stage="sr", recompute=False)
        with pytest.raises(ValueError, match="pass --flops False with a GPU"):  # the ceiling is a CPU measurement
            measure(stage="seg", device="cuda", flops=True)
    # the harness's assumed plan gives its segmenter 44.27 M parameters (printed as params_M.seg): ours the same
    assert round(result["params"]["segmenter"] / 1e6, 2) == 44.27 and result["params"]["teacher"] > 0
    # train.json's switches: the speed switches off, the full-resolution recomputation on
    assert result["config"].endswith("HR head; full-resolution recomputation")
    assert switched["config"].endswith("; channels-last; fused Adam; gradients set to None")
    assert "bs1" in result["config"] and "128x128x2" in result["config"] and "quick.json" in switched["config"]
    assert result["train_iter_s"]["median"] > 0 and result["infer_s"]["median"] > 0
    json.dumps(result)


def test_benchmark_declares_the_stage_2_side_by_side():
    stage2 = read_benchmark_info(BUNDLE).peer_step["more_steps"]["stage 2"]
    assert stage2["harness_args"][:2] == ["--stage", "seg"]
    assert stage2["ours_args"][:4] == ["-m", "scripts.peer_step", "--stage", "seg"]
    assert stage2["ours_variants"] == {
        "channels-last": ["--channels_last", "True"],
        "fused Adam, set-to-None": ["--fused_optimizer", "True", "--optim_set_to_none", "True"],
        "no recomputation": ["--recompute", "False"],
    }


def test_stage_2_speed_switches_reach_the_optimizer_and_the_trainer():
    from common.acceleration import is_channels_last
    from common.benchmarking import parse_config_switches

    with bundle_scripts(BUNDLE):
        from scripts.peer_step import NO_DATA, SEG_SWITCHES

    overrides = {**NO_DATA, "device": "cpu", "seg_features": [4, 8, 8, 8], "sr_widths": [4, 8, 8, 8, 8]}
    for value in (False, True):
        given = {key: value for key in SEG_SWITCHES}
        items, switches = parse_config_switches(BUNDLE, ["train.json"], overrides, ("train#trainer",), given)
        trainer = items["train#trainer"]
        assert switches == given
        assert trainer.optimizers["optimizer"].defaults["fused"] is value
        assert trainer.optim_set_to_none is value
        assert is_channels_last(trainer.networks["segmenter"]) is value
        assert is_channels_last(trainer.frozen_networks["teacher"]) is value
        assert trainer.networks["segmenter"].network.recompute_full_resolution is value
