"""Build standalone bundle zips, model-zoo style, with the shared package ``common`` vendored inside.

Usage (from the repository root)::

    python -m tools.package                              # every bundles/<name> with configs/metadata.json
    python -m tools.package --bundles lge_mi_sr_segmentation --out dist

Each bundle gives ``<out>/<name>_v<version>.zip`` (``version`` from ``configs/metadata.json``) holding one top
folder ``<name>/`` (the MONAI Bundle Specification's archive format) with:

- every file of the bundle except weights under ``models/`` (``*.pt``, ``*.pth``, ``*.ts``, ``*.onnx``,
  ``*.ckpt``, ``*.safetensors``), the run folders ``eval/`` and ``outputs/``, a bundle-level ``common/``,
  ``__pycache__`` and ``*.pyc``;
- ``<name>/common/``: a copy of this repository's ``common`` package (all of it), a top-level package inside the
  bundle folder next to ``scripts/``. It cannot live in ``scripts/common`` because the configs import it as
  ``common.xxx``;
- ``<name>/large_files.yml`` (unless the bundle has its own ``large_files.*``, which must pass
  :func:`large_files_problems`): the inference weights the bundle ships separately, with the model zoo's fields
  (``path``, ``url``, ``hash_val``, ``hash_type``; CONTRIBUTING.md, "Prepare a config file for large files"), the
  format of ``python -m monai.bundle download_large_files``. Only :data:`INFERENCE_WEIGHTS` (``models/model.pt``,
  the zoo's preferred file, and ``models/model.ts``) may be listed, never training state (``models/*_state/``
  checkpoints with optimizers, ``model_ssl.pt``, ``segmentor.pt``), and only with a real download URL given with
  ``--weights-url <name>/models/model.pt=<url>`` (``hash_val`` is the md5 of the local file when there is one).

Weights and the model zoo's large-file route: weights are never put in the zip (the zoo keeps files under 25 MB and
takes weights by URL). Nothing is hosted by this project, so by default no ``large_files.yml`` is written and the
packager says so: to submit a bundle, upload the trained ``models/model.pt`` to a public host (the zoo's own bundles
use NGC or GitHub releases), package again with ``--weights-url``, and the zoo's CI downloads it before its checks.
Until then the zoo's ``verify_bundle.py`` stops at its "preferred file ``models/model.pt``" check, and users put
their own ``model.pt`` in ``models/``. No placeholder URL is ever written.

How the vendored ``common`` is found: it sits in the bundle root, so it is importable whenever the bundle root is
on ``sys.path``, which holds when

- ``python -m monai.bundle run ...`` is started in the bundle root (``-m`` puts the working directory first on
  ``sys.path``; this is the model zoo's documented way, and the repository need not exist);
- MONAI Label loads the bundle (it calls ``sys.path.insert(0, bundle_path)`` before parsing the configs);
- ``ConfigWorkflow.run()`` starts (it inserts the bundle root at ``sys.path[1]``), for code located lazily by
  ``_target_`` (config import statements such as ``$import common`` are evaluated earlier, at the first resolution
  of any key, so they need one of the two cases above, or ``PYTHONPATH=<bundle root>``).

Zips are reproducible: entries are sorted and carry a fixed timestamp.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import urlparse

__all__ = [
    "WEIGHT_SUFFIXES",
    "INFERENCE_WEIGHTS",
    "bundle_files",
    "large_files_entries",
    "large_files_problems",
    "weights_notes",
    "package_bundle",
    "main",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMON_DIR = REPO_ROOT / "common"
WEIGHT_SUFFIXES = (".pt", ".pth", ".ts", ".onnx", ".ckpt", ".safetensors")
EXCLUDED_TOP_DIRS = ("eval", "outputs", "common")
EXCLUDED_DIR_NAMES = ("__pycache__", ".pytest_cache", ".ipynb_checkpoints", ".mypy_cache")
#: the only files a ``large_files.yml`` may list: what ``inference.json`` loads and its TorchScript export
INFERENCE_WEIGHTS = ("models/model.pt", "models/model.ts")
#: the model zoo's fields of a ``large_files.yml`` entry (each is passed to ``monai.apps.download_url``)
LARGE_FILES_FIELDS = ("path", "url", "hash_val", "hash_type")
HASH_TYPES = ("md5", "sha1", "sha256", "sha512")
_PLACEHOLDER_WORDS = ("todo", "placeholder", "fixme", "url-of", "example.com", "<", ">", " ")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _is_excluded(rel: PurePosixPath) -> bool:
    if any(part in EXCLUDED_DIR_NAMES for part in rel.parts) or rel.suffix == ".pyc":
        return True
    if len(rel.parts) > 1 and rel.parts[0] in EXCLUDED_TOP_DIRS:
        return True
    return rel.parts[0] == "models" and rel.suffix in WEIGHT_SUFFIXES


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIR_NAMES)
        for filename in sorted(filenames):
            yield Path(dirpath) / filename


def bundle_files(bundle_dir: str | os.PathLike) -> list[PurePosixPath]:
    """The bundle's own files that go into the zip, as paths relative to the bundle root (sorted)."""
    root = Path(bundle_dir)
    files = []
    for path in _walk(root):
        rel = PurePosixPath(path.relative_to(root).as_posix())
        if not _is_excluded(rel):
            files.append(rel)
    return sorted(files)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _url_problem(url: Any) -> str | None:
    if not isinstance(url, str) or not url:
        return "no url"
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return f"url {url!r} is not an http(s) download link"
    if any(word in url.lower() for word in _PLACEHOLDER_WORDS):
        return f"url {url!r} is a placeholder, not a download link"
    return None


def large_files_problems(content: Any) -> list[str]:
    """What stops a ``large_files.yml`` content from being the model zoo's: one message per problem (empty: fine).

    Checked: a ``large_files`` list of entries with only the zoo's fields (``path``, ``url``, optional ``hash_val``
    / ``hash_type``), each ``path`` one of :data:`INFERENCE_WEIGHTS` (never training state) and listed once, each
    ``url`` an http(s) link that is not a placeholder, ``hash_type`` one of md5/sha1/sha256/sha512 when
    ``hash_val`` is given.
    """
    if not isinstance(content, dict) or not isinstance(content.get("large_files"), list):
        return ["no `large_files` list at the top level"]
    problems = []
    seen: set[str] = set()
    for i, entry in enumerate(content["large_files"]):
        if not isinstance(entry, dict):
            problems.append(f"entry {i} is not a mapping")
            continue
        path = entry.get("path")
        where = f"entry {i} ({path})"
        unknown = sorted(set(entry) - set(LARGE_FILES_FIELDS))
        if unknown:
            problems.append(f"{where}: fields {unknown} are not the zoo's {list(LARGE_FILES_FIELDS)}")
        if path not in INFERENCE_WEIGHTS:
            problems.append(f"{where}: only inference weights {list(INFERENCE_WEIGHTS)} may be listed, not {path!r}")
        elif path in seen:
            problems.append(f"{where}: listed twice")
        seen.add(str(path))
        url_problem = _url_problem(entry.get("url"))
        if url_problem:
            problems.append(f"{where}: {url_problem}")
        if entry.get("hash_val") and entry.get("hash_type") not in HASH_TYPES:
            problems.append(f"{where}: hash_type {entry.get('hash_type')!r} is not one of {list(HASH_TYPES)}")
    return problems


def large_files_entries(bundle_dir: str | os.PathLike, urls: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """``large_files.yml`` entries for the inference weights that have a download URL in ``urls``.

    Args:
        bundle_dir: the bundle folder (the md5 of a local ``models/model.pt`` goes in ``hash_val``).
        urls: bundle-relative path (one of :data:`INFERENCE_WEIGHTS`) -> the URL it is downloaded from.

    Raises:
        ValueError: naming a path that is not an inference weights file, or a URL that is not a download link.
    """
    root = Path(bundle_dir)
    entries = []
    for rel, url in sorted((urls or {}).items()):
        local = root / rel
        hash_val = _md5(local) if local.is_file() else ""
        entries.append({"path": rel, "url": url, "hash_val": hash_val, "hash_type": "md5" if hash_val else ""})
    problems = large_files_problems({"large_files": entries})
    if problems:
        raise ValueError(f"{root.name}: " + "; ".join(problems))
    return entries


def weights_notes(bundle_dir: str | os.PathLike, urls: Mapping[str, str] | None = None) -> list[str]:
    """What a user must know about the weights of a zip: which inference weights have no download URL."""
    root = Path(bundle_dir)
    notes = []
    for rel in INFERENCE_WEIGHTS:
        if rel in (urls or {}):
            continue
        local = root / rel
        if local.is_file():
            notes.append(
                f"{rel} ({local.stat().st_size / 1e6:.1f} MB, md5 {_md5(local)}) is not in the zip and has no URL: "
                f"upload it to a public host and package again with --weights-url {root.name}/{rel}=<url> "
                "(the model zoo's large-file route)"
            )
        elif rel == INFERENCE_WEIGHTS[0]:
            notes.append(
                f"no {rel} (train the bundle first) and no URL: the zip has no weights and no large_files.yml; "
                f"users put their own {rel} in the bundle"
            )
    return notes


def _add(zf: zipfile.ZipFile, arcname: str, data: bytes) -> None:
    info = zipfile.ZipInfo(arcname, date_time=_ZIP_DATE)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def package_bundle(
    bundle_dir: str | os.PathLike,
    out_dir: str | os.PathLike = "dist",
    common_dir: str | os.PathLike = COMMON_DIR,
    weights_urls: Mapping[str, str] | None = None,
) -> Path:
    """Write ``<out_dir>/<name>_v<version>.zip`` for one bundle (see the module docstring for the contents).

    Args:
        bundle_dir: the bundle folder; its name becomes the zip's top folder.
        out_dir: where the zip goes (created if needed).
        common_dir: the ``common`` package to vendor as ``<name>/common``.
        weights_urls: bundle-relative path of an inference weights file -> its download URL, for
            ``large_files.yml`` (none: no ``large_files.yml`` is written, see :func:`weights_notes`).

    Returns:
        The path of the zip.

    Raises:
        FileNotFoundError: naming the missing ``configs/metadata.json`` or ``common_dir/__init__.py``.
        ValueError: naming ``version`` when the metadata has none; naming the problems of the bundle's own
            ``large_files.*`` or of ``weights_urls`` (see :func:`large_files_problems`).
    """
    import yaml

    bundle_dir = Path(bundle_dir).resolve()
    common_dir = Path(common_dir).resolve()
    meta_file = bundle_dir / "configs" / "metadata.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{meta_file} does not exist: not a bundle folder.")
    if not (common_dir / "__init__.py").is_file():
        raise FileNotFoundError(f"{common_dir / '__init__.py'} does not exist: `common_dir` is not a package.")
    with open(meta_file) as f:
        version = json.load(f).get("version")
    if not version:
        raise ValueError(f"`version` is missing from {meta_file}.")

    name = bundle_dir.name
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    zip_path = out_dir / f"{name}_v{version}.zip"
    files = bundle_files(bundle_dir)
    own_large_files = [f for f in files if len(f.parts) == 1 and f.name.startswith("large_files")]
    for own in own_large_files:
        with open(bundle_dir / own) as f:
            problems = large_files_problems(yaml.safe_load(f))
        if problems:
            raise ValueError(f"{bundle_dir / own}: " + "; ".join(problems))
    if own_large_files and weights_urls:
        raise ValueError(f"{bundle_dir / own_large_files[0]} exists: give the weights URLs there, not as arguments.")
    entries = [] if own_large_files else large_files_entries(bundle_dir, weights_urls)

    tmp_path = zip_path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp_path, "w") as zf:
        for rel in files:
            _add(zf, f"{name}/{rel}", (bundle_dir / rel).read_bytes())
        if entries:
            text = yaml.safe_dump({"large_files": entries}, sort_keys=False)
            _add(zf, f"{name}/large_files.yml", text.encode())
        for path in _walk(common_dir):
            rel = PurePosixPath(path.relative_to(common_dir).as_posix())
            if rel.suffix != ".pyc":
                _add(zf, f"{name}/common/{rel}", path.read_bytes())
    os.replace(tmp_path, zip_path)
    return zip_path


def _warnings(bundle_dir: Path) -> list[str]:
    """Config choices that stop a zip from running on its own."""
    found = []
    for config in sorted((bundle_dir / "configs").glob("*.json")):
        try:
            with open(config) as f:
                content = json.load(f)
        except (OSError, ValueError) as e:
            found.append(f"{config.name}: unreadable ({e})")
            continue
        if isinstance(content, dict) and "bundle_root" in content and content["bundle_root"] != ".":
            found.append(f"{config.name}: bundle_root is {content['bundle_root']!r}, not '.'")
    return found


def _parse_weights_urls(items: Sequence[str], names: Sequence[str]) -> dict[str, dict[str, str]]:
    """``["b/models/model.pt=https://..."]`` -> ``{"b": {"models/model.pt": "https://..."}}``.

    Raises:
        ValueError: naming an item that is not ``NAME/PATH=URL`` or names a bundle that is not packaged.
    """
    urls: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, url = item.partition("=")
        name, slash, path = key.partition("/")
        if not sep or not slash or not path or not url:
            raise ValueError(f"--weights-url {item!r}: expected NAME/PATH=URL, e.g. b/models/model.pt=https://...")
        if name not in names:
            raise ValueError(f"--weights-url {item!r}: bundle `{name}` is not among those packaged {list(names)}.")
        urls.setdefault(name, {})[path] = url
    return urls


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns 1 when a bundle cannot be packaged or none is found."""
    from tools.verify_bundles import find_bundles

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundles", nargs="+", default=None, help="bundle folder names (default: all)")
    parser.add_argument("--bundles-dir", default=str(REPO_ROOT / "bundles"), help="folder holding the bundles")
    parser.add_argument("--out", default="dist", help="output folder (default: dist)")
    parser.add_argument(
        "--weights-url",
        action="append",
        default=[],
        metavar="NAME/PATH=URL",
        help="download URL of a bundle's inference weights for large_files.yml, e.g. "
        "lge_mi_sr_segmentation/models/model.pt=https://...; repeatable",
    )
    args = parser.parse_args(argv)
    try:
        bundles = find_bundles(args.bundles_dir, args.bundles)
        urls = _parse_weights_urls(args.weights_url, [b.name for b in bundles])
    except (FileNotFoundError, ValueError) as e:
        print(f"FAIL: {e}")
        return 1
    if not bundles:
        print(f"FAIL: no bundle with configs/metadata.json under {args.bundles_dir}")
        return 1
    status = 0
    for bundle in bundles:
        try:
            zip_path = package_bundle(bundle, args.out, weights_urls=urls.get(bundle.name))
        except (OSError, ValueError) as e:
            print(f"FAIL {bundle.name}: {e}")
            status = 1
            continue
        print(f"wrote {zip_path} ({zip_path.stat().st_size / 1e6:.2f} MB)")
        for warning in _warnings(bundle):
            print(f"  WARNING {bundle.name}: {warning}")
        if not any(f.name.startswith("large_files") for f in bundle.iterdir()):
            for note in weights_notes(bundle, urls.get(bundle.name)):
                print(f"  NOTE {bundle.name}: {note}")
    return status


if __name__ == "__main__":
    sys.exit(main())
