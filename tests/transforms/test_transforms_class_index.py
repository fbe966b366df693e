"""``common.transforms.ClassIndexd``: what ``AsDiscreted(argmax=True)`` gives (values, dtype, metadata), faster."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from common.transforms import ClassIndexd
from monai.data import MetaTensor
from monai.transforms import AsDiscreted


def _scores() -> MetaTensor:
    generator = torch.Generator().manual_seed(0)
    affine = torch.tensor([[0.0, 2.0, 0.0, 5.0], [-2.0, 0.0, 0.0, 1.0], [0.0, 0.0, 8.0, -3.0], [0.0, 0.0, 0.0, 1.0]])
    scores = torch.randn(4, 6, 5, 3, generator=generator)
    scores[:, 0, 0, 0] = torch.tensor([1.0, 3.0, 3.0, 0.0])  # a tie: the first maximal class, 1
    return MetaTensor(scores, affine=affine, meta={"filename_or_obj": "case_1.nii.gz"})


def test_labels_dtype_and_metadata_equal_monai_argmax():
    scores = _scores()
    expected = AsDiscreted("pred", argmax=True)({"pred": scores})["pred"]
    labels = ClassIndexd("pred")({"pred": scores, "other": 1})
    assert labels["other"] == 1
    result = labels["pred"]
    assert isinstance(result, MetaTensor) and result.shape == (1, 6, 5, 3) and result.dtype == torch.float32
    assert torch.equal(result.as_tensor(), expected.as_tensor()) and result[0, 0, 0, 0] == 1
    assert torch.equal(result.affine, scores.affine) and result.meta["filename_or_obj"] == "case_1.nii.gz"
    assert set(result.as_tensor().unique().tolist()) <= {0.0, 1.0, 2.0, 3.0}


def test_plain_tensors_and_arrays_and_missing_keys():
    scores = _scores().as_tensor()
    result = ClassIndexd("pred")({"pred": scores})["pred"]
    assert not isinstance(result, MetaTensor) and torch.equal(result, scores.argmax(0, keepdim=True).float())
    array = ClassIndexd("pred")({"pred": scores.numpy()})["pred"]
    assert torch.equal(array, result)
    assert ClassIndexd("pred", allow_missing_keys=True)({"image": np.zeros(2)}).keys() == {"image"}
    with pytest.raises(KeyError):
        ClassIndexd("pred")({"image": np.zeros(2)})
