"""Reproduce the paper's Table 1 rows, the premise and the translator's diversity on held-out phantom LGE, in one run.

Usage (from the bundle root)::

    python -m scripts.benchmark --out eval/benchmark [--quick True] [--seeds 0,1,2]

The benchmark writes its own MS-CMRSeg-layout data (``DATA_SEED``, a seed not used while developing) with LGE labels
for ``N_EVAL`` patients: those are evaluation-only (nothing of them is trained on, ``scripts.cases``); the other
``N_TRAIN`` patients give the labelled bSSFP and the unlabelled LGE. Per training seed, through this bundle's own
configs (quick mode layers ``configs/quick.json``): the heart localiser, the MUNIT translator, ``ENSEMBLE`` synthetic
sets (one per ensemble member) and the four cascade stages per member. Rows (Table 1), scored per held-out LGE volume
with Dice and ASD (mm) per LV/MYO/RV and their average:

- ``Registration``: the bSSFP labels registered onto the LGE (``scripts.registration_baseline``, elastix);
- ``U-Net (bSSFP only)``, ``U-Net (FT)``, ``Cascaded U-Net (FT)``: member 0 after stages ``unet1_bssfp``,
  ``unet1_ft``, ``unet2_ft``, no post-processing;
- ``Cascaded U-Net (FT) + PP``: with the dense CRF and the hierarchical morphology;
- ``+ ensemble``: the members' mean probabilities, with post-processing;
- premise: ``U-Net (bSSFP only)`` on the same patients' held-out bSSFP (``on bSSFP``) against the LGE row.

Each method's per-case value is the mean over the training seeds of that case's score (``seeds`` lists them), so
the paired bootstrap of ``tools.benchmark`` compares methods per held-out volume. The translator's diversity is a
separate table: pixel SD across the styles of one synthetic stack inside the heart, and how far the LGE content
encoder's code of each style is from the bSSFP content code (relative L1).

The module-level names below are this bundle's benchmark data, read (as literals) by ``python -m tools.benchmark``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from typing import Any

import fire
import nibabel as nib
import numpy as np
from common.benchmarking import (
    QUICK_OVERLAY,
    BenchmarkRow,
    Timer,
    int_tuple,
    machine_summary,
    read_overlay,
    run_workflow,
    write_cases_csv,
    write_table,
)

__all__ = ["run", "COMPARISONS", "PAPER_NUMBERS", "PAPER_NOTES", "METRIC_LABELS"]

BUNDLE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: dataset folder under the data root that ``tools.benchmark`` makes sure exists (this benchmark writes its own)
REQUIRED_DATASET = "MSCMRSeg"

#: the benchmark's own data: a seed not used while developing, and enough held-out LGE volumes per comparison
DATA_SEED = 2026
N_EVAL = 30
N_TRAIN = 20

#: (ours, baseline) method pairs compared per case (Table 1's claims, and the premise)
COMPARISONS = (
    ("U-Net (FT)", "U-Net (bSSFP only)"),
    ("Cascaded U-Net (FT)", "U-Net (FT)"),
    ("Cascaded U-Net (FT) + PP", "Cascaded U-Net (FT)"),
    ("+ ensemble", "Cascaded U-Net (FT) + PP"),
    ("Cascaded U-Net (FT)", "Registration"),
    ("U-Net (bSSFP only) on bSSFP", "U-Net (bSSFP only)"),
)

#: the paper's Table 1 (validation, 5 MS-CMRSeg LGE volumes): (ours, baseline, metric) -> (theirs, theirs, where)
PAPER_NUMBERS = {
    ("U-Net (FT)", "U-Net (bSSFP only)", "dice_avg"): (0.547, 0.850, "Chen et al. 2019, Table 1"),
    ("Cascaded U-Net (FT)", "U-Net (FT)", "dice_avg"): (0.850, 0.868, "Chen et al. 2019, Table 1"),
    ("Cascaded U-Net (FT) + PP", "Cascaded U-Net (FT)", "asd_avg"): (1.37, 1.26, "Chen et al. 2019, Table 1"),
    ("Cascaded U-Net (FT)", "Registration", "dice_avg"): (0.772, 0.868, "Chen et al. 2019, Table 1 (MIRTK)"),
    ("Cascaded U-Net (FT)", "Registration", "dice_myo"): (0.665, 0.812, "Chen et al. 2019, Table 1 (MIRTK)"),
}

PAPER_NOTES = (
    "Theirs = Chen, Ouyang et al., *Unsupervised Multi-modal Style Transfer for Cardiac MR Segmentation* (STACOM "
    "2019), Table 1, on the 5 labelled LGE volumes of MS-CMRSeg 2019 (their validation set), not on ours. Dice "
    "LV/MYO/RV/avg: MIRTK 0.819/0.665/0.831/0.772, U-Net 0.624/0.441/0.577/0.547, U-Net (FT) 0.874/0.781/0.896/"
    "0.850, Cascaded U-Net (FT) 0.895/0.812/0.898/0.868, + PP 0.897/0.816/0.895/0.869; ASD (mm) avg: 2.11, N/A, "
    "1.52, 1.37, 1.26. Their ensemble of 4 is reported on the challenge's test set only (Dice 0.92/0.83/0.88)."
)

MODE_NOTES = {
    "quick": "configs/quick.json networks at 2.5 mm (96x96 crops); epochs localiser 5, translator 8, bSSFP stages 4, "
    "synthetic stages 1; 3 training seeds, 2 ensemble members. No registration row in quick mode (elastix takes 1-3 "
    "minutes per volume on 2 cores: add --registration True)",
    "full": "the configs' networks at 1.25 mm (192x192 crops), the configs' schedules",
}

#: overrides of a fresh DDP-scaling run (``python -m tools.benchmark_ddp``): the first cascade stage needs nothing
DDP_OVERRIDES = {"stage": "unet1_bssfp"}

STRUCTURES = {"lv": 500, "myo": 200, "rv": 600}
METRIC_LABELS = {
    "dice_lv": "LV Dice, held-out LGE",
    "dice_myo": "MYO Dice, held-out LGE",
    "dice_rv": "RV Dice, held-out LGE",
    "dice_avg": "mean Dice (LV, MYO, RV), held-out LGE",
    "asd_lv": "LV ASD mm, held-out LGE",
    "asd_myo": "MYO ASD mm, held-out LGE",
    "asd_rv": "RV ASD mm, held-out LGE",
    "asd_avg": "mean ASD mm (LV, MYO, RV), held-out LGE",
}

#: (epochs of the localiser, translator, each cascade stage) per mode
#: epochs of the localiser and the translator, then of the bSSFP and the synthetic-LGE cascade stages (the synthetic
#: set is num_styles times larger, so one of its epochs is about as many steps as 4-5 bSSFP epochs)
SCHEDULES = {"quick": (5, 8, 4, 1), "full": (100, 200, 200, 40)}


def write_benchmark_data(out: str) -> str:
    """The benchmark's own MS-CMRSeg folder: ``N_TRAIN + N_EVAL`` patients, LGE labels for ``N_EVAL`` of them."""
    from common.data import write_mscmrseg

    folder = os.path.join(out, "MSCMRSeg")
    if not os.path.isdir(folder):
        write_mscmrseg(out, n_patients=N_TRAIN + N_EVAL, seed=DATA_SEED, n_lge_labelled=N_EVAL, workers=0)
    return folder


def _evaluation(overrides: dict[str, Any], eval_dir: str) -> dict[str, dict[str, float]]:
    """``inference.json + evaluate.json`` into ``eval_dir``; ``{metric: {case: value}}`` with the averages."""
    run_workflow(BUNDLE_ROOT, ["inference.json", "evaluate.json"], dict(overrides, output_dir=eval_dir))
    scores: dict[str, dict[str, float]] = {}
    for kind in ("dice", "asd"):
        for structure in STRUCTURES:
            with open(os.path.join(eval_dir, f"{kind}_{structure}_raw.csv")) as f:
                scores[f"{kind}_{structure}"] = {row["filename"]: float(row["mean"]) for row in csv.DictReader(f)}
        cases = scores[f"{kind}_lv"]
        scores[f"{kind}_avg"] = {
            case: float(np.mean([scores[f"{kind}_{s}"][case] for s in STRUCTURES])) for case in cases
        }
    return scores


def _registration_scores(dataset_dir: str, out: str, quick: bool) -> dict[str, dict[str, float]]:
    """Table 1 row 1: the bSSFP labels registered onto each evaluation LGE, scored like the networks."""
    import importlib.util

    from common.metrics import dice, surface_distances
    from scripts.cases import evaluation_cases

    spec = importlib.util.spec_from_file_location(
        "registration_baseline", os.path.join(BUNDLE_ROOT, "scripts", "registration_baseline.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cases = evaluation_cases(dataset_dir)
    # quick mode: half the B-spline iterations of the script's default (128), the rest as the script
    options = {"bspline_iterations": 64} if quick else {}
    module.registration_baseline(dataset_dir, out, cases=[c["case"] for c in cases], overwrite=True, **options)
    scores: dict[str, dict[str, float]] = {f"{k}_{s}": {} for k in ("dice", "asd") for s in [*STRUCTURES, "avg"]}
    for case in cases:
        truth_image = nib.load(case["label"])
        truth = np.asarray(truth_image.dataobj)
        registered = np.asarray(nib.load(os.path.join(out, f"{case['case']}_LGE_registered.nii.gz")).dataobj)
        spacing = np.linalg.norm(truth_image.affine[:3, :3], axis=0)
        for name, value in STRUCTURES.items():
            scores[f"dice_{name}"][case["case"]] = float(dice(registered, truth, labels=value))
            scores[f"asd_{name}"][case["case"]] = surface_distances(registered == value, truth == value, spacing)["asd"]
        for kind in ("dice", "asd"):
            scores[f"{kind}_avg"][case["case"]] = float(
                np.mean([scores[f"{kind}_{s}"][case["case"]] for s in STRUCTURES])
            )
    return scores


def _diversity(synthetic_dir: str) -> dict[str, dict[str, float]]:
    """Per synthetic stack: pixel SD across its styles inside the heart (label > 0), and the styles' mean."""
    with open(os.path.join(synthetic_dir, "datalist.json")) as f:
        items = json.load(f)["training"]
    by_case: dict[str, list[dict]] = {}
    for item in items:
        by_case.setdefault(item["case"], []).append(item)
    sd, mean = {}, {}
    for case, styles in by_case.items():
        volumes = np.stack([np.asarray(nib.load(os.path.join(synthetic_dir, s["image"])).dataobj) for s in styles])
        heart = np.asarray(nib.load(os.path.join(synthetic_dir, styles[0]["label"])).dataobj) > 0
        sd[case] = float(volumes.std(axis=0)[heart].mean())
        mean[case] = float(volumes[:, heart].mean())
    return {"style_sd_in_heart": sd, "style_mean_in_heart": mean}


def _cached(path: str, fresh: bool, compute: Any) -> Any:
    """``compute()``, kept as JSON at ``path``; read back instead when it is there and ``fresh`` is False."""
    if os.path.isfile(path) and not fresh:
        with open(path) as f:
            return json.load(f)
    value = compute()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(value, f)
    return value


def _train_seed(seed: int, dataset_dir: str, work: str, network: dict, schedule: tuple, members: int) -> None:
    """Localiser, translator, then per member its synthetic set and the four cascade stages.

    A step whose output already exists in ``work`` is skipped, and an interrupted stage resumes from its latest
    checkpoint (the bundle's own crash-safe resume), so a stopped benchmark continues where it stopped.
    """
    localiser_epochs, translator_epochs, bssfp_epochs, synthetic_epochs = schedule
    models = os.path.join(work, "models")
    base = {
        "dataset_dir": dataset_dir,
        "ckpt_dir": models,
        "resume": True,
        "seed": seed,
        "synthetic_dir": os.path.join(work, "synthetic"),
        "num_workers": 0,
        **network,
    }
    logs = os.path.join(work, "logs")
    if not os.path.isfile(os.path.join(models, "localiser", "localiser.pt")):
        run_workflow(
            BUNDLE_ROOT,
            ["train.json", "train_localiser.json"],
            dict(base, epochs=localiser_epochs, output_dir=os.path.join(logs, "localiser")),
        )
    if not os.path.isfile(os.path.join(models, "translator", "translator.pt")):
        run_workflow(
            BUNDLE_ROOT,
            ["train.json", "train_translator.json"],
            dict(base, epochs=translator_epochs, output_dir=os.path.join(logs, "translator")),
        )
    for member in range(members):
        if not os.path.isfile(os.path.join(work, "synthetic", f"set_{member}", "datalist.json")):
            run_workflow(BUNDLE_ROOT, ["train.json", "generate.json"], dict(base, member=member, overwrite=True))
        for stage in ("unet1_bssfp", "unet1_ft", "unet2_bssfp", "unet2_ft"):
            if os.path.isfile(os.path.join(models, f"member_{member}", f"{stage}.pt")):
                continue
            stage_epochs = synthetic_epochs if stage.endswith("_ft") else bssfp_epochs
            run_workflow(
                BUNDLE_ROOT,
                ["train.json"],
                dict(
                    base,
                    member=member,
                    stage=stage,
                    epochs=stage_epochs,
                    output_dir=os.path.join(logs, f"{stage}_{member}"),
                ),
            )


def run(
    data_root: str | None,
    out_dir: str,
    quick: bool = False,
    seeds: tuple[int, ...] | str = (0, 1, 2),
    members: int | None = None,
    registration: bool | None = None,
    fresh: bool = False,
) -> list[dict]:
    """Train every seed, score every row per held-out volume; write tables and ``cases.csv``; return the rows.

    ``data_root`` (what ``tools.benchmark`` passes) is not read: the benchmark writes its own data (``DATA_SEED``)
    under ``<out_dir>/data``, so that no development seed's data reaches a reported number. Without ``fresh``, a
    seed's finished steps and scores (``seed_<k>/scores.json``) and the registration's scores found in ``out_dir``
    are reused, so a stopped run continues; ``fresh=True`` deletes them first.
    """
    out_dir = os.path.abspath(out_dir)
    seeds = int_tuple(seeds)
    members = members or (2 if quick else 4)
    # elastix takes 1-3 minutes per volume on 2 CPU cores: the registration row is part of the full run only
    registration = (not quick) if registration is None else registration
    network = read_overlay(BUNDLE_ROOT, QUICK_OVERLAY) if quick else {}
    schedule = SCHEDULES["quick" if quick else "full"]
    with Timer() as data_timer:
        dataset_dir = write_benchmark_data(os.path.join(out_dir, "data"))

    methods = {  # method -> evaluation overrides given a seed's models folder
        "U-Net (bSSFP only)": lambda m: {
            "segmenter_weights": os.path.join(m, "member_0", "unet1_bssfp.pt"),
            "cascade_stage": 1,
            "use_crf": False,
            "use_morphology": False,
        },
        "U-Net (bSSFP only) on bSSFP": lambda m: {
            "segmenter_weights": os.path.join(m, "member_0", "unet1_bssfp.pt"),
            "cascade_stage": 1,
            "use_crf": False,
            "use_morphology": False,
            "eval_modality": "C0",
        },
        "U-Net (FT)": lambda m: {
            "segmenter_weights": os.path.join(m, "member_0", "unet1_ft.pt"),
            "cascade_stage": 1,
            "use_crf": False,
            "use_morphology": False,
        },
        "Cascaded U-Net (FT)": lambda m: {
            "segmenter_weights": os.path.join(m, "member_0", "unet2_ft.pt"),
            "use_crf": False,
            "use_morphology": False,
        },
        "Cascaded U-Net (FT) + PP": lambda m: {"segmenter_weights": os.path.join(m, "member_0", "unet2_ft.pt")},
        "+ ensemble": lambda m: {
            "ensemble_weights": [os.path.join(m, f"member_{k}", "unet2_ft.pt") for k in range(members)]
        },
    }
    per_seed: dict[str, list[dict[str, dict[str, float]]]] = {name: [] for name in methods}
    diversity: list[dict[str, dict[str, float]]] = []
    timings: dict[str, float] = {"data": data_timer.seconds}
    if registration:  # first: needs no training, so a missing elastix fails the run at once
        with Timer() as timer:
            registered = _cached(
                os.path.join(out_dir, "registration", "scores.json"),
                fresh,
                lambda: _registration_scores(dataset_dir, os.path.join(out_dir, "registration"), quick),
            )
        timings["registration"] = timer.seconds
    for seed in seeds:
        work = os.path.join(out_dir, f"seed_{seed}")
        if fresh:
            shutil.rmtree(work, ignore_errors=True)
        with Timer() as timer:
            _train_seed(seed, dataset_dir, work, network, schedule, members)
        timings[f"train seed {seed}"] = timer.seconds
        models = os.path.join(work, "models")

        def score_seed(work: str = work, models: str = models) -> dict:
            scores = {
                name: _evaluation(
                    {"dataset_dir": dataset_dir, "ckpt_dir": models, **network, **overrides(models)},
                    os.path.join(work, "eval", name.replace(" ", "_")),
                )
                for name, overrides in methods.items()
            }
            return dict(scores, diversity=_diversity(os.path.join(work, "synthetic", "set_0")))

        scores = _cached(os.path.join(work, "scores.json"), fresh, score_seed)
        for name in methods:
            per_seed[name].append(scores[name])
        diversity.append(scores["diversity"])

    if registration:
        per_seed["Registration"] = [registered]
    rows: list[BenchmarkRow] = []
    for name, results in per_seed.items():
        used_seeds = list(seeds) if name != "Registration" else []
        for metric in METRIC_LABELS:
            cases = sorted(results[0][metric])
            values = [(case, float(np.nanmean([r[metric][case] for r in results]))) for case in cases]
            rows.append(
                BenchmarkRow(name, metric, values, seeds=used_seeds, higher_is_better=metric.startswith("dice"))
            )
    write_cases_csv(rows, os.path.join(out_dir, "cases.csv"))
    summary = [
        {"method": r.method, "metric": METRIC_LABELS[r.metric], "mean": r.mean, "std": r.std, "n": len(r.scored_values)}
        for r in rows
    ]
    div_rows = [
        {
            "measure": key,
            "mean": float(np.mean([np.mean(list(d[key].values())) for d in diversity])),
            "seeds": len(diversity),
        }
        for key in diversity[0]
    ]
    note = (
        f"Phantom MS-CMRSeg-layout data (seed {DATA_SEED}: {N_TRAIN} training patients, {N_EVAL} held-out LGE "
        f"volumes); training seeds {list(seeds)}, {members} ensemble members; epochs (localiser, translator, stage) "
        f"{schedule}{' (quick mode: configs/quick.json)' if quick else ''}. Seconds: "
        f"{', '.join(f'{k} {v:.0f}' for k, v in timings.items())} (steps reused from a stopped run not counted). "
        f"Machine: {machine_summary()}. Command: "
        f"python -m scripts.benchmark --out {out_dir} --quick {quick} --seeds {','.join(map(str, seeds))}. "
        "Per-case values: cases.csv."
    )
    text = write_table(summary, out_dir, "benchmark", title="MUNIT + cascaded U-Net benchmark", note=note)
    text += "\n" + write_table(div_rows, out_dir, "diversity", title="Translator diversity (synthetic set 0)")
    print(text)
    return [r.to_dict() for r in rows]


def main(
    out: str = "eval/benchmark",
    quick: bool = False,
    seeds: str = "0,1,2",
    members: int | None = None,
    registration: bool | None = None,
    data_root: str | None = None,
    fresh: bool = False,
) -> None:
    """Command-line entry (``data_root`` is accepted for ``tools.benchmark`` and unused: the data are written here)."""
    run(data_root, out, quick=quick, seeds=seeds, members=members, registration=registration, fresh=fresh)


if __name__ == "__main__":
    fire.Fire(main)
