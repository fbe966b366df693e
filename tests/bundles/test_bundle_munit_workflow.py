"""The LGE cardiac segmentation bundle (issue 19) end to end, driven through `monai.bundle` as a user would.

Heart localiser -> MUNIT bSSFP -> LGE translator -> synthetic labelled LGE -> cascaded U-Net in four stages
(unet1_bssfp, unet1_ft, unet2_bssfp, unet2_ft) -> folder inference (CRF + morphology) -> evaluation, each stage run
once, in order, from an empty models folder (tiny.json networks, 6 small MS-CMRSeg phantoms: patients 1-3 have an
LGE label and are evaluation-only, 4-6 train).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_test_utils import (
    bundle_scripts,
    copy_slices_first,
    exception_messages,
    load_state,
    run_tiny,
    same_state,
    tiny_workflow,
)
from common.constants import MSCMR_LABELS
from common.transforms import LocaliseHeartd
from monai.bundle import ConfigWorkflow

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "lge_cardiac_segmentation_munit"
STAGES = ("unet1_bssfp", "unet1_ft", "unet2_bssfp", "unet2_ft")
#: the two networks in models/model.pt (common.nets.LocalisedNetwork)
PARTS = ("segmenter.", "localiser.")
MSCMR_VALUES = set(MSCMR_LABELS.values())
METRICS = ("dice_lv", "asd_lv", "dice_myo", "asd_myo", "dice_rv", "asd_rv")
#: style codes per bSSFP volume (configs/generate.json; the paper's five)
NUM_STYLES = json.loads((BUNDLE / "configs" / "generate.json").read_text())["num_styles"]
#: folders of the system temp dir that libraries create for themselves (torch's inductor cache)
THIRD_PARTY_CACHES = ("torchinductor_",)

pytestmark = pytest.mark.slow


def _run(files: list[str], **overrides) -> ConfigWorkflow:
    """``configs/<files>`` + tiny.json run as ``monai.bundle run`` does (``bundle_test_utils.run_tiny``)."""
    return run_tiny(BUNDLE, files, **overrides)


class _WriteRecorder:
    """An audit hook recording, while ``active``, every path opened for writing, created, renamed or removed."""

    EVENTS = frozenset({"open", "os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.truncate", "shutil.rmtree"})
    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def __init__(self) -> None:
        self.active = False
        self.paths: list[str] = []

    def __call__(self, event: str, args: tuple) -> None:
        if not self.active or event not in self.EVENTS or not args:
            return
        paths = args[:2] if event == "os.rename" else args[:1]
        if event == "open":
            mode, flags = args[1], args[2]
            if (mode is None and not flags & self.WRITE_FLAGS) or (mode is not None and not set(mode) & set("wax+")):
                return
        for path in paths:
            if isinstance(path, (str, bytes, os.PathLike)):
                self.paths.append(os.path.abspath(os.fsdecode(path)))


WRITES = _WriteRecorder()
sys.addaudithook(WRITES)


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else set()


def _nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image = nib.load(path)
    return np.asarray(image.dataobj), image.affine


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Every stage once, in order, into empty temporary models/, synthetic/, eval/ and outputs/ folders."""
    from common.data import write_mscmrseg

    work = tmp_path_factory.mktemp("munit")
    data = write_mscmrseg(work / "data", n_patients=6, seed=3, small=True)
    models, synthetic = work / "models", work / "synthetic"
    common = dict(dataset_dir=str(data), ckpt_dir=str(models), synthetic_dir=str(synthetic))
    runs = [
        ("localiser", ["train.json", "train_localiser.json"], {"output_dir": str(work / "eval" / "localiser")}),
        ("translator", ["train.json", "train_translator.json"], {"output_dir": str(work / "eval" / "translator")}),
        ("generate", ["train.json", "generate.json"], {}),
        *((s, ["train.json"], {"stage": s, "output_dir": str(work / "eval" / s)}) for s in STAGES),
    ]
    workflows, written = {}, {}
    WRITES.paths.clear()
    WRITES.active = True
    try:
        for name, files, overrides in runs:
            before = _files(models)
            workflows[name] = _run(files, **common, **overrides)
            written[name] = _files(models) - before
        infer = dict(dataset_dir=str(data), ckpt_dir=str(models))
        workflows["inference"] = _run(["inference.json"], **infer, output_dir=str(work / "outputs"))
        workflows["evaluate"] = _run(
            ["inference.json", "evaluate.json"], **infer, output_dir=str(work / "eval" / "evaluate")
        )
    finally:
        WRITES.active = False
    return {
        "work": work,
        "data": data,
        "models": models,
        "synthetic": synthetic / "set_0",
        "workflows": workflows,
        "written": written,
        "writes": list(WRITES.paths),
        "evaluation_patients": sorted(p.name.split("_")[0] for p in data.glob("patient*_LGE_manual.nii.gz")),
    }


# ------------------------------------------------------------------------------------------------ what each stage wrote
def test_each_stage_writes_its_weights(pipeline):
    written, models = pipeline["written"], pipeline["models"]
    localiser = os.path.join("localiser", "localiser.pt")
    assert localiser in written["localiser"]
    assert all(name.startswith("localiser" + os.sep) for name in written["localiser"])
    assert os.path.join("localiser", "train_state", "checkpoint_epoch=1.pt") in written["localiser"]
    assert os.path.join("translator", "translator.pt") in written["translator"]
    assert not written["generate"], "generate writes the synthetic set only, no weights"
    for stage in STAGES:
        assert os.path.join("member_0", f"{stage}.pt") in written[stage]
        assert all(name.endswith(".pt") for name in written[stage])
    assert "model.pt" in written["unet2_ft"]  # the inference weights, written after the last stage
    assert not any("model.pt" == name for stage in STAGES[:-1] for name in written[stage])
    # MONAI Label's bundle task loads the one file its glob of models/*.pt finds
    assert sorted(p.name for p in models.glob("*.pt")) == ["model.pt"]
    assert not list(models.glob("*.partial")) and not list(models.rglob("*.partial"))


def test_model_pt_holds_the_final_cascade_and_the_localiser(pipeline):
    models = pipeline["models"]
    final = torch.load(models / "member_0" / "unet2_ft.pt", weights_only=True)
    localiser = torch.load(models / "localiser" / "localiser.pt", weights_only=True)
    checkpoint = torch.load(models / "model.pt", weights_only=True)
    assert set(checkpoint) == {"model"}
    model = checkpoint["model"]
    parts = {prefix: {k[len(prefix) :]: v for k, v in model.items() if k.startswith(prefix)} for prefix in PARTS}
    assert sum(len(part) for part in parts.values()) == len(model), "only segmenter.* and localiser.* keys"
    for prefix, expected in (("segmenter.", final), ("localiser.", localiser)):
        part = parts[prefix]
        assert set(part) == set(expected), prefix
        assert all(torch.equal(part[k], expected[k]) for k in expected), prefix
    # and it is what inference.json's network_def loads (strict), the localiser its pre-processing runs included
    network = pipeline["workflows"]["inference"].parser.get_parsed_content("network_def")
    assert set(network.state_dict()) == set(model)
    assert all(torch.equal(v.cpu(), model[k]) for k, v in network.state_dict().items())
    transforms = pipeline["workflows"]["inference"].parser.get_parsed_content("preprocessing").transforms
    (localise,) = [t for t in transforms if isinstance(t, LocaliseHeartd)]
    assert localise.network is network.localiser and localise.weights is None  # no separate weights file


def test_nothing_written_outside_the_temporary_folders(pipeline):
    work = str(pipeline["work"])
    caches = tuple(os.path.join(tempfile.gettempdir(), name) for name in THIRD_PARTY_CACHES)
    outside = sorted(
        {p for p in pipeline["writes"] if not (p == work or p.startswith(work + os.sep) or p.startswith(caches))}
    )
    assert not outside, outside
    # the recorder saw the run's own writes (else the check above would pass on an empty list): every synthetic
    # NIfTI and every segmentation written to outputs/
    written = set(pipeline["writes"])
    files = [*pipeline["synthetic"].glob("*.nii.gz"), *(pipeline["work"] / "outputs").rglob("*.nii.gz")]
    assert len(files) >= 2 and all(str(path) in written for path in files), sorted(map(str, files))


# ------------------------------------------------------------------------------------------------- the U-Net cascade
def _parameters(state: dict, prefix: str) -> list[str]:
    return [k for k in state if k.startswith(prefix) and "running_" not in k and "num_batches" not in k]


def test_stage_two_starts_from_the_frozen_fine_tuned_unet1(pipeline):
    member = pipeline["models"] / "member_0"
    weights = {stage: torch.load(member / f"{stage}.pt", weights_only=True) for stage in STAGES}
    unet1 = [k for k in weights["unet1_ft"] if k.startswith("unet1.")]
    assert unet1
    for stage in ("unet2_bssfp", "unet2_ft"):  # U-Net 1 frozen (buffers included) in both stage-2 runs
        assert all(torch.equal(weights[stage][k], weights["unet1_ft"][k]) for k in unet1), stage
    # each fine-tune starts from its pre-trained stage (lr 1e-5: tiny steps) and does change it
    for pre, ft, prefix in (("unet1_bssfp", "unet1_ft", "unet1."), ("unet2_bssfp", "unet2_ft", "unet2.")):
        delta = max(float((weights[ft][k] - weights[pre][k]).abs().max()) for k in _parameters(weights[ft], prefix))
        assert 0 < delta < 1e-3, (pre, ft, delta)
    # U-Net 2 is trained in stage 2 (lr 1e-3), from scratch
    delta = max(
        float((weights["unet2_bssfp"][k] - weights["unet1_ft"][k]).abs().max())
        for k in _parameters(weights["unet1_ft"], "unet2.")
    )
    assert delta > 1e-4
    loaded = pipeline["workflows"]["unet2_bssfp"].parser.get_parsed_content("load_init")
    assert loaded == len(weights["unet1_ft"])


# ---------------------------------------------------------------------------------------------- the synthetic LGE set
def test_synthetic_set_has_every_style_of_every_case_on_the_crop_grid(pipeline):
    folder, data = pipeline["synthetic"], pipeline["data"]
    datalist = json.loads((folder / "datalist.json").read_text())
    items = datalist["training"]
    training = sorted({p.name.split("_")[0] for p in data.glob("patient*_C0_manual.nii.gz")})
    training = [c for c in training if c not in pipeline["evaluation_patients"]]
    assert datalist["num_styles"] == NUM_STYLES and len(items) == NUM_STYLES * len(training) == 15
    assert sorted({item["case"] for item in items}) == training
    assert sorted(p.name for p in folder.glob("*_LGE.nii.gz")) == sorted(item["image"] for item in items)
    tiny = json.loads((BUNDLE / "configs" / "tiny.json").read_text())
    for item in items:
        image, affine = _nifti(folder / item["image"])
        label, label_affine = _nifti(folder / item["label"])
        np.testing.assert_array_equal(affine, label_affine)
        assert image.shape == label.shape and image.shape[:2] == (tiny["roi_size"],) * 2
        np.testing.assert_allclose(nib.load(folder / item["image"]).header.get_zooms()[:2], tiny["pixdim"])
        assert set(np.unique(label).tolist()) <= MSCMR_VALUES and set(np.unique(label).tolist()) > {0}
        assert np.isfinite(image).all() and image.min() >= -1 and image.max() <= 1  # the generator's Tanh range
    # the crop lies where the heart is: the synthetic label agrees with the source label at the same world points
    case = training[0]
    label, affine = _nifti(folder / f"{case}_C0_manual.nii.gz")
    source, source_affine = _nifti(data / f"{case}_C0_manual.nii.gz")
    ijk = np.argwhere(label > 0)
    world = affine @ np.c_[ijk, np.ones(len(ijk))].T
    src = np.rint(np.linalg.inv(source_affine) @ world)[:3].astype(int).T
    inside = np.all((src >= 0) & (src < source.shape), axis=1)
    assert inside.mean() > 0.99
    agree = source[tuple(src[inside].T)] == label[tuple(ijk[inside].T)]
    assert agree.mean() > 0.95, agree.mean()


def test_styles_of_one_case_differ_inside_the_heart(pipeline):
    folder = pipeline["synthetic"]
    case = sorted(p.name.split("_")[0] for p in folder.glob("*_style0_LGE.nii.gz"))[0]
    label, _ = _nifti(folder / f"{case}_C0_manual.nii.gz")
    styles = np.stack([_nifti(folder / f"{case}_style{j}_LGE.nii.gz")[0] for j in range(NUM_STYLES)])
    spread = styles.std(axis=0)[label > 0]
    assert spread.mean() > 1e-3, spread.mean()
    for j in range(1, NUM_STYLES):
        assert not np.array_equal(styles[0], styles[j])


def test_generate_refuses_to_overwrite_a_set_unless_asked(pipeline, tmp_path):
    folder = pipeline["synthetic"]
    before = {name: (folder / name).stat().st_mtime_ns for name in _files(folder)}
    common = dict(dataset_dir=str(pipeline["data"]), ckpt_dir=str(pipeline["models"]))
    with pytest.raises(Exception) as error:
        _run(["train.json", "generate.json"], **common, synthetic_dir=str(folder.parent))
    message = exception_messages(error.value)
    assert "FileExistsError" in message and str(folder) in message and "overwrite" in message
    assert {name: (folder / name).stat().st_mtime_ns for name in _files(folder)} == before
    # --overwrite true replaces it (on a copy): the same seed writes the same set again
    copy = tmp_path / "synthetic"
    shutil.copytree(folder.parent, copy)
    (copy / "set_0" / "stale.txt").write_text("left by hand")
    old = {name: _nifti(copy / "set_0" / name)[0] for name in _files(folder) if name.endswith(".nii.gz")}
    stamp = (copy / "set_0" / "datalist.json").stat().st_mtime_ns
    _run(["train.json", "generate.json"], **common, synthetic_dir=str(copy), overwrite=True)
    assert (copy / "set_0" / "datalist.json").stat().st_mtime_ns != stamp
    for name, array in old.items():
        np.testing.assert_array_equal(_nifti(copy / "set_0" / name)[0], array)


# ---------------------------------------------------------------------------------------------- running out of order
def _empty_run(tmp_path: Path, data: Path, files: list[str], **overrides):
    models = tmp_path / "models"
    with pytest.raises(Exception) as error:
        _run(
            files,
            dataset_dir=str(data),
            ckpt_dir=str(models),
            synthetic_dir=str(tmp_path / "synthetic"),
            output_dir=str(tmp_path / "eval"),
            **overrides,
        )
    assert not [p for p in models.rglob("*.pt")], "a refused stage must not write weights"
    return exception_messages(error.value)


@pytest.mark.parametrize(
    "files,overrides,missing,command",
    [
        (
            ["train.json", "train_translator.json"],
            {},
            os.path.join("localiser", "localiser.pt"),
            "configs/train_localiser.json",
        ),
        (["train.json", "generate.json"], {}, os.path.join("translator", "translator.pt"), "train_translator.json"),
        (["train.json"], {"stage": "unet1_ft"}, os.path.join("member_0", "unet1_bssfp.pt"), "--stage unet1_bssfp"),
        (["train.json"], {"stage": "unet2_bssfp"}, os.path.join("member_0", "unet1_ft.pt"), "--stage unet1_ft"),
        (["train.json"], {"stage": "unet2_ft"}, os.path.join("member_0", "unet2_bssfp.pt"), "--stage unet2_bssfp"),
    ],
    ids=["translator", "generate", "unet1_ft", "unet2_bssfp", "unet2_ft"],
)
def test_stage_before_its_predecessor_names_the_file_and_command(
    pipeline, tmp_path, files, overrides, missing, command
):
    message = _empty_run(tmp_path, pipeline["data"], files, **overrides)
    assert "FileNotFoundError" in message
    assert str(tmp_path / "models" / missing) in message and command in message


def test_fine_tune_without_the_synthetic_set_names_it_and_the_command(pipeline, tmp_path):
    (tmp_path / "models" / "member_0").mkdir(parents=True)
    shutil.copy(pipeline["models"] / "member_0" / "unet1_bssfp.pt", tmp_path / "models" / "member_0")
    with pytest.raises(Exception) as error:
        _run(
            ["train.json"],
            stage="unet1_ft",
            dataset_dir=str(pipeline["data"]),
            ckpt_dir=str(tmp_path / "models"),
            synthetic_dir=str(tmp_path / "synthetic"),
            output_dir=str(tmp_path / "eval"),
        )
    message = exception_messages(error.value)
    assert str(tmp_path / "synthetic" / "set_0" / "datalist.json") in message and "generate.json" in message
    assert not (tmp_path / "models" / "member_0" / "unet1_ft.pt").exists()


def test_inference_before_training_names_the_file_and_command(pipeline, tmp_path):
    message = _empty_run(tmp_path, pipeline["data"], ["inference.json"])
    assert "FileNotFoundError" in message and str(tmp_path / "models" / "model.pt") in message
    assert all(stage in message for stage in STAGES) and "train.json" in message, message
    assert "localiser" in message and "translator" in message and "generate.json" in message, message
    assert not (tmp_path / "eval").exists(), "refused before any input is read"


# ------------------------------------------------------------------------------------------ inference and evaluation
def test_inference_writes_one_label_volume_per_input_lge_on_its_grid(pipeline):
    data, out = pipeline["data"], pipeline["work"] / "outputs"
    inputs = sorted(data.glob("patient*_LGE.nii.gz"))
    assert len(inputs) == 6
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name.replace("_LGE", "_LGE_seg") for p in inputs)
    for path in inputs:
        source = nib.load(path)
        label, affine = _nifti(out / path.name.replace(".nii.gz", "_seg.nii.gz"))
        assert label.shape == source.shape
        np.testing.assert_allclose(affine, source.affine, atol=1e-4)
        assert set(np.unique(label).tolist()) <= MSCMR_VALUES


def test_evaluate_writes_per_case_csvs_and_overlays_for_the_evaluation_patients_only(pipeline):
    folder = pipeline["work"] / "eval" / "evaluate"
    patients = pipeline["evaluation_patients"]
    assert patients == ["patient1", "patient2", "patient3"]
    for metric in METRICS:
        with open(folder / f"{metric}_raw.csv") as f:
            rows = list(csv.reader(f))
        assert rows[0][0] == "filename", (metric, rows[0])
        assert sorted(row[0] for row in rows[1:]) == patients, metric
        assert (folder / f"{metric}_summary.csv").is_file()
    # its Dice values are those of inference.json's label volumes against the manual labels (recomputed from files)
    from common.metrics import dice

    for name, value in MSCMR_LABELS.items():
        if name == "background":
            continue
        metric = {"myocardium": "dice_myo", "lv": "dice_lv", "rv": "dice_rv"}[name]
        with open(folder / f"{metric}_raw.csv") as f:
            rows = list(csv.reader(f))[1:]
        for patient, score, *_ in rows:  # filename, class0, mean (4 decimals)
            label, _ = _nifti(pipeline["data"] / f"{patient}_LGE_manual.nii.gz")
            seg, _ = _nifti(pipeline["work"] / "outputs" / f"{patient}_LGE_seg.nii.gz")
            assert float(score) == pytest.approx(float(dice(seg, label, labels=value)), abs=6e-5), (metric, patient)
    assert not list(folder.glob("*.nii.gz")), "evaluate scores in memory; it writes no label volumes"
    # one overlay per case: the LGE on its own grid, cut at the slice where the label has the most foreground
    assert sorted(p.name for p in (folder / "overlays").iterdir()) == [f"{patient}.png" for patient in patients]


def test_evaluate_scores_a_test_set_stored_slices_first_as_the_same_set_stored_slices_last(pipeline, tmp_path):
    """Every evaluation LGE and label written with its slices on the first array axis (the same physical volumes):
    each case's Dice and ASD are those of the original layout. Slicing across the stack, or scoring a prediction
    in one layout against a label in the other, would change them or fail on the shapes."""
    data = tmp_path / "slices_first"
    copy_slices_first(pipeline["data"], data)
    out = tmp_path / "eval"
    _run(
        ["inference.json", "evaluate.json"],
        dataset_dir=str(data),
        ckpt_dir=str(pipeline["models"]),
        output_dir=str(out),
    )
    reference = pipeline["work"] / "eval" / "evaluate"
    scored = []
    for metric in METRICS:
        rows = {}
        for folder in (reference, out):
            with open(folder / f"{metric}_raw.csv") as f:
                rows[folder] = {row[0]: float(row[1]) for row in list(csv.reader(f))[1:]}
        assert sorted(rows[out]) == pipeline["evaluation_patients"], metric
        for patient, value in rows[reference].items():
            assert rows[out][patient] == pytest.approx(value, abs=1e-4, nan_ok=True), (metric, patient)
            scored.append(value)
    assert any(
        v > 0 for v in scored if np.isfinite(v)
    ), "every score 0 or NaN: the comparison cannot tell layouts apart"
    assert sorted(p.name for p in (out / "overlays").iterdir()) == sorted(
        p.name for p in (reference / "overlays").iterdir()
    )


def test_training_never_sees_an_evaluation_patient(pipeline):
    data, held_out = pipeline["data"], set(pipeline["evaluation_patients"])
    with bundle_scripts(BUNDLE):
        import scripts.cases

        cases = scripts.cases.training_cases(str(data))
        translator = scripts.cases.translator_datalists(str(data))
        evaluation = scripts.cases.evaluation_cases(str(data))
    assert sorted(c["case"] for c in evaluation) == sorted(held_out)
    assert sorted(c["case"] for c in cases["bssfp"]) == sorted(c["case"] for c in cases["lge"])
    assert {c["case"] for c in cases["bssfp"]} == {"patient4", "patient5", "patient6"}
    paths = [path for c in cases["bssfp"] + cases["lge"] for key, path in c.items() if key != "case"]
    paths += [path for domain in translator.values() for item in domain for path in item.values()]
    # and what each stage actually trained on (its parsed datalist)
    for name in ("localiser", "translator", *STAGES):
        datalist = pipeline["workflows"][name].parser.get_parsed_content("train_datalist")
        assert datalist, name
        paths += [path for item in datalist for path in item.values()]
    patients = {os.path.basename(path).split("_")[0] for path in paths}
    assert patients and not patients & held_out, patients


def _state_equal(network: torch.nn.Module, expected: dict) -> bool:
    state = network.state_dict()
    return set(state) == set(expected) and all(torch.equal(state[k].cpu(), expected[k]) for k in expected)


@pytest.fixture(scope="module")
def one_case(pipeline, tmp_path_factory) -> Path:
    """A folder holding one evaluation LGE (the inference tests below segment it only)."""
    folder = tmp_path_factory.mktemp("munit_one_case")
    shutil.copy(pipeline["data"] / "patient1_LGE.nii.gz", folder)
    return folder


def test_segmenter_weights_replace_the_cascade_and_keep_model_pt_localiser(pipeline, one_case, tmp_path):
    """``--segmenter_weights member_0/unet1_bssfp.pt --cascade_stage 1`` (the benchmark's U-Net rows): the stage file
    goes into ``network_def.segmenter`` after ``model.pt``, whose localiser still crops."""
    models = pipeline["models"]
    workflow = _run(
        ["inference.json"],
        dataset_dir=str(one_case),
        ckpt_dir=str(models),
        output_dir=str(tmp_path / "out"),
        segmenter_weights=str(models / "member_0" / "unet1_bssfp.pt"),
        cascade_stage=1,
    )
    network = workflow.parser.get_parsed_content("network_def")
    assert network.segmenter.stage == 1
    assert _state_equal(network.segmenter, torch.load(models / "member_0" / "unet1_bssfp.pt", weights_only=True))
    assert _state_equal(network.localiser, torch.load(models / "localiser" / "localiser.pt", weights_only=True))
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["patient1_LGE_seg.nii.gz"]


def test_ensemble_of_segmenters_with_the_localiser_of_model_pt(pipeline, one_case, tmp_path):
    """``--ensemble_weights`` (a list of unet2_ft.pt files): a ``ProbabilityEnsemble`` of cascades segments, and
    ``model.pt`` still gives the localiser. Two copies of member 0's cascade average to that cascade: the labels
    are those of plain inference (up to rounding of the averaged probabilities)."""
    from common.nets import ProbabilityEnsemble

    models, out = pipeline["models"], tmp_path / "out"
    final = models / "member_0" / "unet2_ft.pt"
    workflow = _run(
        ["inference.json"],
        dataset_dir=str(one_case),
        ckpt_dir=str(models),
        output_dir=str(out),
        ensemble_weights=[str(final), str(final)],
    )
    ensemble = workflow.parser.get_parsed_content("network")
    assert isinstance(ensemble, ProbabilityEnsemble) and len(ensemble.members) == 2
    expected = torch.load(final, weights_only=True)
    assert all(_state_equal(member, expected) for member in ensemble.members)
    network = workflow.parser.get_parsed_content("network_def")
    assert all(member is not network.segmenter for member in ensemble.members)
    assert _state_equal(network.localiser, torch.load(models / "localiser" / "localiser.pt", weights_only=True))
    name = "patient1_LGE_seg.nii.gz"
    assert [p.name for p in out.iterdir()] == [name]
    label, affine = _nifti(out / name)
    plain, plain_affine = _nifti(pipeline["work"] / "outputs" / name)
    np.testing.assert_allclose(affine, plain_affine)
    assert label.shape == plain.shape and (label == plain).mean() > 0.999, (label == plain).mean()


def test_tune_crf_scores_every_setting_on_the_synthetic_set_and_its_overlay_drives_inference(pipeline, tmp_path):
    """``scripts.tune_crf``: every CRF setting (and "no CRF", first) scored on the labelled synthetic set; its
    "no CRF" score is the mean Dice of plain inference (morphology on, CRF off) on the same stacks; the best setting
    is written as an overlay that ``inference.json`` takes as a second config file."""
    from common.metrics import dice

    with bundle_scripts(BUNDLE):
        from scripts.tune_crf import GRID, STRUCTURES, grid_settings, tune_crf

        out = tmp_path / "crf.json"
        overlay = tune_crf(
            str(pipeline["synthetic"]),
            str(out),
            ckpt_dir=str(pipeline["models"]),
            overlays=[str(BUNDLE / "configs" / "tiny.json")],
        )
    results = json.loads((tmp_path / "crf_scores.json").read_text())["results"]
    assert [r["setting"] for r in results] == grid_settings() and len(results) == 1 + np.prod(
        [len(v) for v in GRID.values()]
    )
    best = max(r["mean_dice"] for r in results)
    assert json.loads(out.read_text()) == overlay
    # the first best setting wins, so "no CRF" (first) wins ties (the tiny models here may tie every setting; that
    # the CRF changes labels is tests/postprocessing's)
    assert overlay == next(r["setting"] for r in results if r["mean_dice"] == best)
    # the "no CRF" score, recomputed through the bundle's own inference on the style-0 stacks
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    labels = {}
    for item in json.loads((pipeline["synthetic"] / "datalist.json").read_text())["training"]:
        if item["style"] == 0:
            shutil.copy(pipeline["synthetic"] / item["image"], stacks)
            labels[item["image"].replace(".nii.gz", "_seg.nii.gz")] = pipeline["synthetic"] / item["label"]
    _run(["inference.json"], dataset_dir=str(stacks), ckpt_dir=str(pipeline["models"]), output_dir=str(tmp_path / "o"),
         file_pattern="*_LGE.nii.gz", use_crf=False)  # fmt: skip
    scores = [
        np.mean([dice(_nifti(tmp_path / "o" / seg)[0], _nifti(label)[0], labels=v) for v in STRUCTURES.values()])
        for seg, label in sorted(labels.items())
    ]
    assert results[0]["mean_dice"] == pytest.approx(float(np.mean(scores)), abs=1e-6)
    # the overlay as a second config file: inference runs with its values
    workflow = _run(["inference.json", str(out)], dataset_dir=str(stacks), ckpt_dir=str(pipeline["models"]),
                    output_dir=str(tmp_path / "o2"), file_pattern="*_style0_LGE.nii.gz")  # fmt: skip
    assert all(workflow.parser[key] == value for key, value in overlay.items())
    assert len(list((tmp_path / "o2").iterdir())) == len(labels)


def test_tune_crf_scores_a_setting_by_the_mean_dice_of_its_post_processed_labels(tmp_path):
    """``score_setting`` on a hand-made case: a post-processing that returns a known label map gives its Dice."""
    truth = np.zeros((4, 4, 2), np.uint16)
    truth[:2, :2] = 500  # LV: 8 voxels
    truth[2:, 2:] = 200  # MYO: 8 voxels
    nib.save(nib.Nifti1Image(truth, np.eye(4)), tmp_path / "label.nii.gz")
    pred = truth.copy()
    pred[0, 0, 0] = 0  # LV 7 of 8 found: Dice 14 / 15; MYO exact; RV absent from both: 1
    with bundle_scripts(BUNDLE):
        from scripts.tune_crf import grid_settings, score_setting

        scores = score_setting([{"pred": None}], [{"image": "x", "label": str(tmp_path / "label.nii.gz")}],
                               lambda data: {"pred": pred[None]})  # fmt: skip
        assert scores == [pytest.approx((14 / 15 + 1 + 1) / 3)]
        settings = grid_settings()
        assert settings[0] == {"use_crf": False} and all(s["use_crf"] for s in settings[1:])
        # Krähenbühl's defaults (the configs' values) are among the candidates
        config = json.loads((BUNDLE / "configs" / "inference.json").read_text())
        defaults = {k: config[k] for k in ("crf_theta_alpha", "crf_theta_beta", "crf_w_alpha")}
        assert dict(defaults, use_crf=True) in settings


def test_header_alignment_places_the_labels_by_the_affines_alone(tmp_path):
    """The benchmark's "Header alignment" row: labels resampled onto another grid through the two affines only (a
    label on a grid shifted by two voxels comes back shifted by two voxels; on its own grid, unchanged)."""
    label = np.zeros((8, 8, 3), np.uint16)
    label[2:5, 3:6] = 500
    shifted = np.eye(4)
    shifted[0, 3] = 2.0  # the target grid starts 2 mm (2 voxels) further along x
    for name, affine in (("source", np.eye(4)), ("same", np.eye(4)), ("shifted", shifted)):
        nib.save(
            nib.Nifti1Image(label if name == "source" else np.zeros_like(label), affine), tmp_path / f"{name}.nii.gz"
        )
    with bundle_scripts(BUNDLE):
        from scripts.benchmark import _header_aligned

        same = _header_aligned(str(tmp_path / "source.nii.gz"), str(tmp_path / "same.nii.gz"))
        moved = _header_aligned(str(tmp_path / "source.nii.gz"), str(tmp_path / "shifted.nii.gz"))
    np.testing.assert_array_equal(same, label)
    np.testing.assert_array_equal(moved[:6], label[2:])
    assert not moved[6:].any()


def test_peer_step_times_our_translator_iteration_at_a_given_size():
    """``scripts.peer_step`` (our side of ``tools.side_by_side``): the configs' translator networks (quick sizes
    here), timings and parameter counts in the JSON the tool reads."""
    with bundle_scripts(BUNDLE):
        from scripts.peer_step import measure

        result = measure(n=1, warmup=1, size=64, threads=1, flops=False, quick=True)
        stacked = measure(n=1, warmup=0, size=64, threads=1, flops=False, quick=True, stack_passes="true")
    assert result["implementation"] == "ours (common.engines.MUNITTrainer)"  # train_translator.json: switch off
    assert stacked["implementation"].endswith(", stacked passes")
    assert set(result["params"]) == {"gen_a", "gen_b", "dis_a", "dis_b"}
    assert result["train_iter_s"]["median"] > 0 and result["infer_s"]["median"] > 0
    assert result["config"].endswith("64x64; bs1") and "quick.json" in result["config"]
    json.dumps(result)  # one JSON line


def test_benchmark_inference_scaling_times_tiled_stacks_and_labels_every_slice(pipeline, tmp_path):
    """The benchmark's speed rows: one evaluation LGE stack tiled to 4/8/16 slices, each run through inference.json
    and timed; every output label volume has the tiled stack's slices."""
    tiny = json.loads((BUNDLE / "configs" / "tiny.json").read_text())
    with bundle_scripts(BUNDLE):
        from scripts.benchmark import _inference_scaling

        result = _inference_scaling(str(pipeline["data"]), str(pipeline["models"]), tiny, str(tmp_path))
    assert result["slice_counts"] == [4, 8, 16] and all(s > 0 for s in result["seconds"])
    for n in result["slice_counts"]:
        (output,) = (tmp_path / f"slices_{n}" / "out").rglob("*.nii.gz")
        assert nib.load(output).shape[-1] == n


def test_inference_reads_the_label_values_and_preprocessing_that_training_used():
    """inference.json keeps its own copies of the class mapping and the intensity/grid settings (a bundle's
    inference config stands alone): they must equal train.json's, or a model's class 1 would come out as another
    structure's MS-CMRSeg value, or see other intensities."""
    configs = BUNDLE / "configs"
    train, infer = (json.loads((configs / name).read_text()) for name in ("train.json", "inference.json"))
    keys = ("mscmr_values", "class_values", "num_classes", "pixdim", "intensity_percentiles", "roi_size", "min_slices")
    for key in (*keys, "unet_features", "dropout", "localiser_features"):
        assert key in infer and infer[key] == train[key], key
    assert dict(zip(infer["class_values"], infer["mscmr_values"])) == {1: 500, 2: 200, 3: 600}  # LV, MYO, RV


# ------------------------------------------------------------------------------------- how each stage draws its data
def test_ensemble_members_train_from_their_own_seed(pipeline, tmp_path):
    """The paper trains the whole segmentation network once per ensemble member: member 1's first stage starts from
    another seed (``train_seed``) than member 0's, whose stage retrained on the same data is bit-identical."""
    common = dict(dataset_dir=str(pipeline["data"]), ckpt_dir=str(tmp_path / "models"), stage="unet1_bssfp")
    for member in (0, 1):
        _run(["train.json"], **common, member=member, output_dir=str(tmp_path / f"eval{member}"))
    first = load_state(pipeline["models"] / "member_0" / "unet1_bssfp.pt")
    assert same_state(load_state(tmp_path / "models" / "member_0" / "unet1_bssfp.pt"), first)
    assert not same_state(load_state(tmp_path / "models" / "member_1" / "unet1_bssfp.pt"), first)


def test_translator_partners_change_between_reads(pipeline):
    """The translator reads each bSSFP volume with a new random LGE partner (``common.data.UnpairedDataset``), not
    one fixed partner for the whole training."""
    from common.data import UnpairedDataset

    dataset = pipeline["workflows"]["translator"].parser.get_parsed_content("train#dataset")
    assert isinstance(dataset, UnpairedDataset) and len(dataset) == 3
    torch.manual_seed(0)
    partners = {dataset.partners(0)[1] for _ in range(40)}
    assert partners == {0, 1, 2}


def test_translator_schedule_is_the_papers_20k_iterations(pipeline):
    """Without tiny.json's one epoch, ``epochs`` is the number of epochs of this training set that reaches the
    paper's 20k translator iterations at batch 1 (3 training patients here: 6667 epochs)."""
    expression = json.loads((BUNDLE / "configs" / "train_translator.json").read_text())["epochs"]
    parser = pipeline["workflows"]["translator"].parser
    assert parser.get_parsed_content("translator_iterations") == 20000
    with bundle_scripts(BUNDLE):
        import scripts.cases

        assert scripts.cases.epochs_for_iterations(20000, 3) == 6667
        assert scripts.cases.epochs_for_iterations(20000, 40) == 500
        assert scripts.cases.epochs_for_iterations(10, 4, batch_size=3) == 5  # 2 steps per epoch
        workflow = tiny_workflow(
            BUNDLE,
            ["train.json", "train_translator.json"],
            dataset_dir=str(pipeline["data"]),
            ckpt_dir=str(pipeline["models"]),
            epochs=expression,
        )
        assert workflow.parser.get_parsed_content("epochs") == 6667


def test_localiser_trains_on_windows_anywhere_in_the_slice(pipeline, tmp_path):
    """The localiser is applied in sliding windows over whole slices (``LocaliseHeartd``), so it trains on windows
    drawn anywhere in a slice (padded when smaller), not on the centre crop only: on a slice 3x the window, an
    intensity ramp along x gives windows of several mean values."""
    from monai.transforms import Compose

    size, spacing = 192, 2.5  # tiny.json: 64-pixel windows at 2.5 mm
    ramp = np.broadcast_to(np.arange(size, dtype=np.float32)[:, None, None], (size, size, 3)).copy()
    label = np.zeros((size, size, 3), np.uint16)
    label[90:100, 90:100] = 500
    affine = np.diag([spacing, spacing, 10.0, 1.0])
    nib.save(nib.Nifti1Image(ramp, affine), tmp_path / "image.nii.gz")
    nib.save(nib.Nifti1Image(label, affine), tmp_path / "label.nii.gz")
    parser = pipeline["workflows"]["localiser"].parser
    with bundle_scripts(BUNDLE):
        sample = Compose(parser.get_parsed_content("volume_transforms") + parser.get_parsed_content("slice_transforms"))
        sample.set_random_state(seed=0)
        windows = [
            w
            for _ in range(5)
            for w in sample({"image": str(tmp_path / "image.nii.gz"), "label": str(tmp_path / "label.nii.gz")})
        ]
    assert all(tuple(w["image"].shape) == (1, 64, 64) and tuple(w["label"].shape) == (1, 64, 64) for w in windows)
    assert len({round(float(w["image"].mean()), 3) for w in windows}) > 3


@pytest.mark.in_process
def test_benchmark_records_each_seeds_diversity_and_crf_setting_in_its_details_file(tmp_path, monkeypatch):
    """``run`` writes ``benchmark_details.json`` (what ``tools.benchmark`` commits beside the rows): per training seed
    its translator diversity per synthetic stack and its tuned CRF setting, and the stages' seconds. The training,
    tuning and scoring are replaced by stand-ins that name their seed, so each seed's entry is shown to be its own."""
    metrics = ["dice_lv", "dice_myo", "dice_rv", "dice_avg", "asd_lv", "asd_myo", "asd_rv", "asd_avg"]

    def seed_of(path: str) -> int:
        return int(next(part for part in Path(path).parts if part.startswith("seed_")).split("_")[1])

    with bundle_scripts(BUNDLE):
        import scripts.benchmark as benchmark

        stand_ins = {
            "write_benchmark_data": lambda out: out,
            "_train_seed": lambda *args: None,
            "_tune_crf": lambda work, members, network: {"use_crf": seed_of(work) == 1},
            "_evaluation": lambda overrides, out: {m: {"case_a": 0.5, "case_b": 0.7} for m in metrics},
            "_diversity": lambda path: {"style_sd_in_heart": {"case_a": 0.1 + seed_of(path)}},
            "_content_agreement": lambda work, network: {"content_spread_within_styles": {"case_a": seed_of(work)}},
        }
        for name, stand_in in stand_ins.items():
            monkeypatch.setattr(benchmark, name, stand_in)
        benchmark.run(None, str(tmp_path), quick=True, seeds="0,1", members=1, registration=False, seedless=False)
    details = json.loads((tmp_path / "benchmark_details.json").read_text())
    assert details["seeds"] == [0, 1]
    assert details["diversity_per_seed"] == {
        "0": {"style_sd_in_heart": {"case_a": 0.1}, "content_spread_within_styles": {"case_a": 0}},
        "1": {"style_sd_in_heart": {"case_a": 1.1}, "content_spread_within_styles": {"case_a": 1}},
    }
    assert details["crf_per_seed"] == {"0": {"use_crf": False}, "1": {"use_crf": True}}
    assert {"data", "train seed 0", "CRF tuning seed 1"} <= set(details["stage_seconds"]) and details["machine"]
