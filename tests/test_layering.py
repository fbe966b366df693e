"""The dependency rules of DESIGN.md section 1, checked on the source (one direction only)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("package", ["common/nets", "common/losses"])
def test_nets_and_losses_know_no_files_or_trainers(package):
    for path in _files(package):
        bad = {m for m in _imports(path) if m.startswith(("common.data", "common.engines"))}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_common_never_imports_bundles_or_tools():
    for path in _files("common"):
        bad = {m for m in _imports(path) if m.split(".")[0] in ("tools", "scripts", "bundles")}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_no_bundle_imports_another_bundles_scripts():
    # each bundle's scripts/ is imported as the top-level package `scripts` of that bundle only
    for bundle in sorted((ROOT / "bundles").iterdir()):
        for path in bundle.rglob("*.py"):
            bad = {m for m in _imports(path) if m.startswith("bundles.")}
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_every_torch_load_is_weights_only():
    for folder in ("common", "bundles", "tools"):
        for path in _files(folder):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load":
                    if getattr(node.func.value, "id", None) == "torch":
                        keywords = {k.arg: k.value for k in node.keywords}
                        value = keywords.get("weights_only")
                        assert (
                            isinstance(value, ast.Constant) and value.value is True
                        ), f"{path.relative_to(ROOT)}:{node.lineno} torch.load without weights_only=True"


def _bundle_names() -> set[str]:
    return {p.name for p in (ROOT / "bundles").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}


def _strings(node) -> list[str]:
    """Every string (keys and values) of a parsed JSON config."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in [key, *_strings(value)]]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return []


def _paths_into_other_bundles(text: str, own: str, bundles: set[str]) -> list[str]:
    """Other bundles' names that follow a ``..`` in ``text`` (``../x``, ``os.path.join(@bundle_root, '..', 'x')``)."""
    if ".." not in text:
        return []
    after = text[text.index("..") :]
    return sorted(name for name in bundles - {own} if re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", after))


def test_the_sibling_bundle_check_catches_relative_paths():
    bundles = {"own", "other_bundle"}
    assert _paths_into_other_bundles("$os.path.join(@bundle_root, '..', 'other_bundle')", "own", bundles) == [
        "other_bundle"
    ]
    assert _paths_into_other_bundles("../other_bundle/configs/inference.json", "own", bundles) == ["other_bundle"]
    assert _paths_into_other_bundles("$os.path.join(@bundle_root, '..', '..', 'data')", "own", bundles) == []
    assert _paths_into_other_bundles("set --x to the other_bundle folder", "own", bundles) == []  # no '..'
    assert _paths_into_other_bundles("../other_bundle_v2", "own", bundles) == []  # another name


def test_no_bundle_config_reaches_into_another_bundle():
    # a downloaded bundle zip has no siblings: another bundle's root is an explicit setting
    # (e.g. `sseg_bundle_root`, checked by common.bundle_root.require_bundle_root), never `..`/<bundle>
    bundles = _bundle_names()
    for bundle in sorted(bundles):
        for path in sorted((ROOT / "bundles" / bundle / "configs").glob("*.json")):
            for text in _strings(json.loads(path.read_text())):
                bad = _paths_into_other_bundles(text, bundle, bundles)
                assert not bad, f"{path.relative_to(ROOT)}: {text!r} reaches into bundle(s) {bad}"


def test_bundle_configs_load_weights_through_the_checking_loader():
    # MONAI's CheckpointLoader answers weights trained under another overlay with PyTorch's tensor list;
    # common.handlers.WeightsLoader names the file and the overlay (tests/handlers/test_handlers_weights_loader.py)
    for path in sorted((ROOT / "bundles").glob("*/configs/*.json")):
        targets = [s for s in _strings(json.loads(path.read_text())) if s.endswith("CheckpointLoader")]
        assert not targets, f"{path.relative_to(ROOT)} uses {targets}: use common.handlers.WeightsLoader"


def _savers(node) -> list[dict]:
    """Every SaveImage(d) entry of a parsed config."""
    if isinstance(node, dict):
        found = [node] if node.get("_target_") in ("SaveImaged", "SaveImage") else []
        return found + [s for value in node.values() for s in _savers(value)]
    return [s for value in node for s in _savers(value)] if isinstance(node, list) else []


def test_bundle_configs_write_outputs_with_the_inputs_axes():
    # MONAI's default NIfTI writer drops a one-slice stack's slice axis; common.inference.InputShapeWriter keeps it
    # (tests/test_inference_helpers.py)
    for path in sorted((ROOT / "bundles").glob("*/configs/*.json")):
        for saver in _savers(json.loads(path.read_text())):
            assert saver.get("writer") == "common.inference.InputShapeWriter", f"{path.relative_to(ROOT)}: {saver}"
