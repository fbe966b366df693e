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


@pytest.fixture(autouse=True)
def _quiet_threads(monkeypatch):
    # tests run on 2 cores: keep intra-op threads bounded and deterministic
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))
