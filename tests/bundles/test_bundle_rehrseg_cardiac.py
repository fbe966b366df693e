"""The REHRSeg bundle on its second default dataset, CardiacThick (thick-slice short-axis LGE stacks with LR
myocardium labels, ``common.data.write_cardiac_thick``), by pointing ``dataset_dir`` at it: every stage in order from
an empty models folder, HR segmentations on the thin grid over the input's extent, and evaluate.json scoring them
against ``CardiacThick_HR`` (found beside the dataset, as ``Meningioma_HR`` is).
"""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from bundle_test_utils import run_tiny
from common.data.degradation import thin_slice_affine

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "thick_slice_hr_segmentation_rehrseg"
SR = ["train.json", "train_sr.json"]

pytestmark = pytest.mark.slow


def test_every_stage_runs_on_cardiac_thick_slices_and_evaluates_against_their_hr_truth(tmp_path):
    from common.data import write_cardiac_thick

    data = write_cardiac_thick(tmp_path / "data", n_subjects=5, seed=0, small=True)
    models = tmp_path / "models"
    common = {"dataset_dir": str(data), "ckpt_dir": str(models)}
    run_tiny(BUNDLE, SR, **common, output_dir=str(tmp_path / "eval" / "sr"))
    run_tiny(BUNDLE, [*SR, "train_uasr.json"], **common, output_dir=str(tmp_path / "eval" / "uasr"))
    run_tiny(BUNDLE, ["train.json", "pseudo_hr.json"], **common)
    run_tiny(BUNDLE, ["train.json"], **common, output_dir=str(tmp_path / "eval" / "train"))
    out = tmp_path / "outputs"
    run_tiny(BUNDLE, ["inference.json"], dataset_dir=str(data / "imagesTr"), ckpt_dir=str(models), output_dir=str(out))
    for path in sorted((data / "imagesTr").glob("*.nii.gz")):
        thick = nib.load(path)
        hr = nib.load(out / path.name.replace(".nii.gz", "_hrseg.nii.gz"))
        assert hr.shape == thick.shape[:2] + (4 * thick.shape[2],)
        np.testing.assert_allclose(hr.affine, thin_slice_affine(thick.affine, 2, 4), atol=1e-4)
        assert set(np.unique(np.asarray(hr.dataobj)).tolist()) <= {0, 1}
    # the same in 16 x 16 in-plane windows (--sw_roi_size): one output per input, on the same grid
    windowed = tmp_path / "windowed"
    run_tiny(BUNDLE, ["inference.json"], dataset_dir=str(data / "imagesTr"), ckpt_dir=str(models),
             output_dir=str(windowed), sw_roi_size=[16, 16])  # fmt: skip
    for path in sorted(out.iterdir()):
        assert nib.load(windowed / path.name).shape == nib.load(path).shape
    scores = tmp_path / "eval" / "test"
    evaluation = run_tiny(BUNDLE, ["inference.json", "evaluate.json"], **common, output_dir=str(scores))
    rows = list(csv.reader(open(next(scores.glob("*dice*_raw.csv")))))
    assert len(rows) == 2 and rows[1][0].startswith("CARD_") and np.isfinite(float(rows[1][1])), rows
    # the score is the Dice of inference.json's HR mask of that subject against its held-back HR label
    (item,) = evaluation.parser.get_parsed_content("datalist")
    truth = np.asarray(nib.load(item["label"]).dataobj) > 0
    name = Path(item["image"]).name.replace(".nii.gz", "_hrseg.nii.gz")
    pred = np.asarray(nib.load(out / name).dataobj) > 0
    assert pred.shape == truth.shape and truth.any()
    overlap = 2 * np.logical_and(pred, truth).sum() / max(pred.sum() + truth.sum(), 1)
    assert float(rows[1][1]) == pytest.approx(overlap, abs=1e-4), (rows, overlap)
