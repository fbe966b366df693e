"""Folder inference helpers: inputs found when the run starts, output planning that never overwrites, rank sharding,
bad-file reporting, batches of same-geometry files, and a NIfTI writer that keeps the input's number of axes."""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Iterator, Sequence

from common.flags import as_flag
from common.typing import PathLike
from monai.data import Dataset, NibabelWriter, list_data_collate
from torch.utils.data import Sampler

__all__ = [
    "output_path",
    "plan_outputs",
    "report_unreadable",
    "UnreadableInputError",
    "FolderInputs",
    "DeferredDataset",
    "geometry_key",
    "SameGeometryBatches",
    "collate_same_geometry",
    "InputShapeWriter",
]

logger = logging.getLogger(__name__)


class UnreadableInputError(RuntimeError):
    """Raised at the end of a folder inference in which some inputs could not be read."""


def _stem(path: PathLike) -> str:
    name = os.path.basename(str(path))
    for ext in (".nii.gz", ".nii", ".mha", ".nrrd"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return os.path.splitext(name)[0]


def output_path(input_path: PathLike, output_dir: PathLike, postfix: str, ext: str = ".nii.gz") -> str:
    """Where `SaveImaged(output_dir, output_postfix=postfix, separate_folder=False)` writes `input_path`."""
    return os.path.join(str(output_dir), f"{_stem(input_path)}_{postfix}{ext}")


def plan_outputs(
    datalist: Sequence[dict],
    output_dir: PathLike,
    postfix: str,
    overwrite: bool = False,
    image_key: str = "image",
    shard: bool = False,
    extra_postfixes: Sequence[str] = (),
    protected: Sequence[PathLike] = (),
) -> list[dict]:
    """Check every planned output before any is written, and optionally keep this rank's share.

    Args:
        datalist: dicts holding the input path under `image_key`.
        output_dir: folder the outputs go to (created).
        postfix: `SaveImaged`'s `output_postfix`.
        overwrite: allow replacing earlier outputs; inputs are never replaced, flag or not. The strings
            ``"true"``/``"false"`` (what ``monai.bundle run --overwrite false`` passes) are accepted.
        image_key: key of the input path.
        shard: keep only `items[rank::world_size]` under torchrun, so each file is written exactly once. All
            ranks check all outputs and then wait for each other, so no rank's early outputs trip another's check.
        extra_postfixes: postfixes of further outputs written per input (e.g. a synthesis beside a segmentation),
            checked the same way.
        protected: further files that are never replaced, like the inputs (a folder's files set aside as unreadable
            are still the user's).

    Raises:
        FileExistsError: an output already exists (and `overwrite` is false), would replace an input, or two inputs
            would be written to the same output name.
        ValueError: `overwrite` is a string other than true/false.
    """
    overwrite = as_flag(overwrite, "overwrite")
    inputs = {os.path.realpath(str(item[image_key])) for item in datalist}
    inputs.update(os.path.realpath(str(path)) for path in protected)
    planned = []
    targets: dict[str, str] = {}
    for item in datalist:
        for item_postfix in (postfix, *extra_postfixes):
            target = output_path(item[image_key], output_dir, item_postfix)
            if target in targets:
                raise FileExistsError(
                    f"inputs {targets[target]} and {item[image_key]} would both be written to {target}; give the "
                    "input files distinct names (e.g. copy them into one flat folder)."
                )
            targets[target] = str(item[image_key])
            if os.path.realpath(target) in inputs:
                raise FileExistsError(
                    f"output {target} would overwrite an input; choose another output_dir or postfix."
                )
            if os.path.exists(target) and not overwrite:
                raise FileExistsError(
                    f"output {target} already exists; pass --overwrite true to replace it, or choose another "
                    "output_dir."
                )
        planned.append(dict(item))
    os.makedirs(str(output_dir), exist_ok=True)
    if shard:
        from common.distributed import barrier
        from common.distributed import shard as shard_items

        barrier()  # every rank has checked every output before any rank writes one
        planned = shard_items(planned)
    return planned


def report_unreadable(bad: Sequence[tuple[str, str]]) -> None:
    """Log each unreadable input by name and fail the run (non-zero exit) if there was any."""
    if not bad:
        return
    for path, reason in bad:
        logger.error("skipped unreadable input %s: %s", path, reason)
    names = ", ".join(path for path, _ in bad)
    raise UnreadableInputError(
        f"{len(bad)} input file(s) could not be read and were skipped: {names}; any other input file was processed."
    )


def _slice_count(path: str, axes: Sequence[int] | str | None = None) -> int:
    """Slices of a NIfTI file from its header: the product of the sizes of ``axes`` (default: every axis after the
    first two; 1 for a 2D file). A 2D+T cine ``(X, Y, S, T)`` has ``axes=(2,)``: its frames are not slices. ``"auto"``
    counts along the stack's slice axis read from its header (``common.data.validation.slice_axis_of``)."""
    import nibabel as nib
    from common.data.validation import slice_axis_of

    image = nib.load(path)
    shape = image.shape
    if axes == "auto":
        axes = (slice_axis_of(shape, image.affine),)
    count = 1
    for axis in range(2, len(shape)) if axes is None else axes:
        count *= int(shape[axis]) if axis < len(shape) else 1
    return count


class FolderInputs:
    """The input files of a folder inference, found when the run starts rather than when the config is read.

    :meth:`datalist` lists ``folder`` (``common.data.validation.list_nifti``), sets unreadable files aside
    (``partition_readable``) and plans the outputs (:func:`plan_outputs`), once; :meth:`report_unreadable` (a
    ``finalize`` step) then fails the run naming the files that were skipped. Building this object touches nothing,
    so reading a config, ``monai.bundle.create_workflow(...)`` and ``check_properties()`` work before the data exists
    (the model zoo's CI runs them without data); a missing folder fails at ``run``, naming the folder.

    Args:
        folder: the input folder (``dataset_dir``).
        output_dir: where the outputs go (created by :meth:`datalist`).
        postfix: ``SaveImaged``'s ``output_postfix``.
        pattern: file pattern inside ``folder``.
        overwrite: as in :func:`plan_outputs`.
        ndim: accepted image dimensions, as in ``common.data.validation.check_nifti``.
        min_slices: the fewest slices an input may hold (2 where a 2D file is refused), as in ``check_nifti``.
        extra_postfixes: postfixes of further outputs per input, checked as ``postfix`` (:func:`plan_outputs`).
        slice_axes: the axes whose sizes multiply to a file's number of 2D slices, for progress (default: every axis
            after the first two; ``[2]`` for 2D+T cine stacks, whose 4th axis is time; ``"auto"`` for stacks whose
            slices may lie on any axis, moved last by ``common.transforms.SlicesLastd(axis="auto")``).
        shard: keep this rank's share under torchrun, as in :func:`plan_outputs`.
        channels: the channel counts a 4D input may hold on its 4th axis; a file with another count is set aside,
            named, when the inputs are listed (as ``check_nifti``'s ``channels``), so the others are still processed.

    Examples::

        "inputs": {"_target_": "common.inference.FolderInputs", "folder": "@dataset_dir", "output_dir": "@output_dir",
                   "postfix": "@output_postfix"},
        "dataset": {"_target_": "common.inference.DeferredDataset", "data": "$@inputs.datalist", ...},
        "run": ["$@dataset.open()", "$@evaluator.run()"], "finalize": ["$@inputs.report_unreadable()"]
    """

    def __init__(
        self,
        folder: PathLike,
        output_dir: PathLike,
        postfix: str,
        pattern: str = "*.nii.gz",
        overwrite: bool | str = False,
        ndim: int | Sequence[int] | None = None,
        shard: bool = False,
        slice_axes: Sequence[int] | str | None = None,
        extra_postfixes: Sequence[str] = (),
        min_slices: int = 1,
        channels: Sequence[int] | None = None,
    ) -> None:
        self.folder = folder
        self.channels = None if channels is None else tuple(int(c) for c in channels)
        self.output_dir = output_dir
        self.postfix = postfix
        self.pattern = pattern
        self.overwrite = overwrite
        self.ndim = ndim
        self.min_slices = min_slices
        self.shard = shard
        self.slice_axes = slice_axes if slice_axes in (None, "auto") else tuple(int(a) for a in slice_axes)
        self.extra_postfixes = tuple(str(p) for p in extra_postfixes)
        self._datalist: list[dict] | None = None
        self.unreadable: list[tuple[str, str]] = []
        self.slices: dict[str, int] = {}

    def datalist(self) -> list[dict]:
        """``[{"image": path}, ...]`` of the readable inputs with their outputs planned (computed once).

        Raises:
            common.data.DatasetError: ``folder`` is missing or holds no file matching ``pattern``.
            FileExistsError: as in :func:`plan_outputs`.
        """
        if self._datalist is None:
            from common.data.validation import list_nifti, partition_readable

            good, self.unreadable = partition_readable(
                list_nifti(self.folder, self.pattern),
                ndim=self.ndim,
                min_slices=self.min_slices,
                channels=self.channels,
            )
            for path, reason in self.unreadable:  # named now: a later input that stops the run would hide them
                logger.warning(
                    "setting aside unreadable input %s: %s (the run fails at its end naming it)", path, reason
                )
            self._datalist = plan_outputs(
                [{"image": f} for f in good],
                self.output_dir,
                self.postfix,
                overwrite=self.overwrite,
                shard=self.shard,
                extra_postfixes=self.extra_postfixes,
                protected=[path for path, _ in self.unreadable],
            )
            self.slices = {item["image"]: _slice_count(item["image"], self.slice_axes) for item in self._datalist}
        return self._datalist

    def total_slices(self) -> int:
        """2D slices in this rank's inputs (the third and further axes of each file), for progress and ETA."""
        self.datalist()
        return sum(self.slices.values())

    def report_unreadable(self) -> None:
        """Fail (:class:`UnreadableInputError`) naming each input that was skipped; nothing before :meth:`datalist`."""
        report_unreadable(self.unreadable)


class DeferredDataset(Dataset):
    """A ``monai.data.Dataset`` whose data list is made by :meth:`open` (the first step of ``run``), not when built.

    Until :meth:`open`, ``len()`` raises ``TypeError``: MONAI's engines then leave ``epoch_length`` unset, as for a
    dataset without a length, instead of reading the data when the evaluator is built (e.g. by ``check_properties``).
    An evaluator built after :meth:`open` (the normal ``monai.bundle run`` order) knows its length.

    Args:
        data: zero-argument callable returning the data list (e.g. :meth:`FolderInputs.datalist`).
        transform: as for ``monai.data.Dataset``.

    Raises:
        TypeError: ``data`` is not callable.
    """

    def __init__(self, data: Callable[[], Sequence], transform: Callable[..., Any] | None = None) -> None:
        if not callable(data):
            raise TypeError(f"`data` must be a zero-argument callable returning the data list, got {type(data)}.")
        super().__init__(data=[], transform=transform)
        self._make_data = data
        self.opened = False

    def open(self) -> int:
        """Make the data list (once) and return its length."""
        if not self.opened:
            self.data = list(self._make_data())
            self.opened = True
        return len(self.data)

    def __len__(self) -> int:
        if not self.opened:
            raise TypeError(f"{type(self).__name__} has no length before open() (the first step of `run`).")
        return len(self.data)

    def __getitem__(self, index: Any) -> Any:
        if not self.opened:
            raise RuntimeError(f"{type(self).__name__}: call open() (the first step of `run`) before reading items.")
        return super().__getitem__(index)


def geometry_key(path: PathLike) -> tuple:
    """What fixes the shape a file takes through a bundle's inference preprocessing, read from its header: the array
    shape and the affine's linear part (voxel sizes and orientation; rounded to 1e-4). The preprocessing's geometry
    (slice axis, resampling onto the model grid, fixed-size crops) depends on nothing else, so files with one key
    give tensors of one shape that collate into one batch; the translation is left out (it moves, not reshapes)."""
    import nibabel as nib

    image = nib.load(str(path))
    linear = tuple(round(float(v), 4) + 0.0 for v in image.affine[:3, :3].ravel())  # + 0.0: no -0.0 beside 0.0
    return tuple(int(n) for n in image.shape), linear


class SameGeometryBatches(Sampler):
    """Batch sampler of a folder inference: up to ``files_per_batch`` files of one :func:`geometry_key` per batch.

    A folder of single-slice 2D files otherwise goes through the network one file, so one slice, per forward pass;
    batching files lets the inferer fill its ``sw_batch_size`` (or ``slices_per_batch``) from several files, which
    is faster per slice (measured per bundle by ``python -m tools.folder_batching``). Files of another shape go in
    other batches, so any folder works. Groups keep the order of their first file, files their order within a group.
    The outputs are the same as one file per batch: every window or slice still goes through the network alone
    (checked by the bundles' tests). Before the dataset is opened (``DeferredDataset.open``, the first step of
    ``run``) ``len()`` raises ``TypeError``, like the dataset's, so reading a config reads no data.

    Args:
        dataset: the inference dataset; its ``data`` items hold the input path under ``image_key``.
        files_per_batch: most files per batch (``>= 1``; 1: one file per batch, as a plain ``DataLoader``).
        image_key: key of the input path in each item.

    Examples::

        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "num_workers": 0,
                       "batch_sampler": {"_target_": "common.inference.SameGeometryBatches", "dataset": "@dataset",
                                         "files_per_batch": "@files_per_batch"},
                       "collate_fn": "$common.inference.collate_same_geometry"}
    """

    def __init__(self, dataset: Dataset, files_per_batch: int, image_key: str = "image") -> None:
        if isinstance(files_per_batch, bool) or int(files_per_batch) != files_per_batch or int(files_per_batch) < 1:
            raise ValueError(f"files_per_batch must be an integer >= 1, got {files_per_batch!r}.")
        self.dataset = dataset
        self.files_per_batch = int(files_per_batch)
        self.image_key = image_key
        self._batches: list[list[int]] | None = None

    def batches(self) -> list[list[int]]:
        """The batches of dataset indices (computed once, from the headers, after the dataset is opened)."""
        if not getattr(self.dataset, "opened", True):
            raise TypeError(f"{type(self).__name__} has no batches before the dataset is opened (`run`'s first step).")
        if self._batches is None:
            groups: dict[tuple, list[int]] = {}
            for index, item in enumerate(self.dataset.data):
                groups.setdefault(geometry_key(item[self.image_key]), []).append(index)
            step = self.files_per_batch
            self._batches = [g[i : i + step] for g in groups.values() for i in range(0, len(g), step)]
        return self._batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


def collate_same_geometry(items: Sequence[dict]) -> Any:
    """``monai.data.list_data_collate``; when files of one header geometry still come out of the preprocessing in
    different shapes (a bundle whose geometry depends on the content), the error names the files and the fix."""
    try:
        return list_data_collate(items)
    except (RuntimeError, TypeError, ValueError) as error:
        images = [item.get("image") if isinstance(item, dict) else None for item in items]
        names = [str((getattr(image, "meta", None) or {}).get("filename_or_obj", "?")) for image in images]
        shapes = [tuple(getattr(image, "shape", ())) for image in images]
        raise RuntimeError(
            f"the inputs {names} share a header geometry but came out of the preprocessing as {shapes}, which cannot "
            "be batched together; run with --files_per_batch 1 (one file per forward pass)."
        ) from error


class InputShapeWriter(NibabelWriter):
    """``NibabelWriter`` that gives an output the singleton axes of its input: MONAI drops every trailing singleton
    axis, so a one-slice stack ``(X, Y, 1)`` (or cine ``(X, Y, 1, T)``) came back as a 2D ``(X, Y)`` image. After
    MONAI's squeeze, axes are appended while the input's ``spatial_shape`` has a 1 at the next position; a 2D input
    stays 2D and a multi-channel output is left as it is.

    Examples::

        {"_target_": "SaveImaged", "keys": "pred", "writer": "common.inference.InputShapeWriter", ...}
    """

    def set_metadata(self, meta_dict: dict | None, resample: bool = True, **options: Any) -> None:
        super().set_metadata(meta_dict, resample=resample, **options)
        shape = [int(n) for n in (meta_dict or {}).get("spatial_shape", ())]
        ndim = self.data_obj.ndim
        while ndim < len(shape) and shape[ndim] == 1:
            ndim += 1
        if ndim > self.data_obj.ndim:
            self.data_obj = self.data_obj.reshape(tuple(self.data_obj.shape) + (1,) * (ndim - self.data_obj.ndim))
