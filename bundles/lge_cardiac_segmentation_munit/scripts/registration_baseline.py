"""Registration baseline (paper Table 1, row 1): each patient's bSSFP labels registered onto the same patient's LGE.

Chen et al., "Unsupervised Multi-modal Style Transfer for Cardiac MR Segmentation" (STACOM 2019), section 3.3: "each
LGE segmentation result was obtained by directly registering the corresponding bSSFP labels to the LGE image using
MIRTK [...] mutual information-based registration (Rigid+Affine+FFD) between the two images". MIRTK is not on PyPI;
this uses elastix (``pip install itk-elastix``) with the same model: its default "rigid", "affine" and "bspline"
(free-form deformation) parameter maps, all with the Mattes mutual information metric, run in that order.

Usage (from the bundle root)::

    python -m scripts.registration_baseline --dataset_dir ../../data/MSCMRSeg --output_dir eval/registration_baseline
    python -m scripts.registration_baseline --dataset_dir ../../data/MSCMRSeg --output_dir /tmp/reg \
        --cases patient1,patient2 --overwrite true

For every patient with ``patientN_C0.nii.gz``, ``patientN_C0_manual.nii.gz`` and ``patientN_LGE.nii.gz``, the bSSFP
image (moving) is registered to the LGE image (fixed) in physical (scanner) space, and the bSSFP labels are warped
with nearest-neighbour interpolation onto the LGE grid: ``<output_dir>/patientN_LGE_registered.nii.gz`` (the LGE's
affine and shape, uint16 values in {0, 200, 500, 600}). Score it against ``patientN_LGE_manual.nii.gz``.

Settings, and what differs from elastix's defaults (every change was needed on our MS-CMRSeg-geometry phantoms):

- Initial alignment: the images' own geometry (their NIfTI affines, i.e. scanner coordinates, as MIRTK uses them).
  Both sequences of one exam share the scanner frame, not the field of view, so aligning the centres of the two
  fields of view would add their offset (tens of mm) instead of removing a misalignment. The registration then
  corrects what the headers cannot: breath-hold and cardiac-phase differences.
- Metric region (``mask_margin=20`` mm): mutual information is sampled on the LGE only within the bSSFP labels dilated
  in-plane by ``mask_margin``, slice by slice, placed on the LGE grid by the headers. The paper does not say whether
  MIRTK was masked; whole-image MI (``--mask_margin 0``) let the body outline and the thick bSSFP slices pull the
  heart away (1 of 5 phantom patients fell from Dice 0.88 without registration to 0.66). ``ErodeMask false``: elastix's
  default erodes the mask at the coarse levels, which left no voxel on thin stacks.
- Rigid (Euler) and affine: elastix's maps (256 iterations, 2048 random samples, adaptive stochastic gradient
  descent, Mattes MI with 32 bins) with ``resolutions=3`` levels (default 4): with a fourth level (Gaussian sigma of
  4 voxels, 40-80 mm across the slices) the affine stage diverged on a thin-stack phantom; 3 levels gave the same Dice
  on the full-size ones.
- B-spline (FFD; MI plus elastix's default bending-energy penalty): ``bspline_grid_spacing=20`` mm (default 10; a
  10 mm grid, one control point per bSSFP slice, fitted intensity differences: lower Dice), ``bspline_resolutions=2``
  and ``bspline_iterations=128`` (defaults 4 and 256: this stage dominates the run time, and the defaults take
  minutes per case on 2 CPU cores).
- No resampled intensity image is computed (``WriteResultImage false``): only the labels are warped.

Run time: ~15 s to load elastix's ITK module once per process, then ~20 s per case on 2 CPU cores (the cost is set
by iterations x samples, hardly by the image size). Thick-slice data: on stacks of 4-5 slices of 16-20 mm the FFD
stage can overfit (``--bspline_grid_spacing 40`` helped there); MS-CMRSeg stacks have 8-15 slices of 5-10 mm.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from common.constants import MSCMR_LABELS
from common.data import check_nifti, mscmrseg_cases, write_nifti
from common.flags import as_flag
from scipy import ndimage

__all__ = ["registration_baseline", "registration_parameters", "register_labels"]

#: elastix's default parameter maps, in the paper's order (Rigid + Affine + FFD)
STAGES = ("rigid", "affine", "bspline")
OUTPUT_SUFFIX = "_LGE_registered.nii.gz"
ELASTIX_HINT = "the registration baseline needs elastix: pip install itk-elastix (wheels must match itk's version)"


def _require_elastix():
    """``itk`` with the elastix module, or an ImportError that says what to install (checked without loading it:
    itk loads its modules lazily, and elastix's takes ~15 s of CPU on first use)."""
    try:
        import itk

        found = importlib.util.find_spec("itk.ElastixPython") is not None
    except ImportError as error:
        raise ImportError(f"{ELASTIX_HINT} ({type(error).__name__}: {error}).") from error
    if not found:
        raise ImportError(f"{ELASTIX_HINT} (itk {itk.__version__} is installed without it).")
    return itk


def _case_names(cases: str | int | Sequence[str | int] | None) -> list[str] | None:
    """``"patient1,patient2"``, ``("patient1", "patient2")`` or ``(1, 2)`` -> ``["patient1", "patient2"]``."""
    if cases is None:
        return None
    items = cases.split(",") if isinstance(cases, str) else [cases] if isinstance(cases, int) else list(cases)
    names = [f"patient{item}" if str(item).strip().isdigit() else str(item).strip() for item in items]
    names = [name for name in names if name]
    if not names:
        raise ValueError(f"cases must name at least one patient (e.g. patient1,patient2), got {cases!r}.")
    return names


def _check_stage_arguments(
    resolutions: int, bspline_resolutions: int, bspline_iterations: int, bspline_grid_spacing: float
) -> None:
    for name, value in (
        ("resolutions", resolutions),
        ("bspline_resolutions", bspline_resolutions),
        ("bspline_iterations", bspline_iterations),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if isinstance(bspline_grid_spacing, bool) or not isinstance(bspline_grid_spacing, (int, float)):
        raise ValueError(f"bspline_grid_spacing must be a number of mm, got {bspline_grid_spacing!r}.")
    if not bspline_grid_spacing > 0:
        raise ValueError(f"bspline_grid_spacing must be positive (mm), got {bspline_grid_spacing!r}.")


def registration_parameters(
    resolutions: int = 3,
    bspline_resolutions: int = 2,
    bspline_iterations: int = 128,
    bspline_grid_spacing: float = 20.0,
):
    """elastix's default "rigid", "affine" and "bspline" maps (Mattes MI) with this module's changes.

    Args:
        resolutions: resolution levels of the rigid and affine stages (elastix default 4).
        bspline_resolutions, bspline_iterations: of the B-spline stage (elastix defaults 4 and 256).
        bspline_grid_spacing: final B-spline control-point spacing in mm (elastix default 10).

    Returns:
        An ``itk.ParameterObject`` holding the three maps, run in that order.
    """
    _check_stage_arguments(resolutions, bspline_resolutions, bspline_iterations, bspline_grid_spacing)
    itk = _require_elastix()
    parameters = itk.ParameterObject.New()
    for stage in STAGES:
        if stage == "bspline":
            stage_map = parameters.GetDefaultParameterMap(stage, int(bspline_resolutions), float(bspline_grid_spacing))
            stage_map["MaximumNumberOfIterations"] = [str(int(bspline_iterations))]
        else:
            stage_map = parameters.GetDefaultParameterMap(stage, int(resolutions))
        stage_map["WriteResultImage"] = ["false"]
        stage_map["ErodeMask"] = ["false"]
        parameters.AddParameterMap(stage_map)
    return parameters


def _ras_affine(image) -> np.ndarray:
    """The voxel-to-world matrix of an ITK image in nibabel's convention (RAS; ITK's world is LPS)."""
    import itk

    lps = np.eye(4)
    lps[:3, :3] = itk.array_from_matrix(image.GetDirection()) @ np.diag(np.asarray(image.GetSpacing(), dtype=float))
    lps[:3, 3] = np.asarray(image.GetOrigin(), dtype=float)
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def _read(path: str, pixel_type):
    """Read ``path`` with ITK, checking that ITK and nibabel place its voxels at the same world positions (they can
    disagree when a header's qform and sform differ); the output is written with nibabel's affine of the LGE."""
    import itk

    image = itk.imread(path, pixel_type)
    affine = nib.load(path).affine
    if not np.allclose(_ras_affine(image), affine, atol=1e-3):
        raise ValueError(
            f"{path}: ITK and nibabel read different voxel-to-world matrices (qform and sform disagree?):\n"
            f"{np.round(_ras_affine(image), 4)}\nvs\n{np.round(affine, 4)}; rewrite the header with one affine."
        )
    return image


def _elastix_error(log: Path, error: BaseException) -> str:
    """The "Description:" lines of an elastix log (the cause), else the exception's own text."""
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    causes = [line.split("Description:", 1)[1].strip() for line in lines if "Description:" in line]
    return "; ".join(dict.fromkeys(causes)) or str(error).strip()


def _heart_mask(labels, fixed, margin: float):
    """The bSSFP labels dilated in-plane by ``margin`` mm, on the LGE grid by the images' geometry (uint8 0/1).

    Slice by slice (the bSSFP slices are thick): the mask stays within the labelled slices, where the moving image is
    defined, instead of reaching LGE slices above the base or below the apex of the bSSFP stack.
    """
    import itk

    foreground = itk.array_from_image(labels) > 0  # (z, y, x)
    spacing = np.asarray(labels.GetSpacing(), dtype=float)[1::-1]
    inside = np.zeros(foreground.shape, dtype=np.uint8)
    for index, plane in enumerate(foreground):
        if plane.any():
            inside[index] = ndimage.distance_transform_edt(~plane, sampling=spacing) <= margin
    mask = itk.image_from_array(inside)
    mask.CopyInformation(labels)
    interpolator = itk.NearestNeighborInterpolateImageFunction.New(mask)
    return itk.resample_image_filter(mask, use_reference_image=True, reference_image=fixed, interpolator=interpolator)


def _check_mask_margin(mask_margin: float) -> None:
    if isinstance(mask_margin, bool) or not isinstance(mask_margin, (int, float)) or mask_margin < 0:
        raise ValueError(f"mask_margin must be a number of mm >= 0 (0: the whole image), got {mask_margin!r}.")


def register_labels(c0: str, c0_label: str, lge: str, parameters=None, mask_margin: float = 20.0) -> np.ndarray:
    """Register the bSSFP image ``c0`` (moving) to ``lge`` (fixed) and warp ``c0_label`` onto the LGE grid.

    Args:
        c0, c0_label, lge: ``patientN_C0.nii.gz``, ``patientN_C0_manual.nii.gz``, ``patientN_LGE.nii.gz``.
        parameters: an elastix ``ParameterObject`` (default :func:`registration_parameters`).
        mask_margin: mm around the bSSFP labels where the metric is sampled (on the LGE); 0 samples the whole LGE.

    Returns:
        The warped labels, ``(X, Y, Z)`` of the LGE file (nibabel's voxel order), uint16 in ``MSCMR_LABELS`` values.

    Raises:
        ValueError: the labels do not fit the bSSFP image, hold values outside ``MSCMR_LABELS``, or miss the LGE.
        RuntimeError: elastix failed (its message and both file names are given).
    """
    _check_mask_margin(mask_margin)
    itk = _require_elastix()
    parameters = registration_parameters() if parameters is None else parameters
    fixed = _read(lge, itk.F)
    moving = _read(c0, itk.F)
    labels = _read(c0_label, itk.F)
    if tuple(labels.GetLargestPossibleRegion().GetSize()) != tuple(moving.GetLargestPossibleRegion().GetSize()) or (
        not np.allclose(_ras_affine(labels), _ras_affine(moving), atol=1e-3)
    ):
        raise ValueError(f"{c0_label} is not on the grid of {c0} (shape or affine differ).")
    values = np.unique(itk.array_from_image(labels))
    allowed = sorted(MSCMR_LABELS.values())
    if not np.isin(values, allowed).all():
        raise ValueError(f"{c0_label}: label values {values.tolist()} are not all in MS-CMRSeg's {allowed}.")
    options = {}
    if mask_margin > 0:
        mask = _heart_mask(labels, fixed, float(mask_margin))
        if not itk.array_from_image(mask).any():
            raise ValueError(f"the labels of {c0_label} (+{mask_margin} mm) do not overlap the field of view of {lge}.")
        options["fixed_mask"] = mask
    with tempfile.TemporaryDirectory(prefix="elastix_") as log_dir:  # elastix's own error message is in its log
        try:
            _, transform = itk.elastix_registration_method(
                fixed,
                moving,
                parameter_object=parameters,
                log_to_console=False,
                log_to_file=True,
                log_file_name="elastix.log",
                output_directory=log_dir,
                **options,
            )
        except RuntimeError as error:
            raise RuntimeError(
                f"elastix failed to register {c0} onto {lge}: {_elastix_error(Path(log_dir) / 'elastix.log', error)} "
                "(if too few samples fall in the heart region, raise --mask_margin; 0 samples the whole image)."
            ) from error
    for index in range(transform.GetNumberOfParameterMaps()):  # nearest neighbour, 0 outside the bSSFP field of view
        transform.SetParameter(index, "ResampleInterpolator", "FinalNearestNeighborInterpolator")
        transform.SetParameter(index, "DefaultPixelValue", "0")
    warped = itk.transformix_filter(labels, transform, log_to_console=False)
    return np.rint(itk.array_from_image(warped)).astype(np.uint16).transpose(2, 1, 0)


def _find_cases(dataset_dir: str, names: list[str] | None) -> list[dict[str, str]]:
    """``[{"case", "c0", "c0_label", "lge"}]`` of the patients with both sequences; every file is checked first.

    The files are where ``common.data.mscmrseg_cases`` finds them (one folder, or the release's ``c0t2lge/`` images
    with ``c0gt/`` labels)."""
    c0_cases = {c["case"]: c for c in mscmrseg_cases(dataset_dir, "C0")}
    lge_cases = {c["case"]: c for c in mscmrseg_cases(dataset_dir, "LGE")}
    folder = Path(next(iter(c0_cases.values()))["image"]).parent
    if names is None:
        selected = [name for name in c0_cases if name in lge_cases]
        for name in sorted(set(c0_cases) ^ set(lge_cases)):
            missing = "LGE" if name in c0_cases else "C0"
            print(f"skipping {name}: no {name}_{missing}.nii.gz under {dataset_dir}", flush=True)
    else:
        selected = names
    found = []
    for name in selected:
        c0, lge = c0_cases.get(name, {}), lge_cases.get(name, {})
        paths = {
            "c0": c0.get("image", folder / f"{name}_C0.nii.gz"),
            "c0_label": c0.get("label", folder / f"{name}_C0_manual.nii.gz"),
            "lge": lge.get("image", folder / f"{name}_LGE.nii.gz"),
        }
        for key, path in paths.items():
            if not Path(path).is_file():
                what = "bSSFP labels (the baseline warps them)" if key == "c0_label" else "image"
                raise FileNotFoundError(f"{path} is missing: {name} needs its {what}; see --cases to select patients.")
            check_nifti(path, ndim=3)  # names the file if it is unreadable or not 3D
        found.append({"case": name, **{key: str(path) for key, path in paths.items()}})
    if not found:
        raise FileNotFoundError(f"{folder}: no patient has both patientN_C0.nii.gz and patientN_LGE.nii.gz.")
    return found


def registration_baseline(
    dataset_dir: str,
    output_dir: str,
    cases: str | Sequence[str] | None = None,
    overwrite: bool | str = False,
    mask_margin: float = 20.0,
    resolutions: int = 3,
    bspline_resolutions: int = 2,
    bspline_iterations: int = 128,
    bspline_grid_spacing: float = 20.0,
) -> list[str]:
    """Register each patient's bSSFP onto its LGE and write ``<output_dir>/patientN_LGE_registered.nii.gz``.

    Args:
        dataset_dir: the ``MSCMRSeg`` folder (or its parent).
        output_dir: where the registered labels go (created if needed).
        cases: patients to run (``patient1,patient2``); default every patient with both C0 and LGE.
        overwrite: replace existing outputs; otherwise an existing output stops the run before any registration.
        mask_margin: mm around the bSSFP labels (in-plane) where mutual information is sampled; 0: the whole LGE.
        resolutions: resolution levels of the rigid and affine stages.
        bspline_resolutions, bspline_iterations, bspline_grid_spacing: the FFD stage (see the module docstring).

    Returns:
        The written files.

    Raises:
        FileNotFoundError: a patient's C0, C0 labels or LGE is missing (the file is named).
        FileExistsError: an output exists and ``overwrite`` is false.
        ValueError: an unreadable file or bad labels (the file is named), or a bad argument.
    """
    overwrite = as_flag(overwrite, "overwrite")
    _check_mask_margin(mask_margin)
    _check_stage_arguments(resolutions, bspline_resolutions, bspline_iterations, bspline_grid_spacing)
    _require_elastix()
    found = _find_cases(dataset_dir, _case_names(cases))
    targets = [os.path.join(output_dir, f"{case['case']}{OUTPUT_SUFFIX}") for case in found]
    existing = [target for target in targets if os.path.exists(target)]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists ({len(existing)} outputs do); pass --overwrite true to replace.")
    parameters = registration_parameters(
        resolutions=resolutions,
        bspline_resolutions=bspline_resolutions,
        bspline_iterations=bspline_iterations,
        bspline_grid_spacing=bspline_grid_spacing,
    )
    written = []
    for index, (case, target) in enumerate(zip(found, targets)):
        start = time.perf_counter()
        print(f"[{index + 1}/{len(found)}] {case['case']}: registering C0 onto LGE ...", flush=True)
        labels = register_labels(case["c0"], case["c0_label"], case["lge"], parameters, mask_margin)
        write_nifti(target, labels, nib.load(case["lge"]).affine)
        written.append(target)
        print(f"[{index + 1}/{len(found)}] {case['case']}: wrote {target} ({time.perf_counter() - start:.1f} s)")
    print(f"registered {len(written)} patients into {output_dir}")
    return written


if __name__ == "__main__":
    import fire

    fire.Fire(registration_baseline)
