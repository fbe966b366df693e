"""TransMRSR's training pairs are scaled as inference scales its input.

Inference has only the interpolated thick-slice volume, so it divides by that volume's 99.5th percentile; training
must divide its (simulated) pair by the same: the percentile of the simulated interpolated input, not of the HR
volume, which the through-plane blur makes 1-2 % higher on brains (bundle 0.2.3 and earlier did that).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_test_utils import bundle_scripts
from monai.bundle import ConfigParser
from monai.transforms import Compose
from scipy.ndimage import gaussian_filter

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "brain_mri_super_resolution_transmrsr"
CONFIGS = BUNDLE / "configs"
SCALE = 4


def _parsed(files: list[str], key: str) -> object:
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / f) for f in files])
    parser["bundle_root"] = str(BUNDLE)
    parser["scale"] = SCALE
    with bundle_scripts(BUNDLE):
        parser.get_parsed_content("imports")
        return parser.get_parsed_content(key)


@pytest.fixture(scope="module")
def volumes(tmp_path_factory) -> tuple[Path, Path]:
    """A head-like HR volume (smooth structure with thin bright sheets, which the thick slices blur) and its thick-
    slice version written as ``scripts.prepare_lowres`` writes it."""
    from common.data import thick_slice_volume

    folder = tmp_path_factory.mktemp("intensity")
    rng = np.random.default_rng(0)
    hr = gaussian_filter(rng.random((24, 20, 32)), 2.0)
    hr = (hr - hr.min()) / np.ptp(hr)
    hr[..., 8::8] += 1.5  # thin bright planes across the slice axis: the blur lowers the top percentile
    hr = (100 * hr).astype(np.float32)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    _, thick, thick_affine = thick_slice_volume(hr, affine, 2, SCALE)
    paths = folder / "hr.nii.gz", folder / "thick.nii.gz"
    nib.save(nib.Nifti1Image(hr, affine), paths[0])
    nib.save(nib.Nifti1Image(thick.astype(np.float32), thick_affine), paths[1])
    return paths


def test_training_input_is_scaled_exactly_as_inference_scales_the_thick_volume(volumes):
    hr_path, thick_path = volumes
    training = Compose(_parsed(["train.json"], "volume_transforms"))({"hr": str(hr_path)})
    inference = _parsed(["inference.json"], "preprocessing")({"image": str(thick_path)})
    lr, image = torch.as_tensor(training["lr"]), torch.as_tensor(inference["image"])
    assert lr.shape == image.shape
    torch.testing.assert_close(lr, image, atol=1e-5, rtol=1e-5)
    assert training["lr_scale"] == pytest.approx(inference["image_scale"], rel=1e-5)
    # the pair keeps its ratio: the target is divided by the same factor, so its percentile is above 1 here
    hr = torch.as_tensor(training["hr"])
    assert training["hr_scale"] == training["lr_scale"]
    assert float(torch.quantile(hr[hr > 0], 0.995)) > 1.01
