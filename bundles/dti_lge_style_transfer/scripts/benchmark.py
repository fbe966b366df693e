"""Fig. 7 of the paper with statistics, its premise, an independent judge and a DTI infarct-contrast sweep, in one run.

Usage (from the bundle root)::

    python -m scripts.benchmark --out eval/benchmark --quick True --sseg_bundle_root ../lge_mi_sr_segmentation \
        [--seeds 0,1,2] [--sweep 0,0.1,0.2,0.4] [--fresh False]

The benchmark writes its own DTI_LGE_MI data (``DATA_SEED``, a seed not used while developing): ``N_PAIRED`` paired
cases, ``N_TEST`` of them held out for testing and ``N_VAL`` for validation (one split, :data:`SPLIT`, the same for
every training seed so that methods are compared per test pair), and ``N_LGE_ONLY`` LGE-only cases. Every model is
trained and scored here through the bundles' own config files (``monai.bundle.ConfigWorkflow``, overrides only):

1. per training seed, on the split's disjoint halves of the LGE training cases: the Segmentor
   (``train.json + train_segmentor.json``) and the judge (``+ train_judge.json``: another architecture, another seed,
   the other half), which scores translations independently of the Segmentor that CycleGANSeg was trained with;
2. plain CycleGAN (``use_segmentor=false``) and CycleGANSeg on the training pairs, then ``evaluate.json`` on the test
   pairs: Segmentor and judge Dice of the translated image against the source LGE and the manual mask, SSIM, PSNR;
3. the SSeg of the pipelines: the ``lge_mi_sr_segmentation`` bundle's SwinSSegNet (its ``train.json``) on the LGE
   training cases, from scratch; scored also on the test pairs' own LGE ("SSeg on LGE", the premise's reference);
4. "DTI SSeg": the same SwinSSegNet trained directly on the training pairs' DTI (the selected ``dti_channels``) for as
   many optimizer steps as the LGE one;
5. the three pipelines of Fig. 7 on the test pairs' DTI, scored by the MI Dice of each 512x512 mask.

Rows per method are per-test-pair means over the seeds (``per_seed`` keeps each seed's values), so
``python -m tools.benchmark`` compares methods pair by pair with a bootstrap interval, a Wilcoxon p-value and the
seeds' agreement. The premise row ("SSeg on LGE" vs "DTI SSeg") shows whether DTI alone is the poor input the paper
says it is. The sweep then rewrites only the infarct's diffusion contrast of the same subjects (MD elevation ``e``,
FA reduction ``4e/3``, S0 elevation ``e/3``: the literature draws' mid-range ratios 0.15 / 0.20 / 0.05) and trains
the three pipelines again per level and training seed, each seed's pipelines reusing that seed's LGE models (they do
not depend on the DTI): ``sweep.md`` (per-pair means over the seeds, comparisons with the seeds' agreement),
``sweep_cases.csv`` (every seed's values), ``sweep.png``.

``quick=True`` takes the translators' networks from ``configs/quick.json`` and the training lengths from
:data:`QUICK`; ``quick=False`` the configs' defaults (paper settings). Without ``fresh``, the stages finished in
``out_dir`` (a ``.done`` marker each) are reused, so a stopped run continues.

The module-level literals below are this bundle's benchmark data, read without importing it by
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
    StageCache,
    Timer,
    compare,
    int_tuple,
    machine_summary,
    peak_rss_mb,
    read_overlay,
    run_workflow,
    slice_scaling_rows,
    trainer_steps,
    write_cases_csv,
    write_table,
)
from common.constants import DTI_CHANNELS  # noqa: E402
from common.data import dti_lge_mi_cases, dti_lge_mi_split, lowres_slice, write_dti_lge_mi, write_nifti  # noqa: E402
from common.flags import as_flag  # noqa: E402
from common.metrics import dice  # noqa: E402
from common.transforms import super_resolve_affine  # noqa: E402

__all__ = ["run", "main", "QUICK", "SPLIT", "COMPARISONS", "PAPER_NUMBERS", "PAPER_NOTES", "METRIC_LABELS"]

logger = logging.getLogger(__name__)

#: dataset folder under the data root that ``tools.benchmark_ddp``'s training runs read (this benchmark writes its own)
REQUIRED_DATASET = "DTI_LGE_MI"

#: other bundles the benchmark trains and runs (``run`` argument -> bundle name); ``tools.benchmark`` passes their
#: roots. The SSeg of the pipelines is SwinSSegNet, the ``lge_mi_sr_segmentation`` bundle.
REQUIRED_BUNDLES = {"sseg_bundle_root": "lge_mi_sr_segmentation"}

#: folder inference's batching knob, timed per value by ``python -m tools.inference_batching`` on a 16-slice stack of
#: 64x64 MD slices (one window each) through the translator
INFERENCE_BATCH = {"key": "sw_batch_size", "input_shape": [1, 1, 64, 64, 16], "slices": 16, "values": [1, 2, 4, 8, 16]}

#: ``python -m tools.folder_batching``: a folder of 16 single-slice 64x64 files at 2.5 mm (the paper's low-resolution
#: inputs), the whole inference run at each ``files_per_batch``
FOLDER_BATCH = {"file_shape": [64, 64, 1], "pixdim": [2.5, 2.5, 8.0], "files": 16, "values": [1, 2, 4, 8, 16]}

#: the training step timed beside junyanz/pytorch-CycleGAN-and-pix2pix by ``python -m tools.side_by_side`` (ours:
#: ``scripts/peer_step.py``; the variants turn on the engine base's speed switches, issue 17)
PEER_STEP = {
    "repository": "junyanz/pytorch-CycleGAN-and-pix2pix",
    "harness": "cyclegan_step.py",
    "harness_args": ["--n", "6", "--warmup", "1", "--flops"],
    "ours_args": ["-m", "scripts.peer_step", "--n", "6", "--warmup", "1"],
    "ours_variants": {
        "every switch off": ["--stack_passes", "False", "--fused_optimizer", "False", "--optim_set_to_none", "False"],
        "channels-last": ["--channels_last", "True"],
        "compiled": ["--compile", "True"],
        "channels-last + compiled": ["--channels_last", "True", "--compile", "True"],
    },
    "configuration": "resnet_9blocks ngf 64, PatchGAN 70 ndf 64, instance norm, LSGAN, cycle 10, identity 0.5, "
    "pool 50, 1 channel, 64x64, batch 1, G + D update; ours with train.json's speed switches (stacked passes, fused "
    "Adam, gradients set to None) unless the row says otherwise",
}

#: the benchmark's own data: a seed not used while developing, about 30 test pairs per comparison
DATA_SEED = 2032
N_TRAIN_PAIRS = 10
N_VAL = 4
N_TEST = 30
N_PAIRED = N_TRAIN_PAIRS + N_VAL + N_TEST
N_LGE_ONLY = 36
#: fractions of the paired cases (train, val, test) and the split seed, fixed across training seeds
SPLIT = (N_TRAIN_PAIRS / N_PAIRED, N_VAL / N_PAIRED, N_TEST / N_PAIRED)
SPLIT_SEED = 0
#: MD elevations of the infarct-contrast sweep (FA reduction 4/3 and S0 elevation 1/3 of it); empty by default: on
#: the 2-core CPU each level took 11-15 minutes per training seed at one thread, five processes sharing the cores
#: (two translators and a DTI SSeg), so the sweep is asked for with ``--sweep 0,0.05,0.1,0.2,0.4`` (the script)
#: and is not part of ``tools.benchmark``'s run
SWEEP: tuple[float, ...] = ()

#: (ours, baseline) method pairs compared per test pair: Fig. 7, the premise, and the translators
COMPARISONS = (
    ("CycleGANSeg+SSeg", "DTI SSeg"),
    ("CycleGANSeg+SSeg", "CycleGAN+SSeg"),
    ("CycleGAN+SSeg", "DTI SSeg"),
    ("SSeg on LGE", "DTI SSeg"),
    ("CycleGANSeg", "CycleGAN"),
)

#: the paper's printed numbers: (ours, baseline, metric) -> (their baseline, their ours, where); Fig. 7 is a plot
PAPER_NUMBERS: dict = {}

#: what the merged table's header says about the paper's numbers
PAPER_NOTES = (
    "Fig. 7 of Wang et al. (DTI SSeg vs CycleGAN+SSeg vs CycleGANSeg+SSeg, their private DTI-LGE data) gives its "
    "values only as plots: no number is quoted for it. Their claim: DTI SSeg poor, CycleGAN+SSeg better with more "
    "variance, CycleGANSeg+SSeg best."
)

#: what the merged table's header says about the modes (the quick networks come from configs/quick.json)
MODE_NOTES = {
    "quick": "own data (seed 2032): 10 training / 4 val / 30 test pairs + 36 LGE-only slices; 3 training seeds; "
    "translators configs/quick.json, Segmentor / judge / SwinSSegNets sized and scheduled by QUICK",
    "full": "the configs' defaults (paper settings) on the same data and split",
}

#: overrides of a fresh DDP-scaling run (``python -m tools.benchmark_ddp``): no trained Segmentor exists there, so
#: it times the CycleGAN terms
DDP_OVERRIDES = {"use_segmentor": False}

#: readable names of the metric keys
METRIC_LABELS = {
    "pipeline_dice": "MI Dice 512x512, test pairs",
    "dice_translated_vs_source_lge": "Segmentor Dice translated vs source LGE (the training objective)",
    "dice_translated_vs_truth": "Segmentor Dice translated vs manual mask",
    "dice_judge_translated_vs_source_lge": "judge Dice translated vs source LGE (independent segmenter)",
    "dice_judge_translated_vs_truth": "judge Dice translated vs manual mask",
    "ssim_translated_vs_lge": "SSIM translated vs real LGE",
    "psnr_translated_vs_lge": "PSNR dB translated vs real LGE",
    "inference_seconds": "pipeline inference seconds per DTI stack (inference.json + pipeline.json; one 64x64 test "
    "slice stacked to N slices; the fit: per slice)",
}
_TRANSLATION_METRICS = tuple(k for k in METRIC_LABELS if k not in ("pipeline_dice", "inference_seconds"))
#: slice counts of the inference-scaling rows (one held-out DTI slice stacked to a volume of that many slices)
SCALING_SLICES = (4, 8, 16)

#: training lengths of the quick mode, per stage (the quick translator networks are configs/quick.json; the full
#: mode uses the configs' defaults). "sseg" is the other bundle's SwinSSegNet, sized here; "judge" trains with
#: train_judge.json's architecture for the segmentor's schedule.
QUICK: dict[str, dict[str, Any]] = {
    "segmentor": {"epochs": 80, "val_interval": 5, "lr": 0.003},
    "judge": {"epochs": 40, "val_interval": 5, "lr": 0.003},
    "translator": {"epochs": 30, "lr_decay_epochs": 15, "image_log_interval": 100000},
    "sseg": {
        "feature_size": 12,
        "depths": [1, 1, 1, 1],
        "num_heads": [1, 1, 2, 2],
        "epochs": 21,  # 252 steps: at 84 the LGE SwinSSegNet stayed at "no MI" in 1 of 6 seeds (docs)
        "val_interval": 21,
        "batch_size": 4,
        "lr": 0.002,
    },
}
_SSEG_NET_KEYS = ("feature_size", "depths", "num_heads", "window_size", "patch_size", "encoder", "scale")
_TRANSLATOR_NET_KEYS = ("ngf", "n_blocks", "ndf")
_SEGMENTOR_NET_KEYS = ("segmentor_channels", "segmentor_strides", "segmentor_num_res_units")
DEFAULT_DTI_CHANNELS = ("MD",)
_SWEEP_ARG, _DTI_CHANNELS_ARG = ",".join(str(v) for v in SWEEP), ",".join(DEFAULT_DTI_CHANNELS)  # command-line form


# ----------------------------------------------------------------------------------------------- data
def write_benchmark_data(out: Path, md_elevation: float | None = None, data_seed: int = DATA_SEED) -> Path:
    """The benchmark's DTI_LGE_MI folder under ``out`` (written once): literature infarct contrast, or the sweep's
    ``md_elevation`` with FA reduction ``4/3`` and S0 elevation ``1/3`` of it; ``data_seed`` other than
    :data:`DATA_SEED` only for development (``scripts.schedule_check``)."""
    folder = out / "DTI_LGE_MI"
    if not (folder / ".complete").is_file():
        infarct = None
        if md_elevation is not None:
            e = float(md_elevation)
            infarct = {"md_elevation": e, "fa_reduction": min(0.9, 4 * e / 3), "s0_elevation": e / 3}
        write_dti_lge_mi(out, n_cases=N_PAIRED + N_LGE_ONLY, n_paired=N_PAIRED, seed=data_seed, overwrite=True,
                         workers=0, dti_infarct=infarct)  # fmt: skip
        (folder / ".complete").touch()
    return folder


def _dti_channels(path: str, select: tuple[str, ...]) -> np.ndarray:
    """``(X, Y, 1, C)`` float32 of the selected DTI channels of a DTI_LGE_MI ``DTI.nii.gz`` (``DTI_CHANNELS`` order)."""
    data = np.asarray(nib.load(path).dataobj, dtype=np.float32)
    data = data if data.ndim == 4 else data[..., None]
    return data[..., [DTI_CHANNELS.index(name) for name in select]]


def write_dti_inputs(cases: list[dict], out: Path, select: tuple[str, ...], scale: int = 1) -> list[dict]:
    """The selected DTI channels of each case as ``<out>/<case>_DTI.nii.gz`` (single channel: 3D), repeated
    ``scale`` x ``scale`` onto the mask grid when ``scale > 1`` (the SSeg training config area-downsamples it back to
    the original 64x64 exactly); returns ``[{"image", "label", "case"}]``."""
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for case in cases:
        data, affine = _dti_channels(case["dti"], select), nib.load(case["dti"]).affine
        if scale > 1:
            data = np.repeat(np.repeat(data, scale, axis=0), scale, axis=1)
            affine = super_resolve_affine(torch.as_tensor(affine), scale).numpy()
        data = data[..., 0] if data.shape[-1] == 1 else data
        path = write_nifti(out / f"{case['case']}_DTI.nii.gz", data, affine)
        items.append({"image": str(path), "label": case["mask"], "case": case["case"]})
    return items


def write_lowres_lge(cases: list[dict], out: Path, size: int = 64) -> None:
    """Area-downsampled ``size`` x ``size`` LGE of each case on the coarse grid whose subdivision is the LGE grid
    (the SwinSSegNet bundle's inference input, as its ``scripts.prepare_lowres`` writes it for one split)."""
    out.mkdir(parents=True, exist_ok=True)
    for case in cases:
        write_nifti(out / f"{case['case']}_LGE.nii.gz", *lowres_slice(case["lge"], size))


def mask_dice(masks_dir: Path, cases: list[dict]) -> dict[str, float]:
    """``{case: MI Dice}`` of the one mask per case in ``masks_dir`` (its name starts with the case id) against the
    case's 512x512 manual mask."""
    scores = {}
    for case in cases:
        matches = sorted(masks_dir.glob(f"{case['case']}_*.nii.gz"))
        if len(matches) != 1:
            raise RuntimeError(f"expected one mask for {case['case']} in {masks_dir}, found {len(matches)}.")
        truth = np.asarray(nib.load(case["mask"]).dataobj)
        pred = np.asarray(nib.load(matches[0]).dataobj).reshape(truth.shape[:2])
        scores[case["case"]] = float(dice(pred, truth.reshape(truth.shape[:2]), labels=1))
    return scores


def _translation_scores(eval_dir: Path) -> dict[str, dict[str, float]]:
    """``{metric: {case: value}}`` from the evaluation's ``<metric>_raw.csv`` files (MONAI's ``MetricsSaver``)."""
    scores: dict[str, dict[str, float]] = {}
    for metric in _TRANSLATION_METRICS:
        path = eval_dir / f"{metric}_raw.csv"
        if not path.is_file():
            raise RuntimeError(f"{path} is missing: evaluate.json did not write metric {metric!r}.")
        with open(path, newline="") as handle:
            scores[metric] = {line["filename"]: float(line["mean"]) for line in csv.DictReader(handle)}
    return scores


def same_steps_epochs(batch_size: int, epochs: int, n_reference: int, n_items: int) -> int:
    """Epochs over ``n_items`` samples giving as many optimizer steps as ``epochs`` over ``n_reference``."""
    steps = epochs * math.ceil(n_reference / batch_size)
    return max(1, round(steps / math.ceil(n_items / batch_size)))


# ----------------------------------------------------------------------------------------------- stages
class Stages(StageCache):
    """Runs the bundles' configs for one benchmark; each finished stage is reused unless fresh (:class:`StageCache`)."""

    def __init__(self, out: Path, sseg_root: Path, settings: dict[str, dict[str, Any]], fresh: bool) -> None:
        super().__init__(fresh)
        self.out, self.sseg_root, self.settings = out, sseg_root, settings

    def workflow(self, bundle: Path, files: list[str], workflow_type: str | None, **overrides: Any) -> None:
        self._run(bundle, files, workflow_type, overrides)

    def training_steps(self, bundle: Path, files: list[str], **overrides: Any) -> int:
        """Run a training workflow; the optimizer steps its trainer made (read back, :func:`trainer_steps`)."""
        return trainer_steps(self._run(bundle, files, "train", overrides))

    @staticmethod
    def _run(bundle: Path, files: list[str], workflow_type: str | None, overrides: dict[str, Any]) -> Any:
        return run_workflow(bundle, files, overrides, workflow_type=workflow_type,
                            logging_file=str(bundle / "configs" / "logging.conf"))  # fmt: skip


def _split_keys(shared: dict[str, Any]) -> dict[str, Any]:
    """The data folder and the benchmark's split, for the SwinSSegNet bundle's leak check (the same shared split)."""
    return {"dataset_dir": shared["dataset_dir"], "split": shared["split"]}


def _pick(settings: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k in keys}


def stage_settings(quick: bool, overrides: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    network = read_overlay(BUNDLE_ROOT, QUICK_OVERLAY) if quick else {}
    stage = {k: (dict(v) if quick else {}) for k, v in QUICK.items()}
    stage["translator"] = {**_pick(network, _TRANSLATOR_NET_KEYS), **stage["translator"]}
    for name, values in (overrides or {}).items():
        if name not in stage:
            raise ValueError(f"overrides: unknown stage {name!r}, expected one of {sorted(stage)}.")
        stage[name].update(values)
    return stage


def lge_items(cases: list[dict]) -> list[dict]:
    """SwinSSegNet datalist items of the cases' 512x512 LGE and manual mask."""
    return [{"image": c["lge"], "label": c["mask"], "case": c["case"]} for c in cases]


def dti_items(split: dict, out: Path, select: tuple[str, ...]) -> tuple[list[dict], list[dict]]:
    """DTI SSeg's training and validation items: the selected DTI channels of the training and validation pairs,
    repeated onto the mask grid under ``out`` (:func:`write_dti_inputs`)."""
    train = write_dti_inputs(split["pair_train"], out, select, scale=8)
    return train, write_dti_inputs(split["val"], out, select, scale=8)


def channel_overrides(select: tuple[str, ...] | None) -> dict[str, list[str]]:
    """The SwinSSegNet bundle's overrides for inputs holding the DTI channels ``select`` (none for LGE)."""
    return {"image_channel_names": list(select), "image_channels": list(select)} if select else {}


def train_sseg(
    st: Stages, shared: dict, seed: int, schedule: dict[str, Any], items: tuple[list[dict], list[dict]], base: Path,
    log_dir: Path, select: tuple[str, ...] | None = None,
) -> int:  # fmt: skip
    """Train a SwinSSegNet from scratch (no U-SSL weights) with the SwinSSegNet bundle's train.json on the
    (training, validation) ``items``, ``schedule`` being the "sseg" settings with its epochs; weights in ``base``.
    Returns the optimizer steps its trainer made."""
    train, val = items
    return st.training_steps(st.sseg_root, ["train.json"], **_split_keys(shared), seed=seed, resume=False,
                             use_ssl_pretrained=False, **schedule, train_datalist=train, val_datalist=val,
                             ckpt_dir=str(base), output_dir=str(log_dir), **channel_overrides(select))  # fmt: skip


def score_sseg(
    st: Stages, inputs: Path, weights: Path, masks: Path, cases: list[dict], select: tuple[str, ...] | None = None
) -> dict[str, float]:
    """``{case: MI Dice}`` of the SwinSSegNet in ``weights`` run by the bundle's inference.json on the folder
    ``inputs`` (64x64 LGE, or DTI holding the channels ``select``), its 512x512 masks written to ``masks``."""
    st.workflow(st.sseg_root, ["inference.json"], "infer", **_pick(st.settings["sseg"], _SSEG_NET_KEYS),
                dataset_dir=str(inputs), ckpt_dir=str(weights), output_dir=str(masks), overwrite=True,
                **channel_overrides(select))  # fmt: skip
    return mask_dice(masks, cases)


def _sseg_batch_and_epochs(sseg_root: Path, sseg: dict[str, Any]) -> tuple[int, int]:
    defaults = json.loads((sseg_root / "configs" / "train.json").read_text())
    return int(sseg.get("batch_size", defaults["batch_size"])), int(sseg.get("epochs", defaults["epochs"]))


def _lge_models(st: Stages, dataset_dir: Path, split: dict, seed: int, shared: dict) -> dict[str, Any]:
    """The seed's Segmentor, judge and LGE SwinSSegNet (independent of the DTI contrast), and SSeg on the test LGE."""
    base = st.out / f"seed{seed}"
    seg, judge = st.settings["segmentor"], st.settings["judge"]
    segmentor_net = _pick(seg, _SEGMENTOR_NET_KEYS)
    st.once(base / "segmentor", "segmentor", lambda: st.workflow(
        BUNDLE_ROOT, ["train.json", "train_segmentor.json"], "train", **shared, **seg,
        ckpt_dir=str(base / "segmentor"), output_dir=str(base / "logs" / "segmentor")))  # fmt: skip
    st.once(base / "judge", "judge", lambda: st.workflow(
        BUNDLE_ROOT, ["train.json", "train_segmentor.json", "train_judge.json"], "train", **shared, **judge,
        ckpt_dir=str(base / "judge"), output_dir=str(base / "logs" / "judge")))  # fmt: skip
    lge = (lge_items(split["lge_train"]), lge_items(split["val"]))
    sseg_steps = st.once(base / "sseg_lge", "sseg_lge", lambda: train_sseg(
        st, shared, seed, st.settings["sseg"], lge, base / "sseg_lge", base / "logs" / "sseg_lge"))  # fmt: skip

    def sseg_on_lge() -> dict[str, float]:
        write_lowres_lge(split["test"], base / "lge_test_64")
        return score_sseg(st, base / "lge_test_64", base / "sseg_lge", base / "masks_sseg_on_lge", split["test"])

    return {
        "segmentor_path": str(base / "segmentor" / "segmentor.pt"),
        "judge_path": str(base / "judge" / "judge.pt"),
        "segmentor_net": segmentor_net,
        "sseg_weights": str(base / "sseg_lge" / "model.pt"),
        "sseg_on_lge": st.once(base / "sseg_on_lge", "infer_sseg_on_lge", sseg_on_lge),
        "n_lge_train": len(lge[0]),
        "sseg_steps": sseg_steps,  # None for a training stored by a run before the steps were recorded
    }


def run_pipeline(
    st: Stages, translator: Path, sseg_weights: str, inputs: Path, masks: Path, select: tuple[str, ...]
) -> None:
    """The paper's pipeline as users run it (``inference.json`` + ``pipeline.json``): the DTI files of ``inputs``
    translated by the translator in ``translator`` and segmented 8x by the SwinSSegNet ``sseg_weights``, masks written
    to ``masks`` (replaced)."""
    translator_net = _pick(st.settings["translator"], _TRANSLATOR_NET_KEYS)
    sseg_net = _pick(st.settings["sseg"], _SSEG_NET_KEYS)
    st.workflow(BUNDLE_ROOT, ["inference.json", "pipeline.json"], "infer", **translator_net,
                **{f"sseg_{k}": v for k, v in sseg_net.items()}, dti_channels=list(select),
                dti_channel_names=list(select),  # the test files hold the selected channels only
                dataset_dir=str(inputs), ckpt_dir=str(translator), sseg_bundle_root=str(st.sseg_root),
                sseg_weights=sseg_weights, output_dir=str(masks), overwrite=True)  # fmt: skip


def _inference_scaling(st: Stages, test_dti: Path, translator: Path, sseg_weights: str, select: tuple[str, ...],
                       out: Path) -> dict[str, Any]:  # fmt: skip
    """The pipeline (:func:`run_pipeline`: 64x64 DTI -> LGE style -> 512x512 MI mask) on one held-out DTI slice
    ``test_dti`` stacked to 4, 8 and 16 slices: seconds per volume and the fitted seconds per slice
    (``common.benchmarking.slice_scaling``; config parsing and loading both networks are in the intercept)."""
    import shutil

    from common.benchmarking import slice_scaling, write_tiled_volume

    def run(n: int) -> None:
        folder = out / f"slices_{n}"
        shutil.rmtree(folder, ignore_errors=True)
        write_tiled_volume(str(test_dti), n, 2, str(folder / "in" / "case_DTI.nii.gz"))
        run_pipeline(st, translator, sseg_weights, folder / "in", folder / "out", select)

    return slice_scaling(run, SCALING_SLICES, json_path=out / "scaling.json")


def _dti_pipelines(
    st: Stages, dataset_dir: Path, split: dict, seed: int, shared: dict, lge: dict, base: Path,
    select: tuple[str, ...],
) -> dict[str, Any]:  # fmt: skip
    """CycleGAN and CycleGANSeg (with their evaluation), DTI SSeg, and the three pipelines on the test DTI."""
    translator_net = _pick(st.settings["translator"], _TRANSLATOR_NET_KEYS)
    sseg = st.settings["sseg"]
    translation: dict[str, Any] = {}
    for name, use_segmentor in (("cyclegan", False), ("cycleganseg", True)):
        args = dict(**shared, **translator_net, **lge["segmentor_net"], ckpt_dir=str(base / name),
                    segmentor_path=lge["segmentor_path"], judge_path=lge["judge_path"], use_segmentor=use_segmentor,
                    dti_channels=list(select))  # fmt: skip
        st.once(base / name, name, lambda args=args, name=name: st.workflow(
            BUNDLE_ROOT, ["train.json"], "train", **{**args, **st.settings["translator"]},
            output_dir=str(base / "logs" / name)))  # fmt: skip

        def evaluate(args: dict = args, name: str = name) -> dict:
            st.workflow(BUNDLE_ROOT, ["train.json", "evaluate.json"], None, **args,
                        output_dir=str(base / f"eval_{name}"))  # fmt: skip
            return _translation_scores(base / f"eval_{name}")

        translation[name] = st.once(base / f"eval_{name}", f"eval_{name}", evaluate)

    batch_size, epochs = _sseg_batch_and_epochs(st.sseg_root, sseg)
    dti_epochs = same_steps_epochs(batch_size, epochs, lge["n_lge_train"], len(split["pair_train"]))

    dti_steps = st.once(base / "sseg_dti", "sseg_dti", lambda: train_sseg(
        st, shared, seed, {**sseg, "epochs": dti_epochs}, dti_items(split, base / "dti_x8", select),
        base / "sseg_dti", base / "logs" / "sseg_dti", select))  # fmt: skip
    dti_test = base / "dti_test"

    def pipeline(name: str) -> dict[str, float]:
        write_dti_inputs(split["test"], dti_test, select)
        masks = base / f"masks_{name}"
        if name == "dti_sseg":
            return score_sseg(st, dti_test, base / "sseg_dti", masks, split["test"], select)
        run_pipeline(st, base / name.removesuffix("_sseg"), lge["sseg_weights"], dti_test, masks, select)
        return mask_dice(masks, split["test"])

    pipelines = {
        label: st.once(base / f"pipeline_{name}", f"pipeline_{name}", lambda name=name: pipeline(name))
        for name, label in (("dti_sseg", "DTI SSeg"), ("cyclegan_sseg", "CycleGAN+SSeg"),
                            ("cycleganseg_sseg", "CycleGANSeg+SSeg"))
    }  # fmt: skip
    return {
        "translation": translation,
        "pipelines": pipelines,
        "dti_sseg_epochs": dti_epochs,
        "dti_sseg_steps": dti_steps,
    }


# ----------------------------------------------------------------------------------------------- run
def _row(method: str, metric: str, per_seed: dict[int, dict[str, float]], seconds: float | None) -> BenchmarkRow:
    """Per-case mean over the seeds, each seed's values kept in ``per_seed``."""
    return BenchmarkRow.from_seeds(method, metric, per_seed, seconds=seconds)


def _plot_sweep(levels: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for label, marker in (("DTI SSeg", "o"), ("CycleGAN+SSeg", "s"), ("CycleGANSeg+SSeg", "^")):
        x = [100 * level["md_elevation"] for level in levels]
        means = [level["means"][label] for level in levels]
        errors = [level["sems"][label] for level in levels]
        axis.errorbar(x, means, yerr=errors, marker=marker, capsize=3, label=label)
    axis.set_xlabel("infarct MD elevation in DTI (%) [FA reduction 4/3 of it]")
    axis.set_ylabel(f"MI Dice 512x512 ({N_TEST} test pairs, mean +- SEM)")
    axis.set_title("Fig. 7 pipelines against the DTI infarct contrast (phantom)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run(
    data_root: str | None = None,
    out_dir: str = "eval/benchmark",
    quick: bool = True,
    seeds: tuple[int, ...] | str = (0, 1, 2),
    sweep: tuple[float, ...] | str | None = SWEEP,
    dti_channels: tuple[str, ...] | str = DEFAULT_DTI_CHANNELS,
    overrides: dict[str, dict[str, Any]] | None = None,
    sseg_bundle_root: str | None = None,
    fresh: bool = False,
    seedless: bool = True,
) -> list[dict]:
    """Train and score every model per seed, then the sweep; write tables and per-case CSVs; return the rows.

    Args:
        data_root: not read (``tools.benchmark`` passes it): the benchmark writes its own data under
            ``<out_dir>/data`` (``DATA_SEED``).
        out_dir: output folder (models, logs, masks, tables).
        quick: small networks and schedules (:data:`QUICK`, ``configs/quick.json``) instead of the configs' defaults.
        seeds: training seeds of the main comparison.
        sweep: MD elevations of the contrast sweep (every seed of ``seeds``); empty or ``None`` skips it.
        dti_channels: DTI channels the translators and DTI SSeg read (names of ``DTI_CHANNELS``).
        overrides: extra config overrides per stage ("segmentor", "judge", "translator", "sseg").
        sseg_bundle_root: root of the ``lge_mi_sr_segmentation`` bundle (``tools.benchmark`` passes it).
        fresh: retrain every stage instead of reusing finished ones.
        seedless: time the pipeline's inference against the number of slices (with the first seed's CycleGANSeg and
            SwinSSegNet); ``tools.benchmark --seed_processes`` passes False to every seed's process but the first.

    Returns:
        :class:`common.benchmarking.BenchmarkRow` dicts of the main comparison, values per test pair.
    """
    from common.bundle_root import require_bundle_root

    sseg_root = Path(
        require_bundle_root(sseg_bundle_root, "sseg_bundle_root", "the lge_mi_sr_segmentation bundle (SwinSSegNet)")
    )
    seeds = int_tuple(seeds)
    if isinstance(sweep, (int, float)):  # fire reads "--sweep 0.2" as a number
        sweep = (sweep,)
    if isinstance(sweep, str):
        sweep = tuple(float(v) for v in sweep.strip("()[]").split(",") if v.strip())
    sweep = tuple(float(v) for v in (sweep or ()))
    select = (dti_channels,) if isinstance(dti_channels, str) and "," not in dti_channels else dti_channels
    select = tuple(v.strip() for v in (select.split(",") if isinstance(select, str) else select))
    unknown = [name for name in select if name not in DTI_CHANNELS]
    if unknown or not select:
        raise ValueError(f"dti_channels must be names of {DTI_CHANNELS}, got {select}.")
    out = Path(out_dir).resolve()
    st = Stages(out, sseg_root, stage_settings(quick, overrides), fresh)
    with Timer() as timer:
        dataset_dir = write_benchmark_data(out / "data")
    st.seconds["data"] = timer.seconds
    split = dti_lge_mi_split(dti_lge_mi_cases(dataset_dir), fractions=SPLIT, seed=SPLIT_SEED)
    counts = {k: len(v) for k, v in split.items()}
    if counts["test"] != N_TEST or counts["val"] != N_VAL:
        raise RuntimeError(f"split gave {counts}, expected {N_TEST} test and {N_VAL} val pairs.")
    logger.info("benchmark split %s", counts)

    results: dict[int, dict] = {}
    lge_models: dict[int, dict] = {}
    for seed in seeds:
        shared = {"dataset_dir": str(dataset_dir), "split": split, "seed": seed, "resume": False}
        lge_models[seed] = _lge_models(st, dataset_dir, split, seed, shared)
        results[seed] = _dti_pipelines(st, dataset_dir, split, seed, shared, lge_models[seed],
                                       out / f"seed{seed}" / "literature", select)  # fmt: skip

    seconds = st.seconds
    rows = []
    for label in ("DTI SSeg", "CycleGAN+SSeg", "CycleGANSeg+SSeg"):
        rows.append(_row(label, "pipeline_dice", {s: results[s]["pipelines"][label] for s in seeds}, None))
    rows.append(_row("SSeg on LGE", "pipeline_dice", {s: lge_models[s]["sseg_on_lge"] for s in seeds}, None))
    for name, label in (("cyclegan", "CycleGAN"), ("cycleganseg", "CycleGANSeg")):
        for metric in _TRANSLATION_METRICS:
            rows.append(_row(label, metric, {s: results[s]["translation"][name][metric] for s in seeds}, None))
    for row in rows:
        row.peak_rss_mb = peak_rss_mb()
    if seedless:
        base = out / f"seed{seeds[0]}" / "literature"
        test_dti = base / "dti_test" / f"{split['test'][0]['case']}_DTI.nii.gz"
        with Timer() as timer:
            scaling = _inference_scaling(st, test_dti, base / "cycleganseg", lge_models[seeds[0]]["sseg_weights"],
                                         select, out / "scaling")  # fmt: skip
        st.seconds["inference scaling"] = timer.seconds
        rows += slice_scaling_rows("CycleGANSeg+SSeg inference", scaling)
    write_cases_csv(rows, out / "cases.csv")

    levels = []
    for e in sweep:
        level_data = write_benchmark_data(out / "sweep" / f"md{round(100 * e):03d}" / "data", md_elevation=e)
        level_split = dti_lge_mi_split(dti_lge_mi_cases(level_data), fractions=SPLIT, seed=SPLIT_SEED)
        per_seed = {}
        for seed in seeds:
            shared = {"dataset_dir": str(level_data), "split": level_split, "seed": seed, "resume": False}
            base = out / "sweep" / f"md{round(100 * e):03d}" / f"seed{seed}"
            level = _dti_pipelines(st, level_data, level_split, seed, shared, lge_models[seed], base, select)
            per_seed[seed] = level["pipelines"]
        levels.append(sweep_level(e, per_seed))
    if levels:
        _write_sweep(levels, out)

    note = (
        f"Own phantom data (seed {DATA_SEED}): {counts['pair_train']} training / {counts['val']} val / "
        f"{counts['test']} test pairs, {counts['lge_train']} LGE training slices (Segmentor {counts['segmentor']}, "
        f"judge {counts['judge']}); DTI channels {', '.join(select)}; seeds {list(seeds)}; "
        f"{'quick' if quick else 'full'} mode. Per-case values are means over the seeds (cases.csv). Seconds of each "
        f"stage in benchmark_details.json, on {machine_summary()}; peak RSS {peak_rss_mb():.0f} MiB."
    )
    summary = [
        {"method": r.method, "metric": METRIC_LABELS[r.metric], "mean": r.mean, "std": r.std, "n": len(r.values)}
        for r in rows
    ]
    write_table(summary, str(out), name="benchmark", title="DTI -> MI mask pipelines (paper Fig. 7)", note=note)
    details = {
        "rows": [r.to_dict() for r in rows],
        "seconds": seconds,
        "split": {k: [c["case"] for c in v] for k, v in split.items()},
        "quick": bool(quick),
        "stage_settings": st.settings,
        "dti_sseg_epochs": {s: results[s]["dti_sseg_epochs"] for s in seeds},
        "sseg_steps": {s: {"LGE SwinSSegNet": lge_models[s]["sseg_steps"], "DTI SSeg": results[s]["dti_sseg_steps"]}
                       for s in seeds},  # fmt: skip
        "dti_channels": list(select),
        "sweep": [{k: v for k, v in level.items() if k not in ("cases", "per_seed")} for level in levels],
        "machine": machine_summary(),
        "peak_rss_mb": peak_rss_mb(),
    }
    (out / "benchmark_details.json").write_text(json.dumps(details, indent=2))
    return [r.to_dict() for r in rows]


#: the sweep's paired comparisons per level: (ours, baseline)
SWEEP_COMPARISONS = (
    ("CycleGANSeg+SSeg", "DTI SSeg"),
    ("CycleGAN+SSeg", "DTI SSeg"),
    ("CycleGANSeg+SSeg", "CycleGAN+SSeg"),
)


def sweep_level(md_elevation: float, per_seed: dict[int, dict[str, dict[str, float]]]) -> dict[str, Any]:
    """One sweep level from each seed's ``{pipeline: {case: MI Dice}}``: per pipeline the per-pair mean over the seeds
    (``cases``), its mean and SEM over the pairs, and each seed's values (``per_seed``)."""
    rows = {label: _seed_row(label, label, per_seed) for label in next(iter(per_seed.values()))}
    return {
        "md_elevation": float(md_elevation),
        "seeds": sorted(int(s) for s in per_seed),
        "per_seed": per_seed,
        "cases": {label: dict(row.values) for label, row in rows.items()},
        "means": {label: row.mean for label, row in rows.items()},
        "sems": {label: row.sem for label, row in rows.items()},
    }


def sweep_comparisons(level: dict) -> dict[tuple[str, str], Any]:
    """Per level, each of :data:`SWEEP_COMPARISONS` paired over the test pairs (bootstrap 95 % interval, Wilcoxon p,
    and the seeds' agreement: with one seed the verdict carries "(seeds not checked)")."""
    rows = {label: _sweep_row(label, label, level) for label in level["cases"]}
    return {(a, b): compare(rows[a], rows[b]) for a, b in SWEEP_COMPARISONS}


def _seed_row(method: str, label: str, per_seed: dict[int, dict[str, dict[str, float]]]) -> BenchmarkRow:
    """Pipeline ``label``'s per-pair MI Dice over the seeds, as a row named ``method`` (each seed's values kept)."""
    return BenchmarkRow.from_seeds(method, "pipeline_dice", {s: pipelines[label] for s, pipelines in per_seed.items()})


def _sweep_row(method: str, label: str, level: dict) -> BenchmarkRow:
    """Pipeline ``label``'s per-pair MI Dice at one sweep level, as a row named ``method``."""
    return _seed_row(method, label, level["per_seed"])


def _write_sweep(levels: list[dict], out: Path) -> None:
    """``sweep.md`` (means +- SEM per level and pipeline, then the paired comparisons), ``sweep_cases.csv`` (every
    test pair) and ``sweep.png``."""
    labels = ("DTI SSeg", "CycleGAN+SSeg", "CycleGANSeg+SSeg")
    lines = [
        "# Fig. 7 pipelines against the DTI infarct contrast",
        "",
        f"Same subjects, only the infarct's diffusion contrast rewritten (FA reduction 4/3, S0 elevation 1/3 of the "
        f"MD elevation); training seeds {levels[0]['seeds']}; MI Dice of the 512x512 mask (per test pair the mean "
        f"over the seeds), mean +- SEM over {len(next(iter(levels[0]['cases'].values())))} test pairs. Each seed's "
        "per-pair values: sweep_cases.csv.",
        "",
        "| MD elevation | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for level in levels:
        cells = [f"{level['means'][k]:.3f} +- {level['sems'][k]:.3f}" for k in labels]
        lines.append(f"| {100 * level['md_elevation']:.0f} % | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Paired differences per level (mean over the test pairs, bootstrap 95 % interval, Wilcoxon p; an ordering "
        'only where the interval excludes 0 and every seed agrees, "(seeds not checked)" with one seed):',
        "",
        "| MD elevation | comparison | difference [95 % CI] | Wilcoxon p | ordering |",
        "|---|---|---|---|---|",
    ]
    for level in levels:
        for (a, b), c in sweep_comparisons(level).items():
            lines.append(
                f"| {100 * level['md_elevation']:.0f} % | {a} - {b} | {c.interval_text()} | {c.wilcoxon_p:.2g} | "
                f"{c.verdict} |"
            )
    lines += [
        "",
        f"Each pipeline against itself at the lowest level ({100 * levels[0]['md_elevation']:.0f} %: with 0 % the DTI "
        "holds no infarct signal, so that level is the floor a positional prior reaches); the subjects and test pairs "
        "are the same at every level, so the differences are paired:",
        "",
        "| pipeline | MD elevation vs lowest | difference [95 % CI] | Wilcoxon p | ordering |",
        "|---|---|---|---|---|",
    ]
    for label in labels:
        floor = _sweep_row(f"{label} at {100 * levels[0]['md_elevation']:.0f} %", label, levels[0])
        for level in levels[1:]:
            c = compare(_sweep_row(f"{label} at {100 * level['md_elevation']:.0f} %", label, level), floor)
            lines.append(
                f"| {label} | {100 * level['md_elevation']:.0f} % | {c.interval_text()} | {c.wilcoxon_p:.2g} | "
                f"{c.verdict} |"
            )
    (out / "sweep.md").write_text("\n".join(lines) + "\n")
    with open(out / "sweep_cases.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["md_elevation", "seed", "pipeline", "case", "value"])
        for level in levels:
            for seed in level["seeds"]:
                for label in labels:
                    for case, value in sorted(level["per_seed"][seed][label].items()):
                        writer.writerow([level["md_elevation"], seed, label, case, repr(float(value))])
    _plot_sweep(levels, out / "sweep.png")


def main(
    out: str = "eval/benchmark",
    quick: bool = True,
    seeds: str = "0,1,2",
    sweep: str = _SWEEP_ARG,
    dti_channels: str = _DTI_CHANNELS_ARG,
    overrides: dict[str, dict[str, Any]] | None = None,
    sseg_bundle_root: str | None = None,
    fresh: bool = False,
) -> None:
    """Command line: ``python -m scripts.benchmark --out eval/benchmark --sseg_bundle_root ../lge_mi_sr_segmentation``
    (from the bundle root)."""
    quick, fresh = as_flag(quick, "quick"), as_flag(fresh, "fresh")  # `--quick false` arrives as a string
    rows = run(None, out, quick=quick, seeds=seeds, sweep=sweep, dti_channels=dti_channels, overrides=overrides,
               sseg_bundle_root=sseg_bundle_root, fresh=fresh)  # fmt: skip
    print((Path(out) / "benchmark.md").read_text())
    print(f"{len(rows)} rows written to {Path(out).resolve()}/benchmark.json")


if __name__ == "__main__":
    fire.Fire(main)
