"""The bundle tests pass in a repository where the main job has already run, and leave its folders alone.

``tools/quickstart.sh`` trains into ``bundles/*/models/`` (``model.pt``, ``segmentor.pt``, ``model_ssl.pt`` and the
``*_state/`` resume checkpoints) and writes ``outputs/`` and ``eval/``. This test copies the repository (tracked and
untracked, not ignored, files: no ``.venv``, ``data`` or trained files) into a temporary folder, plants bogus files
there the way the quickstart lays them out (state dicts that load into no network, a resume checkpoint newer than
any a test writes), and runs the bundle tests of that copy in a fresh pytest with ``USER_FOLDERS_GUARD=all``
(tests/conftest.py: any open/mkdir/remove under those folders in the test process raises). It then checks that
every planted file has the same bytes and mtime, that nothing was added or removed there, and that the guard logged
nothing. A test that read a planted file in a subprocess (torchrun, ``monai.bundle`` command line) fails there
loudly, since none of them loads.

The planted files live only in the temporary copy: a user's own ``bundles/*/models`` is never written.

Each bundle test runs once per session: when this test is selected with bundle tests, tests/conftest.py deselects
those in the main process and this test runs them in the copy (its terminal summary prints the copy's result line;
a failure here lists the copy's failed tests); a test marked ``in_place`` (it needs the git history) stays in the
repository. Run alone, it runs its default paths (tests/bundles and the MONAI Label driver); ``USER_FOLDERS_TEST_PATHS``
names others (e.g. tests/tools too)::

    USER_FOLDERS_TEST_PATHS="tests/bundles tests/test_monailabel_driver.py tests/tools" \\
        .venv/bin/python -m pytest tests/test_user_folders_untouched.py
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
USER_FOLDERS = ("models", "outputs", "eval", "synthetic")
#: relative to a bundle: what the quickstart leaves there (names as its configs write them)
PLANTED_TORCH = (
    "models/model.pt",
    "models/segmentor.pt",
    "models/pretrain/model_ssl.pt",
    "models/model.ts",
    "models/train_state/checkpoint_epoch=9999.pt",
    "models/segmentor_state/checkpoint_epoch=9999.pt",
    "models/pretrain_state/checkpoint_epoch=9999.pt",
)
PLANTED_TEXT = (
    "outputs/Case_999_LGE_mi_x8.nii.gz",
    "eval/metrics.csv",
    "eval/test_mean_dice_raw.csv",
    "eval/events.out.tfevents.0.sentinel",
    "synthetic/set_0/datalist.json",
)


def _copy_repository(destination: Path) -> None:
    """Tracked and untracked-but-not-ignored files (what a fresh clone plus the working changes hold)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):  # no git: the same by hand

        def ignore(folder: str, names: list[str]) -> set[str]:
            skipped = {".git", ".venv", "data", "__pycache__", ".pytest_cache"}
            if Path(folder).parent == REPO / "bundles":
                skipped |= set(USER_FOLDERS)
            return skipped & set(names)

        shutil.copytree(REPO, destination, ignore=ignore)
        return
    for name in (name for name in listed.split("\0") if name):
        source = REPO / name
        if source.is_file():  # a deleted but still tracked file is listed too
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def _plant(bundle: Path) -> list[Path]:
    planted = []
    for index, name in enumerate(PLANTED_TORCH):
        path = bundle / name
        path.parent.mkdir(parents=True, exist_ok=True)
        # loads with torch.load(weights_only=True) but into no network (missing keys): a test that uses it fails
        torch.save({"planted_by_test_user_folders_untouched": torch.full((3,), float(index))}, path)
        planted.append(path)
    for name in PLANTED_TEXT:
        path = bundle / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("planted by tests/test_user_folders_untouched.py: not a real file\n")
        planted.append(path)
    return planted


def _state(folders: list[Path]) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file under the folders, by path."""
    state = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                state[str(path)] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return state


@pytest.mark.slow
def test_bundle_tests_leave_user_folders_untouched(tmp_path, request):
    copy = tmp_path / "repo"
    _copy_repository(copy)
    bundles = sorted(p for p in (copy / "bundles").iterdir() if (p / "configs").is_dir())
    assert bundles, "no bundle copied"
    planted = [path for bundle in bundles for path in _plant(bundle)]
    folders = [bundle / folder for bundle in bundles for folder in USER_FOLDERS]
    before = _state(folders)
    assert set(map(str, planted)) <= set(before)

    log = tmp_path / "guard.log"
    env = dict(os.environ, USER_FOLDERS_GUARD="all", USER_FOLDERS_GUARD_LOG=str(log), PYTHONPATH=str(copy))
    env.pop("PYTEST_ADDOPTS", None)
    paths = request.config.user_folder_copy_tests  # tests/conftest.py: the selected tests under the copy's paths
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths]
    proc = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=3600)
    lines = proc.stdout.strip().splitlines()
    request.config.user_folder_copy_result = lines[-1].strip("= ") if lines else f"exit code {proc.returncode}"

    touched = log.read_text() if log.exists() else ""
    assert not touched, f"tests touched a user's bundle folder (in-process):\n{touched}"
    after = _state(folders)
    changed = sorted(p for p in before if after.get(p) != before[p])
    added = sorted(set(after) - set(before))
    assert not changed, f"planted files changed or removed: {changed}"
    assert not added, f"tests wrote into a user's bundle folder: {added}"
    for folder in folders:  # no new (empty) folder either
        present = {str(p) for p in folder.rglob("*") if p.is_dir()} if folder.exists() else set()
        planted_dirs = {str(p.parent) for p in planted if p.parent != folder and folder in p.parents}
        assert present <= planted_dirs, f"tests created folders in {folder}: {sorted(present - planted_dirs)}"
    failed = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    assert proc.returncode == 0, (
        "tests fail in a tree with trained files in bundles/*/models (bogus there, see the "
        "docstring):\n" + "\n".join(failed) + "\n...\n" + proc.stdout[-8000:] + proc.stderr[-3000:]
    )
