"""CineLGE: paired cine MRI, LGE and tissue labels of ischaemic and normal hearts, PSCGAN's default data.

PSCGAN (Xu et al., pscgan.txt sections 6.1-6.2) maps non-enhanced short-axis cine MRI (25 phases of one cardiac cycle)
to an LGE-equivalent image and a diagnosis-related segmentation (blood pool, healthy myocardium, scar). Its cohort
(280 patients: 230 with ischaemic heart disease, 50 normal controls; retrospectively gated bSSFP cine at 3 T, 25
phases, ~40 ms temporal resolution, field of view 286 x 340 mm, matrix 216 x 256; PSIR LGE in the same orientations
and slice thickness) was cropped to 64 x 64 regions of interest around the left ventricle, and cine and LGE were
registered at end-diastole. The labels were drawn on LGE. The data are private, so :func:`write_cine_lge` writes the
same task from :class:`~common.data.phantom_cardiac.CardiacPhantom` subjects.

Layout (the one to fill with real data; ``NNN`` a case number, natural-sorted)::

    CineLGE/caseNNN/caseNNN_cine.nii.gz   (X, Y, S, T) cine, T = 25 frames of one cycle (frame 0 = end-diastole),
                                          S short-axis slices base -> apex; zooms (dx, dy, dz, 40.0), units mm/msec
                                          (dz: the distance between slice centres)
    CineLGE/caseNNN/caseNNN_lge.nii.gz    (X, Y, S) LGE, registered to the cine at end-diastole (same grid, affine);
                                          PSIR (signed) or magnitude; normalise per image
    CineLGE/caseNNN/caseNNN_label.nii.gz  (X, Y, S) uint8, PSCGAN_LABELS (common.constants): 0 other, 1 LV blood
                                          pool (papillary muscles included), 2 healthy myocardium, 3 scar; at
                                          end-diastole
    CineLGE/cases.json                    per-case notes of the generated data (group, scar, slice positions, ES
                                          frame); documentation only, nothing reads it

The generated cases: a 64 x 64 crop at 1.328125 mm (340 mm / 256, the paper's pixel) centred on the LV axis with a
U(-4, 4) mm error per axis (a localiser is never perfect); three 8 mm slices at about 20 %, 45 % and 70 % of the LV
length from the base (basal, mid, apical; so dz is a quarter of the LV length, ~19-23 mm, with gaps); the phantom's
world frame (axis-aligned, +y anterior, the RV on the -x side). Cine: the ``bssfp`` contrast at every phase, 2x2 point
samples per pixel and three through the slice, Rician noise with blood SNR ~35-45 (phantom ``bssfp`` sigma 0.025 of a
~0.95 blood signal; real 1.5-3 T cine reaches roughly 20-60), int16. Scar is not in the cine intensities (chronic
infarct is isointense to remote myocardium on non-enhanced bSSFP: Zhang et al. 2019 Radiology 291:606); it shows only
through motion, since scar segments barely move inwards or thicken (the phantom's ``hypokinesis``), and through chronic
wall thinning. LGE: the physical ``lge_ir`` contrast (post-contrast T1s, imperfect nulling, patchy scar, motion blur,
coil profile) at phase 0, acquired at the written pixel, in the phase-sensitive reconstruction the paper used (PSIR: the
signed real part with Gaussian noise, so a too-short TI leaves remote myocardium negative, darker than scar, rather than
bright as in a magnitude image), signed int16. Label: the ``pscgan`` scheme at phase 0. About 18 % of the cases (2 of
11, the paper's 50 of 280) are normal controls (group ``NOR``, no scar); the others are ``MINF`` subjects (globally
reduced function, one or two transmural or sub-endocardial scar sectors over several AHA segments; chronic, so no
microvascular-obstruction core).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from common.data.layouts import _INTENSITY_GAIN, _execute, _prepare, _subject_seed, _to_int16, write_nifti
from common.data.phantom_cardiac import CardiacPhantom
from common.data.readers import natural_key
from common.data.validation import DatasetError
from common.typing import PathLike

__all__ = ["CINE_LGE_HINT", "write_cine_lge", "cine_lge_cases"]

#: How to get the default data when a CineLGE folder is missing.
CINE_LGE_HINT = "run `python -m tools.make_data --datasets CineLGE` to write the default data, or point at a copy"

_SHAPE = (64, 64)
_PIXEL = 340.0 / 256.0  # mm: the paper's 340 mm field of view over 256 pixels
_SLICE_THICKNESS = 8.0  # mm
_N_FRAMES = 25
_FRAME_MS = 40.0  # the paper's average temporal resolution
_CENTRE_ERROR = 4.0  # mm, per in-plane axis
_CONTROL_INDICES = (2, 7)  # of every 11 cases: 18 % normal controls (the paper: 50 of 280)
_FILES = ("cine", "lge", "label")


def _signed_int16(image: np.ndarray) -> np.ndarray:
    """PSIR keeps its sign: int16 in the scanner-like units of the other writers (x 1000), not clipped at 0."""
    return np.clip(np.rint(image * _INTENSITY_GAIN), -32768, 32767).astype(np.int16)


def _slice_fractions(n_slices: int) -> np.ndarray:
    """Positions of the slices as fractions of the LV length from the base: 0.2 to 0.7 (one slice: 0.45)."""
    return np.array([0.45]) if n_slices == 1 else np.linspace(0.2, 0.7, n_slices)


def _case_setup(index: int, seed: int, n_slices: int) -> tuple[CardiacPhantom, dict, tuple, dict]:
    """The phantom, render grid, spacing and metadata of one case (cheap: parameters only, no rendering)."""
    subject = _subject_seed(seed, "CineLGE", index)
    control = index % 11 in _CONTROL_INDICES
    # chronic infarcts: microvascular obstruction has resolved into scar, so no dark no-reflow core on LGE
    phantom = CardiacPhantom(subject, group="NOR" if control else "MINF", scar=not control, no_reflow=False)
    rng = np.random.default_rng([subject, 99])
    center = tuple(float(v) for v in rng.uniform(-_CENTRE_ERROR, _CENTRE_ERROR, 2))
    fractions = _slice_fractions(n_slices)
    first = float(fractions[0] * phantom.length + rng.uniform(-2.0, 2.0))
    step = float(np.round((fractions[1] - fractions[0]) * phantom.length, 2)) if n_slices > 1 else _SLICE_THICKNESS
    spacing = (_PIXEL, _PIXEL, step)
    name = f"case{index + 1:03d}"
    meta = {
        "case": name,
        "group": phantom.params["group"],
        "has_scar": phantom.has_scar(),
        "slice_positions_mm": [round(float(z), 2) for z in phantom.slice_positions(n_slices, step, first)],
        "lv_length_mm": round(phantom.length, 2),
        "es_frame": phantom.es_phase(_N_FRAMES),
        "center_error_mm": [round(v, 2) for v in center],
    }
    return phantom, {"center": center, "z": first}, spacing, meta


def _cine_lge_case(folder: str, index: int, seed: int, n_slices: int) -> str:
    phantom, grid, spacing, meta = _case_setup(index, seed, n_slices)
    shape = (*_SHAPE, n_slices)
    through = {"slice_thickness": _SLICE_THICKNESS, "slice_samples": 3}
    frames = [
        phantom.render("bssfp", shape, spacing, phase=t, n_phases=_N_FRAMES, supersample=2, **through, **grid)
        for t in range(_N_FRAMES)
    ]
    lge = phantom.render(
        "lge_ir", shape, spacing, phase=0, supersample=2, acquisition_factor=1, phase_sensitive=True, **through, **grid
    )
    label = phantom.labels(shape, spacing, phase=0, n_phases=_N_FRAMES, scheme="pscgan", **grid)
    affine = phantom.affine(shape, spacing, **grid)
    case = Path(folder) / meta["case"]
    name = meta["case"]
    write_nifti(case / f"{name}_cine.nii.gz", _to_int16(np.stack(frames, axis=-1)), affine, (*spacing, _FRAME_MS))
    write_nifti(case / f"{name}_lge.nii.gz", _signed_int16(lge), affine)
    write_nifti(case / f"{name}_label.nii.gz", label.astype(np.uint8), affine)
    return name


def _plan_cine_lge(out: Path, n_cases: int, seed: int, overwrite: bool, n_slices: int = 3) -> list:
    for argument, value in (("n_cases", n_cases), ("n_slices", n_slices)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{argument} must be a positive integer, got {value!r}.")
    folder = _prepare(out / "CineLGE", overwrite)
    notes = [_case_setup(i, seed, int(n_slices))[3] for i in range(int(n_cases))]
    (folder / "cases.json").write_text(json.dumps(notes, indent=1) + "\n")
    return [(_cine_lge_case, (str(folder), i, seed, int(n_slices))) for i in range(int(n_cases))]


def write_cine_lge(
    out: PathLike, n_cases: int = 100, seed: int = 0, overwrite: bool = False, workers: int = 1, n_slices: int = 3
) -> Path:
    """Write the CineLGE set (layout and content in this module's docstring).

    Args:
        out: output root (the dataset goes to ``out/CineLGE``).
        n_cases: number of cases (every 11 cases hold 2 normal controls).
        seed: data seed; the same seed writes the same files.
        overwrite: replace a non-empty ``CineLGE`` folder.
        workers: processes writing cases in parallel (the files do not depend on it).
        n_slices: short-axis slices per case, evenly from 20 % to 70 % of the LV length (one: 45 %).

    Returns:
        The dataset folder ``out/CineLGE``.

    Raises:
        ValueError: ``n_cases`` or ``n_slices`` not a positive integer.
        FileExistsError: the folder is not empty and ``overwrite`` is False.

    Examples::

        >>> folder = write_cine_lge("/tmp/data", n_cases=2)  # doctest: +SKIP
        >>> [case["case"] for case in cine_lge_cases(folder)]  # doctest: +SKIP
        ['case001', 'case002']
    """
    _execute({"CineLGE": _plan_cine_lge(Path(out), n_cases, seed, overwrite, n_slices)}, workers)
    return Path(out) / "CineLGE"


def cine_lge_cases(root: PathLike) -> list[dict[str, str]]:
    """Cases of CineLGE: ``CineLGE/caseNNN/caseNNN_{cine,lge,label}.nii.gz``, natural-sorted.

    Args:
        root: the ``CineLGE`` folder or its parent.

    Returns:
        ``[{"case", "cine", "lge", "label"}]`` with absolute paths.

    Raises:
        DatasetError: (a ``FileNotFoundError``) the folder is missing or holds no case folder, or a case folder lacks
            one of its three files (named).
    """
    given = Path(root).expanduser().resolve()
    layout = "CineLGE/caseNNN/caseNNN_{cine,lge,label}.nii.gz"
    if not given.is_dir():
        raise DatasetError(
            f"no CineLGE folder at {given} (folder does not exist); expected `{layout}`; {CINE_LGE_HINT}."
        )
    folders: list[Path] = []
    for candidate in (given / "CineLGE", given):
        if candidate.is_dir():
            folders = [d for d in candidate.glob("case*") if d.is_dir() and d.name[4:].isdigit()]
            if folders:
                break
    if not folders:
        detail = " (folder is empty)" if not any(given.iterdir()) else ""
        raise DatasetError(f"no CineLGE case folder under {given}{detail}; expected `{layout}`; {CINE_LGE_HINT}.")
    cases = []
    for case in sorted(folders, key=lambda d: natural_key(d.name)):
        entry = {"case": case.name}
        for key in _FILES:
            path = case / f"{case.name}_{key}.nii.gz"
            if not path.is_file():
                raise DatasetError(
                    f"case folder {case} has no {path.name}; each case needs {', '.join(_FILES)} files "
                    f"(`{layout}`): add it or remove the case folder."
                )
            entry[key] = str(path)
        cases.append(entry)
    return cases
