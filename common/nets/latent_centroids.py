"""Centroids of the generative prior's latent space for self-distilled truncation (TransMRSR section 3.3)."""

from __future__ import annotations

__all__ = [
    "kmeans",
    "latent_centroids",
    "save_centroids",
    "load_centroids",
    "check_centroids_prior",
    "CENTROIDS_KEY",
    "PRIOR_FINGERPRINT_KEY",
]

import logging
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import torch
from common.run_settings import file_fingerprint
from torch.nn.parallel import DataParallel, DistributedDataParallel

logger = logging.getLogger(__name__)

#: key of the centroid tensor in the file written by :func:`save_centroids`
CENTROIDS_KEY = "centroids"
#: key of the content hash (``common.run_settings.file_fingerprint``) of the prior checkpoint the centroids came from
PRIOR_FINGERPRINT_KEY = "prior_fingerprint"


def _nearest(points: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the nearest centroid of each point and the squared distance to it."""
    squared = torch.cdist(points, centroids).pow(2)
    distance, index = squared.min(dim=1)
    return index, distance


def _kmeans_plus_plus(points: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each next centroid drawn with probability ``∝ d(x)^2``."""
    first = int(torch.randint(points.shape[0], (1,), generator=generator))
    centroids = [points[first]]
    _, distance = _nearest(points, points[first][None])
    for _ in range(1, k):
        weights = distance.double().cpu().clamp_min(0)
        if float(weights.sum()) <= 0:  # every point coincides with a centroid: draw uniformly
            weights = torch.ones_like(weights)
        chosen = int(torch.multinomial(weights, 1, generator=generator))
        centroids.append(points[chosen])
        _, new_distance = _nearest(points, points[chosen][None])
        distance = torch.minimum(distance, new_distance)
    return torch.stack(centroids)


def _update(points: torch.Tensor, assignment: torch.Tensor, k: int) -> torch.Tensor:
    """Cluster means; an empty cluster is re-seeded with the point farthest from its own cluster's mean."""
    counts = torch.bincount(assignment, minlength=k)
    sums = torch.zeros(k, points.shape[1], dtype=points.dtype, device=points.device).index_add_(0, assignment, points)
    centroids = sums / counts.clamp_min(1)[:, None].to(points.dtype)
    empty = (counts == 0).nonzero().flatten().tolist()
    if empty:
        spread = (points - centroids[assignment]).pow(2).sum(dim=1)
        farthest = spread.argsort(descending=True, stable=True)[: len(empty)]
        centroids[empty] = points[farthest]
    return centroids


def kmeans(points: torch.Tensor, k: int, iterations: int = 100, seed: int = 0) -> torch.Tensor:
    """k-means (Lloyd's algorithm) with k-means++ seeding from a seeded ``torch.Generator``: deterministic per seed.

    Iterates until the assignments stop changing or ``iterations`` updates are done. An empty cluster is re-seeded
    with the point farthest from its cluster's centroid.

    Args:
        points: ``(N, D)`` float points.
        k: number of clusters, ``1 <= k <= N``.
        iterations: most Lloyd updates (>= 1).
        seed: seed of the k-means++ draws.

    Returns:
        ``(k, D)`` centroids, in the dtype and on the device of ``points``.

    Raises:
        ValueError: ``points`` not ``(N, D)`` floats, ``k`` outside ``[1, N]``, ``iterations < 1``.

    Examples::

        centroids = kmeans(torch.randn(1000, 512), k=8)
    """
    if points.ndim != 2 or not points.is_floating_point():
        raise ValueError(f"points must be a (N, D) float tensor, got {tuple(points.shape)} {points.dtype}.")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= points.shape[0]:
        raise ValueError(f"k must be an integer in [1, number of points = {points.shape[0]}], got {k!r}.")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}.")
    points = points.detach()
    generator = torch.Generator().manual_seed(int(seed))
    centroids = _kmeans_plus_plus(points, k, generator)
    assignment, _ = _nearest(points, centroids)
    for _ in range(iterations):
        centroids = _update(points, assignment, k)
        new_assignment, _ = _nearest(points, centroids)
        if torch.equal(new_assignment, assignment):
            break
        assignment = new_assignment
    return centroids


@torch.no_grad()
def latent_centroids(
    generator: torch.nn.Module, num_samples: int = 60000, num_centroids: int = 8, seed: int = 0, batch_size: int = 1000
) -> torch.Tensor:
    """k-means centroids of the prior's intermediate latents ``w = mapping(z)``, ``z ~ N(0, I)`` (self-distilled
    truncation, Mokady et al. 2022; TransMRSR section 3.3: computed once after the generative-prior stage).

    The SR network's latents are moved toward the nearest centroid (``psi = 0.9``); the paper draws 60,000 latents
    into 8 clusters (section 4.2; the public code's script draws 20,000). Clustering is on ``w`` itself (no
    standardisation).

    Args:
        generator: the trained prior (its EMA copy): a module with ``style_dim`` and ``mapping(z) -> (B, D)``; a
            ``DistributedDataParallel``/``DataParallel`` wrapper is unwrapped. Run in eval mode, then its mode is
            restored.
        num_samples: number of latents (>= ``num_centroids``).
        num_centroids: ``k`` of k-means.
        seed: seed of ``z`` (a CPU ``torch.Generator``, so the same on any device) and of the k-means seeding.
        batch_size: latents mapped per forward pass.

    Returns:
        ``(num_centroids, D)`` on the generator's device.

    Raises:
        ValueError: a count below 1, ``num_samples < num_centroids``, a generator without an integer ``style_dim``
            or ``mapping``, a mapping output that is not ``(B, D)``.

    Examples::

        save_centroids("models/centroids.pt", latent_centroids(g_ema), num_samples=60000, seed=0)
    """
    for name, value in (("num_samples", num_samples), ("num_centroids", num_centroids), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    if num_samples < num_centroids:
        raise ValueError(f"num_samples ({num_samples}) must be >= num_centroids ({num_centroids}).")
    if isinstance(generator, (DistributedDataParallel, DataParallel)):
        generator = generator.module
    style_dim = getattr(generator, "style_dim", None)
    if isinstance(style_dim, bool) or not isinstance(style_dim, int) or style_dim < 1:
        raise ValueError(f"generator must have an integer style_dim >= 1, got {style_dim!r}.")
    if not callable(getattr(generator, "mapping", None)):
        raise ValueError(f"generator must have a mapping(z) -> w method ({type(generator).__name__} has none).")
    parameter = next(generator.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    z_generator = torch.Generator().manual_seed(int(seed))
    was_training = generator.training
    generator.eval()
    try:
        latents = []
        for start in range(0, num_samples, batch_size):
            count = min(batch_size, num_samples - start)
            z = torch.randn(count, style_dim, generator=z_generator).to(device)
            w = generator.mapping(z)
            if w.ndim != 2 or w.shape[0] != count:
                raise ValueError(f"mapping(z) must return (B, D) = ({count}, D), got {tuple(w.shape)}.")
            latents.append(w.float())
    finally:
        generator.train(was_training)
    return kmeans(torch.cat(latents), num_centroids, seed=seed)


def save_centroids(path: str | os.PathLike, centroids: torch.Tensor, **meta: Any) -> None:
    """Write ``{"centroids": (k, D) tensor on the CPU, **meta}`` with ``torch.save``, atomically (temp file, then
    ``os.replace``), creating the folder.

    Raises:
        ValueError: ``centroids`` not ``(k, D)``.
    """
    if not isinstance(centroids, torch.Tensor) or centroids.ndim != 2:
        raise ValueError(f"centroids must be a (k, D) tensor, got {getattr(centroids, 'shape', type(centroids))}.")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".centroids-", suffix=".tmp", dir=folder)
    os.close(handle)
    try:
        # through a handle: torch.save to a path names the archive after the (random) temporary file, so the same
        # centroids would give other bytes, and the SR stage's content fingerprint would refuse to resume on them
        with open(temporary, "wb") as handle:
            torch.save({CENTROIDS_KEY: centroids.detach().cpu(), **meta}, handle)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def load_centroids(path: str | os.PathLike) -> torch.Tensor:
    """The ``(k, D)`` centroids of a file written by :func:`save_centroids` (or holding a bare tensor), on the CPU.

    Raises:
        FileNotFoundError: no file at ``path`` (the message names it and the step that writes it).
        ValueError: the file holds neither a ``(k, D)`` tensor nor a dict with one under ``centroids``.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no latent centroids at {os.fspath(path)!r}: they are written once after the generative-prior (GAN) "
            "stage by the centroid step (common.nets.latent_centroids: save_centroids(path, "
            "latent_centroids(g_ema))); run that step first, or switch the truncation off."
        )
    content = torch.load(path, map_location="cpu", weights_only=True)
    centroids = content.get(CENTROIDS_KEY) if isinstance(content, dict) else content
    if not isinstance(centroids, torch.Tensor) or centroids.ndim != 2:
        raise ValueError(
            f"{os.fspath(path)!r} holds no (k, D) centroid tensor (expected a tensor or a dict with "
            f"{CENTROIDS_KEY!r}), got {type(content).__name__}."
        )
    return centroids


def check_centroids_prior(content: Mapping[str, Any], centroids_path: str, prior_path: str) -> None:
    """Refuse centroids computed from another prior than ``prior_path``'s current content.

    The centroids are k-means of one generator's latents; after the prior is retrained they sit at the old
    generator's codes, and the truncation would pull every latent toward them without any error. The centroid file
    records its prior's content hash (:data:`PRIOR_FINGERPRINT_KEY`); a file without one (written before it was
    recorded) is used with a warning.

    Raises:
        ValueError: naming both files and the fix (recompute the centroids from this prior).
    """
    recorded = content.get(PRIOR_FINGERPRINT_KEY)
    if recorded is None:
        logger.warning(
            "%s does not record which prior it was computed from: it is not checked against %s (recompute it to "
            "have it checked).",
            centroids_path,
            prior_path,
        )
        return
    current = file_fingerprint(prior_path)
    if current is not None and current != recorded:
        raise ValueError(
            f"the latent centroids {centroids_path} were computed from another prior than {prior_path} (content "
            f"{recorded}, now {current}): the prior was retrained after its centroids. Recompute them from this "
            "prior (the centroid step with overwrite true) before training SR."
        )
