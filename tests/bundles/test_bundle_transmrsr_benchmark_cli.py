"""TransMRSR's benchmark command line: what the table's note prints as its command must run."""

from __future__ import annotations

from pathlib import Path

from bundle_test_utils import bundle_scripts

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "brain_mri_super_resolution_transmrsr"


def test_benchmark_command_line_passes_variants_and_scales_on(monkeypatch):
    """The table's note repeats ``--variants``/``--scales``: the command line must accept and forward them."""
    with bundle_scripts(BUNDLE):
        import scripts.benchmark as benchmark

        calls = []
        monkeypatch.setattr(benchmark, "run", lambda *a, **k: calls.append((a, k)))
        benchmark.main(out="x", quick=True, seeds="0", variants="TransMRSR", scales="4")
        benchmark.main(out="y")
    assert calls[0][1] == dict(quick=True, seeds="0", fresh=False, variants="TransMRSR", scales="4")
    assert calls[1][1]["variants"] is None and calls[1][1]["scales"] == "4,8"  # every row by default
