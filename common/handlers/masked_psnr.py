"""Handler form of ``common.metrics.MaskedPSNRMetric`` for ``key_val_metric`` / ``additional_metrics``."""

from __future__ import annotations

__all__ = ["MaskedPSNR"]

from collections.abc import Callable

from common.handlers._masked_metric_handler import MaskedMetricHandler
from common.metrics.masked_psnr_metric import MaskedPSNRMetric


class MaskedPSNR(MaskedMetricHandler):
    """Ignite metric handler of the masked PSNR (dB) per case, for MONAI evaluators and ``MetricsSaver``.

    ``engine.state.metrics[name]`` is the mean of the finite per-case values and, with ``save_details``,
    ``engine.state.metric_details[name]`` the ``(N, C)`` per-case values (``MetricsSaver`` writes
    ``<name>_raw.csv`` from them).

    Args:
        data_range: the value range of the images (2.0 for ``[-1, 1]``); ``None``: ``max - min`` of each reference.
        output_transform: engine output -> ``(y_pred, y)`` or ``(y_pred, y, mask)``, e.g.
            ``monai.handlers.from_engine(["pred", "lge"])``.
        save_details: keep the per-case values in ``engine.state.metric_details``.

    Examples::

        "psnr_translated_vs_lge": {"_target_": "common.handlers.MaskedPSNR", "data_range": 2.0,
                                   "output_transform": "$monai.handlers.from_engine(['pred', 'lge'])"}
    """

    def __init__(
        self, data_range: float | None = None, output_transform: Callable = lambda x: x, save_details: bool = True
    ) -> None:
        super().__init__(
            metric_fn=MaskedPSNRMetric(data_range=data_range),
            output_transform=output_transform,
            save_details=save_details,
        )
