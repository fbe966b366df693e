"""ASD/HD95 in mm on known geometry, cross-checked by brute force and against MONAI's metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from common.metrics import surface_distances
from scipy import ndimage


def _brute_force(pred: np.ndarray, target: np.ndarray, spacing) -> dict[str, float]:
    """Pairwise distances between border points (independent of distance transforms)."""

    def border(mask):
        eroded = ndimage.binary_erosion(mask, ndimage.generate_binary_structure(mask.ndim, 1), border_value=0)
        return np.argwhere(mask & ~eroded) * np.asarray(spacing)

    p, t = border(pred), border(target)
    d = np.sqrt(((p[:, None, :] - t[None, :, :]) ** 2).sum(-1))
    d_pt, d_tp = d.min(1), d.min(0)
    return {
        "asd": float(np.concatenate([d_pt, d_tp]).mean()),
        "hd95": float(max(np.percentile(d_pt, 95), np.percentile(d_tp, 95))),
    }


def test_shifted_square_sheet_3d_equals_shift_in_mm():
    # a 1-voxel-thick square sheet, shifted by 2 voxels along axis 0 of 3 mm: every surface point is 6 mm away
    target = np.zeros((12, 16, 16), dtype=np.uint8)
    target[4, 3:13, 3:13] = 1
    pred = np.roll(target, 2, axis=0)
    result = surface_distances(pred, target, spacing=(3.0, 0.7, 0.7))
    assert result["asd"] == pytest.approx(6.0)
    assert result["hd95"] == pytest.approx(6.0)


@pytest.mark.parametrize("axis, spacing, expected", [(0, (2.0, 0.5), 6.0), (1, (2.0, 0.5), 1.5)])
def test_shifted_line_2d_uses_per_axis_spacing(axis, spacing, expected):
    target = np.zeros((20, 20), dtype=bool)
    if axis == 0:
        target[5, 4:15] = True
    else:
        target[4:15, 5] = True
    pred = np.roll(target, 3, axis=axis)
    result = surface_distances(torch.as_tensor(pred), torch.as_tensor(target), spacing=spacing)
    assert result == pytest.approx({"asd": expected, "hd95": expected})


def test_shifted_filled_square_matches_brute_force_and_monai():
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    target = np.zeros((32, 32), dtype=bool)
    target[8:20, 10:24] = True
    pred = np.roll(target, (3, -2), axis=(0, 1))
    spacing = (1.5, 0.5)
    result = surface_distances(pred, target, spacing)
    assert result == pytest.approx(_brute_force(pred, target, spacing))
    # Hausdorff (max) of a shifted square is the shift; HD95 and ASD are below it
    shift = np.hypot(3 * 1.5, 2 * 0.5)
    assert 0 < result["asd"] < result["hd95"] <= shift + 1e-9

    p = torch.as_tensor(pred)[None, None].float()
    t = torch.as_tensor(target)[None, None].float()
    hd95 = compute_hausdorff_distance(p, t, include_background=True, percentile=95, spacing=spacing)
    asd = compute_average_surface_distance(p, t, include_background=True, symmetric=True, spacing=spacing)
    assert result["hd95"] == pytest.approx(float(hd95))
    assert result["asd"] == pytest.approx(float(asd))


def test_identical_masks_are_zero():
    mask = np.zeros((10, 10, 6), dtype=np.int64)
    mask[2:7, 3:8, 1:4] = 1
    assert surface_distances(mask, mask, spacing=1.0) == {"asd": 0.0, "hd95": 0.0}


def test_empty_masks_give_nan():
    mask = np.zeros((8, 8))
    full = mask.copy()
    full[2:5, 2:5] = 1
    for pred, target in [(mask, mask), (mask, full), (full, mask)]:
        result = surface_distances(pred, target, spacing=(1.0, 1.0))
        assert np.isnan(result["asd"]) and np.isnan(result["hd95"])


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="`spacing`"):
        surface_distances(np.ones((4, 4)), np.ones((4, 4)), spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="`spacing`"):
        surface_distances(np.ones((4, 4)), np.ones((4, 4)), spacing=(1.0, 0.0))
    with pytest.raises(ValueError, match="`pred` and `target`"):
        surface_distances(np.ones((4, 4)), np.ones((4, 5)), spacing=None)
    with pytest.raises(ValueError, match="2D or 3D"):
        surface_distances(np.ones((2, 4, 4, 4)), np.ones((2, 4, 4, 4)), spacing=None)
