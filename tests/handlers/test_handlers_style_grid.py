"""Style grid: one source image and its translations with fixed-seed style codes, as one TensorBoard image."""

from __future__ import annotations

import pytest
import torch
from common.handlers import StyleGridHandler
from common.nets import MUNITGenerator
from ignite.engine import Engine

SIZE = 32


class _RecordingWriter:
    """Stand-in for ``SummaryWriter``: keeps every ``add_image`` call."""

    def __init__(self) -> None:
        self.images: list[dict] = []

    def add_image(self, tag, img_tensor, global_step=None, dataformats="CHW"):
        self.images.append({"tag": tag, "image": img_tensor.clone(), "step": global_step, "dataformats": dataformats})


def _engine(x_a: torch.Tensor, seed: int = 0) -> Engine:
    """An ignite engine whose output carries ``x_a`` and which holds two tiny MUNIT generators."""
    torch.manual_seed(seed)
    engine = Engine(lambda engine, batch: {"x_a": x_a, "loss_g": torch.tensor(0.0)})
    engine.networks = {
        "gen_a": MUNITGenerator(dim=4, n_res=1, mlp_dim=8),
        "gen_b": MUNITGenerator(dim=4, n_res=1, mlp_dim=8),
    }
    return engine


def _source(batch: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(batch, 1, SIZE, SIZE, generator=generator) * 2 - 1  # Tanh range


def _columns(grid: torch.Tensor, count: int) -> list[torch.Tensor]:
    return [grid[0, :, i * SIZE : (i + 1) * SIZE] for i in range(count)]


@pytest.mark.parametrize("num_styles", [1, 3])
def test_grid_is_the_source_then_one_column_per_style(num_styles):
    x_a = _source()
    engine = _engine(x_a)
    writer = _RecordingWriter()
    StyleGridHandler(num_styles=num_styles, summary_writer=writer, every_n_iterations=2).attach(engine)
    engine.run(range(4), max_epochs=1)
    assert [call["step"] for call in writer.images] == [2, 4]  # every 2 iterations
    call = writer.images[0]
    assert call["tag"] == "styles" and call["dataformats"] == "CHW"
    grid = call["image"]
    assert grid.shape == (1, SIZE, SIZE * (1 + num_styles))  # one row: the first image of the batch only
    assert float(grid.min()) >= 0.0 and float(grid.max()) <= 1.0
    assert torch.allclose(_columns(grid, 1)[0], (x_a[0, 0] + 1) / 2)  # [-1, 1] shown as [0, 1]


def test_style_columns_differ_from_each_other_and_from_the_source():
    engine = _engine(_source())
    writer = _RecordingWriter()
    StyleGridHandler(num_styles=4, summary_writer=writer, every_n_iterations=1).attach(engine)
    engine.run(range(1), max_epochs=1)
    source, *styles = _columns(writer.images[0]["image"], 5)
    for i in range(len(styles)):
        assert not torch.allclose(styles[i], source, atol=1e-3)
        for j in range(i):
            assert not torch.allclose(styles[i], styles[j], atol=1e-3), f"styles {j} and {i} render the same"


def test_the_same_seed_gives_the_same_style_columns_on_every_call_and_another_seed_others():
    engine = _engine(_source())
    writer = _RecordingWriter()
    handler = StyleGridHandler(num_styles=3, seed=5, summary_writer=writer, every_n_iterations=1)
    handler.attach(engine)
    torch.manual_seed(123)  # the global RNG does not matter: the codes come from the handler's own generator
    engine.run(range(1), max_epochs=1)
    torch.manual_seed(456)
    handler(engine)
    first, second = writer.images[0]["image"], writer.images[1]["image"]
    assert torch.equal(first, second)

    other = _RecordingWriter()
    StyleGridHandler(num_styles=3, seed=6, summary_writer=other)(engine)
    assert torch.equal(_columns(other.images[0]["image"], 1)[0], _columns(first, 1)[0])  # same source column
    assert not torch.allclose(other.images[0]["image"][..., SIZE:], first[..., SIZE:], atol=1e-3)


def test_source_key_tag_and_decollated_outputs():
    x_a = _source(batch=3)
    engine = _engine(x_a)
    engine.state.output = [{"bssfp": x_a[i]} for i in range(3)]  # a decollated list of per-sample dicts
    engine.state.iteration = 7
    writer = _RecordingWriter()
    StyleGridHandler(num_styles=2, source_key="bssfp", tag="munit/styles", summary_writer=writer)(engine)
    call = writer.images[0]
    assert call["tag"] == "munit/styles" and call["step"] == 7 and call["image"].shape == (1, SIZE, 3 * SIZE)
    assert torch.allclose(_columns(call["image"], 1)[0], (x_a[0, 0] + 1) / 2)


def test_the_generators_are_not_changed():
    engine = _engine(_source())
    before = {name: {k: v.clone() for k, v in net.state_dict().items()} for name, net in engine.networks.items()}
    StyleGridHandler(num_styles=2, summary_writer=_RecordingWriter(), every_n_iterations=1).attach(engine)
    engine.run(range(2), max_epochs=1)
    for name, net in engine.networks.items():
        for key, value in net.state_dict().items():
            assert torch.equal(value, before[name][key]), f"{name}.{key}"
        assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("num_styles", [0, -2])
def test_bad_num_styles_raise(num_styles):
    with pytest.raises(ValueError, match="num_styles"):
        StyleGridHandler(num_styles=num_styles, summary_writer=_RecordingWriter())
