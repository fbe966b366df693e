"""The dependency rules of DESIGN.md section 1, checked on the source (one direction only)."""

from __future__ import annotations

import ast
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
                        assert isinstance(value, ast.Constant) and value.value is True, (
                            f"{path.relative_to(ROOT)}:{node.lineno} torch.load without weights_only=True"
                        )
