"""Speed of one training step of a bundle's own network: time, GFLOP and share of a conv ceiling.

The network is the bundle's ``network_def`` parsed with the same overrides as the trained variant
(:func:`common.benchmarking.parse_config_items`), so the speed row times the network the table's scores come from.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Sequence

import nibabel as nib
import numpy as np
import torch
from common.benchmarking.measure import Timer, conv_ceiling_gflops, count_flops, machine_summary, peak_rss_mb
from common.benchmarking.rows import BenchmarkRow

__all__ = ["step_speed", "time_step", "slice_scaling", "slice_scaling_rows", "write_tiled_volume"]


def step_speed(
    network: torch.nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    target: torch.Tensor,
    optimizer: torch.optim.Optimizer | None = None,
    repeats: int = 3,
) -> dict[str, float]:
    """Time one step (zero_grad, forward, loss, backward, optimizer step), after one warm-up step.

    Args:
        network: the module to train (built from the bundle's ``network_def``).
        loss_fn: ``loss_fn(network(inputs), target)``.
        inputs, target: one batch.
        optimizer: defaults to ``AdamW(lr=1e-4)`` over ``network.parameters()``.
        repeats: timed steps (the mean is reported).

    Returns:
        ``step_seconds``, ``gflop_per_step``, ``achieved_gflops``, ``conv_ceiling_gflops``, ``ceiling_share``.
    """
    network.train()
    optimizer = optimizer or torch.optim.AdamW(network.parameters(), lr=1e-4)

    def step() -> None:
        optimizer.zero_grad()
        loss_fn(network(inputs), target).backward()
        optimizer.step()

    return time_step(step, repeats)


def time_step(step: Callable[[], object], repeats: int = 3) -> dict[str, float]:
    """Time ``step`` (any training step: a network's, or a multi-network trainer's iteration) after one warm-up call.

    Returns:
        ``step_seconds`` (the mean of ``repeats`` timed calls), ``gflop_per_step``, ``achieved_gflops``,
        ``conv_ceiling_gflops`` (measured now) and ``ceiling_share``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}.")
    flops = count_flops(step)
    step()
    with Timer() as timer:
        for _ in range(repeats):
            step()
    seconds = timer.seconds / repeats
    ceiling = conv_ceiling_gflops()
    achieved = flops / seconds / 1e9
    return {
        "step_seconds": seconds,
        "gflop_per_step": flops / 1e9,
        "achieved_gflops": achieved,
        "conv_ceiling_gflops": ceiling,
        "ceiling_share": achieved / ceiling,
    }


def slice_scaling(
    run: Callable[[int], object], slice_counts: Sequence[int] = (4, 8, 16), json_path: str | os.PathLike | None = None
) -> dict[str, object]:
    """Wall time of ``run(n)`` (inference on a volume of ``n`` slices) for each ``n``, after one warm-up
    ``run(slice_counts[0])``; the least-squares line ``seconds = intercept + per_slice * n`` through them. With
    ``json_path`` the result is also written there as JSON, with the machine it ran on (``machine_summary``).

    Returns:
        ``seconds`` (one per count), ``per_slice``, ``intercept`` and ``max_relative_residual`` (the largest
        ``|measured - line| / measured``: small when the cost is linear in the slices).
    """
    counts = [int(n) for n in slice_counts]
    if len(counts) < 2 or min(counts) < 1:
        raise ValueError(f"need at least 2 slice counts >= 1, got {list(slice_counts)}.")
    run(counts[0])
    seconds = []
    for n in counts:
        with Timer() as timer:
            run(n)
        seconds.append(timer.seconds)
    per_slice, intercept = np.polyfit(counts, seconds, 1)
    line = intercept + per_slice * np.asarray(counts, float)
    residual = float(np.max(np.abs(np.asarray(seconds) - line) / np.asarray(seconds)))
    result = {
        "slice_counts": counts,
        "seconds": seconds,
        "per_slice": float(per_slice),
        "intercept": float(intercept),
        "max_relative_residual": residual,
    }
    if json_path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, "w") as handle:
            json.dump({**result, "machine": machine_summary()}, handle, indent=2)
    return result


def write_tiled_volume(path: str, n: int, axis: int, out_path: str) -> str:
    """The NIfTI volume at ``path`` repeated cyclically along ``axis`` to ``n`` slices (affine and header kept),
    written at ``out_path`` (folders made): the input of a ``slice_scaling`` run with ``n`` slices. ``axis`` equal to
    the image's number of axes stacks ``n`` copies of it along a new last axis (a 2D slice ``(X, Y)`` becomes the
    stack ``(X, Y, n)``)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}.")
    source = nib.load(path)
    volume = np.asarray(source.dataobj)
    if axis == volume.ndim:  # a 2D slice: a one-slice stack first
        volume = volume[..., None]
    tiled = np.take(volume, np.arange(n) % volume.shape[axis], axis=axis)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    nib.save(nib.Nifti1Image(tiled, source.affine, source.header), out_path)
    return out_path


def slice_scaling_rows(method: str, scaling: dict, metric: str = "inference_seconds") -> list[BenchmarkRow]:
    """The table rows of a :func:`slice_scaling` result: ``"<method>, <n> slices"`` (seconds per volume, with the
    process's peak RSS) for each count, then ``"<method>, per slice (fit)"`` (the fitted slope); lower is better."""
    rows = [
        BenchmarkRow(f"{method}, {n} slices", metric, [("volume", seconds)], seconds=seconds,
                     peak_rss_mb=peak_rss_mb(), higher_is_better=False)
        for n, seconds in zip(scaling["slice_counts"], scaling["seconds"])
    ]  # fmt: skip
    rows.append(BenchmarkRow(f"{method}, per slice (fit)", metric, [("slope", scaling["per_slice"])],
                             seconds=scaling["per_slice"], higher_is_better=False))  # fmt: skip
    return rows
