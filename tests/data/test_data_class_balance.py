"""Tests of common/data/class_balance.py: median-frequency class weights from training labels."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from common.data import DatasetError, class_pixel_counts, class_weights_for, median_frequency_weights


def test_median_frequency_weights_by_hand():
    """Frequencies 1/2, 1/3, 1/6: median 1/3 -> weights 2/3, 1, 2 (the median class keeps 1, rarer weigh more)."""
    labels = [np.array([[0, 0, 0], [1, 1, 2]])]
    assert median_frequency_weights(labels, 3) == pytest.approx([2 / 3, 1.0, 2.0])


def test_counts_add_over_maps_and_files(tmp_path):
    path = tmp_path / "label.nii.gz"
    nib.save(nib.Nifti1Image(np.array([[[0, 3], [3, 3]]], dtype=np.uint8), np.eye(4)), path)
    counts = class_pixel_counts([path, np.array([1, 1, 0])], 4)
    assert counts.tolist() == [2, 2, 0, 3]


def test_an_absent_class_gets_weight_zero_and_the_median_is_over_present_classes():
    weights = median_frequency_weights([np.array([0, 0, 0, 1])], 3)
    assert weights == pytest.approx([(0.5 / 0.75), (0.5 / 0.25), 0.0])


def test_class_weights_for_none_reads_nothing_and_refuses_unknown_schemes():
    assert class_weights_for("none", ["/no/such/file.nii.gz"], 4) is None
    assert class_weights_for("median_frequency", [np.array([0, 1, 1, 1])], 2) == pytest.approx([2.0, 2 / 3])
    with pytest.raises(ValueError, match="class_weighting must be one of"):
        class_weights_for("inverse", [np.array([0, 1])], 2)


def test_bad_labels_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "bad_label.nii.gz"
    nib.save(nib.Nifti1Image(np.array([[[0, 5]]], dtype=np.int16), np.eye(4)), path)
    with pytest.raises(DatasetError, match="bad_label.nii.gz.*0..3"):
        median_frequency_weights([path], 4)
    with pytest.raises(DatasetError, match="no label pixels"):
        median_frequency_weights([], 4)
