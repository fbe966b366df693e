"""The self-distilled truncation's centroids: k-means of the prior's W latents, computed once after the prior stage.

TransMRSR (section 3.3, after Mokady et al. 2022) clusters randomly sampled latent codes of the pretrained generator
into N clusters; during SR every latent the encoder predicts is pulled toward its NEAREST centroid.
"""

from __future__ import annotations

__all__ = ["write_centroids"]

import logging
import os

import torch
from common.flags import as_flag
from common.nets.latent_centroids import PRIOR_FINGERPRINT_KEY, latent_centroids, save_centroids
from common.run_settings import file_fingerprint

logger = logging.getLogger(__name__)


def write_centroids(
    generator: torch.nn.Module,
    prior_path: str,
    out_path: str,
    num_samples: int = 60000,
    num_centroids: int = 8,
    seed: int = 0,
    overwrite: bool = False,
) -> torch.Tensor:
    """Load the prior's EMA generator from ``prior_path``, k-means ``num_samples`` mapped latents, save the centroids.

    Raises:
        FileExistsError: ``out_path`` exists and ``overwrite`` is False (SR models trained with it would change).
        KeyError: the prior checkpoint has no ``g_ema`` (nor ``g``) entry.
    """
    if os.path.exists(out_path) and not as_flag(overwrite, "overwrite"):
        raise FileExistsError(
            f"{out_path} exists: SR models trained with these centroids would no longer match; set overwrite true to "
            "recompute them."
        )
    checkpoint = torch.load(prior_path, map_location="cpu", weights_only=True)
    key = "g_ema" if "g_ema" in checkpoint else "g" if "g" in checkpoint else None
    if key is None:
        raise KeyError(f"{prior_path} holds no 'g_ema' or 'g' generator; keys: {sorted(checkpoint)[:10]}.")
    generator.load_state_dict(checkpoint[key])
    centroids = latent_centroids(generator, num_samples=num_samples, num_centroids=num_centroids, seed=seed)
    # the prior's content, not only its path: SR refuses these centroids once the prior is retrained
    meta = {PRIOR_FINGERPRINT_KEY: file_fingerprint(prior_path), "prior": os.path.abspath(prior_path)}
    save_centroids(out_path, centroids, **meta, generator_key=key, seed=seed, num_samples=num_samples)
    logger.info("wrote %d centroids of %d latents from %s to %s", num_centroids, num_samples, prior_path, out_path)
    return centroids
