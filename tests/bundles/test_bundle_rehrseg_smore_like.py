"""The REHRSeg bundle's SMORE-like baseline: an image-only self-SR network (``smore_sr.json``), its thin-slice
dataset with the LR labels interpolated (``smore_data.json``), and a segmenter trained on that dataset
(``lr_baseline.json`` at ``scale`` 1), the benchmark's ``SMORE-like`` row.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_test_utils import bundle_scripts, exception_messages, run_tiny, tiny_workflow
from common.checkpoint import load_weights
from common.data.degradation import interpolate_to_thin_slices, thin_slice_affine
from common.inferers import ThickSliceSegInferer
from common.transforms import CheckThickSlicesd, SelfSRPatchesd
from monai.data import MetaTensor

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "thick_slice_hr_segmentation_rehrseg"
SR = ["train.json", "train_sr.json"]


def test_image_only_patches_carry_no_label():
    """``use_label=False``: the label channel of both sides of every pair is zero, though the label has a lesion."""
    rng = np.random.default_rng(0)
    image = torch.as_tensor(rng.random((1, 40, 40, 12)), dtype=torch.float32)
    label = torch.zeros_like(image)
    label[:, 10:30, 10:30, 2:10] = 1
    kwargs = {"scale": 4, "axis": 2, "patch_size": 12, "num_samples": 6, "foreground_prob": 1.0}
    joint = SelfSRPatchesd(**kwargs)({"image": image, "label": label})
    alone = SelfSRPatchesd(**kwargs, use_label=False)({"image": image, "label": label})
    assert any(p["hr"][1].any() for p in joint)  # the joint pairs learn the lesion
    for pair in alone:
        assert not pair["lr"][1].any() and not pair["hr"][1].any()
        assert pair["lr"][0].abs().sum() > 0


def _volume(spacing: tuple[float, float, float]) -> MetaTensor:
    return MetaTensor(torch.zeros(1, 8, 8, 8), affine=torch.diag(torch.tensor([*spacing, 1.0], dtype=torch.float64)))


def test_a_factor_1_check_takes_thin_volumes_and_refuses_thick_ones():
    """A segmenter of super-resolved volumes (``scale`` 1) takes an isotropic volume and refuses a thick stack."""
    check = CheckThickSlicesd("image", factor=1, axis=2)
    check({"image": _volume((2.0, 2.0, 2.0))})
    with pytest.raises(ValueError, match="trained for x1"):
        check({"image": _volume((2.0, 2.0, 8.0))})
    with pytest.raises(ValueError, match="nearly isotropic"):  # a x4 model still refuses the isotropic one
        CheckThickSlicesd("image", factor=4, axis=2)({"image": _volume((2.0, 2.0, 2.0))})
    with pytest.raises(ValueError, match="positive"):
        CheckThickSlicesd("image", factor=0)


@pytest.mark.slow
def test_the_smore_like_pipeline_trains_on_every_subject_s_image_only_sr_and_interpolated_labels(tmp_path):
    from common.data import nnunet_cases, write_meningioma

    data = write_meningioma(tmp_path / "data", n_subjects=4, seed=0, small=True, workers=0)
    models = tmp_path / "models"
    common = {"dataset_dir": str(data), "ckpt_dir": str(models)}
    run_tiny(BUNDLE, [*SR, "smore_sr.json"], **common, output_dir=str(tmp_path / "eval" / "smore_sr"))
    assert (models / "sr" / "image_only.pt").is_file() and not (models / "sr" / "plain.pt").exists()
    # the image-only network is what smore_data.json runs, and its label input is empty
    workflow = run_tiny(BUNDLE, ["train.json", "smore_data.json"], **common)
    seen = []
    net = workflow.parser.get_parsed_content("sr_network_def")
    handle = net.register_forward_pre_hook(lambda module, args: seen.append(args[0][:, 1].abs().max().item()))
    smore = models / "smore_like"
    with bundle_scripts(BUNDLE):
        from scripts.smore_like import write_smore_like_dataset

        cases = nnunet_cases(data)
        write_smore_like_dataset(cases[:1], net, str(tmp_path / "probe"), 4)
    handle.remove()
    assert seen and max(seen) == 0.0
    # every subject (the split is the thick set's), thin grid over the thick extent, the LR label interpolated
    assert sorted(p.name for p in (smore / "imagesTr").iterdir()) == sorted(Path(c["image"]).name for c in cases)
    for case in cases:
        thick, thick_label = nib.load(case["image"]), np.asarray(nib.load(case["label"]).dataobj)
        image = nib.load(smore / "imagesTr" / Path(case["image"]).name)
        label = np.asarray(nib.load(smore / "labelsTr" / Path(case["label"]).name).dataobj)
        assert image.shape == label.shape == thick.shape[:2] + (4 * thick.shape[2],)
        np.testing.assert_allclose(image.affine, thin_slice_affine(thick.affine, 2, 4), atol=1e-4)
        expected = interpolate_to_thin_slices(thick_label.astype(np.float32), 2, 4, order=1) >= 0.5
        np.testing.assert_array_equal(label > 0, expected)
        assert np.isfinite(np.asarray(image.dataobj)).all() and np.asarray(image.dataobj).std() > 0
    # a second run refuses to replace them
    with pytest.raises(Exception) as error:
        run_tiny(BUNDLE, ["train.json", "smore_data.json"], **common)
    assert "exists" in exception_messages(error.value) and "--overwrite true" in exception_messages(error.value)
    # the segmenter trains on the thin-slice set at scale 1 (the thick-slice check would refuse it at scale 4)
    seg = tmp_path / "seg"
    run_tiny(BUNDLE, ["train.json", "lr_baseline.json"], dataset_dir=str(smore), ckpt_dir=str(seg), scale=1,
             output_dir=str(tmp_path / "eval" / "seg"))  # fmt: skip
    assert (seg / "model.pt").is_file()
    # the benchmark scores it on each held-out subject's SR volume, against the HR truth on the thin grid
    with bundle_scripts(BUNDLE):
        import scripts.benchmark as benchmark

        tests = benchmark._test_cases(str(data))
        rows = benchmark._score_smore_like(str(seg / "model.pt"), str(smore), {"seg_features": [4, 8, 8, 8]}, tests)
    assert tests and sorted(rows["SMORE-like"]) == ["hr_dice", "hr_hd95", "lr_dice"]
    for metric in ("hr_dice", "lr_dice"):
        assert sorted(rows["SMORE-like"][metric]) == sorted(c["name"] for c in tests)
        assert all(0.0 <= v <= 1.0 for v in rows["SMORE-like"][metric].values())
    with pytest.raises(Exception) as error:
        run_tiny(BUNDLE, ["train.json", "lr_baseline.json"], dataset_dir=str(smore), ckpt_dir=str(tmp_path / "x"),
                 output_dir=str(tmp_path / "eval" / "x"))  # fmt: skip
    assert "nearly isotropic" in exception_messages(error.value)
    # smore_inference.json: new thick volumes through both networks give, on the thin grid over each input's extent,
    # the logits the benchmark gets from the segmenter on smore_data.json's SR image of that volume
    inference = {"ckpt_dir": str(models), "model_weights": str(seg / "model.pt")}
    out = tmp_path / "smore_outputs"
    run_tiny(BUNDLE, ["inference.json", "smore_inference.json"], dataset_dir=str(data / "imagesTr"),
             output_dir=str(out), **inference)  # fmt: skip
    names = [Path(c["image"]).name.replace(".nii.gz", "_smore_seg.nii.gz") for c in cases]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    with bundle_scripts(BUNDLE):
        workflow = tiny_workflow(BUNDLE, ["inference.json", "smore_inference.json"], dataset_dir=str(data / "imagesTr"),
                                 output_dir=str(tmp_path / "unused"), **inference)  # fmt: skip
        parser = workflow.parser
        network, inferer = parser.get_parsed_content("network"), parser.get_parsed_content("inferer")
        load_weights(network, str(seg / "model.pt"))  # (the run's WeightsLoader handler does this)
        preprocessing = parser.get_parsed_content("preprocessing")
        net = benchmark._segmenter(str(seg / "model.pt"), {"seg_features": [4, 8, 8, 8]}, scale=1)
        for case in tests:
            path = case["path"]  # the held-out subject's thick-slice image
            with torch.no_grad():
                logits = inferer(preprocessing({"image": path})["image"][None], network)
                sr, _ = benchmark._scaled(benchmark._read(str(smore / "imagesTr" / Path(path).name))[0])
                expected = ThickSliceSegInferer(net.divisor, scale=1, head="lr")(sr.float(), net)
            assert logits.shape == expected.shape and logits.shape[-1] == 4 * nib.load(path).shape[2]
            torch.testing.assert_close(torch.as_tensor(logits), torch.as_tensor(expected), atol=1e-3, rtol=1e-3)
            written = nib.load(out / Path(path).name.replace(".nii.gz", "_smore_seg.nii.gz"))
            assert written.shape == tuple(expected.shape[2:])
            np.testing.assert_allclose(written.affine, thin_slice_affine(nib.load(path).affine, 2, 4), atol=1e-4)
            np.testing.assert_array_equal(np.asarray(written.dataobj), torch.as_tensor(logits)[0].argmax(0).numpy())
            # the benchmark's HR Dice of this subject is the written mask's overlap with the held-back HR truth
            # (the tiny segmenter marks most of the head, so the Dice is small: relative tolerance; a near-tie voxel
            # moves it by about 1e-8)
            mask, truth = np.asarray(written.dataobj) == 1, case["hr_label"] == 1
            overlap = 2 * (mask & truth).sum() / max(mask.sum() + truth.sum(), 1)
            assert rows["SMORE-like"]["hr_dice"][case["name"]] == pytest.approx(overlap, rel=1e-3), case["name"]
    with pytest.raises(Exception) as error:  # the SMORE-like pipeline has no U map to save
        run_tiny(BUNDLE, ["inference.json", "smore_inference.json"], dataset_dir=str(data / "imagesTr"),
                 output_dir=str(tmp_path / "refused"), save_sr=True, **inference)  # fmt: skip
    assert "save_sr is for inference.json alone" in exception_messages(error.value)
