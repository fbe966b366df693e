"""Our training step timed beside the public reference code's, alternating processes on one machine.

Noise on a shared machine (other jobs, thermal state) drifts over minutes, so one absolute time per side says little.
The two sides run as separate processes, one after the other, round after round (reference, ours, reference, ...);
each round's ratio ``reference median / our median`` is kept, and the median of those ratios is the result. Each
process prints one JSON line last (the reference harnesses in ``shared/peers`` and a bundle's
``scripts/peer_step.py`` both do), with at least ``train_iter_s: {"min", "median", "max"}``; the parent adds the
process's peak RSS and wall time, read from the operating system (``os.wait4``), the same way for both sides.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from common.benchmarking.measure import conv_ceiling_gflops, count_flops

__all__ = [
    "AMP_DTYPES",
    "step_precision",
    "precision_label",
    "step_autocast",
    "trainer_precision",
    "iteration_times",
    "peer_step_result",
    "run_json_process",
    "alternate",
    "ratio_summary",
]

#: a peer step's ``--amp``: the autocast dtype of its GPU step and inference (``off``: float32 throughout)
AMP_DTYPES = {"off": None, "bf16": "bfloat16", "fp16": "float16"}


def step_precision(device: str, flops: bool, amp: str = "off") -> Any:
    """Check a peer step's ``device``, ``flops`` and ``amp`` arguments; the autocast ``torch.dtype`` (None: fp32).

    Raises:
        ValueError: ``amp`` is not a key of :data:`AMP_DTYPES`; ``flops`` with a GPU (the conv ceiling it is
            compared with is a CPU measurement); ``amp`` other than ``off`` on the CPU (the CPU rows are fp32).
    """
    import torch

    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be one of {list(AMP_DTYPES)}, got {amp!r}.")
    kind = torch.device(device).type
    if kind != "cpu" and flops:
        raise ValueError("--flops compares with a conv ceiling measured on the CPU: pass --flops False with a GPU.")
    if amp != "off" and kind != "cuda":
        raise ValueError(f"--amp {amp} is for a CUDA device (--device cuda); the CPU steps run in float32.")
    return None if AMP_DTYPES[amp] is None else getattr(torch, AMP_DTYPES[amp])


def precision_label(device: str, amp: str = "off") -> str:
    """What a peer step's configuration text says of its device and precision ("" on the CPU in float32)."""
    parts = [str(device)] if str(device) != "cpu" else []
    parts += [f"{amp} autocast"] if amp != "off" else []
    return f"; {', '.join(parts)}" if parts else ""


def step_autocast(device: str, dtype: Any) -> Any:
    """``torch.autocast`` on ``device``'s type to ``dtype``, disabled when ``dtype`` is None (a hand-written step's
    or an inference's counterpart of :func:`trainer_precision`)."""
    import torch

    return torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None)


def trainer_precision(dtype: Any, config_id: str | None = None) -> dict[str, Any]:
    """The engine base's ``amp`` and ``amp_kwargs`` arguments for autocast ``dtype`` (None: off); with
    ``config_id`` (e.g. ``"train#trainer"``) as config overrides of that trainer's keys."""
    arguments = {"amp": dtype is not None, "amp_kwargs": {"dtype": dtype} if dtype is not None else None}
    return {f"{config_id}#{key}": value for key, value in arguments.items()} if config_id else arguments


def _stats(values: Sequence[float]) -> dict[str, Any]:
    return {
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "all": [round(v, 4) for v in values],
    }


def _finish_device_work() -> None:
    """Wait for queued GPU work (CUDA runs kernels asynchronously), so that a clock read after a step counts it."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def iteration_times(step: Callable[[], object], n: int = 3, warmup: int = 1, flops: bool = True) -> dict[str, Any]:
    """Time ``n`` calls of ``step`` after ``warmup`` calls, each call on its own and to the end of its GPU work, if
    any; FLOPs of one call and the conv ceiling measured now (``flops=False`` skips both).

    Returns:
        ``train_iter_s`` (min/median/max/all seconds), ``warmup_train_s`` and, with ``flops``, ``train_step_gflop``,
        ``conv_ceiling_gflops`` and ``ceiling_share`` (achieved GFLOP/s at the median over the ceiling).
    """
    if n < 1 or warmup < 0:
        raise ValueError(f"need n >= 1 and warmup >= 0, got n={n}, warmup={warmup}.")
    result: dict[str, Any] = {}
    warm = []
    for _ in range(warmup):
        start = time.perf_counter()
        step()
        _finish_device_work()
        warm.append(time.perf_counter() - start)
    timed = []
    for _ in range(n):
        start = time.perf_counter()
        step()
        _finish_device_work()
        timed.append(time.perf_counter() - start)
    result["train_iter_s"] = _stats(timed)
    result["warmup_train_s"] = [round(v, 4) for v in warm]
    if flops:
        gflop = count_flops(step) / 1e9
        ceiling = conv_ceiling_gflops()
        result.update(
            train_step_gflop=gflop,
            conv_ceiling_gflops=ceiling,
            ceiling_share=gflop / result["train_iter_s"]["median"] / ceiling,
        )
    return result


def inference_times(
    forward: Callable[[Any], object], make_input: Callable[[], Any], n: int = 3, warmup: int = 1
) -> list[float]:
    """Seconds of ``n`` calls ``forward(make_input())`` after ``warmup`` calls, without autograd, each to the end of
    its GPU work, if any; each input is made before its clock starts, so only the forward pass is timed (as the
    reference harnesses time theirs).

    Raises:
        ValueError: if ``n`` < 1 or ``warmup`` < 0.
    """
    import torch

    if n < 1 or warmup < 0:
        raise ValueError(f"need n >= 1 and warmup >= 0, got n={n}, warmup={warmup}.")
    timed = []
    with torch.no_grad():
        for index in range(warmup + n):
            x = make_input()
            _finish_device_work()  # the input's own GPU work is not the forward's
            start = time.perf_counter()
            forward(x)
            _finish_device_work()
            if index >= warmup:
                timed.append(time.perf_counter() - start)
    return timed


def _vm_hwm_kib(pid: int) -> int:
    """The process's peak resident set (``VmHWM``, KiB) from ``/proc``; 0 when it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _wait_with_peak_rss(pid: int, poll_seconds: float = 0.05) -> tuple[int, int, os.struct_rusage]:
    """Wait for child ``pid``; ``(peak RSS KiB, wait status, rusage)``.

    The peak is the child's own ``VmHWM`` (per address space, so it starts afresh at ``exec``), read until it exits:
    ``ru_maxrss`` would not do, because Linux carries the parent's RSS at ``fork`` over the ``exec`` into it (a
    harness started from a large process would look as large). Where ``/proc`` is missing, ``ru_maxrss`` is used.
    ``VmHWM`` is a high-water mark, so only a peak first reached within the last ``poll_seconds`` before the child
    exits can be missed (a training step's peak comes long before the end of its process).
    """
    peak = 0
    while True:
        peak = max(peak, _vm_hwm_kib(pid))
        waited, status, usage = os.wait4(pid, os.WNOHANG)
        if waited == pid:
            return (peak or usage.ru_maxrss), status, usage
        time.sleep(poll_seconds)


def peer_step_result(
    train: dict[str, Any], infer_seconds: Sequence[float], implementation: str, config: str, networks: Mapping[str, Any]
) -> dict[str, Any]:
    """A bundle's ``scripts/peer_step.py`` result: :func:`iteration_times`' ``train`` plus what the reference
    harnesses also print (inference seconds min/median/max, parameter counts per network, threads, torch version)."""
    import torch

    return {
        **train,
        "implementation": implementation,
        "config": config,
        "infer_s": _stats(infer_seconds),
        "params": {name: sum(p.numel() for p in net.parameters()) for name, net in networks.items()},
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def run_json_process(command: Sequence[str], cwd: str | os.PathLike, env: Mapping[str, str] | None = None) -> dict:
    """Run ``command`` in ``cwd``; its last stdout line parsed as JSON, plus ``peak_rss_mb`` and ``wall_s``.

    Raises:
        RuntimeError: with the command and the end of its output when it fails or prints no JSON line last.
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(list(command), cwd=cwd, env=dict(env) if env else None, stdout=out, stderr=err)
        peak_kib, status, usage = _wait_with_peak_rss(process.pid)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    lines = [line for line in stdout.splitlines() if line.strip()]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"`{' '.join(command)}` (in {cwd}) failed ({process.returncode}):\n{stderr[-3000:]}")
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError:
        raise RuntimeError(f"`{' '.join(command)}` did not print a JSON line last:\n{stdout[-2000:]}") from None
    result.update(wall_s=wall, peak_rss_mb=peak_kib / 1024.0)
    return result


def alternate(
    commands: Mapping[str, tuple[Sequence[str], str | os.PathLike]],
    rounds: int = 3,
    env: Mapping[str, str] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, list[dict]]:
    """Run every ``name: (command, cwd)`` once per round, in the given order, for ``rounds`` rounds.

    Returns:
        ``{name: [result of round 1, round 2, ...]}`` (each :func:`run_json_process`'s dict).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}.")
    results: dict[str, list[dict]] = {name: [] for name in commands}
    for round_index in range(rounds):
        for name, (command, cwd) in commands.items():
            result = run_json_process(command, cwd, env)
            results[name].append(result)
            log(
                f"round {round_index + 1}/{rounds} {name}: median step {result['train_iter_s']['median']:.3f} s, "
                f"peak RSS {result['peak_rss_mb']:.0f} MiB"
            )
    return results


def ratio_summary(reference: Sequence[Mapping], ours: Sequence[Mapping], key: str = "train_iter_s") -> dict[str, Any]:
    """Per-round ratio ``reference median / our median`` of ``key`` (> 1: ours is faster) and their median."""
    if len(reference) != len(ours) or not ours:
        raise ValueError(f"need the same number (>= 1) of rounds per side, got {len(reference)} and {len(ours)}.")
    ratios = [r[key]["median"] / o[key]["median"] for r, o in zip(reference, ours)]
    return {
        "ratio_per_round": [round(v, 4) for v in ratios],
        "ratio_median": statistics.median(ratios),
        "reference_median_s": statistics.median(r[key]["median"] for r in reference),
        "ours_median_s": statistics.median(o[key]["median"] for o in ours),
        "reference_peak_rss_mb": max(r["peak_rss_mb"] for r in reference),
        "ours_peak_rss_mb": max(o["peak_rss_mb"] for o in ours),
    }
