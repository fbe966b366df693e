"""REHRSeg's pseudo-HR training data: the plain self-SR network's image and label, and the UASR model's uncertainty.

Stage 2 never sees a real HR volume. For every training subject the plain self-SR network super-resolves the
(thick-slice image, LR label) pair along the through-plane axis (:class:`common.inferers.SlidingSliceSR`: every gap
including both ends, so ``N`` thick slices give ``N * s`` thin slices over the same extent) into a pseudo-HR image
(written in the input's intensity units) and a pseudo-HR label (logit > 0); the UASR model gives the uncertainty
map U in (0, 1) on the same thin grid. All three are written beside each other and read by ``train.json``: the
public code looked for the map under a name that never exists and silently trained with U = 0.
"""

from __future__ import annotations

__all__ = ["write_pseudo_hr", "thick_pair_reader", "sliding_sr", "refuse_earlier_outputs"]

import logging
import os
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from common.data.degradation import thin_slice_affine
from common.data.layouts import write_nifti
from common.distributed import barrier, shard
from common.flags import as_flag
from common.inferers import SlidingSliceSR
from common.transforms import CheckFinited, CheckLabelValuesd, CheckThickSlicesd, ScaleByPercentiled
from monai.transforms import LoadImaged
from scripts.cases import pseudo_hr_paths

logger = logging.getLogger(__name__)


def refuse_earlier_outputs(
    cases: Sequence[dict],
    out_dir: str,
    paths_of: Callable[[str, str], dict[str, str]],
    overwrite: bool | str,
    what: str,
    source: str,
    folder_key: str,
) -> None:
    """Refuse to write over ``cases``' outputs (``paths_of(out_dir, case)``) that an earlier ``source`` wrote, unless
    ``overwrite``; the error names the first file and both ways out (``--overwrite true``, ``--<folder_key>``)."""
    existing = [p for c in cases for p in paths_of(out_dir, c["case"]).values() if os.path.exists(p)]
    if existing and not as_flag(overwrite, "overwrite"):
        raise FileExistsError(
            f"{existing[0]} exists ({len(existing)} {what} file(s) in {out_dir}); they come from an earlier {source}. "
            f"Set --overwrite true to replace them, or --{folder_key} to write elsewhere."
        )


def thick_pair_reader(
    scale: int, axis: int | str = 2, percentile: float = 99.5, min_slices: int = 4
) -> Callable[[dict], dict]:
    """``case -> {"image", "label", "image_scale", "axis"}``: a thick-slice (image, LR label) pair loaded
    channel-first, checked (a thick-slice stack of ``scale``, finite, binary, one shape: each refusal names the file),
    the image scaled as in training, and its through-plane ``axis`` (the configured one, or with ``"auto"`` the one its
    header gives: ``common.transforms.CheckThickSlicesd``)."""
    load = LoadImaged(["image", "label"], image_only=True, ensure_channel_first=True)
    check = CheckThickSlicesd(["image", "label"], factor=scale, axis=axis, min_slices=min_slices)
    finite, binary = CheckFinited("image"), CheckLabelValuesd("label", values=[0, 1])
    normalise = ScaleByPercentiled("image", percentile=percentile)

    def read(case: dict) -> dict:
        item = normalise(binary(finite(check(load({"image": case["image"], "label": case["label"]})))))
        if item["label"].shape != item["image"].shape:
            raise ValueError(
                f"{case['label']}: shape {tuple(item['label'].shape)} differs from the image's {item['image'].shape}."
            )
        item["axis"] = check.axis_of(item["image"])
        return item

    return read


def sliding_sr(sr_network: torch.nn.Module, scale: int, axis: int, windows_per_batch: int) -> SlidingSliceSR:
    """The sliding-window inferer of ``sr_network`` along a case's through-plane ``axis``."""
    return SlidingSliceSR(
        scale, sr_network.n_inputs, axis, windows_per_batch=windows_per_batch, divisor=sr_network.spatial_divisor
    )


@torch.no_grad()
def write_pseudo_hr(
    cases: Sequence[dict],
    sr_network: torch.nn.Module,
    uasr_network: torch.nn.Module,
    out_dir: str,
    scale: int,
    axis: int | str = 2,
    percentile: float = 99.5,
    windows_per_batch: int = 8,
    device: str | torch.device = "cpu",
    overwrite: bool = False,
) -> list[dict[str, str]]:
    """Write ``<case>_image``, ``<case>_label`` and ``<case>_uncertainty`` (``.nii.gz``, thin grid) per case.

    Args:
        cases: ``{"case", "image", "label"}`` thick-slice training cases.
        sr_network, uasr_network: the trained plain and UASR self-SR networks (``common.nets.FLAVRSelfSR``).
        out_dir: output folder (created).
        scale, axis: slice-thickness ratio and spatial through-plane axis (``"auto"``: each case's, from its header).
        percentile: intensity scaling used in training (``common.transforms.ScaleByPercentiled``).
        windows_per_batch: SR windows per forward pass.
        device: where the networks run.
        overwrite: replace earlier files; otherwise any existing output is refused before anything is written.

    Under torchrun (``multi_gpu_train.json`` layered on) every rank checks every output first, then writes its own
    share of the cases (``common.distributed.shard``), so each file is written once; the ranks wait for each other
    before and after.

    Returns:
        The paths this rank wrote, per case.

    Raises:
        FileExistsError: outputs exist and ``overwrite`` is false (naming the first and the way out).
        ValueError: an input that is not a thick-slice volume of this ``scale`` (naming the file).
    """
    refuse_earlier_outputs(cases, out_dir, pseudo_hr_paths, overwrite, "pseudo-HR", "SR model", "pseudo_hr_dir")
    os.makedirs(out_dir, exist_ok=True)
    barrier()  # every rank has checked every output before any rank writes one
    read = thick_pair_reader(scale, axis, percentile, min_slices=sr_network.n_inputs)
    sr_network.eval()
    uasr_network.eval()
    written = []
    mine = shard(list(cases))
    for index, case in enumerate(mine, start=1):
        start = time.perf_counter()
        item = read(case)
        image, label, axis = item["image"], item["label"], item["axis"]
        inferer = sliding_sr(sr_network, scale, axis, windows_per_batch)
        x = torch.cat([image.as_tensor(), (label.as_tensor() > 0.5).float()]).unsqueeze(0).float().to(device)
        plain = inferer(x, sr_network)[0].cpu()
        uncertainty = inferer(x, uasr_network)[0, 2].cpu()
        affine = thin_slice_affine(np.asarray(image.affine, dtype=np.float64), axis, scale)
        paths = pseudo_hr_paths(out_dir, case["case"])
        write_nifti(paths["image"], (plain[0] * float(item["image_scale"])).numpy().astype(np.float32), affine)
        write_nifti(paths["hr_label"], (plain[1] > 0).numpy().astype(np.uint8), affine)
        write_nifti(paths["uncertainty"], uncertainty.clamp(0, 1).numpy().astype(np.float32), affine)
        written.append(paths)
        logger.info(
            f"pseudo-HR {index}/{len(mine)} {case['case']}: {image.shape[axis + 1]} -> {plain.shape[axis + 1]} "
            f"slices, U mean {float(uncertainty.mean()):.3f}, {time.perf_counter() - start:.1f} s"
        )
    barrier()  # every share is on disk before any rank goes on (e.g. to stage 2)
    return written
