"""The 2D-slice bundles' folder inference takes a stack whose slices lie on its first axis (a converter or a
reorientation to RAS may store them there): each file's slice axis is read from its header, the slices are moved last
for the network and the output is written back in the file's own layout. A stack and the same stack stored with its
slices first give the same output, stored the way each input was (same voxels at the same world positions)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_test_utils import run_tiny, slices_first, tiny_sseg_bundle
from common.benchmarking import parse_config_items, read_overlay

BUNDLES_DIR = Path(__file__).resolve().parents[2] / "bundles"
#: the DTI bundle's inputs here are single-channel b0 (S0) images
SINGLE_CHANNEL = {"dti_channel_names": ["S0"], "dti_channels": ["S0"]}
OVERRIDES = {"dti_lge_style_transfer": SINGLE_CHANNEL, "lge_cardiac_segmentation_munit": {"file_pattern": "*.nii.gz"}}
#: the segmenting bundles' class counts (their untrained heads are balanced, :func:`_balance_head`)
SEGMENTERS = {"lge_mi_sr_segmentation": 2, "lge_cardiac_segmentation_munit": 4}
RUNS = {  # id: (bundle, config files, output postfix)
    "swinssegnet": ("lge_mi_sr_segmentation", ["inference.json"], "mi_x8"),
    "cycleganseg": ("dti_lge_style_transfer", ["inference.json"], "lge_style"),
    "cycleganseg_pipeline": ("dti_lge_style_transfer", ["inference.json", "pipeline.json"], "mi_x8"),
    "cascaded_unet": ("lge_cardiac_segmentation_munit", ["inference.json"], "seg"),
}


def _ring_stack() -> tuple[np.ndarray, np.ndarray]:
    """A bright ring in every slice of a 40 x 36 x 3 stack at 2.5 x 2.5 x 8 mm (a short-axis stack, slices last)."""
    yy, xx = np.meshgrid(np.linspace(-1, 1, 40), np.linspace(-1, 1, 36), indexing="ij")
    ring = ((yy**2 + xx**2 > 0.15) & (yy**2 + xx**2 < 0.3)).astype(np.float32)
    noise = np.random.default_rng(0).standard_normal((40, 36, 3)).astype(np.float32)
    return 100 + 300 * ring[..., None] + 20 * noise, np.diag([2.5, 2.5, 8.0, 1.0])


def _inputs_and_weights(bundle: Path, root: Path) -> tuple[Path, Path]:
    """``inputs/a_sax.nii.gz`` (slices last), ``inputs/b_slices_first.nii.gz`` (the same stack, slices first) and the
    bundle's tiny networks, untrained, saved where its inference.json reads them."""
    inputs, models = root / "inputs", root / "models"
    inputs.mkdir(parents=True)
    models.mkdir()
    if bundle.name == "lge_cardiac_segmentation_munit":
        from common.data import write_mscmrseg

        lge = nib.load(write_mscmrseg(root / "source", n_patients=4, seed=3, small=True) / "patient4_LGE.nii.gz")
        volume, affine = np.asarray(lge.dataobj, dtype=np.float32), lge.affine
    else:
        volume, affine = _ring_stack()
    nib.save(nib.Nifti1Image(volume, affine), inputs / "a_sax.nii.gz")
    nib.save(nib.Nifti1Image(*slices_first(volume, affine)), inputs / "b_slices_first.nii.gz")
    _save_untrained(bundle, models, root)
    return inputs, models


def _save_untrained(bundle: Path, models: Path, root: Path) -> None:
    """The bundle's tiny inference network, untrained (a segmenter's head balanced on ``root/inputs/a_sax.nii.gz``),
    where its inference.json reads it."""
    torch.manual_seed(0)
    items = _inference_items(bundle, OVERRIDES.get(bundle.name, {}))
    network = items["network_def"]
    if bundle.name in SEGMENTERS:
        _balance_head(items, SEGMENTERS[bundle.name], root / "inputs" / "a_sax.nii.gz")
    if bundle.name == "lge_cardiac_segmentation_munit":  # {"model": cascade + localiser}, and the localiser alone
        torch.save({"model": network.state_dict()}, models / "model.pt")
        (models / "localiser").mkdir(exist_ok=True)
        torch.save(network.localiser.state_dict(), models / "localiser" / "localiser.pt")
    else:
        torch.save(network.state_dict(), models / "model.pt")


def _inference_items(bundle: Path, overrides: dict) -> dict:
    """The tiny inference.json's network (untrained), preprocessing and inferer, ``overrides`` on top."""
    overrides = {**read_overlay(bundle, "tiny.json"), **overrides}
    return parse_config_items(bundle, ["inference.json"], overrides, items=["network_def", "preprocessing", "inferer"])


def _balance_head(items: dict, classes: int, image: Path) -> None:
    """Shift the bias of the untrained ``items["network_def"]``'s last layer (the last module with a per-class bias
    that runs) by each class's median logit on ``image``, through the bundle's own preprocessing and inferer
    (``items``, :func:`_inference_items`): untrained, every voxel falls in one class, and a constant output cannot
    show where each voxel went."""
    network = items["network_def"]
    data = items["preprocessing"]({"image": str(image)})
    called: list[torch.nn.Module] = []
    hooks = [
        module.register_forward_hook(lambda module, *_: called.append(module))
        for module in network.modules()
        if isinstance(getattr(module, "bias", None), torch.Tensor) and module.bias.shape == (classes,)
    ]
    with torch.no_grad():
        logits = items["inferer"](data["image"][None], network.eval())
        called[-1].bias.sub_(logits.flatten(2).median(-1).values[0])
    for hook in hooks:
        hook.remove()


@pytest.mark.slow
@pytest.mark.parametrize("run", sorted(RUNS))
def test_folder_inference_writes_a_slices_first_stack_back_in_its_own_layout(run, tmp_path):
    bundle, files, postfix = RUNS[run]
    root = BUNDLES_DIR / bundle
    inputs, models = _inputs_and_weights(root, tmp_path)
    out = tmp_path / "out"
    overrides = dict(OVERRIDES.get(bundle, {}))
    if "pipeline.json" in files:
        sseg_bundle = tiny_sseg_bundle(tmp_path / "sseg_bundle")
        overrides["sseg_bundle_root"] = str(sseg_bundle)
        # its SwinSSegNet balanced as the SwinSSegNet run's (on the stack itself, not on the translation it is fed)
        items = _inference_items(BUNDLES_DIR / "lge_mi_sr_segmentation", {})
        items["network_def"].load_state_dict(torch.load(sseg_bundle / "models" / "model.pt", weights_only=True))
        _balance_head(items, SEGMENTERS["lge_mi_sr_segmentation"], inputs / "a_sax.nii.gz")
        torch.save(items["network_def"].state_dict(), sseg_bundle / "models" / "model.pt")
    run_tiny(root, files, dataset_dir=str(inputs), ckpt_dir=str(models), output_dir=str(out), **overrides)
    last = nib.load(out / f"a_sax_{postfix}.nii.gz")
    first = nib.load(out / f"b_slices_first_{postfix}.nii.gz")
    assert np.ptp(np.asarray(last.dataobj)) > 0, "a constant output cannot show where each voxel went"
    slices = nib.load(inputs / "a_sax.nii.gz").shape[2]
    assert last.shape[2] == slices and first.shape[0] == slices, (last.shape, first.shape)
    expected, expected_affine = slices_first(np.asarray(last.dataobj), last.affine)
    assert first.shape == expected.shape
    np.testing.assert_allclose(first.affine, expected_affine, atol=1e-4)
    np.testing.assert_allclose(np.asarray(first.dataobj), expected, rtol=1e-4, atol=1e-3)


# ------------------------------------------------------------------------- training data of the cascaded U-Net bundle
MUNIT = BUNDLES_DIR / "lge_cardiac_segmentation_munit"
MUNIT_VOLUME_TRANSFORMS = {  # id: (config files, the item holding the volume transforms, case keys -> file suffix)
    "segmenter": (["train.json"], "volume_transforms", {"image": "C0", "label": "C0_manual"}),
    "localiser": (["train.json", "train_localiser.json"], "volume_transforms", {"image": "C0", "label": "C0_manual"}),
    "translator_bssfp": (["train.json", "train_translator.json"], "bssfp_volume_transforms",
                         {"bssfp": "C0", "bssfp_label": "C0_manual"}),
    "translator_lge": (["train.json", "train_translator.json"], "lge_volume_transforms", {"lge": "LGE"}),
    "generate": (["train.json", "generate.json"], "generate_transforms", {"image": "C0", "label": "C0_manual"}),
}  # fmt: skip


@pytest.fixture(scope="module")
def munit_data(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A small MS-CMRSeg phantom, the same files stored with their slices first, and a models folder with the tiny
    localiser untrained (the translator's LGE crops are found with it)."""
    from bundle_test_utils import copy_slices_first
    from common.data import write_mscmrseg

    root = tmp_path_factory.mktemp("munit_slices_first")
    source = write_mscmrseg(root / "last", n_patients=4, seed=3, small=True)
    copy_slices_first(source, root / "first")
    models = root / "models"
    (models / "localiser").mkdir(parents=True)
    torch.manual_seed(0)
    localiser = parse_config_items(MUNIT, ["train.json"], read_overlay(MUNIT, "tiny.json"), items=["localiser_def"])
    torch.save(localiser["localiser_def"].state_dict(), models / "localiser" / "localiser.pt")
    return source, root / "first", models


@pytest.mark.parametrize("stage", sorted(MUNIT_VOLUME_TRANSFORMS))
def test_cascaded_unet_training_data_are_the_same_from_slices_first_files(stage, munit_data):
    """Every training stage's volume pipeline gives the same tensors from the phantom and from its slices-first copy
    (the slices are moved last right after loading); without that, training would take planes across the slices."""
    from monai.transforms import Compose

    files, item, keys = MUNIT_VOLUME_TRANSFORMS[stage]
    last_dir, first_dir, models = munit_data
    overrides = {**read_overlay(MUNIT, "tiny.json"), "dataset_dir": str(last_dir), "ckpt_dir": str(models)}
    transforms = parse_config_items(MUNIT, files, overrides, items=[item])[item]
    transform = transforms if callable(transforms) else Compose(transforms)
    outputs = []
    for folder in (last_dir, first_dir):
        case = {key: str(folder / f"patient4_{suffix}.nii.gz") for key, suffix in keys.items()}
        outputs.append(transform(case))
    last, first = outputs
    assert nib.load(first_dir / "patient4_C0.nii.gz").shape[0] < 20  # the copy holds its slices first
    assert set(keys) & set(last) == set(keys) & set(first) and next(iter(keys)) in last
    for key in set(keys) & set(last):  # (the translator's bSSFP label is dropped once the crop is found)
        assert last[key].shape == first[key].shape, (key, last[key].shape, first[key].shape)
        np.testing.assert_allclose(first[key].numpy(), last[key].numpy(), atol=1e-5)
        if hasattr(last[key], "affine"):
            np.testing.assert_allclose(first[key].affine.numpy(), last[key].affine.numpy(), atol=1e-5)
