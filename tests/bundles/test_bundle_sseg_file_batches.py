"""SwinSSegNet folder inference batches files of one geometry (``common.inference.SameGeometryBatches``) and writes
exactly what one file per batch writes: the same values under each file's own name and affine.

The pipeline is checked with a small stand-in network whose output follows its input (an untrained SwinSSegNet's
masks are the same for every file, so a mix-up between files could not be seen); the SwinSSegNet itself is checked
to give each image of a batch what it gives that image alone.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_test_utils import tiny_overrides
from common.transforms import super_resolve_affine
from monai.bundle import ConfigParser, ConfigWorkflow

from tools.folder_batching import stand_in_network

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "lge_mi_sr_segmentation"
NET = tiny_overrides(BUNDLE.name)
CONFIG = str(BUNDLE / "configs" / "inference.json")
#: conv then 8x bilinear upsampling: 1 channel in, 2 class logits out at 8x, every pixel following its input
RESPONSIVE = {
    "network_def": "$torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.Upsample(scale_factor=8.0))",
    "handlers": [{"_target_": "common.handlers.InferenceProgress", "inputs": "@inputs"}],  # no weights to load
}
#: the MI probability written as float instead of the class index, so any change of value shows
PROBABILITIES = {
    "postprocessing#transforms#3": {"_target_": "SplitDimd", "keys": "pred", "keepdim": True},
    "postprocessing#transforms#4#keys": "pred_1",
    "postprocessing#transforms#5#keys": "pred_1",
    "postprocessing#transforms#5#output_dtype": "$torch.float32",
}
SAME_GRID = [f"same_{i}" for i in range(5)]


def _affine(index: int) -> np.ndarray:
    affine = np.diag([2.5, 2.5, 8.0, 1.0])
    affine[:3, 3] = [-10.0 * index, 4.0 * index, 8.0 * index]
    return affine


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    for index, name in enumerate(SAME_GRID):  # one geometry, each its own content and place
        nib.save(nib.Nifti1Image(rng.uniform(0, 500, (64, 64, 1)).astype(np.float32), _affine(index)),
                 folder / f"{name}.nii.gz")  # fmt: skip
    nib.save(nib.Nifti1Image(rng.uniform(0, 500, (60, 70, 1)).astype(np.float32), _affine(7)), folder / "odd.nii.gz")
    nib.save(nib.Nifti1Image(rng.uniform(0, 500, (64, 64, 3)).astype(np.float32), _affine(8)), folder / "stack.nii.gz")
    return folder


def _run(inputs: Path, out: Path, files_per_batch: int) -> int:
    workflow = ConfigWorkflow(
        config_file=CONFIG,
        meta_file=str(BUNDLE / "configs" / "metadata.json"),
        logging_file=None,
        bundle_root=str(BUNDLE),
        dataset_dir=str(inputs),
        output_dir=str(out),
        files_per_batch=files_per_batch,
        **RESPONSIVE,
        **PROBABILITIES,
    )
    workflow.initialize()  # set_determinism(seed=0): the same stand-in weights in every run
    workflow.run()
    batches = int(workflow.parser.get_parsed_content("evaluator").state.iteration)
    workflow.finalize()
    return batches


@pytest.mark.slow
def test_batched_files_are_written_as_one_file_per_batch_writes_them(inputs, tmp_path):
    assert _run(inputs, tmp_path / "one", 1) == 7
    assert _run(inputs, tmp_path / "four", 4) == 4  # the five of one grid as 4 + 1, the other two alone
    names = sorted(p.name for p in (tmp_path / "one").glob("*.nii.gz"))
    assert len(names) == 7 and names == sorted(p.name for p in (tmp_path / "four").glob("*.nii.gz"))
    for name in names:
        one, four = nib.load(tmp_path / "one" / name), nib.load(tmp_path / "four" / name)
        np.testing.assert_array_equal(four.affine, one.affine)
        np.testing.assert_allclose(np.asarray(four.dataobj), np.asarray(one.dataobj), rtol=0, atol=1e-6)
    masks = [np.asarray(nib.load(tmp_path / "four" / f"{name}_mi_x8.nii.gz").dataobj) for name in SAME_GRID]
    assert min(np.abs(a - b).max() for i, a in enumerate(masks) for b in masks[i + 1 :]) > 1e-2  # each its own
    for index, name in enumerate(SAME_GRID):  # each file its own place
        expected = super_resolve_affine(torch.as_tensor(_affine(index)), 8).numpy()
        np.testing.assert_allclose(nib.load(tmp_path / "four" / f"{name}_mi_x8.nii.gz").affine, expected, atol=1e-4)


def test_the_swinssegnet_gives_each_image_of_a_batch_what_it_gives_it_alone():
    parser = ConfigParser()
    parser.read_config(CONFIG)
    parser.update({**NET, "device": "$torch.device('cpu')"})
    torch.manual_seed(0)
    net = stand_in_network(parser.get_parsed_content("network_def")).eval()
    images = torch.rand(3, 1, 64, 64)
    with torch.no_grad():
        together = net(images)
        alone = torch.cat([net(image[None]) for image in images])
    assert (together[0] - together[1]).abs().max() > 1e-5  # the images' outputs differ (BatchNorm statistics spread)
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-6)
