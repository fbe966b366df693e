"""ProgressLogger (ETA lines / tqdm bar) and GanImageGridHandler (TensorBoard grids)."""

from __future__ import annotations

import itertools
import logging
import re

import pytest
import torch
from common.handlers import GanImageGridHandler, ProgressLogger, image_grid
from common.handlers import progress_logger as progress_module
from ignite.engine import Engine


def _engine(output_fn):
    return Engine(lambda engine, batch: output_fn(engine, batch))


def test_plain_log_lines_with_loss_and_eta(monkeypatch, caplog):
    clock = itertools.count()  # one call at STARTED, then one per iteration: 1 s per iteration
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: float(next(clock)))
    engine = _engine(lambda e, b: {"loss": torch.tensor(0.25 * e.state.iteration)})
    ProgressLogger(log_every=2, output_transform=lambda out: out["loss"], use_tqdm=False, name="progress_test").attach(
        engine
    )
    with caplog.at_level(logging.INFO, logger="progress_test"):
        engine.run(range(4), max_epochs=2)
    lines = [r.getMessage() for r in caplog.records if r.name == "progress_test"]
    assert lines == [
        "epoch 1/2 iter 2/4 loss 0.5000 eta 0:00:06",
        "epoch 1/2 iter 4/4 loss 1.0000 eta 0:00:04",
        "epoch 2/2 iter 2/4 loss 1.5000 eta 0:00:02",
        "epoch 2/2 iter 4/4 loss 2.0000 eta 0:00:00",
    ]


def test_default_transform_reads_decollated_loss_and_skips_non_scalars(caplog):
    engine = _engine(lambda e, b: [{"loss": 0.5, "image": torch.zeros(2)}, {"loss": 0.5, "image": torch.zeros(2)}])
    ProgressLogger(log_every=3, use_tqdm=False, name="progress_test2").attach(engine)
    with caplog.at_level(logging.INFO, logger="progress_test2"):
        engine.run(range(3), max_epochs=1)
    mine = [r.getMessage() for r in caplog.records if r.name == "progress_test2"]
    assert re.fullmatch(r"epoch 1/1 iter 3/3 loss 0\.5000 eta \d+:\d\d:\d\d", mine[-1])

    engine = _engine(lambda e, b: {"image": torch.zeros(2)})
    ProgressLogger(log_every=1, use_tqdm=False, name="progress_test3").attach(engine)
    with caplog.at_level(logging.INFO, logger="progress_test3"):
        engine.run(range(1), max_epochs=1)
    mine = [r.getMessage() for r in caplog.records if r.name == "progress_test3"]
    assert mine[-1].startswith("epoch 1/1 iter 1/1 eta")


def test_tqdm_bar_on_terminal(capsys, caplog):
    engine = _engine(lambda e, b: {"loss": torch.tensor(1.0)})
    ProgressLogger(log_every=1, output_transform=lambda out: out["loss"], use_tqdm=True, name="progress_tqdm").attach(
        engine
    )
    with caplog.at_level(logging.INFO, logger="progress_tqdm"):
        engine.run(range(3), max_epochs=2)
    assert "epoch 2/2" in capsys.readouterr().err  # the bar
    lines = [r.getMessage() for r in caplog.records if r.name == "progress_tqdm"]
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2 iter 3/3")  # one line per epoch, not per iteration


def test_progress_logger_rejects_bad_period():
    with pytest.raises(ValueError, match="log_every"):
        ProgressLogger(log_every=0)


def test_image_grid_layout_and_range():
    left = torch.tensor([-1.0, 1.0]).view(2, 1, 1, 1).expand(2, 1, 2, 3)
    right = torch.zeros(2, 3, 2, 3)  # only channel 0 is drawn
    grid = image_grid([left, right])
    assert grid.shape == (1, 4, 6)
    assert torch.all(grid[0, :2, :3] == 0) and torch.all(grid[0, 2:, :3] == 1)  # rows are samples
    assert torch.all(grid[0, :, 3:] == 0.5)  # columns are keys
    assert torch.all(image_grid([torch.full((1, 1, 2, 2), 5.0)]) == 1)  # clipped
    with pytest.raises(ValueError, match="column 1"):
        image_grid([left, torch.zeros(2, 1, 4, 4)])


class _Writer:
    def __init__(self) -> None:
        self.calls = []

    def add_image(self, tag, image, global_step, dataformats):
        self.calls.append((tag, tuple(image.shape), global_step, dataformats))


@pytest.mark.parametrize("decollated", [False, True])
def test_grid_handler_writes_every_n_iterations(decollated):
    def output(engine, batch):
        out = {"real_source": torch.zeros(3, 1, 4, 4), "fake_target": torch.ones(3, 1, 4, 4), "loss_g": 1.0}
        if decollated:
            return [{k: (v[i] if isinstance(v, torch.Tensor) else v) for k, v in out.items()} for i in range(3)]
        return out

    writer = _Writer()
    engine = _engine(output)
    GanImageGridHandler(writer, keys=("real_source", "fake_target"), every_n_iterations=2, max_samples=2).attach(engine)
    engine.run(range(5), max_epochs=1)
    assert writer.calls == [("images", (1, 8, 8), 2, "CHW"), ("images", (1, 8, 8), 4, "CHW")]


def test_grid_handler_names_missing_key():
    engine = _engine(lambda e, b: {"real_source": torch.zeros(1, 1, 2, 2)})
    GanImageGridHandler(_Writer(), keys=("real_source", "rec_source"), every_n_iterations=1).attach(engine)
    with pytest.raises(KeyError, match="rec_source"):
        engine.run(range(1), max_epochs=1)


def test_grid_handler_writes_tensorboard_events(tmp_path):
    """With a log folder of its own, the grid of every iteration is in the event file under the handler's tag."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    engine = _engine(lambda e, b: {k: torch.rand(2, 1, 4, 4) * 2 - 1 for k in ("a", "b")})
    handler = GanImageGridHandler(log_dir=str(tmp_path), keys=("a", "b"), every_n_iterations=1, tag="grid")
    handler.attach(engine)
    engine.run(range(2), max_epochs=1)
    handler.writer.flush()
    (event_file,) = tmp_path.glob("events.out.tfevents.*")
    events = EventAccumulator(str(event_file), size_guidance={"images": 0})
    events.Reload()
    assert events.Tags()["images"] == ["grid"]
    assert [image.step for image in events.Images("grid")] == [1, 2]


@pytest.mark.parametrize("kwargs", [{"every_n_iterations": 0}, {"max_samples": 0}, {"keys": ()}])
def test_grid_handler_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        GanImageGridHandler(_Writer(), **kwargs)
