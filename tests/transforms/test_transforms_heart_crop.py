"""Heart-centred crop: one box per volume from the summed mask, geometry kept in the affine, and back again."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from common.transforms.heart_crop import HeartCropd, HeartUncropd, heart_centre
from common.transforms.model_grid import ToModelGridd, in_plane_spacing
from monai.data import MetaTensor

#: 1.25 mm in-plane columns, 10 mm slices, rotated and sheared (an oblique, non-orthogonal scanner header)
_COLUMNS = np.array([[1.0, 0.6, 0.3], [-0.55, 1.0, 0.2], [0.45, 0.3, 9.9]])
SHEARED = torch.eye(4, dtype=torch.float64)
SHEARED[:3, :3] = torch.as_tensor(_COLUMNS / np.linalg.norm(_COLUMNS, axis=0) * [1.25, 1.25, 10.0])
SHEARED[:3, 3] = torch.tensor([-100.0, 40.0, 12.0])


def _disk_volume(shape=(100, 120, 4), centre=(30.0, 80.0), radius=10.0, value=1, dtype=torch.int64, affine=SHEARED):
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    disk = ((ii - centre[0]) ** 2 + (jj - centre[1]) ** 2) <= radius**2
    volume = np.repeat(disk[..., None], shape[2], axis=-1)[None] * value
    return MetaTensor(torch.as_tensor(volume).to(dtype), affine=affine.clone())


def _image(shape=(100, 120, 4), affine=SHEARED, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.uniform(100.0, 1500.0, (1, *shape)).astype(np.float32)
    return MetaTensor(
        torch.as_tensor(values), affine=affine.clone(), meta={"filename_or_obj": "/data/patient7_LGE.nii.gz"}
    )


def _sample(label, image=None):
    image = _image(tuple(label.shape[1:]), label.affine) if image is None else image
    return {"image": image, "label": label}


@pytest.mark.parametrize(
    "roi_size, shape, centre",
    [
        ((64, 64), (100, 120, 4), (30.0, 80.0)),
        ((48, 40), (100, 120, 3), (50.0, 60.0)),
        ((192, 192), (96, 96, 2), (40, 40)),
    ],
)
def test_shapes_dtypes_and_the_mask_centroid_at_the_crop_centre(roi_size, shape, centre):
    label = _disk_volume(shape, centre, radius=8.0, value=500, dtype=torch.int64)
    out = HeartCropd(["image", "label"], "label", roi_size, pixdim=None, intensity_keys="image")(_sample(label))
    assert out["image"].shape == (1, *roi_size, shape[2]) and out["image"].dtype == torch.float32
    assert out["label"].shape == (1, *roi_size, shape[2]) and out["label"].dtype == torch.int64
    assert isinstance(out["image"], MetaTensor) and isinstance(out["label"], MetaTensor)
    assert float(out["image"].min()) >= 0.0 and float(out["image"].max()) <= 1.0
    ii, jj = np.nonzero(np.asarray(out["label"][0, ..., 0]) > 0)
    crop_centre = [(n - 1) / 2.0 for n in roi_size]
    assert abs(ii.mean() - crop_centre[0]) <= 1.0 and abs(jj.mean() - crop_centre[1]) <= 1.0
    record = out["image_heart_crop"]
    assert record["shape"].tolist() == list(shape) and record["roi_size"].tolist() == list(roi_size)
    assert not bool(record["empty"]) and torch.allclose(record["centre"], torch.tensor(centre, dtype=torch.float64))


def test_label_round_trip_equals_the_label_inside_the_crop_and_zero_outside():
    label = _disk_volume(centre=(30.0, 80.0), radius=10.0, value=200)
    label[0, 85:95, 5:15] = 600  # a structure outside the 48x48 crop
    data = HeartCropd(["image", "label"], "label", (48, 48), pixdim=None)(_sample(label))
    data["pred"] = data["label"].clone()
    restored = HeartUncropd("pred", reference_key="label")(data)["pred"]
    assert restored.shape == label.shape and restored.dtype == label.dtype
    assert torch.allclose(torch.as_tensor(restored.affine, dtype=torch.float64), SHEARED)
    i0, j0 = data["label_heart_crop"]["origin"].tolist()
    covered = torch.zeros(label.shape, dtype=torch.bool)
    covered[:, max(i0, 0) : i0 + 48, max(j0, 0) : j0 + 48] = True
    assert torch.equal(restored.as_tensor()[covered], label.as_tensor()[covered])
    assert not restored.as_tensor()[~covered].any()
    assert (label.as_tensor()[~covered] == 600).any()  # the test is not vacuous


def test_a_prediction_lands_on_the_input_grid_after_in_plane_resampling():
    affine = SHEARED.clone()
    affine[:3, :2] *= 1.6  # 2 mm in-plane: resample to 1.25 mm first
    label = _disk_volume((80, 80, 3), (40.0, 30.0), 12.0, value=1, dtype=torch.float32, affine=affine)
    data = ToModelGridd(["image", "label"], pixdim=(1.25, 1.25))(_sample(label))
    grid = data["image"]
    assert in_plane_spacing(grid.affine) == pytest.approx([1.25, 1.25], rel=1e-2)
    data = HeartCropd(["image", "label"], "label", (64, 64), intensity_keys="image")(data)
    data["pred"] = MetaTensor(torch.rand(4, 64, 64, 3), meta=data["image"].meta)  # 4-class probabilities
    restored = HeartUncropd("pred")(data)["pred"]
    assert restored.shape == (4, *grid.shape[1:])
    assert torch.allclose(torch.as_tensor(restored.affine, dtype=torch.float64), grid.affine.to(torch.float64))


def test_the_spacing_tomodelgridd_gives_is_accepted():
    affine = SHEARED.clone()
    affine[:3, :2] *= 0.6  # 0.75 mm: 224 voxels = 168 mm -> 134 voxels of 1.2537 mm, the field of view kept
    label = _disk_volume((224, 224, 2), (100.0, 120.0), 20.0, dtype=torch.float32, affine=affine)
    data = ToModelGridd(["image", "label"], pixdim=(1.25, 1.25))(_sample(label))
    assert data["image"].shape[1:3] == (134, 134)
    out = HeartCropd(["image", "label"], "label", (96, 96), pixdim=(1.25, 1.25))(data)
    assert out["image"].shape == (1, 96, 96, 2)
    for key in ("image", "label"):
        data[key].affine[:3, 0] *= 1.01  # 1 % off: not what ToModelGridd makes
    with pytest.raises(ValueError, match="in-plane spacing"):
        HeartCropd(["image"], "label", (96, 96), pixdim=(1.25, 1.25))(data)


def test_oblique_affine_kept_voxel_for_voxel_in_world_coordinates():
    label = _disk_volume(centre=(20.0, 100.0), radius=9.0)
    data = _sample(label)
    out = HeartCropd(["image", "label"], "label", (64, 64), pixdim=(1.25, 1.25))(data)
    i0, j0 = out["image_heart_crop"]["origin"].tolist()
    crop_affine = torch.as_tensor(out["image"].affine, dtype=torch.float64)
    assert torch.allclose(crop_affine[:3, :3], SHEARED[:3, :3])  # orientation and shear kept
    for i, j, k in [(0, 0, 0), (10, 50, 2), (63, 63, 3), (31, 17, 1)]:
        world_crop = crop_affine @ torch.tensor([i, j, k, 1.0], dtype=torch.float64)
        world_input = SHEARED @ torch.tensor([i + i0, j + j0, k, 1.0], dtype=torch.float64)
        assert torch.allclose(world_crop, world_input)
        if 0 <= i + i0 < 100 and 0 <= j + j0 < 120:
            assert out["label"][0, i, j, k] == label[0, i + i0, j + j0, k]


def test_an_empty_slice_is_cropped_with_the_box_of_the_summed_mask():
    label = _disk_volume(centre=(50.0, 60.0), radius=8.0)
    label[0, :, :, 1] = 0  # the localisation network missed slice 1
    label[0, :, :, 2] = 0
    label[0, 60:72, 40:52, 2] = 1  # and found the heart shifted on slice 2
    summed = label.as_tensor()[0].sum(-1).double()
    ii, jj = torch.meshgrid(torch.arange(100.0), torch.arange(120.0), indexing="ij")
    expected = torch.stack([(summed * ii).sum() / summed.sum(), (summed * jj).sum() / summed.sum()])
    centre, empty = heart_centre(label)
    assert not empty and torch.allclose(centre, expected.double())
    out = HeartCropd(["image", "label"], "label", (64, 64), pixdim=None)(_sample(label))
    assert out["image"].shape == (1, 64, 64, 4)  # one box for every slice, the empty one included
    origin = out["label_heart_crop"]["origin"].tolist()
    assert all(abs(o + 31.5 - c) <= 0.5 for o, c in zip(origin, expected.tolist()))


def test_an_empty_volume_is_cropped_around_the_image_centre_with_a_warning_naming_the_file(caplog):
    label = _disk_volume(value=0)
    with caplog.at_level(logging.WARNING, logger="common.transforms.heart_crop"):
        out = HeartCropd(["image", "label"], "label", (64, 64), pixdim=None)(_sample(label))
    assert "patient7_LGE.nii.gz" in caplog.text and "empty" in caplog.text
    assert bool(out["image_heart_crop"]["empty"])
    assert out["image_heart_crop"]["origin"].tolist() == [18, 28]  # (100 - 64) / 2, (120 - 64) / 2
    assert out["image"].shape == (1, 64, 64, 4)


def test_multi_channel_mask_takes_the_argmax_and_a_probability_its_threshold():
    disk = _disk_volume(centre=(30.0, 80.0), radius=6.0, dtype=torch.float32)
    scores = torch.cat([1.0 - disk.as_tensor(), disk.as_tensor()])  # background, heart
    centre, empty = heart_centre(scores)
    assert not empty and torch.allclose(centre, torch.tensor([30.0, 80.0], dtype=torch.float64))
    probability = disk * 0.4 + 0.3  # 0.7 in the disk, 0.3 elsewhere
    assert torch.allclose(heart_centre(probability, threshold=0.5)[0], torch.tensor([30.0, 80.0], dtype=torch.float64))


@pytest.mark.parametrize("padding_mode", ["constant", "edge"])
def test_padding_where_the_crop_extends_past_the_border(padding_mode):
    label = _disk_volume(centre=(3.0, 116.0), radius=3.0)  # the heart at a corner
    image = MetaTensor(torch.full((1, 100, 120, 4), 7.0), affine=SHEARED.clone())
    crop = HeartCropd(["image", "label"], "label", (32, 32), pixdim=None, padding_mode=padding_mode)
    out = crop({"image": image, "label": label})
    i0, j0 = out["image_heart_crop"]["origin"].tolist()
    assert i0 < 0 and j0 + 32 > 120
    outside = torch.zeros(32, 32, dtype=torch.bool)
    outside[:-i0, :] = True
    outside[:, 120 - j0 :] = True
    padded = out["image"][0, ..., 0]
    assert torch.all(padded[~outside] == 7.0)
    assert torch.all(padded[outside] == (0.0 if padding_mode == "constant" else 7.0))
    back = HeartUncropd("label", reference_key="image")(out)["label"]
    assert torch.equal(back.as_tensor(), label.as_tensor())  # the whole heart was inside the crop


def test_padding_of_a_normalised_image_is_the_normalised_floor():
    label = _disk_volume(centre=(3.0, 60.0), radius=3.0)
    crop = HeartCropd(
        ["image", "label"], "label", (32, 32), pixdim=None, intensity_keys="image", intensity_range=(-1, 1)
    )
    out = crop(_sample(label))
    i0 = int(out["image_heart_crop"]["origin"][0])
    assert torch.all(out["image"][0, :-i0] == -1.0)
    inside = out["image"][0, -i0:]
    assert float(inside.min()) == -1.0 and float(inside.max()) == 1.0


def test_percentile_scaling_uses_the_crop_inside_the_image():
    image = MetaTensor(torch.arange(100 * 120 * 4, dtype=torch.float32).reshape(1, 100, 120, 4), affine=SHEARED)
    label = _disk_volume(centre=(50.0, 60.0), radius=5.0)
    out = HeartCropd(["image"], "label", (20, 20), pixdim=None, intensity_keys="image", percentiles=(0, 100))(
        {"image": image, "label": label}
    )["image"]
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0  # min-max of the crop, not of the whole image
    raw = image[0, 40:60, 50:70].as_tensor()
    expected = (raw - raw.min()) / (raw.max() - raw.min())
    assert torch.allclose(out[0].as_tensor(), expected, atol=1e-6)


def test_a_crop_larger_than_the_image_is_a_pad_and_comes_back():
    label = _disk_volume((40, 30, 2), (20.0, 15.0), 5.0)
    data = HeartCropd(["image", "label"], "label", (64, 64), pixdim=None)(_sample(label))
    assert data["label"].shape == (1, 64, 64, 2) and int(data["label"].sum()) == int(label.sum())
    data["pred"] = data["label"]
    assert torch.equal(HeartUncropd("pred")(data)["pred"].as_tensor(), label.as_tensor())


def test_wrong_dims_are_refused_naming_the_problem():
    label = _disk_volume()
    flat = MetaTensor(torch.zeros(1, 100, 120), meta={"filename_or_obj": "/data/patient1_C0.nii.gz"})
    with pytest.raises(
        ValueError, match=r"patient1_C0.nii.gz: input 'image' must be a channel-first volume \(C, H, W, D\)"
    ):
        HeartCropd(["image", "label"], "label", pixdim=None)({"image": flat, "label": label})
    with pytest.raises(ValueError, match=r"mask 'label' must be a channel-first volume"):
        HeartCropd(["image"], "label", pixdim=None)({"image": _image(), "label": label[0]})
    with pytest.raises(ValueError, match="spatial shape"):
        HeartCropd(["image"], "label", pixdim=None)({"image": _image((90, 120, 4)), "label": label})
    data = HeartCropd(["image", "label"], "label", (32, 32), pixdim=None)(_sample(label))
    data["pred"] = torch.zeros(4, 48, 48, 4)
    with pytest.raises(ValueError, match=r"prediction 'pred' has shape \(4, 48, 48, 4\), expected \(C, 32, 32, 4\)"):
        HeartUncropd("pred")(data)


def test_grid_problems_are_refused():
    label = _disk_volume()
    with pytest.raises(ValueError, match=r"in-plane spacing .* expected pixdim \[1.0, 1.0\].*ToModelGridd"):
        HeartCropd(["image"], "label", pixdim=(1.0, 1.0))(_sample(label))
    shifted = SHEARED.clone()
    shifted[0, 3] += 5.0  # the same shape, 5 mm elsewhere
    other = _image(affine=shifted)
    with pytest.raises(ValueError, match="different affines"):
        HeartCropd(["image"], "label", pixdim=None)({"image": other, "label": label})
    with pytest.raises(KeyError, match="heart mask"):
        HeartCropd(["image"], "mask", pixdim=None)(_sample(label))
    with pytest.raises(KeyError, match="image_heart_crop is missing"):
        HeartUncropd("pred")({"pred": torch.zeros(1, 8, 8, 1)})


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"roi_size": (192,)}, "roi_size"),
        ({"roi_size": (0, 192)}, "roi_size"),
        ({"pixdim": (1.25, -1.0)}, "pixdim"),
        ({"padding_mode": "reflect"}, "padding_mode"),
        ({"intensity_keys": "other"}, "intensity_keys"),
        ({"percentiles": (99, 1)}, "percentiles"),
        ({"intensity_range": (1, 1)}, "intensity_range"),
    ],
)
def test_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        HeartCropd(["image", "label"], "label", **kwargs)


def test_deterministic_and_the_input_untouched():
    label = _disk_volume()
    sample = _sample(label)
    before = sample["image"].clone()
    crop = HeartCropd(["image", "label"], "label", (64, 64), pixdim=None, intensity_keys="image")
    first, second = crop(sample), crop(sample)
    assert torch.equal(first["image"].as_tensor(), second["image"].as_tensor())
    assert torch.equal(sample["image"].as_tensor(), before.as_tensor())
    assert torch.allclose(torch.as_tensor(sample["image"].affine, dtype=torch.float64), SHEARED)
