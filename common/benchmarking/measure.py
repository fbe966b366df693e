"""Measurement helpers: FLOPs per step, a conv ceiling, peak memory, wall time, Markdown/JSON tables.

Benchmarks measure; tests never assert timings. Every number in a benchmark table is produced in the same run as
its baseline (STYLE.md, "numbers no one can reproduce").
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import time
from typing import Callable, Sequence

import torch

__all__ = [
    "count_flops",
    "conv_ceiling_gflops",
    "peak_rss_mb",
    "PeakRSSWindow",
    "machine_summary",
    "cpu_model",
    "write_table",
    "Timer",
]


class _GlobalOnly:
    """A stand-in for ``FlopCounterMode``'s module tracker that attributes every FLOP to "Global" only.

    Why: the tracker hooks every module's forward and registers gradient hooks on its inputs and outputs; under
    activation recomputation (``torch.utils.checkpoint``) the recomputed forward in the backward pass is tracked
    again and those hooks keep the recomputed tensors alive, so the counted step held about 1.2 GB more than the
    step itself (TransMRSR at 256 px, batch 1) and the FLOP count, not training, set the process's peak memory.
    Only the total is read here; the per-module table is not needed.
    """

    parents = frozenset({"Global"})

    def __enter__(self) -> _GlobalOnly:
        return self

    def __exit__(self, *args: object) -> None:
        return None


def count_flops(step: Callable[[], object]) -> float:
    """FLOPs of one call of `step` (forward and backward if it runs them), from `torch.utils.flop_counter`'s
    registry, without its per-module tracking (:class:`_GlobalOnly`): the same total, no memory of its own."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    if hasattr(counter, "mod_tracker"):  # torch's private layout (2.13): otherwise count with the tracker
        counter.mod_tracker = _GlobalOnly()
    with counter:
        step()
    return float(counter.get_total_flops())


def conv_ceiling_gflops(channels: int = 64, size: int = 64, batch: int = 4, repeats: int = 5) -> float:
    """Achieved GFLOP/s of a plain 3x3 float32 conv (forward + backward) on this machine, now.

    The achieved rate of a model step divided by this gives its share of what the machine can do on convs.
    """
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1)
    x = torch.randn(batch, channels, size, size, requires_grad=True)

    def step() -> None:
        conv(x).sum().backward()

    flops = count_flops(step)
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    seconds = (time.perf_counter() - start) / repeats
    return flops / seconds / 1e9


#: the process's peak RSS (MiB) before :class:`PeakRSSWindow` last reset the kernel's mark, which also lowers what
#: ``getrusage`` reports: :func:`peak_rss_mb` keeps the lifetime peak with it
_PEAK_BEFORE_RESETS_MB = 0.0


def peak_rss_mb() -> float:
    """Peak resident memory of this process (and its finished children) in MiB, over its whole life."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own / 1024.0, children / 1024.0, _PEAK_BEFORE_RESETS_MB)


def _high_water_mark_mb() -> float | None:
    """``VmHWM`` of ``/proc/self/status`` in MiB (Linux), else None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


class PeakRSSWindow:
    """Peak resident memory of this process within a ``with`` block, in MiB (``peak_mb`` after the block).

    :func:`peak_rss_mb` is the process's high-water mark since it started, so in a benchmark that measures several
    steps one after another every row would read the largest step's memory (or a training's). On Linux the block
    starts by resetting the mark to the current RSS (``/proc/self/clear_refs`` "5", after a garbage collection), so
    ``peak_mb`` is the block's own peak: the memory the block needed plus what the process already held. Where that
    is not possible ``reset`` is False and ``peak_mb`` is the process peak so far (say so in the row). The reset
    also lowers ``getrusage``'s maximum: read the process's lifetime peak with :func:`peak_rss_mb`, which keeps it.

    Examples::

        with PeakRSSWindow() as window:
            run_step()
        row["peak_rss_mb"] = window.peak_mb
    """

    def __init__(self) -> None:
        self.reset = False
        self.peak_mb: float | None = None

    def __enter__(self) -> "PeakRSSWindow":
        global _PEAK_BEFORE_RESETS_MB
        gc.collect()
        _PEAK_BEFORE_RESETS_MB = peak_rss_mb()  # the reset lowers getrusage's maximum too
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.reset = _high_water_mark_mb() is not None
        except OSError:
            self.reset = False
        return self

    def __exit__(self, *exc: object) -> None:
        mark = _high_water_mark_mb() if self.reset else None
        self.peak_mb = mark if mark is not None else peak_rss_mb()


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what :mod:`platform` knows (the architecture)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name") and ":" in line:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_summary() -> str:
    """One line naming the machine the numbers were measured on: the CPU model and the instruction set torch's CPU
    kernels dispatch to (trained weights depend on it, as on the thread count: float sums in another order), cores,
    torch, threads, device."""
    device = "CUDA " + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    return (
        f"{cpu_model()} ({platform.machine()}, torch kernels {torch.backends.cpu.get_cpu_capability()}), "
        f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, {device}"
    )


class Timer:
    """Context manager measuring wall seconds: `with Timer() as t: ...; t.seconds`."""

    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def write_table(rows: Sequence[dict], out_dir: str, name: str = "benchmark", title: str = "", note: str = "") -> str:
    """Write `rows` as `<out_dir>/<name>.md` (Markdown table) and `<name>.json`; return the Markdown text."""
    os.makedirs(out_dir, exist_ok=True)
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    lines = [f"# {title}" if title else "", note, ""] if (title or note) else []
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, f"{name}.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump({"title": title, "note": note, "machine": machine_summary(), "rows": list(rows)}, f, indent=2)
    return text
