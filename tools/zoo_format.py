"""The model zoo's code-format check (black, isort, flake8 with the zoo's own settings) on packaged bundle zips.

Usage (from the repository root)::

    python -m tools.package --out dist
    python -m tools.zoo_format dist/*.zip          # exit status 1 when any tool fails on any zip

The model zoo's pull-request job ``code-format-check`` runs ``./runtests.sh --codeformat`` in the zoo's root, where a
bundle sits at ``models/<name>/``. This module rebuilds that layout in a temporary folder (``<tmp>/models/<name>``
from the zip, plus the zoo's ``setup.cfg`` and ``pyproject.toml`` settings written from the constants below) and
runs, from ``<tmp>``:

- ``isort --check-only``: profile black, line length 120, ``known_first_party = models``. The vendored ``common``
  and the bundle's ``scripts`` are not under the zoo root's source paths, so isort sees them as third-party
  (sorted among ``monai`` and ``torch``); this repository's ``pyproject.toml`` says the same
  (``known_third_party``), so one import order passes both;
- ``black --check --skip-magic-trailing-comma``: line length 120, target versions py37-py39 (``runtests.sh`` adds
  ``--skip-magic-trailing-comma``: a call or literal that fits on one line is joined even with a trailing comma);
- ``flake8``: ``select = B,C,E,F,N,P,T4,W,B9`` with the zoo's ignore list; the ``B``, ``N`` and ``C4`` codes need
  the plugins flake8-bugbear, pep8-naming and flake8-comprehensions (the zoo's ``requirements-dev.txt``; here the
  ``test`` extra), so a missing plugin is an error rather than a silent pass. ``B950`` (line longer than 132)
  stands in for ``E501``.

A file that an earlier zip holds with the same bytes at the same place in its bundle (every bundle's vendored
``common``) is checked once, and its verdict counts for every zip that holds it (:func:`check_zoo_format`).

The settings were read from Project-MONAI/model-zoo at commit dfae206d (``setup.cfg``, ``pyproject.toml``,
``runtests.sh``, ``requirements-dev.txt``, ``.github/workflows/code-format-check.yml``). The zoo's job also runs
pytype, which is not reproduced here.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

__all__ = ["ZOO_SETUP_CFG", "ZOO_PYPROJECT", "FLAKE8_PLUGINS", "FormatResult", "check_zoo_format", "main"]

#: the zoo's ``setup.cfg`` sections that the three tools read (values as in the zoo)
ZOO_SETUP_CFG = """\
[flake8]
select = B,C,E,F,N,P,T4,W,B9
max_line_length = 120
ignore =
    E203
    E501
    E741
    W503
    W504
    C408
    N812
    B023
    B905
    B028
    B907
    C419
per_file_ignores = __init__.py: F401, __main__.py: F401
exclude = *.pyi,.git,.eggs,monai/_version.py,versioneer.py,venv,.venv,_version.py

[isort]
known_first_party = models
profile = black
line_length = 120
skip = .git, .eggs, venv, .venv, versioneer.py, _version.py, conf.py
skip_glob = *.pyi
"""

#: the zoo's black settings (``pyproject.toml``); ``--skip-magic-trailing-comma`` comes from ``runtests.sh``
ZOO_PYPROJECT = """\
[tool.black]
line-length = 120
target-version = ['py37', 'py38', 'py39']
include = '\\.pyi?$'
"""

#: flake8 plugin distribution -> importable module; the zoo's ``select`` codes B/B9, N and C4 need them
FLAKE8_PLUGINS = {
    "flake8-bugbear": "bugbear",
    "pep8-naming": "pep8ext_naming",
    "flake8-comprehensions": "flake8_comprehensions",
}


@dataclass
class FormatResult:
    """One tool's outcome on one zip: ``ok`` and the tool's output (empty when it passed)."""

    zip_name: str
    tool: str
    ok: bool
    output: str = ""


def _commands(python: str) -> dict[str, list[str]]:
    return {
        "isort": [python, "-m", "isort", "--check-only", "--diff", "--settings-path", "setup.cfg", "models"],
        "black": [python, "-m", "black", "--check", "--diff", "--skip-magic-trailing-comma"]
        + ["--config", "pyproject.toml", "models"],
        "flake8": [python, "-m", "flake8", "--config", "setup.cfg", "--count", "models"],
    }


def missing_tools() -> list[str]:
    """The formatters and flake8 plugins that are not importable (each one would make the check meaningless)."""
    needed = {"black": "black", "isort": "isort", "flake8": "flake8", **FLAKE8_PLUGINS}
    return [name for name, module in needed.items() if importlib.util.find_spec(module) is None]


def _path_in(output: str, path: str) -> bool:
    """Whether a tool's ``output`` names the file ``path`` (``models/<name>/...``; not a longer name it begins)."""
    return re.search(re.escape(path) + r"(?![\w./-])", output) is not None


def check_zoo_format(zip_paths: Sequence[str | os.PathLike], python: str = sys.executable) -> list[FormatResult]:
    """Run isort, black and flake8 with the zoo's settings on each zip, unzipped as ``<zoo>/models/<name>``.

    A file with the same bytes at the same place inside an earlier zip's bundle folder (the vendored ``common`` of
    every bundle) is checked once: the three tools' verdict on a file depends on its bytes, its place in the bundle
    (flake8's per-file ignores; isort's first-party test looks at the zoo's root, the same for every bundle) and
    the settings, none of which names a bundle, so the earlier zip's verdict is its verdict (a failure there fails
    this zip too, naming the file and the zip).

    Args:
        zip_paths: zips written by ``tools.package`` (one top folder ``<name>/`` each).
        python: the interpreter whose black/isort/flake8 run.

    Returns:
        One :class:`FormatResult` per zip and tool.

    Raises:
        RuntimeError: naming the tools or flake8 plugins that are not installed.
        ValueError: naming a zip without exactly one top folder.
    """
    missing = missing_tools()
    if missing:
        raise RuntimeError(f"not installed: {', '.join(missing)} (pip install -e .[test]); the zoo's check needs them.")
    results = []
    #: (path inside the bundle, sha256) -> (index of the zip that checked it, its path under that zip's zoo root)
    checked: dict[tuple[str, str], tuple[int, str]] = {}
    outputs: list[dict[str, str]] = []  # per zip (by index: a zip given twice is two zips), tool -> its own output
    zips = list(map(Path, zip_paths))
    for index, zip_path in enumerate(zips):
        with tempfile.TemporaryDirectory(prefix="zoo_format_") as tmp, zipfile.ZipFile(zip_path) as zf:
            tops = {name.split("/", 1)[0] for name in zf.namelist()}
            if len(tops) != 1:
                raise ValueError(f"{zip_path} holds {len(tops)} top folders {sorted(tops)}, not one bundle folder.")
            zoo = Path(tmp)
            shared: dict[int, list[str]] = {}  # earlier zip -> this zip's files it checked (paths under its root)
            new = 0
            for member in zf.infolist():
                if member.is_dir():
                    continue
                key = (member.filename.split("/", 1)[1], hashlib.sha256(zf.read(member)).hexdigest())
                if key in checked:
                    earlier, path = checked[key]
                    shared.setdefault(earlier, []).append(path)
                    continue
                checked[key] = (index, f"models/{member.filename}")
                zf.extract(member, zoo / "models")
                new += 1
            (zoo / "setup.cfg").write_text(ZOO_SETUP_CFG)
            (zoo / "pyproject.toml").write_text(ZOO_PYPROJECT)
            outputs.append({})
            for tool, command in _commands(python).items():
                ok, output = True, ""
                if new:
                    done = subprocess.run(command, cwd=zoo, capture_output=True, text=True, timeout=600)
                    ok = done.returncode == 0
                    output = "" if ok else (done.stdout + done.stderr).replace(str(zoo) + os.sep, "")
                outputs[index][tool] = output
                failed_before = []  # per earlier zip: the shared files that failed there, then its output once
                for earlier, paths in shared.items():
                    failed = [path for path in paths if _path_in(outputs[earlier][tool], path)]
                    if failed:
                        failed_before.append(
                            f"{', '.join(failed)} (the same files as here) fail {tool} in {zips[earlier].name}:\n"
                            f"{outputs[earlier][tool]}"
                        )
                output = "\n".join(filter(None, [output, *failed_before]))
                results.append(FormatResult(zip_path.name, tool, ok and not failed_before, output))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns 1 when any tool fails on any zip (its output is printed)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("zips", nargs="+", help="bundle zips written by `python -m tools.package`")
    args = parser.parse_args(argv)
    try:
        results = check_zoo_format(args.zips)
    except (RuntimeError, ValueError, OSError) as e:
        print(f"FAIL: {e}")
        return 1
    for r in results:
        print(f"{'PASS' if r.ok else 'FAIL'} {r.zip_name} {r.tool}")
        if not r.ok:
            print("    " + r.output.strip().replace("\n", "\n    "))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
