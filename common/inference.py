"""Folder inference helpers: output planning that never overwrites, rank sharding, and bad-file reporting."""

from __future__ import annotations

import logging
import os
from typing import Sequence

from common.flags import as_flag
from common.typing import PathLike

__all__ = ["output_path", "plan_outputs", "report_unreadable", "UnreadableInputError"]

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

    Raises:
        FileExistsError: an output already exists (and `overwrite` is false), would replace an input, or two inputs
            would be written to the same output name.
        ValueError: `overwrite` is a string other than true/false.
    """
    overwrite = as_flag(overwrite, "overwrite")
    inputs = {os.path.realpath(str(item[image_key])) for item in datalist}
    planned = []
    targets: dict[str, str] = {}
    for item in datalist:
        target = output_path(item[image_key], output_dir, postfix)
        if target in targets:
            raise FileExistsError(
                f"inputs {targets[target]} and {item[image_key]} would both be written to {target}; give the input "
                "files distinct names (e.g. copy them into one flat folder)."
            )
        targets[target] = str(item[image_key])
        if os.path.realpath(target) in inputs:
            raise FileExistsError(f"output {target} would overwrite an input; choose another output_dir or postfix.")
        if os.path.exists(target) and not overwrite:
            raise FileExistsError(
                f"output {target} already exists; pass --overwrite true to replace it, or choose another output_dir."
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
        f"{len(bad)} input file(s) could not be read and were skipped: {names}. The other files were processed."
    )
