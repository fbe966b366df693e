"""Two-view rotation + random-masking augmentation of U-SSL (Wang et al., section II.C, Fig. 5)."""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["TwoViewAugment"]

VIEWS = (1, 2)


class TwoViewAugment(nn.Module):
    """AUG1 / AUG2 of the U-SSL data engine: rotate each image by k * 90 degrees, then mask random patches.

    Wang et al., "Style Transfer and Self-Supervised Learning Powered Myocardium Infarction Super-Resolution
    Segmentation", section II.C and Fig. 5: a batch ``I`` is rotated to ``X`` (label ``y_r`` in 0, 90, 180, 270
    degrees) and then randomly masked to ``Y`` (masking rate 45%), twice and independently (views 1 and 2), which
    feeds the rotation (eq. 3), masked-image (eq. 4) and contrastive (eq. 5) tasks.

    For each view ``v`` in (1, 2), independently per sample and per view: ``k ~ U{0, ..., num_rotations - 1}``,
    ``X = rot90(I, k)`` over the last two axes (counter-clockwise, ``torch.rot90(dims=(-2, -1))``); the image is cut
    into ``mask_patch_size`` x ``mask_patch_size`` pixel patches and exactly ``round(mask_ratio * n_patches)`` of
    them, chosen uniformly, are set to zero in every channel: ``Y = X * (1 - mask)``.

    Randomness follows ``get_params`` (draws, on a CPU ``torch.Generator`` or the global RNG) then ``apply``
    (deterministic), so ``forward(images, generator=torch.Generator().manual_seed(s))`` and a call after
    ``torch.manual_seed(s)`` are reproducible.

    Shapes: ``images (B, C, H, W)`` with ``H == W`` (needed by 90-degree rotations when ``num_rotations > 1``)
    and ``H, W`` divisible by ``mask_patch_size``. Returns a dict with, for ``v`` in (1, 2):
    ``rotation_v`` ``(B,)`` int64 in ``[0, num_rotations)``, ``rotated_v`` ``(B, C, H, W)`` (clean rotated ``X``),
    ``masked_v`` ``(B, C, H, W)`` (``Y``), ``mask_v`` ``(B, 1, H, W)`` float, 1 where masked.

    Args:
        mask_ratio: fraction of patches zeroed, in ``[0, 1)`` (the paper: 0.45).
        mask_patch_size: masking patch edge in pixels.
        num_rotations: rotation classes, 1 to 4 (4: 0/90/180/270 degrees).

    Raises:
        ValueError: naming the offending argument, or the image shape in ``forward``.

    Examples::

        >>> out = TwoViewAugment()(torch.rand(2, 1, 64, 64), generator=torch.Generator().manual_seed(0))
        >>> sorted(out)[:4]
        ['mask_1', 'mask_2', 'masked_1', 'masked_2']
    """

    def __init__(self, mask_ratio: float = 0.45, mask_patch_size: int = 4, num_rotations: int = 4) -> None:
        super().__init__()
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio!r}.")
        if not isinstance(mask_patch_size, int) or isinstance(mask_patch_size, bool) or mask_patch_size < 1:
            raise ValueError(f"mask_patch_size must be a positive integer (pixels), got {mask_patch_size!r}.")
        if num_rotations not in (1, 2, 3, 4):
            raise ValueError(f"num_rotations must be 1, 2, 3 or 4, got {num_rotations!r}.")
        self.mask_ratio = mask_ratio
        self.mask_patch_size = mask_patch_size
        self.num_rotations = num_rotations

    def _check_shape(self, shape: torch.Size | tuple[int, ...]) -> None:
        if len(shape) != 4:
            raise ValueError(f"TwoViewAugment expects images of shape (B, C, H, W), got {tuple(shape)}.")
        height, width = shape[-2:]
        if self.num_rotations > 1 and height != width:
            raise ValueError(f"TwoViewAugment needs square images to rotate by 90 degrees, got {tuple(shape)}.")
        if height % self.mask_patch_size or width % self.mask_patch_size:
            raise ValueError(
                f"image size {(height, width)} must be divisible by mask_patch_size={self.mask_patch_size}."
            )

    def get_params(
        self, batch_size: int, height: int, width: int, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Draw ``rotation_v`` ``(B,)`` and ``mask_v`` ``(B, 1, H, W)`` for both views (CPU tensors)."""
        rows, cols = height // self.mask_patch_size, width // self.mask_patch_size
        num_masked = round(self.mask_ratio * rows * cols)
        params = {}
        for v in VIEWS:
            params[f"rotation_{v}"] = torch.randint(0, self.num_rotations, (batch_size,), generator=generator)
            order = torch.rand(batch_size, rows * cols, generator=generator).argsort(dim=1)
            patch_mask = torch.zeros(batch_size, rows * cols)
            patch_mask.scatter_(1, order[:, :num_masked], 1.0)
            patch_mask = patch_mask.view(batch_size, 1, rows, cols)
            params[f"mask_{v}"] = patch_mask.repeat_interleave(self.mask_patch_size, dim=2).repeat_interleave(
                self.mask_patch_size, dim=3
            )
        return params

    def rotate(self, images: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
        """Rotate sample ``b`` by ``rotation[b] * 90`` degrees: ``(B, C, H, W), (B,) -> (B, C, H, W)``."""
        rotations = torch.stack([torch.rot90(images, k, dims=(-2, -1)) for k in range(self.num_rotations)])
        return rotations[rotation.to(images.device), torch.arange(images.shape[0], device=images.device)]

    def apply(self, images: torch.Tensor, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Deterministic part: rotate, then mask, with the drawn ``params``."""
        self._check_shape(images.shape)
        out: dict[str, torch.Tensor] = {}
        for v in VIEWS:
            rotation = params[f"rotation_{v}"].to(images.device)
            mask = params[f"mask_{v}"].to(device=images.device, dtype=images.dtype)
            rotated = self.rotate(images, rotation)
            out[f"rotation_{v}"] = rotation
            out[f"rotated_{v}"] = rotated
            out[f"masked_{v}"] = rotated * (1 - mask)
            out[f"mask_{v}"] = mask
        return out

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """
        Args:
            images: ``(B, C, H, W)``, square, sizes divisible by ``mask_patch_size``.
            generator: optional CPU ``torch.Generator`` for the draws (else the global RNG).

        Returns:
            ``rotation_v``, ``rotated_v``, ``masked_v``, ``mask_v`` for ``v`` in (1, 2).
        """
        self._check_shape(images.shape)
        batch_size, _, height, width = images.shape
        return self.apply(images, self.get_params(batch_size, height, width, generator))
