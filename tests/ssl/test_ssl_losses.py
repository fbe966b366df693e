"""Tests of common/ssl/losses.py: the multi-task U-SSL loss on known inputs (eqs. 3-5)."""

from __future__ import annotations

import math

import pytest
import torch
from common.ssl import MultiTaskSSLLoss, SSLNet, TwoViewAugment


def _outputs(rotation_logits, embedding, reconstruction):
    return {"rotation_logits": rotation_logits, "embedding": embedding, "reconstruction": reconstruction}


def _aug(rotations=(0, 1), rotated=None, mask=None):
    rotated = torch.rand(2, 1, 8, 8) if rotated is None else rotated
    mask = torch.zeros(2, 1, 8, 8) if mask is None else mask
    out = {}
    for v in (1, 2):
        out[f"rotation_{v}"] = torch.tensor(rotations)
        out[f"rotated_{v}"] = rotated
        out[f"mask_{v}"] = mask
        out[f"masked_{v}"] = rotated * (1 - mask)
    return out


def test_perfect_prediction_gives_near_zero_rotation_and_reconstruction():
    aug = _aug(rotations=(2, 3))
    logits = 50 * torch.nn.functional.one_hot(torch.tensor([2, 3]), 4).float()
    out = _outputs(logits, torch.eye(2), aug["rotated_1"].clone())
    losses = MultiTaskSSLLoss()(out, out, aug)
    assert losses["loss_rotation"].item() < 1e-6
    assert losses["loss_reconstruction"].item() == 0.0
    wrong = _outputs(
        50 * torch.nn.functional.one_hot(torch.tensor([0, 0]), 4).float(), torch.eye(2), out["reconstruction"]
    )
    assert MultiTaskSSLLoss()(wrong, wrong, aug)["loss_rotation"].item() > 40


def test_reconstruction_l1_hand_value_and_region():
    rotated = torch.zeros(2, 1, 8, 8)
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, :4] = 1  # top half masked
    aug = _aug(rotated=rotated, mask=mask)
    reconstruction = torch.zeros(2, 1, 8, 8)
    reconstruction[:, :, 4:] = 0.5  # errors only in the unmasked bottom half
    out = _outputs(torch.zeros(2, 4), torch.eye(2), reconstruction)
    torch.testing.assert_close(MultiTaskSSLLoss()(out, out, aug)["loss_reconstruction"], torch.tensor(0.25))
    masked_only = MultiTaskSSLLoss(reconstruction_region="masked")(out, out, aug)["loss_reconstruction"]
    assert masked_only.item() == 0.0
    reconstruction[:, :, :4] = 1.0  # now error 1 on the masked half
    torch.testing.assert_close(
        MultiTaskSSLLoss(reconstruction_region="masked")(out, out, aug)["loss_reconstruction"], torch.tensor(1.0)
    )


def test_nt_xent_two_sample_hand_value():
    """Views identical, samples orthogonal: every anchor has its positive (cos 1) and 2 negatives (cos 0) in the
    denominator besides the positive: loss = -log(e^(1/t) / (e^(1/t) + 2)) = log(1 + 2 e^(-1/t))."""
    z = torch.tensor([[3.0, 0.0], [0.0, 2.0]])  # orthogonal, not unit length (cosine similarity normalises)
    aug = _aug()
    out = _outputs(torch.zeros(2, 4), z, aug["rotated_1"])
    for t in (0.5, 1.0):
        loss = MultiTaskSSLLoss(temperature=t)(out, out, aug)["loss_contrastive"]
        torch.testing.assert_close(loss, torch.tensor(math.log(1 + 2 * math.exp(-1 / t))))


def test_nt_xent_matched_pairs_lower_than_shuffled():
    z = torch.eye(4)
    aug = {
        **_aug(),
        "rotation_1": torch.zeros(4, dtype=torch.long),
        "rotation_2": torch.zeros(4, dtype=torch.long),
    }
    aug = {k: (v.repeat(2, 1, 1, 1) if v.dim() == 4 else v) for k, v in aug.items()}
    loss = MultiTaskSSLLoss()
    matched = loss(
        _outputs(torch.zeros(4, 4), z, aug["rotated_1"]), _outputs(torch.zeros(4, 4), z, aug["rotated_2"]), aug
    )
    shuffled = loss(
        _outputs(torch.zeros(4, 4), z, aug["rotated_1"]),
        _outputs(torch.zeros(4, 4), z[[1, 2, 3, 0]], aug["rotated_2"]),
        aug,
    )
    assert matched["loss_contrastive"] < shuffled["loss_contrastive"] - 0.5


def test_total_is_weighted_sum():
    torch.manual_seed(0)
    aug = _aug()
    out1 = _outputs(torch.randn(2, 4), torch.randn(2, 8), torch.rand(2, 1, 8, 8))
    out2 = _outputs(torch.randn(2, 4), torch.randn(2, 8), torch.rand(2, 1, 8, 8))
    losses = MultiTaskSSLLoss(lambda_rotation=0.5, lambda_reconstruction=2.0, lambda_contrastive=0.0)(out1, out2, aug)
    torch.testing.assert_close(losses["loss"], 0.5 * losses["loss_rotation"] + 2.0 * losses["loss_reconstruction"])
    assert set(losses) == {"loss", "loss_rotation", "loss_reconstruction", "loss_contrastive"}


def test_end_to_end_gradients_reach_all_heads():
    torch.manual_seed(0)
    net = SSLNet(feature_size=12, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), proj_dim=8, hidden_dim=16)
    aug = TwoViewAugment()(torch.rand(2, 1, 32, 32), generator=torch.Generator().manual_seed(0))
    losses = MultiTaskSSLLoss()(net(aug["masked_1"]), net(aug["masked_2"]), aug)
    losses["loss"].backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert [n for n, p in net.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lambda_rotation": -1.0}, "lambda_rotation"),
        ({"lambda_reconstruction": -0.1}, "lambda_reconstruction"),
        ({"lambda_contrastive": float("nan")}, "lambda_contrastive"),
        ({"temperature": 0.0}, "temperature"),
        ({"reconstruction_region": "patch"}, "reconstruction_region"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiTaskSSLLoss(**kwargs)


def test_reconstruction_shape_mismatch_raises():
    aug = _aug()
    out = _outputs(torch.zeros(2, 4), torch.eye(2), torch.zeros(2, 1, 4, 4))
    with pytest.raises(ValueError, match="reconstruction shape"):
        MultiTaskSSLLoss()(out, out, aug)
