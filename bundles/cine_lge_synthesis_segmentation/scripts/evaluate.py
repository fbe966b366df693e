"""Score PSCGAN on labelled cases: Table 1 (segmentation and synthesis) and Table 2 (clinical agreement) per case.

``evaluate`` runs the trained cascade on each case's cine stack and compares its segmentation with the label and its
LGE-equivalent image with the real LGE (both scaled per slice to [-1, 1] as in training), then the clinical read-out
(``scripts.clinical.analyse_stack``) of prediction and truth. It writes, in ``output_dir``:

- ``slices.csv``: per slice, overall pixel accuracy, per-class accuracy/sensitivity/specificity and Dice (classes 1-3,
  empty-vs-empty = 1), SSIM, PSNR and NRMSE of the synthesis (inside the heart-centred crop);
- ``cases.csv``: per case, the means of its slices plus scar size, scar ratio (predicted and true) and ``scar_auc``,
  the ROC AUC of the predicted scar probability over the true scar against the true healthy myocardium of all its
  slices (threshold-free: does the network rank scarred wall above healthy wall; empty for a scar-free case);
- ``segments.csv``: per AHA segment, predicted and true scar presence and transmurality, and the segment's mean
  predicted scar probability over its predicted myocardium (``scar_score_pred``);
- ``summary.json``: the cohort's means, Pearson r and Bland-Altman bias / limits of agreement of scar size and
  ratio, and segment-level localisation and transmurality sensitivity / specificity (at the 5 % and 50 % scar
  fractions of the predicted label map) and AUC (of ``scar_score_pred``: Table 2's third column), and
  ``bland_altman_scar_size_mm2.png`` / ``bland_altman_scar_ratio.png``.
"""

from __future__ import annotations

__all__ = ["predict_stack", "evaluate", "paired_segments", "SLICE_METRICS", "CLASS_PIXEL_METRICS"]

import json
import os
from typing import Any

import nibabel as nib
import numpy as np
import torch
from common.constants import PSCGAN_LABELS
from common.data import file_slice_axis
from common.flags import as_flag
from common.inferers import CineSliceInferer
from common.metrics import (
    bland_altman_plot,
    cohort_agreement,
    dice,
    masked_nrmse,
    masked_psnr,
    masked_ssim,
    pixel_classification,
    roc_auc,
    scar_auc,
    segment_detection,
)
from common.transforms import permute_affine_axes, scale_slices_percentile, slices_last_order
from scripts.clinical import analyse_stack, write_rows

#: per-slice metrics (Table 1)
SLICE_METRICS = (
    "accuracy", "sensitivity", "specificity", "accuracy_1", "accuracy_2", "accuracy_3", "sensitivity_1",
    "sensitivity_2", "sensitivity_3", "specificity_1", "specificity_2", "specificity_3", "dice_blood", "dice_myo",
    "dice_scar", "dice_mean", "ssim", "psnr", "nrmse",
)  # fmt: skip
#: Table 1's per-class pixel columns (one-vs-rest, classes 1-3: blood pool, healthy myocardium, scar)
CLASS_PIXEL_METRICS = tuple(f"{kind}_{c}" for kind in ("accuracy", "sensitivity", "specificity") for c in (1, 2, 3))
_CLASS_NAMES = {1: "blood", 2: "myo", 3: "scar"}
#: the label of the scar and of the healthy myocardium (CineLGE's classes)
SCAR, MYOCARDIUM = PSCGAN_LABELS["scar"], PSCGAN_LABELS["myocardium"]


def _load(path: str, axis: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The file's voxels and affine with its spatial ``axis`` (the stack's slice axis) moved third, the affine's
    columns with it (``common.transforms.SlicesLastd``'s layout); a 4th (time) axis stays last."""
    image = nib.load(path)
    data, affine = np.asarray(image.dataobj, dtype=np.float32), np.asarray(image.affine, dtype=np.float64)
    order = slices_last_order(axis)
    if axis != 2:
        data = np.ascontiguousarray(data.transpose(*order, *range(3, data.ndim)))
        affine = permute_affine_axes(affine, order)
    return data, affine


@torch.no_grad()
def predict_stack(
    network: torch.nn.Module,
    cine: np.ndarray,
    percentiles: tuple[float, float] = (1.0, 99.0),
    slices_per_batch: int = 16,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """``(X, Y, S, T)`` cine -> ``(C, X, Y, S)``: class probabilities then the LGE-equivalent image (the cascade's
    layout), each slice scaled to [-1, 1] first as in training."""
    x = torch.as_tensor(cine).permute(3, 0, 1, 2)  # (T, X, Y, S) as LoadImaged gives it
    x = scale_slices_percentile(x, *percentiles)
    out = CineSliceInferer(slices_per_batch)(x[None].to(device), network.eval())
    return out[0].cpu().numpy()


def _finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float (nested in dicts and lists) replaced by ``None``."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _mean_of_defined(values: list[float]) -> float:
    """The mean of the values that are not nan; nan (without numpy's empty-slice warning) when none is: a class
    absent from every slice of a case (a scar-free patient) has no sensitivity to average."""
    defined = [v for v in values if not np.isnan(v)]
    return float(np.mean(defined)) if defined else float("nan")


def _slice_scores(pred: np.ndarray, truth: np.ndarray, synthesis: np.ndarray, lge: np.ndarray, n: int) -> dict:
    scores = pixel_classification(pred, truth, n)
    out = {k: scores[k] for k in ("accuracy", "sensitivity", "specificity", *CLASS_PIXEL_METRICS)}
    values = dice(pred, truth, labels=[1, 2, 3])
    for label, value in zip((1, 2, 3), values):
        out[f"dice_{_CLASS_NAMES[label]}"] = float(value)
    out["dice_mean"] = float(np.mean(values))
    # synthesis and LGE in [-1, 1] -> [0, 1] (data range 1), over the whole heart-centred crop
    a, b = (synthesis + 1.0) / 2.0, (lge + 1.0) / 2.0
    out["ssim"] = float(masked_ssim(a, b, data_range=1.0))
    out["psnr"] = float(masked_psnr(a, b, data_range=1.0))
    out["nrmse"] = float(masked_nrmse(a, b))
    return out


def paired_segments(case: str, pred_segments: list[dict], true_segments: list[dict]) -> list[dict]:
    """One row per AHA segment of the truth (``analyse_stack``'s rows, keyed by slice and segment): its scar and
    transmurality flags against the prediction's in the same segment. A truth segment the prediction has no row for
    (e.g. no predicted myocardium on that slice) counts as predicted without scar: a missed scar is a false negative,
    not left out of the sensitivity, and scores 0 (``scar_score_pred``, the segment's mean scar probability when the
    prediction rows carry ``scar_score``)."""
    pred_by_key = {(r["slice"], r["segment"]): r for r in pred_segments}
    missing = {"has_scar": False, "transmural": False}
    rows = []
    for t in true_segments:
        r = pred_by_key.get((t["slice"], t["segment"]), missing)
        score = r.get("scar_score", float("nan"))  # none without a prediction row or a scar probability: 0
        rows.append(
            {"case": case, "slice": t["slice"], "segment": t["segment"], "has_scar_pred": r["has_scar"],
             "has_scar_true": t["has_scar"], "transmural_pred": r["transmural"], "transmural_true": t["transmural"],
             "scar_score_pred": 0.0 if np.isnan(score) else score}
        )  # fmt: skip
    return rows


def evaluate(
    network: torch.nn.Module,
    cases: list[dict[str, str]],
    output_dir: str,
    n_frames: int = 25,
    image_size: int = 64,
    num_classes: int = 4,
    percentiles: tuple[float, float] = (1.0, 99.0),
    overwrite: bool = False,
    slices_per_batch: int = 16,
    device: str | torch.device = "cpu",
    rv_fallback_angle: float = np.pi,
    write_plots: bool = True,
    static_cine: bool = False,
) -> dict[str, Any]:
    """Score ``cases`` (``{"case", "cine", "lge", "label"}``); returns ``{"slices", "cases", "segments",
    "summary"}`` (rows as written). Refuses to overwrite an earlier evaluation unless ``overwrite``. ``static_cine``
    feeds every frame as the end-diastolic one (the benchmark's no-motion premise check, as training saw it)."""
    summary_path = os.path.join(output_dir, "summary.json")
    if os.path.exists(summary_path) and not as_flag(overwrite, "overwrite"):
        raise FileExistsError(f"{summary_path} exists from an earlier evaluation; set --overwrite true to replace it.")
    os.makedirs(output_dir, exist_ok=True)
    slice_rows, case_rows, segment_rows = [], [], []
    for case in cases:
        axis = file_slice_axis(case["cine"])  # a stack stored (S, X, Y, T) is scored as (X, Y, S, T)
        cine, affine = _load(case["cine"], axis)
        if cine.ndim != 4 or cine.shape[3] != n_frames or cine.shape[:2] != (image_size, image_size):
            raise ValueError(
                f"{case['cine']}: shape {cine.shape}; expected ({image_size}, {image_size}, slices, {n_frames})."
            )
        if static_cine:
            cine = np.repeat(cine[..., :1], cine.shape[3], axis=3)
        lge, _ = _load(case["lge"], axis)
        truth = np.rint(_load(case["label"], axis)[0]).astype(np.int64)
        out = predict_stack(network, cine, percentiles, slices_per_batch, device)
        pred = out[:num_classes].argmax(0)
        synthesis = out[num_classes]
        lge_scaled = scale_slices_percentile(torch.as_tensor(lge)[None], *percentiles)[0].numpy()
        rows = []
        for k in range(cine.shape[2]):
            row = {"case": case["case"], "slice": k}
            row.update(_slice_scores(pred[..., k], truth[..., k], synthesis[..., k], lge_scaled[..., k], num_classes))
            rows.append(row)
        slice_rows += rows
        cine_ed = cine[..., 0]  # the RV search for the AHA segments
        pred_case, pred_segments = analyse_stack(case["case"], pred, cine_ed, affine, rv_fallback_angle, out[SCAR])
        true_case, true_segments = analyse_stack(case["case"], truth, cine_ed, affine, rv_fallback_angle)
        case_row = {"case": case["case"]}
        case_row.update({m: _mean_of_defined([r[m] for r in rows]) for m in SLICE_METRICS})
        case_row["scar_auc"] = scar_auc(out[SCAR], truth == SCAR, truth == MYOCARDIUM)
        for key in ("scar_size_mm2", "scar_ratio"):
            case_row[f"{key}_pred"] = pred_case[key]
            case_row[f"{key}_true"] = true_case[key]
        case_rows.append(case_row)
        segment_rows += paired_segments(case["case"], pred_segments, true_segments)
    summary: dict[str, Any] = {"n_cases": len(case_rows), "n_slices": len(slice_rows)}
    summary.update({m: _mean_of_defined([r[m] for r in slice_rows]) for m in SLICE_METRICS})
    aucs = [r["scar_auc"] for r in case_rows if np.isfinite(r["scar_auc"])]
    summary["scar_auc"] = float(np.mean(aucs)) if aucs else float("nan")  # over the cases with scar
    for key in ("scar_size_mm2", "scar_ratio"):
        pred_values = np.array([r[f"{key}_pred"] for r in case_rows], dtype=np.float64)
        true_values = np.array([r[f"{key}_true"] for r in case_rows], dtype=np.float64)
        keep = np.isfinite(pred_values) & np.isfinite(true_values)
        summary[key] = cohort_agreement(pred_values[keep], true_values[keep])
        if write_plots and keep.sum() >= 2:
            bland_altman_plot(
                pred_values[keep], true_values[keep], os.path.join(output_dir, f"bland_altman_{key}.png"),
                title=f"PSCGAN vs truth: {key}", unit="mm^2" if "size" in key else "fraction", overwrite=overwrite,
            )  # fmt: skip
    # Table 2's AUC: the segments' mean scar probability, threshold-free (the flags are one threshold)
    scores = np.array([r["scar_score_pred"] for r in segment_rows], dtype=np.float64)
    for flag in ("has_scar", "transmural"):
        pred_flags = np.array([r[f"{flag}_pred"] for r in segment_rows], dtype=bool)
        true_flags = np.array([r[f"{flag}_true"] for r in segment_rows], dtype=bool)
        summary[f"segment_{flag}"] = segment_detection(pred_flags, true_flags)
        summary[f"segment_{flag}"]["auc"] = roc_auc(scores[true_flags], scores[~true_flags])
    write_rows(os.path.join(output_dir, "slices.csv"), ("case", "slice", *SLICE_METRICS), slice_rows)
    write_rows(os.path.join(output_dir, "cases.csv"), tuple(case_rows[0]) if case_rows else ("case",), case_rows)
    segment_fields = ("case", "slice", "segment", "has_scar_pred", "has_scar_true", "transmural_pred",
                      "transmural_true", "scar_score_pred")  # fmt: skip
    write_rows(os.path.join(output_dir, "segments.csv"), segment_fields, segment_rows)
    with open(summary_path, "w") as handle:  # strict JSON: an undefined value (e.g. r of < 3 cases) is null
        json.dump(_finite_or_none(summary), handle, indent=2, allow_nan=False)
    return {"slices": slice_rows, "cases": case_rows, "segments": segment_rows, "summary": summary}
