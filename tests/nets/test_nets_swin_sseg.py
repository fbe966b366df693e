"""Tests of common/nets/swin_sseg.py: shapes per scale and encoder, shape rules, TorchScript, a short fit."""

from __future__ import annotations

import io

import pytest
import torch
from common.nets import ENCODER_NAMES, SwinSSeg
from monai.losses import DiceCELoss

TINY = {"feature_size": 12, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1)}

CASES = [
    # (kwargs, input_shape, expected_shape)
    ({**TINY, "encoder": encoder, "scale": scale}, (1, 1, 32, 32), (1, 2, 32 * scale, 32 * scale))
    for encoder in ENCODER_NAMES
    for scale in (1, 2, 4, 8)
] + [
    ({**TINY, "scale": 2, "in_channels": 2, "out_channels": 4}, (2, 2, 32, 48), (2, 4, 64, 96)),
    ({**TINY, "scale": 2, "patch_size": 4}, (1, 1, 32, 32), (1, 2, 64, 64)),
    ({**TINY, "scale": 2, "encoder": "resnet", "spatial_dims": 3}, (1, 1, 16, 16, 16), (1, 2, 32, 32, 32)),
]


@pytest.mark.parametrize("kwargs, input_shape, expected_shape", CASES)
def test_shape(kwargs, input_shape, expected_shape):
    net = SwinSSeg(**kwargs).eval()
    with torch.no_grad():
        out = net(torch.randn(input_shape))
    assert tuple(out.shape) == expected_shape
    assert torch.isfinite(out).all()


def test_outputs_raw_logits():
    """No final activation: the output is linear in the 1x1 head (doubling its weights doubles the output)."""
    torch.manual_seed(0)
    net = SwinSSeg(**TINY, scale=2).eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        net.head.conv.bias.zero_()
        out = net(x)
        net.head.conv.weight.mul_(2.0)
        doubled = net(x)
    torch.testing.assert_close(doubled, 2 * out)
    assert not torch.allclose(out.sum(1), torch.ones(1))


def test_decoder_layout():
    """Part 2 has log2(scale) blocks whose widths halve (floor 8); the head is a 1x1 conv to out_channels."""
    net = SwinSSeg(feature_size=32, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), scale=8, out_channels=3)
    widths = [block.conv[-1].conv.out_channels for block in net.super_resolution_blocks]
    assert widths == [16, 8, 8]
    assert len(net.up_blocks) == 4  # three encoder skips + the raw-input skip
    assert net.head.conv.kernel_size == (1, 1) and net.head.conv.out_channels == 3
    assert len(SwinSSeg(**TINY, scale=1).super_resolution_blocks) == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scale": 3}, "scale"),
        ({"scale": 16}, "scale"),
        ({"out_channels": 0}, "out_channels"),
        ({"encoder": "biformer"}, "encoder"),
        ({"patch_size": 3}, "patch_size"),
        ({"num_heads": (5, 1, 1, 1)}, "num_heads"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SwinSSeg(**{**TINY, **kwargs})


@pytest.mark.parametrize("shape", [(1, 1, 40, 32), (1, 1, 32, 24)])
def test_indivisible_input_raises_naming_shape(shape):
    net = SwinSSeg(**TINY, scale=2).eval()
    with pytest.raises(ValueError, match=f"{list(shape[2:])}".replace("[", r"\[").replace("]", r"\]")):
        net(torch.zeros(shape))


def test_seeded_determinism():
    x = torch.randn(1, 1, 32, 32)
    outs = []
    for seed in (7, 7, 8):
        torch.manual_seed(seed)
        net = SwinSSeg(**TINY, scale=2, drop_path_rate=0.1).eval()
        with torch.no_grad():
            outs.append(net(x))
    torch.testing.assert_close(outs[0], outs[1])
    assert not torch.allclose(outs[0], outs[2])  # the output depends on the seeded weights


def test_jit_trace_round_trip():
    torch.manual_seed(0)
    net = SwinSSeg(**TINY, scale=2).eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad(), pytest.warns(torch.jit.TracerWarning):
        traced = torch.jit.trace(net, x)
    buffer = io.BytesIO()
    torch.jit.save(traced, buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))


@pytest.mark.parametrize("encoder", ["resnet", "convnext"])
def test_jit_script_round_trip_for_conv_encoders(encoder):
    torch.manual_seed(0)
    net = SwinSSeg(**TINY, scale=2, encoder=encoder).eval()
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(net), buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    x = torch.randn(1, 1, 48, 32)  # scripting is not specialised to one size
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))


def test_fits_one_batch():
    """A tiny SwinSSeg lowers its DiceCE loss on one fixed batch within 20 AdamW steps."""
    torch.manual_seed(0)
    image = torch.rand(2, 1, 32, 32)
    label = torch.zeros(2, 1, 64, 64)
    label[:, :, 16:40, 20:48] = 1
    net = SwinSSeg(**TINY, scale=2)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = loss_fn(net(image), label)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_class_prior_sets_the_first_predictions_to_the_class_frequencies():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 32, 32)
    default = SwinSSeg(**TINY, scale=2)
    torch.manual_seed(0)
    prior = SwinSSeg(**TINY, scale=2, class_prior=(99.0, 1.0))  # normalised to 0.99 / 0.01
    torch.testing.assert_close(prior.head.conv.bias, torch.log(torch.tensor([0.99, 0.01])))
    with torch.no_grad():
        p_default = torch.softmax(default(x), 1)[:, 1].mean().item()
        p_prior = torch.softmax(prior(x), 1)[:, 1].mean().item()
    assert 0.2 < p_default < 0.8  # PyTorch's init: about 50/50
    assert p_prior < 0.05  # about the 1 % prior


@pytest.mark.parametrize("class_prior", [(0.5,), (0.9, 0.0), (0.9, float("nan"))])
def test_bad_class_prior_is_named(class_prior):
    with pytest.raises(ValueError, match="class_prior"):
        SwinSSeg(**TINY, class_prior=class_prior)
