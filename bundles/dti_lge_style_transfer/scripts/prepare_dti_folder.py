"""Copy the held-out paired cases' DTI slices into one flat folder, the input layout of `configs/inference.json`.

Usage (from the bundle root)::

    python -m scripts.prepare_dti_folder --dataset_dir ../../data/DTI_LGE_MI --out ../../data/DTI_LGE_MI_dti_test

A clinical user has a folder of DTI slices, one NIfTI file per slice; the dataset layout instead holds one
`Case_NNN/DTI.nii.gz` per case, and names that differ only by folder would all map to the same output name. This
script writes `<out>/<case>_DTI.nii.gz` (the files are copied byte for byte, so header, affine and every channel
are unchanged: `configs/inference.json` selects the channels with `dti_channel_names`/`dti_channels`) for the split
the bundle holds out (`test` by default, of `common.data.dti_lge_mi_split`), so that inference and evaluation see the
same cases. Each file's channel count is checked against `channel_names` first.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

import fire
from common.constants import DTI_CHANNELS
from common.data import dti_lge_mi_cases, dti_lge_mi_split
from common.data.validation import check_nifti
from common.flags import as_flag
from common.transforms import check_channel_count

__all__ = ["prepare_dti_folder"]


def prepare_dti_folder(
    dataset_dir: str,
    out: str,
    split: str = "test",
    seed: int = 0,
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    overwrite: bool = False,
    channel_names: Sequence[str] = DTI_CHANNELS,
) -> list[str]:
    """Write `<out>/<case>_DTI.nii.gz` for every paired case of `split` and return the written paths.

    Args:
        dataset_dir: a DTI_LGE_MI-layout folder.
        out: output folder (must not hold earlier outputs unless `overwrite`).
        split: "train" (the training pairs), "val", "test" (the split of `common.data.dti_lge_mi_split` used by
            `configs/train.json`) or "all".
        seed: the split seed (`seed` in `configs/train.json`).
        split_fractions: the split fractions (`split_fractions` in `configs/train.json`).
        overwrite: replace existing files in `out`.
        channel_names: the channels each DTI file holds (`dti_channel_names` in the configs).

    Raises:
        ValueError: unknown `split`, a DTI file that is not a readable single-slice image `(X, Y, 1)` or
            `(X, Y, 1, channels)`, or one whose channel count differs from `channel_names` (named).
        FileExistsError: an output exists and `overwrite` is false.
    """
    if split not in ("train", "val", "test", "all"):
        raise ValueError(f"split must be 'train', 'val', 'test' or 'all', got {split!r}.")
    cases = dti_lge_mi_cases(dataset_dir, require_dti=True)
    if split != "all":
        parts = dti_lge_mi_split(dti_lge_mi_cases(dataset_dir), fractions=tuple(split_fractions), seed=seed)
        cases = parts["pair_train" if split == "train" else split]
    targets = [(case["dti"], os.path.join(out, f"{case['case']}_DTI.nii.gz")) for case in cases]
    for source, target in targets:
        shape = check_nifti(source, ndim=(3, 4))
        count = shape[3] if len(shape) == 4 else 1
        check_channel_count(count, channel_names, source, "channel_names", "the configs' dti_channels")
        if os.path.exists(target) and not as_flag(overwrite, "overwrite"):
            raise FileExistsError(f"{target} exists; pass --overwrite True to replace it.")
    os.makedirs(out, exist_ok=True)
    for source, target in targets:
        shutil.copyfile(source, target)
    print(f"wrote {len(targets)} DTI slices ({split} split) to {out}")
    return [target for _, target in targets]


if __name__ == "__main__":
    fire.Fire(prepare_dti_folder)
