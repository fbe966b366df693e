"""Reproduce the paper's Fig. 6(B) and Table I rows on one data split, in one run.

Usage (from the bundle root)::

    python -m scripts.benchmark --out eval/benchmark [--quick True] [--seeds 0,1,2] [--fresh False] [--part SSL]

The benchmark writes its own data (``DATA_SEED``, a seed not used while developing: ``N_TEST`` held-out test slices,
the training set the size of the default data's) under ``<out>/data`` and trains every variant once per training
seed on one split (``split_seed`` fixed), so the methods are compared per test slice, each slice's value the mean over
the seeds and each seed's values kept for the seed-agreement check. Finished stages are reused: a stopped run
continues (``--fresh True`` starts again).

Rows: SSeg (SwinSSegNet, 8x inside the network) vs Seg + bilinear / Seg + nearest (the same network at scale 1,
probabilities interpolated), each trained from scratch (_N), after SSL on our LGE only (_SSL), and after U-SSL on
the hybrid set (our LGE + ACDC + EMIDEC; _U-SSL); encoders ResNet / ConvNeXt / Swin (from scratch). Every
variant is trained and evaluated through this bundle's own config files (overrides only; quick mode layers
``configs/quick.json``), on the same split, and scored per case on the held-out test split with Dice and HD95 (mm).
Speed row: one training step of the bundle's own ``network_def``/``loss`` with the trained variant's overrides.

SSL and U-SSL pre-training make the same number of optimizer steps (:data:`PRETRAINING_STEPS` or the next number
both reach in whole epochs, :func:`same_steps`): their sets differ in size (U-SSL adds the public images), so equal
epochs would give U-SSL about 16x the steps. ``<out>/benchmark_details.json`` records each pre-training's set size,
epochs, steps (read back from the trainer) and its loss at the start and end (from its TensorBoard log).

The module-level names below are this bundle's benchmark data, read (as literals, without importing this module)
by ``python -m tools.benchmark``: which variants are compared, the paper's numbers, the header notes.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fire
import torch
from common.benchmarking import (
    QUICK_OVERLAY,
    BenchmarkRow,
    StageCache,
    Timer,
    int_tuple,
    machine_summary,
    parse_config_items,
    peak_rss_mb,
    read_overlay,
    run_workflow,
    slice_scaling_rows,
    step_speed,
    trainer_steps,
    write_cases_csv,
    write_comparisons,
    write_seed_cases_csv,
    write_table,
)
from common.flags import as_flag

__all__ = [
    "run",
    "VARIANTS",
    "Variant",
    "COMPARISONS",
    "PAPER_NUMBERS",
    "PAPER_NOTES",
    "METRIC_LABELS",
    "EPOCHS",
    "PRETRAINING_STEPS",
    "BENCHMARK_PARTS",
    "variants_of",
    "steps_per_epoch",
    "same_steps",
    "write_benchmark_data",
    "variant_overrides",
    "train_and_score",
]

BUNDLE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: dataset folder under the data root that ``tools.benchmark_ddp``'s training runs read (this benchmark writes its own)
REQUIRED_DATASET = "DTI_LGE_MI"

#: folder inference's batching knob, timed per value by ``python -m tools.inference_batching`` on a 16-slice stack of
#: 64x64 LGE slices (one 64x64 window each, 512x512 out)
INFERENCE_BATCH = {"key": "sw_batch_size", "input_shape": [1, 1, 64, 64, 16], "slices": 16, "values": [1, 2, 4, 8, 16]}

#: ``python -m tools.folder_batching``: a folder of 16 single-slice 64x64 files at 2.5 mm (the paper's low-resolution
#: inputs), the whole inference run at each ``files_per_batch``
FOLDER_BATCH = {"file_shape": [64, 64, 1], "pixdim": [2.5, 2.5, 8.0], "files": 16, "values": [1, 2, 4, 8, 16]}

#: ``python -m tools.side_by_side``: no public code exists, so the speed switches are timed against our default step
PEER_STEP = {
    "repository": None,
    "ours_args": ["-m", "scripts.peer_step", "--n", "3", "--warmup", "1"],
    "ours_variants": {
        "channels-last off": ["--channels_last", "False"],
        "fused AdamW": ["--fused_optimizer", "True"],
        "compiled": ["--compile", "True"],
    },
    "configuration": "SwinSSegNet (configs/train.json: feature 48, depths 2/2/6/2), SupervisedTrainer iteration, "
    "DiceCE, AdamW 1e-4, batch 8, 64x64 -> 512x512; train.json's switches (channels-last) unless the row says "
    "otherwise",
}

#: the benchmark's own data: a seed not used while developing, and 30 held-out test slices per comparison (a 0.04
#: Dice difference with a paired SD of 0.08 needs about 31); the training set keeps the default data's size (42 LGE
#: slices: the training pairs and the LGE-only cases)
DATA_SEED = 2031
N_TRAIN_PAIRS = 10
N_VAL = 4
N_TEST = 30
N_LGE_ONLY = 32
N_PAIRED = N_TRAIN_PAIRS + N_VAL + N_TEST
#: fractions of the paired cases (train, val, test) and the split seed, one split for every training seed
SPLIT = (N_TRAIN_PAIRS / N_PAIRED, N_VAL / N_PAIRED, N_TEST / N_PAIRED)
SPLIT_SEED = 0
#: training seeds: each trains its own pre-trainings and variants
SEEDS = (0, 1, 2)

#: the run's parts, by the pre-training their variants start from (``run(..., part=name)`` trains only that part's
#: variants and pre-training): ``tools.benchmark --seed_processes`` runs each seed's parts as processes of their
#: own, smaller jobs that two cores share more evenly than one ~1100 s process per seed
BENCHMARK_PARTS = ("N", "SSL", "U-SSL")

#: (ours, baseline) method pairs compared per case, as in the paper's Fig. 6(B) and Table I
COMPARISONS = (
    # Fig. 6(B): end-to-end SSeg vs 2-stage Seg (segmentation + interpolation), per pre-training
    ("SSeg_N", "Seg+bilinear_N"),
    ("SSeg_N", "Seg+nearest_N"),
    ("SSeg_SSL", "Seg+bilinear_SSL"),
    ("SSeg_SSL", "Seg+nearest_SSL"),
    ("SSeg_U-SSL", "Seg+bilinear_U-SSL"),
    ("SSeg_U-SSL", "Seg+nearest_U-SSL"),
    # Fig. 6(B): pre-training strategies
    ("SSeg_SSL", "SSeg_N"),
    ("SSeg_U-SSL", "SSeg_N"),
    ("SSeg_U-SSL", "SSeg_SSL"),
    # Table I: encoders (ours: Swin), all from scratch here
    ("SSeg_N", "SSeg[resnet]"),
    ("SSeg_N", "SSeg[convnext]"),
)

#: the paper's printed numbers: (ours, baseline, metric) -> (their baseline, their ours, where)
PAPER_NUMBERS = {
    ("SSeg_N", "SSeg[resnet]", "test_dice"): (0.718, 0.755, "SwinSSegNet paper Table I (ResNet vs Swin encoder)"),
    ("SSeg_N", "SSeg[convnext]", "test_dice"): (0.732, 0.755, "SwinSSegNet paper Table I (ConvNeXt vs Swin encoder)"),
}

#: what the merged table's header says about the paper's numbers
PAPER_NOTES = (
    "Theirs = numbers reported by Wang et al., *Style Transfer and Self-Supervised Learning Powered Myocardium "
    "Infarction Super-Resolution Segmentation* (SwinSSegNet / CycleGANSeg paper), on their private DTI-LGE data, "
    "not on ours. Table I (DSC by encoder): ResNet 0.718 +- 0.0094, ConvNeXt 0.732 +- 0.0093, BiFormer "
    "0.745 +- 0.0093 (not implemented here), Swin 0.755 +- 0.0090; the paper does not say which pre-training "
    "Table I used (ours are trained from scratch). Fig. 6(A)/(B) (SSeg vs Seg, N/SSL/U-SSL pre-training) gives "
    "its values only as plots: no number is quoted for them."
)

#: what the merged table's header says about the modes (the quick networks come from configs/quick.json)
MODE_NOTES = {
    "quick": "own data (seed 2031): 42 training / 4 val / 30 test slices, one split; 3 training seeds; 20 epochs per "
    "variant (120 AdamW steps at 1e-4: 6 batches of 8 or fewer per epoch); SSL and U-SSL pre-training 186 optimizer "
    "steps each (the fewest of at least 128 that both reach in whole epochs), per seed",
    "full": "own data (seed 2031), one split; 3 training seeds; 30 epochs per variant (180 AdamW steps); SSL and U-SSL "
    "pre-training 372 optimizer steps each (at least 320), per seed; the configs' networks",
}

#: training epochs of each variant per mode (the benchmark's 42 training slices at batch 8, the last batch short: 6
#: optimizer steps per epoch)
EPOCHS = {"quick": 20, "full": 30}

#: optimizer steps of each pre-training per mode: SSL and U-SSL get the same number, this or the next one that both
#: reach in whole epochs (:func:`same_steps`). On the phantom data (41 own LGE slices, 519 hybrid, batch 16: 2 and 32
#: steps per epoch) quick is SSL 64 epochs / U-SSL 4, full SSL 160 / U-SSL 10 (the old full U-SSL schedule).
PRETRAINING_STEPS = {"quick": 128, "full": 320}

#: overrides of a fresh DDP-scaling run (``python -m tools.benchmark_ddp``): no SSL weights exist there
DDP_OVERRIDES = {"use_ssl_pretrained": False}

#: readable names of the metric keys
METRIC_LABELS = {
    "test_dice": "MI Dice, test split",
    "test_hd95_mm": "MI HD95 mm, test split",
    "inference_seconds": "inference seconds per LGE stack (one 64x64 test slice stacked to N slices; the fit: per "
    "slice)",
}

#: metric key -> (MetricsSaver raw CSV of evaluate.json, higher is better)
_METRIC_FILES = {"test_dice": ("test_mean_dice", True), "test_hd95_mm": ("test_hd95_mm", False)}


@dataclass(frozen=True)
class Variant:
    """One trained model: config files, overrides, pre-training, and the evaluations scored from it.

    ``evaluations`` maps a method name to extra overrides of ``evaluate.json`` (a Seg model is scored twice, with
    bilinear and with nearest upsampling).
    """

    tag: str
    files: tuple[str, ...]
    pretraining: str
    overrides: dict[str, Any] = field(default_factory=dict)
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)


VARIANTS: tuple[Variant, ...] = (
    *(
        variant
        for pre in ("N", "SSL", "U-SSL")
        for variant in (
            Variant(f"SSeg_{pre}", ("train.json",), pre, evaluations={f"SSeg_{pre}": {}}),
            Variant(
                f"Seg_{pre}",
                ("train.json", "seg_baseline.json"),
                pre,
                evaluations={
                    f"Seg+bilinear_{pre}": {"seg_upsample_mode": "bilinear"},
                    f"Seg+nearest_{pre}": {"seg_upsample_mode": "nearest"},
                },
            ),
        )
    ),
    *(
        Variant(f"SSeg_{enc}_N", ("train.json",), "N", {"encoder": enc}, evaluations={f"SSeg[{enc}]": {}})
        for enc in ("resnet", "convnext")
    ),
)

#: pre-training runs: name -> use_public_data (U-SSL adds the public ACDC + EMIDEC images)
PRETRAININGS = {"SSL": False, "U-SSL": True}


def variants_of(parts: tuple[str, ...]) -> list[Variant]:
    """The variants of ``parts`` (of :data:`BENCHMARK_PARTS`), part by part in that order, each part's in the order of
    :data:`VARIANTS`: one run over every part trains them in the order the parts' processes' rows are joined in.

    Raises:
        ValueError: naming the part and the choices when a part is not one of :data:`BENCHMARK_PARTS`.
    """
    unknown = [part for part in parts if part not in BENCHMARK_PARTS]
    if unknown:
        raise ValueError(f"benchmark part {unknown[0]!r} is not one of {list(BENCHMARK_PARTS)}.")
    return [variant for part in parts for variant in VARIANTS if variant.pretraining == part]


#: the pre-training loss terms read back from the TensorBoard log (``common.ssl.MultiTaskSSLLoss``'s keys)
_LOSS_TAGS = ("loss", "loss_rotation", "loss_reconstruction", "loss_contrastive")


def steps_per_epoch(dataset_size: int, batch_size: int, drop_last: bool = True) -> int:
    """Optimizer steps of one epoch over ``dataset_size`` samples: one per batch (``DataLoader`` length).

    Raises:
        ValueError: if ``batch_size`` < 1, ``dataset_size`` < 0, or the epoch has no step (``drop_last`` with fewer
            samples than one batch).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if dataset_size < 0:
        raise ValueError(f"dataset_size must be >= 0, got {dataset_size}.")
    steps = dataset_size // batch_size if drop_last else math.ceil(dataset_size / batch_size)
    if steps < 1:
        raise ValueError(
            f"dataset_size {dataset_size} with batch_size {batch_size} (drop_last={drop_last}) gives no step."
        )
    return steps


def same_steps(
    epoch_steps: Mapping[str, int], min_steps: int, max_steps: int | None = None
) -> tuple[int, dict[str, int]]:
    """Epochs per run so that every run makes the same number of optimizer steps, at least ``min_steps``.

    Equal epochs on sets of different sizes are unequal training: SSL on 41 slices and U-SSL on 519, batch 16, make
    2 and 32 steps per epoch. The common count is the smallest multiple of the least common multiple of the runs'
    steps per epoch that is ``>= min_steps``, so every run stops at the end of a whole epoch.

    Args:
        epoch_steps: run name -> optimizer steps per epoch (:func:`steps_per_epoch`).
        min_steps: the fewest steps each run makes.
        max_steps: raise rather than exceed this many steps (``None``: no limit).

    Returns:
        ``(steps, {name: epochs})`` with ``epochs[name] * epoch_steps[name] == steps`` for every run.

    Raises:
        ValueError: if ``epoch_steps`` is empty, a value or ``min_steps`` is < 1, or the common count exceeds
            ``max_steps`` (steps per epoch with a large least common multiple: change the batch size).

    Examples::

        same_steps({"SSL": 2, "U-SSL": 32}, 128) == (128, {"SSL": 64, "U-SSL": 4})
    """
    if not epoch_steps:
        raise ValueError("epoch_steps must name at least one run.")
    if min(epoch_steps.values()) < 1:
        raise ValueError(f"epoch_steps must all be >= 1, got {dict(epoch_steps)}.")
    if min_steps < 1:
        raise ValueError(f"min_steps must be >= 1, got {min_steps}.")
    period = math.lcm(*epoch_steps.values())
    steps = period * math.ceil(min_steps / period)
    if max_steps is not None and steps > max_steps:
        raise ValueError(
            f"steps per epoch {dict(epoch_steps)} reach a common count in whole epochs only at {steps} steps, "
            f"more than max_steps {max_steps}: change the batch size."
        )
    return steps, {name: steps // per_epoch for name, per_epoch in epoch_steps.items()}


def _loss_summary(values: list[float]) -> dict[str, Any]:
    """First and last value of a per-step loss, and the means of its first and last tenth (``window`` steps)."""
    window = max(1, len(values) // 10)
    return {
        "first": values[0],
        "last": values[-1],
        "window": window,
        "first_window_mean": sum(values[:window]) / window,
        "last_window_mean": sum(values[-window:]) / window,
    }


def _read_losses(event_file: Path) -> dict[str, list[float]]:
    """Per-step values of :data:`_LOSS_TAGS` in one TensorBoard event file, in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(event_file), size_guidance={"scalars": 0})
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    missing = [tag for tag in _LOSS_TAGS if tag not in tags]
    if missing:
        raise ValueError(f"{event_file} has no scalars {missing} (it has {sorted(tags)}).")
    return {tag: [e.value for e in sorted(accumulator.Scalars(tag), key=lambda e: e.step)] for tag in _LOSS_TAGS}


def _pretrain(
    data_root: str, out_dir: str, network: dict[str, Any], seed: int, min_steps: int, names: tuple[str, ...]
) -> dict[str, dict]:
    """Run the :data:`PRETRAININGS` entries in ``names``, each for the number of optimizer steps that every entry
    makes (:func:`same_steps` over all of them, so that a part's process plans as one run over every part does).

    Returns name -> ``weights`` (``model_ssl.pt``), ``dataset_size``, ``batch_size``, ``steps_per_epoch``, ``epochs``,
    ``steps`` (the trainer's final iteration count), ``seconds`` and ``losses`` (:func:`_loss_summary` per loss term,
    from the run's TensorBoard log).

    Raises:
        RuntimeError: if a run did not make the planned number of steps, or did not write exactly one new
            TensorBoard event file.
    """
    from monai.handlers.tensorboard_handlers import TensorBoardHandler

    plans: dict[str, dict[str, Any]] = {}
    for name, public in PRETRAININGS.items():
        ckpt = os.path.join(out_dir, f"pretrain_{name}")
        overrides = {
            "data_root": data_root,
            "ckpt_dir": ckpt,
            "output_dir": os.path.join(ckpt, "logs"),
            "use_public_data": public,
            "resume": False,
            "seed": seed,
            **network,
        }
        items = parse_config_items(BUNDLE_ROOT, ["pretrain.json"], overrides, ("train#dataloader",))
        loader = items["train#dataloader"]
        size, batch_size = len(loader.dataset), int(loader.batch_size)
        plans[name] = {
            "overrides": overrides,
            "dataset_size": size,
            "batch_size": batch_size,
            "steps_per_epoch": steps_per_epoch(size, batch_size, loader.drop_last),
        }
    steps, epochs = same_steps({k: v["steps_per_epoch"] for k, v in plans.items()}, min_steps, 2 * min_steps)

    results: dict[str, dict] = {}
    for name, plan in plans.items():
        if name not in names:
            continue
        overrides = plan.pop("overrides")
        log_dir = Path(overrides["output_dir"])
        before = set(log_dir.glob("events.out.tfevents.*"))
        with Timer() as timer:
            workflow = run_workflow(BUNDLE_ROOT, ["pretrain.json"], dict(overrides, epochs=epochs[name]))
        for handler in workflow.parser.get_parsed_content("train#handlers"):
            if isinstance(handler, TensorBoardHandler):
                handler.close()  # flush the last events before reading them
        made = trainer_steps(workflow)
        if made != steps:
            raise RuntimeError(f"pre-training {name} made {made} optimizer steps, planned {steps}.")
        new = sorted(set(log_dir.glob("events.out.tfevents.*")) - before)
        if len(new) != 1:
            raise RuntimeError(f"pre-training {name} wrote {len(new)} new TensorBoard event files in {log_dir}.")
        losses = {tag: _loss_summary(values) for tag, values in _read_losses(new[0]).items()}
        results[name] = {
            "weights": os.path.join(overrides["ckpt_dir"], "pretrain", "model_ssl.pt"),
            **plan,
            "epochs": epochs[name],
            "steps": made,
            "seconds": timer.seconds,
            "losses": losses,
        }
        total = losses["loss"]
        print(
            f"pre-training {name}: {made} steps ({epochs[name]} epochs x {plan['steps_per_epoch']}), loss mean of "
            f"the first/last {total['window']} steps {total['first_window_mean']:.4f} -> "
            f"{total['last_window_mean']:.4f}",
            flush=True,
        )
    return results


def _per_case(eval_dir: str, name: str) -> list[tuple[str, float]]:
    """``(case, mean over classes)`` per row of MONAI's ``MetricsSaver`` raw CSV ``<name>_raw.csv``."""
    with open(os.path.join(eval_dir, f"{name}_raw.csv")) as f:
        return [(row.get("filename") or str(i), float(row["mean"])) for i, row in enumerate(csv.DictReader(f))]


def _speed_row(overrides: dict[str, Any], batch_size: int = 8) -> dict[str, Any]:
    """One training step of the bundle's own ``network_def``/``loss`` with the trained variant's overrides."""
    items = parse_config_items(BUNDLE_ROOT, ["train.json"], overrides, ("network_def", "loss", "scale", "input_size"))
    size, scale = int(items["input_size"]), int(items["scale"])
    image = torch.rand(batch_size, 1, size, size)
    label = (torch.rand(batch_size, 1, scale * size, scale * size) > 0.9).long()
    speed = step_speed(items["network_def"], items["loss"], image, label)
    method = f"SSeg training step (batch {batch_size}, {size}->{scale * size})"
    row = BenchmarkRow(method, "step", seconds=speed["step_seconds"], peak_rss_mb=peak_rss_mb()).to_dict()
    row.pop("per_seed")  # one timed step: no seeds, and no empty column in the speed table
    return {**row, **speed}


#: slice counts of the inference-scaling rows (one held-out 64x64 LGE slice stacked to a volume of that many slices)
SCALING_SLICES = (4, 8, 16)


def _inference_scaling(data: Path, model_dir: Path, network: dict[str, Any], out: Path) -> dict[str, Any]:
    """``configs/inference.json`` (64x64 LGE -> 512x512 MI mask in the input's grid) on the first held-out case's
    low-resolution LGE slice stacked to 4, 8 and 16 slices: seconds per volume and the fitted seconds per slice
    (``common.benchmarking.slice_scaling``; the config parsing and model loading are in the intercept)."""
    import shutil

    from common.benchmarking import slice_scaling, write_tiled_volume
    from common.data import dti_lge_mi_cases, dti_lge_mi_split, lowres_slice
    from common.data.layouts import write_nifti

    case = dti_lge_mi_split(dti_lge_mi_cases(data / "DTI_LGE_MI"), fractions=SPLIT, seed=SPLIT_SEED)["test"][0]
    source = write_nifti(out / f"{case['case']}_LGE.nii.gz", *lowres_slice(case["lge"], 64))

    def run(n: int) -> None:
        folder = out / f"slices_{n}"
        shutil.rmtree(folder, ignore_errors=True)
        write_tiled_volume(str(source), n, 2, str(folder / "in" / "case_LGE.nii.gz"))
        values = {"dataset_dir": str(folder / "in"), "output_dir": str(folder / "out"), "ckpt_dir": str(model_dir)}
        run_workflow(BUNDLE_ROOT, ["inference.json"], {**network, **values})

    return slice_scaling(run, SCALING_SLICES, json_path=out / "scaling.json")


def write_benchmark_data(out: str | Path, data_seed: int = DATA_SEED) -> Path:
    """The benchmark's own data root under ``out`` (written once): ``DTI_LGE_MI`` with :data:`N_PAIRED` paired and
    :data:`N_LGE_ONLY` LGE-only cases, and the public ``ACDC`` / ``EMIDEC`` sets U-SSL adds; ``data_seed`` other than
    :data:`DATA_SEED` only for development (``scripts.schedule_check``)."""
    from common.data import write_acdc, write_dti_lge_mi, write_emidec

    root = Path(out)
    if not (root / ".complete").is_file():
        write_dti_lge_mi(root, n_cases=N_PAIRED + N_LGE_ONLY, n_paired=N_PAIRED, seed=data_seed, overwrite=True,
                         workers=0)  # fmt: skip
        write_acdc(root, seed=data_seed, overwrite=True, workers=0)
        write_emidec(root, seed=data_seed, overwrite=True, workers=0)
        (root / ".complete").touch()
    return root


def variant_overrides(data: Path, epochs: int, seed: int, network: dict[str, Any]) -> dict[str, Any]:
    """What every variant of one training seed trains with (before its pre-trained weights): the data root's
    ``DTI_LGE_MI`` on the benchmark's one split, ``epochs`` with one validation at the end, the quick networks."""
    return {
        "dataset_dir": str(data / "DTI_LGE_MI"),
        "epochs": epochs,
        "val_interval": epochs,
        "seed": seed,
        "resume": False,
        "num_workers": 0,
        "split_fractions": list(SPLIT),
        "split_seed": SPLIT_SEED,
        **network,
    }


def train_and_score(
    stages: StageCache, work: Path, variant: Variant, overrides: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Train ``variant`` once into ``work/<tag>/model`` and score each of its evaluations on the test split.

    Returns ``{method: {"scores": {metric: {case: value}}, "seconds": training + evaluation, "steps": optimizer
    steps}}``, the steps read back from the trainer (``None`` for a training stored by a run before they were
    recorded); finished stages are reused (:class:`StageCache`), and stage names start with ``work``'s name (the seed's
    folder).
    """
    ckpt = work / variant.tag
    model = dict(overrides, ckpt_dir=str(ckpt / "model"), output_dir=str(ckpt / "model" / "logs"), **variant.overrides)
    train_stage = f"{work.name} {variant.tag}"

    def train() -> dict[str, int]:
        return {"steps": trainer_steps(run_workflow(BUNDLE_ROOT, variant.files, model))}

    trained = stages.once(ckpt / "model", train_stage, train, clear=True) or {}
    results: dict[str, dict[str, Any]] = {}
    for method, eval_extra in variant.evaluations.items():
        eval_dir = ckpt / f"test_{method.split('_')[0].replace('+', '_')}"

        def evaluate(eval_dir: Path = eval_dir, eval_extra: dict = eval_extra) -> dict[str, dict[str, float]]:
            files = [*variant.files, "evaluate.json"]
            run_workflow(BUNDLE_ROOT, files, dict(model, output_dir=str(eval_dir / "out"), **eval_extra))
            return {metric: dict(_per_case(str(eval_dir / "out"), name)) for metric, (name, _) in _METRIC_FILES.items()}

        eval_stage = f"{work.name} {method}"
        scores = stages.once(eval_dir, eval_stage, evaluate, clear=True)
        seconds = stages.seconds[train_stage] + stages.seconds[eval_stage]
        results[method] = {"scores": scores, "seconds": seconds, "steps": trained.get("steps")}
    return results


def run(
    data_root: str | None,
    out_dir: str,
    quick: bool = False,
    epochs: int | None = None,
    seeds: tuple[int, ...] | str = SEEDS,
    pretraining_steps: int | None = None,
    fresh: bool = False,
    seedless: bool = True,
    part: str | None = None,
) -> list[dict]:
    """Train/evaluate every variant per training seed; write `<out_dir>/benchmark.{md,json}`,
    `benchmark_details.json` and `cases.csv`; return the rows.

    ``data_root`` (what ``tools.benchmark`` passes) is not read: the benchmark writes its own data
    (:data:`DATA_SEED`) under ``<out_dir>/data`` and trains every seed on one split (:data:`SPLIT`, ``split_seed``
    :data:`SPLIT_SEED`), so the methods are compared per test case. Rows are
    :class:`common.benchmarking.BenchmarkRow` dicts (one per method and metric: per test case the mean over the seeds,
    each seed's values in ``per_seed``), then the speed row. ``pretraining_steps`` (default
    :data:`PRETRAINING_STEPS` of the mode) is the fewest optimizer steps of each pre-training; SSL and U-SSL make the
    same number (:func:`same_steps`). Without ``fresh``, finished stages found in ``out_dir`` are reused (a stopped run
    continues); ``fresh=True`` runs them again. ``seedless=False`` (what ``tools.benchmark --seed_processes`` passes
    to every seed's process but the first, whose row the merge keeps) skips the speed row, which no seed changes.
    ``part`` (one of :data:`BENCHMARK_PARTS`) trains only the variants of that pre-training and their pre-training
    (:func:`variants_of`); the rows of the parts' runs, joined in that order, are one run's over every part.

    Raises:
        ValueError: for a ``part`` not in :data:`BENCHMARK_PARTS`.
    """
    out = Path(out_dir).resolve()
    seeds = int_tuple(seeds)
    variants = variants_of(BENCHMARK_PARTS if part is None else (part,))
    needed = tuple(name for name in PRETRAININGS if any(v.pretraining == name for v in variants))
    epochs = epochs or EPOCHS["quick" if quick else "full"]
    min_steps = pretraining_steps or PRETRAINING_STEPS["quick" if quick else "full"]
    network = read_overlay(BUNDLE_ROOT, QUICK_OVERLAY) if quick else {}
    stages = StageCache(fresh)
    with Timer() as timer:
        data = write_benchmark_data(out / "data")
    stages.seconds["data"] = timer.seconds
    split = {"split_fractions": list(SPLIT), "split_seed": SPLIT_SEED}

    per_seed: dict[str, dict[str, dict[int, dict[str, float]]]] = {}
    seconds: dict[str, float] = {}
    steps: dict[str, set[int]] = {}  # method -> optimizer steps its trainers made (over the seeds)
    pretraining: dict[int, dict[str, dict]] = {}
    for seed in seeds:
        work = out / f"seed{seed}"
        pretraining[seed] = stages.once(
            work / "pretraining",
            f"seed{seed} pretraining",
            lambda: _pretrain(str(data), str(work / "pretraining"), {**network, **split}, seed, min_steps, needed),
            clear=True,
        ) if needed else {}  # fmt: skip
        ssl_weights: dict[str, str | None] = {"N": None, **{k: v["weights"] for k, v in pretraining[seed].items()}}
        base = variant_overrides(data, epochs, seed, network)
        for variant in variants:
            weights = ssl_weights[variant.pretraining]
            overrides = dict(base, use_ssl_pretrained=weights is not None)
            if weights:
                overrides["ssl_pretrained_path"] = weights
            for method, result in train_and_score(stages, work, variant, overrides).items():
                seconds[method] = seconds.get(method, 0.0) + result["seconds"]
                if result["steps"] is not None:
                    steps.setdefault(method, set()).add(result["steps"])
                for metric, values in result["scores"].items():
                    per_seed.setdefault(method, {}).setdefault(metric, {})[seed] = values
        print(f"seed {seed} done: {json.dumps({k: round(v) for k, v in stages.seconds.items()})}", flush=True)

    rows = [
        BenchmarkRow.from_seeds(method, metric, values, higher_is_better=_METRIC_FILES[metric][1],
                                seconds=seconds[method] / len(seeds))  # fmt: skip
        for method, metrics in per_seed.items()
        for metric, values in metrics.items()
    ]
    for row in rows:
        print(row.method, row.metric, row.mean, flush=True)
    speed_rows = [_speed_row(dict(base, **VARIANTS[0].overrides))] if seedless else []
    # inference time against slices, with a model of this run that has the bundle's own network (an SSeg variant)
    timed = next((v for v in variants if v.files == ("train.json",) and "encoder" not in v.overrides), None)
    if seedless and timed is not None:
        with Timer() as timer:
            scaling = _inference_scaling(data, out / f"seed{seeds[0]}" / timed.tag / "model", network, out / "scaling")
        stages.seconds["inference scaling"] = timer.seconds
        rows += slice_scaling_rows("SSeg inference", scaling)
    write_cases_csv(rows, out / "cases.csv")
    summary = [
        {"method": r.method, "metric": METRIC_LABELS[r.metric], "mean": r.mean, "std": r.std, "n": len(r.values)}
        | {"seeds": len(r.seeds), "seconds": r.seconds}
        for r in rows
    ]
    pre_text = "; ".join(
        f"seed {seed} {k} {v['epochs']} epochs x {v['steps_per_epoch']} ({v['dataset_size']} slices), loss "
        f"{v['losses']['loss']['first_window_mean']:.3f} -> {v['losses']['loss']['last_window_mean']:.3f}"
        for seed, runs in pretraining.items()
        for k, v in runs.items()
    )
    pre_steps = next((v["steps"] for runs in pretraining.values() for v in runs.values()), None)
    pre_note = (
        f"pre-training {pre_steps} optimizer steps each ({pre_text}; loss: mean of the first and last tenth of the "
        "steps, benchmark_details.json)"
        if needed
        else "no pre-training in this part"
    )
    made = "/".join(str(n) for n in sorted(set().union(*steps.values())))
    steps_text = f"{made} AdamW steps, read back from the trainers" if made else "steps not recorded"
    note = (
        f"Own phantom data (data seed {DATA_SEED}: {N_TRAIN_PAIRS} training pairs + {N_LGE_ONLY} LGE-only slices "
        f"train, {N_VAL} val, {N_TEST} test; not the paper's private data); training seeds {list(seeds)}, values "
        f"per test case averaged over them; {epochs} epochs per variant ({steps_text})"
        f"{' (quick mode: configs/quick.json)' if quick else ''}; {pre_note}. "
        f"Machine: {machine_summary()}. "
        f"Command: python -m scripts.benchmark --out {out} --quick {quick} --seeds {','.join(map(str, seeds))}"
        f"{f' --pretraining_steps {pretraining_steps}' if pretraining_steps else ''}"
        f"{f' --part {part}' if part else ''}. "
        "Per-case values: cases.csv."
    )
    text = write_table(summary, str(out), "benchmark", title="SwinSSegNet / U-SSL benchmark", note=note)
    write_seed_cases_csv(rows, out / "seed_cases.csv")
    title = "SwinSSegNet / U-SSL benchmark: paired comparisons"
    write_comparisons(rows, COMPARISONS, out / "comparisons.md", title, note, METRIC_LABELS, "test slice")
    if speed_rows:
        text += "\n" + write_table(speed_rows, str(out), "speed", title="Training step speed")
    details = {
        "quick": bool(quick),
        "epochs": epochs,
        "part": part,
        "variant_steps": {method: sorted(counts) for method, counts in steps.items()},
        "seeds": list(seeds),
        "data_seed": DATA_SEED,
        "pretraining_min_steps": min_steps,
        "pretraining": {
            str(seed): {k: {key: v[key] for key in v if key != "weights"} for k, v in runs.items()}
            for seed, runs in pretraining.items()
        },
        "stage_seconds": stages.seconds,
        "machine": machine_summary(),
        "peak_rss_mb": peak_rss_mb(),
    }
    with open(out / "benchmark_details.json", "w") as f:
        json.dump(details, f, indent=2)
    print(text)
    return [r.to_dict() for r in rows] + speed_rows


def main(
    out: str = "eval/benchmark",
    quick: bool = False,
    epochs: int | None = None,
    seeds: str | None = None,
    pretraining_steps: int | None = None,
    fresh: bool = False,
    part: str | None = None,
):
    """Command-line entry: run the benchmark (or one of :data:`BENCHMARK_PARTS`) and print the tables (returns
    nothing so fire prints nothing)."""
    seeds = SEEDS if seeds is None else seeds
    quick, fresh = as_flag(quick, "quick"), as_flag(fresh, "fresh")  # `--quick false` arrives as a string
    run(None, out, quick=quick, epochs=epochs, seeds=seeds, pretraining_steps=pretraining_steps, fresh=fresh, part=part)


if __name__ == "__main__":
    fire.Fire(main)
