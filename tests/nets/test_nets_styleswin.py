"""Tests of common/nets/styleswin.py: shapes, latents, modulators, shifted-window mask, discriminator, TorchScript."""

from __future__ import annotations

import math

import pytest
import torch
from common.nets import StyleSwinDiscriminator, StyleSwinGenerator
from common.nets.styleswin import WindowAttention, _shifted_window_mask, styleswin_channels

TINY = {"style_dim": 16, "n_mlp": 2, "max_channels": 16}


def _generator(size: int = 16, **kwargs) -> StyleSwinGenerator:
    torch.manual_seed(0)
    return StyleSwinGenerator(size=size, **{**TINY, **kwargs}).eval()


@pytest.mark.parametrize("size, batch", [(16, 2), (32, 1)])
def test_generator_shapes_latents_and_layer_shapes(size, batch):
    gen = _generator(size, out_channels=2)
    n_layers = int(math.log2(size)) - 1
    assert gen.n_layers == n_layers and gen.num_latents == 2 * n_layers
    assert gen.layer_shapes == [(2**i, 16) for i in range(2, int(math.log2(size)) + 1)]
    assert tuple(gen.input.shape) == (1, 16, 4, 4)
    with torch.no_grad():
        image = gen(torch.randn(batch, 16))
        latents = gen.mapping(torch.randn(batch, 16))[:, None].expand(-1, gen.num_latents, -1)
        image_again, features = gen.synthesis(latents, return_features=True)
    assert tuple(image.shape) == (batch, 2, size, size) and torch.isfinite(image).all()
    assert tuple(image_again.shape) == (batch, 2, size, size)
    assert tuple(features.shape) == (batch, 16, size, size)
    assert StyleSwinGenerator(size=16, depth=3, **TINY).num_latents == 9


def test_channel_table_and_cap():
    """StyleGAN2's widths (x channel_multiplier from 64 on), capped by max_channels."""
    assert styleswin_channels(256) == {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64}
    assert styleswin_channels(128, channel_multiplier=2) == {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256}
    assert styleswin_channels(256, max_channels=128) == {4: 128, 8: 128, 16: 128, 32: 128, 64: 128, 128: 128, 256: 64}
    assert StyleSwinGenerator(size=64, max_channels=32, style_dim=8, n_mlp=1).layer_shapes[-1] == (64, 32)


def test_mapping_shape_and_pixel_norm():
    gen = _generator()
    z = torch.randn(3, 16)
    with torch.no_grad():
        w = gen.mapping(z)
        torch.testing.assert_close(gen.mapping(5.0 * z), w)  # PixelNorm removes the scale of z
    assert tuple(w.shape) == (3, 16)
    assert len(gen.style) == 1 + 2  # PixelNorm + n_mlp equalised layers


def test_different_latents_give_different_images_and_seeded_determinism():
    gen = _generator()
    z = torch.randn(2, 16)
    with torch.no_grad():
        images = gen(z)
        again = _generator()(z)
    assert (images[0] - images[1]).abs().mean() > 1e-4
    torch.testing.assert_close(images, again)


def test_output_is_linear_no_tanh():
    """The image is the sum of the toRGB outputs: adding 5 to the last toRGB bias adds exactly 5 everywhere."""
    gen = _generator()
    z = torch.randn(1, 16)
    with torch.no_grad():
        base = gen(z)
        gen.to_images[-1].bias.add_(5.0)
        shifted = gen(z)
    torch.testing.assert_close(shifted - base, torch.full_like(base, 5.0))  # a Tanh would saturate below 1


def test_position_encoding_enters_through_a_learned_gain_that_starts_at_zero():
    """StyleSwin's ``alpha``: at construction the encoding does not reach the image (a generator whose encodings are
    zeroed draws the same image); the gain receives a gradient, and once it is not 0 the encoding changes the image."""
    gen, plain = _generator(), _generator()
    for layer in plain.layers:
        layer.position_encoding.zero_()
    assert [float(layer.position_gain) for layer in gen.layers] == [0.0] * gen.n_layers
    z = torch.randn(2, 16)
    torch.testing.assert_close(gen(z), plain(z))
    gen(z).square().mean().backward()
    assert all(float(layer.position_gain.grad.abs()) > 0 for layer in gen.layers)
    with torch.no_grad():
        gen.layers[-1].position_gain.fill_(1.0)
        assert (gen(z) - plain(z)).abs().max() > 1e-3


def test_truncation_toward_the_mean_latent():
    gen = _generator()
    z = torch.randn(2, 16)
    with torch.no_grad():
        w_avg = gen.mapping(torch.randn(64, 16)).mean(0)
        fully_truncated = gen(z, truncation=0.0, truncation_latent=w_avg)
        expected = gen.synthesis(w_avg.expand(2, gen.num_latents, -1))
        torch.testing.assert_close(fully_truncated, expected)
        torch.testing.assert_close(gen(z, truncation=1.0, truncation_latent=w_avg), gen(z))
    with pytest.raises(ValueError, match="truncation_latent"):
        gen(z, truncation=0.5)


def test_modulators_called_once_per_layer_with_feature_maps():
    gen = _generator(32)
    latents = torch.randn(2, gen.num_latents, 16)
    seen: list[tuple[int, ...]] = []

    def identity(x: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(x.shape))
        return x

    with torch.no_grad():
        plain = gen.synthesis(latents)
        with_identity = gen.synthesis(latents, modulators=[identity] * gen.n_layers)
        assert seen == [(2, c, r, r) for r, c in gen.layer_shapes]
        torch.testing.assert_close(with_identity, plain)
        # None entries are skipped; zeroing layer 1's input changes the image
        zeroed = gen.synthesis(latents, modulators=[None, torch.zeros_like, None, None])
    assert (zeroed - plain).abs().max() > 1e-4
    with pytest.raises(ValueError, match="one entry per layer"):
        gen.synthesis(latents, modulators=[identity])


def test_modulator_sees_the_layer_input_in_map_layout():
    """The (B, C, H, W) map handed to a modulator is the token sequence in row-major order: a modulator that zeroes
    the top-left pixel of layer 0 equals zeroing token 0 of the constant input."""
    gen = _generator()
    latents = torch.randn(1, gen.num_latents, 16)

    def zero_top_left(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x[:, :, 0, 0] = 0
        return x

    with torch.no_grad():
        modulated = gen.synthesis(latents, modulators=[zero_top_left, None, None])
        gen.input[:, :, 0, 0] = 0
        torch.testing.assert_close(gen.synthesis(latents), modulated)


def test_shifted_window_mask_hand_values():
    """4x4 map, window 2, shift 1: after the roll, row 3 and column 3 hold the image's row 0 and column 0."""
    mask = _shifted_window_mask(resolution=4, window=2, shift=1)
    assert tuple(mask.shape) == (4, 4, 4)
    inf = float("-inf")
    assert torch.equal(mask[0], torch.zeros(4, 4))  # rows 0-1, cols 0-1: nothing wrapped
    # window 1 (rows 0-1, cols 2-3): tokens (0,2) (0,3) (1,2) (1,3); column 3 wrapped
    col = torch.tensor([[0, inf, 0, inf], [inf, 0, inf, 0], [0, inf, 0, inf], [inf, 0, inf, 0]])
    assert torch.equal(mask[1], col)
    # window 2 (rows 2-3, cols 0-1): row 3 wrapped
    row = torch.tensor([[0, 0, inf, inf], [0, 0, inf, inf], [inf, inf, 0, 0], [inf, inf, 0, 0]])
    assert torch.equal(mask[2], row)
    # window 3: four regions, each token alone
    assert torch.equal(mask[3], torch.full((4, 4), inf).fill_diagonal_(0))


def _reference_window_attention(attention: WindowAttention, q, k, v) -> torch.Tensor:
    """Loop over windows: roll, softmax(q k^T / sqrt(d) + B + M) v per window and head, roll back."""
    s, w, heads = attention.shift, attention.window, attention.num_heads
    q, k, v = (torch.roll(t, (-s, -s), (1, 2)) for t in (q, k, v))
    out = torch.zeros_like(q)
    n = w * w
    bias = attention.relative_position_bias[attention.relative_position_index].reshape(n, n, heads).permute(2, 0, 1)
    masks = attention.shift_mask if s > 0 else None
    window_index = 0
    for top in range(0, attention.resolution, w):
        for left in range(0, attention.resolution, w):
            qw, kw, vw = (t[:, top : top + w, left : left + w].reshape(t.shape[0], n, heads, -1) for t in (q, k, v))
            logits = torch.einsum("bihd,bjhd->bhij", qw, kw) / math.sqrt(attention.head_dim) + bias
            if masks is not None:
                logits = logits + masks[window_index]
            result = torch.einsum("bhij,bjhd->bihd", logits.softmax(-1), vw)
            out[:, top : top + w, left : left + w] = result.reshape(q.shape[0], w, w, -1)
            window_index += 1
    return torch.roll(out, (s, s), (1, 2))


@pytest.mark.parametrize("shifted", [False, True])
def test_window_attention_matches_a_loop_reference(shifted):
    torch.manual_seed(0)
    attention = WindowAttention(channels=8, num_heads=2, resolution=8, window_size=4, shifted=shifted)
    assert attention.shift == (2 if shifted else 0) and attention.scale == pytest.approx(0.5)
    with torch.no_grad():
        attention.relative_position_bias.normal_()
        q, k, v = torch.randn(3, 2, 8, 8, 8).unbind(0)
        torch.testing.assert_close(attention(q, k, v), _reference_window_attention(attention, q, k, v))


def test_shifted_windows_block_attention_across_the_wrap_around():
    """Image rows 0 and 3 share a shifted window (rolled rows 3 and 2) but must not see each other."""
    attention = WindowAttention(channels=2, num_heads=1, resolution=4, window_size=2, shifted=True)
    q, k, v = torch.randn(3, 1, 4, 4, 2).unbind(0)
    with torch.no_grad():
        base = attention(q, k, v)
        v_changed = v.clone()
        v_changed[0, 0, 1] += 10.0  # image token (0, 1): rolled (3, 0), window of rolled rows 2-3, cols 0-1
        changed = attention(q, k, v_changed)
    torch.testing.assert_close(changed[0, 3, 1], base[0, 3, 1])  # image (3, 1) = rolled (2, 0): same window, wrapped
    torch.testing.assert_close(changed[0, 3, 2], base[0, 3, 2])
    assert (changed[0, 0, 2] - base[0, 0, 2]).abs().max() > 1e-3  # image (0, 2) = rolled (3, 1): same region
    # a map that fits in one window is not shifted (as Swin / StyleSwin)
    assert WindowAttention(4, 2, resolution=4, window_size=8, shifted=True).shift == 0


def test_generator_blocks_split_heads_between_regular_and_shifted_windows():
    gen = StyleSwinGenerator(size=32, window_size=4, **TINY)
    block = gen.layers[2].blocks[0]  # resolution 16, window 4
    regular, shifted = block.attention
    assert (regular.shift, shifted.shift) == (0, 2) and regular.window == shifted.window == 4
    assert regular.channels == shifted.channels == 8 and regular.num_heads == shifted.num_heads == 2
    assert gen.layers[0].blocks[0].attention[1].window == 4  # min(window_size, resolution)


@pytest.mark.parametrize("batch", [1, 3, 4, 6])
def test_discriminator_logits_for_any_batch(batch):
    torch.manual_seed(0)
    dis = StyleSwinDiscriminator(size=16, max_channels=16)
    assert len(dis.blocks) == 1  # the sub-bands are 8x8, one block to 4x4
    with torch.no_grad():
        out = dis(torch.randn(batch, 1, 16, 16))
    assert tuple(out.shape) == (batch, 1) and torch.isfinite(out).all()


def test_discriminator_sees_the_image_at_every_scale_through_its_haar_sub_bands():
    """StyleSwin's wavelet discriminator at 64 px: sub-bands enter at 32, 16, 8 and 4 px, each through its own 1x1
    conv (4 sub-bands of the 1 channel in), whose weights all get gradients; widths as StyleSwin's table."""
    from common.nets.styleswin import styleswin_channels

    torch.manual_seed(0)
    dis = StyleSwinDiscriminator(size=64, max_channels=32)
    widths = styleswin_channels(64, max_channels=32)
    entries = [*dis.from_images, dis.from_image_4]
    assert [m.downsample for m in entries] == [False, True, True, True]
    assert [m.conv.in_channels for m in entries] == [4] * 4
    assert [m.conv.out_channels for m in entries] == [widths[64], widths[16], widths[8], widths[4]]
    assert [b.conv2.out_channels for b in dis.blocks] == [widths[16], widths[8], widths[4]]
    dis(torch.randn(2, 1, 64, 64)).sum().backward()
    for index, module in enumerate(entries):
        # the high bands (LH, HL, HH: in-channels 1-3) reach the logit, not only the low band
        assert module.conv.weight.grad[:, 1:].abs().sum() > 0, f"the high bands of scale {index} do not reach it"


def test_discriminator_tells_blocking_artefacts_apart_through_the_high_bands():
    """The high Haar bands carry what windowed attention gets wrong: a 2x2-block image (each block constant: its
    high bands are exactly zero) and the same image with a +-1 checkerboard added differ only there."""
    from common.nets.wavelets import haar_dwt

    smooth = torch.rand(1, 1, 8, 8).repeat_interleave(2, -1).repeat_interleave(2, -2)
    checker = (torch.arange(16)[:, None] + torch.arange(16)[None]) % 2 * 2.0 - 1.0
    smooth_bands, checked_bands = haar_dwt(smooth), haar_dwt(smooth + checker)
    assert torch.equal(smooth_bands[:, 1:], torch.zeros_like(smooth_bands[:, 1:]))
    torch.testing.assert_close(checked_bands[:, 0], smooth_bands[:, 0])  # the low band is blind to it
    torch.testing.assert_close(checked_bands[:, 3], torch.full((1, 8, 8), -2.0))  # all in the diagonal band
    torch.manual_seed(0)
    dis = StyleSwinDiscriminator(size=16, max_channels=16).eval()
    with torch.no_grad():  # so the discriminator's logit sees the checkerboard
        assert (dis(smooth + checker) - dis(smooth)).abs().item() > 1e-4


def test_minibatch_stddev_hand_values():
    """B = 6 -> groups of 3 formed by samples (0, 2, 4) and (1, 3, 5), as StyleGAN2's view(G, -1, ...)."""
    x = torch.tensor([0.0, 10.0, 0.0, 10.0, 3.0, 10.0]).reshape(6, 1, 1, 1)
    out = StyleSwinDiscriminator.minibatch_stddev(x)
    assert tuple(out.shape) == (6, 2, 1, 1)
    std = out[:, 1, 0, 0]
    torch.testing.assert_close(std[0::2], torch.full((3,), math.sqrt(2.0)))  # values 0, 0, 3: variance 2
    torch.testing.assert_close(std[1::2], torch.full((3,), 1e-4))  # constant group: sqrt(1e-8)
    torch.testing.assert_close(
        StyleSwinDiscriminator.minibatch_stddev(torch.ones(1, 2, 2, 2))[:, 2], torch.full((1, 2, 2), 1e-4)
    )


def test_generator_trace_matches_eager():
    gen = _generator()
    z = torch.randn(2, 16)
    with torch.no_grad():
        traced = torch.jit.trace(gen, z)
        torch.testing.assert_close(traced(z), gen(z))
        z_other = torch.randn(2, 16)
        torch.testing.assert_close(traced(z_other), gen(z_other))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": 24}, "24"),
        ({"size": 4}, "size"),
        ({"size": 2048}, "2048"),
        ({"size": 16, "style_dim": 0}, "style_dim"),
        ({"size": 16, "n_mlp": 0}, "n_mlp"),
        ({"size": 16, "depth": 0}, "depth"),
        ({"size": 16, "max_channels": 18}, "max_channels"),
        ({"size": 16, "mlp_ratio": 0.0}, "mlp_ratio"),
    ],
)
def test_generator_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StyleSwinGenerator(**{"style_dim": 8, "n_mlp": 1, "max_channels": 16, **kwargs})


def test_bad_inputs_raise_naming_the_shape():
    gen, dis = _generator(), StyleSwinDiscriminator(size=16, max_channels=16)
    with pytest.raises(ValueError, match=r"\(2, 8\)"):
        gen(torch.randn(2, 8))
    with pytest.raises(ValueError, match=r"\(2, 5, 16\)"):
        gen.synthesis(torch.randn(2, 5, 16))
    with pytest.raises(ValueError, match=r"\(2, 1, 32, 32\)"):
        dis(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="size"):
        StyleSwinDiscriminator(size=12)
    with pytest.raises(ValueError, match="at least 16"):
        StyleSwinDiscriminator(size=8)
