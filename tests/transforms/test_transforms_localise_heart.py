"""Heart localiser transform: a slice-by-slice mask on the image's grid, the image untouched, weights loaded lazily."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from common.transforms import LocaliseHeartd
from monai.data import MetaTensor

#: 1.25 mm in-plane columns, 8 mm slices, rotated and sheared (an oblique, non-orthogonal scanner header)
_COLUMNS = np.array([[1.0, 0.6, 0.3], [-0.55, 1.0, 0.2], [0.45, 0.3, 9.9]])
OBLIQUE = torch.eye(4, dtype=torch.float64)
OBLIQUE[:3, :3] = torch.as_tensor(_COLUMNS / np.linalg.norm(_COLUMNS, axis=0) * [1.25, 1.25, 8.0])
OBLIQUE[:3, 3] = torch.tensor([-100.0, 40.0, 12.0])
FILENAME = "/data/patient7_LGE.nii.gz"


class _BrightIsHeart(torch.nn.Module):
    """Stand-in localiser: a 1x1 conv whose logits are ``(0.5, x)``, so class 1 wherever the scaled input is > 0.5."""

    def __init__(self, weight: float = 1.0, threshold: float = 0.5) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, kernel_size=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([0.0, weight]).view(2, 1, 1, 1))
            self.conv.bias.copy_(torch.tensor([threshold, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _expected_mask(shape: tuple[int, int, int]) -> torch.Tensor:
    """A different bright rectangle on every slice (the last slice has none), ``(1, H, W, D)`` bool."""
    h, w, depth = shape
    mask = torch.zeros(1, h, w, depth, dtype=torch.bool)
    for z in range(depth - 1):
        mask[0, 2 + z : h // 2 + z, 1 + 2 * z : w // 2 + 2 * z, z] = True
    return mask


def _image(shape: tuple[int, int, int] = (20, 24, 4), seed: int = 0) -> tuple[MetaTensor, torch.Tensor]:
    """Dark noise in [0, 10] with bright noise in [100, 120] on the expected mask, on an oblique affine."""
    rng = np.random.default_rng(seed)
    mask = _expected_mask(shape)
    dark = torch.as_tensor(rng.uniform(0.0, 10.0, (1, *shape)), dtype=torch.float32)
    bright = torch.as_tensor(rng.uniform(100.0, 120.0, (1, *shape)), dtype=torch.float32)
    image = MetaTensor(torch.where(mask, bright, dark), affine=OBLIQUE.clone(), meta={"filename_or_obj": FILENAME})
    return image, mask


@pytest.mark.parametrize(
    "roi_size, shape",
    [
        ((16, 16), (20, 24, 4)),  # neither side a multiple of the window: overlapping, padded windows
        ((16, 16), (12, 10, 3)),  # slice smaller than the window: zero padding
        ((8, 12), (16, 24, 2)),  # exact tiling
    ],
)
def test_mask_on_the_image_grid_is_one_exactly_on_the_bright_region_of_every_slice(roi_size, shape):
    image, expected = _image(shape)
    out = LocaliseHeartd("image", _BrightIsHeart(), roi_size=roi_size, sw_batch_size=2)({"image": image})
    mask = out["heart_mask"]
    assert isinstance(mask, MetaTensor)
    assert mask.shape == image.shape and mask.dtype == torch.float32
    assert torch.allclose(torch.as_tensor(mask.affine, dtype=torch.float64), OBLIQUE)
    assert mask.meta["filename_or_obj"] == FILENAME
    assert set(torch.unique(mask.as_tensor()).tolist()) <= {0.0, 1.0}
    for z in range(shape[2]):  # slice by slice, so a wrong slice is reported by index
        assert torch.equal(mask.as_tensor()[..., z].bool(), expected[..., z]), f"slice {z}"
    assert not mask[..., -1].any() and expected[..., :-1].any()  # the empty slice stays empty; the test is not vacuous


def test_the_image_is_not_changed_and_the_mask_key_is_configurable():
    image, _ = _image()
    before = image.as_tensor().clone()
    data = {"image": image, "label": torch.ones(1)}
    out = LocaliseHeartd("image", _BrightIsHeart(), roi_size=(16, 16), mask_key="localiser_mask")(data)
    assert out["image"] is image and torch.equal(out["image"].as_tensor(), before)
    assert torch.allclose(torch.as_tensor(out["image"].affine, dtype=torch.float64), OBLIQUE)
    assert out["label"] is data["label"] and "localiser_mask" in out and "heart_mask" not in out
    assert "localiser_mask" not in data  # the input dict is not modified


def test_scaling_per_volume_makes_the_mask_independent_of_the_intensity_unit():
    image, expected = _image()
    scaled = MetaTensor(image.as_tensor() * 37.5 + 1000.0, affine=OBLIQUE.clone())
    out = LocaliseHeartd("image", _BrightIsHeart(), roi_size=(16, 16))({"image": scaled})
    assert torch.equal(out["heart_mask"].as_tensor().bool(), expected)


def test_missing_weights_are_reported_at_the_first_call_not_at_construction(tmp_path):
    missing = tmp_path / "models" / "localiser.pt"
    transform = LocaliseHeartd(
        "image", _BrightIsHeart(), weights=str(missing), weights_hint="run train_localiser.json", roi_size=(16, 16)
    )  # no error: a config check works before training
    image, _ = _image()
    with pytest.raises(FileNotFoundError, match="run train_localiser.json") as error:
        transform({"image": image})
    assert str(missing) in str(error.value)


def test_weights_are_loaded_into_the_network_at_the_first_call(tmp_path):
    path = tmp_path / "localiser.pt"
    torch.save(_BrightIsHeart().state_dict(), path)
    network = _BrightIsHeart(weight=0.0, threshold=0.0)  # untrained: every logit ties, argmax is background
    transform = LocaliseHeartd("image", network, weights=str(path), roi_size=(16, 16))
    assert not network.conv.weight.detach().any()  # nothing loaded yet
    image, expected = _image()
    mask = transform({"image": image})["heart_mask"]
    assert torch.equal(network.conv.weight.flatten(), torch.tensor([0.0, 1.0]))
    assert torch.equal(network.conv.bias, torch.tensor([0.5, 0.0]))
    assert not network.training
    assert torch.equal(mask.as_tensor().bool(), expected)

    path.unlink()  # loaded once: later calls do not read the file again
    assert torch.equal(transform({"image": image})["heart_mask"].as_tensor().bool(), expected)


def test_without_weights_the_network_is_used_as_given_in_eval_mode():
    network = _BrightIsHeart().train()
    LocaliseHeartd("image", network)
    assert not network.training


@pytest.mark.parametrize("shape", [(20, 24), (1, 20, 24), (1, 1, 20, 24, 4)])
def test_a_non_volume_raises_naming_the_file(shape):
    image = MetaTensor(torch.zeros(shape), meta={"filename_or_obj": FILENAME})
    with pytest.raises(ValueError, match="patient7_LGE.nii.gz") as error:
        LocaliseHeartd("image", _BrightIsHeart(), roi_size=(16, 16))({"image": image})
    assert "(C, H, W, D)" in str(error.value) and str(tuple(shape)) in str(error.value)
