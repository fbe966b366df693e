"""tools.folder_batching: the stand-in folder, the output checks, the report, and every declaring bundle's whole
inference run at one file per batch and at its config's value (tiny networks): batching changes no output and
makes fewer batches. No timing is asserted."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from common.inference import geometry_key

from tools import folder_batching as fb
from tools.benchmark import REPO_ROOT

SPEC = {"file_shape": [16, 12, 1], "pixdim": [2.5, 2.5, 8.0], "files": 4, "values": [1, 2]}
DECLARING = sorted(b.name for b in (REPO_ROOT / "bundles").iterdir() if fb.folder_spec(b))


def _bundle(tmp_path, spec, name="throwaway_segmentation"):
    bundle = tmp_path / name
    (bundle / "scripts").mkdir(parents=True)
    (bundle / "scripts" / "benchmark.py").write_text(f"FOLDER_BATCH = {spec!r}\n")
    return bundle


def test_a_bundle_takes_part_by_its_own_literal_and_a_broken_one_is_refused(tmp_path):
    assert fb.folder_spec(_bundle(tmp_path, SPEC)) == SPEC
    assert fb.folder_spec(_bundle(tmp_path, {}, "none")) == {}
    for broken, match in [
        ({k: v for k, v in SPEC.items() if k != "pixdim"}, "lacks"),
        ({**SPEC, "values": [0, 2]}, "integers"),
        ({**SPEC, "files": 0}, "integers"),
        ({**SPEC, "pixdim": [2.5, 2.5]}, "pixdim"),
    ]:
        with pytest.raises(ValueError, match=match):
            fb.folder_spec(_bundle(tmp_path, broken, f"broken_{match}_{len(tmp_path.parts)}_{id(broken)}"))


def test_the_stand_in_files_share_one_grid_but_not_their_content_or_place(tmp_path):
    folder = fb.write_stand_in_folder(tmp_path / "in", [16, 12, 2, 5], [1.5, 1.5, 8.0], 3)
    paths = sorted(folder.glob("*.nii.gz"))
    assert [p.name for p in paths] == ["case_000.nii.gz", "case_001.nii.gz", "case_002.nii.gz"]
    assert len({geometry_key(p) for p in paths}) == 1
    images = [nib.load(p) for p in paths]
    assert images[0].shape == (16, 12, 2, 5) and np.allclose(images[0].header.get_zooms()[:3], [1.5, 1.5, 8.0])
    assert len({tuple(image.affine[:3, 3]) for image in images}) == 3
    data = [np.asarray(image.dataobj) for image in images]
    assert np.abs(data[0] - data[1]).max() > 100  # rings of other radii, not only other noise


def _write(folder, name, data, affine=None):
    folder.mkdir(exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), np.eye(4) if affine is None else affine), folder / name)


def test_outputs_are_compared_voxel_by_voxel_and_counted_per_kind(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        _write(folder, "case_000_seg.nii.gz", np.zeros((4, 4)))
        _write(folder, "case_001_seg.nii.gz", np.zeros((4, 4)))
        _write(folder, "case_000_syn.nii.gz", np.ones((4, 4)))
        _write(folder, "case_001_syn.nii.gz", np.full((4, 4), 2.0))
    assert fb.compare_outputs(a, b) == 0.0
    assert fb.distinct_outputs(a) == {"seg.nii.gz": 1, "syn.nii.gz": 2}
    _write(b, "case_001_syn.nii.gz", np.full((4, 4), 2.5))
    assert fb.compare_outputs(a, b) == pytest.approx(0.5)
    _write(b, "case_001_syn.nii.gz", np.full((4, 4), 2.0), np.diag([2.0, 1.0, 1.0, 1.0]))
    assert fb.compare_outputs(a, b) == float("inf")  # another affine
    (b / "case_001_syn.nii.gz").unlink()
    assert fb.compare_outputs(a, b) == float("inf")  # a missing output


def test_an_entry_under_another_allocator_mode_or_overlay_is_kept_beside_the_default_one():
    from tools.inference_batching import entry_name

    assert entry_name("b_segmentation", {"malloc": "threshold", "overlay": None}) == "b_segmentation"
    assert entry_name("b_segmentation", {"malloc": "heap"}) == "b_segmentation (malloc heap)"
    quick = {"malloc": "heap", "overlay": "quick.json"}
    assert entry_name("b_segmentation", quick) == "b_segmentation + quick.json (malloc heap)"


def test_the_report_names_each_value_the_configs_speed_up_the_check_and_the_memory(tmp_path):
    entry = {
        "key": "files_per_batch",
        "file_shape": [64, 64, 1],
        "files": 16,
        "overlay": None,
        "peak_rss_mb": {"1": 600.0, "4": 700.4},
        "max_output_difference": {"1": 0.0, "4": 2e-7},
        "distinct_outputs": {"mask.nii.gz": 16},
        "summary": fb.summarize({1: [3.2], 4: [1.6]}, 16, 4),
        "threads": 2,
        "machine": "a CPU",
        "malloc": "heap",
        "commit": "abc1234",
        "date": "2026-12-05",
    }
    quick = {**entry, "overlay": "quick.json"}
    fb.write_report({fb.entry_name("b_segmentation", entry): entry}, tmp_path)
    fb.write_report({fb.entry_name("b_segmentation", quick): quick}, str(tmp_path))  # a str folder too
    keys = {"b_segmentation (malloc heap)", "b_segmentation + quick.json (malloc heap)"}
    assert set(json.loads((tmp_path / "folder_batching.json").read_text())) == keys  # the overlay's run kept beside
    rows = [line for line in (tmp_path / "folder_batching.md").read_text().splitlines() if "_segmentation" in line]
    assert rows[0].startswith("| b_segmentation (malloc heap) |")
    assert rows[1].startswith("| b_segmentation + quick.json (malloc heap) |")
    assert "| 1: 0.2, **4: 0.1** (config) | 1.00 | 2.00 | 2e-07 | mask.nii.gz 16/16 | 600 / 700 | heap |" in rows[0]


@pytest.mark.slow
@pytest.mark.parametrize("bundle", DECLARING)
def test_batching_files_changes_no_output_of_the_bundles_whole_inference_run(bundle, tmp_path):
    # one file per batch against the config's value, one process each (a third value, 3, cost ~10 s a bundle and
    # batched the three files as every config's value, 4 to 16, does)
    entry = fb.time_bundle(
        REPO_ROOT / "bundles" / bundle, rounds=1, overlay="tiny.json", files=3, values=[1], warmup=False
    )
    config = entry["summary"]["config_value"]
    assert config > 1 and entry["batches"] == {"1": 3, str(config): -(-3 // config)}  # three files of one grid
    assert all(d is not None and d < 1e-4 for d in entry["max_output_difference"].values()), entry
    assert entry["distinct_outputs"] and all(0 < n <= 3 for n in entry["distinct_outputs"].values())
