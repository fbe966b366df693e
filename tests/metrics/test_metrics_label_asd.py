"""Per-label ASD (mm): hand values on shifted plates, spacing from the truth's affine, N/A cases, handler in a loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from common.handlers import LabelASD
from common.metrics import LabelASDMetric, surface_distances
from monai.data import DataLoader, MetaTensor
from monai.engines import SupervisedEvaluator
from monai.handlers import from_engine

SHAPE = (12, 10, 10)
#: non-orthogonal direction columns (an oblique, sheared header); the column norms are the voxel sizes
_DIRECTIONS = np.array([[1.0, 0.6, 0.3], [-0.55, 1.0, 0.2], [0.45, 0.3, 9.9]])
_DIRECTIONS = _DIRECTIONS / np.linalg.norm(_DIRECTIONS, axis=0)


def _affine(spacing) -> torch.Tensor:
    affine = torch.eye(4, dtype=torch.float64)
    affine[:3, :3] = torch.as_tensor(_DIRECTIONS * np.asarray(spacing, dtype=np.float64))
    affine[:3, 3] = torch.tensor([-80.0, 15.0, 4.0])
    return affine


def _plate(row: int, value: int = 500) -> torch.Tensor:
    """A (1, *SHAPE) map with a 2-voxel-thick 6x6 plate of ``value`` on rows ``row, row + 1`` of axis 0."""
    label = torch.zeros(1, *SHAPE, dtype=torch.int64)
    label[0, row : row + 2, 2:8, 2:8] = value
    return label


def _plate_asd(shift: int, spacing_0: float) -> float:
    """Hand value for two 2-voxel plates ``shift >= 1`` rows apart along axis 0 (spacing ``spacing_0``).

    Every voxel of a 2-voxel plate is on its surface, and the nearest surface voxel of the other plate is straight
    along axis 0: of the two layers of each plate one is ``shift - 1`` rows from the other plate, one ``shift`` rows,
    in both directions, so ASD = mean(shift - 1, shift) * spacing_0 = (shift - 1/2) * spacing_0.
    """
    return (shift - 0.5) * spacing_0


@pytest.mark.parametrize("shift", [1, 2, 3])
@pytest.mark.parametrize("spacing", [(1.0, 0.7, 0.7), (2.5, 0.7, 1.3)])
def test_shifted_plates_give_the_hand_value_in_mm_of_the_truths_spacing(shift, spacing):
    truth = MetaTensor(_plate(3), affine=_affine(spacing))
    prediction = _plate(3 + shift)
    value = LabelASDMetric(label=500)(prediction[None], truth[None])
    assert value.shape == (1, 1)
    assert float(value) == pytest.approx(_plate_asd(shift, spacing[0]))


def test_only_the_scored_label_counts_and_filled_blocks_match_surface_distances():
    spacing = (1.5, 0.5, 2.0)
    truth = _plate(1)
    truth[0, 5:10, 1:6, 3:9] = 200  # a filled block: interior voxels are not surface
    prediction = _plate(3)
    prediction[0, 6:11, 3:8, 2:8] = 200
    truth = MetaTensor(truth, affine=_affine(spacing))
    asd_200 = float(LabelASDMetric(label=200)(prediction[None], truth[None]))
    asd_500 = float(LabelASDMetric(label=500)(prediction[None], truth[None]))
    expected_200 = surface_distances(prediction[0] == 200, truth.as_tensor()[0] == 200, spacing=spacing)["asd"]
    assert asd_200 == pytest.approx(expected_200)
    assert asd_200 != pytest.approx(surface_distances(prediction[0] == 200, truth.as_tensor()[0] == 200)["asd"])
    assert asd_500 == pytest.approx(_plate_asd(2, spacing[0]))  # the 200 block does not disturb label 500


def test_twice_the_spacing_gives_twice_the_distance_and_the_predictions_affine_is_ignored():
    spacing = np.array([1.25, 0.8, 3.0])
    truth, prediction = _plate(2), _plate(5)
    prediction[0, 4:6, 1:9, 2:5] = 500  # a non-planar difference, so every axis' spacing matters
    single = LabelASDMetric(label=500)(prediction[None], MetaTensor(truth, affine=_affine(spacing))[None])
    double = LabelASDMetric(label=500)(prediction[None], MetaTensor(truth, affine=_affine(2 * spacing))[None])
    assert float(double) == pytest.approx(2 * float(single)) and float(single) > 0
    misleading = MetaTensor(prediction, affine=_affine(10 * spacing))
    same = LabelASDMetric(label=500)(misleading[None], MetaTensor(truth, affine=_affine(spacing))[None])
    assert float(same) == pytest.approx(float(single))


def test_plain_tensors_count_in_voxels():
    value = LabelASDMetric(label=500)(_plate(2)[None], _plate(4)[None])
    assert float(value) == pytest.approx(_plate_asd(2, 1.0))


def test_a_label_missing_from_either_map_is_nan_and_left_out_of_the_mean():
    spacing = (2.0, 1.0, 1.0)
    metric = LabelASDMetric(label=500)
    truth = MetaTensor(_plate(3), affine=_affine(spacing))
    metric(_plate(4)[None], truth[None])  # 1.5 rows * 2 mm
    metric(torch.zeros_like(_plate(0))[None], truth[None])  # missing from the prediction: N/A
    metric(_plate(4)[None], MetaTensor(torch.zeros_like(_plate(0)), affine=_affine(spacing))[None])  # from the truth
    buffer = metric.get_buffer()
    assert buffer.shape == (3, 1)
    assert float(buffer[0, 0]) == pytest.approx(1.0) and torch.isnan(buffer[1:]).all()
    assert float(metric.aggregate()) == pytest.approx(1.0)

    empty = LabelASDMetric(label=500)
    empty(torch.zeros_like(_plate(0))[None], truth[None])
    assert math.isnan(float(empty.aggregate()))


def test_batches_and_lists_give_one_value_per_case():
    spacing = (1.0, 1.0, 1.0)
    truth = MetaTensor(torch.stack([_plate(2), _plate(2)]), affine=_affine(spacing))
    values = LabelASDMetric(label=500)(torch.stack([_plate(3), _plate(5)]), truth)
    assert values.flatten().tolist() == pytest.approx([0.5, 2.5])
    truths = [
        MetaTensor(_plate(2), affine=_affine((1.0, 1.0, 1.0))),
        MetaTensor(_plate(2), affine=_affine((2.0, 1, 1))),
    ]
    values = LabelASDMetric(label=500)([_plate(3), _plate(5)], truths)  # per-case spacing from each truth
    assert values.flatten().tolist() == pytest.approx([0.5, 5.0])


def test_a_batch_of_cases_on_different_spacings_uses_each_cases_spacing():
    truth = MetaTensor(torch.stack([_plate(2), _plate(2)]))
    truth.affine = torch.stack([_affine((1.0, 1.0, 1.0)), _affine((2.0, 1.0, 1.0))])
    truth.is_batch = True
    values = LabelASDMetric(label=500)(torch.stack([_plate(5), _plate(5)]), truth)
    assert values.flatten().tolist() == pytest.approx([2.5, 5.0])


@pytest.mark.parametrize("label", [1.5, "500", True, None])
def test_a_non_integer_label_is_refused(label):
    with pytest.raises(ValueError, match="label"):
        LabelASDMetric(label=label)


def test_a_mask_is_refused():
    with pytest.raises(ValueError, match="mask is not supported"):
        LabelASDMetric(label=500)(_plate(2)[None], _plate(3)[None], mask=torch.ones(1, 1, *SHAPE))


def test_handler_in_an_evaluator_reports_the_mean_of_the_available_cases_and_the_details():
    """Three cases in one batch: two spacings (each read from its own truth), the last without the label predicted."""
    data = [
        {"image": _plate(5), "label": MetaTensor(_plate(2), affine=_affine((2.0, 1.0, 1.0)))},
        {"image": _plate(3), "label": MetaTensor(_plate(2), affine=_affine((1.0, 1.0, 1.0)))},
        {"image": torch.zeros_like(_plate(0)), "label": MetaTensor(_plate(2), affine=_affine((1.0, 1.0, 1.0)))},
    ]

    class _Copy(torch.nn.Module):  # the "prediction" is the input map
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(1))

        def forward(self, x):
            return x * self.weight

    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(data, batch_size=3),
        network=_Copy(),
        key_val_metric={"asd_lv": LabelASD(label=500, output_transform=from_engine(["pred", "label"]))},
    )
    evaluator.run()
    details = evaluator.state.metric_details["asd_lv"]
    expected = [_plate_asd(3, 2.0), _plate_asd(1, 1.0)]
    assert details.shape == (3, 1)
    assert details[:2, 0].tolist() == pytest.approx(expected) and math.isnan(float(details[2, 0]))
    assert evaluator.state.metrics["asd_lv"] == pytest.approx(np.mean(expected))
