"""Tests of common/postprocessing: dense CRF per slice and hierarchical morphology (Chen, Ouyang et al., 2.3)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
from common.postprocessing.dense_crf import DenseCRF2d, DenseCRF2dd
from common.postprocessing.morphology import HierarchicalMorphology, HierarchicalMorphologyd
from monai.data import MetaTensor

BG, LV, MYO, RV = 0, 1, 2, 3
SIZE = 48


def _heart(size: int = SIZE) -> np.ndarray:
    """A clean short-axis label map: LV disk (r 8), MYO ring (r 8..13), RV crescent to the right."""
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((size, size), np.int64)
    r = np.hypot(yy - 24, xx - 22)
    labels[r <= 13] = MYO
    labels[r <= 8] = LV
    labels[(np.hypot(yy - 24, xx - 36) <= 10) & (labels == BG) & (xx > 30)] = RV
    return labels


def _image(labels: np.ndarray) -> np.ndarray:
    """bSSFP-like intensities: bright blood pools, dark myocardium."""
    return np.choose(labels, [0.1, 0.9, 0.3, 0.8]).astype(np.float32)


def _probabilities(labels: np.ndarray, confidence: float = 0.9) -> np.ndarray:
    probabilities = np.full((4, *labels.shape), (1 - confidence) / 3, np.float32)
    for c in range(4):
        probabilities[c][labels == c] = confidence
    return probabilities


# ---------------------------------------------------------------------------------------------------- dense CRF


@pytest.fixture
def crf_installed():
    """tools/install.sh (CI's and the quickstart's set-up) installs pydensecrf2: under CI=true a missing one fails."""
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        import pydensecrf.densecrf  # noqa: F401
    pytest.importorskip("pydensecrf.densecrf", reason="optional dependency pydensecrf2 is not installed")


def test_crf_leaves_a_clean_confident_mask_unchanged(crf_installed):
    labels = _heart()
    refined = DenseCRF2d(output="labels")(_probabilities(labels), _image(labels))
    assert refined.shape == (1, SIZE, SIZE) and refined.dtype == np.int64
    np.testing.assert_array_equal(refined[0], labels)


@pytest.mark.parametrize("confidence", [0.6, 0.9])
def test_crf_removes_an_isolated_wrong_pixel(crf_installed, confidence):
    """An RV pixel predicted inside the LV blood pool (the image says blood pool) is relabelled LV."""
    labels = _heart()
    wrong = labels.copy()
    wrong[24, 20] = RV
    refined = DenseCRF2d(output="labels")(_probabilities(wrong, confidence), _image(labels))
    assert refined[0, 24, 20] == LV
    np.testing.assert_array_equal(refined[0], labels)


def test_crf_probabilities_and_types(crf_installed):
    labels = _heart()
    probabilities = _probabilities(labels)
    out = DenseCRF2d()(probabilities, _image(labels))
    assert out.shape == probabilities.shape and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=0), 1.0, atol=1e-5)
    tensor_out = DenseCRF2d()(torch.from_numpy(probabilities), torch.from_numpy(_image(labels)))
    assert isinstance(tensor_out, torch.Tensor)
    np.testing.assert_allclose(tensor_out.numpy(), out, atol=1e-6)
    meta = MetaTensor(torch.from_numpy(probabilities), meta={"filename_or_obj": "case.nii.gz"})
    labels_out = DenseCRF2d(output="labels")(meta, _image(labels)[None])
    assert isinstance(labels_out, MetaTensor) and labels_out.meta["filename_or_obj"] == "case.nii.gz"
    assert labels_out.shape == (1, SIZE, SIZE)


def test_crf_volume_is_refined_slice_by_slice(crf_installed):
    """Each slice of a (C, H, W, D) volume equals the 2D result of that slice (same global intensity scaling)."""
    labels = _heart()
    wrong = labels.copy()
    wrong[24, 20] = RV
    volume = np.stack([_probabilities(labels), _probabilities(wrong)], axis=-1)
    image = np.stack([_image(labels), _image(labels)], axis=-1)
    crf = DenseCRF2d()
    refined = crf(volume, image)
    assert refined.shape == volume.shape
    for k in range(2):
        np.testing.assert_allclose(refined[..., k], crf(volume[..., k], image[..., k]), atol=1e-6)


def test_crf_dictionary_version(crf_installed):
    labels = _heart()
    data = {"pred": _probabilities(labels), "image": _image(labels)[None], "label": labels}
    out = DenseCRF2dd(keys="pred", image_key="image", output="labels")(data)
    np.testing.assert_array_equal(out["pred"][0], labels)
    assert out["label"] is labels
    with pytest.raises(KeyError, match="image"):
        DenseCRF2dd(keys="pred", image_key="img")(data)


def test_crf_missing_dependency_message(monkeypatch):
    """Without pydensecrf2 the constructor says how to install it and how to switch the CRF off."""
    for name in ("pydensecrf", "pydensecrf.densecrf", "pydensecrf2", "pydensecrf2.densecrf"):
        monkeypatch.setitem(sys.modules, name, None)  # a None entry makes `import name` raise ImportError
    with pytest.raises(ImportError, match="pip install pydensecrf2") as error:
        DenseCRF2d()
    assert "enabled=False" in str(error.value)
    # switched off, no import is needed: probabilities pass through, or their argmax
    labels = _heart()
    probabilities = _probabilities(labels)
    np.testing.assert_array_equal(DenseCRF2d(enabled=False)(probabilities), probabilities)
    np.testing.assert_array_equal(DenseCRF2d(enabled=False, output="labels")(probabilities)[0], labels)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"theta_alpha": 0}, "theta_alpha"),
        ({"w_gamma": -1}, "w_gamma"),
        ({"iterations": 0}, "iterations"),
        ({"output": "mask"}, "output"),
    ],
)
def test_crf_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DenseCRF2d(enabled=False, **kwargs)


def test_crf_bad_inputs(crf_installed):
    crf = DenseCRF2d()
    with pytest.raises(ValueError, match="C >= 2"):
        crf(np.ones((1, 8, 8), np.float32), np.zeros((8, 8)))
    with pytest.raises(ValueError, match="does not match"):
        crf(np.full((2, 8, 8), 0.5, np.float32), np.zeros((8, 9)))
    with pytest.raises(ValueError, match="needs the image"):
        crf(np.full((2, 8, 8), 0.5, np.float32))


# ------------------------------------------------------------------------------------------ hierarchical morphology


@pytest.mark.parametrize("depth", [None, 4])
def test_morphology_leaves_a_clean_mask_unchanged(depth):
    labels = _heart()
    labels = labels[None] if depth is None else np.stack([labels] * depth, axis=-1)[None]
    out = HierarchicalMorphology()(labels)
    assert out.shape == labels.shape and out.dtype == labels.dtype
    np.testing.assert_array_equal(out, labels)


def test_morphology_removes_a_detached_island():
    labels = _heart()
    noisy = labels.copy()
    noisy[2:4, 2:4] = RV  # a small island far from the heart
    np.testing.assert_array_equal(HierarchicalMorphology()(noisy[None])[0], labels)
    kept = HierarchicalMorphology(keep_largest_component=False)(noisy[None])[0]
    assert (kept[2:4, 2:4] == RV).all()
    # the command line's string (`--postprocessing#transforms#3#keep_largest_component false`) switches it off too
    np.testing.assert_array_equal(HierarchicalMorphology(keep_largest_component="false")(noisy[None])[0], kept)


def test_morphology_removes_a_detached_island_in_3d():
    """3D connectivity: a blob in one slice that touches nothing in any slice is removed; the heart is kept."""
    labels = np.stack([_heart()] * 3, axis=-1)
    noisy = labels.copy()
    noisy[40:43, 2:5, 1] = LV
    np.testing.assert_array_equal(HierarchicalMorphology()(noisy[None])[0], labels)


def test_morphology_fills_holes():
    labels = _heart()
    holes = labels.copy()
    holes[24, 22] = BG  # background in the LV blood pool
    holes[23:25, 18] = MYO  # a MYO speck inside the LV (the MYO stage removes it, the LV closes over it)
    holes[24, 33] = BG  # background inside the MYO wall (radius 11)
    np.testing.assert_array_equal(HierarchicalMorphology()(holes[None])[0], labels)
    off = HierarchicalMorphology(keep_largest_component=False, fill_holes=False, closing_iterations=0)
    np.testing.assert_array_equal(off(holes[None])[0], holes)


def test_morphology_hole_only_by_filling():
    """A 3x3 background hole in the LV is beyond a one-step closing; hole filling alone gives it back to LV."""
    labels = _heart()
    holes = labels.copy()
    holes[23:26, 21:24] = BG
    closing_only = HierarchicalMorphology(fill_holes=False)(holes[None])[0]
    assert (closing_only[23:26, 21:24] == BG).sum() > 0
    filling_only = HierarchicalMorphology(closing_iterations=0)(holes[None])[0]
    np.testing.assert_array_equal(filling_only, labels)


def test_morphology_closing_bridges_a_slit():
    """A one-pixel slit of background through the whole MYO wall opens the LV cavity to the outside, so there is no
    hole to fill: the closing (dilation then erosion, the paper's operations) bridges it with MYO. The outermost slit
    pixel stays background: a cross-shaped element does not fill a one-pixel notch in a straight border."""
    labels = _heart()
    slit = labels.copy()
    slit[20, 10:16] = BG  # row 20 (4 above the centre (24, 22)): MYO from x = 10 to 15, LV from 16
    assert (labels[20, 10:16] == MYO).all() and labels[20, 9] == BG and labels[20, 16] == LV
    out = HierarchicalMorphology()(slit[None])[0]
    expected = labels.copy()
    expected[20, 10] = BG
    np.testing.assert_array_equal(out, expected)
    no_closing = HierarchicalMorphology(closing_iterations=0)(slit[None])[0]
    np.testing.assert_array_equal(no_closing, slit)


def test_morphology_stage_selection():
    """With the MYO and LV stages off, a MYO speck inside the LV (part of the foreground, no hole) stays."""
    labels = _heart()
    speck = labels.copy()
    speck[23:25, 18] = MYO
    out = HierarchicalMorphology(stages=("foreground",))(speck[None])[0]
    np.testing.assert_array_equal(out, speck)


def test_morphology_types_and_dictionary_version():
    labels = _heart()
    noisy = labels.copy()
    noisy[2:4, 2:4] = RV
    tensor_out = HierarchicalMorphology()(torch.from_numpy(noisy)[None])
    assert isinstance(tensor_out, torch.Tensor) and tensor_out.dtype == torch.int64
    np.testing.assert_array_equal(tensor_out[0].numpy(), labels)
    meta = MetaTensor(torch.from_numpy(noisy)[None].float(), meta={"filename_or_obj": "case.nii.gz"})
    out = HierarchicalMorphologyd(keys="pred")({"pred": meta})["pred"]
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "case.nii.gz"
    np.testing.assert_array_equal(out[0].numpy(), labels)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lv_label": 2}, "must differ"),
        ({"stages": ("rv",)}, "stages"),
        ({"closing_iterations": -1}, "closing_iterations"),
        ({"connectivity": 4}, "connectivity"),
    ],
)
def test_morphology_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HierarchicalMorphology(**kwargs)


def test_morphology_bad_inputs():
    with pytest.raises(ValueError, match=r"\(1, H, W"):
        HierarchicalMorphology()(np.zeros((SIZE, SIZE), np.int64))
    with pytest.raises(ValueError, match="integer classes"):
        HierarchicalMorphology()(np.full((1, 4, 4), 0.5))
