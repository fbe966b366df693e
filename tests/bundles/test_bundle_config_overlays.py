"""Every bundle's configs hold only what they change (STYLE.md rules 10 and 12), checked on the JSON of all bundles.

A base config (one that sets ``bundle_root``) is complete; an overlay (``evaluate.json``, ``multi_gpu_*.json``,
stage files such as ``train_segmentor.json``) holds only changed keys: extra imports as ``"+imports"`` (MONAI
appends a ``+``-prefixed list, a plain ``imports`` replaces the base's), no copy of the base's ``run``, no
``initialize`` in a ``multi_gpu_*`` overlay (it sets the base's ``dist_init`` step instead), and no handler
addressed by list index. Writers that a worker rank must not even build are marked in the base.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

BUNDLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "bundles").iterdir() if (p / "configs").is_dir())
NOT_CONFIGS = ("metadata.json", "layers.json")
#: transform arguments that map intensities: always a named top-level scalar (``@image_min``), never a literal
INTENSITY_ARGUMENTS = ("lower", "upper", "a_min", "a_max", "b_min", "b_max", "percentile")
BY_INDEX = re.compile(r"#\d+(#|$)")


def _configs(bundle: Path) -> dict[str, dict]:
    return {
        p.name: json.loads(p.read_text())
        for p in sorted((bundle / "configs").glob("*.json"))
        if p.name not in NOT_CONFIGS
    }


def _nested(config, depth: int = 0):
    """(key, value, depth) of every dict entry, depth 0 being the top level."""
    if isinstance(config, dict):
        for key, value in config.items():
            yield key, value, depth
            yield from _nested(value, depth + 1)
    elif isinstance(config, list):
        for value in config:
            yield from _nested(value, depth + 1)


def _bases_and_overlays(bundle: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    configs = _configs(bundle)
    bases = {name: c for name, c in configs.items() if "bundle_root" in c}
    return bases, {name: c for name, c in configs.items() if name not in bases}


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_overlays_hold_only_changed_keys(bundle):
    bases, overlays = _bases_and_overlays(bundle)
    assert bases and overlays
    base_runs = [c["run"] for c in bases.values() if "run" in c]
    for name, overlay in overlays.items():
        assert "imports" not in overlay, f"{name}: list only the imports the base lacks, as `+imports`"
        assert overlay.get("run") not in base_runs, f"{name}: `run` repeats the base config's"
        if name.startswith("multi_gpu_"):
            assert "initialize" not in overlay, f"{name}: set `dist_init` instead of repeating `initialize`"
            assert "dist_init" in overlay, f"{name}: joins no process group"
        by_index = [key for key in overlay if BY_INDEX.search(key)]
        assert not by_index, f"{name}: addresses list entries by index: {by_index}"


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_every_initialize_starts_with_the_dist_init_step(bundle):
    """So a ``multi_gpu_*`` overlay joins the process group first whatever it is layered over (evaluate.json too)."""
    for name, config in _configs(bundle).items():
        if "initialize" in config:
            assert config["initialize"][:1] == ["$@dist_init"], f"{name}: {config['initialize']}"
        if "finalize" in config and not name.startswith("multi_gpu_"):
            assert config["finalize"][:1] == ["$@dist_finalize"], f"{name}: {config['finalize']}"


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_writers_built_on_construction_are_marked_in_the_base(bundle):
    """A TensorBoard handler opens its event file when built: the base marks it, a multi-GPU overlay sets the flag."""
    for name, config in _configs(bundle).items():
        for key, value, _ in _nested(config):
            if isinstance(value, dict) and value.get("_target_") == "TensorBoardStatsHandler":
                assert value.get("_disabled_") == "$not @is_main_process", f"{name}: {value}"
                assert "is_main_process" in config, f"{name} builds a TensorBoard writer without `is_main_process`"


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_intensity_mapping_uses_named_scalars(bundle):
    checked = 0
    for name, config in _configs(bundle).items():
        for key, value, depth in _nested(config):
            if depth > 0 and key in INTENSITY_ARGUMENTS:
                assert isinstance(value, str), f"{name}: `{key}: {value}` is a literal: name it at the top level"
                checked += 1
    assert checked, f"{bundle.name}: no intensity mapping found (every bundle scales its inputs: a key is missing here)"


def test_mirrored_network_definitions_differ_only_in_channels():
    """G_T>S is G_S>T with input and output channels swapped, D_T is D_S on the LGE's one channel: the DTI side
    takes ``len(@dti_channels)`` channels, so the definitions cannot be ``%`` references of each other."""
    train = _configs(Path(__file__).resolve().parents[2] / "bundles" / "dti_lge_style_transfer")["train.json"]
    g_st, g_ts = train["network_def"], train["g_target_to_source_def"]
    channels = ("in_channels", "out_channels")
    assert {k: v for k, v in g_ts.items() if k not in channels} == {k: v for k, v in g_st.items() if k not in channels}
    assert (g_st["in_channels"], g_st["out_channels"]) == (g_ts["out_channels"], g_ts["in_channels"])
    assert g_st["in_channels"] == "$len(@dti_channels)" and g_ts["in_channels"] == 1
    d_s, d_t = train["d_source_def"], train["d_target_def"]
    assert {k: v for k, v in d_t.items() if k != "in_channels"} == {k: v for k, v in d_s.items() if k != "in_channels"}
    assert (d_s["in_channels"], d_t["in_channels"]) == ("$len(@dti_channels)", 1)


def _components(config):
    """Every dict in the config, at any depth (handlers sit in lists)."""
    if isinstance(config, dict):
        yield config
        values = config.values()
    elif isinstance(config, list):
        values = config
    else:
        return
    for value in values:
        yield from _components(value)


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_every_resumable_training_records_and_checks_its_run_settings(bundle):
    """A config that resumes (``ResumeFromLatest``) names the settings that make its run what it is, with the seed,
    and hands them to the resume and to the train-state saver (``common.run_settings``): an ablation started in a
    half-finished run's folder is refused, not trained on from the other run's state."""
    resumable = 0
    for name, config in _configs(bundle).items():
        handlers = [v for v in _components(config) if "_target_" in v]
        resumes = [h for h in handlers if h["_target_"] == "common.handlers.ResumeFromLatest"]
        if not resumes:
            continue
        resumable += 1
        settings = config.get("run_settings")
        assert isinstance(settings, dict), f"{name}: resumes but names no top-level `run_settings`"
        assert {"seed", "train_seed"} & set(settings), f"{name}: `run_settings` lacks the seed: {sorted(settings)}"
        state_savers = [
            h for h in handlers if h["_target_"] == "common.handlers.AtomicCheckpointSaver" and "engine_key" in h
        ]
        assert state_savers, f"{name}: resumes but saves no train state"
        for handler in resumes + state_savers:
            assert handler.get("run_settings") == "@run_settings", f"{name}: {handler['_target_']} lacks run_settings"
    assert resumable, f"{bundle.name}: no training config resumes"
