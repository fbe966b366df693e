"""Unit tests of the DTI -> LGE style-transfer bundle's `scripts/` glue (pipeline inferer, data prep, benchmark)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.transforms import ScaleIntensityRangePercentiles

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "dti_lge_style_transfer"


def _bundle_module(name: str):
    """Import `scripts.<name>` of this bundle (other bundles also have a `scripts` package)."""
    saved = {k: v for k, v in sys.modules.items() if k == "scripts" or k.startswith("scripts.")}
    for key in saved:
        del sys.modules[key]
    sys.path.insert(0, str(BUNDLE))
    try:
        return importlib.import_module(f"scripts.{name}")
    finally:
        sys.path.remove(str(BUNDLE))
        for key in [k for k in sys.modules if k == "scripts" or k.startswith("scripts.")]:
            del sys.modules[key]
        sys.modules.update(saved)


class _ThresholdSegmenter(torch.nn.Module):
    """Logits ``(-x, x)``: argmax is 1 where the image is positive; records inputs; ``scale``x nearest output."""

    def __init__(self, scale: int = 1) -> None:
        super().__init__()
        self.scale = scale
        self.weight = torch.nn.Parameter(torch.ones(1))
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(torch.as_tensor(x).detach().clone())
        logits = torch.cat([-x, x], dim=1) * self.weight
        return F.interpolate(logits, scale_factor=self.scale, mode="nearest") if self.scale > 1 else logits


# ------------------------------------------------------------------------------------------ pipeline inferer
def test_pipeline_inferer_translates_renormalises_and_keeps_metadata():
    inferer_module = _bundle_module("pipeline_inferer")
    segmenter = _ThresholdSegmenter(scale=8).train()
    inferer = inferer_module.TranslateSegmentInferer(
        segmenter, ScaleIntensityRangePercentiles(lower=1, upper=99, b_min=0.0, b_max=1.0, clip=True)
    )
    affine = torch.diag(torch.tensor([2.5, 2.5, 8.0, 1.0], dtype=torch.float64))
    images = MetaTensor(torch.linspace(-1, 1, 2 * 16 * 16).reshape(2, 1, 16, 16), affine=affine)

    def generator(x):
        return -x  # a "translation" whose output range differs from the segmenter's input range

    logits = inferer(images, generator)
    assert logits.shape == (2, 2, 128, 128)
    assert isinstance(logits, MetaTensor)
    torch.testing.assert_close(logits.affine, images.affine)
    assert not segmenter.training, "the segmenter must run in eval mode"
    seen = segmenter.inputs[-1]
    assert seen.shape == (2, 1, 16, 16)
    assert float(seen.min()) == pytest.approx(0.0) and float(seen.max()) == pytest.approx(1.0)  # per-image [0, 1]
    assert float(seen[0, 0, 0, 0]) > float(seen[0, 0, -1, -1])  # the generator's output, not its input


def test_pipeline_inferer_without_intensity_transform_and_bad_segmenter():
    inferer_module = _bundle_module("pipeline_inferer")
    segmenter = _ThresholdSegmenter()
    inferer = inferer_module.TranslateSegmentInferer(segmenter)
    x = torch.randn(1, 1, 8, 8)
    inferer(x, lambda t: t * 0.5)
    torch.testing.assert_close(segmenter.inputs[-1], x * 0.5)
    with pytest.raises(ValueError, match="segmenter"):
        inferer_module.TranslateSegmentInferer(lambda t: t)


# ------------------------------------------------------------------------------------------ data preparation
@pytest.fixture(scope="module")
def paired_data(tmp_path_factory) -> Path:
    from common.data import write_dti_lge_mi

    out = tmp_path_factory.mktemp("dti_scripts_data")
    write_dti_lge_mi(out, n_cases=3, n_paired=3, seed=1)
    return out / "DTI_LGE_MI"


def test_prepare_dti_folder_copies_the_split_and_refuses_to_overwrite(paired_data, tmp_path):
    prepare = _bundle_module("prepare_dti_folder").prepare_dti_folder
    written = prepare(str(paired_data), str(tmp_path / "all"), split="all")
    assert [Path(p).name for p in written] == ["Case_001_DTI.nii.gz", "Case_002_DTI.nii.gz", "Case_003_DTI.nii.gz"]
    source = nib.load(paired_data / "Case_002" / "DTI.nii.gz")
    copy = nib.load(written[1])
    np.testing.assert_array_equal(copy.affine, source.affine)
    np.testing.assert_array_equal(np.asarray(copy.dataobj), np.asarray(source.dataobj))
    test_only = prepare(str(paired_data), str(tmp_path / "test"), split="test")
    assert len(test_only) == 1
    with pytest.raises(FileExistsError, match="Case_001_DTI.nii.gz"):
        prepare(str(paired_data), str(tmp_path / "all"), split="all")
    assert len(prepare(str(paired_data), str(tmp_path / "all"), split="all", overwrite=True)) == 3
    with pytest.raises(ValueError, match="split"):
        prepare(str(paired_data), str(tmp_path / "x"), split="holdout")


def test_benchmark_dti_on_the_lge_grid_is_exactly_the_selected_dti_channel_after_area_downsampling(
    paired_data, tmp_path
):
    benchmark = _bundle_module("benchmark")
    from common.constants import DTI_CHANNELS
    from common.data import dti_lge_mi_cases

    cases = dti_lge_mi_cases(paired_data, require_dti=True)[:1]
    item = benchmark.write_dti_inputs(cases, tmp_path / "x8", ("MD",), scale=8)[0]
    upsampled, dti, mask = nib.load(item["image"]), nib.load(cases[0]["dti"]), nib.load(cases[0]["mask"])
    assert upsampled.shape == mask.shape and item["label"] == cases[0]["mask"]
    # the DTI's own grid subdivided 8x: spacing of the mask, origin within half a DTI voxel of the mask's
    np.testing.assert_allclose(upsampled.affine[:3, :3], mask.affine[:3, :3], atol=1e-6)
    assert np.all(np.abs(upsampled.affine[:2, 3] - mask.affine[:2, 3]) <= 1.25 + 1e-4)
    back = F.interpolate(
        torch.as_tensor(np.asarray(upsampled.dataobj))[None, None, ..., 0], size=dti.shape[:2], mode="area"
    )
    md = np.asarray(dti.dataobj)[:, :, 0, DTI_CHANNELS.index("MD")]
    np.testing.assert_allclose(back[0, 0].numpy(), md, rtol=1e-5, atol=1e-5)
    two = benchmark.write_dti_inputs(cases, tmp_path / "two", ("FA", "S0"))[0]  # native grid, channels in order
    np.testing.assert_array_equal(
        np.asarray(nib.load(two["image"]).dataobj)[:, :, 0], np.asarray(dti.dataobj)[:, :, 0][..., [2, 0]]
    )
    # mask_dice scores the one saved mask per case against the manual one
    truth = np.asarray(mask.dataobj)
    nib.save(nib.Nifti1Image(truth[..., 0].astype(np.uint8), mask.affine), tmp_path / f"{cases[0]['case']}_mi.nii.gz")
    assert benchmark.mask_dice(tmp_path, cases) == {cases[0]["case"]: 1.0}


def test_benchmark_dti_sseg_gets_as_many_steps_as_the_lge_sseg():
    benchmark = _bundle_module("benchmark")
    # 36 LGE slices at batch 4 = 9 steps/epoch x 16 epochs = 144 steps; 12 DTI pairs = 3 steps/epoch -> 48 epochs
    assert benchmark.same_steps_epochs(4, 16, 36, 12) == 48
    assert benchmark.same_steps_epochs(8, 40, 33, 12) == 100  # 5 x 40 / 2
    assert benchmark.same_steps_epochs(4, 1, 1, 100) == 1  # never zero epochs


def test_benchmark_split_is_the_shared_one_with_thirty_test_pairs():
    benchmark = _bundle_module("benchmark")
    from common.data import dti_lge_mi_split

    cases = [{"case": f"Case_{i:03d}", **({"dti": "d"} if i < benchmark.N_PAIRED else {})}
             for i in range(benchmark.N_PAIRED + benchmark.N_LGE_ONLY)]  # fmt: skip
    split = dti_lge_mi_split(cases, fractions=benchmark.SPLIT, seed=benchmark.SPLIT_SEED)
    assert (len(split["test"]), len(split["val"]), len(split["pair_train"])) == (30, 4, 10)
    assert not {c["case"] for c in split["test"]} & {c["case"] for c in split["lge_train"]}


def test_peer_step_times_our_cyclegan_iteration_with_the_switches():
    """``scripts.peer_step`` (our side of ``tools.side_by_side`` beside junyanz's CycleGAN): the four networks of
    ``train.json``, its switches unless a flag overrides one (named in the implementation), and one JSON line."""
    import json

    from bundle_test_utils import bundle_scripts

    with bundle_scripts(BUNDLE):
        from scripts.peer_step import measure

        result = measure(n=1, warmup=0, size=32, threads=1, flops=False, channels_last=True)
        plain = measure(
            n=1,
            warmup=0,
            size=32,
            threads=1,
            flops=False,
            stack_passes=False,
            fused_optimizer=0,
            optim_set_to_none="no",
        )
    assert plain["implementation"] == "ours (common.engines.CycleGANTrainer)"
    assert result["implementation"].endswith(
        ", channels-last + stacked passes + fused Adam + gradients set to None"
    )  # the flag's switch and train.json's
    assert set(result["params"]) == {"g_source_to_target", "g_target_to_source", "d_source", "d_target"}
    assert result["params"]["g_source_to_target"] > 7e6  # ResNet-9, ngf 64: the reference configuration's size
    assert result["config"].endswith("32x32; bs1")
    assert result["train_iter_s"]["median"] > 0 and result["infer_s"]["median"] > 0
    json.dumps(result)


def test_train_sseg_returns_the_steps_its_trainer_made_and_the_stage_keeps_them(tmp_path):
    """The SwinSSegNet trainings of the benchmark and the schedule check report the optimizer steps read back from
    the trainer: 5 LGE training slices at the quick batch 4 make 2 steps per epoch (the last short batch kept)."""
    benchmark = _bundle_module("benchmark")
    from common.data import dti_lge_mi_cases, dti_lge_mi_split, write_dti_lge_mi

    write_dti_lge_mi(tmp_path / "data", n_cases=9, n_paired=4, seed=1)
    data = tmp_path / "data" / "DTI_LGE_MI"
    split = dti_lge_mi_split(dti_lge_mi_cases(data), fractions=(0.5, 0.25, 0.25), seed=0)
    sseg_root = BUNDLE.parent / "lge_mi_sr_segmentation"
    st = benchmark.Stages(tmp_path / "out", sseg_root, benchmark.stage_settings(True, None), fresh=False)
    sseg = st.settings["sseg"]
    schedule = {**sseg, "epochs": 2, "val_interval": 2}
    items = (benchmark.lge_items(split["lge_train"]), benchmark.lge_items(split["val"]))
    assert len(items[0]) == 7 and sseg["batch_size"] == 4
    shared = {"dataset_dir": str(data), "split": split}
    model = tmp_path / "out" / "model"

    def train() -> int:
        return benchmark.train_sseg(st, shared, 0, schedule, items, model, tmp_path / "out" / "logs")

    assert st.once(model, "train", train) == 2 * 2
    assert (model / "model.pt").is_file()
    assert benchmark.Stages(st.out, st.sseg_root, st.settings, fresh=False).once(model, "train", train) == 4  # stored


def test_schedule_check_refuses_the_benchmarks_own_data_seed(tmp_path):
    """The schedule is chosen on development data: the benchmark's data seed is refused before anything is written."""
    schedule_check = _bundle_module("schedule_check")
    benchmark = schedule_check.bm  # the benchmark module it imported
    with pytest.raises(ValueError, match=f"data_seed {benchmark.DATA_SEED} is the benchmark's own"):
        schedule_check.run(str(tmp_path / "out"), str(tmp_path), benchmark.DATA_SEED, (0,), (1,))
    assert not (tmp_path / "out").exists()
