"""Reproduce PSCGAN's tables (1-5) on held-out phantom patients in one run, with per-case paired statistics.

Usage (from the bundle root)::

    python -m scripts.benchmark --out eval/benchmark [--quick True] [--seeds 0,1,2] [--variants PSCGAN,...]

The benchmark writes its own CineLGE data (``DATA_SEED``, a seed not used while developing): ``N_TRAIN`` patients
train every network, ``N_VAL`` select each phase's weights, and ``N_TEST`` held-out patients (3 short-axis slices
each) are only scored. Per training seed, through this bundle's own configs (quick mode layers ``configs/quick.json``)
each variant of ``VARIANTS`` is trained (Pri -> Sys -> Seg, or the one-generator ablation) and scored by
``scripts.evaluate.evaluate``: Table 1 (pixel accuracy, sensitivity, specificity, Dice per class; SSIM, PSNR, NRMSE of
the synthesis), Table 2 (scar size and ratio agreement, AHA-segment localisation and transmurality), Tables 3-5 (the
ablations), and the scar probability's AUC inside the true myocardium (``common.metrics.scar_auc``: whether the
motion signal reached the scar channel even where scar never wins the argmax). A case's value is the mean over its
slices and then over the training seeds (``per_seed`` keeps each seed's own value), so ``tools.benchmark`` pairs
methods per held-out patient and checks that every seed orders them the same way. ``ED frame only`` is the premise
check: the same PSCGAN fed a cine whose 25 frames are all the end-diastolic one (no motion), so it can only use
intensities, in which the phantom's scar is invisible, and the wall's shape at end-diastole. ``scar location prior``
is the scar AUC's trivial baseline: how often the training myocardium is scar at each angle and slice level, no image
read. Table 2's segment-level AUC pools the AHA segments of all test patients, so each ``COMPARISONS`` pair is compared
on it with an interval from a bootstrap over patients (``scripts.segment_auc``: ``segment_auc.md``, per-segment
scores in ``segment_scores.csv``), the location prior scoring a segment by its mean over the segment's true wall.

The module-level names below are this bundle's benchmark data, read (as literals) by ``python -m tools.benchmark``.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import fire
import numpy as np
import torch
from common.benchmarking import (
    QUICK_OVERLAY,
    BenchmarkRow,
    PeakRSSWindow,
    Timer,
    int_tuple,
    machine_summary,
    parse_config_items,
    read_overlay,
    run_workflow,
    slice_scaling,
    slice_scaling_rows,
    time_step,
    write_cases_csv,
    write_table,
    write_tiled_volume,
)
from common.constants import PSCGAN_LABELS
from common.flags import as_flag
from common.metrics import lv_centre, roc_auc, scar_auc
from scripts.clinical import analyse_stack
from scripts.segment_auc import SEGMENT_FLAGS, compare_segment_aucs, segment_aucs, write_segment_auc

__all__ = ["run", "score_rows", "COMPARISONS", "PAPER_NUMBERS", "PAPER_NOTES", "METRIC_LABELS"]

BUNDLE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: dataset folder under the data root that ``tools.benchmark_ddp``'s training runs read (this benchmark writes its own)
REQUIRED_DATASET = "CineLGE"

#: folder inference's batching knob, timed per value by ``python -m tools.inference_batching`` on a 16-slice stack of
#: 25-frame 64x64 cines through the three phases
INFERENCE_BATCH = {
    "key": "slices_per_batch",
    "input_shape": [1, 25, 64, 64, 16],
    "slices": 16,
    "values": [1, 2, 4, 8, 16],
}

#: ``python -m tools.folder_batching``: a folder of 16 cases of three-slice cines (64x64, 25 phases, as the default
#: data), the whole inference run at each ``files_per_batch``
FOLDER_BATCH = {"file_shape": [64, 64, 3, 25], "pixdim": [1.33, 1.33, 8.0], "files": 16, "values": [1, 2, 4, 8, 16]}

#: ``python -m tools.side_by_side``: no public code exists, so the speed switches are timed against our default step
PEER_STEP = {
    "repository": None,
    "ours_args": ["-m", "scripts.peer_step", "--n", "3", "--warmup", "1"],
    "ours_variants": {
        "fused Adam and set-to-None off": ["--fused_optimizer", "False", "--optim_set_to_none", "False"],
        "channels-last": ["--channels_last", "True"],
        "compiled": ["--compile", "True"],
        "unfused (math) attention": ["--attention_kernel", "math"],
    },
    "configuration": "PSCGAN Sys phase (configs/train.json + train_sys.json: SCLN generator g_channels 16/32/64/128, "
    "3 stacks, FC bottleneck 4096; 5-conv discriminator), one generator update = 2 iterations (d_steps_per_g_step 2), "
    "batch 1 of 25 x 64 x 64 cines; train.json's switches (fused Adam, gradients set to None) unless the row says "
    "otherwise",
}

#: the benchmark's own data: a seed not used while developing, enough held-out patients per comparison
DATA_SEED = 2029
N_TRAIN = 30
N_VAL = 4
N_TEST = 30

#: (ours, baseline) method pairs compared per case
COMPARISONS = (
    ("PSCGAN", "ED frame only"),
    ("PSCGAN", "scar location prior"),
    ("PSCGAN", "no adversarial (one generator)"),
    ("PSCGAN", "progressive without discriminators"),
    ("PSCGAN", "no progressive"),
    ("PSCGAN", "3DConv"),
    ("PSCGAN", "spatial only"),
    ("PSCGAN", "temporal only"),
    ("PSCGAN", "no attention weighing"),
    ("PSCGAN", "ConvLSTM"),
    ("PSCGAN", "3DConv+LSTM"),
    ("PSCGAN", "no synthetic regularization"),
    ("PSCGAN", "no auxiliary loss"),
    ("PSCGAN", "aux head fitted on real masks only"),
    ("PSCGAN", "median-frequency mce"),
    ("PSCGAN 20 epochs", "ED frame only 20 epochs"),
    ("PSCGAN 20 epochs", "scar location prior"),
)

#: (ours, baseline, metric) -> (the paper's baseline value, its PSCGAN value, source): Tables 3-5 of Xu et al. 2020
#: (accuracy as a fraction; SSIM and PSNR of the LGE-equivalent image); a literal, read by ``tools.benchmark``
PAPER_NUMBERS = {
    ("PSCGAN", "no adversarial (one generator)", "accuracy"): (0.9592, 0.9717, "Xu et al. 2020, Table 3"),
    ("PSCGAN", "no adversarial (one generator)", "ssim"): (0.55, 0.78, "Xu et al. 2020, Table 3"),
    ("PSCGAN", "no progressive", "accuracy"): (0.9491, 0.9717, "Xu et al. 2020, Table 3"),
    ("PSCGAN", "no progressive", "ssim"): (0.61, 0.78, "Xu et al. 2020, Table 3"),
    ("PSCGAN", "3DConv", "accuracy"): (0.9513, 0.9717, "Xu et al. 2020, Table 3"),
    ("PSCGAN", "3DConv", "ssim"): (0.64, 0.78, "Xu et al. 2020, Table 3"),
    ("PSCGAN", "spatial only", "accuracy"): (0.7361, 0.9717, "Xu et al. 2020, Table 4"),
    ("PSCGAN", "spatial only", "ssim"): (0.48, 0.78, "Xu et al. 2020, Table 4"),
    ("PSCGAN", "temporal only", "accuracy"): (0.8942, 0.9717, "Xu et al. 2020, Table 4"),
    ("PSCGAN", "temporal only", "ssim"): (0.57, 0.78, "Xu et al. 2020, Table 4"),
    ("PSCGAN", "no attention weighing", "accuracy"): (0.9672, 0.9717, "Xu et al. 2020, Table 4"),
    ("PSCGAN", "no attention weighing", "ssim"): (0.74, 0.78, "Xu et al. 2020, Table 4"),
    ("PSCGAN", "ConvLSTM", "accuracy"): (0.9597, 0.9717, "Xu et al. 2020, Table 4"),
    ("PSCGAN", "ConvLSTM", "ssim"): (0.71, 0.78, "Xu et al. 2020, Table 4"),
    ("PSCGAN", "3DConv+LSTM", "accuracy"): (0.9647, 0.9717, "Xu et al. 2020, Table 4"),
    ("PSCGAN", "3DConv+LSTM", "ssim"): (0.70, 0.78, "Xu et al. 2020, Table 4"),
    ("PSCGAN", "no synthetic regularization", "ssim"): (0.77, 0.78, "Xu et al. 2020, Table 5"),
    ("PSCGAN", "no synthetic regularization", "psnr"): (21.50, 23.03, "Xu et al. 2020, Table 5"),
    ("PSCGAN", "no auxiliary loss", "accuracy"): (0.9704, 0.9717, "Xu et al. 2020, Table 5"),
    # Table 1, PSCGAN alone (no baseline): overall Dice, then accuracy / sensitivity / specificity per class
    ("PSCGAN", "", "dice_mean"): (None, 0.918, "Xu et al. 2020, Table 1"),
    ("PSCGAN", "", "accuracy_3"): (None, 0.9713, "Xu et al. 2020, Table 1"),
    ("PSCGAN", "", "accuracy_2"): (None, 0.9634, "Xu et al. 2020, Table 1"),
    ("PSCGAN", "", "accuracy_1"): (None, 0.9797, "Xu et al. 2020, Table 1"),
    ("PSCGAN", "", "sensitivity_3"): (None, 0.9084, "Xu et al. 2020, Table 1"),
    ("PSCGAN", "", "sensitivity_2"): (None, 0.9107, "Xu et al. 2020, Table 1"),
    ("PSCGAN", "", "sensitivity_1"): (None, 0.9184, "Xu et al. 2020, Table 1"),
    ("PSCGAN", "", "specificity_3"): (None, 0.9848, "Xu et al. 2020, Table 1"),
    ("PSCGAN", "", "specificity_2"): (None, 0.9911, "Xu et al. 2020, Table 1"),
    ("PSCGAN", "", "specificity_1"): (None, 0.9836, "Xu et al. 2020, Table 1"),
}

PAPER_NOTES = (
    "PSCGAN (Xu et al., MedIA 2020) on 280 patients (3-T cine, 25 phases; 70 test patients): overall pixel accuracy "
    "97.17 %, sensitivity 91.68 %, specificity 98.53 %, Dice 0.918 overall, 0.932 scar / 0.908 myocardium / 0.936 "
    "blood pool (Table 1); synthesis SSIM 0.78, PSNR 23.03, NRMSE 0.11; scar ratio r 0.96, scar size r 0.97; segment "
    "localisation sensitivity 85.27 % / specificity 97.47 %, transmurality 86.95 % / 97.87 %. Table 3 accuracy / "
    "SSIM: no adversarial 95.92 % / 0.55, no progressive 94.91 % / 0.61, 3DConv 95.13 % / 0.64. Table 4: spatial "
    "only 73.61 % / 0.48, temporal only 89.42 % / 0.57, no attention weighing 96.72 % / 0.74, ConvLSTM 95.97 % / "
    "0.71, 3DConv+LSTM 96.47 % / 0.70. Table 5: no synthetic regularisation SSIM 0.77 / PSNR 21.50; no auxiliary "
    "loss accuracy 97.04 %."
)

MODE_NOTES = {
    "quick": "configs/quick.json networks (SCLN stacks of 4 dilated convs, channels 8-64, bottleneck 512) on 64x64x25 "
    "phantom cine slices; the schedules of SCHEDULES['quick']",
    "full": "the configs' networks (the paper's sizes) and schedules on the same phantoms",
}

#: overrides of a fresh DDP-scaling run (``python -m tools.benchmark_ddp``): phase I alone
DDP_OVERRIDES = {"d_steps_per_g_step": 2}

METRIC_LABELS = {
    "accuracy": "overall pixel accuracy (Table 1)",
    "sensitivity": "pixel sensitivity, mean over the 4 classes",
    "specificity": "pixel specificity, mean over the 4 classes",
    "dice_scar": "scar Dice (empty vs empty = 1)",
    "scar_auc": "scar probability AUC, true scar vs true healthy myocardium (threshold-free; patients with scar)",
    "dice_myo": "healthy myocardium Dice",
    "dice_blood": "blood pool Dice",
    "dice_mean": "Dice, mean over blood pool, healthy myocardium and scar (Table 1's overall Dice)",
    "accuracy_3": "scar pixel accuracy, one class vs the rest (Table 1)",
    "accuracy_2": "healthy myocardium pixel accuracy, one class vs the rest (Table 1)",
    "accuracy_1": "blood pool pixel accuracy, one class vs the rest (Table 1)",
    "sensitivity_3": "scar pixel sensitivity, one class vs the rest (Table 1)",
    "sensitivity_2": "healthy myocardium pixel sensitivity, one class vs the rest (Table 1)",
    "sensitivity_1": "blood pool pixel sensitivity, one class vs the rest (Table 1)",
    "specificity_3": "scar pixel specificity, one class vs the rest (Table 1)",
    "specificity_2": "healthy myocardium pixel specificity, one class vs the rest (Table 1)",
    "specificity_1": "blood pool pixel specificity, one class vs the rest (Table 1)",
    "ssim": "SSIM of the LGE-equivalent image vs the LGE",
    "psnr": "PSNR dB of the LGE-equivalent image",
    "nrmse": "NRMSE of the LGE-equivalent image (lower is better)",
    "scar_ratio_error": "|scar ratio predicted - true| per patient (lower is better)",
    "step_seconds": "seconds per generator update (train.json's trainer and switches: d_steps_per_g_step 2, so two "
    "discriminator steps and one generator step), batch 1",
    "inference_seconds": "inference seconds per cine stack (one stack tiled to N slices; the fit: per slice)",
}
#: Table 1's overall Dice and per-class pixel columns: rows for these methods only (the paper reports them for
#: PSCGAN alone; its ablation tables give overall accuracy and SSIM)
TABLE1_DETAIL_METRICS = (
    "dice_mean", "accuracy_3", "accuracy_2", "accuracy_1", "sensitivity_3", "sensitivity_2", "sensitivity_1",
    "specificity_3", "specificity_2", "specificity_1",
)  # fmt: skip
TABLE1_METHODS = ("PSCGAN", "PSCGAN 20 epochs")
#: the speed metrics: rows of their own, not scores of the evaluated cases
SPEED_METRICS = ("step_seconds", "inference_seconds")
LOWER_IS_BETTER = ("nrmse", "scar_ratio_error", *SPEED_METRICS)
#: slice counts of the inference-scaling rows (one held-out cine stack tiled along its slice axis)
SCALING_SLICES = (4, 8, 16)
#: the slice axis of a CineLGE cine (X, Y, slices, T)
CINE_SLICE_AXIS = 2

#: (epochs per phase, validation interval) per mode
SCHEDULES = {"quick": (4, 2), "full": (100, 5)}

#: the schedule of the quick-mode variants named "20 epochs" (an ``epochs`` override replaces the mode's schedule)
LONGER_SCHEDULE = {"epochs": 20, "val_interval": 4}

#: variant -> (phases, overrides, phases reused from PSCGAN)
VARIANTS: dict[str, tuple[tuple[str, ...], dict[str, Any], tuple[str, ...]]] = {
    "PSCGAN": (("pri", "sys", "seg"), {}, ()),
    "ED frame only": (("pri", "sys", "seg"), {"static_cine": True}, ()),
    # Table 3 "adversarial learning removed": "only ... an SCLN-based generator with parallel output for segmentation
    # and synthesis" (section 7.2), i.e. the joint generator without a discriminator
    "no adversarial (one generator)": (("joint",), {"adversarial": False}, ()),
    # ours: the three progressive phases, each without its discriminator (what this row meant before 0.2.7)
    "progressive without discriminators": (("pri", "sys", "seg"), {"adversarial": False}, ()),
    "no progressive": (("joint",), {}, ()),
    "3DConv": (("pri", "sys", "seg"), {"encoder_kind": "conv3d"}, ()),
    "spatial only": (("pri", "sys", "seg"), {"encoder_kind": "scln_spatial"}, ()),
    "temporal only": (("pri", "sys", "seg"), {"encoder_kind": "scln_temporal"}, ()),
    "no attention weighing": (("pri", "sys", "seg"), {"encoder_kind": "scln_no_attention"}, ()),
    "ConvLSTM": (("pri", "sys", "seg"), {"encoder_kind": "convlstm"}, ()),
    "3DConv+LSTM": (("pri", "sys", "seg"), {"encoder_kind": "conv3d_lstm"}, ()),
    "no synthetic regularization": (("sys", "seg"), {"synthetic_regularization": False}, ("pri",)),
    "no auxiliary loss": (("seg",), {"aux_weight": 0.0}, ("pri", "sys")),
    "aux head fitted on real masks only": (("seg",), {"aux_head_inputs": "real"}, ("pri", "sys")),
    "median-frequency mce": (("pri", "sys", "seg"), {"class_weighting": "median_frequency"}, ()),
    # the motion premise at a longer schedule: four quick epochs leave the scar channel to chance (docs); an
    # ``epochs`` override replaces the mode's schedule, so these two are quick-mode rows only
    "PSCGAN 20 epochs": (("pri", "sys", "seg"), dict(LONGER_SCHEDULE), ()),
    "ED frame only 20 epochs": (("pri", "sys", "seg"), {"static_cine": True, **LONGER_SCHEDULE}, ()),
}

#: the variants a quick run trains (each seed trains all of them): every row of the paper's Tables 3-5, "ED frame
#: only" (the motion premise) and "aux head fitted on real masks only" (the earlier reading of eq. 17, which collapsed
#: the quick Seg phase), and PSCGAN and ED frame only at 20 epochs (the motion premise again); "median-frequency mce"
#: (a class weighting the paper does not use) needs ``--variants``. About 3 CPU minutes per three-phase variant and
#: seed at the quick sizes on 2 cores, about 17 at 20 epochs
QUICK_VARIANTS = tuple(name for name in VARIANTS if name != "median-frequency mce")
#: a full run trains every variant at the full schedule, so the fixed-schedule ones are left out
FULL_VARIANTS = tuple(name for name in VARIANTS if "epochs" not in VARIANTS[name][1])

PHASE_FILES = {"pri": [], "sys": ["train_sys.json"], "seg": ["train_seg.json"], "joint": ["train_joint.json"]}


def _split() -> dict[str, Any]:
    total = N_TRAIN + N_VAL + N_TEST
    return {"fractions": [N_TRAIN / total, N_VAL / total, N_TEST / total], "split_seed": 0}


def write_benchmark_data(out: str) -> str:
    """The benchmark's own CineLGE folder, written once."""
    from common.data import write_cine_lge

    folder = os.path.join(out, "CineLGE")
    if not os.path.isdir(folder):
        write_cine_lge(out, n_cases=N_TRAIN + N_VAL + N_TEST, seed=DATA_SEED, workers=0)
    return folder


def _folder(name: str) -> str:
    return name.replace("+", "_plus_").replace(" ", "_")


def _train_variant(name: str, seed: int, dataset_dir: str, work: str, network: dict, schedule: tuple) -> str:
    """Train ``name``'s phases (finished ones are skipped); returns its weights file."""
    phases, overrides, reused = VARIANTS[name]
    epochs, val_interval = schedule
    folder = os.path.join(work, _folder(name))
    base = {"dataset_dir": dataset_dir, "seed": seed, "num_workers": 0, **_split(), **network}
    base.update(epochs=epochs, val_interval=val_interval, ckpt_dir=folder)
    base.update(overrides)  # after the schedule: a variant may fix its own (the 20-epoch rows)
    reference = os.path.join(work, _folder("PSCGAN"))
    for phase in reused:
        base[f"{phase}_weights"] = os.path.join(reference, phase, f"{phase}.pt")
    for phase in phases:
        # a phase's weights exist from its first validation on, so a finished phase is marked by a file of its own
        done = os.path.join(folder, f"{phase}.done")
        if not os.path.isfile(done):
            values = dict(base, output_dir=os.path.join(work, "logs", _folder(name), phase))
            run_workflow(BUNDLE_ROOT, ["train.json", *PHASE_FILES[phase]], values)
            open(done, "w").close()
    return os.path.join(folder, "joint", "joint.pt") if phases == ("joint",) else os.path.join(folder, "model.pt")


def _network(name: str, weights: str, network: dict) -> torch.nn.Module:
    """The trained variant as one module with the cascade's output layout."""
    from common.checkpoint import load_weights

    phases, overrides, _ = VARIANTS[name]
    files = ["train.json", "train_joint.json"] if phases == ("joint",) else ["inference.json"]
    key = "network_def"
    net = parse_config_items(BUNDLE_ROOT, files, {**network, **overrides}, (key,))[key]
    load_weights(net, weights)
    return net.eval()


#: CineLGE's labels of the blood pool, the healthy myocardium and the scar
BLOOD_POOL, MYOCARDIUM, SCAR = (PSCGAN_LABELS[name] for name in ("blood_pool", "myocardium", "scar"))
#: the scar location prior's angular bins around the blood pool's centre (15 degrees each)
PRIOR_ANGLE_BINS = 24
#: its name in the tables: a trivial baseline of the scar AUC, no image read
LOCATION_PRIOR = "scar location prior"


def _angle_bins(label: np.ndarray) -> np.ndarray:
    """``(X, Y, S)`` label -> each pixel's angular bin around its slice's blood-pool centre (-1 where no blood pool
    or no myocardium)."""
    bins = np.full(label.shape, -1, dtype=np.int64)
    xx, yy = np.meshgrid(np.arange(label.shape[0]), np.arange(label.shape[1]), indexing="ij")
    for k in range(label.shape[2]):
        # lv_centre is the blood pool's centroid when there is one; a slice without myocardium is never scored
        if (label[..., k] == BLOOD_POOL).any() and np.isin(label[..., k], (MYOCARDIUM, SCAR)).any():
            cx, cy = lv_centre(label[..., k])
            angle = np.arctan2(yy - cy, xx - cx)
            bins[..., k] = (
                np.floor((angle + np.pi) / (2 * np.pi) * PRIOR_ANGLE_BINS).astype(np.int64) % PRIOR_ANGLE_BINS
            )
    return bins


def fit_location_prior(labels: list[np.ndarray]) -> np.ndarray:
    """How often the training myocardium is scar, per slice index and angular bin: ``(S, PRIOR_ANGLE_BINS)``,
    Laplace-smoothed. The phantom's frame is fixed (anterior up, the RV on one side), so where scar tends to be (its
    slice levels; its angle is uniform) is learnable without looking at an image: a baseline any scar score must beat.
    """
    n_slices = max(label.shape[2] for label in labels)
    scar = np.zeros((n_slices, PRIOR_ANGLE_BINS))
    wall = np.zeros((n_slices, PRIOR_ANGLE_BINS))
    for label in labels:
        bins = _angle_bins(label)
        for k in range(label.shape[2]):
            inside = np.isin(label[..., k], (MYOCARDIUM, SCAR)) & (bins[..., k] >= 0)
            np.add.at(wall[k], bins[..., k][inside], 1.0)
            np.add.at(scar[k], bins[..., k][inside & (label[..., k] == SCAR)], 1.0)
    return (scar + 1.0) / (wall + 2.0)


def location_prior_scores(label: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Each pixel's scar frequency under ``prior`` (its slice index and angular bin; 0 where no blood pool). It takes
    the true blood-pool centre from ``label``, as the scar AUC takes the true myocardium: a generous baseline."""
    bins = _angle_bins(label)
    scores = np.zeros(label.shape)
    for k in range(label.shape[2]):
        has_bin = bins[..., k] >= 0
        scores[..., k][has_bin] = prior[min(k, len(prior) - 1)][bins[..., k][has_bin]]
    return scores


def _location_prior_results(
    train: list[dict], test: list[dict]
) -> tuple[dict[str, float], dict[tuple[str, int, int], float]]:
    """The location prior fitted on the training cases' labels, scored on the test cases: its pixel-level scar AUC
    per case, and each true AHA segment's score for Table 2's segment AUC (the prior's mean over the segment's true
    myocardium; the segments as ``scripts.evaluate`` draws the truth's, from the ED frame's RV)."""
    import nibabel as nib

    def load(case: dict) -> np.ndarray:
        return np.rint(np.asarray(nib.load(case["label"]).dataobj)).astype(np.int64)

    prior = fit_location_prior([load(case) for case in train])
    aucs, segments = {}, {}
    for case in test:
        label = load(case)
        scores = location_prior_scores(label, prior)
        aucs[case["case"]] = scar_auc(scores, label == SCAR, label == MYOCARDIUM)
        cine = nib.load(case["cine"])
        cine_ed = np.asarray(cine.dataobj[..., 0], dtype=np.float32)
        _, rows = analyse_stack(case["case"], label, cine_ed, cine.affine, scar_probability=scores)
        segments.update({(case["case"], r["slice"], r["segment"]): r["scar_score"] for r in rows})
    return aucs, segments


#: the phases' trainers and their generator / discriminator definitions in the configs
#: the phases whose training step the speed rows time (row name -> ``scripts.peer_step.build_step``'s phase)
SPEED_PHASES = {"Pri": "pri", "Sys": "sys", "Seg": "seg"}


def _speed_rows(quick: bool, repeats: int = 3) -> list[BenchmarkRow]:
    """Per phase, one generator update of the configs' own trainer (``scripts.peer_step.build_step``: networks,
    losses, optimizers, ``d_steps_per_g_step`` discriminator steps and train.json's speed switches, as users train),
    batch 1 (the paper's), at the mode's sizes: seconds, GFLOP, share of a plain conv's GFLOP/s measured now, and
    the phase's own peak RSS (:class:`common.benchmarking.PeakRSSWindow`: building and timing that phase's step, on
    top of what the process holds then; before bundle 0.2.5 every row read the process's peak, a training's)."""
    from scripts.peer_step import build_step  # not at the top: the peer step imports this module's PHASE_FILES

    rows = []
    for name, phase in SPEED_PHASES.items():
        with PeakRSSWindow() as window:
            speed = time_step(build_step(phase, quick)["train_step"], repeats)
        seconds = speed["step_seconds"]
        rows.append(
            BenchmarkRow(f"{name} step", "step_seconds", [("step", seconds)], seconds=seconds,
                         gflop_per_step=speed["gflop_per_step"], ceiling_share=speed["ceiling_share"],
                         peak_rss_mb=window.peak_mb, higher_is_better=False)
        )  # fmt: skip
    return rows


def _inference_scaling(source: str, models: str, network: dict, out: str) -> dict[str, Any]:
    """``configs/inference.json`` (the Pri -> Sys -> Seg cascade, ``slices_per_batch`` slices per forward, the
    outputs in the input's grid and the clinical report) on one held-out cine stack tiled along its slice axis to
    ``SCALING_SLICES`` slices: seconds per stack and the fitted seconds per slice (``common.benchmarking.
    slice_scaling``; parsing the config and loading the models are in the intercept)."""

    def infer(n: int) -> None:
        folder = os.path.join(out, f"slices_{n}")
        shutil.rmtree(folder, ignore_errors=True)
        write_tiled_volume(source, n, CINE_SLICE_AXIS, os.path.join(folder, "in", "case_cine.nii.gz"))
        values = {
            "dataset_dir": os.path.join(folder, "in"),
            "output_dir": os.path.join(folder, "out"),
            "ckpt_dir": models,
        }
        run_workflow(BUNDLE_ROOT, ["inference.json"], dict(network, **values))

    return slice_scaling(infer, SCALING_SLICES)


def run(
    data_root: str | None,
    out_dir: str,
    quick: bool = False,
    seeds: tuple[int, ...] | str = (0, 1, 2),
    fresh: bool = False,
    variants: tuple[str, ...] | str | None = None,
) -> list[dict]:
    """Train every seed and variant, score every held-out patient; write tables and ``cases.csv``; return the rows.

    ``data_root`` (what ``tools.benchmark`` passes) is not read: the benchmark writes its own data (``DATA_SEED``)
    under ``<out_dir>/data``. Without ``fresh`` a seed's finished phases found in ``out_dir`` are reused, so a stopped
    run continues. ``variants`` (names of ``VARIANTS``, comma-separated) limits the variants (PSCGAN is always
    trained: others reuse its phases).
    """
    from scripts.cases import patient_split
    from scripts.evaluate import evaluate

    out_dir = os.path.abspath(out_dir)
    if variants is None:
        variants = QUICK_VARIANTS if quick else FULL_VARIANTS
    elif isinstance(variants, str):
        variants = tuple(v.strip() for v in variants.split(",") if v.strip())
    else:
        variants = tuple(variants)
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown variants {unknown}; choose among {list(VARIANTS)}.")
    variants = ("PSCGAN", *[v for v in variants if v != "PSCGAN"])
    seeds = int_tuple(seeds)
    network = read_overlay(BUNDLE_ROOT, QUICK_OVERLAY) if quick else {}
    schedule = SCHEDULES["quick" if quick else "full"]
    timings: dict[str, float] = {}
    with Timer() as timer:
        dataset_dir = write_benchmark_data(os.path.join(out_dir, "data"))
        split = _split()
        parts = patient_split(dataset_dir, fractions=split["fractions"], seed=split["split_seed"])
        test = parts["test"]
    timings["data"] = timer.seconds
    per_method: dict[str, list[dict[str, dict[str, float]]]] = {}
    agreement: dict[str, list[dict]] = {}
    segments: dict[str, dict[int, list[dict]]] = {}
    for seed in seeds:
        work = os.path.join(out_dir, f"seed_{seed}")
        if fresh:
            shutil.rmtree(work, ignore_errors=True)
        for name in variants:
            with Timer() as timer:
                weights = _train_variant(name, seed, dataset_dir, work, network, schedule)
            timings[f"{name} seed {seed} train"] = timer.seconds
            net = _network(name, weights, network)
            with Timer() as timer:
                result = evaluate(
                    net, test, os.path.join(work, _folder(name), "eval"), overwrite=True,
                    write_plots=name == "PSCGAN",
                    static_cine=bool(VARIANTS[name][1].get("static_cine", False)),
                )  # fmt: skip
            timings[f"{name} seed {seed} evaluate"] = timer.seconds
            scores: dict[str, dict[str, float]] = {}
            for row in result["cases"]:
                for metric in METRIC_LABELS:
                    if metric in SPEED_METRICS:
                        continue
                    if metric == "scar_ratio_error":
                        value = abs(row["scar_ratio_pred"] - row["scar_ratio_true"])
                    else:
                        value = row[metric]
                    scores.setdefault(metric, {})[row["case"]] = float(value)
            per_method.setdefault(name, []).append(scores)
            agreement.setdefault(name, []).append(result["summary"])
            segments.setdefault(name, {})[seed] = result["segments"]

    prior_aucs, prior_segments = _location_prior_results(parts["train"], test)
    per_method[LOCATION_PRIOR] = [{"scar_auc": prior_aucs} for _ in seeds]  # no training seed: the same per seed
    keys, flags, segment_scores = segment_aucs(segments, {LOCATION_PRIOR: prior_segments})
    with Timer() as timer:
        segment_rows = compare_segment_aucs(keys, flags, segment_scores, COMPARISONS)
    timings["segment AUC bootstrap"] = timer.seconds
    with Timer() as timer:
        speed = _speed_rows(quick)
    timings["speed rows"] = timer.seconds
    with Timer() as timer:
        models = os.path.join(out_dir, f"seed_{seeds[0]}", _folder("PSCGAN"))
        scaling = _inference_scaling(test[0]["cine"], models, network, os.path.join(out_dir, "scaling"))
        speed.extend(slice_scaling_rows("PSCGAN inference", scaling))
    timings["inference scaling"] = timer.seconds
    rows = score_rows(per_method, seeds)
    write_cases_csv(rows, os.path.join(out_dir, "cases.csv"))
    clinical = _clinical_summary(agreement)
    clinical[LOCATION_PRIOR] = {f"segment_{flag} auc": roc_auc(v[flags[flag]], v[~flags[flag]])
                                for v in segment_scores[LOCATION_PRIOR].values() for flag in SEGMENT_FLAGS}  # fmt: skip
    with open(os.path.join(out_dir, "clinical.json"), "w") as handle:
        json.dump(clinical, handle, indent=2, default=float)
    summary = [
        {"method": r.method, "metric": METRIC_LABELS[r.metric], "mean": r.mean, "std": r.std, "n": len(r.scored_values)}
        for r in rows
    ]
    summary += [{"method": m, "metric": k, "mean": v, "std": None, "n": None} for m, d in clinical.items()
                for k, v in d.items()]  # fmt: skip
    summary += [
        {"method": r.method, "metric": METRIC_LABELS[r.metric], "mean": r.seconds, "std": None, "n": None,
         "gflop_per_step": r.gflop_per_step, "ceiling_share": r.ceiling_share, "peak_rss_mb": r.peak_rss_mb}
        for r in speed
    ]  # fmt: skip
    default = {"PSCGAN", *(QUICK_VARIANTS if quick else FULL_VARIANTS)}
    own_schedules = "".join(
        f", {name}: {(VARIANTS[name][1]['epochs'], VARIANTS[name][1]['val_interval'])}"
        for name in variants
        if "epochs" in VARIANTS[name][1]
    )
    variant_option = "" if set(variants) == default else f" --variants {','.join(variants)}"
    note = (
        f"Phantom CineLGE patients (64x64 crops at 1.33 mm, 3 slices, 25 frames; seed {DATA_SEED}): patients "
        f"train/val/test {N_TRAIN}/{N_VAL}/{len(test)}; training seeds {list(seeds)}; epochs per phase and validation "
        f"interval {schedule}{' (quick mode: configs/quick.json)' if quick else ''}{own_schedules}. Clinical rows "
        "(Table 2): per "
        "seed over the test patients, then the mean over seeds. Seconds: "
        f"{', '.join(f'{k} {v:.0f}' for k, v in timings.items())} (phases reused from a stopped run not counted). "
        f"Machine: {machine_summary()}. Command: python -m scripts.benchmark --out {out_dir} --quick {quick} "
        f"--seeds {','.join(map(str, seeds))}{variant_option}. Per-case values: cases.csv."
    )
    print(write_table(summary, out_dir, "benchmark", title="PSCGAN benchmark", note=note))
    segment_note = (
        f"{len(keys)} true AHA segments of {len(test)} held-out patients ({int(flags['has_scar'].sum())} with scar, "
        f"{int(flags['transmural'].sum())} transmural); a method's score per segment is its mean scar probability "
        "over its predicted myocardium there (0 where it predicts none), the location prior's its mean over the "
        f"true myocardium. AUC per training seed {list(seeds)}, then their mean; the interval resamples patients "
        "(10000 resamples), an ordering only where it excludes 0 and every seed agrees. " + note
    )
    print(write_segment_auc(out_dir, keys, flags, segment_scores, segment_rows, segment_note))
    return [r.to_dict() for r in rows + speed]


def score_rows(per_method: dict[str, list[dict[str, dict[str, float]]]], seeds: tuple[int, ...]) -> list[BenchmarkRow]:
    """One row per method and metric of ``METRIC_LABELS`` that its scores hold (``per_method[method][i]``: seed
    ``seeds[i]``'s ``{metric: {case: value}}``); Table 1's overall Dice and per-class columns
    (``TABLE1_DETAIL_METRICS``) only for ``TABLE1_METHODS``."""
    rows: list[BenchmarkRow] = []
    for method, results in per_method.items():
        for metric in METRIC_LABELS:
            if metric not in results[0] or (metric in TABLE1_DETAIL_METRICS and method not in TABLE1_METHODS):
                continue
            scores = [r[metric] for r in results]
            higher = metric not in LOWER_IS_BETTER
            rows.append(BenchmarkRow.from_runs(method, metric, scores, seeds=list(seeds), higher_is_better=higher))
    return rows


def _clinical_summary(agreement: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    """Table 2 per method: the seeds' mean of Pearson r, Bland-Altman bias and limits, segment sensitivity/
    specificity/AUC."""
    out: dict[str, dict[str, float]] = {}
    for method, summaries in agreement.items():
        values: dict[str, list[float]] = {}
        for s in summaries:
            for key in ("scar_size_mm2", "scar_ratio"):
                for stat in ("pearson_r", "bias", "loa_lower", "loa_upper"):
                    values.setdefault(f"{key} {stat}", []).append(float(s[key].get(stat, np.nan)))
            for flag in ("segment_has_scar", "segment_transmural"):
                for stat in ("sensitivity", "specificity", "auc"):
                    values.setdefault(f"{flag} {stat}", []).append(float(s[flag].get(stat, np.nan)))
        out[method] = {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in values.items()}
    return out


def main(
    out: str = "eval/benchmark",
    quick: bool = False,
    seeds: str = "0,1,2",
    data_root: str | None = None,
    fresh: bool = False,
    variants: str | None = None,
) -> None:
    """Command-line entry (``data_root`` is accepted for ``tools.benchmark`` and unused: the data are written here)."""
    quick, fresh = as_flag(quick, "quick"), as_flag(fresh, "fresh")  # `--quick false` arrives as a string
    run(data_root, out, quick=quick, seeds=seeds, fresh=fresh, variants=variants)


if __name__ == "__main__":
    fire.Fire(main)
