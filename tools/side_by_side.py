"""Our training step timed beside the public reference code's, alternating processes, on this machine.

Usage (repository root)::

    python -m tools.side_by_side --bundles lge_cardiac_segmentation_munit \\
        --reference NVlabs/MUNIT=/path/to/MUNIT [--peers ../shared/peers] [--rounds 3] [--out benchmarks]

A bundle takes part by a ``PEER_STEP`` literal in its ``scripts/benchmark.py`` (read by ``tools.benchmark``'s
:func:`~tools.benchmark.read_benchmark_info`, a new bundle needs no edit here)::

    PEER_STEP = {
        "repository": "NVlabs/MUNIT",            # the public code, a work tree given by --reference
        "harness": "munit_step.py",              # the timing harness in --peers (imports the public code itself)
        "harness_args": ["--n", "3", "--flops"],
        "ours_args": ["-m", "scripts.peer_step", "--n", "3"],  # run in the bundle root, same configuration
        "configuration": "what both sides run",
        "ours_variants": {"channels-last": ["--channels_last", "True"]},  # optional: ours again with extra args
        "more_steps": {"stage 2": {"harness_args": [...], "ours_args": [...]}},  # optional: more steps to time
    }

Each of ``ours_variants`` (e.g. the engine base's speed switches) runs in the same alternation, after ours, and gets
its own entry ``<bundle> (<variant>)`` with its ratio against the same reference rounds; the first step's time
(``warmup_train_s``: a compilation's cost) is reported beside the median step. Each of ``more_steps`` (e.g. a second
training stage) is timed in its own alternation: its keys replace the main spec's (its variants are its own, none by
default), its entries are ``<bundle> (<step>)`` and ``<bundle> (<step>, <variant>)``; ``--steps`` chooses among them
(``main`` is the main step).

A method without public code (``"repository": None``, no ``harness``) has no reference to time: our default step
(``ours_args``) stands in as the reference side and each of ``ours_variants`` is timed against it (ratio = default
median / variant median, > 1: the switch is faster), labelled as ``ours (default)`` at this repository's commit;
no ``--reference`` is needed for it.

Per round, the reference harness (``<python> <peers>/<harness> <tree> <harness_args>``) and ours (``<python>
<ours_args>`` in the bundle root) run one after the other, each in its own process; both print one JSON line last
(``train_iter_s`` min/median/max, GFLOP of one step, the conv ceiling measured in that process). The per-round ratio
``reference median / our median`` (> 1: ours is faster) and its median over rounds, each side's peak RSS (from the
operating system, the same way for both) and every round's numbers go to ``<out>/side_by_side.json`` (merged with
other bundles' entries) and ``<out>/side_by_side.md``. Read any reference tree before running it
(``shared/peers/README.md``): nothing of it is copied into the project.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from tools.benchmark import REPO_ROOT, find_benchmark_bundles, merge_entries, read_benchmark_info

__all__ = ["parse_references", "tree_commit", "peer_steps", "entry_name", "side_by_side", "write_report", "main"]

REPORT = "side_by_side"


def parse_references(values: Sequence[str]) -> dict[str, Path]:
    """``["owner/name=/path", ...]`` -> ``{owner/name: path}``; a missing folder is an error naming it."""
    references = {}
    for value in values:
        repository, sep, path = value.partition("=")
        if not sep or not repository or not path:
            raise ValueError(f"--reference takes owner/name=/path/to/work/tree, got {value!r}.")
        folder = Path(path).expanduser().resolve()
        if not folder.is_dir():
            raise ValueError(f"--reference {repository}: {folder} is not a folder (a work tree of the public code).")
        references[repository] = folder
    return references


def tree_commit(tree: Path) -> str:
    """The commit checked out in ``tree`` (full hash), or a note that it is not a git work tree."""
    try:
        return subprocess.check_output(["git", "-C", str(tree), "rev-parse", "HEAD"], text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git work tree)"


def peer_steps(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``[(step label, spec)]``: the main step (label ``""``) and each of ``more_steps`` (its keys over the main
    spec's, with no variants unless it names its own)."""
    main = {key: value for key, value in spec.items() if key != "more_steps"}
    return [("", main)] + [
        (label, {**main, "ours_variants": {}, **extra}) for label, extra in spec.get("more_steps", {}).items()
    ]


def entry_name(bundle: Path, *labels: str) -> str:
    """``<bundle>``, or ``<bundle> (<step>, <variant>)`` with the labels that are not empty."""
    given = ", ".join(label for label in labels if label)
    return f"{bundle.name}{f' ({given})' if given else ''}"


def _time_step(
    bundle: Path, tree: Path, peers: Path, spec: dict[str, Any], step: str, rounds: int, python: str, log: Any
) -> dict[str, dict[str, Any]]:
    """One step of a ``PEER_STEP``: the reference harness, ours and each of ours' variants alternated for
    ``rounds`` rounds; the report entries of that step."""
    from common.benchmarking import alternate, machine_summary, ratio_summary

    ours = {"": [python, *spec["ours_args"]]}
    ours.update({label: [python, *spec["ours_args"], *extra] for label, extra in spec.get("ours_variants", {}).items()})
    if spec.get("repository") is None:  # no public code: our default step is the side the variants are timed against
        if len(ours) < 2:
            raise ValueError(f"bundle `{bundle.name}`: a PEER_STEP without a repository needs ours_variants.")
        commands = {"reference": (ours.pop(""), str(bundle))}
        repository, tree = "ours (default)", REPO_ROOT
    else:
        harness = peers / spec["harness"]
        if not harness.is_file():
            raise ValueError(f"bundle `{bundle.name}`: harness {harness} not found (--peers names its folder).")
        commands = {"reference": ([python, str(harness), str(tree), *spec.get("harness_args", [])], str(peers))}
        repository = spec["repository"]
    commands.update(
        {f"ours{f' ({label})' if label else ''}": (command, str(bundle)) for label, command in ours.items()}
    )
    prefix = entry_name(bundle, step)
    results = alternate(commands, rounds=rounds, log=lambda line: log(f"{prefix}: {line}"))
    entries = {}
    for label in ours:
        side = f"ours{f' ({label})' if label else ''}"
        summary = ratio_summary(results["reference"], results[side])
        for name, rows in (("reference", results["reference"]), ("ours", results[side])):
            gflop = [r["train_step_gflop"] for r in rows if "train_step_gflop" in r]
            share = [
                r.get("ceiling_share", r.get("train_efficiency_vs_conv_peak"))
                for r in rows
                if r.get("ceiling_share", r.get("train_efficiency_vs_conv_peak")) is not None
            ]
            summary[f"{name}_gflop_per_step"] = statistics.median(gflop) if gflop else None
            summary[f"{name}_ceiling_share"] = statistics.median(share) if share else None
        first = [r["warmup_train_s"][0] for r in results[side] if r.get("warmup_train_s")]
        summary["ours_first_step_s"] = statistics.median(first) if first else None
        entries[entry_name(bundle, step, label)] = {
            "repository": repository,
            "commit": tree_commit(tree),
            "configuration": spec.get("configuration", "") + (f"; ours: {label}" if label else ""),
            "commands": {"reference": " ".join(commands["reference"][0]), "ours": " ".join(commands[side][0])},
            "date": datetime.date.today().isoformat(),
            "machine": machine_summary(),  # the CPU and the kernels' instruction set: a ratio belongs to its machine
            "summary": summary,
            "rounds": {"reference": results["reference"], "ours": results[side]},
        }
    return entries


def side_by_side(
    bundle: Path,
    tree: Path,
    peers: Path,
    rounds: int = 3,
    python: str = sys.executable,
    log: Any = print,
    steps: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Time each step of the bundle's ``PEER_STEP`` (the main one and each of ``more_steps``; only those named in
    ``steps`` when given, the main one as ``"main"``) beside its reference; the report entries (``<bundle>``,
    ``<bundle> (<variant>)``, ``<bundle> (<step>)``, ``<bundle> (<step>, <variant>)``)."""
    spec = read_benchmark_info(bundle).peer_step
    if not spec:
        raise ValueError(f"bundle `{bundle.name}` has no PEER_STEP in scripts/benchmark.py.")
    chosen = peer_steps(spec)
    if steps is not None:  # the main step is named "main"
        known = [label or "main" for label, _ in chosen]
        unknown = sorted(set(steps) - set(known))
        if unknown:
            raise ValueError(f"bundle `{bundle.name}` has no peer step(s) {unknown}; its steps: {known}.")
        chosen = [(label, step) for label, step in chosen if (label or "main") in steps]
    entries = {}
    for label, step in chosen:
        entries.update(_time_step(bundle, tree, peers, step, label, rounds, python, log))
    return entries


def _fmt(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def write_report(entries: dict[str, dict], out: Path) -> tuple[Path, Path]:
    """Merge ``entries`` (bundle -> entry) into ``<out>/side_by_side.json``; rewrite ``<out>/side_by_side.md``."""
    json_path, report = merge_entries(out, REPORT, entries)
    md_path = out / f"{REPORT}.md"
    lines = [
        "# Training step beside the public reference code",
        "",
        "Written by `python -m tools.side_by_side` (alternating processes on one machine; every round's numbers in "
        f"`{REPORT}.json`). Ratio = reference median step / ours (> 1: ours is faster); the median over rounds, with "
        "the per-round ratios. GFLOP per step and share of the conv ceiling are measured in each side's own process; "
        "peak RSS is each process's maximum, read from the operating system. Where the reference reads `ours "
        "(default)` the method has no public code: the row times a speed switch against our default step.",
        "",
        "| bundle | reference (commit) | configuration | ratio (per round) | reference s | ours s | GFLOP ref / ours "
        "| ceiling share ref / ours | peak RSS MiB ref / ours | our first step s (warm-up, compile) | date (machine) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in sorted(report.items()):
        s = entry["summary"]
        rounds = ", ".join(f"{r:.2f}" for r in s["ratio_per_round"])
        lines.append(
            f"| {name} | {entry['repository']} ({entry['commit'][:7]}) | {entry['configuration']} | "
            f"**{s['ratio_median']:.2f}** ({rounds}) | {s['reference_median_s']:.2f} | {s['ours_median_s']:.2f} | "
            f"{_fmt(s['reference_gflop_per_step'], 0)} / {_fmt(s['ours_gflop_per_step'], 0)} | "
            f"{_fmt(s['reference_ceiling_share'])} / {_fmt(s['ours_ceiling_share'])} | "
            f"{s['reference_peak_rss_mb']:.0f} / {s['ours_peak_rss_mb']:.0f} | {_fmt(s.get('ours_first_step_s'))} | "
            f"{entry['date']}{f' ({machine})' if (machine := entry.get('machine')) else ''} |"
        )
    md_path.write_text("\n".join(lines) + "\n")
    return md_path, json_path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 on bad arguments, 1 when a run fails)."""
    parser = argparse.ArgumentParser(prog="python -m tools.side_by_side", description=__doc__.split("\n")[0])
    parser.add_argument("--bundles", nargs="+", required=True, help="bundle folder names (each with PEER_STEP)")
    parser.add_argument("--reference", action="append", default=[], help="owner/name=/path/to/work/tree (repeat)")
    parser.add_argument("--peers", default=str(REPO_ROOT.parent / "shared" / "peers"), help="the harnesses' folder")
    parser.add_argument(
        "--steps", nargs="+", default=None, help="only these of a bundle's peer steps: main and/or more_steps' labels"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks"), help="output folder (default: benchmarks)")
    parser.add_argument("--bundles_dir", default=str(REPO_ROOT / "bundles"), help="folder holding the bundles")
    args = parser.parse_args(argv)
    try:
        references = parse_references(args.reference)
        peers = Path(args.peers).expanduser().resolve()  # the harness runs with --peers as its working folder
        bundles = find_benchmark_bundles(args.bundles_dir, args.bundles)
        entries = {}
        for bundle in bundles:
            repository = read_benchmark_info(bundle).peer_step.get("repository")
            if repository is not None and repository not in references:
                raise ValueError(f"bundle `{bundle.name}` is timed beside {repository}: pass --reference {repository}=")
            tree = references.get(repository, REPO_ROOT)  # None (no public code): this repository
            entries.update(side_by_side(bundle, tree, peers, args.rounds, steps=args.steps))
    except ValueError as e:
        print(f"FAIL: {e}")
        return 2
    except RuntimeError as e:
        print(f"FAIL: {e}")
        return 1
    md_path, json_path = write_report(entries, Path(args.out))
    print(md_path.read_text())
    print(f"wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
