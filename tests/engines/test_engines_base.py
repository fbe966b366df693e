"""The engine base on a toy two-network GAN: EMA formula, R1 on a known discriminator, D:G step ratio, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
from common.engines import GradScalerState, MultiNetworkTrainer, discriminator_logits, set_requires_grad
from common.handlers import AtomicCheckpointSaver, ResumeFromLatest
from ignite.engine import Events
from torch import nn
from torch.utils.data import DataLoader

TARGET_MEAN = 3.0


class ToyGAN(MultiNetworkTrainer):
    """Non-saturating GAN that learns a 1-D Gaussian N(3, 0.1^2): ``g`` maps noise to samples, ``d`` scores them."""

    network_names = ("g", "d")
    optimizer_names = ("g_optimizer", "d_optimizer")
    uses = ("d_steps_per_g_step", "ema", "r1_gamma")

    def __init__(self, *args, **kwargs) -> None:
        self.steps = {"g_optimizer": 0, "d_optimizer": 0}
        super().__init__(*args, **kwargs)

    def optimizer_step(self, name, loss, backward_event=None, step_event=None) -> None:
        self.steps[name] += 1
        super().optimizer_step(name, loss, backward_event, step_event)

    def _iteration(self, engine, batchdata):
        real = batchdata.to(engine.state.device)
        g, d = engine.networks["g"], engine.networks["d"]
        engine.train_mode()
        noise = torch.randn(real.shape[0], 1)
        set_requires_grad([d], True)
        with engine.autocast():
            fake = g(noise)
            loss_d = nn.functional.softplus(-d(real)).mean() + nn.functional.softplus(d(fake.detach())).mean()
            loss_r1 = engine.r1_penalty(d, real)
        engine.optimizer_step("d_optimizer", loss_d + loss_r1)
        out = {"loss_d": loss_d, "loss_r1": loss_r1, "fake": fake}
        if engine.generator_step_due():
            set_requires_grad([d], False)
            with engine.autocast():
                loss_g = nn.functional.softplus(-d(g(noise))).mean()
            engine.optimizer_step("g_optimizer", loss_g)
            if engine.ema_networks:
                engine.update_ema("g")
            out["loss_g"] = loss_g
        return dict(engine.detached(out))


def _toy(max_epochs=2, n=32, lr=0.05, **kwargs) -> ToyGAN:
    return _toy_of(ToyGAN, max_epochs, n, lr, **kwargs)


def _toy_of(cls, max_epochs=2, n=32, lr=0.05, **kwargs) -> ToyGAN:
    torch.manual_seed(0)
    g = nn.Linear(1, 1)
    d = nn.Sequential(nn.Linear(1, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))
    data = [TARGET_MEAN + 0.1 * torch.randn(1) for _ in range(n)]
    optimizers = {
        "g_optimizer": torch.optim.Adam(g.parameters(), lr=lr, betas=(0.5, 0.999)),
        "d_optimizer": torch.optim.Adam(d.parameters(), lr=lr, betas=(0.5, 0.999)),
    }
    loader = DataLoader(data, batch_size=4, shuffle=False)
    return cls("cpu", max_epochs, loader, {"g": g, "d": d}, optimizers, decollate=False, **kwargs)


def test_toy_gan_learns_the_target_mean():
    trainer = _toy(max_epochs=40)
    before = trainer.networks["g"](torch.randn(256, 1)).mean().item()
    trainer.run()
    after = trainer.networks["g"](torch.randn(256, 1)).mean().item()
    assert abs(after - TARGET_MEAN) < 0.5 * abs(before - TARGET_MEAN), (before, after)


@pytest.mark.parametrize("ratio", [1, 2, 3])
def test_discriminator_steps_per_generator_step_are_counted(ratio):
    trainer = _toy(max_epochs=3, d_steps_per_g_step=ratio)  # 8 iterations per epoch
    trainer.run()
    assert trainer.steps["d_optimizer"] == 24
    assert trainer.steps["g_optimizer"] == 24 // ratio


def test_ema_update_formula():
    trainer = _toy(ema={"g": 0.9})
    g, ema = trainer.networks["g"], trainer.ema_networks["g"]
    assert ema is not g and not any(p.requires_grad for p in ema.parameters()) and not ema.training
    old = [p.detach().clone() for p in ema.parameters()]
    with torch.no_grad():
        for p in g.parameters():
            p.add_(1.0)
    trainer.update_ema("g")
    for p_ema, p_old, p in zip(ema.parameters(), old, g.parameters()):
        assert torch.allclose(p_ema, 0.9 * p_old + 0.1 * p)


def test_ema_follows_the_generator_during_training():
    trainer = _toy(max_epochs=5, ema={"g": 0.5})
    trainer.run()
    g, ema = trainer.networks["g"], trainer.ema_networks["g"]
    start = _toy().networks["g"]
    for p_ema, p, p0 in zip(ema.parameters(), g.parameters(), start.parameters()):
        assert not torch.equal(p_ema, p0)  # it moved
        assert (p_ema - p).abs().max() < (p0 - p).abs().max()  # towards the trained generator


@pytest.mark.parametrize("iteration, expected", [(0, 0.1), (1, 2 / 11), (90, 0.91), (10**6, 0.99)])
def test_ema_warmup_ramps_the_decay_up_to_the_configured_one(iteration, expected):
    trainer = _toy(ema={"g": 0.99}, ema_warmup=True)
    trainer.state.iteration = iteration
    assert trainer.ema_decay_now("g") == pytest.approx(expected)
    old = [p.detach().clone() for p in trainer.ema_networks["g"].parameters()]
    with torch.no_grad():
        for p in trainer.networks["g"].parameters():
            p.add_(1.0)
    trainer.update_ema("g")
    for p_ema, p_old, p in zip(trainer.ema_networks["g"].parameters(), old, trainer.networks["g"].parameters()):
        assert torch.allclose(p_ema, expected * p_old + (1 - expected) * p)


def test_ema_warmup_lets_a_short_run_leave_the_initialisation():
    """60 updates at decay 0.999 keep 94 % of the random start; with the warm-up the copy is near the generator."""
    distances = {}
    for warmup in (False, True):
        trainer = _toy(max_epochs=8, ema={"g": 0.999}, ema_warmup=warmup)  # 64 updates
        trainer.run()
        g, ema = trainer.networks["g"], trainer.ema_networks["g"]
        distances[warmup] = max((p_ema - p).abs().max().item() for p_ema, p in zip(ema.parameters(), g.parameters()))
    assert distances[True] < 0.25 * distances[False], distances


def test_ema_warmup_without_ema_is_refused():
    with pytest.raises(ValueError, match="ema_warmup needs ema"):
        _toy(ema_warmup=True)


class _LinearD(nn.Module):
    """``D(x) = sum(w * x) + b``: its input gradient is ``w`` everywhere."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return [x, (x * self.weight).flatten(1).sum(1) + self.bias]  # features, logits last


def test_r1_penalty_on_a_known_discriminator():
    weight = torch.tensor([[1.0, -2.0], [0.5, 3.0]])[None]
    d = _LinearD(weight)
    real = torch.rand(5, 1, 2, 2)
    penalty = _toy(r1_gamma=10.0).r1_penalty(d, real)
    assert penalty.item() == pytest.approx(0.5 * 10.0 * float(weight.pow(2).sum()))
    penalty.backward()  # it trains the discriminator: d(penalty)/dw = gamma * w
    assert torch.allclose(d.weight.grad, 10.0 * weight)
    assert real.grad is None  # the real batch itself is untouched


def test_r1_penalty_is_zero_without_gamma():
    d = _LinearD(torch.ones(1, 2, 2))
    assert _toy().r1_penalty(d, torch.rand(2, 1, 2, 2)).item() == 0.0


def test_discriminator_logits_takes_the_last_item():
    logits = torch.ones(1)
    assert discriminator_logits([torch.zeros(1), logits]) is logits
    assert discriminator_logits(logits) is logits


def test_scaler_state_round_trips_through_a_checkpoint(tmp_path):
    trainer = _toy(max_epochs=1)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=1000)  # AMP's scaler, on the CPU
    scaler.scale(torch.ones(()))
    scaler.update(new_scale=256.0)
    trainer.scalers["g_optimizer"] = scaler
    saver = AtomicCheckpointSaver(str(tmp_path), engine_key="trainer", save_interval=1, n_saved=1, epoch_level=True)
    saver.attach(trainer)
    trainer.run()

    resumed = _toy(max_epochs=2)
    resumed.scalers["g_optimizer"] = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    ResumeFromLatest(tmp_path, engine_key="trainer").attach(resumed)
    restored = {}
    resumed.add_event_handler(Events.STARTED, lambda e: restored.update(scale=e.scalers["g_optimizer"].get_scale()))
    resumed.run()
    assert trainer.scalers["g_optimizer"].get_scale() == 256.0
    assert restored["scale"] == 256.0  # not the fresh scaler's 65536
    assert resumed.state.epoch == 2
    for key in ("g", "d", "g_optimizer", "d_optimizer", "grad_scaler_g_optimizer", "grad_scaler_d_optimizer"):
        assert key in trainer.checkpoint_objects()


def test_networks_and_optimizers_are_restored_from_the_checkpoint(tmp_path):
    trainer = _toy(max_epochs=1, ema={"g": 0.9})
    AtomicCheckpointSaver(str(tmp_path), engine_key="trainer", save_interval=1, epoch_level=True).attach(trainer)
    trainer.run()
    resumed = _toy(max_epochs=1, ema={"g": 0.9})
    ResumeFromLatest(tmp_path, engine_key="trainer").attach(resumed)
    iterations = []
    resumed.add_event_handler(Events.ITERATION_COMPLETED, lambda e: iterations.append(e.state.iteration))
    resumed.run()  # loads at STARTED, then nothing left to run
    # nothing was retrained (a resume that loaded nothing would rerun epoch 1 and reach the same weights)
    assert iterations == [] and resumed.state.iteration == trainer.state.iteration > 0
    for name in ("g", "d"):
        for a, b in zip(trainer.networks[name].parameters(), resumed.networks[name].parameters()):
            assert torch.equal(a, b)
    for a, b in zip(trainer.ema_networks["g"].parameters(), resumed.ema_networks["g"].parameters()):
        assert torch.equal(a, b)
    assert resumed.optimizers["d_optimizer"].state_dict()["state"]


def test_disabled_scaler_state_loads_into_any_scaler():
    enabled = torch.amp.GradScaler("cpu", init_scale=8.0)
    GradScalerState(enabled).load_state_dict(GradScalerState(torch.amp.GradScaler("cpu", enabled=False)).state_dict())
    assert enabled.get_scale() == 8.0


def test_frozen_network_is_in_eval_mode_without_gradients():
    teacher = nn.Sequential(nn.Linear(1, 1), nn.Dropout(0.5))
    trainer = _toy(frozen_networks={"teacher": teacher, "absent": None})
    assert set(trainer.frozen_networks) == {"teacher"}
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    trainer.run()
    assert not teacher.training


def test_frozen_network_inside_an_optimizer_is_rejected():
    trainer = _toy()
    with pytest.raises(ValueError, match="teacher parameters found in g_optimizer"):
        ToyGAN(
            "cpu",
            1,
            [],
            trainer.networks,
            trainer.optimizers,
            frozen_networks={"teacher": trainer.networks["g"]},
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"d_steps_per_g_step": 0}, "d_steps_per_g_step"),
        ({"r1_gamma": -1.0}, "r1_gamma"),
        ({"ema": {"h": 0.9}}, "ema names network 'h'"),
        ({"ema": {"g": 1.0}}, r"ema decay of 'g' must be in \[0, 1\)"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _toy(**kwargs)


def test_missing_network_is_named():
    trainer = _toy()
    with pytest.raises(ValueError, match=r"ToyGAN needs networks \['g', 'd'\]; missing \['d'\]"):
        ToyGAN("cpu", 1, [], {"g": trainer.networks["g"]}, trainer.optimizers)


def test_names_used_twice_are_rejected():
    trainer = _toy()
    with pytest.raises(ValueError, match="used twice"):
        ToyGAN("cpu", 1, [], trainer.networks, trainer.optimizers, frozen_networks={"g": nn.Linear(1, 1)})


def test_outputs_are_detached_and_finite():
    trainer = _toy(max_epochs=1, r1_gamma=1.0)
    trainer.run()
    out = trainer.state.output
    assert all(not v.requires_grad for v in out.values())
    assert math.isfinite(out["loss_r1"].item()) and out["loss_r1"].item() > 0


@pytest.mark.parametrize("feature, value", [("ema", {"g": 0.9}), ("r1_gamma", 1.0), ("d_steps_per_g_step", 2)])
def test_a_feature_the_iteration_does_not_use_is_refused(feature, value):
    class PlainGAN(ToyGAN):
        uses = ()

    with pytest.raises(ValueError, match=f"PlainGAN does not use {feature}"):
        _toy_of(PlainGAN, **{feature: value})
    _toy_of(PlainGAN)  # the defaults are accepted


def test_loss_scaling_only_for_float16_on_cuda():
    from common.engines.base import needs_loss_scaling

    assert needs_loss_scaling(True, "cuda", {})  # autocast's CUDA default is float16
    assert needs_loss_scaling(True, "cuda", {"dtype": torch.float16})
    assert not needs_loss_scaling(True, "cuda", {"dtype": torch.bfloat16})  # float32's exponent range
    assert not needs_loss_scaling(False, "cuda", {})
    assert not needs_loss_scaling(True, "cpu", {"dtype": torch.float16})
