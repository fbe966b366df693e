"""Model-grid resampling: the field of view and orientation survive, a blob stays where it is in the world."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from common.transforms import (
    AsVolumed,
    FromModelGridd,
    PerSliced,
    SuperResolveAffined,
    ToModelGridd,
    in_plane_pixel_area,
    in_plane_spacing,
    regrid_affine,
    super_resolve_affine,
)
from monai.data import MetaTensor

#: 2 mm in-plane, 8 mm slices, sheared and rotated (an oblique, non-orthogonal scanner header)
SHEARED = torch.tensor(
    [[1.9, 0.55, 0.3, -100.0], [-0.6, 1.85, 0.2, 40.0], [0.1, 0.25, 7.9, 12.0], [0.0, 0.0, 0.0, 1.0]],
    dtype=torch.float64,
)


def test_in_plane_pixel_area_is_the_parallelogram_not_the_product_of_spacings():
    """Rotation keeps the area; shear lowers it below the product of the column lengths (2D and 3D affines)."""
    angle = np.pi / 6
    cos, sin = np.cos(angle), np.sin(angle)
    rotated = np.array([[cos * 2.0, -sin * 3.0, 0, 0], [sin * 2.0, cos * 3.0, 0, 0], [0, 0, 8.0, 0], [0, 0, 0, 1.0]])
    assert in_plane_pixel_area(rotated) == pytest.approx(6.0)
    sheared_2d = np.array([[2.0, 3.0 * np.sin(angle), 0], [0, 3.0 * np.cos(angle), 0], [0, 0, 1.0]])
    assert in_plane_pixel_area(sheared_2d) == pytest.approx(6.0 * np.cos(angle))
    spacing = in_plane_spacing(SHEARED)
    assert in_plane_pixel_area(SHEARED) < spacing[0] * spacing[1]


def _blob_volume(shape=(128, 128, 3), centre=(40.0, 70.0), radius=12.0, affine=SHEARED) -> MetaTensor:
    yy, xx = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    blob = (((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) < radius**2).astype(np.float32)
    volume = np.repeat(blob[..., None], shape[2], axis=-1)[None]
    return MetaTensor(torch.as_tensor(volume), affine=affine.clone())


def _world_centroid(volume: torch.Tensor, affine: torch.Tensor, slice_index: int) -> np.ndarray:
    weights = np.asarray(volume[0, ..., slice_index], dtype=np.float64)
    ii, jj = np.nonzero(weights > 0.5)
    index = np.stack([ii, jj, np.full_like(ii, slice_index), np.ones_like(ii)]).astype(np.float64)
    return (np.asarray(affine, dtype=np.float64) @ index)[:3].mean(axis=1)


def test_regrid_affine_keeps_the_field_of_view_and_generalises_super_resolution():
    for scale in (2, 8):
        assert torch.allclose(regrid_affine(SHEARED, [scale, scale]), super_resolve_affine(SHEARED, scale))
    coarse = regrid_affine(SHEARED, [0.8, 0.8])  # 2 mm -> 2.5 mm
    corner = torch.tensor([-0.5, -0.5, 0.0, 1.0], dtype=torch.float64)
    assert torch.allclose(SHEARED @ corner, coarse @ corner)  # the outer corner of voxel (0, 0) stays
    far = torch.tensor([127.5, 127.5, 0.0, 1.0], dtype=torch.float64)
    assert torch.allclose(SHEARED @ far, coarse @ torch.tensor([101.9, 101.9, 0.0, 1.0], dtype=torch.float64))
    assert in_plane_spacing(coarse) == pytest.approx([2.5 * s / 2.0 for s in in_plane_spacing(SHEARED)])


def test_input_on_the_model_grid_is_untouched():
    affine = torch.diag(torch.tensor([2.5, 2.5, 8.0, 1.0], dtype=torch.float64))
    image = _blob_volume((64, 64, 1), (30, 30), 8, affine)
    out = ToModelGridd("image", pixdim=(2.5, 2.5))({"image": image})
    assert torch.equal(out["image"].as_tensor(), image.as_tensor())
    assert torch.equal(out["image_input_grid"]["affine"], affine)
    assert out["image_input_grid"]["shape"].tolist() == [64, 64, 1]


def test_a_2mm_stack_is_resampled_to_2p5mm_over_the_same_extent_and_back_at_8x():
    image = _blob_volume()
    spacing = in_plane_spacing(SHEARED)
    data = ToModelGridd("image", pixdim=(2.5, 2.5))({"image": image})
    model = data["image"]
    assert list(model.shape[1:]) == [round(128 * spacing[0] / 2.5), round(128 * spacing[1] / 2.5), 3]
    assert in_plane_spacing(model.affine) == pytest.approx([2.5, 2.5], rel=0.01)
    np.testing.assert_allclose(
        _world_centroid(model, model.affine, 1), _world_centroid(image, image.affine, 1), atol=0.5
    )  # the blob is where it was, in mm

    # a "network" that super-resolves 8x in-plane (nearest), then back onto the input's grid at 8x
    pred = MetaTensor(model.as_tensor().repeat_interleave(8, 1).repeat_interleave(8, 2), meta=model.meta)
    data["pred"] = pred
    data = SuperResolveAffined("pred", scale=8)(data)
    data = FromModelGridd("pred", reference_key="image", scale=8)(data)
    out = data["pred"]
    assert list(out.shape[1:]) == [1024, 1024, 3]
    assert torch.allclose(torch.as_tensor(out.affine, dtype=torch.float64), super_resolve_affine(SHEARED, 8))
    np.testing.assert_allclose(_world_centroid(out, out.affine, 2), _world_centroid(image, image.affine, 2), atol=0.5)
    truth = image.as_tensor().repeat_interleave(8, 1).repeat_interleave(8, 2) > 0.5
    dice = 2 * ((out.as_tensor() > 0.5) & truth).sum() / ((out.as_tensor() > 0.5).sum() + truth.sum())
    assert dice > 0.95


def test_from_model_grid_needs_the_recorded_grid():
    with pytest.raises(KeyError, match="image_input_grid is missing"):
        FromModelGridd("pred")({"pred": MetaTensor(torch.zeros(1, 8, 8, 1))})


@pytest.mark.parametrize("bad", [(2.5,), (2.5, 0.0)])
def test_bad_pixdim_is_named(bad):
    with pytest.raises(ValueError, match="pixdim"):
        ToModelGridd("image", pixdim=bad)


def test_as_volume_adds_a_slice_axis_and_refuses_what_the_model_cannot_take():
    out = AsVolumed("image")({"image": MetaTensor(torch.zeros(1, 64, 64))})
    assert out["image"].shape == (1, 64, 64, 1)
    stack = MetaTensor(torch.zeros(1, 64, 64, 10))
    assert AsVolumed("image")({"image": stack})["image"] is stack
    rgb = MetaTensor(torch.zeros(3, 64, 64, 1), meta={"filename_or_obj": "/data/rgb_export.nii.gz"})
    with pytest.raises(ValueError, match="rgb_export.nii.gz: expected 1 channel"):
        AsVolumed("image")({"image": rgb})


def test_as_volume_with_min_slices_refuses_a_2d_file_and_a_one_slice_stack_naming_it():
    stack = MetaTensor(torch.zeros(1, 64, 64, 2))
    assert AsVolumed("image", min_slices=2)({"image": stack})["image"] is stack
    for shape in ((1, 64, 64), (1, 64, 64, 1)):
        single = MetaTensor(torch.zeros(shape), meta={"filename_or_obj": "/data/patient1_LGE.nii.gz"})
        with pytest.raises(ValueError, match=r"patient1_LGE.nii.gz: 1 slice .*at least 2 slices; save"):
            AsVolumed("image", min_slices=2)({"image": single})
    with pytest.raises(ValueError, match="min_slices"):
        AsVolumed("image", min_slices=0)


def test_per_slice_normalises_each_slice_with_its_own_range():
    volume = MetaTensor(torch.stack([torch.linspace(0, 1, 16), torch.linspace(0, 100, 16)], -1).reshape(1, 4, 4, 2))
    scale = lambda x: (x - x.min()) / (x.max() - x.min())  # noqa: E731
    out = PerSliced("image", scale)({"image": volume})["image"]
    assert isinstance(out, MetaTensor) and out.shape == volume.shape
    assert torch.allclose(out[..., 0], out[..., 1])  # each slice mapped onto [0, 1] on its own
