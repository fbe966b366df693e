"""Write thick-slice versions of the held-out test subjects: the inputs of ``inference.json`` and ``evaluate.json``.

Usage (from the bundle root)::

    python -m scripts.prepare_lowres --dataset_dir ../../data/IXI --out ../../data/IXI_thick --scale 4

For each test subject (``scripts.cases.subject_split``): ``<out>/x<s>/<case>-T1.nii.gz``, the volume acquired with
``s``-times thicker slices along ``axis`` (SMORE slice profile, thick slices tiling the thin grid:
``common.data.acquire_thick_slices``), and ``<out>/x<s>/truth/<case>-T1.nii.gz``, the thin-slice truth cropped to
whole thick slices, on exactly the grid that the SR output is written on (``common.data.thin_slice_affine``).
"""

from __future__ import annotations

import os

import fire
import nibabel as nib
import numpy as np
from common.data import thick_slice_volume
from common.data.validation import check_nifti
from common.flags import as_flag

__all__ = ["prepare_lowres"]


def prepare_lowres(
    dataset_dir: str,
    out: str,
    scale: int = 4,
    axis: int = 2,
    role: str = "test",
    seed: int = 0,
    overwrite: bool = False,
    prior_fraction: float = 0.5,
    sr_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
) -> list[str]:
    """Write the thick-slice inputs and cropped truths of one role's subjects; return the thick-slice paths.

    ``seed``, ``prior_fraction`` and ``sr_fractions`` must be the training configs' ``split_seed``,
    ``prior_fraction`` and ``sr_fractions`` (their defaults are), so that the test subjects are the held-out ones.
    """
    from scripts.cases import role_cases

    folder = os.path.join(out, f"x{int(scale)}")
    truth_folder = os.path.join(folder, "truth")
    os.makedirs(truth_folder, exist_ok=True)
    written = []
    split = {"seed": seed, "prior_fraction": prior_fraction, "sr_fractions": tuple(sr_fractions)}
    for case in role_cases(dataset_dir, role, **split):
        check_nifti(case["image"], ndim=3)
        image = nib.load(case["image"])
        thin, thick, thick_affine = thick_slice_volume(
            np.asarray(image.dataobj, dtype=np.float32), image.affine, axis, int(scale)
        )
        name = os.path.basename(case["image"])
        for path, data, affine in (
            (os.path.join(folder, name), thick, thick_affine),
            (os.path.join(truth_folder, name), thin, image.affine),
        ):
            if os.path.exists(path) and not as_flag(overwrite, "overwrite"):
                raise FileExistsError(f"{path} exists; pass --overwrite True to replace it.")
            nib.save(nib.Nifti1Image(data.astype(np.float32), affine), path)
        written.append(os.path.join(folder, name))
    print(f"wrote {len(written)} x{scale} thick-slice volumes and their truths to {folder}")
    return written


if __name__ == "__main__":
    fire.Fire(prepare_lowres)
