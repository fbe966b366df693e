"""Folder inference's batching knob timed on this machine: seconds per stack for each value of a bundle's knob.

Usage (repository root)::

    python -m tools.inference_batching [--bundles NAME ...] [--rounds 3] [--n 2] [--overlay quick.json] \\
        [--out benchmarks]

A bundle takes part by an ``INFERENCE_BATCH`` literal in its ``scripts/benchmark.py`` (read as a literal by
``tools.benchmark``'s :func:`~tools.benchmark.read_benchmark_info`; a new bundle needs no edit here)::

    INFERENCE_BATCH = {
        "key": "sw_batch_size",              # the inference config's key: windows (or slices) per forward pass
        "input_shape": [1, 1, 64, 64, 16],   # the stand-in stack the inferer receives (batch, channels, spatial)
        "slices": 16,                        # slices in that stack (seconds per slice = seconds / slices)
        "values": [1, 2, 4, 8, 16],          # the knob's values to time
    }

The bundle's own ``network`` item of ``configs/inference.json`` is built once on the CPU, randomly initialised (the
time of these networks does not depend on their weights), and its ``inferer`` item once per value of the knob (the
knob is the inferer's: one network in memory, not one per value); ``inferer(stack, network)`` on a random stack is
timed without autograd. Every value is timed once per round, in
turn, so a slow spell of a shared machine hits all of them; a value's time is the median over rounds of each
round's median of ``--n`` calls (after one warm-up call). The knob's own value is the one the config resolves on the
CPU (a config may choose by device, e.g. ``"$8 if torch.device(@device).type == 'cuda' else 2"``: MONAI Label
hands the config its device as a string), and the row says how much faster than it the best timed value is.
Results go to ``<out>/inference_batching.json`` (merged with the other bundles' entries, every round kept) and
``<out>/inference_batching.md``.

On a CPU large batches can be slower per slice than small ones (measured for two bundles: networks that decode
large maps, where a batch's activations are large); on a GPU large batches fill the device. So the batch a config
uses is a measured choice, per device, not a constant.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from tools.benchmark import INFO_NAMES, REPO_ROOT, find_benchmark_bundles, merge_entries, read_benchmark_info
from tools.side_by_side import tree_commit

__all__ = [
    "read_spec",
    "batch_spec",
    "time_values",
    "summarize",
    "value_cell",
    "time_bundle",
    "entry_name",
    "declaring_bundles",
    "write_report",
    "main",
]

REPORT = "inference_batching"
CONFIG = "inference.json"
SPEC_KEYS = ("key", "input_shape", "slices", "values")


def read_spec(bundle_dir: str | Path, literal: str, keys: Sequence[str]) -> dict[str, Any]:
    """The bundle's ``literal`` dict from ``scripts/benchmark.py`` (empty: the bundle does not take part), with
    every one of ``keys`` present and its ``values`` positive integers.

    Raises:
        ValueError: naming the bundle when a required entry is missing or a value is not a positive integer.
    """
    spec = dict(getattr(read_benchmark_info(bundle_dir), INFO_NAMES[literal]))
    if not spec:
        return spec
    name = Path(bundle_dir).name
    missing = [key for key in keys if key not in spec]
    if missing:
        raise ValueError(f"bundle `{name}`: {literal} lacks {missing} (needs {list(keys)}).")
    if not spec["values"] or any(int(v) != v or v < 1 for v in spec["values"]):
        raise ValueError(f"bundle `{name}`: {literal} values must be integers >= 1, got {spec['values']}.")
    return spec


def batch_spec(bundle_dir: str | Path) -> dict[str, Any]:
    """The bundle's ``INFERENCE_BATCH`` (empty: the bundle does not take part); refused as :func:`read_spec`."""
    return read_spec(bundle_dir, "INFERENCE_BATCH", SPEC_KEYS)


def time_values(values: Sequence[int], time_value: Callable[[int], float], rounds: int) -> dict[int, list[float]]:
    """``{value: [seconds of each round]}``: every value timed once per round, in the order given."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}.")
    times: dict[int, list[float]] = {int(v): [] for v in values}
    for _ in range(rounds):
        for value in times:
            times[value].append(float(time_value(value)))
    return times


def summarize(times: Mapping[int, Sequence[float]], slices: int, config_value: int) -> dict[str, Any]:
    """Per value the median seconds per stack and per slice; the best value and how much faster it is than the
    config's own (``config_over_best`` > 1: the config's value is slower than the best timed one)."""
    seconds = {int(v): statistics.median(t) for v, t in times.items()}
    best = min(seconds, key=seconds.__getitem__)
    summary: dict[str, Any] = {
        "seconds_per_stack": seconds,
        "seconds_per_slice": {v: s / slices for v, s in seconds.items()},
        "best_value": best,
        "config_value": int(config_value),
        "config_over_best": None,
    }
    if int(config_value) in seconds:
        summary["config_over_best"] = seconds[int(config_value)] / seconds[best]
    return summary


def time_bundle(bundle_dir: str | Path, rounds: int = 3, n: int = 2, overlay: str | None = None) -> dict[str, Any]:
    """Time the bundle's inferer on its stand-in stack at every value of its knob (see the module docstring)."""
    import torch
    from common.allocator import applied_mode
    from common.benchmarking import machine_summary
    from common.benchmarking.side_by_side import inference_times
    from common.benchmarking.workflow import parse_config_items

    bundle = Path(bundle_dir)
    spec = batch_spec(bundle)
    if not spec:
        raise ValueError(f"bundle `{bundle.name}` has no INFERENCE_BATCH in scripts/benchmark.py.")
    files = [CONFIG] + ([overlay] if overlay else [])
    cpu = {"device": "$torch.device('cpu')"}
    # the config's own value, and one network for every value (a copy per value held 5 of TransMRSR's 164 M-parameter
    # networks at once)
    config_items = parse_config_items(bundle, files, cpu, (spec["key"], "network"))
    config_value, network = int(config_items[spec["key"]]), config_items["network"].eval()
    shape = [int(v) for v in spec["input_shape"]]
    inferers: dict[int, Any] = {}

    def time_value(value: int) -> float:
        if value not in inferers:  # built once per value, timed in every round
            inferers[value] = parse_config_items(bundle, files, {**cpu, spec["key"]: value}, ("inferer",))["inferer"]
        seconds = inference_times(partial(_infer, inferers[value], network), lambda: torch.rand(shape), n=n, warmup=1)
        return statistics.median(seconds)

    times = time_values(spec["values"], time_value, rounds)
    return {
        "key": spec["key"],
        "input_shape": shape,
        "slices": int(spec["slices"]),
        "overlay": overlay,
        "rounds": {str(v): t for v, t in times.items()},
        "summary": summarize(times, int(spec["slices"]), config_value),
        "machine": machine_summary(),
        "malloc": applied_mode(),  # this process's common.allocator mode
        "threads": torch.get_num_threads(),
        "commit": tree_commit(REPO_ROOT)[:7],  # "unknown" outside a git work tree
        "date": datetime.date.today().isoformat(),
        "command": "python -m tools.inference_batching " + " ".join(sys.argv[1:]),
    }


def _infer(inferer: Any, network: Any, stack: Any) -> Any:
    """One folder-inference pass of the stack: the bundle's inferer with its network."""
    return inferer(stack, network)


def value_cell(seconds: Mapping[Any, float], value: int, best: int, config: int) -> str:
    """A table cell ``value: seconds``, bold for the best value, marked ``(config)`` for the config's."""
    text = f"{value}: {seconds[value]:.3g}"
    if value == best:
        text = f"**{text}**"
    return text + (" (config)" if value == config else "")


def entry_name(bundle: str, entry: Mapping[str, Any]) -> str:
    """The report's key of an entry: the bundle, with its overlay config and the allocator mode when it is not the
    default, so that each (overlay, mode) keeps its own entry (a run with ``--overlay quick.json`` replaced the
    full network's entry before)."""
    from common.allocator import MALLOC_MODES

    malloc = entry.get("malloc", MALLOC_MODES[0])
    overlay = f" + {entry['overlay']}" if entry.get("overlay") else ""
    return bundle + overlay + ("" if malloc == MALLOC_MODES[0] else f" (malloc {malloc})")


def declaring_bundles(bundles_dir: str | Path, names: Sequence[str] | None, spec: Callable, literal: str) -> list[Path]:
    """The bundles (all, or ``names``) whose ``spec(bundle)`` is not empty.

    Raises:
        ValueError: a named bundle does not declare ``literal``.
    """
    bundles = [b for b in find_benchmark_bundles(bundles_dir, names) if spec(b)]
    if names and len(bundles) < len(names):
        raise ValueError(f"no {literal} in {sorted(set(names) - {b.name for b in bundles})}.")
    return bundles


def write_report(entries: Mapping[str, Mapping[str, Any]], out: str | Path) -> Path:
    """Merge ``entries`` into ``<out>/inference_batching.json`` and write the table ``inference_batching.md``."""
    out = Path(out)
    path, merged = merge_entries(out, REPORT, entries)
    lines = [
        "# Folder inference: seconds per stack against the batching knob",
        "",
        "Written by `python -m tools.inference_batching` (every round's numbers in `inference_batching.json`): the "
        "bundle's own `inferer` and `network` of `configs/inference.json`, on the CPU, randomly initialised, on a "
        "random stand-in stack; a value's time is the median over rounds (each value timed once per round, in turn). "
        "Bold: the fastest value; (config): the value the config uses on the CPU; config / best > 1: the config's "
        "value is that much slower than the best one. malloc: `common.allocator`'s mode (`COMMON_MALLOC`; - : not "
        "recorded, runs before the field, which set no mode: the default).",
        "",
        "| bundle | knob | stack (input shape) | seconds per stack at each value | config / best | per slice at "
        "config s | malloc | threads | machine | commit | date |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in sorted(merged):
        entry = merged[name]
        summary = entry["summary"]
        seconds = {int(v): s for v, s in summary["seconds_per_stack"].items()}
        per_slice = {int(v): s for v, s in summary["seconds_per_slice"].items()}
        best, config = int(summary["best_value"]), int(summary["config_value"])
        cells = ", ".join(value_cell(seconds, v, best, config) for v in sorted(seconds))
        ratio = "-" if summary["config_over_best"] is None else f"{summary['config_over_best']:.2f}"
        at_config = f"{per_slice[config]:.3g}" if config in per_slice else "-"
        lines.append(
            f"| {name} | `{entry['key']}` | {entry['slices']} slices {tuple(entry['input_shape'])} | "
            f"{cells} | {ratio} | {at_config} | {entry.get('malloc', '-')} | {entry['threads']} | {entry['machine']} | "
            f"{entry['commit']} | "
            f"{entry['date']} |"
        )
    (out / f"{REPORT}.md").write_text("\n".join(lines) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 on bad arguments)."""
    parser = argparse.ArgumentParser(prog="python -m tools.inference_batching", description=__doc__.split("\n")[0])
    parser.add_argument("--bundles", nargs="+", default=None, help="bundle folder names (default: every one with it)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the values (default 3)")
    parser.add_argument("--n", type=int, default=2, help="timed calls per value and round (default 2)")
    parser.add_argument("--overlay", default=None, help="a config layered on inference.json (e.g. quick.json)")
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks"), help="output folder (default: benchmarks)")
    parser.add_argument("--bundles_dir", default=str(REPO_ROOT / "bundles"), help="folder holding the bundles")
    args = parser.parse_args(argv)
    try:
        # each bundle's entry written as soon as it is timed: a stopped run keeps them
        for bundle in declaring_bundles(args.bundles_dir, args.bundles, batch_spec, "INFERENCE_BATCH"):
            print(f"timing {bundle.name} ...", flush=True)
            entry = time_bundle(bundle, args.rounds, args.n, args.overlay)
            print(json.dumps(entry["summary"]), flush=True)
            print(f"wrote {write_report({entry_name(bundle.name, entry): entry}, args.out)}", flush=True)
    except (ValueError, FileNotFoundError) as e:
        print(f"FAIL: {e}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
