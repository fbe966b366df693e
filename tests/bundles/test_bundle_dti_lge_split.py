"""One split of the DTI_LGE_MI set for both of its bundles, enforced (``common.data.dti_lge_mi_split``).

CycleGANSeg (dti_lge_style_transfer) and SwinSSegNet (lge_mi_sr_segmentation) hold out the same val/test pairs; no
training list of either (SwinSSegNet, the CycleGAN pairs, the Segmentor, the judge) holds a held-out case; the
Segmentor and the judge train on disjoint halves; a case list edited to leak is refused in ``initialize``. The judge
(``configs/train_judge.json``) trains into ``models/judge.pt``, and ``evaluate.json`` scores with it when it exists.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from bundle_test_utils import bundle_scripts, exception_messages, small_dti_lge_mi, tiny_overrides
from common.checkpoint import extract_state_dict
from common.data import dti_lge_mi_cases
from monai.bundle import ConfigParser, ConfigWorkflow

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
DTI = BUNDLES / "dti_lge_style_transfer"
SSEG = BUNDLES / "lge_mi_sr_segmentation"
JUDGE_FILES = ["train.json", "train_segmentor.json", "train_judge.json"]
TINY = tiny_overrides(DTI.name)
TINY_SSEG = tiny_overrides(SSEG.name)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """5 cases, 4 paired: 2 training pairs, 1 val and 1 test pair, 3 LGE training cases."""
    return small_dti_lge_mi(tmp_path_factory.mktemp("split_data"))


def _parser(bundle: Path, files: list[str], data: Path, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(bundle / "configs" / f) for f in files])
    parser.update({"bundle_root": str(bundle), "dataset_dir": str(data), **overrides})
    return parser


def _cases(entries) -> set[str]:
    return {entry["case"] for entry in entries}


@pytest.mark.parametrize("overrides", [{}, {"seed": 3}, {"split_fractions": [0.5, 0.25, 0.25]}], ids=str)
def test_both_bundles_hold_out_the_same_pairs_and_train_on_none_of_them(data, overrides):
    dti = _parser(DTI, JUDGE_FILES, data, **overrides)
    sseg = _parser(SSEG, ["train.json"], data, **overrides)
    split = dti.get_parsed_content("split")
    assert split == sseg.get_parsed_content("split")
    val, test = _cases(split["val"]), _cases(split["test"])
    paired = {c["case"] for c in dti_lge_mi_cases(data, require_dti=True)}
    assert val and test and (val | test) <= paired and not val & test
    # evaluation and validation lists of both bundles
    dti_test = _parser(DTI, ["train.json", "evaluate.json"], data, **overrides).get_parsed_content("test_datalist")
    sseg_test = _parser(SSEG, ["train.json", "evaluate.json"], data, **overrides).get_parsed_content("test_datalist")
    assert _cases(dti_test) == _cases(sseg_test) == test
    assert _cases(sseg.get_parsed_content("val_datalist")) == _cases(dti.get_parsed_content("segmentor_val_datalist"))
    assert _cases(sseg.get_parsed_content("val_datalist")) == val
    # training lists: SwinSSegNet on every other case, CycleGAN on the training pairs, Segmentor and judge halves
    sseg_train = _cases(sseg.get_parsed_content("train_datalist"))
    pairs = _cases(dti.get_parsed_content("train_datalist"))
    segmentor = _cases(dti.get_parsed_content("segmentor_train_datalist"))
    judge = _cases(dti.get_parsed_content("train#dataset#data"))  # what the judge stage trains on
    assert judge == _cases(dti.get_parsed_content("judge_train_datalist"))
    assert sseg_train == {c["case"] for c in dti_lge_mi_cases(data)} - val - test
    assert not (sseg_train | pairs | segmentor | judge) & (val | test)
    assert pairs == sseg_train & paired
    assert segmentor and judge and not segmentor & judge and segmentor | judge == sseg_train


def test_bundles_trained_with_different_seeds_hold_out_the_same_pairs(data):
    """The split follows ``split_seed`` (0 by default), not the training seed: a SwinSSegNet trained with another
    seed than the CycleGANSeg whose test pairs the pipeline scores never trained on those pairs' LGE."""
    dti = _parser(DTI, ["train.json"], data, seed=3).get_parsed_content("split")
    sseg = _parser(SSEG, ["train.json"], data, seed=1).get_parsed_content("split")
    assert dti == sseg == _parser(SSEG, ["train.json"], data).get_parsed_content("split")
    moved = [
        s for s in range(1, 20) if _parser(SSEG, ["train.json"], data, split_seed=s).get_parsed_content("split") != sseg
    ]
    assert moved  # the split seed does move it
    assert _parser(DTI, ["train.json"], data, split_seed=moved[0]).get_parsed_content("split") == _parser(
        SSEG, ["train.json"], data, split_seed=moved[0]
    ).get_parsed_content("split")


LEAKS = [
    (SSEG, ["train.json"], "train_datalist", "train_datalist and test (held out)"),
    (DTI, ["train.json"], "train_datalist", "train_datalist and val + test (held out)"),
    (DTI, ["train.json", "train_segmentor.json"], "segmentor_train_datalist", "segmentor_train_datalist and test"),
    (DTI, JUDGE_FILES, "judge_train_datalist", "judge_train_datalist and test (held out)"),
]


@pytest.mark.parametrize("bundle, files, key, clash", LEAKS, ids=lambda v: v if isinstance(v, str) else None)
def test_a_case_list_edited_to_hold_a_test_case_is_refused_at_initialize(data, bundle, files, key, clash):
    tiny = TINY_SSEG if bundle == SSEG else TINY
    parser = _parser(bundle, files, data, use_segmentor=False, use_ssl_pretrained=False, **tiny)
    parser.get_parsed_content("initialize")  # the shipped config passes its checks
    leaked = parser.get_parsed_content("split")["test"][0]["case"]
    entries = parser.get_parsed_content(key)
    parser[key] = entries + [{**entries[0], "case": leaked}]
    with pytest.raises(Exception) as error:
        parser.get_parsed_content("initialize")
    message = exception_messages(error.value)
    assert "ValueError" in message and clash in message and leaked in message


def test_a_judge_list_sharing_a_segmentor_case_is_refused_at_initialize(data):
    parser = _parser(DTI, JUDGE_FILES, data, **TINY)
    segmentor_case = parser.get_parsed_content("segmentor_train_datalist")[0]
    parser["judge_train_datalist"] = parser.get_parsed_content("judge_train_datalist") + [segmentor_case]
    with pytest.raises(Exception) as error:
        parser.get_parsed_content("initialize")
    message = exception_messages(error.value)
    assert f"judge_train_datalist and segmentor_train_datalist share 1 case(s): {segmentor_case['case']}" in message


# ------------------------------------------------------------------------------------------- the judge, end to end
def _run(files: list[str], **overrides) -> ConfigWorkflow:
    with bundle_scripts(DTI):
        workflow = ConfigWorkflow(
            config_file=[str(DTI / "configs" / f) for f in files],
            meta_file=str(DTI / "configs" / "metadata.json"),
            logging_file=False,  # keep the test session's logging (and pytest's capture)
            bundle_root=str(DTI),
            **overrides,
        )
        workflow.initialize()
        workflow.run()
        workflow.finalize()
    return workflow


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def judged(data, tmp_path_factory):
    """Segmentor, then the judge, then plain CycleGAN (1 epoch each, tiny networks) into one models/ folder."""
    work = tmp_path_factory.mktemp("judge")
    common = dict(dataset_dir=str(data), ckpt_dir=str(work / "models"), resume=False, **TINY)
    stage = dict(epochs=1, val_interval=1)
    _run(["train.json", "train_segmentor.json"], **common, **stage, output_dir=str(work / "eval" / "segmentor"))
    segmentor_files = {"segmentor.pt": (work / "models" / "segmentor.pt").read_bytes()}
    segmentor_state = _files(work / "models" / "segmentor_state")
    judge = _run(JUDGE_FILES, **common, **stage, output_dir=str(work / "eval" / "judge"))
    _run(["train.json"], **common, epochs=1, use_segmentor=False, output_dir=str(work / "eval" / "cyclegan"))
    return work, common, judge, segmentor_files, segmentor_state


@pytest.mark.slow
def test_judge_is_another_network_trained_on_its_own_cases_into_judge_pt(judged):
    from monai.networks.nets import BasicUNet

    work, _, judge, segmentor_files, segmentor_state = judged
    models = work / "models"
    parser = judge.parser
    assert isinstance(parser.get_parsed_content("network"), BasicUNet)  # not the Segmentor's UNet
    assert parser.get_parsed_content("judge_seed") != parser.get_parsed_content("seed")
    trained_on = {item["case"] for item in parser.get_parsed_content("train#dataset").data}
    assert trained_on == {c["case"] for c in parser.get_parsed_content("split")["judge"]}
    network = BasicUNet(spatial_dims=2, in_channels=1, out_channels=2, features=TINY["judge_features"])
    network.load_state_dict(extract_state_dict(torch.load(models / "judge.pt", weights_only=True)), strict=True)
    assert list((models / "judge_state").glob("*.pt")), "the judge resumes from its own state folder"
    # the Segmentor's weights and resumable state are untouched by the judge stage
    assert (models / "segmentor.pt").read_bytes() == segmentor_files["segmentor.pt"]
    assert _files(models / "segmentor_state") == segmentor_state


@pytest.mark.slow
def test_evaluate_scores_with_the_judge_when_it_exists(judged):
    work, common, _, _, _ = judged
    out = work / "eval" / "with_judge"
    workflow = _run(["train.json", "evaluate.json"], **common, output_dir=str(out))
    test = [c["case"] for c in workflow.parser.get_parsed_content("split")["test"]]
    means = dict(line.split(",") for line in (out / "metrics.csv").read_text().splitlines())
    for name in ("dice_judge_translated_vs_source_lge", "dice_judge_translated_vs_truth", "dice_translated_vs_truth"):
        assert 0.0 <= float(means[name]) <= 1.0, name
        rows = (out / f"{name}_raw.csv").read_text().strip().splitlines()[1:]
        assert [row.split(",")[0] for row in rows] == test
    # the network behind the dice_judge_* metrics is judge.pt's, not the Segmentor's
    judge = workflow.parser.get_parsed_content("judge")
    saved = extract_state_dict(torch.load(work / "models" / "judge.pt", weights_only=True))
    assert set(judge.state_dict()) == set(saved)
    assert all(torch.equal(v.cpu(), saved[k]) for k, v in judge.state_dict().items())
    segmentor = extract_state_dict(torch.load(work / "models" / "segmentor.pt", weights_only=True))
    assert set(segmentor) != set(saved)  # another architecture (UNet vs BasicUNet)


@pytest.mark.slow
def test_evaluate_without_the_judge_says_so_once_and_skips_its_metrics(judged, tmp_path, caplog):
    work, common, _, _, _ = judged
    missing = tmp_path / "nowhere" / "judge.pt"
    with caplog.at_level(logging.WARNING, logger="common.checkpoint"):
        _run(["train.json", "evaluate.json"], **common, judge_path=str(missing), output_dir=str(tmp_path / "eval"))
    said = [record for record in caplog.records if str(missing) in record.getMessage()]
    assert len(said) == 1 and "judge" in said[0].getMessage() and "train_judge.json" in said[0].getMessage()
    means = dict(line.split(",") for line in (tmp_path / "eval" / "metrics.csv").read_text().splitlines())
    assert "dice_translated_vs_truth" in means
    assert not [name for name in means if name.startswith("dice_judge")]
