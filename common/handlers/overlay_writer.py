"""PNG panels of an evaluation run (images with label-map outlines), one file per case, for every bundle."""

from __future__ import annotations

__all__ = ["OverlayWriter", "busiest_slice", "overlay_png"]

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

#: outline colours of the first, second and third label map drawn on a panel
COLOURS = ("yellow", "red", "cyan")


def _array(value: Any) -> np.ndarray:
    return np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)


def _to_label_map(value: Any, key: str) -> np.ndarray:
    """``(C, H, W)`` one-hot/probabilities (C > 1) or ``(1, H, W)``/``(H, W)`` labels -> ``(H, W)`` int labels."""
    array = _array(value)
    if array.ndim == 3 and array.shape[0] > 1:
        return array.argmax(0)
    if array.ndim not in (2, 3):
        raise ValueError(f"OverlayWriter draws 2D items: {key!r} has shape {array.shape}.")
    return array.reshape(array.shape[-2:]).round().astype(np.int64)


def _to_image(value: Any, key: str) -> np.ndarray:
    """``(1, H, W)`` or ``(H, W)`` -> ``(H, W)`` float32 (the first channel of a multi-channel image)."""
    array = _array(value).astype(np.float32)
    if array.ndim == 3:
        return array[0]
    if array.ndim != 2:
        raise ValueError(f"OverlayWriter draws 2D items: {key!r} has shape {array.shape}.")
    return array


def busiest_slice(labels: Any) -> int:
    """The index along the last axis of the slice with the most foreground in ``labels`` (a channel-first stack
    ``(C, H, W, D)``: one-hot/probabilities, C > 1, count the channels after the first; else non-zero labels); the
    middle slice when there is none."""
    array = _array(labels)
    if array.ndim != 4:
        raise ValueError(f"busiest_slice takes a channel-first stack (C, H, W, D), got shape {array.shape}.")
    foreground = array[1:].sum(0) if array.shape[0] > 1 else array[0] != 0
    counts = foreground.reshape(-1, array.shape[-1]).sum(0)
    return int(counts.argmax()) if counts.any() else array.shape[-1] // 2


def _lookup(item: dict, source: Any, key: str, title: str) -> Any:
    """``key`` of the decollated output ``item``, else of its batch item ``source``."""
    if key in item:
        return item[key]
    if isinstance(source, dict) and key in source:
        return source[key]
    raise KeyError(f"OverlayWriter: neither the output item nor the batch has {key!r} (panel {title!r}).")


def _slices_last(stack: Any, axis: int) -> Any:
    """A channel-first stack ``(C, H, W, D)`` with its spatial ``axis`` moved last (the in-plane order kept)."""
    return stack if axis == 2 else torch.movedim(torch.as_tensor(stack), 1 + axis, -1)


def _resize_nearest(image: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    rows = (np.arange(shape[0]) * image.shape[0] / shape[0]).astype(int)
    cols = (np.arange(shape[1]) * image.shape[1] / shape[1]).astype(int)
    return image[np.ix_(rows, cols)]


def overlay_png(
    path: str, panels: Sequence[tuple[str, np.ndarray, Sequence[np.ndarray]]], title: str = "", fill: bool = True
) -> None:
    """Write one PNG with a panel per ``(name, image (H, W), [label maps (H', W')])``.

    Every image and label map is shown on the largest grid among them (nearest neighbour), so a 64x64 input sits
    under a 512x512 mask. Each image keeps its own grey-level range; the label maps of a panel are outlined in
    yellow, red, cyan (in order), and with ``fill`` also tinted (so that an all-foreground map is visible).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arrays = [panel[1] for panel in panels] + [labels for panel in panels for labels in panel[2]]
    shape = max((array.shape for array in arrays), key=lambda s: s[0] * s[1])
    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.3))
    for ax, (name, image, label_maps) in zip(np.atleast_1d(axes), panels):
        ax.imshow(_resize_nearest(np.asarray(image, dtype=np.float32), shape).T, cmap="gray", origin="lower")
        for labels, colour in zip(label_maps, COLOURS):
            labels = _resize_nearest(labels, shape)
            if not labels.any():
                continue
            if fill:
                ax.imshow(np.ma.masked_where(labels == 0, labels).T, cmap="autumn", alpha=0.35, origin="lower")
            if not labels.all():  # a level between each pair of label values present (e.g. 0/200/500/600)
                values = np.unique(labels)
                levels = (values[:-1] + values[1:]) / 2
                ax.contour(labels.T, levels=levels, colors=colour, linewidths=0.8)
        ax.set_title(name)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


class OverlayWriter:
    """Ignite handler writing ``<output_dir>/<case>.png`` for every evaluated item: images with label outlines.

    Each panel is ``[title, image_key, [label_keys]]``, read from the decollated ``engine.state.output`` items
    (channel-first 2D: images ``(1, H, W)``, label maps ``(1, H, W)`` or one-hot ``(C, H, W)``). The default is the
    segmentation layout ``image | truth | prediction`` (``[["image", "image", []], ["truth", "image", ["label"]],
    ["prediction", "image", ["pred"]]]``, tinted); CycleGANSeg draws ``DTI | translated | real LGE`` with the manual
    mask (yellow) and the Segmentor's masks (red) as outlines (``fill=False``). A key missing from the output item is
    read from the batch item (e.g. the input image loaded a second time, on the input grid, beside a prediction put
    back there). Stacks ``(C, H, W, D)`` are drawn at one slice: the one where ``slice_key``'s label map has the most
    foreground (:func:`busiest_slice`). The case id is read from the output item, else from the batch item
    (``case_key``), else the running index. Only rank 0 writes under torchrun.

    Args:
        output_dir: folder for the PNG files (created).
        panels: ``[title, image_key, [label_keys]]`` per panel; ``None``: the segmentation layout above, with
            ``image_key``, ``label_key`` and ``pred_key``.
        image_key, label_key, pred_key: keys of the default panels.
        case_key: key whose value names the file; ``None`` uses the running index.
        fill: tint the labelled region under each outline.
        slice_key: for stacks, the label key whose busiest slice is drawn (every panel at that slice, its index in
            the title); ``None``: items must be 2D.
        slice_axis_key: for stacks, the item key holding their slice axis (0, 1 or 2; e.g. the one
            ``common.transforms.SlicesLastd(axis="auto")`` recorded for the input, ``"image_through_plane_axis"``):
            stacks written back in a slices-first file's layout are cut along it. ``None`` or absent: the last axis.

    Raises:
        ValueError: naming ``panels`` when one is not ``[title, image_key, [label_keys]]``.
        KeyError: naming the key when neither the output item nor the batch item has a key of ``panels``.

    Examples::

        {"_target_": "common.handlers.OverlayWriter", "output_dir": "$os.path.join(@output_dir, 'overlays')"}
    """

    def __init__(
        self,
        output_dir: str,
        panels: Sequence[Sequence[Any]] | None = None,
        image_key: str = "image",
        label_key: str = "label",
        pred_key: str = "pred",
        case_key: str | None = "case",
        fill: bool = True,
        slice_key: str | None = None,
        slice_axis_key: str | None = None,
    ) -> None:
        if panels is None:
            panels = [["image", image_key, []], ["truth", image_key, [label_key]]]
            panels.append(["prediction", image_key, [pred_key]])
        parsed = []
        for panel in panels:
            if len(panel) != 3 or isinstance(panel[2], str) or not all(isinstance(k, str) for k in panel[2]):
                raise ValueError(f"panels entries must be [title, image_key, [label_keys]], got {panel!r}.")
            parsed.append((str(panel[0]), str(panel[1]), [str(key) for key in panel[2]]))
        if not parsed:
            raise ValueError("panels must hold at least one panel.")
        self.output_dir = output_dir
        self.panels = parsed
        self.case_key = case_key
        self.fill = bool(fill)
        self.slice_key, self.slice_axis_key = slice_key, slice_axis_key
        self._count = 0

    def attach(self, engine: Engine) -> None:
        """Write at every ``ITERATION_COMPLETED`` of ``engine``."""
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def _case(self, item: dict, source: Any) -> str:
        case = str(self._count)
        if self.case_key:  # the case id is in the batch; the engine output may not carry it
            fallback = source.get(self.case_key, case) if isinstance(source, dict) else case
            case = str(item.get(self.case_key, fallback))
        return case

    def _slice_axis(self, item: dict, source: Any) -> int:
        """The stacks' slice axis: ``slice_axis_key``'s value in the output or batch item, else 2 (the last)."""
        if self.slice_axis_key is None:
            return 2
        for where in (item, source):
            if isinstance(where, dict) and self.slice_axis_key in where:
                return int(where[self.slice_axis_key])
        return 2

    def __call__(self, engine: Engine) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized() and torch.distributed.get_rank():
            return
        os.makedirs(self.output_dir, exist_ok=True)
        items = engine.state.output if isinstance(engine.state.output, list) else [engine.state.output]
        batch = engine.state.batch if isinstance(engine.state.batch, list) else [engine.state.batch] * len(items)
        for item, source in zip(items, batch):
            index, axis = None, self._slice_axis(item, source)
            if self.slice_key is not None:
                index = busiest_slice(_slices_last(_lookup(item, source, self.slice_key, "slice_key"), axis))
            panels = []
            for title, image_key, label_keys in self.panels:
                arrays = {key: _lookup(item, source, key, title) for key in (image_key, *label_keys)}
                if index is not None:
                    arrays = {key: _slices_last(array, axis)[..., index] for key, array in arrays.items()}
                label_maps = [_to_label_map(arrays[key], key) for key in label_keys]
                panels.append((title, _to_image(arrays[image_key], image_key), label_maps))
            case = self._case(item, source)
            title = case if index is None else f"{case}, slice {index}"
            overlay_png(os.path.join(self.output_dir, f"{case}.png"), panels, title=title, fill=self.fill)
            self._count += 1
