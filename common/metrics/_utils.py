"""Private helpers shared by the metric functions: tensor conversion and argument checks."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["to_numpy", "check_same_shape", "as_bool_mask", "as_spacing"]


def to_numpy(value: Any, name: str) -> np.ndarray:
    """Return ``value`` (numpy array, torch tensor incl. MetaTensor, or nested sequence) as a numpy array.

    Args:
        value: the array-like to convert; torch tensors are detached and moved to the CPU.
        name: argument name used in the error message.

    Raises:
        ValueError: when ``value`` is ``None``.
    """
    if value is None:
        raise ValueError(f"`{name}` must be an array or tensor, got None.")
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor without importing torch
        value = value.detach().cpu()
        if hasattr(value, "as_tensor"):  # monai MetaTensor -> plain tensor
            value = value.as_tensor()
        return value.numpy()
    return np.asarray(value)


def check_same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Raise a ``ValueError`` naming both arguments when the shapes of ``a`` and ``b`` differ."""
    if a.shape != b.shape:
        raise ValueError(f"`{name_a}` and `{name_b}` must have the same shape, got {a.shape} and {b.shape}.")


def as_bool_mask(value: Any, name: str) -> np.ndarray:
    """Convert a binary mask (bool, integer or float; nonzero = foreground) to a boolean numpy array."""
    array = to_numpy(value, name)
    if array.dtype == bool:
        return array
    if not (np.issubdtype(array.dtype, np.number)):
        raise ValueError(f"`{name}` must be a numeric or boolean mask, got dtype {array.dtype}.")
    return array != 0


def as_spacing(spacing: float | Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    """Return a per-axis spacing tuple of length ``ndim`` (a scalar means isotropic, ``None`` means 1.0).

    Raises:
        ValueError: naming ``spacing`` when its length differs from ``ndim`` or an entry is not positive.
    """
    if spacing is None:
        return (1.0,) * ndim
    if np.isscalar(spacing):
        values = (float(spacing),) * ndim
    else:
        values = tuple(float(s) for s in spacing)  # type: ignore[union-attr]
    if len(values) != ndim:
        raise ValueError(f"`spacing` must have one entry per spatial axis ({ndim}), got {len(values)}: {spacing}.")
    if any(not np.isfinite(s) or s <= 0 for s in values):
        raise ValueError(f"`spacing` entries must be finite and positive, got {spacing}.")
    return values
