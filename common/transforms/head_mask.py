"""Head mask of a brain MR volume: where PSNR/SSIM are measured (TransMRSR reports them inside the head)."""

from __future__ import annotations

__all__ = ["HeadMaskd", "head_mask"]

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from scipy import ndimage


def head_mask(volume: np.ndarray | torch.Tensor, threshold: float = 0.1, percentile: float = 99.5) -> np.ndarray:
    """Boolean mask: voxels above ``threshold`` x the ``percentile`` intensity, smoothed, largest component, filled.

    The background of a magnitude image is Rician noise; a Gaussian smoothing (sigma 1 voxel) before the threshold
    keeps isolated noise voxels out, and filling holes keeps dark CSF inside.
    """
    array = np.asarray(volume, dtype=np.float32)
    reference = np.percentile(array[array > 0], percentile) if np.any(array > 0) else 0.0
    mask = ndimage.gaussian_filter(array, 1.0) > threshold * reference
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = ndimage.sum(mask, labels, index=range(1, count + 1))
        mask = labels == (int(np.argmax(sizes)) + 1)
    if array.ndim == 3:
        return ndimage.binary_fill_holes(mask)
    return (
        np.stack([ndimage.binary_fill_holes(m) for m in mask]) if array.ndim == 4 else ndimage.binary_fill_holes(mask)
    )


class HeadMaskd(MapTransform):
    """``output_key`` = :func:`head_mask` of the first of ``keys`` (channel-first), as a float tensor of its shape."""

    def __init__(self, keys: KeysCollection, output_key: str = "mask", threshold: float = 0.1) -> None:
        super().__init__(keys)
        self.output_key, self.threshold = output_key, float(threshold)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        key = next(iter(self.key_iterator(d)))
        image = torch.as_tensor(d[key])
        masks = [head_mask(channel.detach().cpu().numpy(), self.threshold) for channel in image]
        d[self.output_key] = torch.as_tensor(np.stack(masks), dtype=torch.float32)
        return d
