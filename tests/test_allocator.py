"""common.allocator: `import common` makes glibc's malloc take large buffers from the heap and keep them there when
freed (instead of mapping them anew and faulting them in every step), with bit-equal results; COMMON_MALLOC chooses
the mode. (Counting page faults would be the direct check, but on this machine's VM even reused heap pages are
sometimes faulted in again, so the tests check where malloc puts a buffer.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt (Linux)")

#: the child processes' probe: ``mapped_bytes()``, the bytes malloc holds in chunks mapped on their own (glibc's
#: mallinfo2) rather than in the heap, where a freed buffer stays for the next step
MALLINFO = """
import ctypes, ctypes.util
class MallInfo2(ctypes.Structure):
    names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
    _fields_ = [(name, ctypes.c_size_t) for name in names.split()]
_mallinfo2 = ctypes.CDLL(ctypes.util.find_library("c")).mallinfo2
_mallinfo2.restype = MallInfo2
def mapped_bytes():
    return _mallinfo2().hblkhd
"""

#: allocate a tensor of argv[1] MiB and print whether malloc mapped it on its own
MAPPED = MALLINFO + """
import json, sys, torch
import common
before = mapped_bytes()
a = torch.empty(int(sys.argv[1]) * 1024 * 1024 // 4, dtype=torch.float32)
print(json.dumps(mapped_bytes() - before >= a.numel() * 4))
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


def _run(code: str, mode: str | None, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("COMMON_MALLOC", None)
    if mode is not None:
        env["COMMON_MALLOC"] = mode
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120)


def _output(code: str, mode: str | None, *args: str) -> str:
    proc = _run(code, mode, *args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


def _mapped(mode: str | None, mib: int) -> bool:
    return json.loads(_output(MAPPED, mode, str(mib)))


@LINUX
def test_the_default_mode_takes_a_16_mib_buffer_from_the_heap_where_glibc_would_map_it():
    assert _mapped("defaults", 16)  # glibc: mapped, unmapped when freed, faulted in again next time
    assert not _mapped(None, 16)  # threshold, the default: from the heap, kept there when freed


@LINUX
def test_heap_mode_takes_buffers_above_the_mmap_ceiling_from_the_heap_too():
    assert _mapped("threshold", 64)  # above glibc's 32 MiB ceiling: still mapped
    assert not _mapped("heap", 64)


def test_training_steps_give_bit_equal_weights_in_every_mode():
    assert len({_output(STEPS, mode) for mode in ("defaults", "threshold", "heap")}) == 1


def test_an_unknown_mode_stops_the_import_naming_the_variable_and_the_choices():
    proc = _run("import common", "fast")
    assert proc.returncode != 0 and "COMMON_MALLOC='fast'" in proc.stderr and "threshold, heap, defaults" in proc.stderr


def test_it_reports_whether_it_applied():
    from common.allocator import reuse_freed_memory

    assert reuse_freed_memory("defaults") is False
    assert reuse_freed_memory("threshold") is sys.platform.startswith("linux")


@LINUX
def test_the_applied_mode_is_the_last_one_set_and_defaults_restores_nothing():
    code = """
import common, common.allocator as a
modes = [a.applied_mode()]
a.reuse_freed_memory("heap"); modes.append(a.applied_mode())
a.reuse_freed_memory("defaults"); modes.append(a.applied_mode())
print(" ".join(modes))
"""
    assert _output(code, None) == "threshold heap heap"
    assert _output(code, "defaults") == "defaults heap heap"


@LINUX
def test_threshold_after_heap_maps_large_buffers_again():
    code = MAPPED.replace(
        "import common\n", "import common, common.allocator as a\na.reuse_freed_memory('threshold')\n"
    )
    assert _output(code, "heap", "64") == "true"  # heap's zero mapped chunks undone


#: the ``initialize`` steps that set the allocator of each config in argv[2:] (bundle root argv[1]), run alone, first
#: without COMMON_MALLOC, then with COMMON_MALLOC=threshold (a fresh parse, in the same process: ``threshold`` undoes
#: ``heap``); each time the mode and whether a 96 MiB buffer is mapped (the default mode's ceiling is 32 MiB; heap:
#: the configs' choice for large buffers; larger than the 64 MiB top pad, which the heap keeps free after growing)
CONFIG_STEPS = MALLINFO + """
import json, os, sys, torch
import common.allocator
from monai.bundle import ConfigParser
results, kept = {}, []  # buffers kept alive: a freed heap chunk would serve the next one
for config in sys.argv[2:]:
    for env in (None, "threshold"):
        os.environ.pop("COMMON_MALLOC", None) if env is None else os.environ.update(COMMON_MALLOC=env)
        parser = ConfigParser()
        parser.read_config(config)
        parser["bundle_root"] = sys.argv[1]
        steps = [i for i, step in enumerate(parser["initialize"]) if "reuse_freed_memory" in str(step)]
        for i in steps:
            parser.get_parsed_content(f"initialize#{i}")
        before = mapped_bytes()
        a = torch.empty(96 * 1024 * 1024 // 4, dtype=torch.float32)
        mapped = mapped_bytes() - before >= a.numel() * 4
        kept.append(a)
        results.setdefault(os.path.basename(config), []).append([len(steps), common.allocator.applied_mode(), mapped])
print(json.dumps(results))
"""
#: bundle -> its configs with a ``malloc`` key
SETS_MALLOC = {
    bundle.name: configs
    for bundle in sorted((REPO / "bundles").iterdir())
    if (configs := sorted(p.name for p in bundle.glob("configs/*.json") if "malloc" in json.loads(p.read_text())))
}


@LINUX
@pytest.mark.parametrize("bundle", sorted(SETS_MALLOC))
def test_a_config_with_a_malloc_key_runs_in_heap_mode_unless_common_malloc_says_otherwise(bundle):
    root = REPO / "bundles" / bundle
    configs = SETS_MALLOC[bundle]
    result = json.loads(_output(CONFIG_STEPS, None, str(root), *(str(root / "configs" / c) for c in configs)))
    assert result == {config: [[1, "heap", False], [1, "threshold", True]] for config in configs}


def test_the_configs_that_measured_a_gain_set_the_malloc_key():
    assert "inference.json" in SETS_MALLOC["lge_cardiac_segmentation_munit"]
    assert {"inference.json", "train.json"} <= set(SETS_MALLOC["lge_mi_sr_segmentation"])
