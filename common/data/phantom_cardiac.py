"""Seeded short-axis cardiac phantom with per-modality contrast (cine bSSFP, LGE, DTI-like), rendered at any grid.

The anatomy is analytic, in millimetres, so one subject can be rendered at 0.3125 mm (LGE 512x512), 2.5 mm (DTI
64x64) or 1.25 mm (cine stacks) with the same masks; DESIGN.md section 2 is the specification.
"""

from __future__ import annotations

import math
import zlib
from typing import Sequence

import numpy as np
from common.constants import ACDC_LABELS, EMIDEC_LABELS, MI_LABELS, MSCMR_LABELS
from common.data.degradation import area_downsample
from scipy import ndimage

__all__ = ["CardiacPhantom", "TISSUES", "MODALITIES", "GROUPS", "LABEL_SCHEMES"]

#: Tissue classes of the phantom, in the order of the integer tissue map (``scheme="tissue"``).
TISSUES = (
    "air",
    "body",
    "fat",
    "lung",
    "liver",
    "spine",
    "aorta",
    "lv_blood",
    "myocardium",
    "scar",
    "no_reflow",
    "papillary",
    "rv_blood",
    "rv_wall",
)
_T = {name: index for index, name in enumerate(TISSUES)}

#: Rendered contrasts. ``bssfp`` is cine/bSSFP (alias ``cine``, ``c0``); ``dti`` is an S0-like single channel;
#: ``dti_md`` / ``dti_fa`` are mean-diffusivity (1e-3 mm^2/s) and fractional-anisotropy maps.
MODALITIES = ("bssfp", "lge", "dti", "dti_md", "dti_fa")
_ALIASES = {"cine": "bssfp", "c0": "bssfp", "bssfp": "bssfp", "lge": "lge", "dti": "dti", "s0": "dti"}
_ALIASES.update({"dti_md": "dti_md", "md": "dti_md", "dti_fa": "dti_fa", "fa": "dti_fa"})

#: ACDC pathology groups; ``MINF`` subjects have scar, ``DCM`` a dilated thin-walled LV, ``HCM`` a thick wall,
#: ``RV`` an enlarged right ventricle.
GROUPS = ("NOR", "MINF", "DCM", "HCM", "RV")

# Mean tissue values per modality (same order as TISSUES), jittered +-10% per subject.
_CONTRAST = {
    #          air  body  fat   lung  liver spine aorta lv    myo   scar  mvo   pap   rv    rvw
    "bssfp": (0.0, 0.30, 0.75, 0.04, 0.32, 0.35, 0.85, 0.95, 0.27, 0.29, 0.27, 0.29, 0.90, 0.28),
    "lge": (0.0, 0.18, 0.55, 0.03, 0.28, 0.25, 0.60, 0.60, 0.06, 0.95, 0.08, 0.12, 0.55, 0.12),
    "dti": (0.0, 0.32, 0.07, 0.02, 0.24, 0.20, 0.10, 0.10, 0.50, 0.68, 0.62, 0.45, 0.10, 0.40),
    "dti_md": (0.0, 1.20, 0.30, 0.30, 1.10, 0.80, 3.00, 3.00, 1.50, 1.90, 2.00, 1.50, 3.00, 1.50),
    "dti_fa": (0.0, 0.20, 0.10, 0.05, 0.15, 0.10, 0.10, 0.08, 0.42, 0.28, 0.25, 0.35, 0.08, 0.35),
}
# (noise sigma, Rician?, multiplicative texture amplitude, bias-field strength)
_ACQUISITION = {
    "bssfp": (0.025, True, 0.05, 0.15),
    "lge": (0.03, True, 0.06, 0.15),
    "dti": (0.07, True, 0.08, 0.2),
    "dti_md": (0.15, False, 0.05, 0.0),
    "dti_fa": (0.05, False, 0.05, 0.0),
}


def _scheme(mapping: dict[str, int], dtype: type) -> np.ndarray:
    table = np.zeros(len(TISSUES), dtype=dtype)
    for tissue, name in mapping.items():
        table[_T[tissue]] = name
    return table


#: Tissue -> dataset label lookup tables. Papillary muscles count as cavity (ACDC/EMIDEC convention); scar and
#: no-reflow count as myocardium where a scheme has no scar class; the RV wall is background.
LABEL_SCHEMES = {
    "tissue": np.arange(len(TISSUES), dtype=np.uint8),
    "emidec": _scheme(
        {
            "lv_blood": EMIDEC_LABELS["cavity"],
            "papillary": EMIDEC_LABELS["cavity"],
            "myocardium": EMIDEC_LABELS["myocardium"],
            "scar": EMIDEC_LABELS["infarction"],
            "no_reflow": EMIDEC_LABELS["no_reflow"],
        },
        np.uint8,
    ),
    "acdc": _scheme(
        {
            "rv_blood": ACDC_LABELS["rv"],
            "myocardium": ACDC_LABELS["myocardium"],
            "scar": ACDC_LABELS["myocardium"],
            "no_reflow": ACDC_LABELS["myocardium"],
            "lv_blood": ACDC_LABELS["lv"],
            "papillary": ACDC_LABELS["lv"],
        },
        np.uint8,
    ),
    "mscmr": _scheme(
        {
            "myocardium": MSCMR_LABELS["myocardium"],
            "scar": MSCMR_LABELS["myocardium"],
            "no_reflow": MSCMR_LABELS["myocardium"],
            "lv_blood": MSCMR_LABELS["lv"],
            "papillary": MSCMR_LABELS["lv"],
            "rv_blood": MSCMR_LABELS["rv"],
        },
        np.uint16,
    ),
    "mi": _scheme({"scar": MI_LABELS["infarction"], "no_reflow": MI_LABELS["infarction"]}, np.uint8),
}


def _stable(text: str) -> int:
    return zlib.crc32(text.encode())


def _taper(distance: np.ndarray | float, half_width: float) -> np.ndarray:
    """1 at the centre, smoothly 0 at ``|distance| >= half_width``."""
    x = np.clip(np.abs(distance) / half_width, 0.0, 1.0)
    return np.sqrt(np.clip(1.0 - x**4, 0.0, 1.0))


def _wrap(angle: np.ndarray | float) -> np.ndarray:
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


class CardiacPhantom:
    """Random short-axis heart (LV, myocardium, RV, scar, papillary muscles) rendered as cine, LGE or DTI-like MRI.

    DESIGN.md section 2 ("Cardiac phantom"). One seed fixes one subject: its anatomy (an LV half-ellipsoid of
    long-axis length ``L`` with a myocardial ring of angle-dependent thickness, an RV crescent wrapped around the
    septum, papillary muscles, chest/lungs/liver/spine/aorta around it), its scar sectors (transmural or
    sub-endocardial, optionally with a no-reflow core), its contraction over the cardiac cycle (scar segments
    hypokinetic) and its per-modality contrast, bias field and noise. Everything is analytic in millimetres, so
    :meth:`labels` and :meth:`render` give consistent masks and images on any grid; masks never depend on the
    modality. Following TorchIO, :meth:`get_params` draws every random number and rendering is deterministic
    given them (noise is seeded from the subject seed and the grid).

    Geometry. A grid is ``shape`` ``(X, Y)`` (one slice) or ``(X, Y, Z)`` (a stack) with ``spacing``
    ``(dx, dy[, dz])`` in mm. Array axis 0 is x, axis 1 is y (NIfTI order). ``center`` is the in-plane position of
    the field-of-view centre relative to the LV long axis (mm), so ``center=(0, 0)`` is heart-centred. ``z`` is the
    position along the long axis in mm from the base (0) towards the apex (``~L``): the slice position for 2D, the
    first slice for 3D (``None``: mid-ventricular slice, or a stack centred on the ventricle). :meth:`affine` gives
    the voxel-to-world matrix: world = grid frame + a subject offset, so two grids with the same ``center``
    share a field of view (e.g. the LGE 512x512 grid at 0.3125 mm is the DTI 64x64 grid at 2.5 mm subdivided 8x).

    Rendering: the tissue map is evaluated at ``supersample``-times finer points, mapped to tissue values with a
    smooth multiplicative texture, averaged over ``slice_samples`` positions across the slice thickness, area-
    downsampled to the acquisition grid (output grid coarsened by ``acquisition_factor``), multiplied by a smooth bias
    field, given Rician noise (Gaussian for the MD/FA maps), and interpolated back to the output grid (cubic) when
    ``acquisition_factor > 1``.

    Contrast (values roughly in [0, 1], arbitrary units): ``bssfp`` bright blood, dark myocardium, scar invisible;
    ``lge`` nulled myocardium, bright scar, blood moderately bright, dark no-reflow core; ``dti`` S0-like, dark
    blood, low SNR (sigma 0.07 vs myocardium 0.5), scar ~35% brighter than remote myocardium (the size of the
    infarct's T2/MD elevation in DT-CMR, so a contrast-to-noise ratio of ~2-3 per 2.5 mm voxel: visible on average,
    noisy per voxel; at the ~15% of an earlier version, ~1.2-1.8, the thin infarct was barely recoverable from a
    64x64 slice by any model); ``dti_md`` higher and ``dti_fa`` lower in scar.

    Args:
        seed: subject seed (non-negative int).
        group: ACDC pathology group, one of :data:`GROUPS`; ``None`` draws one uniformly.
        scar: whether the subject has scar; ``None`` means ``group == "MINF"``. ``scar=True`` with another group
            gives that group's shape plus scar.
        no_reflow: whether a scar has a no-reflow (microvascular obstruction) core; ``None`` draws it (p=0.4).
        papillary: whether papillary muscles are present; ``None`` draws it (p=0.85).

    Raises:
        ValueError: ``seed`` negative or ``group`` unknown.

    Examples::

        >>> phantom = CardiacPhantom(seed=3, group="MINF")
        >>> phantom.render("lge", (64, 64), (2.5, 2.5)).shape
        (64, 64)
        >>> phantom.labels((64, 64, 8), (2.5, 2.5, 10.0), scheme="acdc").shape
        (64, 64, 8)
    """

    def __init__(
        self,
        seed: int = 0,
        group: str | None = None,
        scar: bool | None = None,
        no_reflow: bool | None = None,
        papillary: bool | None = None,
    ) -> None:
        if isinstance(seed, bool) or int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
        if group is not None and group not in GROUPS:
            raise ValueError(f"group must be one of {GROUPS} or None, got {group!r}.")
        self.seed = int(seed)
        rng = np.random.default_rng([self.seed, 1])
        self.params = self.get_params(rng, group, scar, no_reflow, papillary)
        self._geometry_cache: dict[tuple, dict] = {}
        self._geometry_bytes = 0
        self._texture_cache: dict[tuple, np.ndarray] = {}

    # ------------------------------------------------------------------ parameters
    @staticmethod
    def get_params(
        rng: np.random.Generator,
        group: str | None = None,
        scar: bool | None = None,
        no_reflow: bool | None = None,
        papillary: bool | None = None,
    ) -> dict:
        """Draw one subject's anatomy, motion and placement (all lengths in mm, angles in radians)."""
        u = rng.uniform
        group = str(rng.choice(GROUPS)) if group is None else group
        has_scar = (group == "MINF") if scar is None else bool(scar)
        p: dict = {"group": group, "length": u(76, 92), "r_endo": u(19, 24.5), "thickness": u(7, 10)}
        p["radial_shortening"] = u(0.26, 0.33)
        if group == "DCM":
            p.update(r_endo=u(28, 33), thickness=u(5, 7), radial_shortening=u(0.07, 0.13))
        elif group == "HCM":
            p.update(r_endo=u(15, 19), thickness=u(13, 17), radial_shortening=u(0.33, 0.42))
        elif group == "MINF":
            p.update(radial_shortening=u(0.18, 0.26))
        p["endo_harmonics"] = [(2, u(0.03, 0.09), u(0, 2 * np.pi)), (3, u(0.0, 0.035), u(0, 2 * np.pi))]
        p["thickness_harmonics"] = [(1, u(0.0, 0.14), u(0, 2 * np.pi)), (2, u(0.0, 0.1), u(0, 2 * np.pi))]
        rv_scale = u(1.35, 1.6) if group == "RV" else 1.0
        p["theta_rv"] = np.pi - 0.35 + u(-0.2, 0.2)
        p["rv_radial"] = u(17, 24) * rv_scale
        p["rv_half_angle"] = u(1.0, 1.25) * rv_scale**0.3
        p["rv_asymmetry"] = u(-0.3, 0.3)
        p["rv_wall"] = u(2.5, 3.5)
        p["rv_length"] = u(0.72, 0.85) * p["length"]
        p["rv_shortening"] = u(0.1, 0.16) if group == "RV" else u(0.25, 0.33)
        has_papillary = (rng.uniform() < 0.85) if papillary is None else bool(papillary)
        p["papillary"] = []
        if has_papillary:
            for sign in (-1, 1):
                angle = p["theta_rv"] + np.pi + sign * u(0.45, 0.8)
                p["papillary"].append({"theta": angle, "radius": u(3.0, 5.0)})
        p["papillary_z"] = (u(0.15, 0.25) * p["length"], u(0.65, 0.75) * p["length"])
        p["scar_sectors"] = []
        if has_scar:
            for _ in range(1 if rng.uniform() < 0.75 else 2):
                p["scar_sectors"].append(
                    {
                        "theta": u(0, 2 * np.pi),
                        "half_width": u(0.5, 1.1),
                        "z_center": u(0.3, 0.75) * p["length"],
                        "z_half": u(16, 32),
                        "transmurality": 1.0 if rng.uniform() < 0.5 else u(0.4, 0.75),
                        "jag": [(k, u(0.05, 0.12), u(0, 2 * np.pi)) for k in (5, 7, 11)],
                    }
                )
        p["no_reflow"] = bool(has_scar and ((rng.uniform() < 0.4) if no_reflow is None else no_reflow))
        p["hypokinesis"] = u(0.75, 0.95)
        p["wall_thinning"] = u(0.15, 0.3)
        p["epi_fat"] = [(k, u(0.4, 1.0), u(0, 2 * np.pi)) for k in (1, 2, 3)]
        p["t_es"] = u(0.33, 0.4)
        p["rotation"] = u(-0.35, 0.35)
        p["body_center"] = (u(-40, -20), u(-55, -35))
        p["body_axes"] = (u(150, 180), u(105, 125))
        p["fat_thickness"] = u(8, 16)
        p["lung_axes"] = (u(50, 62), u(75, 90))
        p["lung_offset"] = (u(85, 100), u(0, 20))
        p["liver"] = (u(-75, -50), u(-35, -10), u(80, 100), u(55, 75))
        p["spine_radius"] = u(15, 20)
        p["aorta"] = (u(15, 35), u(-60, -45), u(10, 13))
        p["texture"] = [
            (u(1 / 30, 1 / 6) * math.cos(a), u(1 / 30, 1 / 6) * math.sin(a), u(0, 2 * np.pi))
            for a in rng.uniform(0, 2 * np.pi, 8)
        ]
        p["world_offset"] = tuple(float(v) for v in rng.uniform(-40, 40, 3))
        return p

    @property
    def length(self) -> float:
        """Long-axis length of the LV cavity (mm); the epicardial apex is ``length + 0.9 * thickness``."""
        return float(self.params["length"])

    @property
    def epi_length(self) -> float:
        return float(self.params["length"] + 0.9 * self.params["thickness"])

    def has_scar(self) -> bool:
        return bool(self.params["scar_sectors"])

    def scar_z_range(self) -> tuple[float, float] | None:
        """Long-axis extent (mm from base) of the scar sectors, or ``None`` without scar."""
        if not self.params["scar_sectors"]:
            return None
        lows = [s["z_center"] - s["z_half"] for s in self.params["scar_sectors"]]
        highs = [s["z_center"] + s["z_half"] for s in self.params["scar_sectors"]]
        return max(0.0, min(lows)), min(self.length, max(highs))

    # ------------------------------------------------------------------ cardiac cycle
    def contraction(self, phase: float, n_phases: int = 25) -> float:
        """Contraction ``c`` in [0, 1] at frame ``phase`` of ``n_phases`` (0 end-diastole, 1 end-systole)."""
        t = (float(phase) % n_phases) / n_phases
        t_es = self.params["t_es"]
        if t <= t_es:
            return 0.5 * (1.0 - math.cos(math.pi * t / t_es))
        return 0.5 * (1.0 + math.cos(math.pi * ((t - t_es) / (1.0 - t_es)) ** 0.6))

    def es_phase(self, n_phases: int = 25) -> int:
        """Index of the end-systolic frame (maximal contraction) among ``n_phases`` frames."""
        return int(np.argmax([self.contraction(i, n_phases) for i in range(n_phases)]))

    # ------------------------------------------------------------------ geometry
    def slice_positions(self, n_slices: int, slice_spacing: float, z: float | None = None) -> np.ndarray:
        """Long-axis positions (mm from base) of ``n_slices`` slices ``slice_spacing`` apart starting at ``z``.

        ``z=None`` centres the stack on the ventricle (base to epicardial apex); one slice defaults to mid-ventricle.
        """
        if z is None:
            if n_slices == 1:
                z = 0.45 * self.length
            else:
                z = 0.5 * (self.epi_length - (n_slices - 1) * slice_spacing)
        return float(z) + slice_spacing * np.arange(n_slices)

    @staticmethod
    def _parse_grid(shape: Sequence[int], spacing: Sequence[float]) -> tuple[tuple[int, int, int], tuple[float, ...]]:
        shape = tuple(int(s) for s in shape)
        spacing = tuple(float(s) for s in spacing)
        if len(shape) not in (2, 3) or any(s < 1 for s in shape):
            raise ValueError(f"shape must be (X, Y) or (X, Y, Z) positive sizes, got {shape}.")
        if len(spacing) not in (2, 3) or len(spacing) < len(shape) or any(not s > 0 for s in spacing):
            raise ValueError(f"spacing must give a positive mm size for each axis of shape {shape}, got {spacing}.")
        nz = shape[2] if len(shape) == 3 else 1
        dz = spacing[2] if len(spacing) == 3 else 8.0
        return (shape[0], shape[1], nz), (spacing[0], spacing[1], dz)

    def affine(
        self,
        shape: Sequence[int],
        spacing: Sequence[float],
        center: Sequence[float] = (0.0, 0.0),
        z: float | None = None,
    ) -> np.ndarray:
        """Voxel-to-world ``(4, 4)`` matrix of the grid (the 2D case as ``(X, Y, 1)`` with ``dz = spacing[2]`` or 8 mm).

        Voxel ``(i, j, k)`` has world position ``(cx + (i - (X-1)/2) dx, cy + (j - (Y-1)/2) dy, z_k) + offset``
        where ``offset`` is the subject's world offset; axis-aligned, positive spacing on the diagonal.
        """
        (nx, ny, nz), (dx, dy, dz) = self._parse_grid(shape, spacing)
        z0 = self.slice_positions(nz, dz, z)[0]
        ox, oy, oz = self.params["world_offset"]
        affine = np.diag([dx, dy, dz, 1.0])
        affine[:3, 3] = (ox + center[0] - 0.5 * (nx - 1) * dx, oy + center[1] - 0.5 * (ny - 1) * dy, oz + z0)
        return affine

    def _points(self, nx: int, ny: int, dx: float, dy: float, center: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """Anatomical-frame coordinates (mm, float32) of the ``(nx, ny)`` voxel centres."""
        gx = (center[0] + (np.arange(nx) - 0.5 * (nx - 1)) * dx).astype(np.float32)
        gy = (center[1] + (np.arange(ny) - 0.5 * (ny - 1)) * dy).astype(np.float32)
        cos, sin = math.cos(self.params["rotation"]), math.sin(self.params["rotation"])
        x = cos * gx[:, None] + sin * gy[None, :]
        y = -sin * gx[:, None] + cos * gy[None, :]
        return x.astype(np.float32), y.astype(np.float32)

    # ------------------------------------------------------------------ tissue map
    def _background(self, x: np.ndarray, y: np.ndarray, z: float) -> np.ndarray:
        p = self.params
        bx, by = p["body_center"]
        ax, ay = p["body_axes"]
        ex, ey = (x - bx) / ax, (y - by) / ay
        tissue = np.where(ex * ex + ey * ey < 1.0, _T["body"], _T["air"]).astype(np.uint8)
        fx, fy = (x - bx) / (ax - p["fat_thickness"]), (y - by) / (ay - p["fat_thickness"])
        inner = fx * fx + fy * fy < 1.0
        tissue[(tissue == _T["body"]) & ~inner] = _T["fat"]
        lx, ly = p["lung_axes"]
        for side in (-1.0, 1.0):
            cx, cy = bx + side * p["lung_offset"][0], by + p["lung_offset"][1]
            lung = ((x - cx) / lx) ** 2 + ((y - cy) / ly) ** 2 < 1.0
            tissue[lung & inner] = _T["lung"]
        growth = float(np.clip((z - 0.35 * self.length) / (0.5 * self.length), 0.0, 1.0))
        if growth > 0:
            lx0, ly0, la, lb = p["liver"]
            liver = ((x - bx - lx0) / (la * growth)) ** 2 + ((y - by - ly0) / (lb * growth)) ** 2 < 1.0
            tissue[liver & inner] = _T["liver"]
        spine = (x - bx) ** 2 + (y - (by - ay + 35.0)) ** 2 < p["spine_radius"] ** 2
        tissue[spine] = _T["spine"]
        ax0, ay0, ar = p["aorta"]
        tissue[(x - bx - ax0) ** 2 + (y - by - ay0) ** 2 < ar * ar] = _T["aorta"]
        return tissue

    def _harmonic(self, theta: np.ndarray, terms: list) -> np.ndarray:
        out = np.ones_like(theta)
        for k, amplitude, phase in terms:
            out += amplitude * np.cos(k * theta - phase)
        return out

    def _scar_fields(self, theta: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-angle scar depth (fraction of wall from endocardium), no-reflow depth and scar weight in [0, 1]."""
        depth = np.zeros_like(theta)
        core = np.zeros_like(theta)
        weight = np.zeros_like(theta)
        for index, sector in enumerate(self.params["scar_sectors"]):
            s_z = float(_taper(z - sector["z_center"], sector["z_half"]))
            if s_z <= 0:
                continue
            delta = _wrap(theta - sector["theta"])
            s_t = _taper(delta, sector["half_width"]) * s_z
            jag = self._harmonic(theta, sector["jag"])
            d = np.clip(sector["transmurality"] * np.sqrt(s_t) * jag, 0.0, 1.0)
            d = np.where(d > 0.12, d, 0.0)
            depth = np.maximum(depth, d)
            weight = np.maximum(weight, s_t * sector["transmurality"])
            if index == 0 and self.params["no_reflow"]:
                c = np.where((_taper(delta, 0.55 * sector["half_width"]) > 0) & (s_z > 0.5), 0.45 * d, 0.0)
                core = np.maximum(core, np.where(c > 0.1, c, 0.0))
        return depth.astype(np.float32), core.astype(np.float32), weight.astype(np.float32)

    @staticmethod
    def _crescent(delta: np.ndarray, half_angle: float, asymmetry: float) -> np.ndarray:
        x = np.clip(delta / half_angle, -1.0, 1.0)
        return (np.clip(1.0 - x * x, 0.0, 1.0) ** 0.6 * (1.0 + asymmetry * x)).astype(np.float32)

    def _geometry(self, x: np.ndarray, y: np.ndarray, z: float) -> dict:
        """Phase-independent part of a slice: background, and the heart's polar fields on the points near it."""
        key = (x.shape, float(x[0, 0]), float(y[0, 0]), float(x[-1, -1]), float(y[-1, -1]), round(float(z), 4))
        if key in self._geometry_cache:
            return self._geometry_cache[key]
        p = self.params
        background = self._background(x, y, z)
        geometry: dict = {"background": background, "heart": False, "z": float(z)}
        length, epi_length = self.length, self.epi_length
        if 0.0 <= z < epi_length:
            f_endo = math.sqrt(max(0.0, 1.0 - (z / length) ** 2)) if z < length else 0.0
            f_epi = math.sqrt(max(0.0, 1.0 - (z / epi_length) ** 2))
            z_rv = p["rv_length"]
            h0 = p["rv_radial"] * math.sqrt(1.0 - (z / z_rv) ** 2) if z < z_rv else 0.0
            reach = (p["r_endo"] * 1.15 + p["thickness"] * 1.3) * f_epi + h0 * 1.3 + p["rv_wall"] + 14.0
            r_all = np.sqrt(x * x + y * y)
            index = np.flatnonzero(r_all.ravel() < reach)
            xs, ys, r = x.ravel()[index], y.ravel()[index], r_all.ravel()[index]
            theta = np.arctan2(ys, xs).astype(np.float32)
            scar_depth, core_depth, scar_weight = self._scar_fields(theta, z)
            endo_shape = p["r_endo"] * self._harmonic(theta, p["endo_harmonics"])
            thick = p["thickness"] * self._harmonic(theta, p["thickness_harmonics"])
            thick = thick * (1.0 - p["wall_thinning"] * scar_weight)
            r_endo0 = endo_shape * f_endo
            r_epi0 = np.maximum((endo_shape + thick) * f_epi, r_endo0 + 1.0)
            delta = _wrap(theta - p["theta_rv"])
            rv_profile = h0 * self._crescent(delta, p["rv_half_angle"], p["rv_asymmetry"])
            wall_profile = (h0 + p["rv_wall"]) * self._crescent(delta, p["rv_half_angle"] + 0.15, p["rv_asymmetry"])
            zone = (r < r_epi0 + 10.0) | (r < r_epi0 + wall_profile + 12.0 * (wall_profile > 0))
            heart_bg = background.ravel()[index]
            heart_bg[zone & (heart_bg == _T["lung"])] = _T["body"]
            fat = self._harmonic(theta, p["epi_fat"]) - 1.6
            geometry.update(
                heart=True,
                index=index,
                background_heart=heart_bg,
                r=r.astype(np.float32),
                scale_x=(xs / np.maximum(r, 1e-6)).astype(np.float32),
                scale_y=(ys / np.maximum(r, 1e-6)).astype(np.float32),
                r_endo0=r_endo0.astype(np.float32),
                r_epi0=r_epi0.astype(np.float32),
                area=(r_epi0 * r_epi0 - r_endo0 * r_endo0).astype(np.float32),
                shortening=(p["radial_shortening"] * (1.0 - p["hypokinesis"] * scar_weight)).astype(np.float32),
                scar_depth=scar_depth,
                core_depth=core_depth,
                rv_profile=rv_profile,
                wall_profile=wall_profile,
                fat_width=(3.0 * np.maximum(fat, 0.0)).astype(np.float32),
                f_endo=f_endo,
            )
        self._geometry_cache[key] = geometry
        self._geometry_bytes += sum(v.nbytes for v in geometry.values() if isinstance(v, np.ndarray))
        while len(self._geometry_cache) > 1 and (self._geometry_bytes > 2**28 or len(self._geometry_cache) > 64):
            old = self._geometry_cache.pop(next(iter(self._geometry_cache)))
            self._geometry_bytes -= sum(v.nbytes for v in old.values() if isinstance(v, np.ndarray))
        return geometry

    def _tissue_slice(self, x: np.ndarray, y: np.ndarray, z: float, contraction: float) -> np.ndarray:
        """Integer tissue map (``TISSUES`` indices) at anatomical points ``(x, y)``, position ``z``, contraction."""
        g = self._geometry(x, y, z)
        if not g["heart"]:
            return g["background"]
        p, c = self.params, float(contraction)
        r = g["r"]
        r_endo0, area = g["r_endo0"], g["area"]
        r_endo = r_endo0 * (1.0 - g["shortening"] * c)
        r_epi = np.sqrt(r_endo * r_endo + area)
        rv_factor = 1.0 - p["rv_shortening"] * c
        tissue = g["background_heart"].copy()
        outside = r >= r_epi
        tissue[outside & (r < r_epi + g["fat_width"])] = _T["fat"]
        tissue[outside & (r < r_epi + g["wall_profile"] * (0.3 + 0.7 * rv_factor))] = _T["rv_wall"]
        tissue[outside & (r < r_epi + g["rv_profile"] * rv_factor)] = _T["rv_blood"]
        myo = ~outside & (r >= r_endo)
        tissue[myo] = _T["myocardium"]
        if p["scar_sectors"]:
            depth = (np.sqrt(r_endo0 * r_endo0 + (r * r - r_endo * r_endo)) - r_endo0) / (g["r_epi0"] - r_endo0)
            tissue[myo & (depth < g["scar_depth"])] = _T["scar"]
            tissue[myo & (depth < g["core_depth"])] = _T["no_reflow"]
        cavity = r < r_endo
        tissue[cavity] = _T["lv_blood"]
        z_low, z_high = p["papillary_z"]
        if p["papillary"] and z_low <= g["z"] <= z_high and np.any(cavity):
            r0 = r * np.where(r_endo > 0, r_endo0 / np.maximum(r_endo, 1e-6), 1.0)
            x0, y0 = r0 * g["scale_x"], r0 * g["scale_y"]
            for muscle in p["papillary"]:
                tp = np.array([muscle["theta"]], dtype=np.float32)
                rho = float(p["r_endo"] * self._harmonic(tp, p["endo_harmonics"])[0] * g["f_endo"])
                rho -= 0.8 * muscle["radius"]
                px, py = rho * math.cos(muscle["theta"]), rho * math.sin(muscle["theta"])
                disk = (x0 - px) ** 2 + (y0 - py) ** 2 < muscle["radius"] ** 2
                tissue[cavity & disk] = _T["papillary"]
        out = g["background"].copy()
        out.ravel()[g["index"]] = tissue
        return out

    # ------------------------------------------------------------------ public API
    def labels(
        self,
        shape: Sequence[int],
        spacing: Sequence[float],
        *,
        center: Sequence[float] = (0.0, 0.0),
        z: float | None = None,
        phase: float = 0,
        n_phases: int = 25,
        scheme: str = "tissue",
    ) -> np.ndarray:
        """Label map sampled at the voxel centres of the grid (independent of modality).

        Args:
            shape: ``(X, Y)`` or ``(X, Y, Z)``.
            spacing: ``(dx, dy[, dz])`` mm.
            center: field-of-view centre relative to the LV axis, mm.
            z: slice position (2D) or first-slice position (3D) in mm from the base; ``None`` as in
                :meth:`slice_positions`.
            phase: cardiac frame index (0 = end-diastole) out of ``n_phases``.
            n_phases: frames per cycle.
            scheme: ``"tissue"`` (:data:`TISSUES` indices), ``"emidec"``, ``"acdc"``, ``"mscmr"`` or ``"mi"``
                (see :data:`LABEL_SCHEMES`).

        Returns:
            ``shape`` array, uint8 (uint16 for ``"mscmr"``).
        """
        if scheme not in LABEL_SCHEMES:
            raise ValueError(f"scheme must be one of {sorted(LABEL_SCHEMES)}, got {scheme!r}.")
        (nx, ny, nz), (dx, dy, dz) = self._parse_grid(shape, spacing)
        x, y = self._points(nx, ny, dx, dy, center)
        c = self.contraction(phase, n_phases)
        table = LABEL_SCHEMES[scheme]
        out = np.stack([table[self._tissue_slice(x, y, zk, c)] for zk in self.slice_positions(nz, dz, z)], axis=-1)
        return out if len(shape) == 3 else out[..., 0]

    def render(
        self,
        modality: str,
        shape: Sequence[int],
        spacing: Sequence[float],
        *,
        center: Sequence[float] = (0.0, 0.0),
        z: float | None = None,
        phase: float = 0,
        n_phases: int = 25,
        supersample: int = 2,
        acquisition_factor: int = 1,
        slice_thickness: float | None = None,
        slice_samples: int = 1,
        noise: bool = True,
        bias: bool = True,
    ) -> np.ndarray:
        """Render one modality on a grid (see the class docstring for the pipeline).

        Args:
            modality: one of :data:`MODALITIES` or an alias (``cine``, ``c0``, ``s0``, ``md``, ``fa``).
            shape, spacing, center, z, phase, n_phases: the grid and frame, as in :meth:`labels`.
            supersample: points per output voxel and axis for the partial-volume average (1 = point sampling).
            acquisition_factor: the image is acquired on a grid this many times coarser (noise lives there) and
                interpolated to the output grid; ``shape[:2]`` must be divisible by it.
            slice_thickness: mm through-plane (default ``0.8 * dz``); used when ``slice_samples > 1``.
            slice_samples: positions averaged across the slice thickness (through-plane partial volume).
            noise: add noise (Rician for magnitude images, Gaussian for MD/FA maps).
            bias: multiply by the smooth bias field.

        Returns:
            float32 array of ``shape``, values roughly in [0, 1] (MD in 1e-3 mm^2/s).

        Raises:
            ValueError: unknown modality, non-positive factors or a shape not divisible by ``acquisition_factor``.
        """
        modality = self._modality(modality)
        for name, value in (("supersample", supersample), ("acquisition_factor", acquisition_factor)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if int(slice_samples) < 1:
            raise ValueError(f"slice_samples must be >= 1, got {slice_samples}.")
        (nx, ny, nz), (dx, dy, dz) = self._parse_grid(shape, spacing)
        if nx % acquisition_factor or ny % acquisition_factor:
            raise ValueError(f"shape {tuple(shape)} is not divisible by acquisition_factor={acquisition_factor}.")
        ss = int(supersample)
        x, y = self._points(nx * ss, ny * ss, dx / ss, dy / ss, center)
        texture = 1.0 + _ACQUISITION[modality][2] * self._texture(nx * ss, ny * ss, dx / ss, dy / ss, center)
        table, rng_key = self._contrast(modality), _stable(modality)
        sigma, rician, texture_amplitude, bias_strength = _ACQUISITION[modality]
        thickness = 0.8 * dz if slice_thickness is None else float(slice_thickness)
        offsets = thickness * ((np.arange(slice_samples) + 0.5) / slice_samples - 0.5)
        c = self.contraction(phase, n_phases)
        af = int(acquisition_factor)
        ax_, ay_ = self._points(nx // af, ny // af, dx * af, dy * af, center)
        field = self._bias(ax_, ay_, modality, bias_strength) if bias and bias_strength > 0 else None
        slices = []
        for zk in self.slice_positions(nz, dz, z):
            value = np.zeros(x.shape, dtype=np.float32)
            for offset in offsets:
                value += table[self._tissue_slice(x, y, zk + offset, c)]
            value *= texture
            if len(offsets) > 1:
                value /= len(offsets)
            acquired = area_downsample(value, ss * af)
            if field is not None:
                acquired *= field
            if noise:
                seed = [self.seed, rng_key, int(round(zk * 100)) + 100000, int(round(phase * 1000)), nx, ny, af]
                acquired = self._add_noise(acquired, sigma, rician, np.random.default_rng(seed))
            if af > 1:
                acquired = ndimage.zoom(acquired, af, order=3, grid_mode=True, mode="reflect")
            if modality == "dti_fa":
                acquired = np.clip(acquired, 0.0, 1.0)
            slices.append(np.maximum(acquired, 0.0).astype(np.float32))
        out = np.stack(slices, axis=-1)
        return out if len(shape) == 3 else out[..., 0]

    def cine(
        self,
        shape: Sequence[int],
        spacing: Sequence[float],
        *,
        n_phases: int = 25,
        modality: str = "bssfp",
        scheme: str = "emidec",
        **kwargs,
    ) -> tuple[np.ndarray, np.ndarray]:
        """All ``n_phases`` frames of the cycle: images and labels with the frame axis last.

        Scar segments are hypokinetic (radial shortening reduced by ``hypokinesis * transmurality``), which is what
        PSCGAN learns scar from. ``kwargs`` go to :meth:`render` (``center``, ``z``, ``supersample``, ...).

        Returns:
            ``(images, labels)`` of shape ``(*shape, n_phases)``: float32 and the ``scheme`` dtype.
        """
        label_kwargs = {k: kwargs[k] for k in ("center", "z") if k in kwargs}
        images = [self.render(modality, shape, spacing, phase=t, n_phases=n_phases, **kwargs) for t in range(n_phases)]
        labels = [
            self.labels(shape, spacing, phase=t, n_phases=n_phases, scheme=scheme, **label_kwargs)
            for t in range(n_phases)
        ]
        return np.stack(images, axis=-1), np.stack(labels, axis=-1)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _modality(modality: str) -> str:
        key = str(modality).lower()
        if key not in _ALIASES:
            raise ValueError(f"modality must be one of {MODALITIES} (or aliases {sorted(_ALIASES)}), got {modality!r}.")
        return _ALIASES[key]

    def _contrast(self, modality: str) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 2, _stable(modality)])
        base = np.asarray(_CONTRAST[modality], dtype=np.float32)
        jitter = rng.uniform(0.9, 1.1, base.shape).astype(np.float32)
        if modality == "lge":  # inversion time: how well the healthy myocardium is nulled
            jitter[_T["myocardium"]] = rng.uniform(0.4, 1.6)
        return base * jitter

    def _texture(self, nx: int, ny: int, dx: float, dy: float, center: Sequence[float]) -> np.ndarray:
        """Smooth zero-mean unit-variance field: plane waves in the anatomical frame (separable in the grid), cached."""
        key = (nx, ny, round(dx, 6), round(dy, 6), round(float(center[0]), 6), round(float(center[1]), 6))
        if key not in self._texture_cache:
            if len(self._texture_cache) >= 4:
                self._texture_cache.pop(next(iter(self._texture_cache)))
            self._texture_cache[key] = self._texture_field(nx, ny, dx, dy, center)
        return self._texture_cache[key]

    def _texture_field(self, nx: int, ny: int, dx: float, dy: float, center: Sequence[float]) -> np.ndarray:
        gx = (center[0] + (np.arange(nx) - 0.5 * (nx - 1)) * dx).astype(np.float64)
        gy = (center[1] + (np.arange(ny) - 0.5 * (ny - 1)) * dy).astype(np.float64)
        cos, sin = math.cos(self.params["rotation"]), math.sin(self.params["rotation"])
        field = np.zeros((nx, ny), dtype=np.float64)
        for kx, ky, phase in self.params["texture"]:
            # x = cos*gx + sin*gy, y = -sin*gx + cos*gy in the anatomical frame
            wx, wy = 2 * np.pi * (kx * cos - ky * sin), 2 * np.pi * (kx * sin + ky * cos)
            field += np.outer(np.cos(wx * gx), np.cos(wy * gy + phase)) - np.outer(
                np.sin(wx * gx), np.sin(wy * gy + phase)
            )
        return (field / math.sqrt(0.5 * len(self.params["texture"]))).astype(np.float32)

    def _bias(self, x: np.ndarray, y: np.ndarray, modality: str, strength: float) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 3, _stable(modality)])
        c = rng.normal(0.0, strength, 5)
        xs, ys = x / 100.0, y / 100.0
        return np.exp(c[0] * xs + c[1] * ys + c[2] * xs * ys + 0.5 * c[3] * xs * xs + 0.5 * c[4] * ys * ys)

    @staticmethod
    def _add_noise(image: np.ndarray, sigma: float, rician: bool, rng: np.random.Generator) -> np.ndarray:
        real = image + np.float32(sigma) * rng.standard_normal(image.shape, dtype=np.float32)
        if not rician:
            return real
        imaginary = np.float32(sigma) * rng.standard_normal(image.shape, dtype=np.float32)
        return np.sqrt(real * real + imaginary * imaginary)
