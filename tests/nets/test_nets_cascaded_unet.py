"""Tests of common/nets/cascaded_unet.py: the BN + dropout U-Net and the two-stage cascade (Chen, Ouyang et al.)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from common.losses.sobel_edge import CompositeSegmentationLoss
from common.nets.cascaded_unet import CascadedUNet, UNetBN
from torch.nn.modules.dropout import _DropoutNd

TINY = (4, 8, 16)  # depth 2: sizes divisible by 4

CASES = [
    # (kwargs, input_shape, expected_shape)
    ({"features": TINY}, (2, 1, 16, 16), (2, 4, 16, 16)),
    ({"features": TINY, "in_channels": 5, "out_channels": 3}, (1, 5, 8, 24), (1, 3, 8, 24)),
    ({"features": (4, 8)}, (1, 1, 6, 10), (1, 4, 6, 10)),
    ({"features": (4, 8, 16, 32, 64)}, (1, 1, 32, 48), (1, 4, 32, 48)),
    ({"features": TINY, "spatial_dims": 3}, (1, 1, 8, 8, 4), (1, 4, 8, 8, 4)),
]


def _leaf_call_order(net: nn.Module, x: torch.Tensor) -> list[nn.Module]:
    """The leaf modules in the order in which the forward pass calls them."""
    calls: list[nn.Module] = []
    handles = [
        m.register_forward_hook(lambda module, inputs, output: calls.append(module))
        for m in net.modules()
        if not list(m.children())
    ]
    with torch.no_grad():
        net(x)
    for handle in handles:
        handle.remove()
    return calls


@pytest.mark.parametrize("kwargs, input_shape, expected_shape", CASES)
def test_unet_shape(kwargs, input_shape, expected_shape):
    net = UNetBN(**kwargs).eval()
    with torch.no_grad():
        assert tuple(net(torch.randn(input_shape)).shape) == expected_shape


@pytest.mark.parametrize("kwargs, input_shape, expected_shape", CASES)
def test_cascade_shape(kwargs, input_shape, expected_shape):
    net = CascadedUNet(**kwargs).eval()
    with torch.no_grad():
        assert tuple(net(torch.randn(input_shape)).shape) == expected_shape


def test_default_is_the_vanilla_unet_layout():
    net = UNetBN()
    assert net.features == (64, 128, 256, 512, 1024) and net.depth == 4 and net.size_divisor == 16
    convs = [m for m in net.modules() if type(m) is nn.Conv2d]
    assert len(convs) == 2 * 5 + 2 * 4 + 1  # two per level on both paths, 1x1 head
    assert all(m.kernel_size == (3, 3) for m in convs[:-1]) and convs[-1].kernel_size == (1, 1)
    ups = [m for m in net.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.stride) for m in ups] == [
        (c, c // 2, (2, 2), (2, 2)) for c in (1024, 512, 256, 128)
    ]
    dropouts = [m for m in net.modules() if isinstance(m, _DropoutNd)]
    assert len(dropouts) == 4 and all(type(m) is nn.Dropout2d and m.p == 0.1 for m in dropouts)


def test_batchnorm_follows_every_conv_and_logits_are_raw():
    """In call order, every conv (3x3 and up-conv) is followed by BatchNorm then ReLU; the 1x1 head ends the net."""
    net = UNetBN(features=TINY).eval()
    calls = _leaf_call_order(net, torch.randn(1, 1, 16, 16))
    conv_positions = [i for i, m in enumerate(calls) if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert calls[-1] is net.head and conv_positions[-1] == len(calls) - 1
    for i in conv_positions[:-1]:
        assert isinstance(calls[i + 1], nn.BatchNorm2d), f"{calls[i]} is followed by {calls[i + 1]}"
        assert isinstance(calls[i + 2], nn.ReLU)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert n_bn == len(conv_positions) - 1 == 2 * 3 + 2 * 2 + 2  # 2 per level x 3 + 2 per up level x 2 + 2 up-convs


def test_dropout_is_applied_right_after_each_concatenation():
    """Each dropout's input is exactly ``concat(skip, up-conv output)`` of its level, and there are no others."""
    torch.manual_seed(0)
    net = UNetBN(features=TINY).eval()
    seen: dict[str, torch.Tensor] = {}
    handles = [net.encoder[i].register_forward_hook(lambda m, i_, o, i=i: seen.update({f"skip{i}": o})) for i in (0, 1)]
    for j, block in enumerate(net.decoder):
        handles.append(block.up.register_forward_hook(lambda m, i_, o, j=j: seen.update({f"up{j}": o})))
        handles.append(block.dropout.register_forward_hook(lambda m, i_, o, j=j: seen.update({f"drop_in{j}": i_[0]})))
    with torch.no_grad():
        net(torch.randn(2, 1, 16, 16))
    for handle in handles:
        handle.remove()
    # decoder block 0 is the deepest: its skip is encoder level 1; block 1 takes encoder level 0
    for j, skip_level in enumerate((1, 0)):
        expected = torch.cat([seen[f"skip{skip_level}"], seen[f"up{j}"]], dim=1)
        assert seen[f"drop_in{j}"].shape[1] == 2 * TINY[skip_level]
        torch.testing.assert_close(seen[f"drop_in{j}"], expected)
    assert sum(isinstance(m, _DropoutNd) for m in net.modules()) == net.depth
    calls = _leaf_call_order(net, torch.randn(1, 1, 16, 16))
    for block in net.decoder:  # dropout comes after the up-conv's ReLU and before the first 3x3 conv of the level
        k = calls.index(block.dropout)
        assert calls[k - 1] is block.up[2] and calls[k + 1] is block.convs[0]


def test_dropout_is_active_in_train_mode_only():
    torch.manual_seed(0)
    net = UNetBN(features=TINY, dropout=0.5)
    x = torch.randn(2, 1, 16, 16)
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))
    net.train()
    with torch.no_grad():
        assert not torch.equal(net(x), net(x))


@pytest.mark.parametrize("shape", [(1, 1, 18, 16), (1, 1, 16, 30), (1, 1, 8, 8, 6)])
def test_shape_rule_names_the_shape(shape):
    net = UNetBN(features=TINY, spatial_dims=len(shape) - 2)
    with pytest.raises(ValueError, match=r"\[" + ", ".join(str(s) for s in shape[2:]) + r"\].*divisible by 4"):
        net(torch.zeros(shape))


def test_wrong_channels_raise():
    with pytest.raises(ValueError, match="got shape"):
        UNetBN(features=TINY)(torch.zeros(1, 2, 16, 16))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"spatial_dims": 1}, "spatial_dims"),
        ({"in_channels": 0}, "in_channels"),
        ({"out_channels": 0}, "out_channels"),
        ({"features": (8,)}, "features"),
        ({"features": (8, 0)}, "features"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UNetBN(**kwargs)


def test_bad_stage():
    with pytest.raises(ValueError, match="stage"):
        CascadedUNet(features=TINY, stage=3)


def test_seeded_determinism():
    outputs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        net = CascadedUNet(features=TINY).eval()
        with torch.no_grad():
            outputs.append(net(torch.ones(1, 1, 16, 16)))
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.allclose(outputs[0], outputs[2])  # the output depends on the seeded weights


def test_unet2_receives_image_and_unet1_probabilities():
    torch.manual_seed(0)
    net = CascadedUNet(features=TINY).eval()
    x = torch.randn(2, 1, 16, 16)
    received = []
    handle = net.unet2.register_forward_pre_hook(lambda module, inputs: received.append(inputs[0]))
    with torch.no_grad():
        logits2 = net(x)
        logits1 = net.forward_stage1(x)
    handle.remove()
    assert net.unet2.in_channels == 5 and received[0].shape == (2, 5, 16, 16)
    torch.testing.assert_close(received[0], torch.cat([x, torch.softmax(logits1, dim=1)], dim=1))
    both = net.forward_both(x)
    torch.testing.assert_close(both[0], logits1)
    torch.testing.assert_close(both[1], logits2)


def test_stage1_forward_is_unet1():
    torch.manual_seed(0)
    net = CascadedUNet(features=TINY, stage=1).eval()
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(net(x), net.unet1(x))
    assert net.trainable_parameters() == list(net.unet1.parameters())


def test_stage2_step_changes_unet2_only_and_keeps_unet1_in_eval():
    """Stage 2 (paper section 3.2): U-Net 1 fixed. Even an optimizer over all parameters leaves U-Net 1 (weights
    and BatchNorm running statistics) unchanged, while U-Net 2 moves."""
    torch.manual_seed(0)
    net = CascadedUNet(features=TINY, stage=2, freeze_unet1=True)
    net.train()
    assert net.training and net.unet2.training and not net.unet1.training
    assert not any(m.training for m in net.unet1.modules())
    assert all(not p.requires_grad for p in net.unet1.parameters())
    assert net.trainable_parameters() == list(net.unet2.parameters())
    unet1_before = {k: v.clone() for k, v in net.unet1.state_dict().items()}
    unet2_before = {k: v.clone() for k, v in net.unet2.named_parameters()}
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    x, target = torch.randn(2, 1, 16, 16), torch.randint(0, 4, (2, 1, 16, 16))
    loss = CompositeSegmentationLoss()(net(x), target)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert all(p.grad is None for p in net.unet1.parameters())
    for key, value in net.unet1.state_dict().items():
        assert torch.equal(value, unet1_before[key]), f"U-Net 1 {key} changed"
    changed = [k for k, v in net.unet2.named_parameters() if not torch.equal(v, unet2_before[k])]
    assert len(changed) == len(unet2_before)
    net.train()  # a second train() call (as each epoch of a trainer) keeps it frozen
    assert not net.unet1.training


def test_unfreeze_restores_training():
    net = CascadedUNet(features=TINY, freeze_unet1=True).train()
    net.set_unet1_frozen(False)
    assert net.unet1.training and all(p.requires_grad for p in net.unet1.parameters())
    net.eval().set_unet1_frozen(True).train()
    assert not net.unet1.training


def test_short_fit_lowers_the_composite_loss():
    """A few dozen Adam steps on a toy task (LV disk in a MYO ring, RV blob) lower L_seg clearly."""
    torch.manual_seed(0)
    size = 16
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    images, labels = [], []
    for cy, cx in ((7, 6), (8, 7), (6, 8), (9, 6)):
        r = ((yy - cy) ** 2 + (xx - cx) ** 2).float().sqrt()
        label = torch.zeros(size, size, dtype=torch.long)
        label[r <= 4.5] = 2
        label[r <= 2.5] = 1
        label[(((yy - cy) ** 2 + (xx - cx - 6) ** 2).float().sqrt() <= 3) & (label == 0)] = 3
        images.append(torch.tensor([0.0, 1.0, 0.3, 0.8])[label] + 0.05 * torch.randn(size, size))
        labels.append(label)
    x, target = torch.stack(images)[:, None], torch.stack(labels)[:, None]
    net = UNetBN(features=(8, 16, 32)).train()
    loss_fn = CompositeSegmentationLoss()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = loss_fn(net(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
