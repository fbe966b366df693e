"""Hierarchical 3D morphology of a cardiac label map (Chen, Ouyang et al., section 2.3)."""

from __future__ import annotations

__all__ = ["HierarchicalMorphology", "HierarchicalMorphologyd", "STAGES"]

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from common.flags import as_flag
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_dst_type
from scipy import ndimage

#: the paper's order: "first we apply them to the binary map covering all the three structures, then to the MYO and
#: the LV labels, separately"
STAGES = ("foreground", "myo", "lv")


def _largest_component(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    labelled, count = ndimage.label(mask, structure=structure)
    if count <= 1:
        return mask
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    return labelled == int(np.argmax(sizes))


def _closing(mask: np.ndarray, structure: np.ndarray, iterations: int) -> np.ndarray:
    """Dilation then erosion, zero-padded first so that the array border does not erode the mask."""
    padded = np.pad(mask, iterations)
    closed = ndimage.binary_erosion(
        ndimage.binary_dilation(padded, structure, iterations), structure, iterations, border_value=1
    )
    return closed[tuple(slice(iterations, -iterations) for _ in range(mask.ndim))]


def _fill_holes(mask: np.ndarray, per_slice: bool) -> np.ndarray:
    """Holes of ``mask`` (background regions not connected to the array border), in 2D slices or in the volume."""
    if per_slice and mask.ndim == 3:
        return np.stack([ndimage.binary_fill_holes(mask[..., k]) for k in range(mask.shape[-1])], axis=-1)
    return ndimage.binary_fill_holes(mask)


def _nearest_labels(labels: np.ndarray, source: np.ndarray) -> np.ndarray:
    """For every pixel, the label of the nearest pixel of ``source`` (Euclidean distance)."""
    indices = ndimage.distance_transform_edt(~source, return_distances=False, return_indices=True)
    return labels[tuple(indices)]


class HierarchicalMorphology(Transform):
    """Hierarchical 3D morphology of a cardiac segmentation: all structures together, then MYO, then LV.

    Chen, Ouyang et al., "Unsupervised Multi-modal Style Transfer for Cardiac MR Segmentation", section 2.3: "3D
    morphological dilation and erosion operations are applied to the whole segmentation stack to further improve the
    global smoothness. In particular, we perform the operations in a hierarchical order: first we apply them to the
    binary map covering all the three structures, then to the MYO and the LV labels, separately."

    The paper names dilation and erosion only; we apply, per stage and each switchable:

    1. ``keep_largest_component``: keep the largest connected component (detached islands are removed);
    2. ``closing_iterations``: morphological closing (dilation then erosion; the paper's operations) with the
       ``connectivity`` structuring element, repeated ``closing_iterations`` times (0 switches it off);
    3. ``fill_holes``: fill enclosed holes (in each 2D slice, ``fill_holes_per_slice``, or in 3D).

    Stages, in :data:`STAGES` order:

    - ``"foreground"``: the binary map of LV, MYO and RV together. Removed pixels become background; added pixels
      (closing, holes) take the label of the nearest foreground pixel.
    - ``"myo"``: removed MYO pixels take the label of the nearest non-MYO pixel (an island inside the LV cavity becomes
      LV); closing adds MYO pixels (a gap in the wall is closed over whatever it held); holes of MYO that are not LV
      become MYO (so the LV cavity, which the MYO ring encloses, is kept).
    - ``"lv"``: removed LV pixels take the label of the nearest non-LV pixel; closing and hole filling add LV pixels
      (e.g. MYO-labelled specks inside the cavity, or the background that the MYO stage gave to MYO).

    Works on 2D and 3D maps: ``(1, H, W[, D])`` channel-first (MONAI) label maps with integer classes (0 BG, 1 LV,
    2 MYO, 3 RV by default); connectivity, closing and (unless per slice) hole filling are 3D on a volume. Output:
    the same shape and type (numpy, tensor or MetaTensor, metadata kept). A clean, smooth mask is left unchanged.

    Args:
        lv_label: the LV class (1).
        myo_label: the MYO class (2).
        background_label: the background class (0); every other class is foreground.
        stages: which stages to run, a subset of ``("foreground", "myo", "lv")`` (always run in that order).
        keep_largest_component: keep only the largest connected component in each stage.
        closing_iterations: closing (dilation then erosion) iterations per stage; 0 switches it off.
        fill_holes: fill holes in each stage.
        fill_holes_per_slice: on a 3D map, fill holes in each slice along the last axis (a hole that opens through
            the first or last slice is not enclosed in 3D); ``False`` fills 3D holes only.
        connectivity: neighbourhood of components and of the structuring element (1: faces, up to ``ndim``).

    Raises:
        ValueError: naming a bad argument; in ``__call__`` for a label map that is not ``(1, H, W[, D])``.

    Examples::

        >>> HierarchicalMorphology()(np.zeros((1, 8, 8), np.int64)).shape
        (1, 8, 8)
    """

    backend = ["numpy", "torch"]

    def __init__(
        self,
        lv_label: int = 1,
        myo_label: int = 2,
        background_label: int = 0,
        stages: Sequence[str] = STAGES,
        keep_largest_component: bool = True,
        closing_iterations: int = 1,
        fill_holes: bool = True,
        fill_holes_per_slice: bool = True,
        connectivity: int = 1,
    ) -> None:
        if len({lv_label, myo_label, background_label}) != 3:
            raise ValueError(
                "lv_label, myo_label and background_label must differ, "
                f"got {lv_label}, {myo_label}, {background_label}."
            )
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise ValueError(f"stages must be a subset of {STAGES}, got unknown {unknown}.")
        if not isinstance(closing_iterations, int) or isinstance(closing_iterations, bool) or closing_iterations < 0:
            raise ValueError(f"closing_iterations must be an integer >= 0, got {closing_iterations!r}.")
        if connectivity not in (1, 2, 3):
            raise ValueError(f"connectivity must be 1, 2 or 3, got {connectivity!r}.")
        self.lv_label, self.myo_label, self.background_label = lv_label, myo_label, background_label
        self.stages = tuple(s for s in STAGES if s in stages)
        # as_flag: `--postprocessing#transforms#3#keep_largest_component false` passes the string "false"
        self.keep_largest_component = as_flag(keep_largest_component, "keep_largest_component")
        self.closing_iterations = closing_iterations
        self.fill_holes = as_flag(fill_holes, "fill_holes")
        self.fill_holes_per_slice = as_flag(fill_holes_per_slice, "fill_holes_per_slice")
        self.connectivity = connectivity

    def _stage(self, labels: np.ndarray, stage: str, structure: np.ndarray) -> np.ndarray:
        labels = labels.copy()
        if stage == "foreground":
            mask = labels != self.background_label
        else:
            mask = labels == (self.myo_label if stage == "myo" else self.lv_label)
        if not mask.any():
            return labels
        label = {"foreground": None, "myo": self.myo_label, "lv": self.lv_label}[stage]
        if self.keep_largest_component:
            kept = _largest_component(mask, structure)
            removed = mask & ~kept
            if removed.any():
                if stage == "foreground":
                    labels[removed] = self.background_label
                else:
                    labels[removed] = _nearest_labels(labels, ~mask)[removed]
            mask = kept
        added = np.zeros_like(mask)
        if self.closing_iterations:
            added |= _closing(mask, structure, self.closing_iterations) & ~mask
        if self.fill_holes:
            holes = _fill_holes(mask | added, self.fill_holes_per_slice) & ~(mask | added)
            if stage == "myo":
                holes &= labels != self.lv_label
            added |= holes
        if added.any():
            labels[added] = _nearest_labels(labels, mask)[added] if label is None else label
        return labels

    def __call__(self, labels: Any) -> Any:
        """
        Args:
            labels: ``(1, H, W[, D])`` integer label map (numpy, tensor or MetaTensor).

        Returns:
            the processed label map, same shape, dtype and type.
        """
        array = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        if array.ndim not in (3, 4) or array.shape[0] != 1:
            raise ValueError(f"labels must be a channel-first map (1, H, W[, D]), got shape {array.shape}.")
        if not np.array_equal(array, np.round(array)):
            raise ValueError("labels must hold integer classes (argmax the probabilities first).")
        spatial = array[0].astype(np.int64)
        structure = ndimage.generate_binary_structure(spatial.ndim, min(self.connectivity, spatial.ndim))
        for stage in self.stages:
            spatial = self._stage(spatial, stage, structure)
        return convert_to_dst_type(spatial[None].astype(array.dtype), labels)[0]


class HierarchicalMorphologyd(MapTransform):
    """Dictionary version of :class:`HierarchicalMorphology` (``keys``: label maps ``(1, H, W[, D])``).

    Args:
        keys: label maps to process (replaced in place).
        allow_missing_keys: don't raise when a key is absent.
        kwargs: :class:`HierarchicalMorphology`'s arguments.
    """

    backend = HierarchicalMorphology.backend

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False, **kwargs: Any) -> None:
        super().__init__(keys, allow_missing_keys)
        self.morphology = HierarchicalMorphology(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.morphology(d[key])
        return d
