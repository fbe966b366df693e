"""DTI channels by config: ``dti_channel_names`` (what each DTI.nii.gz holds, default S0, MD, FA) and ``dti_channels``
(what the networks take, default MD) in the dti_lge_style_transfer bundle, ``image_channel_names``/``image_channels``
in lge_mi_sr_segmentation ("DTI SSeg": SwinSSegNet trained on DTI as the benchmark does)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_test_utils import bundle_scripts, exception_messages, run_bundle, small_dti_lge_mi, tiny_overrides
from common.constants import DTI_CHANNELS
from common.data import dti_lge_mi_cases, dti_lge_mi_split
from common.nets import ResNetGenerator
from common.transforms import super_resolve_affine
from monai.bundle import ConfigWorkflow

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
DTI = BUNDLES / "dti_lge_style_transfer"
SSEG = BUNDLES / "lge_mi_sr_segmentation"
TINY = tiny_overrides(DTI.name)
TINY_SSEG = tiny_overrides(SSEG.name)
ALL = list(DTI_CHANNELS)


def _prepare_dti_folder(*args, **kwargs) -> list[str]:
    with bundle_scripts(DTI):
        from scripts.prepare_dti_folder import prepare_dti_folder

        return prepare_dti_folder(*args, **kwargs)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """5 cases, 4 paired, DTI ``(64, 64, 1, 3)``."""
    return small_dti_lge_mi(tmp_path_factory.mktemp("channels_data"))


@pytest.fixture(scope="module")
def single_channel_data(data, tmp_path_factory) -> Path:
    """The same cases with a single-channel DTI ``(64, 64, 1)``: the MD map only."""
    out = tmp_path_factory.mktemp("md_only") / "DTI_LGE_MI"
    shutil.copytree(data, out)
    for path in sorted(out.glob("Case_*/DTI.nii.gz")):
        image = nib.load(path)
        md = np.asarray(image.dataobj, dtype=np.float32)[..., ALL.index("MD")]
        nib.save(nib.Nifti1Image(md, image.affine), path)
    return out


def _train(data: Path, work: Path, **overrides) -> ConfigWorkflow:
    return run_bundle(
        DTI,
        ["train.json"],
        dataset_dir=str(data),
        ckpt_dir=str(work / "models"),
        output_dir=str(work / "eval"),
        use_segmentor=False,
        resume=False,
        epochs=1,
        **TINY,
        **overrides,
    )


@pytest.mark.slow
def test_default_channel_names_refuse_a_single_channel_file_naming_it_and_the_keys(single_channel_data, tmp_path):
    with pytest.raises(Exception) as error:
        _train(single_channel_data, tmp_path)
    message = exception_messages(error.value)
    assert "DTI.nii.gz holds 1 channel(s) but dti_channel_names lists 3" in message
    assert "dti_channels" in message and not (tmp_path / "models" / "model.pt").exists()


@pytest.mark.slow
def test_a_single_channel_file_trains_and_infers_with_its_channel_names(single_channel_data, tmp_path):
    names = {"dti_channel_names": ["MD"], "dti_channels": ["MD"]}
    _train(single_channel_data, tmp_path, **names)
    folder = tmp_path / "dti"
    inputs = _prepare_dti_folder(str(single_channel_data), str(folder), split="test", channel_names=["MD"])
    with pytest.raises(ValueError, match="holds 1 channel"):  # the script checks the channels too
        _prepare_dti_folder(str(single_channel_data), str(tmp_path / "x"), split="test")
    out = tmp_path / "out"
    run_bundle(DTI, ["inference.json"], dataset_dir=str(folder), ckpt_dir=str(tmp_path / "models"),
               output_dir=str(out), **{k: TINY[k] for k in ("ngf", "n_blocks")}, **names)  # fmt: skip
    for path in inputs:
        assert nib.load(out / os.path.basename(path).replace(".nii.gz", "_lge_style.nii.gz")).shape[:2] == (64, 64)


@pytest.mark.slow
def test_three_channels_refuse_the_identity_term_then_train_and_infer_without_it(data, tmp_path):
    with pytest.raises(Exception) as error:
        _train(data, tmp_path / "identity", dti_channels=ALL)
    message = exception_messages(error.value)
    assert "ValueError" in message and "Set `lambda_identity` to 0" in message and "takes 3 (dti)" in message

    workflow = _train(data, tmp_path, dti_channels=["FA", "MD", "S0"], lambda_identity=0)
    batch = workflow.parser.get_parsed_content("train#dataset")[0]
    assert batch["dti"].shape == (3, 64, 64)
    generator = ResNetGenerator(in_channels=3, out_channels=1, ngf=TINY["ngf"], n_blocks=TINY["n_blocks"])
    generator.load_state_dict(torch.load(tmp_path / "models" / "model.pt", weights_only=True), strict=True)
    folder = tmp_path / "dti"
    inputs = _prepare_dti_folder(str(data), str(folder), split="test")
    assert nib.load(inputs[0]).shape == (64, 64, 1, 3), "the folder holds the files as they are, every channel"
    out = tmp_path / "out"
    run_bundle(DTI, ["inference.json"], dataset_dir=str(folder), ckpt_dir=str(tmp_path / "models"),
               output_dir=str(out), dti_channels=["FA", "MD", "S0"],
               **{k: TINY[k] for k in ("ngf", "n_blocks")})  # fmt: skip
    for path in inputs:
        written = nib.load(out / os.path.basename(path).replace(".nii.gz", "_lge_style.nii.gz"))
        assert written.shape == (64, 64, 1), "one LGE-style image on the input's one-slice grid, not one per channel"
        np.testing.assert_allclose(written.affine, nib.load(path).affine, atol=1e-5)

    # a 4D file with another channel count (a 7-volume DWI series) is set aside and named when the folder is listed:
    # the other files are still written, and the run fails at its end naming it
    image = nib.load(inputs[0])
    dwi = folder / "dwi_series.nii.gz"
    nib.save(nib.Nifti1Image(np.repeat(np.asarray(image.dataobj, np.float32)[..., :1], 7, axis=3), image.affine), dwi)
    again = tmp_path / "out_again"
    with pytest.raises(Exception) as error:
        run_bundle(DTI, ["inference.json"], dataset_dir=str(folder), ckpt_dir=str(tmp_path / "models"),
                   output_dir=str(again), dti_channels=["FA", "MD", "S0"],
                   **{k: TINY[k] for k in ("ngf", "n_blocks")})  # fmt: skip
    message = exception_messages(error.value)
    assert "UnreadableInputError" in message and str(dwi.resolve()) in message, message
    assert sorted(p.name for p in again.iterdir()) == sorted(
        os.path.basename(p).replace(".nii.gz", "_lge_style.nii.gz") for p in inputs
    )


def _dti_x8(cases: list[dict], out: Path) -> list[dict]:
    """Each case's DTI (every channel) repeated 8x8 onto its mask's grid, as the benchmark feeds DTI SSeg: the SSeg
    training config area-downsamples it back to the 64x64 DTI."""
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for case in cases:
        image = nib.load(case["dti"])
        data = np.repeat(np.repeat(np.asarray(image.dataobj, dtype=np.float32), 8, axis=0), 8, axis=1)
        affine = super_resolve_affine(torch.as_tensor(image.affine), 8).numpy()
        nib.save(nib.Nifti1Image(data, affine), out / f"{case['case']}_DTI_x8.nii.gz")
        items.append({"image": str(out / f"{case['case']}_DTI_x8.nii.gz"), "label": case["mask"], "case": case["case"]})
    return items


@pytest.mark.slow
def test_dti_sseg_takes_a_multi_channel_dti_through_its_channel_overrides(data, tmp_path):
    """The benchmark's DTI SSeg: SwinSSegNet's train.json on the training pairs' DTI repeated onto the mask grid,
    then its inference.json on the test pairs' DTI, both with the channel overrides ``image_channel_names`` and
    ``image_channels`` (here all three channels of the file, so ``in_channels`` is 3)."""
    channels = {"image_channel_names": ALL, "image_channels": ALL}
    split = dti_lge_mi_split(dti_lge_mi_cases(data), seed=0)
    train, val = _dti_x8(split["pair_train"], tmp_path / "dti_x8"), _dti_x8(split["val"], tmp_path / "dti_x8")
    assert nib.load(train[0]["image"]).shape == (512, 512, 1, 3)
    common = dict(ckpt_dir=str(tmp_path / "models"), **TINY_SSEG, **channels)
    workflow = run_bundle(SSEG, ["train.json"], dataset_dir=str(data), output_dir=str(tmp_path / "eval"),
                          resume=False, use_ssl_pretrained=False, train_datalist=train, val_datalist=val, epochs=1,
                          val_interval=1, batch_size=2, num_workers=0, **common)  # fmt: skip
    network = workflow.parser.get_parsed_content("network")
    assert next(m for m in network.modules() if isinstance(m, torch.nn.Conv2d)).in_channels == 3
    assert (tmp_path / "models" / "model.pt").is_file()
    folder = tmp_path / "dti_test"
    inputs = _prepare_dti_folder(str(data), str(folder), split="test")
    run_bundle(SSEG, ["inference.json"], dataset_dir=str(folder), output_dir=str(tmp_path / "masks"), **common)
    for path in inputs:
        mask = nib.load(tmp_path / "masks" / os.path.basename(path).replace(".nii.gz", "_mi_x8.nii.gz"))
        assert mask.shape == (512, 512, 1) and set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}
