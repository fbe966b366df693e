"""TensorBoard image grid of a GAN iteration's images (real, translated, reconstructed)."""

from __future__ import annotations

__all__ = ["GanImageGridHandler", "image_grid"]

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from ignite.engine import Events

if TYPE_CHECKING:
    from ignite.engine import Engine

CYCLEGAN_KEYS = ("real_source", "fake_target", "rec_source", "real_target", "fake_source", "rec_target")


def image_grid(columns: Sequence[torch.Tensor], value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """Grid with one column per tensor and one row per sample, channel 0 only, scaled to ``[0, 1]``.

    Args:
        columns: tensors ``(N, C, H, W)`` (or ``(N, H, W)``) of equal N, H, W; a stack of slices ``(N, C, D, H, W)``
            (a self-SR network's inputs and outputs) shows its middle slice.
        value_range: intensity range mapped to ``[0, 1]`` (clipped), e.g. ``(-1, 1)`` for Tanh generators.

    Returns:
        ``(1, N*H, len(columns)*W)`` float tensor.

    Raises:
        ValueError: if the columns differ in shape or are not 3D/4D.
    """
    prepared = []
    for index, images in enumerate(columns):
        images = images.detach().float().cpu()
        if images.ndim == 5:
            images = images[:, :, images.shape[2] // 2]
        if images.ndim == 4:
            images = images[:, 0]
        if images.ndim != 3:
            raise ValueError(f"column {index}: expected (N, C, [D,] H, W) or (N, H, W), got {tuple(images.shape)}.")
        if prepared and images.shape != prepared[0].shape:
            raise ValueError(f"column {index}: shape {tuple(images.shape)} differs from {tuple(prepared[0].shape)}.")
        prepared.append(images)
    low, high = value_range
    grid = torch.cat([torch.cat(list(images), dim=0) for images in prepared], dim=1)  # (N*H, K*W)
    return ((grid - low) / (high - low)).clamp(0.0, 1.0).unsqueeze(0)


class GanImageGridHandler:
    """Ignite handler writing ``engine.state.output`` images as one TensorBoard grid every N iterations.

    Rows are samples (at most ``max_samples``), columns are ``keys`` in order, e.g. CycleGAN's
    ``real_source | fake_target | rec_source | real_target | fake_source | rec_target``. Works on the output dict
    and on its decollated list of per-sample dicts. No torchvision needed.

    Args:
        summary_writer: a ``torch.utils.tensorboard.SummaryWriter``; if ``None`` one is made in ``log_dir`` (and
            closed when the run completes).
        log_dir: TensorBoard folder when no writer is given.
        keys: output keys, one grid column each.
        every_n_iterations: write period.
        max_samples: rows.
        value_range: intensity range mapped to black..white (Tanh generators: ``(-1, 1)``).
        tag: TensorBoard image tag.

    Raises:
        ValueError: if ``every_n_iterations`` or ``max_samples`` < 1 or ``keys`` is empty; ``KeyError`` naming the key
            when the output lacks one.

    Examples::

        GanImageGridHandler(log_dir="runs", every_n_iterations=100).attach(trainer)
    """

    def __init__(
        self,
        summary_writer: Any | None = None,
        log_dir: str = "./runs",
        keys: Sequence[str] = CYCLEGAN_KEYS,
        every_n_iterations: int = 100,
        max_samples: int = 4,
        value_range: tuple[float, float] = (-1.0, 1.0),
        tag: str = "images",
    ) -> None:
        if every_n_iterations < 1:
            raise ValueError(f"every_n_iterations must be >= 1, got {every_n_iterations}.")
        if max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, got {max_samples}.")
        if not keys:
            raise ValueError("keys must name at least one output image.")
        self._writer = summary_writer
        self._owns_writer = summary_writer is None
        self.log_dir = log_dir
        self.keys = tuple(keys)
        self.every_n_iterations = int(every_n_iterations)
        self.max_samples = int(max_samples)
        self.value_range = value_range
        self.tag = tag

    @property
    def writer(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=self.log_dir)
        return self._writer

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.every_n_iterations), self)
        if self._owns_writer:
            engine.add_event_handler(Events.COMPLETED, self.close)

    def columns(self, output: Any) -> list[torch.Tensor]:
        """One ``(N, C, H, W)`` tensor per key from an output dict or a decollated list of dicts."""
        n = self.max_samples
        if isinstance(output, dict):
            return [torch.as_tensor(output[key])[:n] for key in self.keys]
        if isinstance(output, (list, tuple)) and output and isinstance(output[0], dict):
            return [torch.stack([torch.as_tensor(item[key]) for item in output[:n]]) for key in self.keys]
        raise ValueError(f"engine.state.output must be a dict or a list of dicts, got {type(output).__name__}.")

    def __call__(self, engine: Engine) -> None:
        grid = image_grid(self.columns(engine.state.output), self.value_range)
        self.writer.add_image(self.tag, grid, global_step=engine.state.iteration, dataformats="CHW")

    def close(self, engine: Engine | None = None) -> None:
        if self._writer is not None and self._owns_writer:
            self._writer.close()
