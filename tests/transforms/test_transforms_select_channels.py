"""SelectChannelsd: the named channels in the requested order; a file with another channel count is refused, naming
the file, both counts and the config keys; a single-channel file with one declared name passes through."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from common.constants import DTI_CHANNELS
from common.transforms import SelectChannelsd, channel_indices, check_channel_count
from monai.data import MetaTensor
from monai.transforms import LoadImaged

FILENAME = "/data/Case_001/DTI.nii.gz"
AFFINE = torch.diag(torch.tensor([2.5, 2.5, 8.0, 1.0], dtype=torch.float64))


def _image(channels: int, filename: str | None = FILENAME) -> MetaTensor:
    """``(channels, 4, 4, 1)``: channel ``c`` holds the value ``c`` everywhere."""
    data = torch.arange(channels, dtype=torch.float32).reshape(-1, 1, 1, 1).expand(channels, 4, 4, 1).clone()
    return MetaTensor(data, affine=AFFINE, meta={"filename_or_obj": filename} if filename else {})


@pytest.mark.parametrize(
    "select, expected",
    [
        (["MD"], [1.0]),
        ("MD", [1.0]),  # a bare name, as a command line may pass it
        (["FA", "S0"], [2.0, 0.0]),  # the requested order, not the file's
        (["S0", "MD", "FA"], [0.0, 1.0, 2.0]),
    ],
)
def test_keeps_the_selected_channels_in_the_requested_order(select, expected):
    out = SelectChannelsd("dti", DTI_CHANNELS, select)({"dti": _image(3), "lge": torch.zeros(1, 4, 4)})
    image = out["dti"]
    assert isinstance(image, MetaTensor) and image.shape == (len(expected), 4, 4, 1)
    assert [float(image[c].mean()) for c in range(len(expected))] == expected
    torch.testing.assert_close(image.affine, AFFINE)  # the geometry survives
    assert image.meta["filename_or_obj"] == FILENAME
    assert out["lge"].shape == (1, 4, 4)  # other keys untouched


def test_single_channel_file_with_one_name_passes_through_unchanged():
    image = _image(1)
    out = SelectChannelsd("dti", ["MD"], ["MD"])({"dti": image})
    assert out["dti"] is image


def test_numpy_arrays_are_selected_too():
    data = np.stack([np.full((4, 4), c, dtype=np.float32) for c in range(3)])
    out = SelectChannelsd("dti", DTI_CHANNELS, ["FA"])({"dti": data})["dti"]
    assert out.shape == (1, 4, 4) and float(out.mean()) == 2.0


@pytest.mark.parametrize("channels, names", [(1, DTI_CHANNELS), (3, ["MD"]), (2, DTI_CHANNELS)])
def test_another_channel_count_is_refused_naming_file_counts_and_keys(channels, names):
    transform = SelectChannelsd("dti", names, ["MD"], names_key="dti_channel_names", select_key="dti_channels")
    with pytest.raises(ValueError) as error:
        transform({"dti": _image(channels)})
    message = str(error.value)
    assert FILENAME in message and f"holds {channels} channel(s)" in message and f"lists {len(names)}" in message
    assert "dti_channel_names" in message and "dti_channels" in message


@pytest.mark.parametrize(
    "names, select, match",
    [
        (DTI_CHANNELS, ["ADC"], "ADC"),  # not in the file
        (DTI_CHANNELS, [], "non-empty"),
        ([], ["MD"], "non-empty"),
        (DTI_CHANNELS, ["MD", "MD"], "twice"),
        (["MD", "MD"], ["MD"], "twice"),
    ],
)
def test_bad_arguments_raise_at_construction(names, select, match):
    with pytest.raises(ValueError, match=match):
        SelectChannelsd("dti", names, select)


def test_helpers_name_the_config_keys():
    assert channel_indices(DTI_CHANNELS, ["FA", "MD"]) == [2, 1]
    check_channel_count(3, DTI_CHANNELS)  # no error
    with pytest.raises(ValueError, match=r"f\.nii\.gz holds 1 channel\(s\) but names lists 3.*picked"):
        check_channel_count(1, DTI_CHANNELS, "f.nii.gz", names_key="names", select_key="picked")


@pytest.mark.parametrize("shape", [(6, 6, 1, 3), (6, 6, 1)])
def test_from_a_nifti_file_as_the_bundles_load_it(tmp_path, shape):
    """``(X, Y, 1, C)`` loads as ``(C, X, Y, 1)`` (``ensure_channel_first``); ``(X, Y, 1)`` as one channel."""
    data = np.stack(
        [np.full(shape[:3], c + 1, dtype=np.float32) for c in range(shape[3] if len(shape) == 4 else 1)], -1
    )
    path = tmp_path / "DTI.nii.gz"
    nib.save(nib.Nifti1Image(data.reshape(shape), np.diag([2.5, 2.5, 8.0, 1.0])), path)
    names = DTI_CHANNELS if len(shape) == 4 else ["MD"]
    loaded = LoadImaged("dti", image_only=True, ensure_channel_first=True)({"dti": str(path)})
    out = SelectChannelsd("dti", names, ["MD"])(loaded)["dti"]
    assert out.shape == (1, 6, 6, 1)
    assert float(out.mean()) == (2.0 if len(shape) == 4 else 1.0)  # MD is the file's second channel
    with pytest.raises(ValueError, match="DTI.nii.gz"):
        SelectChannelsd("dti", ["S0", "MD"], ["MD"])(loaded)


@pytest.mark.parametrize("select", [["MD"], ["S0", "MD", "FA"]])
def test_an_output_with_the_selected_images_metadata_saves_like_one_of_a_single_channel_file(tmp_path, select):
    """A 4D file's ``original_channel_dim`` (-1) is replaced by MONAI's no-channel marker, so a one-channel output
    carrying that metadata (a prediction) is written; MONAI's writer fails on it otherwise."""
    from monai.transforms import SaveImaged

    path = tmp_path / "Case_001_DTI.nii.gz"
    nib.save(nib.Nifti1Image(np.random.rand(6, 6, 1, 3).astype(np.float32), np.diag([2.5, 2.5, 8.0, 1.0])), path)
    loaded = LoadImaged("dti", image_only=True, ensure_channel_first=True)({"dti": str(path)})
    image = SelectChannelsd("dti", DTI_CHANNELS, select)(loaded)["dti"]
    assert loaded["dti"].meta["original_channel_dim"] == -1, "the loaded sample is not changed in place"
    pred = MetaTensor(torch.rand(1, 6, 6, 1), meta=dict(image.meta))  # one output channel, the input's metadata
    SaveImaged("pred", output_dir=str(tmp_path), output_postfix="out", resample=False, separate_folder=False)(
        {"pred": pred}
    )
    saved = nib.load(tmp_path / "Case_001_DTI_out.nii.gz")
    assert saved.shape == (6, 6) and np.allclose(saved.affine, np.diag([2.5, 2.5, 8.0, 1.0]))


def test_inference_takes_a_file_that_holds_only_the_selected_channels():
    """accept_selected: a single-channel MD map passes as it is; a file of every channel is still selected from; any
    other count is still refused (training keeps the strict check)."""
    md_only = torch.arange(16.0).reshape(1, 4, 4)
    lenient = SelectChannelsd("image", DTI_CHANNELS, ["MD"], accept_selected=True)
    assert torch.equal(lenient({"image": md_only})["image"], md_only)
    full = torch.stack([torch.full((4, 4), float(i)) for i in range(3)])
    assert torch.equal(lenient({"image": full})["image"], full[1:2])
    with pytest.raises(ValueError, match="holds 2 channel"):
        lenient({"image": full[:2]})
    with pytest.raises(ValueError, match="holds 1 channel"):
        SelectChannelsd("image", DTI_CHANNELS, ["MD"])({"image": md_only})
