"""The SMORE-like baseline's training data: an image-only self-SR network's thin-slice images, LR labels interpolated.

SMORE (Zhao et al., IEEE TMI 2021) super-resolves the image alone, self-supervised from the volume's own in-plane
resolution; a segmenter of the super-resolved images then has no HR label to learn from, only the LR annotation
interpolated onto the thin grid. That is the pipeline REHRSeg's joint (image, label) SR replaces, and the issue's
"SMORE-like" benchmark row. Here the image-only network is this bundle's own self-SR network trained with its label
channel empty and no label loss (``configs/smore_sr.json``), so the two pipelines differ in the label alone, not in
the SR architecture (SMORE's own is a 2D EDSR over several orientations).

``write_smore_like_dataset`` writes every subject of the dataset in the nnU-Net layout (``imagesTr/<case>_0000``,
``labelsTr/<case>``; thin grid, the thick stack's extent): the same case names, so ``scripts.cases.subject_split``
splits it as the thick-slice set and the test subjects stay test subjects. ``lr_baseline.json`` with ``scale 1``
then trains the segmenter on it (``docs/README.md``, "SMORE-like baseline"), and :class:`SMORELikeInferer`
(``smore_inference.json``) runs the two networks on a folder of new thick-slice volumes.
"""

from __future__ import annotations

__all__ = ["smore_like_paths", "write_smore_like_dataset", "SMORELikeInferer"]

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from common.checkpoint import load_weights, require_weights
from common.data.degradation import interpolate_to_thin_slices, thin_slice_affine
from common.data.layouts import write_nifti
from common.distributed import barrier, shard
from common.inferers import ThickSliceSegInferer
from common.transforms import positive_percentile
from monai.data import MetaTensor
from monai.inferers import Inferer
from scripts.pseudo_hr import refuse_earlier_outputs, sliding_sr, thick_pair_reader

logger = logging.getLogger(__name__)


def smore_like_paths(out_dir: str, case: str) -> dict[str, str]:
    """The two files of one case in the SMORE-like dataset (nnU-Net raw layout)."""
    return {
        "image": os.path.join(out_dir, "imagesTr", f"{case}_0000.nii.gz"),
        "label": os.path.join(out_dir, "labelsTr", f"{case}.nii.gz"),
    }


@torch.no_grad()
def write_smore_like_dataset(
    cases: Sequence[dict],
    sr_network: torch.nn.Module,
    out_dir: str,
    scale: int,
    axis: int | str = 2,
    percentile: float = 99.5,
    label_order: int = 1,
    windows_per_batch: int = 8,
    device: str | torch.device = "cpu",
    overwrite: bool = False,
) -> list[dict[str, str]]:
    """Per case: the image-only SR image (input intensity units) and the LR label interpolated onto the thin grid.

    Args:
        cases: ``{"case", "image", "label"}`` thick-slice cases (all the dataset's, so that its split is kept).
        sr_network: the image-only self-SR network (``common.nets.FLAVRSelfSR`` trained by ``smore_sr.json``); its
            label channel gets zeros, as in its training.
        out_dir: the dataset folder to write (``imagesTr``, ``labelsTr``).
        scale, axis: slice-thickness ratio and spatial through-plane axis (``"auto"``: each case's, from its header).
        percentile: the image scaling of training (``common.transforms.ScaleByPercentiled``).
        label_order: interpolation of the LR label along the slices before thresholding at 0.5: 1 (linear, the
            default: the boundary moves half-way between two thick slices that disagree) or 0 (nearest: each thick
            slice's label repeated).
        windows_per_batch: SR windows per forward pass.
        device: where the network runs.
        overwrite: replace earlier files; otherwise any existing output is refused before anything is written.

    Under torchrun each rank writes its share of the cases (``common.distributed.shard``) after every rank checked
    every output.

    Returns:
        The paths this rank wrote, per case.

    Raises:
        FileExistsError: outputs exist and ``overwrite`` is false (naming the first and the way out).
        ValueError: ``label_order`` not 0 or 1; an input that is not a thick-slice volume of this ``scale``.
    """
    if label_order not in (0, 1):
        raise ValueError(f"label_order must be 0 (nearest) or 1 (linear), got {label_order!r}.")
    refuse_earlier_outputs(
        cases, out_dir, smore_like_paths, overwrite, "SMORE-like", "image-only SR model", "smore_dir"
    )
    barrier()  # every rank has checked every output before any rank writes one
    read = thick_pair_reader(scale, axis, percentile, min_slices=sr_network.n_inputs)
    sr_network.eval()
    written = []
    mine = shard(list(cases))
    for index, case in enumerate(mine, start=1):
        start = time.perf_counter()
        item = read(case)
        image, axis = item["image"], item["axis"]
        inferer = sliding_sr(sr_network, scale, axis, windows_per_batch)
        x = torch.cat([image.as_tensor(), torch.zeros_like(image.as_tensor())]).unsqueeze(0).float().to(device)
        sr_image = inferer(x, sr_network)[0, 0].cpu().numpy() * float(item["image_scale"])
        lr_label = np.asarray(item["label"][0], dtype=np.float32)
        label = interpolate_to_thin_slices(lr_label, axis, scale, order=label_order) >= 0.5
        affine = thin_slice_affine(np.asarray(image.affine, dtype=np.float64), axis, scale)
        paths = smore_like_paths(out_dir, case["case"])
        write_nifti(paths["image"], sr_image.astype(np.float32), affine)
        write_nifti(paths["label"], label.astype(np.uint8), affine)
        written.append(paths)
        logger.info(
            f"SMORE-like {index}/{len(mine)} {case['case']}: {image.shape[axis + 1]} -> {sr_image.shape[axis]} "
            f"slices, {time.perf_counter() - start:.1f} s"
        )
    barrier()  # every share is on disk before any rank goes on
    return written


class SMORELikeInferer(Inferer):
    """The SMORE-like pipeline on a thick-slice volume (slices last): the image-only self-SR network's thin-slice
    image, then the segmenter of SR images on it.

    The segmenter was trained on ``write_smore_like_dataset``'s images (written in input units) scaled on loading by
    their own percentile (``ScaleByPercentiled``); the SR image here is rescaled the same way, by the percentile of its
    voxels above 0, so the segmenter sees what it was trained on (the input's own scaling cancels). That segmenter
    (``lr_baseline.json`` at ``scale`` 1) trained its LR head only, which at ``scale`` 1 is on the thin grid: the
    logits come out as ``(B, C, X, Y, scale * Z)``, the thick input's extent (as the benchmark's ``SMORE-like`` row).

    Args:
        divisor: the segmenter's size divisor (``network_def.divisor``).
        scale: slice-thickness ratio of the input.
        sr_network: the image-only ``common.nets.FLAVRSelfSR`` (``smore_sr.json``).
        sr_weights: its trained weights (``models/sr/image_only.pt``).
        hint: what to run when ``sr_weights`` is missing.
        percentile: the intensity percentile of the configs' ``ScaleByPercentiled``.
        roi_size, overlap: the segmenter's sliding window (``common.inferers.ThickSliceSegInferer``).
        windows_per_batch: SR windows per forward pass.
        device: where the SR network runs.
        save_sr: refused (``True``): the option of ``inference.json``'s own inferer.

    Raises:
        FileNotFoundError: ``sr_weights`` is missing (naming it and ``hint``).
        ValueError: ``save_sr`` is on.
    """

    def __init__(
        self,
        divisor: Sequence[int],
        scale: int,
        sr_network: torch.nn.Module,
        sr_weights: str,
        hint: str = "",
        percentile: float = 99.5,
        roi_size: Sequence[int] | None = None,
        overlap: float = 0.25,
        windows_per_batch: int = 8,
        device: str | torch.device = "cpu",
        save_sr: bool = False,
    ) -> None:
        super().__init__()
        if save_sr:
            raise ValueError(
                "save_sr is for inference.json alone: the SMORE-like pipeline has no uncertainty map, and its SR image "
                "is what smore_data.json writes (docs/README.md); run smore_inference.json without --save_sr true."
            )
        load_weights(sr_network, require_weights(str(sr_weights), hint), map_location=device)
        self.sr_network = sr_network.to(device).eval()
        self.super_resolve = sliding_sr(self.sr_network, scale, 2, windows_per_batch)
        self.segment = ThickSliceSegInferer(divisor, scale=1, head="lr", roi_size=roi_size, overlap=overlap)
        self.percentile = float(percentile)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        with torch.no_grad():
            pair = torch.cat([inputs, torch.zeros_like(inputs)], 1)  # the label channel is empty, as in training
            image = self.super_resolve(pair, self.sr_network)[:, :1]
            plain = image.as_tensor() if isinstance(image, MetaTensor) else image
            factors = [positive_percentile(item, self.percentile) for item in plain]  # one per volume of the batch
            image = image / torch.tensor(factors, dtype=image.dtype, device=image.device).view(-1, 1, 1, 1, 1)
        return self.segment(image, network)
