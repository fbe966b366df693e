"""CycleGANSeg inference and the DTI -> MI-mask pipeline on real-world-like inputs: a sheared 2 mm 128x128x10 b0-like
stack (a diffusion series as scanners write it) and an odd-sized slice, with untrained tiny networks.

The LGE-style image of a stack is a stack on the input's grid; the pipeline's 8x mask is a stack at 8x in-plane
resolution over the input's extent, with its (sheared) orientation.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_test_utils import tiny_overrides, tiny_sseg_bundle
from common.benchmarking import run_workflow
from common.nets import ResNetGenerator
from common.transforms import super_resolve_affine

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "dti_lge_style_transfer"
GENERATOR = tiny_overrides(BUNDLE.name, ("ngf", "n_blocks"))
SHEARED_2MM = np.array(
    [[1.9, 0.55, 0.3, -100.0], [-0.6, 1.85, 0.2, 40.0], [0.1, 0.25, 7.9, 12.0], [0.0, 0.0, 0.0, 1.0]]
)
AXIAL_2P5MM = np.diag([2.5, 2.5, 8.0, 1.0])


#: the inputs are single-channel b0 (S0) images, not the DTI_LGE_MI set's S0/MD/FA files
SINGLE_CHANNEL = {"dti_channel_names": ["S0"], "dti_channels": ["S0"]}


def _run(files: list[str], **overrides) -> None:
    run_workflow(BUNDLE, files, {**GENERATOR, **SINGLE_CHANNEL, **overrides})


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dti_volumes")
    inputs = root / "inputs"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    nib.save(nib.Nifti1Image(rng.gamma(2, 50, (128, 128, 10)).astype(np.float32), SHEARED_2MM), inputs / "b0.nii.gz")
    nib.save(nib.Nifti1Image(rng.gamma(2, 50, (60, 70, 1)).astype(np.float32), AXIAL_2P5MM), inputs / "odd.nii.gz")
    models = root / "models"
    models.mkdir()
    torch.manual_seed(0)
    torch.save(
        ResNetGenerator(spatial_dims=2, in_channels=1, out_channels=1, **GENERATOR).state_dict(), models / "model.pt"
    )
    return {"root": root, "inputs": inputs, "models": models, "sseg": tiny_sseg_bundle(root / "sseg_bundle")}


@pytest.mark.slow
def test_lge_style_image_of_a_stack_is_a_stack_on_the_input_grid(setup, tmp_path):
    _run(["inference.json"], dataset_dir=str(setup["inputs"]), ckpt_dir=str(setup["models"]), output_dir=str(tmp_path))
    written = sorted(p.name for p in tmp_path.glob("*.nii.gz"))
    assert written == ["b0_lge_style.nii.gz", "odd_lge_style.nii.gz"], written
    stack = nib.load(tmp_path / "b0_lge_style.nii.gz")
    assert stack.shape == (128, 128, 10)
    np.testing.assert_allclose(stack.affine, SHEARED_2MM, atol=1e-4)
    assert np.isfinite(np.asarray(stack.dataobj)).all()
    assert nib.load(tmp_path / "odd_lge_style.nii.gz").shape[:2] == (60, 70)


@pytest.mark.slow
def test_pipeline_mask_of_a_stack_is_an_8x_stack_on_the_input_extent(setup, tmp_path):
    _run(
        ["inference.json", "pipeline.json"],
        dataset_dir=str(setup["inputs"]),
        ckpt_dir=str(setup["models"]),
        output_dir=str(tmp_path),
        sseg_bundle_root=str(setup["sseg"]),
    )
    mask = nib.load(tmp_path / "b0_mi_x8.nii.gz")
    assert mask.shape == (1024, 1024, 10)
    np.testing.assert_allclose(mask.affine, super_resolve_affine(torch.as_tensor(SHEARED_2MM), 8).numpy(), atol=1e-4)
    assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}
    assert nib.load(tmp_path / "odd_mi_x8.nii.gz").shape[:2] == (480, 560)


@pytest.mark.slow
def test_benchmark_inference_scaling_runs_the_pipeline_on_stacked_slices(setup, tmp_path):
    """The benchmark's inference-scaling rows: one single-channel 64x64 DTI slice stacked to 4/8/16 slices, each
    stack run through the pipeline as users run it (inference.json + pipeline.json) and timed; every mask holds the
    stacked slices at 8x in-plane."""
    from bundle_test_utils import bundle_scripts

    slice_path = tmp_path / "slice_DTI.nii.gz"
    rng = np.random.default_rng(1)
    nib.save(nib.Nifti1Image(rng.gamma(2, 50, (64, 64)).astype(np.float32), AXIAL_2P5MM), slice_path)  # a 2D file
    sseg = tiny_overrides("lge_mi_sr_segmentation")
    with bundle_scripts(BUNDLE):
        from scripts.benchmark import SCALING_SLICES, Stages, _inference_scaling, stage_settings

        settings = stage_settings(True, {"translator": GENERATOR, "sseg": sseg})
        stages = Stages(tmp_path / "bench", setup["sseg"], settings, fresh=False)
        result = _inference_scaling(stages, slice_path, setup["models"], str(setup["sseg"] / "models" / "model.pt"),
                                    ("S0",), tmp_path / "scaling")  # fmt: skip
    assert result["slice_counts"] == list(SCALING_SLICES) and all(s > 0 for s in result["seconds"])
    assert json.loads((tmp_path / "scaling" / "scaling.json").read_text())["seconds"] == result["seconds"]
    for n in result["slice_counts"]:
        (mask,) = sorted((tmp_path / "scaling" / f"slices_{n}" / "out").glob("*_mi_x8.nii.gz"))
        assert nib.load(mask).shape == (512, 512, n)
