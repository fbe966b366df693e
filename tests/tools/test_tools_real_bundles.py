"""The real bundles under ``bundles/``: ``tools.verify_bundles`` passes, and the packaged zip runs on its own.

Every folder under ``bundles/`` is a test case (a folder without ``configs/metadata.json`` fails, it is not
skipped), with the bundle's own smallest networks (``configs/tiny.json``) so that the checks stay fast; the
metadata's declared shapes are still checked, and the scale (output size / input size) comes from them. Nothing
here reads or writes a bundle's ``models/``, ``outputs/`` or ``eval/``: verify redirects them, and the zip is built
from a copy of the bundle without them. The zip test is the model zoo's round trip (issue 11): ``tools.package`` builds
``<name>_v<version>.zip``, and the unzipped bundle, with this repository off ``sys.path``, passes
``verify_metadata``, ``verify_net_in_out``, ``ckpt_export`` and one folder inference through ``python -m
monai.bundle``'s own entry point (its ``__main__``, the four in one interpreter).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from tools import package
from tools import verify_bundles as vb

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLES_DIR = REPO_ROOT / "bundles"
INPUT_SPACING = (2.5, 2.5, 8.0)


BUNDLE_NAMES = sorted(p.name for p in BUNDLES_DIR.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def _bundle(name: str) -> tuple[Path, dict]:
    """The bundle folder and its tiny-network overrides (``configs/tiny.json``, which every bundle must have)."""
    bundle = BUNDLES_DIR / name
    meta = bundle / "configs" / "metadata.json"
    assert meta.is_file(), f"bundles/{name} has no configs/metadata.json: every folder under bundles/ is a bundle"
    return bundle, vb.tiny_overrides(bundle)


def _scale(bundle: Path) -> int:
    """Output size / input size of ``network_def``, from the metadata's concrete shapes (one factor for all axes).

    An input with one more leading axis than the output (a 2D+T cine network: time first) is compared on its last
    axes."""
    image, pred = _io(bundle)
    inputs = image["spatial_shape"][len(image["spatial_shape"]) - len(pred["spatial_shape"]) :]
    factors = {o // i for i, o in zip(inputs, pred["spatial_shape"])}
    assert len(factors) == 1, f"{bundle.name}: one scale for every axis, got {factors}"
    assert all(o % i == 0 for i, o in zip(inputs, pred["spatial_shape"]))
    return factors.pop()


#: MONAI Label 0.8.5's BundleInferTask on an unzipped bundle, in a process without this repository on the path;
#: `monailabel.transform.post` imports torchvision.utils, which cannot import beside the CPU torch: a stand-in
_MONAILABEL_TASK = """
import sys, types
utils = types.ModuleType("torchvision.utils")
utils.make_grid = utils.save_image = None
torchvision = types.ModuleType("torchvision")
torchvision.utils = utils
sys.modules.update({"torchvision": torchvision, "torchvision.utils": utils})
from monailabel.tasks.infer.bundle import BundleInferTask
task = BundleInferTask(sys.argv[1], {})
assert task.is_valid(), "MONAI Label refused the bundle"
result_file, _ = task({"image": sys.argv[2], "device": "cpu"})
import nibabel, common
print("MONAILABEL_RESULT", tuple(nibabel.load(result_file).shape), common.__file__)
"""


#: the bundle commands, each exactly as ``python -m monai.bundle <argv>`` runs it (``runpy`` executes MONAI's
#: ``__main__``, whose ``fire.Fire()`` reads ``sys.argv``), one after another in one interpreter: MONAI is imported
#: once instead of once per command (about 8 s of CPU each). Each command's output sits between its markers.
_BUNDLE_COMMANDS = """
import json, runpy, sys, traceback
for name, argv in json.loads(sys.argv[1]).items():
    print("BUNDLE_COMMAND_START", name, flush=True)
    sys.argv = ["monai.bundle", *argv]
    try:
        runpy.run_module("monai.bundle", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    print("BUNDLE_COMMAND_END", name, code, flush=True)
"""


def _split_bundle_commands(output: str, names: list[str]) -> dict[str, tuple[int | None, str]]:
    """{name: (exit code, its output)} from a :data:`_BUNDLE_COMMANDS` log; a command that never ended (the
    interpreter died in it) or never started has code None and the log's tail (or nothing) as its output."""
    results = {}
    for name in names:
        match = re.search(
            rf"^BUNDLE_COMMAND_START {name}\n(.*?)^BUNDLE_COMMAND_END {name} (-?\d+)$", output, re.S | re.M
        )
        if match:
            results[name] = (int(match.group(2)), match.group(1))
        else:
            started = f"BUNDLE_COMMAND_START {name}\n" in output
            results[name] = (None, output.split(f"BUNDLE_COMMAND_START {name}\n", 1)[1] if started else "")
    return results


def _copy_without_user_folders(bundle: Path, dest: Path) -> Path:
    """A copy of the bundle without ``models/``, ``outputs/``, ``eval/`` (a user's trained files stay unread)."""

    def ignore(folder: str, names: list[str]) -> list[str]:
        top = Path(folder) == bundle
        return [n for n in names if n == "__pycache__" or (top and n in vb.USER_FOLDERS)]

    return Path(shutil.copytree(bundle, dest / bundle.name, ignore=ignore))


def _export_args(bundle: Path, input_shape: list[int]) -> list[str]:
    """``ckpt_export`` arguments: traced when the bundle gives a reason in ``docs/torchscript_exclude.txt``."""
    if not (bundle / vb.EXPORT_EXCLUDE_FILE).is_file():
        return []
    shape = json.dumps(input_shape).replace(" ", "")
    return ["--use_trace", "True", "--input_shape", shape, "--converter_kwargs", "{'check_trace': False}"]


def _io(bundle: Path) -> tuple[dict, dict]:
    io = json.loads((bundle / "configs" / "metadata.json").read_text())["network_data_format"]
    return io["inputs"]["image"], io["outputs"]["pred"]


def _cli_overrides(overrides: dict) -> list[str]:
    args = []
    for key, value in overrides.items():
        args += [f"--{key}", json.dumps(value).replace(" ", "")]
    return args


def test_bundle_folders_exist():
    assert "lge_mi_sr_segmentation" in BUNDLE_NAMES


# ----------------------------------------------------------------------------------------------- model zoo CI checks
@pytest.mark.slow
@pytest.mark.parametrize("name", BUNDLE_NAMES)
def test_inference_workflow_properties_without_data(name, tmp_path):
    """The zoo's ``create_workflow(workflow_type="inference")`` + ``check_properties()``, with a ``dataset_dir``
    that does not exist: reading ``inference.json`` must not list (or create) any folder before ``run``."""
    bundle, tiny = _bundle(name)
    vb._quiet_monai_logging()
    result = vb.check_properties(bundle, overrides=tiny)
    assert result.status == "PASS", result.detail


@pytest.mark.parametrize("name", BUNDLE_NAMES)
def test_metadata_pins_are_the_installed_versions(name):
    """``monai_version``, ``pytorch_version``, ``numpy_version`` and ``required_packages_version`` are the versions
    installed here (the zoo's CI installs exactly these), so drift fails."""
    from importlib.metadata import version

    metadata = json.loads((BUNDLES_DIR / name / "configs" / "metadata.json").read_text())
    pins = {"monai": metadata["monai_version"], "torch": metadata["pytorch_version"]}
    pins.update({"numpy": metadata["numpy_version"], **metadata["required_packages_version"]})
    installed = {dist: version(dist).split("+", 1)[0] for dist in pins}
    assert pins == installed
    assert vb.check_version_pins(BUNDLES_DIR / name).status == "PASS"


@pytest.mark.parametrize("name", BUNDLE_NAMES)
def test_zip_lists_no_training_state_and_no_placeholder(name, tmp_path):
    """No ``large_files.yml`` with training-resume checkpoints or placeholder URLs: with no hosted weights, none
    at all; with a URL, only the inference weights."""
    bundle, _ = _bundle(name)
    assert vb.check_large_files(bundle).status == "PASS"
    copy = _copy_without_user_folders(bundle, tmp_path / "src")
    (copy / "models" / "train_state").mkdir(parents=True)
    (copy / "models" / "train_state" / "checkpoint_epoch=100.pt").write_bytes(b"resume state")
    (copy / "models" / "model.pt").write_bytes(b"weights")
    with zipfile.ZipFile(package.package_bundle(copy, tmp_path / "plain")) as zf:
        names = zf.namelist()
    assert f"{name}/large_files.yml" not in names and not [n for n in names if n.endswith(".pt")]
    url = "https://github.com/owner/repo/releases/download/v1/model.pt"
    with zipfile.ZipFile(package.package_bundle(copy, tmp_path / "url", weights_urls={"models/model.pt": url})) as zf:
        text = zf.read(f"{name}/large_files.yml").decode()
    assert "models/model.pt" in text and url in text and "_state" not in text


# ----------------------------------------------------------------------------------------------- (a) verify_bundles
@pytest.mark.slow
@pytest.mark.parametrize("name", BUNDLE_NAMES)
def test_verify_bundle_passes(name, tiny_data):
    bundle, tiny = _bundle(name)
    vb._quiet_monai_logging()
    report = vb.verify_bundle(bundle, data_root=tiny_data, overrides=tiny)
    statuses = {r.name: (r.status, r.detail) for r in report.results}
    assert not report.failed, vb.format_table([report])
    assert [r.name for r in report.results] == [
        "metadata",
        "pins",
        "large_files",
        "net_in_out",
        "export",
        "properties",
        "configs",
    ]
    assert statuses["metadata"][0] == "PASS"

    image, pred = _io(bundle)
    if all(isinstance(d, int) for d in image["spatial_shape"] + pred["spatial_shape"]):
        # the declared shapes, not merely "some" shape, went through the (tiny) network
        expected_in = (1, image["num_channels"], *image["spatial_shape"])
        expected_out = (1, pred["num_channels"], *pred["spatial_shape"])
        assert statuses["net_in_out"] == ("PASS", f"{expected_in} -> {expected_out}")
        assert _scale(bundle) >= 1
    assert statuses["export"][0] in ("PASS", "SKIP")
    assert statuses["configs"][0] in ("PASS", "WARN")
    for line in statuses["configs"][1].splitlines():  # WARN only for weights or data that an earlier stage writes
        if ": WARN" in line:
            assert "needs " in line and re.search(r"\.(pt|pth|ts|nii\.gz)\b", line), line


@pytest.mark.slow
def test_verify_bundle_overrides_reach_every_check():
    """An override that breaks the network must break net_in_out and export, not be ignored."""
    bundle = BUNDLES_DIR / "lge_mi_sr_segmentation"
    broken = {"feature_size": 12, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2], "num_classes": 3}
    result, probe = vb.check_net_in_out(bundle, overrides=broken)
    assert result.status == "FAIL" and probe is None
    assert "`outputs.pred.num_channels` 2" in result.detail
    export = vb.check_export(bundle, [1, 1, 64, 64], overrides={"encoder": "no_such_encoder"})
    assert export.status == "FAIL" and "building network_def" in export.detail
    assert "no_such_encoder" in export.detail


# ----------------------------------------------------------------------------------------------- verify_bundles fixes
def _fake_bundle(root: Path, configs: dict, metadata_shape=(16, 16)) -> Path:
    bundle = root / "fake"
    (bundle / "configs").mkdir(parents=True)
    meta = json.loads((BUNDLES_DIR / "lge_mi_sr_segmentation" / "configs" / "metadata.json").read_text())
    meta["network_data_format"]["inputs"]["image"]["spatial_shape"] = list(metadata_shape)
    (bundle / "configs" / "metadata.json").write_text(json.dumps(meta))
    for config_name, content in configs.items():
        (bundle / "configs" / config_name).write_text(json.dumps(content))
    return bundle


def test_multi_gpu_stage_goes_over_its_layered_combo(tmp_path):
    bundle = _fake_bundle(
        tmp_path,
        {
            "train.json": {"initialize": [], "run": []},
            "train_segmentor.json": {"initialize": [], "run": []},
            "multi_gpu_train_segmentor.json": {"initialize": []},
            "layers.json": {"combos": [["train.json", "train_segmentor.json"]]},
        },
    )
    assert vb.config_combinations(bundle) == [
        ["train.json", "train_segmentor.json", "multi_gpu_train_segmentor.json"],
        ["train.json"],
        ["train.json", "train_segmentor.json"],
    ]


def test_config_check_points_data_keys_at_the_data_root(tmp_path):
    data = tmp_path / "data"
    (data / "ACDC" / "training").mkdir(parents=True)
    config = {
        "imports": ["$import os", "$import glob", "$import nibabel as nib"],
        "bundle_root": ".",
        "data_root": "$os.path.join(@bundle_root, '..', 'nowhere')",
        "acdc": "$os.path.join(@data_root, 'ACDC', 'training')",
        "acdc_exists": "$os.path.isdir(@acdc) or (_ for _ in ()).throw(FileNotFoundError(@acdc))",
        # no default dataset has this folder: an inference folder gets one random image of inputs.image
        "dataset_dir": "$os.path.join(@bundle_root, '..', 'data', 'SOME_INPUTS_lowres')",
        "images": "$sorted(glob.glob(os.path.join(@dataset_dir, '*.nii.gz')))",
        "shape": "$[nib.load(f).shape for f in @images]",
        "check": "$@shape == [(16, 16, 1)] or (_ for _ in ()).throw(ValueError(str(@shape)))",
        "initialize": [],
    }
    bundle = _fake_bundle(tmp_path, {"inference.json": config})
    result = vb.check_configs(bundle, data)
    assert result.status == "PASS", result.detail

    (tmp_path / "other_data").mkdir()  # no ACDC there: `data_root` really points at the given data
    result = vb.check_configs(bundle, tmp_path / "other_data")
    assert result.status == "FAIL" and "`acdc_exists`" in result.detail
    assert str(tmp_path / "other_data" / "ACDC" / "training") in result.detail


# ----------------------------------------------------------------------------------------------- (b) zip round trip
def _run_all(commands: dict[str, list[str]], cwd: Path, env: dict, logs: Path, timeout: int = 240) -> dict:
    """Start every command at once (2 cores: mostly import time), wait, return {name: (returncode, output)}."""
    procs = {}
    for name, command in commands.items():
        log = open(logs / f"{name}.log", "w")
        procs[name] = (subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT), log)
    results = {}
    deadline = time.monotonic() + timeout
    for name, (proc, log) in procs.items():
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        results[name] = (proc.returncode, (logs / f"{name}.log").read_text())
    return results


@pytest.mark.slow
@pytest.mark.parametrize("name", BUNDLE_NAMES)
def test_packaged_bundle_runs_without_the_repository(name, tmp_path):
    from monai.bundle import ConfigParser

    bundle, tiny = _bundle(name)
    version = json.loads((bundle / "configs" / "metadata.json").read_text())["version"]
    zip_path = package.package_bundle(_copy_without_user_folders(bundle, tmp_path / "copy"), tmp_path / "dist")
    assert zip_path.name == f"{name}_v{version}.zip"

    unzipped = tmp_path / "unzipped"
    unzipped.mkdir()
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(unzipped)
    assert sorted(p.name for p in unzipped.iterdir()) == [name]
    root = unzipped / name
    schema = shutil.copy(vb.SCHEMA_PATH, tmp_path / vb.SCHEMA_PATH.name)

    # tiny weights for the tiny network, built from the unzipped inference.json
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    parser["bundle_root"] = str(root)
    for key, value in tiny.items():
        parser[key] = value
    net = parser.get_parsed_content("network_def").eval()
    (root / "models").mkdir(exist_ok=True)
    torch.save(net.state_dict(), root / "models" / "model.pt")

    image, _ = _io(bundle)
    # the smallest input the tiny network takes (symbolic sizes such as "2**p" resolved as the zoo's check does)
    probe = vb.probe_spatial_shape(net, json.loads((bundle / "configs" / "metadata.json").read_text()))
    spatial = tuple(probe["input_shape"][2:])  # (H, W) of a 2D network, (X, Y, Z) of a 3D one, (T, H, W) of a 2D+T
    # a 2D+T (cine) network, one whose inference.json has `n_frames`: its first axis is time, and its input file is a
    # 4D (X, Y, slices, frames) NIfTI
    frames = parser.get("n_frames")
    plane = spatial[1:] if frames else spatial
    height, width = plane[:2]
    # per-axis output/input factor (an in-plane SR network: s, s; a through-plane HR segmenter: 1, 1, s)
    scales = tuple(o // i for i, o in zip(plane, probe["output_shape"][2:]))
    scale = scales[0]
    # the input volume written to disk: one slice, or the fewest a bundle that takes stacks accepts (`min_slices`)
    grid = plane if len(plane) == 3 else (height, width, int(parser.get("min_slices", 1)))
    out_grid = tuple(n * f for n, f in zip(grid, scales + (1,) * (3 - len(scales))))
    # MONAI's verify_net_in_out takes the symbols' values (its defaults, p = n = 1, give 2x2 inputs)
    symbol_args = [f"--{k}" if k != "*" else "--any" for k in probe["values"]]
    symbol_args = [a for key, v in zip(symbol_args, probe["values"].values()) for a in (key, str(v))]
    data, out, logs, temporary = tmp_path / "data", tmp_path / "out", tmp_path / "logs", tmp_path / "tmp"
    for folder in (data, logs, temporary):
        folder.mkdir()
    pixels = np.random.default_rng(0).random(grid + ((spatial[0],) if frames else ())).astype(np.float32)
    # the input file is named as the bundle's `file_pattern` expects (e.g. `*_LGE.nii.gz` picks MS-CMRSeg's LGE)
    input_name = str(parser.get_parsed_content("file_pattern")).replace("*", "case_001", 1)
    nib.save(nib.Nifti1Image(pixels, np.diag([*INPUT_SPACING, 1.0])), str(data / input_name))

    # `-S`: no site processing (no editable-install finder, no .pth reaching this repository); PYTHONPATH holds
    # only site-packages (monai, torch, ...): a user who installed the required packages and unzipped the bundle
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "TMPDIR": str(temporary),  # MONAI Label writes its result file there: not left behind in /tmp
        "PYTHONPATH": sysconfig.get_paths()["purelib"],
        "OMP_NUM_THREADS": "1",
    }
    meta, config = ["--meta_file", "configs/metadata.json"], ["--config_file", "configs/inference.json"]
    tiny_args = _cli_overrides(tiny)
    export_args = _export_args(root, [1, image["num_channels"], *spatial])
    # the arguments of `python -m monai.bundle`, as the zoo's checks and a user's inference give them
    bundle_commands = {
        "verify_metadata": ["verify_metadata", *meta, "--filepath", str(schema)],
        "verify_net_in_out": ["verify_net_in_out", "--net_id", "network_def", *meta, *config, *tiny_args, *symbol_args],
        "ckpt_export": ["ckpt_export", "--net_id", "network_def", "--filepath", "models/model.ts"]
        + ["--ckpt_file", "models/model.pt", *meta, *config, *export_args, *tiny_args],
        "inference": ["run", *config, "--dataset_dir", str(data), "--output_dir", str(out), *tiny_args],
    }
    # `-v` logs every imported file: proof of which `common` the commands used; `-u`: the markers stay in order
    commands = {"bundle": [sys.executable, "-S", "-u", "-v", "-c", _BUNDLE_COMMANDS, json.dumps(bundle_commands)]}
    if "segmentation" in name and importlib.util.find_spec("monailabel") is not None:
        # the way the README tells users: the unzipped bundle in a MONAI Label app, this repository off the path
        # (MONAI Label takes no overrides: the tiny network goes into the unzipped inference.json itself)
        config_file = root / "configs" / "inference.json"
        config_file.write_text(json.dumps({**json.loads(config_file.read_text()), **tiny}, indent=4))
        image_file = str(data / input_name)
        commands["monailabel"] = [sys.executable, "-S", "-c", _MONAILABEL_TASK, str(root), image_file]
    results = _run_all(commands, cwd=root, env=env, logs=logs)
    log = results.pop("bundle")[1]
    results.update(_split_bundle_commands(log, list(bundle_commands)))
    for step, (code, output) in results.items():
        assert code == 0, f"{step} failed in the unzipped bundle:\n{output[-4000:]}"
    assert "metadata is verified with no error" in results["verify_metadata"][1]
    assert "data shape of network is verified with no error" in results["verify_net_in_out"][1]
    assert "exported to file" in results["ckpt_export"][1]

    # the vendored `common` was imported (by the first command that built the network), and nothing from this
    # repository, by any of the commands
    imported = set(re.findall(r"(/\S+?)/common/__init__\.py", log))
    imported = {p for p in imported if "site-packages" not in p}
    assert imported == {str(root)}, imported
    assert str(REPO_ROOT / "common") not in log

    if "monailabel" in results:  # the labels came back on the input grid, through the vendored `common`
        # (MONAI Label restores every result to the grid of the image the user sees, an HR segmenter's too)
        assert f"MONAILABEL_RESULT {grid} {root / 'common' / '__init__.py'}" in results["monailabel"][1]

    # the exported TorchScript gives the eager network's output
    x = torch.rand(1, image["num_channels"], *spatial)
    with torch.no_grad():
        expected = net(x)
        exported = torch.jit.load(str(root / "models" / "model.ts"))(x)
    assert exported.shape == expected.shape == (1, expected.shape[1], *(n * f for n, f in zip(plane, scales)))
    torch.testing.assert_close(exported, expected, rtol=1e-3, atol=1e-4)

    # one inference: the output exists, in-plane `scale` times larger, over the same field of view (a through-plane
    # SR bundle also splits the 8 mm slice into thinner ones: the extent along every axis is what is kept); a bundle
    # may write more outputs beside it (e.g. an LGE-equivalent image beside a segmentation)
    postfix = parser.get_parsed_content("output_postfix")
    written = sorted(out.glob(f"*_{postfix}.nii.gz"))
    assert [p.name for p in written] == [input_name.replace(".nii.gz", f"_{postfix}.nii.gz")]
    result = nib.load(str(written[0]))
    assert result.shape[:2] == (scale * height, scale * width)
    np.testing.assert_allclose(result.header.get_zooms()[:2], np.array(INPUT_SPACING[:2]) / scale, rtol=1e-5)
    if len(plane) == 3:  # a through-plane network: every axis has its own factor
        assert result.shape[:3] == out_grid
    shape, zooms = result.shape[:3], result.header.get_zooms()[:3]  # a squeezed 2D output keeps the input's slice
    extent = np.array(shape + (1,) * (3 - len(shape))) * np.array(zooms + tuple(INPUT_SPACING[len(zooms) :]))
    np.testing.assert_allclose(extent, np.array(grid) * np.array(INPUT_SPACING), rtol=1e-5)


def test_bundle_commands_log_splits_per_command_and_a_command_that_died_has_no_exit_code():
    log = (
        "import noise\nBUNDLE_COMMAND_START verify_metadata\nmetadata is verified with no error\n"
        "BUNDLE_COMMAND_END verify_metadata 0\nBUNDLE_COMMAND_START ckpt_export\nTraceback ...\n"
        "BUNDLE_COMMAND_END ckpt_export 1\nBUNDLE_COMMAND_START inference\nSegmentation fault\n"
    )
    results = _split_bundle_commands(log, ["verify_metadata", "ckpt_export", "inference", "never_started"])
    assert results["verify_metadata"] == (0, "metadata is verified with no error\n")
    assert results["ckpt_export"] == (1, "Traceback ...\n")
    assert results["inference"] == (None, "Segmentation fault\n")  # the interpreter died inside it: a failure
    assert results["never_started"] == (None, "")


def test_override_option_parses_json_values(capsys):
    parsed = vb._parse_overrides(["feature_size=12", "depths=[1,1,1,1]", "encoder=swin", "lr=1e-4"])
    assert parsed == {"feature_size": 12, "depths": [1, 1, 1, 1], "encoder": "swin", "lr": 1e-4}
    assert vb.main(["--override", "feature_size"]) == 1
    assert "--override 'feature_size': expected KEY=VALUE" in capsys.readouterr().out
