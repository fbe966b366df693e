"""Fig. 7 of the paper in one run: DTI SSeg vs CycleGAN + SSeg vs CycleGANSeg + SSeg, on one split of the data.

Usage (from the bundle root)::

    python -m scripts.benchmark --data_root ../../data --out eval/benchmark --quick True \
        --sseg_bundle_root ../lge_mi_sr_segmentation

Every model is trained and scored here, in this run, on the same split of the paired cases, by driving the bundles'
own config files through ``monai.bundle.ConfigWorkflow`` (overrides only, no copied code):

1. the Segmentor (``train.json`` + ``train_segmentor.json``) on all LGE cases but the held-out paired ones;
2. plain CycleGAN (``train.json``, ``use_segmentor=false``) and CycleGANSeg (``train.json``) on the training pairs;
3. ``train.json`` + ``evaluate.json`` for both: Segmentor Dice between the masks it predicts on the translated image
   and on the paired source LGE (how well the translation keeps the MI), SSIM/PSNR against the real LGE;
4. the SSeg model of the pipelines: SwinSSegNet of ``lge_mi_sr_segmentation`` (its ``train.json``) trained on the
   same LGE training cases, from scratch (the paper pre-trains it with U-SSL; pass ``sseg_weights`` to use a
   U-SSL fine-tuned ``model.pt`` instead, whose training split must exclude the held-out cases);
5. "DTI SSeg": the same SwinSSegNet config trained directly on DTI (64x64 DTI -> 512x512 mask) of the training pairs,
   for as many optimizer steps as the LGE SwinSSegNet (more epochs, since the pairs are fewer than the LGE slices);
6. the three pipelines on the held-out pairs' DTI (``scripts.prepare_dti_folder``): DTI SSeg through the other
   bundle's ``inference.json``, CycleGAN(Seg) + SSeg through ``inference.json`` + ``pipeline.json``; MI Dice of
   each 512x512 mask against the manual mask (``common.metrics.dice``), mean and std over the held-out pairs.

The held-out pairs are the ``val`` + ``test`` splits of ``split_fractions``; ``test`` is scored, ``val`` picks the
best Segmentor/SSeg epoch. ``quick=True`` shrinks networks and epochs so the whole run takes minutes on a CPU;
``quick=False`` uses the configs' defaults (paper settings); the quick networks of this bundle are its
``configs/quick.json``, the training lengths per stage are :data:`QUICK`. Writes ``<out>/benchmark.md``,
``benchmark.json`` and ``cases.csv`` (every score per test case).

The module-level names ``REQUIRED_DATASET``, ``COMPARISONS``, ``PAPER_NUMBERS``, ``PAPER_NOTES``, ``MODE_NOTES`` and
``METRIC_LABELS`` are this bundle's benchmark data, read as literals (without importing this module) by
``python -m tools.benchmark``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import fire
import nibabel as nib
import numpy as np
import torch

BUNDLE_ROOT = Path(__file__).resolve().parents[1]
if str(BUNDLE_ROOT) not in sys.path:
    sys.path.insert(1, str(BUNDLE_ROOT))

from common.benchmarking import (  # noqa: E402
    QUICK_OVERLAY,
    BenchmarkRow,
    Timer,
    machine_summary,
    peak_rss_mb,
    read_overlay,
    run_workflow,
    write_cases_csv,
    write_table,
)
from common.data import dti_lge_mi_cases, split_cases, write_nifti  # noqa: E402
from common.metrics import dice  # noqa: E402
from common.transforms import super_resolve_affine  # noqa: E402

__all__ = ["run", "main", "QUICK", "BENCHMARK_SPLIT", "COMPARISONS", "PAPER_NUMBERS", "PAPER_NOTES", "METRIC_LABELS"]

logger = logging.getLogger(__name__)

#: split of the paired cases used by every model of the benchmark (more test pairs than the configs' default)
BENCHMARK_SPLIT = (0.5, 0.1, 0.4)

#: dataset folder (under the data root) the benchmark needs; ``tools.benchmark`` writes the default data if missing
REQUIRED_DATASET = "DTI_LGE_MI"

#: other bundles the benchmark trains and runs (``run`` argument -> bundle name); ``tools.benchmark`` passes their
#: roots. The SSeg of the pipelines is SwinSSegNet, the ``lge_mi_sr_segmentation`` bundle.
REQUIRED_BUNDLES = {"sseg_bundle_root": "lge_mi_sr_segmentation"}

#: (ours, baseline) method pairs compared per test pair, as in the paper's Fig. 7
COMPARISONS = (("CycleGANSeg+SSeg", "DTI SSeg"), ("CycleGANSeg+SSeg", "CycleGAN+SSeg"), ("CycleGANSeg", "CycleGAN"))

#: the paper's printed numbers: (ours, baseline, metric) -> (their baseline, their ours, where); Fig. 7 is a plot
PAPER_NUMBERS: dict = {}

#: what the merged table's header says about the paper's numbers
PAPER_NOTES = (
    "Fig. 7 of Wang et al. (DTI SSeg vs CycleGAN+SSeg vs CycleGANSeg+SSeg, their private DTI-LGE data) gives its "
    "values only as plots: no number is quoted for it."
)

#: what the merged table's header says about the modes (the quick networks come from configs/quick.json)
MODE_NOTES = {
    "quick": "translators 100 epochs (decay after 50), Segmentor 80 epochs, SwinSSegNets 16 epochs (feature_size "
    "12, depths 1/1/1/1), split 0.5/0.1/0.4 of the paired cases",
    "full": "the configs' defaults (paper settings), split 0.5/0.1/0.4 of the paired cases",
}

#: overrides of a fresh DDP-scaling run (``python -m tools.benchmark_ddp``): no trained Segmentor exists there, so
#: it times the CycleGAN terms
DDP_OVERRIDES = {"use_segmentor": False}

#: readable names of the metric keys
METRIC_LABELS = {
    "pipeline_dice": "MI Dice 512x512, test pairs",
    "dice_translated_vs_source_lge": "Segmentor Dice translated vs source LGE",
    "dice_translated_vs_truth": "Segmentor Dice translated vs manual mask",
    "ssim_translated_vs_lge": "SSIM translated vs real LGE",
    "psnr_translated_vs_lge": "PSNR dB translated vs real LGE",
}

#: training lengths of the quick mode, per stage (the quick networks of this bundle are configs/quick.json; the
#: full mode uses the configs' defaults). "sseg" is the other bundle's SwinSSegNet, sized here.
QUICK: dict[str, dict[str, Any]] = {
    "segmentor": {"epochs": 80, "val_interval": 5, "lr": 0.003},
    "translator": {"epochs": 100, "lr_decay_epochs": 50, "image_log_interval": 1000},
    "sseg": {
        "feature_size": 12,
        "depths": [1, 1, 1, 1],
        "num_heads": [1, 1, 2, 2],
        "epochs": 16,
        "val_interval": 4,
        "batch_size": 4,
        "lr": 0.002,
    },
}
_SSEG_NET_KEYS = ("feature_size", "depths", "num_heads", "window_size", "patch_size", "encoder", "scale")
_TRANSLATOR_NET_KEYS = ("ngf", "n_blocks")
_SEGMENTOR_NET_KEYS = ("segmentor_channels", "segmentor_strides", "segmentor_num_res_units")


def _workflow(bundle: Path, files: list[str], workflow_type: str | None = None, **overrides: Any) -> Any:
    """Run one config of `bundle` (initialize, run, finalize) with its own logging.conf, as `monai.bundle run`."""
    logging_file = str(bundle / "configs" / "logging.conf")
    return run_workflow(bundle, files, overrides, workflow_type=workflow_type, logging_file=logging_file)


def _pick(settings: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k in keys}


def _write_dti_x8(cases: list[dict], out: Path) -> list[dict]:
    """DTI slices repeated 8x8 onto the LGE/mask grid, so the SSeg training config (LGE-sized image + mask, area
    downsampling to 64) sees exactly the original 64x64 DTI; returns `[{"image", "label", "case"}]`."""
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for case in cases:
        dti, mask = nib.load(case["dti"]), nib.load(case["mask"])
        scale = mask.shape[0] // dti.shape[0]
        data = np.asarray(dti.dataobj, dtype=np.float32)
        repeated = np.repeat(np.repeat(data, scale, axis=0), scale, axis=1)
        affine = super_resolve_affine(torch.as_tensor(dti.affine), scale).numpy()
        path = write_nifti(out / f"{case['case']}_DTI_x{scale}.nii.gz", repeated, affine)
        items.append({"image": str(path), "label": case["mask"], "case": case["case"]})
    return items


def _mask_dice(masks_dir: Path, cases: list[dict], postfix: str = "DTI_mi_x8") -> list[tuple[str, float]]:
    """``(case, MI Dice)`` of `<masks_dir>/<case>_<postfix>.nii.gz` against each case's 512x512 manual mask."""
    scores = []
    for case in cases:
        pred = np.asarray(nib.load(masks_dir / f"{case['case']}_{postfix}.nii.gz").dataobj)
        truth = np.asarray(nib.load(case["mask"]).dataobj)
        scores.append((case["case"], dice(pred.reshape(truth.shape[:2]), truth.reshape(truth.shape[:2]), labels=1)))
    return scores


def _translation_cases(eval_dir: Path, metrics: list[str]) -> list[tuple[str, dict[str, float]]]:
    """``(case, {metric: value})`` per test case, from the evaluation's ``<metric>_raw.csv`` files (MONAI's
    ``MetricsSaver``: columns ``filename`` = case id and ``mean``)."""
    per_case: dict[str, dict[str, float]] = {}
    for metric in metrics:
        with open(eval_dir / f"{metric}_raw.csv", newline="") as handle:
            for line in csv.DictReader(handle):
                per_case.setdefault(line["filename"], {})[metric] = float(line["mean"])
    return list(per_case.items())


def _train_sseg(
    sseg_bundle_root: Path, out: Path, name: str, settings: dict[str, Any], train: list[dict], val: list[dict]
) -> float:
    """Train the SwinSSegNet bundle (its `train.json` with `settings`) on `train`/`val` into `<out>/<name>` (logs
    in `<out>/logs/<name>`); return the seconds it took."""
    with Timer() as timer:
        _workflow(
            sseg_bundle_root,
            ["train.json"],
            "train",
            **settings,
            train_datalist=train,
            val_datalist=val,
            ckpt_dir=str(out / name),
            output_dir=str(out / "logs" / name),
        )
    return timer.seconds


def _same_steps_epochs(sseg_bundle_root: Path, sseg_settings: dict[str, Any], n_reference: int, n_items: int) -> int:
    """Epochs over `n_items` samples that give as many optimizer steps as the SSeg settings' epochs over
    `n_reference` samples (batch size and epochs from `sseg_settings`, else the SSeg bundle's train.json)."""
    defaults = json.loads((sseg_bundle_root / "configs" / "train.json").read_text())
    batch_size = int(sseg_settings.get("batch_size", defaults["batch_size"]))
    epochs = int(sseg_settings.get("epochs", defaults["epochs"]))
    steps = epochs * math.ceil(n_reference / batch_size)
    return max(1, round(steps / math.ceil(n_items / batch_size)))


def _stats(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(array.mean()),
        "std": float(array.std()),
        "min": float(array.min()),
        "max": float(array.max()),
        "n": int(array.size),
    }


def run(
    data_root: str = "../../data",
    out_dir: str = "eval/benchmark",
    quick: bool = True,
    sseg_weights: str | None = None,
    seed: int = 0,
    overrides: dict[str, dict[str, Any]] | None = None,
    sseg_bundle_root: str | None = None,
) -> list[dict]:
    """Train and score every variant of Fig. 7 on one split; write `benchmark.md`/`benchmark.json` in `out_dir`.

    Args:
        data_root: folder holding `DTI_LGE_MI` (written by `python -m tools.make_data --out data`).
        out_dir: output folder (models, logs, masks, tables); earlier contents are replaced.
        quick: small networks and few epochs (minutes on a CPU) instead of the configs' defaults.
        sseg_weights: an existing SwinSSegNet `model.pt` (of `lge_mi_sr_segmentation`'s `inference.json`
            settings) for the two style-transfer pipelines instead of training one here.
        seed: seed of the split and of every run.
        overrides: extra config overrides per stage, merged over the mode's: keys "segmentor", "translator"
            (CycleGAN and CycleGANSeg) and "sseg" (both SwinSSegNets), e.g.
            `{"translator": {"epochs": 100, "lr_decay_epochs": 50}}`.
        sseg_bundle_root: root of the `lge_mi_sr_segmentation` bundle (SwinSSegNet, the SSeg of the pipelines);
            `python -m tools.benchmark` passes it (``REQUIRED_BUNDLES``).

    Returns:
        :class:`common.benchmarking.BenchmarkRow` dicts, one per method and metric, values per test pair.
    """
    from common.bundle_root import require_bundle_root

    sseg_root = Path(
        require_bundle_root(sseg_bundle_root, "sseg_bundle_root", "the lge_mi_sr_segmentation bundle (SwinSSegNet)")
    )
    data_root, out = Path(data_root).resolve(), Path(out_dir).resolve()
    dataset_dir = data_root / "DTI_LGE_MI"
    out.mkdir(parents=True, exist_ok=True)
    network = read_overlay(BUNDLE_ROOT, QUICK_OVERLAY) if quick else {}
    stage = {k: (dict(v) if quick else {}) for k, v in QUICK.items()}
    stage["segmentor"] = {**_pick(network, _SEGMENTOR_NET_KEYS), **stage["segmentor"]}
    stage["translator"] = {**network, **stage["translator"]}
    for name, values in (overrides or {}).items():
        if name not in stage:
            raise ValueError(f"overrides: unknown stage {name!r}, expected one of {sorted(stage)}.")
        stage[name].update(values)
    shared = {"dataset_dir": str(dataset_dir), "split_fractions": list(BENCHMARK_SPLIT), "seed": seed, "resume": False}
    segmentor_net = _pick(stage["segmentor"], _SEGMENTOR_NET_KEYS)
    translator_net = _pick(stage["translator"], _TRANSLATOR_NET_KEYS)
    sseg_net = _pick(stage["sseg"], _SSEG_NET_KEYS)
    segmentor_path = out / "segmentor" / "segmentor.pt"
    seconds: dict[str, float] = {}

    paired = dti_lge_mi_cases(dataset_dir, require_dti=True)
    split = split_cases(paired, fractions=BENCHMARK_SPLIT, seed=seed)
    held_out = {c["case"] for c in split["val"] + split["test"]}
    lge_train = [
        {"image": c["lge"], "label": c["mask"], "case": c["case"]}
        for c in dti_lge_mi_cases(dataset_dir)
        if c["case"] not in held_out
    ]
    lge_val = [{"image": c["lge"], "label": c["mask"], "case": c["case"]} for c in split["val"]]
    logger.info(
        "benchmark split: %d training pairs, %d val, %d test pairs; %d LGE training slices",
        len(split["train"]),
        len(split["val"]),
        len(split["test"]),
        len(lge_train),
    )

    # 1. the Segmentor (shared by CycleGANSeg and by the evaluation of both translators)
    with Timer() as timer:
        _workflow(
            BUNDLE_ROOT,
            ["train.json", "train_segmentor.json"],
            "train",
            **shared,
            **stage["segmentor"],
            ckpt_dir=str(out / "segmentor"),
            output_dir=str(out / "logs" / "segmentor"),
        )
    seconds["segmentor"] = timer.seconds

    # 2-3. plain CycleGAN and CycleGANSeg, then their translation metrics on the test pairs
    translation: dict[str, dict] = {}
    for name, use_segmentor in (("cyclegan", False), ("cycleganseg", True)):
        common_args = dict(
            **shared,
            **translator_net,
            **segmentor_net,
            ckpt_dir=str(out / name),
            segmentor_path=str(segmentor_path),
            use_segmentor=use_segmentor,
        )
        with Timer() as timer:
            _workflow(
                BUNDLE_ROOT,
                ["train.json"],
                "train",
                **{**common_args, **stage["translator"]},
                output_dir=str(out / "logs" / name),
            )
        seconds[name] = timer.seconds
        _workflow(BUNDLE_ROOT, ["train.json", "evaluate.json"], **common_args, output_dir=str(out / f"eval_{name}"))
        translation[name] = _translation_cases(out / f"eval_{name}", [k for k in METRIC_LABELS if k != "pipeline_dice"])

    # 4. SwinSSegNet on LGE (the SSeg of both style-transfer pipelines)
    sseg_shared = dict(**shared, use_ssl_pretrained=False, **stage["sseg"])
    if sseg_weights is None:
        seconds["sseg_lge"] = _train_sseg(sseg_root, out, "sseg_lge", sseg_shared, lge_train, lge_val)
        sseg_weights = str(out / "sseg_lge" / "model.pt")
        sseg_overrides = {f"sseg_{k}": v for k, v in sseg_net.items()}
    else:
        seconds["sseg_lge"] = 0.0
        sseg_overrides = {}

    # 5. DTI SSeg: the same SwinSSegNet config trained on the training pairs' DTI, for as many optimizer steps as
    #    the LGE SSeg (the pairs are fewer than the LGE slices, so the same epochs would be far fewer steps)
    with Timer() as timer:
        dti_train = _write_dti_x8(split["train"], out / "dti_x8")
        dti_val = _write_dti_x8(split["val"], out / "dti_x8")
    dti_epochs = _same_steps_epochs(sseg_root, sseg_shared, len(lge_train), len(dti_train))
    seconds["sseg_dti"] = timer.seconds + _train_sseg(
        sseg_root, out, "sseg_dti", {**sseg_shared, "epochs": dti_epochs}, dti_train, dti_val
    )
    logger.info("DTI SSeg trained for %d epochs (as many steps as the LGE SSeg)", dti_epochs)

    # 6. the three pipelines on the test pairs' DTI
    from scripts.prepare_dti_folder import prepare_dti_folder

    dti_test = out / "dti_test"
    prepare_dti_folder(str(dataset_dir), str(dti_test), "test", seed, BENCHMARK_SPLIT, overwrite=True)
    pipeline_dice: dict[str, list[tuple[str, float]]] = {}
    with Timer() as timer:
        _workflow(
            sseg_root,
            ["inference.json"],
            "infer",
            **sseg_net,
            dataset_dir=str(dti_test),
            ckpt_dir=str(out / "sseg_dti"),
            output_dir=str(out / "masks_dti_sseg"),
            overwrite=True,
        )
    seconds["infer_dti_sseg"] = timer.seconds
    pipeline_dice["DTI SSeg"] = _mask_dice(out / "masks_dti_sseg", split["test"])
    for name, label in (("cyclegan", "CycleGAN+SSeg"), ("cycleganseg", "CycleGANSeg+SSeg")):
        with Timer() as timer:
            _workflow(
                BUNDLE_ROOT,
                ["inference.json", "pipeline.json"],
                "infer",
                **translator_net,
                **sseg_overrides,
                dataset_dir=str(dti_test),
                ckpt_dir=str(out / name),
                sseg_bundle_root=str(sseg_root),
                sseg_weights=sseg_weights,
                output_dir=str(out / f"masks_{name}_sseg"),
                overwrite=True,
            )
        seconds[f"infer_{name}_sseg"] = timer.seconds
        pipeline_dice[label] = _mask_dice(out / f"masks_{name}_sseg", split["test"])

    # tables
    variant_seconds = {
        "DTI SSeg": seconds["sseg_dti"] + seconds["infer_dti_sseg"],
        "CycleGAN+SSeg": seconds["cyclegan"] + seconds["sseg_lge"] + seconds["infer_cyclegan_sseg"],
        "CycleGANSeg+SSeg": seconds["segmentor"]
        + seconds["cycleganseg"]
        + seconds["sseg_lge"]
        + seconds["infer_cycleganseg_sseg"],
    }
    stats = {name: _stats([v for _, v in values]) for name, values in pipeline_dice.items()}
    rows = [
        BenchmarkRow(name, "pipeline_dice", values, seeds=[seed], seconds=variant_seconds[name])
        for name, values in pipeline_dice.items()
    ]
    translation_seconds = {
        "CycleGAN": seconds["cyclegan"],
        "CycleGANSeg": seconds["segmentor"] + seconds["cycleganseg"],
    }
    for metric in [k for k in METRIC_LABELS if k != "pipeline_dice"]:
        for name, label in (("cyclegan", "CycleGAN"), ("cycleganseg", "CycleGANSeg")):
            values = [(case, scores[metric]) for case, scores in translation[name]]
            rows.append(BenchmarkRow(label, metric, values, seeds=[seed], seconds=translation_seconds[label]))
    for row in rows:
        row.peak_rss_mb = peak_rss_mb()
    write_cases_csv(rows, out / "cases.csv")
    note = (
        f"Phantom data ({dataset_dir}), split {BENCHMARK_SPLIT} of {len(paired)} paired cases (seed {seed}); "
        f"{'quick' if quick else 'full'} mode; SSeg "
        f"{'trained here from scratch' if seconds['sseg_lge'] else sseg_weights}. "
        f"Seconds = training + inference of each variant, on {machine_summary()}; peak RSS {peak_rss_mb():.0f} MiB."
    )
    summary = [
        {"method": r.method, "metric": METRIC_LABELS[r.metric], "mean": r.mean, "std": r.std, "n": len(r.values)}
        | {"seconds": r.seconds, "data": "phantom (tools/make_data)", "quick": bool(quick)}
        for r in rows
    ]
    note += " Per-case values: cases.csv."
    write_table(summary, str(out), name="benchmark", title="DTI -> MI mask pipelines (paper Fig. 7)", note=note)
    lines = ["", "## Pipelines (MI Dice of the 512x512 mask per held-out pair)", ""]
    lines += ["| pipeline | mean | std | min | max | n | seconds |", "|---|---|---|---|---|---|---|"]
    for name, values in stats.items():
        lines.append(
            f"| {name} | {values['mean']:.4f} | {values['std']:.4f} | {values['min']:.4f} | {values['max']:.4f} "
            f"| {values['n']} | {variant_seconds[name]:.0f} |"
        )
    with open(out / "benchmark.md", "a") as handle:
        handle.write("\n".join(lines) + "\n")
    details = {
        "rows": [r.to_dict() for r in rows],
        "pipelines": {
            name: {**stats[name], "seconds": variant_seconds[name], "per_case": [v for _, v in pipeline_dice[name]]}
            for name in stats
        },
        "seconds": seconds,
        "split": {k: [c["case"] for c in v] for k, v in split.items()},
        "quick": bool(quick),
        "stage_overrides": stage,
        "sseg_dti_epochs": dti_epochs,
        "machine": machine_summary(),
        "peak_rss_mb": peak_rss_mb(),
    }
    with open(out / "benchmark_details.json", "w") as handle:
        json.dump(details, handle, indent=2)
    return [r.to_dict() for r in rows]


def main(
    data_root: str = "../../data",
    out: str = "eval/benchmark",
    quick: bool = True,
    sseg_weights: str | None = None,
    seed: int = 0,
    overrides: dict[str, dict[str, Any]] | None = None,
    sseg_bundle_root: str | None = None,
) -> None:
    """Command line: `python -m scripts.benchmark --data_root ../../data --out eval/benchmark --quick True
    --sseg_bundle_root ../lge_mi_sr_segmentation`."""
    rows = run(
        data_root=data_root,
        out_dir=out,
        quick=quick,
        sseg_weights=sseg_weights,
        seed=seed,
        overrides=overrides,
        sseg_bundle_root=sseg_bundle_root,
    )
    print((Path(out) / "benchmark.md").read_text())
    print(f"{len(rows)} rows written to {Path(out).resolve()}/benchmark.json")


if __name__ == "__main__":
    fire.Fire(main)
