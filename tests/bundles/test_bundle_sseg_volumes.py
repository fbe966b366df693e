"""SwinSSegNet inference on real-world-like inputs: a sheared 2 mm 128x128x10 stack, an odd-sized slice, a 4D file.

The 8x mask of a stack is a stack at 8x in-plane resolution over the input's extent, with its (sheared) orientation;
a size the network cannot take directly is windowed and padded; a file the model cannot take is named and skipped
while the rest of the folder is written, and the run fails at the end.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_test_utils import exception_messages, tiny_overrides
from common.transforms import super_resolve_affine
from monai.bundle import ConfigParser, ConfigWorkflow

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "lge_mi_sr_segmentation"
NET = tiny_overrides(BUNDLE.name)
SHEARED_2MM = np.array(
    [[1.9, 0.55, 0.3, -100.0], [-0.6, 1.85, 0.2, 40.0], [0.1, 0.25, 7.9, 12.0], [0.0, 0.0, 0.0, 1.0]]
)
AXIAL_2P5MM = np.diag([2.5, 2.5, 8.0, 1.0])


def _lge_like(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    ring = ((yy**2 + xx**2 > 0.15) & (yy**2 + xx**2 < 0.3)).astype(np.float32)
    image = 100 + 300 * ring[..., None] + 20 * rng.standard_normal((*shape[:2], shape[2] if len(shape) > 2 else 1))
    return image.reshape(shape).astype(np.float32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[Path, Path]:
    """A folder of inputs and a models/ folder holding tiny (untrained) SwinSSegNet weights."""
    root = tmp_path_factory.mktemp("volumes")
    inputs = root / "inputs"
    inputs.mkdir()
    nib.save(nib.Nifti1Image(_lge_like((64, 64, 1), 0), AXIAL_2P5MM), inputs / "a_slice.nii.gz")
    nib.save(nib.Nifti1Image(_lge_like((128, 128, 10), 1), SHEARED_2MM), inputs / "b_stack_2mm.nii.gz")
    nib.save(nib.Nifti1Image(_lge_like((60, 70, 1), 2), AXIAL_2P5MM), inputs / "c_odd_size.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((64, 64, 1, 3), np.float32), AXIAL_2P5MM), inputs / "d_series_4d.nii.gz")
    nib.save(nib.Nifti1Image(_lge_like((48, 40), 3), AXIAL_2P5MM), inputs / "e_flat_2d.nii.gz")
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.json"))
    parser.update(NET)
    torch.manual_seed(0)
    models = root / "models"
    models.mkdir()
    torch.save(parser.get_parsed_content("network_def").state_dict(), models / "model.pt")
    return inputs, models


@pytest.fixture(scope="module")
def outputs(folder, tmp_path_factory) -> tuple[Path, BaseException]:
    inputs, models = folder
    out = tmp_path_factory.mktemp("masks")
    workflow = ConfigWorkflow(
        config_file=str(BUNDLE / "configs" / "inference.json"),
        meta_file=str(BUNDLE / "configs" / "metadata.json"),
        logging_file=None,
        bundle_root=str(BUNDLE),
        dataset_dir=str(inputs),
        ckpt_dir=str(models),
        output_dir=str(out),
        **NET,
    )
    workflow.initialize()
    workflow.run()
    with pytest.raises(Exception) as error:
        workflow.finalize()
    return out, error.value


@pytest.mark.slow
def test_a_sheared_2mm_stack_gives_an_8x_stack_on_the_input_extent(outputs):
    out, _ = outputs
    mask = nib.load(out / "b_stack_2mm_mi_x8.nii.gz")
    assert mask.shape == (1024, 1024, 10)
    np.testing.assert_allclose(mask.affine, super_resolve_affine(torch.as_tensor(SHEARED_2MM), 8).numpy(), atol=1e-4)
    assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}


@pytest.mark.slow
def test_single_slices_of_any_size_keep_working(outputs):
    out, _ = outputs
    slice_mask = nib.load(out / "a_slice_mi_x8.nii.gz")
    assert slice_mask.shape[:2] == (512, 512)
    np.testing.assert_allclose(slice_mask.affine, super_resolve_affine(torch.as_tensor(AXIAL_2P5MM), 8), atol=1e-6)
    assert slice_mask.shape == (512, 512, 1)  # a one-slice stack keeps its slice axis
    assert nib.load(out / "c_odd_size_mi_x8.nii.gz").shape[:2] == (480, 560)  # padded/windowed, cropped back
    assert nib.load(out / "e_flat_2d_mi_x8.nii.gz").shape == (384, 320)  # a 2D file gives a 2D mask


@pytest.mark.slow
def test_a_file_the_model_cannot_take_is_named_skipped_and_fails_the_run_at_the_end(outputs):
    out, error = outputs
    messages = exception_messages(error)
    assert "d_series_4d.nii.gz" in messages and "could not be read and were skipped" in messages
    assert not (out / "d_series_4d_mi_x8.nii.gz").exists()
    assert len(list(out.glob("*_mi_x8.nii.gz"))) == 4


@pytest.mark.slow
def test_the_traced_export_segments_a_sheared_stack_as_the_eager_network(folder, tmp_path):
    """The documented TorchScript route (traced at [1, 1, 64, 64]: MONAI's Swin does not script) in inference.json:
    the inferer feeds 64x64 windows in batches of ``sw_batch_size``, and the MI probabilities (saved before the
    argmax, so that the comparison can fail) equal the eager network's on a sheared 128x128x10 stack."""
    inputs, models = folder
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.json"))
    parser.update(NET)
    net = parser.get_parsed_content("network_def").eval()
    net.load_state_dict(torch.load(models / "model.pt"))
    generator = torch.Generator().manual_seed(0)
    for module in net.modules():  # fresh BatchNorm statistics make an untrained net's output ~constant: spread them
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0.0, 0.3, generator=generator)
            module.running_var.fill_(0.5)
    models = tmp_path / "models"
    models.mkdir()
    torch.save(net.state_dict(), models / "model.pt")
    with torch.no_grad(), pytest.warns(torch.jit.TracerWarning):
        torch.jit.save(torch.jit.trace(net, torch.rand(1, 1, 64, 64), check_trace=False), tmp_path / "model.ts")
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "b_stack_2mm.nii.gz").symlink_to(inputs / "b_stack_2mm.nii.gz")
    probabilities = {
        "postprocessing#transforms#3": {"_target_": "SplitDimd", "keys": "pred", "keepdim": True},  # pred_0, pred_1
        "postprocessing#transforms#4#keys": "pred_1",  # SlicesLastd (back to the file's layout)
        "postprocessing#transforms#5#keys": "pred_1",  # SaveImaged
        "postprocessing#transforms#5#output_dtype": "$torch.float32",
    }
    traced_net = {
        "network_def": f"$torch.jit.load('{tmp_path / 'model.ts'}')",
        "handlers": [{"_target_": "common.handlers.InferenceProgress", "inputs": "@inputs"}],  # no state-dict loader
    }
    written = {}
    for name, overrides in {"eager": {"ckpt_dir": str(models)}, "traced": traced_net}.items():
        workflow = ConfigWorkflow(
            config_file=str(BUNDLE / "configs" / "inference.json"),
            meta_file=str(BUNDLE / "configs" / "metadata.json"),
            logging_file=None,
            bundle_root=str(BUNDLE),
            dataset_dir=str(stack),
            output_dir=str(tmp_path / name),
            **probabilities,
            **overrides,
            **NET,
        )
        workflow.initialize()
        workflow.run()
        workflow.finalize()
        written[name] = nib.load(tmp_path / name / "b_stack_2mm_mi_x8.nii.gz")
    eager = np.asarray(written["eager"].dataobj)
    assert eager.shape == (1024, 1024, 10) and 1e-3 < eager.std()  # probabilities that vary, 100x the tolerance
    np.testing.assert_array_equal(written["traced"].affine, written["eager"].affine)
    np.testing.assert_allclose(np.asarray(written["traced"].dataobj), eager, rtol=0, atol=1e-5)
