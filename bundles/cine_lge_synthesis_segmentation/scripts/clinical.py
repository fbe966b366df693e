"""The clinical read-out of a segmented cine stack (PSCGAN 6.5): scar size and ratio, AHA segments, transmurality.

``analyse_stack`` turns one stack's 4-class segmentation ``(X, Y, S)`` (0 other, 1 blood pool, 2 healthy myocardium,
3 scar) and its end-diastolic cine frame into a per-case row and per-segment rows; ``ClinicalReport`` writes them
for every input of a folder inference (``clinical_cases.csv``, ``clinical_segments.csv`` in the output folder).

AHA segments: the LV centre is the blood pool's centroid; the RV insertion points are the angular ends, seen from
that centre, of the bright RV cavity next to the LV in the end-diastolic cine frame; the anterior one is the one
further anterior in world coordinates (``common.metrics.find_rv_insertion``). Slices are basal, mid and apical by
thirds of the stack, base first (``common.metrics.slice_level``). When no RV is found in a slice its segments use a
fallback septum direction and the row says so (``rv_found`` false).
"""

from __future__ import annotations

__all__ = ["analyse_stack", "aha_segment_map", "ClinicalReport", "CASE_FIELDS", "SEGMENT_FIELDS"]

import csv
import logging
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from common.distributed import gather_objects, rank
from common.flags import as_flag
from common.metrics import aha_segments, clinical_metrics, find_rv_insertion, segment_scar, slice_level
from common.transforms import SlicesLastd, in_plane_pixel_area, in_plane_spacing, recorded_axis_key
from monai.data import MetaTensor

CASE_FIELDS = (
    "case", "slices", "scar_size_mm2", "scar_ratio", "scar_to_healthy_ratio", "myocardium_area_mm2",
    "scar_segments", "transmural_segments", "slices_without_rv",
)  # fmt: skip
logger = logging.getLogger(__name__)

SEGMENT_FIELDS = ("case", "slice", "level", "segment", "myocardium_px", "scar_px", "scar_fraction", "has_scar",
                  "transmural", "rv_found")  # fmt: skip


def analyse_stack(
    case: str,
    seg: np.ndarray,
    cine_ed: np.ndarray,
    affine: np.ndarray,
    rv_fallback_angle: float = np.pi,
    scar_probability: np.ndarray | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One stack's case row (``CASE_FIELDS``) and segment rows (``SEGMENT_FIELDS``).

    Scar size and myocardium area are summed over the slices (mm^2 of short-axis area); the scar ratios are the
    stack's totals, not a mean of slice ratios. Slices without myocardium contribute nothing and get no segments.

    Args:
        case: the case name for the rows.
        seg: ``(X, Y, S)`` integer labels.
        cine_ed: ``(X, Y, S)`` end-diastolic cine frame (any scaling: only its bright blood is used).
        affine: the stack's 4x4 voxel-to-world matrix.
        rv_fallback_angle: septum direction (radians in the voxel frame) where no RV cavity is found.
        scar_probability: ``(X, Y, S)`` the segmenter's scar probability; when given, every segment row gets
            ``scar_score``, its mean over the segment's myocardium (labels 2 and 3 of ``seg``): a threshold-free
            score for the segment-level AUC of PSCGAN's Table 2, defined where no pixel wins the argmax as scar.
    """
    seg = np.asarray(seg).astype(np.int64)
    spacing = tuple(in_plane_spacing(torch.as_tensor(np.asarray(affine, dtype=np.float64))))
    pixel_area = in_plane_pixel_area(affine)  # below the spacings' product for a sheared header
    _warn_if_apex_first(case, seg)
    n_slices = seg.shape[2]
    totals = {"scar": 0.0, "myo": 0.0, "healthy": 0.0, "scar_px": 0, "healthy_px": 0}
    segments: list[dict[str, Any]] = []
    no_rv = 0
    for k, level, aha, rv in _slice_segments(seg, cine_ed, affine, rv_fallback_angle):
        label = seg[..., k]
        metrics = clinical_metrics(label, spacing, pixel_area_mm2=pixel_area)
        totals["scar"] += metrics["scar_size_mm2"]
        totals["myo"] += metrics["myocardium_area_mm2"]
        totals["scar_px"] += int(np.sum(label == 3))
        totals["healthy_px"] += int(np.sum(label == 2))
        no_rv += not rv["rv_found"]
        wall = np.isin(label, (2, 3))
        for number, row in sorted(segment_scar(label, aha).items()):
            segments.append(
                {
                    "case": case, "slice": k, "level": level, "segment": int(number),
                    "myocardium_px": int(row["myocardium_pixels"]), "scar_px": int(row["scar_pixels"]),
                    "scar_fraction": float(row["scar_fraction"]), "has_scar": bool(row["has_scar"]),
                    "transmural": bool(row["transmural"]), "rv_found": bool(rv["rv_found"]),
                }
            )  # fmt: skip
            if scar_probability is not None:
                inside = wall & (aha == number)
                score = float(scar_probability[..., k][inside].mean()) if inside.any() else float("nan")
                segments[-1]["scar_score"] = score
    myo_px = totals["scar_px"] + totals["healthy_px"]
    case_row = {
        "case": case,
        "slices": n_slices,
        "scar_size_mm2": totals["scar"],
        "scar_ratio": totals["scar_px"] / myo_px if myo_px else float("nan"),
        "scar_to_healthy_ratio": totals["scar_px"] / totals["healthy_px"] if totals["healthy_px"] else float("nan"),
        "myocardium_area_mm2": totals["myo"],
        "scar_segments": sum(r["has_scar"] for r in segments),
        "transmural_segments": sum(r["transmural"] for r in segments),
        "slices_without_rv": no_rv,
    }
    return case_row, segments


def _slice_segments(
    seg: np.ndarray, cine_ed: np.ndarray, affine: np.ndarray, rv_fallback_angle: float
) -> Iterator[tuple[int, str, np.ndarray, dict[str, Any]]]:
    """Per slice with myocardium: its index, AHA level, segment number per pixel (:func:`common.metrics.
    aha_segments`, 0 off the wall) and the RV insertion it was taken from (:func:`common.metrics.find_rv_insertion`)."""
    n_slices = seg.shape[2]
    for k in range(n_slices):
        label = seg[..., k]
        if not np.isin(label, (2, 3)).any():
            continue
        rv = find_rv_insertion(cine_ed[..., k], label, affine, fallback_septum_angle=rv_fallback_angle)
        level = slice_level(k, n_slices)
        aha = aha_segments(
            label, rv["anterior_angle"], rv["inferior_angle"], level, spacing=rv["spacing"],
            septum_angle=rv["septum_angle"],
        )  # fmt: skip
        yield k, level, aha, rv


def aha_segment_map(
    seg: np.ndarray, cine_ed: np.ndarray, affine: np.ndarray, rv_fallback_angle: float = np.pi
) -> np.ndarray:
    """The AHA segment (1-16) of every myocardium pixel of a stack, scar (3) and healthy (2) alike, 0 elsewhere: the
    per-pixel form of :func:`analyse_stack`'s segment rows (the same RV insertion points and levels), so a scar
    pixel's segment is the map where ``seg == 3``. ``(X, Y, S)`` int16, the shape of ``seg``."""
    seg = np.asarray(seg).astype(np.int64)
    out = np.zeros(seg.shape, dtype=np.int16)
    for k, _, aha, _ in _slice_segments(seg, cine_ed, affine, rv_fallback_angle):
        out[..., k] = aha
    return out


def write_rows(path: str, fields: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` as CSV through a temporary file (an interrupted run leaves no half-written table)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _warn_if_apex_first(case: str, seg: np.ndarray) -> None:
    """Warn when the stack seems to run apex to base: the AHA levels take slice 0 as basal (thirds of the stack), and
    the left ventricle narrows towards the apex, so its segmented area (blood pool and myocardium) is then larger in
    the last third than in the first."""
    n_slices = seg.shape[2]
    if n_slices < 2:
        return
    area = np.isin(seg, (1, 2, 3)).sum(axis=(0, 1))
    third = max(1, n_slices // 3)
    first, last = float(area[:third].mean()), float(area[-third:].mean())
    if last > first:
        logger.warning(
            "%s: the segmented left ventricle is larger in the last slices (%.0f pixels) than in the first (%.0f): "
            "the stack may run from apex to base, but the AHA levels take the first slices as basal. Store the "
            "slices base first (reverse the slice axis and the affine's third column) if so.",
            case,
            last,
            first,
        )


class ClinicalReport:
    """Ignite handler of a folder inference: :func:`analyse_stack` on every prediction, two CSVs at the end.

    It reads the evaluator's input cine (``image``: ``(T, X, Y, S)`` per item, frame 0 = end-diastole) and the
    postprocessed ``pred`` (labels ``(1, X, Y, S)``; moved back to the cine's layout when the postprocessing wrote it
    in a slices-first file's own), names rows by the input file, and writes
    ``clinical_cases.csv`` and ``clinical_segments.csv`` in ``output_dir`` when the run completes. With
    ``segment_map_postfix`` it also writes, per input, :func:`aha_segment_map` as ``<input name>_<postfix>.nii.gz``
    beside the segmentation, in the same layout and affine (the configs name that postfix among ``FolderInputs``'
    ``extra_postfixes``, so an earlier map is refused before anything runs unless ``overwrite``).

    Raises:
        FileExistsError: (when the run starts) a CSV from an earlier run exists and ``overwrite`` is false.
    """

    FILES = ("clinical_cases.csv", "clinical_segments.csv")

    def __init__(
        self,
        output_dir: str,
        overwrite: bool = False,
        rv_fallback_angle: float = np.pi,
        segment_map_postfix: str | None = None,
    ) -> None:
        self.output_dir = output_dir
        self.overwrite = as_flag(overwrite, "overwrite")
        self.rv_fallback_angle = float(rv_fallback_angle)
        self.segment_map_postfix = segment_map_postfix or None
        self.cases: list[dict[str, Any]] = []
        self.segments: list[dict[str, Any]] = []
        self.slices_last = SlicesLastd("pred", axis="auto", reference_key="image")
        self.back_to_file_layout = SlicesLastd("map", axis="auto", inverse=True, reference_key="image")

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.STARTED, self.started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(Events.COMPLETED, self.completed)

    def paths(self) -> list[str]:
        return [os.path.join(self.output_dir, name) for name in self.FILES]

    def started(self, engine: Any) -> None:
        existing = [p for p in self.paths() if os.path.exists(p)]
        if existing and not self.overwrite:
            raise FileExistsError(
                f"{existing[0]} exists from an earlier run; move it away or set --overwrite true to replace it."
            )
        self.cases, self.segments = [], []

    def iteration_completed(self, engine: Any) -> None:
        batch, outputs = engine.state.batch, engine.state.output
        images = [item["image"] for item in batch] if isinstance(batch, list) else list(batch["image"])
        recorded = recorded_axis_key("image")  # the cine's slice axis, when the postprocessing wrote pred in it
        axes = [item.get(recorded) for item in batch] if isinstance(batch, list) else batch.get(recorded)
        for index, item in enumerate(outputs):
            axis = None if axes is None else axes[index]
            if axis is not None:  # back to the slices-last layout of the cine in memory
                item = self.slices_last({**item, recorded: axis})
            pred = item["pred"]
            affine = np.asarray(pred.affine if isinstance(pred, MetaTensor) else np.eye(4), dtype=np.float64)
            name = pred.meta.get("filename_or_obj", f"case_{len(self.cases)}") if isinstance(pred, MetaTensor) else ""
            case = os.path.basename(str(name)).split(".nii")[0] or f"case_{len(self.cases)}"
            cine_ed = torch.as_tensor(images[index][0]).detach().cpu().numpy()
            labels = torch.as_tensor(pred[0]).detach().cpu().numpy()
            row, segments = analyse_stack(case, labels, cine_ed, affine, self.rv_fallback_angle)
            self.cases.append(row)
            self.segments += segments
            if self.segment_map_postfix and name:
                segment_map = aha_segment_map(labels, cine_ed, affine, self.rv_fallback_angle)
                self._write_map(segment_map, affine, axis, str(name))

    def _write_map(self, segment_map: np.ndarray, affine: np.ndarray, axis: int | None, input_path: str) -> None:
        """``segment_map`` (slices last, ``affine``) written in the input file's own layout, through a temporary
        file (an interrupted run leaves no half-written map)."""
        import nibabel as nib
        from common.inference import output_path

        volume = MetaTensor(torch.as_tensor(segment_map)[None], affine=torch.as_tensor(affine))
        if axis is not None:
            volume = self.back_to_file_layout({"map": volume, recorded_axis_key("image"): axis})["map"]
        path = output_path(input_path, self.output_dir, self.segment_map_postfix)
        tmp = path[: -len(".nii.gz")] + ".tmp.nii.gz"
        array = np.asarray(volume[0].numpy(), dtype=np.int16)
        nib.save(nib.Nifti1Image(array, np.asarray(volume.affine, dtype=np.float64)), tmp)
        os.replace(tmp, path)

    def completed(self, engine: Any) -> None:
        # under torchrun (multi_gpu_inference.json) each rank analysed its own share of the files: rank 0 writes
        # every rank's rows, in case order, once
        shares = gather_objects((self.cases, self.segments))
        if rank() != 0:
            return
        cases = sorted((row for share, _ in shares for row in share), key=lambda row: str(row["case"]))
        order = {row["case"]: index for index, row in enumerate(cases)}
        segments = sorted((row for _, share in shares for row in share), key=lambda row: order[row["case"]])
        os.makedirs(self.output_dir, exist_ok=True)
        cases_path, segments_path = self.paths()
        write_rows(cases_path, CASE_FIELDS, cases)
        write_rows(segments_path, SEGMENT_FIELDS, segments)
