"""Tests of common/nets/munit.py: MUNIT's encoders, AdaIN decoder, generator, multi-scale discriminator, LSGAN."""

from __future__ import annotations

import copy

import pytest
import torch
from common.nets.munit import (
    AdaptiveInstanceNorm2d,
    MultiScaleDiscriminator,
    MUNITContentEncoder,
    MUNITDecoder,
    MUNITGenerator,
    MUNITStyleEncoder,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    translate,
)

pytestmark = pytest.mark.usefixtures("one_thread")


SHAPE_CASES = [
    # (class, kwargs, input_shape, expected_shape)
    (MUNITContentEncoder, {"dim": 8, "n_res": 1}, (2, 1, 32, 32), (2, 32, 8, 8)),
    (MUNITContentEncoder, {"dim": 4, "n_downsample": 3, "n_res": 1}, (1, 1, 32, 48), (1, 32, 4, 6)),
    (MUNITContentEncoder, {"dim": 4, "input_dim": 3, "n_res": 0}, (1, 3, 16, 16), (1, 16, 4, 4)),
    (MUNITStyleEncoder, {"dim": 8}, (2, 1, 32, 32), (2, 8, 1, 1)),
    (MUNITStyleEncoder, {"dim": 4, "style_dim": 3, "n_downsample": 2}, (1, 1, 20, 24), (1, 3, 1, 1)),
    (MUNITGenerator, {"dim": 8, "n_res": 1, "mlp_dim": 16}, (2, 1, 32, 32), (2, 1, 32, 32)),
    (MUNITGenerator, {"dim": 4, "n_res": 1, "mlp_dim": 16}, (1, 1, 16, 48), (1, 1, 16, 48)),
]


@pytest.mark.parametrize("cls, kwargs, input_shape, expected_shape", SHAPE_CASES)
def test_shapes(cls, kwargs, input_shape, expected_shape):
    torch.manual_seed(0)
    with torch.no_grad():
        assert tuple(cls(**kwargs)(torch.randn(input_shape)).shape) == expected_shape


def test_decoder_shape_and_tanh_range():
    torch.manual_seed(0)
    decoder = MUNITDecoder(dim=8, n_res=2, mlp_dim=16)
    content, style = torch.randn(2, 32, 8, 8) * 5, torch.randn(2, 8, 1, 1) * 5
    with torch.no_grad():
        image = decoder(content, style)
        flat_style = decoder(content, style.flatten(1))
    assert image.shape == (2, 1, 32, 32)
    assert image.min() >= -1 and image.max() <= 1 and image.std() > 0
    torch.testing.assert_close(image, flat_style)  # (B, style_dim) and (B, style_dim, 1, 1) are the same code


def test_generator_encode_decode_shapes_and_modes():
    torch.manual_seed(0)
    gen = MUNITGenerator(dim=8, n_res=1, mlp_dim=16)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        content, style = gen.encode(x)
        assert content.shape == (2, 32, 8, 8) and style.shape == (2, 8, 1, 1)
        image = gen.decode(content, style)
        assert image.shape == x.shape
        # forward modes reach the same computations (what a DDP-wrapped generator is called with)
        torch.testing.assert_close(gen(x), image)
        torch.testing.assert_close(gen(x, mode="encode")[0], content)
        torch.testing.assert_close(gen(content, style, mode="decode"), image)


def test_default_parameter_counts_match_the_reference():
    """NVlabs/MUNIT edges2handbags gen/dis with one channel: AdaINGen 15,007,369, MsImageDis 8,265,027 parameters."""
    gen, dis = MUNITGenerator(), MultiScaleDiscriminator()
    assert sum(p.numel() for p in gen.parameters()) == 15_007_369
    assert sum(p.numel() for p in dis.parameters()) == 8_265_027
    assert gen.style_encoder.output_dim == 256 and gen.content_encoder.output_dim == 256  # channels capped at 4 * dim
    assert gen.decoder.num_adain_params == 4 * 2 * 2 * 256  # 4 res blocks x 2 AdaIN layers x (beta, gamma) x C


def test_style_encoder_has_no_normalisation_and_content_encoder_instance_norm():
    gen = MUNITGenerator(dim=4, n_res=1, mlp_dim=8)
    norms = (torch.nn.InstanceNorm2d, torch.nn.GroupNorm, torch.nn.BatchNorm2d, AdaptiveInstanceNorm2d)
    assert not any(isinstance(m, norms) for m in gen.style_encoder.modules())
    instance_norms = [m for m in gen.content_encoder.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert len(instance_norms) == 1 + 2 + 2  # first conv, 2 downsamplings, 1 residual block of 2 convs
    assert not any(m.affine or m.track_running_stats for m in instance_norms)


def test_adain_equals_the_hand_formula():
    """AdaIN(x, gamma, beta) = gamma * (x - mu(x)) / sigma(x) + beta, per sample and channel."""
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [2.0, 2.0]]]])  # (1, 2, 2, 2)
    x = torch.cat([x, 3 * x + 1])  # a second sample with other statistics, (2, 2, 2, 2)
    gamma = torch.tensor([[2.0, 0.5], [1.0, -1.0]])
    beta = torch.tensor([[1.0, 0.0], [-3.0, 10.0]])
    norm = AdaptiveInstanceNorm2d(2, eps=0.0)
    norm.weight, norm.bias = gamma, beta
    # channel 0 of sample 0: mean 2.5, biased variance 1.25; channel 1: mean 1, variance 1
    expected_00 = 2.0 * (torch.tensor([[1.0, 2.0], [3.0, 4.0]]) - 2.5) / 1.25**0.5 + 1.0
    expected_01 = 0.5 * torch.tensor([[-1.0, -1.0], [1.0, 1.0]])
    out = norm(x)
    torch.testing.assert_close(out[0, 0], expected_00)
    torch.testing.assert_close(out[0, 1], expected_01)
    # sample 1 is an affine copy of sample 0, so its normalised planes are sample 0's
    torch.testing.assert_close(out[1, 0], (expected_00 - 1.0) / 2.0 - 3.0)
    torch.testing.assert_close(out[1, 1], -1.0 * expected_01 / 0.5 + 10.0)
    mean, var = x.mean((2, 3), keepdim=True), x.var((2, 3), unbiased=False, keepdim=True)
    general = gamma[..., None, None] * (x - mean) / var.sqrt() + beta[..., None, None]
    torch.testing.assert_close(out, general)


def test_adain_needs_assigned_parameters_of_the_right_shape():
    norm = AdaptiveInstanceNorm2d(3)
    with pytest.raises(RuntimeError, match="assign"):
        norm(torch.randn(1, 3, 4, 4))
    norm.weight, norm.bias = torch.ones(2, 3), torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"\(1, 3\)"):
        norm(torch.randn(1, 3, 4, 4))
    with pytest.raises(ValueError, match="num_features"):
        AdaptiveInstanceNorm2d(0)


def test_mlp_assigns_every_adain_parameter_in_reference_order():
    """The MLP output has 2 * C values per AdaIN layer: the layer's beta (bias) first, then its gamma (weight)."""
    decoder = MUNITDecoder(dim=4, n_upsample=2, n_res=3, mlp_dim=8)
    channels = 4 * 2**2
    assert len(decoder.adain_layers) == 2 * 3
    assert decoder.num_adain_params == 2 * 3 * 2 * channels
    assert decoder.mlp[-1].out_features == decoder.num_adain_params
    assert sum(isinstance(m, torch.nn.Linear) for m in decoder.mlp) == 3  # n_mlp = 3 layers
    params = torch.arange(2 * decoder.num_adain_params, dtype=torch.float32).reshape(2, -1)
    decoder.assign_adain_params(params)
    for i, layer in enumerate(decoder.adain_layers):
        start = 2 * channels * i
        torch.testing.assert_close(layer.bias, params[:, start : start + channels])
        torch.testing.assert_close(layer.weight, params[:, start + channels : start + 2 * channels])
    with pytest.raises(ValueError, match="adain_params"):
        decoder.assign_adain_params(params[:, :-1])


def test_decoder_releases_the_adain_parameters_after_a_call():
    """No style tensor (and its graph) stays on the layers, so the decoder can be deep-copied after training."""
    torch.manual_seed(0)
    decoder = MUNITDecoder(dim=4, n_res=1, mlp_dim=8)
    decoder(torch.randn(1, 16, 4, 4), torch.randn(1, 8, 1, 1)).sum().backward()
    assert all(layer.weight is None and layer.bias is None for layer in decoder.adain_layers)
    copy.deepcopy(decoder)


def test_different_styles_give_different_images_from_one_content_code():
    torch.manual_seed(0)
    gen = MUNITGenerator(dim=8, n_res=1, mlp_dim=16)
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        content, _ = gen.encode(x)
        content_again, _ = gen.encode(x)
        styles = torch.randn(2, 8, 1, 1)
        first = gen.decode(content, styles[:1])
        second = gen.decode(content, styles[1:])
        first_again = gen.decode(content, styles[:1])
    torch.testing.assert_close(content, content_again)  # the content code does not depend on any style
    assert (first - second).abs().mean() > 1e-3
    torch.testing.assert_close(first, first_again)


def test_translate_decodes_one_content_code_with_n_styles():
    torch.manual_seed(0)
    gen_a, gen_b = MUNITGenerator(dim=4, n_res=1, mlp_dim=8), MUNITGenerator(dim=4, n_res=1, mlp_dim=8)
    x = torch.rand(1, 32, 32) * 2 - 1
    out = translate(gen_a, gen_b, x, 5, torch.Generator().manual_seed(3))
    assert out.shape == (5, 1, 32, 32) and not out.requires_grad
    assert (out[0] - out[1]).abs().mean() > 1e-4  # five different styles
    torch.testing.assert_close(out, translate(gen_a, gen_b, x[None], 5, torch.Generator().manual_seed(3)))
    styles = torch.randn(3, 8)
    with torch.no_grad():
        expected = gen_b.decode(gen_a.encode(x[None])[0].expand(3, -1, -1, -1), styles[..., None, None])
    torch.testing.assert_close(translate(gen_a, gen_b, x, styles), expected)


@pytest.mark.parametrize(
    "x, styles, match",
    [
        (torch.zeros(2, 1, 32, 32), 2, r"\(2, 1, 32, 32\)"),
        (torch.zeros(1, 1, 32, 32), 0, "styles"),
        (torch.zeros(1, 1, 32, 32), torch.zeros(2, 7), r"\(2, 7\)"),
    ],
)
def test_translate_bad_arguments_raise(x, styles, match):
    gen = MUNITGenerator(dim=4, n_res=1, mlp_dim=8)
    with pytest.raises(ValueError, match=match):
        translate(gen, gen, x, styles)


def test_discriminator_returns_one_logit_map_per_scale():
    torch.manual_seed(0)
    dis = MultiScaleDiscriminator(dim=8)
    assert dis.min_size == 61
    with torch.no_grad():
        outputs = dis(torch.randn(2, 1, 64, 64))
    assert [tuple(o.shape) for o in outputs] == [(2, 1, 4, 4), (2, 1, 2, 2), (2, 1, 1, 1)]
    with torch.no_grad():
        outputs = MultiScaleDiscriminator(dim=4, n_layer=2, num_scales=2)(torch.randn(1, 1, 32, 40))
    assert [tuple(o.shape) for o in outputs] == [(1, 1, 8, 10), (1, 1, 4, 5)]


def test_discriminator_scales_see_an_average_pooled_input():
    """Scale k sees the input pooled k times (3x3, stride 2, padding excluded from the mean)."""
    torch.manual_seed(0)
    dis = MultiScaleDiscriminator(dim=4, n_layer=2, num_scales=2)
    x = torch.randn(1, 1, 32, 32)
    pooled = torch.nn.functional.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
    with torch.no_grad():
        torch.testing.assert_close(dis(x)[1], dis.cnns[1](pooled))
        torch.testing.assert_close(dis(x)[0], dis.cnns[0](x))
    assert not any(isinstance(m, (torch.nn.InstanceNorm2d, torch.nn.BatchNorm2d)) for m in dis.modules())
    leaky = [m for m in dis.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert len(leaky) == 2 * 2 and all(m.negative_slope == 0.2 for m in leaky)


def test_lsgan_losses_on_constant_outputs():
    """D(fake) = 0.5 and D(real) = 0.5 at 3 scales: D loss 3 * (0.25 + 0.25), G loss 3 * 0.25."""
    fake = [torch.full((2, 1, s, s), 0.5) for s in (4, 2, 1)]
    real = [torch.full((2, 1, s, s), 0.5) for s in (4, 2, 1)]
    assert lsgan_discriminator_loss(fake, real).item() == pytest.approx(1.5)
    assert lsgan_generator_loss(fake).item() == pytest.approx(0.75)
    # perfect discriminator: fake 0, real 1 -> 0; the generator then pays 1 per scale
    zeros, ones = [torch.zeros(1, 1, 2, 2)] * 3, [torch.ones(1, 1, 2, 2)] * 3
    assert lsgan_discriminator_loss(zeros, ones).item() == 0.0
    assert lsgan_generator_loss(zeros).item() == pytest.approx(3.0)
    # mean over each map, summed over scales: fake maps 2 and 0 -> 4 + 0; real maps -1 and 1 -> 4 + 0
    assert lsgan_discriminator_loss(
        [torch.full((1, 1, 4, 4), 2.0), torch.zeros(1, 1, 1, 1)], [torch.full((1, 1, 2, 2), -1.0), torch.ones(1, 1)]
    ).item() == pytest.approx(8.0)
    with pytest.raises(ValueError, match="outputs_fake"):
        lsgan_discriminator_loss(fake, real[:2])
    with pytest.raises(ValueError, match="outputs_fake"):
        lsgan_generator_loss([])


def test_discriminator_loss_methods_on_a_constant_discriminator():
    """With a zero last conv and bias c every logit is c: D loss 3 * (c^2 + (c - 1)^2), G loss 3 * (c - 1)^2."""
    dis = MultiScaleDiscriminator(dim=4, n_layer=2)
    c = 0.3
    with torch.no_grad():
        for net in dis.cnns:
            net[-1].weight.zero_()
            net[-1].bias.fill_(c)
    fake, real = torch.randn(2, 1, 32, 32), torch.randn(2, 1, 32, 32)
    assert dis.calc_dis_loss(fake, real).item() == pytest.approx(3 * (c**2 + (c - 1) ** 2))
    assert dis.calc_gen_loss(fake).item() == pytest.approx(3 * (c - 1) ** 2)


def test_layer_norm_matches_the_reference_formula():
    """The decoder's layer norm: per sample over (C, H, W), per-channel affine; the reference divides by the
    unbiased std + eps, GroupNorm(1) by sqrt(biased variance + eps): equal up to N / (N - 1)."""
    torch.manual_seed(0)
    decoder = MUNITDecoder(dim=8, n_upsample=1, n_res=1, mlp_dim=8)
    norm = next(m for m in decoder.modules() if isinstance(m, torch.nn.GroupNorm))
    assert norm.num_groups == 1 and 0 <= norm.weight.min() and norm.weight.max() <= 1  # gamma ~ U(0, 1)
    assert torch.count_nonzero(norm.bias) == 0
    x = torch.randn(2, 8, 16, 16) * 3 + 1
    flat = x.flatten(1)
    reference = (x - flat.mean(1).view(-1, 1, 1, 1)) / (flat.std(1).view(-1, 1, 1, 1) + 1e-5)
    reference = reference * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(norm(x), reference, atol=1e-3, rtol=1e-3)


def test_initialisation_as_the_reference():
    """Generators: He-normal (fan in) weights, zero biases; discriminators: N(0, 0.02) weights, zero biases."""
    torch.manual_seed(0)
    gen, dis = MUNITGenerator(dim=16, n_res=1, mlp_dim=64), MultiScaleDiscriminator(dim=16, n_layer=2)
    conv = gen.content_encoder.model[1][1]  # 4x4 conv 16 -> 32, fan in 16 * 16
    assert abs(conv.weight.std().item() - (2 / (16 * 16)) ** 0.5) < 0.01
    assert torch.count_nonzero(conv.bias) == 0 and torch.count_nonzero(gen.decoder.mlp[0].bias) == 0
    conv = dis.cnns[0][1][1]  # 4x4 conv 16 -> 32
    assert abs(conv.weight.std().item() - 0.02) < 0.003 and torch.count_nonzero(conv.bias) == 0


@pytest.mark.parametrize(
    "cls, kwargs, match",
    [
        (MUNITGenerator, {"dim": 0}, "dim"),
        (MUNITGenerator, {"input_dim": 1.5}, "input_dim"),
        (MUNITGenerator, {"n_downsample": -1}, "n_downsample"),
        (MUNITGenerator, {"n_res": 0}, "n_res"),
        (MUNITGenerator, {"style_dim": 0}, "style_dim"),
        (MUNITGenerator, {"mlp_dim": 0}, "mlp_dim"),
        (MUNITGenerator, {"n_mlp": 1}, "n_mlp"),
        (MUNITGenerator, {"style_n_downsample": -1}, "n_downsample"),
        (MUNITContentEncoder, {"n_res": -1}, "n_res"),
        (MUNITStyleEncoder, {"style_dim": True}, "style_dim"),
        (MultiScaleDiscriminator, {"n_layer": 0}, "n_layer"),
        (MultiScaleDiscriminator, {"num_scales": 0}, "num_scales"),
        (MultiScaleDiscriminator, {"dim": 2.0}, "dim"),
    ],
)
def test_bad_arguments_raise(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda g, d: g(torch.zeros(1, 1, 30, 32)), r"\[30, 32\].*divisible by 4"),
        (lambda g, d: g(torch.zeros(1, 1, 12, 12)), r"\[12, 12\].*at least 16"),
        (lambda g, d: g(torch.zeros(1, 2, 32, 32)), r"\(1, 2, 32, 32\)"),
        (lambda g, d: g.content_encoder(torch.zeros(1, 1, 34, 32)), r"\[34, 32\]"),
        (lambda g, d: g.decode(torch.zeros(1, 32, 8, 8), torch.zeros(2, 8, 1, 1)), r"\(2, 8, 1, 1\)"),
        (lambda g, d: g.decode(torch.zeros(1, 16, 8, 8), torch.zeros(1, 8, 1, 1)), r"\(1, 16, 8, 8\)"),
        (lambda g, d: g(torch.zeros(1, 1, 32, 32), mode="translate"), "mode"),
        (lambda g, d: g(torch.zeros(1, 32, 8, 8), mode="decode"), "style"),
        (lambda g, d: g(torch.zeros(1, 1, 32, 32), torch.zeros(1, 8, 1, 1)), "style"),
        (lambda g, d: d(torch.zeros(1, 1, 60, 64)), r"\[60, 64\].*at least 61"),
    ],
)
def test_bad_inputs_raise_naming_the_shape(call, match):
    gen, dis = MUNITGenerator(dim=8, n_res=1, mlp_dim=8), MultiScaleDiscriminator(dim=4)
    with pytest.raises(ValueError, match=match):
        call(gen, dis)


def test_seeded_determinism():
    x = torch.randn(1, 1, 32, 32)
    outs = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        gen = MUNITGenerator(dim=4, n_res=1, mlp_dim=8)
        with torch.no_grad():
            outs.append(gen.decode(gen.encode(x)[0], torch.randn(1, 8, 1, 1)))
    torch.testing.assert_close(outs[0], outs[1])
    assert not torch.allclose(outs[0], outs[2])  # weights and style code follow the seed
