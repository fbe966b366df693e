"""tools.zoo_format: the model zoo's code-format job (black, isort, flake8 with the zoo's settings) on packaged zips.

A fake zip holding one defect per tool shows that each defect the zoo's job found in our zips (import order with
``common`` as first-party, a joinable magic trailing comma, flake8-bugbear's B008) fails here too; the real bundles'
zips must pass. The tools and the flake8 plugins come with the ``test`` extra; without them the tests are skipped,
saying so (and fail under ``CI=true``).
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pytest

from tools import package
from tools import verify_bundles as vb
from tools import zoo_format as zf

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLES = sorted(p for p in (REPO_ROOT / "bundles").iterdir() if (p / "configs" / "metadata.json").is_file())

GOOD = '''"""A module formatted as the zoo wants."""

from __future__ import annotations

import os

import torch
from common.nets import SwinSSeg
from monai.handlers import from_engine


def build(path: str = os.sep, transform=None) -> tuple:
    transform = from_engine(["loss"]) if transform is None else transform
    return SwinSSeg, torch.zeros(1), transform, path
'''
#: the defects found in the zips: `common` sorted as first-party, a joinable magic trailing comma, B008
DEFECTS = {
    "isort": GOOD.replace(
        "import torch\nfrom common.nets import SwinSSeg\nfrom monai.handlers import from_engine\n",
        "import torch\nfrom monai.handlers import from_engine\n\nfrom common.nets import SwinSSeg\n",
    ),
    "black": GOOD.replace(
        "return SwinSSeg, torch.zeros(1), transform, path",
        "return (\n        SwinSSeg,\n        torch.zeros(1),\n        transform,\n        path,\n    )",
    ),
    "flake8": GOOD.replace(
        'def build(path: str = os.sep, transform=None) -> tuple:\n    transform = from_engine(["loss"]) if transform '
        "is None else transform\n",
        'def build(path: str = os.sep, transform=from_engine(["loss"])) -> tuple:\n',
    ),
}


@pytest.fixture(autouse=True)
def _tools_installed():
    missing = zf.missing_tools()
    if missing and os.environ.get("CI", "").strip().lower() not in ("1", "true", "yes"):
        pytest.skip(f"not installed: {missing} (pip install -e .[test])")


def _zip(tmp_path: Path, source: str, name: str = "fake_bundle") -> Path:
    path = tmp_path / f"{name}_v0.1.0.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}/scripts/__init__.py", "")
        z.writestr(f"{name}/scripts/module.py", source)
    return path


def test_defects_are_really_in_the_fixtures():
    assert all(source != GOOD for source in DEFECTS.values())


def test_a_well_formatted_zip_passes(tmp_path):
    results = zf.check_zoo_format([_zip(tmp_path, GOOD)])
    assert [(r.tool, r.ok) for r in results] == [("isort", True), ("black", True), ("flake8", True)], results


@pytest.mark.parametrize("tool", sorted(DEFECTS))
def test_each_defect_fails_its_tool(tmp_path, tool):
    results = {r.tool: r for r in zf.check_zoo_format([_zip(tmp_path, DEFECTS[tool])])}
    assert not results[tool].ok, f"{tool} with the zoo's settings accepted:\n{DEFECTS[tool]}"
    assert "scripts/module.py" in results[tool].output
    if tool == "flake8":
        assert "B008" in results[tool].output
    assert all(r.ok for t, r in results.items() if t != tool), results


def test_main_reports_per_zip_and_tool(tmp_path, capsys):
    assert zf.main([str(_zip(tmp_path, GOOD))]) == 0
    assert zf.main([str(_zip(tmp_path, DEFECTS["flake8"], "other"))]) == 1
    out = capsys.readouterr().out
    assert "PASS fake_bundle_v0.1.0.zip isort" in out and "FAIL other_v0.1.0.zip flake8" in out and "B008" in out


def test_a_zip_with_two_top_folders_is_refused(tmp_path):
    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a/x.py", "")
        z.writestr("b/x.py", "")
    with pytest.raises(ValueError, match="2 top folders"):
        zf.check_zoo_format([path])


@pytest.mark.slow
def test_the_packaged_bundles_pass_the_zoo_format_check(tmp_path):
    def ignore(folder: str, names: list[str]) -> list[str]:  # a user's models/, outputs/, eval/ stay unread
        return [
            n for n in names if n == "__pycache__" or (Path(folder).parent.parent == REPO_ROOT and n in vb.USER_FOLDERS)
        ]

    copies = [Path(shutil.copytree(b, tmp_path / "src" / b.name, ignore=ignore)) for b in BUNDLES]
    zips = [package.package_bundle(b, tmp_path / "dist") for b in copies]
    failed = [r for r in zf.check_zoo_format(zips) if not r.ok]
    assert not failed, "\n\n".join(f"{r.zip_name} {r.tool}:\n{r.output[-4000:]}" for r in failed)


def test_a_file_shared_with_an_earlier_zip_is_checked_once_and_its_failure_fails_both(tmp_path, monkeypatch):
    zips = [
        _zip(tmp_path, DEFECTS["flake8"], "first"),
        _zip(tmp_path, DEFECTS["flake8"], "second"),  # the same two files at the same places
        _zip(tmp_path, GOOD, "third"),  # its empty scripts/__init__.py is the same, its module.py its own
    ]
    seen = []  # the Python files each tool run saw
    run = zf.subprocess.run

    def recording_run(command, cwd, **kwargs):
        seen.append(sorted(p.relative_to(cwd).as_posix() for p in Path(cwd).rglob("*.py")))
        return run(command, cwd=cwd, **kwargs)

    monkeypatch.setattr(zf.subprocess, "run", recording_run)
    results = {(r.zip_name.split("_")[0], r.tool): r for r in zf.check_zoo_format(zips)}
    assert seen == 3 * [["models/first/scripts/__init__.py", "models/first/scripts/module.py"]] + 3 * [
        ["models/third/scripts/module.py"]
    ]
    assert not results["first", "flake8"].ok and "B008" in results["first", "flake8"].output
    second = results["second", "flake8"]
    assert not second.ok
    assert "models/first/scripts/module.py (the same files as here) fail flake8 in first_v0.1.0.zip" in second.output
    assert "B008" in second.output
    assert all(results[name, tool].ok for name, tool in results if tool != "flake8" or name == "third"), results


def test_a_failing_zip_given_twice_fails_both_times(tmp_path):
    zip_path = _zip(tmp_path, DEFECTS["flake8"])
    results = [r for r in zf.check_zoo_format([zip_path, zip_path]) if r.tool == "flake8"]
    assert [r.ok for r in results] == [False, False] and all("B008" in r.output for r in results)
