"""Reproduce REHRSeg's comparisons on held-out thick-slice phantoms, against the held-back HR truth, in one run.

Usage (from the bundle root)::

    python -m scripts.benchmark --out eval/benchmark [--quick True] [--seeds 0,1,2]

The benchmark writes its own Meningioma-like data (``DATA_SEED``, a seed not used while developing; 2 mm in-plane,
8 mm thick slices, s = 4): ``N_TRAIN`` subjects train every network, ``N_VAL`` select the segmenters by LR Dice
(LR labels only), and ``N_TEST`` held-out subjects are only scored, against their thin-slice truth that nothing
else ever reads. Per training seed, through this bundle's own configs (quick mode layers ``configs/quick.json``):
the plain self-SR network (``train_sr.json``), the UASR model (``train_uasr.json``), the pseudo-HR data
(``pseudo_hr.json``), then the segmenters (``train.json``):

- ``LR seg + nearest`` / ``LR seg + linear``: one U-Net trained on the real thick-slice images and LR labels
  (``lr_baseline.json``), its LR probabilities interpolated through-plane (nearest / linear) onto the thin grid;
- ``HR head``: the segmenter on pseudo-HR data with the LR and HR heads, without the uncertainty weighting and KD;
- ``+ UASR``, ``+ KD``, ``REHRSeg`` (both);
- ``REHRSeg (acquired LR)``: REHRSeg fed the subject's own thick slices instead of the re-acquired pseudo-HR image
  (``lr_input``);
- ``HR head (pseudo LR target)``, ``+ UASR (pseudo LR target)``: the LR head learns the pseudo-HR label's thick
  slices (``lr_target``, the public code's target) instead of the LR annotation: the setting in which U's weighting
  has pseudo-label errors to discount;
- ``SMORE-like``: the image alone super-resolved (the self-SR network trained without its label, ``smore_sr.json``),
  every subject written as a thin-slice dataset with its LR label interpolated (``smore_data.json``), and a segmenter
  trained on it (``lr_baseline.json`` at ``scale`` 1); at test it segments the test subject's SR image.

The optional stage 1a has image rows of its own (variant ``self-SR (SMORE init)``): ``pre-upsampled``, the cubic
zoom refined by the SMORE-style 2D pre-upsampler (``train_pre_upsampler.json``), and ``self-SR (SMORE init)``, the
plain self-SR network trained on pairs cut from those volumes (``train_sr.json --sr_initialization smore``), each
scored as the self-SR image. ``--variants "self-SR (SMORE init)"`` trains these and the plain network alone (no UASR,
pseudo-HR data or segmenter).

Scores per held-out subject: lesion Dice and HD95 (mm) on the HR grid, lesion Dice on the LR grid (the paper also
claims a better LR segmentation), and the self-SR image's PSNR/SSIM in the head mask against the HR image versus
trilinear and cubic interpolation. Each method's per-case value is the mean over the training seeds (``per_seed``
keeps each seed's own value), so ``tools.benchmark`` pairs methods per held-out subject and checks that every seed
orders them the same way.

The module-level names below are this bundle's benchmark data, read (as literals) by ``python -m tools.benchmark``.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import fire
import nibabel as nib
import numpy as np
import torch
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
    write_comparisons,
    write_seed_cases_csv,
    write_table,
)
from common.flags import as_flag

__all__ = ["run", "COMPARISONS", "PAPER_NOTES", "METRIC_LABELS"]

BUNDLE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: dataset folder under the data root that ``tools.benchmark_ddp``'s training runs read (this benchmark writes its own)
REQUIRED_DATASET = "Meningioma"

#: our UASR self-SR step beside the public code's (``python -m tools.side_by_side``; ``scripts/peer_step.py`` is ours,
#: ``shared/peers/rehrseg_step.py --stage sr`` times ``train_all.train_sr`` with the uncertainty head)
PEER_STEP = {
    "repository": "zhiyuns/REHRSeg",
    "harness": "rehrseg_step.py",
    "harness_args": ["--stage", "sr", "--n", "2", "--warmup", "1"],
    "ours_args": ["-m", "scripts.peer_step", "--n", "2", "--warmup", "1"],
    "ours_variants": {"channels-last off": ["--channels_last", "False"]},
    "configuration": "UASR self-SR step: FLAVR-style 3D U-Net (R3D-18-like encoder) with the uncertainty head, 2 "
    "channels (image, label), 4 thick slices of 96x96 in, 4 thin slices out, batch 32, Adam (0.9, 0.99) 5e-4 with "
    "OneCycleLR; inference one 4-slice 256x256 window; ours with train_sr.json's channels-last unless the row says "
    "otherwise",
    "more_steps": {
        "stage 2": {
            "harness_args": ["--stage", "seg", "--n", "2", "--warmup", "1"],
            "ours_args": ["-m", "scripts.peer_step", "--stage", "seg", "--n", "2", "--warmup", "1"],
            "ours_variants": {
                "channels-last": ["--channels_last", "True"],
                "fused Adam, set-to-None": ["--fused_optimizer", "True", "--optim_set_to_none", "True"],
                "no recomputation": ["--recompute", "False"],
            },
            "configuration": "stage-2 segmenter step with KD from the frozen UASR model: the harness's assumed nnU-Net "
            "plan (7 stages, 32-320 features, 1x3x3 kernels in the first two stages; 44.3 M parameters both), batch 2, "
            "LR crop 14x128x128 (z, y, x) -> HR x4 in z, LR CE weighted by U + HR Dice-CE + structural KD; reference: "
            "SGD, the teacher's features by Z-1 FLAVR encoder passes, inference one crop with 8-fold mirroring (LR "
            "head); ours: train.json's Adam, LR Dice too, one teacher pass, inference one crop (HR head, no "
            "mirroring), train.json's speed switches (all off) and its full-resolution recomputation (on) unless the "
            "row says otherwise",
        }
    },
}

#: the benchmark's own data: a seed not used while developing, enough held-out volumes per comparison
DATA_SEED = 2028
N_TRAIN = 10
N_VAL = 2
N_TEST = 30

#: (ours, baseline) method pairs compared per case
COMPARISONS = (
    ("LR seg + linear", "LR seg + nearest"),
    ("REHRSeg", "LR seg + linear"),
    ("HR head", "LR seg + linear"),
    ("+ UASR", "LR seg + linear"),
    ("+ KD", "LR seg + linear"),
    ("+ UASR", "HR head"),
    ("+ KD", "HR head"),
    ("REHRSeg", "HR head"),
    ("REHRSeg (acquired LR)", "REHRSeg"),
    ("SMORE-like", "LR seg + linear"),
    ("REHRSeg", "SMORE-like"),
    ("HR head", "SMORE-like"),
    ("+ UASR (pseudo LR target)", "HR head (pseudo LR target)"),
    ("HR head (pseudo LR target)", "HR head"),
    ("+ UASR (raw U)", "HR head"),
    ("+ UASR (raw U)", "+ UASR"),
    ("+ UASR (pseudo LR target, raw U)", "HR head (pseudo LR target)"),
    ("REHRSeg (pseudo LR target, raw U)", "HR head (pseudo LR target)"),
    ("REHRSeg (pseudo LR target, raw U)", "HR head"),
    ("REHRSeg (pseudo LR target, raw U)", "REHRSeg"),
    ("self-SR", "cubic"),
    ("cubic", "trilinear"),
    ("pre-upsampled", "cubic"),
    ("self-SR (SMORE init)", "self-SR"),
    ("self-SR (SMORE init)", "cubic"),
    ("UASR U", "label-boundary distance"),
)

PAPER_NOTES = (
    "REHRSeg (Song et al., Neurocomputing 2025) reports its tables only in the full text, which this project does "
    "not have (abstract and figure captions only): no paper numbers are shown. Its claims checked here: HR "
    "segmentation from LR annotations beats LR segmentation interpolated to HR, UASR and structural KD each help, "
    "and the LR segmentation improves too."
)

MODE_NOTES = {
    "quick": "configs/quick.json networks on 2 mm in-plane / 8 mm thick phantom brains (s = 4; the paper's data are "
    "about 1 x 1 x 4-6 mm); the schedules of SCHEDULES['quick']",
    "full": "the configs' networks and schedules on the same phantoms",
}

#: overrides of a fresh DDP-scaling run (``python -m tools.benchmark_ddp``): the segmenter without a teacher
DDP_OVERRIDES = {"lambda_kd": 0.0, "use_uncertainty": False}

METRIC_LABELS = {
    "hr_dice": "lesion Dice on the HR (thin-slice) grid vs the held-back HR truth",
    "hr_hd95": "lesion HD95 mm on the HR grid (lower is better)",
    "lr_dice": "lesion Dice on the LR (thick-slice) grid vs the LR annotation",
    "psnr": "self-SR image PSNR dB in the head mask vs the HR image",
    "ssim": "self-SR image SSIM (coronal slices) in the head mask vs the HR image",
    "u_label_auc": "ROC AUC of the uncertainty for the pseudo-HR label's wrong voxels (head mask, vs HR truth)",
    "inference_seconds": "seconds per volume (one held-out LR volume tiled to N thick slices; the fit: per slice)",
}
#: thick-slice counts of the inference-scaling rows (the held-out volume tiled along the through-plane axis)
SCALING_SLICES = (8, 16, 32)
LOWER_IS_BETTER = ("hr_hd95",)

#: (SR epochs, UASR epochs, segmenter epochs, segmenter validation interval) per mode
SCHEDULES = {"quick": (20, 20, 10, 5), "full": (100, 40, 200, 5)}

#: segmenter variants: name -> extra config files and overrides
VARIANTS = {
    "LR seg": (["lr_baseline.json"], {}),
    "HR head": ([], {"use_uncertainty": False, "lambda_kd": 0.0}),
    "+ UASR": ([], {"use_uncertainty": True, "lambda_kd": 0.0}),
    "+ KD": ([], {"use_uncertainty": False, "lambda_kd": 1.0}),
    "REHRSeg": ([], {"use_uncertainty": True, "lambda_kd": 1.0}),
    "REHRSeg (acquired LR)": ([], {"use_uncertainty": True, "lambda_kd": 1.0, "lr_input": "acquired"}),
    "SMORE-like": (["lr_baseline.json"], {"scale": 1}),  # on the SMORE-like dataset (``_train_seed``)
    "HR head (pseudo LR target)": ([], {"use_uncertainty": False, "lambda_kd": 0.0, "lr_target": "pseudo_hr"}),
    "+ UASR (pseudo LR target)": ([], {"use_uncertainty": True, "lambda_kd": 0.0, "lr_target": "pseudo_hr"}),
    # the softer weighting: U as the UASR head gives it, not min-max scaled per subject (``uncertainty_scaling``)
    "+ UASR (raw U)": ([], {"use_uncertainty": True, "lambda_kd": 0.0, "uncertainty_scaling": "raw"}),
    "+ UASR (pseudo LR target, raw U)": (
        [],
        {"use_uncertainty": True, "lambda_kd": 0.0, "lr_target": "pseudo_hr", "uncertainty_scaling": "raw"},
    ),
    # the whole method (UASR + KD) in the public code's setting with the softer weighting
    "REHRSeg (pseudo LR target, raw U)": (
        [],
        {"use_uncertainty": True, "lambda_kd": 1.0, "lr_target": "pseudo_hr", "uncertainty_scaling": "raw"},
    ),
}
#: variants of the self-SR stage (image rows, no segmenter): name -> the rows they add
SR_VARIANTS = {"self-SR (SMORE init)": ("pre-upsampled", "self-SR (SMORE init)")}
#: segmenter variants that train without the pseudo-HR data (and so without the UASR model that writes its U)
WITHOUT_PSEUDO_HR = ("LR seg", "SMORE-like")
SCALE, AXIS = 4, 2


def _split() -> dict[str, Any]:
    total = N_TRAIN + N_VAL + N_TEST
    return {"fractions": [N_TRAIN / total, N_VAL / total, N_TEST / total], "split_seed": 0}


def write_benchmark_data(out: str) -> str:
    """The benchmark's own nnU-Net-layout folder (and its ``Meningioma_HR`` truth beside it), written once."""
    from common.data import write_meningioma

    folder = os.path.join(out, "Meningioma")
    if not os.path.isdir(folder):
        write_meningioma(out, n_subjects=N_TRAIN + N_VAL + N_TEST, seed=DATA_SEED, small=True, workers=0)
    return folder


def _folder(name: str) -> str:
    return name.replace("+ ", "plus_").replace("(", "").replace(")", "").replace(",", "").replace(" ", "_")


def smore_like_dir(work: str) -> str:
    """Where ``_train_seed`` writes a seed's SMORE-like dataset (the test subjects' SR images included)."""
    return os.path.join(work, "shared", "smore_like")


def _train_seed(seed: int, dataset_dir: str, work: str, network: dict, schedule: tuple, variants: tuple) -> dict:
    """Self-SR, UASR, pseudo-HR, then the segmenter ``variants``; returns ``{name: model.pt}``. Finished steps are
    skipped (a stopped run continues)."""
    sr_epochs, uasr_epochs, seg_epochs, val_interval = schedule
    shared = os.path.join(work, "shared")
    base = {"dataset_dir": dataset_dir, "seed": seed, "num_workers": 0, **_split(), **network}
    logs = os.path.join(work, "logs")
    sr_dir, pseudo, smore = os.path.join(shared, "sr"), os.path.join(shared, "pseudo_hr"), smore_like_dir(work)
    with_pseudo_hr = any(v in VARIANTS and v not in WITHOUT_PSEUDO_HR for v in variants)
    steps = [("sr", ["train.json", "train_sr.json"], os.path.join(sr_dir, "plain.pt"), {"epochs": sr_epochs})]
    if with_pseudo_hr:
        steps.append(("uasr", ["train.json", "train_sr.json", "train_uasr.json"], os.path.join(sr_dir, "uasr.pt"),
                      {"epochs": uasr_epochs}))  # fmt: skip
    if "self-SR (SMORE init)" in variants:  # stage 1a, then the plain network on its volumes
        pre_upsampler = ["train.json", "train_sr.json", "train_pre_upsampler.json"]
        steps.append(("pre_upsampler", pre_upsampler, os.path.join(sr_dir, "pre_upsampler.pt"), {"epochs": sr_epochs}))
        smore_init = {"epochs": sr_epochs, "sr_initialization": "smore", "sr_final_name": "plain_smore.pt",
                      "sr_state_dir": os.path.join(sr_dir, "plain_smore_state")}  # fmt: skip
        steps.append(("sr_smore", ["train.json", "train_sr.json"], os.path.join(sr_dir, "plain_smore.pt"), smore_init))
    if "SMORE-like" in variants:
        image_only = ["train.json", "train_sr.json", "smore_sr.json"]
        steps.append(("smore_sr", image_only, os.path.join(sr_dir, "image_only.pt"), {"epochs": sr_epochs}))
    for name, files, product, extra in steps:
        if not os.path.isfile(product):
            overrides = dict(base, ckpt_dir=shared, output_dir=os.path.join(logs, name), **extra)
            run_workflow(BUNDLE_ROOT, files, overrides)
    data_steps = [(pseudo, "pseudo_hr.json", {})] if with_pseudo_hr else []
    if "SMORE-like" in variants:
        data_steps.append((smore, "smore_data.json", {"smore_dir": smore}))
    for folder, config, extra in data_steps:
        if not os.path.isfile(os.path.join(folder, "done")):
            run_workflow(BUNDLE_ROOT, ["train.json", config], dict(base, ckpt_dir=shared, overwrite=True, **extra))
            open(os.path.join(folder, "done"), "w").close()
    models, stages = {}, StageCache()
    for name, (files, overrides) in VARIANTS.items():
        if name not in variants:
            continue
        folder = os.path.join(work, _folder(name))
        values = dict(base, **overrides, ckpt_dir=folder, sr_dir=sr_dir, pseudo_hr_dir=pseudo)
        if name == "SMORE-like":
            values["dataset_dir"] = smore  # the image-only SR images and interpolated LR labels of every subject
        values.update(epochs=seg_epochs, val_interval=val_interval, output_dir=os.path.join(logs, _folder(name)))
        stages.train(folder, name, BUNDLE_ROOT, ["train.json", *files], values)  # model.pt: best checkpoint
        models[name] = os.path.join(folder, "model.pt")
    models["self-SR"] = os.path.join(sr_dir, "plain.pt")
    if with_pseudo_hr:
        models["UASR U"] = os.path.join(sr_dir, "uasr.pt")
    if "self-SR (SMORE init)" in variants:
        models["pre-upsampled"] = os.path.join(sr_dir, "pre_upsampler.pt")
        models["self-SR (SMORE init)"] = os.path.join(sr_dir, "plain_smore.pt")
    return models


def _read(path: str) -> tuple[np.ndarray, np.ndarray]:
    image = nib.load(path)
    return np.asarray(image.dataobj, dtype=np.float32), image.affine


def _scaled(image: np.ndarray, percentile: float = 99.5) -> tuple[torch.Tensor, float]:
    """The configs' ``ScaleByPercentiled``: divide by the percentile of the voxels above 0."""
    scale = float(np.percentile(image[image > 0], percentile))
    return torch.as_tensor(image / scale)[None, None], scale


def _trained_network(
    item: str, weights: str, network: dict, files: tuple[str, ...] = ("train.json",), **overrides: Any
) -> torch.nn.Module:
    """``item`` of ``files`` (with the benchmark's ``network`` overlay and ``overrides``: the very network a stage
    trained), loaded from ``weights``, in eval mode."""
    from common.benchmarking import parse_config_items
    from common.checkpoint import load_weights

    net = parse_config_items(BUNDLE_ROOT, list(files), {**network, **overrides}, (item,))[item]
    load_weights(net, weights)
    return net.eval()


def _segmenter(weights: str, network: dict, scale: int = SCALE) -> torch.nn.Module:
    return _trained_network("network_def", weights, network, scale=scale)


def _self_sr(weights: str, network: dict, head: str = "plain") -> torch.nn.Module:
    return _trained_network({"plain": "sr_network_def", "uasr": "uasr_network_def"}[head], weights, network)


def _segmentation_scores(lr_seg: np.ndarray, hr_seg: np.ndarray, case: dict) -> dict[str, float]:
    from common.metrics import dice, surface_distances

    spacing = np.linalg.norm(case["hr_affine"][:3, :3], axis=0)
    distance = surface_distances(hr_seg == 1, case["hr_label"] == 1, spacing=spacing)
    return {
        "hr_dice": float(dice(hr_seg, case["hr_label"], labels=1)),
        "hr_hd95": float(distance["hd95"]),
        "lr_dice": float(dice(lr_seg, case["lr_label"], labels=1)),
    }


def _hr_masks(name: str, net: torch.nn.Module, case: dict) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A trained segmenter's LR mask and its HR mask(s) of one case, by row name: ``LR seg`` gives two, its LR
    probabilities interpolated along z (``LR seg + nearest``, ``LR seg + linear``), the others their HR head's."""
    from common.data import interpolate_to_thin_slices
    from common.inferers import ThickSliceSegInferer

    lr_logits, hr_logits = ThickSliceSegInferer(net.divisor, scale=SCALE, head="both")(case["input"], net)
    lr_probs = torch.softmax(lr_logits, 1)[0].numpy()
    if name != "LR seg":
        return lr_probs.argmax(0), {name: hr_logits[0].argmax(0).numpy()}
    interpolated = {
        f"LR seg + {label}": interpolate_to_thin_slices(lr_probs, AXIS + 1, SCALE, order=order).argmax(0)
        for order, label in ((0, "nearest"), (1, "linear"))
    }
    return lr_probs.argmax(0), interpolated


@torch.no_grad()
def _score_segmenter(name: str, weights: str, network: dict, cases: list[dict]) -> dict[str, dict[str, float]]:
    """Per-case scores of a trained segmenter (``LR seg``: two rows, its LR probabilities interpolated)."""
    net = _segmenter(weights, network)
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for case in cases:
        lr_seg, hr_masks = _hr_masks(name, net, case)
        for method, hr_seg in hr_masks.items():
            for metric, value in _segmentation_scores(lr_seg, hr_seg, case).items():
                rows.setdefault(method, {}).setdefault(metric, {})[case["name"]] = value
    return rows


@torch.no_grad()
def _score_smore_like(weights: str, smore_dir: str, network: dict, cases: list[dict]) -> dict[str, dict[str, dict]]:
    """Per-case scores of the SMORE-like segmenter on each test subject's image-only SR volume (``smore_dir``, written
    by smore_data.json from the thick image alone): HR mask = its argmax; LR mask = the argmax of its probabilities
    averaged over each thick slice's ``SCALE`` thin slices."""
    from common.inferers import ThickSliceSegInferer
    from scripts.smore_like import smore_like_paths

    net = _segmenter(weights, network, scale=1)
    inferer = ThickSliceSegInferer(net.divisor, scale=1, head="lr")
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for case in cases:
        x, _ = _scaled(_read(smore_like_paths(smore_dir, case["name"])["image"])[0])
        probs = torch.softmax(inferer(x.float(), net), 1)[0].numpy()
        thick = probs.reshape(*probs.shape[:-1], -1, SCALE).mean(-1)
        scores = _segmentation_scores(thick.argmax(0), probs.argmax(0), case)
        for metric, value in scores.items():
            rows.setdefault("SMORE-like", {}).setdefault(metric, {})[case["name"]] = value
    return rows


def _image_scores(sr: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    from common.metrics import masked_psnr, masked_ssim
    from common.transforms import head_mask

    head = head_mask(truth)
    return {"psnr": float(masked_psnr(sr, truth, head)), "ssim": float(masked_ssim(sr, truth, head, slice_axis=1))}


@torch.no_grad()
def _plain_self_sr(weights: str, network: dict, cases: list[dict]) -> list[dict[str, np.ndarray]]:
    """The plain self-SR network's thin-slice ``image`` (in the case's intensities) and ``label`` (bool) per case,
    input the thick image and LR label as pseudo_hr.json makes the training data: run once per seed, read by the
    image rows and the uncertainty rows."""
    from scripts.pseudo_hr import sliding_sr

    net = _self_sr(weights, network)
    inferer = sliding_sr(net, SCALE, AXIS, 16)
    outputs = []
    for case in cases:
        sr = inferer(_self_sr_input(case), net)[0].numpy()
        outputs.append({"image": np.clip(sr[0] * case["scale"], 0, None), "label": sr[1] > 0})
    return outputs


def _self_sr_input(case: dict) -> torch.Tensor:
    return torch.cat([case["input"], torch.as_tensor(case["lr_label"] > 0, dtype=torch.float32)[None, None]], 1)


def _score_self_sr(
    outputs: list[dict] | None, cases: list[dict], method: str = "self-SR"
) -> dict[str, dict[str, dict[str, float]]]:
    """PSNR/SSIM of a self-SR image (``outputs``: :func:`_plain_self_sr`'s, scored as ``method``), or of trilinear
    and cubic interpolation (``outputs=None``), against the HR image."""
    from common.data import interpolate_to_thin_slices

    rows: dict[str, dict[str, dict[str, float]]] = {}
    for i, case in enumerate(cases):
        if outputs is None:
            for order, label in ((1, "trilinear"), (3, "cubic")):
                thin = np.clip(interpolate_to_thin_slices(case["lr_image"], AXIS, SCALE, order=order), 0, None)
                for metric, value in _image_scores(thin, case["hr_image"]).items():
                    rows.setdefault(label, {}).setdefault(metric, {})[case["name"]] = value
            continue
        for metric, value in _image_scores(outputs[i]["image"], case["hr_image"]).items():
            rows.setdefault(method, {}).setdefault(metric, {})[case["name"]] = value
    return rows


@torch.no_grad()
def _pre_upsampled(weights: str, network: dict, cases: list[dict]) -> list[dict[str, np.ndarray]]:
    """Each case's thin-grid volume as ``train_sr.json --sr_initialization smore`` makes it from the thick image and
    LR label: the cubic zoom (label: nearest), scaled by its percentile, refined by the pre-upsampler; the image back
    in the case's intensities."""
    from common.data import interpolate_to_thin_slices
    from common.transforms import PreUpsampleThinGridd

    pre_upsampler = _trained_network("pre_upsampler_def", weights, network, ("train.json", "train_sr.json"))
    step = PreUpsampleThinGridd(network=pre_upsampler)
    outputs = []
    for case in cases:
        x, scale = _scaled(interpolate_to_thin_slices(case["lr_image"], AXIS, SCALE, order=3))
        label = interpolate_to_thin_slices((case["lr_label"] > 0).astype(np.float32), AXIS, SCALE, order=0)
        refined = step({"image": x[0].float(), "label": torch.as_tensor(label)[None]})
        outputs.append({"image": np.clip(refined["image"][0].numpy() * scale, 0, None)})
    return outputs


@torch.no_grad()
def _score_uncertainty(plain: list[dict], uasr: str, network: dict, cases: list[dict]) -> dict[str, dict[str, dict]]:
    """Does the UASR model's U say where the pseudo-HR label is wrong? Per test subject, as pseudo_hr.json makes the
    training data (thick image and LR label in; the plain network's label from ``plain``, :func:`_plain_self_sr`'s
    outputs, and the UASR model's U): the ROC AUC of U for
    the voxels whose pseudo-HR label differs from the HR truth, in the head mask. Beside it the rule a reader would
    try first, closeness to the pseudo-HR label's boundary (``exp(-distance in thin voxels)``): U is worth its
    training only where it beats that."""
    from common.metrics import roc_auc
    from common.transforms import head_mask
    from scipy import ndimage
    from scripts.pseudo_hr import sliding_sr

    uasr_net = _self_sr(uasr, network, head="uasr")
    inferer = sliding_sr(uasr_net, SCALE, AXIS, 16)
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for case, output in zip(cases, plain):
        label = output["label"]
        u = inferer(_self_sr_input(case), uasr_net)[0, 2].numpy()
        shell = label ^ ndimage.binary_erosion(label)  # the label's outermost voxels
        boundary = np.exp(-ndimage.distance_transform_edt(~shell)) if shell.any() else np.zeros_like(u)
        head = head_mask(case["hr_image"])
        wrong = (label != (case["hr_label"] > 0.5)) & head
        right = ~wrong & head
        for method, score in (("UASR U", u), ("label-boundary distance", boundary)):
            rows.setdefault(method, {}).setdefault("u_label_auc", {})[case["name"]] = roc_auc(
                score[wrong], score[right]
            )
    return rows


def _inference_scaling(path: str, models: dict, network: dict, out: str) -> dict[str, dict[str, Any]]:
    """Seconds per volume against the number of thick slices (``common.benchmarking.slice_scaling``) of
    ``configs/inference.json`` (the REHRSeg segmenter: LR volume -> HR mask, config parsing and model loading in the
    intercept) and of the self-SR network alone (``SlidingSliceSR``: one 4-slice window per LR slice gap)."""
    from common.benchmarking import slice_scaling, write_tiled_volume
    from scripts.pseudo_hr import sliding_sr

    def segment(n: int) -> None:
        folder = os.path.join(out, f"slices_{n}")
        shutil.rmtree(folder, ignore_errors=True)  # the warm-up run wrote the first count's output
        write_tiled_volume(path, n, AXIS, os.path.join(folder, "in", os.path.basename(path)))
        values = {"dataset_dir": os.path.join(folder, "in"), "output_dir": os.path.join(folder, "out")}
        run_workflow(BUNDLE_ROOT, ["inference.json"], dict(network, model_weights=models["REHRSeg"], **values))

    net = _self_sr(models["self-SR"], network)
    image, _ = _read(path)
    inferer = sliding_sr(net, SCALE, AXIS, 16)

    @torch.no_grad()
    def super_resolve(n: int) -> None:
        x, _ = _scaled(np.take(image, np.arange(n) % image.shape[AXIS], axis=AXIS))
        inferer(torch.cat([x.float(), torch.zeros_like(x, dtype=torch.float32)], 1), net)  # label channel: no lesion

    return {
        "REHRSeg inference": slice_scaling(segment, SCALING_SLICES),
        "self-SR inference": slice_scaling(super_resolve, SCALING_SLICES),
    }


@torch.no_grad()
def write_overlay_figure(cases: list[dict], models: dict, network: dict, out_png: str, seed: int) -> str:
    """``out_png``: the held-out subject with the largest lesion, coronal (where the thick slices show): the input,
    the HR truth, and the HR masks of LR seg + linear, the HR head and REHRSeg (``models``: one training seed's)."""
    from common.data import interpolate_to_thin_slices
    from scripts.figures import busiest_plane, overlay_figure

    case = max(cases, key=lambda c: int((c["hr_label"] > 0).sum()))
    predictions = {}
    for name in ("LR seg", "HR head", "REHRSeg"):
        if name in models:
            predictions.update(_hr_masks(name, _segmenter(models[name], network), case)[1])
    predictions.pop("LR seg + nearest", None)  # the figure shows the baseline REHRSeg is compared with
    thick = interpolate_to_thin_slices(case["lr_image"], AXIS, SCALE, order=0)
    plane = busiest_plane(case["hr_label"], axis=1)
    title = f"held-out {case['name']}, coronal plane y = {plane}, training seed {seed}; cyan: HR truth, orange: model"
    return overlay_figure(thick, case["hr_image"], case["hr_label"], predictions, out_png, plane, title)


def _test_cases(dataset_dir: str) -> list[dict]:
    """The held-out subjects: LR image (scaled network input), LR label, HR image and label (the held-back truth)."""
    from scripts.cases import hr_truth_datalist, subject_split

    split = _split()
    test = subject_split(dataset_dir, fractions=split["fractions"], seed=split["split_seed"])["test"]
    hr_dir = os.path.normpath(dataset_dir) + "_HR"  # as evaluate.json's hr_dir
    cases = []
    for item in hr_truth_datalist(test, hr_dir):
        lr_image, _ = _read(item["image"])
        hr_label, hr_affine = _read(item["label"])
        hr_image, _ = _read(os.path.join(hr_dir, "imagesHR", os.path.basename(item["image"])))
        x, scale = _scaled(lr_image)
        cases.append(
            {
                "name": item["case"],
                "path": item["image"],
                "input": x.float(),
                "scale": scale,
                "lr_image": lr_image,
                "lr_label": _read(item["lr_label"])[0],
                "hr_image": hr_image,
                "hr_label": hr_label,
                "hr_affine": hr_affine,
            }
        )
    return cases


def run(
    data_root: str | None,
    out_dir: str,
    quick: bool = False,
    seeds: tuple[int, ...] | str = (0, 1, 2),
    fresh: bool = False,
    variants: tuple[str, ...] | str | None = None,
) -> list[dict]:
    """Train every seed, score every row per held-out subject; write tables, ``cases.csv`` and ``overlay.png``
    (:func:`write_overlay_figure`, the last seed's models); return the rows.

    ``data_root`` (what ``tools.benchmark`` passes) is not read: the benchmark writes its own data (``DATA_SEED``)
    under ``<out_dir>/data``. Without ``fresh``, a seed's finished steps found in ``out_dir`` are reused, so a stopped
    run continues; ``fresh=True`` deletes them first. ``variants`` (names of ``VARIANTS``, comma-separated) limits the
    segmenters trained.
    """
    out_dir = os.path.abspath(out_dir)
    known = (*VARIANTS, *SR_VARIANTS)
    variants = known if variants is None else tuple(v.strip() for v in str(variants).split(",") if v.strip())
    unknown = sorted(set(variants) - set(known))
    if unknown:
        raise ValueError(f"unknown variants {unknown}; choose among {list(known)}.")
    seeds = int_tuple(seeds)
    network = read_overlay(BUNDLE_ROOT, QUICK_OVERLAY) if quick else {}
    schedule = SCHEDULES["quick" if quick else "full"]
    timings: dict[str, float] = {}
    with Timer() as timer:
        dataset_dir = write_benchmark_data(os.path.join(out_dir, "data"))
        cases = _test_cases(dataset_dir)
    timings["data"] = timer.seconds
    per_method: dict[str, list[dict[str, dict[str, float]]]] = {}
    for name, scores in _score_self_sr(None, cases).items():
        per_method[name] = [scores]
    for seed in seeds:
        work = os.path.join(out_dir, f"seed_{seed}")
        if fresh:
            shutil.rmtree(work, ignore_errors=True)
        with Timer() as timer:
            models = _train_seed(seed, dataset_dir, work, network, schedule, variants)
        timings[f"train seed {seed}"] = timer.seconds
        with Timer() as timer:
            plain = _plain_self_sr(models["self-SR"], network, cases)
            for name, weights in models.items():
                if name == "self-SR":
                    results = _score_self_sr(plain, cases)
                elif name == "UASR U":
                    results = _score_uncertainty(plain, weights, network, cases)
                elif name == "SMORE-like":
                    results = _score_smore_like(weights, smore_like_dir(work), network, cases)
                elif name == "self-SR (SMORE init)":
                    results = _score_self_sr(_plain_self_sr(weights, network, cases), cases, name)
                elif name == "pre-upsampled":
                    results = _score_self_sr(_pre_upsampled(weights, network, cases), cases, name)
                else:
                    results = _score_segmenter(name, weights, network, cases)
                for method, scores in results.items():
                    per_method.setdefault(method, []).append(scores)
        timings[f"evaluate seed {seed}"] = timer.seconds
    scaling = {}
    if "REHRSeg" in models:  # the last seed's models: a picture and timing, not accuracy
        write_overlay_figure(cases, models, network, os.path.join(out_dir, "overlay.png"), seeds[-1])
        with Timer() as timer:
            scaling = _inference_scaling(cases[0]["path"], models, network, os.path.join(out_dir, "scaling"))
        timings["inference scaling"] = timer.seconds

    rows: list[BenchmarkRow] = []
    for method, results in per_method.items():
        trained = method not in ("trilinear", "cubic")  # the boundary rule reads the seed's plain network
        for metric in (m for m in METRIC_LABELS if m != "inference_seconds"):
            if metric not in results[0]:
                continue
            scores = [r[metric] for r in results]
            higher = metric not in LOWER_IS_BETTER
            used_seeds = list(seeds) if trained else []
            rows.append(BenchmarkRow.from_runs(method, metric, scores, seeds=used_seeds, higher_is_better=higher))
    for name, result in scaling.items():
        rows.extend(slice_scaling_rows(name, result))
    write_cases_csv(rows, os.path.join(out_dir, "cases.csv"))
    write_seed_cases_csv(rows, os.path.join(out_dir, "seed_cases.csv"))
    summary = [
        {"method": r.method, "metric": METRIC_LABELS[r.metric], "mean": r.mean, "std": r.std, "n": len(r.scored_values)}
        for r in rows
    ]
    variant_option = "" if set(variants) == set(known) else f" --variants '{','.join(variants)}'"
    note = (
        f"Phantom Meningioma-like brains (2 mm in-plane, 8 mm slices, seed {DATA_SEED}): subjects train/val/test "
        f"{N_TRAIN}/{N_VAL}/{len(cases)}; training seeds {list(seeds)}; epochs (SR, UASR, segmenter, validation "
        f"interval) {schedule}{' (quick mode: configs/quick.json)' if quick else ''}. Seconds: "
        f"{', '.join(f'{k} {v:.0f}' for k, v in timings.items())} (steps reused from a stopped run not counted). "
        f"Machine: {machine_summary()}. Command: python -m scripts.benchmark --out {out_dir} --quick {quick} "
        f"--seeds {','.join(map(str, seeds))}{variant_option}. Per-case values: cases.csv."
    )
    print(write_table(summary, out_dir, "benchmark", title="REHRSeg benchmark", note=note))
    comparisons = os.path.join(out_dir, "comparisons.md")
    write_comparisons(
        rows, COMPARISONS, comparisons, "REHRSeg benchmark: paired comparisons", note, METRIC_LABELS, "subject"
    )
    return [r.to_dict() for r in rows]


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
