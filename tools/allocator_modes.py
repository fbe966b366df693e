"""Each bundle's training step in every malloc mode of ``common.allocator``, alternating processes, on this machine.

Usage (repository root)::

    python -m tools.allocator_modes --bundles lge_mi_sr_segmentation dti_lge_style_transfer [--rounds 1] \\
        [--out benchmarks]

``import common`` sets malloc in the process from ``COMMON_MALLOC`` (``threshold``, the default: buffers up to 32 MiB
from the heap; ``heap``: every buffer; ``defaults``: glibc's own, which maps each large buffer anew and unmaps it when
freed). Per bundle, the main step of its ``PEER_STEP`` (``ours_args``, as ``tools.side_by_side`` runs it, in the bundle
root) runs once per mode and round in its own process with that variable set, the modes alternating within a round.
Each entry keeps every round's median step time and the process's peak RSS; the summary gives each mode's median over
rounds and its speed-up over glibc's defaults (``defaults`` median / mode median, > 1: faster). The entries merge into
``<out>/allocator_modes.json`` (other bundles' entries kept) and ``<out>/allocator_modes.md`` is rewritten. Training
results do not depend on the mode (``tests/test_allocator.py``): only time and memory are measured here.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

from common.allocator import MALLOC_MODES

from tools.benchmark import REPO_ROOT, merge_entries, read_benchmark_info

__all__ = ["MODES", "mode_commands", "time_modes", "write_report", "main"]

REPORT = "allocator_modes"
#: ``common.allocator.MALLOC_MODES`` with glibc's defaults first: the mode the others are compared with
MODES = ("defaults", *(mode for mode in MALLOC_MODES if mode != "defaults"))


def mode_commands(ours_args: Sequence[str], python: str = sys.executable) -> dict[str, list[str]]:
    """``{mode: command}``: the peer step under each mode, the variable set by ``env`` (the process keeps its pid, so
    its peak RSS is the step's own)."""
    return {mode: ["env", f"COMMON_MALLOC={mode}", python, *ours_args] for mode in MODES}


def time_modes(bundle: Path, rounds: int = 1, python: str = sys.executable, log: Any = print) -> dict[str, Any]:
    """The report entry of ``bundle``: its ``PEER_STEP`` main step in every mode, ``rounds`` alternations."""
    from common.benchmarking import alternate, machine_summary

    spec = read_benchmark_info(bundle).peer_step
    if not spec:
        raise ValueError(f"bundle `{bundle.name}` has no PEER_STEP in scripts/benchmark.py.")
    commands = {mode: (command, str(bundle)) for mode, command in mode_commands(spec["ours_args"], python).items()}
    results = alternate(commands, rounds=rounds, log=lambda line: log(f"{bundle.name}: {line}"))
    per_round = {mode: [{"step_s": r["train_iter_s"]["median"], "peak_rss_mb": r["peak_rss_mb"]} for r in rows]
                 for mode, rows in results.items()}  # fmt: skip
    medians = {mode: {key: statistics.median(r[key] for r in rows) for key in ("step_s", "peak_rss_mb")}
               for mode, rows in per_round.items()}  # fmt: skip
    return {
        "configuration": spec.get("configuration", ""),
        "command": " ".join(spec["ours_args"]),
        "date": datetime.date.today().isoformat(),
        "machine": machine_summary(),
        "rounds": per_round,
        "summary": {
            mode: {**median, "speed_up_over_defaults": medians["defaults"]["step_s"] / median["step_s"]}
            for mode, median in medians.items()
        },
    }


def write_report(entries: dict[str, dict], out: Path) -> tuple[Path, Path]:
    """Merge ``entries`` (bundle -> entry) into ``<out>/allocator_modes.json``; rewrite ``<out>/allocator_modes.md``."""
    json_path, report = merge_entries(out, REPORT, entries)
    md_path = out / f"{REPORT}.md"
    lines = [
        "# Training step in each malloc mode of `common.allocator`",
        "",
        f"Written by `python -m tools.allocator_modes` (every round in `{REPORT}.json`). Each bundle's `PEER_STEP` "
        "main step in its own process per mode and round, the modes alternating; step s = median over rounds of each "
        "process's median step; speed-up = glibc's defaults / the mode (> 1: faster); peak RSS = the process's "
        "maximum, read from the operating system (building the step included). `threshold` is the default.",
        "",
        "| bundle | step s: defaults / threshold / heap | speed-up: threshold, heap | peak RSS MiB: defaults / "
        "threshold / heap | rounds | date (machine) |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in sorted(report.items()):
        s = entry["summary"]
        steps = " / ".join(f"{s[mode]['step_s']:.2f}" for mode in MODES)
        rss = " / ".join(f"{s[mode]['peak_rss_mb']:.0f}" for mode in MODES)
        speed_ups = f"{s['threshold']['speed_up_over_defaults']:.2f}, {s['heap']['speed_up_over_defaults']:.2f}"
        rounds = len(entry["rounds"]["defaults"])
        lines.append(f"| {name} | {steps} | {speed_ups} | {rss} | {rounds} | {entry['date']} ({entry['machine']}) |")
    md_path.write_text("\n".join(lines) + "\n")
    return md_path, json_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundles", nargs="+", required=True, help="bundle folder names (each with PEER_STEP)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds (default 1)")
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks"), help="output folder (default: benchmarks)")
    parser.add_argument("--bundles_dir", default=str(REPO_ROOT / "bundles"), help="folder holding the bundles")
    args = parser.parse_args(argv)
    entries = {}
    for name in args.bundles:
        bundle = Path(args.bundles_dir) / name
        if not bundle.is_dir():
            print(f"no bundle folder {bundle}", file=sys.stderr)
            return 2
        entries[name] = time_modes(bundle, rounds=args.rounds)
    md_path, json_path = write_report(entries, Path(args.out))
    print(f"wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
