"""Handler form of ``common.metrics.LabelASDMetric`` for ``key_val_metric`` / ``additional_metrics``."""

from __future__ import annotations

__all__ = ["LabelASD"]

from collections.abc import Callable

from common.metrics.label_asd_metric import LabelASDMetric
from monai.handlers import IgniteMetricHandler


class LabelASD(IgniteMetricHandler):
    """Ignite metric handler of the average symmetric surface distance (mm) of one label, per case (NaN: N/A).

    Examples::

        "asd_myo": {"_target_": "common.handlers.LabelASD", "label": 200,
                    "output_transform": "$monai.handlers.from_engine(['pred', 'label'])"}
    """

    def __init__(self, label: int = 1, output_transform: Callable = lambda x: x, save_details: bool = True) -> None:
        super().__init__(
            metric_fn=LabelASDMetric(label=label), output_transform=output_transform, save_details=save_details
        )
