"""require_bundle_root, and the DTI pipeline's explicit `sseg_bundle_root` setting."""

from __future__ import annotations

from pathlib import Path

import pytest
from common.bundle_root import BundleRootNotSetError, require_bundle_root
from monai.bundle import ConfigParser

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = [ROOT / "bundles" / "dti_lge_style_transfer" / "configs" / f for f in ("inference.json", "pipeline.json")]


def _bundle(tmp_path: Path) -> Path:
    (tmp_path / "other" / "configs").mkdir(parents=True)
    (tmp_path / "other" / "configs" / "inference.json").write_text("{}")
    return tmp_path / "other"


def test_returns_an_existing_bundle_root(tmp_path):
    root = _bundle(tmp_path)
    assert require_bundle_root(root, "other_root", "the other bundle") == str(root)
    assert require_bundle_root(str(root), "other_root", "the other bundle", required_files=()) == str(root)


@pytest.mark.parametrize("value", [None, "", "  "])
def test_unset_raises_naming_the_key(value):
    with pytest.raises(BundleRootNotSetError, match="`other_root` is not set.*the other bundle.*--other_root"):
        require_bundle_root(value, "other_root", "the other bundle")


def test_missing_folder_or_file_raises_naming_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="`other_root`.*is not a folder"):
        require_bundle_root(tmp_path / "nowhere", "other_root", "the other bundle")
    root = _bundle(tmp_path)
    with pytest.raises(FileNotFoundError, match="`other_root`.*has no models/model.pt"):
        require_bundle_root(root, "other_root", "the other bundle", required_files=["models/model.pt"])


def _error_text(error: BaseException) -> str:
    texts, current = [], error
    while current is not None:
        texts.append(str(current))
        current = current.__cause__ or current.__context__
    return " | ".join(texts)


def test_the_dti_pipeline_needs_sseg_bundle_root_explicitly(tmp_path):
    parser = ConfigParser()
    parser.read_config([str(f) for f in PIPELINE])
    assert parser["sseg_bundle_root"] is None  # no sibling-folder default: a bundle zip has no siblings
    with pytest.raises(Exception) as error:
        parser.get_parsed_content("sseg_config")
    assert "`sseg_bundle_root` is not set" in _error_text(error.value)
    assert "lge_mi_sr_segmentation" in _error_text(error.value)

    parser = ConfigParser()
    parser.read_config([str(f) for f in PIPELINE])
    parser["sseg_bundle_root"] = str(ROOT / "bundles" / "lge_mi_sr_segmentation")
    assert parser.get_parsed_content("sseg_scale") == 8
    assert parser.get_parsed_content("sseg_feature_size") == 48


def test_the_dti_pipeline_reads_the_sseg_overlays_it_was_trained_with():
    parser = ConfigParser()
    parser.read_config([str(f) for f in PIPELINE])
    parser["sseg_bundle_root"] = str(ROOT / "bundles" / "lge_mi_sr_segmentation")
    parser["sseg_overlays"] = ["configs/quick.json"]
    assert parser.get_parsed_content("sseg_feature_size") == 24
    assert parser.get_parsed_content("sseg_depths") == [2, 2, 2, 2]
    assert parser.get_parsed_content("sseg_scale") == 8  # from inference.json, which the overlay leaves
    assert parser.get_parsed_content("sseg_weights") == str(
        ROOT / "bundles" / "lge_mi_sr_segmentation" / "models" / "model.pt"
    )
