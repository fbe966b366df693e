"""EDSR-like baseline: shape, residual on the input, a step that learns."""

from __future__ import annotations

import torch
from common.nets.edsr import EDSRBaseline


def test_output_is_the_input_plus_a_learned_residual():
    net = EDSRBaseline(channels=8, num_blocks=2)
    x = torch.rand(2, 1, 16, 20)
    assert net(x).shape == x.shape
    torch.nn.init.zeros_(net.tail.weight)
    torch.nn.init.zeros_(net.tail.bias)
    torch.testing.assert_close(net(x), x)


def test_a_few_steps_reduce_the_error_to_a_blurred_target():
    torch.manual_seed(0)
    net = EDSRBaseline(channels=8, num_blocks=2)
    sharp = torch.rand(4, 1, 16, 16)
    blurred = torch.nn.functional.avg_pool2d(sharp, 3, stride=1, padding=1, count_include_pad=False)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.l1_loss(net(blurred), sharp)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
