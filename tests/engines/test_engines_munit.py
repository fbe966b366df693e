"""MUNITTrainer on a toy two-domain set (dark squares -> bright squares): terms, steps, learning, arguments."""

from __future__ import annotations

import math

import pytest
import torch
from common.engines.munit_trainer import GENERATOR_TERMS, IMAGE_KEYS, MUNITTrainer
from common.nets.munit import MultiScaleDiscriminator, MUNITGenerator
from ignite.engine import Events
from monai.utils import AdversarialIterationEvents
from torch.utils.data import DataLoader

SIZE = 32
LOSS_KEYS = ("loss", "loss_g", "loss_d", "loss_dis_a", "loss_dis_b", *GENERATOR_TERMS)


pytestmark = pytest.mark.usefixtures("one_thread")


def _squares(n: int = 8, size: int = SIZE, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Unpaired domains in [-1, 1]: ``a`` (bSSFP) has a dark grey square, ``b`` (LGE) a bright one, anywhere."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        item = {}
        for key, value in (("bssfp", -0.3), ("lge", 0.8)):
            image = -torch.ones(1, size, size)
            side = int(torch.randint(6, 12, (1,), generator=g))
            y, x = torch.randint(1, size - side, (2,), generator=g).tolist()
            image[:, y : y + side, x : x + side] = value
            item[key] = image
        items.append(item)
    return items


def _networks(seed: int = 0) -> dict[str, torch.nn.Module]:
    torch.manual_seed(seed)
    gen = {"dim": 8, "n_res": 1, "mlp_dim": 32}
    dis = {"dim": 8, "n_layer": 2}  # 3 scales of 32, 16 and 8 pixels
    return {
        "gen_a": MUNITGenerator(**gen),
        "gen_b": MUNITGenerator(**gen),
        "dis_a": MultiScaleDiscriminator(**dis),
        "dis_b": MultiScaleDiscriminator(**dis),
    }


def _optimizers(networks: dict, lr: float = 1e-3) -> dict[str, torch.optim.Optimizer]:
    gen = [*networks["gen_a"].parameters(), *networks["gen_b"].parameters()]
    dis = [*networks["dis_a"].parameters(), *networks["dis_b"].parameters()]
    return {
        "g": torch.optim.Adam(gen, lr=lr, betas=(0.5, 0.999)),
        "d": torch.optim.Adam(dis, lr=lr, betas=(0.5, 0.999)),
    }


def _build(max_epochs: int = 1, n: int = 2, batch_size: int = 1, networks=None, **kwargs) -> MUNITTrainer:
    networks = _networks() if networks is None else networks
    loader = DataLoader(_squares(n), batch_size=batch_size, shuffle=False)
    kwargs.setdefault("source_key", "bssfp")
    kwargs.setdefault("target_key", "lge")
    return MUNITTrainer("cpu", max_epochs, loader, networks, _optimizers(networks), decollate=False, **kwargs)


def _record(trainer: MUNITTrainer) -> list[dict[str, float]]:
    history: list[dict[str, float]] = []

    @trainer.on(Events.ITERATION_COMPLETED)
    def _keep(engine):
        history.append({key: float(engine.state.output[key]) for key in LOSS_KEYS})

    return history


def test_one_step_reports_every_term_finite_and_the_images():
    trainer = _build(batch_size=2, epoch_length=1)
    trainer.run()
    out = trainer.state.output
    for key in LOSS_KEYS:
        assert key in out and math.isfinite(float(out[key])), key
    for key in IMAGE_KEYS:
        assert out[key].shape == (2, 1, SIZE, SIZE) and not out[key].requires_grad, key
    assert out["x_ab"].min() >= -1 and out["x_ab"].max() <= 1
    # weights applied: loss_g is the sum of the reported terms, loss_d of the two discriminators', loss of both
    assert float(out["loss_g"]) == pytest.approx(sum(float(out[k]) for k in GENERATOR_TERMS), rel=1e-5)
    assert float(out["loss_d"]) == pytest.approx(float(out["loss_dis_a"]) + float(out["loss_dis_b"]), rel=1e-5)
    assert float(out["loss"]) == pytest.approx(float(out["loss_g"]) + float(out["loss_d"]), rel=1e-5)
    # cycle term off by default: not computed, reported as 0
    assert out["loss_gen_cycrecon_x_a"] == 0.0 and out["loss_gen_cycrecon_x_b"] == 0.0
    for key in ("loss_gen_adv_a", "loss_gen_recon_x_b", "loss_gen_recon_s_a", "loss_gen_recon_c_b", "loss_dis_b"):
        assert float(out[key]) > 0, key


def test_a_step_changes_the_discriminators_and_the_generators_discriminator_first():
    networks = _networks()
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in networks.items()}
    trainer = _build(networks=networks, epoch_length=1)
    order = []
    for event, name in (
        (AdversarialIterationEvents.DISCRIMINATOR_MODEL_COMPLETED, "d"),
        (AdversarialIterationEvents.GENERATOR_MODEL_COMPLETED, "g"),
    ):
        trainer.add_event_handler(event, lambda engine, name=name: order.append(name))
    trainer.run()
    assert order == ["d", "g"]  # the reference's dis_update, then gen_update
    for name, net in networks.items():
        changed = [not torch.equal(p0, p) for p0, p in zip(before[name], net.parameters())]
        assert all(changed), f"{name}: {changed.count(False)} of {len(changed)} parameter tensors unchanged"
        assert all(p.requires_grad for p in net.parameters()), name  # the discriminators are unfrozen again


def test_loop_on_toy_domains_lowers_the_reconstruction_loss():
    torch.manual_seed(0)
    trainer = _build(max_epochs=4, n=8)  # 32 iterations, batch 1
    history = _record(trainer)
    trainer.run()
    assert len(history) == 32
    assert all(math.isfinite(row[key]) for row in history for key in LOSS_KEYS)
    for key in ("loss_gen_recon_x_a", "loss_gen_recon_x_b"):
        first = sum(row[key] for row in history[:5]) / 5
        last = sum(row[key] for row in history[-5:]) / 5
        assert last < 0.5 * first, (key, first, last)


def test_weights_scale_their_terms_and_the_cycle_term_is_computed_when_weighted():
    def first_step(**weights):
        torch.manual_seed(1)
        trainer = _build(networks=_networks(), epoch_length=1, **weights)
        trainer.run()
        return {key: float(trainer.state.output[key]) for key in LOSS_KEYS}

    default = first_step()
    weighted = first_step(recon_x_w=5.0, recon_s_w=2.0, gan_w=0.5, recon_x_cyc_w=3.0)
    # the same seed draws the same styles, so each weighted term is the default one rescaled
    assert weighted["loss_gen_recon_x_a"] == pytest.approx(0.5 * default["loss_gen_recon_x_a"], rel=1e-4)
    assert weighted["loss_gen_recon_s_b"] == pytest.approx(2.0 * default["loss_gen_recon_s_b"], rel=1e-4)
    assert weighted["loss_gen_recon_c_a"] == pytest.approx(default["loss_gen_recon_c_a"], rel=1e-4)
    assert weighted["loss_dis_a"] == pytest.approx(0.5 * default["loss_dis_a"], rel=1e-4)
    assert weighted["loss_gen_cycrecon_x_a"] > 0 and weighted["loss_gen_cycrecon_x_b"] > 0


def test_random_styles_are_standard_normal_codes_of_the_generator():
    trainer = _build()
    like = torch.zeros(4, 1, SIZE, SIZE)
    torch.manual_seed(0)
    style = trainer.random_style("gen_b", like)
    assert style.shape == (4, 8, 1, 1)
    torch.manual_seed(0)
    torch.testing.assert_close(style, torch.randn(4, 8, 1, 1))


def test_checkpoint_objects_and_no_optional_features():
    trainer = _build()
    assert set(trainer.checkpoint_objects()) == {
        "gen_a",
        "gen_b",
        "dis_a",
        "dis_b",
        "g",
        "d",
        "grad_scaler_g",
        "grad_scaler_d",
    }
    assert trainer.ema_networks == {} and trainer.d_steps_per_g_step == 1 and trainer.r1_gamma == 0.0
    with pytest.raises(ValueError, match="ema"):
        _build(ema={"gen_a": 0.999})
    with pytest.raises(ValueError, match="d_steps_per_g_step"):
        _build(d_steps_per_g_step=2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"recon_x_w": -1.0}, "recon_x_w"),
        ({"gan_w": float("nan")}, "gan_w"),
        ({"recon_s_w": float("inf")}, "recon_s_w"),
        ({"recon_c_w": "one"}, "recon_c_w"),
        ({"recon_x_cyc_w": -0.1}, "recon_x_cyc_w"),
        ({"source_key": ""}, "source_key"),
        ({"target_key": "bssfp"}, "must differ"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _build(**kwargs)


def test_missing_network_or_optimizer_raises():
    networks = _networks()
    loader = DataLoader(_squares(2), batch_size=1)
    del networks["dis_b"]
    with pytest.raises(ValueError, match="dis_b"):
        MUNITTrainer("cpu", 1, loader, networks, {}, source_key="bssfp", target_key="lge")
    networks = _networks()
    with pytest.raises(ValueError, match=r"\['d'\]"):
        MUNITTrainer("cpu", 1, loader, networks, {"g": _optimizers(networks)["g"]}, source_key="a", target_key="b")


def test_generator_without_style_dim_raises():
    networks = _networks()
    networks["gen_b"] = torch.nn.Conv2d(1, 1, 1)
    with pytest.raises(ValueError, match="gen_b.*style_dim"):
        _build(networks=networks)


def test_missing_batch_key_raises_naming_it():
    trainer = _build(target_key="late_gadolinium")
    with pytest.raises(ValueError, match="late_gadolinium"):
        trainer.run()
