"""PNG overlays (image | truth | prediction) of an evaluation run, one file per case."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
from ignite.engine import Engine, Events

__all__ = ["OverlayWriter", "overlay_png"]


def _to_label_map(value: torch.Tensor | np.ndarray) -> np.ndarray:
    """(C, H, W) one-hot/probabilities or (1, H, W) labels -> (H, W) integer labels."""
    array = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
    if array.ndim == 3 and array.shape[0] > 1:
        return array.argmax(0)
    return array.reshape(array.shape[-2:]).round().astype(np.int64)


def _resize_nearest(image: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    rows = (np.arange(shape[0]) * image.shape[0] / shape[0]).astype(int)
    cols = (np.arange(shape[1]) * image.shape[1] / shape[1]).astype(int)
    return image[np.ix_(rows, cols)]


def overlay_png(path: str, image: np.ndarray, truth: np.ndarray | None, pred: np.ndarray, title: str = "") -> None:
    """Write a 3-panel PNG: the image, the truth outline and the prediction outline over it.

    The image is shown at the label grid's size (nearest neighbour), so a 64x64 input sits under a 512x512 mask.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shape = pred.shape
    background = _resize_nearest(np.asarray(image, dtype=np.float32), shape)
    panels = [("image", None), ("truth", truth), ("prediction", pred)]
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.3))
    for ax, (name, labels) in zip(axes, panels):
        ax.imshow(background.T, cmap="gray", origin="lower")
        if labels is not None and labels.any():
            # filled (so that an all-foreground prediction is visible) and outlined
            ax.imshow(np.ma.masked_where(labels == 0, labels).T, cmap="autumn", alpha=0.35, origin="lower")
            if not labels.all():
                ax.contour(labels.T, levels=np.arange(0.5, labels.max() + 0.5), colors="yellow", linewidths=0.8)
        ax.set_title(name)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


class OverlayWriter:
    """Ignite handler writing `<output_dir>/<case>.png` for every evaluated sample.

    Reads the decollated `engine.state.output` items (`image`, `label`, `pred` channel-first) after each
    iteration; only rank 0 writes under torchrun.

    Args:
        output_dir: folder for the PNG files (created).
        image_key, label_key, pred_key: keys of the decollated output items.
        case_key: key whose value names the file (falls back to the running index).
    """

    def __init__(
        self,
        output_dir: str,
        image_key: str = "image",
        label_key: str = "label",
        pred_key: str = "pred",
        case_key: str | None = "case",
    ) -> None:
        self.output_dir = output_dir
        self.image_key, self.label_key, self.pred_key, self.case_key = image_key, label_key, pred_key, case_key
        self._count = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank():
            return
        os.makedirs(self.output_dir, exist_ok=True)
        items = engine.state.output if isinstance(engine.state.output, list) else [engine.state.output]
        batch = engine.state.batch if isinstance(engine.state.batch, list) else [engine.state.batch] * len(items)
        for item, source in zip(items, batch):
            image = np.asarray(item[self.image_key].detach().cpu())[0]
            pred = _to_label_map(item[self.pred_key])
            truth = _to_label_map(item[self.label_key]) if self.label_key in item else None
            case = str(self._count)
            if self.case_key:  # the case id is in the batch; the engine output may not carry it
                case = str(
                    item.get(self.case_key, source.get(self.case_key, case) if isinstance(source, dict) else case)
                )
            overlay_png(os.path.join(self.output_dir, f"{case}.png"), image, truth, pred, title=case)
            self._count += 1
