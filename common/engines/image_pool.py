"""History buffer of generated images for the discriminator updates (CycleGAN's image pool)."""

from __future__ import annotations

__all__ = ["ImagePool"]

import torch


class ImagePool:
    """History buffer of generated images, as in CycleGAN's discriminator update.

    Zhu et al., "Unpaired image-to-image translation using cycle-consistent adversarial networks", ICCV 2017,
    section 4 (training details: the discriminators are updated with a history of 50 generated images rather than
    the latest ones, after Shrivastava et al. 2017). This reproduces ``util/image_pool.py`` of the reference code
    (junyanz/pytorch-CycleGAN-and-pix2pix), image by image:

    - while fewer than ``pool_size`` images are stored, each incoming image is stored and returned unchanged;
    - once full, with probability 0.5 a uniformly drawn stored image is returned and replaced by the incoming one,
      otherwise the incoming image is returned and the pool is left unchanged.

    ``pool_size=0`` disables the pool (the input is returned as is, detached). The random draws come from
    ``generator`` if given, else from torch's global RNG, so ``monai.utils.set_determinism`` makes them
    reproducible. Under DistributedDataParallel each rank keeps its own pool of its own fakes (the reference code
    has no distributed mode; pools are not synchronised). The stored images are part of the trainer's checkpoints
    (``state_dict``), so a resumed run continues with the pool the interrupted one had (the reference's
    ``--continue_train`` starts with empty pools); under DDP rank 0 saves, so every rank resumes with rank 0's pool.
    A checkpoint written before the pools were saved resumes with empty pools (``optional_in_checkpoint``).

    Args:
        pool_size: number of images kept; 0 turns the pool off.
        generator: optional ``torch.Generator`` (CPU) for the draws.

    Shapes:
        ``(B, C, *spatial) -> (B, C, *spatial)``; stored and returned images are detached.

    Raises:
        ValueError: if ``pool_size`` is negative.

    Examples::

        pool = ImagePool(pool_size=50)
        fake_for_discriminator = pool(fake_target.detach())
    """

    def __init__(self, pool_size: int = 50, generator: torch.Generator | None = None) -> None:
        if int(pool_size) != pool_size or pool_size < 0:
            raise ValueError(f"pool_size must be a non-negative integer, got {pool_size!r}.")
        self.pool_size = int(pool_size)
        self.generator = generator
        self.images: list[torch.Tensor] = []

    #: a checkpoint without the pool still resumes, with an empty pool (common.handlers.ResumeFromLatest)
    optional_in_checkpoint = True

    def __len__(self) -> int:
        return len(self.images)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The stored images as one ``(N, C, *spatial)`` tensor (``N`` 0 when empty), in pool order."""
        images = torch.cat(self.images, dim=0) if self.images else torch.zeros(0)
        return {"images": images.detach().cpu()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the stored images (on the device of the images they will be mixed with, at the next call)."""
        images = state["images"]
        if images.shape[0] > self.pool_size:
            raise ValueError(f"the saved pool holds {images.shape[0]} images, more than pool_size {self.pool_size}.")
        self.images = [image.unsqueeze(0) for image in images] if images.numel() else []

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Return a batch of the same shape mixing incoming and stored images (see class docstring)."""
        images = images.detach()
        if self.pool_size == 0:
            return images
        returned = []
        if self.images and self.images[0].device != images.device:  # restored from a checkpoint onto the CPU
            self.images = [stored.to(images.device) for stored in self.images]
        for image in images:
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image)
                returned.append(image)
            elif torch.rand(1, generator=self.generator).item() > 0.5:
                index = int(torch.randint(0, self.pool_size, (1,), generator=self.generator).item())
                returned.append(self.images[index])
                self.images[index] = image
            else:
                returned.append(image)
        return torch.cat(returned, dim=0)
