"""Model-zoo style checks of every bundle in ``bundles/``: metadata, network in/out, TorchScript export, configs.

Usage (from the repository root)::

    python -m tools.verify_bundles                       # every bundles/<name> with configs/metadata.json
    python -m tools.verify_bundles --bundles lge_mi_sr_segmentation --skip-export
    python -m tools.verify_bundles --data-root data      # reuse data written by `python -m tools.make_data`
    python -m tools.verify_bundles --override feature_size=12 --override depths=[1,1,1,1]   # tiny networks

Per bundle, seven checks, printed as a PASS/FAIL table (exit status 1 on any FAIL):

``metadata``
    ``monai.bundle.verify_metadata(meta_file, filepath=tools/schema/meta_schema_20240725.json)``; the schema file
    is in the repository, and MONAI skips its download when ``filepath`` exists, so nothing is downloaded (this
    tool refuses to call it when the file is missing). Then the checks JSON schema cannot express: ``version`` is
    semver and a key of ``changelog``; the ``schema`` URL names ``meta_schema_20240725.json``.
``pins``
    ``monai_version``, ``pytorch_version``, ``numpy_version`` and every ``required_packages_version`` entry of the
    metadata equal the installed versions (``importlib.metadata``; a local suffix such as ``+cpu`` is ignored):
    the model zoo's CI installs exactly these pins (``ci/get_bundle_requirements.py``), so they must be the
    versions the bundle is tested with here. ``optional_packages_version`` entries are compared when installed.
``large_files``
    A bundle's own ``large_files.yml``/``.yaml``/``.json`` lists only inference weights (``models/model.pt``,
    ``models/model.ts``; never training state), with the zoo's fields and real http(s) URLs, no placeholder
    (``tools.package.large_files_problems``). Without one, PASS: ``tools.package`` writes one only for weights
    given a URL.
``net_in_out``
    Builds ``network_def`` from ``configs/inference.json`` (bundle root on ``sys.path`` and as the working
    directory, so ``$import scripts`` works) and feeds a random tensor of ``inputs.image`` (channels, dtype,
    ``spatial_shape``). Symbolic sizes (``"8*n"``, ``"2**p"``, ``"*"``) take the smallest values for which the
    forward pass runs (see :func:`probe_spatial_shape`). The output must have ``outputs.pred.num_channels``
    channels, ``outputs.pred.dtype`` and ``outputs.pred.spatial_shape``. Then MONAI's own
    ``monai.bundle.verify_net_in_out(net_id="network_def", ...)`` runs with the same ``p``/``n``/``any``.

    Spatial-shape convention: ``outputs.pred.spatial_shape`` is evaluated with the same variables as the input,
    so either store concrete numbers (``[64, 64]`` in, ``[512, 512]`` out for an 8x SR net) or expressions
    (``["8*n", "8*n"]`` in, ``["64*n", "64*n"]`` out); a ``"*"`` entry is not checked.
``export``
    ``monai.bundle.ckpt_export`` of ``network_def`` to TorchScript in a temporary folder, with MONAI's output
    comparison (``verify=True``), of the ``state_dict`` of a freshly initialised ``network_def`` (a user's
    ``models/model.pt`` is never read: it may belong to other settings than the checked ones). As the model zoo's
    CI: ``torch.jit.script``; PASS when it scripts. A network that cannot be scripted FAILs unless the bundle
    says why in ``docs/torchscript_exclude.txt`` (non-empty; a zoo pull request puts the bundle in
    ``exclude_verify_torchscript_list`` of ``ci/bundle_custom_data.py`` with that reason): then the export is
    traced at ``inputs.image``'s shape and the check is SKIP (the zoo skips it) when the traced model matches the
    eager one, FAIL when tracing fails too. The file beside a network that scripts is a FAIL (a stale reason).
``properties``
    What the model zoo's ``ci/verify_bundle.py`` does for an inference config:
    ``monai.bundle.create_workflow(workflow_type="inference", ...)`` then ``check_properties()`` must return no
    missing property, with ``dataset_dir`` set to a folder that does not exist (the zoo has no data) and
    ``ckpt_dir`` at fresh weights of ``network_def`` (the zoo downloads the weights first). Neither ``dataset_dir``
    nor ``output_dir`` may be created: reading the config must not touch the data. WARN when ``inference.json``
    lacks a required inference property (``dataset``, ``evaluator``, ...: the zoo checks them only for bundles that
    list ``supported_apps``), SKIP without ``configs/inference.json``; ``--skip-configs`` skips it too.
``configs``
    Every config combination is parsed with ``ConfigParser`` (``%`` macros resolved), every ``@`` reference
    must exist, every ``_target_`` must import, and no import statement may name several modules
    (``$import a, b``: MONAI imports only ``a``, see :func:`_static_check`). Then
    ``initialize`` and every other top-level key except ``run``/``finalize`` are resolved (objects built,
    nothing run), with ``bundle_root`` set to the bundle's absolute path, ``dataset_dir`` pointed at a tiny
    default dataset (``common.data.write_default_data(tmp, small=True)``, or ``--data-root``; the sub-folder
    whose path is a suffix of the configured one, e.g. ``.../DTI_LGE_MI``; when none matches, e.g. an inference
    folder ``.../DTI_LGE_MI_lowres`` that a bundle's prepare script writes, a temporary folder holding one random
    NIfTI image of ``inputs.image``'s shape), a ``data_root`` key at the data root itself, and ``output_dir``/
    ``log_dir``/``ckpt_dir`` at a temporary folder. Any other top-level path key that points into a bundle's user
    folders (``models/``, ``outputs/``, ``eval/`` of this or a sibling bundle, e.g. another bundle's weights) is
    redirected to the same relative path under the temporary folder: a user's trained weights, outputs and
    evaluations are never read or written, so the check gives the same result before and after training.
    A key that fails only because a weights file (``.pt``, ``.pth``, ``.ts``, ...) does not exist yet (a later
    training stage needs an earlier one) gives WARN, not FAIL. Keys broken by the same root cause are reported
    together.

    Combinations: each ``configs/*.json`` alone when it has ``initialize`` or ``run``, except overlays:
    ``evaluate.json`` and ``multi_gpu_*.json`` are checked layered over ``train.json``
    (``multi_gpu_inference.json`` over ``inference.json``; ``multi_gpu_<stage>.json`` over ``<stage>.json``
    when that file exists). An optional ``configs/layers.json`` ``{"combos": [["train.json", "x.json"], ...]}``
    adds combinations, and a file listed after the first place of a combo there is checked only in those combos
    (not alone, nor over its default base: e.g. ``["inference.json", "evaluate.json"]``);
    ``multi_gpu_<stage>.json`` then goes over every such combo ending with ``<stage>.json``.
    ``multi_gpu_*`` combinations are resolved as a single process (``RANK=0``, ``WORLD_SIZE=1``, a free
    ``MASTER_PORT``); the process group is destroyed afterwards.

``--tiny`` applies each bundle's ``configs/tiny.json`` (the smallest networks that run, the overlay tests use) as
overrides, under any ``--override``.

What bundle configs must contain to pass: ``configs/metadata.json`` valid against the schema,
``configs/inference.json`` with ``network_def``, configs that resolve with only ``bundle_root``/``dataset_dir``
/``output_dir``/``ckpt_dir`` overridden.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import itertools
import json
import os
import re
import socket
import sys
import tempfile
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

__all__ = [
    "SCHEMA_PATH",
    "CheckResult",
    "BundleReport",
    "find_bundles",
    "check_metadata",
    "verify_metadata_file",
    "probe_spatial_shape",
    "check_net_in_out",
    "check_export",
    "check_version_pins",
    "check_large_files",
    "check_properties",
    "config_combinations",
    "check_configs",
    "verify_bundle",
    "user_folders",
    "tiny_overrides",
    "main",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "meta_schema_20240725.json"
EXPORT_EXCLUDE_FILE = Path("docs") / "torchscript_exclude.txt"
WEIGHT_SUFFIXES = (".pt", ".pth", ".ts", ".ckpt", ".onnx", ".safetensors")
OVERRIDDEN_DIR_KEYS = ("output_dir", "ckpt_dir", "log_dir")
USER_FOLDERS = ("models", "outputs", "eval", "synthetic")
TINY_OVERLAY = Path("configs") / "tiny.json"
# a config string that names a user folder as a path part: 'models', "eval", /outputs/
_USER_FOLDER_PATTERN = re.compile(r"""['"/\\](?:%s)['"/\\]""" % "|".join(USER_FOLDERS))
DATA_KEYS = ("dataset_dir", "data_root")
#: `dist_finalize` is a `finalize` step (it destroys the process group that later keys of a multi-GPU combo need)
SKIPPED_TOP_LEVEL_KEYS = ("_meta_", "imports", "initialize", "run", "finalize", "dist_finalize")
PASS, FAIL, SKIP, WARN = "PASS", "FAIL", "SKIP", "WARN"
# sizes tried for symbolic spatial dims: "x*n" (n), "x**p" (p), "*" (any)
_N_VALUES = tuple(range(1, 65))
_P_VALUES = tuple(range(1, 9))
_ANY_VALUES = (1, 2, 4, 8, 16, 32, 64, 128)
_MAX_PROBES = 24
_MAX_PROBE_ELEMENTS = 1 << 18  # largest tried input: 512 x 512 or 64 x 64 x 64


@dataclass
class CheckResult:
    """Outcome of one check: ``status`` is PASS, FAIL, SKIP or WARN; ``detail`` says why."""

    name: str
    status: str
    detail: str = ""


@dataclass
class BundleReport:
    """All check results of one bundle."""

    name: str
    path: Path
    results: list[CheckResult] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(r.status == FAIL for r in self.results)

    def result(self, name: str) -> CheckResult | None:
        return next((r for r in self.results if r.name == name), None)


# ----------------------------------------------------------------------------------------------- helpers
def find_bundles(
    bundles_dir: str | os.PathLike = REPO_ROOT / "bundles", names: Sequence[str] | None = None
) -> list[Path]:
    """Bundle folders (those with ``configs/metadata.json``) under ``bundles_dir``, sorted by name.

    Raises:
        FileNotFoundError: naming the bundle when one of ``names`` has no ``configs/metadata.json``.
    """
    root = Path(bundles_dir)
    if names:
        found = []
        for name in names:
            path = root / name
            if not (path / "configs" / "metadata.json").is_file():
                raise FileNotFoundError(f"bundle `{name}`: {path / 'configs' / 'metadata.json'} does not exist.")
            found.append(path)
        return found
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / "configs" / "metadata.json").is_file())


def _purge_modules(prefixes: Sequence[str]) -> None:
    for name in list(sys.modules):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            del sys.modules[name]


@contextlib.contextmanager
def bundle_context(bundle_dir: Path) -> Iterator[Path]:
    """Run with the bundle root as working directory and first on ``sys.path``; forget its ``scripts`` after.

    Every bundle has its own ``scripts`` package, so ``scripts`` is removed from ``sys.modules`` before and after
    (as MONAI Label does with ``unload_module("scripts")``).
    """
    root = Path(bundle_dir).resolve()
    old_cwd = os.getcwd()
    _purge_modules(["scripts"])
    sys.path.insert(0, str(root))
    os.chdir(root)
    try:
        yield root
    finally:
        os.chdir(old_cwd)
        with contextlib.suppress(ValueError):
            sys.path.remove(str(root))
        _purge_modules(["scripts"])


def _short_error(exc: BaseException, limit: int = 600) -> str:
    """One-line summary of an exception and its causes."""
    parts = []
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = " ".join(str(current).split())
        parts.append(f"{type(current).__name__}: {text}" if text else type(current).__name__)
        current = current.__cause__ or current.__context__
    message = " <- ".join(parts)
    return message if len(message) <= limit else message[: limit - 3] + "..."


def _missing_weights(exc: BaseException) -> str | None:
    """The earlier stage's output (``common.checkpoint.MissingStageOutputError``) or weights file named by a
    ``FileNotFoundError`` in the exception chain, if any."""
    from common.checkpoint import MissingStageOutputError

    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MissingStageOutputError):
            return current.path
        if isinstance(current, FileNotFoundError):
            candidates = [str(current.filename)] if current.filename else []
            candidates += str(current).replace('"', " ").replace("'", " ").split()
            for word in candidates:
                if word.rstrip(".,:;)").endswith(WEIGHT_SUFFIXES):
                    return word.rstrip(".,:;)")
        current = current.__cause__ or current.__context__
    return None


def _unset_bundle_root(exc: BaseException) -> str | None:
    """The message of a ``common.bundle_root.BundleRootNotSetError`` in the exception chain, if any: the config
    chains another bundle whose folder must be given (a bundle never reaches for a sibling), so WARN, not FAIL."""
    from common.bundle_root import BundleRootNotSetError

    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, BundleRootNotSetError):
            return str(current)
        current = current.__cause__ or current.__context__
    return None


def _load_json(path: Path) -> Any:
    with open(path) as f:
        return json.load(f)


# ----------------------------------------------------------------------------------------------- (a) metadata
def verify_metadata_file(meta_file: str | os.PathLike, schema_file: str | os.PathLike = SCHEMA_PATH) -> None:
    """Validate a ``metadata.json`` against the project schema with MONAI, plus the checks the schema cannot do.

    Args:
        meta_file: path of the bundle's ``configs/metadata.json``.
        schema_file: local JSON schema; it must exist, so that ``monai.bundle.verify_metadata`` downloads nothing.

    Raises:
        FileNotFoundError: naming ``schema_file`` or ``meta_file`` when missing.
        ValueError: with MONAI's message (e.g. ``'version' is a required property``) or naming the key
            (``version`` not a key of ``changelog``, ``schema`` URL of another schema).
    """
    from monai.bundle import verify_metadata

    schema_file = Path(schema_file)
    if not schema_file.is_file():
        raise FileNotFoundError(f"schema file {schema_file} is missing (it must exist, or MONAI would download one).")
    meta_file = Path(meta_file)
    if not meta_file.is_file():
        raise FileNotFoundError(f"metadata file {meta_file} does not exist.")
    verify_metadata(meta_file=str(meta_file), filepath=str(schema_file))

    metadata = _load_json(meta_file)
    version = metadata["version"]
    if version not in metadata["changelog"]:
        raise ValueError(
            f"`version` {version!r} is not a key of `changelog` (keys: {sorted(metadata['changelog'])}) in {meta_file}."
        )
    if not str(metadata["schema"]).endswith(schema_file.name):
        raise ValueError(f"`schema` URL {metadata['schema']!r} in {meta_file} does not name {schema_file.name}.")


def check_metadata(bundle_dir: Path, schema_file: str | os.PathLike = SCHEMA_PATH) -> CheckResult:
    """Run :func:`verify_metadata_file` on ``<bundle_dir>/configs/metadata.json``."""
    try:
        verify_metadata_file(Path(bundle_dir) / "configs" / "metadata.json", schema_file)
    except Exception as e:  # noqa: BLE001 - reported in the table
        return CheckResult("metadata", FAIL, _short_error(e))
    return CheckResult("metadata", PASS, "schema, semver, version in changelog")


# ----------------------------------------------------------------------------------------------- (b) net in/out
_ALLOWED_NODES = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Pow,
    ast.FloorDiv,
    ast.USub,
    ast.UAdd,
)


def _dim_variables(dim: int | str) -> set[str]:
    if isinstance(dim, bool) or not isinstance(dim, (int, str)):
        raise ValueError(f"spatial_shape entries must be int or str, got {dim!r}.")
    if isinstance(dim, int):
        return set()
    if dim.strip() == "*":
        return {"*"}
    tree = ast.parse(dim.strip(), mode="eval")
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ValueError(f"spatial_shape entry {dim!r}: only + - * ** // on ints and the variables p, n.")
        if isinstance(node, ast.Name):
            if node.id not in ("p", "n"):
                raise ValueError(f"spatial_shape entry {dim!r}: unknown variable {node.id!r} (only p and n).")
            names.add(node.id)
    return names


def _eval_dim(dim: int | str, values: dict[str, int]) -> int | None:
    """Evaluate one spatial_shape entry; ``None`` for an unchecked ``"*"`` when ``values`` has no ``"*"``."""
    if isinstance(dim, int):
        return dim
    if dim.strip() == "*":
        return values.get("*")
    _dim_variables(dim)  # validates the expression

    def _eval(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return _eval(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            return values[node.id]
        if isinstance(node, ast.UnaryOp):
            return -_eval(node.operand) if isinstance(node.op, ast.USub) else _eval(node.operand)
        if isinstance(node, ast.BinOp):
            left, right = _eval(node.left), _eval(node.right)
            if isinstance(node.op, ast.Add):
                return left + right
            if isinstance(node.op, ast.Sub):
                return left - right
            if isinstance(node.op, ast.Mult):
                return left * right
            if isinstance(node.op, ast.FloorDiv):
                if right == 0:
                    raise ValueError(f"spatial_shape entry {dim!r}: division by zero.")
                return left // right
            if right > 16:
                raise ValueError(f"spatial_shape entry {dim!r}: exponent too large.")
            return left**right
        raise ValueError(f"spatial_shape entry {dim!r} is not an integer expression.")

    return int(_eval(ast.parse(dim.strip(), mode="eval")))


def _probe_values(shape: Sequence[int | str]) -> list[dict[str, int]]:
    """Assignments of the variables used in ``shape``, smallest resulting input first."""
    names = sorted(set().union(*[_dim_variables(d) for d in shape])) if shape else []
    choices = {"n": _N_VALUES, "p": _P_VALUES, "*": _ANY_VALUES}
    candidates = []
    for combo in itertools.product(*[choices[name] for name in names]):
        values = dict(zip(names, combo))
        dims = [_eval_dim(d, values) for d in shape]
        if all(d is not None and d > 0 for d in dims):
            size = 1
            for d in dims:
                size *= d  # type: ignore[operator]
            if size <= _MAX_PROBE_ELEMENTS or not names:
                candidates.append((size, max(dims), combo, values))  # type: ignore[type-var]
    candidates.sort(key=lambda c: c[:3])
    unique, seen = [], set()
    for _, _, _, values in candidates:
        dims = tuple(_eval_dim(d, values) for d in shape)
        if dims not in seen:
            seen.add(dims)
            unique.append(values)
    return unique[:_MAX_PROBES]


def probe_spatial_shape(net: Any, metadata: dict, device: str = "cpu") -> dict[str, Any]:
    """Find the smallest valid input of ``inputs.image`` for ``net`` and check the output against ``outputs.pred``.

    Symbolic entries of ``inputs.image.spatial_shape`` are tried with ``n`` in 1..64, ``p`` in 1..8 and ``"*"`` in
    1, 2, 4, ..., 128, smallest input first, until the forward pass runs (at most 24 tries, inputs of at most
    2**18 elements; concrete shapes are always tried). The output must then
    have ``num_channels`` channels, the metadata ``dtype`` and the spatial shape ``outputs.pred.spatial_shape``
    evaluated with the same variables (``"*"`` entries are not checked).

    Args:
        net: the ``torch.nn.Module`` built from ``network_def``.
        metadata: the bundle's metadata dict.
        device: device for the forward pass.

    Returns:
        ``{"values": {"n": .., "p": .., "*": ..}, "input_shape": (1, C, ...), "output_shape": (...)}``.

    Raises:
        ValueError: naming the metadata key that the output contradicts, or when no tried input runs.
    """
    import torch
    from monai.utils import get_equivalent_dtype

    io = metadata["network_data_format"]
    image, pred = io["inputs"]["image"], io["outputs"]["pred"]
    in_dtype = get_equivalent_dtype(image["dtype"], torch.Tensor)
    out_dtype = get_equivalent_dtype(pred["dtype"], torch.Tensor)
    net = net.to(device).eval()
    errors = []
    for values in _probe_values(image["spatial_shape"]):
        spatial = tuple(_eval_dim(d, values) for d in image["spatial_shape"])
        shape = (1, int(image["num_channels"]), *spatial)
        x = torch.rand(shape, device=device).to(in_dtype)
        try:
            with torch.no_grad():
                out = net(x)
        except Exception as e:  # noqa: BLE001 - try the next size
            errors.append(f"input {shape}: {_short_error(e, 200)}")
            continue
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"network_def returned {type(out).__name__}, expected one tensor (`outputs.pred`).")
        if out.shape[1] != pred["num_channels"]:
            raise ValueError(
                f"output channels {out.shape[1]} != `outputs.pred.num_channels` {pred['num_channels']} "
                f"(input {shape})."
            )
        if out.dtype != out_dtype:
            raise ValueError(f"output dtype {out.dtype} != `outputs.pred.dtype` {pred['dtype']!r}.")
        expected = [_eval_dim(d, values) for d in pred["spatial_shape"]]
        got = tuple(out.shape[2:])
        if len(expected) != len(got) or any(e is not None and e != g for e, g in zip(expected, got)):
            raise ValueError(
                f"output spatial shape {got} != `outputs.pred.spatial_shape` {pred['spatial_shape']} "
                f"evaluated as {tuple(expected)} for input {shape} (variables {values})."
            )
        return {"values": values, "input_shape": shape, "output_shape": tuple(out.shape)}
    tried = "; ".join(errors[:1] + (["...", errors[-1]] if len(errors) > 1 else []))
    raise ValueError(
        f"no input of `inputs.image.spatial_shape` {image['spatial_shape']} runs ({len(errors)} tried): {tried}"
    )


def _build_parser(bundle_root: Path, config_files: Sequence[Path], overrides: dict | None = None) -> Any:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(f) for f in config_files])
    meta = bundle_root / "configs" / "metadata.json"
    if meta.is_file():
        parser.read_meta(str(meta))
    if "bundle_root" in parser.get():
        parser["bundle_root"] = str(bundle_root)
    for key, value in (overrides or {}).items():
        parser[key] = value
    return parser


def check_net_in_out(
    bundle_dir: Path, device: str = "cpu", overrides: dict[str, Any] | None = None
) -> tuple[CheckResult, dict | None]:
    """Spatial-shape probe plus ``monai.bundle.verify_net_in_out`` on ``network_def`` of ``inference.json``.

    Args:
        bundle_dir: the bundle folder.
        device: device for the forward passes.
        overrides: config ids and values set on top of ``inference.json`` (as ``--key value`` on MONAI's command
            line), e.g. small network hyper-parameters for a fast check; the metadata's shapes are still checked.

    Returns:
        The result and the probe (see :func:`probe_spatial_shape`), ``None`` when the check failed early.
    """
    from monai.bundle import verify_net_in_out

    bundle_dir = Path(bundle_dir).resolve()
    config_file = bundle_dir / "configs" / "inference.json"
    meta_file = bundle_dir / "configs" / "metadata.json"
    if not config_file.is_file():
        return CheckResult("net_in_out", FAIL, f"{config_file} does not exist"), None
    try:
        with bundle_context(bundle_dir):
            parser = _build_parser(bundle_dir, [config_file], overrides)
            net = parser.get_parsed_content("network_def")
            probe = probe_spatial_shape(net, _load_json(meta_file), device=device)
            values = probe["values"]
            verify_net_in_out(
                net_id="network_def",
                meta_file=str(meta_file),
                config_file=str(config_file),
                device=device,
                p=values.get("p", 1),
                n=values.get("n", 1),
                any=values.get("*", 1),
                **{"bundle_root": str(bundle_dir), **(overrides or {})},
            )
    except Exception as e:  # noqa: BLE001 - reported in the table
        return CheckResult("net_in_out", FAIL, _short_error(e)), None
    detail = f"{tuple(probe['input_shape'])} -> {tuple(probe['output_shape'])}"
    return CheckResult("net_in_out", PASS, detail), probe


# ----------------------------------------------------------------------------------------------- (c) export
def check_export(
    bundle_dir: Path,
    input_shape: Sequence[int] | None,
    device: str = "cpu",
    overrides: dict[str, Any] | None = None,
) -> CheckResult:
    """``monai.bundle.ckpt_export`` of ``network_def`` to a temporary ``model.ts``: scripted as the zoo's CI does.

    A network that cannot be scripted passes only through ``docs/torchscript_exclude.txt`` (the reason a zoo pull
    request gives for listing the bundle in ``exclude_verify_torchscript_list``): the export is then traced at
    ``input_shape`` and the result is SKIP with the reason, or FAIL when tracing fails too. The weights are always
    fresh ones of ``network_def`` (with ``overrides``, config ids and values on top of ``inference.json``): a user's
    ``models/model.pt`` is never read, so the check does not depend on training.
    """
    import torch

    bundle_dir = Path(bundle_dir).resolve()
    exclude_file = bundle_dir / EXPORT_EXCLUDE_FILE
    reason = " ".join(exclude_file.read_text().split()) if exclude_file.is_file() else None
    if reason == "":
        return CheckResult("export", FAIL, f"{EXPORT_EXCLUDE_FILE} is empty: it must give the reason")
    if input_shape is None:
        return CheckResult("export", FAIL, "no valid input shape (net_in_out failed)")
    with tempfile.TemporaryDirectory(prefix="verify_export_") as tmp, bundle_context(bundle_dir):
        try:
            net = _build_parser(bundle_dir, [bundle_dir / "configs" / "inference.json"], overrides).get_parsed_content(
                "network_def"
            )
            ckpt = Path(tmp) / "model.pt"
            torch.save(net.state_dict(), ckpt)
            source = "fresh weights" + (" (overridden network_def)" if overrides else "")
        except Exception as e:  # noqa: BLE001
            return CheckResult("export", FAIL, f"building network_def: {_short_error(e)}")
        scripted = _export(bundle_dir, ckpt, Path(tmp) / "model.ts", input_shape, False, device, overrides)
        if scripted is None:
            if reason is not None:
                return CheckResult(
                    "export", FAIL, f"the network scripts: delete {EXPORT_EXCLUDE_FILE} (its reason no longer holds)"
                )
            return CheckResult("export", PASS, f"scripted, {source}")
        if reason is None:
            return CheckResult(
                "export",
                FAIL,
                f"torch.jit.script failed ({scripted[:200]}); the model zoo's CI scripts network_def: make it "
                f"scriptable, or give the reason in {EXPORT_EXCLUDE_FILE} (a zoo PR lists the bundle in "
                "exclude_verify_torchscript_list) and document the traced export",
            )
        traced = _export(bundle_dir, ckpt, Path(tmp) / "model.ts", input_shape, True, device, overrides)
        if traced is not None:
            return CheckResult("export", FAIL, f"not scriptable ({reason}) and tracing failed: {traced}")
        return CheckResult("export", SKIP, f"{reason} (traced at {tuple(input_shape)}: matches eager, {source})")


def _export(
    bundle_dir: Path,
    ckpt: Path,
    filepath: Path,
    input_shape: Sequence[int],
    use_trace: bool,
    device: str,
    overrides: dict[str, Any] | None,
) -> str | None:
    """One ``ckpt_export`` (scripted or traced) and a reload; ``None`` on success, else the short error."""
    import torch
    from monai.bundle import ckpt_export

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            ckpt_export(
                net_id="network_def",
                filepath=str(filepath),
                ckpt_file=str(ckpt),
                meta_file=str(bundle_dir / "configs" / "metadata.json"),
                config_file=str(bundle_dir / "configs" / "inference.json"),
                input_shape=list(input_shape),
                use_trace=use_trace,
                # MONAI's verify compares eager and exported outputs, so torch.jit.trace's own check
                # (several more forward passes) is redundant
                converter_kwargs={
                    "verify": True,
                    "device": torch.device(device),
                    **({"check_trace": False} if use_trace else {}),
                },
                **{"bundle_root": str(bundle_dir), **(overrides or {})},
            )
        torch.jit.load(str(filepath), map_location=device)
    except Exception as e:  # noqa: BLE001
        return _short_error(e, 300)
    return None


# ----------------------------------------------------------------------------------------------- pins, large files
#: metadata key -> distribution name of the three pins every zoo metadata has
PINNED_DISTRIBUTIONS = {"monai_version": "monai", "pytorch_version": "torch", "numpy_version": "numpy"}


def _installed_version(distribution: str) -> str | None:
    """The installed version without a local suffix (``2.13.0+cpu`` -> ``2.13.0``), ``None`` when not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution).split("+", 1)[0]
    except PackageNotFoundError:
        return None


def _same_version(a: str, b: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def check_version_pins(bundle_dir: Path) -> CheckResult:
    """The metadata's version pins are the installed versions (see the module docstring, ``pins``)."""
    meta_file = Path(bundle_dir) / "configs" / "metadata.json"
    try:
        metadata = _load_json(meta_file)
    except (OSError, ValueError) as e:
        return CheckResult("pins", FAIL, f"reading {meta_file}: {_short_error(e)}")
    missing_keys = [key for key in PINNED_DISTRIBUTIONS if key not in metadata]
    if missing_keys:
        return CheckResult("pins", FAIL, f"metadata has no {missing_keys}")
    pins = [(f"`{key}`", dist, str(metadata[key])) for key, dist in PINNED_DISTRIBUTIONS.items()]
    for group in ("required_packages_version", "optional_packages_version"):
        for dist, pinned in (metadata.get(group) or {}).items():
            pins.append((f"`{group}#{dist}`", dist, str(pinned)))
    problems = []
    for where, dist, pinned in pins:
        installed = _installed_version(dist)
        if installed is None:
            if not where.startswith("`optional"):
                problems.append(f"{where} pins {dist}=={pinned}, which is not installed")
        elif not _same_version(installed, pinned):
            problems.append(f"{where} pins {dist}=={pinned}, installed {installed}")
    if problems:
        return CheckResult("pins", FAIL, "; ".join(problems) + " (pin the versions the bundle is tested with)")
    return CheckResult("pins", PASS, f"{len(pins)} pins = installed versions")


def check_large_files(bundle_dir: Path) -> CheckResult:
    """A bundle's own ``large_files.*`` lists only inference weights with real URLs (see the module docstring)."""
    import yaml

    from tools.package import large_files_problems

    found = sorted(p for p in Path(bundle_dir).glob("large_files.*") if p.suffix in (".yml", ".yaml", ".json"))
    if not found:
        return CheckResult("large_files", PASS, "none (tools.package writes one only for weights given a URL)")
    problems = []
    for path in found:
        try:
            with open(path) as f:
                content = json.load(f) if path.suffix == ".json" else yaml.safe_load(f)
        except (OSError, ValueError, yaml.YAMLError) as e:
            problems.append(f"{path.name}: unreadable ({_short_error(e, 200)})")
            continue
        problems += [f"{path.name}: {problem}" for problem in large_files_problems(content)]
    if problems:
        return CheckResult("large_files", FAIL, "; ".join(problems))
    return CheckResult("large_files", PASS, ", ".join(p.name for p in found))


# ----------------------------------------------------------------------------------------------- properties
def check_properties(bundle_dir: Path, overrides: dict[str, Any] | None = None) -> CheckResult:
    """``create_workflow(workflow_type="inference")`` + ``check_properties()`` with no data (see module docstring).

    Args:
        bundle_dir: the bundle folder.
        overrides: config ids and values set on top of ``inference.json`` (e.g. a bundle's ``tiny.json``).
    """
    import torch
    from monai.bundle import create_workflow
    from monai.utils import BundleProperty, BundlePropertyConfig

    bundle_dir = Path(bundle_dir).resolve()
    config_file = bundle_dir / "configs" / "inference.json"
    if not config_file.is_file():
        return CheckResult("properties", SKIP, "no configs/inference.json (the zoo checks only that workflow)")
    with tempfile.TemporaryDirectory(prefix="verify_properties_") as tmp, bundle_context(bundle_dir):
        work = Path(tmp)
        missing_data = work / "no_dataset_dir"
        output_dir = work / "output_dir"
        try:
            parser = _build_parser(bundle_dir, [config_file], overrides)
            torch.save(parser.get_parsed_content("network_def").state_dict(), work / "model.pt")
            kwargs: dict[str, Any] = {**(overrides or {}), "bundle_root": str(bundle_dir)}
            kwargs.update({"dataset_dir": str(missing_data), "output_dir": str(output_dir), "ckpt_dir": str(work)})
            kwargs.update(_user_path_redirects(_build_parser(bundle_dir, [config_file], kwargs), bundle_dir, work))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # create_workflow's security note on every config file
                workflow = create_workflow(
                    workflow_type="inference",
                    config_file=str(config_file),
                    meta_file=str(bundle_dir / "configs" / "metadata.json"),
                    logging_file=False,  # the zoo passes configs/logging.conf; it would reconfigure this process
                    **kwargs,
                )
                absent = [
                    name
                    for name, prop in (workflow.properties or {}).items()
                    if prop.get(BundleProperty.REQUIRED) and prop.get(BundlePropertyConfig.ID) not in workflow.parser
                ]
                if absent:  # check_properties() would raise a KeyError on the first one
                    return CheckResult(
                        "properties",
                        WARN,
                        f"inference.json lacks the required inference properties {absent} (the zoo checks them for "
                        "bundles that list `supported_apps`; MONAI Label needs them)",
                    )
                missing = workflow.check_properties()
        except Exception as e:  # noqa: BLE001 - reported in the table
            return CheckResult("properties", FAIL, f"with a dataset_dir that does not exist: {_short_error(e)}")
        touched = [p.name for p in (missing_data, output_dir) if p.exists()]
    if missing:
        return CheckResult("properties", FAIL, f"check_properties() names missing or wrong properties: {missing}")
    if touched:
        return CheckResult("properties", FAIL, f"reading the config created {touched}: it must wait for `run`")
    return CheckResult("properties", PASS, "create_workflow(inference) + check_properties() without data")


# ----------------------------------------------------------------------------------------------- (d) configs
def _overlay_base(name: str, available: set[str]) -> str | None:
    """The config an overlay file is layered over, or ``None`` for a standalone file."""
    if name == "evaluate.json":
        return "train.json"
    if name.startswith("multi_gpu_"):
        stage = name[len("multi_gpu_") :]
        if stage in available:
            return stage
        return "train.json"
    return None


def config_combinations(bundle_dir: Path) -> list[list[str]]:
    """The config combinations checked for a bundle, as lists of file names in ``configs/`` (see module doc)."""
    configs_dir = Path(bundle_dir) / "configs"
    names = sorted(p.name for p in configs_dir.glob("*.json") if p.name not in ("metadata.json", "layers.json"))
    available = set(names)
    extra: list[list[str]] = []
    layers = configs_dir / "layers.json"
    if layers.is_file():
        extra = [list(c) for c in _load_json(layers).get("combos", [])]
    layered_only = {f for combo in extra for f in combo[1:]}
    combos: list[list[str]] = []
    for name in names:
        base = _overlay_base(name, available)
        if base is not None and base in layered_only:
            # the stage itself is an overlay (layers.json): put this file over every combo that ends with it
            combos += [combo + [name] for combo in extra if combo[-1] == base]
        elif name in layered_only:
            continue  # layers.json says which configs this overlay goes over (e.g. evaluate.json over inference.json)
        elif base is not None:
            combos.append([base, name])
        elif name not in layered_only:
            content = _load_json(configs_dir / name)
            if isinstance(content, dict) and ("initialize" in content or "run" in content):
                combos.append([name])
    for combo in extra:
        if combo not in combos:
            combos.append(combo)
    return combos


def _data_dirs(data_root: Path) -> list[Path]:
    dirs = [data_root]
    for depth1 in sorted(p for p in data_root.iterdir() if p.is_dir()):
        dirs.append(depth1)
        dirs.extend(sorted(p for p in depth1.iterdir() if p.is_dir()))
    return dirs


def _match_dataset_dir(original: str, data_root: Path) -> Path:
    """The folder under ``data_root`` whose relative path is the longest suffix of ``original`` (else the root)."""
    parts = Path(os.path.normpath(original)).parts
    best, best_len = data_root, 0
    for candidate in _data_dirs(data_root):
        rel = candidate.relative_to(data_root).parts
        if rel and len(rel) > best_len and tuple(parts[-len(rel) :]) == rel:
            best, best_len = candidate, len(rel)
    return best


def _write_input_images(folder: Path, bundle_dir: Path) -> Path:
    """Write one random NIfTI image shaped as the metadata's ``inputs.image`` (smallest shape) into ``folder``.

    For an inference ``dataset_dir`` that no default dataset provides (e.g. 64x64 inputs written by a bundle's
    own prepare script): 2D shapes are stored as ``(H, W, 1)``, as the default datasets store slices; several
    channels go last.
    """
    import nibabel as nib
    import numpy as np

    image = _load_json(bundle_dir / "configs" / "metadata.json")["network_data_format"]["inputs"]["image"]
    values = _probe_values(image["spatial_shape"])
    if not values:
        raise ValueError(f"`inputs.image.spatial_shape` {image['spatial_shape']} gives no positive shape.")
    shape = [_eval_dim(d, values[0]) for d in image["spatial_shape"]]
    if len(shape) == 2:
        shape.append(1)
    if int(image.get("num_channels", 1)) > 1:
        shape.append(int(image["num_channels"]))
    folder.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(0).random(shape).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(folder / "random_input.nii.gz"))
    return folder


def _dataset_dir_for(original: str, data_root: Path, bundle_dir: Path, tmp: Path) -> Path:
    """``dataset_dir`` for the config check: the matching data folder, else a folder of one random input image.

    The data root itself is used when the configured folder is named ``data`` or as the data root.
    """
    matched = _match_dataset_dir(original, data_root)
    if matched != data_root or Path(os.path.normpath(original)).name in ("data", data_root.name):
        return matched
    return _write_input_images(tmp / "input_images", bundle_dir)


def _static_check(parser: Any) -> list[str]:
    """Missing ``@`` references, ``_target_`` values that do not import, and multi-name import statements.

    MONAI 1.6 evaluates ``"$import a.b, c"`` as ``import a.b`` only (with a warning) and binds the module under the
    key ``"a.b"``, so neither ``a`` nor ``c`` becomes a name usable in ``$`` expressions.
    """
    from pydoc import locate

    from monai.bundle import ConfigComponent, ConfigExpression
    from monai.bundle.reference_resolver import ReferenceResolver

    errors = []
    items = parser.ref_resolver.items
    for raw_id, item in items.items():
        item_id = str(raw_id).replace("::", "#")
        config = item.get_config()
        if isinstance(item, ConfigExpression) and item.is_import_statement(config):
            node = ast.parse(config[1:].strip()).body[0]
            if len(node.names) > 1:  # type: ignore[attr-defined]
                errors.append(
                    f"`{item_id}` {config!r}: MONAI imports only the first name of a multi-name import (bound as "
                    "the key 'a.b', not as 'a'); write `$import common` and one `$import common.<sub>` per line"
                )
        if isinstance(config, str):
            for ref in ReferenceResolver.match_refs_pattern(config):
                if ReferenceResolver.normalize_id(ref) not in items:
                    errors.append(f"`{item_id}` refers to `@{ref}`, which is not defined")
        if isinstance(item, ConfigComponent) and isinstance(config, dict) and not item.is_disabled():
            target = config.get("_target_")
            if not isinstance(target, str) or target.startswith(("$", "@", "%")):
                continue
            name = item.resolve_module_name()
            try:
                found = locate(name)
            except Exception as e:  # noqa: BLE001
                errors.append(f"`{item_id}#_target_` {target!r} fails to import: {_short_error(e, 200)}")
                continue
            if found is None:
                errors.append(f"`{item_id}#_target_` {target!r} cannot be located")
    return errors


def user_folders(bundle_dir: Path) -> list[Path]:
    """``models/``, ``outputs/`` and ``eval/`` of this bundle and of every sibling bundle: never read or written."""
    bundle_dir = Path(bundle_dir).resolve()
    bundles = {bundle_dir} | {p.resolve() for p in find_bundles(bundle_dir.parent)}
    return [b / f for b in sorted(bundles) for f in USER_FOLDERS]


def _user_path_redirects(parser: Any, bundle_dir: Path, tmp: Path) -> dict[str, str]:
    """Top-level keys whose value is a path inside a user folder -> the same relative path under ``tmp``.

    Only string keys that name a user folder as a path part (``'models'``) are resolved here, so nothing else is
    built early.
    """
    folders = user_folders(bundle_dir)
    redirects = {}
    for key, raw in parser.get().items():
        if key in SKIPPED_TOP_LEVEL_KEYS or not isinstance(raw, str) or not _USER_FOLDER_PATTERN.search(raw):
            continue
        try:
            value = parser.get_parsed_content(key)
        except Exception:  # noqa: BLE001 - reported by the resolution of every key
            continue
        if not isinstance(value, (str, os.PathLike)):
            continue
        path = Path(os.path.abspath(value))
        for folder in folders:
            if path == folder or folder in path.parents:
                redirects[key] = str(tmp / "user_folders" / path.relative_to(folder.parent.parent))
                break
    return redirects


@contextlib.contextmanager
def _single_process_group_env(enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        with contextlib.suppress(ImportError):
            import ignite.distributed as idist

            idist.sync()  # ignite caches the destroyed group: later serial combos would still ask it for ranks
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _check_combo(
    bundle_dir: Path,
    combo: Sequence[str],
    data_root: Path | None,
    tmp: Path,
    overrides: dict[str, Any] | None = None,
) -> CheckResult:
    name = "+".join(combo)
    files = [bundle_dir / "configs" / f for f in combo]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        return CheckResult(name, FAIL, f"missing config file(s): {missing}")
    notes: list[str] = []
    errors: list[str] = []
    with bundle_context(bundle_dir), _single_process_group_env(any(f.startswith("multi_gpu_") for f in combo)):
        try:
            parser = _build_parser(bundle_dir, files, overrides)
            all_overrides: dict[str, Any] = dict(overrides or {})
            config = parser.get()
            for key in OVERRIDDEN_DIR_KEYS:  # never the user's folders: a trained model must not change the result
                if key in config:
                    all_overrides[key] = str(tmp / key)
            data_keys = [k for k in DATA_KEYS if k in config]
            if data_keys and data_root is None:
                return CheckResult(name, FAIL, f"`{data_keys[0]}` needs data: common.data.write_default_data failed")
            if "data_root" in config:
                all_overrides["data_root"] = str(data_root)
            if "dataset_dir" in config:
                original = parser.get_parsed_content("dataset_dir")
                all_overrides["dataset_dir"] = str(_dataset_dir_for(str(original), data_root, bundle_dir, tmp))
            parser = _build_parser(bundle_dir, files, all_overrides)
            all_overrides.update(_user_path_redirects(parser, bundle_dir, tmp))
            parser = _build_parser(bundle_dir, files, all_overrides)
            parser.parse(reset=True)
        except Exception as e:  # noqa: BLE001
            return CheckResult(name, FAIL, f"parse: {_short_error(e)}")
        static_errors = _static_check(parser)
        if static_errors:
            return CheckResult(name, FAIL, "; ".join(static_errors))

        config = parser.get()
        ids = []
        if isinstance(config.get("initialize"), list):
            ids += [f"initialize#{i}" for i in range(len(config["initialize"]))]
        ids += [k for k in config if k not in SKIPPED_TOP_LEVEL_KEYS]
        failures: dict[str, list[str]] = {}  # root cause -> keys (a broken key breaks every key using it)
        for key in ids:
            try:
                parser.get_parsed_content(key)
            except Exception as e:  # noqa: BLE001
                weights = _missing_weights(e)
                other_bundle = _unset_bundle_root(e)
                if weights is not None:
                    cause = f"needs {weights}"
                elif other_bundle is not None:
                    cause = f"needs another bundle: {other_bundle}"
                else:
                    cause = _short_error(e, 400)
                failures.setdefault(cause, []).append(key)
                if weights is None and other_bundle is None:
                    errors.append(cause)
                else:
                    notes.append(cause)
    summary = "; ".join(", ".join(f"`{k}`" for k in keys) + f": {cause}" for cause, keys in failures.items())
    if errors:
        return CheckResult(name, FAIL, summary)
    if notes:
        return CheckResult(name, WARN, "resolved except " + summary)
    return CheckResult(name, PASS, f"{len(ids)} keys resolved")


def check_configs(bundle_dir: Path, data_root: Path | None, overrides: dict[str, Any] | None = None) -> CheckResult:
    """Check every config combination (see :func:`config_combinations`); FAIL if any fails, WARN if any warns.

    Args:
        bundle_dir: the bundle folder.
        data_root: the default datasets (see the module docstring); ``None`` fails configs that need data.
        overrides: config ids and values set on every combination before the folder keys are redirected.
    """
    bundle_dir = Path(bundle_dir).resolve()
    try:
        combos = config_combinations(bundle_dir)
    except Exception as e:  # noqa: BLE001
        return CheckResult("configs", FAIL, f"listing configs: {_short_error(e)}")
    if not combos:
        return CheckResult("configs", FAIL, "no config with `initialize` or `run` in configs/")
    results = []
    with tempfile.TemporaryDirectory(prefix="verify_configs_") as tmp:
        for i, combo in enumerate(combos):
            work = Path(tmp) / str(i)
            work.mkdir()
            results.append(_check_combo(bundle_dir, combo, data_root, work, overrides))
    statuses = {r.status for r in results}
    status = FAIL if FAIL in statuses else WARN if WARN in statuses else PASS
    detail = "\n".join(f"{r.name}: {r.status}" + (f" ({r.detail})" if r.status != PASS else "") for r in results)
    return CheckResult("configs", status, detail)


# ----------------------------------------------------------------------------------------------- driver
def verify_bundle(
    bundle_dir: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    skip_export: bool = False,
    skip_configs: bool = False,
    device: str = "cpu",
    overrides: dict[str, Any] | None = None,
) -> BundleReport:
    """Run the seven checks on one bundle folder and return their results (nothing is written into the bundle).

    Args:
        bundle_dir: the bundle folder (with ``configs/metadata.json``).
        data_root: folder with the default datasets for the config check; ``None`` skips configs that need
            ``dataset_dir`` with a FAIL, so callers normally pass one (``main`` writes a tiny one).
        skip_export: do not run the TorchScript export (its result is SKIP).
        skip_configs: do not run the properties and config checks (their results are SKIP).
        device: device for the forward passes.
        overrides: config ids and values set on top of every config, as ``--key value`` on MONAI's command line
            (e.g. ``{"feature_size": 12, "depths": [1, 1, 1, 1]}`` for a fast check). The network's input and
            output are still checked against the metadata's shapes; the export then uses fresh weights.
    """
    bundle_dir = Path(bundle_dir).resolve()
    report = BundleReport(bundle_dir.name, bundle_dir)
    report.results.append(check_metadata(bundle_dir))
    report.results.append(check_version_pins(bundle_dir))
    report.results.append(check_large_files(bundle_dir))
    net_result, probe = check_net_in_out(bundle_dir, device=device, overrides=overrides)
    report.results.append(net_result)
    if skip_export:
        report.results.append(CheckResult("export", SKIP, "--skip-export"))
    else:
        input_shape = probe["input_shape"] if probe else None
        report.results.append(check_export(bundle_dir, input_shape, device=device, overrides=overrides))
    if skip_configs:
        report.results.append(CheckResult("properties", SKIP, "--skip-configs"))
        report.results.append(CheckResult("configs", SKIP, "--skip-configs"))
    else:
        report.results.append(check_properties(bundle_dir, overrides=overrides))
        data = Path(data_root) if data_root is not None else None
        report.results.append(check_configs(bundle_dir, data, overrides=overrides))
    return report


def format_table(reports: Sequence[BundleReport]) -> str:
    """A PASS/FAIL table (one row per bundle) followed by the details of every non-PASS result."""
    columns = ["metadata", "pins", "large_files", "net_in_out", "export", "properties", "configs"]
    width = max([len("bundle")] + [len(r.name) for r in reports]) + 2
    lines = ["bundle".ljust(width) + "".join(c.ljust(12) for c in columns)]
    for report in reports:
        cells = [(report.result(c).status if report.result(c) else "-") for c in columns]
        lines.append(report.name.ljust(width) + "".join(s.ljust(12) for s in cells))
    for report in reports:
        for result in report.results:
            if result.status != PASS:
                detail = result.detail.replace("\n", "\n    ")
                lines.append(f"[{report.name}] {result.name} {result.status}:\n    {detail}")
    return "\n".join(lines)


def _default_data(tmp: Path) -> Path | None:
    try:
        from common.data import write_default_data

        write_default_data(tmp, seed=0, small=True)
    except Exception:  # noqa: BLE001 - reported per config combination
        traceback.print_exc()
        return None
    return tmp


def tiny_overrides(bundle_dir: str | os.PathLike) -> dict[str, Any]:
    """The bundle's ``configs/tiny.json`` (the smallest networks that run) as overrides.

    Raises:
        FileNotFoundError: naming the file when the bundle has none.
    """
    path = Path(bundle_dir) / TINY_OVERLAY
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: every bundle has configs/tiny.json for fast checks.")
    return _load_json(path)


def _quiet_monai_logging() -> None:
    import logging

    import monai.bundle  # noqa: F401 - creates the loggers

    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("monai", "ignite")):
            logging.getLogger(name).setLevel(logging.WARNING)


def _parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["feature_size=12", "depths=[1,1,1,1]", "encoder=swin"]`` -> ``{"feature_size": 12, ...}``.

    Raises:
        ValueError: naming the item without ``=``.
    """
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--override {item!r}: expected KEY=VALUE.")
        try:
            overrides[key.strip()] = json.loads(value)
        except ValueError:
            overrides[key.strip()] = value
    return overrides


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (1 on any FAIL or when no bundle is found)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundles", nargs="+", default=None, help="bundle folder names (default: all)")
    parser.add_argument("--bundles-dir", default=str(REPO_ROOT / "bundles"), help="folder holding the bundles")
    parser.add_argument("--skip-export", action="store_true", help="skip the TorchScript export check")
    parser.add_argument("--skip-configs", action="store_true", help="skip the config resolution check")
    parser.add_argument("--data-root", default=None, help="existing default data (else a tiny copy is written)")
    parser.add_argument("--device", default="cpu", help="device for the forward passes (default cpu)")
    parser.add_argument("--verbose", action="store_true", help="keep MONAI's INFO logging")
    parser.add_argument("--tiny", action="store_true", help="each bundle's configs/tiny.json networks (fast)")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override for every check, VALUE as JSON when it parses (e.g. depths=[1,1,1,1]); repeatable",
    )
    args = parser.parse_args(argv)
    try:
        overrides = _parse_overrides(args.override)
    except ValueError as e:
        print(f"FAIL: {e}")
        return 1
    if not args.verbose:
        _quiet_monai_logging()

    try:
        bundles = find_bundles(args.bundles_dir, args.bundles)
    except FileNotFoundError as e:
        print(f"FAIL: {e}")
        return 1
    if not bundles:
        print(f"FAIL: no bundle with configs/metadata.json under {args.bundles_dir}")
        return 1
    with tempfile.TemporaryDirectory(prefix="verify_data_") as tmp:
        data_root: Path | None = None
        if not args.skip_configs:
            data_root = Path(args.data_root).resolve() if args.data_root else _default_data(Path(tmp))
        reports = [
            verify_bundle(
                b,
                data_root,
                args.skip_export,
                args.skip_configs,
                args.device,
                {**(tiny_overrides(b) if args.tiny else {}), **overrides} or None,
            )
            for b in bundles
        ]
    print(format_table(reports))
    return 1 if any(r.failed for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
