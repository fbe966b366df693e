"""Run a bundle's own config files from a benchmark: the quick overlay, one workflow run, one parsed ``network_def``.

A benchmark variant is "these config files of the bundle plus these overrides", so every number comes from the
bundle's configs and no network or training loop is rebuilt by hand.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = [
    "QUICK_OVERLAY",
    "TINY_OVERLAY",
    "NO_DATA",
    "read_overlay",
    "run_workflow",
    "trainer_steps",
    "parse_config_items",
]

#: overlay (``configs/quick.json``) with the small networks of the quick benchmarks, layered like evaluate.json
QUICK_OVERLAY = "quick.json"
#: overlay (``configs/tiny.json``) with the smallest networks that still run: tests and tool checks use it
TINY_OVERLAY = "tiny.json"
#: overrides that build a config's ``train#trainer`` without its data, for a peer step that times one iteration on
#: its own batch: no dataset is read (an empty split; one placeholder batch so the trainer has an epoch length) and
#: no handler runs
NO_DATA = {
    "split": {"train": [], "val": [], "test": []},
    "train#dataloader": "$[None]",
    "train#handlers": [],
    "train#additional_metrics": {},
}


def read_overlay(bundle_root: str | os.PathLike, name: str = QUICK_OVERLAY) -> dict[str, Any]:
    """The keys of ``<bundle_root>/configs/<name>`` as a dict of overrides.

    Raises:
        FileNotFoundError: naming the file when the bundle has no such overlay.
        ValueError: naming the file when it is not a JSON object of plain values (no ``initialize``/``run``).
    """
    path = Path(bundle_root) / "configs" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: every bundle has configs/{QUICK_OVERLAY} and {TINY_OVERLAY}.")
    content = json.loads(path.read_text())
    if not isinstance(content, dict) or {"initialize", "run", "finalize", "imports"} & set(content):
        raise ValueError(f"{path} must be a JSON object of config keys and values (an overlay, no run lists).")
    return content


def _config_paths(bundle_root: Path, files: Sequence[str]) -> list[str]:
    return [str(bundle_root / "configs" / f) for f in files]


def run_workflow(
    bundle_root: str | os.PathLike,
    files: Sequence[str],
    overrides: dict[str, Any] | None = None,
    workflow_type: str | None = None,
    logging_file: str | None = None,
) -> Any:
    """Run ``configs/<files>`` (layered in order) through ``ConfigWorkflow``: initialize, run, finalize.

    This is what ``python -m monai.bundle run --config_file [...] --key value`` does. ``bundle_root`` is set to the
    bundle folder unless ``overrides`` gives one. Returns the finalized workflow (its parser stays readable).
    """
    from monai.bundle import ConfigWorkflow

    root = Path(bundle_root).resolve()
    values = {"bundle_root": str(root), **(overrides or {})}
    workflow = ConfigWorkflow(
        config_file=_config_paths(root, files),
        meta_file=str(root / "configs" / "metadata.json"),
        logging_file=logging_file,
        workflow_type=workflow_type,
        **values,
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return workflow


def trainer_steps(workflow: Any, trainer: str = "train#trainer") -> int:
    """The optimizer steps (iterations) that the finished ``workflow``'s ``trainer`` made: read back, not computed
    from epochs and batch size (a loader that keeps its last short batch makes more than ``epochs x n // batch``)."""
    return int(workflow.parser.get_parsed_content(trainer).state.iteration)


def parse_config_items(
    bundle_root: str | os.PathLike,
    files: Sequence[str],
    overrides: dict[str, Any] | None = None,
    items: Sequence[str] = ("network_def",),
) -> dict[str, Any]:
    """Build config items (default ``network_def``) of ``configs/<files>`` with ``overrides``, running nothing.

    Step-speed rows time these objects, so they time the very network (and loss) a variant trains.
    """
    from monai.bundle import ConfigParser

    root = Path(bundle_root).resolve()
    parser = ConfigParser()
    parser.read_config(_config_paths(root, files))
    parser["bundle_root"] = str(root)
    for key, value in (overrides or {}).items():
        parser[key] = value
    return {item: parser.get_parsed_content(item) for item in items}


def parse_config_switches(
    bundle_root: str | os.PathLike,
    files: Sequence[str],
    overrides: dict[str, Any] | None,
    items: Sequence[str],
    switches: Mapping[str, bool | str | None],
) -> tuple[dict[str, Any], dict[str, bool]]:
    """:func:`parse_config_items` of ``items``, and the boolean config ``switches`` (key -> the caller's value, e.g. a
    peer step's flag; ``None`` keeps the config's own), each read with ``common.flags.as_flag``.

    Returns:
        ``(parsed items, {switch key: bool})``; a given switch also reaches every item that reads it.
    """
    from common.flags import as_flag

    given = {key: value for key, value in switches.items() if value is not None}
    parsed = parse_config_items(bundle_root, files, {**(overrides or {}), **given}, (*items, *switches))
    return parsed, {key: as_flag(parsed[key], key) for key in switches}


def int_tuple(value: str | int | Sequence[int]) -> tuple[int, ...]:
    """A benchmark's ``--seeds``/``--scales`` option as fire or a caller gives it: ``"0,1,2"``, ``"(0, 1)"``, ``3`` or
    ``[0, 1]`` -> a tuple of ints."""
    if isinstance(value, (str, int)):
        return tuple(int(part) for part in str(value).strip("()[]").split(",") if part.strip())
    return tuple(int(part) for part in value)
