"""The segmentation bundles run the way MONAI Label 0.8.5's ``BundleInferTask`` runs them.

Every test runs ``tools.monailabel_driver`` (MONAI Label's keys, restore step and writer, without MONAI Label). The
``monailabel`` runner repeats the same test with the real ``BundleInferTask`` (``bash tools/install.sh`` installs
MONAI Label 0.8.5 without its dependencies, see DESIGN.md section 5; the tests skip without it, and fail under
``CI=true``); ``monailabel.transform.post`` imports ``torchvision.utils`` at module level, and no
torchvision imports beside the CPU torch, so that test gives it a stand-in module (only ``make_grid``/``save_image``,
which the infer task never calls).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import types
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from common.benchmarking import TINY_OVERLAY, read_overlay
from monai.bundle import ConfigParser
from monai.transforms import SaveImaged

from tools.monailabel_driver import (
    bundle_dimension,
    bundle_labels,
    infer_type,
    restore_to_input,
    run_like_bundle_infer_task,
)
from tools.verify_bundles import USER_FOLDERS

REPO = Path(__file__).resolve().parents[1]
SEG_BUNDLE = REPO / "bundles" / "lge_mi_sr_segmentation"
TINY_SWIN = read_overlay(SEG_BUNDLE, TINY_OVERLAY)
#: tools/install.sh (the set-up of the quickstart and of CI) installs monailabel; under CI=true a missing one fails
#: the monailabel tests (ModuleNotFoundError) instead of skipping them
MONAILABEL_REQUIRED = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
SKIP_WITHOUT_MONAILABEL = pytest.mark.skipif(
    importlib.util.find_spec("monailabel") is None and not MONAILABEL_REQUIRED,
    reason="monailabel 0.8.5 is not installed: run `bash tools/install.sh`",
)
RUNNERS = ["driver", pytest.param("monailabel", marks=[pytest.mark.slow, SKIP_WITHOUT_MONAILABEL])]


def oblique_affine(spacing: tuple[float, float, float], offset: tuple[float, float, float]) -> np.ndarray:
    """Rotation about z (30 deg) then x (17 deg), non-unit spacing and an offset: no axis is world-aligned."""
    a, b = np.deg2rad(30.0), np.deg2rad(17.0)
    rot_z = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    rot_x = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(b), -np.sin(b)], [0.0, np.sin(b), np.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = rot_x @ rot_z @ np.diag(spacing)
    affine[:3, 3] = offset
    return affine


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(array.astype(np.float32), affine), str(path))
    return path


def _stand_in_torchvision(monkeypatch) -> None:
    try:
        import torchvision.utils  # noqa: F401
    except Exception:  # absent, or a registry build that does not import beside the CPU torch

        def unavailable(*args, **kwargs):
            raise RuntimeError("stand-in torchvision.utils (test only)")

        utils = types.ModuleType("torchvision.utils")
        utils.make_grid = utils.save_image = unavailable
        package = types.ModuleType("torchvision")
        package.utils = utils
        monkeypatch.setitem(sys.modules, "torchvision", package)
        monkeypatch.setitem(sys.modules, "torchvision.utils", utils)


def run_real_monailabel(bundle: Path, image: Path, monkeypatch) -> tuple[np.ndarray, np.ndarray, dict]:
    """MONAI Label's own ``BundleInferTask`` (load, infer, restore, write), result read back like the driver's."""
    _stand_in_torchvision(monkeypatch)
    from monailabel.tasks.infer.bundle import BundleInferTask

    scripts = {m: sys.modules.pop(m) for m in list(sys.modules) if m == "scripts" or m.startswith("scripts.")}
    try:
        task = BundleInferTask(str(bundle), {})
        assert task.is_valid(), f"MONAI Label refused {bundle}"
        result_file, result_json = task({"image": str(image), "device": "cpu"})
    finally:
        sys.modules.update(scripts)
    written = nib.load(result_file)
    pred, affine = np.asarray(written.dataobj), np.asarray(written.affine)
    Path(result_file).unlink()
    return pred, affine, dict(result_json["label_names"])


def run_bundle(runner: str, bundle: Path, image: Path, monkeypatch) -> tuple[np.ndarray, np.ndarray, dict]:
    if runner == "monailabel":
        return run_real_monailabel(bundle, image, monkeypatch)
    return run_like_bundle_infer_task(bundle, image, device="cpu")


# ---------------------------------------------------------------- the SwinSSegNet bundle (2D, 8x SR) -------------


@pytest.fixture(scope="module", params=[1, 5], ids=["slice", "stack"])
def sseg_case(request, tmp_path_factory):
    """A copy of the bundle with a tiny network and its models/model.pt, an oblique LGE-like image (one slice, or a
    5-slice stack as a viewer sends it) at 1.25 x 1.4 mm (so the bundle resamples to its 2.5 mm grid and back), and
    the prediction MONAI Label should return for it: the bundle's own prediction sampled on the input grid."""
    slices = request.param
    root = tmp_path_factory.mktemp("monailabel")
    bundle = root / SEG_BUNDLE.name  # MONAI Label picks the task type from this folder name
    shutil.copytree(SEG_BUNDLE, bundle, ignore=shutil.ignore_patterns(*USER_FOLDERS, "__pycache__"))
    config_file = bundle / "configs" / "inference.json"
    config = json.loads(config_file.read_text())
    config.update(TINY_SWIN)
    config_file.write_text(json.dumps(config, indent=4))

    affine = oblique_affine((1.25, 1.4, 8.0), (-40.0, 12.5, 33.0))
    rng = np.random.default_rng(0)
    profile = np.linspace(0.5, 1.5, 64)[:, None, None]
    image = (rng.gamma(2.0, 50.0, size=(64, 64, slices)) * profile).astype(np.float32)
    image_file = write_nifti(root / f"lge_oblique_{slices}.nii.gz", image, affine)

    parser = ConfigParser()
    parser.read_config(str(config_file))
    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def", instantiate=True).eval()
    inferer = parser.get_parsed_content("inferer", instantiate=True)
    post = [t for t in parser.get_parsed_content("postprocessing", instantiate=True).transforms]
    post = [t for t in post if not isinstance(t, SaveImaged)]
    # the bundle's own preprocessing, inferer and postprocessing (as its evaluator runs them), no MONAI Label key
    data = parser.get_parsed_content("preprocessing", instantiate=True)({"image": str(image_file)})
    x = data["image"][None]
    state = network.state_dict()
    head_bias = [k for k, v in state.items() if k.endswith("bias") and v.shape == (2,)][-1]
    assert "head" in head_bias, head_bias
    with torch.no_grad():
        logits = inferer(x, network)[0]
        # shift the random head so that about half of the voxels are infarction: both labels occur
        state[head_bias][1] -= float((logits[1] - logits[0]).median())
        network.load_state_dict(state)
        data["pred"] = inferer(x, network)[0]  # as MONAI Label indexes the batch
    for transform in post:  # Activationsd, SuperResolveAffined, FromModelGridd, AsDiscreted
        data = transform(data)
    fine = np.asarray(data["pred"][0])
    assert fine.shape == (512, 512, slices)  # 8x the input grid in-plane
    # MONAI Label's restore is a nearest-neighbour resize 512 -> 64, i.e. every 8th fine voxel
    expected = fine[::8, ::8].astype(np.float32)  # (64, 64, slices): the input grid
    (bundle / "models").mkdir()
    torch.save(state, bundle / "models" / "model.pt")
    return bundle, image_file, nib.load(str(image_file)).affine, expected


def test_metadata_read_like_monailabel():
    metadata = json.loads((SEG_BUNDLE / "configs" / "metadata.json").read_text())
    assert infer_type(SEG_BUNDLE.name) == "segmentation"
    assert bundle_labels(metadata) == {"infarction": 1}
    assert bundle_dimension(metadata) == 2
    fmt = metadata["network_data_format"]
    assert next(iter(fmt["inputs"])) == "image" and next(iter(fmt["outputs"])) == "pred"


@pytest.mark.parametrize("runner", RUNNERS)
def test_sseg_bundle_prediction_on_input_grid(runner, sseg_case, monkeypatch):
    bundle, image_file, input_affine, expected = sseg_case
    pred, affine, labels = run_bundle(runner, bundle, image_file, monkeypatch)

    assert labels == {"infarction": 1}
    assert pred.shape == expected.shape, "MONAI Label restores the prediction to the input's spatial shape"
    np.testing.assert_allclose(affine, input_affine, atol=1e-4)
    assert set(np.unique(pred).tolist()) == {0.0, 1.0}  # channel_def indices, both present
    mismatch = int((pred != expected).sum())
    assert (
        mismatch == 0
    ), f"prediction differs from the network's own argmax (sampled on the input grid) in {mismatch} voxels"


@pytest.mark.slow
@SKIP_WITHOUT_MONAILABEL
def test_driver_matches_real_monailabel(sseg_case, monkeypatch):
    bundle, image_file, _, _ = sseg_case
    ours = run_like_bundle_infer_task(bundle, image_file)
    theirs = run_real_monailabel(bundle, image_file, monkeypatch)
    np.testing.assert_array_equal(ours[0], theirs[0])
    np.testing.assert_allclose(ours[1], theirs[1], atol=1e-4)
    assert ours[2] == theirs[2]


def test_a_stack_stored_with_its_slices_first_comes_back_in_its_own_layout(sseg_case, tmp_path):
    """The bundle reads each file's slice axis from its header (``SlicesLastd(axis="auto")``), so the stack a viewer
    sends with its slices on the first axis gets, through MONAI Label's task, the slices-last stack's prediction in
    its own layout and affine."""
    bundle, image_file, _, _ = sseg_case
    image = nib.load(str(image_file))
    if image.shape[2] == 1:
        pytest.skip("a single slice (64, 64, 1) has its slice axis last by definition")
    moved_affine = image.affine.copy()
    moved_affine[:, :3] = image.affine[:, [2, 0, 1]]
    first = write_nifti(tmp_path / "slices_first.nii.gz", np.moveaxis(np.asarray(image.dataobj), 2, 0), moved_affine)
    pred_last, affine_last, _ = run_like_bundle_infer_task(bundle, image_file, device="cpu")
    pred_first, affine_first, _ = run_like_bundle_infer_task(bundle, first, device="cpu")
    assert pred_first.shape == (image.shape[2], *image.shape[:2])
    np.testing.assert_array_equal(pred_first, np.moveaxis(pred_last, 2, 0))
    np.testing.assert_allclose(affine_first, moved_affine, atol=1e-4)
    assert set(np.unique(pred_first).tolist()) == {0.0, 1.0}


# ---------------------------------------------------------------- a tiny 3D bundle: driver fidelity --------------


def make_3d_bundle(root: Path, preprocessing_extra: list, name: str = "tiny_ct_segmentation") -> Path:
    """A 1x1x1-conv 'segmentation' bundle in MONAI Label's layout (inference.json, metadata.json, model.pt)."""
    bundle = root / name
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    config = {
        "imports": ["$import torch"],
        "bundle_root": ".",
        "device": "$torch.device('cpu')",
        "network_def": {"_target_": "torch.nn.Conv3d", "in_channels": 1, "out_channels": 3, "kernel_size": 1},
        "preprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "LoadImaged", "keys": "image", "image_only": True, "ensure_channel_first": True}
            ]
            + preprocessing_extra,
        },
        "inferer": {"_target_": "SimpleInferer"},
        "postprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
                {"_target_": "SaveImaged", "keys": "pred", "output_dir": str(root / "must_not_be_written")},
            ],
        },
    }
    metadata = {
        "version": "0.0.1",
        "network_data_format": {
            "inputs": {"image": {"spatial_shape": [8, 8, 4]}},
            "outputs": {"pred": {"channel_def": {"0": "background", "1": "Myocardium", "2": "Scar"}}},
        },
    }
    (bundle / "configs" / "inference.json").write_text(json.dumps(config))
    (bundle / "configs" / "metadata.json").write_text(json.dumps(metadata))
    network = torch.nn.Conv3d(1, 3, 1)
    with torch.no_grad():  # class 0 below 1/3 of the intensity, 1 in the middle, 2 above: all three occur
        network.weight.copy_(torch.tensor([0.0, 3.0, 6.0]).view(3, 1, 1, 1, 1))
        network.bias.copy_(torch.tensor([0.0, -1.0, -3.0]))
    torch.save({"model": network.state_dict()}, bundle / "models" / "model.pt")
    return bundle


@pytest.fixture
def volume(tmp_path) -> tuple[Path, np.ndarray]:
    affine = oblique_affine((0.9, 1.1, 3.0), (10.0, -20.0, 5.0))
    ramp = np.linspace(0.0, 1.0, 16 * 16 * 8, dtype=np.float32).reshape(16, 16, 8)
    return write_nifti(tmp_path / "volume.nii.gz", ramp, affine), affine


@pytest.mark.parametrize("runner", RUNNERS)
def test_3d_bundle_restored_to_input_grid(runner, tmp_path, volume, monkeypatch):
    image_file, affine = volume
    resized = [{"_target_": "Resized", "keys": "image", "spatial_size": [8, 8, 4], "mode": "nearest"}]
    bundle = make_3d_bundle(tmp_path, resized)
    pred, out_affine, labels = run_bundle(runner, bundle, image_file, monkeypatch)
    assert labels == {"myocardium": 1, "scar": 2}
    assert pred.shape == (16, 16, 8)
    np.testing.assert_allclose(out_affine, affine, atol=1e-4)
    assert set(np.unique(pred).tolist()) == {0.0, 1.0, 2.0}
    assert not (tmp_path / "must_not_be_written").exists(), "SaveImaged must be dropped"


@pytest.mark.parametrize("runner", RUNNERS)
def test_spacingd_clashes_with_image_path(runner, tmp_path, volume, monkeypatch):
    """DESIGN.md section 3: monai 1.6 Spacingd updates every 'image_*' key, and MONAI Label adds image_path (a str)."""
    bundle = make_3d_bundle(tmp_path, [{"_target_": "Spacingd", "keys": "image", "pixdim": [2.0, 2.0, 2.0]}])
    with pytest.raises(AttributeError, match="'str' object has no attribute 'update'"):
        run_bundle(runner, bundle, volume[0], monkeypatch)


def test_driver_rejects_uncovered_checkpoint(tmp_path, volume):
    bundle = make_3d_bundle(tmp_path, [])
    torch.save(torch.nn.Conv3d(1, 3, 1, bias=False).state_dict(), bundle / "models" / "model.pt")
    with pytest.raises(ValueError, match=r"model\.pt.*1 missing \['bias'\]"):
        run_like_bundle_infer_task(bundle, volume[0])


def test_driver_rejects_bundle_without_model_or_loader(tmp_path, volume):
    bundle = make_3d_bundle(tmp_path, [])
    (bundle / "models" / "model.pt").unlink()
    with pytest.raises(FileNotFoundError, match="neither models/model.pt nor models/model.ts"):
        run_like_bundle_infer_task(bundle, volume[0])

    other = make_3d_bundle(tmp_path / "b", [])
    config_file = other / "configs" / "inference.json"
    config = json.loads(config_file.read_text())
    config["preprocessing"]["transforms"].insert(0, {"_target_": "Identityd", "keys": "image"})
    config_file.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="inference.json: preprocessing must start with LoadImaged on 'image'"):
        run_like_bundle_infer_task(other, volume[0])


def test_labels_and_type_rules():
    meta = {"network_data_format": {"outputs": {"pred": {"channel_def": {"0": "Background", "3": "LV"}}}}}
    assert bundle_labels(meta) == {"lv": 3}
    assert bundle_labels(meta, "deepedit") == {"background": 0, "lv": 3}
    with pytest.raises(ValueError, match="channel_def key 'x'"):
        bundle_labels({"network_data_format": {"outputs": {"pred": {"channel_def": {"x": "LV"}}}}})
    assert bundle_dimension({"network_data_format": {"inputs": {"image": {}}}}) == 3
    assert infer_type("pathology_nuclei_segmentation_classification") == "segmentation"
    assert infer_type("spleen_deepedit_annotation") == "deepedit"


def test_restore_uses_trailing_spatial_shape():
    """MONAI Label resizes to the LAST dims of the loaded shape: a 2D (1, 512, 512) result of a (64, 64, 1) file
    becomes (1, 64, 1). A 2D bundle has to hand back (1, sH, sW, 1) to be restored onto its single-slice input."""
    from monai.data import MetaTensor

    image = MetaTensor(torch.zeros(1, 64, 64), meta={"spatial_shape": np.array([64, 64, 1]), "original_affine": "A"})
    flat = restore_to_input({"image": image, "pred": torch.ones(1, 512, 512)})
    assert tuple(flat["pred"].shape) == (1, 64, 1)
    kept = restore_to_input({"image": image, "pred": torch.ones(1, 512, 512, 1)})
    assert tuple(kept["pred"].shape) == (64, 64, 1) and kept["pred_meta_dict"]["affine"] == "A"
