"""PriorGANTrainer (TransMRSR's generative-prior stage) on tiny stand-ins of the StyleSwin generator and discriminator:
the logistic losses, lazy R1, the EMA, the fixed-latent samples and their image grid."""

from __future__ import annotations

import copy

import pytest
import torch
from common.engines import PriorGANTrainer
from common.handlers import GanImageGridHandler
from ignite.engine import Events
from torch import nn
from torch.utils.data import DataLoader

SIZE = 8
STYLE_DIM = 4
LOSS_KEYS = {"loss", "loss_g", "loss_d", "loss_d_real", "loss_d_fake", "loss_r1"}


class TinyGenerator(nn.Module):
    """Stand-in of ``StyleSwinGenerator``: ``style_dim``, ``mapping(z) -> w``, ``forward(z) -> (B, 1, S, S)``."""

    def __init__(self, style_dim: int = STYLE_DIM, size: int = SIZE) -> None:
        super().__init__()
        self.style_dim = style_dim
        self.size = size
        self.mapping_net = nn.Sequential(nn.Linear(style_dim, style_dim), nn.LeakyReLU(0.2))
        self.synthesis = nn.Linear(style_dim, size * size)

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        return self.mapping_net(z)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.synthesis(self.mapping(z))).view(-1, 1, self.size, self.size)


class TinyDiscriminator(nn.Module):
    """Stand-in of ``StyleSwinDiscriminator``: ``(B, 1, S, S) -> (B, 1)`` logits."""

    def __init__(self, size: int = SIZE) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(4 * size**2, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _images(n: int = 8) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    return [{"image": torch.rand(1, SIZE, SIZE, generator=generator) * 2 - 1} for _ in range(n)]


def _trainer(epochs: int = 1, n: int = 8, batch_size: int = 4, g=None, **kwargs) -> PriorGANTrainer:
    torch.manual_seed(0)
    g = TinyGenerator() if g is None else g
    d = TinyDiscriminator()
    optimizers = {
        "g_optimizer": torch.optim.Adam(g.parameters(), lr=0.01, betas=(0.0, 0.99)),
        "d_optimizer": torch.optim.Adam(d.parameters(), lr=0.01, betas=(0.0, 0.99)),
    }
    loader = DataLoader(_images(n), batch_size=batch_size, shuffle=False)
    kwargs.setdefault("decollate", False)
    return PriorGANTrainer("cpu", epochs, loader, {"g": g, "d": d}, optimizers, **kwargs)


def _record(trainer: PriorGANTrainer, key: str) -> list:
    values = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: values.append(e.state.output[key].clone()))
    return values


def test_one_iteration_gives_every_term_and_image():
    trainer = _trainer(epoch_length=1, r1_gamma=1.0)
    trainer.run()
    out = trainer.state.output
    assert LOSS_KEYS | {"real", "fake", "samples"} <= set(out)
    assert all(not v.requires_grad for v in out.values())
    assert out["real"].shape == out["fake"].shape == out["samples"].shape == (4, 1, SIZE, SIZE)
    assert torch.equal(out["loss"], out["loss_g"])
    torch.testing.assert_close(out["loss_d"], out["loss_d_real"] + out["loss_d_fake"] + out["loss_r1"])
    assert out["loss_r1"] > 0


def test_both_networks_change_in_one_iteration():
    trainer = _trainer(epoch_length=1)
    before = {name: copy.deepcopy(trainer.networks[name]) for name in ("g", "d")}
    trainer.run()
    for name in ("g", "d"):
        after = trainer.networks[name]
        assert all(not torch.equal(a, b) for a, b in zip(before[name].parameters(), after.parameters())), name


def test_the_losses_are_the_non_saturating_logistic_ones():
    """With a discriminator that outputs 0 everywhere, every logistic term is softplus(0) = log 2."""
    trainer = _trainer(epoch_length=1)
    last = trainer.networks["d"].net[-1]
    nn.init.zeros_(last.weight), nn.init.zeros_(last.bias)
    trainer.run()
    out = trainer.state.output
    log2 = torch.log(torch.tensor(2.0))
    torch.testing.assert_close(out["loss_d_real"], log2)
    torch.testing.assert_close(out["loss_d_fake"], log2)
    # the G step sees D after its step: D(fake) < 0 now, so softplus(-D(fake)) > log 2
    assert out["loss_g"] > log2


def test_lazy_r1_is_added_on_due_iterations_only():
    trainer = _trainer(r1_gamma=1.0, r1_every=2, n=16)  # 4 iterations
    r1 = _record(trainer, "loss_r1")
    trainer.run()
    assert [float(v) > 0 for v in r1] == [False, True, False, True]
    assert all(float(v) == 0.0 for v in r1[0::2])


def test_r1_is_the_base_penalty_times_r1_every():
    trainer = _trainer(r1_gamma=3.0, r1_every=2, epoch_length=2)
    expected = []

    def penalty_before_the_step(engine):
        if engine.state.iteration == 2:
            real = torch.stack([item["image"] for item in _images()[4:8]])
            expected.append(2 * engine.r1_penalty(engine.networks["d"], real).detach())

    trainer.add_event_handler(Events.ITERATION_STARTED, penalty_before_the_step)
    trainer.run()
    torch.testing.assert_close(trainer.state.output["loss_r1"], expected[0])


def test_no_r1_without_gamma():
    trainer = _trainer(r1_every=1, epoch_length=2)
    r1 = _record(trainer, "loss_r1")
    trainer.run()
    assert all(float(v) == 0.0 for v in r1)


def test_ema_is_updated_after_the_generator_step():
    trainer = _trainer(epoch_length=1, ema={"g": 0.5})
    start = [p.detach().clone() for p in trainer.networks["g"].parameters()]
    trainer.run()
    g, ema = trainer.networks["g"], trainer.ema_networks["g"]
    for p_ema, p0, p in zip(ema.parameters(), start, g.parameters()):
        assert not torch.equal(p_ema, p)
        torch.testing.assert_close(p_ema, 0.5 * p0 + 0.5 * p)


def test_samples_are_the_ema_generators_images_of_the_fixed_latents():
    trainer = _trainer(epoch_length=1, ema={"g": 0.9}, num_fixed_samples=6)
    trainer.run()
    with torch.no_grad():
        expected = trainer.ema_networks["g"](trainer.fixed_latents)
    assert trainer.samples.shape == (6, 1, SIZE, SIZE)
    torch.testing.assert_close(trainer.samples, expected)
    torch.testing.assert_close(trainer.state.output["samples"], expected[:4])  # the batch's size


def test_samples_come_from_g_without_ema_and_g_stays_in_train_mode():
    trainer = _trainer(epoch_length=1)
    modes = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: modes.append(e.networks["g"].training))
    trainer.run()
    with torch.no_grad():
        expected = trainer.networks["g"](trainer.fixed_latents)
    torch.testing.assert_close(trainer.samples, expected)
    assert modes == [True]


def test_samples_are_kept_between_sample_iterations():
    trainer = _trainer(n=16, sample_every=2)  # 4 iterations: drawn at 1 (first), 2 and 4
    samples = _record(trainer, "samples")
    trainer.run()
    assert torch.equal(samples[1], samples[2])  # iteration 3 repeats iteration 2's
    assert not torch.equal(samples[0], samples[1])  # iteration 2 drew anew from the trained generator
    assert not torch.equal(samples[2], samples[3])

    trainer = _trainer(n=12, sample_every=100)
    samples = _record(trainer, "samples")
    trainer.run()
    assert torch.equal(samples[0], samples[1]) and torch.equal(samples[1], samples[2])


def test_fixed_latents_depend_on_the_seed_only():
    first, second = _trainer(fixed_seed=3), _trainer(fixed_seed=3)
    assert torch.equal(first.fixed_latents, second.fixed_latents)
    assert first.fixed_latents.shape == (8, STYLE_DIM)
    torch.manual_seed(123)  # the global RNG does not matter
    assert torch.equal(_trainer(fixed_seed=3).fixed_latents, first.fixed_latents)
    assert not torch.equal(_trainer(fixed_seed=4).fixed_latents, first.fixed_latents)


class _Writer:
    def __init__(self) -> None:
        self.images = []

    def add_image(self, tag, image, global_step, dataformats):
        self.images.append((global_step, image))


@pytest.mark.parametrize("decollate", [False, True])
@pytest.mark.parametrize("num_fixed_samples", [2, 8])
def test_image_grid_of_real_fake_samples(decollate, num_fixed_samples):
    """Batches of 3 then 2 (the last one short), with fewer and with more fixed samples than the batch."""
    trainer = _trainer(n=5, batch_size=3, decollate=decollate, num_fixed_samples=num_fixed_samples)
    writer = _Writer()
    keys = ["real", "fake", "samples"]
    GanImageGridHandler(summary_writer=writer, keys=keys, every_n_iterations=1, max_samples=4).attach(trainer)
    trainer.run()
    assert [step for step, _ in writer.images] == [1, 2]
    assert writer.images[0][1].shape == (1, 3 * SIZE, 3 * SIZE)
    assert writer.images[1][1].shape == (1, 2 * SIZE, 3 * SIZE)


def test_missing_image_key_is_named():
    trainer = _trainer(image_key="hr")
    with pytest.raises(ValueError, match=r"no key 'hr' \(image_key\); keys present: \['image'\]"):
        trainer.run()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"r1_every": 0}, "r1_every"),
        ({"num_fixed_samples": 0}, "num_fixed_samples"),
        ({"sample_every": 0}, "sample_every"),
        ({"image_key": ""}, "image_key"),
        ({"d_steps_per_g_step": 2}, "does not use d_steps_per_g_step"),
        ({"g": nn.Linear(2, 2)}, "style_dim"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _trainer(**kwargs)
