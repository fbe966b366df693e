"""Meningioma phantom and its nnU-Net-layout dataset: REHRSeg's default data (HR truth from LR annotations).

REHRSeg segments high-resolution (HR) 3D volumes from thick-slice MRI with only low-resolution (LR) annotations; its
public benchmark is Meningioma-SEG-CLASS (post-contrast T1 brain MRI with meningioma masks). We make the same task
from :class:`~common.data.brain.BrainPhantom` subjects: :func:`add_meningioma` inserts a dural-based enhancing
lesion into the HR T1, :func:`write_meningioma` acquires thick slices of image and mask
(:func:`~common.data.degradation.acquire_thick_slices`, SMORE slice profile) and writes the LR pairs in the nnU-Net v2
raw layout, with the HR truth apart for evaluation.

The lesion follows the radiology of typical (WHO grade 1) meningiomas, which reviews describe alike (Watts et al.,
"Magnetic resonance imaging of meningiomas: a pictorial review", Insights into Imaging 2014; Huang et al., "Imaging
and diagnostic advances for intracranial meningiomas", Neuro-Oncology 2019): an extra-axial mass on a broad dural
base (the inner skull surface over the convexity, or the falx), round to hemispherical and well circumscribed,
iso-intense to grey matter before contrast and enhancing intensely and mostly homogeneously after it (no blood-brain
barrier), often with a "dural tail", and displacing rather than infiltrating the brain. The numbers and their
sources are listed in :func:`meningioma_params`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from common.data.brain import BrainPhantom, load_mni152
from common.data.degradation import acquire_thick_slices, thick_slice_affine
from common.data.layouts import (
    _check_thick_slice_args,
    _execute,
    _prepare_thick_slice_folders,
    _subject_seed,
    write_nifti,
)
from common.typing import PathLike
from scipy import ndimage

__all__ = [
    "MENINGIOMA_LABELS",
    "enhancement_ratio",
    "meningioma_params",
    "render_meningioma",
    "add_meningioma",
    "write_meningioma",
]

#: Label values of the Meningioma dataset (nnU-Net ``dataset.json`` ``labels``).
MENINGIOMA_LABELS = {"background": 0, "meningioma": 1}

# Relaxation, water content and contrast-agent physics at 1.5 T (see enhancement_ratio)
_T1_MS = {"gm": 1124.0, "wm": 884.0}  # Stanisz et al., Magn Reson Med 2005 (1.5 T)
_WATER = {"gm": 0.80, "wm": 0.70}  # Neeb et al., NeuroImage 2006 (absolute water content)
_R1_GD_PER_MM_S = 4.1  # Gd-DTPA in plasma, 1.5 T, 37 C: Rohrer et al., Invest Radiol 2005
# Gd-DTPA plasma concentration after 0.1 mmol/kg: Tofts & Kermode, Magn Reson Med 1991 (Weinmann et al.'s data)
_PLASMA_A = (3.99, 4.78)  # kg/L
_PLASMA_M = (0.144, 0.0111)  # 1/min
_DOSE_MMOL_KG = 0.1


def enhancement_ratio(tr_ms: float, minutes: float, ve: float) -> float:
    """Post-contrast T1-weighted signal of a meningioma relative to white matter (saturation recovery, short TE).

    Signal ``S = PD (1 - exp(-TR R1))``. Before contrast a typical meningioma is iso-intense to grey matter on T1
    (Watts et al. 2014), so it gets grey matter's T1 (1124 ms at 1.5 T; white matter 884 ms: Stanisz et al.,
    "T1, T2 relaxation and magnetization transfer in tissue at 3T", Magn Reson Med 2005) and water content (0.80;
    white matter 0.70: Neeb et al., "A new method for fast quantitative mapping of absolute water content in vivo",
    NeuroImage 2006). After a standard 0.1 mmol/kg Gd-DTPA dose the plasma concentration is
    ``D (a1 exp(-m1 t) + a2 exp(-m2 t))`` (Tofts & Kermode, Magn Reson Med 1991, from Weinmann et al.'s
    measurements), about 0.5-0.7 mM 3-10 min after injection. With no blood-brain barrier the agent fills the
    tumour's extravascular extracellular space (fraction ``ve``): ``R1 = 1/T1_GM + r1 ve Cp``, ``r1 = 4.1 /mM/s``
    (Gd-DTPA in plasma at 1.5 T; Rohrer et al., Invest Radiol 2005). White matter keeps its T1 (intact barrier).

    Args:
        tr_ms: repetition time of the T1-weighted sequence (ms).
        minutes: time from injection to acquisition (min).
        ve: extravascular extracellular volume fraction of the tumour, in (0, 1).

    Returns:
        The lesion / white matter signal ratio (about 1.3-1.8 for TR 400-650 ms, 3-10 min, ``ve`` 0.2-0.4).

    Raises:
        ValueError: non-positive ``tr_ms`` or ``minutes``, or ``ve`` outside (0, 1).

    Examples::

        >>> round(enhancement_ratio(500.0, 5.0, 0.3), 2)
        1.51
    """
    if tr_ms <= 0:
        raise ValueError(f"tr_ms must be > 0, got {tr_ms}.")
    if minutes <= 0:
        raise ValueError(f"minutes must be > 0, got {minutes}.")
    if not 0 < ve < 1:
        raise ValueError(f"ve must be in (0, 1), got {ve}.")
    plasma = _DOSE_MMOL_KG * sum(a * math.exp(-m * minutes) for a, m in zip(_PLASMA_A, _PLASMA_M))
    r1_lesion = 1000.0 / _T1_MS["gm"] + _R1_GD_PER_MM_S * ve * plasma
    tr_s = tr_ms / 1000.0
    lesion = _WATER["gm"] * (1.0 - math.exp(-tr_s * r1_lesion))
    white_matter = _WATER["wm"] * (1.0 - math.exp(-tr_s * 1000.0 / _T1_MS["wm"]))
    return float(lesion / white_matter)


# ---------------------------------------------------------------------------------------------- geometry
def _intracranial(subject: dict) -> np.ndarray:
    """Brain mask ``gm + wm + csf > 0.5`` with holes filled: its outer boundary stands for the dura (skull-stripped
    template: the mask includes the subarachnoid CSF)."""
    brain = (subject["gm"] + subject["wm"] + subject["csf"]) > 0.5
    return ndimage.binary_fill_holes(brain)


def _normal(mask: np.ndarray, point: np.ndarray, voxel_mm: float) -> np.ndarray:
    """Outward unit normal (voxel axes) of ``mask`` at ``point``: minus the gradient of the mask smoothed over 2 mm."""
    radius = max(2, int(math.ceil(6.0 / voxel_mm)))
    low = np.maximum(point - radius, 0)
    high = np.minimum(point + radius + 1, mask.shape)
    window = ndimage.gaussian_filter(
        mask[tuple(slice(a, b) for a, b in zip(low, high))].astype(np.float32), 2.0 / voxel_mm
    )
    local = point - low
    gradient = np.array(
        [
            window[tuple(np.clip(local + step, 0, np.array(window.shape) - 1))]
            - window[tuple(np.clip(local - step, 0, np.array(window.shape) - 1))]
            for step in np.eye(3, dtype=int)
        ]
    )
    norm = np.linalg.norm(gradient)
    return -gradient / norm if norm > 0 else np.zeros(3)


def _midline(subject: dict, intracranial: np.ndarray, affine: np.ndarray, voxel_mm: float) -> tuple[int, int]:
    """``(left-right axis, index)`` of the interhemispheric plane: the least-tissue sagittal plane (GM + WM summed
    over the upper brain) within 10 mm of the brain's centre; the falx lies in it."""
    lr_axis = int(np.argmax(np.abs(affine[0, :3])))
    si_axis = int(np.argmax(np.abs(affine[2, :3])))
    tissue = subject["gm"] + subject["wm"]
    extent = np.flatnonzero(intracranial.any(axis=tuple(a for a in range(3) if a != si_axis)))
    upper = extent[len(extent) // 2 :]  # the upper half of the brain: the falx does not reach the skull base
    profile = np.take(tissue, upper, axis=si_axis).sum(axis=tuple(a for a in range(3) if a != lr_axis))
    span = np.flatnonzero(intracranial.any(axis=tuple(a for a in range(3) if a != lr_axis)))
    centre = 0.5 * (span[0] + span[-1])
    reach = 10.0 / voxel_mm
    near = np.arange(int(math.ceil(centre - reach)), int(centre + reach) + 1)
    return lr_axis, int(near[np.argmin(profile[near])])


def _frame(normal: np.ndarray, angle: float) -> np.ndarray:
    """Rotation whose columns are ``normal`` and two tangents turned by ``angle`` about it."""
    helper = np.eye(3)[int(np.argmin(np.abs(normal)))]
    first = np.cross(normal, helper)
    first /= np.linalg.norm(first)
    second = np.cross(normal, first)
    t1 = math.cos(angle) * first + math.sin(angle) * second
    t2 = np.cross(normal, t1)
    return np.stack([normal, t1, t2], axis=1)


def _box(centre: np.ndarray, half_mm: float, voxel_mm: float, shape: tuple[int, ...]) -> tuple[slice, ...]:
    half = int(math.ceil(half_mm / voxel_mm))
    c = np.rint(centre).astype(int)
    return tuple(slice(max(0, a - half), min(n, a + half + 1)) for a, n in zip(c, shape))


def _ellipsoid(params: dict, box: tuple[slice, ...], voxel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Normalised ellipsoidal radius ``rho`` and approximate signed distance (mm) to its surface, on ``box``."""
    grids = np.meshgrid(*[np.arange(s.start, s.stop, dtype=np.float64) for s in box], indexing="ij")
    offset = np.stack([g - c for g, c in zip(grids, params["centre"])], axis=-1) * voxel_mm
    local = offset @ np.asarray(params["rotation"])  # coordinates along (normal, tangent, tangent), mm
    axes = np.asarray(params["semi_axes_mm"])
    rho = np.sqrt(((local / axes) ** 2).sum(-1))
    gradient = np.sqrt(((local / axes**2) ** 2).sum(-1)) / np.maximum(rho, 1e-9)
    distance = (rho - 1.0) / np.maximum(gradient, 1e-9)  # first-order distance to the surface rho = 1
    return rho, distance


def _compartment(params: dict, intracranial: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    """The intracranial space the lesion can fill, on ``box``: for a falcine lesion only its side of the falx."""
    inside = intracranial[box].copy()
    if params["site"] == "falx":
        axis, index, side = params["falx_axis"], params["falx_index"], params["side"]
        coordinate = np.arange(box[axis].start, box[axis].stop) - index
        keep = side * coordinate >= 1  # the falx plane itself is dura, not lesion
        inside &= keep.reshape([-1 if a == axis else 1 for a in range(3)])
    return inside


def _lesion_mask(params: dict, intracranial: np.ndarray, voxel_mm: float) -> tuple[tuple[slice, ...], np.ndarray]:
    box = _box(np.asarray(params["centre"]), max(params["semi_axes_mm"]) + 2 * voxel_mm, voxel_mm, intracranial.shape)
    rho, _ = _ellipsoid(params, box, voxel_mm)
    return box, (rho <= 1.0) & _compartment(params, intracranial, box)


def meningioma_params(
    subject: dict, rng: np.random.Generator, voxel_mm: float, axis: int = 2, min_extent_mm: float = 0.0
) -> dict:
    """Draw a meningioma for ``subject``: site, dural attachment, shape, enhancement, dural tail.

    Values and sources (typical, WHO grade 1 meningiomas; "assumed" marks our own choices where we found no number):

    - site: over the convexity (any outer brain surface whose outward normal is not pointing down: skull-base sites
      are not modelled) or on the falx, with probability 0.2 (assumed: falcine meningiomas are a minority of the
      parasagittal, falcine and convexity group, the most frequent sites in Watts et al. 2014 and Huang et al. 2019).
      A falcine lesion sits on the interhemispheric plane (least-tissue sagittal plane) at least 8 mm inside the
      brain's outline and above MNI z = 20 mm (the corpus callosum is below; the falx does not reach it).
    - shape: an ellipsoid with semi-axes ``R * U(0.8, 1.25)``, ``R ~ U(8, 20)`` mm (diameters about 1.3-5 cm, the
      usual size of symptomatic meningiomas; assumed within it), one axis along the dural normal; its centre lies
      ``U(0.1, 0.4)`` x that semi-axis inside the dura (assumed), so the intracranial part is a dome on a broad dural
      base (Watts et al. 2014). The lesion is the ellipsoid inside the intracranial space (on its side of the falx).
    - enhancement: :func:`enhancement_ratio` with TR ``U(400, 650)`` ms (clinical T1 spin echo; assumed), acquired
      ``U(3, 10)`` min after injection (assumed) and ``ve ~ U(0.2, 0.4)`` (assumed): 1.3-1.8 x white matter.
      Mild heterogeneity: a smooth (3 mm) multiplicative field of standard deviation ``U(0.02, 0.06)`` (assumed;
      "homogeneous" enhancement in most typical meningiomas).
    - dural tail: with probability 0.6 (Goldsher et al., "Dural 'tail' associated with meningiomas on Gd-DTPA-enhanced
      MR images", Radiology 1990: 60 % of their meningiomas), a dural thickening thickest at the lesion, ``U(1.5, 3)``
      mm (assumed), tapering to zero over ``U(10, 30)`` mm (Qi et al., "A radiopathological classification of dural
      tail sign of meningiomas", J Neurosurg 2012: tails up to about 3 cm from the tumour base) and enhancing 1.1 x
      the tumour (Goldsher's criterion: more than the tumour itself; the factor is assumed). It is not labelled: in
      most cases it is reactive, hypervascular dura rather than tumour (Goldsher et al. 1990).

    Args:
        subject: :meth:`BrainPhantom.sample` output (``t1``, ``gm``, ``wm``, ``csf``, ``affine``).
        rng: the random generator.
        voxel_mm: isotropic voxel size of ``subject`` (mm); must match its affine.
        axis: through-plane axis of the planned thick slices.
        min_extent_mm: redraw until the lesion spans at least this length along ``axis`` (e.g. 3 thick slices, so
            that the thick-slice annotation has a top and a bottom to get wrong).

    Returns:
        A dict of plain values (site, centre in voxels, rotation, semi-axes in mm, enhancement, tail).

    Raises:
        ValueError: ``voxel_mm`` not positive or not the affine's voxel size, ``axis`` not 0-2, negative
            ``min_extent_mm``.
        RuntimeError: no lesion met ``min_extent_mm`` in 200 draws.
    """
    affine = np.asarray(subject["affine"], dtype=np.float64)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(0))
    if voxel_mm <= 0 or not np.allclose(zooms, voxel_mm, rtol=1e-3):
        raise ValueError(f"voxel_mm must be the subject's isotropic voxel size {zooms.tolist()}, got {voxel_mm}.")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}.")
    if min_extent_mm < 0:
        raise ValueError(f"min_extent_mm must be >= 0, got {min_extent_mm}.")
    voxel_mm = float(voxel_mm)
    intracranial = _intracranial(subject)
    surface = np.argwhere(intracranial & ~ndimage.binary_erosion(intracranial))
    lr_axis, mid = _midline(subject, intracranial, affine, voxel_mm)
    plane = np.take(intracranial, mid, axis=lr_axis)
    depth = ndimage.distance_transform_edt(plane) * voxel_mm
    superior = np.asarray(affine[2, :3])
    up = superior / np.linalg.norm(superior)
    plane_index = np.argwhere(depth >= 8.0)
    falx_points = np.insert(plane_index, lr_axis, mid, axis=1)
    world_z = falx_points @ affine[2, :3] + affine[2, 3]
    falx_points = falx_points[world_z >= 20.0]  # above the corpus callosum (MNI z of its top is about +25 mm)
    for _ in range(200):
        falx = bool(rng.uniform() < 0.2) and len(falx_points) > 0
        if falx:
            point = falx_points[rng.integers(len(falx_points))]
            side = 1 if rng.uniform() < 0.5 else -1
            normal = np.zeros(3)
            normal[lr_axis] = -side  # out of the lesion's compartment, towards the falx
        else:
            point = surface[rng.integers(len(surface))]
            side = 0
            normal = _normal(intracranial, point, voxel_mm)
            if not normal.any() or normal @ up < -0.3:  # skull-base surfaces: not modelled
                continue
        radius = rng.uniform(8.0, 20.0)
        semi_axes = radius * rng.uniform(0.8, 1.25, 3)
        centre = point - normal * semi_axes[0] * rng.uniform(0.1, 0.4) / voxel_mm
        params = {
            "site": "falx" if falx else "convexity",
            "falx_axis": lr_axis,
            "falx_index": mid,
            "side": side,
            "attachment": point.tolist(),
            "centre": centre.tolist(),
            "rotation": _frame(normal, rng.uniform(0.0, math.pi)).tolist(),
            "semi_axes_mm": semi_axes.tolist(),
            "ratio_to_wm": enhancement_ratio(rng.uniform(400.0, 650.0), rng.uniform(3.0, 10.0), rng.uniform(0.2, 0.4)),
            "heterogeneity": rng.uniform(0.02, 0.06),
            "texture_seed": int(rng.integers(0, 2**31 - 1)),
            "noise_seed": int(rng.integers(0, 2**31 - 1)),
            "tail": bool(rng.uniform() < 0.6),
            "tail_thickness_mm": rng.uniform(1.5, 3.0),
            "tail_length_mm": rng.uniform(10.0, 30.0),
            "tail_ratio": 1.1,
        }
        box, mask = _lesion_mask(params, intracranial, voxel_mm)
        if not mask.any():
            continue
        covered = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        if (covered[-1] - covered[0] + 1) * voxel_mm >= min_extent_mm:
            return params
    raise RuntimeError(f"no meningioma spanning min_extent_mm={min_extent_mm} mm along axis {axis} in 200 draws.")


def _noise_sigma(t1: np.ndarray, intracranial: np.ndarray) -> float:
    """Rician noise level from the background: zero signal there, so ``E[x^2] = 2 sigma^2`` (Rayleigh)."""
    background = ~ndimage.binary_dilation(intracranial, iterations=2)
    if not background.any():
        return 0.0
    values = t1[background].astype(np.float64)
    return float(np.sqrt(np.mean(values * values) / 2.0))


def _rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    if sigma <= 0:
        return signal
    real = signal + sigma * rng.standard_normal(signal.shape)
    imaginary = sigma * rng.standard_normal(signal.shape)
    return np.sqrt(real * real + imaginary * imaginary)


def render_meningioma(subject: dict, params: dict, voxel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Insert the lesion of ``params`` (:func:`meningioma_params`) into ``subject["t1"]``; deterministic.

    Mass effect: brain tissue is nearly incompressible, so the tumour pushes it aside: in the ellipsoid's normalised
    radius ``rho`` tissue now at ``rho > 1`` comes from ``(rho**3 - 1)**(1/3)`` (volume-preserving radial
    displacement, tapered to none between ``rho = 1.5`` and ``2.5``); only tissue of the lesion's compartment moves
    (the skull and the falx are rigid). The lesion then replaces the tissue with a 1-voxel partial-volume edge
    (fraction ``clip(0.5 - d / voxel, 0, 1)`` at signed distance ``d`` from its surface), at ``ratio_to_wm`` x the
    local white-matter signal (median of ``wm > 0.9`` voxels near the lesion, so the bias field is kept), with Rician
    noise of the image's own level (estimated from the background). The dural tail is added likewise along the
    dura around the lesion.

    Returns:
        ``(t1 with lesion float32, lesion mask uint8)``, on the subject's grid.
    """
    voxel_mm = float(voxel_mm)
    t1 = np.asarray(subject["t1"], dtype=np.float32)
    intracranial = _intracranial(subject)
    sigma = _noise_sigma(t1, intracranial)
    axes = np.asarray(params["semi_axes_mm"])
    reach = max(2.5 * axes.max(), axes.max() + (params["tail_length_mm"] if params["tail"] else 0.0)) + 2 * voxel_mm
    box = _box(np.asarray(params["centre"]), reach, voxel_mm, t1.shape)
    rho, distance = _ellipsoid(params, box, voxel_mm)
    full = tuple(slice(0, n) for n in t1.shape)
    everywhere = _compartment(params, intracranial, full)
    compartment = everywhere[box]
    inside = (rho <= 1.0) & compartment

    # mass effect: pull every moved voxel's value from closer to the centre (linear interpolation)
    taper = np.clip((2.5 - rho) / 1.0, 0.0, 1.0)
    taper = taper * taper * (3.0 - 2.0 * taper)  # smoothstep: 1 at rho <= 1.5, 0 at rho >= 2.5
    source_rho = np.cbrt(np.maximum(rho**3 - 1.0, 0.0))
    scale = 1.0 - taper * (1.0 - source_rho / np.maximum(rho, 1e-9))
    grids = np.meshgrid(*[np.arange(s.start, s.stop, dtype=np.float64) for s in box], indexing="ij")
    centre = np.asarray(params["centre"])
    source = [c + (g - c) * scale for g, c in zip(grids, centre)]
    index = tuple(np.clip(np.rint(s).astype(int), 0, n - 1) for s, n in zip(source, t1.shape))
    moved = compartment & (scale < 1.0) & everywhere[index]  # tissue only comes from the lesion's compartment
    local = t1[box].copy()
    local[moved] = ndimage.map_coordinates(t1, [s[moved] for s in source], order=1, mode="nearest")

    # lesion signal: ratio x local white matter, mild smooth heterogeneity, Rician noise at the image's level
    wm_near = (subject["wm"][box] > 0.9) & ~inside
    reference = subject["t1"][box][wm_near] if wm_near.sum() >= 50 else subject["t1"][subject["wm"] > 0.9]
    signal = float(params["ratio_to_wm"]) * float(np.median(reference))
    texture_rng = np.random.default_rng(params["texture_seed"])
    texture = ndimage.gaussian_filter(texture_rng.standard_normal(rho.shape), 3.0 / voxel_mm)
    texture *= params["heterogeneity"] / max(float(texture.std()), 1e-9)
    fraction = np.clip(0.5 - distance / voxel_mm, 0.0, 1.0) * compartment
    noise_rng = np.random.default_rng(params["noise_seed"])
    lesion = _rician(signal * (1.0 + texture), sigma, noise_rng)
    blended = (1.0 - fraction) * local + fraction * lesion

    if params["tail"]:  # dural thickening hugging the dura, thickest at the lesion and tapering away from it
        length, thickness = params["tail_length_mm"], params["tail_thickness_mm"]
        from_lesion = ndimage.distance_transform_edt(~inside) * voxel_mm
        depth_voxels = ndimage.distance_transform_edt(compartment)  # 1 on the outermost layer
        local_thickness = thickness * np.clip(1.0 - from_lesion / length, 0.0, None)
        tail = np.clip((local_thickness - (depth_voxels - 1.0) * voxel_mm) / voxel_mm, 0.0, 1.0)
        tail *= compartment & (from_lesion > 0)
        tail *= 1.0 - fraction
        tail_signal = _rician(np.full(rho.shape, signal * params["tail_ratio"]), sigma, noise_rng)
        blended = (1.0 - tail) * blended + tail * tail_signal

    image = t1.copy()
    image[box] = blended.astype(np.float32)
    mask = np.zeros(t1.shape, dtype=np.uint8)
    mask[box] = inside
    return image, mask


def add_meningioma(
    subject: dict, rng: np.random.Generator, voxel_mm: float, axis: int = 2, min_extent_mm: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Insert a synthetic meningioma into a :class:`~common.data.brain.BrainPhantom` subject's T1.

    :func:`meningioma_params` (the draw, with the literature values) then :func:`render_meningioma` (deterministic).

    Args:
        subject: :meth:`BrainPhantom.sample` output.
        rng: the random generator.
        voxel_mm: the subject's isotropic voxel size (mm).
        axis: through-plane axis of the planned thick slices.
        min_extent_mm: minimum extent of the lesion along ``axis`` (mm).

    Returns:
        ``(image, mask)``: the T1 with the lesion (float32, same units) and the lesion mask (uint8 0/1), same grid.

    Examples::

        >>> subject = BrainPhantom(seed=1, downsample=2).sample()  # doctest: +SKIP
        >>> image, mask = add_meningioma(subject, np.random.default_rng(0), voxel_mm=2.0)  # doctest: +SKIP
        >>> bool(mask.any()) and image.shape == mask.shape  # doctest: +SKIP
        True
    """
    params = meningioma_params(subject, rng, voxel_mm, axis=axis, min_extent_mm=min_extent_mm)
    return render_meningioma(subject, params, voxel_mm)


# ---------------------------------------------------------------------------------------------- dataset
def _crop(volume: np.ndarray, axis: int, factor: int) -> np.ndarray:
    keep = volume.shape[axis] - volume.shape[axis] % factor
    return np.ascontiguousarray(np.take(volume, np.arange(keep), axis=axis))


def _round_int16(volume: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(volume), 0, 32767).astype(np.int16)  # T1 units (about 0-2000), as IXI's int16


def _meningioma_case(folder: str, hr_folder: str, index: int, seed: int, small: bool, factor: int, axis: int) -> str:
    subject_seed = _subject_seed(seed, "Meningioma", index)
    downsample = 2 if small else 1
    subject = BrainPhantom(subject_seed, downsample=downsample).sample()
    voxel_mm = float(abs(subject["affine"][0, 0]))
    # crop first (the first slices are kept, as thick_slice_volume does), so the lesion lies in the written extent
    for key in ("t1", "gm", "wm", "csf"):
        subject[key] = _crop(subject[key], axis, factor)
    hr_affine = np.asarray(subject["affine"], dtype=np.float64)
    rng = np.random.default_rng([subject_seed, 7])
    image, mask = add_meningioma(subject, rng, voxel_mm, axis=axis, min_extent_mm=3 * factor * voxel_mm)
    lr_image = acquire_thick_slices(image, axis, factor)
    lr_label = (acquire_thick_slices(mask.astype(np.float32), axis, factor) >= 0.5).astype(np.uint8)
    lr_affine = thick_slice_affine(hr_affine, axis, factor)  # thin_slice_affine(lr_affine) gives hr_affine back
    name = f"MEN_{index + 1:03d}"
    write_nifti(Path(folder) / "imagesTr" / f"{name}_0000.nii.gz", _round_int16(lr_image), lr_affine)
    write_nifti(Path(folder) / "labelsTr" / f"{name}.nii.gz", lr_label, lr_affine)
    write_nifti(Path(hr_folder) / "imagesHR" / f"{name}_0000.nii.gz", _round_int16(image), hr_affine)
    write_nifti(Path(hr_folder) / "labelsHR" / f"{name}.nii.gz", mask, hr_affine)
    return name


def _dataset_json(n_subjects: int, factor: int, axis: int, small: bool) -> dict:
    voxel = 2 if small else 1
    return {
        "name": "Meningioma",
        "description": (
            f"Generated (not patient data): BrainPhantom T1 subjects (MNI152 2009 template variants) with a synthetic "
            f"contrast-enhancing meningioma, acquired as thick slices: slice factor {factor} along axis {axis} "
            f"({voxel} mm -> {voxel * factor} mm, SMORE slice profile). Labels are the thick-slice (LR) annotation, "
            "the partial-volume majority of the HR mask; the HR truth is in ../Meningioma_HR (common.data.meningioma)."
        ),
        "channel_names": {"0": "T1"},
        "labels": dict(MENINGIOMA_LABELS),
        "numTraining": int(n_subjects),
        "file_ending": ".nii.gz",
        "slice_factor": int(factor),
        "slice_axis": int(axis),
    }


def _plan_meningioma(
    out: Path, n_subjects: int, seed: int, overwrite: bool, small: bool, factor: int = 4, axis: int = 2
) -> list:
    _check_thick_slice_args(n_subjects, factor, axis)
    info = _dataset_json(n_subjects, factor, axis, small)
    folder, hr_folder = _prepare_thick_slice_folders(out, "Meningioma", info, overwrite)
    load_mni152(crop=True, downsample=2 if small else 1)  # cached before the workers fork
    return [
        (_meningioma_case, (str(folder), str(hr_folder), i, seed, small, int(factor), int(axis)))
        for i in range(int(n_subjects))
    ]


def write_meningioma(
    out: PathLike,
    n_subjects: int = 40,
    seed: int = 0,
    overwrite: bool = False,
    workers: int = 1,
    small: bool = False,
    factor: int = 4,
    axis: int = 2,
) -> Path:
    """Write the Meningioma thick-slice set in the nnU-Net v2 raw layout, with its HR truth apart.

    ``Meningioma/imagesTr/MEN_NNN_0000.nii.gz``: the thick-slice T1 (int16, the T1's units): the HR T1 with its
    lesion (:func:`add_meningioma`) cropped along ``axis`` to a multiple of ``factor`` and acquired as thick slices
    (:func:`~common.data.degradation.acquire_thick_slices`, affine
    :func:`~common.data.degradation.thick_slice_affine`); ``labelsTr/MEN_NNN.nii.gz``: the LR annotation (uint8 0/1),
    the thick-slice acquisition of the HR mask ``>= 0.5`` (a slice-profile partial-volume majority), same affine;
    ``dataset.json`` (``channel_names``, ``labels``, ``numTraining``, ``file_ending``, ``description``).
    ``Meningioma_HR/imagesHR/MEN_NNN_0000.nii.gz`` and ``labelsHR/MEN_NNN.nii.gz``: the HR image and mask (the
    cropped thin grid, whose affine is ``thin_slice_affine`` of the thick one). Full size: 1 mm isotropic
    (159 x 196 x 160) and 4 mm slices (159 x 196 x 40) along the default axis 2 (axial); ``small``: 2 mm
    (79 x 98 x 80) and 8 mm slices (79 x 98 x 20). Every lesion spans at least three thick slices' length.

    Args:
        out: output root.
        n_subjects: number of subjects (REHRSeg: about 30 held out plus the training ones).
        seed: data seed; the same seed writes the same files.
        overwrite: replace non-empty ``Meningioma``/``Meningioma_HR`` folders.
        workers: processes writing subjects in parallel (the files do not depend on it).
        small: 2 mm subjects for tests.
        factor: slice-thickness factor (>= 2).
        axis: through-plane axis (2: axial slices).

    Returns:
        The dataset folder ``out/Meningioma`` (``out/Meningioma_HR`` is written beside it).

    Raises:
        ValueError: a bad ``factor``, ``axis`` or ``n_subjects``.
        FileExistsError: a dataset folder is not empty and ``overwrite`` is False.
    """
    plan = _plan_meningioma(Path(out), n_subjects, seed, overwrite, small, factor, axis)
    _execute({"Meningioma": plan}, workers)
    return Path(out) / "Meningioma"
