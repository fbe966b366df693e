"""Folder inference of many small files, timed whole: seconds per file at each ``files_per_batch``.

Usage (repository root)::

    python -m tools.folder_batching [--bundles NAME ...] [--rounds 3] [--overlay quick.json] [--out benchmarks]

A bundle takes part by a ``FOLDER_BATCH`` literal in its ``scripts/benchmark.py`` (read as a literal by
``tools.benchmark``'s :func:`~tools.benchmark.read_benchmark_info`; a new bundle needs no edit here)::

    FOLDER_BATCH = {
        "file_shape": [64, 64, 1],     # every stand-in file's array shape, as the bundle's real inputs
        "pixdim": [2.5, 2.5, 8.0],     # its voxel sizes (mm)
        "files": 16,                   # files in the folder
        "values": [1, 2, 4, 8, 16],    # the `files_per_batch` values to time
    }

The folder holds ``files`` stand-in files of one geometry (a bright ring of its own radius on noise, each file moved
to its own place), so ``common.inference.SameGeometryBatches`` may batch them all. For every value, one process
runs the bundle's ``configs/inference.json`` (``python -m monai.bundle run``'s steps, from the bundle folder, on
the CPU) over the folder: the timed part is ``run`` (listing, loading, preprocessing, the network, postprocessing,
writing every output), and the process's peak resident memory is read from ``/proc``. The network is randomly
initialised (the time does not depend on the weights), with its BatchNorm running statistics drawn from a fixed
generator, and loaded by the config's own weights loader from a ``model.pt`` in a temporary ``ckpt_dir``. Every
value runs once per round, in turn (value 1 and the config's own value always); a value's time is the median over
rounds. Each value's outputs are compared with those of one file per batch: batching must not change them (the
largest difference is recorded). How many different outputs the files got at one file per batch is counted too: an
untrained network may give every file the same mask, and then the comparison cannot see outputs going to the wrong
file (the bundles' tests check that with a network that responds).

The children inherit the environment, so ``COMMON_MALLOC`` (``common.allocator``'s mode) set for the tool applies
to every run; a config may also choose a mode itself (an ``initialize`` step, used where ``COMMON_MALLOC`` is
unset). Each child reports the mode its run ended in and the entry records it: large batches allocate buffers above
glibc's mmap threshold, so the allocator can decide whether batching pays (measured for SwinSSegNet, docs there).

Results go to ``<out>/folder_batching.json`` (merged with the other bundles' entries, every round kept) and
``<out>/folder_batching.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from tools.benchmark import REPO_ROOT, merge_entries
from tools.inference_batching import (
    CONFIG,
    declaring_bundles,
    entry_name,
    read_spec,
    summarize,
    time_values,
    value_cell,
)
from tools.side_by_side import tree_commit

__all__ = [
    "folder_spec",
    "write_stand_in_folder",
    "stand_in_network",
    "write_stand_in_weights",
    "run_folder",
    "compare_outputs",
    "distinct_outputs",
    "time_bundle",
    "write_report",
    "main",
]

REPORT = "folder_batching"
KEY = "files_per_batch"
SPEC_KEYS = ("file_shape", "pixdim", "files", "values")


def folder_spec(bundle_dir: str | Path) -> dict[str, Any]:
    """The bundle's ``FOLDER_BATCH`` (empty: the bundle does not take part).

    Raises:
        ValueError: naming the bundle when an entry is missing or wrong.
    """
    spec = read_spec(bundle_dir, "FOLDER_BATCH", SPEC_KEYS)
    if not spec:
        return spec
    name = Path(bundle_dir).name
    if int(spec["files"]) < 1:
        raise ValueError(f"bundle `{name}`: FOLDER_BATCH files must be integers >= 1, got {spec}.")
    if len(spec["pixdim"]) != min(len(spec["file_shape"]), 3):
        raise ValueError(f"bundle `{name}`: FOLDER_BATCH pixdim needs one size per spatial axis, got {spec}.")
    return spec


def write_stand_in_folder(folder: str | Path, file_shape: Sequence[int], pixdim: Sequence[float], files: int) -> Path:
    """``files`` NIfTI files of ``file_shape`` and one voxel grid (``pixdim``), each its own content and place.

    Content: a bright ring (radius drawn per file) on a dark background over the first two axes, repeated along
    any further axes, plus Gaussian noise (an LGE- or cine-like intensity range, 100 / 400, noise 20)."""
    import nibabel as nib

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shape = tuple(int(n) for n in file_shape)
    rng = np.random.default_rng(0)
    yy, xx = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    radius = np.hypot(yy, xx)
    for index in range(int(files)):
        r = rng.uniform(0.3, 0.7)
        ring = ((radius > r - 0.12) & (radius < r + 0.12)).astype(np.float32)
        ring = ring.reshape(shape[:2] + (1,) * (len(shape) - 2))
        image = 100.0 + 300.0 * ring + 20.0 * rng.standard_normal(shape)
        affine = np.diag([*(float(p) for p in pixdim), *([1.0] * (4 - len(pixdim)))])
        affine[:3, 3] = [-3.0 * index, 2.0 * index, 5.0 * index]  # same grid, its own place
        nib.save(nib.Nifti1Image(image.astype(np.float32), affine), str(folder / f"case_{index:03d}.nii.gz"))
    return folder


def stand_in_network(network: Any) -> Any:
    """``network`` with every BatchNorm's running statistics drawn from a fixed generator (PyTorch's fresh 0 and 1
    make an untrained network's output nearly constant, so batching could not be seen to change it)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
                module.running_mean.normal_(0.0, 0.3, generator=generator)
                module.running_var.uniform_(0.3, 1.0, generator=generator)
    return network


def write_stand_in_weights(bundle: Path, configs: Sequence[str], models: Path) -> Path:
    """``<models>/model.pt`` (``{"model": state_dict}``, what the bundles' inference configs load from
    ``ckpt_dir``) of the config's ``network_def`` drawn with seed 0, BatchNorm statistics as :func:`stand_in_network`.
    """
    import torch
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(bundle / "configs" / f) for f in configs])
    parser.update({"bundle_root": str(bundle), "device": "$torch.device('cpu')"})
    torch.manual_seed(0)  # the same random network for every value
    network = stand_in_network(parser.get_parsed_content("network_def"))
    models.mkdir(parents=True, exist_ok=True)
    torch.save({"model": network.state_dict()}, models / "model.pt")
    return models / "model.pt"


def run_folder(bundle: str | Path, folder: str | Path, out: str | Path, value: int, overlay: str | None = None) -> dict:
    """Run the bundle's inference over ``folder`` into ``out`` in this process (its weights from
    :func:`write_stand_in_weights`, in ``<out>_models``); seconds of ``run`` and the number of batches.

    The bundle folder must be the working directory and first on ``sys.path`` (as for ``monai.bundle run``), for
    configs that import the bundle's ``scripts``."""
    import torch
    from common.allocator import applied_mode
    from monai.bundle import ConfigWorkflow

    bundle, out = Path(bundle).resolve(), Path(out)
    configs = [CONFIG] + ([overlay] if overlay else [])
    models = write_stand_in_weights(bundle, configs, out.parent / f"{out.name}_models").parent
    workflow = ConfigWorkflow(
        config_file=[str(bundle / "configs" / f) for f in configs],
        meta_file=str(bundle / "configs" / "metadata.json"),
        logging_file=None,
        bundle_root=str(bundle),
        dataset_dir=str(folder),
        output_dir=str(out),
        ckpt_dir=str(models),
        device="$torch.device('cpu')",
        **{KEY: int(value)},
    )
    workflow.initialize()
    start = time.perf_counter()
    workflow.run()
    seconds = time.perf_counter() - start
    batches = int(workflow.parser.get_parsed_content("evaluator").state.iteration)
    workflow.finalize()
    return {"seconds": seconds, "batches": batches, "threads": torch.get_num_threads(), "malloc": applied_mode()}


def compare_outputs(reference: str | Path, other: str | Path) -> float:
    """Largest absolute difference between the NIfTI outputs of two runs (``inf``: different files, shapes or
    affines)."""
    import nibabel as nib

    names = sorted(p.name for p in Path(reference).glob("*.nii*"))
    if not names or names != sorted(p.name for p in Path(other).glob("*.nii*")):
        return float("inf")
    largest = 0.0
    for name in names:
        a, b = nib.load(str(Path(reference) / name)), nib.load(str(Path(other) / name))
        if a.shape != b.shape or not np.allclose(a.affine, b.affine, atol=1e-5):
            return float("inf")
        difference = np.abs(np.asarray(a.dataobj, np.float64) - np.asarray(b.dataobj, np.float64))
        largest = max(largest, float(difference.max()) if difference.size else 0.0)
    return largest


def distinct_outputs(folder: str | Path) -> dict[str, int]:
    """Per kind of output (the file name after ``case_NNN_``), how many different arrays the stand-in files' NIfTI
    outputs in ``folder`` hold (values rounded to 1e-4)."""
    import hashlib

    import nibabel as nib

    digests: dict[str, set[str]] = {}
    for path in Path(folder).glob("case_*.nii*"):
        data = np.round(np.asarray(nib.load(str(path)).dataobj, np.float64), 4) + 0.0
        kind = path.name.split("_", 2)[-1]
        digests.setdefault(kind, set()).add(hashlib.sha1(data.tobytes() + str(data.shape).encode()).hexdigest())
    return {kind: len(found) for kind, found in sorted(digests.items())}


def time_bundle(
    bundle_dir: str | Path,
    rounds: int = 3,
    overlay: str | None = None,
    files: int | None = None,
    values: Sequence[int] | None = None,
    warmup: bool = True,
) -> dict[str, Any]:
    """Time the bundle's folder inference at every ``files_per_batch`` value (see the module docstring); ``files``
    and ``values`` replace the bundle's own, ``warmup`` runs the config's value once untimed first."""
    from common.benchmarking import machine_summary
    from common.benchmarking.side_by_side import run_json_process
    from common.benchmarking.workflow import parse_config_items

    bundle = Path(bundle_dir).resolve()
    spec = folder_spec(bundle)
    if not spec:
        raise ValueError(f"bundle `{bundle.name}` has no FOLDER_BATCH in scripts/benchmark.py.")
    configs = [CONFIG] + ([overlay] if overlay else [])
    config_value = int(parse_config_items(bundle, configs, {"device": "$torch.device('cpu')"}, (KEY,))[KEY])
    files = int(files or spec["files"])
    values = sorted({1, config_value, *(int(v) for v in (values or spec["values"]))})
    work = Path(tempfile.mkdtemp(prefix="folder_batching_"))
    results: dict[int, list[dict]] = {v: [] for v in values}
    differences: dict[int, float] = {}
    distinct: dict[str, int] = {}  # per kind of output, at value 1
    try:
        folder = write_stand_in_folder(work / "inputs", spec["file_shape"], spec["pixdim"], files)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(bundle), str(REPO_ROOT)])}

        def time_value(value: int) -> float:
            out = work / f"out_{value}"
            shutil.rmtree(out, ignore_errors=True)  # a fresh folder each round: nothing to overwrite
            command = [sys.executable, "-m", "tools.folder_batching", "--child", str(value)]
            command += ["--folder", str(folder), "--out", str(out)] + (["--overlay", overlay] if overlay else [])
            result = run_json_process(command, cwd=bundle, env=env)
            results[value].append(result)
            if value not in differences and (work / "out_1").is_dir():
                differences[value] = compare_outputs(work / "out_1", out)
            if value == 1 and not distinct:
                distinct.update(distinct_outputs(out))
            print(
                f"  {KEY} {value}: {result['seconds']:.2f} s, {result['batches']} batches, "
                f"peak RSS {result['peak_rss_mb']:.0f} MiB",
                flush=True,
            )
            return result["seconds"]

        if warmup:  # the first process on a fresh file cache is slower
            time_value(config_value)
            results[config_value].clear()
        times = time_values(values, time_value, rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "key": KEY,
        "file_shape": [int(n) for n in spec["file_shape"]],
        "pixdim": [float(p) for p in spec["pixdim"]],
        "files": files,
        "overlay": overlay,
        "rounds": {str(v): t for v, t in times.items()},
        "batches": {str(v): results[v][-1]["batches"] for v in values},
        "peak_rss_mb": {str(v): max(r["peak_rss_mb"] for r in results[v]) for v in values},
        "max_output_difference": {str(v): differences.get(v) for v in values},
        "distinct_outputs": distinct,
        "summary": summarize(times, files, config_value),
        "machine": machine_summary(),
        # the children's common.allocator mode at the end of their run (COMMON_MALLOC, or the config's own choice)
        "malloc": "/".join(sorted({r["malloc"] for rs in results.values() for r in rs})),
        "threads": results[values[0]][-1]["threads"],
        "commit": tree_commit(REPO_ROOT)[:7],  # "unknown" outside a git work tree
        "date": datetime.date.today().isoformat(),
        "command": "python -m tools.folder_batching " + " ".join(sys.argv[1:]),
    }


def write_report(entries: Mapping[str, Mapping[str, Any]], out: str | Path) -> Path:
    """Merge ``entries`` into ``<out>/folder_batching.json`` and write the table ``folder_batching.md``."""
    out = Path(out)
    path, merged = merge_entries(out, REPORT, entries)
    lines = [
        "# Folder inference of many small files: seconds per file against `files_per_batch`",
        "",
        "Written by `python -m tools.folder_batching` (every round's numbers in `folder_batching.json`): the bundle's "
        "whole `configs/inference.json` run (one process per value, from the bundle folder, on the CPU; listing, "
        "loading, preprocessing, the randomly initialised network, postprocessing and writing) over a folder of "
        "stand-in files of one geometry; a value's time is the median over rounds (each value run once per round, in "
        "turn). Bold: the fastest value; (config): the value the config uses on the CPU; config / best > 1: the "
        "config's value is that much slower than the best one. Outputs vs 1: the largest difference of any output "
        "voxel from one file per batch. Distinct outputs: per kind of output, how many files' outputs differ from each "
        "other at one file per batch (an untrained network may give every file the same mask, and then the "
        "comparison cannot see outputs going to the wrong file).",
        "",
        "| bundle | folder | seconds per file at each value | config / best | 1 / config | outputs vs 1 | distinct "
        "outputs at 1 | peak RSS MiB (1 / config) | malloc | threads | machine | commit | date |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in sorted(merged):
        entry = merged[name]
        summary = entry["summary"]
        per_file = {int(v): s for v, s in summary["seconds_per_slice"].items()}
        best, config = int(summary["best_value"]), int(summary["config_value"])
        cells = ", ".join(value_cell(per_file, v, best, config) for v in sorted(per_file))
        ratio = "-" if summary["config_over_best"] is None else f"{summary['config_over_best']:.2f}"
        speedup = f"{per_file[1] / per_file[config]:.2f}" if 1 in per_file and config in per_file else "-"
        known = [d for d in entry["max_output_difference"].values() if d is not None]
        difference = f"{max(known):.2g}" if known else "-"
        rss = entry["peak_rss_mb"]
        distinct = ", ".join(f"{kind} {n}/{entry['files']}" for kind, n in entry.get("distinct_outputs", {}).items())
        folder = f"{entry['files']} files {tuple(entry['file_shape'])}"
        lines.append(
            f"| {name} | {folder} | {cells} | {ratio} | {speedup} | {difference} | {distinct or '-'} | "
            f"{rss.get('1', 0):.0f} / {rss.get(str(config), 0):.0f} | {entry.get('malloc', '-')} | "
            f"{entry['threads']} | {entry['machine']} | {entry['commit']} | {entry['date']} |"
        )
    (out / f"{REPORT}.md").write_text("\n".join(lines) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 on bad arguments)."""
    parser = argparse.ArgumentParser(prog="python -m tools.folder_batching", description=__doc__.split("\n")[0])
    parser.add_argument("--bundles", nargs="+", default=None, help="bundle folder names (default: every one with it)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the values (default 3)")
    parser.add_argument("--overlay", default=None, help="a config layered on inference.json (e.g. quick.json)")
    parser.add_argument("--files", type=int, default=None, help="files in the folder (default: the bundle's)")
    parser.add_argument("--values", type=int, nargs="+", default=None, help="values to time (default: the bundle's)")
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks"), help="output folder (default: benchmarks)")
    parser.add_argument("--bundles_dir", default=str(REPO_ROOT / "bundles"), help="folder holding the bundles")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)  # one timed run (internal)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:  # in the bundle folder, which is first on sys.path (PYTHONPATH)
        result = run_folder(Path.cwd(), args.folder, args.out, args.child, args.overlay)
        print(json.dumps(result), flush=True)
        return 0
    try:
        # each bundle's entry written as soon as it is timed: a stopped run keeps them
        for bundle in declaring_bundles(args.bundles_dir, args.bundles, folder_spec, "FOLDER_BATCH"):
            print(f"timing {bundle.name} ...", flush=True)
            entry = time_bundle(bundle, args.rounds, args.overlay, args.files, args.values)
            print(json.dumps(entry["summary"]), flush=True)
            print(f"wrote {write_report({entry_name(bundle.name, entry): entry}, args.out)}", flush=True)
    except (ValueError, FileNotFoundError) as e:
        print(f"FAIL: {e}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
