"""Copy the held-out paired cases' DTI slices into one flat folder, the input layout of `configs/inference.json`.

Usage (from the bundle root)::

    python -m scripts.prepare_dti_folder --dataset_dir ../../data/DTI_LGE_MI --out ../../data/DTI_LGE_MI_dti_test

A clinical user has a folder of DTI slices, one NIfTI file per slice; the dataset layout instead holds one
`Case_NNN/DTI.nii.gz` per case, and names that differ only by folder would all map to the same output name. This
script writes `<out>/<case>_DTI.nii.gz` (the files are copied byte for byte, so header and affine are unchanged)
for the split the bundle holds out (`test` by default), so that inference and evaluation see the same cases.
"""

from __future__ import annotations

import os
import shutil

import fire
from common.data import dti_lge_mi_cases, split_cases
from common.data.validation import check_nifti

__all__ = ["prepare_dti_folder"]


def prepare_dti_folder(
    dataset_dir: str,
    out: str,
    split: str = "test",
    seed: int = 0,
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    overwrite: bool = False,
) -> list[str]:
    """Write `<out>/<case>_DTI.nii.gz` for every paired case of `split` and return the written paths.

    Args:
        dataset_dir: a DTI_LGE_MI-layout folder.
        out: output folder (must not hold earlier outputs unless `overwrite`).
        split: "train", "val", "test" (the split of the paired cases used by `configs/train.json`) or "all".
        seed: the split seed (`seed` in `configs/train.json`).
        split_fractions: the split fractions (`split_fractions` in `configs/train.json`).
        overwrite: replace existing files in `out`.

    Raises:
        ValueError: unknown `split`, or a DTI file that is not a readable single-slice volume (named).
        FileExistsError: an output exists and `overwrite` is false.
    """
    if split not in ("train", "val", "test", "all"):
        raise ValueError(f"split must be 'train', 'val', 'test' or 'all', got {split!r}.")
    cases = dti_lge_mi_cases(dataset_dir, require_dti=True)
    if split != "all":
        cases = split_cases(cases, fractions=tuple(split_fractions), seed=seed)[split]
    targets = [(case["dti"], os.path.join(out, f"{case['case']}_DTI.nii.gz")) for case in cases]
    for source, target in targets:
        check_nifti(source, ndim=3)
        if os.path.exists(target) and not overwrite:
            raise FileExistsError(f"{target} exists; pass --overwrite True to replace it.")
    os.makedirs(out, exist_ok=True)
    for source, target in targets:
        shutil.copyfile(source, target)
    print(f"wrote {len(targets)} DTI slices ({split} split) to {out}")
    return [target for _, target in targets]


if __name__ == "__main__":
    fire.Fire(prepare_dti_folder)
