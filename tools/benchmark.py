"""Run every bundle's benchmark and merge the results into one table, with the papers' numbers beside ours.

Usage (from the repository root)::

    python -m tools.benchmark --all [--quick] [--data_root data] [--out benchmarks]
    python -m tools.benchmark --bundles lge_mi_sr_segmentation --quick
    python -m tools.benchmark --bundles lge_mi_sr_segmentation --quick --seed_processes 0,1,2
    python -m tools.benchmark --bundles lge_mi_sr_segmentation dti_lge_style_transfer --quick \
        --seed_processes 0,1,2 --max_processes 2 --threads 1

For every bundle with ``scripts/benchmark.py`` (``--all``, or the ``--bundles`` named), a fresh Python process
(every bundle has its own ``scripts`` package, so two cannot share one process) starts in the bundle root, imports
``scripts.benchmark`` and calls ``run(data_root, out_dir=<out>/<bundle>, quick=...)``, which trains and scores the
bundle's method and baselines in that one run and returns its table rows. With ``--seed_processes`` each bundle
runs one such process per training seed instead, from one queue over the bundles in the order named, at most
``--max_processes`` at once (default: one per seed; :func:`run_seed_process_pool`), and each bundle's rows are
merged per case over the seeds (:func:`merge_seed_rows`); a bundle whose ``run`` takes ``seedless`` (bool) is called
with ``seedless=False`` in every process but the first, to skip the rows no seed changes (the merge keeps the first
process's), and a bundle that names ``BENCHMARK_PARTS`` gets one process per seed and part (smaller jobs that share
two cores more evenly). Every bundle's benchmark writes its own data (its ``DATA_SEED``, the generators of
``common.data``); ``<data_root>`` is handed to ``run`` for a benchmark on other data and nothing is written there.

A bundle owns its benchmark data: module-level literals of its ``scripts/benchmark.py`` (read with
``ast.literal_eval``, the module is not imported here; see :func:`read_benchmark_info`): ``REQUIRED_DATASET``,
``COMPARISONS`` ((ours, baseline) method pairs), ``PAPER_NUMBERS`` ((ours, baseline, metric) -> (their baseline,
their ours, where)), ``PAPER_NOTES``, ``MODE_NOTES`` ({"quick": ..., "full": ...}), ``METRIC_LABELS``,
``DDP_OVERRIDES`` (read by ``tools.benchmark_ddp``), ``PEER_STEP`` (read by ``tools.side_by_side``),
``INFERENCE_BATCH`` (``tools.inference_batching``), ``FOLDER_BATCH`` (``tools.folder_batching``) and
``BENCHMARK_PARTS`` (names of disjoint row groups that ``run(..., part=name)`` computes alone). All are
optional; its ``configs/quick.json`` is quoted in the header for the quick mode. A new bundle needs no edit here.

The rows are merged into ``<out>/benchmark.md`` and ``<out>/benchmark.json`` (header written here, from the bundles'
notes) with the columns of :data:`MARKDOWN_COLUMNS`, every per-case value into ``<out>/<bundle>_cases.csv`` and each
bundle's raw result into ``<out>/<bundle>_rows.json`` (what ``--merge_only`` reads; a bundle without one keeps the
rows of the previous ``benchmark.json``, named in the header as carried over). What a bundle's run records beside its
rows in ``<run folder>/benchmark_details.json`` (e.g. its pre-trainings' losses, its stages' seconds) goes, for every
process of the run, into ``<out>/<bundle>_details.json`` (:func:`write_bundle_details`), so that it is committed with
the rows instead of staying in the git-ignored run folder.
Each bundle's rows are mapped into them (:func:`normalize_rows`):

- rows of the skeleton's row type (:class:`common.benchmarking.BenchmarkRow` dicts: ``method``, ``metric``,
  ``values`` per case, optionally ``per_seed``): for each of the bundle's ``COMPARISONS`` and each metric both
  methods have, the means side by side, with the per-case mean difference, its bootstrap 95% interval, the
  Wilcoxon signed-rank p-value, the seeds that agree in sign, and an ordering only when the interval excludes 0,
  every seed agrees and at least 20 cases paired ("not separated" otherwise, "(seeds not checked)" after the
  ordering when the rows carry no per-seed values; :func:`common.benchmarking.compare`); methods in no comparison
  keep a row of their own;
- rows that already say ``metric``/``ours`` (and optionally ``baseline_method``/``baseline``) are kept as they are;
- "wide" rows (one row per method, one key per metric, e.g. ``test_dice_mean``) give one row per metric; the
  bundle's ``COMPARISONS`` (or a row's own ``baseline_method``) put a baseline's value beside ours, and
  methods in no comparison keep a row of their own with only ``ours``;
- ``seconds`` (or ``step_seconds``, or ``train_seconds`` + ``eval_seconds``), ``gflop_per_step``,
  ``ceiling_share`` (achieved GFLOP/s over the conv ceiling measured in the same run) and ``peak_rss_mb`` fill the
  cost columns; a column a row does not give stays empty.

The papers' own numbers (the bundle's ``PAPER_NUMBERS``) are shown beside ours as "theirs", measured on their
private data; ours are on phantom data, so the two are not comparable in value, only in ordering. Exit status: 1
when a bundle's benchmark fails (the others are still merged), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

__all__ = [
    "MARKDOWN_COLUMNS",
    "BenchmarkInfo",
    "read_benchmark_info",
    "find_benchmark_bundles",
    "ensure_data",
    "run_bundle",
    "run_seed_process_pool",
    "seed_process_folder",
    "normalize_rows",
    "merge_results",
    "format_markdown",
    "header_lines",
    "write_merged",
    "write_cases",
    "write_bundle_details",
    "merge_entries",
    "main",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCHMARK_SCRIPT = Path("scripts") / "benchmark.py"
#: what a bundle's ``run`` may write in its run folder beside the rows (:func:`write_bundle_details`)
DETAILS_FILE = "benchmark_details.json"
SPEED_METRIC = "speed of one training step (cost columns only)"

#: Markdown columns: (header, key of the merged row).
MARKDOWN_COLUMNS = (
    ("bundle", "bundle"),
    ("method", "method"),
    ("baseline method", "baseline_method"),
    ("metric", "metric"),
    ("baseline", "baseline"),
    ("ours", "ours"),
    ("n cases", "n_cases"),
    ("ours - baseline [95% CI]", "difference"),
    ("Wilcoxon p", "wilcoxon_p"),
    ("seeds", "seeds_agreeing"),
    ("ordering (CI excludes 0, seeds agree)", "ordering"),
    ("theirs: baseline / ours (paper, their data)", "paper"),
    ("seconds", "seconds"),
    ("GFLOP/step", "gflop_per_step"),
    ("share of measured conv ceiling", "conv_ceiling_share"),
    ("peak RSS MiB", "peak_rss_mb"),
)

#: module-level literals of a bundle's scripts/benchmark.py -> BenchmarkInfo field
INFO_NAMES = {
    "REQUIRED_DATASET": "required_dataset",
    "COMPARISONS": "comparisons",
    "PAPER_NUMBERS": "paper_numbers",
    "PAPER_NOTES": "paper_notes",
    "MODE_NOTES": "mode_notes",
    "METRIC_LABELS": "metric_labels",
    "DDP_OVERRIDES": "ddp_overrides",
    "REQUIRED_BUNDLES": "required_bundles",
    "PEER_STEP": "peer_step",
    "BENCHMARK_PARTS": "parts",
    "INFERENCE_BATCH": "inference_batch",
    "FOLDER_BATCH": "folder_batch",
}
QUICK_OVERLAY = Path("configs") / "quick.json"


@dataclass
class BenchmarkInfo:
    """A bundle's own benchmark data (see the module docstring); every field is optional."""

    name: str
    required_dataset: str | None = None
    comparisons: tuple[tuple[str, str], ...] = ()
    paper_numbers: dict[tuple[str, str, str], tuple[float | None, float | None, str]] = field(default_factory=dict)
    paper_notes: str = ""
    mode_notes: dict[str, str] = field(default_factory=dict)
    metric_labels: dict[str, str] = field(default_factory=dict)
    ddp_overrides: dict[str, Any] = field(default_factory=dict)
    #: ``run`` argument -> name of another bundle whose root the benchmark needs (passed by this tool)
    required_bundles: dict[str, str] = field(default_factory=dict)
    #: our training step beside the public code's (read by ``tools.side_by_side``)
    peer_step: dict[str, Any] = field(default_factory=dict)
    #: names of disjoint groups of rows that ``run(..., part=name)`` computes alone: a seed process per part
    parts: tuple[str, ...] = ()
    #: folder inference's batching knob, its stand-in stack and the values to time (read by
    #: ``tools.inference_batching``)
    inference_batch: dict[str, Any] = field(default_factory=dict)
    #: folder inference of one-slice files: the stand-in files and the ``files_per_batch`` values to time (read by
    #: ``tools.folder_batching``)
    folder_batch: dict[str, Any] = field(default_factory=dict)
    quick_overlay: dict[str, Any] = field(default_factory=dict)


def read_benchmark_info(bundle_dir: str | os.PathLike) -> BenchmarkInfo:
    """The bundle's benchmark data: the literals of :data:`INFO_NAMES` in ``scripts/benchmark.py``, its quick overlay.

    The module is parsed, not imported: every bundle has its own ``scripts`` package and its imports (torch, MONAI)
    are not needed to write a header.

    Raises:
        ValueError: naming the bundle and the name when a value is not a Python literal.
    """
    bundle = Path(bundle_dir)
    info = BenchmarkInfo(bundle.name)
    script = bundle / BENCHMARK_SCRIPT
    tree = ast.parse(script.read_text()) if script.is_file() else ast.Module(body=[], type_ignores=[])
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in INFO_NAMES:
            try:
                literal = ast.literal_eval(value)
            except ValueError:
                raise ValueError(
                    f"bundle `{bundle.name}`: {target.id} in {BENCHMARK_SCRIPT} must be a literal (line {node.lineno})."
                ) from None
            setattr(info, INFO_NAMES[target.id], literal)
    info.comparisons = tuple(tuple(pair) for pair in info.comparisons)  # type: ignore[misc]
    info.parts = tuple(str(part) for part in info.parts)
    overlay = bundle / QUICK_OVERLAY
    if overlay.is_file():
        info.quick_overlay = json.loads(overlay.read_text())
    return info


# keys of "wide" rows that are costs or context, not metrics
_COST_KEYS = {
    "seconds",
    "baseline_seconds",
    "step_seconds",
    "train_seconds",
    "eval_seconds",
    "gflop_per_step",
    "achieved_gflops",
    "conv_ceiling_gflops",
    "ceiling_share",
    "conv_ceiling_share",
    "peak_rss_mb",
}
_ROW_KEYS = {"method", "baseline_method", "metric", "baseline", "ours"}

# run in a fresh interpreter, in the bundle root: imports that bundle's `scripts` and writes its rows as JSON
_WORKER = """
import json, os, sys, time
import inspect
bundle, data_root, out_dir, quick, result_file, bundle_roots, seeds, seedless, part = sys.argv[1:10]
sys.path.insert(0, bundle)
os.chdir(bundle)
from scripts.benchmark import run
start = time.perf_counter()
chosen = {} if seeds == "" else {"seeds": tuple(int(s) for s in seeds.split(","))}
if seedless == "0" and "seedless" in inspect.signature(run).parameters:
    chosen["seedless"] = False
if part:
    chosen["part"] = part
rows = run(data_root, out_dir=out_dir, quick=quick == "1", **chosen, **json.loads(bundle_roots))
seconds = time.perf_counter() - start
from common.benchmarking.measure import machine_summary, peak_rss_mb  # the lifetime peak, across resets
with open(result_file, "w") as f:
    json.dump({"rows": rows, "seconds": seconds, "peak_rss_mb": peak_rss_mb(), "machine": machine_summary()}, f,
              default=str)
"""


# ----------------------------------------------------------------------------------------------- running
def find_benchmark_bundles(
    bundles_dir: str | os.PathLike = REPO_ROOT / "bundles", names: Sequence[str] | None = None
) -> list[Path]:
    """Bundle folders with ``scripts/benchmark.py`` (all under ``bundles_dir``, or those in ``names``), sorted.

    Raises:
        FileNotFoundError: naming the bundle when one of ``names`` has no ``scripts/benchmark.py``.
    """
    root = Path(bundles_dir)
    if names:
        found = []
        for name in names:
            script = root / name / BENCHMARK_SCRIPT
            if not script.is_file():
                raise FileNotFoundError(f"bundle `{name}`: {script} does not exist.")
            found.append(root / name)
        return found
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / BENCHMARK_SCRIPT).is_file())


def ensure_data(
    data_root: str | os.PathLike, required: Sequence[str], runner: Callable[..., Any] = subprocess.run
) -> list[str] | None:
    """Write the ``required`` default datasets whose folders are missing with ``python -m tools.make_data``.

    Only those are written (not every dataset of ``common.data``: ``make_data`` refuses non-empty folders, and the
    others are not read). Used by ``tools.benchmark_ddp``, whose runs read ``<data_root>/<REQUIRED_DATASET>``.

    Args:
        data_root: the data folder.
        required: dataset folder names the bundles need (their ``REQUIRED_DATASET``).
        runner: ``subprocess.run``-like callable (tests pass a fake).

    Returns:
        The command that was run, or ``None`` when the data was already there.

    Raises:
        RuntimeError: naming the command when it fails.
    """
    root = Path(data_root)
    absent = [name for name in required if not (root / name).is_dir()]
    if not absent:
        return None
    command = [sys.executable, "-m", "tools.make_data", "--out", str(root), "--datasets", ",".join(absent)]
    print(f"{', '.join(str(root / name) for name in absent)} missing: {shlex.join(command)}", flush=True)
    result = runner(command, cwd=str(REPO_ROOT), env=env_with_repo())
    if result.returncode != 0:
        raise RuntimeError(f"`{shlex.join(command)}` failed with exit status {result.returncode}.")
    return command


def env_with_repo(threads: int | None = None) -> dict[str, str]:
    """This process's environment with the repository on ``PYTHONPATH``; ``threads`` (when given) as the
    OpenMP/MKL thread count of the process started with it (torch's float sums, and so trained weights, depend on it).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    if threads is not None:
        if isinstance(threads, bool) or int(threads) != threads or threads < 1:
            raise ValueError(f"threads must be an integer >= 1, got {threads!r}.")
        env.update({name: str(int(threads)) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
    return env


def required_bundle_roots(bundle_dir: str | os.PathLike) -> dict[str, str]:
    """``run`` keyword -> root of each other bundle the benchmark declares in ``REQUIRED_BUNDLES``.

    A bundle's configs never reach into a sibling (a zip stands alone); a benchmark that trains or runs another
    bundle (the CycleGANSeg pipeline needs a SwinSSegNet) names it, and this tool passes its folder, a sibling under
    the same ``bundles`` folder.

    Raises:
        RuntimeError: naming the bundle and the missing sibling.
    """
    bundle_dir = Path(bundle_dir).resolve()
    roots = {}
    for argument, name in read_benchmark_info(bundle_dir).required_bundles.items():
        root = bundle_dir.parent / name
        if not (root / "configs").is_dir():
            raise RuntimeError(
                f"bundle `{bundle_dir.name}`: its benchmark needs bundle `{name}` ({argument}), not found at {root}."
            )
        roots[argument] = str(root)
    return roots


def result_path(out: str | os.PathLike, bundle: str) -> Path:
    """``<out>/<bundle>_rows.json``: a bundle's last result (rows, seconds, peak RSS), kept beside the merged table.

    It sits next to ``benchmark.md`` (not in the git-ignored ``<out>/<bundle>/`` run folder) so that it is committed
    with the table: ``--merge_only`` in a fresh clone re-merges after rerunning one bundle, without rerunning the rest.
    """
    return Path(out) / f"{bundle}_rows.json"


def write_bundle_result(out: str | os.PathLike, bundle: str, result: dict[str, Any]) -> Path:
    """Write :func:`result_path` (compact JSON, replaced atomically so a stopped run never leaves half a file)."""
    path = result_path(out, bundle)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(result, separators=(",", ":"), default=float) + "\n")
    partial.replace(path)
    return path


def details_path(out: str | os.PathLike, bundle: str) -> Path:
    """``<out>/<bundle>_details.json``: what the bundle's last run recorded beside its rows
    (:func:`write_bundle_details`)."""
    return Path(out) / f"{bundle}_details.json"


def write_bundle_details(out: str | os.PathLike, bundle: str, folders: Sequence[str]) -> Path | None:
    """Gather the :data:`DETAILS_FILE` that the run's processes wrote in their folders (relative to
    ``<out>/<bundle>``: ``.`` for one process, ``seed_process_<seed>[_<part>]`` for seed processes) into
    ``<out>/<bundle>_details.json``, ``{folder: details}`` in the order given; the path, or None when no process
    wrote one (then an earlier run's file is removed: it described rows this run replaced)."""
    run_dir, target = Path(out) / bundle, details_path(out, bundle)
    details = {
        folder: json.loads((run_dir / folder / DETAILS_FILE).read_text())
        for folder in folders
        if (run_dir / folder / DETAILS_FILE).is_file()
    }
    if not details:
        target.unlink(missing_ok=True)
        return None
    partial = target.with_name(target.name + ".partial")
    partial.write_text(json.dumps(details, indent=1, default=float) + "\n")
    partial.replace(target)
    return target


def read_bundle_result(out: str | os.PathLike, bundle: str) -> dict[str, Any]:
    """The result an earlier run of ``bundle`` left in :func:`result_path` (``--merge_only``).

    Raises:
        RuntimeError: naming the file when it is missing or holds no list of row dicts.
    """
    path = result_path(out, bundle)
    if not path.is_file():
        raise RuntimeError(f"{path} does not exist: run this bundle's benchmark first (without --merge_only).")
    result = json.loads(path.read_text())
    rows = result.get("rows")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise RuntimeError(f"{path} holds no list of row dicts.")
    return result


def merge_entries(out: Path, report: str, entries: Mapping[str, Any]) -> tuple[Path, dict[str, Any]]:
    """Merge ``entries`` into ``<out>/<report>.json`` (other keys kept; what JSON lacks written as ``str``): the file
    and the merged entries. The report tools (side by side, batching, allocator modes) keep each run's entries so."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{report}.json"
    merged = json.loads(path.read_text()) if path.is_file() else {}
    merged.update(entries)
    path.write_text(json.dumps(merged, indent=2, default=str) + "\n")
    return path, merged


def read_previous_merged(out: str | os.PathLike) -> dict[str, Any]:
    """``<out>/benchmark.json`` as written by :func:`write_merged` (``{}`` when absent): ``--merge_only`` carries the
    rows and run entry of a bundle without a rows file over from it (its last merged run, not rerun since)."""
    path = Path(out) / "benchmark.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _worker(
    bundle_dir: Path,
    data_root: str | os.PathLike,
    out_dir: Path,
    quick: bool,
    seeds: Sequence[int] | None,
    seedless: bool = True,
    part: str | None = None,
) -> tuple[list[str], Path, Path]:
    """The worker's command line, its result file and its log file (both under ``out_dir``, which it creates).

    ``seedless=False`` tells a bundle whose ``run`` takes a ``seedless`` argument to skip its rows that no training
    seed changes (e.g. a registration baseline): a seed process other than the first computes them for nothing,
    since :func:`merge_seed_rows` keeps the first process's. ``part`` (one of the bundle's ``BENCHMARK_PARTS``) is
    passed to ``run`` as ``part=``, which then computes only that part's rows."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result_file, log_file = out_dir / "rows.json", out_dir / "benchmark.log"
    result_file.unlink(missing_ok=True)
    (out_dir / DETAILS_FILE).unlink(missing_ok=True)  # an earlier run's: only this run's may be collected
    command = [sys.executable, "-c", _WORKER, str(bundle_dir), str(Path(data_root).resolve()), str(out_dir)]
    command += ["1" if quick else "0", str(result_file), json.dumps(required_bundle_roots(bundle_dir))]
    command.append("" if seeds is None else ",".join(str(int(seed)) for seed in seeds))
    command.append("1" if seedless else "0")
    command.append(part or "")
    return command, result_file, log_file


def _worker_result(bundle_dir: Path, code: int, result_file: Path, log_file: Path) -> dict[str, Any]:
    """The worker's result, or a RuntimeError naming the bundle, the exit status and the log's end."""
    if code != 0 or not result_file.is_file():
        tail = log_file.read_text()[-2000:]
        raise RuntimeError(f"bundle `{bundle_dir.name}`: benchmark failed (exit {code}, log {log_file}):\n{tail}")
    with open(result_file) as f:
        result = json.load(f)
    rows = result.get("rows")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise RuntimeError(
            f"bundle `{bundle_dir.name}`: scripts.benchmark.run returned {type(rows).__name__}, "
            "expected a list of dicts."
        )
    return result


def run_bundle(
    bundle_dir: str | os.PathLike,
    data_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    quick: bool = False,
    timeout: float | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Run one bundle's ``scripts.benchmark.run`` in a fresh process started in the bundle root.

    The process output goes to ``<out_dir>/benchmark.log``; ``threads`` (default: torch's own choice) sets its
    thread count.

    Returns:
        ``{"rows": [...], "seconds": wall seconds of run(), "peak_rss_mb": the process's peak RSS, "machine": the
        process's :func:`common.benchmarking.machine_summary`}``.

    Raises:
        RuntimeError: naming the bundle and the log when the benchmark fails or returns no list of dicts.
    """
    bundle_dir, out_dir = Path(bundle_dir).resolve(), Path(out_dir).resolve()
    command, result_file, log_file = _worker(bundle_dir, data_root, out_dir, quick, None)
    with open(log_file, "w") as log:
        try:
            code = subprocess.run(
                command,
                cwd=bundle_dir,
                env=env_with_repo(threads),
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            ).returncode
        except subprocess.TimeoutExpired:
            raise RuntimeError(
                f"bundle `{bundle_dir.name}`: benchmark ran past {timeout} s (log: {log_file})."
            ) from None
    return _worker_result(bundle_dir, code, result_file, log_file)


@dataclass(eq=False)
class _SeedProcess:
    """One running seed process of :func:`run_seed_process_pool`."""

    bundle: str
    seed: int
    part: str | None
    process: subprocess.Popen
    log: Any
    result_file: Path
    log_file: Path


def _check_seeds(seeds: Sequence[int]) -> list[int]:
    seeds = [int(seed) for seed in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seed processes need distinct training seeds, got {seeds}.")
    return seeds


def seed_process_folder(seed: int | str, part: str | None = None) -> str:
    """``seed_process_<seed>``, or ``seed_process_<seed>_<part>`` for one part of a bundle with ``BENCHMARK_PARTS``."""
    return f"seed_process_{seed}" + (f"_{part}" if part else "")


def _process_name(seed: int, part: str | None) -> str:
    return f"seed process {seed}" + (f" part {part}" if part else "")


def run_seed_process_pool(
    bundles: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    data_root: str | os.PathLike,
    seeds: Sequence[int],
    max_processes: int | None = None,
    quick: bool = False,
    timeout: float | None = None,
    threads: int | None = None,
) -> dict[str, dict[str, Any] | RuntimeError]:
    """Run each bundle's benchmark as one process per training seed (and part), from one queue, and merge its rows.

    ``bundles`` holds (bundle folder, its out folder) pairs. The queue holds every bundle's seeds in the given order
    (the first bundle's first): at most ``max_processes`` (default: one per seed) run at once, and the next starts
    as soon as one ends, so that the cores stay busy across bundles; list the longest bundle first. Each process is
    :func:`run_bundle`'s with ``run(..., seeds=(seed,))`` and its own out folder (``<bundle out>/seed_process_<seed>``:
    each writes its own copy of the benchmark data, so no two write one file), limited to ``threads`` threads
    (default: the CPUs shared among ``max_processes``, at least 1). A bundle that names ``BENCHMARK_PARTS`` (disjoint
    groups of rows, e.g. the variants that need no pre-training and those of each pre-training) gets one process per
    seed and part instead (``run(..., seeds=(seed,), part=name)``, folder ``seed_process_<seed>_<part>``): smaller
    jobs that two cores share more evenly; a seed's rows are its parts' in the order named. Only the first (lowest)
    seed's process (its last part's) computes the seed-independent rows where the bundle's ``run`` takes
    ``seedless``. On a CPU with few cores this is much faster than one process over the seeds, whose threads scale
    poorly on small networks; the float sums (and so the trained weights) are those of the thread count each
    process had, whatever ran beside it.

    Returns:
        bundle name -> ``{"rows": merge_seed_rows(...), "seconds": from its first process's start to its last one's
        end, "peak_rss_mb": the largest process's, "machine": its processes' machine summaries (distinct ones joined
        by "; "), "table": its processes' tables (``<seed>`` standing for the seed, ``<part>`` for the part),
        "seed_processes": {"<seed>" or "<seed>:<part>": {"seconds", "peak_rss_mb", "threads", "seed", "part",
        "machine"}}}``, or the RuntimeError naming the bundle, the seed (and part) and the log when one of its
        processes failed (its other processes are stopped, the other bundles go on) or it ran past
        ``timeout`` seconds from its first start.

    Raises:
        ValueError: for no seeds, repeated seeds or ``max_processes`` < 1.
    """
    seeds = _check_seeds(seeds)
    max_processes = len(seeds) if max_processes is None else int(max_processes)
    if max_processes < 1:
        raise ValueError(f"max_processes must be an integer >= 1, got {max_processes}.")
    threads = threads or max(1, (os.cpu_count() or 1) // max_processes)
    env = env_with_repo(threads)
    folders = {Path(bundle).resolve().name: (Path(bundle).resolve(), Path(out).resolve()) for bundle, out in bundles}
    parts: dict[str, tuple[str | None, ...]] = {
        name: read_benchmark_info(bundle_dir).parts or (None,) for name, (bundle_dir, _) in folders.items()
    }
    #: each bundle's process folders, ``<seed>`` (and ``<part>``) standing for the values, for messages and tables
    patterns = {name: seed_process_folder("<seed>", "<part>" if parts[name][0] else None) for name in folders}
    queue = [(name, seed, part) for name in folders for seed in seeds for part in parts[name]]
    started: dict[str, float] = {}
    ended: dict[str, float] = {}
    results: dict[str, dict[tuple[int, str | None], dict[str, Any]]] = {name: {} for name in folders}
    errors: dict[str, RuntimeError] = {}
    running: list[_SeedProcess] = []

    def stop(bundle: str) -> None:
        for entry in [entry for entry in running if entry.bundle == bundle]:
            entry.process.kill()
            entry.process.wait()
            entry.log.close()
            running.remove(entry)

    try:
        while queue or running:
            while queue and len(running) < max_processes:
                name, seed, part = queue.pop(0)
                if name in errors:
                    continue
                bundle_dir, out_dir = folders[name]
                seedless = seed == min(seeds) and part == parts[name][-1]
                command, result_file, log_file = _worker(
                    bundle_dir, data_root, out_dir / seed_process_folder(seed, part), quick, [seed], seedless, part
                )
                log = open(log_file, "w")
                process = subprocess.Popen(command, cwd=bundle_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
                started.setdefault(name, time.perf_counter())
                running.append(_SeedProcess(name, seed, part, process, log, result_file, log_file))
                print(f"  {name}: {_process_name(seed, part)} started", flush=True)
            for entry in list(running):  # poll all, so that a failure stops its bundle's other processes at once
                if entry not in running:  # stopped with its bundle
                    continue
                code = entry.process.poll()
                if code is None:
                    if timeout is not None and time.perf_counter() - started[entry.bundle] > timeout:
                        late = sorted(_process_name(e.seed, e.part) for e in running if e.bundle == entry.bundle)
                        errors[entry.bundle] = RuntimeError(
                            f"bundle `{entry.bundle}`: the benchmark's {', '.join(late)} ran past {timeout} s (logs: "
                            f"{folders[entry.bundle][1]}/{patterns[entry.bundle]}/benchmark.log)."
                        )
                        stop(entry.bundle)
                    continue
                running.remove(entry)
                entry.log.close()
                try:
                    result = _worker_result(folders[entry.bundle][0], code, entry.result_file, entry.log_file)
                except RuntimeError as error:
                    where = f"seed {entry.seed}" + (f" part {entry.part}" if entry.part else "")
                    errors[entry.bundle] = RuntimeError(f"{where}: {error}")
                    stop(entry.bundle)
                    continue
                results[entry.bundle][(entry.seed, entry.part)] = result
                ended[entry.bundle] = time.perf_counter()
                done = f"{_process_name(entry.seed, entry.part)} done in {result['seconds']:.0f} s"
                print(f"  {entry.bundle}: {done}", flush=True)
            if running:
                time.sleep(0.2)
    finally:
        for entry in running:
            if entry.process.poll() is None:
                entry.process.kill()
                entry.process.wait()
            entry.log.close()
    merged: dict[str, dict[str, Any] | RuntimeError] = {}
    for name, by_process in results.items():
        if name in errors:
            merged[name] = errors[name]
            continue
        merged[name] = {
            "rows": merge_seed_rows(
                {seed: [row for part in parts[name] for row in by_process[(seed, part)]["rows"]] for seed in seeds}
            ),
            "seconds": ended[name] - started[name],
            "peak_rss_mb": max(result["peak_rss_mb"] for result in by_process.values()),
            "machine": "; ".join(dict.fromkeys(str(result.get("machine")) for result in by_process.values())),
            "table": str(folders[name][1] / patterns[name] / "benchmark.md"),
            "seed_processes": {
                str(seed)
                + (f":{part}" if part else ""): {
                    "seconds": by_process[(seed, part)]["seconds"],
                    "peak_rss_mb": by_process[(seed, part)]["peak_rss_mb"],
                    "threads": threads,
                    "seed": seed,
                    "part": part,
                    "machine": by_process[(seed, part)].get("machine"),
                }
                for seed in seeds
                for part in parts[name]
            },
        }
    return merged


def merge_seed_rows(rows_by_seed: dict[int, list[dict]]) -> list[dict]:
    """One row list from the rows of processes that each trained other seeds (:func:`run_seed_process_pool`).

    A row with per-seed values (``per_seed``, the skeleton's rows) gets every process's seeds: per case the mean
    over all of them (:meth:`common.benchmarking.BenchmarkRow.from_seeds` with the row's ``seed_mean_skips_nan``, as
    one process over the seeds makes it) and ``seconds`` the processes' mean; a row of no seed (a speed row, a
    seed-independent one such as interpolation) is the first seed's process's, so a step timed there shared the CPU
    with the other seeds' training (time steps alone, e.g. with ``python -m tools.side_by_side``). The order is the
    first process's.

    Raises:
        RuntimeError: naming the seed and the row when a process lacks a row with per-seed values, or has a row of
            a training seed without them (its values would stand for that one seed).
    """
    from common.benchmarking import BenchmarkRow

    for seed, rows in sorted(rows_by_seed.items()):
        for row in rows:
            if row.get("seeds") and not row.get("per_seed"):
                raise RuntimeError(
                    f"seed {seed}'s process wrote row {row['method']!r} / {row['metric']!r} of seeds {row['seeds']} "
                    "without per-seed values: its values are one seed's, and merging would report them for all. The "
                    "bundle's benchmark must keep per_seed for one seed too (BenchmarkRow.from_runs / from_seeds)."
                )
    first = rows_by_seed[min(rows_by_seed)]
    merged = []
    for row in first:
        if not row.get("per_seed"):
            merged.append(row)
            continue
        per_seed: dict[int, dict[str, float]] = {}
        seconds = []
        for seed, rows in sorted(rows_by_seed.items()):
            match = next(
                (r for r in rows if r.get("method") == row["method"] and r.get("metric") == row["metric"]), None
            )
            if match is None or not match.get("per_seed"):
                raise RuntimeError(f"seed {seed}'s process has no per-seed row {row['method']!r} / {row['metric']!r}.")
            per_seed.update({int(key): dict(pairs) for key, pairs in match["per_seed"].items()})
            if _number(match.get("seconds")) is not None:
                seconds.append(float(match["seconds"]))
        skips_nan = bool(row.get("seed_mean_skips_nan", False))
        combined = BenchmarkRow.from_seeds(row["method"], row["metric"], per_seed, seed_mean_skips_nan=skips_nan)
        content = combined.to_dict()
        merged.append(
            {
                **row,
                **{key: content[key] for key in ("values", "seeds", "per_seed", "mean", "std", "n")},
                "seconds": sum(seconds) / len(seconds) if seconds else row.get("seconds"),
            }
        )
    return merged


# ----------------------------------------------------------------------------------------------- merging
def _number(value: Any) -> float | None:
    """A finite float, or None (NaN, missing, non-numeric, bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _costs(row: dict) -> dict[str, float | None]:
    seconds = _number(row.get("seconds"))
    if seconds is None:
        seconds = _number(row.get("step_seconds"))
    if seconds is None and ("train_seconds" in row or "eval_seconds" in row):
        parts = [_number(row.get(k)) for k in ("train_seconds", "eval_seconds")]
        seconds = sum(p for p in parts if p is not None) if any(p is not None for p in parts) else None
    share = _number(row.get("ceiling_share"))
    return {
        "seconds": seconds,
        "baseline_seconds": _number(row.get("baseline_seconds")),
        "gflop_per_step": _number(row.get("gflop_per_step")),
        "conv_ceiling_share": share if share is not None else _number(row.get("conv_ceiling_share")),
        "peak_rss_mb": _number(row.get("peak_rss_mb")),
    }


def _metric_keys(row: dict) -> list[str]:
    return [k for k, v in row.items() if k not in _COST_KEYS | _ROW_KEYS and _number(v) is not None]


def _merged_row(
    info: BenchmarkInfo, method: str, baseline_method: str | None, metric_key: str | None, **values
) -> dict:
    paper = info.paper_numbers.get((method, baseline_method or "", metric_key or ""))
    row = {
        "bundle": info.name,
        "method": method,
        "baseline_method": baseline_method,
        "metric": info.metric_labels.get(metric_key, metric_key) if metric_key else values.pop("metric", None),
        "metric_key": metric_key,
        "baseline": None,
        "ours": None,
        "n_cases": None,
        "difference": None,
        "ci_low": None,
        "ci_high": None,
        "wilcoxon_p": None,
        "n_seeds": None,
        "seeds_agreeing": None,
        "seed_differences": None,
        "ordering": None,
        "paper_baseline": paper[0] if paper else None,
        "paper_ours": paper[1] if paper else None,
        "paper_source": paper[2] if paper else None,
    }
    row.update(values)
    return row


def _is_case_row(row: dict) -> bool:
    """A row of the skeleton's type (``common.benchmarking.BenchmarkRow`` as a dict)."""
    return isinstance(row.get("values"), list) and "metric" in row


def _summary(row: dict) -> dict:
    """A skeleton row without its per-case (and per-seed) values, for a merged row's ``source``."""
    return {k: v for k, v in row.items() if k not in ("values", "per_seed")}


def _case_rows(info: BenchmarkInfo, rows: Sequence[dict]) -> list[dict]:
    """Merged rows of skeleton rows: comparisons with a bootstrap interval, then rows in no comparison."""
    from common.benchmarking import BenchmarkRow, compare

    parsed = {(r["method"], r["metric"]): (BenchmarkRow.from_dict(r), r) for r in rows}
    merged: list[dict] = []
    compared: set[tuple[str, str]] = set()
    for ours_method, baseline_method in info.comparisons:
        for (method, metric), (ours, source) in parsed.items():
            if method != ours_method or (baseline_method, metric) not in parsed or not ours.values:
                continue
            baseline, baseline_source = parsed[(baseline_method, metric)]
            result = compare(ours, baseline)
            compared |= {(method, metric), (baseline_method, metric)}
            costs = _costs(source)
            costs["baseline_seconds"] = _costs(baseline_source)["seconds"]
            merged.append(
                _merged_row(
                    info,
                    ours_method,
                    baseline_method,
                    metric,
                    baseline=_number(baseline.mean),
                    ours=_number(ours.mean),
                    n_cases=result.n_cases,
                    difference=_number(result.difference),
                    ci_low=_number(result.low),
                    ci_high=_number(result.high),
                    wilcoxon_p=_number(result.wilcoxon_p),
                    n_seeds=result.n_seeds,
                    seeds_agreeing=result.seeds_agreeing if result.n_seeds else None,
                    seed_differences={str(s): _number(d) for s, d in result.seed_differences},
                    ordering=result.verdict,
                    source=_summary(source),
                    **costs,
                )
            )
    for (method, metric), (row, source) in parsed.items():
        if (method, metric) in compared:
            continue
        summary = _summary(source)
        if not row.values:  # a cost-only row, e.g. the speed of one training step
            label = SPEED_METRIC if "step_seconds" in source else info.metric_labels.get(metric, metric)
            merged.append(_merged_row(info, method, None, None, metric=label, source=summary, **_costs(source)))
        else:
            n = len(row.scored_values)
            merged.append(
                _merged_row(
                    info, method, None, metric, ours=_number(row.mean), n_cases=n, source=summary, **_costs(source)
                )
            )
    return merged


def normalize_rows(bundle: str | BenchmarkInfo, rows: Sequence[dict]) -> list[dict]:
    """Map one bundle's benchmark rows into merged rows (see the module docstring for the rules).

    Merged rows have the keys ``bundle, method, baseline_method, metric, metric_key, baseline, ours, n_cases,
    difference, ci_low, ci_high, wilcoxon_p, n_seeds, seeds_agreeing, seed_differences, ordering, paper_baseline,
    paper_ours, paper_source, seconds, baseline_seconds, gflop_per_step, conv_ceiling_share, peak_rss_mb, source``
    (``source``: the bundle's own row, per-case and per-seed values left out). The comparison keys are filled only
    for skeleton rows: ``n_seeds`` is then the number of seeds checked (0: not checked), ``seeds_agreeing`` how many
    of them have the overall sign and ``seed_differences`` each seed's mean difference (seed as a string).

    Args:
        bundle: the bundle's name, or its :class:`BenchmarkInfo` (comparisons, labels, paper numbers).
        rows: the rows its ``scripts.benchmark.run`` returned.

    Raises:
        ValueError: naming the bundle and the row when a row has no ``method``.
    """
    info = bundle if isinstance(bundle, BenchmarkInfo) else BenchmarkInfo(bundle)
    for index, row in enumerate(rows):
        if not row.get("method"):
            raise ValueError(f"bundle `{info.name}`: row {index} has no `method`: {row}")
    merged = _case_rows(info, [r for r in rows if _is_case_row(r)])
    rows = [r for r in rows if not _is_case_row(r)]
    by_method = {row["method"]: row for row in rows if "metric" not in row}
    compared: set[str] = set()
    comparisons = list(info.comparisons)
    comparisons += [(r["method"], r["baseline_method"]) for r in by_method.values() if r.get("baseline_method")]
    for ours_method, baseline_method in comparisons:
        if ours_method not in by_method or baseline_method not in by_method:
            continue
        ours_row, baseline_row = by_method[ours_method], by_method[baseline_method]
        compared |= {ours_method, baseline_method}
        costs = _costs(ours_row)
        costs["baseline_seconds"] = _costs(baseline_row)["seconds"]
        for key in _metric_keys(ours_row):
            merged.append(
                _merged_row(
                    info,
                    ours_method,
                    baseline_method,
                    key,
                    baseline=_number(baseline_row.get(key)),
                    ours=_number(ours_row[key]),
                    source=ours_row,
                    **costs,
                )
            )
    for row in rows:
        if "metric" in row:  # already one row per metric
            metric_key = row.get("metric_key")
            merged.append(
                _merged_row(
                    info,
                    row["method"],
                    row.get("baseline_method"),
                    metric_key,
                    metric=row["metric"],
                    baseline=_number(row.get("baseline")),
                    ours=_number(row.get("ours")),
                    source=row,
                    **_costs(row),
                )
            )
        elif row["method"] not in compared:
            keys = _metric_keys(row)
            if not keys:  # a cost-only row, e.g. the speed of one training step
                label = SPEED_METRIC if "step_seconds" in row else None
                merged.append(_merged_row(info, row["method"], None, None, metric=label, source=row, **_costs(row)))
            for key in keys:
                merged.append(
                    _merged_row(info, row["method"], None, key, ours=_number(row[key]), source=row, **_costs(row))
                )
    return merged


def merge_results(results: dict[str, Sequence[dict]], infos: dict[str, BenchmarkInfo] | None = None) -> list[dict]:
    """Merged rows of several bundles, bundles in the given order (see :func:`normalize_rows`)."""
    infos = infos or {}
    return [row for bundle, rows in results.items() for row in normalize_rows(infos.get(bundle, bundle), rows)]


def write_cases(bundle: str, rows: Sequence[dict], out_dir: str | os.PathLike) -> Path | None:
    """Write the per-case values of a bundle's skeleton rows to ``<out_dir>/<bundle>_cases.csv`` (None if none)."""
    case_rows = [r for r in rows if _is_case_row(r) and r["values"]]
    if not case_rows:
        return None
    from common.benchmarking import BenchmarkRow, write_cases_csv

    return write_cases_csv([BenchmarkRow.from_dict(r) for r in case_rows], Path(out_dir) / f"{bundle}_cases.csv")


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def _paper_cell(row: dict) -> str:
    if row.get("paper_source") is None:
        return ""
    return f"{_fmt(row['paper_baseline']) or '-'} / {_fmt(row['paper_ours']) or '-'} ({row['paper_source']})"


def _difference_cell(row: dict) -> str:
    if row.get("difference") is None:
        return ""
    return f"{_fmt(row['difference'])} [{_fmt(row.get('ci_low'))}, {_fmt(row.get('ci_high'))}]"


def _wilcoxon_cell(row: dict) -> str:
    if row.get("n_seeds") is None:  # no paired comparison in this row
        return ""
    return _fmt(row.get("wilcoxon_p")) or "-"


def _seeds_cell(row: dict) -> str:
    if not row.get("n_seeds"):  # no paired comparison, or seeds not checked
        return "" if row.get("n_seeds") is None else "-"
    agreeing, n_seeds = row["seeds_agreeing"], row["n_seeds"]
    return f"{agreeing}/{n_seeds} agree" if agreeing == n_seeds else f"{agreeing}/{n_seeds}"


_CELLS: dict[str, Callable[[dict], str]] = {
    "paper": _paper_cell,
    "difference": _difference_cell,
    "wilcoxon_p": _wilcoxon_cell,
    "seeds_agreeing": _seeds_cell,
}


def format_markdown(rows: Sequence[dict], header_lines: Sequence[str]) -> str:
    """The merged table as Markdown: a title, ``header_lines`` as paragraphs, then one table row per row."""
    lines = ["# Benchmark: our measurements on phantom data, the papers' numbers beside them", ""]
    for text in header_lines:
        lines += [text, ""]
    lines.append("| " + " | ".join(name for name, _ in MARKDOWN_COLUMNS) + " |")
    lines.append("|" + "---|" * len(MARKDOWN_COLUMNS))
    for row in rows:
        cells = [_CELLS[key](row) if key in _CELLS else _fmt(row.get(key)) for _, key in MARKDOWN_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_merged(
    rows: Sequence[dict], out_dir: str | os.PathLike, header_lines: Sequence[str], extra: dict | None = None
) -> tuple[Path, Path]:
    """Write ``<out_dir>/benchmark.md`` and ``<out_dir>/benchmark.json``; return their paths.

    The JSON holds ``header`` (the lines), ``columns`` (Markdown header -> row key), ``rows`` (NaN as null) and
    ``extra``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md_path, json_path = out / "benchmark.md", out / "benchmark.json"
    md_path.write_text(format_markdown(rows, header_lines))
    content = {
        "header": list(header_lines),
        "columns": {name: key for name, key in MARKDOWN_COLUMNS},
        "rows": list(rows),
        **(extra or {}),
    }
    json_path.write_text(json.dumps(_json_safe(content), indent=2, allow_nan=False, default=str) + "\n")
    return md_path, json_path


def _machine() -> str:
    try:
        from common.benchmarking import machine_summary

        return machine_summary()
    except ImportError:  # torch missing: still say where it ran
        return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def _seed_process_text(seed_processes: dict[str, dict] | None) -> str:
    """``", seed processes 0, 1, 2 of 1 thread(s) each"`` (the thread count the weights depend on; ``" (each in
    parts a, b)"`` after the seeds for a bundle with ``BENCHMARK_PARTS``), or ``""``; the seeds in numeric order (the
    run records them in the order the processes finished)."""
    if not seed_processes:
        return ""
    threads = sorted({str(p.get("threads", "?")) for p in seed_processes.values()})
    seeds = sorted({int(key.split(":")[0]) for key in seed_processes})
    parts = list(dict.fromkeys(key.split(":", 1)[1] for key in seed_processes if ":" in key))
    in_parts = f" (each in parts {', '.join(parts)})" if parts else ""
    return f", seed processes {', '.join(map(str, seeds))}{in_parts} of {'/'.join(threads)} thread(s) each"


def _overlay_text(overlay: dict[str, Any]) -> str:
    return ", ".join(f"{k} {json.dumps(v)}" for k, v in overlay.items())


def header_lines(
    infos: dict[str, BenchmarkInfo], runs: dict[str, dict], quick: bool, command: str, seconds: float, machine: str
) -> list[str]:
    """The merged table's header paragraphs, from the run and each bundle's own notes (nothing written by hand)."""
    from common.benchmarking.compare import MIN_ORDERED_CASES, TOO_FEW_CASES

    mode = "quick" if quick else "full"
    lines = [
        "**Data: phantoms that each bundle's benchmark writes with its own data seed (the generators of "
        "`python -m tools.make_data`; not the papers' data).** Every number in the "
        "baseline/ours columns was measured in this run, the baseline beside its method on the same split.",
        f"Machine: {machine}. Mode: {'quick (small networks, few epochs)' if quick else 'full'}. "
        f"Command: `{command}`; total {seconds:.0f} s.",
        "Per bundle: "
        + "; ".join(
            f"`{name}` {info['status']}"
            + (
                f" in {info['seconds']:.0f} s, process peak RSS {info['process_peak_rss_mb']:.0f} MiB, "
                f"own table {info['table']}"
                + _seed_process_text(info.get("seed_processes"))
                + (f", details {Path(info['details']).name}" if info.get("details") else "")
                + (f", on {info['machine']}" if info.get("machine") else "")
                if info["status"] == "PASS"
                else f" (log {info['log']})"
            )
            for name, info in runs.items()
        )
        + ".",
    ]
    for name, info in infos.items():
        settings = []
        if quick and info.quick_overlay:
            settings.append(f"networks of configs/quick.json ({_overlay_text(info.quick_overlay)})")
        if info.mode_notes.get(mode):
            settings.append(info.mode_notes[mode])
        if settings:
            lines.append(f"`{name}` ({mode}): " + "; ".join(settings) + ".")
    lines += [
        "Columns: seconds = the bundle's time for the method (training + evaluation, or one step for speed rows); "
        "GFLOP/step and share of the measured conv ceiling = one training step's FLOPs and its achieved GFLOP/s "
        "over a plain 3x3 conv's, measured in the same run; peak RSS = the row's own measurement.",
        "Ordering: ours - baseline is the mean of the per-case differences (a case's value is its mean over the "
        "seeds) over the n cases both scored, with a bootstrap 95% interval (10000 resamples of the cases, seed 0). "
        "Wilcoxon p = two-sided signed-rank test of the same differences, zero differences dropped (- with fewer "
        "than 6 non-zero); it is reported, not used for the ordering. Seeds = how many seeds' own mean difference "
        'has the sign of the overall one ("3/3 agree"; - when the rows carry no per-seed values for the same 2 or '
        "more seeds). A method is named better only when the interval excludes 0, every seed agrees and at least "
        f"{MIN_ORDERED_CASES} cases paired (the project asks for about 30 per comparison); "
        '"(seeds not checked)" follows the name when there were no per-seed values, "not separated (seeds '
        'disagree)" when the interval excludes 0 but a seed does not agree, '
        f'"{TOO_FEW_CASES}" when only the count stops it, and "not separated" when the interval '
        "holds 0. Every per-case value is in `<bundle>_cases.csv` beside this file.",
    ]
    lines += [info.paper_notes for info in infos.values() if info.paper_notes]
    return lines


# ----------------------------------------------------------------------------------------------- driver
def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (1 when a bundle's benchmark failed)."""
    parser = argparse.ArgumentParser(prog="python -m tools.benchmark", description=__doc__.split("\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every bundle with scripts/benchmark.py")
    which.add_argument("--bundles", nargs="+", help="bundle folder names")
    parser.add_argument("--quick", action="store_true", help="small networks and few epochs (minutes on a CPU)")
    parser.add_argument(
        "--data_root",
        "--data-root",
        default="data",
        help="folder handed to each bundle's run (default: data); the bundles' benchmarks write their own data",
    )
    parser.add_argument("--out", default="benchmarks", help="output folder (default: benchmarks)")
    parser.add_argument(
        "--bundles_dir", "--bundles-dir", default=str(REPO_ROOT / "bundles"), help="folder holding the bundles"
    )
    parser.add_argument("--timeout", type=float, default=None, help="seconds allowed per bundle (default: none)")
    parser.add_argument(
        "--merge_only",
        "--merge-only",
        action="store_true",
        help="run nothing: merge the rows that earlier runs left in <out>/<bundle>_rows.json (e.g. bundles run "
        "as parallel processes, one --bundles each, or one bundle rerun in a fresh clone)",
    )
    parser.add_argument(
        "--seed_processes",
        "--seed-processes",
        default=None,
        help="training seeds, e.g. 0,1,2: each bundle runs one process per seed (--max_processes at once, the CPUs "
        "shared among them), and their rows are merged as one process over the seeds gives them (up to the float "
        "sums of the thread count); default: one process over the bundle's own seeds",
    )
    parser.add_argument(
        "--max_processes",
        "--max-processes",
        type=int,
        default=None,
        help="with --seed_processes: at most this many processes at once, from one queue over the bundles in the "
        "order named (list the longest first), the next starting as soon as one ends; default: one per seed",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads of each benchmark process (OMP_NUM_THREADS). Trained weights depend on it (float sums), so "
        "a committed table is reproduced at its own thread count, e.g. --seed_processes 0,1,2 --threads 1 as on the "
        "2-core machine; default: the CPUs shared among the processes run at once, or torch's choice for one process",
    )
    args = parser.parse_args(argv)
    from common.benchmarking import int_tuple

    try:
        seed_processes = None if args.seed_processes is None else list(int_tuple(args.seed_processes))
        if seed_processes == []:
            raise ValueError("no seed")
    except ValueError:
        print(f"FAIL: --seed_processes takes integers separated by commas, got {args.seed_processes!r}")
        return 2
    if args.threads is not None and args.threads < 1:
        print(f"FAIL: --threads takes an integer >= 1, got {args.threads}")
        return 2
    if args.max_processes is not None and (args.max_processes < 1 or not seed_processes):
        print(f"FAIL: --max_processes takes an integer >= 1 and needs --seed_processes, got {args.max_processes}")
        return 2

    try:
        bundles = find_benchmark_bundles(args.bundles_dir, None if args.all else args.bundles)
        infos = {bundle.name: read_benchmark_info(bundle) for bundle in bundles}
    except (FileNotFoundError, ValueError) as e:
        print(f"FAIL: {e}")
        return 2
    if not bundles:
        print(f"FAIL: no bundle with {BENCHMARK_SCRIPT} under {args.bundles_dir}")
        return 2
    data_root, out = Path(args.data_root).resolve(), Path(args.out).resolve()
    start = time.perf_counter()
    merged: dict[str, list[dict]] = {}  # bundle -> its merged rows, in the bundles' order
    runs: dict[str, dict] = {}
    failures: list[str] = []
    carried: list[str] = []
    previous = read_previous_merged(out) if args.merge_only else {}  # read once, before the merge rewrites it
    pooled: dict[str, dict[str, Any] | RuntimeError] = {}
    if seed_processes and not args.merge_only:
        print(f"benchmark {', '.join(b.name for b in bundles)}: seed processes {seed_processes}", flush=True)
        pooled = run_seed_process_pool(
            [(bundle, out / bundle.name) for bundle in bundles],
            data_root,
            seed_processes,
            max_processes=args.max_processes,
            quick=args.quick,
            timeout=args.timeout,
            threads=args.threads,
        )
    for bundle in bundles:
        print(f"benchmark {bundle.name} ({'quick' if args.quick else 'full'}) -> {out / bundle.name}", flush=True)
        if args.merge_only and not result_path(out, bundle.name).is_file():
            rows = [r for r in previous.get("rows", []) if isinstance(r, dict) and r.get("bundle") == bundle.name]
            run = dict(previous.get("runs", {}).get(bundle.name, {}))
            if rows and run.get("status") == "PASS":  # not rerun since the rows files exist: keep its last merge
                merged[bundle.name], runs[bundle.name] = rows, {**run, "carried_over": True}
                carried.append(bundle.name)
                continue
        details: Path | None = None  # <out>/<bundle>_details.json, when this run wrote one
        try:
            if args.merge_only:
                result = read_bundle_result(out, bundle.name)
                kept = details_path(out, bundle.name)  # the file the bundle's own run left, if any
                details = kept if kept.is_file() else None
            elif seed_processes:
                result = pooled[bundle.name]
                if isinstance(result, RuntimeError):
                    raise result
            else:
                result = run_bundle(
                    bundle, data_root, out / bundle.name, quick=args.quick, timeout=args.timeout, threads=args.threads
                )
            if not args.merge_only:
                write_bundle_result(out, bundle.name, result)
                processes = result.get("seed_processes") or {}
                folders = [seed_process_folder(p["seed"], p["part"]) for p in processes.values()] or ["."]
                details = write_bundle_details(out, bundle.name, folders)
        except RuntimeError as e:
            print(f"FAIL: {e}", flush=True)
            failures.append(bundle.name)
            runs[bundle.name] = {"status": "FAIL", "log": str(out / bundle.name / "benchmark.log")}
            continue
        merged[bundle.name] = merge_results({bundle.name: result["rows"]}, infos)
        runs[bundle.name] = {
            "status": "PASS",
            "seconds": result["seconds"],
            "process_peak_rss_mb": result["peak_rss_mb"],
            "table": str(out / bundle.name / "benchmark.md"),
        }
        if result.get("machine"):  # rows files written before 2026-12-04 do not name it
            runs[bundle.name]["machine"] = result["machine"]
        if result.get("seed_processes"):  # each process wrote its own table, of its seed (and part)
            default = str(out / bundle.name / seed_process_folder("<seed>") / "benchmark.md")
            runs[bundle.name]["table"] = result.get("table", default)
            runs[bundle.name]["seed_processes"] = result["seed_processes"]
        cases = write_cases(bundle.name, result["rows"], out)
        if cases is not None:
            runs[bundle.name]["cases"] = str(cases)
        if details is not None:
            runs[bundle.name]["details"] = str(details)

    rows = [row for bundle_rows in merged.values() for row in bundle_rows]
    command = (
        "python -m tools.benchmark "
        + ("--all" if args.all else "--bundles " + " ".join(args.bundles))
        + f"{' --quick' if args.quick else ''} --data_root {args.data_root} --out {args.out}"
        + (f" --seed_processes {','.join(map(str, seed_processes))}" if seed_processes else "")
        + (f" --max_processes {args.max_processes}" if args.max_processes else "")
        + (f" --threads {args.threads}" if args.threads else "")
    )
    seconds = time.perf_counter() - start
    if args.merge_only:
        seconds = sum(info.get("seconds", 0.0) for info in runs.values())
    # a merge runs nothing: the numbers are from each bundle's own run, on the machine its entry names
    machine = "each bundle's own run's (in its entry below where recorded)" if args.merge_only else _machine()
    header = header_lines(infos, runs, args.quick, command, seconds, machine)
    if args.merge_only:
        header.insert(
            2,
            "Merged from each bundle's own run (`--bundles <name>` with the same options, each its own process, "
            f"possibly at the same time) with `{command} --merge_only`; total = the sum of the bundles' seconds.",
        )
    if carried:
        header.insert(
            3 if args.merge_only else 2,
            "Carried over unchanged from the previous merged table (no `<bundle>_rows.json`: not rerun since): "
            + ", ".join(f"`{name}`" for name in carried)
            + ".",
        )
    md_path, json_path = write_merged(rows, out, header, extra={"runs": runs, "machine": machine})
    print(md_path.read_text())
    print(f"wrote {md_path} and {json_path}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
