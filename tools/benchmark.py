"""Run every bundle's benchmark and merge the results into one table, with the papers' numbers beside ours.

Usage (from the repository root)::

    python -m tools.benchmark --all [--quick] [--data_root data] [--out benchmarks]
    python -m tools.benchmark --bundles lge_mi_sr_segmentation --quick

For every bundle with ``scripts/benchmark.py`` (``--all``, or the ``--bundles`` named), a fresh Python process
(every bundle has its own ``scripts`` package, so two cannot share one process) starts in the bundle root, imports
``scripts.benchmark`` and calls ``run(data_root, out_dir=<out>/<bundle>, quick=...)``, which trains and scores the
bundle's method and baselines in that one run and returns its table rows. The default data is written first when
``<data_root>/DTI_LGE_MI`` is missing (``python -m tools.make_data --out <data_root>``, only the missing datasets).

The rows are merged into ``<out>/benchmark.md`` and ``<out>/benchmark.json`` with the columns of
:data:`MARKDOWN_COLUMNS`. Each bundle's rows are mapped into them (:func:`normalize_rows`):

- rows that already say ``metric``/``ours`` (and optionally ``baseline_method``/``baseline``) are kept as they are;
- "wide" rows (one row per method, one key per metric, e.g. ``test_dice_mean``) give one row per metric; the
  comparisons of :data:`COMPARISONS` (or a row's own ``baseline_method``) put a baseline's value beside ours, and
  methods in no comparison keep a row of their own with only ``ours``;
- ``seconds`` (or ``step_seconds``, or ``train_seconds`` + ``eval_seconds``), ``gflop_per_step``,
  ``ceiling_share`` (achieved GFLOP/s over the conv ceiling measured in the same run) and ``peak_rss_mb`` fill the
  cost columns; a column a row does not give stays empty.

The papers' own numbers (:data:`PAPER_NUMBERS`) are shown beside ours as "theirs", measured on their private data;
ours are on phantom data, so the two are not comparable in value, only in ordering. Exit status: 1 when a bundle's
benchmark fails (the others are still merged), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = [
    "MARKDOWN_COLUMNS",
    "COMPARISONS",
    "PAPER_NUMBERS",
    "PAPER_NOTES",
    "METRIC_LABELS",
    "find_benchmark_bundles",
    "ensure_data",
    "run_bundle",
    "normalize_rows",
    "merge_results",
    "format_markdown",
    "write_merged",
    "main",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCHMARK_SCRIPT = Path("scripts") / "benchmark.py"
REQUIRED_DATASET = "DTI_LGE_MI"
SPEED_METRIC = "speed of one training step (cost columns only)"

#: Markdown columns: (header, key of the merged row).
MARKDOWN_COLUMNS = (
    ("bundle", "bundle"),
    ("method", "method"),
    ("baseline method", "baseline_method"),
    ("metric", "metric"),
    ("baseline", "baseline"),
    ("ours", "ours"),
    ("theirs: baseline / ours (paper, their data)", "paper"),
    ("seconds", "seconds"),
    ("GFLOP/step", "gflop_per_step"),
    ("share of measured conv ceiling", "conv_ceiling_share"),
    ("peak RSS MiB", "peak_rss_mb"),
)

#: Comparisons (ours, baseline) made from "wide" rows, per bundle, as in the papers' figures and tables.
COMPARISONS: dict[str, tuple[tuple[str, str], ...]] = {
    "lge_mi_sr_segmentation": (
        # Fig. 6(B): end-to-end SSeg vs 2-stage Seg (segmentation + interpolation), per pre-training
        *((f"SSeg_{pre}", f"Seg+{mode}_{pre}") for pre in ("N", "SSL", "U-SSL") for mode in ("bilinear", "nearest")),
        # Fig. 6(B): pre-training strategies
        ("SSeg_SSL", "SSeg_N"),
        ("SSeg_U-SSL", "SSeg_N"),
        ("SSeg_U-SSL", "SSeg_SSL"),
        # Table I: encoders (ours: Swin), all from scratch here
        ("SSeg_N", "SSeg[resnet]"),
        ("SSeg_N", "SSeg[convnext]"),
    ),
}

#: The papers' reported numbers: (bundle, ours method, baseline method, row key of the metric) ->
#: (their baseline, their ours, where). Only numbers printed in the papers' text or tables are here.
PAPER_NUMBERS: dict[tuple[str, str, str, str], tuple[float | None, float | None, str]] = {
    ("lge_mi_sr_segmentation", "SSeg_N", "SSeg[resnet]", "test_dice_mean"): (
        0.718,
        0.755,
        "SwinSSegNet paper Table I (ResNet vs Swin encoder)",
    ),
    ("lge_mi_sr_segmentation", "SSeg_N", "SSeg[convnext]", "test_dice_mean"): (
        0.732,
        0.755,
        "SwinSSegNet paper Table I (ConvNeXt vs Swin encoder)",
    ),
}

#: What the header says about the papers' numbers.
PAPER_NOTES = (
    "Theirs = numbers reported by Wang et al., *Style Transfer and Self-Supervised Learning Powered Myocardium "
    "Infarction Super-Resolution Segmentation* (SwinSSegNet / CycleGANSeg paper), on their private DTI-LGE data, "
    "not on ours. Table I (DSC by encoder): ResNet 0.718 +- 0.0094, ConvNeXt 0.732 +- 0.0093, BiFormer "
    "0.745 +- 0.0093 (not implemented here), Swin 0.755 +- 0.0090; the paper does not say which pre-training "
    "Table I used (ours are trained from scratch). Fig. 6(A)/(B) (SSeg vs Seg, N/SSL/U-SSL pre-training) and "
    "Fig. 7 (DTI SSeg vs CycleGAN+SSeg vs CycleGANSeg+SSeg) give their values only as plots: no number is quoted "
    "for them."
)

#: Readable names of the metric keys of "wide" rows.
METRIC_LABELS = {
    "test_dice_mean": "MI Dice, test split (mean)",
    "test_dice_std": "MI Dice, test split (std)",
    "test_hd95_mm": "MI HD95 mm, test split (mean)",
}

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
import json, os, resource, sys, time
bundle, data_root, out_dir, quick, result_file = sys.argv[1:6]
sys.path.insert(0, bundle)
os.chdir(bundle)
from scripts.benchmark import run
start = time.perf_counter()
rows = run(data_root, out_dir=out_dir, quick=quick == "1")
seconds = time.perf_counter() - start
usage = [resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
with open(result_file, "w") as f:
    json.dump({"rows": rows, "seconds": seconds, "peak_rss_mb": max(usage) / 1024.0}, f, default=str)
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


def ensure_data(data_root: str | os.PathLike, runner: Callable[..., Any] = subprocess.run) -> list[str] | None:
    """Write the default data with ``python -m tools.make_data`` when ``<data_root>/DTI_LGE_MI`` is missing.

    Only the datasets whose folders are missing are written (``make_data`` refuses non-empty folders).

    Args:
        data_root: the data folder.
        runner: ``subprocess.run``-like callable (tests pass a fake).

    Returns:
        The command that was run, or ``None`` when the data was already there.

    Raises:
        RuntimeError: naming the command when it fails.
    """
    root = Path(data_root)
    if (root / REQUIRED_DATASET).is_dir():
        return None
    from common.data import DATASETS

    missing = [name for name in DATASETS if not (root / name).exists()]
    command = [sys.executable, "-m", "tools.make_data", "--out", str(root)]
    if len(missing) < len(DATASETS):
        command += ["--datasets", ",".join(missing)]
    print(f"{root / REQUIRED_DATASET} is missing: {shlex.join(command)}", flush=True)
    result = runner(command, cwd=str(REPO_ROOT), env=_env_with_repo())
    if result.returncode != 0:
        raise RuntimeError(f"`{shlex.join(command)}` failed with exit status {result.returncode}.")
    return command


def _env_with_repo() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def run_bundle(
    bundle_dir: str | os.PathLike,
    data_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    quick: bool = False,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run one bundle's ``scripts.benchmark.run`` in a fresh process started in the bundle root.

    The process output goes to ``<out_dir>/benchmark.log``.

    Returns:
        ``{"rows": [...], "seconds": wall seconds of run(), "peak_rss_mb": the process's peak RSS}``.

    Raises:
        RuntimeError: naming the bundle and the log when the benchmark fails or returns no list of dicts.
    """
    bundle_dir, out_dir = Path(bundle_dir).resolve(), Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    result_file, log_file = out_dir / "rows.json", out_dir / "benchmark.log"
    result_file.unlink(missing_ok=True)
    command = [sys.executable, "-c", _WORKER, str(bundle_dir), str(Path(data_root).resolve()), str(out_dir)]
    command += ["1" if quick else "0", str(result_file)]
    with open(log_file, "w") as log:
        try:
            code = subprocess.run(
                command, cwd=bundle_dir, env=_env_with_repo(), stdout=log, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode
        except subprocess.TimeoutExpired:
            raise RuntimeError(
                f"bundle `{bundle_dir.name}`: benchmark ran past {timeout} s (log: {log_file})."
            ) from None
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


def _merged_row(bundle: str, method: str, baseline_method: str | None, metric_key: str | None, **values) -> dict:
    paper = PAPER_NUMBERS.get((bundle, method, baseline_method or "", metric_key or ""))
    row = {
        "bundle": bundle,
        "method": method,
        "baseline_method": baseline_method,
        "metric": METRIC_LABELS.get(metric_key, metric_key) if metric_key else values.pop("metric", None),
        "metric_key": metric_key,
        "baseline": None,
        "ours": None,
        "paper_baseline": paper[0] if paper else None,
        "paper_ours": paper[1] if paper else None,
        "paper_source": paper[2] if paper else None,
    }
    row.update(values)
    return row


def normalize_rows(bundle: str, rows: Sequence[dict]) -> list[dict]:
    """Map one bundle's benchmark rows into merged rows (see the module docstring for the rules).

    Merged rows have the keys ``bundle, method, baseline_method, metric, metric_key, baseline, ours,
    paper_baseline, paper_ours, paper_source, seconds, baseline_seconds, gflop_per_step, conv_ceiling_share,
    peak_rss_mb, source`` (``source``: the bundle's own row, unchanged).

    Raises:
        ValueError: naming the bundle and the row when a row has no ``method``.
    """
    for index, row in enumerate(rows):
        if not row.get("method"):
            raise ValueError(f"bundle `{bundle}`: row {index} has no `method`: {row}")
    merged: list[dict] = []
    by_method = {row["method"]: row for row in rows if "metric" not in row}
    compared: set[str] = set()
    comparisons = list(COMPARISONS.get(bundle, ()))
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
                    bundle,
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
                    bundle,
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
                merged.append(_merged_row(bundle, row["method"], None, None, metric=label, source=row, **_costs(row)))
            for key in keys:
                merged.append(
                    _merged_row(bundle, row["method"], None, key, ours=_number(row[key]), source=row, **_costs(row))
                )
    return merged


def merge_results(results: dict[str, Sequence[dict]]) -> list[dict]:
    """Merged rows of several bundles, bundles in the given order (see :func:`normalize_rows`)."""
    return [row for bundle, rows in results.items() for row in normalize_rows(bundle, rows)]


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


def format_markdown(rows: Sequence[dict], header_lines: Sequence[str]) -> str:
    """The merged table as Markdown: a title, ``header_lines`` as paragraphs, then one table row per row."""
    lines = ["# Benchmark: our measurements on phantom data, the papers' numbers beside them", ""]
    for text in header_lines:
        lines += [text, ""]
    lines.append("| " + " | ".join(name for name, _ in MARKDOWN_COLUMNS) + " |")
    lines.append("|" + "---|" * len(MARKDOWN_COLUMNS))
    for row in rows:
        cells = [_paper_cell(row) if key == "paper" else _fmt(row.get(key)) for _, key in MARKDOWN_COLUMNS]
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


# ----------------------------------------------------------------------------------------------- driver
def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (1 when a bundle's benchmark failed)."""
    parser = argparse.ArgumentParser(prog="python -m tools.benchmark", description=__doc__.split("\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every bundle with scripts/benchmark.py")
    which.add_argument("--bundles", nargs="+", help="bundle folder names")
    parser.add_argument("--quick", action="store_true", help="small networks and few epochs (minutes on a CPU)")
    parser.add_argument("--data_root", "--data-root", default="data", help="default data folder (default: data)")
    parser.add_argument("--out", default="benchmarks", help="output folder (default: benchmarks)")
    parser.add_argument("--bundles_dir", "--bundles-dir", default=str(REPO_ROOT / "bundles"), help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=None, help="seconds allowed per bundle (default: none)")
    args = parser.parse_args(argv)

    try:
        bundles = find_benchmark_bundles(args.bundles_dir, None if args.all else args.bundles)
    except FileNotFoundError as e:
        print(f"FAIL: {e}")
        return 2
    if not bundles:
        print(f"FAIL: no bundle with {BENCHMARK_SCRIPT} under {args.bundles_dir}")
        return 2
    data_root, out = Path(args.data_root).resolve(), Path(args.out).resolve()
    try:
        ensure_data(data_root)
    except RuntimeError as e:
        print(f"FAIL: {e}")
        return 1

    start = time.perf_counter()
    results: dict[str, list[dict]] = {}
    runs: dict[str, dict] = {}
    failures: list[str] = []
    for bundle in bundles:
        print(f"benchmark {bundle.name} ({'quick' if args.quick else 'full'}) -> {out / bundle.name}", flush=True)
        try:
            result = run_bundle(bundle, data_root, out / bundle.name, quick=args.quick, timeout=args.timeout)
        except RuntimeError as e:
            print(f"FAIL: {e}", flush=True)
            failures.append(bundle.name)
            runs[bundle.name] = {"status": "FAIL", "log": str(out / bundle.name / "benchmark.log")}
            continue
        results[bundle.name] = result["rows"]
        runs[bundle.name] = {
            "status": "PASS",
            "seconds": result["seconds"],
            "process_peak_rss_mb": result["peak_rss_mb"],
            "table": str(out / bundle.name / "benchmark.md"),
        }

    rows = merge_results(results)
    command = (
        "python -m tools.benchmark "
        + ("--all" if args.all else "--bundles " + " ".join(args.bundles))
        + f"{' --quick' if args.quick else ''} --data_root {args.data_root} --out {args.out}"
    )
    header = [
        "**Data: phantoms written by `python -m tools.make_data` (not the papers' data).** Every number in the "
        "baseline/ours columns was measured in this run, the baseline beside its method on the same split.",
        f"Machine: {_machine()}. Mode: {'quick (small networks, few epochs)' if args.quick else 'full'}. "
        f"Command: `{command}`; total {time.perf_counter() - start:.0f} s.",
        "Per bundle: "
        + "; ".join(
            f"`{name}` {info['status']}"
            + (
                f" in {info['seconds']:.0f} s, process peak RSS {info['process_peak_rss_mb']:.0f} MiB, "
                f"own table {info['table']}"
                if info["status"] == "PASS"
                else f" (log {info['log']})"
            )
            for name, info in runs.items()
        )
        + ".",
        "Columns: seconds = the bundle's time for the method (training + evaluation, or one step for speed rows); "
        "GFLOP/step and share of the measured conv ceiling = one training step's FLOPs and its achieved GFLOP/s "
        "over a plain 3x3 conv's, measured in the same run; peak RSS = the row's own measurement.",
        PAPER_NOTES,
    ]
    md_path, json_path = write_merged(rows, out, header, extra={"runs": runs, "machine": _machine()})
    print(md_path.read_text())
    print(f"wrote {md_path} and {json_path}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
