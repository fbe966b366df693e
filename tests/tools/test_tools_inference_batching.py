"""tools.inference_batching: the bundle's knob reaches its inferer, every value is timed each round, the summary and
the report. A stand-in clock gives known times; no timing of real code is asserted."""

from __future__ import annotations

import json

import pytest

from tools import inference_batching as ib

# a throwaway bundle that declares its knob in its own folder only: a small U-Net through MONAI's SliceInferer
INFERENCE = {
    "imports": ["$import torch"],
    "device": "$torch.device('cuda' if torch.cuda.is_available() else 'cpu')",
    "sw_batch_size": "$8 if torch.device(@device).type == 'cuda' else 2",
    "network_def": {
        "_target_": "BasicUNet",
        "spatial_dims": 2,
        "in_channels": 1,
        "out_channels": 2,
        "features": [4, 4, 8, 8, 16, 4],
    },
    "network": "$@network_def.to(@device)",
    "inferer": {"_target_": "SliceInferer", "roi_size": [32, 32], "spatial_dim": 2, "sw_batch_size": "@sw_batch_size"},
}
SPEC = {"key": "sw_batch_size", "input_shape": [1, 1, 32, 32, 6], "slices": 6, "values": [1, 3, 6]}


def _bundle(tmp_path, spec=SPEC, name="throwaway_segmentation"):
    bundle = tmp_path / "bundles" / name
    (bundle / "scripts").mkdir(parents=True)
    (bundle / "configs").mkdir()
    (bundle / "scripts" / "benchmark.py").write_text(f"INFERENCE_BATCH = {spec!r}\n")
    (bundle / "configs" / "inference.json").write_text(json.dumps(INFERENCE))
    return bundle


def test_every_value_is_timed_once_per_round_in_turn():
    calls = []
    times = ib.time_values([4, 1, 2], lambda v: calls.append(v) or 10.0 * v, rounds=2)
    assert calls == [4, 1, 2, 4, 1, 2]
    assert times == {4: [40.0, 40.0], 1: [10.0, 10.0], 2: [20.0, 20.0]}
    with pytest.raises(ValueError, match="rounds"):
        ib.time_values([1], float, rounds=0)


def test_summary_takes_each_values_median_over_rounds_and_compares_the_configs_value_with_the_best():
    summary = ib.summarize({1: [3.0, 9.0, 4.0], 2: [2.0, 2.5, 30.0], 8: [6.0, 5.0, 7.0]}, slices=4, config_value=8)
    assert summary["seconds_per_stack"] == {1: 4.0, 2: 2.5, 8: 6.0}
    assert summary["seconds_per_slice"] == {1: 1.0, 2: 0.625, 8: 1.5}
    assert summary["best_value"] == 2 and summary["config_value"] == 8
    assert summary["config_over_best"] == pytest.approx(6.0 / 2.5)
    # a config value that was not timed has no ratio
    assert ib.summarize({1: [1.0]}, slices=1, config_value=4)["config_over_best"] is None


def test_a_bundle_takes_part_by_its_own_literal_and_a_broken_one_is_refused(tmp_path):
    assert ib.batch_spec(_bundle(tmp_path))["key"] == "sw_batch_size"
    without = tmp_path / "bundles" / "no_knob"
    (without / "scripts").mkdir(parents=True)
    (without / "scripts" / "benchmark.py").write_text("COMPARISONS = ()\n")
    assert ib.batch_spec(without) == {}
    missing = _bundle(tmp_path, {"key": "sw_batch_size", "values": [1]}, "missing_segmentation")
    with pytest.raises(ValueError, match="missing_segmentation.*lacks \\['input_shape', 'slices'\\]"):
        ib.batch_spec(missing)
    bad = _bundle(tmp_path, {**SPEC, "values": [0, 2]}, "bad_segmentation")
    with pytest.raises(ValueError, match="bad_segmentation.*integers >= 1"):
        ib.batch_spec(bad)
    assert ib.main(["--bundles", "no_knob", "--bundles_dir", str(tmp_path / "bundles")]) == 2


def test_each_value_builds_the_bundles_own_inferer_with_that_knob_and_the_config_value_is_the_cpus(
    tmp_path, monkeypatch
):
    """The stand-in clock records the knob of the inferer it is handed and the stack's shape, and runs the forward
    once, so the network and inferer built from the bundle's config really process the stack; every value's inferer
    gets the same network (built once)."""
    import common.benchmarking.side_by_side as sbs

    seen, networks = [], set()

    def fake_inference_times(forward, make_input, n=3, warmup=1):
        x = make_input()
        out = forward(x)
        inferer, network = forward.args  # partial(_infer, inferer, network) of the value being timed
        seen.append((inferer.sw_batch_size, tuple(x.shape), tuple(out.shape)))
        networks.add(id(network))
        return [float(inferer.sw_batch_size)] * n  # a clock where larger batches are slower

    monkeypatch.setattr(sbs, "inference_times", fake_inference_times)
    entry = ib.time_bundle(_bundle(tmp_path), rounds=2, n=1)
    assert [s[0] for s in seen] == [1, 3, 6, 1, 3, 6]
    assert len(networks) == 1  # one network for every value: the knob is the inferer's
    assert all(s[1] == (1, 1, 32, 32, 6) and s[2] == (1, 2, 32, 32, 6) for s in seen)
    assert entry["rounds"] == {"1": [1.0, 1.0], "3": [3.0, 3.0], "6": [6.0, 6.0]}
    # on a CPU the config's expression resolves to 2, a value not timed here
    assert entry["summary"]["config_value"] == 2 and entry["summary"]["best_value"] == 1
    assert entry["summary"]["config_over_best"] is None and entry["slices"] == 6

    ib.write_report({"throwaway_segmentation": entry}, tmp_path / "out")
    other = dict(entry, summary=ib.summarize({2: [1.0], 4: [0.5]}, slices=6, config_value=2))
    ib.write_report({"other_segmentation": other}, tmp_path / "out")  # merged with the earlier entry
    merged = json.loads((tmp_path / "out" / "inference_batching.json").read_text())
    assert sorted(merged) == ["other_segmentation", "throwaway_segmentation"]
    table = (tmp_path / "out" / "inference_batching.md").read_text().splitlines()
    row = next(line for line in table if line.startswith("| other_segmentation |"))
    assert "| 2: 1 (config), **4: 0.5** | 2.00 | 0.167 | threshold |" in row
    row = next(line for line in table if line.startswith("| throwaway_segmentation |"))
    assert "| **1: 1**, 3: 3, 6: 6 | - | - |" in row
