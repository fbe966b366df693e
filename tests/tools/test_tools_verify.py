"""tools.verify_bundles on a tiny fake bundle built in tmp_path, and the metadata schema."""

from __future__ import annotations

import copy
import json
from importlib.metadata import version
from pathlib import Path

import pytest

from tools import verify_bundles as vb

SCHEMA_URL = "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20240725.json"


def _installed(distribution: str) -> str:
    return version(distribution).split("+", 1)[0]


def _tensor(num_channels, spatial_shape, fmt, channel_def):
    return {
        "type": "image",
        "format": fmt,
        "modality": "MR",
        "num_channels": num_channels,
        "spatial_shape": spatial_shape,
        "dtype": "float32",
        "value_range": [0, 1],
        "is_patch_data": False,
        "channel_def": channel_def,
    }


def valid_metadata() -> dict:
    return {
        "schema": SCHEMA_URL,
        "version": "0.2.0",
        "changelog": {"0.2.0": "second", "0.1.0": "first"},
        "monai_version": _installed("monai"),
        "pytorch_version": _installed("torch"),
        "numpy_version": _installed("numpy"),
        "required_packages_version": {"nibabel": _installed("nibabel")},
        "task": "toy segmentation",
        "description": "a fake bundle for tests",
        "authors": "tests",
        "copyright": "Copyright (c) tests",
        "intended_use": "tests only",
        "network_data_format": {
            "inputs": {"image": _tensor(1, ["16*n", "16*n"], "magnitude", {"0": "image"})},
            "outputs": {"pred": _tensor(2, ["16*n", "16*n"], "segmentation", {"0": "background", "1": "fg"})},
        },
    }


INFERENCE = {
    "imports": ["$import os", "$import glob"],
    "bundle_root": ".",
    "dataset_dir": "$os.path.join(@bundle_root, 'data', 'images')",
    "output_dir": "$os.path.join(@bundle_root, 'eval')",
    "device": "$torch.device('cpu')",
    "network_def": {
        "_target_": "BasicUNet",
        "spatial_dims": 2,
        "in_channels": 1,
        "out_channels": 2,
        "features": [4, 4, 8, 8, 16, 4],
    },
    "network": "$@network_def.to(@device)",
    "datalist": "$[{'image': f} for f in sorted(glob.glob(os.path.join(@dataset_dir, '*.nii.gz')))]",
    "preprocessing": {
        "_target_": "Compose",
        "transforms": [
            {"_target_": "LoadImaged", "keys": "image"},
            {"_target_": "EnsureChannelFirstd", "keys": "image"},
        ],
    },
    "dataset": {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"},
    "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "num_workers": 0},
    "inferer": {"_target_": "SimpleInferer"},
    "evaluator": {
        "_target_": "SupervisedEvaluator",
        "device": "@device",
        "val_data_loader": "@dataloader",
        "network": "@network",
        "inferer": "@inferer",
    },
    "initialize": ["$monai.utils.set_determinism(seed=0)"],
    "run": ["$@evaluator.run()"],
}


def make_bundle(root: Path, name: str = "fake_segmentation", metadata: dict | None = None, **configs) -> Path:
    bundle = root / name
    (bundle / "configs").mkdir(parents=True)
    (bundle / "docs").mkdir()
    (bundle / "LICENSE").write_text("Apache-2.0\n")
    (bundle / "configs" / "metadata.json").write_text(json.dumps(metadata or valid_metadata(), indent=2))
    configs.setdefault("inference", INFERENCE)
    for config_name, content in configs.items():
        (bundle / "configs" / f"{config_name}.json").write_text(json.dumps(content, indent=2))
    return bundle


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    (root / "images").mkdir()
    return root


# ------------------------------------------------------------------------------------------------ schema
def _write_meta(tmp_path: Path, metadata: dict) -> Path:
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(metadata))
    return path


def test_schema_file_is_a_valid_draft7_schema():
    import jsonschema

    schema = json.loads(vb.SCHEMA_PATH.read_text())
    assert schema["$schema"].startswith("http://json-schema.org/draft-07")
    jsonschema.Draft7Validator.check_schema(schema)


def test_valid_metadata_passes(tmp_path):
    vb.verify_metadata_file(_write_meta(tmp_path, valid_metadata()))


@pytest.mark.parametrize("key", ["version", "required_packages_version", "network_data_format", "copyright"])
def test_missing_required_key_fails_naming_it(tmp_path, key):
    metadata = valid_metadata()
    del metadata[key]
    with pytest.raises(ValueError, match=f"'{key}' is a required property"):
        vb.verify_metadata_file(_write_meta(tmp_path, metadata))


@pytest.mark.parametrize("key", ["channel_def", "spatial_shape", "is_patch_data"])
def test_missing_tensor_key_fails_naming_it(tmp_path, key):
    metadata = valid_metadata()
    del metadata["network_data_format"]["outputs"]["pred"][key]
    with pytest.raises(ValueError, match=f"'{key}' is a required property"):
        vb.verify_metadata_file(_write_meta(tmp_path, metadata))


def test_pred_output_is_required(tmp_path):
    metadata = valid_metadata()
    outputs = metadata["network_data_format"]["outputs"]
    outputs["seg"] = outputs.pop("pred")
    with pytest.raises(ValueError, match="'pred' is a required property"):
        vb.verify_metadata_file(_write_meta(tmp_path, metadata))


def test_version_not_in_changelog_fails_naming_it(tmp_path):
    metadata = valid_metadata()
    metadata["version"] = "0.3.0"
    with pytest.raises(ValueError, match="`version` '0.3.0' is not a key of `changelog`"):
        vb.verify_metadata_file(_write_meta(tmp_path, metadata))


def test_non_semver_version_fails(tmp_path):
    metadata = valid_metadata()
    metadata["version"] = "1.0"
    metadata["changelog"]["1.0"] = "x"
    with pytest.raises(ValueError, match="1.0"):
        vb.verify_metadata_file(_write_meta(tmp_path, metadata))


def test_missing_schema_file_refuses_instead_of_downloading(tmp_path):
    with pytest.raises(FileNotFoundError, match="schema file"):
        vb.verify_metadata_file(_write_meta(tmp_path, valid_metadata()), schema_file=tmp_path / "absent.json")
    assert not (tmp_path / "absent.json").exists()


# ------------------------------------------------------------------------------------------------ spatial probe
def test_probe_takes_the_smallest_valid_n():
    from monai.networks.nets import BasicUNet

    metadata = valid_metadata()
    metadata["network_data_format"]["inputs"]["image"]["spatial_shape"] = ["2*n", "2*n"]
    metadata["network_data_format"]["outputs"]["pred"]["spatial_shape"] = ["2*n", "2*n"]
    net = BasicUNet(spatial_dims=2, in_channels=1, out_channels=2, features=(4, 4, 8, 8, 16, 4))
    probe = vb.probe_spatial_shape(net, metadata)
    # 4 poolings need a multiple of 16, and instance norm needs more than 1x1 at the bottom: 32
    assert probe["values"] == {"n": 16}
    assert probe["input_shape"] == (1, 1, 32, 32)
    assert probe["output_shape"] == (1, 2, 32, 32)


def test_probe_checks_concrete_output_shape():
    import torch

    class Upsample8(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.interpolate(x, scale_factor=8).repeat(1, 2, 1, 1)

    metadata = valid_metadata()
    metadata["network_data_format"]["inputs"]["image"]["spatial_shape"] = [8, 8]
    metadata["network_data_format"]["outputs"]["pred"]["spatial_shape"] = [64, 64]
    assert vb.probe_spatial_shape(Upsample8(), metadata)["output_shape"] == (1, 2, 64, 64)
    metadata["network_data_format"]["outputs"]["pred"]["spatial_shape"] = [32, 32]
    with pytest.raises(ValueError, match="outputs.pred.spatial_shape"):
        vb.probe_spatial_shape(Upsample8(), metadata)


# ------------------------------------------------------------------------------------------------ whole bundle
def test_fake_bundle_passes_all_checks(tmp_path, data_root):
    bundle = make_bundle(tmp_path)
    report = vb.verify_bundle(bundle, data_root=data_root)
    statuses = {r.name: (r.status, r.detail) for r in report.results}
    assert not report.failed, statuses
    assert statuses["net_in_out"] == ("PASS", "(1, 1, 32, 32) -> (1, 2, 32, 32)")  # n = 2
    assert statuses["export"][0] == "PASS" and "fresh weights" in statuses["export"][1]
    assert statuses["configs"][0] == "PASS"
    assert sorted(p.name for p in bundle.rglob("*")) == sorted(  # nothing written into the bundle
        ["configs", "docs", "LICENSE", "metadata.json", "inference.json"]
    )


def test_wrong_out_channels_fails(tmp_path, capsys):
    metadata = valid_metadata()
    metadata["network_data_format"]["outputs"]["pred"]["num_channels"] = 3
    make_bundle(tmp_path, metadata=metadata)
    status = vb.main(["--bundles-dir", str(tmp_path), "--skip-export", "--skip-configs"])
    out = capsys.readouterr().out
    assert status == 1
    assert "fake_segmentation" in out and "FAIL" in out
    assert "`outputs.pred.num_channels` 3" in out


def test_wrong_output_spatial_shape_fails(tmp_path):
    metadata = valid_metadata()
    metadata["network_data_format"]["outputs"]["pred"]["spatial_shape"] = ["32*n", "32*n"]
    result, probe = vb.check_net_in_out(make_bundle(tmp_path, metadata=metadata))
    assert result.status == "FAIL" and probe is None
    assert "outputs.pred.spatial_shape" in result.detail


def test_export_exclude_file_must_give_a_reason_that_holds(tmp_path):
    bundle = make_bundle(tmp_path)
    exclude = bundle / "docs" / "torchscript_exclude.txt"
    exclude.write_text("  \n")
    assert "must give the reason" in vb.check_export(bundle, input_shape=(1, 1, 32, 32)).detail
    # the fake bundle's BasicUNet scripts, so a reason for not scripting it is stale
    exclude.write_text("uses a dynamic op that TorchScript rejects\n")
    result = vb.check_export(bundle, input_shape=(1, 1, 32, 32))
    assert result.status == "FAIL" and "the network scripts" in result.detail


NOT_SCRIPTABLE = """
import torch


class NotScriptable(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        try:  # TorchScript has no try/except: script rejects it, trace records the path taken
            return self.conv(x)
        except RuntimeError:
            return x
"""


def test_a_network_that_does_not_script_fails_unless_excluded_and_traceable(tmp_path):
    """As the zoo's CI: scripting is required; the exclude file (the zoo's exclude list) allows a traced export."""
    inference = copy.deepcopy(INFERENCE)
    inference["network_def"] = {"_target_": "verify_not_scriptable_net.NotScriptable"}
    bundle = make_bundle(tmp_path, inference=inference)
    (bundle / "verify_not_scriptable_net.py").write_text(NOT_SCRIPTABLE)
    result = vb.check_export(bundle, input_shape=(1, 1, 32, 32))
    assert result.status == "FAIL" and "exclude_verify_torchscript_list" in result.detail, result.detail
    (bundle / "docs" / "torchscript_exclude.txt").write_text("a try/except in forward\n")
    result = vb.check_export(bundle, input_shape=(1, 1, 32, 32))
    assert result.status == "SKIP", result.detail
    assert result.detail.startswith("a try/except in forward (traced at (1, 1, 32, 32): matches eager")


def test_broken_reference_and_target_fail_the_config_check(tmp_path, data_root):
    inference = copy.deepcopy(INFERENCE)
    inference["inferer"] = {"_target_": "common.no_such_module.Inferer"}
    inference["network"] = "$@network_definition.to(@device)"
    inference["imports"].append("$import os, glob")
    result = vb.check_configs(make_bundle(tmp_path, inference=inference), data_root)
    assert result.status == "FAIL"
    assert "refers to `@network_definition`, which is not defined" in result.detail
    assert "'common.no_such_module.Inferer'" in result.detail
    assert "multi-name import" in result.detail


def test_missing_weights_warns_instead_of_failing(tmp_path, data_root):
    inference = copy.deepcopy(INFERENCE)
    inference["initialize"].append("$torch.load(os.path.join(@bundle_root, 'models', 'stage1.pt'))")
    result = vb.check_configs(make_bundle(tmp_path, inference=inference), data_root)
    assert result.status == "WARN"
    assert "stage1.pt" in result.detail


def test_dataset_dir_points_at_the_matching_data_folder(tmp_path):
    (tmp_path / "ACDC" / "training").mkdir(parents=True)
    (tmp_path / "EMIDEC").mkdir()
    assert vb._match_dataset_dir("/x/bundles/b/../../data/ACDC/training", tmp_path) == tmp_path / "ACDC" / "training"
    assert vb._match_dataset_dir("data/EMIDEC", tmp_path) == tmp_path / "EMIDEC"
    assert vb._match_dataset_dir("/somewhere/data", tmp_path) == tmp_path


def test_config_combinations(tmp_path):
    standalone = {"initialize": [], "run": []}
    bundle = make_bundle(
        tmp_path,
        train=standalone,
        evaluate={"run": []},
        multi_gpu_train={"initialize": []},
        multi_gpu_inference={"initialize": []},
        pretrain=standalone,
        multi_gpu_pretrain={"initialize": []},
        train_stage2=standalone,
        common_defs={"lr": 1},
        layers={"combos": [["train.json", "train_stage2.json"]]},
    )
    assert vb.config_combinations(bundle) == [
        ["train.json", "evaluate.json"],
        ["inference.json"],
        ["inference.json", "multi_gpu_inference.json"],
        ["pretrain.json", "multi_gpu_pretrain.json"],
        ["train.json", "multi_gpu_train.json"],
        ["pretrain.json"],
        ["train.json"],
        ["train.json", "train_stage2.json"],
    ]


def test_unknown_bundle_name_fails(tmp_path, capsys):
    assert vb.main(["--bundles-dir", str(tmp_path), "--bundles", "nope"]) == 1
    assert "bundle `nope`" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------ pins
def test_pins_equal_to_installed_pass(tmp_path):
    assert vb.check_version_pins(make_bundle(tmp_path)).status == "PASS"


@pytest.mark.parametrize(
    "key, value, named",
    [
        ("numpy_version", "2.0.0", "`numpy_version` pins numpy==2.0.0"),
        ("pytorch_version", "2.4.0", "`pytorch_version` pins torch==2.4.0"),
        ("required_packages_version", {"nibabel": "5.3.2"}, "`required_packages_version#nibabel`"),
        ("required_packages_version", {"no-such-dist-xyz": "1.0"}, "not installed"),
    ],
)
def test_drifted_pin_fails_naming_it(tmp_path, key, value, named):
    """Caught the metadata pins of numpy 2.0.0 / nibabel 5.3.2 while 2.4.6 / 5.4.2 were tested."""
    metadata = valid_metadata()
    metadata[key] = value
    result = vb.check_version_pins(make_bundle(tmp_path, metadata=metadata))
    assert result.status == "FAIL" and named in result.detail


def test_local_version_suffix_is_ignored():
    assert vb._same_version("2.13.0", "2.13.0") and not vb._same_version("2.13.1", "2.13.0")
    assert vb._installed_version("torch") == _installed("torch") and "+" not in vb._installed_version("torch")


# ------------------------------------------------------------------------------------------------ large files
GOOD_URL = "https://github.com/owner/repo/releases/download/v0.2.0/model.pt"


def _with_large_files(tmp_path: Path, text: str, name: str = "large_files.yml") -> Path:
    bundle = make_bundle(tmp_path)
    (bundle / name).write_text(text)
    return bundle


def test_large_files_absent_or_inference_weights_pass(tmp_path):
    assert vb.check_large_files(make_bundle(tmp_path / "a")).status == "PASS"
    entry = {"path": "models/model.pt", "url": GOOD_URL, "hash_val": "0" * 32, "hash_type": "md5"}
    bundle = _with_large_files(tmp_path / "b", json.dumps({"large_files": [entry]}), "large_files.json")
    assert vb.check_large_files(bundle).status == "PASS"


@pytest.mark.parametrize(
    "entry, named",
    [
        # the defect: training-resume state and other stages' weights listed, with placeholder URLs
        ({"path": "models/train_state/checkpoint_epoch=100.pt", "url": GOOD_URL}, "only inference weights"),
        ({"path": "models/model_ssl.pt", "url": GOOD_URL}, "only inference weights"),
        ({"path": "models/model.pt", "url": "TODO: upload models/model.pt and put its download URL here"}, "url"),
        ({"path": "models/model.pt", "url": "https://example.com/model.pt"}, "placeholder"),
        ({"path": "models/model.pt"}, "no url"),
        ({"path": "models/model.pt", "url": GOOD_URL, "sha": "x"}, "not the zoo's"),
        ({"path": "models/model.pt", "url": GOOD_URL, "hash_val": "ab", "hash_type": "crc"}, "hash_type"),
    ],
)
def test_bad_large_files_fail_naming_the_problem(tmp_path, entry, named):
    import yaml

    bundle = _with_large_files(tmp_path, yaml.safe_dump({"large_files": [entry]}))
    result = vb.check_large_files(bundle)
    assert result.status == "FAIL" and named in result.detail, result.detail


# ------------------------------------------------------------------------------------------------ properties
# inference configs whose datalist is made when the config is read, as the bundles' was
EAGER_LISTING = dict(INFERENCE, imports=INFERENCE["imports"] + ["$import common", "$import common.data"])
EAGER_LISTING["datalist"] = "$[{'image': f} for f in common.data.validation.list_nifti(@dataset_dir)]"
EAGER_OUTPUT_DIR = dict(INFERENCE, imports=INFERENCE["imports"] + ["$import common", "$import common.inference"])
EAGER_OUTPUT_DIR["output_dir"] = "$os.path.join(@bundle_root, 'eval')"
EAGER_OUTPUT_DIR["datalist"] = "$common.inference.plan_outputs([], @output_dir, 'seg')"
# the fix: the list is made by the dataset's open(), the first step of `run`
DEFERRED = dict(INFERENCE, imports=INFERENCE["imports"] + ["$import common.inference"])
DEFERRED["inputs"] = {
    "_target_": "common.inference.FolderInputs",
    "folder": "@dataset_dir",
    "output_dir": "@output_dir",
    "postfix": "seg",
}
DEFERRED["datalist"] = "$@inputs.datalist"
DEFERRED["dataset"] = {
    "_target_": "common.inference.DeferredDataset",
    "data": "@datalist",
    "transform": "@preprocessing",
}
DEFERRED["run"] = ["$@dataset.open()", "$@evaluator.run()"]
DEFERRED["finalize"] = ["$@inputs.report_unreadable()"]


def test_properties_pass_without_data_when_the_list_is_deferred(tmp_path):
    result = vb.check_properties(make_bundle(tmp_path, inference=DEFERRED))
    assert result.status == "PASS", result.detail


@pytest.mark.parametrize(
    "config, named", [(EAGER_LISTING, "does not exist"), (EAGER_OUTPUT_DIR, "created ['output_dir']")]
)
def test_properties_fail_when_reading_the_config_touches_the_data(tmp_path, config, named):
    """Caught inference.json listing `dataset_dir` (and creating `output_dir`) when the config was read."""
    result = vb.check_properties(make_bundle(tmp_path, inference=config))
    assert result.status == "FAIL" and named in result.detail, result.detail


def test_properties_skip_without_inference_config(tmp_path):
    bundle = make_bundle(tmp_path)
    (bundle / "configs" / "inference.json").unlink()
    assert vb.check_properties(bundle).status == "SKIP"


def test_properties_warn_when_inference_properties_are_absent(tmp_path):
    stub = {k: v for k, v in INFERENCE.items() if k not in ("dataset", "dataloader", "evaluator")}
    result = vb.check_properties(make_bundle(tmp_path, inference=stub))
    assert result.status == "WARN" and "'dataset'" in result.detail and "'evaluator'" in result.detail
