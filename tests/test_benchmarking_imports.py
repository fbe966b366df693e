"""common.benchmarking imports its names on first use: a process that needs only ``measure`` (tools.benchmark's
worker) does not import MONAI, and every public name is what its submodule defines."""

from __future__ import annotations

import subprocess
import sys

import common.benchmarking as benchmarking
from conftest import REPO_ROOT


def _fresh(code: str) -> str:
    """stdout of ``code`` in a fresh interpreter (this process has imported everything already)."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_the_measure_helpers_import_without_monai_or_scipy_stats():
    """scipy.stats (about 1.5 s here) is imported by the first Wilcoxon p-value, not by the package."""
    code = (
        "import sys\n"
        "from common.benchmarking.measure import machine_summary, peak_rss_mb\n"
        "from common.benchmarking import compare, peak_rss_mb as again\n"
        "print('monai' in sys.modules, 'scipy.stats' in sys.modules, callable(compare), again is peak_rss_mb)\n"
        "from common.benchmarking import wilcoxon_p_value\n"
        "print(round(wilcoxon_p_value([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), 4), 'scipy.stats' in sys.modules)"
    )
    assert _fresh(code) == "False False True True\n0.0312 True"


def test_compare_is_the_function_after_its_submodule_is_imported_again():
    # workflow imports the compare submodule, which binds the module to the package attribute on a first import
    code = (
        "import sys, common.benchmarking.workflow, common.benchmarking.compare\n"
        "from common.benchmarking import compare\n"
        "print(compare is sys.modules['common.benchmarking.compare'].compare, type(compare).__name__)"
    )
    assert _fresh(code) == "True function"


def test_every_public_name_is_its_submodules_object():
    import importlib

    for name, submodule in benchmarking._SUBMODULE.items():
        defined = getattr(importlib.import_module(f"common.benchmarking.{submodule}"), name)
        assert getattr(benchmarking, name) is defined, name
    assert sorted(benchmarking.__all__) == sorted(benchmarking._SUBMODULE)
    assert set(benchmarking.__all__) <= set(dir(benchmarking))
