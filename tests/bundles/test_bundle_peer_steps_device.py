"""Every bundle's ``scripts/peer_step.py`` takes ``--device`` and ``--amp`` (the GPU rows of issue 17) and refuses,
before building anything, what it cannot measure: FLOPs on a GPU (the ceiling is a CPU measurement), autocast on
the CPU (its rows are float32), an unknown precision; the process's thread count is left as it was. The GPU runs
themselves need a GPU: ``tools/gpu_peer_steps.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from bundle_test_utils import bundle_scripts

REPO = Path(__file__).resolve().parents[2]
BUNDLES = sorted(p.parent.parent for p in (REPO / "bundles").glob("*/scripts/peer_step.py"))


@pytest.mark.parametrize("bundle", BUNDLES, ids=[b.name for b in BUNDLES])
def test_peer_step_refuses_flops_on_a_gpu_autocast_on_the_cpu_and_unknown_precisions(bundle):
    threads = torch.get_num_threads()
    with bundle_scripts(bundle):
        from scripts.peer_step import measure

        with pytest.raises(ValueError, match="pass --flops False with a GPU"):
            measure(n=1, warmup=0, device="cuda", flops=True, threads=threads + 1)
        with pytest.raises(ValueError, match="is for a CUDA device"):
            measure(n=1, warmup=0, flops=False, amp="bf16", threads=threads + 1)
        with pytest.raises(ValueError, match="amp must be one of"):
            measure(n=1, warmup=0, device="cuda", flops=False, amp="fp8", threads=threads + 1)
    # refused before anything changed: REHRSeg's set its --threads first and left them to the tests after it
    assert torch.get_num_threads() == threads


def test_every_bundle_with_a_peer_step_is_checked():
    assert len(BUNDLES) >= 6  # the six bundles of today each time their step beside the public code or a variant
