"""The residual shortcuts of the networks' blocks: each block adds its input to its branch (a block that returned only
its branch would keep every parameter count and shape the other tests check)."""

from __future__ import annotations

import pytest
import torch
from common.nets.flavr import _BasicBlock3d, _SEGating
from common.nets.munit import _ResBlock
from common.nets.resnet_generator import _ResidualBlock as CycleGANResidualBlock
from common.nets.transmrsr import _ResidualBlock as TransMRSRResidualBlock
from common.nets.transmrsr import _ResidualSwinStage, _SwinBlock


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize(
    "block, branch",
    [
        (CycleGANResidualBlock(2, 4, "instance", use_dropout=False, use_bias=True), "conv_block"),
        (_ResBlock(4, norm="in"), "model"),
        (TransMRSRResidualBlock(4), "body"),
    ],
    ids=["cyclegan_resnet", "munit", "transmrsr_shallow"],
)
def test_conv_residual_block_is_input_plus_branch(block, branch):
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x + getattr(block, branch)(x))


def test_swin_block_adds_attention_then_mlp_to_its_input():
    block = _SwinBlock(8, resolution=8, num_heads=2, window_size=4, shifted=True, mlp_ratio=2.0).eval()
    tokens = torch.randn(2, 64, 8)
    with torch.no_grad():
        after_attention = tokens + block.attend(tokens)
        torch.testing.assert_close(block(tokens), after_attention + block.mlp(block.norm2(after_attention)))


def test_residual_swin_stage_with_a_zero_conv_returns_its_input_as_a_map():
    stage = _ResidualSwinStage(8, resolution=8, depth=2, num_heads=2, window_size=4, mlp_ratio=2.0).eval()
    torch.nn.init.zeros_(stage.conv.weight)
    torch.nn.init.zeros_(stage.conv.bias)
    tokens = torch.randn(2, 64, 8)
    with torch.no_grad():
        torch.testing.assert_close(stage(tokens), tokens.transpose(1, 2).reshape(2, 8, 8, 8))


def test_r3d_basic_block_with_a_zero_branch_is_relu_of_its_input():
    block = _BasicBlock3d(4, 4, stride=(1, 1, 1))
    torch.nn.init.zeros_(block.conv2.weight)
    torch.nn.init.zeros_(block.conv2.bias)
    x = torch.randn(1, 4, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(block(x), torch.relu(x))
        torch.nn.init.normal_(block.conv2.weight)
        assert not torch.allclose(block(x), torch.relu(x))  # the branch counts once it is not zero


def test_se_gating_scales_each_channel_by_the_sigmoid_of_its_attention():
    gate = _SEGating(3)
    torch.nn.init.zeros_(gate.attention.weight)
    bias = torch.tensor([-1.0, 0.0, 2.0])
    with torch.no_grad():
        gate.attention.bias.copy_(bias)
        x = torch.randn(2, 3, 2, 4, 4)
        torch.testing.assert_close(gate(x), x * torch.sigmoid(bias).view(1, 3, 1, 1, 1))
