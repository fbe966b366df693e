"""SwinSSegNet's ``fused_optimizer`` switch: PyTorch's fused AdamW kernel, the same update within float rounding."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from bundle_test_utils import bundle_scripts
from common.benchmarking import parse_config_items

from tools.benchmark import read_benchmark_info

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "lge_mi_sr_segmentation"


def _steps(fused: object, n: int = 1) -> tuple[torch.optim.Optimizer, dict[str, torch.Tensor]]:
    """``n`` AdamW steps of the quick network on one fixed batch (64 -> 512), built from ``train.json``."""
    torch.manual_seed(0)
    overrides = {"fused_optimizer": fused, "device": "$torch.device('cpu')"}
    items = parse_config_items(BUNDLE, ["train.json", "quick.json"], overrides, ("network", "optimizer"))
    network, optimizer = items["network"], items["optimizer"]
    generator = torch.Generator().manual_seed(1)
    image = torch.rand(2, 1, 64, 64, generator=generator)
    target = (torch.rand(2, 2, 512, 512, generator=generator) > 0.5).float()
    for _ in range(n):
        optimizer.zero_grad()
        ((network(image) - target) ** 2).mean().backward()
        optimizer.step()
    return optimizer, {k: v.detach().clone() for k, v in network.state_dict().items()}


def test_fused_adamw_takes_the_same_step_as_the_default_loop():
    """One step from the same weights and gradients: equal within float rounding (measured 7e-9; later steps differ
    more, as the rounding feeds back through the next forward pass)."""
    plain, plain_weights = _steps(False)
    fused, fused_weights = _steps("true")  # as `--fused_optimizer true` arrives from the command line
    assert plain.param_groups[0]["fused"] is False and fused.param_groups[0]["fused"] is True
    torch.manual_seed(0)
    start = parse_config_items(BUNDLE, ["train.json", "quick.json"], {}, ("network_def",))["network_def"].state_dict()
    assert not torch.equal(plain_weights["head.conv.weight"], start["head.conv.weight"])  # the step moved it
    for key, value in plain_weights.items():
        torch.testing.assert_close(fused_weights[key], value, rtol=1e-5, atol=1e-7, msg=key)


def test_a_bad_flag_is_refused_by_name():
    with pytest.raises(Exception, match="fused_optimizer"):
        _steps("sometimes", n=0)


def test_peer_step_times_the_default_and_the_fused_step_for_the_side_by_side_tool():
    with bundle_scripts(BUNDLE):
        from scripts.peer_step import measure

        default = measure(n=1, warmup=0, threads=1, flops=False, quick=True)
        fused = measure(n=1, warmup=0, threads=1, flops=False, quick=True, fused_optimizer=True)
        plain = measure(n=1, warmup=0, threads=1, flops=False, quick=True, channels_last="false")
    assert "; channels-last;" in default["config"] and "fused" not in default["config"]  # train.json's switches
    mode = os.environ.get("COMMON_MALLOC") or "heap"  # and its malloc mode, applied in the step's process
    assert all(f"; malloc {mode};" in run["config"] for run in (default, fused, plain))
    assert plain["train_iter_s"]["median"] > 0 and plain["infer_s"]["median"] > 0
    assert "no speed switch" in plain["config"] and "fused AdamW" in fused["config"]
    assert "bs8" in plain["config"] and "64x64 -> 512x512" in plain["config"]
    assert plain["params"] == fused["params"] and plain["params"]["swin_sseg"] > 0
    json.dumps(fused)  # one JSON line
    spec = read_benchmark_info(BUNDLE).peer_step  # what tools.side_by_side reads
    assert spec["repository"] is None and spec["ours_variants"]["fused AdamW"] == ["--fused_optimizer", "True"]
    assert spec["ours_variants"]["channels-last off"] == ["--channels_last", "False"]
