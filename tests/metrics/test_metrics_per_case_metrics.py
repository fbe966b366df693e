"""MaskedPSNRMetric, MaskedSSIMMetric, LabelDiceMetric: the common.metrics functions as MONAI cumulative metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from common.metrics import LabelDiceMetric, MaskedPSNRMetric, MaskedSSIMMetric, dice, masked_psnr, masked_ssim

CASES = [  # (metric, y_pred shape, expected per-call output shape)
    (MaskedPSNRMetric(data_range=1.0), (3, 1, 16, 16), (3, 1)),
    (MaskedPSNRMetric(data_range=1.0), (2, 2, 8, 8, 8), (2, 2)),
    (MaskedSSIMMetric(data_range=1.0), (2, 1, 16, 16), (2, 1)),
    (MaskedSSIMMetric(data_range=1.0, slice_axis=2), (1, 1, 16, 16, 3), (1, 1)),
]


@pytest.mark.parametrize("metric, shape, expected", CASES)
def test_output_shape_per_case_and_channel(metric, shape, expected):
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(shape, generator=generator)
    metric.reset()
    assert metric(target + 0.05 * torch.rand(shape, generator=generator), target).shape == expected


def test_psnr_of_known_mse_and_the_mean_leaves_out_identical_images():
    metric = MaskedPSNRMetric(data_range=1.0)
    target = torch.zeros(2, 1, 8, 8)
    pred = target.clone()
    pred[0] += 0.1  # MSE 0.01 -> 20 dB; case 1 identical -> inf
    values = metric(pred, target)
    assert values[0, 0].item() == pytest.approx(20.0) and values[1, 0].item() == float("inf")
    assert metric.aggregate().item() == pytest.approx(20.0)  # the finite values only, as the bundles reported


def test_mask_restricts_the_region_per_case():
    target = torch.zeros(2, 1, 8, 8)
    pred = target.clone()
    pred[:, :, :4] = 1.0  # wrong in the top half only
    mask = torch.zeros(2, 1, 8, 8)
    mask[0, :, 4:] = 1  # case 0: the correct half -> identical -> inf
    mask[1] = 1  # case 1: everywhere -> MSE 0.5
    values = MaskedPSNRMetric(data_range=1.0)(pred, target, mask=mask)
    assert values[0, 0].item() == float("inf")
    assert values[1, 0].item() == pytest.approx(10 * np.log10(1 / 0.5))
    listed = MaskedPSNRMetric(data_range=1.0)(list(pred), list(target), mask=list(mask))  # decollated items
    torch.testing.assert_close(listed, values)


def test_ssim_equals_masked_ssim_in_float32():
    generator = torch.Generator().manual_seed(1)
    target = torch.rand(2, 1, 24, 24, generator=generator, dtype=torch.float64)
    pred = target + 0.1 * torch.rand(2, 1, 24, 24, generator=generator, dtype=torch.float64)
    values = MaskedSSIMMetric(data_range=2.0)(pred, target)
    for b in range(2):
        expected = masked_ssim(
            pred[b, 0].numpy().astype(np.float32), target[b, 0].numpy().astype(np.float32), data_range=2.0
        )
        assert values[b, 0].item() == expected
    assert MaskedSSIMMetric(data_range=1.0)(target, target)[0, 0].item() == pytest.approx(1.0)


def test_psnr_equals_masked_psnr_in_float32():
    generator = torch.Generator().manual_seed(2)
    target = torch.rand(1, 1, 16, 16, generator=generator)
    pred = torch.rand(1, 1, 16, 16, generator=generator)
    assert MaskedPSNRMetric(data_range=None)(pred, target)[0, 0].item() == masked_psnr(
        pred[0, 0].numpy(), target[0, 0].numpy()
    )


def test_label_dice_known_values_and_empty_rule():
    pred = torch.tensor([[[[0, 1], [1, 1]]], [[[0, 0], [0, 0]]], [[[2, 2], [0, 0]]]])
    target = torch.tensor([[[[0, 1], [0, 1]]], [[[0, 0], [0, 0]]], [[[0, 0], [2, 2]]]]).float()
    metric = LabelDiceMetric(label=1)
    values = metric(pred, target)
    assert values[:, 0].tolist() == [0.8, 1.0, 1.0]  # 2*2/(3+2); empty vs empty = 1.0; label 1 absent from both
    assert metric.aggregate().item() == pytest.approx(np.mean([0.8, 1.0, 1.0]))
    assert LabelDiceMetric(label=2)(pred, target)[:, 0].tolist() == [1.0, 1.0, 0.0]
    assert values[0, 0].item() == dice(pred[0], target[0], labels=1)


def test_aggregate_of_nothing_finite_is_nan():
    metric = MaskedPSNRMetric(data_range=1.0)
    metric(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))  # identical: inf
    assert np.isnan(metric.aggregate().item())


def test_deterministic():
    generator = torch.Generator().manual_seed(3)
    target = torch.rand(2, 1, 16, 16, generator=generator)
    pred = torch.rand(2, 1, 16, 16, generator=generator)
    for metric_type in (MaskedPSNRMetric, MaskedSSIMMetric):
        first, second = metric_type(data_range=1.0)(pred, target), metric_type(data_range=1.0)(pred, target)
        assert torch.equal(first, second)


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: MaskedPSNRMetric(data_range=0.0), "data_range"),
        (lambda: MaskedSSIMMetric(data_range=-1.0), "data_range"),
        (lambda: MaskedSSIMMetric(slice_axis=3), "slice_axis"),
        (lambda: LabelDiceMetric(label=1.5), "label"),
        (lambda: LabelDiceMetric(label=True), "label"),
    ],
)
def test_bad_arguments_raise(build, name):
    with pytest.raises(ValueError, match=name):
        build()


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="same shape"):
        MaskedPSNRMetric(data_range=1.0)(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="mask"):
        MaskedPSNRMetric(data_range=1.0)(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4), mask=torch.ones(1, 1, 4, 5))
    with pytest.raises(ValueError, match="integer"):
        LabelDiceMetric(label=1)(torch.full((1, 1, 2, 2), 0.5), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="mask"):
        LabelDiceMetric(label=1)(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), mask=torch.ones(1, 1, 2, 2))
