"""Brain source: MNI152 templates from nilearn's wheel and seeded IXI-like variants."""

from __future__ import annotations

import numpy as np
import pytest
from common.data import BRAIN_LABELS, BrainPhantom, load_mni152, mni152_paths


def test_templates_ship_inside_nilearn():
    paths = mni152_paths()
    assert set(paths) == {"t1", "gm", "wm"}
    assert all(p.is_file() and "nilearn" in str(p) for p in paths.values())


def test_same_data_as_nilearn_loaders():
    from nilearn.datasets import load_mni152_gm_template, load_mni152_template

    ours = load_mni152(crop=False)
    t1 = load_mni152_template(resolution=1)
    np.testing.assert_allclose(ours["t1"], t1.get_fdata(), atol=1e-6)
    np.testing.assert_allclose(ours["affine"], t1.affine)
    np.testing.assert_allclose(ours["gm"], load_mni152_gm_template(resolution=1).get_fdata(), atol=1e-6)


def test_crop_and_downsample_keep_world_positions():
    full = load_mni152(crop=False)
    cropped = load_mni152(crop=True)
    small = load_mni152(crop=True, downsample=3)
    assert cropped["t1"].shape[0] < full["t1"].shape[0]
    # the cropped voxel (0,0,0) is the same world point as in the full template
    index = np.linalg.solve(full["affine"], cropped["affine"] @ [0, 0, 0, 1])[:3].round().astype(int)
    assert cropped["t1"][5, 7, 9] == full["t1"][index[0] + 5, index[1] + 7, index[2] + 9]
    # a downsampled voxel is the mean of its 3x3x3 block, centred on the block centre
    assert small["t1"][10, 11, 12] == pytest.approx(cropped["t1"][30:33, 33:36, 36:39].mean(), rel=1e-5)
    np.testing.assert_allclose(small["affine"] @ [10, 11, 12, 1], cropped["affine"] @ [31, 34, 37, 1])


def test_brain_phantom_deterministic_and_seeded():
    a = BrainPhantom(seed=4, downsample=3).sample()
    b = BrainPhantom(seed=4, downsample=3).sample()
    c = BrainPhantom(seed=5, downsample=3).sample()
    np.testing.assert_array_equal(a["t1"], b["t1"])
    assert not np.array_equal(a["t1"], c["t1"]) and not np.array_equal(a["gm"], c["gm"])
    assert a["t1"].shape == a["gm"].shape == a["wm"].shape == a["label"].shape
    for key in ("gm", "wm", "csf"):
        assert a[key].min() >= 0 and a[key].max() <= 1
    assert set(np.unique(a["label"]).tolist()) == set(BRAIN_LABELS.values())


def test_variant_stays_aligned_with_its_tissue_maps():
    subject = BrainPhantom(seed=2, downsample=3, noise=False).sample()
    t1, label = subject["t1"], subject["label"]
    wm, gm, csf = (t1[label == BRAIN_LABELS[k]].mean() for k in ("wm", "gm", "csf"))
    assert wm > gm > csf  # T1 contrast holds on the warped maps, so the warp is shared


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="seed"):
        BrainPhantom(seed=-1)
    with pytest.raises(ValueError, match="downsample"):
        load_mni152(downsample=0)
