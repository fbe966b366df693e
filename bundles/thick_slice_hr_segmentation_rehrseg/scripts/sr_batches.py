"""How many volumes the self-SR loader batches so that one optimizer step sees ``sr_batch_size`` patches.

``SelfSRPatchesd`` cuts ``sr_patches_per_volume`` training pairs from each volume and MONAI's collate joins those
lists, so a loader batch of ``v`` volumes is a step of ``v * sr_patches_per_volume`` patches. ``sr_batch_size``
counts patches per optimizer step, as the public code's ``batch_size_sr`` (32 patches of 2 x 4 x 96 x 96); the
loader's batch size is derived here. Until bundle 0.2.3 the loader took ``sr_batch_size`` volumes, so a step held
``sr_batch_size * sr_patches_per_volume`` patches (2048 at the full config's 32 x 64).
"""

from __future__ import annotations

__all__ = ["volumes_per_step"]


def volumes_per_step(sr_batch_size: int, sr_patches_per_volume: int) -> int:
    """The self-SR loader's batch size in volumes: ``sr_batch_size / sr_patches_per_volume``.

    Raises:
        ValueError: if either is below 1, or ``sr_batch_size`` is not a multiple of ``sr_patches_per_volume`` (a
            step would not hold ``sr_batch_size`` patches).
    """
    batch, per_volume = int(sr_batch_size), int(sr_patches_per_volume)
    if batch < 1 or per_volume < 1:
        raise ValueError(f"sr_batch_size and sr_patches_per_volume must be >= 1, got {batch} and {per_volume}.")
    if batch % per_volume:
        raise ValueError(
            f"sr_batch_size {batch} (self-SR patches per optimizer step) is not a multiple of sr_patches_per_volume "
            f"{per_volume} (patches cut from each volume): set sr_patches_per_volume to a divisor of sr_batch_size."
        )
    return batch // per_volume
