"""Class weights from the training labels, for losses that would otherwise ignore a rare class.

A class under 1 % of the pixels (PSCGAN's scar) contributes almost nothing to an unweighted per-pixel loss, and a
network that never predicts it loses almost nothing. Median-frequency balancing (Eigen and Fergus, ICCV 2015; SegNet,
Badrinarayanan et al., TPAMI 2017) weights each pixel by ``w_c = median(f) / f_c`` of its true class ``c``, where
``f_c`` is the class's share of the training pixels: the median class keeps weight 1, rarer classes weigh more.
The weights come from the training split only (never validation or test labels).
"""

from __future__ import annotations

__all__ = ["CLASS_WEIGHTINGS", "class_pixel_counts", "class_weights_for", "median_frequency_weights"]

from collections.abc import Iterable, Sequence
from os import PathLike

import nibabel as nib
import numpy as np
from common.data.validation import DatasetError

#: accepted values of a bundle's ``class_weighting`` key: "none" is the unweighted loss
CLASS_WEIGHTINGS = ("none", "median_frequency")


def class_pixel_counts(labels: Iterable[str | PathLike | np.ndarray], num_classes: int) -> np.ndarray:
    """``(num_classes,)`` pixel counts over label maps (arrays or NIfTI paths) of class indices ``0..N-1``.

    Raises:
        common.data.DatasetError: a label outside ``0..N-1`` or not a whole number (naming the file), or no label.
    """
    counts = np.zeros(num_classes, dtype=np.int64)
    n_maps = 0
    for label in labels:
        name = "a label array" if isinstance(label, np.ndarray) else str(label)
        values = np.asarray(label if isinstance(label, np.ndarray) else nib.load(label).dataobj)
        if values.size and (values.min() < 0 or values.max() >= num_classes or not np.all(values == np.round(values))):
            found = np.unique(values)[:10].tolist()
            raise DatasetError(f"{name}: labels must be whole numbers in 0..{num_classes - 1}, found {found}.")
        counts += np.bincount(values.astype(np.int64).ravel(), minlength=num_classes)
        n_maps += 1
    if n_maps == 0 or counts.sum() == 0:
        raise DatasetError("no label pixels to compute class weights from (an empty training split?).")
    return counts


def median_frequency_weights(labels: Iterable[str | PathLike | np.ndarray], num_classes: int) -> list[float]:
    """``w_c = median(f) / f_c`` over the classes present; a class absent from ``labels`` gets weight 0 (it has
    no pixel to weight, and an infinite weight would not be a number).

    Examples::

        >>> median_frequency_weights([np.array([0, 0, 0, 1, 1, 2])], 3)
        [0.6666666666666666, 1.0, 2.0]
    """
    counts = class_pixel_counts(labels, num_classes).astype(np.float64)
    present = counts > 0
    frequencies = counts / counts.sum()
    median = float(np.median(frequencies[present]))
    return [median / float(f) if f > 0 else 0.0 for f in frequencies]


def class_weights_for(
    weighting: str, labels: Iterable[str | PathLike | np.ndarray], num_classes: int
) -> Sequence[float] | None:
    """A config's ``class_weighting`` -> the loss's ``class_weights``: ``None`` for ``"none"`` (labels unread),
    the median-frequency weights of ``labels`` for ``"median_frequency"``.

    Raises:
        ValueError: any other ``weighting`` (naming the accepted ones).
    """
    if weighting not in CLASS_WEIGHTINGS:
        raise ValueError(f"class_weighting must be one of {list(CLASS_WEIGHTINGS)}, got {weighting!r}.")
    if weighting == "none":
        return None
    return median_frequency_weights(labels, num_classes)
