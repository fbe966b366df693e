"""Brain source: the MNI152 2009 T1 template with its GM/WM maps (shipped inside nilearn's wheel) and seeded variants.

DESIGN.md section 2 ("Brain"): TransMRSR and REHRSeg brain runs use IXI-like T1 volumes; we make them from the real
MNI152 ICBM 2009 template by seeded elastic/affine warps, bias fields, contrast changes and Rician noise. No
download: the files are read from ``nilearn/datasets/data/`` (the same files that
``nilearn.datasets.load_mni152_template(resolution=1)``, ``load_mni152_gm_template`` and ``load_mni152_wm_template``
load), without importing ``nilearn.datasets`` (which is slow to import).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
from common.data.degradation import area_downsample

__all__ = ["BrainPhantom", "BRAIN_LABELS", "mni152_paths", "load_mni152"]

#: Hard tissue labels written beside the IXI-like T1 volumes (argmax of the CSF/GM/WM maps inside the brain).
BRAIN_LABELS = {"background": 0, "csf": 1, "gm": 2, "wm": 3}

_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


def mni152_paths() -> dict[str, Path]:
    """Paths of the MNI152 2009 T1, GM and WM templates inside the installed nilearn package.

    Raises:
        ModuleNotFoundError: nilearn is not installed.
        FileNotFoundError: the installed nilearn lacks a template file (the path is named).
    """
    spec = importlib.util.find_spec("nilearn")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "nilearn is not installed; `pip install 'nilearn>=0.10'` (its wheel ships the MNI152 2009 templates, "
            "nothing is downloaded)."
        )
    folder = Path(spec.origin).parent / "datasets" / "data"
    paths = {key: folder / name for key, name in _FILES.items()}
    for path in paths.values():
        if not path.is_file():
            raise FileNotFoundError(
                f"MNI152 template {path} is missing from the installed nilearn; reinstall `nilearn>=0.10`."
            )
    return paths


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[dict[str, np.ndarray], np.ndarray]:
    images = {key: nib.load(str(path)) for key, path in mni152_paths().items()}
    data = {}
    for key, image in images.items():
        array = np.asanyarray(image.dataobj).astype(np.float32)
        data[key] = array / array.max()  # as nilearn's loaders: rescaled to [0, 1]
    return data, images["t1"].affine.copy()


@functools.lru_cache(maxsize=4)
def _load(crop: bool, downsample: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data, affine = _raw()
    affine = affine.copy()
    if crop:  # brain bounding box plus a margin of 6 voxels (the templates are skull-stripped)
        nonzero = np.argwhere((data["t1"] > 0) | (data["gm"] > 0) | (data["wm"] > 0))
        low = np.maximum(nonzero.min(0) - 6, 0)
        high = np.minimum(nonzero.max(0) + 7, data["t1"].shape)
        if downsample > 1:
            high = low + (high - low) // downsample * downsample
        box = tuple(slice(a, b) for a, b in zip(low, high))
        data = {key: array[box] for key, array in data.items()}
        affine[:3, 3] = affine[:3, :3] @ low + affine[:3, 3]
    if downsample > 1:
        f = downsample
        for key, array in data.items():
            shape = tuple(s // f * f for s in array.shape)
            array = array[: shape[0], : shape[1], : shape[2]]
            array = area_downsample(array, f)  # last two axes
            array = np.moveaxis(area_downsample(np.moveaxis(array, 0, -1), (1, f)), -1, 0)
            data[key] = np.ascontiguousarray(array)
        affine = affine.copy()
        shift = 0.5 * (f - 1)
        affine[:3, 3] = affine[:3, :3] @ np.full(3, shift) + affine[:3, 3]
        affine[:3, :3] = affine[:3, :3] * f
    return data["t1"], data["gm"], data["wm"], affine


def load_mni152(crop: bool = True, downsample: int = 1) -> dict[str, np.ndarray]:
    """The MNI152 2009 T1, GM and WM templates as float32 arrays in [0, 1] (as nilearn's loaders return them).

    Args:
        crop: crop to the brain bounding box plus 6 voxels (197x233x189 -> about 159x197x163 at 1 mm).
        downsample: integer area-downsampling factor (2 gives 2 mm voxels, for quick tests).

    Returns:
        ``{"t1", "gm", "wm": (X, Y, Z) float32, "affine": (4, 4) float64}`` (copies; the cache stays intact).
    """
    if isinstance(downsample, bool) or int(downsample) != downsample or downsample < 1:
        raise ValueError(f"downsample must be a positive integer, got {downsample!r}.")
    t1, gm, wm, affine = _load(bool(crop), int(downsample))
    return {"t1": t1.copy(), "gm": gm.copy(), "wm": wm.copy(), "affine": affine.copy()}


def _smooth_displacement(rng: np.random.Generator, shape: tuple[int, ...], control: tuple[int, ...], sigma: float):
    """Three displacement fields (voxels) interpolated (cubic, separably) from random control-point offsets."""
    from scipy import interpolate  # imported here: scipy.interpolate takes ~1 s to import

    fields = []
    matrices = []
    for n, c in zip(shape, control):
        knots = np.linspace(0, n - 1, c)
        basis = interpolate.make_interp_spline(knots, np.eye(c), k=3)(np.arange(n))  # (n, c)
        matrices.append(basis.astype(np.float32))
    for _ in range(3):
        coefficients = rng.normal(0.0, sigma, control).astype(np.float32)
        field = np.tensordot(coefficients, matrices[2], axes=([2], [1]))  # (cx, cy, nz)
        field = np.tensordot(matrices[1], field, axes=([1], [1]))  # (ny, cx, nz)
        field = np.tensordot(matrices[0], field, axes=([1], [1]))  # (nx, ny, nz)
        fields.append(field.astype(np.float32))
    return fields


class BrainPhantom:
    """An IXI-like T1 "subject": the MNI152 2009 template under a seeded warp, bias field, contrast change and noise.

    DESIGN.md section 2 ("Brain"). :meth:`get_params` draws a small affine (rotation up to ~4 degrees, scaling
    within 5%, shift within 3 mm), an elastic displacement (cubic interpolation of random offsets on a coarse
    control grid, ``elastic_mm`` standard deviation), a gamma and a GM/WM contrast change, a smooth multiplicative
    bias field and the Rician noise level; :meth:`sample` applies them deterministically (the warp as three
    successive smooth 1D warps along x, y and z, each a linear part plus a random displacement). The GM and WM maps are
    warped with the same displacement, so they stay the tissue truth of the T1 variant.

    Args:
        seed: subject seed (non-negative int).
        downsample: integer voxel-size factor of the template (1 = 1 mm, 2 = 2 mm for fast tests).
        elastic_mm: standard deviation of the control-point displacements (mm).
        noise: add Rician noise.

    Examples::

        >>> subject = BrainPhantom(seed=1, downsample=2).sample()
        >>> subject["t1"].shape == subject["gm"].shape
        True
    """

    def __init__(self, seed: int = 0, downsample: int = 1, elastic_mm: float = 2.0, noise: bool = True) -> None:
        if isinstance(seed, bool) or int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
        if elastic_mm < 0:
            raise ValueError(f"elastic_mm must be >= 0, got {elastic_mm}.")
        self.seed = int(seed)
        self.downsample = int(downsample)
        self.elastic_mm = float(elastic_mm)
        self.noise = bool(noise)
        self.params = self.get_params(np.random.default_rng([self.seed, 5]))

    @staticmethod
    def get_params(rng: np.random.Generator) -> dict:
        """Draw the warp, contrast, bias and noise parameters of one subject."""
        return {
            "rotation": rng.uniform(-0.07, 0.07, 3),
            "scale": rng.uniform(0.95, 1.05, 3),
            "shift_mm": rng.uniform(-3.0, 3.0, 3),
            "control": (5, 6, 5),
            "elastic_seed": int(rng.integers(0, 2**31 - 1)),
            "gamma": rng.uniform(0.8, 1.25),
            "contrast": rng.uniform(-0.08, 0.08),
            "bias": rng.normal(0.0, 0.12, 6),
            "noise_sigma": rng.uniform(0.006, 0.02),
            "noise_seed": int(rng.integers(0, 2**31 - 1)),
            "gain": rng.uniform(700.0, 1100.0),
        }

    def _warps(self, shape: tuple[int, ...], voxel_mm: float) -> list[tuple[int, np.ndarray]]:
        """Source coordinates of three successive 1D warps (along x, then y, then z).

        Each warp moves voxels along one axis by a linear part (scaling about the centre, shears that together
        make a small rotation, a shift) plus a smooth random displacement; their composition is a smooth random
        3D deformation that costs three 1D linear interpolations instead of one trilinear ``map_coordinates``.
        """
        p = self.params
        displacement = _smooth_displacement(
            np.random.default_rng(p["elastic_seed"]), shape, p["control"], self.elastic_mm / voxel_mm
        )
        centre = 0.5 * (np.asarray(shape, dtype=np.float64) - 1)
        grids = [np.arange(n, dtype=np.float32) - np.float32(c) for n, c in zip(shape, centre)]
        shears = np.tan(p["rotation"]) / 2.0
        warps = []
        for axis in range(3):
            others = [a for a in range(3) if a != axis]
            coordinate = np.zeros(shape, dtype=np.float32)
            coordinate += (grids[axis] / np.float32(p["scale"][axis]) + np.float32(centre[axis])).reshape(
                [-1 if a == axis else 1 for a in range(3)]
            )
            for k, other in enumerate(others):
                sign = 1.0 if k == 0 else -1.0
                coordinate += (np.float32(sign * shears[3 - axis - other]) * grids[other]).reshape(
                    [-1 if a == other else 1 for a in range(3)]
                )
            coordinate += np.float32(p["shift_mm"][axis] / voxel_mm)
            coordinate += displacement[axis]
            warps.append((axis, coordinate))
        return warps

    @staticmethod
    def _warp_1d(volumes: dict[str, np.ndarray], axis: int, coordinate: np.ndarray) -> dict[str, np.ndarray]:
        """Linear interpolation of every volume along ``axis`` at ``coordinate`` (edge values outside; the cropped
        templates have a zero margin, so that is zero)."""
        n = coordinate.shape[axis]
        clipped = np.clip(coordinate, 0, n - 1)
        low = np.minimum(clipped.astype(np.intp), n - 2) if n > 1 else np.zeros(clipped.shape, np.intp)
        weight = clipped - low
        high = np.minimum(low + 1, n - 1)
        out = {}
        for key, volume in volumes.items():
            value = np.take_along_axis(volume, low, axis)
            value += weight * (np.take_along_axis(volume, high, axis) - value)
            out[key] = value
        return out

    def sample(self) -> dict[str, np.ndarray]:
        """Render the subject.

        Returns:
            ``{"t1": (X, Y, Z) float32 (arbitrary units, about 0-1100 like IXI), "gm", "wm", "csf": (X, Y, Z)
            float32 probabilities in [0, 1], "label": (X, Y, Z) uint8 (:data:`BRAIN_LABELS`), "affine": (4, 4)}``
            on the (cropped, optionally downsampled) template grid.
        """
        template = load_mni152(crop=True, downsample=self.downsample)
        shape = template["t1"].shape
        voxel_mm = float(abs(template["affine"][0, 0]))
        warped = {key: template[key] for key in ("t1", "gm", "wm")}
        for axis, coordinate in self._warps(shape, voxel_mm):
            warped = self._warp_1d(warped, axis, coordinate)
        p = self.params
        gm, wm = warped["gm"], warped["wm"]
        brain = warped["t1"] > 0.02
        csf = 1.0 - gm
        csf -= wm
        np.clip(csf, 0.0, 1.0, out=csf)
        csf[~brain] = 0.0
        t1 = warped["t1"] ** np.float32(p["gamma"])
        t1 += np.float32(p["contrast"]) * (wm - gm) * brain
        np.clip(t1, 0.0, None, out=t1)
        b = p["bias"]
        for axis, n in enumerate(shape):  # separable smooth bias: exp(b_a * u + b_a' * u^2) per axis
            u = np.linspace(-1.0, 1.0, n, dtype=np.float32)
            factor = np.exp(b[axis] * u + b[axis + 3] * u * u).astype(np.float32)
            t1 *= factor.reshape([-1 if a == axis else 1 for a in range(3)])
        if self.noise:
            rng = np.random.default_rng(p["noise_seed"])
            sigma = np.float32(p["noise_sigma"])
            real = t1 + sigma * rng.standard_normal(shape, dtype=np.float32)
            imaginary = sigma * rng.standard_normal(shape, dtype=np.float32)
            t1 = np.sqrt(real * real + imaginary * imaginary)
        label = np.where((wm >= gm) & (wm >= csf), 3, np.where(gm >= csf, 2, 1)).astype(np.uint8)
        label[~brain] = BRAIN_LABELS["background"]
        return {
            "t1": (t1 * p["gain"]).astype(np.float32),
            "gm": gm.astype(np.float32),
            "wm": wm.astype(np.float32),
            "csf": csf,
            "label": label,
            "affine": template["affine"],
        }
