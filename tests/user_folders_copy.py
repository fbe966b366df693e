"""A copy of the repository with bogus trained files in every bundle's user folders, and a pytest run of it.

``tools/quickstart.sh`` trains into ``bundles/*/models/`` (``model.pt``, ``segmentor.pt``, ``model_ssl.pt`` and the
``*_state/`` resume checkpoints) and writes ``outputs/`` and ``eval/``. :class:`CopyRun` copies the repository
(tracked and untracked, not ignored, files: no ``.venv``, ``data`` or trained files) into a temporary folder, plants
bogus files there the way the quickstart lays them out (state dicts that load into no network, a resume checkpoint
newer than any a test writes), records every user-folder file's bytes and mtime, and starts a fresh pytest of the
copy with ``USER_FOLDERS_GUARD=all`` (tests/conftest.py: any open/mkdir/remove under those folders in the test
process raises) in the background. tests/conftest.py starts it when the test session starts, so that it runs on the
second core while the main process runs the other tests; tests/test_user_folders_untouched.py waits for it and
checks what it left.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from conftest import REPO_ROOT, USER_FOLDERS

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
#: seconds the copy's pytest may run, counted from its start
TIMEOUT_S = 3600


def copy_repository(destination: Path) -> None:
    """Tracked and untracked-but-not-ignored files (what a fresh clone plus the working changes hold)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):  # no git: the same by hand

        def ignore(folder: str, names: list[str]) -> set[str]:
            skipped = {".git", ".venv", "data", "__pycache__", ".pytest_cache"}
            if Path(folder).parent == REPO_ROOT / "bundles":
                skipped |= set(USER_FOLDERS)
            return skipped & set(names)

        shutil.copytree(REPO_ROOT, destination, ignore=ignore)
        return
    for name in (name for name in listed.split("\0") if name):
        source = REPO_ROOT / name
        if source.is_file():  # a deleted but still tracked file is listed too
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def plant(bundle: Path) -> list[Path]:
    """Bogus files in ``bundle``'s user folders, where the quickstart writes its own."""
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


def file_state(folders: list[Path]) -> dict[str, tuple[str, int]]:
    """sha256 and mtime of every file under the folders, by path."""
    state = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                state[str(path)] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return state


class CopyRun:
    """The copy with planted files, and its pytest of ``test_ids`` running in the background.

    Attributes:
        root: the temporary folder (the copy in ``root/repo``, the child's log and guard log, its pytest basetemp).
        planted: the planted files; ``folders``: every bundle's user folders in the copy; ``before``: their
            :func:`file_state` before the run.
    """

    def __init__(self, test_ids: list[str]) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="user_folders_copy_"))
        self.copy = self.root / "repo"
        copy_repository(self.copy)
        bundles = sorted(p for p in (self.copy / "bundles").iterdir() if (p / "configs").is_dir())
        if not bundles:
            raise RuntimeError(f"no bundle copied to {self.copy}")
        self.planted = [path for bundle in bundles for path in plant(bundle)]
        self.folders = [bundle / folder for bundle in bundles for folder in USER_FOLDERS]
        self.before = file_state(self.folders)
        self.guard_log = self.root / "guard.log"
        self.output = self.root / "pytest.log"
        env = dict(os.environ, USER_FOLDERS_GUARD="all", USER_FOLDERS_GUARD_LOG=str(self.guard_log))
        env["PYTHONPATH"] = str(self.copy)
        env.pop("PYTEST_ADDOPTS", None)
        # its own basetemp: two pytest sessions at once must not share (and clean up) one numbered temp root
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={self.root / 'tmp'}"]
        with open(self.output, "w") as output:
            self.process = subprocess.Popen(
                [*command, *test_ids], cwd=self.copy, env=env, stdout=output, stderr=subprocess.STDOUT
            )
        self.started = time.monotonic()

    def wait(self) -> tuple[int, list[str]]:
        """The child's exit code and output lines, once it has ended (killed after :data:`TIMEOUT_S`)."""
        try:
            returncode = self.process.wait(timeout=max(1.0, TIMEOUT_S - (time.monotonic() - self.started)))
        except subprocess.TimeoutExpired:
            self.stop()
            returncode = self.process.returncode
        return returncode, self.output.read_text(errors="replace").strip().splitlines()

    def stop(self) -> bool:
        """Kill the child if it still runs (an interrupted session); returns whether it did."""
        if self.process.poll() is not None:
            return False
        self.process.kill()
        self.process.wait()
        return True

    @staticmethod
    def result_line(returncode: int, lines: list[str]) -> str:
        """pytest's closing summary (e.g. ``1200 passed in 755.01s``) among the output lines, else the exit code."""
        summaries = [
            line.strip("= ")
            for line in lines
            if re.search(r"\b(passed|failed|errors?|no tests ran)\b.* in [0-9.]+s", line)
        ]
        return summaries[-1] if summaries else f"exit code {returncode}"

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
