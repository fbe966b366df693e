"""PSCGAN's phase trainers on the engine base: D steps per G step, named paper terms, frozen earlier phases, the
ablation switches, a loss that falls."""

from __future__ import annotations

import pytest
import torch
from common.engines import JointTrainer, PrepareCineBatch, PriTrainer, SegTrainer, SysTrainer, mask_as_image
from common.nets import JointOutput, PSCGANDiscriminator, PSCGANGenerator

T, S = 4, 32  # frames and image size of the test batches
NET = {"n_frames": T, "image_size": S, "channels": (4, 4, 8, 8), "dilations": (1, 2), "n_stacks": 1,
       "reduction": 4, "bottleneck": 16, "decoder_channels": 8}  # fmt: skip


def _batch(n: int = 2) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    label = torch.zeros(n, 1, S, S)
    label[:, :, 8:24, 8:24] = 2
    label[:, :, 12:20, 12:20] = 1
    label[:, :, 8:12, 8:24] = 3
    cine = torch.rand(n, 1, T, S, S) * 0.2 - 0.1 + (label[:, :, None] > 0) * 0.5
    lge = (label == 3).float() - 0.5
    return {"cine": cine, "label": label, "lge": lge}


def _gen(out_channels: int, output: str, condition_channels: int = 0) -> PSCGANGenerator:
    return PSCGANGenerator(1, out_channels, output=output, condition_channels=condition_channels, **NET)


def _disc(in_channels: int, aux: int = 0) -> PSCGANDiscriminator:
    return PSCGANDiscriminator(in_channels, channels=(4, 8, 8, 8, 8), aux_classes=aux, reduction=4, image_size=S)


def _trainer(cls, g, d, frozen=None, batches=1, epochs=1, **kwargs):
    optimizers = {"g_optimizer": torch.optim.Adam(g.parameters(), lr=1e-3), "d_optimizer": torch.optim.Adam(
        d.parameters(), lr=1e-3)}  # fmt: skip
    return cls(
        "cpu", epochs, [_batch()] * batches, {"g": g, "d": d}, optimizers, frozen_networks=frozen,
        d_steps_per_g_step=kwargs.pop("d_steps_per_g_step", 2), **kwargs,
    )  # fmt: skip


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def test_pri_two_discriminator_steps_per_generator_step_with_named_terms():
    torch.manual_seed(0)
    g, d = _gen(4, "softmax"), _disc(4)
    trainer = _trainer(PriTrainer, g, d, batches=2)
    seen = []

    def record(engine):
        seen.append((_changed(g_before, g), _changed(d_before, d), dict(engine.state.output[0])))

    g_before, d_before = _params(g), _params(d)
    from ignite.engine import Events

    @trainer.on(Events.ITERATION_COMPLETED)
    def _(engine):
        nonlocal g_before, d_before
        record(engine)
        g_before, d_before = _params(g), _params(d)

    trainer.run()
    (g1, d1, out1), (g2, d2, out2) = seen
    assert not g1 and d1  # iteration 1: discriminator only
    assert g2 and d2  # iteration 2: both
    for key in ("loss_mce", "loss_g_adv", "loss_d_adv", "loss_g", "loss_d", "loss"):
        assert key in out2, key
    assert "loss_mce" not in out1  # no generator step yet: nothing reported as if it had been made
    assert float(out2["loss_g"]) == pytest.approx(float(out2["loss_mce"]) + 1.0 * float(out2["loss_g_adv"]), rel=1e-5)
    for key in ("cine_ed", "label_image", "pred_image"):
        assert out2[key].shape == (1, S, S) and out2[key].min() >= -1 and out2[key].max() <= 1


def test_pri_without_adversarial_never_touches_the_discriminator_and_its_loss_falls():
    torch.manual_seed(0)
    g, d = _gen(4, "softmax"), _disc(4)
    trainer = _trainer(PriTrainer, g, d, batches=1, epochs=40, adversarial=False)
    d_before = _params(d)
    losses = []
    from ignite.engine import Events

    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output[0]["loss"])))
    trainer.run()
    assert not _changed(d_before, d)
    assert "loss_d_adv" not in trainer.state.output[0] and "loss_g_adv" not in trainer.state.output[0]
    assert losses[-1] < 0.85 * losses[0], (losses[0], losses[-1])


def test_sys_conditions_on_the_frozen_pri_and_logs_its_terms():
    torch.manual_seed(0)
    pri = _gen(4, "softmax")
    pri_before = _params(pri)
    g, d = _gen(1, "tanh", condition_channels=4), _disc(1)
    trainer = _trainer(SysTrainer, g, d, frozen={"pri": pri}, batches=2)
    trainer.run()
    out = trainer.state.output[0]
    for key in ("loss_l2", "loss_ogs_tv", "loss_content", "loss_g_adv", "loss_d_adv", "synthesis", "lge"):
        assert key in out, key
    assert not _changed(pri_before, pri) and not any(p.requires_grad for p in pri.parameters())
    batch = _batch()
    assert torch.allclose(trainer.condition(batch["cine"]), pri.eval()(batch["cine"]))
    # the grid shows Pri's coarse mask (the class index scaled to [-1, 1]) beside the synthesis
    condition = out["condition_image"]
    assert condition.shape == out["synthesis"].shape and set(condition.unique().tolist()) <= {-1.0, -1 / 3, 1 / 3, 1.0}


def test_sys_without_synthetic_regularization_drops_only_the_tv_term():
    torch.manual_seed(0)
    g, d = _gen(1, "tanh", condition_channels=4), _disc(1)
    trainer = _trainer(SysTrainer, g, d, frozen={"pri": _gen(4, "softmax")}, batches=2, synthetic_regularization=False)
    trainer.run()
    out = trainer.state.output[0]
    assert "loss_ogs_tv" not in out and "loss_l2" in out and "loss_content" in out
    # the generator's loss is the L2 fidelity, the content and the adversarial terms, nothing else (no TV inside)
    expected = out["loss_l2"] + trainer.content_weight * out["loss_content"] + out["loss_g_adv"]
    torch.testing.assert_close(out["loss_g"], expected)
    # loss_l2 is eq. 11's fidelity alone, 1/2 mean squared error to the LGE, with or without the TV term
    fake, lge = torch.rand(2, 1, S, S), torch.rand(2, 1, S, S)
    half_mse = 0.5 * (fake - lge).pow(2).mean()
    without_tv = trainer.task_terms(fake, lge, None, None)
    assert set(without_tv) == {"loss_l2"} and without_tv["loss_l2"].item() == pytest.approx(half_mse.item())
    trainer.synthetic_regularization = True
    with_tv = trainer.task_terms(fake, lge, None, None)
    assert with_tv["loss_l2"].item() == pytest.approx(half_mse.item()) and with_tv["loss_ogs_tv"].item() > 0


def test_sys_and_seg_refuse_to_run_without_their_earlier_phases():
    with pytest.raises(ValueError, match="pri"):
        _trainer(SysTrainer, _gen(1, "tanh", condition_channels=4), _disc(1))
    with pytest.raises(ValueError, match="sys"):
        _trainer(SegTrainer, _gen(4, "softmax", condition_channels=1), _disc(4, 4), frozen={"pri": _gen(4, "softmax")})


def test_seg_trains_the_pixel_count_head_and_adds_the_auxiliary_term():
    torch.manual_seed(0)
    frozen = {"pri": _gen(4, "softmax"), "sys": _gen(1, "tanh", condition_channels=4)}
    g, d = _gen(4, "softmax", condition_channels=1), _disc(4, aux=4)
    trainer = _trainer(SegTrainer, g, d, frozen=frozen, batches=2)
    trainer.run()
    out = trainer.state.output[0]
    for key in ("loss_mce", "loss_aux", "loss_d_aux", "loss_d_aux_generated", "loss_g_adv", "pred_image"):
        assert key in out, key
    batch = _batch()  # the grid shows the condition the frozen Pri and Sys gave: Sys's synthesis
    torch.testing.assert_close(out["condition_image"][:1], trainer.condition(batch["cine"])[0].detach())
    d_terms = ("loss_d_adv", "loss_d_aux", "loss_d_aux_generated")
    assert float(out["loss_d"]) == pytest.approx(sum(float(out[k]) for k in d_terms), rel=1e-5)
    # aux_weight 0 (Table 5 ablation): no generator term, the head still learns
    trainer = _trainer(SegTrainer, _gen(4, "softmax", condition_channels=1), _disc(4, 4), frozen=frozen, batches=2,
                       aux_weight=0.0)  # fmt: skip
    trainer.run()
    assert "loss_aux" not in trainer.state.output[0] and "loss_d_aux" in trainer.state.output[0]
    # the earlier reading: the head fitted on real masks only
    trainer = _trainer(SegTrainer, _gen(4, "softmax", condition_channels=1), _disc(4, 4), frozen=frozen, batches=2,
                       aux_head_inputs="real")  # fmt: skip
    trainer.run()
    out = trainer.state.output[0]
    assert "loss_d_aux_generated" not in out and "loss_aux" in out
    assert float(out["loss_d"]) == pytest.approx(float(out["loss_d_adv"]) + float(out["loss_d_aux"]), rel=1e-5)


def test_seg_head_targets_are_each_input_own_class_fractions():
    """Hand values: the head is fitted on the real mask's fractions and on the generated (soft) mask's own."""
    frozen = {"pri": _gen(4, "softmax"), "sys": _gen(1, "tanh", condition_channels=4)}
    trainer = _trainer(SegTrainer, _gen(4, "softmax", condition_channels=1), _disc(4, aux=4), frozen=frozen)
    target = torch.zeros(1, 1, 2, 2, dtype=torch.long)
    target[0, 0, 0, 0] = 1  # fractions (0.75, 0.25, 0, 0)
    fake = torch.full((1, 4, 2, 2), 0.25)  # a uniform soft mask: fractions 0.25 each
    head_real, head_fake = torch.tensor([[0.5, 0.5, 0.0, 0.0]]), torch.tensor([[0.25, 0.25, 0.25, 0.0]])
    terms = trainer.discriminator_terms({"counts": head_real}, {"counts": head_fake}, target, fake)
    assert float(terms["loss_d_aux"]) == pytest.approx(0.25 + 0.25)
    assert float(terms["loss_d_aux_generated"]) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="aux_head_inputs must be one of"):
        _trainer(SegTrainer, _gen(4, "softmax", condition_channels=1), _disc(4, aux=4), frozen=frozen,
                 aux_head_inputs="fake")  # fmt: skip


def test_joint_generator_outputs_mask_and_image_against_one_discriminator():
    torch.manual_seed(0)
    g = JointOutput(_gen(5, "none"), num_classes=4)
    d = _disc(5)
    trainer = _trainer(JointTrainer, g, d, batches=2)
    trainer.run()
    out = trainer.state.output[0]
    for key in ("loss_mce", "loss_l2", "loss_ogs_tv", "loss_g_adv", "synthesis", "pred_image"):
        assert key in out, key
    y = g(_batch()["cine"])
    assert y.shape == (2, 5, S, S)
    assert torch.allclose(y[:, :4].sum(1), torch.ones(2, S, S), atol=1e-5) and y[:, 4].abs().max() <= 1


@pytest.mark.parametrize("phase", ["sys", "joint"])
def test_nu_weighs_the_ogs_tv_term_in_the_generator_loss(phase):
    """Eq. 11: L_sys = L2 + nu * OGS-TV. The synthetic loss reports its terms unweighted; the trainer weighs OGS-TV by
    the loss's ``nu`` in ``loss_g`` (until bundle 0.2.5 it entered with weight 1, so the configs' nu 0.1 was unused)."""
    from common.losses import SyntheticRegularizationLoss

    torch.manual_seed(0)
    loss = SyntheticRegularizationLoss(nu=0.25)
    if phase == "sys":
        g, d, frozen = _gen(1, "tanh", condition_channels=4), _disc(1), {"pri": _gen(4, "softmax")}
        trainer = _trainer(SysTrainer, g, d, frozen=frozen, batches=2, synthetic_loss=loss, adv_weight=0.5,
                           content_weight=2.0)  # fmt: skip
    else:
        g, d = JointOutput(_gen(5, "none"), num_classes=4), _disc(5)
        trainer = _trainer(JointTrainer, g, d, batches=2, synthetic_loss=loss, adv_weight=0.5)
    trainer.run()
    out = {key: float(value) for key, value in trainer.state.output[0].items() if key.startswith("loss")}
    expected = out["loss_l2"] + 0.25 * out["loss_ogs_tv"] + 0.5 * out["loss_g_adv"]
    expected += 2.0 * out["loss_content"] if phase == "sys" else out["loss_mce"]
    assert out["loss_ogs_tv"] > 0 and out["loss_g"] == pytest.approx(expected, rel=1e-5)


def test_batch_missing_a_key_is_refused_naming_it():
    g, d = _gen(4, "softmax"), _disc(4)
    trainer = PriTrainer("cpu", 1, [{"cine": _batch()["cine"]}], {"g": g, "d": d},
                         {"g_optimizer": torch.optim.Adam(g.parameters()), "d_optimizer": torch.optim.Adam(
                             d.parameters())})  # fmt: skip
    with pytest.raises(ValueError, match="'label'"):
        trainer.run()


def test_prepare_cine_batch_and_mask_as_image():
    batch = _batch()
    x, y = PrepareCineBatch("cine", "lge")(batch, "cpu")
    assert x is not None and torch.equal(y, batch["lge"])
    with pytest.raises(ValueError, match="'missing'"):
        PrepareCineBatch("cine", "missing")(batch)
    labels = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    assert torch.allclose(mask_as_image(labels), torch.tensor([[[[-1.0, -1 / 3], [1 / 3, 1.0]]]]))
    probs = torch.nn.functional.one_hot(labels[:, 0].long(), 4).permute(0, 3, 1, 2).float()
    assert torch.equal(mask_as_image(probs), mask_as_image(labels))
