"""common.allocator: `import common` makes glibc's malloc keep freed buffers, so a training step's buffers are reused
instead of faulted in again, with bit-equal results; COMMON_MALLOC_DEFAULTS=1 keeps the defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: allocate, touch and free a 64 MiB tensor, then count the minor page faults of doing it again (not numpy: it asks
#: for huge pages itself)
REFAULT = """
import json, resource, torch
import common
def touch():
    a = torch.empty(16 * 1024 * 1024, dtype=torch.float32)
    a.fill_(1.0)
    del a
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
touch()
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before))
"""

#: a few Adam steps of a conv net with 8 MiB activations: a hash of the weights
STEPS = """
import hashlib, torch
import common
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(16, 1, 3, padding=1))
opt = torch.optim.Adam(net.parameters(), 1e-3)
x = torch.rand(8, 1, 128, 128)
for _ in range(3):
    opt.zero_grad()
    torch.nn.functional.l1_loss(net(x), x.flip(-1)).backward()
    opt.step()
print(hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in net.parameters())).hexdigest())
"""


def _run(code: str, defaults: bool) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("COMMON_MALLOC_DEFAULTS", None)
    if defaults:
        env["COMMON_MALLOC_DEFAULTS"] = "1"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt (Linux)")
def test_a_freed_buffer_is_reused_instead_of_faulted_in_again():
    reused, default = json.loads(_run(REFAULT, defaults=False)), json.loads(_run(REFAULT, defaults=True))
    pages = 64 * 1024 * 1024 // os.sysconf("SC_PAGE_SIZE")
    assert default > 0.9 * pages, default  # glibc's defaults: a fresh mmap, every page faulted in again
    assert reused < 0.05 * pages, reused


def test_training_steps_give_bit_equal_weights_with_and_without_it():
    assert _run(STEPS, defaults=False) == _run(STEPS, defaults=True)


def test_it_reports_whether_it_applied():
    from common.allocator import MALLOC_DEFAULTS_ENV, reuse_freed_memory

    os.environ[MALLOC_DEFAULTS_ENV] = "1"
    try:
        assert reuse_freed_memory() is False
    finally:
        del os.environ[MALLOC_DEFAULTS_ENV]
    assert reuse_freed_memory() is sys.platform.startswith("linux")
