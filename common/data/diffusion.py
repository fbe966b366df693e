"""Diffusion-tensor MRI physics for the phantoms: gradient schemes, the signal equation and the tensor fit.

Units: diffusivities in 1e-3 mm^2/s (myocardium ~1.5, free water at 37 C ~3), b-values in s/mm^2, so the exponent of
the signal equation is ``b * 1e-3 * g^T D g``. The signal of one voxel for gradient direction ``g`` is

    S(g) = S0 * exp(-b g^T D g)            (Stejskal-Tanner; Basser et al. 1994 Biophys J 66:259)

and the tensor is estimated per voxel by log-linear least squares of ``ln S`` on the b-matrix (Basser 1994), from
which the invariants MD = trace(D) / 3 and FA = sqrt(3/2) |lambda - MD| / |lambda| follow (Basser & Pierpaoli 1996
J Magn Reson B 111:209).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["gradient_directions", "axisymmetric_eigenvalues", "diffusion_signal", "fit_tensor", "tensor_invariants"]

# The classic six-direction scheme: the normalised (+-1, 0, 1) permutations, non-collinear, each pair of axes
# sampled at 45 degrees (the minimum for a tensor; used by single-shot DT-CMR protocols, e.g. the STEAM and M2 spin
# echo sequences reviewed by Khalique et al. 2020 JACC Cardiovasc Imaging 13:1235, the paper's reference [2]).
_SIX = np.array([(1, 0, 1), (-1, 0, 1), (0, 1, 1), (0, 1, -1), (1, 1, 0), (-1, 1, 0)], dtype=np.float64) / math.sqrt(2)


def gradient_directions(n: int = 6) -> np.ndarray:
    """``(n, 3)`` unit gradient directions: the six-direction scheme for ``n == 6``, else a Fibonacci half-sphere.

    Raises:
        ValueError: ``n < 6`` (a symmetric tensor has six unknowns besides S0).
    """
    n = int(n)
    if n < 6:
        raise ValueError(f"a diffusion tensor needs at least 6 gradient directions, got {n}.")
    if n == 6:
        return _SIX.copy()
    k = np.arange(n) + 0.5
    z = 1.0 - k / n  # (0, 1]: one half-sphere (g and -g give the same signal)
    radius = np.sqrt(1.0 - z * z)
    phi = math.pi * (3.0 - math.sqrt(5.0)) * k
    return np.stack([radius * np.cos(phi), radius * np.sin(phi), z], axis=-1)


def axisymmetric_eigenvalues(md: np.ndarray | float, fa: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues ``(lambda_parallel, lambda_perpendicular)`` of a cylindrical tensor with the given MD and FA.

    With ``lambda_par = MD (1 + 2k)`` and ``lambda_perp = MD (1 - k)`` the mean is MD and
    ``FA = 3k / sqrt(3 + 6 k^2)``, so ``k = FA / sqrt(3 - 2 FA^2)`` (FA 1 gives ``lambda_perp = 0``).
    """
    md = np.asarray(md, dtype=np.float64)
    fa = np.clip(np.asarray(fa, dtype=np.float64), 0.0, 1.0)
    k = fa / np.sqrt(3.0 - 2.0 * fa * fa)
    return md * (1.0 + 2.0 * k), md * (1.0 - k)


def diffusion_signal(
    s0: np.ndarray, md: np.ndarray, fa: np.ndarray, fibre: np.ndarray, b_value: float, directions: np.ndarray
) -> np.ndarray:
    """Noise-free signals ``(..., 1 + n)``: the b = 0 image then one diffusion-weighted image per direction.

    Args:
        s0: b = 0 signal, any shape ``S``.
        md, fa: mean diffusivity (1e-3 mm^2/s) and fractional anisotropy, shape ``S``.
        fibre: unit primary eigenvector, shape ``S + (3,)`` (the tensor is cylindrical about it).
        b_value: s/mm^2.
        directions: ``(n, 3)`` unit gradient directions in the frame of ``fibre``.
    """
    parallel, perpendicular = axisymmetric_eigenvalues(md, fa)
    cosine = np.asarray(fibre, dtype=np.float64) @ np.asarray(directions, dtype=np.float64).T  # (..., n)
    adc = perpendicular[..., None] + (parallel - perpendicular)[..., None] * cosine * cosine
    weighted = np.asarray(s0, dtype=np.float64)[..., None] * np.exp(-float(b_value) * 1e-3 * adc)
    return np.concatenate([np.asarray(s0, dtype=np.float64)[..., None], weighted], axis=-1)


def tensor_invariants(eigenvalues: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(MD, FA)`` from eigenvalues ``(..., 3)`` (FA 0 where all eigenvalues are 0)."""
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
    md = eigenvalues.mean(axis=-1)
    norm = np.sqrt((eigenvalues * eigenvalues).sum(axis=-1))
    spread = np.sqrt(((eigenvalues - md[..., None]) ** 2).sum(axis=-1))
    fa = np.sqrt(1.5) * spread / np.maximum(norm, 1e-12)
    return md, np.clip(fa, 0.0, 1.0)


def fit_tensor(
    signals: np.ndarray, b_value: float, directions: np.ndarray, floor: float = 1e-6
) -> dict[str, np.ndarray]:
    """Per-voxel log-linear least-squares tensor fit of ``signals (..., 1 + n)`` (b = 0 first, as from
    :func:`diffusion_signal` plus noise).

    Signals are floored at ``floor`` times the voxel's largest signal before the logarithm (noise can reach 0).
    Eigenvalues are clipped to ``[0, 4]`` 1e-3 mm^2/s (a negative or above-free-water eigenvalue is a noise
    artefact), as scanner tensor software does, before MD and FA are computed.

    Returns:
        ``{"S0", "MD", "FA"}``, each of shape ``signals.shape[:-1]``, float32.
    """
    directions = np.asarray(directions, dtype=np.float64)
    signals = np.asarray(signals, dtype=np.float64)
    if signals.shape[-1] != 1 + len(directions):
        raise ValueError(f"signals need 1 + {len(directions)} values on the last axis, got {signals.shape[-1]}.")
    gx, gy, gz = directions.T
    b = float(b_value) * 1e-3
    rows = np.stack([np.ones_like(gx), -b * gx * gx, -b * gy * gy, -b * gz * gz, -2 * b * gx * gy,
                     -2 * b * gx * gz, -2 * b * gy * gz], axis=-1)  # fmt: skip
    design = np.concatenate([np.eye(7)[:1], rows], axis=0)  # b = 0: ln S = ln S0
    flat = signals.reshape(-1, signals.shape[-1])
    floor_value = np.maximum(flat.max(axis=-1, keepdims=True), 1e-12) * floor
    logs = np.log(np.maximum(flat, floor_value))
    coefficients = np.linalg.lstsq(design, logs.T, rcond=None)[0].T  # (N, 7)
    dxx, dyy, dzz, dxy, dxz, dyz = coefficients[:, 1:].T
    tensors = np.stack(
        [np.stack([dxx, dxy, dxz], -1), np.stack([dxy, dyy, dyz], -1), np.stack([dxz, dyz, dzz], -1)], axis=-2
    )
    eigenvalues = np.clip(np.linalg.eigvalsh(tensors), 0.0, 4.0)
    md, fa = tensor_invariants(eigenvalues)
    shape = signals.shape[:-1]
    s0 = np.exp(np.clip(coefficients[:, 0], -30.0, 30.0))
    return {
        "S0": s0.reshape(shape).astype(np.float32),
        "MD": md.reshape(shape).astype(np.float32),
        "FA": fa.reshape(shape).astype(np.float32),
    }
