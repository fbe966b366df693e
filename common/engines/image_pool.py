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
    has no distributed mode; pools are not synchronised and are not part of checkpoints, so a resumed run starts
    with empty pools, as a fresh reference run does).

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

    def __len__(self) -> int:
        return len(self.images)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Return a batch of the same shape mixing incoming and stored images (see class docstring)."""
        images = images.detach()
        if self.pool_size == 0:
            return images
        returned = []
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
