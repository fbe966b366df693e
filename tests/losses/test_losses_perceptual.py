"""Tests of common/losses/perceptual.py (TransMRSR section 3.5: L1 + 0.5 (VGG19 content + Gram style))."""

from __future__ import annotations

import logging

import pytest
import torch
from common.losses import ContentStyleLoss, SuperResolutionLoss, VGG19Features, gram_matrix

#: torchvision's vgg19().features: conv indices and their output channels
VGG19_CONVS = {0: 64, 2: 64, 5: 128, 7: 128, 10: 256, 12: 256, 14: 256, 16: 256}
VGG19_CONVS.update({i: 512 for i in (19, 21, 23, 25, 28, 30, 32, 34)})


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """Random VGG19 weights saved as torchvision's full state dict (``features.N.*`` plus a classifier key)."""
    torch.manual_seed(0)
    state = {f"features.{k}": v for k, v in VGG19Features().state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def content_style(vgg_file):
    return ContentStyleLoss(str(vgg_file))


def test_gram_matrix_on_a_hand_tensor():
    """F = [[1, 2], [3, 4]] (C = 2 channels of H W = 2 pixels): F F^T = [[5, 11], [11, 25]], over C H W = 4."""
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4
    torch.testing.assert_close(gram_matrix(features), expected)
    batch = torch.cat([features, 2 * features])
    torch.testing.assert_close(gram_matrix(batch), torch.cat([expected, 4 * expected]))


def test_vgg19_has_torchvisions_layers():
    vgg = VGG19Features()
    assert len(vgg) == 37
    convs = {i: m.out_channels for i, m in enumerate(vgg) if isinstance(m, torch.nn.Conv2d)}
    assert convs == VGG19_CONVS
    assert [i for i, m in enumerate(vgg) if isinstance(m, torch.nn.MaxPool2d)] == [4, 9, 18, 27, 36]
    assert not any(p.requires_grad for p in vgg.parameters()) and not vgg.training
    assert sum(p.numel() for p in vgg.parameters()) == 20_024_384  # torchvision's vgg19().features


def test_forward_returns_the_requested_layers_and_stops_there():
    vgg = VGG19Features()
    x = torch.rand(1, 3, 16, 16)
    out = vgg(x, layers=(7, 2, 4))
    assert sorted(out) == [2, 4, 7]
    assert out[2].shape == (1, 64, 16, 16) and out[4].shape == (1, 64, 8, 8) and out[7].shape == (1, 128, 8, 8)
    torch.testing.assert_close(out[2], vgg[2](vgg[1](vgg[0](x))))  # the conv's output, before its ReLU
    assert out[2].min() < 0  # the ReLU after index 2 is not in-place
    calls = []
    vgg[8].register_forward_hook(lambda *args: calls.append(1))
    vgg(x, layers=(7,))
    assert not calls  # nothing past index 7 ran


def test_torchvision_state_dict_loads(vgg_file):
    vgg = VGG19Features().load(vgg_file)
    saved = torch.load(vgg_file)
    torch.testing.assert_close(vgg[34].weight, saved["features.34.weight"])
    assert not torch.equal(VGG19Features()[0].weight, vgg[0].weight)


def test_features_only_state_dict_loads(tmp_path):
    source = VGG19Features()
    path = tmp_path / "features.pth"
    torch.save(source.state_dict(), path)
    torch.testing.assert_close(VGG19Features().load(path)[10].bias, source[10].bias)


def test_missing_file_and_missing_key_are_named(tmp_path, vgg_file):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        VGG19Features().load(tmp_path / "nowhere.pth")
    state = torch.load(vgg_file)
    del state["features.7.bias"]
    path = tmp_path / "incomplete.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"incomplete\.pth.*\['7\.bias'\]"):
        VGG19Features().load(path)


def test_content_and_style_are_zero_for_identical_images(content_style):
    image = torch.rand(2, 1, 32, 32)
    terms = content_style.terms(image, image.clone())
    assert terms["loss_content"].item() == 0.0 and terms["loss_style"].item() == 0.0


def test_content_and_style_are_positive_for_different_images_and_train_sr_only(content_style):
    torch.manual_seed(1)
    hr = torch.rand(2, 1, 32, 32)
    sr = (hr + 0.2 * torch.randn_like(hr)).requires_grad_(True)
    terms = content_style.terms(sr, hr)
    assert terms["loss_content"].item() > 0 and terms["loss_style"].item() > 0
    (terms["loss_content"] + terms["loss_style"]).backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert all(p.grad is None for p in content_style.parameters())


def test_grey_images_are_repeated_to_rgb(content_style):
    grey, other = torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    one = content_style.terms(grey, other)
    three = content_style.terms(grey.repeat(1, 3, 1, 1), other.repeat(1, 3, 1, 1))
    torch.testing.assert_close(one["loss_content"], three["loss_content"])
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\) or \(B, 3, H, W\)"):
        content_style.terms(torch.rand(1, 2, 16, 16), torch.rand(1, 2, 16, 16))


def test_total_is_l1_plus_half_the_perceptual_terms(vgg_file):
    torch.manual_seed(2)
    hr, sr = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    loss = SuperResolutionLoss(vgg_weights=str(vgg_file))
    terms = loss.terms(sr, hr)
    assert loss.uses_perceptual
    assert terms["loss_l1"].item() == pytest.approx((sr - hr).abs().mean().item())
    assert terms["loss_content"].item() > 0 and terms["loss_style"].item() > 0
    expected = terms["loss_l1"] + 0.5 * (terms["loss_content"] + terms["loss_style"])
    assert torch.equal(terms["loss"], expected)
    assert torch.equal(loss(sr, hr), terms["loss"])


def test_without_weights_the_loss_is_l1_and_a_warning_says_so(caplog):
    hr, sr = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)
    with caplog.at_level(logging.WARNING, logger="common.losses.perceptual"):
        loss = SuperResolutionLoss()
    warnings = [r for r in caplog.records if r.name == "common.losses.perceptual"]
    assert len(warnings) == 1 and "no VGG19 weights" in warnings[0].getMessage()
    assert "vgg_weights" in warnings[0].getMessage()
    terms = loss.terms(sr, hr)
    assert not loss.uses_perceptual
    assert terms["loss_content"].item() == 0.0 and terms["loss_style"].item() == 0.0
    assert terms["loss"].item() == pytest.approx((sr - hr).abs().mean().item())
    caplog.clear()
    loss.terms(sr, hr)
    assert not caplog.records  # once, not every iteration


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lambda_perceptual": -0.5}, "lambda_perceptual"),
        ({"lambda_perceptual": float("nan")}, "lambda_perceptual"),
        ({"vgg_weights": "missing_vgg19.pth"}, "missing_vgg19.pth"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        SuperResolutionLoss(**kwargs)


def test_bad_layer_indices_are_named(vgg_file):
    with pytest.raises(ValueError, match="style_layers"):
        ContentStyleLoss(str(vgg_file), style_layers=(1, 37))
    with pytest.raises(ValueError, match="both empty"):
        ContentStyleLoss(str(vgg_file), content_layers=(), style_layers=())


def test_normalise_uses_the_imagenet_mean_and_std(content_style):
    grey = torch.full((1, 1, 2, 2), 0.5)
    expected = torch.tensor([(0.5 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (0.5 - 0.406) / 0.225])
    torch.testing.assert_close(content_style.normalise(grey)[0, :, 0, 0], expected)


def test_content_and_style_equal_a_layer_by_layer_computation(content_style):
    """Eqs. 13-14 by hand: run the VGG19 layers one by one on the normalised images, MSE of the features at the
    content layers (conv1_2, pool1, conv2_2) and of their Gram matrices F F^T / (C H W) at the style layers."""
    torch.manual_seed(3)
    hr, sr = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def features(image):
        x, out = (image.repeat(1, 3, 1, 1) - mean) / std, {}
        for index, layer in enumerate(list(content_style.vgg)[:14]):  # up to relu3_2, the last layer used
            x = layer(x.clone())
            out[index] = x
        return out

    def gram(f):
        flat = f.flatten(2)
        return flat @ flat.transpose(1, 2) / flat.shape[1:].numel()

    fs, fh = features(sr), features(hr)
    content = sum(((fs[j] - fh[j]) ** 2).mean() for j in (2, 4, 7))
    style = sum(((gram(fs[j]) - gram(fh[j])) ** 2).mean() for j in (1, 3, 5, 9, 13))
    terms = content_style.terms(sr, hr)
    torch.testing.assert_close(terms["loss_content"], content)
    torch.testing.assert_close(terms["loss_style"], style)
