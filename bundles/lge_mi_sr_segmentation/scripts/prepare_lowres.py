"""Write 64x64 low-resolution LGE slices (the network's input) from high-resolution LGE slices.

Usage (from the bundle root)::

    python -m scripts.prepare_lowres --dataset_dir ../../data/DTI_LGE_MI --out ../../data/DTI_LGE_MI_lowres --split test

Each output keeps the input's field of view: its affine is the coarse grid whose 8-fold subdivision is the
high-resolution grid, so the bundle's 8x prediction lands exactly on the original mask grid.
"""

from __future__ import annotations

import os

import fire
import nibabel as nib
from common.data import dti_lge_mi_cases, dti_lge_mi_split, lowres_slice
from common.data.validation import check_nifti
from common.flags import as_flag

__all__ = ["prepare_lowres"]


def prepare_lowres(
    dataset_dir: str,
    out: str,
    size: int = 64,
    split: str = "test",
    seed: int = 0,
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    overwrite: bool = False,
) -> list[str]:
    """Area-downsample each case's `LGE.nii.gz` to `size` x `size` and save `<out>/<case>_LGE.nii.gz`.

    Args:
        dataset_dir: a DTI_LGE_MI-layout folder.
        out: output folder (must not hold earlier outputs unless `overwrite`).
        size: output in-plane size; the input size must be a multiple of it.
        split: "train" (every case not held out), "val", "test" (the bundle's deterministic split,
            ``common.data.dti_lge_mi_split``, shared with the dti_lge_style_transfer bundle) or "all".
    """
    if split not in ("train", "val", "test", "all"):
        raise ValueError(f"split must be 'train', 'val', 'test' or 'all', got {split!r}.")
    cases = dti_lge_mi_cases(dataset_dir)
    if split != "all":
        parts = dti_lge_mi_split(cases, fractions=tuple(split_fractions), seed=seed)
        cases = parts["lge_train" if split == "train" else split]
    os.makedirs(out, exist_ok=True)
    written = []
    for case in cases:
        check_nifti(case["lge"], ndim=3)
        lowres, affine = lowres_slice(case["lge"], size)
        target = os.path.join(out, f"{case['case']}_LGE.nii.gz")
        if os.path.exists(target) and not as_flag(overwrite, "overwrite"):
            raise FileExistsError(f"{target} exists; pass --overwrite True to replace it.")
        nib.save(nib.Nifti1Image(lowres, affine), target)
        written.append(target)
    print(f"wrote {len(written)} low-resolution slices ({size}x{size}) to {out}")
    return written


if __name__ == "__main__":
    fire.Fire(prepare_lowres)
