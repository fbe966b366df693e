from __future__ import annotations

import math

import pytest
import torch
from common.engines import CycleGANTrainer
from ignite.engine import Events
from monai.handlers import from_engine
from monai.utils import AdversarialIterationEvents
from torch import nn
from torch.utils.data import DataLoader

LOSS_KEYS = (
    "loss",
    "loss_g",
    "loss_d",
    "loss_gan",
    "loss_cycle",
    "loss_identity",
    "loss_transfer_seg",
    "loss_recon_seg",
    "loss_d_source",
    "loss_d_target",
)
IMAGE_KEYS = ("real_source", "fake_target", "rec_source", "real_target", "fake_source", "rec_target")


pytestmark = pytest.mark.usefixtures("one_thread")


def _generator() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1), nn.Tanh())


def _identity_generator() -> nn.Module:
    conv = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
    return conv


class _PatchD(nn.Module):
    """Stand-in for monai PatchDiscriminator: returns the feature maps with the logits last."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 4, stride=2, padding=1), nn.LeakyReLU(0.2))
        self.head = nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, x):
        features = self.body(x)
        return [features, self.head(features)]


def _segmentor() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))


class _Consistency(nn.Module):
    """Stand-in for common.losses.SegmentorConsistencyLoss: MSE of softmax probabilities, reference detached."""

    def forward(self, pred_logits, reference_logits):
        return torch.mean((pred_logits.softmax(1) - reference_logits.detach().softmax(1)) ** 2)


def _data(n=4, size=16):
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    items = []
    for _ in range(n):
        cy, cx, r = torch.rand(3, generator=g) * torch.tensor([1.0, 1.0, 0.4]) + torch.tensor([-0.5, -0.5, 0.3])
        blob = (((yy - cy) ** 2 + (xx - cx) ** 2) < r**2).float()
        lge = (blob * 1.6 - 0.8)[None]
        dti = (0.5 - blob * 0.9 + 0.05 * torch.randn(size, size, generator=g))[None].clamp(-1, 1)
        items.append({"dti": dti, "lge": lge})
    return items


def _build(segmentor=None, generator=_generator, lr=5e-3, max_epochs=3, **kwargs):
    torch.manual_seed(0)
    g_st, g_ts, d_s, d_t = generator(), generator(), _PatchD(), _PatchD()
    g_opt = torch.optim.Adam([*g_st.parameters(), *g_ts.parameters()], lr=lr, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam([*d_s.parameters(), *d_t.parameters()], lr=lr, betas=(0.5, 0.999))
    loader = DataLoader(_data(), batch_size=1, shuffle=False)
    if segmentor is not None:
        kwargs.setdefault("segmentor_consistency_loss", _Consistency())
    kwargs.setdefault("source_key", "dti")
    kwargs.setdefault("target_key", "lge")
    return CycleGANTrainer(
        "cpu",
        max_epochs,
        loader,
        _networks(g_st, g_ts, d_s, d_t),
        _optimizers(g_opt, d_opt),
        segmentor=segmentor,
        pool_size=2,
        **kwargs,
    )


def _networks(g_st, g_ts, d_s, d_t) -> dict:
    return {"g_source_to_target": g_st, "g_target_to_source": g_ts, "d_source": d_s, "d_target": d_t}


def _optimizers(g_opt, d_opt) -> dict:
    return {"g_optimizer": g_opt, "d_optimizer": d_opt}


def _record(trainer, keys=LOSS_KEYS):
    history: list[dict] = []

    @trainer.on(Events.ITERATION_COMPLETED)
    def _keep(engine):
        history.append(
            {"epoch": engine.state.epoch, **dict(zip(keys, from_engine(list(keys), first=True)(engine.state.output)))}
        )

    return history


def _epoch_mean(history, key, epoch):
    values = [float(h[key]) for h in history if h["epoch"] == epoch]
    return sum(values) / len(values)


def test_loss_keys_finite_and_cycle_loss_falls():
    trainer = _build()
    history = _record(trainer)
    trainer.run()
    assert len(history) == 12
    for row in history:
        for key in LOSS_KEYS:
            assert math.isfinite(float(row[key])), key
        assert float(row["loss_transfer_seg"]) == 0.0 and float(row["loss_recon_seg"]) == 0.0
    first, last = _epoch_mean(history, "loss_cycle", 1), _epoch_mean(history, "loss_cycle", 3)
    assert last < 0.8 * first, (first, last)


def test_output_has_detached_images_of_input_shape():
    trainer = _build(max_epochs=1, decollate=False)
    trainer.run()
    out = trainer.state.output
    assert set(LOSS_KEYS) | set(IMAGE_KEYS) <= set(out)
    for key in IMAGE_KEYS:
        assert out[key].shape == (1, 1, 16, 16) and not out[key].requires_grad, key
    assert torch.allclose(out["loss_d"], out["loss_d_source"] + out["loss_d_target"])
    assert torch.allclose(out["loss"], out["loss_g"] + out["loss_d"])  # the scalar MONAI's default handlers read


def test_identity_generators_give_zero_cycle_and_identity_loss():
    trainer = _build(generator=_identity_generator, max_epochs=1, decollate=False)
    first = {}

    @trainer.on(Events.ITERATION_COMPLETED(once=1))
    def _keep(engine):
        first.update(engine.state.output)

    trainer.run()
    assert float(first["loss_cycle"]) == 0.0 and float(first["loss_identity"]) == 0.0
    assert torch.equal(first["fake_target"], first["real_source"])
    assert torch.allclose(first["loss_g"], first["loss_gan"])
    # LSGAN generator term: mean((D(fake) - 1)^2) per domain
    assert float(first["loss_gan"]) > 0


def test_loss_g_is_sum_of_weighted_terms_with_segmentor():
    trainer = _build(segmentor=_segmentor(), max_epochs=1, decollate=False, lambda_transfer_seg=2.0)
    rows = []

    @trainer.on(Events.ITERATION_COMPLETED)
    def _keep(engine):
        rows.append({k: float(engine.state.output[k]) for k in LOSS_KEYS})

    trainer.run()
    for row in rows:
        total = row["loss_gan"] + row["loss_cycle"] + row["loss_identity"]
        total += row["loss_transfer_seg"] + row["loss_recon_seg"]
        assert row["loss_g"] == pytest.approx(total, rel=1e-5)
        assert row["loss_transfer_seg"] > 0 and row["loss_recon_seg"] > 0


def test_identity_weight_is_relative_to_cycle_weight():
    def first_identity(lambda_cycle, lambda_identity):
        trainer = _build(
            max_epochs=1, epoch_length=1, decollate=False, lambda_cycle=lambda_cycle, lambda_identity=lambda_identity
        )
        trainer.run()
        return float(trainer.state.output["loss_identity"])

    assert first_identity(10.0, 0.5) == pytest.approx(2 * first_identity(5.0, 0.5), rel=1e-5)
    assert first_identity(10.0, 0.0) == 0.0


def test_segmentor_is_frozen_and_unchanged():
    segmentor = _segmentor()
    segmentor.train()
    before = {k: v.clone() for k, v in segmentor.state_dict().items()}
    trainer = _build(segmentor=segmentor)
    modes = []
    trainer.add_event_handler(
        AdversarialIterationEvents.GENERATOR_FORWARD_COMPLETED, lambda e: modes.append(e.segmentor.training)
    )
    trainer.run()
    assert not any(p.requires_grad for p in segmentor.parameters())
    assert all(p.grad is None for p in segmentor.parameters())
    assert modes and not any(modes)
    for key, value in segmentor.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_segmentor_changes_generator_gradients():
    def first_grad(segmentor):
        trainer = _build(segmentor=segmentor, max_epochs=1, epoch_length=1)
        grads = []
        trainer.add_event_handler(
            AdversarialIterationEvents.GENERATOR_BACKWARD_COMPLETED,
            lambda e: grads.append(e.networks["g_source_to_target"][0].weight.grad.clone()),
        )
        trainer.run()
        return grads[0]

    assert not torch.allclose(first_grad(None), first_grad(_segmentor()))


@pytest.mark.parametrize("optimizer_name", ["g_optimizer", "d_optimizer"])
def test_segmentor_parameters_in_an_optimizer_are_rejected(optimizer_name):
    segmentor = _segmentor()
    g_st, g_ts, d_s, d_t = _generator(), _generator(), _PatchD(), _PatchD()
    g_params, d_params = [*g_st.parameters(), *g_ts.parameters()], [*d_s.parameters(), *d_t.parameters()]
    if optimizer_name == "g_optimizer":
        g_params += list(segmentor.parameters())
    else:
        d_params += list(segmentor.parameters())
    loader = DataLoader(_data(), batch_size=2)
    g_opt, d_opt = torch.optim.Adam(g_params), torch.optim.Adam(d_params)
    with pytest.raises(ValueError, match=optimizer_name):
        CycleGANTrainer(
            "cpu",
            1,
            loader,
            _networks(g_st, g_ts, d_s, d_t),
            _optimizers(g_opt, d_opt),
            source_key="dti",
            target_key="lge",
            segmentor=segmentor,
        )


def test_discriminators_get_no_gradient_in_generator_step():
    trainer = _build(max_epochs=1)
    checks = {}

    def after_g(engine):
        if engine.state.iteration == 1:
            checks["d_grads"] = [
                p.grad for d in (engine.networks["d_source"], engine.networks["d_target"]) for p in d.parameters()
            ]
            checks["g_grads"] = [p.grad.clone() for p in engine.networks["g_source_to_target"].parameters()]

    def after_d(engine):
        if engine.state.iteration == 1:
            checks["g_grads_after_d"] = [p.grad.clone() for p in engine.networks["g_source_to_target"].parameters()]
            checks["d_requires_grad"] = all(p.requires_grad for p in engine.networks["d_target"].parameters())

    trainer.add_event_handler(AdversarialIterationEvents.GENERATOR_BACKWARD_COMPLETED, after_g)
    trainer.add_event_handler(AdversarialIterationEvents.DISCRIMINATOR_BACKWARD_COMPLETED, after_d)
    trainer.run()
    assert all(g is None for g in checks["d_grads"])
    assert all(torch.equal(a, b) for a, b in zip(checks["g_grads"], checks["g_grads_after_d"]))
    assert checks["d_requires_grad"]


def test_seeded_runs_are_identical_and_the_pool_draws_from_the_seeded_generator():
    def losses(seed: int):
        trainer = _build(max_epochs=1)  # same initial weights
        torch.manual_seed(seed)  # the image pool's draws
        history = _record(trainer)
        trainer.run()
        return [(float(h["loss_g"]), float(h["loss_d"])) for h in history]

    assert losses(0) == losses(0)
    assert losses(0) != losses(1)  # the draws are the seeded RNG's, so another seed changes the D steps


@pytest.mark.parametrize("name", ["lambda_cycle", "lambda_identity", "lambda_transfer_seg", "lambda_recon_seg"])
def test_negative_weight_rejected(name):
    with pytest.raises(ValueError, match=name):
        _build(**{name: -1.0})


def test_missing_batch_key_is_named():
    trainer = _build(source_key="t2", max_epochs=1)
    with pytest.raises(ValueError, match="t2"):
        trainer.run()


def test_unpaired_sizes_rejected_with_segmentor():
    trainer = _build(segmentor=_segmentor(), max_epochs=1)
    trainer.data_loader = DataLoader([{"dti": torch.zeros(1, 16, 16), "lge": torch.zeros(1, 32, 32)}] * 2, batch_size=1)
    with pytest.raises(ValueError, match="paired"):
        trainer.run()


def test_default_segmentor_consistency_loss_is_the_common_one():
    from common import losses

    trainer = _build(segmentor=_segmentor(), segmentor_consistency_loss=None, max_epochs=1, epoch_length=1)
    assert isinstance(trainer.segmentor_consistency_loss, losses.SegmentorConsistencyLoss)
    trainer.run()
    assert float(trainer.state.output[0]["loss_transfer_seg"]) > 0


def _multi_channel_trainer(lambda_identity: float, ddp_like: bool = False) -> CycleGANTrainer:
    """A 3-channel source (DTI maps S0, MD, FA) and a 1-channel target (LGE): G_S>T 3 -> 1, G_T>S 1 -> 3."""

    def generator(in_channels, out_channels):
        return nn.Sequential(
            nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, out_channels, 1), nn.Tanh()
        )

    def discriminator(in_channels):
        return nn.Sequential(nn.Conv2d(in_channels, 4, 4, stride=2, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3))

    torch.manual_seed(0)
    g_st, g_ts, d_s, d_t = generator(3, 1), generator(1, 3), discriminator(3), discriminator(1)
    if ddp_like:  # a wrapper with `.module`, as DistributedDataParallel
        g_st = type("Wrapped", (nn.Module,), {"forward": lambda self, x: self.module(x)})()
        g_st.module = generator(3, 1)
    g_opt = torch.optim.Adam([*g_st.parameters(), *g_ts.parameters()], lr=1e-3)
    d_opt = torch.optim.Adam([*d_s.parameters(), *d_t.parameters()], lr=1e-3)
    data = [{"dti": torch.rand(3, 16, 16) * 2 - 1, "lge": torch.rand(1, 16, 16) * 2 - 1} for _ in range(2)]
    return CycleGANTrainer(
        "cpu",
        1,
        DataLoader(data, batch_size=1),
        _networks(g_st, g_ts, d_s, d_t),
        _optimizers(g_opt, d_opt),
        source_key="dti",
        target_key="lge",
        lambda_identity=lambda_identity,
        pool_size=0,
    )


@pytest.mark.parametrize("ddp_like", [False, True])
def test_identity_term_with_unequal_channels_is_refused_at_construction(ddp_like):
    with pytest.raises(ValueError) as error:
        _multi_channel_trainer(lambda_identity=0.5, ddp_like=ddp_like)
    message = str(error.value)
    assert "lambda_identity" in message and "to 0" in message
    assert "takes 3 (dti)" in message and "takes 1 (lge)" in message


def test_multi_channel_source_trains_without_identity_term():
    trainer = _multi_channel_trainer(lambda_identity=0.0)
    trainer.run()
    output = trainer.state.output[0]
    assert output["fake_target"].shape == (1, 16, 16) and output["fake_source"].shape == (3, 16, 16)
    assert float(output["loss_identity"]) == 0.0 and math.isfinite(float(output["loss_g"]))
