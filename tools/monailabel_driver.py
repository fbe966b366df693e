"""Run a MONAI bundle the way MONAI Label 0.8.5's ``BundleInferTask`` does, without installing MONAI Label.

MONAI Label (``monailabel/tasks/infer/bundle.py`` and ``basic_infer.py``, release 0.8.5) does not run a bundle's
``initialize``/``run`` lists. It reads single keys of ``configs/inference.json`` (or ``.yaml``) and runs them itself:

1. config: ``bundle_root`` is overwritten with the bundle folder, the folder goes first on ``sys.path`` and cached
   ``scripts`` modules are dropped; ``network_def`` is instantiated when ``models/model.pt`` exists (else
   ``models/model.ts`` is loaded with ``torch.jit.load``);
2. metadata: the first entry of ``network_data_format.inputs`` and of ``outputs`` give the image and prediction
   keys, but the infer task itself always uses ``image`` and ``pred`` (this driver requires those names); labels
   come from ``outputs.pred.channel_def`` (``{name.lower(): int(index)}``, ``background`` dropped); the task is 2D
   or 3D from ``len(inputs.image.spatial_shape)`` (3 when absent); the folder name picks the task type
   (``segmentation`` unless it names deepedit, deepgrow, detection or classification);
3. request: the data dictionary holds ``image`` (the file path), ``image_path`` (the same string), ``device`` and
   ``model_filename``; every ``LoadImaged`` in ``preprocessing`` (or ``pre_transforms``) is switched to
   ``image_only=False`` so that it also stores ``image_meta_dict``; ``device`` in the config is replaced by the
   device string; the transforms run one by one (no ``Compose``), and each adds a ``latencies`` entry;
4. inference: ``inferer`` (``SimpleInferer`` when absent) on ``image[None]`` with the network in ``eval`` mode; the
   checkpoint's ``"model"`` entry (or the whole file) is loaded with ``strict=False``, so missing keys only log a
   warning there. This driver raises instead (:func:`load_checkpoint_covering`);
5. ``postprocessing`` (or ``post_transforms``) without its ``SaveImaged``, then a restore step
   (:func:`restore_to_input`, MONAI Label's ``Restored``): nearest-neighbour resize to the last dimensions of the
   input's original ``spatial_shape``, a leading singleton channel dropped only from 4D results, and the input's
   ``original_affine`` as the result's affine;
6. the writer (``Writer`` with ``write_itk``): the array is written in its own axis order, with that affine only
   when the array has more than 2 dimensions, in the input's file extension. ITK is replaced here by nibabel,
   which writes the same voxel order and affine for NIfTI (:func:`write_like_monailabel`).

Known clash reproduced by step 3: with monai 1.6.x, ``Spacingd`` calls ``.update()`` on every data key that starts
with ``image_``, and ``image_path`` is a string, so it fails with ``AttributeError``.

Usage (from the repository root)::

    python -m tools.monailabel_driver bundles/<name> image.nii.gz --out prediction_dir
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import nibabel as nib
import numpy as np
import torch
from monai.bundle import ConfigItem, ConfigParser
from monai.data import MetaTensor, decollate_batch
from monai.inferers import SimpleInferer
from monai.transforms import Compose, LoadImaged, Resize, SaveImaged

__all__ = [
    "MONAILABEL_VERSION",
    "CONFIG_NAMES",
    "infer_type",
    "bundle_labels",
    "bundle_dimension",
    "load_checkpoint_covering",
    "restore_to_input",
    "write_like_monailabel",
    "run_like_bundle_infer_task",
    "main",
]

MONAILABEL_VERSION = "0.8.5"
CONFIG_NAMES = ("inference.json", "inference.yaml")
_PRE_KEYS = ("preprocessing", "pre_transforms")
_POST_KEYS = ("postprocessing", "post_transforms")
_IMAGE_KEY = "image"
_PRED_KEY = "pred"
_TYPE_ORDER = ("deepedit", "deepgrow", "detection", "segmentation", "classification")


def infer_type(bundle_name: str) -> str:
    """Task type MONAI Label derives from a bundle folder name.

    The first of deepedit, deepgrow, detection, segmentation, classification found in the lower-cased name, else
    segmentation.

    Examples::

        infer_type("spleen_ct_segmentation")  # "segmentation"
        infer_type("lung_nodule_ct_detection")  # "detection"
        infer_type("pathology_nuclei_segmentation_classification")  # "segmentation"
    """
    name = bundle_name.lower()
    for kind in _TYPE_ORDER:
        if kind in name:
            return kind
    return "segmentation"


def bundle_labels(metadata: dict, bundle_type: str = "segmentation") -> dict[str, int]:
    """``{name.lower(): int(index)}`` from ``network_data_format.outputs``' first entry, ``background`` dropped.

    Args:
        metadata: the parsed ``configs/metadata.json``.
        bundle_type: deepedit bundles keep ``background`` (MONAI Label's rule).

    Raises:
        ValueError: a ``channel_def`` key that is not an integer.

    Examples::

        bundle_labels({"network_data_format": {"outputs": {"pred": {"channel_def": {"0": "background", "1": "MI"}}}}})
        # {"mi": 1}
    """
    outputs = metadata.get("network_data_format", {}).get("outputs", {})
    pred = next(iter(outputs.values()), {})
    labels: dict[str, int] = {}
    for index, name in pred.get("channel_def", {}).items():
        if name.lower() == "background" and bundle_type != "deepedit":
            continue
        try:
            labels[name.lower()] = int(index)
        except ValueError as err:
            raise ValueError(f"channel_def key {index!r} ({name}) must be an integer channel index.") from err
    return labels


def bundle_dimension(metadata: dict) -> int:
    """2 or 3 as MONAI Label reads it (and tells its clients): ``len(spatial_shape)`` of the first input, else 3."""
    inputs = metadata.get("network_data_format", {}).get("inputs", {})
    spatial_shape = next(iter(inputs.values()), {}).get("spatial_shape")
    return len(spatial_shape) if spatial_shape else 3


def load_checkpoint_covering(network: torch.nn.Module, model_path: str | os.PathLike, device: str) -> torch.nn.Module:
    """Load ``model_path`` as MONAI Label does (``strict=False``), but raise unless every key matches.

    The checkpoint may be a plain ``state_dict`` or a dict with a ``"model"`` entry (MONAI Label's
    ``model_state_dict`` default, also what ``CheckpointLoader(load_dict={"model": ...})`` accepts).

    Raises:
        ValueError: keys only in the network or only in the checkpoint; the message names the file and some keys.
    """
    checkpoint = torch.load(model_path, map_location=torch.device(device), weights_only=True)
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    expected, found = set(network.state_dict()), set(state)
    if expected != found:
        missing, unexpected = sorted(expected - found), sorted(found - expected)
        raise ValueError(
            f"{model_path}: checkpoint keys do not cover network_def (MONAI Label loads with strict=False and would "
            f"run with random weights there): {len(missing)} missing {missing[:5]}, "
            f"{len(unexpected)} unexpected {unexpected[:5]}."
        )
    network.load_state_dict(state, strict=False)
    return network


def restore_to_input(data: dict, key: str = _PRED_KEY, ref_image: str = _IMAGE_KEY) -> dict:
    """MONAI Label's restore step: back to the input's original spatial shape and affine.

    The reference metadata is ``data[ref_image].meta`` (a ``MetaTensor``) or ``data[f"{ref_image}_meta_dict"]``.
    A channel-first result ``(C, *current)`` is resized (nearest neighbour) to the LAST ``len(current)`` entries
    of the reference's ``spatial_shape`` (the shape as loaded from the file) when they differ; a 4D result with one
    channel loses that channel, a 3D one keeps it; ``data[f"{key}_meta_dict"]["affine"]`` becomes the reference's
    ``original_affine``.

    Examples::

        # a (1, 512, 512) prediction for a (64, 64, 1) NIfTI becomes (1, 64, 1): spatial_shape[-2:] is (64, 1)
    """
    d = dict(data)
    reference = d.get(ref_image)
    meta = reference.meta if isinstance(reference, MetaTensor) else d.get(f"{ref_image}_meta_dict", {})
    result = d[key]
    current = tuple(result.shape[1:])
    spatial_shape = meta.get("spatial_shape", current)
    spatial_size = tuple(int(s) for s in spatial_shape[-len(current) :])
    if current != spatial_size:
        result = Resize(spatial_size=spatial_size, mode="nearest")(result)
    d[key] = result if len(result.shape) <= 3 else result[0] if result.shape[0] == 1 else result
    pred_meta = d.get(f"{key}_meta_dict")
    if pred_meta is None:
        pred_meta = d[f"{key}_meta_dict"] = {}
    pred_meta["affine"] = meta.get("original_affine")
    return d


def write_like_monailabel(data: dict, output_dir: str | os.PathLike, key: str = _PRED_KEY) -> Path:
    """Write ``data[key]`` as MONAI Label's default writer does, for NIfTI (nibabel in place of ITK).

    Array axes are written in their own order (a ``(1, H, W)`` result becomes a ``1 x H x W`` image) with the
    affine ``data[f"{key}_meta_dict"]["affine"]`` (falling back to the ``MetaTensor``'s) only when the array has
    more than 2 dimensions; the extension is the input's (``image_path``).

    Raises:
        ValueError: not a NIfTI input, or a multi-channel 4D result (MONAI Label writes ``.seg.nrrd`` there).
    """
    path = str(data.get("image_path", ""))
    ext = "".join(s for s in Path(path).suffixes if len(s) <= 10)
    if ext.lower() not in (".nii", ".nii.gz"):
        raise ValueError(f"image_path {path!r}: this driver writes NIfTI only, got extension {ext!r}.")
    value = data[key]
    array = value.array if isinstance(value, MetaTensor) else np.asarray(value)
    if array.ndim == 4 and array.shape[0] > 1:
        raise ValueError(f"{key}: multi-channel result {array.shape}; MONAI Label writes it as .seg.nrrd.")
    meta = data.get(f"{key}_meta_dict") or {}
    affine = meta.get("affine")
    if affine is None and isinstance(value, MetaTensor):
        affine = value.affine
    affine = np.asarray(affine, dtype=np.float64) if affine is not None and array.ndim > 2 else np.eye(4)
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    out = Path(output_dir) / f"{key}{ext}"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(array), affine), str(out))
    return out


def _run_transforms(data: dict, transforms: Sequence[Callable], stage: str) -> dict:
    """Call each transform on its own (MONAI Label's ``run_transforms(use_compose=False)``), timing it in data."""
    for transform in transforms:
        start = time.time()
        data = transform(data)
        latencies = data.setdefault("latencies", {}).setdefault(stage, {})
        latencies[type(transform).__name__] = round(time.time() - start, 4)
    return data


def _transform_list(parser: ConfigParser, keys: Sequence[str]) -> list:
    found: list = []
    for k in keys:  # MONAI Label loops over both names without stopping: the last one present wins
        if parser.get(k):
            content = parser.get_parsed_content(k, instantiate=True)
            found = list(content.transforms) if isinstance(content, Compose) else list(content)
    return found


def _use_device(parser: ConfigParser, device: str) -> None:
    parser.config.update({"device": device})
    if parser.ref_resolver.items.get("device"):
        parser.ref_resolver.items["device"] = ConfigItem(config=device, id="device")


@contextmanager
def _bundle_on_path(bundle_dir: str) -> Iterator[None]:
    """Bundle folder first on ``sys.path`` and cached ``scripts`` modules dropped; both restored afterwards."""
    cached = {m: sys.modules.pop(m) for m in list(sys.modules) if m == "scripts" or m.startswith("scripts.")}
    sys.path.insert(0, bundle_dir)
    try:
        yield
    finally:
        if bundle_dir in sys.path:
            sys.path.remove(bundle_dir)
        for m in [m for m in sys.modules if m == "scripts" or m.startswith("scripts.")]:
            del sys.modules[m]
        sys.modules.update(cached)


def _check_metadata_keys(metadata: dict, meta_file: Path) -> None:
    fmt = metadata.get("network_data_format", {})
    first_in = next(iter(fmt.get("inputs", {})), None)
    first_out = next(iter(fmt.get("outputs", {})), None)
    if (first_in, first_out) != (_IMAGE_KEY, _PRED_KEY):
        raise ValueError(
            f"{meta_file}: network_data_format's first input/output are {first_in!r}/{first_out!r}; MONAI Label's "
            f"infer task reads data['{_IMAGE_KEY}'] and writes data['{_PRED_KEY}']."
        )


def _check_loads_image(pre: list, config_file: Path) -> None:
    first = pre[0] if pre else None
    if not isinstance(first, LoadImaged) or _IMAGE_KEY not in first.keys:
        raise ValueError(
            f"{config_file}: preprocessing must start with LoadImaged on '{_IMAGE_KEY}' (MONAI Label passes the "
            f"image as a file path), got {type(first).__name__}."
        )


def run_like_bundle_infer_task(
    bundle_dir: str | os.PathLike,
    image_path: str | os.PathLike,
    device: str = "cpu",
    output_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Infer one image with a bundle as MONAI Label 0.8.5's ``BundleInferTask`` does (steps in the module doc).

    Args:
        bundle_dir: bundle folder (``configs/``, ``models/model.pt`` or ``models/model.ts``).
        image_path: a NIfTI file (``.nii``/``.nii.gz``).
        device: torch device string.
        output_dir: where to keep the written prediction (``pred.nii.gz``); a temporary folder when None.

    Returns:
        ``(prediction, affine, labels)``: the array and 4x4 affine of the file MONAI Label's writer would return to
        the client (read back with nibabel), and the label dict the task advertises.

    Raises:
        FileNotFoundError: no inference config or no model file (the message names the bundle).
        ValueError: a segmentation path MONAI Label would not take, metadata keys other than image/pred,
            preprocessing not starting with ``LoadImaged`` on ``image``, or checkpoint keys not covering
            ``network_def``.

    Examples::

        pred, affine, labels = run_like_bundle_infer_task("bundles/lge_mi_sr_segmentation", "case.nii.gz")
    """
    bundle = Path(bundle_dir).resolve()
    configs = [bundle / "configs" / c for c in CONFIG_NAMES if (bundle / "configs" / c).is_file()]
    if not configs:
        raise FileNotFoundError(f"{bundle}: no configs/{' or configs/'.join(CONFIG_NAMES)}; MONAI Label ignores it.")
    config_file, meta_file = configs[0], bundle / "configs" / "metadata.json"
    bundle_type = infer_type(bundle.name)
    if bundle_type != "segmentation":
        raise ValueError(
            f"{bundle.name}: MONAI Label treats it as a {bundle_type} bundle; this driver covers segmentation."
        )

    with _bundle_on_path(str(bundle)):
        parser = ConfigParser()
        parser.read_config(str(config_file))
        parser.config.update({"bundle_root": str(bundle)})
        parser.config["use_click"] = False

        network = None
        model_path = bundle / "models" / "model.pt"
        if model_path.is_file():
            network = parser.get_parsed_content("network_def", instantiate=True)
        else:
            model_path = bundle / "models" / "model.ts"
            if not model_path.is_file():
                raise FileNotFoundError(
                    f"{bundle}: neither models/model.pt nor models/model.ts; MONAI Label ignores it."
                )

        metadata = json.loads(meta_file.read_text())
        _check_metadata_keys(metadata, meta_file)
        labels = bundle_labels(metadata, bundle_type)

        image = str(Path(image_path).resolve())
        model_files = sorted((p.name for p in (bundle / "models").glob("*.pt")), key=len)
        data: dict[str, Any] = {"device": device, "model_filename": model_files, "image": image, "image_path": image}

        _use_device(parser, device)
        pre = _transform_list(parser, _PRE_KEYS)
        _check_loads_image(pre, config_file)
        for t in pre:
            if isinstance(t, LoadImaged):
                t._loader.image_only = False
        data = _run_transforms(data, pre, "pre")

        _use_device(parser, device)
        inferer = parser.get_parsed_content("inferer", instantiate=True) if parser.get("inferer") else None
        inferer = inferer if inferer is not None else SimpleInferer()
        if network is not None:
            network = load_checkpoint_covering(copy.deepcopy(network).to(torch.device(device)), model_path, device)
        else:
            network = torch.jit.load(str(model_path), map_location=torch.device(device))
        network.eval()
        inputs = data[_IMAGE_KEY]
        inputs = (inputs if torch.is_tensor(inputs) else torch.from_numpy(inputs))[None].to(torch.device(device))
        with torch.no_grad():
            outputs = inferer(inputs, network)
        data[_PRED_KEY] = decollate_batch(outputs)[0] if isinstance(outputs, dict) else outputs[0]

        _use_device(parser, device)
        post = [t for t in _transform_list(parser, _POST_KEYS) if not isinstance(t, SaveImaged)]
        post.append(lambda d: restore_to_input(d, _PRED_KEY, _IMAGE_KEY))
        data = _run_transforms(data, post, "post")

    with tempfile.TemporaryDirectory() as tmp:
        written = write_like_monailabel(data, output_dir if output_dir is not None else tmp)
        result = nib.load(str(written))
        return np.asarray(result.dataobj), np.asarray(result.affine), labels


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m tools.monailabel_driver BUNDLE IMAGE [--out DIR] [--device cpu]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("image")
    parser.add_argument("--out", default=".", help="folder for pred.nii(.gz)")
    parser.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    pred, affine, labels = run_like_bundle_infer_task(args.bundle, args.image, args.device, args.out)
    print(f"labels {labels}; prediction {pred.shape} values {np.unique(pred).tolist()}; affine\n{affine}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
