"""Fully connected (dense) CRF refinement, slice by slice (Chen, Ouyang et al., section 2.3; Krähenbühl & Koltun 2011).

Wraps the optional package ``pydensecrf2`` (import name ``pydensecrf``; Krähenbühl's permutohedral-lattice mean-field
inference). MONAI's ``monai.networks.blocks.CRF`` needs compiled extensions that the pip wheel lacks.
"""

from __future__ import annotations

__all__ = ["DenseCRF2d", "DenseCRF2dd", "CRF_INSTALL_HINT"]

import importlib
from collections.abc import Hashable, Mapping
from types import ModuleType
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_dst_type

#: what to do when the optional dependency is missing (the message of the ImportError)
CRF_INSTALL_HINT = (
    "the dense CRF needs the optional package pydensecrf2: `pip install pydensecrf2` (it builds from source, about a "
    "minute; import name `pydensecrf`). To run without the CRF, construct it with `enabled=False` (identity, or argmax "
    "with `argmax=True`) or drop it from the post-processing (a bundle's `use_crf: false`)."
)
#: the module names tried, in order (pydensecrf2 installs `pydensecrf`; a future release may rename it)
_MODULE_NAMES = ("pydensecrf.densecrf", "pydensecrf2.densecrf")
OUTPUTS = ("probabilities", "labels")


def _import_densecrf() -> ModuleType:
    """``pydensecrf.densecrf`` (or ``pydensecrf2.densecrf``), else ``ImportError`` with :data:`CRF_INSTALL_HINT`."""
    errors = []
    for name in _MODULE_NAMES:
        try:
            return importlib.import_module(name)
        except ImportError as error:  # ModuleNotFoundError, or a broken build
            errors.append(f"{name}: {error}")
    raise ImportError(f"{CRF_INSTALL_HINT} (tried {'; '.join(errors)})")


def _to_numpy(array: Any) -> np.ndarray:
    return array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)


class DenseCRF2d(Transform):
    """Dense CRF refinement of softmax probabilities, one 2D slice at a time (MONAI-style array transform).

    Chen, Ouyang et al., "Unsupervised Multi-modal Style Transfer for Cardiac MR Segmentation", section 2.3: "Dense
    conditional random field (CRF) [12] is then applied to refine the 2D predicted segmentation mask slice by slice".
    The paper gives no CRF parameters, so the defaults are those of the reference implementation by Krähenbühl &
    Koltun ("Efficient Inference in Fully Connected CRFs with Gaussian Edge Potentials", NeurIPS 2011; its
    ``examples/dense_inference.cpp``, also pydensecrf's README): a smoothness (Gaussian) kernel of width
    ``theta_gamma = 3`` px and weight ``w2 = 3``, an appearance (bilateral) kernel of spatial width
    ``theta_alpha = 80`` px, intensity width ``theta_beta = 13`` (on a 0..255 intensity scale) and weight ``w1 = 10``,
    Potts compatibility, 5 mean-field iterations. The unary is ``-log(clip(p, 1e-5, 1))`` of the network's
    probabilities.

    The image is min-max rescaled to ``[0, 255]`` per channel over the whole input (so ``theta_beta`` keeps its RGB
    meaning and all slices of a volume share one scale); a multi-channel image gives one bilateral feature per
    channel. A 3D input ``(C, H, W, D)`` is refined slice by slice along the last axis (the paper's slice-wise 2D CRF).

    Shapes: ``probabilities`` ``(C, H, W[, D])`` (softmax output, channels sum to 1), ``image`` ``(H, W[, D])`` or
    ``(Ci, H, W[, D])``. Output: refined probabilities ``(C, H, W[, D])`` (``output="probabilities"``, default) or
    class labels ``(1, H, W[, D])`` (``output="labels"``, argmax of the refined probabilities), in the input's type
    (numpy, tensor or MetaTensor, with its metadata).

    Args:
        theta_gamma: Gaussian (smoothness) kernel width in pixels (3).
        w_gamma: Gaussian kernel weight (3).
        theta_alpha: bilateral kernel spatial width in pixels (80).
        theta_beta: bilateral kernel intensity width on the 0..255 scale (13).
        w_alpha: bilateral kernel weight (10).
        iterations: mean-field iterations (5).
        output: ``"probabilities"`` or ``"labels"``.
        enabled: ``False`` skips the CRF (no import needed): probabilities pass through (or their argmax).

    Raises:
        ImportError: when ``pydensecrf2`` is not installed (and ``enabled``), saying ``pip install pydensecrf2`` and
            how to switch the CRF off.
        ValueError: naming a bad argument; in ``__call__`` for shapes that do not match.

    Examples::

        >>> DenseCRF2d(output="labels")(np.full((2, 8, 8), 0.5, np.float32), np.zeros((8, 8))).shape
        (1, 8, 8)
    """

    backend = ["numpy", "torch"]

    def __init__(
        self,
        theta_gamma: float = 3.0,
        w_gamma: float = 3.0,
        theta_alpha: float = 80.0,
        theta_beta: float = 13.0,
        w_alpha: float = 10.0,
        iterations: int = 5,
        output: str = "probabilities",
        enabled: bool = True,
    ) -> None:
        for name, value in (("theta_gamma", theta_gamma), ("theta_alpha", theta_alpha), ("theta_beta", theta_beta)):
            if float(value) <= 0:
                raise ValueError(f"{name} must be > 0, got {value!r}.")
        for name, value in (("w_gamma", w_gamma), ("w_alpha", w_alpha)):
            if float(value) < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}.")
        if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1:
            raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}.")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}.")
        self.theta_gamma, self.w_gamma = float(theta_gamma), float(w_gamma)
        self.theta_alpha, self.theta_beta, self.w_alpha = float(theta_alpha), float(theta_beta), float(w_alpha)
        self.iterations = iterations
        self.output = output
        self.enabled = bool(enabled)
        self._densecrf = _import_densecrf() if self.enabled else None

    def _refine_slice(self, probabilities: np.ndarray, image: np.ndarray) -> np.ndarray:
        """``(C, H, W)`` probabilities, ``(Ci, H, W)`` image in [0, 255] -> ``(C, H, W)`` refined probabilities."""
        dcrf = self._densecrf
        num_classes, height, width = probabilities.shape
        crf = dcrf.DenseCRF(height * width, num_classes)
        unary = -np.log(np.clip(probabilities, 1e-5, 1.0)).reshape(num_classes, -1)
        crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
        grid = np.stack(np.meshgrid(np.arange(height), np.arange(width), indexing="ij")).astype(np.float32)
        gaussian = (grid / self.theta_gamma).reshape(2, -1)
        bilateral = np.concatenate([grid / self.theta_alpha, image / self.theta_beta]).reshape(2 + len(image), -1)
        for features, weight in ((gaussian, self.w_gamma), (bilateral, self.w_alpha)):
            if weight > 0:
                crf.addPairwiseEnergy(
                    np.ascontiguousarray(features, dtype=np.float32),
                    compat=weight,
                    kernel=dcrf.DIAG_KERNEL,
                    normalization=dcrf.NORMALIZE_SYMMETRIC,
                )
        refined = np.asarray(crf.inference(self.iterations), dtype=np.float32)
        return refined.reshape(num_classes, height, width)

    @staticmethod
    def _image_channels(image: np.ndarray, spatial_shape: tuple[int, ...]) -> np.ndarray:
        """``(H, W[, D])`` or ``(Ci, H, W[, D])`` -> ``(Ci, H, W[, D])`` rescaled to ``[0, 255]`` per channel."""
        if image.shape == spatial_shape:
            image = image[None]
        if image.ndim != len(spatial_shape) + 1 or image.shape[1:] != spatial_shape:
            raise ValueError(
                f"image shape {image.shape} does not match the probabilities' spatial shape {spatial_shape} "
                "(expected (H, W[, D]) or (Ci, H, W[, D]))."
            )
        image = image.astype(np.float32)
        flat = image.reshape(len(image), -1)
        low, high = flat.min(axis=1), flat.max(axis=1)
        scale = np.where(high > low, 255.0 / np.maximum(high - low, np.finfo(np.float32).tiny), 0.0)
        return (image - low.reshape(-1, *[1] * len(spatial_shape))) * scale.reshape(-1, *[1] * len(spatial_shape))

    def __call__(self, probabilities: Any, image: Any = None) -> Any:
        """
        Args:
            probabilities: ``(C, H, W[, D])`` softmax probabilities (numpy, tensor or MetaTensor).
            image: ``(H, W[, D])`` or ``(Ci, H, W[, D])``; required when ``enabled``.

        Returns:
            refined probabilities ``(C, H, W[, D])`` or labels ``(1, H, W[, D])``, the type of ``probabilities``.
        """
        prob = _to_numpy(probabilities)
        if prob.ndim not in (3, 4) or prob.shape[0] < 2:
            raise ValueError(f"probabilities must be (C, H, W[, D]) with C >= 2 classes, got shape {prob.shape}.")
        prob = prob.astype(np.float32)
        if self.enabled:
            if image is None:
                raise ValueError("DenseCRF2d needs the image (its bilateral kernel is on the image intensities).")
            img = self._image_channels(_to_numpy(image), prob.shape[1:])
            if prob.ndim == 3:
                prob = self._refine_slice(prob, img)
            else:
                prob = np.stack([self._refine_slice(prob[..., k], img[..., k]) for k in range(prob.shape[-1])], axis=-1)
        result = np.argmax(prob, axis=0)[None].astype(np.int64) if self.output == "labels" else prob
        return convert_to_dst_type(result, probabilities, dtype=result.dtype)[0]


class DenseCRF2dd(MapTransform):
    """Dictionary version of :class:`DenseCRF2d`: refines ``data[key]`` with the image ``data[image_key]``.

    Args:
        keys: probability maps ``(C, H, W[, D])`` to refine (replaced in place).
        image_key: the image ``(Ci, H, W[, D])`` for the bilateral kernel (e.g. ``"image"``).
        allow_missing_keys: don't raise when a key is absent.
        kwargs: :class:`DenseCRF2d`'s arguments.
    """

    backend = DenseCRF2d.backend

    def __init__(
        self, keys: KeysCollection, image_key: str = "image", allow_missing_keys: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key = image_key
        self.crf = DenseCRF2d(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image = d.get(self.image_key) if self.crf.enabled else None
        if self.crf.enabled and image is None:
            raise KeyError(f"DenseCRF2dd needs the image under key {self.image_key!r}; keys are {list(d)}.")
        for key in self.key_iterator(d):
            d[key] = self.crf(d[key], image)
        return d
