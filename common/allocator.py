"""Keep freed memory for reuse instead of handing it back to the operating system (glibc's malloc, in process).

A training step frees and allocates the same large activation buffers every iteration. With glibc's defaults a
buffer above the mmap threshold (128 KiB at start, rising with what is freed) is a fresh ``mmap`` each time and is
unmapped when freed, and the top of the heap is trimmed whenever 128 KiB are free there, so every step faults the
same pages in again and the kernel zero-fills them: a first-paper benchmark run spent about 20 % of its CPU time in
the kernel (1125 s system of 5730 s, 561 million minor page faults). :func:`reuse_freed_memory` sets malloc from
inside the process (as the ``MALLOC_*_`` environment variables would, but a ``python -m monai.bundle run`` gets it
without a wrapper), in one of three modes, chosen by ``COMMON_MALLOC`` in the environment:

- ``threshold`` (default): buffers up to 32 MiB (glibc's largest mmap threshold) come from the heap and return to
  it, the heap is never trimmed, and it grows 64 MiB at a time; larger buffers are still mapped and unmapped. Peak
  memory close to glibc's defaults (measured: 0.3-3 % more peak RSS).
- ``heap``: no mmap at all, every buffer reuses the heap: fastest, but fragmentation raises the peak RSS (measured
  11-34 % more).
- ``defaults``: glibc's own settings.

The mode can be changed later in the process (``reuse_freed_memory("heap")``, e.g. a config's ``initialize`` step:
inference of large decoded maps, where a batch's buffers exceed the 32 MiB ceiling, was measured faster in ``heap``
mode), in either direction between ``threshold`` and ``heap``; ``defaults`` restores nothing. Measured in the
repository's README (Benchmarks: memory allocator). Values are unchanged in every mode (PyTorch aligns every CPU
buffer itself; a test checks bit-equal weights after training steps).
``import common`` applies it once per process (every bundle config, script and tool imports the package).
"""

from __future__ import annotations

__all__ = ["MALLOC_MODES", "MALLOC_MODE_ENV", "reuse_freed_memory", "applied_mode"]

import ctypes
import ctypes.util
import functools
import os
from typing import Any

#: environment variable naming the mode
MALLOC_MODE_ENV = "COMMON_MALLOC"
#: the modes (module docstring); the first is the default
MALLOC_MODES = ("threshold", "heap", "defaults")
# mallopt parameter numbers (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -2, -3, -4
_NEVER_TRIM = 2**31 - 1
#: glibc's ceiling for the mmap threshold on 64-bit (HEAP_MAX_SIZE / 2)
_MAX_MMAP_THRESHOLD = 32 << 20
#: glibc's default number of mapped chunks (DEFAULT_MMAP_MAX): ``threshold`` sets it back after ``heap`` zeroed it
_DEFAULT_MMAP_MAX = 65536
_SETTINGS = {
    "threshold": (
        (_M_MMAP_MAX, _DEFAULT_MMAP_MAX),
        (_M_MMAP_THRESHOLD, _MAX_MMAP_THRESHOLD),
        (_M_TRIM_THRESHOLD, _NEVER_TRIM),
        (_M_TOP_PAD, 64 << 20),
    ),
    "heap": ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER_TRIM)),
    "defaults": (),
}


_applied: list[str] = []  # the modes this process applied, in order


@functools.lru_cache(maxsize=1)
def _mallopt() -> Any:
    """glibc's ``mallopt`` (``None`` without it), looked up once: ``find_library`` runs a subprocess each call."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def applied_mode() -> str:
    """The mode this process's malloc runs in: the last one :func:`reuse_freed_memory` applied (``import common``
    applies ``COMMON_MALLOC``'s; an inference config may switch to ``heap`` later); ``defaults`` before any."""
    return _applied[-1] if _applied else "defaults"


def reuse_freed_memory(mode: str | None = None) -> bool:
    """Set glibc's malloc to ``mode`` (module docstring; ``None``: ``COMMON_MALLOC``, else ``threshold``).

    Returns:
        True when settings were applied; False for ``defaults`` or on a C library without ``mallopt`` (macOS, musl).

    Raises:
        ValueError: an unknown mode, naming the choices and the environment variable.
    """
    mode = (mode if mode is not None else os.environ.get(MALLOC_MODE_ENV) or MALLOC_MODES[0]).strip().lower()
    if mode not in _SETTINGS:
        raise ValueError(f"{MALLOC_MODE_ENV}={mode!r} is not a malloc mode; choose one of {', '.join(MALLOC_MODES)}.")
    if not _SETTINGS[mode]:
        return False  # nothing to set: glibc's defaults until another mode is applied (and not restored after one)
    mallopt = _mallopt()
    if mallopt is None:
        return False
    applied = all(mallopt(parameter, value) == 1 for parameter, value in _SETTINGS[mode])
    if applied:
        _applied.append(mode)
    return applied
