"""The PSCGAN bundle end to end, driven through `monai.bundle` as a user would, from an empty models folder.

Phase I, Pri (``train.json``: the coarse 4-class mask, ``pri/pri.pt``) -> phase II, Sys (+ ``train_sys.json``: the
LGE-equivalent image conditioned on the frozen Pri, ``sys/sys.pt``) -> phase III, Seg (+ ``train_seg.json``: the final
segmentation conditioned on the frozen Pri and Sys; ``model.pt`` is the whole cascade) -> the one-generator ablation
(+ ``train_joint.json``, ``joint/joint.pt``) -> folder inference on two cine stacks (``inference.json``: a uint8
segmentation and a float32 LGE-equivalent image per stack in its affine, and the clinical CSVs) -> the test split's
scores (+ ``evaluate.json``). tiny.json networks on 5 CineLGE phantoms (64 x 64, 3 slices, 25 frames), 1 epoch each.

Also: the phases refuse to run out of order naming the command, the frozen earlier phases are not changed by the
later ones, each phase logs its paper terms to TensorBoard, and inference never replaces its outputs unasked.

Runtime: the data are split 1 / 1 / 3 patients (``FRACTIONS``: 3 training slices a phase, 3 test cases for the
cohort statistics) and the space attentions pool their keys 2 x 2 (``attention_key_pool``, a speed setting that
changes no weight shape), as the quick overlay does.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_test_utils import bundle_scripts, exception_messages, run_tiny
from common.checkpoint import extract_state_dict
from common.metrics import roc_auc
from monai.bundle import ConfigWorkflow

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "cine_lge_synthesis_segmentation"
CONFIGS = BUNDLE / "configs"
PRI = ["train.json"]
SYS = ["train.json", "train_sys.json"]
SEG = ["train.json", "train_seg.json"]
JOINT = ["train.json", "train_joint.json"]
#: 1 training, 1 validation and 3 test patients of 5
FRACTIONS = [0.2, 0.2, 0.6]
#: 4x fewer keys in the tiny networks' 64 x 64 space attentions (no weight changes; ~3x faster on the CPU)
FAST = {"attention_key_pool": 2}
#: the scalar tags of each phase's paper terms (sections 5.1-5.3)
PAPER_TERMS = {
    "pri": {"loss_mce", "loss_g_adv", "loss_d_adv"},
    "sys": {"loss_l2", "loss_ogs_tv", "loss_content", "loss_g_adv", "loss_d_adv"},
    "seg": {"loss_mce", "loss_aux", "loss_d_aux", "loss_d_aux_generated", "loss_g_adv", "loss_d_adv"},
    "joint": {"loss_mce", "loss_l2", "loss_ogs_tv", "loss_g_adv", "loss_d_adv"},
}

pytestmark = pytest.mark.slow


def _refused(files: list[str], **overrides) -> str:
    with pytest.raises(Exception) as error:
        run_tiny(BUNDLE, files, **overrides)
    return exception_messages(error.value)


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


def _stamps(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")}


def _load(path: Path) -> dict:
    return extract_state_dict(torch.load(path, map_location="cpu", weights_only=True))


def _parsed(files: list[str], key: str):
    """``key`` of ``configs/<files>`` + tiny.json, parsed in this process."""
    with bundle_scripts(BUNDLE):
        workflow = ConfigWorkflow(
            config_file=[str(CONFIGS / f) for f in [*files, "tiny.json"]],
            meta_file=str(CONFIGS / "metadata.json"),
            logging_file=False,
            bundle_root=str(BUNDLE),
            **FAST,
        )
        return workflow.parser.get_parsed_content(key)


def _scalar_tags(folder: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for path in sorted(folder.glob("events.out.tfevents.*")):
        events = EventAccumulator(str(path), size_guidance={"scalars": 0, "images": 1})
        events.Reload()
        tags |= set(events.Tags()["scalars"])
    return tags


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> dict:
    from common.data import write_cine_lge

    work = tmp_path_factory.mktemp("pscgan")
    data = write_cine_lge(work / "data", n_cases=5, seed=0)
    data_before = _stamps(data)
    models = work / "models"
    common = {"dataset_dir": str(data), "ckpt_dir": str(models), "fractions": FRACTIONS, **FAST}
    workflows, written = {}, {}
    weighted = {"class_weighting": "median_frequency"}  # the option, end to end (the default is the paper's: none)
    for name, files in (("pri", PRI), ("sys", SYS), ("seg", SEG), ("joint", JOINT)):
        before = _files(models)
        workflows[name] = run_tiny(BUNDLE, files, **common, **weighted, output_dir=str(work / "eval" / name))
        written[name] = _files(models) - before
    # folder inference on copies of two cases' cine stacks
    inputs = work / "cine"
    inputs.mkdir()
    for case in ("case001", "case002"):
        shutil.copy(data / case / f"{case}_cine.nii.gz", inputs)
    inputs_before = _stamps(inputs)
    before = _files(models)
    infer = {"dataset_dir": str(inputs), "ckpt_dir": str(models), "output_dir": str(work / "outputs"), **FAST}
    workflows["inference"] = run_tiny(BUNDLE, ["inference.json"], **infer)
    workflows["evaluate"] = run_tiny(
        BUNDLE, ["inference.json", "evaluate.json"], **common, output_dir=str(work / "eval" / "test")
    )
    written["inference_and_evaluate"] = _files(models) - before
    with bundle_scripts(BUNDLE):
        import scripts.cases

        split = scripts.cases.patient_split(str(data), fractions=FRACTIONS, seed=0)
    return {
        "work": work,
        "data": data,
        "models": models,
        "inputs": inputs,
        "infer": infer,
        "workflows": workflows,
        "written": written,
        "split": split,
        "unchanged": data_before == _stamps(data) and inputs_before == _stamps(inputs),
    }


def test_each_phase_writes_its_product_and_nothing_else(pipeline):
    written = pipeline["written"]
    state = "train_state/checkpoint_epoch=1.pt"
    assert written["pri"] == {"pri/pri.pt", f"pri/{state}"}
    assert written["sys"] == {"sys/sys.pt", f"sys/{state}"}
    assert written["seg"] == {"model.pt", f"seg/{state}"}
    assert written["joint"] == {"joint/joint.pt", f"joint/{state}"}
    assert written["inference_and_evaluate"] == set()
    # MONAI Label's bundle task loads the one file its glob of models/*.pt finds: the cascade
    assert sorted(p.name for p in pipeline["models"].glob("*.pt")) == ["model.pt"]
    # a training phase's output_dir holds its TensorBoard logs only; data and inputs are never written
    for name in ("pri", "sys", "seg", "joint"):
        logs = _files(pipeline["work"] / "eval" / name)
        assert logs and all(p.startswith("events.out.tfevents.") for p in logs), (name, logs)
    assert pipeline["unchanged"], "the dataset or the inference inputs were modified"


def test_phases_refuse_to_run_out_of_order_naming_the_command(pipeline, tmp_path):
    models = tmp_path / "models"
    args = {"dataset_dir": str(pipeline["data"]), "ckpt_dir": str(models), "output_dir": str(tmp_path / "eval")}
    message = _refused(SYS, **args, **FAST)
    assert "pri.pt" in message and "train.json" in message, message
    message = _refused(SEG, **args, **FAST)
    assert "pri.pt" in message and "train.json" in message, message
    # Pri trained, Sys not
    (models / "pri").mkdir(parents=True)
    shutil.copy(pipeline["models"] / "pri" / "pri.pt", models / "pri" / "pri.pt")
    message = _refused(SEG, **args, **FAST)
    assert "sys.pt" in message and "train_sys.json" in message, message
    # no cascade yet: inference names the Seg phase
    infer = {**pipeline["infer"], "ckpt_dir": str(models), "output_dir": str(tmp_path / "outputs")}
    message = _refused(["inference.json"], **infer)
    assert "model.pt" in message and "train_seg.json" in message, message
    assert _files(models) == {"pri/pri.pt"}, "a refused phase must not write anything"
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").iterdir())


def test_the_cascade_loads_into_the_inference_network(pipeline):
    model = _load(pipeline["models"] / "model.pt")
    assert {key.split(".", 1)[0] for key in model} == {"pri", "sys", "seg"}
    _parsed(["inference.json"], "network_def").load_state_dict(model, strict=True)
    # the ablation's generator loads into its own phase's network
    _parsed(JOINT, "network_def").load_state_dict(_load(pipeline["models"] / "joint" / "joint.pt"), strict=True)


def test_frozen_earlier_phases_are_not_changed_by_later_ones(pipeline):
    models = pipeline["models"]
    pri, sys_ = _load(models / "pri" / "pri.pt"), _load(models / "sys" / "sys.pt")
    model = _load(models / "model.pt")
    for prefix, phase in (("pri.", pri), ("sys.", sys_)):
        cascade = {k.removeprefix(prefix): v for k, v in model.items() if k.startswith(prefix)}
        assert set(cascade) == set(phase), prefix
        assert all(torch.equal(cascade[k], phase[k]) for k in phase), f"the Seg phase changed {prefix}*"
    # the Sys phase's frozen Pri, after its epoch: the weights of pri.pt, buffers included
    frozen = pipeline["workflows"]["sys"].parser.get_parsed_content("pri_frozen").state_dict()
    assert set(frozen) == set(pri) and all(torch.equal(frozen[k].cpu(), pri[k]) for k in pri)
    seg_trainer = pipeline["workflows"]["seg"].parser.get_parsed_content("train#trainer")
    assert set(seg_trainer.frozen_networks) == {"pri", "sys"}
    assert not any(p.requires_grad for net in seg_trainer.frozen_networks.values() for p in net.parameters())


def test_inference_writes_segmentation_and_synthesis_in_the_input_grid(pipeline):
    out = pipeline["work"] / "outputs"
    sources = sorted(pipeline["inputs"].glob("*.nii.gz"))
    kinds = ("seg", "lge_equivalent", "aha_segments")
    names = {f"{s.name[:-7]}_{kind}.nii.gz" for s in sources for kind in kinds}
    assert {p.name for p in out.iterdir()} == names | {"clinical_cases.csv", "clinical_segments.csv"}
    for source in sources:
        cine = nib.load(source)
        stem = source.name[:-7]
        seg, synthesis = nib.load(out / f"{stem}_seg.nii.gz"), nib.load(out / f"{stem}_lge_equivalent.nii.gz")
        segment_map = nib.load(out / f"{stem}_aha_segments.nii.gz")
        for image in (seg, synthesis, segment_map):
            assert image.shape == cine.shape[:3] == (64, 64, 3)
            assert np.array_equal(image.affine, cine.affine), (image.affine, cine.affine)
        assert seg.get_data_dtype() == np.uint8 and synthesis.get_data_dtype() == np.float32
        labels = np.asarray(seg.dataobj)
        assert labels.min() >= 0 and labels.max() <= 3
        values = np.asarray(synthesis.dataobj)
        assert np.isfinite(values).all() and values.min() >= -1.0 and values.max() <= 1.0 and values.std() > 0


def test_clinical_csvs_have_one_case_row_per_input(pipeline):
    with bundle_scripts(BUNDLE):
        from scripts.clinical import CASE_FIELDS, SEGMENT_FIELDS
    out = pipeline["work"] / "outputs"
    rows = list(csv.reader(open(out / "clinical_cases.csv")))
    assert rows[0] == list(CASE_FIELDS)
    assert sorted(r[0] for r in rows[1:]) == ["case001_cine", "case002_cine"]
    assert all(int(r[1]) == 3 for r in rows[1:])  # slices
    segments = list(csv.reader(open(out / "clinical_segments.csv")))
    assert segments[0] == list(SEGMENT_FIELDS)
    assert {r[0] for r in segments[1:]} <= {"case001_cine", "case002_cine"}
    # the rows are scripts.clinical.analyse_stack of the written label map (recomputed from the files)
    with bundle_scripts(BUNDLE):
        from scripts.clinical import aha_segment_map, analyse_stack
    for row in csv.DictReader(open(out / "clinical_cases.csv")):
        seg = nib.load(out / f"{row['case']}_seg.nii.gz")
        cine = np.asarray(nib.load(pipeline["inputs"] / f"{row['case']}.nii.gz").dataobj, dtype=np.float32)
        expected, expected_segments = analyse_stack(row["case"], np.asarray(seg.dataobj), cine[..., 0], seg.affine)
        for field in CASE_FIELDS[1:]:
            assert float(row[field]) == pytest.approx(float(expected[field]), rel=1e-6, nan_ok=True), (field, row)
        assert sum(r[0] == row["case"] for r in segments[1:]) == len(expected_segments), row["case"]
        # the per-pixel AHA map written beside it: the segment of every wall pixel of the written label map
        written = np.asarray(nib.load(out / f"{row['case']}_aha_segments.nii.gz").dataobj)
        assert np.array_equal(written, aha_segment_map(np.asarray(seg.dataobj), cine[..., 0], seg.affine))
        assert np.array_equal(written > 0, np.isin(np.asarray(seg.dataobj), (2, 3)))


def test_inference_never_overwrites_its_outputs(pipeline):
    out = pipeline["work"] / "outputs"
    before = _stamps(out)
    message = _refused(["inference.json"], **pipeline["infer"])
    assert "FileExistsError" in message and "--overwrite true" in message, message
    assert any(str(out / name) in message for name in before), message
    assert _stamps(out) == before


def test_evaluation_scores_the_test_split(pipeline):
    folder = pipeline["work"] / "eval" / "test"
    test = [case["case"] for case in pipeline["split"]["test"]]
    assert len(test) == 3
    summary = json.loads((folder / "summary.json").read_text())
    assert {"n_cases", "accuracy", "dice_scar", "ssim", "scar_ratio", "segment_has_scar"} <= set(summary)
    assert summary["n_cases"] == len(test) and summary["n_slices"] == 3 * len(test)
    assert {"pearson_r", "bias", "loa_lower", "loa_upper"} <= set(summary["scar_ratio"])
    assert {"sensitivity", "specificity"} <= set(summary["segment_has_scar"])
    assert 0.0 <= summary["accuracy"] <= 1.0 and 0.0 <= summary["dice_scar"] <= 1.0
    assert -1.0 <= summary["ssim"] <= 1.0
    cases = list(csv.DictReader(open(folder / "cases.csv")))
    assert [row["case"] for row in cases] == test  # the test split only, none of the training patients
    # the scar AUC is defined exactly for the patients whose label has scar (and healthy myocardium)
    for row, case in zip(cases, pipeline["split"]["test"], strict=True):
        label = np.asanyarray(nib.load(case["label"]).dataobj)
        has_scar = bool((label == 3).any() and (label == 2).any())
        auc = float(row["scar_auc"])
        assert (0.0 <= auc <= 1.0) if has_scar else np.isnan(auc), (case["case"], auc)
    assert len(list(csv.DictReader(open(folder / "slices.csv")))) == 3 * len(test)
    # Table 2's segment AUC: the segments' mean scar probability, ranked from segments.csv's own scores
    segments = list(csv.DictReader(open(folder / "segments.csv")))
    scores = np.array([float(r["scar_score_pred"]) for r in segments])
    assert np.ptp(scores) > 0, "equal scores rank nothing: both AUCs would be 0.5 whatever the code"
    for flag in ("has_scar", "transmural"):
        truth = np.array([r[f"{flag}_true"] == "True" for r in segments])
        expected = roc_auc(scores[truth], scores[~truth])
        got = summary[f"segment_{flag}"]["auc"]
        assert (got is None and np.isnan(expected)) or got == pytest.approx(expected), (flag, got, expected)
    assert ((scores >= 0) & (scores <= 1)).all()
    # scar size is finite for every case (0 without scar): its Bland-Altman plot exists with >= 2 cases
    assert (folder / "bland_altman_scar_size_mm2.png").is_file()


def test_evaluation_scores_the_segmentation_that_inference_writes(pipeline, tmp_path):
    """slices.csv's pixel accuracy and scar Dice are those of inference.json's label maps of the test cases against
    their labels (recomputed here from the written files), and the summary is the mean over the slices."""
    from common.metrics import dice

    inputs = tmp_path / "cine"
    inputs.mkdir()
    for case in pipeline["split"]["test"]:
        shutil.copy(case["cine"], inputs)
    infer = {**pipeline["infer"], "dataset_dir": str(inputs), "output_dir": str(tmp_path / "out")}
    run_tiny(BUNDLE, ["inference.json"], **infer)
    folder = pipeline["work"] / "eval" / "test"
    rows = list(csv.DictReader(open(folder / "slices.csv")))
    for case in pipeline["split"]["test"]:
        seg = np.asanyarray(nib.load(tmp_path / "out" / f"{case['case']}_cine_seg.nii.gz").dataobj)
        label = np.rint(np.asanyarray(nib.load(case["label"]).dataobj)).astype(np.int64)
        for row in (r for r in rows if r["case"] == case["case"]):
            k = int(row["slice"])
            assert float(row["accuracy"]) == pytest.approx(float((seg[..., k] == label[..., k]).mean()), abs=1e-6)
            assert float(row["dice_scar"]) == pytest.approx(float(dice(seg[..., k], label[..., k], labels=3)), abs=1e-6)
            for c in (1, 2, 3):  # Table 1's per-class columns, one class vs the rest (nan where it is undefined)
                p, t = seg[..., k] == c, label[..., k] == c
                assert float(row[f"accuracy_{c}"]) == pytest.approx(float((p == t).mean()), abs=1e-6)
                sensitivity = (p & t).sum() / t.sum() if t.any() else None
                specificity = (~p & ~t).sum() / (~t).sum() if (~t).any() else None
                for name, value in ((f"sensitivity_{c}", sensitivity), (f"specificity_{c}", specificity)):
                    assert (
                        np.isnan(float(row[name]))
                        if value is None
                        else float(row[name]) == pytest.approx(value, abs=1e-6)
                    )
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["accuracy"] == pytest.approx(np.mean([float(r["accuracy"]) for r in rows]), abs=1e-9)
    # a case's value is the mean over its slices that define it (a scar-free slice has no scar sensitivity)
    for case in csv.DictReader(open(folder / "cases.csv")):
        values = [float(r["sensitivity_3"]) for r in rows if r["case"] == case["case"]]
        defined = [v for v in values if not np.isnan(v)]
        got = float(case["sensitivity_3"])
        assert np.isnan(got) if not defined else got == pytest.approx(np.mean(defined), abs=1e-9), (
            case["case"],
            values,
        )
    assert any(np.isnan(float(r["sensitivity_3"])) for r in rows), "no scar-free slice: the nan path is not exercised"


@pytest.mark.parametrize("phase", ["pri", "sys", "seg", "joint"])
def test_each_phase_logs_its_paper_terms_to_tensorboard(pipeline, phase):
    tags = _scalar_tags(pipeline["work"] / "eval" / phase)
    assert PAPER_TERMS[phase] <= tags, (phase, sorted(tags))
    assert {f"epoch_{term}" for term in PAPER_TERMS[phase]} <= tags, (phase, sorted(tags))


@pytest.mark.parametrize("phase", ["pri", "seg", "joint"])
def test_mask_phases_weight_the_mce_by_the_training_labels_only(pipeline, phase):
    """``class_weighting median_frequency`` reaches every mask phase's trainer, computed from the training
    patients' labels alone."""
    from common.data import median_frequency_weights

    trainer = pipeline["workflows"][phase].parser.get_parsed_content("train#trainer")
    expected = median_frequency_weights([c["label"] for c in pipeline["split"]["train"]], 4)
    assert trainer.mce.class_weights.tolist() == pytest.approx(expected)
    everyone = median_frequency_weights([c["label"] for part in pipeline["split"].values() for c in part], 4)
    assert expected != pytest.approx(everyone)  # so the assertion above could tell the splits apart


def test_the_default_mce_is_unweighted_and_a_bad_weighting_is_refused(pipeline):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "train.json"), str(CONFIGS / "tiny.json")])
    parser.update({"bundle_root": str(BUNDLE), "dataset_dir": str(pipeline["data"]), "fractions": FRACTIONS})
    with bundle_scripts(BUNDLE):
        assert parser.get_parsed_content("mce").class_weights is None  # the default: the paper's unweighted mce
        parser.update({"class_weighting": "median_frequency"})
        parser.parse(reset=True)
        assert parser.get_parsed_content("mce").class_weights is not None
        parser.update({"class_weighting": "inverse"})
        parser.parse(reset=True)
        with pytest.raises(Exception) as error:
            parser.get_parsed_content("mce")
    assert "class_weighting must be one of" in exception_messages(error.value)


def test_benchmark_inference_scaling_times_tiled_stacks_and_writes_every_slice(pipeline, tmp_path):
    """The benchmark's inference-scaling rows: one cine stack tiled to 4/8/16 slices along its slice axis, each run
    through inference.json and timed; every output (segmentation, LGE-equivalent image, AHA segment map) has the
    tiled slices."""
    tiny = {**json.loads((CONFIGS / "tiny.json").read_text()), **FAST}
    source = pipeline["data"] / "case001" / "case001_cine.nii.gz"
    with bundle_scripts(BUNDLE):
        from scripts.benchmark import SCALING_SLICES, _inference_scaling

        result = _inference_scaling(str(source), str(pipeline["models"]), tiny, str(tmp_path))
    assert result["slice_counts"] == list(SCALING_SLICES) and all(s > 0 for s in result["seconds"])
    assert result["per_slice"] > 0
    for n in result["slice_counts"]:
        outputs = sorted((tmp_path / f"slices_{n}" / "out").rglob("*.nii.gz"))
        assert len(outputs) == 3, outputs  # the segmentation, the LGE-equivalent image and the AHA segment map
        assert all(nib.load(path).shape[2] == n for path in outputs)
