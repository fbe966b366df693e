"""Through-plane SR geometry: simulated thick-slice pairs and the thin-slice grid of a thick volume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from common.data.degradation import acquire_thick_slices, thick_slice_affine, thin_slice_affine
from common.transforms import (
    CheckThickSlicesd,
    ScaleByPercentiled,
    SimulateThickSlicesd,
    SlicesLastd,
    ThinSliceGridd,
    permute_affine_axes,
    slices_last_order,
)
from monai.data import MetaTensor


def _volume(shape, spacing=(1.0, 1.0, 1.0), name="case.nii.gz", values=None) -> MetaTensor:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (-10.0, 5.0, 2.0)
    data = torch.rand(1, *shape) if values is None else torch.as_tensor(values, dtype=torch.float32)[None]
    return MetaTensor(data, meta={"affine": torch.as_tensor(affine), "filename_or_obj": name})


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
def test_thick_slice_centres_are_the_means_of_their_thin_slices(factor):
    rotation = np.array([[0.0, -1.0, 0.0], [0.8, 0.0, -0.6], [0.6, 0.0, 0.8]])
    affine = np.eye(4)
    affine[:3, :3] = rotation * [0.9, 1.1, 1.3]
    affine[:3, 3] = (3.0, -7.0, 11.0)
    thick = thick_slice_affine(affine, 2, factor)
    for k in (0, 3):
        thin_centres = [affine @ [1, 2, j, 1] for j in range(k * factor, (k + 1) * factor)]
        np.testing.assert_allclose(thick @ [1, 2, k, 1], np.mean(thin_centres, axis=0), atol=1e-9)
    np.testing.assert_allclose(thin_slice_affine(thick, 2, factor), affine, atol=1e-12)


def test_acquire_thick_slices_keeps_a_z_constant_volume_and_puts_an_impulse_in_its_slice():
    constant = np.full((3, 3, 16), 7.0, dtype=np.float32)
    np.testing.assert_allclose(acquire_thick_slices(constant, 2, 4), 7.0, rtol=1e-6)
    impulse = np.zeros((1, 1, 32), dtype=np.float32)
    impulse[0, 0, 13] = 1.0  # thin slice 13 lies in thick slice 3 (12..15)
    thick = acquire_thick_slices(impulse, 2, 4)[0, 0]
    assert thick.shape == (8,) and int(np.argmax(thick)) == 3
    with pytest.raises(ValueError, match="multiple of the factor 4"):
        acquire_thick_slices(np.zeros((2, 2, 10)), 2, 4)


def test_simulated_pair_is_cropped_to_whole_thick_slices_on_one_grid():
    z = np.broadcast_to(np.arange(18, dtype=np.float32), (4, 5, 18)).copy()
    out = SimulateThickSlicesd("hr", factor=4, output_key="lr", order=1)({"hr": _volume((4, 5, 18), values=z)})
    assert out["hr"].shape == out["lr"].shape == (1, 4, 5, 16)
    np.testing.assert_allclose(out["lr"].affine, out["hr"].affine)
    # a z-ramp is linear, so blurring keeps it away from the ends and linear interpolation restores it there
    np.testing.assert_allclose(out["lr"][0, :, :, 6:10], out["hr"][0, :, :, 6:10], atol=0.01)
    assert not torch.allclose(out["lr"][0, 0, 0, :2], out["hr"][0, 0, 0, :2])  # ends take the end thick value


def test_thin_slice_grid_covers_the_thick_extent_with_factor_slices_each():
    thick = _volume((6, 6, 5), spacing=(1.0, 1.0, 4.0))
    out = ThinSliceGridd("image", factor=4)({"image": thick})["image"]
    assert out.shape == (1, 6, 6, 20)
    expected = thin_slice_affine(thick.affine.numpy(), 2, 4)
    np.testing.assert_allclose(out.affine.numpy(), expected)
    # first and last thin slices sit 1.5 thin voxels beyond the first and last thick centres (inside the outer faces)
    np.testing.assert_allclose((expected @ [0, 0, 0, 1])[2], (thick.affine.numpy() @ [0, 0, 0, 1])[2] - 1.5)
    np.testing.assert_allclose((expected @ [0, 0, 19, 1])[2], (thick.affine.numpy() @ [0, 0, 4, 1])[2] + 1.5)
    assert out.meta["filename_or_obj"] == "case.nii.gz"


@pytest.mark.parametrize(
    "shape, spacing, match",
    [
        ((6, 6, 5), (1.0, 1.0, 1.2), "nearly isotropic"),
        ((6, 6, 5), (1.0, 1.0, 8.0), "trained for x4"),
        ((6, 6, 5), (4.0, 1.0, 1.0), "thickest axis is 0"),
        ((6, 6, 5), (1.0, 4.5, 1.0), "thickest axis is 1"),
    ],
)
def test_thin_slice_grid_refuses_volumes_it_was_not_trained_for(shape, spacing, match):
    with pytest.raises(ValueError, match=match) as error:
        ThinSliceGridd("image", factor=4)({"image": _volume(shape, spacing, name="/data/sub-01.nii.gz")})
    assert "/data/sub-01.nii.gz" in str(error.value)


@pytest.mark.parametrize(
    "factor, accepted, refused",
    [(4, (3.0, 4.27, 5.0), (2.9, 5.1, 6.0, 8.0)), (8, (7.0, 8.0, 9.0), (6.0, 6.9, 9.1, 10.0))],
)
def test_the_spacing_ratio_window_is_one_in_plane_voxel_wide_at_every_factor(factor, accepted, refused):
    """x4 takes slice spacings 3-5 in-plane voxels, x8 takes 7-9: a 6 mm stack of 1 mm pixels goes to neither."""
    for ratio in accepted:
        ThinSliceGridd("image", factor=factor)({"image": _volume((6, 6, 5), (1.0, 1.0, ratio))})
    for ratio in refused:
        with pytest.raises(ValueError, match=f"trained for x{factor}"):
            ThinSliceGridd("image", factor=factor)({"image": _volume((6, 6, 5), (1.0, 1.0, ratio))})


def test_thin_slice_grid_refuses_a_2d_image_naming_the_file():
    image = MetaTensor(torch.rand(1, 8, 8), meta={"filename_or_obj": "slice.nii.gz"})
    with pytest.raises(ValueError, match="slice.nii.gz.*3D volume"):
        ThinSliceGridd("image", factor=4)({"image": image})


def test_percentile_scale_round_trips_and_refuses_an_empty_image():
    image = _volume((4, 4, 4)) * 1000
    scaled = ScaleByPercentiled("image", percentile=100.0)({"image": image})
    assert float(scaled["image"].max()) == pytest.approx(1.0)
    restored = ScaleByPercentiled("pred", invert=True, scale_key="image_scale")(dict(scaled, pred=scaled["image"]))
    torch.testing.assert_close(restored["pred"], image.as_tensor() if hasattr(image, "as_tensor") else image)
    with pytest.raises(ValueError, match="case.nii.gz.*no voxel above 0"):
        ScaleByPercentiled("image")({"image": _volume((2, 2, 2), values=np.zeros((2, 2, 2)))})


def test_percentile_scale_with_a_reference_key_divides_every_key_by_that_keys_factor():
    hr = _volume((4, 4, 4)) * 1000
    lr = hr * 0.5
    scaled = ScaleByPercentiled(["hr", "lr"], percentile=100.0, reference_key="lr")({"hr": hr, "lr": lr})
    assert scaled["hr_scale"] == scaled["lr_scale"] == pytest.approx(float(lr.max()))
    assert float(scaled["lr"].max()) == pytest.approx(1.0)
    assert float(scaled["hr"].max()) == pytest.approx(2.0)  # the pair keeps its ratio
    with pytest.raises(ValueError, match="reference_key"):
        ScaleByPercentiled("pred", invert=True, scale_key="image_scale", reference_key="lr")


@pytest.mark.parametrize("axis", [0, 1])
def test_slices_last_keeps_every_voxel_at_its_world_position_and_inverts(axis):
    affine = np.array([[0.0, 0.0, 4.0, 10.0], [1.0, 0.0, 0.0, -5.0], [0.0, 2.0, 0.0, 3.0], [0.0, 0.0, 0.0, 1.0]])
    affine[:3, [axis, 2]] = affine[:3, [2, axis]]  # the 4 mm axis is ``axis``
    image = MetaTensor(torch.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5), affine=torch.as_tensor(affine))
    moved = SlicesLastd("image", axis=axis)({"image": image})["image"]
    order = slices_last_order(axis)  # the in-plane axes keep their order
    assert order == {0: [1, 2, 0], 1: [0, 2, 1]}[axis]
    assert moved.shape[1:] == tuple(image.shape[a + 1] for a in order) and moved.is_contiguous()
    np.testing.assert_allclose(np.linalg.norm(moved.affine[:3, :3].numpy(), axis=0)[2], 4.0)
    for index in ((0, 0, 0), (1, 2, 3), (2, 3, 4)):
        moved_index = tuple(index[a] for a in order)
        assert float(moved[(0, *moved_index)]) == float(image[(0, *index)])
        np.testing.assert_allclose(moved.affine.numpy() @ [*moved_index, 1], affine @ [*index, 1])
    assert "spatial_shape" not in moved.meta  # an input keeps its file's shape there (here: none)
    back = SlicesLastd("image", axis=axis, inverse=True)({"image": moved})["image"]
    assert tuple(int(n) for n in back.meta["spatial_shape"]) == tuple(image.shape[1:])  # an output's shape as written
    assert torch.equal(back.as_tensor(), image.as_tensor()) and torch.equal(back.affine, image.affine)


@pytest.mark.parametrize("as_tensor", [False, True])
def test_permuted_affine_maps_each_transposed_voxel_to_its_old_world_position(as_tensor):
    affine = np.array([[0.0, 0.5, 4.0, 10.0], [1.0, 0.0, 0.2, -5.0], [0.3, 2.0, 0.0, 3.0], [0.0, 0.0, 0.0, 1.0]])
    given = torch.as_tensor(affine) if as_tensor else affine
    order = [2, 0, 1]  # new axis i is old axis order[i]
    moved = permute_affine_axes(given, order)
    assert type(moved) is type(given) and moved is not given
    np.testing.assert_array_equal(np.asarray(given), affine)  # the input is not modified
    for index in ((0, 0, 0), (1, 2, 3), (4, 1, 2)):
        new_index = [index[a] for a in order]
        np.testing.assert_allclose(np.asarray(moved) @ [*new_index, 1], affine @ [*index, 1])


def test_slices_last_leaves_slices_last_volumes_alone_and_refuses_a_2d_image():
    image = MetaTensor(torch.rand(1, 3, 4, 5))
    assert SlicesLastd("image", axis=2)({"image": image})["image"] is image
    with pytest.raises(ValueError, match="axis must be a spatial axis"):
        SlicesLastd("image", axis=3)
    with pytest.raises(ValueError, match="expected a channel-first 3D volume"):
        SlicesLastd("image", axis=0)({"image": MetaTensor(torch.rand(1, 3, 4))})


def test_slices_last_auto_reads_each_files_slice_axis_and_writes_outputs_back_in_that_layout():
    """``axis="auto"``: a stack with its slices first and one with them last go through the same call; each is
    moved by its own header, and the inverse on a prediction restores the layout recorded for its input."""
    forward = SlicesLastd("image", axis="auto")
    backward = SlicesLastd("pred", axis="auto", inverse=True, reference_key="image")
    stack = torch.arange(4 * 5 * 3.0).reshape(1, 4, 5, 3)
    last = MetaTensor(stack, affine=torch.diag(torch.tensor([2.5, 2.5, 8.0, 1.0], dtype=torch.float64)))
    first = MetaTensor(stack.permute(0, 3, 1, 2), affine=torch.diag(torch.tensor([8.0, 2.5, 2.5, 1.0])).double())
    for image, axis in ((last, 2), (first, 0)):
        d = forward({"image": image})
        assert d["image_through_plane_axis"] == axis
        assert torch.equal(d["image"].as_tensor(), stack)  # the same array in memory, slices last
        np.testing.assert_allclose(np.linalg.norm(d["image"].affine[:3, :3].numpy(), axis=0), [2.5, 2.5, 8.0])
        d["pred"] = MetaTensor(d["image"].as_tensor() * 2, affine=d["image"].affine)  # a prediction in memory
        out = backward(d)["pred"]
        assert torch.equal(out.as_tensor(), image.as_tensor() * 2) and torch.equal(out.affine, image.affine)
    assert forward({"image": last})["image"] is last  # already slices last: untouched
    with pytest.raises(ValueError, match="needs reference_key"):
        SlicesLastd("pred", axis="auto", inverse=True)
    with pytest.raises(KeyError, match="image_through_plane_axis is missing"):
        backward({"pred": last})
    with pytest.raises(ValueError, match="or 'auto'"):
        SlicesLastd("image", axis="first")


def test_thick_slice_check_and_grid_with_auto_read_the_thick_axis_from_the_header():
    """``axis="auto"``: a x4 volume thick along axis 0 gets the same thin grid as with ``axis=0``; an isotropic volume
    is still refused, and a configured axis the file contradicts still names the axis to set."""
    thick = MetaTensor(torch.rand(1, 5, 12, 10), affine=torch.diag(torch.tensor([4.0, 1.0, 1.0, 1.0])).double())
    auto = ThinSliceGridd("image", factor=4, axis="auto")({"image": thick})["image"]
    named = ThinSliceGridd("image", factor=4, axis=0)({"image": thick})["image"]
    assert auto.shape == named.shape == (1, 20, 12, 10)
    assert torch.equal(auto.as_tensor(), named.as_tensor()) and torch.equal(auto.affine, named.affine)
    # the thin grid's header no longer shows the thick axis: the one read before is recorded for SlicesLastd
    moved = SlicesLastd("image", axis="auto")(ThinSliceGridd("image", factor=4, axis="auto")({"image": thick}))
    assert moved["image_through_plane_axis"] == 0 and moved["image"].shape == (1, 12, 10, 20)
    assert CheckThickSlicesd("image", factor=4, axis="auto")({"image": thick})["image_through_plane_axis"] == 0
    with pytest.raises(
        ValueError, match=r"thickest axis is 0.*configured through_plane_axis 2.*--through_plane_axis 0"
    ):
        CheckThickSlicesd("image", factor=4, axis=2)({"image": thick})
    iso = MetaTensor(torch.rand(1, 8, 8, 8), affine=torch.eye(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="nearly isotropic"):
        CheckThickSlicesd("image", factor=4, axis="auto")({"image": iso})
    with pytest.raises(ValueError, match="or 'auto'"):
        CheckThickSlicesd("image", factor=4, axis="z")


def test_slices_last_auto_with_a_reference_lays_out_a_thin_truth_as_its_thick_input():
    """An isotropic truth has no thick axis in its header: with ``reference_key`` it is moved as its thick input was."""
    thick = MetaTensor(torch.rand(1, 3, 12, 10), affine=torch.diag(torch.tensor([4.0, 1.0, 1.0, 1.0])).double())
    truth = MetaTensor(torch.rand(1, 12, 12, 10), affine=torch.eye(4, dtype=torch.float64))
    d = SlicesLastd("image", axis="auto")({"image": thick, "label": truth})
    d = SlicesLastd("label", axis="auto", reference_key="image")(d)
    assert d["image"].shape == (1, 12, 10, 3) and d["label"].shape == (1, 12, 10, 12)
    assert torch.equal(d["label"].as_tensor(), truth.as_tensor().permute(0, 2, 3, 1))
    assert SlicesLastd("label", axis="auto")({"label": truth})["label"] is truth  # alone: nothing to read
