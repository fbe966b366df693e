"""SwinSSegNet's decoder as section II.B and Fig. 4 describe it: conv -> ReLU -> BN, bilinear part 2, raw-input skip.

The shape and layout tests are in test_nets_swin_sseg.py; these check the order of the operations and the data flow
with forward hooks, so a reordered double conv, another interpolation or a skip that does not reach the output fails.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from common.nets import SwinSSeg
from common.nets.swin_sseg import _DoubleConv
from torch import nn

TINY = {"feature_size": 12, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1)}


pytestmark = pytest.mark.usefixtures("one_thread")


def _net(scale: int = 4, **kwargs) -> SwinSSeg:
    torch.manual_seed(0)
    return SwinSSeg(**TINY, scale=scale, **kwargs).eval()


def _double_convs(net: SwinSSeg) -> list[nn.Module]:
    blocks = [net.input_skip, *net.encoder_skips]
    blocks += [block.conv for block in net.up_blocks] + [block.conv for block in net.super_resolution_blocks]
    return blocks


def _call_order(module: nn.Module, x: torch.Tensor) -> list[str]:
    """Class names of the leaf modules of ``module`` in the order ``forward`` calls them."""
    order: list[str] = []
    handles = [
        leaf.register_forward_hook(lambda m, i, o: order.append(type(m).__name__))
        for leaf in module.modules()
        if not list(leaf.children())
    ]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for handle in handles:
            handle.remove()
    return order


@pytest.mark.parametrize("encoder", ["swin", "resnet"])
def test_every_double_conv_runs_conv_relu_batchnorm_twice(encoder):
    """The paper: "two stacks, encompassing convolution, Rectified Linear Unit, and Batch Normalization layers"."""
    net = _net(encoder=encoder)
    blocks = _double_convs(net)
    assert len(blocks) == 1 + 4 + 4 + 2 and all(isinstance(b, _DoubleConv) for b in blocks)
    for block in blocks:
        in_channels = block[0].conv.in_channels
        order = [name for name in _call_order(block, torch.randn(1, in_channels, 8, 8)) if name != "Identity"]
        assert order == ["Conv2d", "ReLU", "BatchNorm2d"] * 2, order


def test_double_conv_output_is_batch_normalised_not_rectified():
    """BN last: in training mode each output channel has zero batch mean and negative values (a ReLU-last block
    would be >= 0)."""
    block = _DoubleConv(2, 3, 4).train()
    torch.manual_seed(0)
    out = block(torch.randn(4, 3, 8, 8))
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-5, rtol=0)
    assert (out < 0).any()


def test_part_two_upsamples_bilinearly_by_two():
    """Each part-2 block feeds its double conv the bilinear x2 interpolation of its input (align_corners=False),
    with no learned upsampling (its only parameters are the double conv's)."""
    net = _net(scale=4)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    handles = []
    for block in net.super_resolution_blocks:
        inputs: dict[str, torch.Tensor] = {}
        handles.append(block.register_forward_pre_hook(lambda m, args, store=inputs: store.update(x=args[0])))
        handles.append(
            block.conv.register_forward_pre_hook(lambda m, args, store=inputs: seen.append((store["x"], args[0])))
        )
    with torch.no_grad():
        net(torch.rand(1, 1, 32, 32))
    for handle in handles:
        handle.remove()
    assert len(seen) == 2  # log2(4) blocks
    for x, upsampled in seen:
        assert upsampled.shape[2:] == (2 * x.shape[2], 2 * x.shape[3])
        torch.testing.assert_close(upsampled, F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))
        assert not torch.allclose(upsampled, F.interpolate(x, scale_factor=2.0, mode="nearest"), atol=1e-4)
    for block in net.super_resolution_blocks:
        assert {id(p) for p in block.parameters()} == {id(p) for p in block.conv.parameters()}


def test_raw_input_skip_feeds_the_last_part_one_block():
    """``input_skip`` sees the raw input (not an encoder map) and its output is the skip of the last up block."""
    net = _net()
    x = torch.rand(1, 1, 32, 32)
    seen: dict[str, torch.Tensor] = {}
    handles = [
        net.input_skip.register_forward_pre_hook(lambda m, args: seen.update(input=args[0])),
        net.input_skip.register_forward_hook(lambda m, args, out: seen.update(output=out)),
        net.up_blocks[-1].register_forward_pre_hook(lambda m, args: seen.update(skip=args[1])),
    ]
    with torch.no_grad():
        net(x)
    for handle in handles:
        handle.remove()
    assert torch.equal(seen["input"], x)
    assert seen["output"].shape == (1, TINY["feature_size"], 32, 32)
    assert torch.equal(seen["skip"], seen["output"])


def test_perturbing_the_raw_input_changes_the_output_through_the_skip_path():
    """The encoder is pinned to the clean image, so a perturbation of the input reaches the output only through the
    raw-input skip: the output changes. Pinning the skip too leaves the output unchanged (no other path)."""
    net = _net()
    x = torch.rand(1, 1, 32, 32)
    perturbed = x.clone()
    perturbed[..., 10:14, 10:14] += 1.0

    def pinned(*modules: nn.Module) -> torch.Tensor:
        handles = [module.register_forward_pre_hook(lambda m, args: (x,)) for module in modules]
        try:
            with torch.no_grad():
                return net(perturbed)
        finally:
            for handle in handles:
                handle.remove()

    with torch.no_grad():
        clean = net(x)
    through_skip = pinned(net.encoder)
    assert (through_skip - clean).abs().max() > 1e-5  # far above rounding: the pinned-both output is bit-identical
    assert torch.equal(pinned(net.encoder, net.input_skip), clean)
