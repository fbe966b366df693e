"""Reproduce TransMRSR's Tables 1-4 rows on held-out phantom brains, in one run.

Usage (from the bundle root)::

    python -m scripts.benchmark --out eval/benchmark [--quick True] [--seeds 0,1,2]

The benchmark writes its own IXI-layout data (``DATA_SEED``, a seed not used while developing): ``N_PRIOR``
subjects for the generative prior, ``N_TRAIN``/``N_VAL`` for SR training and model selection, and ``N_TEST``
held-out subjects that nothing is trained or selected on. Per training seed, through this bundle's own configs
(quick mode layers ``configs/quick.json``): the prior (``train_prior.json``), its centroids (``centroids.json``),
then the SR networks (``train.json``, best validation PSNR):

- x4 (Table 1): ``EDSR-like`` (``edsr_baseline.json``, same interpolated input) and ``TransMRSR``;
- x8 (Tables 1, 3, 4): the same two and the ablations ``w/o GP`` (random decoder), ``w/o SDT`` (no truncation),
  ``w/o MREF`` (no encoder features into the decoder), ``w/o SC`` (no long skip), ``frozen GP``;
- ``trilinear`` and ``bicubic`` interpolation of the thick slices (no training).

Each held-out subject is acquired with 4x / 8x thicker slices (``scripts.prepare_lowres``), super-resolved by
``inference.json`` and scored against its thin-slice truth inside the head mask: PSNR and SSIM (2D SSIM per coronal
slice, the plane the network works in), and GM/WM/CSF Dice between one fixed tissue classifier applied to the SR
volume and to the truth (a nearest-class-mean intensity classifier whose class means are fitted once on the
normalised HR training subjects with their tissue labels, inside the brain). Each method's per-case value is the
mean over the training seeds (``per_seed`` keeps each seed's own value), so ``tools.benchmark`` pairs methods per
held-out volume and checks that every seed orders them the same way.

The module-level names below are this bundle's benchmark data, read (as literals) by ``python -m tools.benchmark``.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import re
import shutil
from typing import Any

import fire
import nibabel as nib
import numpy as np
from common.benchmarking import (
    QUICK_OVERLAY,
    BenchmarkRow,
    StageCache,
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
REQUIRED_DATASET = "IXI"

#: folder inference's batching knob, timed per value by ``python -m tools.inference_batching`` on 16 x-z slices of
#: 256x256 (the through-plane axis, slice_axis 1, in the middle)
INFERENCE_BATCH = {
    "key": "sw_batch_size",
    "input_shape": [1, 1, 256, 16, 256],
    "slices": 16,
    "values": [1, 2, 4, 8, 16],
}

#: our SR training step beside the public code's (``python -m tools.side_by_side``; ``scripts/peer_step.py`` is ours,
#: ``shared/peers/transmrsr_step.py`` times ``RecurrentModel.set_input + optimize`` of the full TransMRSR, TGP7)
PEER_STEP = {
    "repository": "goddesshs/TransMRSR",
    "harness": "transmrsr_step.py",
    "harness_args": ["--n", "2", "--warmup", "1"],
    "ours_args": ["-m", "scripts.peer_step", "--n", "2", "--warmup", "1"],
    "configuration": "TransMRSR SR step: Swin encoder + StyleSwin decoder (random prior), truncation to 8 random "
    "centroids, batch 4 of 256x256 slices (ours 1 channel, reference grey replicated to 3 channels), L1 + 0.5 (VGG19 "
    "content + Gram style) with a random-weight VGG19, Adam 1e-4 (0.5, 0.999); inference one 256x256 slice",
}

#: the benchmark's own data: a seed not used while developing, enough held-out volumes per comparison
DATA_SEED = 2027
N_PRIOR = 12
N_TRAIN = 8
N_VAL = 2
N_TEST = 30

#: (ours, baseline) method pairs compared per case (the paper's claims, and the premise: interpolation fails)
COMPARISONS = (
    ("TransMRSR x4", "bicubic x4"),
    ("TransMRSR x8", "bicubic x8"),
    ("bicubic x8", "trilinear x8"),
    ("TransMRSR x4", "EDSR-like x4"),
    ("TransMRSR x8", "EDSR-like x8"),
    ("TransMRSR x8", "w/o GP x8"),
    ("TransMRSR x8", "w/o SDT x8"),
    ("TransMRSR x8", "w/o MREF x8"),
    ("TransMRSR x8", "w/o SC x8"),
    ("TransMRSR x8", "frozen GP x8"),
)

#: the paper's numbers (IXI T1, 10 test subjects): (ours, baseline, metric) -> (theirs baseline, theirs ours, where)
PAPER_NUMBERS = {
    ("TransMRSR x4", "EDSR-like x4", "psnr"): (34.14, 38.56, "Huang et al. 2023, Table 1 (EDSR)"),
    ("TransMRSR x4", "EDSR-like x4", "ssim"): (0.9574, 0.9862, "Huang et al. 2023, Table 1 (EDSR)"),
    ("TransMRSR x8", "EDSR-like x8", "psnr"): (29.67, 30.85, "Huang et al. 2023, Table 1 (EDSR)"),
    ("TransMRSR x8", "EDSR-like x8", "ssim"): (0.9209, 0.9451, "Huang et al. 2023, Table 1 (EDSR)"),
    ("TransMRSR x8", "w/o GP x8", "psnr"): (30.33, 30.85, "Huang et al. 2023, Table 3"),
    ("TransMRSR x8", "w/o GP x8", "dice_avg"): (0.9091, 0.9511, "Huang et al. 2023, Table 3"),
    ("TransMRSR x8", "w/o SDT x8", "psnr"): (30.70, 30.85, "Huang et al. 2023, Table 3"),
    ("TransMRSR x8", "w/o MREF x8", "psnr"): (14.34, 30.85, "Huang et al. 2023, Table 3"),
    ("TransMRSR x8", "w/o SC x8", "psnr"): (30.36, 30.85, "Huang et al. 2023, Table 3"),
    ("TransMRSR x8", "frozen GP x8", "psnr"): (30.84, 30.85, "Huang et al. 2023, Table 4"),
}

PAPER_NOTES = (
    "Theirs = Huang et al., *TransMRSR: Transformer-based Self-Distilled Generative Prior for Brain MRI "
    "Super-Resolution* (The Visual Computer 2023), IXI T1 test set (10 subjects, 256x256 slices, 2D slice-wise "
    "SR of pre-interpolated LR slices), not our phantoms: compare orderings, not values. Their EDSR is the original "
    "(with its up-sampler); ours is an EDSR-like body on the same interpolated input. They report no "
    "interpolation row."
)

MODE_NOTES = {
    "quick": "configs/quick.json networks (64x64 coronal slices of 3 mm phantom brains: x4/x8 slices are 12/24 mm, "
    "thicker than the paper's 4/8 mm); epochs prior 10 (60 GAN iterations, EMA warmed up), SR 10 (validation every "
    "5); ablations at x8 only, as the paper's Table 3; each training seed trains its own prior. At StyleSwin's "
    "learning rates 60 GAN iterations leave the generator near its initialisation (no brain anatomy in its "
    "samples): in quick mode the prior is a starting point for the decoder, not a generative prior, so the w/o GP "
    "and frozen GP rows test the machinery, not the paper's claim about the prior (a prior of 1002 iterations, the "
    "bundle docs' prior study, is not separated from a random decoder either)",
    "full": "the configs' networks at 256x256 on 1 mm brains, the configs' schedules",
}

#: overrides of a fresh DDP-scaling run (``python -m tools.benchmark_ddp``): the SR stage without a prior
DDP_OVERRIDES = {"use_prior": False, "use_truncation": False}

METRIC_LABELS = {
    "psnr": "PSNR dB in the head mask, held-out volumes",
    "ssim": "SSIM (coronal slices) in the head mask, held-out volumes",
    "dice_wm": "WM Dice, classifier on SR vs on truth",
    "dice_gm": "GM Dice, classifier on SR vs on truth",
    "dice_csf": "CSF Dice, classifier on SR vs on truth",
    "dice_avg": "mean tissue Dice, classifier on SR vs on truth",
    "inference_seconds": "inference seconds per x4 volume (one held-out volume tiled to N coronal slices; the fit: per "
    "slice)",
}
#: coronal slice counts (the planes the network super-resolves one by one) of the inference-scaling rows
SCALING_SLICES = (16, 32, 64)

#: (prior epochs, SR epochs, SR validation interval) per mode
SCHEDULES = {"quick": (10, 10, 5), "full": (400, 200, 4)}

#: SR variants: name -> (scales, train.json overrides); EDSR-like uses configs/edsr_baseline.json
VARIANTS = {
    "TransMRSR": ((4, 8), {}),
    "EDSR-like": ((4, 8), {}),
    "w/o GP": ((8,), {"use_prior": False, "use_truncation": False}),
    "w/o SDT": ((8,), {"use_truncation": False}),
    "w/o MREF": ((8,), {"use_encoder_features": False}),
    "w/o SC": ((8,), {"use_skip": False}),
    "frozen GP": ((8,), {"freeze_prior": True}),
}
#: GAN iterations of the prior study's priors, asked for with ``--prior_study 1000`` (levels separated by commas): per
#: level and training seed a prior trained that long (rounded up to whole epochs), its centroids and the
#: ``PRIOR_STUDY_VARIANTS`` at x8 on it, scored beside the run's own TransMRSR x8 (the mode's prior) and w/o GP x8 (a
#: random decoder). The quick prior (60 iterations) has no anatomy, so the main rows test the machinery; the study
#: asks how long the prior must train before the paper's prior and truncation claims show. Empty by default: each
#: level adds a prior and two SR networks per seed (quick mode, 1000 iterations: three one-thread seed processes side by
#: side on 2 cores took about 85 min for the whole run, the prior 45 min of it)
PRIOR_STUDY: tuple[int, ...] = ()
#: SR variants trained on each prior of the study (the paper's Table 3 claims that need a trained prior: GP and SDT)
PRIOR_STUDY_VARIANTS = ("TransMRSR", "w/o SDT")
#: the study's paired comparisons per level, ``{level}`` standing for the level's row suffix
PRIOR_STUDY_COMPARISONS = (
    ("TransMRSR x8{level}", "w/o GP x8"),
    ("TransMRSR x8{level}", "TransMRSR x8"),
    ("TransMRSR x8{level}", "w/o SDT x8{level}"),
)
#: the networks' switches that inference.json needs to rebuild the trained architecture
ARCHITECTURE_KEYS = ("use_truncation", "use_encoder_features", "use_skip")
TISSUES = {"csf": 1, "gm": 2, "wm": 3}


def _split() -> dict[str, Any]:
    """The configs' split arguments that give ``N_PRIOR``/``N_TRAIN``/``N_VAL``/``N_TEST`` subjects."""
    total = N_PRIOR + N_TRAIN + N_VAL + N_TEST
    rest = N_TRAIN + N_VAL + N_TEST
    return {
        "prior_fraction": N_PRIOR / total,
        "sr_fractions": [N_TRAIN / rest, N_VAL / rest, N_TEST / rest],
        "split_seed": 0,
    }


def write_benchmark_data(out: str) -> str:
    """The benchmark's own IXI folder (3 mm phantom brains), written once."""
    from common.data import write_ixi

    folder = os.path.join(out, "IXI")
    if not os.path.isdir(folder):
        write_ixi(out, n_subjects=N_PRIOR + N_TRAIN + N_VAL + N_TEST, seed=DATA_SEED, small=True, workers=0)
    return folder


def _tissue_means(dataset_dir: str, cases: list[dict]) -> np.ndarray:
    """Class means (CSF, GM, WM) of the normalised HR training volumes inside their tissue labels: the classifier."""
    tissue_dir = os.path.join(os.path.dirname(dataset_dir), "IXI_tissue")
    sums, counts = np.zeros(3), np.zeros(3)
    for case in cases:
        image = np.asarray(nib.load(case["image"]).dataobj, dtype=np.float32)
        image /= np.percentile(image[image > 0], 99.5)
        label = np.asarray(nib.load(os.path.join(tissue_dir, f"{case['case']}-seg.nii.gz")).dataobj)
        for k, value in enumerate(TISSUES.values()):
            sums[k] += image[label == value].sum()
            counts[k] += (label == value).sum()
    return sums / counts


def _classify(image: np.ndarray, brain: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Nearest class mean of the normalised intensity inside ``brain`` (0 outside): 1 CSF, 2 GM, 3 WM."""
    normalised = image / np.percentile(image[image > 0], 99.5)
    labels = np.argmin(np.abs(normalised[..., None] - means), axis=-1) + 1
    return np.where(brain, labels, 0)


def _scores(sr: np.ndarray, truth: np.ndarray, brain: np.ndarray, means: np.ndarray) -> dict[str, float]:
    from common.metrics import dice, masked_psnr, masked_ssim
    from common.transforms import head_mask

    head = head_mask(truth)
    psnr, ssim = masked_psnr(sr, truth, head), masked_ssim(sr, truth, head, slice_axis=1)
    scores = {"psnr": float(psnr), "ssim": float(ssim)}
    from_sr, from_truth = _classify(sr, brain, means), _classify(truth, brain, means)
    for name, value in TISSUES.items():
        scores[f"dice_{name}"] = float(dice(from_sr, from_truth, labels=value))
    scores["dice_avg"] = float(np.mean([scores[f"dice_{name}"] for name in TISSUES]))
    return scores


def _thick_folders(dataset_dir: str, out: str) -> dict[int, str]:
    """x4 and x8 thick-slice versions (and truths) of the held-out subjects."""
    from scripts.prepare_lowres import prepare_lowres

    split = _split()
    folders = {}
    for scale in (4, 8):
        folder = os.path.join(out, f"x{scale}")
        if not os.path.isdir(os.path.join(folder, "truth")):
            prepare_lowres(
                dataset_dir,
                out,
                scale=scale,
                seed=split["split_seed"],
                prior_fraction=split["prior_fraction"],
                sr_fractions=tuple(split["sr_fractions"]),
            )
        folders[scale] = folder
    return folders


def _brain_masks(dataset_dir: str, folders: dict[int, str]) -> dict[tuple[int, str], np.ndarray]:
    """Tissue-label brain masks (label > 0) cropped like each truth (its first slices)."""
    tissue_dir = os.path.join(os.path.dirname(dataset_dir), "IXI_tissue")
    masks = {}
    for scale, folder in folders.items():
        for path in sorted(glob.glob(os.path.join(folder, "truth", "*.nii.gz"))):
            name = os.path.basename(path)
            case = name[: -len("-T1.nii.gz")]
            depth = nib.load(path).shape[2]
            label = np.asarray(nib.load(os.path.join(tissue_dir, f"{case}-seg.nii.gz")).dataobj)
            masks[(scale, name)] = label[..., :depth] > 0
    return masks


def _interpolation_scores(folder: str, scale: int, order: int, brains: dict, means: np.ndarray) -> dict:
    from common.data import interpolate_to_thin_slices

    per_metric: dict[str, dict[str, float]] = {m: {} for m in METRIC_LABELS}
    for path in sorted(glob.glob(os.path.join(folder, "*.nii.gz"))):
        name = os.path.basename(path)
        thick = np.asarray(nib.load(path).dataobj, dtype=np.float32)
        thin = interpolate_to_thin_slices(thick, 2, scale, order=order)
        truth = np.asarray(nib.load(os.path.join(folder, "truth", name)).dataobj, dtype=np.float32)
        for metric, value in _scores(np.clip(thin, 0, None), truth, brains[(scale, name)], means).items():
            per_metric[metric][name] = value
    return per_metric


def _network_scores(
    folder: str, scale: int, weights: str, overrides: dict, network: dict, out: str, brains: dict, means: np.ndarray
) -> dict:
    files = ["inference.json", "edsr_baseline.json"] if overrides.pop("edsr", False) else ["inference.json"]
    names = [os.path.basename(p) for p in sorted(glob.glob(os.path.join(folder, "*.nii.gz")))]
    outputs = [os.path.join(out, n.replace(".nii.gz", "_sr.nii.gz")) for n in names]
    if not all(os.path.isfile(p) and os.path.getmtime(p) >= os.path.getmtime(weights) for p in outputs):
        run_workflow(  # a stopped or earlier run's outputs of these weights are reused, as its trained models
            BUNDLE_ROOT,
            files,
            {
                "dataset_dir": folder,
                "output_dir": out,
                "model_weights": weights,
                "scale": scale,
                "overwrite": True,
                **network,
                **overrides,
            },
        )
    per_metric: dict[str, dict[str, float]] = {m: {} for m in METRIC_LABELS}
    for path in sorted(glob.glob(os.path.join(folder, "*.nii.gz"))):
        name = os.path.basename(path)
        sr = np.asarray(nib.load(os.path.join(out, name.replace(".nii.gz", "_sr.nii.gz"))).dataobj, dtype=np.float32)
        truth = np.asarray(nib.load(os.path.join(folder, "truth", name)).dataobj, dtype=np.float32)
        for metric, value in _scores(sr, truth, brains[(scale, name)], means).items():
            per_metric[metric][name] = value
    return per_metric


def _inference_scaling(folder: str, weights: str, network: dict, out: str) -> dict[str, Any]:
    """``configs/inference.json`` (x4) on one held-out thick volume tiled along the coronal axis (the network's
    slice axis) to ``SCALING_SLICES`` planes: seconds per volume and the fitted seconds per slice
    (``common.benchmarking.slice_scaling``; config parsing and model loading are in the intercept)."""
    from common.benchmarking import slice_scaling, write_tiled_volume

    source = sorted(glob.glob(os.path.join(folder, "*.nii.gz")))[0]

    def run(n: int) -> None:
        case = os.path.join(out, f"slices_{n}")
        shutil.rmtree(case, ignore_errors=True)
        write_tiled_volume(source, n, 1, os.path.join(case, "in", os.path.basename(source)))
        values = {"dataset_dir": os.path.join(case, "in"), "output_dir": os.path.join(case, "out"), "scale": 4}
        run_workflow(BUNDLE_ROOT, ["inference.json"], dict(network, model_weights=weights, **values))

    return slice_scaling(run, SCALING_SLICES)


def _folder_name(method: str) -> str:
    """A method's folder name: ``w/o GP x8`` -> ``wo_GP_x8``."""
    return method.replace("/", "").replace(" ", "_")


def _train_prior(seed: int, dataset_dir: str, work: str, network: dict, epochs: int) -> dict[str, Any]:
    """The prior (``<work>/prior/prior.pt``, ``epochs`` epochs) and its centroids, each unless written already;
    returns the overrides every SR training of this prior starts from."""
    prior_dir = os.path.join(work, "prior")
    base = {"dataset_dir": dataset_dir, "seed": seed, "num_workers": 0, "prior_dir": prior_dir, **_split(), **network}
    if not os.path.isfile(os.path.join(prior_dir, "prior.pt")):
        run_workflow(
            BUNDLE_ROOT,
            ["train.json", "train_prior.json"],
            dict(base, ckpt_dir=work, epochs=epochs, output_dir=os.path.join(work, "logs", "prior")),
        )
    if not os.path.isfile(os.path.join(prior_dir, "centroids.pt")):
        run_workflow(BUNDLE_ROOT, ["train.json", "centroids.json"], dict(base, ckpt_dir=work))
    return base


def prior_iterations_per_epoch(network: dict) -> int:
    """GAN iterations of one prior epoch: the prior subjects in batches of ``prior_batch_size`` (the last partial
    batch dropped, as ``train_prior.json``'s loader does)."""
    with open(os.path.join(BUNDLE_ROOT, "configs", "train_prior.json")) as f:
        batch = int(network.get("prior_batch_size", json.load(f)["prior_batch_size"]))
    return max(1, N_PRIOR // batch)


def prior_study_epochs(iterations: int, network: dict) -> int:
    """Whole prior epochs that make at least ``iterations`` GAN iterations."""
    return -(-int(iterations) // prior_iterations_per_epoch(network))


def _train_seed(
    seed: int,
    dataset_dir: str,
    work: str,
    network: dict,
    schedule: tuple,
    variants: tuple[str, ...],
    scales: tuple[int, ...],
) -> dict[str, str]:
    """Prior, centroids, then the SR ``variants``; returns ``{method: model.pt}``. Finished steps are skipped.

    The prior and the centroids are written once, at their stage's end, so their files mark them finished. An SR
    network's ``model.pt`` is its best validation checkpoint, written from the first validation on, so it does not:
    each SR training is a stage (:meth:`common.benchmarking.StageCache.train`), and a network whose run was stopped
    trains again from an empty folder.
    """
    prior_epochs, sr_epochs, val_interval = schedule
    base = _train_prior(seed, dataset_dir, work, network, prior_epochs)
    logs = os.path.join(work, "logs")
    models, stages = {}, StageCache()
    for name, (variant_scales, overrides) in VARIANTS.items():
        if name not in variants:
            continue
        for scale in sorted(set(variant_scales) & set(scales)):
            folder = os.path.join(work, _folder_name(f"{name} x{scale}"))
            files = ["train.json", "edsr_baseline.json"] if name == "EDSR-like" else ["train.json"]
            values = dict(
                base,
                **overrides,
                ckpt_dir=folder,
                scale=scale,
                epochs=sr_epochs,
                val_interval=val_interval,
                output_dir=os.path.join(logs, os.path.basename(folder)),
            )
            stages.train(folder, f"{name} x{scale}", BUNDLE_ROOT, files, values)
            models[f"{name} x{scale}"] = os.path.join(folder, "model.pt")
    return models


def prior_level_suffix(iterations: int) -> str:
    """The prior study's row suffix of a prior trained ``iterations`` GAN iterations: ``" (prior 1002 it)"``."""
    return f" (prior {int(iterations)} it)"


def method_variant(method: str) -> tuple[str, int]:
    """``(variant, scale)`` of a method's row name: ``"w/o SDT x8 (prior 1002 it)"`` -> ``("w/o SDT", 8)``."""
    match = re.fullmatch(r"(.+) x(\d+)(?: \(prior \d+ it\))?", method)
    if match is None or match.group(1) not in VARIANTS:
        raise ValueError(f"{method!r} is not a trained method's row name ('<variant> x<scale>[ (prior <n> it)]').")
    return match.group(1), int(match.group(2))


def _train_prior_study(
    seed: int, dataset_dir: str, work: str, network: dict, schedule: tuple, iterations: int
) -> dict[str, str]:
    """One level of the prior study for one seed: a prior of at least ``iterations`` GAN iterations (whole epochs: n
    iterations in all) in ``<work>/prior_<n>``, its centroids, then :data:`PRIOR_STUDY_VARIANTS` at x8 on it; returns
    ``{method: model.pt}`` with the level's suffix on each method (``TransMRSR x8 (prior 1002 it)``)."""
    epochs = prior_study_epochs(iterations, network)
    trained = epochs * prior_iterations_per_epoch(network)
    level_work = os.path.join(work, f"prior_{trained}")
    models = _train_seed(seed, dataset_dir, level_work, network, (epochs, *schedule[1:]), PRIOR_STUDY_VARIANTS, (8,))
    return {f"{method}{prior_level_suffix(trained)}": path for method, path in models.items()}


def _generator(network: dict) -> Any:
    """The prior's generator at the run's sizes (``train.json``'s defaults, ``network`` on top), untrained."""
    from common.nets import StyleSwinGenerator

    sizes = {"img_size": 256, "style_dim": 512, "n_mlp": 8, "max_channels": 512, "window_size": 8, **network}
    return StyleSwinGenerator(
        size=sizes["img_size"],
        style_dim=sizes["style_dim"],
        n_mlp=sizes["n_mlp"],
        max_channels=sizes["max_channels"],
        window_size=sizes["window_size"],
    )


def write_figures(out_dir: str, seed: int, network: dict) -> list[str]:
    """``prior_samples.png`` (the seed's prior) and ``sr_x8.png`` (a held-out case at x8: nearest, bicubic, EDSR-like,
    TransMRSR, truth, error maps) in ``out_dir``, from a finished run's files."""
    from common.data import interpolate_to_thin_slices
    from scripts.figures import prior_samples_figure, super_resolution_figure

    work = os.path.join(out_dir, f"seed_{seed}")
    written = [prior_samples_figure(_generator(network), f"{work}/prior/prior.pt", f"{out_dir}/prior_samples.png")]
    folder = os.path.join(out_dir, "data", "IXI_thick", "x8")
    name = os.path.basename(sorted(glob.glob(os.path.join(folder, "*.nii.gz")))[0])
    thick = np.asarray(nib.load(os.path.join(folder, name)).dataobj, dtype=np.float32)
    truth = np.asarray(nib.load(os.path.join(folder, "truth", name)).dataobj, dtype=np.float32)
    sr_name = name.replace(".nii.gz", "_sr.nii.gz")
    panels = {
        "thick x8 (nearest)": interpolate_to_thin_slices(thick, 2, 8, order=0),
        "bicubic": np.clip(interpolate_to_thin_slices(thick, 2, 8, order=3), 0, None),
        "EDSR-like": np.asarray(nib.load(os.path.join(work, "sr", "EDSR-like_x8", sr_name)).dataobj),
        "TransMRSR": np.asarray(nib.load(os.path.join(work, "sr", "TransMRSR_x8", sr_name)).dataobj),
    }
    written.append(super_resolution_figure(panels, truth, f"{out_dir}/sr_x8.png", slice_index=truth.shape[1] // 2))
    return written


def run(
    data_root: str | None,
    out_dir: str,
    quick: bool = False,
    seeds: tuple[int, ...] | str = (0, 1, 2),
    fresh: bool = False,
    variants: tuple[str, ...] | str | None = None,
    scales: tuple[int, ...] | str = (4, 8),
    prior_study: tuple[int, ...] | str | int | None = PRIOR_STUDY,
) -> list[dict]:
    """Train every seed, score every row per held-out volume; write tables and ``cases.csv``; return the rows.

    ``data_root`` (what ``tools.benchmark`` passes) is not read: the benchmark writes its own data (``DATA_SEED``)
    under ``<out_dir>/data``. Without ``fresh``, a seed's finished steps found in ``out_dir`` are reused, so a stopped
    run continues; ``fresh=True`` deletes them first. ``variants`` (names of ``VARIANTS``, comma-separated) limits the
    trained rows, e.g. to score what a stopped run finished, and ``scales`` (4, 8) the scales of every row.
    ``prior_study`` (GAN iterations, e.g. ``1000``; :data:`PRIOR_STUDY`) adds the prior study's rows and writes
    ``prior_study.md``, ``prior_study_cases.csv``, ``prior_study.png`` and each level's ``prior_samples_<n>it.png``.

    Raises:
        ValueError: for unknown variants or scales, or a prior study without the TransMRSR and w/o GP rows at x8 that
            it is compared with.
    """
    out_dir = os.path.abspath(out_dir)
    variants = tuple(VARIANTS) if variants is None else tuple(v.strip() for v in str(variants).split(",") if v.strip())
    scales = int_tuple(scales)
    unknown = sorted(set(variants) - set(VARIANTS)) + sorted(set(scales) - {4, 8})
    if unknown:
        raise ValueError(f"unknown variants or scales {unknown}; choose among {list(VARIANTS)} and 4, 8.")
    levels = int_tuple(prior_study) if prior_study not in (None, "", ()) else ()
    if levels and not ({"TransMRSR", "w/o GP"} <= set(variants) and 8 in scales):
        raise ValueError("the prior study is compared with the run's TransMRSR and w/o GP rows at x8: keep both "
                         f"variants and scale 8 (got variants {list(variants)}, scales {list(scales)}).")  # fmt: skip
    seeds = int_tuple(seeds)
    network = read_overlay(BUNDLE_ROOT, QUICK_OVERLAY) if quick else {}
    schedule = SCHEDULES["quick" if quick else "full"]
    timings: dict[str, float] = {}
    with Timer() as timer:
        dataset_dir = write_benchmark_data(os.path.join(out_dir, "data"))
        folders = _thick_folders(dataset_dir, os.path.join(out_dir, "data", "IXI_thick"))
    timings["data"] = timer.seconds
    from scripts.cases import subject_split

    split = _split()
    roles = subject_split(
        dataset_dir, prior_fraction=split["prior_fraction"], sr_fractions=tuple(split["sr_fractions"]), seed=0
    )
    counts = {role: len(cases) for role, cases in roles.items()}
    means = _tissue_means(dataset_dir, roles["train"])
    brains = _brain_masks(dataset_dir, folders)

    per_method: dict[str, list[dict[str, dict[str, float]]]] = {}
    for scale, folder in folders.items():
        if scale not in scales:
            continue
        for order, name in ((1, "trilinear"), (3, "bicubic")):
            per_method[f"{name} x{scale}"] = [_interpolation_scores(folder, scale, order, brains, means)]
    for seed in seeds:
        work = os.path.join(out_dir, f"seed_{seed}")
        if fresh:
            shutil.rmtree(work, ignore_errors=True)
        with Timer() as timer:
            models = _train_seed(seed, dataset_dir, work, network, schedule, variants, scales)
            for iterations in levels:
                models.update(_train_prior_study(seed, dataset_dir, work, network, schedule, iterations))
        timings[f"train seed {seed}"] = timer.seconds
        with Timer() as timer:
            for method, weights in models.items():
                name, scale = method_variant(method)
                overrides = {k: v for k, v in VARIANTS[name][1].items() if k in ARCHITECTURE_KEYS}
                if name == "EDSR-like":
                    overrides["edsr"] = True
                outputs = os.path.join(work, "sr", _folder_name(method))
                scores = _network_scores(folders[scale], scale, weights, overrides, network, outputs, brains, means)
                per_method.setdefault(method, []).append(scores)
        timings[f"evaluate seed {seed}"] = timer.seconds
    scaling = None
    if "TransMRSR x4" in models:  # the last seed's model: timing, not accuracy
        with Timer() as timer:
            scaling = _inference_scaling(folders[4], models["TransMRSR x4"], network, os.path.join(out_dir, "scaling"))
        timings["inference scaling"] = timer.seconds

    rows: list[BenchmarkRow] = []
    for method, results in per_method.items():
        trained = not method.startswith(("trilinear", "bicubic"))
        for metric in (m for m in METRIC_LABELS if m != "inference_seconds"):
            scores = [r[metric] for r in results]
            rows.append(BenchmarkRow.from_runs(method, metric, scores, seeds=list(seeds) if trained else []))
    if scaling is not None:
        rows.extend(slice_scaling_rows("TransMRSR inference", scaling))
    write_cases_csv(rows, os.path.join(out_dir, "cases.csv"))
    summary = [
        {"method": r.method, "metric": METRIC_LABELS[r.metric], "mean": r.mean, "std": r.std, "n": len(r.scored_values)}
        for r in rows
    ]
    variant_option = "" if set(variants) == set(VARIANTS) else f" --variants '{','.join(variants)}'"
    variant_option += "" if set(scales) == {4, 8} else f" --scales {','.join(map(str, scales))}"
    variant_option += f" --prior_study {','.join(map(str, levels))}" if levels else ""
    command = (
        f"python -m scripts.benchmark --out {out_dir} --quick {quick} --seeds {','.join(map(str, seeds))}"
        f"{variant_option}"
    )
    note = (
        f"Phantom IXI-layout brains (3 mm, seed {DATA_SEED}): subjects {counts} (prior / SR train / validation / "
        f"held-out test); training seeds {list(seeds)}; epochs (prior, SR, validation interval) {schedule}"
        f"{' (quick mode: configs/quick.json)' if quick else ''}. Seconds: "
        f"{', '.join(f'{k} {v:.0f}' for k, v in timings.items())} (steps reused from a stopped run not counted). "
        f"Machine: {machine_summary()}. Command: {command}. Per-case values: cases.csv."
    )
    print(write_table(summary, out_dir, "benchmark", title="TransMRSR benchmark", note=note))
    if {"TransMRSR", "EDSR-like"} <= set(variants) and 8 in scales:
        write_figures(out_dir, seeds[0], network)
    if levels:
        write_prior_study(rows, out_dir, seeds, network, schedule[0] * prior_iterations_per_epoch(network), command)
    return [r.to_dict() for r in rows]


#: the prior study's metrics: (key, column title, format)
PRIOR_STUDY_METRICS = (("psnr", "x8 PSNR dB", ".2f"), ("ssim", "x8 SSIM", ".3f"), ("dice_avg", "x8 tissue Dice", ".3f"))


def _prior_iterations(method: str, mode_iterations: int) -> int:
    """GAN iterations of the prior a method's decoder started from (0: w/o GP, a random decoder)."""
    match = re.search(r"\(prior (\d+) it\)$", method)
    return int(match.group(1)) if match else (0 if method.startswith("w/o GP") else int(mode_iterations))


def _prior_study_methods(rows: list[BenchmarkRow], mode_iterations: int) -> list[str]:
    """The rows' x8 TransMRSR, w/o GP and w/o SDT methods, ordered by their prior's GAN iterations."""
    methods = [
        m for m in dict.fromkeys(r.method for r in rows) if m.startswith(("TransMRSR x8", "w/o GP x8", "w/o SDT x8"))
    ]
    return sorted(methods, key=lambda m: (_prior_iterations(m, mode_iterations), m))


def _prior_study_comparisons(by_name: dict[tuple[str, str], BenchmarkRow], levels: list[int]) -> list[tuple[str, Any]]:
    """``(number format, comparison)`` of each :data:`PRIOR_STUDY_COMPARISONS` pair per level and metric whose two
    rows the run has."""
    from common.benchmarking import compare

    compared = []
    for level in levels:
        for ours, baseline in PRIOR_STUDY_COMPARISONS:
            ours, baseline = (name.format(level=prior_level_suffix(level)) for name in (ours, baseline))
            for key, _, fmt in PRIOR_STUDY_METRICS:
                if (ours, key) in by_name and (baseline, key) in by_name:
                    compared.append((fmt, compare(by_name[(ours, key)], by_name[(baseline, key)])))
    return compared


def _prior_study_report(
    by_name: dict[tuple[str, str], BenchmarkRow],
    methods: list[str],
    levels: list[int],
    comparisons: list[tuple[str, Any]],
    seeds: tuple[int, ...],
    mode_iterations: int,
    command: str,
) -> str:
    """``prior_study.md``: per method the means +- SEM over the held-out volumes and each seed's PSNR, then the
    paired comparisons; ``levels``: the study's prior lengths in GAN iterations."""
    lines = [
        "# TransMRSR x8 against the length of its prior's training",
        "",
        f"Held-out phantom brains (seed {DATA_SEED}, {len(by_name[(methods[0], 'psnr')].scored_values)} volumes), "
        f"training seeds {list(seeds)}, each seed with its own priors; the mode's prior trains {mode_iterations} GAN "
        f"iterations, the study's {levels}. Mean +- SEM over the volumes of the per-volume means over the seeds; every "
        f"seed's values in prior_study_cases.csv. Command: {command}.",
        "",
        "| method | prior GAN iterations | " + " | ".join(t for _, t, _ in PRIOR_STUDY_METRICS) + " | PSNR per seed |",
        "|---|---|" + "---|" * (len(PRIOR_STUDY_METRICS) + 1),
    ]
    for method in methods:
        cells = [
            f"{by_name[(method, k)].mean:{f}} +- {by_name[(method, k)].sem:{f}}" for k, _, f in PRIOR_STUDY_METRICS
        ]
        per_seed = " / ".join(
            f"{np.nanmean([value for _, value in pairs]):.2f}"
            for _, pairs in sorted(by_name[(method, "psnr")].per_seed.items())
        )
        iterations = _prior_iterations(method, mode_iterations)
        lines.append(
            f"| {method} | {iterations or 'none (random decoder)'} | " + " | ".join(cells) + f" | {per_seed} |"
        )
    lines += [
        "",
        "Paired differences (mean over the volumes, bootstrap 95 % interval, Wilcoxon p; an ordering only where the "
        "interval excludes 0 and every seed agrees):",
        "",
        "| comparison | metric | difference [95 % CI] | Wilcoxon p | seeds agreeing | ordering |",
        "|---|---|---|---|---|---|",
    ]
    for fmt, c in comparisons:
        lines.append(
            f"| {c.ours} - {c.baseline} | {c.metric} | {c.interval_text(fmt)} | {c.wilcoxon_p:.2g} | "
            f"{c.seeds_agreeing}/{c.n_seeds} | {c.verdict} |"
        )
    return "\n".join(lines) + "\n"


def _write_prior_study_cases(rows: list[BenchmarkRow], methods: set[str], mode_iterations: int, path: str) -> str:
    """Every seed's per-volume value of ``methods``' rows, with the GAN iterations of each method's prior."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "prior_gan_iterations", "metric", "seed", "case", "value"])
        for row in rows:
            if row.method in methods:
                iterations = _prior_iterations(row.method, mode_iterations)
                for seed, values in sorted(row.per_seed.items()):
                    for case, value in sorted(values):
                        writer.writerow([row.method, iterations, row.metric, seed, case, repr(float(value))])
    return path


def _plot_prior_study(
    by_name: dict[tuple[str, str], BenchmarkRow], methods: list[str], mode_iterations: int, path: str
) -> str:
    """x8 PSNR (mean +- SEM) of TransMRSR and w/o SDT against their prior's GAN iterations, the random decoder as a
    line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    random_decoder = by_name[("w/o GP x8", "psnr")]
    axis.axhline(random_decoder.mean, color="grey", linestyle="--", label="w/o GP (random decoder)")
    for name, marker in (("TransMRSR", "o"), ("w/o SDT", "s")):
        points = [(_prior_iterations(m, mode_iterations), by_name[(m, "psnr")]) for m in methods
                  if method_variant(m)[0] == name]  # fmt: skip
        if points:
            axis.errorbar([p for p, _ in points], [r.mean for _, r in points], yerr=[r.sem for _, r in points],
                          marker=marker, capsize=3, label=name)  # fmt: skip
    axis.set_xscale("log")
    axis.set_xlabel("prior GAN iterations")
    axis.set_ylabel(f"x8 PSNR dB (mean +- SEM, {len(random_decoder.scored_values)} volumes)")
    axis.set_title("TransMRSR x8 against its prior's training")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write_prior_study(
    rows: list[BenchmarkRow],
    out_dir: str,
    seeds: tuple[int, ...],
    network: dict,
    mode_iterations: int,
    command: str = "python -m scripts.benchmark --quick True --prior_study <iterations>",
) -> list[str]:
    """``prior_study.md`` (per method and prior length the means over the held-out volumes, then the paired
    comparisons of :data:`PRIOR_STUDY_COMPARISONS` per level), ``prior_study_cases.csv`` (the compared rows' values,
    each seed's), ``prior_study.png`` (x8 PSNR against the prior's GAN iterations) and ``prior_samples_<n>it.png``
    (seed ``seeds[0]``'s prior of each level) in ``out_dir``; returns the paths."""
    from scripts.figures import prior_samples_figure

    by_name = {(r.method, r.metric): r for r in rows}
    methods = _prior_study_methods(rows, mode_iterations)
    levels = sorted({_prior_iterations(m, mode_iterations) for m in methods} - {0, mode_iterations})
    comparisons = _prior_study_comparisons(by_name, levels)
    written = [os.path.join(out_dir, "prior_study.md")]
    with open(written[0], "w") as f:
        f.write(_prior_study_report(by_name, methods, levels, comparisons, seeds, mode_iterations, command))
    compared = {name for _, c in comparisons for name in (c.ours, c.baseline)}
    written.append(_write_prior_study_cases(rows, compared, mode_iterations, f"{out_dir}/prior_study_cases.csv"))
    written.append(_plot_prior_study(by_name, methods, mode_iterations, f"{out_dir}/prior_study.png"))
    for level in levels:
        prior = os.path.join(out_dir, f"seed_{seeds[0]}", f"prior_{level}", "prior", "prior.pt")
        written.append(prior_samples_figure(_generator(network), prior, f"{out_dir}/prior_samples_{level}it.png"))
    return written


def main(
    out: str = "eval/benchmark",
    quick: bool = False,
    seeds: str = "0,1,2",
    data_root: str | None = None,
    fresh: bool = False,
    variants: str | None = None,
    scales: str = "4,8",
    prior_study: str | None = None,
) -> None:
    """Command-line entry (``data_root`` is accepted for ``tools.benchmark`` and unused: the data are written here);
    ``variants``, ``scales`` and ``prior_study`` as :func:`run` (the note's command repeats them)."""
    quick, fresh = as_flag(quick, "quick"), as_flag(fresh, "fresh")  # `--quick false` arrives as a string
    run(
        data_root, out, quick=quick, seeds=seeds, fresh=fresh, variants=variants, scales=scales, prior_study=prior_study
    )


if __name__ == "__main__":
    fire.Fire(main)
