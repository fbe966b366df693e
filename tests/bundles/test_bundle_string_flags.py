"""Boolean settings given on the command line: `monai.bundle run --overwrite false` passes the STRING "false" (fire
parses only Python's `False`), which Python takes as true. Every place a bundle reads a boolean setting goes through
`common.flags.as_flag`, or is a consumer that does; the consumers are checked with the string itself."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from bundle_test_utils import bundle_scripts
from common.flags import as_flag
from common.handlers import ResumeFromLatest
from common.inference import plan_outputs
from common.transforms import SelfSRPatchesd, SliceSRPairsd

BUNDLES_DIR = Path(__file__).resolve().parents[2] / "bundles"
BUNDLES = sorted(p for p in BUNDLES_DIR.iterdir() if (p / "configs" / "metadata.json").is_file())
#: set by the multi-GPU overlays from the process rank, never by a user
DERIVED = {"is_main_process"}
#: (target, argument) that receive a boolean setting whole and read it with as_flag themselves (tested below)
READ_WITH_AS_FLAG = {
    ("common.handlers.ResumeFromLatest", "enabled"),
    ("common.inference.FolderInputs", "overwrite"),
    ("scripts.clinical.ClinicalReport", "overwrite"),
    ("scripts.ssl_data.hybrid_lge_slices", "use_public_data"),
    ("common.transforms.SelfSRPatchesd", "use_label"),
    ("common.transforms.SliceSRPairsd", "use_label"),
}
#: functions called from config expressions that read their boolean arguments with as_flag (tested below)
CALLS_READING_AS_FLAG = (
    "scripts.centroids.write_centroids(",
    "scripts.evaluate.evaluate(",
    "scripts.generate.write_synthetic_set(",
    "scripts.pseudo_hr.write_pseudo_hr(",
    "scripts.cases.check_ablation(",
)


def _strings(node, parent=None, key=None):
    """(string, the dict holding it, its key) for every string in a config."""
    if isinstance(node, dict):
        for k, value in node.items():
            yield from _strings(value, node, k)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value, parent, None)
    elif isinstance(node, str):
        yield node, parent, key


#: what the command line may pass for a boolean setting, and Python's own values (a list: False and 0 are equal keys)
FLAG_VALUES = [("false", False), ("False", False), (" 0", False), ("no", False), ("off", False), ("true", True),
               ("TRUE", True), ("1", True), ("yes", True), ("on", True), (True, True), (False, False),
               (0, False)]  # fmt: skip


@pytest.mark.parametrize("value, expected", FLAG_VALUES)
def test_as_flag_reads_command_line_strings(value, expected):
    assert as_flag(value, "overwrite") is expected


@pytest.mark.parametrize("value", ["maybe", None, 2, 0.5])
def test_as_flag_refuses_other_values_naming_the_setting(value):
    with pytest.raises(ValueError, match=rf"overwrite must be true or false, got {value!r}"):
        as_flag(value, "overwrite")


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_every_boolean_setting_is_read_with_as_flag(bundle):
    configs = {p.name: json.loads(p.read_text()) for p in sorted((bundle / "configs").glob("*.json"))}
    flags = {k for c in configs.values() if isinstance(c, dict) for k, v in c.items() if isinstance(v, bool)}
    flags = {k for k in flags if "#" not in k} - DERIVED
    assert flags, f"{bundle.name}: no boolean setting found"
    raw = []
    for name, config in configs.items():
        for text, holder, key in _strings(config):
            for match in re.finditer(r"@(\w+)\b", text):
                flag = match.group(1)
                if flag not in flags or f"as_flag(@{flag}, '{flag}')" in text:
                    continue
                target = holder.get("_target_") if isinstance(holder, dict) else None
                if text == f"@{flag}" and (target, key) in READ_WITH_AS_FLAG:
                    continue
                if text.startswith("$") and any(call in text for call in CALLS_READING_AS_FLAG):
                    continue
                raw.append(f"{name}: {key}: {text[:80]}")
    assert not raw, f"{bundle.name}: boolean settings read without common.flags.as_flag: {raw}"


def test_consumers_read_the_string_false_as_false(tmp_path):
    assert ResumeFromLatest(tmp_path, load_dict={"x": object()}, enabled="false").enabled is False
    assert SelfSRPatchesd(use_label="false").use_label is False
    assert SliceSRPairsd(use_label="false").use_label is False
    existing = tmp_path / "case_seg.nii.gz"
    existing.write_bytes(b"")
    with pytest.raises(FileExistsError):
        plan_outputs([{"image": str(tmp_path / "in" / "case.nii.gz")}], str(tmp_path), "seg", overwrite="false")
    with bundle_scripts(BUNDLES_DIR / "cine_lge_synthesis_segmentation"):
        from scripts.clinical import ClinicalReport
        from scripts.evaluate import evaluate

        assert ClinicalReport(str(tmp_path), overwrite="false").overwrite is False
        (tmp_path / "summary.json").write_text("{}")
        with pytest.raises(FileExistsError, match="summary.json"):
            evaluate(None, [], str(tmp_path), overwrite="false")


def test_writers_refuse_to_replace_with_the_string_false(tmp_path):
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "centroids.pt").write_bytes(b"")
    with bundle_scripts(BUNDLES_DIR / "brain_mri_super_resolution_transmrsr"):
        from scripts.centroids import write_centroids

        with pytest.raises(FileExistsError, match="centroids.pt"):
            write_centroids(None, "prior.pt", str(earlier / "centroids.pt"), overwrite="false")
    with bundle_scripts(BUNDLES_DIR / "lge_cardiac_segmentation_munit"):
        from scripts.generate import write_synthetic_set

        with pytest.raises(FileExistsError, match="already holds a synthetic set"):
            write_synthetic_set([{"case": "a"}], (None, None), None, str(earlier), overwrite="false")
    with bundle_scripts(BUNDLES_DIR / "thick_slice_hr_segmentation_rehrseg"):
        from scripts.pseudo_hr import pseudo_hr_paths, write_pseudo_hr

        first = next(iter(pseudo_hr_paths(str(earlier), "case").values()))
        Path(first).write_bytes(b"")
        with pytest.raises(FileExistsError, match="earlier SR"):
            write_pseudo_hr([{"case": "case"}], None, None, str(earlier), scale=4, overwrite="false")
        from scripts.smore_like import smore_like_paths, write_smore_like_dataset

        Path(smore_like_paths(str(earlier), "case")["image"]).parent.mkdir()
        Path(smore_like_paths(str(earlier), "case")["image"]).write_bytes(b"")
        with pytest.raises(FileExistsError, match="image-only SR"):
            write_smore_like_dataset([{"case": "case"}], None, str(earlier), scale=4, overwrite="false")
