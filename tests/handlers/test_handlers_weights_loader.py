"""common.handlers.WeightsLoader: MONAI's CheckpointLoader that names the overlay when a file does not fit."""

from __future__ import annotations

import pytest
import torch
from common.checkpoint import WeightsMismatchError
from common.handlers import WeightsLoader
from ignite.engine import Engine
from torch import nn


def _net(width: int) -> nn.Module:
    torch.manual_seed(width)
    return nn.Sequential(nn.Conv2d(1, width, 3), nn.Conv2d(width, 2, 1))


def _run(loader: WeightsLoader) -> None:
    engine = Engine(lambda engine, batch: None)
    loader.attach(engine)
    engine.run([0], max_epochs=1)


@pytest.mark.parametrize("saved_as", ["bare", "saver", "pre-1.6 format"])
def test_a_fitting_file_loads_its_values(tmp_path, saved_as):
    source, target = _net(4), _net(4)
    state = source.state_dict()
    content = state if saved_as != "saver" else {"model": state, "trainer": {"epoch": 2}}
    # the pre-1.6 format cannot be memory-mapped for the check: it is read whole instead
    torch.save(content, tmp_path / "model.pt", _use_new_zipfile_serialization=saved_as != "pre-1.6 format")
    _run(WeightsLoader(str(tmp_path / "model.pt"), {"model": target}, strict=True))
    assert torch.equal(target[0].weight, source[0].weight)


def test_weights_of_another_size_are_refused_naming_file_and_overlay(tmp_path):
    torch.save(_net(4).state_dict(), tmp_path / "model.pt")  # e.g. trained under configs/tiny.json
    target = _net(8)
    before = target[0].weight.clone()
    with pytest.raises(WeightsMismatchError) as raised:
        _run(WeightsLoader(str(tmp_path / "model.pt"), {"model": target}, strict=True))
    message = str(raised.value)
    assert str(tmp_path / "model.pt") in message and "configs/tiny.json" in message
    assert "0.weight: (4, 1, 3, 3) in the file, (8, 1, 3, 3) here" in message
    assert torch.equal(target[0].weight, before)  # nothing half-loaded


@pytest.mark.parametrize("saved_as", ["bare", "saver"])
def test_without_a_strict_shape_the_fitting_tensors_load_and_the_others_stay(tmp_path, saved_as):
    """The last conv's bias (2 values for either width) loads; the other tensors keep their values. MONAI 1.6.1's own
    CheckpointLoader loads nothing here (it matches the checkpoint dict's keys, not the network's)."""
    source = _net(4)
    torch.save(source.state_dict() if saved_as == "bare" else {"model": source.state_dict()}, tmp_path / "model.pt")
    target = _net(8)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    assert not torch.equal(target[1].bias, source[1].bias)
    _run(WeightsLoader(str(tmp_path / "model.pt"), {"model": target}, strict=False, strict_shape=False))
    assert torch.equal(target[1].bias, source[1].bias)
    assert all(torch.equal(target.state_dict()[k], before[k]) for k in before if k != "1.bias")


def test_the_check_maps_the_file_instead_of_reading_its_values(tmp_path, monkeypatch):
    source = _net(4)
    with torch.no_grad():
        source[1].weight.add_(1.0)  # differs from a fresh _net(4)
    torch.save(source.state_dict(), tmp_path / "model.pt")
    calls = []
    load = torch.load
    monkeypatch.setattr(
        torch, "load", lambda *args, **kwargs: calls.append(kwargs.get("mmap")) or load(*args, **kwargs)
    )
    target = _net(4)
    _run(WeightsLoader(str(tmp_path / "model.pt"), {"model": target}, strict=True))
    assert calls == [True, None]  # the check maps the file; MONAI's load reads the values, once
    assert torch.equal(target[1].weight, source[1].weight)
