"""MaskedPSNR / MaskedSSIM handlers: whole images, or a mask as the third entry of the output transform."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from common.handlers import MaskedPSNR, MaskedSSIM
from monai.engines import SupervisedEvaluator
from monai.handlers import from_engine


def test_metric_handlers_take_a_mask_from_the_output_transform():
    """``(y_pred, y, mask)`` from ``output_transform``: the masked PSNR of each case."""
    target = torch.zeros(1, 8, 8)
    pred = target.clone()
    pred[:, :4] = 1.0
    mask = torch.zeros(1, 8, 8)
    mask[:, :4] = 1
    data = [{"image": pred, "label": target, "mask": mask}]

    class _Copy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(1))

        def forward(self, x):
            return x * self.weight

    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=torch.utils.data.DataLoader(data, batch_size=1),
        network=_Copy(),
        key_val_metric={
            "psnr": MaskedPSNR(data_range=2.0, output_transform=from_engine(["pred", "label"])),
        },
        additional_metrics={
            "psnr_masked": MaskedPSNR(
                data_range=2.0, output_transform=lambda out: from_engine(["pred", "label"])(out) + ([data[0]["mask"]],)
            )
        },
    )
    evaluator.run()
    assert evaluator.state.metric_details["psnr_masked"].shape == (1, 1)
    assert evaluator.state.metrics["psnr"] == pytest.approx(10 * np.log10(4 / 0.5))
    assert evaluator.state.metrics["psnr_masked"] == pytest.approx(10 * np.log10(4 / 1.0))


def test_ssim_handler_on_identical_images_is_one():
    images = [{"image": torch.rand(1, 16, 16), "label": torch.zeros(1, 16, 16)}]
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=torch.utils.data.DataLoader(images, batch_size=1),
        network=torch.nn.Identity(),
        key_val_metric={"ssim": MaskedSSIM(data_range=1.0, output_transform=from_engine(["pred", "image"]))},
    )
    evaluator.run()
    assert evaluator.state.metrics["ssim"] == pytest.approx(1.0)
