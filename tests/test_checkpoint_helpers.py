from __future__ import annotations

import logging
import os
import time

import pytest
import torch
from common.checkpoint import (
    TRAINING_RECORD_KEY,
    WeightsMismatchError,
    extract_state_dict,
    latest_checkpoint,
    load_encoder,
    load_weights,
    require_trained_weights,
    require_weights,
    require_weights_fit,
    training_record,
)
from torch import nn


def _touch(folder, name, mtime=None):
    path = folder / name
    torch.save({"x": torch.zeros(1)}, path)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return str(path)


def test_latest_is_numeric_not_lexicographic(tmp_path):
    for epoch in (1, 2, 9, 10):
        _touch(tmp_path, f"checkpoint_epoch={epoch}.pt")
    assert latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint_epoch=10.pt")


def test_latest_iteration_and_final_names(tmp_path):
    _touch(tmp_path, "checkpoint_iteration=400.pt")
    _touch(tmp_path, "checkpoint_iteration=800.pt")
    _touch(tmp_path, "checkpoint_final_iteration=1000.pt")
    _touch(tmp_path, "checkpoint_key_metric=0.9387.pt")
    _touch(tmp_path, "model.pt")
    assert latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint_final_iteration=1000.pt")


def test_latest_single_object_prefix_names(tmp_path):
    # CheckpointSaver names the file after the only object when save_dict has one entry
    _touch(tmp_path, "network_epoch=3.pt")
    _touch(tmp_path, "network_epoch=12.pt")
    assert latest_checkpoint(tmp_path).endswith("network_epoch=12.pt")


def test_latest_mixed_kinds_uses_modification_time(tmp_path, caplog):
    now = time.time()
    _touch(tmp_path, "checkpoint_epoch=5.pt", mtime=now - 100)
    _touch(tmp_path, "checkpoint_final_iteration=50.pt", mtime=now)
    with caplog.at_level(logging.WARNING):
        assert latest_checkpoint(tmp_path).endswith("checkpoint_final_iteration=50.pt")
    assert "mixes" in caplog.text


def test_latest_none_when_empty_missing_or_unnumbered(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    assert latest_checkpoint(tmp_path / "does_not_exist") is None
    _touch(tmp_path, "checkpoint_key_metric=0.5.pt")
    (tmp_path / "tmpabc123").write_bytes(b"partial")  # ignite's temporary file of an interrupted atomic save
    assert latest_checkpoint(tmp_path) is None


def test_latest_pattern(tmp_path):
    _touch(tmp_path, "checkpoint_epoch=4.pt")
    _touch(tmp_path, "gan_epoch=7.pt")
    assert latest_checkpoint(tmp_path, pattern="checkpoint_*.pt").endswith("checkpoint_epoch=4.pt")


class _SSLNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3))
        self.rotation_head = nn.Linear(4, 4)


class _SegNet(nn.Module):
    def __init__(self, encoder_channels=4) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, encoder_channels, 3), nn.Conv2d(encoder_channels, 4, 3))
        self.head = nn.Conv2d(4, 2, 1)


@pytest.mark.parametrize("wrap", ["bare", "saver"])
def test_load_encoder_counts_and_copies(tmp_path, wrap):
    torch.manual_seed(0)
    ssl, seg = _SSLNet(), _SegNet()
    head_before = seg.head.weight.clone()
    state = ssl.state_dict() if wrap == "bare" else {"ssl_network": ssl.state_dict(), "optimizer": {"state": {}}}
    path = tmp_path / "ssl.pt"
    torch.save(state, path)
    assert load_encoder(seg, path) == 4  # two convs, weight + bias
    for a, b in zip(ssl.encoder.parameters(), seg.encoder.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(seg.head.weight, head_before)


def test_load_encoder_with_different_destination_prefix(tmp_path):
    class _Other(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3))

    ssl, other = _SSLNet(), _Other()
    torch.save({"network": ssl.state_dict()}, tmp_path / "ssl.pt")
    assert load_encoder(other, tmp_path / "ssl.pt", dst_prefix="backbone.", min_keys=4) == 4
    assert torch.equal(other.backbone[1].weight, ssl.encoder[1].weight)


def test_load_encoder_raises_naming_path_when_nothing_matches(tmp_path):
    path = tmp_path / "ssl.pt"
    torch.save(_SSLNet().state_dict(), path)
    with pytest.raises(ValueError, match="ssl.pt"):
        load_encoder(_SegNet(), path, prefix="swin.")


def test_load_encoder_shape_mismatch_does_not_count(tmp_path):
    path = tmp_path / "ssl.pt"
    torch.save(_SSLNet().state_dict(), path)
    # conv 0 differs in out_channels (weight, bias), conv 1 in in_channels (weight): only conv 1's bias fits
    with pytest.raises(ValueError, match="min_keys=3"):
        load_encoder(_SegNet(encoder_channels=8), path, min_keys=3)
    assert load_encoder(_SegNet(encoder_channels=8), path) == 1


def test_load_encoder_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_encoder(_SegNet(), tmp_path / "nope.pt")


def test_load_weights_strict_and_keyed(tmp_path):
    torch.manual_seed(0)
    source, target = _SegNet(), _SegNet()
    torch.save({"network": source.state_dict(), "trainer": {"epoch": 3}}, tmp_path / "ckpt.pt")
    assert load_weights(target, tmp_path / "ckpt.pt") == len(target.state_dict())
    assert torch.equal(target.head.weight, source.head.weight)
    with pytest.raises(WeightsMismatchError, match="ckpt.pt"):
        load_weights(_SSLNet(), tmp_path / "ckpt.pt")
    with pytest.raises(ValueError, match="ckpt.pt"):
        load_weights(nn.Linear(2, 2), tmp_path / "ckpt.pt", strict=False)
    with pytest.raises(ValueError, match="'generator'"):
        load_weights(target, tmp_path / "ckpt.pt", key="generator")


def test_require_weights_fit_names_the_file_the_shapes_and_the_overlay():
    small = _SegNet(encoder_channels=4).state_dict()
    require_weights_fit(_SegNet(encoder_channels=4), small, "models/model.pt")  # same keys and shapes: silent
    with pytest.raises(WeightsMismatchError) as raised:
        require_weights_fit(_SegNet(encoder_channels=8), small, "models/model.pt")
    message = str(raised.value)
    assert "models/model.pt" in message and "configs/tiny.json" in message and "configs/quick.json" in message
    # the first differing tensor with both shapes, and the counts of each kind of difference
    assert "encoder.0.weight: (4, 1, 3, 3) in the file, (8, 1, 3, 3) here" in message
    assert "3 tensors of another shape, 0 missing, 0 unexpected" in message
    with pytest.raises(WeightsMismatchError, match="1 missing, 0 unexpected.*head.bias: not in the file"):
        require_weights_fit(_SegNet(), {k: v for k, v in small.items() if k != "head.bias"}, "m.pt")
    with pytest.raises(WeightsMismatchError, match="0 missing, 1 unexpected.*extra: in the file only"):
        require_weights_fit(_SegNet(), {**small, "extra": torch.zeros(1)}, "m.pt")


def test_extract_state_dict_strips_ddp_prefix():
    state = {"module.conv.weight": torch.ones(1), "module.conv.bias": torch.zeros(1)}
    assert sorted(extract_state_dict(state)) == ["conv.bias", "conv.weight"]
    with pytest.raises(ValueError, match="no network state"):
        extract_state_dict({"optimizer": {}, "trainer": {}}, path="x.pt")


def test_checkpoint_load_is_weights_only(tmp_path):
    class _Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    torch.save({"network": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match="[Ww]eights only"):
        load_weights(_SegNet(), tmp_path / "evil.pt")


def test_require_weights(tmp_path):
    what = "train the Segmentor first: python -m monai.bundle run --config_file configs/train_segmentor.json"
    with pytest.raises(FileNotFoundError, match="train_segmentor.json") as info:
        require_weights(tmp_path / "segmentor.pt", what)
    assert "segmentor.pt" in str(info.value)
    (tmp_path / "segmentor.pt").write_bytes(b"x")
    assert require_weights(tmp_path / "segmentor.pt", what) == str(tmp_path / "segmentor.pt")
    (tmp_path / "folder.pt").mkdir()
    with pytest.raises(FileNotFoundError):
        require_weights(tmp_path / "folder.pt", what)


SEGMENTOR_HINT = "train the Segmentor first: python -m monai.bundle run --config_file configs/train_segmentor.json"


def test_require_trained_weights_accepts_a_recorded_training(tmp_path):
    path = tmp_path / "segmentor.pt"
    record = training_record(5, "val_mean_dice", 0.71)
    torch.save({"model": _SegNet().state_dict(), TRAINING_RECORD_KEY: record}, path)
    assert require_trained_weights(path, SEGMENTOR_HINT) == str(path)
    assert torch.load(path, weights_only=True)[TRAINING_RECORD_KEY] == {
        "epochs": 5,
        "metric_name": "val_mean_dice",
        "metric": pytest.approx(0.71),
    }
    assert load_weights(_SegNet(), path) == len(_SegNet().state_dict())  # the record does not hide the weights


@pytest.mark.parametrize(
    "checkpoint, match",
    [
        (lambda sd: sd, "no training record"),  # a bare state_dict, e.g. torch.save(net.state_dict())
        (lambda sd: {"model": sd}, "no training record"),
        (lambda sd: {"model": sd, TRAINING_RECORD_KEY: training_record(0, "val_mean_dice", 0.0)}, "0 training epochs"),
        (lambda sd: {"model": sd, TRAINING_RECORD_KEY: {"metric": 0.5}}, "None training epochs"),
    ],
)
def test_require_trained_weights_refuses_an_untrained_file(tmp_path, checkpoint, match):
    path = tmp_path / "segmentor.pt"
    torch.save(checkpoint(_SegNet().state_dict()), path)
    with pytest.raises(ValueError, match=match) as info:
        require_trained_weights(path, SEGMENTOR_HINT)
    assert str(path) in str(info.value) and "train_segmentor.json" in str(info.value)


def test_require_trained_weights_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_segmentor.json"):
        require_trained_weights(tmp_path / "segmentor.pt", SEGMENTOR_HINT)
