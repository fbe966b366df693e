"""PSCGAN's SCLN-based GAN: causality in time, attention maths, every encoder's shapes, refusals, gradients, fit."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from common.nets.pscgan import (
    CINE_ENCODER_KINDS,
    SCLN,
    CausalTemporalConv,
    CineEncoder,
    ConvLSTMCell,
    DilatedStack,
    MultiAttentionWeighing,
    PSCGANDiscriminator,
    PSCGANGenerator,
    SelfAttention,
    SpatialDilatedConv,
    TimeReduction,
)
from common.nets.pscgan_cascade import JointOutput, PSCGANCascade
from torch import nn

FRAMES, SIZE = 6, 32
#: a tiny SCLN encoder: the same structure as the paper's at a fraction of the compute
TINY = {"channels": (4, 8, 8, 16), "dilations": (1, 2), "n_stacks": 1}
#: a tiny generator (the decoder's last block keeps decoder_channels / 8 = 8 channels)
TINY_GENERATOR = {"n_frames": FRAMES, "image_size": SIZE, "bottleneck": 64, "decoder_channels": 64, **TINY}
TINY_DISCRIMINATOR = {"channels": (4, 8, 8, 8, 8), "reduction": 2}


def _cine(batch: int = 1, channels: int = 1, frames: int = FRAMES, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, frames, size, size, generator=generator) * 2 - 1


def _open_gammas(module: nn.Module, value: float = 0.7) -> None:
    """Set every attention ``gamma`` away from its initial 0, so the fused attention takes part in the output."""
    for name, parameter in module.named_parameters():
        if name.endswith("gamma"):
            with torch.no_grad():
                parameter.fill_(value)


def _assert_causal(outputs_of: Callable[[torch.Tensor], list[torch.Tensor]], x: torch.Tensor, t: int) -> None:
    """Changing frames > t leaves every output at times <= t unchanged; changing frame t changes some output at t."""
    with torch.no_grad():
        reference = outputs_of(x)
        future = x.clone()
        future[:, :, t + 1 :] = torch.randn_like(future[:, :, t + 1 :])
        for before, after in zip(reference, outputs_of(future)):
            assert after.shape == before.shape
            assert torch.allclose(after[:, :, : t + 1], before[:, :, : t + 1], rtol=1e-5, atol=1e-6)
            assert not torch.allclose(after[:, :, t + 1 :], before[:, :, t + 1 :])  # the future did change
        present = x.clone()
        present[:, :, t] = torch.randn_like(present[:, :, t])
        changed = [not torch.allclose(a[:, :, t], b[:, :, t]) for a, b in zip(reference, outputs_of(present))]
        assert any(changed)


@pytest.mark.parametrize("dilation, spatial_stride", [(1, 1), (3, 1), (2, 2)])
def test_causal_temporal_conv_sees_no_future_frame(dilation, spatial_stride):
    torch.manual_seed(0)
    conv = CausalTemporalConv(2, 3, dilation, spatial_stride=spatial_stride)
    x = _cine(channels=2, size=8)
    assert conv(x).shape == (1, 3, FRAMES, 8 // spatial_stride, 8 // spatial_stride)
    assert conv.conv.kernel_size == (2, spatial_stride, spatial_stride)
    for t in (0, 2, 4):
        _assert_causal(lambda inp: [conv(inp)], x, t)


def test_causal_temporal_conv_reaches_back_exactly_one_dilation():
    conv = CausalTemporalConv(1, 1, dilation=2)
    nn.init.ones_(conv.conv.weight)
    nn.init.zeros_(conv.conv.bias)
    x = torch.arange(FRAMES, dtype=torch.float32).view(1, 1, FRAMES, 1, 1)
    # y_t = x_t + x_{t-2}, with zeros before the first frame
    assert conv(x).flatten().tolist() == [0.0, 1.0, 2.0, 4.0, 6.0, 8.0]


def test_spatial_dilated_conv_is_the_conv3d_it_stores_frame_by_frame():
    torch.manual_seed(0)
    conv = SpatialDilatedConv(2, 3, dilation=2, spatial_stride=2)
    x = _cine(channels=2, size=8)
    torch.testing.assert_close(conv(x), conv.conv(x))
    frame = F.conv2d(x[:, :, 4], conv.conv.weight[:, :, 0], conv.conv.bias, stride=2, padding=2, dilation=2)
    torch.testing.assert_close(conv(x)[:, :, 4], frame)


@pytest.mark.parametrize("pathway", ["spatial", "temporal"])
def test_dilated_stack_shapes_and_shortcut(pathway):
    torch.manual_seed(0)
    block = DilatedStack(2, 4, pathway, dilations=(1, 2, 4), spatial_stride=2)
    assert block(_cine(channels=2, size=8)).shape == (1, 4, FRAMES, 4, 4)
    assert isinstance(block.shortcut, nn.Conv3d)
    assert sum(isinstance(m, (SpatialDilatedConv, CausalTemporalConv)) for m in block.modules()) == 3
    assert isinstance(DilatedStack(4, 4, pathway).shortcut, nn.Identity)


def _explicit_attention(attention: SelfAttention, x: torch.Tensor, causal: bool) -> torch.Tensor:
    """Eqs. 4-6 written out: s_ij = f_i^T g_j, alpha_ij = softmax_j, o_i = sum_j alpha_ij h_j, output v(o)."""
    f, g, h = attention.f(x), attention.g(x), attention.h(x)  # (B, C~, T, H, W)
    if attention.axis == "space":  # sequences over the H*W positions of each (b, t)
        f, g, h = (z.flatten(3).permute(0, 2, 3, 1) for z in (f, g, h))  # (B, T, N, C~)
    else:  # sequences over the T frames of each (b, y, x)
        f, g, h = (z.permute(0, 3, 4, 2, 1) for z in (f, g, h))  # (B, H, W, T, C~)
    s = torch.einsum("...ic,...jc->...ij", f, g)
    if causal:
        n = s.shape[-1]
        s = s.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    alpha = torch.softmax(s, dim=-1)
    o = torch.einsum("...ij,...jc->...ic", alpha, h)
    batch, _, frames, height, width = x.shape
    if attention.axis == "space":
        o = o.permute(0, 3, 1, 2).reshape(batch, -1, frames, height, width)
    else:
        o = o.permute(0, 4, 3, 1, 2)
    return attention.v(o)


@pytest.mark.parametrize("axis, causal", [("space", True), ("time", True), ("time", False)])
def test_self_attention_equals_the_explicit_softmax(axis, causal):
    torch.manual_seed(0)
    attention = SelfAttention(16, reduction=8, axis=axis, causal=causal)
    assert attention.f.out_channels == 2 and attention.v.out_channels == 16
    x = torch.randn(2, 16, 5, 3, 4) * 2  # large enough that the softmax is far from uniform
    with torch.no_grad():
        out = attention(x)
        torch.testing.assert_close(out, _explicit_attention(attention, x, causal=causal and axis == "time"))
    assert out.shape == x.shape


@pytest.mark.parametrize("axis", ["space", "time"])
def test_self_attention_gradients_equal_the_explicit_softmax(axis):
    """The fused kernel's backward too: the input's and every weight's gradient as eqs. 4-6 written out give."""
    torch.manual_seed(0)
    attention = SelfAttention(16, reduction=8, axis=axis)
    x = (torch.randn(2, 16, 5, 4, 4) * 2).requires_grad_()
    weight = torch.randn(2, 16, 5, 4, 4)  # a loss that is not a plain sum, so every gradient is non-trivial
    grads = []
    for forward in (attention, lambda z: _explicit_attention(attention, z, causal=axis == "time")):
        attention.zero_grad()
        x.grad = None
        (forward(x) * weight).sum().backward()
        grads.append([x.grad.clone(), *(p.grad.clone() for p in attention.parameters())])
    for fused, explicit in zip(*grads):
        torch.testing.assert_close(fused, explicit, rtol=1e-4, atol=1e-5)


def test_self_attention_runs_the_fused_cpu_kernel():
    """The (sequences, 1 head, N, C~) layout takes PyTorch's flash CPU kernel, not the unfused math path (whose full
    score matrix made the 32 x 32 space attention about 6x slower)."""
    from torch.profiler import ProfilerActivity, profile

    attention = SelfAttention(16, reduction=8, axis="space")
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        attention(torch.randn(1, 16, 3, 8, 8)).sum().backward()
    kernels = {event.key for event in profiler.key_averages()}
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in kernels
    assert "aten::_scaled_dot_product_attention_math" not in kernels


def test_multi_attention_weighing_starts_as_the_sum_of_the_two_attended_pathways():
    torch.manual_seed(0)
    unit = MultiAttentionWeighing(16, reduction=8)
    spatial, temporal = torch.randn(2, 1, 16, 4, 4, 4).unbind(0)
    assert unit.gamma.item() == 0.0
    with torch.no_grad():
        fused = unit.spatial_attention(spatial) + unit.temporal_attention(temporal)
        assert unit.spatial_attention.axis == "space" and unit.temporal_attention.axis == "time"
        torch.testing.assert_close(unit(spatial, temporal), fused)
        _open_gammas(unit, 0.5)
        torch.testing.assert_close(unit(spatial, temporal), 0.5 * unit.fused_attention(fused) + fused)


def test_multi_attention_weighing_ablations():
    spatial, temporal = torch.randn(2, 1, 8, 4, 4, 4).unbind(0)
    plain = MultiAttentionWeighing(8, attention=False)
    assert not list(plain.parameters())
    torch.testing.assert_close(plain(spatial, temporal), spatial + temporal)
    torch.testing.assert_close(
        MultiAttentionWeighing(8, attention=False, pathways="temporal")(None, temporal), temporal
    )
    one = MultiAttentionWeighing(8, pathways="spatial")
    assert one.temporal_attention is None
    _open_gammas(one, 0.5)
    with torch.no_grad():
        attended = one.spatial_attention(spatial)
        torch.testing.assert_close(one(spatial, None), 0.5 * one.fused_attention(attended) + attended)
    with pytest.raises(ValueError, match="pathways"):
        one(spatial, temporal)


def test_scln_is_causal_in_all_three_outputs():
    torch.manual_seed(0)
    scln = SCLN(1, 8, dilations=(1, 2), n_stacks=2, reduction=4)
    _open_gammas(scln)
    x = _cine(size=16)
    spatial, temporal, fused = scln(x, x)
    assert spatial.shape == temporal.shape == fused.shape == (1, 8, FRAMES, 8, 8)
    for t in (1, 3):
        _assert_causal(lambda inp: list(scln(inp, inp)), x, t)


@pytest.mark.parametrize("pathways", ["spatial", "temporal"])
def test_scln_with_one_pathway_returns_it_on_both_outputs(pathways):
    torch.manual_seed(0)
    scln = SCLN(1, 8, dilations=(1, 2), n_stacks=1, pathways=pathways)
    assert (scln.spatial is None) == (pathways == "temporal") and (scln.temporal is None) == (pathways == "spatial")
    x = _cine(size=16)
    spatial, temporal, fused = scln(x, x)
    assert spatial is temporal and fused.shape == spatial.shape == (1, 8, FRAMES, 8, 8)


@pytest.mark.parametrize("kind", ["scln", "scln_temporal", "conv3d", "convlstm", "conv3d_lstm"])
def test_encoder_is_causal(kind):
    torch.manual_seed(0)
    encoder = CineEncoder(kind=kind, **_encoder_kwargs(kind))
    _open_gammas(encoder)
    _assert_causal(encoder, _cine(), t=2)


def _encoder_kwargs(kind: str) -> dict:
    """TINY, less the arguments the kind does not use (they would warn)."""
    kwargs = dict(TINY)
    if kind == "convlstm":
        kwargs = {"channels": TINY["channels"]}
    elif kind in ("conv3d_lstm", "scln_no_attention"):
        kwargs.pop("n_stacks" if kind == "conv3d_lstm" else "reduction", None)
    return kwargs


def _generator_kwargs(kind: str) -> dict:
    """TINY_GENERATOR with the encoder arguments of :func:`_encoder_kwargs`."""
    return {**{k: v for k, v in TINY_GENERATOR.items() if k not in TINY}, **_encoder_kwargs(kind)}


@pytest.mark.parametrize("kind", CINE_ENCODER_KINDS)
def test_every_encoder_gives_four_levels(kind):
    torch.manual_seed(0)
    encoder = CineEncoder(kind=kind, **_encoder_kwargs(kind))
    features = encoder(_cine(batch=2))
    expected = [(2, c, FRAMES, SIZE // 2**i, SIZE // 2**i) for i, c in enumerate(TINY["channels"], start=1)]
    assert [tuple(f.shape) for f in features] == expected


def test_encoder_warns_about_an_argument_its_kind_ignores():
    with pytest.warns(UserWarning, match="reduction"):
        CineEncoder(kind="conv3d", channels=(4, 8, 8, 16), dilations=(1,), reduction=4)
    with pytest.warns(UserWarning, match="dilations"):
        CineEncoder(kind="convlstm", channels=(4, 8, 8, 16), dilations=(1, 2))


def test_convlstm_cell_run_matches_stepping_by_hand():
    torch.manual_seed(0)
    cell = ConvLSTMCell(2, 3)
    x = _cine(channels=2, size=4)
    state = None
    steps = []
    for t in range(FRAMES):
        state = cell(x[:, :, t], state)
        steps.append(state[0])
    torch.testing.assert_close(cell.run(x), torch.stack(steps, dim=2))


def test_time_reduction_starts_as_the_mean_over_frames():
    reduction = TimeReduction(FRAMES)
    x = _cine(channels=3, size=4)
    torch.testing.assert_close(reduction(x), x.mean(dim=2))
    with pytest.raises(ValueError, match="shape"):
        reduction(_cine(frames=FRAMES + 1))


@pytest.mark.parametrize("kind", CINE_ENCODER_KINDS)
@pytest.mark.parametrize("condition_channels, output, out_channels", [(0, "tanh", 1), (1, "softmax", 4)])
def test_generator_output(kind, condition_channels, output, out_channels):
    torch.manual_seed(0)
    generator = PSCGANGenerator(
        out_channels=out_channels,
        kind=kind,
        condition_channels=condition_channels,
        output=output,
        **_generator_kwargs(kind),
    )
    condition = torch.rand(2, condition_channels, SIZE, SIZE) if condition_channels else None
    out = generator(_cine(batch=2), condition)
    assert out.shape == (2, out_channels, SIZE, SIZE)
    if output == "softmax":
        assert (out >= 0).all()
        torch.testing.assert_close(out.sum(dim=1), torch.ones(2, SIZE, SIZE))
    else:
        assert (out.abs() <= 1).all()


def test_generator_output_none_is_the_raw_output_the_activations_apply_to():
    torch.manual_seed(0)
    raw = PSCGANGenerator(out_channels=3, output="none", **TINY_GENERATOR)
    probabilities = PSCGANGenerator(out_channels=3, output="softmax", **TINY_GENERATOR)
    image = PSCGANGenerator(out_channels=3, output="tanh", **TINY_GENERATOR)
    probabilities.load_state_dict(raw.state_dict())
    image.load_state_dict(raw.state_dict())
    cine = _cine()
    with torch.no_grad():
        logits = raw(cine)
        torch.testing.assert_close(probabilities(cine), torch.softmax(logits, dim=1))
        torch.testing.assert_close(image(cine), torch.tanh(logits))


def test_generator_flatten_time_feeds_the_whole_map_to_the_first_fc_layer():
    torch.manual_seed(0)
    generator = PSCGANGenerator(flatten_time=True, **TINY_GENERATOR)
    assert generator.bottleneck_reduction is None
    side = SIZE // 16
    assert generator.to_bottleneck[0].in_features == TINY["channels"][3] * FRAMES * side * side
    assert generator(_cine()).shape == (1, 1, SIZE, SIZE)
    default = PSCGANGenerator(**TINY_GENERATOR)
    assert default.to_bottleneck[0].in_features == TINY["channels"][3] * side * side


def test_generator_is_deterministic_given_the_seed():
    outputs = []
    for _ in range(2):
        torch.manual_seed(3)
        outputs.append(PSCGANGenerator(**TINY_GENERATOR)(_cine()))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


@pytest.mark.parametrize(
    "cine_shape, condition_shape, match",
    [
        ((1, 1, FRAMES + 1, SIZE, SIZE), (1, 1, SIZE, SIZE), r"\(B, 1, 6, 32, 32\)"),  # wrong frame count
        ((1, FRAMES, SIZE, SIZE), (1, 1, SIZE, SIZE), r"\(B, 1, 6, 32, 32\)"),  # a 4D batch
        ((1, SIZE, SIZE), (1, 1, SIZE, SIZE), r"\(B, 1, 6, 32, 32\)"),  # 3D where 5D is expected
        ((1, 1, FRAMES, 16, 16), (1, 1, SIZE, SIZE), r"\(B, 1, 6, 32, 32\)"),  # wrong size
        ((1, 1, FRAMES, SIZE, SIZE), None, r"\(1, 1, 32, 32\), got none"),  # missing condition
        ((1, 1, FRAMES, SIZE, SIZE), (1, 2, SIZE, SIZE), r"\(1, 1, 32, 32\)"),  # wrong condition
    ],
)
def test_generator_refuses_wrong_inputs(cine_shape, condition_shape, match):
    generator = PSCGANGenerator(condition_channels=1, **TINY_GENERATOR)
    condition = torch.rand(condition_shape) if condition_shape else None
    with pytest.raises(ValueError, match=match):
        generator(torch.rand(cine_shape), condition)


def test_generator_without_condition_refuses_one():
    with pytest.raises(ValueError, match="condition_channels=0"):
        PSCGANGenerator(**TINY_GENERATOR)(_cine(), torch.rand(1, 1, SIZE, SIZE))


def test_encoder_and_discriminator_refuse_wrong_ranks():
    with pytest.raises(ValueError, match=r"\(B, 1, T, H, W\)"):
        CineEncoder(**TINY)(torch.rand(1, SIZE, SIZE))
    with pytest.raises(ValueError, match=r"\(B, 1, T, H, W\)"):
        CineEncoder(**TINY)(_cine(size=24))  # not divisible by 16
    with pytest.raises(ValueError, match=r"\(B, 4, 64, 64\)"):
        PSCGANDiscriminator(4, **TINY_DISCRIMINATOR)(torch.rand(1, 4, 32, 32))


@pytest.mark.parametrize("aux_classes", [0, 4])
def test_discriminator_outputs(aux_classes):
    torch.manual_seed(0)
    discriminator = PSCGANDiscriminator(4, aux_classes=aux_classes, **TINY_DISCRIMINATOR)
    out = discriminator(torch.rand(2, 4, 64, 64))
    assert out["logits"].shape == (2, 1, 2, 2)  # the "1 x 4 probability values" of a 64 x 64 input
    channels = TINY_DISCRIMINATOR["channels"]
    expected = [(2, c, 64 // 2**i, 64 // 2**i) for i, c in enumerate(channels, start=1)]
    assert [tuple(f.shape) for f in out["features"]] == expected
    assert ("counts" in out) == (aux_classes > 0)
    if aux_classes:
        assert out["counts"].shape == (2, aux_classes)


def test_discriminator_attention_sits_between_conv_2_and_conv_3():
    torch.manual_seed(0)
    discriminator = PSCGANDiscriminator(1, **TINY_DISCRIMINATOR)
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        before = discriminator(x)
        _open_gammas(discriminator, 1.0)
        after = discriminator(x)
    # conv 1 and 2 do not see the attention; conv 3 onwards do
    for index in range(5):
        assert torch.equal(before["features"][index], after["features"][index]) == (index < 2)
    assert not any(isinstance(m, nn.GroupNorm) for m in discriminator.convs[0])


@pytest.mark.parametrize("kind", CINE_ENCODER_KINDS)
def test_generator_and_discriminator_backward_reach_every_parameter(kind):
    torch.manual_seed(0)
    generator = PSCGANGenerator(
        out_channels=4, output="softmax", condition_channels=1, kind=kind, **_generator_kwargs(kind)
    )
    discriminator = PSCGANDiscriminator(4, aux_classes=4, image_size=SIZE, **TINY_DISCRIMINATOR)
    _open_gammas(generator, 0.1)
    _open_gammas(discriminator, 0.1)
    out = discriminator(generator(_cine(), torch.rand(1, 1, SIZE, SIZE)))
    loss = out["logits"].mean() + out["counts"].abs().mean() + sum(f.mean() for f in out["features"])
    loss.backward()
    for net in (generator, discriminator):
        for name, parameter in net.named_parameters():
            assert parameter.grad is not None, f"{type(net).__name__}.{name} gets no gradient (unused module?)"
            assert torch.isfinite(parameter.grad).all(), f"{type(net).__name__}.{name} has a non-finite gradient"
            assert parameter.grad.abs().sum() > 0, f"{type(net).__name__}.{name} has a zero gradient"


def test_generator_overfits_one_mask():
    torch.manual_seed(0)
    generator = PSCGANGenerator(out_channels=4, output="softmax", **TINY_GENERATOR)
    cine = _cine()
    # a blob-shaped 4-class mask: background, a disc, a ring, a patch
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    radius = ((yy - 16) ** 2 + (xx - 16) ** 2).float().sqrt()
    labels = torch.zeros(SIZE, SIZE, dtype=torch.long)
    labels[radius < 10] = 2
    labels[radius < 6] = 1
    labels[(yy > 18) & (yy < 24) & (xx > 8) & (xx < 14)] = 3
    target = F.one_hot(labels, 4).permute(2, 0, 1).unsqueeze(0).float()
    optimizer = torch.optim.Adam(generator.parameters(), lr=5e-3)
    losses = []
    for _ in range(30):
        loss = F.binary_cross_entropy(generator(cine), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: CausalTemporalConv(1, 1, dilation=0), "dilation"),
        (lambda: SpatialDilatedConv(1, 1, dilation=1, spatial_stride=0), "spatial_stride"),
        (lambda: DilatedStack(1, 1, "both"), "pathway"),
        (lambda: DilatedStack(1, 1, "spatial", dilations=()), "dilations"),
        (lambda: SelfAttention(8, axis="channel"), "axis"),
        (lambda: MultiAttentionWeighing(8, pathways="none"), "pathways"),
        (lambda: SCLN(1, 8, n_stacks=0), "n_stacks"),
        (lambda: CineEncoder(kind="transformer"), "kind"),
        (lambda: CineEncoder(channels=(4, 8, 16)), "channels"),
        (lambda: ConvLSTMCell(1, 1, kernel_size=2), "kernel_size"),
        (lambda: TimeReduction(0), "n_frames"),
        (lambda: PSCGANGenerator(image_size=40), "image_size"),
        (lambda: PSCGANGenerator(decoder_channels=12), "decoder_channels"),
        (lambda: PSCGANGenerator(output="sigmoid"), "output"),
        (lambda: PSCGANGenerator(output="softmax", out_channels=1), "out_channels"),
        (lambda: PSCGANGenerator(condition_channels=-1), "condition_channels"),
        (lambda: PSCGANDiscriminator(1, channels=(8, 8, 8, 8)), "channels"),
        (lambda: PSCGANDiscriminator(1, aux_classes=-1), "aux_classes"),
        (lambda: PSCGANDiscriminator(1, image_size=48), "image_size"),
    ],
)
def test_bad_arguments_raise(build, name):
    with pytest.raises(ValueError, match=name):
        build()


def test_space_attention_key_pool_attends_to_pooled_keys_and_values():
    torch.manual_seed(0)
    attention = SelfAttention(8, reduction=4, axis="space", key_pool=2)
    x = torch.randn(1, 8, 2, 4, 4)
    q = attention.f(x).permute(0, 2, 3, 4, 1).reshape(2, 16, 2)
    pooled = [torch.nn.functional.max_pool3d(m(x), (1, 2, 2)) for m in (attention.g, attention.h)]
    k, v = (p.permute(0, 2, 3, 4, 1).reshape(2, 4, 2) for p in pooled)
    weighted = torch.softmax(q @ k.transpose(1, 2), -1) @ v
    expected = attention.v(weighted.reshape(1, 2, 4, 4, 2).permute(0, 4, 1, 2, 3))
    assert torch.allclose(attention(x), expected, atol=1e-5)
    exact = SelfAttention(8, reduction=4, axis="space")
    exact.load_state_dict(attention.state_dict())
    assert not torch.allclose(exact(x), attention(x))  # the default (1) is the paper's unpooled attention


#: the scripted-export checks' tiny cascade: the structure of the bundle's network_def at a fraction of the compute
TINY_SCRIPT = {"n_frames": 4, "image_size": 32, "channels": (4, 4, 8, 8), "bottleneck": 16, "decoder_channels": 8}
#: the encoder kinds whose space attentions take key_pool (the others would warn that it is ignored)
_KEY_POOL_KINDS = ("scln", "scln_spatial", "scln_temporal")


def _script_encoder_kwargs(kind: str, key_pool: int) -> dict:
    """dilations (1, 2), n_stacks 1, reduction 4 and key_pool, less the arguments the kind does not use."""
    kwargs: dict = {"dilations": (1, 2), "n_stacks": 1, "reduction": 4, "key_pool": key_pool}
    if kind not in _KEY_POOL_KINDS:
        kwargs = {k: v for k, v in kwargs.items() if k not in ("reduction", "key_pool")}
    if kind == "convlstm":
        kwargs = {}
    elif kind == "conv3d_lstm":
        kwargs.pop("n_stacks")
    return kwargs


@pytest.mark.parametrize(
    "kind, key_pool", [(kind, 1) for kind in CINE_ENCODER_KINDS] + [(kind, 2) for kind in _KEY_POOL_KINDS]
)
def test_scripted_cascade_matches_eager(kind, key_pool):
    """The bundle's network_def (Pri -> Sys -> Seg) compiles with torch.jit.script, as the model zoo's CI exports it."""
    torch.manual_seed(0)
    kwargs = {**TINY_SCRIPT, "kind": kind, **_script_encoder_kwargs(kind, key_pool)}
    cascade = PSCGANCascade(
        PSCGANGenerator(out_channels=4, output="softmax", condition_channels=0, **kwargs),
        PSCGANGenerator(out_channels=1, output="tanh", condition_channels=4, **kwargs),
        PSCGANGenerator(out_channels=4, output="softmax", condition_channels=1, **kwargs),
    ).eval()
    _open_gammas(cascade)  # the fused attentions take part in the output
    scripted = torch.jit.script(cascade)
    cine = _cine(batch=2, frames=4)
    with torch.no_grad():
        expected = cascade(cine)
        assert expected.shape == (2, 5, SIZE, SIZE)
        torch.testing.assert_close(scripted(cine), expected, rtol=1e-5, atol=1e-5)
    assert scripted.state_dict().keys() == cascade.state_dict().keys()


@pytest.mark.parametrize("stages", [1, 2])
def test_scripted_partial_cascade_matches_eager(stages):
    torch.manual_seed(0)
    kwargs = {**TINY_SCRIPT, **_script_encoder_kwargs("scln", 1)}
    pri = PSCGANGenerator(out_channels=4, output="softmax", **kwargs)
    synthesis = PSCGANGenerator(condition_channels=4, **kwargs) if stages == 2 else None
    cascade = PSCGANCascade(pri, synthesis).eval()
    cine = _cine(frames=4)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(cascade)(cine), cascade(cine), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("flatten_time", [False, True])
def test_scripted_joint_output_matches_eager(flatten_time):
    torch.manual_seed(0)
    generator = PSCGANGenerator(
        out_channels=5, output="none", flatten_time=flatten_time, **TINY_SCRIPT, **_script_encoder_kwargs("scln", 2)
    )
    joint = JointOutput(generator).eval()
    _open_gammas(joint)
    cine = _cine(batch=2, frames=4)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(joint)(cine), joint(cine), rtol=1e-5, atol=1e-5)


def test_scripted_generator_keeps_the_error_messages():
    torch.manual_seed(0)
    scripted = torch.jit.script(
        PSCGANGenerator(condition_channels=4, **TINY_SCRIPT, **_script_encoder_kwargs("scln", 1))
    )
    # TorchScript raises torch.jit.Error ("builtins.ValueError: ...") with the eager message
    with pytest.raises(Exception, match=r"ValueError: PSCGANGenerator expects a cine \(B, 1, 4, 32, 32\)"):
        scripted(_cine(frames=5), torch.rand(1, 4, SIZE, SIZE))
    with pytest.raises(Exception, match=r"condition of shape \(1, 4, 32, 32\), got shape \(1, 3, 32, 32\)"):
        scripted(_cine(frames=4), torch.rand(1, 3, SIZE, SIZE))
    with pytest.raises(Exception, match=r"got none"):
        scripted(_cine(frames=4))
