"""DESIGN.md's public-code bugs of CycleGANSeg, each pinned: inputs are paired (same case), and the generators and
the Segmentor all see images in the Tanh range [-1, 1] (the fork loads [0, 1] while its generators output [-1, 1])."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "dti_lge_style_transfer"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from common.data import write_dti_lge_mi

    out = tmp_path_factory.mktemp("dti_pairs")
    write_dti_lge_mi(out, n_cases=6, n_paired=6, seed=1)
    return out / "DTI_LGE_MI"


def _parser(files: list[str], data: Path) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(BUNDLE / "configs" / f) for f in files])
    parser.update({"bundle_root": str(BUNDLE), "dataset_dir": str(data), "split_fractions": [0.67, 0.0, 0.33]})
    return parser


def test_cyclegan_batches_are_paired_and_in_the_tanh_range(data):
    parser = _parser(["train.json"], data)
    datalist = parser.get_parsed_content("train_datalist")
    assert datalist
    for entry in datalist:  # paired, as the paper says (the public fork draws a random unpaired LGE)
        assert Path(entry["dti"]).parent == Path(entry["lge"]).parent
    dataset = parser.get_parsed_content("train#dataset")
    assert len(dataset) == len(datalist)
    for item in dataset:
        for key in ("dti", "lge"):
            values = torch.as_tensor(item[key])
            assert values.min() >= -1.0 - 1e-6 and values.max() <= 1.0 + 1e-6, key
            assert values.min() < -0.9 and values.max() > 0.9, f"{key} should span the generator's [-1, 1]"


def test_segmentor_trains_on_the_generators_range(data):
    from monai.transforms import Compose

    parser = _parser(["train.json", "train_segmentor.json"], data)
    deterministic = Compose(parser.get_parsed_content("train#deterministic_transforms"))
    datalist = parser.get_parsed_content("segmentor_train_datalist")
    assert datalist
    for entry in datalist:
        image = torch.as_tensor(deterministic(dict(entry))["image"])
        # the generators' [-1, 1] range; a [0, 1] image (the public fork's bug) has min >= 0
        assert image.min() < -0.9 and image.max() > 0.9, "the Segmentor must see the generators' [-1, 1] range"
        assert image.min() >= -1.0 - 1e-6 and image.max() <= 1.0 + 1e-6
