"""Folder-inference progress by slices: files and slices done, and an ETA from the time per slice."""

from __future__ import annotations

__all__ = ["InferenceProgress", "slices_in_batch"]

import datetime
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any

import torch
from ignite.engine import Events

if TYPE_CHECKING:
    from common.inference import FolderInputs
    from ignite.engine import Engine


def slices_in_batch(batch: Any, image_key: str = "image", spatial_dims: int = 2) -> int:
    """2D slices in a batch: ``B * D`` for collated ``(B, C, H, W, D)`` volumes, ``B`` for ``(B, C, H, W)`` slices.

    A decollated batch (a list of dicts, what MONAI's evaluators leave in ``engine.state.batch``) sums its items'
    ``(C, H, W[, D])`` images. An item without ``image_key`` counts as one slice (a file still moves the bar).
    """
    if isinstance(batch, (list, tuple)):
        return sum(_slices(item, image_key, spatial_dims, batched=False) for item in batch)
    return _slices(batch, image_key, spatial_dims, batched=True)


def _slices(item: Any, image_key: str, spatial_dims: int, batched: bool) -> int:
    image = item.get(image_key) if isinstance(item, dict) else None
    leading = 2 if batched else 1  # (B, C) or (C,)
    if not isinstance(image, torch.Tensor) or image.ndim < leading + spatial_dims:
        return 1
    slices = int(image.shape[0]) if batched else 1
    for size in image.shape[leading + spatial_dims :]:
        slices *= int(size)
    return slices


def _files_in_batch(batch: Any, image_key: str) -> int:
    if isinstance(batch, (list, tuple)):
        return len(batch)
    image = batch.get(image_key) if isinstance(batch, dict) else None
    return int(image.shape[0]) if isinstance(image, torch.Tensor) and image.ndim > 0 else 1


class InferenceProgress:
    """Ignite handler for folder inference: a tqdm bar over slices on a terminal, log lines elsewhere.

    2D bundles run a volume slice by slice, so the work of a file is its slice count, not 1: a 10-slice stack takes
    about ten times a single slice. The total comes from ``inputs.total_slices`` (the slice counts that
    :class:`common.inference.FolderInputs` read from the headers of this rank's files); the ETA is the mean time per
    slice so far times the slices left. Every file logs one line, e.g.
    ``file 3/12 b_stack.nii.gz slices 21/48 eta 0:00:40``.

    Args:
        inputs: the run's ``FolderInputs`` (total slices); ``None`` counts files only (ETA by files).
        image_key: batch key of the input image.
        spatial_dims: spatial dims the model takes (2: every further spatial axis is a stack of slices).
        use_tqdm: force the bar (``True``) or the log lines (``False``); ``None`` decides by ``isatty``.
        name: logger name; default the engine's logger.

    Examples::

        "handlers": [{"_target_": "common.handlers.InferenceProgress", "inputs": "@inputs"}]
    """

    def __init__(
        self,
        inputs: FolderInputs | None = None,
        image_key: str = "image",
        spatial_dims: int = 2,
        use_tqdm: bool | None = None,
        name: str | None = None,
    ) -> None:
        self.inputs = inputs
        self.image_key = image_key
        self.spatial_dims = spatial_dims
        self.use_tqdm = use_tqdm
        self._name = name
        self.logger = logging.getLogger(name)
        self._bar: Any = None
        self.files_done = 0
        self.slices_done = 0
        self.total_files: int | None = None
        self.total_slices: int | None = None
        self._start = 0.0

    def attach(self, engine: Engine) -> None:
        if self._name is None:
            self.logger = engine.logger
        if self.use_tqdm is None:
            self.use_tqdm = sys.stderr.isatty()
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration_completed)
        engine.add_event_handler(Events.COMPLETED, self._close)
        engine.add_event_handler(Events.TERMINATE, self._close)

    def _started(self, engine: Engine) -> None:
        self.files_done = self.slices_done = 0
        self._start = time.perf_counter()
        # without FolderInputs: the engine's epoch length (files, with batch size 1), None when unknown
        self.total_files = len(self.inputs.datalist()) if self.inputs is not None else engine.state.epoch_length
        self.total_slices = self.inputs.total_slices() if self.inputs is not None else None
        if self.use_tqdm:
            from tqdm import tqdm

            total = self.total_slices if self.total_slices is not None else self.total_files
            unit = "slice" if self.total_slices is not None else "file"
            self._bar = tqdm(total=total, unit=unit, desc="inference", dynamic_ncols=True)

    def eta_seconds(self) -> float | None:
        """Seconds left: time per slice (per file without slice counts) so far times what is left."""
        elapsed = time.perf_counter() - self._start
        if self.total_slices is not None and self.slices_done > 0:
            return max(self.total_slices - self.slices_done, 0) * elapsed / self.slices_done
        if self.total_files is not None and self.files_done > 0:
            return max(self.total_files - self.files_done, 0) * elapsed / self.files_done
        return None

    def _iteration_completed(self, engine: Engine) -> None:
        batch = engine.state.batch
        files = _files_in_batch(batch, self.image_key)
        slices = self._source_slices(batch)
        if slices is None:  # no header count for these files: count what the batch holds
            slices = slices_in_batch(batch, self.image_key, self.spatial_dims)
        self.files_done += files
        self.slices_done += slices
        eta = self.eta_seconds()
        eta_str = "?" if eta is None else str(datetime.timedelta(seconds=round(eta)))
        name = _file_name(batch, self.image_key)
        if self._bar is not None:
            progress = {"file": f"{self.files_done}/{self.total_files or '?'}", "eta": eta_str}
            self._bar.set_postfix(progress, refresh=False)
            self._bar.update(slices if self.total_slices is not None else files)
        slices_str = f" slices {self.slices_done}/{self.total_slices}" if self.total_slices is not None else ""
        self.logger.info(f"file {self.files_done}/{self.total_files or '?'} {name}{slices_str} eta {eta_str}")

    def _source_slices(self, batch: Any) -> int | None:
        """Slices of the batch's input files as the header counted them (the unit of the total), else ``None``.

        Counting the preprocessed batch instead would mix units when preprocessing changes the slice count (a
        through-plane SR input is interpolated onto ``s`` times as many slices before the model sees it).
        """
        counts = getattr(self.inputs, "slices", None) or {}
        items = batch if isinstance(batch, (list, tuple)) else [batch]
        total = 0
        for item in items:
            image = item.get(self.image_key) if isinstance(item, dict) else None
            names = (getattr(image, "meta", None) or {}).get("filename_or_obj")
            for name in names if isinstance(names, (list, tuple)) else [names]:
                if name is None or str(name) not in counts:
                    return None
                total += counts[str(name)]
        return total

    def _close(self, engine: Engine) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _file_name(batch: Any, image_key: str) -> str:
    """The base name of the batch's first input file, from its MetaTensor metadata ('' when unknown)."""
    item = batch[0] if isinstance(batch, (list, tuple)) and batch else batch
    image = item.get(image_key) if isinstance(item, dict) else None
    meta = getattr(image, "meta", None) or {}
    name = meta.get("filename_or_obj", "")
    if isinstance(name, (list, tuple)):
        name = name[0] if name else ""
    return os.path.basename(str(name))
