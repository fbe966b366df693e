"""CardiacThick: thick-slice short-axis LGE stacks with LR myocardium labels in the nnU-Net raw layout (REHRSeg's
second default dataset), with the HR truth kept apart.

Each subject is a :class:`~common.data.phantom_cardiac.CardiacPhantom` (post-infarction, ``group="MINF"``: nulled
myocardium, bright scar) rendered on an isotropic grid along the LV long axis, from 10 mm above the base to 10 mm
beyond the epicardial apex, then acquired as thick short-axis slices exactly as the Meningioma set (slice profile of
FWHM ``sqrt(s^2 - 1)`` thin voxels, one thick slice per ``s`` thin ones,
:func:`~common.data.degradation.acquire_thick_slices`): a clinical LGE stack has 8-10 mm slices over 1.4-1.8 mm
pixels (Kramer et al., J Cardiovasc Magn Reson 2020; 22:17), about x4-x6 through-plane. Full size: 1.25 mm
isotropic HR (96 x 96 in-plane, 120 mm field of view) and 5 mm thick slices at the default factor 4; ``small``:
2.5 mm (48 x 48) and 10 mm. The label is the LV myocardium, scar included (1), the structure whose base and apex
the thick slices cut through.

Layout: ``CardiacThick/imagesTr/CARD_NNN_0000.nii.gz`` (int16), ``labelsTr/CARD_NNN.nii.gz`` (uint8 0/1, the
partial-volume majority of the HR mask over each thick slice), ``dataset.json``; ``CardiacThick_HR/imagesHR`` and
``labelsHR`` the HR image and mask (same field of view; their affine is ``thin_slice_affine`` of the thick one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from common.data.degradation import acquire_thick_slices, thick_slice_affine
from common.data.layouts import (
    _check_thick_slice_args,
    _execute,
    _prepare_thick_slice_folders,
    _subject_seed,
    _to_int16,
    write_nifti,
)
from common.data.phantom_cardiac import TISSUES, CardiacPhantom
from common.typing import PathLike

__all__ = ["CARDIAC_THICK_LABELS", "write_cardiac_thick"]

#: Label values of the CardiacThick dataset (nnU-Net ``dataset.json`` ``labels``).
CARDIAC_THICK_LABELS = {"background": 0, "myocardium": 1}
#: the phantom tissues that make up the labelled LV myocardium
_MYOCARDIUM = [TISSUES.index(name) for name in ("myocardium", "scar", "no_reflow")]
#: HR voxel size (mm) and in-plane size of the full and the small set
_GRID = {False: (1.25, 96), True: (2.5, 48)}
#: mm imaged beyond the LV's base and apex
_MARGIN_MM = 10.0


def _cardiac_thick_case(folder: str, hr_folder: str, index: int, seed: int, small: bool, factor: int) -> str:
    phantom = CardiacPhantom(_subject_seed(seed, "CardiacThick", index), group="MINF")
    voxel, size = _GRID[bool(small)]
    n_slices = int(np.ceil((phantom.epi_length + 2 * _MARGIN_MM) / voxel))  # base to the epicardial apex
    n_slices += -n_slices % factor  # whole thick slices
    shape, spacing = (size, size, n_slices), (voxel, voxel, voxel)
    image = phantom.render("lge", shape, spacing, z=-_MARGIN_MM)
    mask = np.isin(phantom.labels(shape, spacing, z=-_MARGIN_MM), _MYOCARDIUM).astype(np.uint8)
    hr_affine = phantom.affine(shape, spacing, z=-_MARGIN_MM)
    lr_image = acquire_thick_slices(image, 2, factor)
    lr_label = (acquire_thick_slices(mask.astype(np.float32), 2, factor) >= 0.5).astype(np.uint8)
    lr_affine = thick_slice_affine(hr_affine, 2, factor)
    name = f"CARD_{index + 1:03d}"
    write_nifti(Path(folder) / "imagesTr" / f"{name}_0000.nii.gz", _to_int16(lr_image), lr_affine)
    write_nifti(Path(folder) / "labelsTr" / f"{name}.nii.gz", lr_label, lr_affine)
    write_nifti(Path(hr_folder) / "imagesHR" / f"{name}_0000.nii.gz", _to_int16(image), hr_affine)
    write_nifti(Path(hr_folder) / "labelsHR" / f"{name}.nii.gz", mask, hr_affine)
    return name


def _dataset_json(n_subjects: int, factor: int, small: bool) -> dict:
    voxel = _GRID[bool(small)][0]
    return {
        "name": "CardiacThick",
        "description": (
            f"Generated (not patient data): CardiacPhantom post-infarction hearts, LGE contrast, acquired as thick "
            f"short-axis slices: slice factor {factor} along axis 2 ({voxel} mm -> {voxel * factor} mm, SMORE slice "
            "profile). Labels are the thick-slice (LR) LV myocardium, the partial-volume majority of the HR mask; "
            "the HR truth is in ../CardiacThick_HR (common.data.cardiac_thick)."
        ),
        "channel_names": {"0": "LGE"},
        "labels": dict(CARDIAC_THICK_LABELS),
        "numTraining": int(n_subjects),
        "file_ending": ".nii.gz",
        "slice_factor": int(factor),
        "slice_axis": 2,
    }


def _plan_cardiac_thick(out: Path, n_subjects: int, seed: int, overwrite: bool, small: bool, factor: int = 4) -> list:
    _check_thick_slice_args(n_subjects, factor, 2)
    info = _dataset_json(n_subjects, factor, small)
    folder, hr_folder = _prepare_thick_slice_folders(out, "CardiacThick", info, overwrite)
    return [
        (_cardiac_thick_case, (str(folder), str(hr_folder), i, seed, small, int(factor)))
        for i in range(int(n_subjects))
    ]


def write_cardiac_thick(
    out: PathLike,
    n_subjects: int = 20,
    seed: int = 0,
    overwrite: bool = False,
    workers: int = 1,
    small: bool = False,
    factor: int = 4,
) -> Path:
    """Write the CardiacThick set (layout and content in this module's docstring).

    Args:
        out: output root.
        n_subjects: number of subjects.
        seed: data seed; the same seed writes the same files.
        overwrite: replace non-empty ``CardiacThick``/``CardiacThick_HR`` folders.
        workers: processes writing subjects in parallel (the files do not depend on it).
        small: 2.5 mm subjects for tests.
        factor: slice-thickness factor (>= 2).

    Returns:
        The dataset folder ``out/CardiacThick`` (``out/CardiacThick_HR`` is written beside it).

    Raises:
        ValueError: a bad ``factor`` or ``n_subjects``.
        FileExistsError: a dataset folder is not empty and ``overwrite`` is False.
    """
    plan = _plan_cardiac_thick(Path(out), n_subjects, seed, overwrite, small, factor)
    _execute({"CardiacThick": plan}, workers)
    return Path(out) / "CardiacThick"
