"""EDSR-like baseline: shape, residual on the input, a step that learns."""

from __future__ import annotations

import torch
from common.nets.edsr import EDSRBaseline


def test_output_is_the_input_plus_a_learned_residual():
    net = EDSRBaseline(channels=8, num_blocks=2)
    x = torch.rand(2, 1, 16, 20)
    torch.testing.assert_close(net(x), x)  # a fresh network returns the interpolated input
    torch.nn.init.normal_(net.tail.weight, std=0.1)
    assert net(x).shape == x.shape and (net(x) - x).abs().max() > 1e-4


def test_a_few_steps_learn_a_residual_from_a_zero_start():
    torch.manual_seed(0)
    net = EDSRBaseline(channels=8, num_blocks=2)
    blurred = torch.rand(4, 1, 16, 16)
    sharp = 2.0 * blurred  # the residual to learn is the input itself
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.l1_loss(net(blurred), sharp)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
