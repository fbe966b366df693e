"""The synthetic labelled LGE set: each labelled bSSFP volume translated with N random MUNIT style codes."""

from __future__ import annotations

__all__ = ["load_translator", "write_synthetic_set"]

import logging
import os
import time
from collections.abc import Callable, Sequence

import nibabel as nib
import numpy as np
import torch
from common.checkpoint import load_weights, require_weights
from common.distributed import barrier, gather_objects, in_process_group, rank, world_size
from common.files import write_json_atomically
from common.flags import as_flag
from common.nets import translate

logger = logging.getLogger(__name__)

TRANSLATOR_HINT = (
    "train the translator first: python -m monai.bundle run --config_file "
    "\"['configs/train.json','configs/train_translator.json']\""
)


def load_translator(
    gen_a: torch.nn.Module, gen_b: torch.nn.Module, path: str, device: torch.device | str = "cpu"
) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The trained bSSFP (``gen_a``) and LGE (``gen_b``) generators from ``translator.pt``, in eval mode."""
    path = require_weights(path, TRANSLATOR_HINT)
    load_weights(gen_a, path, key="gen_a")
    load_weights(gen_b, path, key="gen_b")
    return gen_a.to(device).eval(), gen_b.to(device).eval()


def _save(array: np.ndarray, affine: np.ndarray, path: str, dtype: type) -> None:
    image = nib.Nifti1Image(array.astype(dtype), affine)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    nib.save(image, path)


def write_synthetic_set(
    cases: Sequence[dict[str, str]],
    translator: tuple[torch.nn.Module, torch.nn.Module],
    transform: Callable[[dict], dict],
    out_dir: str,
    num_styles: int = 5,
    seed: int = 0,
    overwrite: bool = False,
) -> str:
    """Translate every labelled bSSFP volume with ``num_styles`` style codes into LGE and write a labelled set.

    Paper, section 3.1: "for each bSSFP image, we randomly sampled the style code from N(0, I) five times". One code
    per volume and draw (all slices of a synthetic stack share its style, as one acquisition would); the content
    code is per slice. ``transform`` gives the heart-centred crop at 1.25 mm in ``[-1, 1]`` (``image``) and the
    label on the same grid, so each synthetic stack is written with the crop's affine and the bSSFP labels (in
    MS-CMRSeg values) beside it. ``out_dir/datalist.json`` lists the pairs (``{"training": [{"image", "label"}]}``,
    paths relative to it). A ``seed`` gives the same set again; an ensemble member uses its own seed.

    Under torchrun (``multi_gpu_train.json``) each rank translates every ``world_size``-th case and rank 0 writes
    the datalist of all: the same files as one process (every rank draws the style codes of every case, in order,
    and keeps its own), in a ``1 / world_size`` of the time.

    Args:
        cases: ``[{"case", "image", "label"}]`` labelled bSSFP volumes (``scripts.cases.training_cases``).
        translator: ``(gen_a, gen_b)`` from :func:`load_translator`.
        transform: load + resample + heart crop, returning ``image`` ``(1, H, W, D)`` in ``[-1, 1]`` and ``label``.
        out_dir: the set's folder; refused when it already holds files, unless ``overwrite``.
        num_styles: style codes per volume (paper: 5).
        seed: seed of the style codes.
        overwrite: replace an earlier set in ``out_dir``.

    Returns:
        the path of ``datalist.json``.

    Raises:
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is false.
        ValueError: ``num_styles < 1`` or no case.
    """
    if int(num_styles) < 1:
        raise ValueError(f"num_styles must be >= 1, got {num_styles}.")
    if not cases:
        raise ValueError("no labelled bSSFP case to translate.")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not as_flag(overwrite, "overwrite"):
        raise FileExistsError(
            f"{out_dir} already holds a synthetic set; pass --overwrite true to replace it, or another --member."
        )
    barrier()  # every rank has checked the folder before any rank writes into it
    os.makedirs(out_dir, exist_ok=True)
    gen_a, gen_b = translator
    device = next(gen_b.parameters()).device
    style_dim = getattr(gen_b, "module", gen_b).style_dim
    generator = torch.Generator().manual_seed(int(seed))
    items, start = [], time.perf_counter()
    own, ranks = (rank(), world_size()) if in_process_group() else (0, 1)  # a group: multi_gpu_train.json
    for index, case in enumerate(cases):
        styles = torch.randn(int(num_styles), style_dim, 1, 1, generator=generator)  # drawn on every rank
        if index % ranks != own:
            continue
        data = transform({"image": case["image"], "label": case["label"]})
        image, label = data["image"], data["label"]
        affine = np.asarray(image.affine, dtype=np.float64)
        name = case.get("case") or os.path.basename(case["image"]).split(".")[0]
        label_file = f"{name}_C0_manual.nii.gz"
        _save(np.asarray(label[0]), affine, os.path.join(out_dir, label_file), np.uint16)
        volumes = np.zeros((int(num_styles), *image.shape[1:]), np.float32)
        with torch.no_grad():
            for z in range(image.shape[-1]):
                slice_ = torch.as_tensor(image[..., z], dtype=torch.float32)[None].to(device)  # (1, 1, H, W)
                volumes[..., z] = translate(gen_a, gen_b, slice_, styles.to(device))[:, 0].cpu().numpy()
        for j, volume in enumerate(volumes):
            image_file = f"{name}_style{j}_LGE.nii.gz"
            _save(volume, affine, os.path.join(out_dir, image_file), np.float32)
            items.append({"image": image_file, "label": label_file, "case": name, "style": j, "index": index})
        done = index // ranks + 1
        eta = (time.perf_counter() - start) / done * (len(cases[own::ranks]) - done)
        logger.info(f"synthetic LGE: {index + 1}/{len(cases)} {name} x{num_styles} styles, eta {eta:.0f} s")
    items = _in_case_order(gather_objects(items))
    datalist = os.path.join(out_dir, "datalist.json")
    if own == 0:
        # written last and whole: its presence marks a complete set
        write_json_atomically(datalist, {"training": items, "num_styles": int(num_styles), "seed": int(seed)}, indent=2)
        logger.info(f"synthetic LGE set: {len(items)} volumes -> {out_dir}")
    barrier()  # the datalist exists when any rank returns
    return datalist


def _in_case_order(shares: list[list[dict]]) -> list[dict]:
    """Every rank's items, in case order (then style), without the ``index`` used to order them."""
    ordered = sorted((item for share in shares for item in share), key=lambda item: (item["index"], item["style"]))
    return [{key: value for key, value in item.items() if key != "index"} for item in ordered]
