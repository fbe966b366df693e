from __future__ import annotations

import logging
import math

import pytest
import torch
from common.engines import SSLTrainer
from ignite.engine import Events
from monai.handlers import StatsHandler, from_engine
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

TERMS = ("loss", "loss_rotation", "loss_reconstruction", "loss_contrastive")


pytestmark = pytest.mark.usefixtures("one_thread")


class _Augment:
    """Stand-in for common.ssl.TwoViewAugment: rotation by k*90 degrees then a fixed-fraction random mask."""

    def __call__(self, images):
        out = {}
        for view in (1, 2):
            rotation = torch.randint(0, 4, (images.shape[0],))
            rotated = torch.stack([torch.rot90(x, int(k), dims=(-2, -1)) for x, k in zip(images, rotation)])
            mask = (torch.rand_like(rotated) > 0.45).float()
            out.update(
                {
                    f"rotation_{view}": rotation,
                    f"rotated_{view}": rotated,
                    f"masked_{view}": rotated * mask,
                    f"mask_{view}": mask,
                }
            )
        return out


class _SSLNet(nn.Module):
    """Stand-in for common.ssl.SSLNet."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU())
        self.rotation_head = nn.Linear(8, 4)
        self.projection = nn.Linear(8, 8)
        self.decoder = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, x):
        features = self.encoder(x)
        pooled = features.mean(dim=(-2, -1))
        return {
            "rotation_logits": self.rotation_head(pooled),
            "embedding": self.projection(pooled),
            "reconstruction": self.decoder(features),
        }


class _Loss(nn.Module):
    """Stand-in for common.ssl.MultiTaskSSLLoss: CE(rotation) + L1(reconstruction) + NT-Xent(embeddings)."""

    def forward(self, out1, out2, aug):
        rotation = F.cross_entropy(out1["rotation_logits"], aug["rotation_1"]) + F.cross_entropy(
            out2["rotation_logits"], aug["rotation_2"]
        )
        reconstruction = F.l1_loss(out1["reconstruction"], aug["rotated_1"]) + F.l1_loss(
            out2["reconstruction"], aug["rotated_2"]
        )
        z = F.normalize(torch.cat([out1["embedding"], out2["embedding"]]), dim=1)
        n = out1["embedding"].shape[0]
        similarity = (z @ z.T / 0.5).fill_diagonal_(-1e9)
        targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
        contrastive = F.cross_entropy(similarity, targets)
        total = rotation + reconstruction + contrastive
        return {
            "loss": total,
            "loss_rotation": rotation,
            "loss_reconstruction": reconstruction,
            "loss_contrastive": contrastive,
        }


def _data(n=8, size=12):
    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(0, 1, size)
    images = [
        (ramp[None, :, None] * ramp[None, None, :] + 0.1 * torch.rand(1, size, size, generator=g)) for _ in range(n)
    ]
    return [{"img": image} for image in images]


def _build(max_epochs=4, **kwargs):
    torch.manual_seed(0)
    network = _SSLNet()
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
    loader = DataLoader(_data(), batch_size=4, shuffle=False)
    return SSLTrainer(
        "cpu",
        max_epochs,
        loader,
        {"network": network},
        {"optimizer": optimizer},
        augment=_Augment(),
        loss_function=_Loss(),
        image_key="img",
        **kwargs,
    )


def test_terms_reported_finite_and_loss_falls():
    """Eight steps of the stand-in: the reconstruction term is what it learns that fast (0.68 -> 0.36 here; the
    rotation term stays near chance, 2 ln 4, and the contrastive one at ln 7 for 8 views), so it carries the fall."""
    trainer = _build()
    history = []

    @trainer.on(Events.ITERATION_COMPLETED)
    def _keep(engine):
        history.append(dict(zip(TERMS, from_engine(list(TERMS), first=True)(engine.state.output))))

    before = [p.clone() for p in trainer.networks["network"].parameters()]
    trainer.run()
    assert len(history) == 8
    for row in history:
        assert all(math.isfinite(float(row[k])) for k in TERMS)
        parts = row["loss_rotation"] + row["loss_reconstruction"] + row["loss_contrastive"]
        assert float(row["loss"]) == pytest.approx(float(parts), rel=1e-5)

    def mean(term: str, rows: list) -> float:
        return sum(float(row[term]) for row in rows) / len(rows)

    assert mean("loss", history[-2:]) < mean("loss", history[:2])
    assert mean("loss_reconstruction", history[-2:]) < 0.7 * mean("loss_reconstruction", history[:2])
    assert all(not torch.equal(a, b) for a, b in zip(before, trainer.networks["network"].parameters()))


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_stats_handler_logs_each_term():
    trainer = _build(max_epochs=1)
    for term in TERMS:
        StatsHandler(
            name="ssl_test", tag_name=term, output_transform=from_engine([term], first=True), iteration_log=True
        ).attach(trainer)
    logger = logging.getLogger("ssl_test")  # monai's get_logger does not propagate to the root logger
    capture = _ListHandler()
    logger.addHandler(capture)
    try:
        trainer.run()
    finally:
        logger.removeHandler(capture)
    for term in TERMS:
        lines = [m for m in capture.messages if f"-- {term}: " in m]
        assert len(lines) == 2, (term, capture.messages)


def test_output_without_decollate_holds_image_and_terms():
    trainer = _build(max_epochs=1, decollate=False)
    trainer.run()
    out = trainer.state.output
    assert set(TERMS) <= set(out) and out["image"].shape == (4, 1, 12, 12)
    assert all(not out[k].requires_grad for k in TERMS)


def test_seeded_runs_are_identical_and_the_augmentation_draws_from_the_seeded_generator():
    def losses(seed: int):
        trainer = _build(max_epochs=1, decollate=False)  # same initial weights
        torch.manual_seed(seed)  # the augmentation's draws
        values = []
        trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: values.append(float(e.state.output["loss"])))
        trainer.run()
        return values

    assert losses(0) == losses(0)
    assert losses(0) != losses(1)


def test_missing_image_key_is_named():
    trainer = _build(max_epochs=1)
    trainer.image_key = "image"
    with pytest.raises(ValueError, match="image_key"):
        trainer.run()


def test_loss_without_total_is_rejected():
    trainer = _build(max_epochs=1)
    trainer.loss_function = lambda out1, out2, aug: {"loss_rotation": out1["rotation_logits"].sum()}
    with pytest.raises(ValueError, match="'loss'"):
        trainer.run()


def test_with_the_real_ussl_parts():
    from common import ssl

    torch.manual_seed(0)
    network = ssl.SSLNet(feature_size=12, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)
    loader = DataLoader([{"image": torch.rand(1, 32, 32)} for _ in range(4)], batch_size=2)
    trainer = SSLTrainer(
        "cpu",
        1,
        loader,
        {"network": network},
        {"optimizer": optimizer},
        augment=ssl.TwoViewAugment(),
        loss_function=ssl.MultiTaskSSLLoss(),
        image_key="image",
        decollate=False,
    )
    before = [p.clone() for p in network.parameters()]
    trainer.run()
    output = trainer.state.output
    assert set(TERMS) <= set(output)
    assert all(math.isfinite(float(output[k])) for k in TERMS)
    parts = output["loss_rotation"] + output["loss_reconstruction"] + output["loss_contrastive"]  # weights 1 each
    assert float(output["loss"]) == pytest.approx(float(parts), rel=1e-5)
    changed = [not torch.equal(a, b) for a, b in zip(before, network.parameters())]
    assert all(changed)  # the encoder and the three heads all took the steps
