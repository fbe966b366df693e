"""The SMORE-style pre-upsampler (REHRSeg's optional stage 1a): a residual on the interpolated plane, and a short
training on a thick volume's slices that beats the cubic interpolation on another subject's slices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from common.losses import SelfSRLoss
from common.nets import SMOREPreUpsampler
from common.transforms import SliceSRPairsd


def test_a_fresh_network_returns_the_interpolated_image_and_the_label_as_a_logit():
    network = SMOREPreUpsampler(channels=8, num_blocks=2)
    x = torch.cat([torch.rand(2, 1, 12, 16), (torch.rand(2, 1, 12, 16) > 0.5).float()], dim=1)
    out = network(x)
    torch.testing.assert_close(out[:, :1], x[:, :1])
    torch.testing.assert_close(out[:, 1:], 4.0 * (2.0 * x[:, 1:] - 1.0))
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        network(torch.zeros(1, 1, 8, 8))


def _pairs(volume: np.ndarray, label: np.ndarray, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    transform = SliceSRPairsd(scale=4, patch_size=32, num_samples=n, foreground_prob=0.5)
    transform.set_random_state(seed)
    samples = transform({"image": torch.as_tensor(volume[None]), "label": torch.as_tensor(label[None])})
    return torch.stack([s["lr"] for s in samples]), torch.stack([s["hr"] for s in samples])


def _subject(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A thick-slice-like volume whose slices hold sharp-edged disks (what the in-plane axes resolve and a thick
    axis blurs: the prior a 2D SR network can learn from the slices), labelled."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.arange(48), np.arange(48), indexing="ij")
    image = np.zeros((48, 48, 6), np.float32)
    for k in range(6):
        for _ in range(6):
            cx, cy, r = rng.uniform(4, 44), rng.uniform(4, 44), rng.uniform(3, 8)
            image[..., k][(x - cx) ** 2 + (y - cy) ** 2 < r**2] = 1.0
    return image, image.copy()


def test_training_on_one_subject_s_slices_beats_cubic_interpolation_on_another_s():
    torch.manual_seed(0)
    network = SMOREPreUpsampler(channels=16, num_blocks=2)
    loss_function = SelfSRLoss()
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    image, label = _subject(0)
    losses = []
    for step in range(150):
        lr, hr = _pairs(image, label, 8, step)
        terms = loss_function.terms(network(lr), hr)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        losses.append(terms["loss_l1"].item())
    lr, hr = _pairs(*_subject(1), 32, 999)
    with torch.no_grad():
        learnt = (network(lr)[:, 0] - hr[:, 0]).abs().mean().item()
    cubic = (lr[:, 0] - hr[:, 0]).abs().mean().item()
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    assert learnt < 0.9 * cubic, (learnt, cubic)
