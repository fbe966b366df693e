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
- ``<name>/large_files.yml`` (unless the bundle has its own ``large_files.*``): the weights the bundle ships
  separately, in the format of ``python -m monai.bundle download_large_files``: ``models/model.pt`` always (the
  specification requires it) plus every weights file found in ``models/``, each with ``path``, a placeholder
  ``url`` to fill in after uploading, and ``hash_val`` (the md5 of the local file, empty when absent) /
  ``hash_type``.

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
from typing import Iterator, Sequence

__all__ = ["WEIGHT_SUFFIXES", "bundle_files", "large_files_entries", "package_bundle", "main"]

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMON_DIR = REPO_ROOT / "common"
WEIGHT_SUFFIXES = (".pt", ".pth", ".ts", ".onnx", ".ckpt", ".safetensors")
EXCLUDED_TOP_DIRS = ("eval", "outputs", "common")
EXCLUDED_DIR_NAMES = ("__pycache__", ".pytest_cache", ".ipynb_checkpoints", ".mypy_cache")
URL_PLACEHOLDER = "TODO: upload {path} and put its download URL here"
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


def large_files_entries(bundle_dir: str | os.PathLike) -> list[dict[str, str]]:
    """``large_files.yml`` entries: ``models/model.pt`` plus every weights file under ``models/``."""
    root = Path(bundle_dir)
    paths = {"models/model.pt"}
    models = root / "models"
    if models.is_dir():
        paths |= {p.relative_to(root).as_posix() for p in models.rglob("*") if p.suffix in WEIGHT_SUFFIXES}
    entries = []
    for rel in sorted(paths):
        local = root / rel
        entries.append(
            {
                "path": rel,
                "url": URL_PLACEHOLDER.format(path=rel),
                "hash_val": _md5(local) if local.is_file() else "",
                "hash_type": "md5",
            }
        )
    return entries


def _add(zf: zipfile.ZipFile, arcname: str, data: bytes) -> None:
    info = zipfile.ZipInfo(arcname, date_time=_ZIP_DATE)
    info.external_attr = 0o644 << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data)


def package_bundle(
    bundle_dir: str | os.PathLike,
    out_dir: str | os.PathLike = "dist",
    common_dir: str | os.PathLike = COMMON_DIR,
) -> Path:
    """Write ``<out_dir>/<name>_v<version>.zip`` for one bundle (see the module docstring for the contents).

    Args:
        bundle_dir: the bundle folder; its name becomes the zip's top folder.
        out_dir: where the zip goes (created if needed).
        common_dir: the ``common`` package to vendor as ``<name>/common``.

    Returns:
        The path of the zip.

    Raises:
        FileNotFoundError: naming the missing ``configs/metadata.json`` or ``common_dir/__init__.py``.
        ValueError: naming ``version`` when the metadata has none.
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
    has_large_files = any(len(f.parts) == 1 and f.name.startswith("large_files") for f in files)

    tmp_path = zip_path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp_path, "w") as zf:
        for rel in files:
            _add(zf, f"{name}/{rel}", (bundle_dir / rel).read_bytes())
        if not has_large_files:
            text = yaml.safe_dump({"large_files": large_files_entries(bundle_dir)}, sort_keys=False)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns 1 when a bundle cannot be packaged or none is found."""
    from tools.verify_bundles import find_bundles

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundles", nargs="+", default=None, help="bundle folder names (default: all)")
    parser.add_argument("--bundles-dir", default=str(REPO_ROOT / "bundles"), help="folder holding the bundles")
    parser.add_argument("--out", default="dist", help="output folder (default: dist)")
    args = parser.parse_args(argv)
    try:
        bundles = find_bundles(args.bundles_dir, args.bundles)
    except FileNotFoundError as e:
        print(f"FAIL: {e}")
        return 1
    if not bundles:
        print(f"FAIL: no bundle with configs/metadata.json under {args.bundles_dir}")
        return 1
    status = 0
    for bundle in bundles:
        try:
            zip_path = package_bundle(bundle, args.out)
        except (OSError, ValueError) as e:
            print(f"FAIL {bundle.name}: {e}")
            status = 1
            continue
        print(f"wrote {zip_path} ({zip_path.stat().st_size / 1e6:.2f} MB)")
        for warning in _warnings(bundle):
            print(f"  WARNING {bundle.name}: {warning}")
    return status


if __name__ == "__main__":
    sys.exit(main())
