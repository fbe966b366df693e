"""Keep freed memory for reuse instead of handing it back to the operating system (glibc's malloc, in process).

A training step frees and allocates the same large activation buffers every iteration. With glibc's defaults a
buffer above the mmap threshold (128 KiB at start, at most 32 MiB) is a fresh ``mmap`` each time and is unmapped when
freed, and the top of the heap is trimmed whenever 128 KiB are free there, so every step faults the same pages in
again and the kernel zero-fills them: a first-paper benchmark run spent about 20 % of its CPU time in the kernel
(1125 s system of 5730 s, 561 million minor page faults). :func:`reuse_freed_memory` turns malloc's mmap use off and
stops trimming (as ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=...`` would, but from inside the process, so that a
``python -m monai.bundle run`` gets it without a wrapper): freed buffers stay in the heap and the next step reuses
them. Values are unchanged (PyTorch aligns every CPU buffer itself; a test checks bit-equal weights after training
steps); the price is a peak RSS that stays at its high-water mark and some fragmentation.

``import common`` applies it once per process (every bundle config, script and tool imports the package);
``COMMON_MALLOC_DEFAULTS=1`` in the environment keeps glibc's defaults (e.g. to measure the difference).
"""

from __future__ import annotations

__all__ = ["reuse_freed_memory", "MALLOC_DEFAULTS_ENV"]

import ctypes
import ctypes.util
import os

#: environment variable that, set to 1/true/yes, keeps glibc's default malloc settings
MALLOC_DEFAULTS_ENV = "COMMON_MALLOC_DEFAULTS"
# mallopt parameter numbers (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def reuse_freed_memory() -> bool:
    """Set glibc's malloc to keep and reuse freed memory (module docstring); calling it again is harmless.

    Returns:
        True when the settings were applied; False on a C library without ``mallopt`` (macOS, musl) or when
        ``COMMON_MALLOC_DEFAULTS`` is set.
    """
    if os.environ.get(MALLOC_DEFAULTS_ENV, "").strip().lower() in ("1", "true", "yes"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # no mmap for any size (large buffers come from the heap and return to it), and never trim the heap's top
    return mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
