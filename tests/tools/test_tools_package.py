"""tools.package: zip layout, and the unzipped bundle runs its inference without this repository."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from tools import package

NAME = "fake_segmentation"
SCHEMA_URL = "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20240725.json"
METADATA = {
    "schema": SCHEMA_URL,
    "version": "0.2.0",
    "changelog": {"0.2.0": "second", "0.1.0": "first"},
    "monai_version": "1.6.1",
    "pytorch_version": "2.13.0",
    "numpy_version": "2.0.0",
    "required_packages_version": {"nibabel": "5.3.2"},
    "task": "toy segmentation",
    "description": "a fake bundle for tests",
    "authors": "tests",
    "copyright": "Copyright (c) tests",
    "network_data_format": {
        "inputs": {
            "image": {
                "type": "image",
                "format": "magnitude",
                "num_channels": 1,
                "spatial_shape": ["16*n", "16*n"],
                "dtype": "float32",
                "value_range": [0, 1],
                "is_patch_data": False,
                "channel_def": {"0": "image"},
            }
        },
        "outputs": {
            "pred": {
                "type": "image",
                "format": "segmentation",
                "num_channels": 2,
                "spatial_shape": ["16*n", "16*n"],
                "dtype": "float32",
                "value_range": [0, 1],
                "is_patch_data": False,
                "channel_def": {"0": "background", "1": "fg"},
            }
        },
    },
}
# the recommended pattern: one `$import` per module, `common` bound by `$import common`
INFERENCE = {
    "imports": ["$import os", "$import glob", "$import common", "$import common.metrics", "$import scripts"],
    "bundle_root": ".",
    "dataset_dir": "$os.path.join(@bundle_root, 'data')",
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
            {"_target_": "ScaleIntensityd", "keys": "image"},
        ],
    },
    "dataset": {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"},
    "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "num_workers": 0},
    "inferer": {"_target_": "SimpleInferer"},
    "postprocessing": {
        "_target_": "Compose",
        "transforms": [
            {"_target_": "Activationsd", "keys": "pred", "softmax": True},
            {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
            {
                "_target_": "SaveImaged",
                "keys": "pred",
                "output_dir": "@output_dir",
                "output_postfix": "seg",
                "resample": False,
                "separate_folder": False,
            },
        ],
    },
    "evaluator": {
        "_target_": "SupervisedEvaluator",
        "device": "@device",
        "val_data_loader": "@dataloader",
        "network": "@network",
        "inferer": "@inferer",
        "postprocessing": "@postprocessing",
    },
    "initialize": ["$monai.utils.set_determinism(seed=0)"],
    "run": ["$@evaluator.run()"],
    "finalize": [
        "$open(os.path.join(@output_dir, 'origin.txt'), 'w').write("
        "'\\n'.join([common.__file__, common.metrics.__file__, scripts.__file__]))"
    ],
}


def make_bundle(root: Path) -> Path:
    bundle = root / NAME
    for sub in ("configs", "docs", "scripts/__pycache__", "models", "eval"):
        (bundle / sub).mkdir(parents=True)
    (bundle / "LICENSE").write_text("Apache-2.0\n")
    (bundle / "docs" / "README.md").write_text("# fake\n")
    (bundle / "configs" / "metadata.json").write_text(json.dumps(METADATA, indent=2))
    (bundle / "configs" / "inference.json").write_text(json.dumps(INFERENCE, indent=2))
    (bundle / "scripts" / "__init__.py").write_text('"""fake bundle scripts"""\n')
    (bundle / "scripts" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"junk")
    (bundle / "models" / "model.pt").write_bytes(b"weights")
    (bundle / "models" / "model.ts").write_bytes(b"torchscript")
    (bundle / "models" / "README.txt").write_text("weights are downloaded with large_files.yml\n")
    # training state and other stages' weights, which must never be listed or shipped
    (bundle / "models" / "train_state").mkdir()
    (bundle / "models" / "train_state" / "checkpoint_epoch=10.pt").write_bytes(b"optimizer state")
    (bundle / "models" / "model_ssl.pt").write_bytes(b"ssl weights")
    (bundle / "eval" / "metrics.csv").write_text("dice\n")
    return bundle


@pytest.fixture(scope="module")
def packaged(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("package")
    bundle = make_bundle(root / "src")
    return bundle, package.package_bundle(bundle, root / "dist")


def test_zip_layout(packaged):
    bundle, zip_path = packaged
    assert zip_path.name == f"{NAME}_v0.2.0.zip"
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
    assert all(n.startswith(f"{NAME}/") for n in names)
    for expected in [
        "LICENSE",
        "configs/metadata.json",
        "configs/inference.json",
        "docs/README.md",
        "scripts/__init__.py",
        "models/README.txt",
        "common/__init__.py",
        "common/metrics/__init__.py",
        "common/metrics/dice.py",
    ]:
        assert f"{NAME}/{expected}" in names
    assert not [n for n in names if n.endswith((".pt", ".ts", ".pyc")) or "/eval/" in n or "__pycache__" in n]
    assert not [n for n in names if "/models/" in n and "_state" in n]
    # no hosted weights: no large_files.yml at all, rather than one with placeholder URLs
    assert f"{NAME}/large_files.yml" not in names


URL = "https://github.com/owner/repo/releases/download/v0.2.0/model.pt"


def test_large_files_lists_only_inference_weights_with_their_urls(packaged, tmp_path):
    bundle, _ = packaged
    zip_path = package.package_bundle(bundle, tmp_path, weights_urls={"models/model.pt": URL})
    with zipfile.ZipFile(zip_path) as zf:
        large_files = yaml.safe_load(zf.read(f"{NAME}/large_files.yml"))
    assert large_files == {
        "large_files": [
            {"path": "models/model.pt", "url": URL, "hash_val": hashlib.md5(b"weights").hexdigest(), "hash_type": "md5"}
        ]
    }
    assert package.large_files_problems(large_files) == []


@pytest.mark.parametrize(
    "urls, named",
    [
        ({"models/train_state/checkpoint_epoch=10.pt": URL}, "only inference weights"),
        ({"models/model_ssl.pt": URL}, "only inference weights"),
        ({"models/model.pt": "TODO: upload models/model.pt and put its download URL here"}, "not an http(s)"),
        ({"models/model.pt": "https://example.com/todo"}, "placeholder"),
    ],
)
def test_training_state_and_placeholder_urls_are_refused(packaged, tmp_path, urls, named):
    bundle, _ = packaged
    with pytest.raises(ValueError, match=re.escape(named)):
        package.package_bundle(bundle, tmp_path, weights_urls=urls)


def test_a_bundle_large_files_yml_with_training_state_is_refused(tmp_path):
    bundle = make_bundle(tmp_path)
    entry = {"path": "models/train_state/checkpoint_epoch=10.pt", "url": "TODO: upload", "hash_type": "md5"}
    (bundle / "large_files.yml").write_text(yaml.safe_dump({"large_files": [entry]}))
    with pytest.raises(ValueError, match="only inference weights") as info:
        package.package_bundle(bundle, tmp_path / "dist")
    assert "not an http(s) download link" in str(info.value)


def test_weights_notes_say_what_has_no_url(packaged):
    bundle, _ = packaged
    notes = package.weights_notes(bundle)
    assert len(notes) == 2 and "models/model.pt" in notes[0] and "models/model.ts" in notes[1]
    assert all("--weights-url" in n and "model_ssl" not in n for n in notes)
    assert package.weights_notes(bundle, {"models/model.pt": URL, "models/model.ts": URL}) == []


def test_zip_is_reproducible(packaged, tmp_path):
    bundle, zip_path = packaged
    again = package.package_bundle(bundle, tmp_path)
    assert again.read_bytes() == zip_path.read_bytes()


def test_main_packages_named_bundles_and_fails_on_unknown(packaged, tmp_path, capsys):
    bundle, _ = packaged
    assert package.main(["--bundles-dir", str(bundle.parent), "--out", str(tmp_path)]) == 0
    assert (tmp_path / f"{NAME}_v0.2.0.zip").is_file()
    assert "NOTE fake_segmentation: models/model.pt" in capsys.readouterr().out
    url_arg = ["--weights-url", f"{NAME}/models/model.pt={URL}"]
    assert package.main(["--bundles-dir", str(bundle.parent), "--out", str(tmp_path / "u"), *url_arg]) == 0
    with zipfile.ZipFile(tmp_path / "u" / f"{NAME}_v0.2.0.zip") as zf:
        assert yaml.safe_load(zf.read(f"{NAME}/large_files.yml"))["large_files"][0]["url"] == URL
    bad_arg = ["--weights-url", f"other/models/model.pt={URL}"]
    assert package.main(["--bundles-dir", str(bundle.parent), "--out", str(tmp_path), *bad_arg]) == 1
    assert "bundle `other`" in capsys.readouterr().out
    assert package.main(["--bundles-dir", str(bundle.parent), "--bundles", "nope", "--out", str(tmp_path)]) == 1
    assert "bundle `nope`" in capsys.readouterr().out


def test_missing_version_is_named(tmp_path):
    bundle = make_bundle(tmp_path)
    metadata = dict(METADATA)
    del metadata["version"]
    (bundle / "configs" / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match="`version`"):
        package.package_bundle(bundle, tmp_path / "dist")


@pytest.mark.slow
def test_unzipped_bundle_runs_inference_without_the_repository(packaged, tmp_path):
    import nibabel as nib

    _, zip_path = packaged
    unzipped = tmp_path / "unzipped"
    unzipped.mkdir()
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(unzipped)
    bundle_root = unzipped / NAME
    data = tmp_path / "data"
    data.mkdir()
    image = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    nib.save(nib.Nifti1Image(image, np.diag([0.5, 0.5, 1.0, 1.0])), str(data / "case_001.nii.gz"))
    out = tmp_path / "out"

    # `-S`: no site processing, so neither the editable install's finder nor any .pth reaches this repository;
    # PYTHONPATH holds only the site-packages folder (monai, torch, ...), as for a user who installed the
    # required packages and nothing else.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": sysconfig.get_paths()["purelib"],
    }
    probe = subprocess.run(
        [sys.executable, "-S", "-c", "import common"], cwd=unzipped, env=env, capture_output=True, text=True
    )
    assert probe.returncode != 0 and "No module named 'common'" in probe.stderr  # the repository is off the path

    # the model zoo's documented command, started in the bundle root
    command = [sys.executable, "-S", "-m", "monai.bundle", "run", "--config_file", "configs/inference.json"]
    command += ["--dataset_dir", str(data), "--output_dir", str(out)]
    result = subprocess.run(command, cwd=bundle_root, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    assert (out / "case_001_seg.nii.gz").is_file()
    assert nib.load(str(out / "case_001_seg.nii.gz")).shape[:2] == (32, 32)
    origins = (out / "origin.txt").read_text().split("\n")
    assert origins == [
        str(bundle_root / "common" / "__init__.py"),
        str(bundle_root / "common" / "metrics" / "__init__.py"),
        str(bundle_root / "scripts" / "__init__.py"),
    ]
