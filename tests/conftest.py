"""Shared fixtures: the repository root and one tiny default dataset per test session; the guard that keeps the
bundle tests out of a user's ``bundles/*/models``, ``outputs`` and ``eval`` folders."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# a user's folders in every bundle (the main job, tools/quickstart.sh, trains into models/ and writes outputs/ and
# eval/ there), the tuple tools.verify_bundles checks configs against: no test may open, create or remove anything
# in them (tests work on temp ckpt_dir/output_dir).
from tools.verify_bundles import USER_FOLDERS  # noqa: E402 (after the repository root joins sys.path)

#: tests guarded by default (they run bundles); USER_FOLDERS_GUARD=all guards every test (see
#: tests/test_user_folders_untouched.py)
GUARDED_TESTS = (
    "tests/bundles/",
    "tests/dist_scripts/",
    "tests/tools/",
    "tests/test_monailabel_driver.py",
)
_GUARDED_EVENTS = frozenset({"open", "os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.truncate", "shutil.rmtree"})


class UserFolderAccess(PermissionError):
    """A test touched a user's bundle folder (``bundles/<name>/{models,outputs,eval}``)."""


class _UserFolderGuard:
    """An audit hook (``sys.addaudithook``) that refuses, in this process, every open/mkdir/rename/remove of a path
    under a user folder of ``bundles/*`` while ``active``. Subprocesses (torchrun, ``monai.bundle`` command lines)
    are covered by tests/test_user_folders_untouched.py, which runs the tests against a tree with bogus files there.
    """

    def __init__(self, bundles_dir: Path) -> None:
        self.prefixes = tuple(
            os.path.join(str(bundle), folder) for bundle in sorted(bundles_dir.glob("*")) for folder in USER_FOLDERS
        )
        self.active = False
        self.log_file = os.environ.get("USER_FOLDERS_GUARD_LOG")
        self.touched: list[str] = []

    def _guarded(self, path: object) -> str | None:
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        elif isinstance(path, os.PathLike):
            path = os.fspath(path)
        if not isinstance(path, str):
            return None  # a file descriptor
        full = os.path.abspath(path)
        if any(full == prefix or full.startswith(prefix + os.sep) for prefix in self.prefixes):
            return full
        return None

    def __call__(self, event: str, args: tuple) -> None:
        if not self.active or event not in _GUARDED_EVENTS or not args:
            return
        paths = args[:2] if event == "os.rename" else args[:1]
        for path in paths:
            full = self._guarded(path)
            if full is None:
                continue
            self.active = False  # the log write below is audited too
            try:
                self.touched.append(f"{event} {full}")
                if self.log_file:
                    with open(self.log_file, "a") as log:
                        log.write(f"{event} {full}\n")
            finally:
                self.active = True
            raise UserFolderAccess(
                f"test isolation: {event} of {full}, a user's bundle folder ({'/'.join(USER_FOLDERS)}). Run the "
                "bundle on a copy or with temporary ckpt_dir/output_dir overrides."
            )


USER_FOLDER_GUARD = _UserFolderGuard(REPO_ROOT / "bundles")
sys.addaudithook(USER_FOLDER_GUARD)

#: the audit events of a process start: a subprocess, a shell command, a spawn, an exec, a fork
_PROCESS_EVENTS = frozenset({"subprocess.Popen", "os.system", "os.posix_spawn", "os.spawn", "os.exec", "os.fork"})


class ProcessStarted(RuntimeError):
    """A test marked ``in_process`` started a process."""


class _ProcessGuard:
    """An audit hook that refuses every process start while ``active`` (during a test marked ``in_process``): such a
    bundle test runs in the main session, where only this process is guarded against a user's folders (a process it
    started would not be), so the mark must be true."""

    def __init__(self) -> None:
        self.active = False

    def __call__(self, event: str, args: tuple) -> None:
        if self.active and event in _PROCESS_EVENTS:
            raise ProcessStarted(
                f"{event} {args[:2]!r} in a test marked `in_process`: a test that starts processes runs in the "
                "user-folders copy (tests/test_user_folders_untouched.py); remove its `in_process` mark."
            )


PROCESS_GUARD = _ProcessGuard()
sys.addaudithook(PROCESS_GUARD)


#: the test that runs the bundle tests in a copy of the tree holding bogus trained files
COPY_TEST = "tests/test_user_folders_untouched.py::test_bundle_tests_leave_user_folders_untouched"
#: what that copy runs by default; ``USER_FOLDERS_TEST_PATHS`` (space-separated) names others
COPY_TEST_PATHS = ("tests/bundles", "tests/test_monailabel_driver.py")


def _relative(item: pytest.Item) -> str:
    path = Path(str(item.fspath)).resolve()
    return path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else str(path)


@pytest.hookimpl(trylast=True)  # after -k / -m have deselected theirs
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run every bundle test once. When this session also runs :data:`COPY_TEST`, the selected tests under its paths
    are deselected here and run inside the copy instead (guarded, beside bogus trained files: a test that reads or
    writes a user's folder fails there), so the suite does not run them twice; the copy test gets their node ids in
    ``config.user_folder_copy_tests`` (its default paths when none were selected). Tests marked ``in_place`` or
    ``in_process`` stay. The copy test is moved last: the copy's run starts with the session
    (:func:`pytest_runtestloop`) and the test waits for it, so the two halves of the suite run at the same time."""
    paths = tuple(os.environ.get("USER_FOLDERS_TEST_PATHS", " ".join(COPY_TEST_PATHS)).split())
    # a test marked in_place needs the repository itself (e.g. its git history): it stays here, still guarded. One
    # marked in_process starts no process (PROCESS_GUARD fails it if it does), so this process's guard covers all it
    # does: it stays here too, which moves its time from the copy's half (the longer one) to this one.
    in_copy = [
        item
        for item in items
        if _relative(item).startswith(paths) and not any(map(item.get_closest_marker, ("in_place", "in_process")))
    ]
    config.user_folder_copy_tests = [item.nodeid for item in in_copy] or list(paths)
    config.user_folder_copy_paths = paths
    copy_tests = [item for item in items if item.nodeid == COPY_TEST]
    config.user_folder_copy_selected = bool(copy_tests)
    if not copy_tests:
        return
    # the copy test runs last: it waits for the copy's run, which runs beside the other tests (on the second core)
    items[:] = [item for item in items if item.nodeid != COPY_TEST] + copy_tests
    if not in_copy:
        return
    moved = set(map(id, in_copy))
    items[:] = [item for item in items if id(item) not in moved]
    config.hook.pytest_deselected(items=in_copy)
    config.user_folder_copy_count = len(in_copy)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Start :data:`COPY_TEST`'s run of the bundle tests in its copy of the tree now, in the background (a one-thread
    pytest, like this one: the two use the machine's two cores), so that it overlaps the rest of the session."""
    config = session.config
    config.user_folder_copy_run = None
    if getattr(config, "user_folder_copy_selected", False) and not config.option.collectonly:
        from user_folders_copy import CopyRun

        config.user_folder_copy_run = CopyRun(config.user_folder_copy_tests)


def pytest_unconfigure(config: pytest.Config) -> None:
    """An interrupted or failed-fast session does not leave the copy's pytest running, nor its half-run copy (a copy
    whose run ended is kept when its test failed, for the failure's files)."""
    run = getattr(config, "user_folder_copy_run", None)
    if run is not None and run.stop():
        run.remove()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Say where the deselected bundle tests ran, with the copy's own result line."""
    count = getattr(config, "user_folder_copy_count", 0)
    result = getattr(config, "user_folder_copy_result", None)
    if count and result:
        terminalreporter.write_line(
            f"{count} deselected tests (under {' '.join(config.user_folder_copy_paths)}) ran once, inside "
            f"{COPY_TEST}'s copy of the tree: {result}"
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem) -> Iterator[None]:
    """Guard setup, call and teardown (module fixtures included) of the tests that run bundles."""
    relative = _relative(item)
    USER_FOLDER_GUARD.active = os.environ.get("USER_FOLDERS_GUARD") == "all" or relative.startswith(GUARDED_TESTS)
    PROCESS_GUARD.active = item.get_closest_marker("in_process") is not None
    try:
        yield
    finally:
        USER_FOLDER_GUARD.active = PROCESS_GUARD.active = False


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def add_dti_channels(dataset_dir: Path) -> Path:
    """Give every single-channel ``Case_*/DTI.nii.gz`` under ``dataset_dir`` the DTI_LGE_MI format's channels.

    The format is ``(X, Y, 1, C)`` float32 with the ``common.constants.DTI_CHANNELS`` (S0, MD, FA) along the last
    axis. A file already in that format is left alone, so tests pass with the old writer (``(X, Y, 1)``) and the new.
    The stand-in channels: S0 = 1.5 - image, MD = the written image (what the bundles fed before), FA = 1 - image
    clipped to [0, 1]. Returns ``dataset_dir``.
    """
    import nibabel as nib
    import numpy as np
    from common.constants import DTI_CHANNELS

    for path in sorted(Path(dataset_dir).glob("**/Case_*/DTI.nii.gz")):
        image = nib.load(path)
        if len(image.shape) == 4:
            continue
        md = np.asarray(image.dataobj, dtype=np.float32).reshape(*image.shape[:2], -1)
        maps = {"S0": 1.5 - md, "MD": md, "FA": np.clip(1.0 - md, 0.0, 1.0)}
        data = np.stack([maps[name] for name in DTI_CHANNELS], axis=-1).astype(np.float32)
        nib.save(nib.Nifti1Image(data, image.affine), path)
    return Path(dataset_dir)


def link_as_mscmrseg_release(flat: Path, release: Path) -> Path:
    """Lay the flat MS-CMRSeg files of ``flat`` out as the 2019 release does, as symbolic links: images in
    ``release/c0t2lge``, bSSFP labels in ``release/c0gt``, LGE labels in ``release/lgegt``. Returns ``release``."""
    for sub in ("c0t2lge", "c0gt", "lgegt"):
        (release / sub).mkdir(parents=True)
    for path in sorted(Path(flat).glob("*.nii.gz")):
        sub = "c0t2lge" if "_manual" not in path.name else "c0gt" if "_C0_" in path.name else "lgegt"
        (release / sub / path.name).symlink_to(path)
    return release


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A small copy of every default dataset (same layouts as `tools/make_data`), written once per session; the
    DTI files in the DTI_LGE_MI format's ``(X, Y, 1, channels)`` (:func:`add_dti_channels`)."""
    from common.data import write_default_data

    out = tmp_path_factory.mktemp("default_data")
    write_default_data(out, seed=0, small=True)
    add_dti_channels(out / "DTI_LGE_MI")
    return out


def pytest_configure(config):
    # Tests run tiny networks on a 2-core machine, often beside torchrun subprocesses: one intra-op thread is
    # faster there (tiny convs with 2 contended threads ran ~100x slower) and deterministic. Subprocesses inherit it.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # Inference configs switch a process whose COMMON_MALLOC is unset to malloc's `heap` mode (measured faster for
    # their large decoded maps); the suite's one long process, and what it starts, keep the default mode instead.
    # tests/test_allocator.py checks the configs' step in its own processes.
    os.environ.setdefault("COMMON_MALLOC", "threshold")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def forget_bundle_scripts() -> None:
    """Every bundle has a top-level package named `scripts`; drop the cached one so that the next bundle run
    imports its own (MONAI Label does the same between bundles)."""
    for name in [m for m in sys.modules if m == "scripts" or m.startswith("scripts.")]:
        del sys.modules[name]
    bundles = str(REPO_ROOT / "bundles")
    sys.path[:] = [p for p in sys.path if not os.path.abspath(p).startswith(bundles)]


@pytest.fixture(autouse=True, scope="module")
def _forget_bundle_scripts_per_module():
    forget_bundle_scripts()  # before module-scoped fixtures that run a bundle


@pytest.fixture(autouse=True)
def _forget_bundle_scripts():
    forget_bundle_scripts()


@pytest.fixture(autouse=True)
def _session_thread_count() -> Iterator[None]:
    """Every test starts and leaves with the session's intra-op thread count (``pytest_configure``): code under test
    that sets its own (a peer step's ``threads``) would otherwise leave 2 threads to every later in-process test,
    which then ran up to 14x slower beside other work (``pytest tests/bundles`` beside a benchmark: PSCGAN's resume
    tests 74 s instead of 5 s)."""
    threads = int(os.environ["OMP_NUM_THREADS"])
    torch.set_num_threads(threads)  # also undoes a module fixture's change, made before this fixture's setup
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _session_malloc_mode() -> Iterator[None]:
    """Every test leaves the session's malloc mode (``common.allocator``) as it found it: a config or peer step run in
    this process may switch it to ``heap`` (SwinSSegNet's train.json does), which never hands memory back."""
    from common.allocator import applied_mode, reuse_freed_memory

    mode = applied_mode()
    yield
    if applied_mode() != mode:
        reuse_freed_memory(mode)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread for the test (``pytestmark = pytest.mark.usefixtures("one_thread")``): tiny convolutions
    are ~100x slower with 2 threads on a busy 2-core machine; the count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
