"""Tests of common/nets/transmrsr.py: truncation, CWSS, scaled encoder attention, prior loading, ablations, shapes."""

from __future__ import annotations

import math

import pytest
import torch
from common.nets import ChannelSplitScaleShift, StyleSwinGenerator, TransMRSR, nearest_centroid_truncation

TINY = {"img_size": 16, "shallow_channels": 8, "style_dim": 16, "n_mlp": 1, "max_channels": 16}
GENERATOR = {"size": 16, "style_dim": 16, "n_mlp": 1, "max_channels": 16}


def _net(**kwargs) -> TransMRSR:
    """A tiny TransMRSR whose output conv is random (it starts at zero, so every path would be invisible)."""
    torch.manual_seed(0)
    net = TransMRSR(**{**TINY, "use_truncation": False, **kwargs})
    torch.nn.init.normal_(net.output_conv.weight, std=0.1)
    return net


def _centroids_file(tmp_path, centroids: object, name: str = "centroids.pt") -> str:
    path = str(tmp_path / name)
    torch.save(centroids, path)
    return path


def test_truncation_moves_each_latent_toward_its_nearest_centroid():
    centroids = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    latents = torch.tensor([[[1.0, 1.0], [9.0, 2.0]]])  # nearer centroid 0, then centroid 1
    out = nearest_centroid_truncation(latents, centroids, 0.5)
    torch.testing.assert_close(out, torch.tensor([[[0.5, 0.5], [9.5, 1.0]]]))  # c_near + psi (w - c_near)
    farthest = torch.tensor([[[5.5, 0.5], [4.5, 1.0]]])  # the public code's argmax
    assert not torch.allclose(out, farthest)
    torch.testing.assert_close(nearest_centroid_truncation(latents, centroids, 1.0), latents)
    torch.testing.assert_close(
        nearest_centroid_truncation(latents, centroids, 0.0), torch.tensor([[[0.0, 0], [10, 0]]])
    )


@pytest.mark.parametrize("psi", [-0.1, 1.5, True])
def test_truncation_refuses_psi_outside_0_1(psi):
    with pytest.raises(ValueError, match="psi"):
        nearest_centroid_truncation(torch.zeros(1, 1, 2), torch.zeros(1, 2), psi)
    with pytest.raises(ValueError, match="psi"):
        _net(psi=psi)


def test_cwss_is_the_identity_at_initialisation():
    """The last convs start at zero: scale = shift = 0, so the prior's features pass unchanged (first convs random)."""
    torch.manual_seed(0)
    cwss = ChannelSplitScaleShift(encoder_channels=6, decoder_channels=8)
    assert cwss.scale[0].weight.abs().sum() > 0 and cwss.shift[0].weight.abs().sum() > 0
    features, condition = torch.randn(2, 8, 4, 4), torch.randn(2, 6, 4, 4)
    torch.testing.assert_close(cwss(features, condition), features)


def test_cwss_formula_on_known_scale_and_shift():
    """With constant scale a and shift b: first half x (1 + a) + b, second half untouched."""
    torch.manual_seed(0)
    cwss = ChannelSplitScaleShift(encoder_channels=3, decoder_channels=5)  # split 2 | 3
    a, b = 0.5, -2.0
    with torch.no_grad():
        cwss.scale[-1].bias.fill_(a)
        cwss.shift[-1].bias.fill_(b)
    features, condition = torch.randn(1, 5, 4, 4), torch.randn(1, 3, 4, 4)
    with torch.no_grad():
        out = cwss(features, condition)
    torch.testing.assert_close(out[:, :2], features[:, :2] * (1 + a) + b)
    torch.testing.assert_close(out[:, 2:], features[:, 2:])
    # a condition-dependent scale: the formula with the branches' own outputs, and the output changes
    with torch.no_grad():
        cwss.scale[-1].weight.normal_()
        scale, shift = cwss.scale(condition), cwss.shift(condition)
        out = cwss(features, condition)
    assert scale.std() > 0
    torch.testing.assert_close(out[:, :2], features[:, :2] * (1 + scale) + shift)
    torch.testing.assert_close(out[:, 2:], features[:, 2:])
    with pytest.raises(ValueError, match=r"\(1, 3, 8, 8\)"):
        cwss(features, torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="decoder_channels"):
        ChannelSplitScaleShift(4, 1)


def test_encoder_attention_is_scaled():
    """One window covering the 16x16 map: the block's attention branch equals proj(softmax(q k^T / sqrt(d)) v)."""
    net = _net(window_size=16, num_heads=2)
    block = net.encoder_stages[0].blocks[0]  # resolution 16, regular window
    attention = block.attention
    assert attention.window == 16 and attention.shift == 0 and attention.scale == pytest.approx(1 / math.sqrt(8))
    tokens = torch.randn(1, 256, 16)
    with torch.no_grad():
        attention.relative_position_bias.zero_()
        q, k, v = block.qkv(block.norm1(tokens)).reshape(1, 256, 3, 2, 8).permute(2, 0, 3, 1, 4)  # (B, heads, N, d)
        scaled = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1) @ v
        unscaled = torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v
        expected = block.proj(scaled.transpose(1, 2).reshape(1, 256, 16))
        actual = block.attend(tokens)
    torch.testing.assert_close(actual, expected)
    assert (actual - block.proj(unscaled.transpose(1, 2).reshape(1, 256, 16))).abs().max() > 1e-4


def test_encoder_layout_follows_the_decoder_widths():
    net = _net(img_size=32, encoder_depth=2)
    assert [stage.resolution for stage in net.encoder_stages] == [32, 16, 8]
    assert [(b.attention.window, b.attention.shift) for b in net.encoder_stages[0].blocks] == [(8, 0), (8, 4)]
    assert net.condition_resolutions == [4, 8, 16] and len(net.cwss) == 3
    assert net.latent_head.out_features == net.decoder.num_latents * 16 == 8 * 16
    assert isinstance(net.encoder_input, torch.nn.Conv2d)  # shallow 8 -> decoder width 16
    _, latents, conditions = net.encode(torch.rand(2, 1, 32, 32))
    assert tuple(latents.shape) == (2, 8, 16)
    assert [tuple(c.shape) for c in conditions] == [(2, 16, 4, 4), (2, 16, 8, 8), (2, 16, 16, 16)]


def test_prior_survives_construction(tmp_path):
    """Every decoder tensor equals the saved prior (no re-initialisation after loading); g_ema preferred over g."""
    torch.manual_seed(1)
    prior, other = StyleSwinGenerator(**GENERATOR), StyleSwinGenerator(**GENERATOR)
    saved = {k: v.clone() for k, v in prior.state_dict().items()}
    path = str(tmp_path / "prior.pt")
    torch.save({"g": other.state_dict(), "g_ema": prior.state_dict(), "d": {}}, path)
    net = _net(prior_path=path)
    state = net.decoder.state_dict()
    assert set(state) == set(saved)
    assert all(torch.equal(state[k], saved[k]) for k in saved)
    # a plain state dict and a checkpoint with "g" only are accepted too
    torch.save(other.state_dict(), path)
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in _net(prior_path=path).decoder.state_dict().items())
    torch.save({"g": prior.state_dict()}, path)
    assert all(torch.equal(v, saved[k]) for k, v in _net(prior_path=path).decoder.state_dict().items())


def test_prior_that_does_not_match_raises_naming_the_path(tmp_path):
    path = str(tmp_path / "wrong_prior.pt")
    torch.save({"g_ema": StyleSwinGenerator(**{**GENERATOR, "style_dim": 8}).state_dict()}, path)
    with pytest.raises(ValueError, match="wrong_prior.pt.*shape mismatches"):
        _net(prior_path=path)
    state = StyleSwinGenerator(**GENERATOR).state_dict()
    state.pop("input")
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"wrong_prior.pt.*missing keys \['input'\].*unexpected keys \['extra"):
        _net(prior_path=path)
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        _net(prior_path=str(tmp_path / "absent.pt"))


def test_freeze_decoder_excludes_and_keeps_the_decoder():
    net = _net(freeze_decoder=True)
    decoder_ids = {id(p) for p in net.decoder.parameters()}
    trainable = list(net.trainable_parameters())
    assert trainable and not any(id(p) in decoder_ids for p in trainable)
    before = {k: v.clone() for k, v in net.decoder.state_dict().items()}
    head_before = net.latent_head.weight.detach().clone()
    optimizer = torch.optim.Adam(trainable, lr=1e-2)
    x, target = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    (net(x) - target).abs().mean().backward()
    optimizer.step()
    assert all(torch.equal(v, before[k]) for k, v in net.decoder.state_dict().items())
    assert not torch.equal(net.latent_head.weight, head_before)  # the encoder trains through the frozen decoder
    # not frozen: the decoder's blocks train, its mapping network and toRGB (unused by SR) do not
    net = _net()
    unfrozen = {id(p) for p in net.trainable_parameters()}
    assert all(id(p) in unfrozen for p in net.decoder.layers.parameters())
    assert not any(id(p) in unfrozen for p in [*net.decoder.style.parameters(), *net.decoder.to_images.parameters()])


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"use_encoder_features": False, "use_skip": False},
        {"img_size": 32, "shallow_channels": 16, "in_channels": 2, "out_channels": 2},
        {"img_size": 8},
    ],
)
def test_forward_keeps_the_input_shape(kwargs):
    net = _net(**kwargs)
    size, channels = net.img_size, net.in_channels
    with torch.no_grad():
        out = net(torch.rand(2, channels, size, size))
    assert tuple(out.shape) == (2, channels, size, size) and torch.isfinite(out).all()
    assert hasattr(net, "cwss") == kwargs.get("use_encoder_features", True)


def test_output_is_input_plus_residual():
    x = torch.rand(2, 1, 16, 16)
    fresh = TransMRSR(**{**TINY, "use_truncation": False})
    with torch.no_grad():  # a fresh network returns the interpolated input: its residual head starts at zero
        torch.testing.assert_close(fresh(x), x, rtol=0, atol=0)
    net = _net()
    with torch.no_grad():
        assert (net(x) - x).abs().max() > 1e-6
        net.output_conv.weight.zero_()
        net.output_conv.bias.zero_()
        torch.testing.assert_close(net(x), x, rtol=0, atol=0)


@pytest.mark.parametrize("use_skip", [True, False])
def test_long_skip_adds_the_shallow_features(use_skip):
    """With the decoder's features replaced by zeros, the head sees projected zeros plus (skip) the shallow features."""
    net = _net(use_skip=use_skip)
    x = torch.rand(2, 1, 16, 16)
    zeros = torch.zeros(2, 16, 16, 16)
    net.decoder.synthesis = lambda latents, modulators=None, return_features=False: (None, zeros)
    with torch.no_grad():
        head_input = net.deep_projection(zeros) + (net.shallow(x) if use_skip else 0.0)  # 1x1 conv 16 -> 8
        expected = net.output_conv(net.reconstruction(head_input)) + x
        torch.testing.assert_close(net(x), expected)
        assert (net(x) - x).abs().max() > 1e-6


def test_truncation_is_applied_to_the_latents(tmp_path):
    """psi = 0 with one centroid: every latent becomes the centroid, so the latent head no longer matters."""
    path = _centroids_file(tmp_path, {"centroids": torch.randn(1, 16)})
    net = _net(use_truncation=True, centroids_path=path, num_centroids=1, psi=0.0)
    torch.testing.assert_close(net.centroids, torch.load(path)["centroids"])
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        base = net(x)
        net.latent_head.weight.normal_()
        torch.testing.assert_close(net(x), base)
        net.use_truncation = False
        assert (net(x) - base).abs().max() > 1e-5


def test_centroid_files_are_checked(tmp_path):
    # without a file (inference) the buffer waits at zeros for the SR checkpoint, which carries the centroids
    empty = _net(use_truncation=True)
    assert torch.count_nonzero(empty.centroids) == 0
    path = _centroids_file(tmp_path, torch.randn(4, 16), "four.pt")
    with pytest.raises(ValueError, match=r"four.pt.*\(4, 16\).*\(8, 16\)"):
        _net(use_truncation=True, centroids_path=path)
    path = _centroids_file(tmp_path, {"means": torch.randn(8, 16)}, "keyless.pt")
    with pytest.raises(ValueError, match="keyless.pt.*'centroids'"):
        _net(use_truncation=True, centroids_path=path)
    centroids = torch.randn(8, 16)
    net = _net(use_truncation=True, centroids_path=_centroids_file(tmp_path, centroids, "tensor.pt"))
    torch.testing.assert_close(net.centroids, centroids)
    assert "centroids" in net.state_dict()  # travels with the SR checkpoint
    empty.load_state_dict(net.state_dict())
    torch.testing.assert_close(empty.centroids, centroids)


def test_centroids_of_another_prior_are_refused_naming_both_files(tmp_path, caplog):
    """Centroids record their prior's content: after the prior is retrained they are refused, not used silently."""
    from common.nets.latent_centroids import PRIOR_FINGERPRINT_KEY
    from common.run_settings import file_fingerprint

    torch.manual_seed(1)
    prior = str(tmp_path / "prior.pt")
    torch.save({"g_ema": StyleSwinGenerator(**GENERATOR).state_dict()}, prior)
    centroids = torch.randn(8, 16)
    recorded = {"centroids": centroids, PRIOR_FINGERPRINT_KEY: file_fingerprint(prior)}
    path = _centroids_file(tmp_path, recorded)
    net = _net(use_truncation=True, centroids_path=path, prior_path=prior)  # the prior they came from
    torch.testing.assert_close(net.centroids, centroids)
    torch.save({"g_ema": StyleSwinGenerator(**GENERATOR).state_dict()}, prior)  # retrained: other weights
    with pytest.raises(ValueError, match=r"centroids\.pt were computed from another prior than .*prior\.pt"):
        _net(use_truncation=True, centroids_path=path, prior_path=prior)
    # a file from before the record is used, with a warning that it is unchecked
    old = _centroids_file(tmp_path, {"centroids": centroids}, "old.pt")
    with caplog.at_level("WARNING"):
        torch.testing.assert_close(_net(use_truncation=True, centroids_path=old, prior_path=prior).centroids, centroids)
    assert "old.pt does not record which prior" in caplog.text


def test_wrong_input_size_raises_with_both_shapes():
    net = _net()
    with pytest.raises(ValueError, match=r"\(B, 1, 16, 16\).*\(1, 1, 32, 32\)"):
        net(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(1, 2, 16, 16\)"):
        net(torch.rand(1, 2, 16, 16))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"out_channels": 2}, "out_channels"),
        ({"num_heads": 3}, "num_heads"),
        ({"img_size": 12}, "12"),
        ({"shallow_channels": 0}, "shallow_channels"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _net(**kwargs)


def test_trace_matches_eager(tmp_path):
    net = _net(use_truncation=True, centroids_path=_centroids_file(tmp_path, torch.randn(8, 16))).eval()
    with torch.no_grad():
        for cwss in net.cwss:  # make the CWSS path non-trivial
            cwss.scale[-1].weight.normal_(std=0.1)
        x = torch.rand(2, 1, 16, 16)
        traced = torch.jit.trace(net, x)
        torch.testing.assert_close(traced(x), net(x))
        x_other = torch.rand(2, 1, 16, 16)
        torch.testing.assert_close(traced(x_other), net(x_other))


def test_weights_trained_with_other_switches_are_refused_by_name():
    trained = _net(use_skip=False)
    with pytest.raises(ValueError, match="trained with use_skip=False.*--use_skip false"):
        _net(use_skip=True).load_state_dict(trained.state_dict())
    _net(use_skip=False).load_state_dict(trained.state_dict())  # same switches: loads


def test_weights_trained_with_another_psi_are_refused_naming_it():
    trained = _net(use_truncation=True, psi=0.5)
    with pytest.raises(ValueError, match="truncation psi 0.5.*--psi 0.5"):
        _net(use_truncation=True, psi=0.9).load_state_dict(trained.state_dict())
    _net(use_truncation=True, psi=0.5).load_state_dict(trained.state_dict())  # same psi: loads
    _net(use_truncation=False, psi=0.9).load_state_dict(_net(use_truncation=False, psi=0.5).state_dict())  # unused
    older = {k: v for k, v in trained.state_dict().items() if k != "truncation_psi"}  # saved before psi was stored
    _net(use_truncation=True, psi=0.9).load_state_dict(older)
