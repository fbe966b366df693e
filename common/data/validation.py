"""Input validation for dataset folders and NIfTI files: errors name the file or folder and say how to fix it.

Avoids the silent fallbacks of DESIGN.md section 3.4: a missing folder, a corrupt file, an image/label size
mismatch or NaN voxels raise at once with the path in the message, instead of failing deep inside a DataLoader.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import nibabel as nib
import numpy as np
from common.typing import PathLike

__all__ = [
    "DatasetError",
    "MAKE_DATA_HINT",
    "check_nifti",
    "check_slice_count",
    "slice_axis_of",
    "file_slice_axis",
    "check_pairs",
    "check_disjoint",
    "check_files_exist",
    "partition_readable",
    "list_nifti",
]

MAKE_DATA_HINT = "run `python -m tools.make_data --out data` to write the default data, or point dataset_dir at a copy"


class DatasetError(FileNotFoundError):
    """A dataset folder is missing, empty, or holds no case in the expected layout.

    A ``FileNotFoundError``, so ``except FileNotFoundError`` catches it too. The message names the folder, the layout
    that was expected and the fix.

    Examples::

        >>> isinstance(DatasetError("no cases in /data/EMIDEC"), FileNotFoundError)
        True
    """


_READ_ERRORS = (
    nib.filebasedimages.ImageFileError,
    gzip.BadGzipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    TypeError,
)


def _corrupt(path: PathLike, error: BaseException) -> ValueError:
    return ValueError(
        f"corrupt or not a NIfTI: {os.fspath(path)} ({type(error).__name__}: {error}); re-export it as NIfTI-1 "
        "(.nii or .nii.gz, e.g. with nibabel or dcm2niix) or remove it from the dataset folder."
    )


#: an in-plane axis this many times coarser than the other one (and coarser than the third axis) holds the slices
SLICE_AXIS_RATIO = 2.0


def slice_axis_of(shape: Sequence[int], affine: np.ndarray) -> int:
    """The spatial axis along which a stack of 2D slices (or a thick-slice volume) holds its slices, from its header.

    A short-axis stack is ``(X, Y, slices)``: its slice spacing (5-10 mm) is the coarsest. The answer is 2 unless one
    of the first two axes is at least :data:`SLICE_AXIS_RATIO` times coarser than the other in-plane axis and coarser
    than the third axis: then the slices lie along it (e.g. a stack reoriented to RAS with its slices first). A file
    with one element on its third axis (a slice ``(X, Y, 1)``, whose third pixdim may be anything) or a 2D file has
    its slice axis at 2.

    Args:
        shape: the file's spatial shape (``(X, Y)`` or ``(X, Y, Z)``; further axes are ignored).
        affine: its 4x4 affine.
    """
    if len(shape) < 3 or int(shape[2]) == 1:
        return 2
    spacing = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    coarse = int(np.argmax(spacing[:2]))
    if spacing[coarse] >= SLICE_AXIS_RATIO * spacing[1 - coarse] and spacing[coarse] > spacing[2]:
        return coarse
    return 2


def file_slice_axis(path: PathLike) -> int:
    """:func:`slice_axis_of` of a NIfTI file, from its header alone (no voxels read)."""
    try:
        image = nib.load(os.fspath(path))
    except _READ_ERRORS as error:
        raise _corrupt(path, error) from error
    return slice_axis_of(image.shape, image.affine)


def check_slice_count(name: str, shape: Sequence[int], min_slices: int, affine: np.ndarray | None = None) -> None:
    """Refuse a file with fewer than ``min_slices`` slices (a 2D file has one), naming it.

    The slices are counted along the file's slice axis (:func:`slice_axis_of`) when ``affine`` is given, else along
    its third axis. For bundles whose steps need a stack (a heart found from masks summed over the slices, 3D
    post-processing).

    Raises:
        ValueError: naming ``name``, the slices it has and the fix.
    """
    axis = 2 if affine is None else slice_axis_of(shape, affine)
    slices = int(shape[axis]) if len(shape) > axis else 1
    if slices < min_slices:
        raise ValueError(
            f"{name}: {slices} slice (shape {tuple(int(s) for s in shape)}), this bundle takes stacks of at least "
            f"{min_slices} slices; save the case's slices as one 3D NIfTI (X, Y, slices)."
        )


def check_nifti(
    path: PathLike,
    ndim: int | Sequence[int] | None = None,
    allow_nan: bool = False,
    min_slices: int = 1,
    channels: Sequence[int] | None = None,
) -> tuple[int, ...]:
    """Open ``path`` with nibabel, read its voxels and return its shape.

    Args:
        path: a ``.nii`` or ``.nii.gz`` file.
        ndim: required number of dimensions (an int or a collection of allowed ints); ``None`` accepts any.
        allow_nan: accept NaN/Inf voxels.
        min_slices: the fewest slices the file may hold, counted along its slice axis (:func:`slice_axis_of`; a 2D
            file has one), as in :func:`check_slice_count`.
        channels: the channel counts a 4D file ``(X, Y, slices, channels)`` may hold on its 4th axis (e.g. every map
            a bundle's channel names list, or only those it reads); ``None`` accepts any.

    Returns:
        The image shape.

    Raises:
        FileNotFoundError: ``path`` does not exist (the path is named).
        ValueError: the file is unreadable or corrupt, has the wrong number of dimensions, fewer than ``min_slices``
            slices, or holds NaN/Inf voxels (the message names the file and the fix).

    Examples::

        >>> check_nifti("data/EMIDEC/Case_P001/Images/Case_P001.nii.gz", ndim=3)  # doctest: +SKIP
        (160, 160, 7)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"NIfTI file not found: {path}; check the path or {MAKE_DATA_HINT}.")
    try:
        image = nib.load(str(path))
        data = np.asanyarray(image.dataobj)
    except _READ_ERRORS as error:
        raise _corrupt(path, error) from error
    shape = tuple(int(s) for s in data.shape)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if len(shape) not in allowed:
            if allowed == (4,):
                hint = "a 2D+T cine is a 4D NIfTI (X, Y, slices, frames); a single slice is (X, Y, 1, frames)."
            elif 4 in allowed:
                hint = "a slice is (X, Y, 1), a multi-channel slice (e.g. DTI maps) (X, Y, 1, channels)."
            elif len(shape) == 4 and shape[3] == 1:
                hint = "its 4th axis holds one element: drop it (numpy.squeeze(data, axis=3)) and re-save the file."
            else:
                hint = "export 2D slices as 3D (X, Y, 1) volumes and split 4D series into 3D frames."
            raise ValueError(f"{path} has {len(shape)} dimensions (shape {shape}), expected ndim in {allowed}; {hint}")
    if channels is not None and len(shape) == 4 and shape[3] not in tuple(channels):
        raise ValueError(
            f"{path} holds {shape[3]} channels on its 4th axis (shape {shape}); this configuration reads files of "
            f"{sorted(set(channels))} channels: set the bundle's channel names to the maps the file holds, in order."
        )
    check_slice_count(str(path), shape, min_slices, image.affine)
    if not allow_nan and np.issubdtype(data.dtype, np.floating):
        bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        if bad:
            raise ValueError(
                f"{path} holds {bad} NaN/Inf voxels; replace them (e.g. numpy.nan_to_num) and re-save the file."
            )
    return shape


def check_pairs(
    cases: Iterable[Mapping[str, str]],
    image_key: str,
    label_key: str,
    scale: int | float = 1,
    spatial_dims: int | None = None,
) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Check that every label's in-plane shape is ``scale`` times its image's (headers only, fast).

    The in-plane axes are the first two; any further axes (slices, frames) must be equal.

    Args:
        cases: dicts holding file paths under ``image_key`` and ``label_key``.
        image_key: key of the low-resolution (or same-resolution) image.
        label_key: key of the label / high-resolution mask.
        scale: label in-plane size divided by image in-plane size (8 for DTI 64x64 vs mask 512x512).
        spatial_dims: compare only the first ``spatial_dims`` axes of both files (3 for a DTI file
            ``(X, Y, 1, channels)`` against a ``(X, Y, 1)`` LGE); ``None`` compares every axis.

    Returns:
        ``[(image_shape, label_shape), ...]`` in the order of ``cases``.

    Raises:
        KeyError: a case lacks one of the keys (the case and key are named).
        ValueError: ``scale`` <= 0, or a shape mismatch (both files named).

    Examples::

        >>> check_pairs(dti_lge_mi_cases("data", require_dti=True), "dti", "mask", scale=8)  # doctest: +SKIP
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}.")
    shapes = []
    for case in cases:
        for key in (image_key, label_key):
            if key not in case:
                raise KeyError(f"case {case.get('case', case)!r} has no key {key!r}; keys are {sorted(case)}.")
        image_path, label_path = case[image_key], case[label_key]
        try:
            image_shape = tuple(nib.load(image_path).shape)
            label_shape = tuple(nib.load(label_path).shape)
        except FileNotFoundError:
            raise
        except _READ_ERRORS as error:
            raise ValueError(f"cannot read the header of {image_path} or {label_path}: {error}") from error
        image_spatial, label_spatial = image_shape[:spatial_dims], label_shape[:spatial_dims]
        expected = tuple(int(round(s * scale)) for s in image_spatial[:2]) + image_spatial[2:]
        if len(label_spatial) != len(image_spatial) or label_spatial != expected:
            axes = "" if spatial_dims is None else f", first {spatial_dims} axes"
            raise ValueError(
                f"label {label_path} has shape {label_shape} but image {image_path} has shape {image_shape}; "
                f"expected label shape {expected} (in-plane scale {scale}{axes}). Resample the label to the image "
                "grid or fix the pairing of files."
            )
        shapes.append((image_shape, label_shape))
    return shapes


def _case_ids(group: str, entries: Iterable[Mapping | str]) -> set[str]:
    ids = set()
    for entry in entries:
        if isinstance(entry, Mapping):
            if "case" not in entry:
                raise KeyError(f"{group}: an entry has no 'case' key ({dict(entry)}); check_disjoint compares cases.")
            entry = entry["case"]
        ids.add(str(entry))
    return ids


def check_disjoint(groups: Mapping[str, Iterable[Mapping | str]]) -> None:
    """Raise if a case is in two of ``groups`` (a training list and the held-out cases, say): no case may leak.

    Args:
        groups: name -> case entries (dicts with a ``"case"`` key, or case ids); the names appear in the message,
            so use the config keys (``{"train_datalist": ..., "val + test (held out)": ...}``).

    Raises:
        ValueError: naming both groups and up to 10 shared cases, for every pair of groups that share a case.
        KeyError: an entry without ``"case"`` (the group is named).

    Examples::

        >>> check_disjoint({"train": [{"case": "Case_001"}], "test": [{"case": "Case_002"}]})
    """
    ids = {name: _case_ids(name, entries) for name, entries in groups.items()}
    names = list(ids)
    clashes = []
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            shared = sorted(ids[first] & ids[second])
            if shared:
                shown = ", ".join(shared[:10]) + (", ..." if len(shared) > 10 else "")
                clashes.append(f"{first} and {second} share {len(shared)} case(s): {shown}")
    if clashes:
        raise ValueError(
            "case lists leak into each other: "
            + "; ".join(clashes)
            + ". A case may be in one of them only: remove it from the edited list (the shared split of the DTI-LGE "
            "set is common.data.dti_lge_mi_split; its split_fractions and seed must be the same in every stage)."
        )


def check_files_exist(cases: Iterable[Mapping[str, object]], keys: Sequence[str] | None = None) -> None:
    """Raise if a path in ``cases`` does not exist.

    Args:
        cases: dicts of paths (and other values).
        keys: keys to check; by default every string value that names a NIfTI file (``.nii``/``.nii.gz``).

    Raises:
        FileNotFoundError: listing every missing file (up to 20) with its case and key.
    """
    missing = []
    for case in cases:
        for key, value in case.items():
            if keys is not None and key not in keys:
                continue
            if keys is None and not (
                isinstance(value, (str, os.PathLike)) and str(value).endswith((".nii", ".nii.gz"))
            ):
                continue
            if not Path(value).is_file():
                missing.append(f"{case.get('case', '?')}[{key!r}]: {value}")
    if missing:
        shown = "\n  ".join(missing[:20]) + ("\n  ..." if len(missing) > 20 else "")
        raise FileNotFoundError(
            f"{len(missing)} file(s) listed in the cases do not exist:\n  {shown}\n{MAKE_DATA_HINT}."
        )


def partition_readable(
    paths: Iterable[PathLike],
    ndim: int | Sequence[int] | None = None,
    allow_nan: bool = False,
    min_slices: int = 1,
    channels: Sequence[int] | None = None,
) -> tuple[list[str], list[tuple[str, str]]]:
    """Split ``paths`` into readable NIfTI files and ``(path, reason)`` for the rest; never raises for a bad file.

    For folder inference that must go on past a corrupt file and report it at the end.

    Args:
        paths: candidate files.
        ndim: as in :func:`check_nifti`.
        allow_nan: as in :func:`check_nifti`.
        min_slices: as in :func:`check_nifti`.
        channels: as in :func:`check_nifti`.

    Returns:
        ``(good, bad)``: good paths (strings, input order) and ``[(path, reason), ...]``.
    """
    good: list[str] = []
    bad: list[tuple[str, str]] = []
    for path in paths:
        try:
            check_nifti(path, ndim=ndim, allow_nan=allow_nan, min_slices=min_slices, channels=channels)
        except (ValueError, FileNotFoundError) as error:
            bad.append((os.fspath(path), str(error)))
        else:
            good.append(os.fspath(path))
    return good, bad


def list_nifti(folder: PathLike, pattern: str = "*.nii.gz") -> list[str]:
    """Sorted absolute paths of the files in ``folder`` matching ``pattern`` (not recursive; ``**/`` patterns recurse).

    Raises:
        DatasetError: ``folder`` is missing, not a folder, or has no matching file (the folder is named).
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"folder {root} does not exist; point the input at a folder of NIfTI files or {MAKE_DATA_HINT}."
        )
    files = sorted(str(p.resolve()) for p in root.glob(pattern) if p.is_file())
    if not files:
        raise DatasetError(
            f"no file matching {pattern!r} in {root.resolve()}; put NIfTI files there or {MAKE_DATA_HINT}."
        )
    return files
