"""PSCGAN clinical metrics on 2D short-axis label maps: scar size and ratio, AHA segments, transmurality, agreement.

Xu, C. et al. "Contrast agent-free synthesis and segmentation of ischemic heart disease images using progressive
sequential causal GANs" (PSCGAN), Medical Image Analysis 62, 2020, section 6.5 (Metrics) and Table 2: scar size and
scar ratio compared with Pearson's r and Bland-Altman bias / limits of agreement; segment-level scar localisation
(AHA 16-segment model) and scar transmurality compared with sensitivity and specificity (plus PPV and NPV).

Label convention (``common.constants.PSCGAN_LABELS``): 0 other, 1 LV blood pool, 2 healthy myocardium, 3 scar.
Slices are ``(X, Y)`` arrays in NIfTI order (axis 0 = x, axis 1 = y) with a 4x4 voxel -> world (RAS+, mm) affine.

Per case: :func:`clinical_metrics` (areas and ratios), :func:`find_rv_insertion` -> :func:`aha_segments` (with
:func:`slice_level` for the stack position) -> :func:`segment_scar`. Per cohort: :func:`cohort_agreement` (continuous
indices), :func:`segment_detection` (per-segment flags) and :func:`bland_altman_plot`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from common.constants import PSCGAN_LABELS
from common.metrics._utils import as_bool_mask, as_spacing, check_same_shape, to_numpy
from common.metrics.scar import scar_ratio, scar_size
from scipy import ndimage, stats

__all__ = [
    "lv_centre",
    "find_rv_insertion",
    "aha_segments",
    "slice_level",
    "segment_scar",
    "clinical_metrics",
    "cohort_agreement",
    "segment_detection",
    "bland_altman_plot",
]

logger = logging.getLogger(__name__)

# PSCGAN 4-class label values (0 = everything else)
_BLOOD_POOL = PSCGAN_LABELS["blood_pool"]
_MYOCARDIUM = PSCGAN_LABELS["myocardium"]
_SCAR = PSCGAN_LABELS["scar"]

#: AHA segment numbers of the six 60-degree sectors, in travel order from the anterior RV insertion point through
#: the septum (basal; mid is +6): anteroseptal, inferoseptal, inferior, inferolateral, anterolateral, anterior.
_SIX_SECTORS = (2, 3, 4, 5, 6, 1)
#: apical 90-degree sectors in travel order, starting with the one centred on the septum mid-line:
#: septal, inferior, lateral, anterior.
_FOUR_SECTORS = (14, 15, 16, 13)
_LEVELS = ("basal", "mid", "apical")


def _label_2d(label: Any, name: str = "label") -> np.ndarray:
    array = to_numpy(label, name)
    if array.ndim != 2:
        raise ValueError(f"`{name}` must be a 2D (X, Y) slice, got shape {array.shape}.")
    return array


def _wrap(angle: Any) -> Any:
    """Angle(s) wrapped to (-pi, pi]."""
    wrapped = np.pi - np.mod(np.pi - np.asarray(angle, dtype=float), 2 * np.pi)
    return float(wrapped) if np.ndim(wrapped) == 0 else wrapped


def _voxel_sizes(affine: Any) -> tuple[float, float]:
    matrix = to_numpy(affine, "affine").astype(float)
    if matrix.shape != (4, 4):
        raise ValueError(f"`affine` must be a 4x4 voxel -> world matrix, got shape {matrix.shape}.")
    sizes = np.linalg.norm(matrix[:3, :2], axis=0)
    if not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
        raise ValueError(f"`affine` must have finite non-zero x and y columns, got voxel sizes {tuple(sizes)}.")
    return float(sizes[0]), float(sizes[1])


def _pixel_angles(shape: tuple[int, ...], centre: tuple[float, float], spacing: tuple[float, float]) -> np.ndarray:
    """``atan2((y - cy) * sy, (x - cx) * sx)`` for every pixel of an ``(X, Y)`` grid."""
    x, y = np.indices(shape, dtype=float)
    return np.arctan2((y - centre[1]) * spacing[1], (x - centre[0]) * spacing[0])


def lv_centre(label: Any) -> tuple[float, float]:
    """LV centre of a short-axis slice in voxel coordinates ``(x, y)`` (fractional).

    The centroid of the blood pool (label 1); when the slice has no blood pool (e.g. an apical slice), the centroid
    of the myocardium and scar (labels 2, 3).

    Args:
        label: ``(X, Y)`` PSCGAN label map (0 other, 1 LV blood pool, 2 healthy myocardium, 3 scar).

    Returns:
        ``(x, y)`` along array axes 0 and 1.

    Raises:
        ValueError: naming ``label`` when it is not 2D or the slice has no myocardium (labels 2 and 3 absent).

    Examples::

        >>> lv_centre(np.pad(np.array([[2, 2, 2], [2, 1, 2], [2, 2, 2]]), ((1, 0), (0, 0))))
        (2.0, 1.0)
    """
    array = _label_2d(label)
    myocardium = np.isin(array, (_MYOCARDIUM, _SCAR))
    if not myocardium.any():
        raise ValueError("`label` has no myocardium (labels 2 and 3): the LV centre is undefined.")
    blood = array == _BLOOD_POOL
    x, y = np.nonzero(blood if blood.any() else myocardium)
    return float(x.mean()), float(y.mean())


def _largest_gap_ends(angles: np.ndarray) -> tuple[float, float]:
    """The two ends of a set of angles' circular extent: the angles on either side of the largest empty gap."""
    ordered = np.sort(_wrap(angles))
    gaps = np.diff(np.concatenate([ordered, ordered[:1] + 2 * np.pi]))  # the last gap wraps around +-pi
    k = int(np.argmax(gaps))
    return float(ordered[(k + 1) % len(ordered)]), float(ordered[k])


def find_rv_insertion(
    cine_ed: Any,
    label: Any,
    affine: Any,
    band_mm: float = 15.0,
    lv_margin_px: int = 2,
    min_rv_pixels: int = 10,
    fallback_septum_angle: float = np.pi,
    fov_mask: Any = None,
) -> dict[str, Any]:
    """Anterior and inferior RV insertion points of a short-axis slice, as angles about the LV centre.

    How they are found:

    1. Bright pixels: the end-diastolic cine frame above its Otsu threshold (``skimage.filters.threshold_otsu``),
       computed over the field of view (``fov_mask``; default: the finite, non-zero pixels, so zero padding does
       not count).
    2. Candidates: bright pixels outside the LV epicardium, i.e. outside labels 1-3 dilated by ``lv_margin_px``,
       grouped into 4-connected components (``scipy.ndimage.label``).
    3. RV cavity: of the components that touch the band within ``band_mm`` of the LV epicardium (distance in mm
       from the affine's voxel sizes), the one with the most pixels inside the band (at least ``min_rv_pixels``).
       Ranking by the in-band part rather than the whole component keeps a large bright structure that only grazes
       the band (bSSFP-bright epicardial/chest-wall fat, the aorta) from beating the RV, which hugs the septum.
    4. Angles: every pixel angle is ``atan2((y - cy) * sy, (x - cx) * sx)`` about :func:`lv_centre`, with the
       voxel sizes ``sx, sy`` of the affine (the array's x/y axes measured in mm; the plain voxel-frame angle for
       square pixels). The RV pixels used are those of the component inside the band (the part that hugs the
       septum). Their circular extent is the complement of the largest empty gap between their sorted angles,
       so an RV straddling +-pi is handled; its two ends are the insertion points. ``septum_angle`` is the
       circular mean of the same pixels' angles.
    5. Anterior vs inferior: the insertion point (at equal mm distance from the centre) whose world position
       through ``affine`` has the larger RAS y (anterior) coordinate is the anterior one.

    When no component qualifies, the RV is assumed at ``fallback_septum_angle`` (default ``pi``: towards -x) with the
    insertion points at +-60 degrees from it (anterior/inferior again by world y), ``rv_found`` is False and
    ``warning`` says so (logged at WARNING too); no exception.

    Args:
        cine_ed: ``(X, Y)`` end-diastolic cine frame (bright blood), same grid as ``label``.
        label: ``(X, Y)`` PSCGAN label map (1 LV blood pool, 2 healthy myocardium, 3 scar).
        affine: 4x4 voxel -> world (RAS+, mm) matrix of the slice.
        band_mm: width of the band around the LV epicardium that the RV component must touch.
        lv_margin_px: dilation (pixels) of labels 1-3 that separates the RV from the LV epicardium.
        min_rv_pixels: fewest in-band pixels accepted as the RV.
        fallback_septum_angle: septum direction (radians, same frame) used when no RV is found.
        fov_mask: optional ``(X, Y)`` field-of-view mask for the Otsu threshold.

    Returns:
        ``{"rv_found": bool, "anterior_angle": float, "inferior_angle": float, "septum_angle": float,
        "warning": str | None, "lv_centre": (x, y), "spacing": (sx, sy), "rv_mask": (X, Y) bool}``; angles in
        radians, in (-pi, pi]. Pass ``spacing`` (and ``septum_angle``) on to :func:`aha_segments`.

    Raises:
        ValueError: naming the argument when shapes differ, ``label`` is not 2D or has no myocardium, ``affine``
            is not 4x4, ``band_mm`` is not positive or ``lv_margin_px`` is negative.

    Examples::

        rv = find_rv_insertion(cine_ed, label, affine)
        segments = aha_segments(label, rv["anterior_angle"], rv["inferior_angle"], "mid", spacing=rv["spacing"])
    """
    from skimage.filters import threshold_otsu

    array = _label_2d(label)
    image = _label_2d(cine_ed, "cine_ed").astype(float)
    check_same_shape(image, array, "cine_ed", "label")
    spacing = _voxel_sizes(affine)
    if band_mm <= 0:
        raise ValueError(f"`band_mm` must be positive, got {band_mm}.")
    if lv_margin_px < 0:
        raise ValueError(f"`lv_margin_px` must be non-negative, got {lv_margin_px}.")
    centre = lv_centre(array)
    fov = np.isfinite(image) & (image != 0)
    if fov_mask is not None:
        fov_mask = as_bool_mask(fov_mask, "fov_mask")
        check_same_shape(fov_mask, image, "fov_mask", "cine_ed")
        fov = fov_mask & np.isfinite(image)

    lv = np.isin(array, (_BLOOD_POOL, _MYOCARDIUM, _SCAR))
    rv_mask = np.zeros(array.shape, dtype=bool)
    band = np.zeros(array.shape, dtype=bool)
    if np.unique(image[fov]).size >= 2:
        bright = fov & (image > threshold_otsu(image[fov]))
        outside = ~ndimage.binary_dilation(lv, iterations=lv_margin_px) if lv_margin_px > 0 else ~lv
        distance = ndimage.distance_transform_edt(~lv, sampling=spacing)
        band = (distance > 0) & (distance <= band_mm)
        components, count = ndimage.label(bright & outside)
        touching = np.unique(components[band & (components > 0)]) if count else np.zeros(0, dtype=int)
        if touching.size:
            sizes = np.bincount(components[band], minlength=count + 1)[touching]  # pixels inside the band
            if sizes.max() >= min_rv_pixels:
                rv_mask = components == touching[int(np.argmax(sizes))]

    a_voxel = to_numpy(affine, "affine").astype(float)[:3, :2]

    def world_y(angle: float) -> float:  # world y of a point 1 mm from the centre in direction `angle`
        return float((a_voxel @ (np.cos(angle) / spacing[0], np.sin(angle) / spacing[1]))[1])

    if rv_mask.any():
        angles = _pixel_angles(array.shape, centre, spacing)[rv_mask & band]
        first, second = _largest_gap_ends(angles)
        septum = float(np.angle(np.exp(1j * angles).mean()))
        warning = None
    else:
        septum = _wrap(fallback_septum_angle)
        first, second = _wrap(septum - np.pi / 3), _wrap(septum + np.pi / 3)
        warning = (
            f"no RV cavity found within {band_mm} mm of the LV epicardium; insertion points assumed at +-60 degrees "
            f"from fallback_septum_angle={septum:.3f} rad"
        )
        logger.warning(warning)
    anterior, inferior = (first, second) if world_y(first) >= world_y(second) else (second, first)
    return {
        "rv_found": warning is None,
        "anterior_angle": anterior,
        "inferior_angle": inferior,
        "septum_angle": septum,
        "warning": warning,
        "lv_centre": centre,
        "spacing": spacing,
        "rv_mask": rv_mask,
    }


def aha_segments(
    label: Any,
    anterior_angle: float,
    inferior_angle: float,
    level: str,
    spacing: float | Sequence[float] | None = None,
    septum_angle: float | None = None,
) -> np.ndarray:
    """AHA segment number of every myocardium/scar pixel of a short-axis slice (0 elsewhere).

    Cerqueira, M.D. et al. "Standardized myocardial segmentation and nomenclature for tomographic imaging of the
    heart", Circulation 105:539, 2002 (the AHA 17-segment model; segment 17, the apical cap, is not in short-axis
    slices, which leaves PSCGAN's 16-segment model).

    Sectors are taken about :func:`lv_centre`, travelling from the anterior insertion point through the septum to
    the inferior one (this fixes the sign of the travel direction):

    - basal (1-6) / mid (7-12): six 60-degree sectors starting at the anterior insertion point: anteroseptal (2 / 8),
      inferoseptal (3 / 9), inferior (4 / 10), inferolateral (5 / 11), anterolateral (6 / 12), anterior (1 / 7);
    - apical (13-16): four 90-degree sectors, septal (14) centred on the septum mid-line (the bisector of the two
      insertion points on the septal side), then inferior (15), lateral (16), anterior (13).

    Pixel angle = ``atan2((y - cy) * sy, (x - cx) * sx)`` (voxel offsets scaled by ``spacing``, so anisotropic pixels
    work), the frame of :func:`find_rv_insertion`'s angles: pass its ``spacing``.

    Args:
        label: ``(X, Y)`` PSCGAN label map; labels 2 and 3 get a segment.
        anterior_angle: anterior RV insertion point (radians).
        inferior_angle: inferior RV insertion point (radians).
        level: ``"basal"``, ``"mid"`` or ``"apical"`` (see :func:`slice_level`).
        spacing: pixel size along x and y (scalar = isotropic, ``None`` = 1.0).
        septum_angle: any angle on the septal side (e.g. ``find_rv_insertion(...)["septum_angle"]``); ``None``
            takes the shorter arc between the insertion points as the septal one (the RV spans less than 180
            degrees).

    Returns:
        An integer array of the shape of ``label``.

    Raises:
        ValueError: naming ``level`` when unknown, ``anterior_angle``/``inferior_angle`` when they coincide,
            ``label`` when it is not 2D or has no myocardium, ``spacing`` when it is not two positive values.

    Examples::

        segments = aha_segments(label, 2 * np.pi / 3, -2 * np.pi / 3, "basal")  # RV towards -x, +y anterior
    """
    if level not in _LEVELS:
        raise ValueError(f"`level` must be one of {_LEVELS}, got {level!r}.")
    array = _label_2d(label)
    voxel = as_spacing(spacing, 2)
    centre = lv_centre(array)
    anterior = _wrap(anterior_angle)
    towards_inferior = float(np.mod(inferior_angle - anterior, 2 * np.pi))
    if np.isclose(towards_inferior, 0.0) or np.isclose(towards_inferior, 2 * np.pi):
        raise ValueError(f"`anterior_angle` and `inferior_angle` must differ, got {anterior_angle}, {inferior_angle}.")
    if septum_angle is None:
        direction = 1.0 if towards_inferior <= np.pi else -1.0
    else:
        direction = 1.0 if np.mod(septum_angle - anterior, 2 * np.pi) < towards_inferior else -1.0
    septal_arc = towards_inferior if direction > 0 else 2 * np.pi - towards_inferior

    travelled = np.mod(direction * (_pixel_angles(array.shape, centre, voxel) - anterior), 2 * np.pi)
    if level == "apical":  # first sector centred on the septum mid-line
        sector = np.floor(np.mod(travelled - septal_arc / 2 + np.pi / 4, 2 * np.pi) / (np.pi / 2)).astype(int)
        numbers = np.asarray(_FOUR_SECTORS)[np.minimum(sector, 3)]
    else:
        sector = np.floor(travelled / (np.pi / 3)).astype(int)
        numbers = np.asarray(_SIX_SECTORS)[np.minimum(sector, 5)] + (6 if level == "mid" else 0)
    return np.where(np.isin(array, (_MYOCARDIUM, _SCAR)), numbers, 0)


def slice_level(index: int, n_slices: int) -> str:
    """AHA level of slice ``index`` in a base-to-apex short-axis stack of ``n_slices``: thirds.

    ``index < n/3`` is ``"basal"``, ``index < 2n/3`` ``"mid"``, the rest ``"apical"``; a single slice is ``"mid"``.

    Raises:
        ValueError: naming ``n_slices`` when it is below 1, ``index`` when it is outside ``[0, n_slices)``.

    Examples::

        >>> [slice_level(i, 6) for i in range(6)]
        ['basal', 'basal', 'mid', 'mid', 'apical', 'apical']
    """
    if n_slices < 1:
        raise ValueError(f"`n_slices` must be at least 1, got {n_slices}.")
    if not 0 <= index < n_slices:
        raise ValueError(f"`index` must be in [0, {n_slices}), got {index}.")
    if n_slices == 1:
        return "mid"
    return _LEVELS[(3 * index) // n_slices]


def segment_scar(
    label: Any, segments: Any, min_fraction: float = 0.05, transmural_fraction: float = 0.5
) -> dict[int, dict[str, Any]]:
    """Scar burden of every AHA segment present in ``segments``.

    Transmurality here is the area-based reading: the scar area fraction of the segment's myocardium (scar +
    healthy) in the slice, not a chord/radial measurement. PSCGAN Table 2's "scar transmural" is then a binary call,
    ``transmural = fraction >= transmural_fraction`` (50 %), and its "segment-level scar localisation" is
    ``has_scar``.

    Args:
        label: ``(X, Y)`` PSCGAN label map.
        segments: segment numbers of the same shape (:func:`aha_segments`; 0 = no segment).
        min_fraction: smallest scar fraction that counts as a scarred segment (``has_scar``; needs a scar pixel).
        transmural_fraction: smallest scar fraction called transmural.

    Returns:
        ``{segment: {"myocardium_pixels": int, "scar_pixels": int, "scar_fraction": float, "has_scar": bool,
        "transmural": bool}}``, sorted by segment; ``scar_fraction`` is nan for a segment without myocardium.

    Raises:
        ValueError: naming ``label``/``segments`` when the shapes differ or ``label`` is not 2D, or naming
            ``min_fraction``/``transmural_fraction`` when outside [0, 1].

    Examples::

        per_segment = segment_scar(label, aha_segments(label, rv["anterior_angle"], rv["inferior_angle"], "mid"))
    """
    for name, value in (("min_fraction", min_fraction), ("transmural_fraction", transmural_fraction)):
        if not 0 <= value <= 1:
            raise ValueError(f"`{name}` must be in [0, 1], got {value}.")
    array = _label_2d(label)
    numbers = to_numpy(segments, "segments")
    check_same_shape(array, numbers, "label", "segments")
    myocardium = np.isin(array, (_MYOCARDIUM, _SCAR))
    scar = array == _SCAR
    result = {}
    for segment in np.unique(numbers[numbers > 0]):
        inside = numbers == segment
        n_myocardium = int((myocardium & inside).sum())
        n_scar = int((scar & inside).sum())
        fraction = n_scar / n_myocardium if n_myocardium else float("nan")
        result[int(segment)] = {
            "myocardium_pixels": n_myocardium,
            "scar_pixels": n_scar,
            "scar_fraction": fraction,
            "has_scar": bool(n_scar > 0 and fraction >= min_fraction),
            "transmural": bool(n_scar > 0 and fraction >= transmural_fraction),
        }
    return result


def clinical_metrics(
    label: Any, spacing_mm: float | Sequence[float], pixel_area_mm2: float | None = None
) -> dict[str, float]:
    """Per-slice clinical indices of a PSCGAN label map.

    - ``scar_size_mm2``: :func:`common.metrics.scar_size` of label 3 (Table 2 "Scar size (cm^2)": divide by 100).
    - ``scar_ratio``: :func:`common.metrics.scar_ratio`, scar / (healthy myocardium + scar): the fraction of the
      myocardium that is scar (the usual clinical infarct size, the repository's convention).
    - ``scar_to_healthy_ratio``: scar / healthy myocardium, the "MI ratio (scar pixels / healthy myocardium
      pixels)" as PSCGAN section 6.5 defines it, i.e. Table 2's "Scar ratio (%)" row read literally (times 100);
      nan without healthy myocardium. The two readings of that row differ (0.5 vs 1.0 for half-scarred myocardium).
    - ``myocardium_area_mm2``: labels 2 + 3; ``blood_pool_area_mm2``: label 1.

    Args:
        label: ``(X, Y)`` PSCGAN label map (numpy array or torch tensor).
        spacing_mm: pixel size along x and y in mm (scalar = isotropic).
        pixel_area_mm2: the area of one pixel where the two axes are not orthogonal (a sheared header:
            :func:`common.transforms.in_plane_pixel_area`); ``None`` is the product of ``spacing_mm``.

    Returns:
        The dict above (plain floats; ``scar_ratio`` is nan without myocardium).

    Raises:
        ValueError: naming ``label`` when it is not 2D, ``spacing`` when it is not two positive values.

    Examples::

        >>> clinical_metrics(np.array([[1, 2, 3, 3]]), (1.5, 2.0))["scar_size_mm2"]
        6.0
    """
    array = _label_2d(label)
    area = float(np.prod(as_spacing(spacing_mm, 2)))
    if pixel_area_mm2 is not None:
        if not pixel_area_mm2 > 0:
            raise ValueError(f"pixel_area_mm2 must be positive, got {pixel_area_mm2}")
        area = float(pixel_area_mm2)
    scar = array == _SCAR
    healthy = array == _MYOCARDIUM
    myocardium = healthy | scar
    n_healthy = int(healthy.sum())
    return {  # scar_size without a spacing counts the pixels; each covers `area` mm^2
        "scar_size_mm2": scar_size(scar) * area,
        "scar_ratio": float(scar_ratio(scar, myocardium)),
        "scar_to_healthy_ratio": int(scar.sum()) / n_healthy if n_healthy else float("nan"),
        "myocardium_area_mm2": scar_size(myocardium) * area,
        "blood_pool_area_mm2": scar_size(array == _BLOOD_POOL) * area,
    }


def cohort_agreement(pred_values: Any, true_values: Any) -> dict[str, float]:
    """Agreement of one clinical index over a cohort: Pearson's r and Bland-Altman (PSCGAN Table 2, Figure 10).

    Altman, D.G., Bland, J.M. "Measurement in medicine: the analysis of method comparison studies", 1983.
    Differences are ``pred - true``; the SD is the sample SD (``ddof=1``); limits of agreement are
    ``bias +- 1.96 SD``. Pairs with a non-finite value (e.g. a nan ratio of a case without myocardium) are left out
    and counted in ``n_excluded``.

    Args:
        pred_values: one value per case from the method (e.g. scar size in cm^2).
        true_values: the reference values, same length.

    Returns:
        ``{"pearson_r", "p_value", "bias", "sd_difference", "loa_lower", "loa_upper", "n", "n_excluded"}``;
        ``pearson_r``/``p_value`` are nan with fewer than 3 cases or zero variance, ``bias`` nan without cases, the
        SD and limits nan with fewer than 2.

    Raises:
        ValueError: naming ``pred_values``/``true_values`` when the shapes differ.

    Examples::

        >>> cohort_agreement([2, 4, 6, 8, 10], [1, 4, 5, 9, 8])["bias"]
        0.6
    """
    pred = to_numpy(pred_values, "pred_values").astype(float)
    true = to_numpy(true_values, "true_values").astype(float)
    check_same_shape(pred, true, "pred_values", "true_values")  # before flattening
    pred, true = pred.ravel(), true.ravel()
    keep = np.isfinite(pred) & np.isfinite(true)
    pred, true = pred[keep], true[keep]
    n = int(pred.size)
    difference = pred - true
    bias = float(difference.mean()) if n else float("nan")
    sd = float(difference.std(ddof=1)) if n >= 2 else float("nan")
    r = p_value = float("nan")
    if n >= 3 and np.ptp(pred) > 0 and np.ptp(true) > 0:
        result = stats.pearsonr(pred, true)
        r, p_value = float(result.statistic), float(result.pvalue)
    return {
        "pearson_r": r,
        "p_value": p_value,
        "bias": bias,
        "sd_difference": sd,
        "loa_lower": bias - 1.96 * sd,
        "loa_upper": bias + 1.96 * sd,
        "n": n,
        "n_excluded": int((~keep).sum()),
    }


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else float("nan")


def segment_detection(pred_flags: Any, true_flags: Any) -> dict[str, float]:
    """Per-segment detection agreement (PSCGAN Table 2: segment-level scar localisation, scar transmurality).

    Every element is one segment of one case (e.g. ``has_scar`` or ``transmural`` from :func:`segment_scar` for all
    16 segments of all cases); nonzero = positive.

    Args:
        pred_flags: the method's flags.
        true_flags: the reference flags, same shape.

    Returns:
        ``{"sensitivity", "specificity", "ppv", "npv", "tp", "fp", "tn", "fn"}``; a rate is nan when its
        denominator is 0.

    Raises:
        ValueError: naming ``pred_flags``/``true_flags`` when the shapes differ.

    Examples::

        >>> segment_detection([1, 1, 0, 0], [1, 0, 0, 0])["specificity"]
        0.6666666666666666
    """
    pred, true = as_bool_mask(pred_flags, "pred_flags"), as_bool_mask(true_flags, "true_flags")
    check_same_shape(pred, true, "pred_flags", "true_flags")  # before flattening: (patients, segments) vs transposed
    pred, true = pred.ravel(), true.ravel()
    tp, fp = int((pred & true).sum()), int((pred & ~true).sum())
    tn, fn = int((~pred & ~true).sum()), int((~pred & true).sum())
    return {
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


def bland_altman_plot(
    pred: Any, true: Any, path: str | Path, title: str = "", unit: str = "", overwrite: bool = False
) -> Path:
    """Write a Bland-Altman PNG (PSCGAN Figure 10): mean of the pair on x, ``pred - true`` on y, bias and LoA lines.

    The numbers come from :func:`cohort_agreement` (non-finite pairs left out). Parent folders are created.

    Args:
        pred: one value per case from the method.
        true: the reference values, same length.
        path: the PNG file to write.
        title: figure title.
        unit: unit shown on the axes (e.g. ``"cm^2"``).
        overwrite: replace an existing file.

    Returns:
        ``path`` as a :class:`pathlib.Path`.

    Raises:
        FileExistsError: naming ``path`` when it exists and ``overwrite`` is False.
        ValueError: naming ``pred_values``/``true_values`` when the lengths differ.

    Examples::

        bland_altman_plot(pred_sizes, true_sizes, "eval/bland_altman_scar_size.png", "Scar size", "cm^2")
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    agreement = cohort_agreement(pred, true)
    a = to_numpy(pred, "pred_values").astype(float).ravel()
    b = to_numpy(true, "true_values").astype(float).ravel()
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    suffix = f" ({unit})" if unit else ""
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter((a + b) / 2, a - b, s=12, color="tab:blue")
    for value, style, name in (
        (agreement["bias"], "-", "bias"),
        (agreement["loa_upper"], "--", "+1.96 SD"),
        (agreement["loa_lower"], "--", "-1.96 SD"),
    ):
        if np.isfinite(value):
            ax.axhline(value, color="tab:red", linestyle=style, linewidth=1)
            ax.annotate(
                f"{name}: {value:.3g}", (1.0, value), xycoords=("axes fraction", "data"), ha="right", va="bottom"
            )
    ax.set_xlabel(f"mean of prediction and reference{suffix}")
    ax.set_ylabel(f"prediction - reference{suffix}")
    ax.set_title(title or f"Bland-Altman (n = {agreement['n']})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
