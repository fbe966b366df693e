"""CycleGANSeg's evaluation as metric handlers: Segmentor masks, Segmentor-agreement Dice, PSNR/SSIM, MetricsSaver.

The per-case values must equal the formulas of the former ``scripts/translation_metrics.py`` of the
dti_lge_style_transfer bundle (reproduced in ``_former_row``): the Segmentor run once on ``[translated, real LGE]``,
``common.metrics.dice`` of the MI label, ``masked_ssim``/``masked_psnr`` over the whole field of view in float32.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from common.handlers import CopyBatchKeys, LabelDice, MaskedPSNR, MaskedSSIM, OverlayWriter, SegmentorMasks
from common.metrics import dice, masked_psnr, masked_ssim
from monai.engines import SupervisedEvaluator
from monai.handlers import MetricsSaver, from_engine
from monai.networks.nets import UNet

NAMES = (
    "dice_translated_vs_truth",
    "dice_source_lge_vs_truth",
    "dice_translated_vs_source_lge",
    "ssim_translated_vs_lge",
    "psnr_translated_vs_lge",
)


class _ThresholdSegmenter(torch.nn.Module):
    """Logits ``(-x, x)``: argmax is 1 where the image is positive."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([-x, x], dim=1) * self.weight


class _Lookup(torch.nn.Module):
    """A "generator" returning the stored translation of each input (matched by its first pixel)."""

    def __init__(self, outputs: dict[float, torch.Tensor]) -> None:
        super().__init__()
        self.outputs = outputs
        self.weight = torch.nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.outputs[round(float(item[0, 0, 0]), 6)] for item in x]) * self.weight


def _former_row(pred, lge, label, segmentor, data_range=2.0, mi_label=1):
    """The per-case formulas of the former ``TranslationMetrics.iteration_completed``."""
    with torch.no_grad():
        segmentor.eval()
        masks = segmentor(torch.stack([pred.float(), lge.float()])).argmax(dim=1).numpy()
    mask_translated, mask_lge = masks
    translated = pred.numpy().reshape(pred.shape[-2:]).astype(np.float32)
    real = lge.numpy().reshape(lge.shape[-2:]).astype(np.float32)
    truth = label.numpy().reshape(label.shape[-2:]).round().astype(np.int64)
    return {
        "dice_translated_vs_truth": dice(mask_translated, truth, labels=mi_label),
        "dice_source_lge_vs_truth": dice(mask_lge, truth, labels=mi_label),
        "dice_translated_vs_source_lge": dice(mask_translated, mask_lge, labels=mi_label),
        "ssim_translated_vs_lge": masked_ssim(translated, real, data_range=data_range),
        "psnr_translated_vs_lge": masked_psnr(translated, real, data_range=data_range),
    }


def _evaluate(items, translations, segmentor, out, batch_size=1, write_png=True):
    dataloader = torch.utils.data.DataLoader(items, batch_size=batch_size, shuffle=False)
    agreement = {
        "dice_translated_vs_truth": ["segmentor_pred", "label"],
        "dice_source_lge_vs_truth": ["segmentor_lge", "label"],
        "dice_translated_vs_source_lge": ["segmentor_pred", "segmentor_lge"],
    }
    metrics = {name: LabelDice(label=1, output_transform=from_engine(keys)) for name, keys in agreement.items()}
    metrics["ssim_translated_vs_lge"] = MaskedSSIM(data_range=2.0, output_transform=from_engine(["pred", "lge"]))
    metrics["psnr_translated_vs_lge"] = MaskedPSNR(data_range=2.0, output_transform=from_engine(["pred", "lge"]))
    handlers = [
        CopyBatchKeys(["lge"]),
        SegmentorMasks(segmentor, ["pred", "lge"], ["segmentor_pred", "segmentor_lge"]),
        MetricsSaver(
            save_dir=str(out),
            metrics="*",
            metric_details="*",
            batch_transform=lambda batch: [{"filename_or_obj": item["case"]} for item in batch],
            summary_ops="*",
        ),
    ]
    if write_png:
        panels = [
            ["DTI", "image", ["label"]],
            ["translated (LGE style)", "pred", ["label", "segmentor_pred"]],
            ["real LGE", "lge", ["label", "segmentor_lge"]],
        ]
        handlers.append(OverlayWriter(str(out / "overlays"), panels=panels, fill=False))
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=dataloader,
        network=_Lookup(translations),
        key_val_metric={"dice_translated_vs_truth": metrics.pop("dice_translated_vs_truth")},
        additional_metrics=metrics,
        val_handlers=handlers,
    )
    evaluator.run()
    return evaluator


def _known_items():
    truth = torch.zeros(1, 16, 16)
    truth[:, 4:8, 4:8] = 1
    lge = torch.where(truth > 0, 1.0, -1.0)
    shifted = torch.roll(lge, shifts=2, dims=-1)  # overlap 2 of 4 columns -> Dice 0.5
    dti = [torch.full((1, 16, 16), 0.25), torch.full((1, 16, 16), 0.5)]
    items = [
        {"image": dti[0], "lge": lge, "label": truth, "case": "same"},
        {"image": dti[1], "lge": lge, "label": truth, "case": "shifted"},
    ]
    return items, {0.25: lge.clone(), 0.5: shifted}


def _raw(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_known_images_give_the_expected_values_and_files(tmp_path):
    items, translations = _known_items()
    evaluator = _evaluate(items, translations, _ThresholdSegmenter(), tmp_path)
    raw = {name: _raw(tmp_path / f"{name}_raw.csv") for name in NAMES}
    for rows in raw.values():
        assert [row["filename"] for row in rows] == ["same", "shifted"]
        assert list(rows[0]) == ["filename", "class0", "mean"]
    assert [float(r["mean"]) for r in raw["dice_translated_vs_truth"]] == [1.0, 0.5]
    assert [float(r["mean"]) for r in raw["dice_source_lge_vs_truth"]] == [1.0, 1.0]
    assert [float(r["mean"]) for r in raw["dice_translated_vs_source_lge"]] == [1.0, 0.5]
    assert float(raw["ssim_translated_vs_lge"][0]["mean"]) == pytest.approx(1.0)
    assert float(raw["ssim_translated_vs_lge"][1]["mean"]) < 1.0
    assert raw["psnr_translated_vs_lge"][0]["mean"] == "inf"  # identical images
    assert np.isfinite(float(raw["psnr_translated_vs_lge"][1]["mean"]))
    state = evaluator.state.metrics
    assert state["dice_translated_vs_truth"] == pytest.approx(0.75)
    assert state["psnr_translated_vs_lge"] == pytest.approx(float(raw["psnr_translated_vs_lge"][1]["mean"]), abs=1e-4)
    summary = _raw(tmp_path / "dice_translated_vs_truth_summary.csv")
    assert summary[0]["class"] == "class0" and float(summary[0]["mean"]) == pytest.approx(0.75)
    assert float(summary[0]["std"]) == pytest.approx(0.25) and float(summary[0]["notnans"]) == 2
    written = dict(line.split(",") for line in (tmp_path / "metrics.csv").read_text().splitlines())
    assert sorted(written) == sorted(NAMES) and float(written["dice_translated_vs_truth"]) == pytest.approx(0.75)
    assert sorted(p.name for p in (tmp_path / "overlays").glob("*.png")) == ["same.png", "shifted.png"]


@pytest.mark.parametrize("batch_size", [1, 3])
def test_values_equal_the_former_translation_metrics_formulas(tmp_path, batch_size):
    """Random images through a seeded U-Net Segmentor: every per-case value and every mean as before."""
    rng = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    segmentor = UNet(2, 1, 2, channels=(4, 8), strides=(2,), num_res_units=0)
    items, translations = [], {}
    for index in range(5):
        label = (torch.rand(1, 32, 32, generator=rng) > 0.7).float()
        lge = torch.rand(1, 32, 32, generator=rng) * 2 - 1
        image = torch.full((1, 32, 32), float(index) / 10)
        translations[round(float(index) / 10, 6)] = (lge + 0.3 * torch.randn(1, 32, 32, generator=rng)).clamp(-1, 1)
        items.append({"image": image, "lge": lge, "label": label, "case": f"Case_{index:03d}"})
    evaluator = _evaluate(items, translations, segmentor, tmp_path, batch_size=batch_size, write_png=False)
    former = [_former_row(translations[round(float(i) / 10, 6)], it["lge"], it["label"], segmentor) for i, it in
              enumerate(items)]  # fmt: skip
    for name in NAMES:
        details = evaluator.state.metric_details[name].numpy()[:, 0]
        np.testing.assert_array_equal(details, [row[name] for row in former])
        assert evaluator.state.metrics[name] == float(np.mean([row[name] for row in former]))
        csv_rows = _raw(tmp_path / f"{name}_raw.csv")
        assert [r["filename"] for r in csv_rows] == [it["case"] for it in items]
        np.testing.assert_allclose([float(r["mean"]) for r in csv_rows], details, atol=5e-5)  # written as %.4f


def test_segmentor_masks_need_the_copied_batch_key(tmp_path):
    items, translations = _known_items()
    segmentor = _ThresholdSegmenter()
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=torch.utils.data.DataLoader(items, batch_size=1),
        network=_Lookup(translations),
        val_handlers=[SegmentorMasks(segmentor, ["pred", "lge"], ["segmentor_pred", "segmentor_lge"])],
    )
    with pytest.raises(KeyError, match="CopyBatchKeys"):
        evaluator.run()


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="output_keys"):
        SegmentorMasks(_ThresholdSegmenter(), ["pred", "lge"], ["segmentor_pred"])
    with pytest.raises(ValueError, match="segmentor"):
        SegmentorMasks(lambda x: x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="keys"):
        CopyBatchKeys([])
    with pytest.raises(ValueError, match="data_range"):
        MaskedPSNR(data_range=0.0)
    with pytest.raises(ValueError, match="label"):
        LabelDice(label=1.5)  # type: ignore[arg-type]
