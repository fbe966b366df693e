"""Reproduce the paper's Table 1 rows, the premise and the translator's diversity on held-out phantom LGE, in one run.

Usage (from the bundle root)::

    python -m scripts.benchmark --out eval/benchmark [--quick True] [--seeds 0,1,2]

The benchmark writes its own MS-CMRSeg-layout data (``DATA_SEED``, a seed not used while developing) with LGE labels
for ``N_EVAL`` patients: those are evaluation-only (nothing of them is trained on, ``scripts.cases``); the other
``N_TRAIN`` patients give the labelled bSSFP and the unlabelled LGE. Per training seed, through this bundle's own
configs (quick mode layers ``configs/quick.json``): the heart localiser, the MUNIT translator, ``ENSEMBLE`` synthetic
sets (one per ensemble member) and the four cascade stages per member. Rows (Table 1), scored per held-out LGE volume
with Dice and ASD (mm) per LV/MYO/RV and their average:

- ``Registration``: the bSSFP labels registered onto the LGE (``scripts.registration_baseline``, elastix), and
  ``Header alignment``: the same labels placed by the two files' affines alone (how far apart the sequences are);
- ``U-Net (bSSFP only)``, ``U-Net (FT)``, ``Cascaded U-Net (FT)``: member 0 after stages ``unet1_bssfp``,
  ``unet1_ft``, ``unet2_ft``, no post-processing;
- ``Cascaded U-Net (FT) + PP``: with the dense CRF at Krähenbühl's defaults and the hierarchical morphology;
  ``+ morphology``: the morphology alone; ``+ PP (tuned CRF)``: the CRF setting (or none) that ``scripts.tune_crf``
  chose on a synthetic LGE set no member was fine-tuned on (the tuning set, drawn like a member's with member
  index ``members``), then the morphology;
- ``+ ensemble (tuned PP)``: the members' mean probabilities, with the tuned post-processing;
- premise: ``U-Net (bSSFP only)`` on the same patients' held-out bSSFP (``on bSSFP``) against the LGE row.

Each method's per-case value is the mean over the training seeds of that case's score (``seeds`` lists them, and
``per_seed`` keeps each seed's own scores), so the paired bootstrap of ``tools.benchmark`` compares methods per
held-out volume and checks that every seed orders them the same way. The translator's diversity is a separate
table: pixel SD across the styles of one synthetic stack inside the heart, and how far apart the LGE content encoder's
codes of those styles are (relative spread), beside the spread between two patients' codes.
``<out>/benchmark_details.json`` keeps each seed's diversity per synthetic stack (set 0: the labelled training
patients translated, not the held-out volumes), its tuned CRF setting and the stages' seconds (``tools.benchmark``
commits it beside the rows, as ``<bundle>_details.json``).

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
    slice_scaling_rows,
    write_cases_csv,
    write_table,
)
from common.flags import as_flag

__all__ = ["run", "COMPARISONS", "PAPER_NUMBERS", "PAPER_NOTES", "METRIC_LABELS"]

BUNDLE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: dataset folder under the data root that ``tools.benchmark_ddp``'s training runs read (this benchmark writes its own)
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
    ("Cascaded U-Net (FT) + morphology", "Cascaded U-Net (FT)"),
    ("Cascaded U-Net (FT) + PP (tuned CRF)", "Cascaded U-Net (FT)"),
    ("+ ensemble (tuned PP)", "Cascaded U-Net (FT) + PP (tuned CRF)"),
    ("Cascaded U-Net (FT)", "Registration"),
    ("Registration", "Header alignment"),
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
    "synthetic stages 1; 3 training seeds, 2 ensemble members; the registration baseline at the script's own "
    "settings (about 20 s per volume on 2 cores)",
    "full": "the configs' networks at 1.25 mm (192x192 crops) and schedules (localiser 100 epochs, translator 20k "
    "iterations, 250 epochs per cascade stage)",
}

#: folder inference's batching knob, timed per value by ``python -m tools.inference_batching`` on 16 heart-centred
#: 192x192 crops through the cascaded U-Net
INFERENCE_BATCH = {
    "key": "sw_batch_size",
    "input_shape": [1, 1, 192, 192, 16],
    "slices": 16,
    "values": [1, 2, 4, 8, 16],
}

#: our MUNIT iteration beside NVlabs/MUNIT's (``python -m tools.side_by_side``): the public code's harness and ours
#: (``scripts.peer_step``) at the reference configuration, 3 timed iterations each after 1 warm-up, per round
PEER_STEP = {
    "repository": "NVlabs/MUNIT",
    "harness": "munit_step.py",
    "harness_args": ["--n", "3", "--warmup", "1", "--flops"],
    "ours_args": ["-m", "scripts.peer_step", "--n", "3", "--warmup", "1"],
    "ours_variants": {"stacked passes": ["--stack_passes", "True"]},
    "configuration": "edges2handbags gen/dis (dim 64, 4 res blocks, style 8, MLP 256; 3-scale 4-layer LSGAN D), "
    "1 channel, 192x192, batch 1, dis + gen update",
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
    "inference_seconds": "inference seconds per LGE volume (one stack tiled to N slices; the fit: per slice)",
}

#: epochs of the localiser and the translator, then of the bSSFP and the synthetic-LGE cascade stages (the synthetic
#: set is num_styles times larger, so one of its epochs is about as many steps as 4-5 bSSFP epochs); ``None``: the
#: config's own (localiser 100, translator the paper's 20k iterations, 250 per cascade stage: 1000 in all, the paper's)
SCHEDULES = {"quick": (5, 8, 4, 1), "full": (None, None, None, None)}


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


def _label_scores(cases: list[dict[str, str]], predicted: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Dice and ASD (mm) per structure and their averages, per case, of label maps on each case's LGE grid."""
    from common.metrics import dice, surface_distances

    scores: dict[str, dict[str, float]] = {f"{k}_{s}": {} for k in ("dice", "asd") for s in [*STRUCTURES, "avg"]}
    for case in cases:
        truth_image = nib.load(case["label"])
        truth, labels = np.asarray(truth_image.dataobj), predicted[case["case"]]
        spacing = np.linalg.norm(truth_image.affine[:3, :3], axis=0)
        for name, value in STRUCTURES.items():
            scores[f"dice_{name}"][case["case"]] = float(dice(labels, truth, labels=value))
            scores[f"asd_{name}"][case["case"]] = surface_distances(labels == value, truth == value, spacing)["asd"]
        for kind in ("dice", "asd"):
            scores[f"{kind}_avg"][case["case"]] = float(
                np.mean([scores[f"{kind}_{s}"][case["case"]] for s in STRUCTURES])
            )
    return scores


def _header_aligned(c0_label: str, lge: str) -> np.ndarray:
    """The bSSFP labels put on the LGE grid by the two files' affines alone (nearest neighbour), no registration."""
    from scipy import ndimage

    source, target = nib.load(c0_label), nib.load(lge)
    lge_to_c0 = np.linalg.inv(source.affine) @ target.affine
    grid = np.indices(target.shape[:3]).reshape(3, -1)
    coords = lge_to_c0[:3, :3] @ grid + lge_to_c0[:3, 3:]
    values = ndimage.map_coordinates(np.asarray(source.dataobj), coords, order=0, mode="constant", cval=0)
    return values.reshape(target.shape[:3])


def _registration_scores(dataset_dir: str, out: str) -> dict[str, dict[str, dict[str, float]]]:
    """Table 1 row 1, the bSSFP labels registered onto each evaluation LGE (elastix), and the same labels placed
    by the headers alone (how far apart the two sequences are before registration); scored like the networks."""
    import importlib.util

    from scripts.cases import evaluation_cases

    spec = importlib.util.spec_from_file_location(
        "registration_baseline", os.path.join(BUNDLE_ROOT, "scripts", "registration_baseline.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cases = evaluation_cases(dataset_dir)
    # the script's own settings in both modes (the baseline is not what the quick mode shrinks); outputs of a
    # stopped run are kept, only the missing cases are registered
    missing = [c["case"] for c in cases if not os.path.isfile(os.path.join(out, f"{c['case']}{module.OUTPUT_SUFFIX}"))]
    if missing:
        module.registration_baseline(dataset_dir, out, cases=missing)
    registered = {
        c["case"]: np.asarray(nib.load(os.path.join(out, f"{c['case']}{module.OUTPUT_SUFFIX}")).dataobj) for c in cases
    }
    folder = os.path.dirname(cases[0]["label"])
    aligned = {
        c["case"]: _header_aligned(
            os.path.join(folder, f"{c['case']}_C0_manual.nii.gz"), os.path.join(folder, f"{c['case']}_LGE.nii.gz")
        )
        for c in cases
    }
    return {"Registration": _label_scores(cases, registered), "Header alignment": _label_scores(cases, aligned)}


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


def _content_agreement(work: str, network: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per synthetic stack of set 0: how far the LGE content encoder's codes of its styles are apart (mean absolute
    deviation from their mean, over the mean code's mean absolute value), and the same spread over the first styles
    of as many different patients (the scale of a real content change), slice by slice.

    MUNIT's premise (Huang et al. 2018): the content code carries the anatomy, the style code the appearance, so the
    styles of one stack should re-encode to nearly one content code, much closer than two patients' codes.
    """
    import torch
    from common.benchmarking import parse_config_items
    from scripts.generate import load_translator

    items = parse_config_items(BUNDLE_ROOT, ["train.json"], dict(network, device="cpu"), ("gen_a_def", "gen_b_def"))
    _, gen_b = load_translator(
        items["gen_a_def"], items["gen_b_def"], os.path.join(work, "models", "translator", "translator.pt")
    )
    synthetic = os.path.join(work, "synthetic", "set_0")
    with open(os.path.join(synthetic, "datalist.json")) as f:
        entries = json.load(f)["training"]
    by_case: dict[str, list[str]] = {}
    for entry in sorted(entries, key=lambda e: (e["case"], e["style"])):
        by_case.setdefault(entry["case"], []).append(os.path.join(synthetic, entry["image"]))
    codes = {}
    with torch.no_grad():
        for case, paths in by_case.items():
            stacks = np.stack([np.asarray(nib.load(p).dataobj, np.float32) for p in paths])  # (styles, H, W, D)
            slices = torch.from_numpy(stacks).permute(3, 0, 1, 2)[:, :, None]  # (D, styles, 1, H, W)
            codes[case] = torch.stack([gen_b.encode(s)[0] for s in slices])  # (D, styles, C, h, w)

    def spread(group: torch.Tensor) -> float:
        """``group`` (D, n, C, h, w): mean |code - mean code| over the mean code's mean |.|, averaged over slices."""
        centre = group.mean(dim=1, keepdim=True)
        return float(((group - centre).abs().mean(dim=(1, 2, 3, 4)) / centre.abs().mean(dim=(1, 2, 3, 4))).mean())

    within = {case: spread(c) for case, c in codes.items()}
    names = sorted(codes)
    between = {}  # the first style of as many different patients as a stack has styles: the same n, comparable
    for index, case in enumerate(names):
        group = [names[(index + k) % len(names)] for k in range(len(by_case[case]))]
        depth = min(len(codes[name]) for name in group)
        between[case] = spread(torch.stack([codes[name][:depth, 0] for name in group], dim=1))
    return {"content_spread_within_styles": within, "content_spread_between_patients": between}


def _inference_scaling(dataset_dir: str, models: str, network: dict[str, Any], out: str) -> dict[str, Any]:
    """``configs/inference.json`` (localiser, crop, cascade, morphology, back to the input grid) on one held-out LGE
    stack tiled along the slice axis to 4, 8 and 16 slices: seconds per volume and the fitted seconds per slice
    (``common.benchmarking.slice_scaling``; the config parsing and model loading are in the intercept)."""
    from common.benchmarking import slice_scaling, write_tiled_volume
    from scripts.cases import evaluation_cases

    source = evaluation_cases(dataset_dir)[0]["image"]

    def run(n: int) -> None:
        folder = os.path.join(out, f"slices_{n}")
        shutil.rmtree(folder, ignore_errors=True)
        write_tiled_volume(source, n, -1, os.path.join(folder, "in", "case_LGE.nii.gz"))
        values = {"dataset_dir": os.path.join(folder, "in"), "output_dir": os.path.join(folder, "out")}
        run_workflow(BUNDLE_ROOT, ["inference.json"], dict(network, ckpt_dir=models, **values))

    return slice_scaling(run, (4, 8, 16))


def _save_json(path: str, value: Any) -> None:
    """Write ``value`` as JSON at ``path`` through a temporary file (a stopped run never leaves half a file)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(f"{path}.tmp", "w") as f:
        json.dump(value, f)
    os.replace(f"{path}.tmp", path)


def _cached(path: str, fresh: bool, compute: Any) -> Any:
    """``compute()``, kept as JSON at ``path``; read back instead when it is there and ``fresh`` is False."""
    if os.path.isfile(path) and not fresh:
        with open(path) as f:
            return json.load(f)
    value = compute()
    _save_json(path, value)
    return value


def _tune_crf(work: str, members: int, network: dict[str, Any]) -> dict[str, Any]:
    """The CRF overlay for member 0's cascade (and the ensemble's), chosen by ``scripts.tune_crf`` on the tuning
    set ``set_<members>``, which no member was fine-tuned on, first style of each training patient."""
    from scripts.tune_crf import tune_crf

    tuning_set = os.path.join(work, "synthetic", f"set_{members}")
    models = os.path.join(work, "models")
    return tune_crf(
        tuning_set,
        os.path.join(work, "tune_crf", "crf.json"),
        ckpt_dir=models,
        segmenter_weights=os.path.join(models, "member_0", "unet2_ft.pt"),
        overrides=network,
    )


def _epochs(epochs: int | None) -> dict[str, int]:
    """The ``epochs`` override of a schedule entry; none for ``None`` (the config's own schedule)."""
    return {} if epochs is None else {"epochs": epochs}


def _train_seed(seed: int, dataset_dir: str, work: str, network: dict, schedule: tuple, members: int) -> None:
    """Localiser, translator, then per member its synthetic set and the four cascade stages, and the CRF tuning set.

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
            dict(base, **_epochs(localiser_epochs), output_dir=os.path.join(logs, "localiser")),
        )
    if not os.path.isfile(os.path.join(models, "translator", "translator.pt")):
        run_workflow(
            BUNDLE_ROOT,
            ["train.json", "train_translator.json"],
            dict(base, **_epochs(translator_epochs), output_dir=os.path.join(logs, "translator")),
        )
    for member in range(members + 1):  # the last set tunes the CRF: no member is fine-tuned on it
        if not os.path.isfile(os.path.join(work, "synthetic", f"set_{member}", "datalist.json")):
            run_workflow(BUNDLE_ROOT, ["train.json", "generate.json"], dict(base, member=member, overwrite=True))
        if member == members:
            break
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
                    **_epochs(stage_epochs),
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
    seedless: bool = True,
) -> list[dict]:
    """Train every seed, score every row per held-out volume; write tables and ``cases.csv``; return the rows.

    ``data_root`` (what ``tools.benchmark`` passes) is not read: the benchmark writes its own data (``DATA_SEED``)
    under ``<out_dir>/data``, so that no development seed's data reaches a reported number. Without ``fresh``, a
    seed's finished steps and scores (``seed_<k>/scores.json``) and the registration's scores found in ``out_dir``
    are reused, so a stopped run continues; ``fresh=True`` deletes them first. ``seedless=False`` (what
    ``tools.benchmark --seed_processes`` passes to every seed's process but the first) skips the rows that no
    training seed changes: the registration baseline (10 minutes) and the inference timing.
    """
    out_dir = os.path.abspath(out_dir)
    seeds = int_tuple(seeds)
    members = members or (2 if quick else 4)
    # elastix takes about 20 s per volume on 2 CPU cores (10 minutes for the 30 volumes), in both modes
    registration = (True if registration is None else registration) and seedless
    network = read_overlay(BUNDLE_ROOT, QUICK_OVERLAY) if quick else {}
    schedule = SCHEDULES["quick" if quick else "full"]
    with Timer() as data_timer:
        dataset_dir = write_benchmark_data(os.path.join(out_dir, "data"))

    no_pp = {"use_crf": False, "use_morphology": False}
    cascade = "member_0/unet2_ft.pt"
    # method -> evaluation overrides given a seed's models folder and its tuned CRF overlay (scripts.tune_crf)
    methods: dict[str, Any] = {
        "U-Net (bSSFP only)": lambda m, crf: {"segmenter_weights": f"{m}/member_0/unet1_bssfp.pt", "cascade_stage": 1,
                                              **no_pp},
        "U-Net (bSSFP only) on bSSFP": lambda m, crf: {"segmenter_weights": f"{m}/member_0/unet1_bssfp.pt",
                                                       "cascade_stage": 1, "eval_modality": "C0", **no_pp},
        "U-Net (FT)": lambda m, crf: {"segmenter_weights": f"{m}/member_0/unet1_ft.pt", "cascade_stage": 1, **no_pp},
        "Cascaded U-Net (FT)": lambda m, crf: {"segmenter_weights": f"{m}/{cascade}", **no_pp},
        # the paper's post-processing with the CRF at Krähenbühl's defaults (the configs' crf_* values)
        "Cascaded U-Net (FT) + PP": lambda m, crf: {"segmenter_weights": f"{m}/{cascade}", "use_crf": True,
                                                    "use_morphology": True},
        "Cascaded U-Net (FT) + morphology": lambda m, crf: {"segmenter_weights": f"{m}/{cascade}", "use_crf": False,
                                                            "use_morphology": True},
        "Cascaded U-Net (FT) + PP (tuned CRF)": lambda m, crf: {"segmenter_weights": f"{m}/{cascade}",
                                                                "use_morphology": True, **crf},
        "+ ensemble (tuned PP)": lambda m, crf: {"ensemble_weights": [f"{m}/member_{k}/unet2_ft.pt" for k in range(
            members)], "use_morphology": True, **crf},
    }  # fmt: skip
    # method -> one {metric: {case: value}} per training seed, in the order of ``seeds``
    seed_scores: dict[str, list[dict[str, dict[str, float]]]] = {name: [] for name in methods}
    diversity: list[dict[str, dict[str, float]]] = []
    tuned: list[dict[str, Any]] = []
    timings: dict[str, float] = {"data": data_timer.seconds}
    if registration:  # first: needs no training, so a missing elastix fails the run at once
        with Timer() as timer:
            registered = _cached(
                os.path.join(out_dir, "registration", "rows.json"),
                fresh,
                lambda: _registration_scores(dataset_dir, os.path.join(out_dir, "registration")),
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
        with Timer() as timer:
            crf = _cached(os.path.join(work, "crf.json"), fresh, lambda: _tune_crf(work, members, network))
        timings[f"CRF tuning seed {seed}"] = timer.seconds
        tuned.append(crf)
        scores = _cached(os.path.join(work, "scores.json"), fresh, dict)
        for name, overrides in methods.items():
            if name not in scores:  # scored once per seed and method, kept as soon as it is done
                scores[name] = _evaluation(
                    {"dataset_dir": dataset_dir, "ckpt_dir": models, **network, **overrides(models, crf)},
                    os.path.join(work, "eval", name.replace(" ", "_")),
                )
                _save_json(os.path.join(work, "scores.json"), scores)
            seed_scores[name].append(scores[name])
        if "diversity" not in scores:
            scores["diversity"] = _diversity(os.path.join(work, "synthetic", "set_0"))
            _save_json(os.path.join(work, "scores.json"), scores)
        if "content_agreement" not in scores:
            scores["content_agreement"] = _content_agreement(work, network)
            _save_json(os.path.join(work, "scores.json"), scores)
        diversity.append({**scores["diversity"], **scores["content_agreement"]})

    if registration:
        for name, scores in registered.items():
            seed_scores[name] = [scores]
    scaling = None
    if seedless:
        with Timer() as timer:  # the last seed's trained cascade: a cost row, not a score
            scaling = _inference_scaling(dataset_dir, models, network, os.path.join(out_dir, "inference_scaling"))
        timings["inference scaling"] = timer.seconds
    rows: list[BenchmarkRow] = []
    for name, results in seed_scores.items():
        used_seeds = [] if name in ("Registration", "Header alignment") else list(seeds)
        for metric in (m for m in METRIC_LABELS if m != "inference_seconds"):
            scores = [r[metric] for r in results]
            higher = metric.startswith("dice")
            rows.append(BenchmarkRow.from_runs(name, metric, scores, seeds=used_seeds, higher_is_better=higher))
    if scaling is not None:
        rows.extend(slice_scaling_rows("inference", scaling))
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
        f"CRF settings chosen per seed by scripts.tune_crf on a synthetic set no member was fine-tuned on: {tuned}. "
        "Per-case values: cases.csv."
    )
    text = write_table(summary, out_dir, "benchmark", title="MUNIT + cascaded U-Net benchmark", note=note)
    text += "\n" + write_table(div_rows, out_dir, "diversity", title="Translator diversity (synthetic set 0)")
    details = {
        "seeds": list(seeds),
        "diversity_per_seed": {str(seed): d for seed, d in zip(seeds, diversity)},
        "crf_per_seed": {str(seed): crf for seed, crf in zip(seeds, tuned)},
        "stage_seconds": timings,
        "machine": machine_summary(),
    }
    _save_json(os.path.join(out_dir, "benchmark_details.json"), details)
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
    quick, fresh = as_flag(quick, "quick"), as_flag(fresh, "fresh")  # `--quick false` arrives as a string
    registration = None if registration is None else as_flag(registration, "registration")
    run(data_root, out, quick=quick, seeds=seeds, members=members, registration=registration, fresh=fresh)


if __name__ == "__main__":
    fire.Fire(main)
