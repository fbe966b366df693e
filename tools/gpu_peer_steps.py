"""Every bundle's peer step on a GPU, in float32 and under autocast: the GPU rows of the speed table.

Usage (repository root, on a machine with CUDA)::

    python -m tools.gpu_peer_steps [--bundles NAME ...] [--amp off bf16] [--variants] [--n 20] [--warmup 5]
        [--bundle_timeout S] [--out runs.jsonl]   # time each step, one JSON line per run, appended as it finishes
    python -m tools.gpu_peer_steps --report runs.jsonl [--machine "one H200"] [--merge_into benchmarks]

The steps are the ones ``tools.side_by_side`` times on the CPU (each bundle's ``PEER_STEP`` in
``scripts/benchmark.py``: the main step's ``ours_args`` and each of ``more_steps``', at the public code's
configuration), here with ``--device cuda --flops False`` and each ``--amp`` precision (with ``--variants``, each
step's ``ours_variants`` too, e.g. compiled or channels-last: entries ``<bundle> (<step>, <variant>,
<precision>)``); a new bundle with a ``PEER_STEP`` takes part with no edit here. Each bundle runs in one process
(its ``scripts`` package is its own), the steps one after the other, so no two share the GPU; a step that raises
(out of memory), kills its process or outlasts ``--bundle_timeout`` becomes a line with its ``error``, and the lines
already written stay. With ``--report`` the lines become entries ``<bundle> (<step>, <precision>)`` of
``<merge_into>/gpu_peer_steps.json`` (merged with the entries already there) and the table ``gpu_peer_steps.md``.
There is no reference on the GPU side: the public codes' GPU paths are not run here.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from tools.benchmark import REPO_ROOT, find_benchmark_bundles, read_benchmark_info
from tools.side_by_side import entry_name, peer_steps

__all__ = ["step_kwargs", "bundle_runs", "run_bundle", "write_report", "main"]

REPORT = "gpu_peer_steps"
#: the precision's name in the report for each ``--amp``
PRECISIONS = {"off": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 autocast"}
_CHILD = """
import json, sys
import torch
from scripts.peer_step import measure
cuda = torch.cuda.is_available()
for name, kwargs in json.loads(sys.argv[1]):
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    try:
        result = measure(**kwargs)
    except Exception as error:  # one step's failure (e.g. out of memory) is a row of its own, not the end of the run
        result = {"error": f"{type(error).__name__}: {error}"[:500]}
    if cuda:  # the step's and the inference's peak, what PyTorch allocated (its cache's slack not counted)
        result["gpu_peak_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    line = json.dumps({"entry": name, "kwargs": kwargs, **result})
    with open(sys.argv[2], "a") as out:  # written by the child itself: a step that hangs or kills it loses no row
        out.write(line + "\\n")
    print(line[:200], flush=True)
"""


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def step_kwargs(ours_args: Sequence[str]) -> dict[str, Any]:
    """``measure``'s keyword arguments from a ``PEER_STEP``'s ``ours_args`` (``-m scripts.peer_step --n 3 ...``).

    Raises:
        ValueError: the arguments are not ``-m scripts.peer_step`` followed by ``--key value`` pairs.
    """
    args = list(ours_args)
    if args[:2] != ["-m", "scripts.peer_step"] or len(args) % 2:
        raise ValueError(f"expected ['-m', 'scripts.peer_step', '--key', 'value', ...], got {args}.")
    pairs = zip(args[2::2], args[3::2])
    kwargs = {}
    for key, value in pairs:
        if not key.startswith("--"):
            raise ValueError(f"expected a --key before {value!r} in {args}.")
        kwargs[key[2:]] = _literal(value)
    return kwargs


def bundle_runs(
    bundle: Path, precisions: Sequence[str], n: int, warmup: int, threads: int, variants: bool = False
) -> list[tuple[str, dict[str, Any]]]:
    """``[(entry name, measure kwargs)]`` of ``bundle``: each peer step (and, with ``variants``, each of its
    ``ours_variants``) in each precision, on ``cuda``."""
    spec = read_benchmark_info(bundle).peer_step
    runs = []
    for label, step in peer_steps(spec) if spec else []:
        base = step_kwargs(step["ours_args"])
        flavours: dict[str, dict[str, Any]] = {"": {}}
        for name, args in step.get("ours_variants", {}).items() if variants else []:
            flavours[name] = step_kwargs(["-m", "scripts.peer_step", *args])
        for variant, extra in flavours.items():
            for amp in precisions:
                kwargs = {**base, **extra, "n": n, "warmup": warmup, "threads": threads, "device": "cuda"}
                name = entry_name(bundle, label or "main", variant, PRECISIONS[amp])
                runs.append((name, {**kwargs, "flops": False, "amp": amp}))
    return runs


def _entries(out: Path) -> set[str]:
    return (
        {json.loads(line)["entry"] for line in out.read_text().splitlines() if line.strip()} if out.exists() else set()
    )


def run_bundle(
    bundle: Path,
    runs: list[tuple[str, dict[str, Any]]],
    out: Path,
    timeout: float | None = None,
    python: str = sys.executable,
) -> int:
    """Run ``runs`` in one process in the bundle root, which appends each result line to ``out``; the process's exit
    code (-9 when killed after ``timeout`` seconds). A run without a line when the process ends (a hang, a crash, an
    out-of-memory kill) gets a line with its ``error``, so the report shows it."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    before = _entries(out)
    command = [python, "-c", _CHILD, json.dumps(runs), str(out.resolve())]
    try:
        code = subprocess.run(command, cwd=bundle, env=env, timeout=timeout).returncode
        why = f"the bundle's process ended with code {code} before this step's result"
    except subprocess.TimeoutExpired:
        code, why = -9, f"not reached or not finished: the bundle's process was stopped after {timeout} s"
    written = _entries(out) - before
    with out.open("a") as f:
        for name, kwargs in runs:
            if name not in written:
                f.write(json.dumps({"entry": name, "kwargs": kwargs, "error": why}) + "\n")
    return code


def _cell(seconds: float | None) -> str:
    return "" if seconds is None else f"{1000 * seconds:.1f}"


def write_report(lines: list[dict[str, Any]], out_dir: Path, machine: str, date: str) -> Path:
    """Merge ``lines`` into ``<out_dir>/gpu_peer_steps.json`` (by entry name) and write ``gpu_peer_steps.md``."""
    path = out_dir / f"{REPORT}.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    report.setdefault("runs", {})
    for line in lines:
        report["runs"][line["entry"]] = {**line, "machine": machine, "date": date}
    path.write_text(json.dumps(report, indent=1) + "\n")
    rows = [
        "| entry | configuration | train step ms (median) | min-max | first step s | inference ms (median) "
        "| GPU peak MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, run in sorted(report["runs"].items()):
        if "error" in run:
            rows.append(f"| {name} | | failed: {run['error']} | | | | |")
            continue
        train, infer = run["train_iter_s"], run["infer_s"]
        warm = run.get("warmup_train_s") or [None]
        rows.append(
            f"| {name} | {run['config']} | {_cell(train['median'])} | {_cell(train['min'])}-{_cell(train['max'])} "
            f"| {warm[0] if warm[0] is None else round(warm[0], 2)} | {_cell(infer['median'])} "
            f"| {run.get('gpu_peak_allocated_mib', '')} |"
        )
    machines = sorted({run.get("machine", report.get("machine", "")) for run in report["runs"].values()})
    text = (
        "# Our training steps on a GPU\n\n"
        f"Written by `python -m tools.gpu_peer_steps --report` from the runs in `{REPORT}.json` "
        f"(machine: {'; '.join(m for m in machines if m)}). Each step is a bundle's `scripts/peer_step.py` at the "
        "public code's configuration (as `side_by_side.md`'s CPU rows), each timed to the end of its GPU work; "
        "'first step' is the first warm-up step (CUDA context, cuDNN autotuning). No reference code ran on the GPU.\n\n"
        + "\n".join(rows)
        + "\n"
    )
    (out_dir / f"{REPORT}.md").write_text(text)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundles", nargs="+", default=None, help="bundle folder names (default: every PEER_STEP)")
    parser.add_argument("--amp", nargs="+", default=["off", "bf16"], choices=sorted(PRECISIONS))
    parser.add_argument("--variants", action="store_true", help="each step's ours_variants too (compiled, ...)")
    parser.add_argument("--n", type=int, default=20, help="timed steps (and inferences) per run")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--bundle_timeout", type=float, default=None, help="seconds before a bundle's process stops")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("gpu_peer_steps.jsonl"), help="result lines, appended")
    parser.add_argument("--report", type=Path, default=None, help="a result file to turn into the report instead")
    parser.add_argument("--machine", default="", help="the GPU machine, in words, for the report")
    parser.add_argument("--merge_into", type=Path, default=REPO_ROOT / "benchmarks")
    args = parser.parse_args(argv)
    if args.report is not None:
        lines = [json.loads(line) for line in args.report.read_text().splitlines() if line.strip()]
        date = datetime.date.today().isoformat()
        print(write_report(lines, args.merge_into, args.machine, date))
        return 0
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device here: the GPU rows need one (the CPU rows: python -m tools.side_by_side)", flush=True)
        return 2
    failed = 0
    for bundle in find_benchmark_bundles(names=args.bundles):
        runs = bundle_runs(bundle, args.amp, args.n, args.warmup, args.threads, args.variants)
        if runs:
            failed += run_bundle(bundle, runs, args.out, args.bundle_timeout) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
