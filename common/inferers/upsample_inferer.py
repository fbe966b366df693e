"""The two-stage "segment at low resolution, then interpolate" baseline of the super-resolution segmentation papers."""

from __future__ import annotations

__all__ = ["UpsampleInferer"]

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.inferers import Inferer

#: interpolation modes and the spatial dimensionalities they apply to ("linear" is bilinear in 2D, trilinear in 3D)
_MODES = {"nearest": (2, 3), "linear": (2, 3), "bilinear": (2,), "trilinear": (3,)}


class UpsampleInferer(Inferer):
    """Run the network at the input's resolution, then interpolate its logits by a per-axis integer factor.

    Wang et al. 2023 (SwinSSegNet), Fig. 6(B): the "Seg" baseline is the segmentation network at scale 1 followed by
    bilinear upsampling of its output, compared with "SSeg" (the 8x upsampling learnt inside the network); nearest
    neighbour is the floor. A per-axis factor such as ``spatial_dims=3, scale=(1, 1, 4)`` upsamples one axis only;
    the thick-slice bundles (REHRSeg, TransMRSR) do not use it: they put images and labels on the thin grid of the
    same extent with ``common.transforms.ThinSliceGridd`` / ``common.data.interpolate_to_thin_slices`` (spline
    orders 0, 1 or 3, the thin grid's affine written with the array).

    The interpolation is ``torch.nn.functional.interpolate(logits, scale_factor=scale, mode=...)`` with
    ``align_corners=False`` for the linear modes, so a factor of 1 leaves an axis unchanged.

    Shapes: ``(B, C_in, *S)`` -> network -> ``(B, C, *S')`` -> ``(B, C, s_0 * S'_0, ..., s_{d-1} * S'_{d-1})`` with
    ``d = spatial_dims`` and ``s = scale``. The logits keep their value range (linear interpolation of logits is
    convex, nearest copies them); apply the activation in ``postprocessing`` as for any segmentation network.

    Args:
        spatial_dims: 2 for ``(B, C, H, W)`` images, 3 for ``(B, C, H, W, D)`` volumes.
        scale: the upsampling factor per spatial axis, a positive int for every axis or a sequence of
            ``spatial_dims`` positive ints (e.g. ``(1, 1, 4)``: z only).
        mode: ``"nearest"``, ``"linear"`` (bilinear in 2D, trilinear in 3D), ``"bilinear"`` (2D only) or
            ``"trilinear"`` (3D only).

    Raises:
        ValueError: naming ``spatial_dims``, ``scale`` or ``mode`` when out of range or inconsistent, and
            ``spatial_dims`` when the network output does not have ``spatial_dims + 2`` dimensions.

    Examples::

        UpsampleInferer(spatial_dims=2, scale=8, mode="bilinear")(images, network)  # (B, 1, 64, 64) -> (B, C, 512, 512)
    """

    def __init__(self, spatial_dims: int = 2, scale: int | Sequence[int] = 8, mode: str = "linear") -> None:
        super().__init__()
        if isinstance(spatial_dims, bool) or spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {sorted(_MODES)}, got {mode!r}.")
        if spatial_dims not in _MODES[mode]:
            raise ValueError(f"mode {mode!r} needs spatial_dims in {_MODES[mode]}, got spatial_dims={spatial_dims}.")
        factors = [scale] * spatial_dims if not isinstance(scale, Sequence) else list(scale)
        if len(factors) != spatial_dims:
            raise ValueError(f"scale must be an int or {spatial_dims} ints (spatial_dims), got {scale!r}.")
        for factor in factors:
            if isinstance(factor, bool) or not float(factor).is_integer() or factor < 1:
                raise ValueError(f"scale entries must be positive integers, got {scale!r}.")
        self.spatial_dims = spatial_dims
        self.scale = tuple(int(factor) for factor in factors)
        if mode == "linear":
            mode = "bilinear" if spatial_dims == 2 else "trilinear"
        self.mode = mode

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        """Logits of ``network(inputs, *args, **kwargs)`` upsampled by ``scale``.

        Args:
            inputs: ``(B, C_in, *S)`` with ``spatial_dims`` spatial axes.
            network: the segmentation network; its output must be ``(B, C, *S')``.
        """
        logits = network(inputs, *args, **kwargs)
        if logits.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"the network output has shape {tuple(logits.shape)}, expected (B, C) + {self.spatial_dims} spatial "
                f"axes (spatial_dims={self.spatial_dims})."
            )
        align = {"align_corners": False} if self.mode in ("bilinear", "trilinear") else {}
        return F.interpolate(logits, scale_factor=self.scale, mode=self.mode, **align)
