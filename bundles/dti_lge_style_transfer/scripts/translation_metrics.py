"""Evaluation of a DTI -> LGE translation: is the MI mask preserved, and how close is the image to the real LGE?"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from common.metrics import dice, masked_psnr, masked_ssim

__all__ = ["TranslationMetrics", "METRIC_NAMES"]

logger = logging.getLogger(__name__)

#: per-case metrics written by ``TranslationMetrics`` (CSV columns after ``case``)
METRIC_NAMES = (
    "dice_translated_vs_truth",
    "dice_source_lge_vs_truth",
    "dice_translated_vs_source_lge",
    "ssim_translated_vs_lge",
    "psnr_translated_vs_lge",
)


def _item(data: Any, index: int, key: str) -> Any:
    """``data[index][key]`` of a decollated list, or ``data[key][index]`` of a batch dict; ``None`` when absent."""
    if isinstance(data, (list, tuple)):
        return data[index].get(key) if index < len(data) and isinstance(data[index], dict) else None
    if isinstance(data, dict) and key in data:
        return data[key][index]
    return None


def _length(data: Any, key: str) -> int:
    if isinstance(data, (list, tuple)):
        return len(data)
    return len(data[key])


def _image(value: Any) -> np.ndarray:
    """``(1, H, W)`` tensor/array -> ``(H, W)`` float32 numpy."""
    array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    return array.reshape(array.shape[-2:]).astype(np.float32)


def write_grid_png(path: str, panels: Sequence[tuple[str, np.ndarray, Sequence[np.ndarray]]], title: str = "") -> None:
    """Write one PNG with a panel per ``(name, image, [contour masks])``; contours yellow (truth) then red, cyan.

    Images are shown with their own grey-level range; the masks must have the image's shape.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.3))
    for ax, (name, image, masks) in zip(np.atleast_1d(axes), panels):
        ax.imshow(image.T, cmap="gray", origin="lower")
        for mask, colour in zip(masks, ("yellow", "red", "cyan")):
            if mask is not None and mask.any():
                ax.contour(mask.T, levels=[0.5], colors=[colour], linewidths=0.8)
        ax.set_title(name)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


class TranslationMetrics:
    """Ignite handler scoring each translated image with the frozen Segmentor and against its paired real LGE.

    Wang et al., section II.A and Fig. 3: the Segmentor's mask of the translated image should match the original
    LGE's mask (``Loss_TransferSeg`` makes it so during training). For every evaluated case this handler reads the
    decollated ``engine.state.output``/``engine.state.batch`` items (translated image ``pred``, source ``image``
    (DTI), the paired ``lge`` and the MI ``label``, all ``(1, H, W)`` on the same 64x64 grid), runs the Segmentor on
    ``pred`` and on ``lge`` (argmax of its logits) and records

    - ``dice_translated_vs_truth``: Dice of the MI label between S(translated) and the manual mask;
    - ``dice_source_lge_vs_truth``: the same for S(real LGE), the Segmentor's own ceiling;
    - ``dice_translated_vs_source_lge``: Dice between S(translated) and S(real LGE), i.e. how well the translation
      preserves the mask the Segmentor sees (the quantity ``Loss_TransferSeg`` drives);
    - ``ssim_translated_vs_lge``, ``psnr_translated_vs_lge``: ``common.metrics.masked_ssim``/``masked_psnr`` of the
      translated image against the paired real LGE, over the whole 64x64 field of view (``mask=None``: the images
      have no padding), with ``data_range`` the width of the images' range (2 for ``[-1, 1]``).

    Dice follows ``common.metrics.dice`` (a label absent from both masks scores 1.0). When the run completes it
    writes ``<output_dir>/<csv_name>`` (one row per case), ``<output_dir>/<summary_name>`` (mean, std, n per
    metric) and, when ``write_png``, ``<output_dir>/grids/<case>.png`` (DTI | translated | real LGE, truth in yellow,
    Segmentor prediction in red), and puts the means into ``engine.state.metrics``.

    Args:
        segmentor: the frozen Segmentor (2-channel logits); called in eval mode without gradients.
        output_dir: folder for the CSV, the summary and the grids (created).
        image_range: value range of ``pred`` and ``lge`` (the generator's Tanh range).
        source_key, target_key, label_key, pred_key, case_key: item keys.
        mi_label: label value of the infarct in the masks.
        write_png: write the PNG grids.
        csv_name, summary_name: file names.

    Raises:
        KeyError: naming the key when an evaluated item lacks ``pred``, ``lge`` or ``label``.

    Examples::

        TranslationMetrics(segmentor, "eval").attach(evaluator)
    """

    def __init__(
        self,
        segmentor: torch.nn.Module,
        output_dir: str,
        image_range: Sequence[float] = (-1.0, 1.0),
        source_key: str = "image",
        target_key: str = "lge",
        label_key: str = "label",
        pred_key: str = "pred",
        case_key: str = "case",
        mi_label: int = 1,
        write_png: bool = True,
        csv_name: str = "metrics.csv",
        summary_name: str = "metrics_summary.json",
    ) -> None:
        if len(image_range) != 2 or not image_range[1] > image_range[0]:
            raise ValueError(f"image_range must be (low, high) with high > low, got {image_range!r}.")
        self.segmentor = segmentor
        self.output_dir = output_dir
        self.data_range = float(image_range[1] - image_range[0])
        self.source_key, self.target_key, self.label_key = source_key, target_key, label_key
        self.pred_key, self.case_key = pred_key, case_key
        self.mi_label = int(mi_label)
        self.write_png = write_png
        self.csv_name, self.summary_name = csv_name, summary_name
        self.rows: list[dict[str, Any]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.iteration_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.epoch_completed)

    def reset(self, engine: Engine | None = None) -> None:
        self.rows = []

    def _get(self, engine: Engine, index: int, key: str, required: bool = True) -> Any:
        for data in (engine.state.output, engine.state.batch):
            value = _item(data, index, key)
            if value is not None:
                return value
        if required:
            raise KeyError(f"TranslationMetrics: evaluated item {index} has no {key!r} (output or batch).")
        return None

    @torch.no_grad()
    def _segment(self, images: list[torch.Tensor]) -> np.ndarray:
        """Argmax masks ``(N, H, W)`` of the Segmentor on ``(1, H, W)`` images."""
        self.segmentor.eval()
        device = next(self.segmentor.parameters()).device
        batch = torch.stack([torch.as_tensor(image).float().to(device) for image in images])
        logits = self.segmentor(batch)
        return logits.argmax(dim=1).cpu().numpy()

    def iteration_completed(self, engine: Engine) -> None:
        count = _length(engine.state.output, self.pred_key)
        for index in range(count):
            pred = self._get(engine, index, self.pred_key)
            lge = self._get(engine, index, self.target_key)
            label = _image(self._get(engine, index, self.label_key)).round().astype(np.int64)
            source = self._get(engine, index, self.source_key, required=False)
            case = self._get(engine, index, self.case_key, required=False)
            case = str(case) if case is not None else f"case_{len(self.rows):04d}"
            mask_translated, mask_lge = self._segment([pred, lge])
            translated, real = _image(pred), _image(lge)
            row = {
                "case": case,
                "dice_translated_vs_truth": dice(mask_translated, label, labels=self.mi_label),
                "dice_source_lge_vs_truth": dice(mask_lge, label, labels=self.mi_label),
                "dice_translated_vs_source_lge": dice(mask_translated, mask_lge, labels=self.mi_label),
                "ssim_translated_vs_lge": masked_ssim(translated, real, data_range=self.data_range),
                "psnr_translated_vs_lge": masked_psnr(translated, real, data_range=self.data_range),
            }
            self.rows.append(row)
            if self.write_png:
                grid_dir = os.path.join(self.output_dir, "grids")
                os.makedirs(grid_dir, exist_ok=True)
                truth = label == self.mi_label
                panels = [
                    ("DTI", _image(source) if source is not None else np.zeros_like(translated), [truth]),
                    ("translated (LGE style)", translated, [truth, mask_translated == self.mi_label]),
                    ("real LGE", real, [truth, mask_lge == self.mi_label]),
                ]
                title = (
                    f"{case}: Segmentor Dice translated {row['dice_translated_vs_truth']:.3f}, "
                    f"LGE {row['dice_source_lge_vs_truth']:.3f}"
                )
                write_grid_png(os.path.join(grid_dir, f"{case}.png"), panels, title=title)

    def summary(self) -> dict[str, dict[str, float]]:
        """``{metric: {"mean", "std", "n"}}`` over the recorded cases (population std; ``nan`` when empty)."""
        result = {}
        for name in METRIC_NAMES:
            values = np.asarray([row[name] for row in self.rows], dtype=np.float64)
            finite = values[np.isfinite(values)]
            result[name] = {
                "mean": float(finite.mean()) if finite.size else float("nan"),
                "std": float(finite.std()) if finite.size else float("nan"),
                "n": int(finite.size),
            }
        return result

    def epoch_completed(self, engine: Engine) -> None:
        os.makedirs(self.output_dir, exist_ok=True)
        with open(os.path.join(self.output_dir, self.csv_name), "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["case", *METRIC_NAMES])
            writer.writeheader()
            writer.writerows(self.rows)
        summary = self.summary()
        with open(os.path.join(self.output_dir, self.summary_name), "w") as handle:
            json.dump(summary, handle, indent=2)
        for name, values in summary.items():
            engine.state.metrics[name] = values["mean"]
        logger.info(
            "translation metrics over %d cases: %s",
            len(self.rows),
            ", ".join(f"{name} {values['mean']:.4f}" for name, values in summary.items()),
        )
