"""AsSlice2Dd / SuperResolveAffined / low_resolution_affine keep the physical geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from common.transforms import (
    AsSlice2Dd,
    CheckFinited,
    CheckShapeRatiod,
    SuperResolveAffined,
    low_resolution_affine,
    super_resolve_affine,
)
from monai.data import MetaTensor


def _oblique_affine(spacing=(2.5, 2.5, 8.0)) -> torch.Tensor:
    angle = np.deg2rad(30.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(spacing)
    affine[:3, 3] = [-40.0, 12.5, 33.0]
    return torch.as_tensor(affine)


def _world(affine: torch.Tensor, index) -> np.ndarray:
    return (affine.numpy() @ np.array([*index, 1.0]))[:3]


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_super_resolve_affine_same_field_of_view(scale):
    coarse = _oblique_affine()
    fine = super_resolve_affine(coarse, scale)
    # spacing is scale x finer in-plane, unchanged through-plane
    np.testing.assert_allclose(np.linalg.norm(fine[:3, :3].numpy(), axis=0), [2.5 / scale, 2.5 / scale, 8.0])
    # the outer corner of the field of view (voxel edge -0.5) is the same point in both grids
    np.testing.assert_allclose(_world(coarse, (-0.5, -0.5, 0)), _world(fine, (-0.5, -0.5, 0)), atol=1e-9)
    # mean of the fine centres inside coarse voxel (3, 5) is that voxel's centre
    sub = [(3 * scale + i, 5 * scale + j, 0) for i in range(scale) for j in range(scale)]
    centre = np.mean([_world(fine, s) for s in sub], axis=0)
    np.testing.assert_allclose(centre, _world(coarse, (3, 5, 0)), atol=1e-9)
    np.testing.assert_allclose(low_resolution_affine(fine, scale).numpy(), coarse.numpy(), atol=1e-9)


def test_super_resolve_affine_rejects_bad_scale():
    with pytest.raises(ValueError, match="scale"):
        super_resolve_affine(torch.eye(4), 0)
    with pytest.raises(ValueError, match="scale"):
        SuperResolveAffined(keys="pred", scale=1.5)


def test_super_resolve_affined_on_prediction():
    pred = MetaTensor(torch.zeros(1, 16, 16), affine=_oblique_affine())
    out = SuperResolveAffined(keys="pred", scale=8)({"pred": pred})["pred"]
    np.testing.assert_allclose(out.affine.numpy(), super_resolve_affine(_oblique_affine(), 8).numpy(), atol=1e-6)


def test_as_slice_2d_keeps_4x4_affine():
    image = MetaTensor(torch.rand(1, 8, 8, 1), affine=_oblique_affine())
    out = AsSlice2Dd(keys="image")({"image": image})["image"]
    assert tuple(out.shape) == (1, 8, 8)
    assert tuple(out.affine.shape) == (4, 4)
    np.testing.assert_allclose(out.affine.numpy(), _oblique_affine().numpy())


def test_as_slice_2d_rejects_volumes_naming_file():
    image = MetaTensor(torch.rand(1, 8, 8, 3), meta={"filename_or_obj": "/data/stack.nii.gz"})
    with pytest.raises(ValueError, match="stack.nii.gz"):
        AsSlice2Dd(keys="image")({"image": image})


def test_check_finite_names_file():
    image = MetaTensor(torch.ones(1, 4, 4), meta={"filename_or_obj": "/data/nan_case.nii.gz"})
    image[0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="nan_case.nii.gz.*1 NaN"):
        CheckFinited(keys="image")({"image": image})
    clean = MetaTensor(torch.ones(1, 4, 4))
    assert CheckFinited(keys="image")({"image": clean})["image"] is clean


def test_check_shape_ratio():
    image = MetaTensor(torch.zeros(1, 8, 8), meta={"filename_or_obj": "img.nii.gz"})
    label = MetaTensor(torch.zeros(1, 64, 64), meta={"filename_or_obj": "lab.nii.gz"})
    CheckShapeRatiod(scale=8)({"image": image, "label": label})
    with pytest.raises(ValueError, match="lab.nii.gz.*img.nii.gz"):
        CheckShapeRatiod(scale=4)({"image": image, "label": label})
