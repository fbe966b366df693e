"""Shared fixtures: the repository root and one tiny default dataset per test session."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A small copy of every default dataset (same layouts as `tools/make_data`), written once per session."""
    from common.data import write_default_data

    out = tmp_path_factory.mktemp("default_data")
    write_default_data(out, seed=0, small=True)
    return out


def pytest_configure(config):
    # Tests run tiny networks on a 2-core machine, often beside torchrun subprocesses: one intra-op thread is
    # faster there (tiny convs with 2 contended threads ran ~100x slower) and deterministic. Subprocesses inherit it.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
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
