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


def test_ssim_handler_averages_the_full_image_map_inside_the_mask_at_its_data_range():
    """The handler's value is skimage's Gaussian SSIM map (sigma 1.5, population covariance) of the whole image,
    averaged inside the mask from the output transform; data_range reaches it (another range, another value)."""
    from skimage.metrics import structural_similarity

    generator = torch.Generator().manual_seed(0)
    target = torch.rand(1, 24, 24, generator=generator)
    pred = (target + 0.2 * torch.randn(1, 24, 24, generator=generator)).clamp(0, 1)
    mask = torch.zeros(1, 24, 24)
    mask[:, 4:12, 6:20] = 1
    data = [{"image": pred, "label": target, "mask": mask}]

    def evaluate(data_range: float) -> float:
        evaluator = SupervisedEvaluator(
            device=torch.device("cpu"),
            val_data_loader=torch.utils.data.DataLoader(data, batch_size=1),
            network=torch.nn.Identity(),
            key_val_metric={
                "ssim": MaskedSSIM(
                    data_range=data_range,
                    output_transform=lambda out: from_engine(["pred", "label"])(out) + ([mask],),
                )
            },
        )
        evaluator.run()
        return evaluator.state.metrics["ssim"]

    def skimage_value(data_range: float) -> float:
        _, ssim_map = structural_similarity(
            target[0].numpy(), pred[0].numpy(), data_range=data_range, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False, full=True,
        )  # fmt: skip
        assert abs(float(ssim_map[mask[0].numpy() > 0].mean()) - float(ssim_map.mean())) > 1e-3  # the mask matters
        return float(ssim_map[mask[0].numpy() > 0].mean())

    for data_range in (1.0, 2.0):
        assert evaluate(data_range) == pytest.approx(skimage_value(data_range), rel=1e-5)
    assert abs(evaluate(2.0) - evaluate(1.0)) > 1e-3
