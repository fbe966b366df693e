"""The folder of another bundle that a config needs, given explicitly: a bundle never reaches for a sibling folder."""

from __future__ import annotations

__all__ = ["require_bundle_root", "BundleRootNotSetError"]

import os
from collections.abc import Sequence

from common.typing import PathLike


class BundleRootNotSetError(ValueError):
    """A config needs another bundle and the key naming its root is unset (tools may report it as a WARN)."""


def require_bundle_root(
    path: PathLike | None, key: str, what: str, required_files: Sequence[str] = ("configs/inference.json",)
) -> str:
    """Return ``path``, the root folder of another bundle, or raise an error that names the config ``key``.

    A downloaded bundle zip has no sibling bundles, so a config that chains another bundle (the DTI pipeline of
    ``dti_lge_style_transfer`` runs the SwinSSegNet of ``lge_mi_sr_segmentation``) reads its root from a setting
    whose default is unset (``null``), never from ``os.path.join(@bundle_root, '..', '<other bundle>')``.

    Args:
        path: the configured root folder; ``None`` or ``""`` means unset. A relative path is taken from the
            current directory.
        key: the config key holding ``path``, e.g. ``"sseg_bundle_root"`` (named in the error).
        what: which bundle to point it at, e.g. ``"the folder of the lge_mi_sr_segmentation bundle"``.
        required_files: files, relative to ``path``, that the config reads from that bundle.

    Returns:
        ``path`` as a string.

    Raises:
        BundleRootNotSetError: (a ``ValueError``) when ``path`` is unset, naming ``key`` and ``what``.
        FileNotFoundError: when ``path`` is not a folder or lacks one of ``required_files``, naming ``key``.

    Examples::

        "sseg_bundle": {"_target_": "common.bundle_root.require_bundle_root", "path": "@sseg_bundle_root",
                        "key": "sseg_bundle_root", "what": "the folder of the lge_mi_sr_segmentation bundle"}
    """
    if path is None or not str(path).strip():
        raise BundleRootNotSetError(f"`{key}` is not set: set it to {what} (command line: --{key} <folder>).")
    folder = os.fspath(path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"`{key}` = {folder!r} is not a folder: set it to {what} (--{key} <folder>).")
    for name in required_files:
        if not os.path.isfile(os.path.join(folder, name)):
            raise FileNotFoundError(f"`{key}` = {folder!r} has no {name}: set it to {what} (--{key} <folder>).")
    return folder
