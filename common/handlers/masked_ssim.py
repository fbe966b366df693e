"""Handler form of ``common.metrics.MaskedSSIMMetric`` for ``key_val_metric`` / ``additional_metrics``."""

from __future__ import annotations

__all__ = ["MaskedSSIM"]

from collections.abc import Callable

from common.handlers._masked_metric_handler import MaskedMetricHandler
from common.metrics.masked_ssim_metric import MaskedSSIMMetric


class MaskedSSIM(MaskedMetricHandler):
    """Ignite metric handler of the masked SSIM per case, for MONAI evaluators and ``MetricsSaver``.

    ``engine.state.metrics[name]`` is the mean of the finite per-case values and, with ``save_details``,
    ``engine.state.metric_details[name]`` the ``(N, C)`` per-case values.

    Args:
        data_range: the value range of the images (2.0 for ``[-1, 1]``); ``None``: ``max - min`` of each reference.
        slice_axis: for volumes, a 2D SSIM map per slice along this spatial axis; ``None``: a window of the
            input's dimensionality.
        output_transform: engine output -> ``(y_pred, y)`` or ``(y_pred, y, mask)``.
        save_details: keep the per-case values in ``engine.state.metric_details``.

    Examples::

        "ssim_translated_vs_lge": {"_target_": "common.handlers.MaskedSSIM", "data_range": 2.0,
                                   "output_transform": "$monai.handlers.from_engine(['pred', 'lge'])"}
    """

    def __init__(
        self,
        data_range: float | None = None,
        slice_axis: int | None = None,
        output_transform: Callable = lambda x: x,
        save_details: bool = True,
    ) -> None:
        super().__init__(
            metric_fn=MaskedSSIMMetric(data_range=data_range, slice_axis=slice_axis),
            output_transform=output_transform,
            save_details=save_details,
        )
