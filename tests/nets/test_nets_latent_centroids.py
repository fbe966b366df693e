"""Tests of common/nets/latent_centroids.py: k-means, the prior's latent centroids, and their file."""

from __future__ import annotations

import pytest
import torch
from common.nets.latent_centroids import _update, kmeans, latent_centroids, load_centroids, save_centroids
from torch import nn

MEANS = torch.tensor([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 5.0]])


def _clusters(per_cluster: int = 100, spread: float = 0.3, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    noise = spread * torch.randn(len(MEANS), per_cluster, MEANS.shape[1], generator=generator)
    return (MEANS[:, None] + noise).reshape(-1, MEANS.shape[1])


class TinyGenerator(nn.Module):
    """Stand-in of ``StyleSwinGenerator``: ``style_dim`` and ``mapping(z) -> w``."""

    def __init__(self, style_dim: int = 4) -> None:
        super().__init__()
        self.style_dim = style_dim
        self.layer = nn.Linear(style_dim, 6)
        self.dropout = nn.Dropout(0.5)  # would make w random if the mapping ran in train mode

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.layer(z))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mapping(z)


def test_kmeans_recovers_three_well_separated_clusters():
    centroids = kmeans(_clusters(), k=3)
    assert centroids.shape == (3, 3)
    distances = torch.cdist(MEANS, centroids)
    assert distances.min(dim=1).values.max() < 0.1  # every true mean has a centroid within 0.1
    assert sorted(distances.argmin(dim=1).tolist()) == [0, 1, 2]  # one centroid each


def test_kmeans_is_deterministic_for_a_seed():
    points = torch.randn(200, 5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(kmeans(points, 6, seed=4), kmeans(points, 6, seed=4))
    assert not torch.equal(kmeans(points, 6, seed=4), kmeans(points, 6, seed=5))  # the seeding draws differ


def test_kmeans_gives_k_distinct_centroids_with_repeated_points():
    points = torch.cat([torch.zeros(50, 2), torch.ones(3, 2), torch.full((2, 2), 5.0)])
    centroids = kmeans(points, 3)
    assert sorted(centroids[:, 0].tolist()) == [0.0, 1.0, 5.0]


def test_an_empty_cluster_takes_the_point_farthest_from_its_centroid():
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]])
    centroids = _update(points, torch.tensor([0, 0, 0]), k=2)  # cluster 1 is empty; cluster 0's mean is (11/3, 0)
    torch.testing.assert_close(centroids, torch.tensor([[11.0 / 3, 0.0], [10.0, 0.0]]))


def test_kmeans_with_k_equal_to_the_points_returns_them():
    points = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    centroids = kmeans(points, 3)
    assert sorted(map(tuple, centroids.tolist())) == sorted(map(tuple, points.tolist()))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"k": 0}, "k must be"), ({"k": 301}, "k must be"), ({"k": 2, "iterations": 0}, "iterations")],
)
def test_kmeans_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kmeans(_clusters(), **kwargs)


def test_latent_centroids_of_the_mapping():
    torch.manual_seed(0)
    generator = TinyGenerator()
    generator.train()
    centroids = latent_centroids(generator, num_samples=300, num_centroids=5, seed=2, batch_size=64)
    assert centroids.shape == (5, 6)
    assert generator.training  # mode restored
    again = latent_centroids(generator, num_samples=300, num_centroids=5, seed=2, batch_size=100)
    torch.testing.assert_close(centroids, again)  # the same latents whatever the batch size; eval mode
    z = torch.randn(300, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = kmeans(generator.layer(z), 5, seed=2)
    torch.testing.assert_close(centroids, expected)


def test_latent_centroids_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_samples"):
        latent_centroids(TinyGenerator(), num_samples=4, num_centroids=8)
    with pytest.raises(ValueError, match="style_dim"):
        latent_centroids(nn.Linear(2, 2), num_samples=10, num_centroids=2)


def test_save_and_load_round_trip(tmp_path):
    centroids = torch.randn(8, 16)
    path = tmp_path / "prior" / "centroids.pt"
    save_centroids(path, centroids, num_samples=20000, seed=0)
    assert torch.equal(load_centroids(path), centroids)
    saved = torch.load(path)
    assert saved["num_samples"] == 20000 and saved["seed"] == 0
    assert sorted(p.name for p in path.parent.iterdir()) == ["centroids.pt"]  # no temp file left
    bare = tmp_path / "bare.pt"
    torch.save(centroids, bare)
    assert torch.equal(load_centroids(bare), centroids)


def test_the_same_centroids_saved_again_have_the_same_content_fingerprint(tmp_path):
    """The SR stage records the centroids file by content (``run_settings``): rewriting the same centroids (the
    quickstart run a second time, centroids.json with overwrite) must not change the file's bytes."""
    from common.run_settings import file_fingerprint

    path, centroids = tmp_path / "centroids.pt", torch.randn(8, 16)
    save_centroids(path, centroids, seed=0)
    first = file_fingerprint(path)
    save_centroids(path, centroids, seed=0)
    assert file_fingerprint(path) == first
    save_centroids(path, centroids + 1e-3, seed=0)
    assert file_fingerprint(path) != first


def test_missing_file_names_the_path_and_the_step(tmp_path):
    path = tmp_path / "no_centroids.pt"
    with pytest.raises(FileNotFoundError, match=r"no_centroids\.pt.*generative-prior"):
        load_centroids(path)


def test_a_file_without_centroids_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="other.pt"):
        load_centroids(path)
    with pytest.raises(ValueError, match=r"\(k, D\)"):
        save_centroids(path, torch.zeros(2))
