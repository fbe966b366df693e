"""Writers of the default data in the real datasets' folder layouts (DESIGN.md section 2).

Each ``write_*`` function writes one dataset folder under ``out`` from seeded phantoms and returns its path;
:func:`write_default_data` writes them all (``python -m tools.make_data`` calls it). Pointing a bundle's
``dataset_dir`` at a real copy of a dataset works the same way, because the readers in
:mod:`common.data.readers` only rely on these layouts.

Intensities are arbitrary units: float32 roughly in [0, 1] for ``DTI_LGE_MI``; int16 scanner-like values
(0 to ~1500) for EMIDEC, ACDC, MS-CMRSeg, IXI and Meningioma, as in the real releases. Normalise in preprocessing.
``Meningioma`` (REHRSeg's nnU-Net-layout thick-slice set) is written by :mod:`common.data.meningioma`, ``CineLGE``
(PSCGAN's paired cine / LGE / label set, int16 images, the PSIR LGE signed) by :mod:`common.data.cine_lge`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import nibabel as nib
import numpy as np
from common.constants import DTI_CHANNELS
from common.data.brain import BrainPhantom, load_mni152
from common.data.phantom_cardiac import CardiacPhantom
from common.typing import PathLike

__all__ = [
    "DATASETS",
    "DEFAULT_SIZES",
    "SMALL_SIZES",
    "write_nifti",
    "write_dti_lge_mi",
    "write_emidec",
    "write_acdc",
    "write_mscmrseg",
    "write_ixi",
    "write_default_data",
]

#: Dataset folder names, in writing order.
DATASETS = (  # append only: _CODES seeds
    "DTI_LGE_MI", "EMIDEC", "ACDC", "MSCMRSeg", "IXI", "Meningioma", "CineLGE", "CardiacThick",
)  # fmt: skip

#: Number of cases per dataset written by default and with ``small=True``.
DEFAULT_SIZES = {
    "DTI_LGE_MI": 48, "EMIDEC": 20, "ACDC": 20, "MSCMRSeg": 10, "IXI": 6, "Meningioma": 40, "CineLGE": 100,
    "CardiacThick": 20,
}  # fmt: skip
SMALL_SIZES = {
    "DTI_LGE_MI": 6, "EMIDEC": 3, "ACDC": 3, "MSCMRSeg": 3, "IXI": 4, "Meningioma": 4, "CineLGE": 4, "CardiacThick": 4,
}  # fmt: skip

_CODES = {name: index + 11 for index, name in enumerate(DATASETS)}
# relative seconds per case
_COST = {
    "IXI": 10.0, "Meningioma": 8.0, "ACDC": 4.0, "MSCMRSeg": 3.0, "EMIDEC": 1.5, "DTI_LGE_MI": 1.0, "CineLGE": 1.0,
    "CardiacThick": 1.0,
}  # fmt: skip
_INTENSITY_GAIN = 1000.0  # float phantom units -> int16 scanner-like units


def _subject_seed(seed: int, dataset: str, index: int) -> int:
    state = np.random.SeedSequence([int(seed), _CODES[dataset], int(index)]).generate_state(1)[0]
    return int(state) & 0x7FFFFFFF


def write_nifti(path: PathLike, data: np.ndarray, affine: np.ndarray, zooms: Sequence[float] | None = None) -> Path:
    """Save ``data`` as NIfTI-1 with ``affine`` (sform and qform, scanner space, mm/ms units).

    Args:
        path: ``.nii.gz`` file (parent folders are created).
        data: array written with its own dtype.
        affine: ``(4, 4)`` voxel-to-world matrix.
        zooms: header voxel sizes for all axes (e.g. with a time step for 4D); default from the affine.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(np.asarray(data), np.asarray(affine, dtype=np.float64))
    image.header.set_xyzt_units("mm", "msec")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    if zooms is not None:
        image.header.set_zooms(tuple(float(z) for z in zooms))
    nib.save(image, str(path))
    return path


def _to_int16(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * _INTENSITY_GAIN), 0, 32767).astype(np.int16)


def _check_empty(folder: Path, overwrite: bool) -> None:
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(
            f"dataset folder {folder} is not empty; pass --overwrite (overwrite=True) to replace it, "
            "or choose another --out."
        )


def _prepare(folder: Path, overwrite: bool) -> Path:
    _check_empty(folder, overwrite)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _check_thick_slice_args(n_subjects: int, factor: int, axis: int) -> None:
    """Refuse a thick-slice dataset's bad subject count, slice factor (>= 2) or through-plane axis."""
    if isinstance(factor, bool) or int(factor) != factor or factor < 2:
        raise ValueError(f"factor must be an integer >= 2, got {factor!r}.")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis!r}.")
    if isinstance(n_subjects, bool) or int(n_subjects) != n_subjects or n_subjects < 1:
        raise ValueError(f"n_subjects must be a positive integer, got {n_subjects!r}.")


def _prepare_thick_slice_folders(out: Path, name: str, info: dict, overwrite: bool) -> tuple[Path, Path]:
    """``out/<name>`` (nnU-Net raw: ``imagesTr``, ``labelsTr``, ``dataset.json`` holding ``info``) and its HR truth
    ``out/<name>_HR`` (``imagesHR``, ``labelsHR``), both empty; both checked before either is touched."""
    _check_empty(out / f"{name}_HR", overwrite)
    folder, hr_folder = _prepare(out / name, overwrite), _prepare(out / f"{name}_HR", overwrite)
    for sub in ("imagesTr", "labelsTr"):
        (folder / sub).mkdir()
    for sub in ("imagesHR", "labelsHR"):
        (hr_folder / sub).mkdir()
    (folder / "dataset.json").write_text(json.dumps(info, indent=2) + "\n")
    return folder, hr_folder


def _timed(function: Callable, args: tuple) -> tuple[object, float]:
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def _execute(plans: dict[str, list[tuple[Callable, tuple]]], workers: int) -> dict[str, tuple[int, float]]:
    """Run every job of every plan (``{dataset: [(function, args)]}``), in one process pool when ``workers > 1``.

    Returns:
        ``{dataset: (number of jobs, summed job seconds)}``.
    """
    jobs = [(name, function, args) for name, plan in plans.items() for function, args in plan]
    jobs.sort(key=lambda job: -_COST.get(job[0], 1.0))  # longest first, for load balance
    stats = {name: [len(plan), 0.0] for name, plan in plans.items()}
    if workers <= 1 or len(jobs) <= 1:
        for name, function, args in jobs:
            stats[name][1] += _timed(function, args)[1]
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            futures = [(name, pool.submit(_timed, function, args)) for name, function, args in jobs]
            for name, future in futures:
                stats[name][1] += future.result()[1]
    return {name: (int(n), float(seconds)) for name, (n, seconds) in stats.items()}


# ---------------------------------------------------------------------------------------------- DTI_LGE_MI
_LGE_SHAPE, _LGE_SPACING = (512, 512), (0.3125, 0.3125, 8.0)
_DTI_SHAPE, _DTI_SPACING = (64, 64), (2.5, 2.5, 8.0)


def _dti_lge_mi_case(folder: str, index: int, seed: int, paired: bool, dti_infarct: dict | None = None) -> str:
    subject = _subject_seed(seed, "DTI_LGE_MI", index)
    phantom = CardiacPhantom(subject, group="MINF", scar=True, no_reflow=False)
    rng = np.random.default_rng([subject, 99])
    low, high = phantom.scar_z_range()
    low, high = max(low, 0.15 * phantom.length), min(high, 0.8 * phantom.length)
    center = tuple(rng.uniform(-5.0, 5.0, 2))  # heart-centred field of view, 160 mm
    z = 0.5 * (low + high)
    for _ in range(20):  # a slice through the scar
        candidate = rng.uniform(low, high) if high > low else z
        if phantom.labels((64, 64), _DTI_SPACING, center=center, z=candidate, scheme="mi").any():
            z = candidate
            break
    case = Path(folder) / f"Case_{index + 1:03d}"
    grid = {"center": center, "z": z}
    lge = phantom.render("lge", _LGE_SHAPE, _LGE_SPACING, supersample=1, acquisition_factor=4, **grid)
    mask = phantom.labels(_LGE_SHAPE, _LGE_SPACING, scheme="mi", **grid)
    affine = phantom.affine(_LGE_SHAPE, _LGE_SPACING, **grid)
    write_nifti(case / "LGE.nii.gz", lge[..., None].astype(np.float32), affine)
    write_nifti(case / "LGE_MI.nii.gz", mask[..., None].astype(np.uint8), affine)
    if paired:
        _write_dti(case / "DTI.nii.gz", phantom, grid, np.random.default_rng([subject, 98]), dti_infarct)
    return case.name


def _write_dti(path: Path, phantom: CardiacPhantom, lge_grid: dict, rng: np.random.Generator, infarct: dict | None):
    """The paired DT-CMR slice of an LGE slice: its own grid, its own (systolic) phase, a residual misregistration.

    Grid: 64 x 64 at 2.5 mm over the LGE's 160 mm field of view, its centre off the LGE's by up to half a DTI voxel
    per axis (written in the affine: the grids are not nested). Misregistration (not in the affine: the headers say
    the slices coincide): the anatomy is shifted 1-2 mm in-plane in a random direction, turned 2-4 degrees and moved
    up to 1.5 mm through-plane, the residual of registering a free-breathing or separately breath-held DT-CMR slice
    to the LGE (values as the issue's 1-2 mm / a few degrees; through-plane a guess of the same size). Phase: the
    subject's systolic trigger (``CardiacPhantom.dti_params``), while LGE and mask are diastolic.
    """
    offset = rng.uniform(-0.5, 0.5, 2) * _DTI_SPACING[0]
    center = (lge_grid["center"][0] + offset[0], lge_grid["center"][1] + offset[1])
    shift, direction = rng.uniform(1.0, 2.0), rng.uniform(0.0, 2.0 * np.pi)
    angle = np.radians(rng.uniform(2.0, 4.0)) * rng.choice([-1.0, 1.0])
    dz = rng.uniform(-1.5, 1.5)
    moved = (center[0] + shift * np.cos(direction), center[1] + shift * np.sin(direction))
    maps = phantom.dti(_DTI_SHAPE, _DTI_SPACING, center=moved, z=lge_grid["z"] + dz, angle=angle, infarct=infarct)
    data = np.stack([maps[name] for name in DTI_CHANNELS], axis=-1)[:, :, None, :]  # (64, 64, 1, C)
    write_nifti(path, data.astype(np.float32), phantom.affine(_DTI_SHAPE, _DTI_SPACING, center=center, z=lge_grid["z"]))


def _plan_dti_lge_mi(
    out: Path, n_cases: int, n_paired: int, seed: int, overwrite: bool, dti_infarct: dict | None = None
) -> list:
    if not 0 <= n_paired <= n_cases:
        raise ValueError(f"n_paired must be in [0, n_cases={n_cases}], got {n_paired}.")
    folder = _prepare(out / "DTI_LGE_MI", overwrite)
    return [(_dti_lge_mi_case, (str(folder), i, seed, i < n_paired, dti_infarct)) for i in range(n_cases)]


def write_dti_lge_mi(
    out: PathLike,
    n_cases: int = 48,
    n_paired: int = 24,
    seed: int = 0,
    overwrite: bool = False,
    workers: int = 1,
    dti_infarct: dict | None = None,
) -> Path:
    """Write the paired DTI-LGE MI set (the SwinSSegNet/CycleGANSeg paper's private layout, defined by us).

    ``DTI_LGE_MI/Case_NNN/LGE.nii.gz``: one short-axis LGE slice as ``(512, 512, 1)`` float32 at
    0.3125 x 0.3125 x 8 mm (heart-centred 160 mm field of view; acquired at 1.25 mm and interpolated, as scanners
    do); ``LGE_MI.nii.gz``: uint8 binary MI mask, same grid; for the first ``n_paired`` cases ``DTI.nii.gz``:
    ``(64, 64, 1, 3)`` float32 at 2.5 x 2.5 x 8 mm, the channels :data:`common.constants.DTI_CHANNELS` (S0, MD in
    1e-3 mm^2/s, FA) of a simulated DT-CMR acquisition of the same slice (b = 0 and six b = 500 s/mm^2 directions,
    Rician noise, tensor fit: :meth:`CardiacPhantom.dti`), in systole, on its own grid over the same field of view,
    with a residual misregistration of 1-2 mm and 2-4 degrees (:func:`_write_dti`). DTI and LGE of a case share the
    (diastolic, LGE-grid) MI mask, as the paper's registered pairs. Every case has scar in its LGE slice.

    Args:
        dti_infarct: overrides of the infarct's diffusion contrast for every case (``md_elevation``,
            ``fa_reduction``, ``s0_elevation``; default: each subject's literature-range draw), for contrast sweeps.

    Returns:
        The dataset folder ``out/DTI_LGE_MI``.
    """
    _execute({"DTI_LGE_MI": _plan_dti_lge_mi(Path(out), n_cases, n_paired, seed, overwrite, dti_infarct)}, workers)
    return Path(out) / "DTI_LGE_MI"


# ---------------------------------------------------------------------------------------------- EMIDEC
def _emidec_case(folder: str, index: int, seed: int, small: bool) -> str:
    subject = _subject_seed(seed, "EMIDEC", index)
    normal = index % 3 == 2  # about a third of EMIDEC's cases are normal (Case_N...)
    phantom = CardiacPhantom(subject, group="NOR" if normal else "MINF", scar=not normal)
    rng = np.random.default_rng([subject, 99])
    if small:
        shape, spacing = (64, 64, 4), (2.5, 2.5, 20.0)
    else:
        dx = float(np.round(rng.uniform(1.25, 1.75), 4))
        shape, spacing = (160, 160, int(rng.integers(6, 10))), (dx, dx, 10.0)
    grid = {"center": tuple(rng.uniform(-20.0, 20.0, 2)), "z": float(rng.uniform(-4.0, 6.0))}
    name = f"Case_{'N' if normal else 'P'}{index + 1:03d}"
    image = phantom.render("lge", shape, spacing, **grid)
    label = phantom.labels(shape, spacing, scheme="emidec", **grid)
    affine = phantom.affine(shape, spacing, **grid)
    write_nifti(Path(folder) / name / "Images" / f"{name}.nii.gz", _to_int16(image), affine)
    write_nifti(Path(folder) / name / "Contours" / f"{name}.nii.gz", label.astype(np.uint8), affine)
    return name


def _plan_emidec(out: Path, n_cases: int, seed: int, overwrite: bool, small: bool) -> list:
    folder = _prepare(out / "EMIDEC", overwrite)
    return [(_emidec_case, (str(folder), i, seed, small)) for i in range(n_cases)]


def write_emidec(
    out: PathLike, n_cases: int = 20, seed: int = 0, overwrite: bool = False, workers: int = 1, small: bool = False
) -> Path:
    """Write EMIDEC-style LGE stacks: ``EMIDEC/Case_XNNN/{Images,Contours}/Case_XNNN.nii.gz``.

    ``X`` is ``P`` (pathological, with scar) or ``N`` (normal, every third case). Images are int16 LGE stacks
    ``(160, 160, 6-9)`` at 1.25-1.75 mm in-plane and 10 mm slices; contours use ``EMIDEC_LABELS`` (0 background,
    1 cavity, 2 myocardium, 3 infarction, 4 no-reflow).

    Returns:
        The dataset folder ``out/EMIDEC``.
    """
    _execute({"EMIDEC": _plan_emidec(Path(out), n_cases, seed, overwrite, small)}, workers)
    return Path(out) / "EMIDEC"


# ---------------------------------------------------------------------------------------------- ACDC
_ACDC_GROUP_ORDER = ("DCM", "HCM", "MINF", "NOR", "RV")  # ACDC training: 20 patients per group, in this order


def _acdc_case(folder: str, index: int, n_patients: int, seed: int, small: bool, n_frames: int) -> str:
    subject = _subject_seed(seed, "ACDC", index)
    group = _ACDC_GROUP_ORDER[(index * len(_ACDC_GROUP_ORDER)) // n_patients]
    phantom = CardiacPhantom(subject, group=group)
    rng = np.random.default_rng([subject, 99])
    if small:
        shape, spacing = (64, 64, 4), (2.5, 2.5, 20.0)
    else:
        dx = float(np.round(rng.uniform(1.25, 1.5), 4))
        shape, spacing = (160, 160, int(rng.integers(8, 11))), (dx, dx, 10.0)
    grid = {"center": tuple(rng.uniform(-20.0, 20.0, 2)), "z": float(rng.uniform(-6.0, 4.0))}
    name = f"patient{index + 1:03d}"
    patient = Path(folder) / name
    affine = phantom.affine(shape, spacing, **grid)
    frames = [phantom.render("bssfp", shape, spacing, phase=t, n_phases=n_frames, **grid) for t in range(n_frames)]
    cine = _to_int16(np.stack(frames, axis=-1))
    write_nifti(patient / f"{name}_4d.nii.gz", cine, affine, zooms=(*spacing, 1.0))
    es = phantom.es_phase(n_frames)
    for frame in (0, es):
        label = phantom.labels(shape, spacing, phase=frame, n_phases=n_frames, scheme="acdc", **grid)
        write_nifti(patient / f"{name}_frame{frame + 1:02d}.nii.gz", cine[..., frame], affine)
        write_nifti(patient / f"{name}_frame{frame + 1:02d}_gt.nii.gz", label.astype(np.uint8), affine)
    info = {
        "ED": 1,
        "ES": es + 1,
        "Group": group,
        "Height": float(np.round(rng.uniform(150, 195), 1)),
        "NbFrame": n_frames,
        "Weight": float(np.round(rng.uniform(50, 110), 1)),
    }
    (patient / "Info.cfg").write_text("".join(f"{key}: {value}\n" for key, value in info.items()))
    return name


def _plan_acdc(out: Path, n_patients: int, seed: int, overwrite: bool, small: bool, n_frames: int | None) -> list:
    n_frames = (6 if small else 15) if n_frames is None else int(n_frames)
    if n_frames < 2:
        raise ValueError(f"n_frames must be >= 2, got {n_frames}.")
    folder = _prepare(out / "ACDC", overwrite) / "training"
    folder.mkdir(parents=True, exist_ok=True)
    return [(_acdc_case, (str(folder), i, n_patients, seed, small, n_frames)) for i in range(n_patients)]


def write_acdc(
    out: PathLike,
    n_patients: int = 20,
    seed: int = 0,
    overwrite: bool = False,
    workers: int = 1,
    small: bool = False,
    n_frames: int | None = None,
) -> Path:
    """Write ACDC-style cine stacks: ``ACDC/training/patientNNN/``.

    Each patient folder holds ``patientNNN_4d.nii.gz`` (int16 ``(X, Y, Z, NbFrame)``), the end-diastolic
    ``patientNNN_frame01.nii.gz`` and end-systolic ``patientNNN_frameXX.nii.gz`` frames (exactly the 4D's frames)
    with ``_gt`` labels (``ACDC_LABELS``: 1 RV, 2 MYO, 3 LV) and ``Info.cfg`` (ED, ES, Group, Height, NbFrame,
    Weight). Groups follow ACDC's order (DCM, HCM, MINF, NOR, RV in equal blocks). Default geometry: 160x160,
    1.25-1.5 mm in-plane, 8-10 slices of 10 mm, ``n_frames`` frames per cycle (default 15, within ACDC's 12-35
    range, to keep writing fast; 6 when ``small``; the phantom itself renders any number, e.g. 25 for PSCGAN).

    Returns:
        The dataset folder ``out/ACDC`` (cases in ``out/ACDC/training``).
    """
    _execute({"ACDC": _plan_acdc(Path(out), n_patients, seed, overwrite, small, n_frames)}, workers)
    return Path(out) / "ACDC"


# ---------------------------------------------------------------------------------------------- MS-CMRSeg
def _mscmrseg_case(folder: str, index: int, seed: int, small: bool, lge_labelled: bool) -> str:
    subject = _subject_seed(seed, "MSCMRSeg", index)
    rng = np.random.default_rng([subject, 99])
    phantom = CardiacPhantom(subject, group="MINF" if rng.uniform() < 0.6 else "NOR")
    name = f"patient{index + 1}"
    if small:
        c0_shape, c0_spacing = (64, 64, 4), (2.5, 2.5, 20.0)
        lge_shape, lge_spacing = (80, 80, 5), (2.0, 2.0, 16.0)
    else:  # bSSFP: 1.25 mm, 8-12 mm slices; LGE: 0.75 mm, 5 mm slices (MS-CMRSeg 2019 protocol)
        c0_shape, c0_spacing = (192, 192, int(rng.integers(8, 12))), (1.25, 1.25, 10.0)
        lge_shape, lge_spacing = (224, 224, int(rng.integers(12, 16))), (0.75, 0.75, 5.0)
    # LGE: physical magnitude inversion recovery at mid-diastole (CardiacPhantom "lge_ir": post-contrast T1s, an
    # imperfectly nulling TI, patchy scar, motion blur, unnormalised coil profile, Rician noise at blood SNR 10-20),
    # acquired at twice the written voxel size (1.5 mm; 4 mm when small) and interpolated, as scanners reconstruct
    for modality, shape, spacing, contrast, phase, supersample, factor in (
        ("C0", c0_shape, c0_spacing, "bssfp", 0, 2, 1),
        ("LGE", lge_shape, lge_spacing, "lge_ir", 17, 1, 2),
    ):
        grid = {"center": tuple(rng.uniform(-25.0, 25.0, 2)), "z": float(rng.uniform(-6.0, 6.0))}
        if modality == "LGE":
            grid["z"] = float(0.5 * (phantom.epi_length - (shape[2] - 1) * spacing[2]) + rng.uniform(-4.0, 4.0))
        # each slice in its own breath-hold: the heart sits where that hold left it (not in the affine)
        levels = np.random.default_rng([subject, 97, ("C0", "LGE").index(modality)]).uniform(0.0, 1.0, shape[2])
        grid["slice_motion"] = phantom.breath_hold_motion(levels)
        image = phantom.render(
            contrast, shape, spacing, phase=phase, supersample=supersample, acquisition_factor=factor, **grid
        )
        affine = phantom.affine(shape, spacing, center=grid["center"], z=grid["z"])
        write_nifti(Path(folder) / f"{name}_{modality}.nii.gz", _to_int16(image), affine)
        if modality == "C0" or lge_labelled:
            label = phantom.labels(shape, spacing, phase=phase, scheme="mscmr", **grid)
            write_nifti(Path(folder) / f"{name}_{modality}_manual.nii.gz", label.astype(np.uint16), affine)
    return name


def _plan_mscmrseg(
    out: Path, n_patients: int, seed: int, overwrite: bool, small: bool, n_lge_labelled: int | None = None
) -> list:
    if n_lge_labelled is None:
        n_lge = min(5, max(1, n_patients // 2))
    elif isinstance(n_lge_labelled, bool) or int(n_lge_labelled) != n_lge_labelled or not 0 <= n_lge_labelled:
        raise ValueError(f"n_lge_labelled must be a non-negative integer or None, got {n_lge_labelled!r}.")
    elif n_lge_labelled > n_patients:
        raise ValueError(f"n_lge_labelled must be at most n_patients={n_patients}, got {n_lge_labelled}.")
    else:
        n_lge = int(n_lge_labelled)
    folder = _prepare(out / "MSCMRSeg", overwrite)
    return [(_mscmrseg_case, (str(folder), i, seed, small, i < n_lge)) for i in range(n_patients)]


def write_mscmrseg(
    out: PathLike,
    n_patients: int = 10,
    seed: int = 0,
    overwrite: bool = False,
    workers: int = 1,
    small: bool = False,
    n_lge_labelled: int | None = None,
) -> Path:
    """Write MS-CMRSeg 2019-style data: ``MSCMRSeg/patientN_{C0,LGE}.nii.gz`` and ``patientN_C0_manual.nii.gz``.

    bSSFP (C0: 192x192, 1.25 mm, 8-11 slices of 10 mm) and LGE (224x224, 0.75 mm, 12-15 slices of 5 mm) of a
    patient show the same anatomy on different, unregistered grids (as in the challenge); int16. Labels use
    ``MSCMR_LABELS`` (200 MYO, 500 LV, 600 RV; uint16). Every C0 is labelled; ``patientN_LGE_manual.nii.gz``
    exists only for the first ``n_lge_labelled`` patients.

    The LGE is a physical magnitude inversion-recovery rendering (``CardiacPhantom`` contrast ``lge_ir``: literature
    post-contrast T1s at 1.5 T, a per-subject TI near the myocardial null, patchy scar about as bright as blood,
    motion blur, an unnormalised surface-coil profile, Rician noise at blood SNR 10-20), acquired at 1.5 mm and
    interpolated to 0.75 mm; the bSSFP is unchanged.

    Each slice of either stack is acquired in its own breath-hold, and the heart sits where that hold left it:
    a level drawn uniformly between end-expiration and end-inspiration scales the subject's tidal heart translation
    (``CardiacPhantom.breath_hold_motion``: caudal 2.4-8 mm, anterior -0.4-5.1 mm, Shechter et al. 2004), projected
    into the short-axis grid. The motion is in the images and their labels, not in the affines, so the two stacks
    (and the slices of one stack) are misaligned by a few millimetres as in real exams.

    Args:
        out: output root (the dataset goes to ``out/MSCMRSeg``).
        n_patients: number of patients.
        seed: data seed.
        overwrite: replace a non-empty dataset folder.
        workers: processes writing patients in parallel (the files do not depend on it).
        small: tiny grids for tests.
        n_lge_labelled: how many patients (the first ones) get an ``_LGE_manual`` label, in ``[0, n_patients]``;
            ``None`` keeps the challenge's proportion, ``min(5, max(1, n_patients // 2))`` (MS-CMRSeg 2019 released
            5 labelled LGE). Pass more to have evaluation labels for held-out LGE volumes (e.g. 35 of 45 patients
            leaves 30 labelled LGE after 5 for validation). The images do not depend on it.

    Returns:
        The dataset folder ``out/MSCMRSeg``.

    Raises:
        ValueError: ``n_lge_labelled`` negative, not an integer or above ``n_patients``.
    """
    plan = _plan_mscmrseg(Path(out), n_patients, seed, overwrite, small, n_lge_labelled)
    _execute({"MSCMRSeg": plan}, workers)
    return Path(out) / "MSCMRSeg"


# ---------------------------------------------------------------------------------------------- IXI
def _ixi_names(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng([seed, _CODES["IXI"]])
    ids = np.sort(rng.choice(np.arange(2, 100), size=n, replace=False))
    scans = np.sort(rng.choice(np.arange(600, 1100), size=n, replace=False))
    return [f"IXI{i:03d}-Guys-{s:04d}" for i, s in zip(ids, scans)]


def _ixi_case(folder: str, tissue_folder: str, name: str, index: int, seed: int, small: bool) -> str:
    subject = BrainPhantom(_subject_seed(seed, "IXI", index), downsample=3 if small else 1).sample()
    affine = subject["affine"]
    t1 = np.clip(np.rint(subject["t1"]), 0, 32767).astype(np.int16)
    write_nifti(Path(folder) / f"{name}-T1.nii.gz", t1, affine)
    for key in ("gm", "wm", "csf"):  # probabilities stored as uint8 with scl_slope 1/255: read back as floats
        image = nib.Nifti1Image(np.rint(subject[key] * 255).astype(np.uint8), affine)
        image.header.set_slope_inter(1.0 / 255.0, 0.0)
        image.header.set_xyzt_units("mm", "msec")
        image.set_qform(affine, code=1)
        image.set_sform(affine, code=1)
        nib.save(image, str(Path(tissue_folder) / f"{name}-{key.upper()}.nii.gz"))
    write_nifti(Path(tissue_folder) / f"{name}-seg.nii.gz", subject["label"], affine)
    return name


def _plan_ixi(out: Path, n_subjects: int, seed: int, overwrite: bool, small: bool) -> list:
    _check_empty(out / "IXI_tissue", overwrite)
    folder = _prepare(out / "IXI", overwrite)
    tissue = _prepare(out / "IXI_tissue", overwrite)
    load_mni152(crop=True, downsample=3 if small else 1)  # cached before the workers fork
    names = _ixi_names(n_subjects, seed)
    return [(_ixi_case, (str(folder), str(tissue), name, i, seed, small)) for i, name in enumerate(names)]


def write_ixi(
    out: PathLike, n_subjects: int = 6, seed: int = 0, overwrite: bool = False, workers: int = 1, small: bool = False
) -> Path:
    """Write IXI-style T1 volumes from the MNI152 2009 template (:class:`common.data.brain.BrainPhantom`).

    ``IXI/IXI0NN-Guys-0NNN-T1.nii.gz``: int16 T1 at 1 mm (3 mm when ``small``); ``IXI_tissue/<name>-{GM,WM,CSF}``
    ``.nii.gz``: tissue probabilities (uint8 with slope 1/255, read back as [0, 1] floats) and ``<name>-seg.nii.gz``:
    uint8 hard labels (``BRAIN_LABELS``: 1 CSF, 2 GM, 3 WM), on the same grid.

    Returns:
        The ``out/IXI`` folder (``out/IXI_tissue`` is written beside it).
    """
    _execute({"IXI": _plan_ixi(Path(out), n_subjects, seed, overwrite, small)}, workers)
    return Path(out) / "IXI"


# ---------------------------------------------------------------------------------------------- all
def write_default_data(
    out: PathLike,
    seed: int = 0,
    small: bool = False,
    datasets: Sequence[str] | None = None,
    overwrite: bool = False,
    workers: int = 1,
    log: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Write the default datasets under ``out`` (what ``python -m tools.make_data`` runs).

    Args:
        out: output root; each dataset gets its folder (``out/DTI_LGE_MI``, ``out/EMIDEC``, ``out/ACDC``,
            ``out/MSCMRSeg``, ``out/IXI`` + ``out/IXI_tissue``, ``out/Meningioma`` + ``out/Meningioma_HR``,
            ``out/CineLGE``, ``out/CardiacThick`` + ``out/CardiacThick_HR``).
        seed: data seed; the same seed writes the same files.
        small: tiny versions for tests (:data:`SMALL_SIZES` cases, small grids, same layouts).
        datasets: subset of :data:`DATASETS` (default all).
        overwrite: replace non-empty dataset folders instead of raising ``FileExistsError``.
        workers: processes sharing the cases of all datasets (0: one per CPU); the files do not depend on it.
        log: called with one line per dataset (cases and seconds of work).

    Returns:
        ``{dataset name: dataset folder}``.

    Raises:
        ValueError: an unknown dataset name.
        FileExistsError: a dataset folder is not empty and ``overwrite`` is False (checked before writing anything).

    Examples::

        >>> paths = write_default_data("/tmp/data", small=True, datasets=["EMIDEC"])  # doctest: +SKIP
        >>> emidec_cases(paths["EMIDEC"])  # doctest: +SKIP
    """
    names = list(DATASETS) if datasets is None else list(datasets)
    unknown = [name for name in names if name not in DATASETS]
    if unknown:
        raise ValueError(f"datasets must be names from {DATASETS}, got unknown {unknown}.")
    sizes = SMALL_SIZES if small else DEFAULT_SIZES
    out = Path(out)
    # second folders written beside
    siblings = {"IXI": ("IXI_tissue",), "Meningioma": ("Meningioma_HR",), "CardiacThick": ("CardiacThick_HR",)}
    for name in names:
        for folder in (name, *siblings.get(name, ())):
            _check_empty(out / folder, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    plans = {}
    for name in names:
        n = sizes[name]
        if name == "DTI_LGE_MI":
            plans[name] = _plan_dti_lge_mi(out, n, n // 2, seed, overwrite)
        elif name == "EMIDEC":
            plans[name] = _plan_emidec(out, n, seed, overwrite, small)
        elif name == "ACDC":
            plans[name] = _plan_acdc(out, n, seed, overwrite, small, None)
        elif name == "MSCMRSeg":
            plans[name] = _plan_mscmrseg(out, n, seed, overwrite, small)
        elif name == "IXI":
            plans[name] = _plan_ixi(out, n, seed, overwrite, small)
        elif name == "Meningioma":
            from common.data.meningioma import _plan_meningioma  # here: meningioma imports this module

            plans[name] = _plan_meningioma(out, n, seed, overwrite, small)
        elif name == "CardiacThick":
            from common.data.cardiac_thick import _plan_cardiac_thick  # here: cardiac_thick imports this module

            plans[name] = _plan_cardiac_thick(out, n, seed, overwrite, small)
        else:
            from common.data.cine_lge import _plan_cine_lge  # here: cine_lge imports this module

            plans[name] = _plan_cine_lge(out, n, seed, overwrite)
    workers = int(workers) if workers else (os.cpu_count() or 1)
    stats = _execute(plans, max(1, workers))
    if log is not None:
        for name in names:
            log(f"{name}: {stats[name][0]} cases, {stats[name][1]:.1f} s of work -> {out / name}")
    return {name: out / name for name in names}
