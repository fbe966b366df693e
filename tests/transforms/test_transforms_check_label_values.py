"""Label-value check: MS-CMRSeg maps pass unchanged, another dataset's convention is refused naming file and values."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from common.transforms import CheckLabelValuesd
from monai.data import MetaTensor

MSCMRSEG_VALUES = [0, 200, 500, 600]
FILENAME = "/data/patient3_LGE_manual.nii.gz"


def _label(values, dtype=torch.int64, filename=FILENAME):
    """A (1, 6, 6, 2) map holding ``values`` (background 0 everywhere else)."""
    label = torch.zeros(1, 6, 6, 2, dtype=dtype)
    for index, value in enumerate(values):
        label[0, index, : index + 1, index % 2] = value
    return MetaTensor(label, meta={"filename_or_obj": filename} if filename else {})


@pytest.mark.parametrize(
    "values, dtype",
    [
        ([200, 500, 600], torch.int64),
        ([500], torch.int16),  # a subset of the label set (e.g. a slice without scar)
        ([], torch.uint8),  # background only
        ([200.0, 500.0, 600.0], torch.float32),  # integral values stored as floats (a NIfTI loaded as float)
        ([200.0, 500.0, 600.0], torch.float64),
    ],
)
def test_maps_within_the_label_set_pass_unchanged(values, dtype):
    label = _label(values, dtype)
    data = {"label": label, "image": torch.rand(1, 6, 6, 2)}
    out = CheckLabelValuesd("label", MSCMRSEG_VALUES)(data)
    assert out["label"] is label and out["image"] is data["image"]


def test_numpy_maps_and_float_label_set_are_accepted():
    label = np.zeros((1, 4, 4), dtype=np.float32)
    label[0, :2] = 500.0
    out = CheckLabelValuesd("label", [0.0, 200.0, 500.0, 600.0])({"label": label})
    assert out["label"] is label


def test_another_datasets_labels_are_refused_naming_the_file_and_the_values():
    with pytest.raises(ValueError) as error:
        CheckLabelValuesd("label", MSCMRSEG_VALUES)({"label": _label([1, 2, 3])})
    message = str(error.value)
    assert FILENAME in message and "'label'" in message
    assert "value(s) 1, 2, 3 " in message  # the offending values only: background 0 is allowed
    assert "{0, 200, 500, 600}" in message  # and the label set it expected


@pytest.mark.parametrize(
    "values, dtype, shown",
    [
        ([200, 2, 600], torch.int64, "2"),  # one stray value among valid ones
        ([200.0, 499.5], torch.float32, "499.5"),  # a non-integral value (interpolated labels)
        ([-1, 500], torch.int64, "-1"),
    ],
)
def test_a_single_stray_value_is_refused(values, dtype, shown):
    with pytest.raises(ValueError, match=re.escape(f"value(s) {shown} outside")):
        CheckLabelValuesd("label", MSCMRSEG_VALUES)({"label": _label(values, dtype)})


def test_the_file_is_named_from_a_meta_dict_or_given_as_in_memory():
    label = _label([1], filename=None).as_tensor()
    with pytest.raises(ValueError, match="patient9.nii.gz"):
        CheckLabelValuesd("label", MSCMRSEG_VALUES)(
            {"label": label, "label_meta_dict": {"filename_or_obj": "patient9.nii.gz"}}
        )
    with pytest.raises(ValueError, match="<in memory>"):
        CheckLabelValuesd("label", MSCMRSEG_VALUES)({"label": label})


def test_every_key_is_checked_and_missing_keys_follow_allow_missing_keys():
    data = {"label": _label([200]), "pred": _label([7], filename="pred.nii.gz")}
    with pytest.raises(ValueError, match="pred.nii.gz: 'pred' holds value"):
        CheckLabelValuesd(["label", "pred"], MSCMRSEG_VALUES)(data)
    assert (
        CheckLabelValuesd(["label", "other"], MSCMRSEG_VALUES, allow_missing_keys=True)(data)["label"] is data["label"]
    )
    with pytest.raises(KeyError):
        CheckLabelValuesd(["label", "other"], MSCMRSEG_VALUES)(data)
