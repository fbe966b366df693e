"""CycleGANTrainer's loss terms against values computed by hand (CycleGANSeg, section II.A, eqs. 1-2, and LSGAN).

Every network is a fixed, known function (affine 1x1 "generators" and "discriminators", a nonlinear Segmentor), the
trainer runs one iteration, and each named output must equal the formula written out here in NumPy. The checks that
the terms take the right images (the reconstructed LGE in eq. 2, the real LGE as reference) can fail: a trainer
that wired another image in would give one of the "wrong wiring" values, which differ from the right ones.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from common.engines import CycleGANTrainer
from common.losses import SegmentorConsistencyLoss
from common.losses.segmentor_consistency import INSTANCE_NORM_EPS
from torch import nn
from torch.utils.data import DataLoader

#: G_S>T(x) = a x + b and G_T>S(x) = c x + d: exact identities, then "identity-like" affine maps
GENERATORS = {"identity": ((1.0, 0.0), (1.0, 0.0)), "affine": ((0.8, 0.1), (-0.6, 0.2))}
#: D_T(x) = w x + b, D_S(x) = w x + b (logits, no activation: LSGAN with no_activation_leastsq)
D_TARGET, D_SOURCE = (1.5, -0.2), (-0.7, 0.4)
LAMBDA_CYCLE, LAMBDA_IDENTITY, LAMBDA_TRANSFER_SEG, LAMBDA_RECON_SEG = 10.0, 0.5, 2.0, 3.0


pytestmark = pytest.mark.usefixtures("one_thread")


def _affine(weight: float, bias: float) -> nn.Module:
    conv = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(weight)
        conv.bias.fill_(bias)
    return conv


class _FixedSegmentor(nn.Module):
    """logits ``(tanh(2x - 0.3), x^2)``: nonlinear, so an affine change of the image changes the normalised mask."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.tanh(self.gain * x - 0.3), x * x], dim=1)


def _segment(x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.tanh(2.0 * x - 0.3), x * x], axis=1)


def _activate(logits: np.ndarray, activation: str) -> np.ndarray:
    if activation == "softmax":
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    mean = logits.mean(axis=(2, 3), keepdims=True)
    variance = logits.var(axis=(2, 3), keepdims=True)  # biased, as InstanceNorm
    return (logits - mean) / np.sqrt(variance + INSTANCE_NORM_EPS)


def _consistency(pred_image: np.ndarray, reference_image: np.ndarray, activation: str) -> float:
    """Eqs. 1-2: mean of ``(act(S(pred_image)) - act(S(reference_image)))^2``."""
    return float(
        np.mean((_activate(_segment(pred_image), activation) - _activate(_segment(reference_image), activation)) ** 2)
    )


def _batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    dti = rng.uniform(-1, 1, (2, 1, 4, 4)).astype(np.float32)
    lge = rng.uniform(-1, 1, (2, 1, 4, 4)).astype(np.float32)
    return dti, lge


def _run(generators, activation: str = "instance_norm", dti=None, lge=None) -> dict[str, float]:
    """One iteration (lr 0, no image pool) of a CycleGANSeg trainer; its named loss outputs as floats."""
    (a, b), (c, d) = generators
    networks = {
        "g_source_to_target": _affine(a, b),
        "g_target_to_source": _affine(c, d),
        "d_source": _affine(*D_SOURCE),
        "d_target": _affine(*D_TARGET),
    }
    g_params = [*networks["g_source_to_target"].parameters(), *networks["g_target_to_source"].parameters()]
    d_params = [*networks["d_source"].parameters(), *networks["d_target"].parameters()]
    optimizers = {"g_optimizer": torch.optim.SGD(g_params, lr=0.0), "d_optimizer": torch.optim.SGD(d_params, lr=0.0)}
    default_dti, default_lge = _batch()
    dti, lge = default_dti if dti is None else dti, default_lge if lge is None else lge
    data = [{"dti": torch.from_numpy(s), "lge": torch.from_numpy(t)} for s, t in zip(dti, lge)]
    trainer = CycleGANTrainer(
        "cpu",
        1,
        DataLoader(data, batch_size=2),
        networks,
        optimizers,
        source_key="dti",
        target_key="lge",
        lambda_cycle=LAMBDA_CYCLE,
        lambda_identity=LAMBDA_IDENTITY,
        pool_size=0,
        segmentor=_FixedSegmentor(),
        segmentor_consistency_loss=SegmentorConsistencyLoss(activation),
        lambda_transfer_seg=LAMBDA_TRANSFER_SEG,
        lambda_recon_seg=LAMBDA_RECON_SEG,
        epoch_length=1,
        decollate=False,
    )
    trainer.run()
    return {k: float(v) for k, v in trainer.state.output.items() if k.startswith("loss")}


def _images(generators, dti: np.ndarray, lge: np.ndarray) -> dict[str, np.ndarray]:
    (a, b), (c, d) = generators
    fake_target = a * dti + b
    fake_source = c * lge + d
    return {
        "fake_target": fake_target,
        "rec_source": c * fake_target + d,
        "fake_source": fake_source,
        "rec_target": a * fake_source + b,
        "identity_target": a * lge + b,
        "identity_source": c * dti + d,
    }


def _hand_terms(generators, activation: str, dti: np.ndarray, lge: np.ndarray) -> dict[str, float]:
    im = _images(generators, dti, lge)
    d_target = lambda x: D_TARGET[0] * x + D_TARGET[1]  # noqa: E731
    d_source = lambda x: D_SOURCE[0] * x + D_SOURCE[1]  # noqa: E731
    terms = {
        # LSGAN generator: mean((D(fake) - 1)^2) per domain
        "loss_gan": float(
            np.mean((d_target(im["fake_target"]) - 1) ** 2) + np.mean((d_source(im["fake_source"]) - 1) ** 2)
        ),
        "loss_cycle": LAMBDA_CYCLE
        * float(np.mean(np.abs(im["rec_source"] - dti)) + np.mean(np.abs(im["rec_target"] - lge))),
        "loss_identity": LAMBDA_CYCLE
        * LAMBDA_IDENTITY
        * float(np.mean(np.abs(im["identity_target"] - lge)) + np.mean(np.abs(im["identity_source"] - dti))),
        # eq. 1: S(G_S>T(dti)) vs S(lge); eq. 2: S(G_S>T(G_T>S(lge))) vs S(lge)
        "loss_transfer_seg": LAMBDA_TRANSFER_SEG * _consistency(im["fake_target"], lge, activation),
        "loss_recon_seg": LAMBDA_RECON_SEG * _consistency(im["rec_target"], lge, activation),
        # LSGAN discriminator: 0.5 * (mean((D(real) - 1)^2) + mean(D(fake)^2)) per domain
        "loss_d_target": 0.5 * float(np.mean((d_target(lge) - 1) ** 2) + np.mean(d_target(im["fake_target"]) ** 2)),
        "loss_d_source": 0.5 * float(np.mean((d_source(dti) - 1) ** 2) + np.mean(d_source(im["fake_source"]) ** 2)),
    }
    terms["loss_g"] = sum(
        terms[k] for k in ("loss_gan", "loss_cycle", "loss_identity", "loss_transfer_seg", "loss_recon_seg")
    )
    terms["loss_d"] = terms["loss_d_target"] + terms["loss_d_source"]
    terms["loss"] = terms["loss_g"] + terms["loss_d"]
    return terms


@pytest.mark.parametrize("activation", ["instance_norm", "softmax"])
@pytest.mark.parametrize("generators", GENERATORS.values(), ids=GENERATORS.keys())
def test_every_loss_term_equals_its_hand_value(generators, activation):
    out = _run(generators, activation)
    expected = _hand_terms(generators, activation, *_batch())
    assert set(expected) <= set(out)
    for key, value in expected.items():
        assert out[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key


def test_identity_generators_give_zero_recon_seg_and_transfer_seg_of_the_raw_pair():
    """With G = identity, eq. 2 compares S(lge) with itself (0) and eq. 1 compares S(dti) with S(lge)."""
    dti, lge = _batch()
    out = _run(GENERATORS["identity"])
    assert out["loss_recon_seg"] == 0.0 and out["loss_cycle"] == 0.0 and out["loss_identity"] == 0.0
    assert out["loss_transfer_seg"] == pytest.approx(
        LAMBDA_TRANSFER_SEG * _consistency(dti, lge, "instance_norm"), rel=1e-5
    )
    assert out["loss_transfer_seg"] > 0.1


@pytest.mark.parametrize("activation", ["instance_norm", "softmax"])
def test_terms_take_the_reconstructed_image_and_the_real_lge_reference(activation):
    """The value of eq. 1/2 with another image in place of the generated one or of the reference differs from the
    right one by far more than the tolerance, so the hand-value test above catches a wrongly wired trainer."""
    generators = GENERATORS["affine"]
    dti, lge = _batch()
    im = _images(generators, dti, lge)
    out = _run(generators, activation)
    right_recon = LAMBDA_RECON_SEG * _consistency(im["rec_target"], lge, activation)
    right_transfer = LAMBDA_TRANSFER_SEG * _consistency(im["fake_target"], lge, activation)
    wrong_recon = {
        "translated instead of reconstructed": _consistency(im["fake_target"], lge, activation),
        "G_T>S(lge) instead of G_S>T(G_T>S(lge))": _consistency(im["fake_source"], lge, activation),
        "reference S(dti)": _consistency(im["rec_target"], dti, activation),
        "reference S(rec_source)": _consistency(im["rec_target"], im["rec_source"], activation),
    }
    wrong_transfer = {
        "reconstructed instead of translated": _consistency(im["rec_target"], lge, activation),
        "reference S(dti)": _consistency(im["fake_target"], dti, activation),
        "reference S(fake_source)": _consistency(im["fake_target"], im["fake_source"], activation),
    }
    assert out["loss_recon_seg"] == pytest.approx(right_recon, rel=1e-5)
    assert out["loss_transfer_seg"] == pytest.approx(right_transfer, rel=1e-5)
    for name, value in wrong_recon.items():
        assert abs(LAMBDA_RECON_SEG * value - out["loss_recon_seg"]) > 1e-3 * max(right_recon, 1e-3), name
    for name, value in wrong_transfer.items():
        assert abs(LAMBDA_TRANSFER_SEG * value - out["loss_transfer_seg"]) > 1e-3 * max(right_transfer, 1e-3), name


def test_swapping_the_reconstructed_image_changes_only_recon_seg():
    """A different G_T>S changes the reconstructed LGE (eq. 2) but not the translated DTI (eq. 1)."""
    (a, b), (c, d) = GENERATORS["affine"]
    before = _run(((a, b), (c, d)))
    after = _run(((a, b), (0.5, -0.3)))
    assert after["loss_transfer_seg"] == pytest.approx(before["loss_transfer_seg"], rel=1e-6)
    assert abs(after["loss_recon_seg"] - before["loss_recon_seg"]) > 1e-3


def test_swapping_the_reference_image_changes_transfer_seg():
    """Pairing each DTI with the other case's LGE changes the reference of eq. 1; eq. 2 involves no DTI, so its batch
    mean stays (each LGE is still compared with its own reconstruction)."""
    dti, lge = _batch()
    before = _run(GENERATORS["affine"], dti=dti, lge=lge)
    after = _run(GENERATORS["affine"], dti=dti, lge=np.ascontiguousarray(lge[::-1]))
    assert abs(after["loss_transfer_seg"] - before["loss_transfer_seg"]) > 1e-3
    assert after["loss_recon_seg"] == pytest.approx(before["loss_recon_seg"], rel=1e-5)
