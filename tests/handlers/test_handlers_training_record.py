"""AtomicCheckpointSaver(training_record=True): the best-model file records the epochs trained and its metric."""

from __future__ import annotations

import math

import pytest
import torch
from common.checkpoint import TRAINING_RECORD_KEY, load_weights, require_trained_weights
from common.handlers import AtomicCheckpointSaver
from ignite.engine import Events
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import MeanAbsoluteError, ValidationHandler, from_engine
from torch import nn
from torch.utils.data import DataLoader


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 2, generator=g)
    return [{"image": a, "label": b} for a, b in zip(x, x @ torch.tensor([[1.5], [-2.0]]) + 0.5)]


def _train(save_dir, epochs: int = 3, **saver_kwargs):
    """A linear regression trained ``epochs`` epochs, validated every epoch; the saver keeps the lowest-MAE model."""
    torch.manual_seed(0)
    network = nn.Linear(2, 1)
    evaluator = SupervisedEvaluator(
        "cpu",
        DataLoader(_data(), batch_size=4),
        network,
        key_val_metric={"val_mae": MeanAbsoluteError(output_transform=from_engine(["pred", "label"]))},
    )
    saver = AtomicCheckpointSaver(
        str(save_dir),
        {"model": network},
        save_key_metric=True,
        key_metric_filename="model.pt",
        key_metric_negative_sign=True,
        **saver_kwargs,
    )
    saver.attach(evaluator)
    history: list[tuple[int, float]] = []
    evaluator.add_event_handler(
        Events.EPOCH_COMPLETED, lambda e: history.append((e.state.epoch, e.state.metrics["val_mae"]))
    )
    optimizer = torch.optim.Adam(network.parameters(), lr=0.1)
    trainer = SupervisedTrainer(
        "cpu", epochs, DataLoader(_data(), batch_size=4), network, optimizer, nn.MSELoss(), decollate=False
    )
    ValidationHandler(interval=1, validator=evaluator, epoch_level=True).attach(trainer)
    trainer.run()
    return network, history


def test_best_model_file_records_its_epoch_and_validation_metric(tmp_path):
    network, history = _train(tmp_path, training_record=True)
    assert [epoch for epoch, _ in history] == [1, 2, 3]  # the validator carries the trainer's epoch
    best_epoch, best_mae = min(history, key=lambda item: item[1])
    checkpoint = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(checkpoint) == {"model", TRAINING_RECORD_KEY}
    assert checkpoint[TRAINING_RECORD_KEY] == {
        "epochs": best_epoch,
        "metric_name": "val_mae",
        "metric": pytest.approx(best_mae),
    }
    assert require_trained_weights(tmp_path / "model.pt", "train it") == str(tmp_path / "model.pt")
    fresh = nn.Linear(2, 1)
    assert load_weights(fresh, tmp_path / "model.pt") == 2
    if best_epoch == 3:  # the best model is the last one here
        torch.testing.assert_close(fresh.weight, network.weight)


def test_without_training_record_the_file_is_the_bare_state_dict(tmp_path):
    _train(tmp_path, epochs=1)
    checkpoint = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(checkpoint) == {"weight", "bias"}
    with pytest.raises(ValueError, match="no training record"):
        require_trained_weights(tmp_path / "model.pt", "train it")


def test_record_without_a_key_metric_has_nan_metric(tmp_path):
    torch.manual_seed(0)
    network = nn.Linear(2, 1)
    trainer = SupervisedTrainer(
        "cpu",
        2,
        DataLoader(_data(), batch_size=4),
        network,
        torch.optim.SGD(network.parameters(), lr=0.01),
        nn.MSELoss(),
        decollate=False,
    )
    AtomicCheckpointSaver(str(tmp_path), {"model": network}, save_final=True, training_record=True).attach(trainer)
    trainer.run()
    (path,) = tmp_path.glob("*.pt")
    record = torch.load(path, weights_only=True)[TRAINING_RECORD_KEY]
    assert record["epochs"] == 2 and record["metric_name"] == "" and math.isnan(record["metric"])


def test_a_save_dict_entry_named_like_the_record_is_refused(tmp_path):
    with pytest.raises(ValueError, match=TRAINING_RECORD_KEY):
        AtomicCheckpointSaver(
            str(tmp_path),
            {"model": nn.Linear(1, 1), TRAINING_RECORD_KEY: nn.Linear(1, 1)},
            save_final=True,
            training_record=True,
        )
