"""Handler form of ``common.metrics.LabelDiceMetric`` for ``key_val_metric`` / ``additional_metrics``."""

from __future__ import annotations

__all__ = ["LabelDice"]

from collections.abc import Callable

from common.metrics.label_dice_metric import LabelDiceMetric
from monai.handlers import IgniteMetricHandler


class LabelDice(IgniteMetricHandler):
    """Ignite metric handler of the Dice of one label between two label maps per case (empty-vs-empty = 1.0).

    CycleGANSeg's Segmentor-agreement Dice reads the Segmentor's masks that ``common.handlers.SegmentorMasks`` put
    into the output: ``from_engine(["segmentor_pred", "label"])`` (translated vs manual mask),
    ``["segmentor_lge", "label"]`` (the Segmentor's ceiling on the real LGE) and
    ``["segmentor_pred", "segmentor_lge"]`` (how well the translation keeps the mask the Segmentor sees).

    Args:
        label: the label value scored.
        output_transform: engine output -> ``(y_pred, y)`` label maps, ``(B, 1, *S)`` or lists of ``(1, *S)``.
        save_details: keep the per-case values in ``engine.state.metric_details``.

    Examples::

        "dice_translated_vs_truth": {"_target_": "common.handlers.LabelDice", "label": 1,
                                     "output_transform": "$monai.handlers.from_engine(['segmentor_pred', 'label'])"}
    """

    def __init__(self, label: int = 1, output_transform: Callable = lambda x: x, save_details: bool = True) -> None:
        super().__init__(
            metric_fn=LabelDiceMetric(label=label), output_transform=output_transform, save_details=save_details
        )
