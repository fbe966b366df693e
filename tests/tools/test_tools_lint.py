"""All of the repository's Python code (``bundles/``, ``common/``, ``tools/``, ``tests/``) passes the model zoo's
formatters and linter (black, isort, flake8 at 120 columns).

The model zoo's ``setup.cfg``/``pyproject.toml``: black and isort (profile black) at line length 120; flake8 at
``max_line_length = 120`` ignoring E203, E741, W503, W504, F401 allowed in ``__init__.py``. Here flake8 selects
the pycodestyle/pyflakes codes only; the plugin codes (flake8-bugbear, pep8-naming, flake8-comprehensions) and the
zoo's exact settings are applied to the code that ships, the packaged zips, by ``tools.zoo_format``. The zoo ignores
E501 because bugbear's B950 checks the length instead; here E501 at 120 stands in for it. The tools come with the
``test`` extra (``bash tools/install.sh``); a test is skipped, saying so, only when its tool is not installed (and
fails instead under ``CI=true``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = REPO_ROOT / "pyproject.toml"
LINE_LENGTH = "120"
LINTERS = {
    "black": ["black", "--check", "--diff", "--line-length", LINE_LENGTH],
    # pyproject.toml adds known_third_party = common, scripts (as the zoo sees them in a packaged bundle)
    "isort": ["isort", "--check-only", "--diff", "--settings-path", str(PYPROJECT), "--profile", "black"]
    + ["--line-length", LINE_LENGTH],
    # pycodestyle and pyflakes codes only: the plugin codes (bugbear, pep8-naming, comprehensions) are checked with
    # the zoo's full settings on the code that ships, by tools.zoo_format (tests/tools/test_tools_zoo_format.py)
    "flake8": ["flake8", "--select", "E,F,W,C90", "--max-line-length", LINE_LENGTH]
    + ["--extend-ignore", "E203,E741,W503,W504", "--per-file-ignores", "__init__.py:F401"],
}
#: every folder with Python code
LINTED_FOLDERS = ("bundles", "common", "tools", "tests")
BADLY_FORMATTED = "import os\nimport sys, json\nx = {  'a':1 }\n" + "y = '" + "z" * 130 + "'\n"


def _run(tool: str, *paths: str | Path) -> subprocess.CompletedProcess:
    if importlib.util.find_spec(tool) is None and os.environ.get("CI", "").strip().lower() not in ("1", "true", "yes"):
        pytest.skip(f"{tool} is not installed: install the test extra (pip install -e .[test])")
    command = [sys.executable, "-m", *LINTERS[tool], *map(str, paths)]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("folder", LINTED_FOLDERS)
@pytest.mark.parametrize("tool", sorted(LINTERS))
def test_folder_passes(tool, folder):
    python_files = sorted((REPO_ROOT / folder).rglob("*.py"))
    assert python_files, f"no Python file under {folder}/"
    result = _run(tool, folder)
    assert result.returncode == 0, f"`{tool}` fails on {folder}/:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"


@pytest.mark.parametrize("tool", sorted(LINTERS))
def test_linter_catches_a_bad_file(tool, tmp_path):
    """The invocation really checks files: a badly formatted one fails each tool."""
    bad = tmp_path / "bad_module.py"
    bad.write_text(BADLY_FORMATTED)
    result = _run(tool, bad)
    assert result.returncode != 0, f"`{tool}` accepted {BADLY_FORMATTED!r}"
    assert "bad_module.py" in result.stdout + result.stderr
