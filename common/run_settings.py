"""The settings that make a training run what it is, saved in its checkpoints and checked when it resumes.

A checkpoint folder resumes whatever run wrote it. An ablation started in the folder of a half-finished run
(``--adversarial false`` in the PSCGAN run's folder, ``--use_prior false`` in TransMRSR's) whose networks have the
same shapes would load that run's weights, optimizer and epoch and go on with the other loss or switch: a model
trained half one way, half the other, under the ablation's name. Each training config therefore names its
``run_settings`` (method switches, loss weights, the seed: not the epoch count, paths or speed switches, which may
change between a run and its resume); the train-state ``AtomicCheckpointSaver`` saves them under
``RUN_SETTINGS_KEY`` and ``ResumeFromLatest`` refuses a checkpoint whose recorded settings differ, before anything is
loaded, naming each setting and both values.

A frozen network that a stage reads from its file at every start (PSCGAN's Pri and Sys under the later phases,
CycleGANSeg's Segmentor, REHRSeg's UASR teacher) is not in the stage's own checkpoint; its ``file_fingerprint`` in
``run_settings`` makes a resume after that file was retrained a changed setting too. Training data an earlier stage
derived (REHRSeg's pseudo-HR volumes) is recorded the same way by ``files_fingerprint``.
"""

from __future__ import annotations

__all__ = [
    "RUN_SETTINGS_KEY",
    "RunSettings",
    "RunSettingsMismatchError",
    "plain_setting",
    "file_fingerprint",
    "files_fingerprint",
]

import hashlib
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from common.typing import PathLike

logger = logging.getLogger(__name__)

#: checkpoint entry holding the run's settings
RUN_SETTINGS_KEY = "run_settings"
_FLAG_STRINGS = {"true": True, "false": False}


def plain_setting(value: Any) -> Any:
    """``value`` as the plain type a checkpoint keeps (``torch.load(weights_only=True)``) and compares: the strings
    ``"true"``/``"false"`` (what ``monai.bundle run --flag false`` passes) as booleans, tuples as lists, numpy and
    torch scalars as numbers, mappings and sequences element-wise, anything else as its ``repr``."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return _FLAG_STRINGS.get(value.strip().lower(), value)
    if isinstance(value, Mapping):
        return {str(k): plain_setting(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_setting(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        return plain_setting(item())
    return repr(value)


def _sha256(path: PathLike) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.digest()


def file_fingerprint(path: PathLike | None) -> str | None:
    """A content hash of a file that a run reads at every start (sha256, first 16 hex digits), for ``run_settings``;
    ``None`` for no path or a missing file (the stage's own check names a missing file)."""
    if path is None or not os.path.isfile(path):
        return None
    return _sha256(path).hex()[:16]


def files_fingerprint(paths: Iterable[PathLike]) -> str | None:
    """One content hash of the files a run trains on that an earlier stage wrote (sha256 over each file's name and
    content, in name order, first 16 hex digits): rewritten files change it, a moved folder does not. Missing files
    are left out (the stage's data check names them); ``None`` when none exists."""
    existing = sorted((os.path.basename(os.fspath(p)), os.fspath(p)) for p in paths if os.path.isfile(p))
    if not existing:
        return None
    digest = hashlib.sha256()
    for name, path in existing:
        digest.update(name.encode() + b"\0" + _sha256(path))
    return digest.hexdigest()[:16]


class RunSettingsMismatchError(ValueError):
    """A checkpoint was written by a run with other settings than this one's."""


class RunSettings:
    """A run's settings as a checkpoint object: ``state_dict`` is what the saver writes, ``check`` what a resume runs.

    Args:
        settings: setting name -> value (plain values; see :func:`plain_setting`).

    Examples::

        AtomicCheckpointSaver(..., run_settings={"adversarial": True, "seed": 0})
        ResumeFromLatest(..., run_settings={"adversarial": True, "seed": 0})
    """

    def __init__(self, settings: Mapping[str, Any]) -> None:
        if not isinstance(settings, Mapping):
            raise TypeError(f"run_settings must map setting names to values, got {type(settings).__name__}.")
        self.settings = plain_setting(settings)

    def state_dict(self) -> dict[str, Any]:
        return dict(self.settings)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Nothing to restore: the settings are this run's (``check`` compares them before a resume)."""

    def check(self, saved: Mapping[str, Any] | None, path: str) -> None:
        """Refuse to resume from ``path`` when its recorded settings differ from this run's.

        A setting recorded on one side only (a checkpoint of an earlier bundle version, or a setting added since) is
        not compared, and neither is a checkpoint without a record; both are logged.

        Raises:
            RunSettingsMismatchError: naming ``path``, each differing setting with both values, and the fix.
        """
        if saved is None:
            logger.warning(f"{path} records no run settings (written by an earlier version): they are not checked.")
            return
        saved = plain_setting(saved)
        shared = [key for key in self.settings if key in saved]
        one_side = sorted(set(self.settings).symmetric_difference(saved))
        if one_side:
            logger.info(f"{path}: settings recorded on one side only, not compared: {', '.join(one_side)}.")
        changed = [key for key in shared if saved[key] != self.settings[key]]
        if changed:
            shown = "; ".join(f"{key}: {saved[key]!r} in the checkpoint, {self.settings[key]!r} now" for key in changed)
            raise RunSettingsMismatchError(
                f"{path} was written by a run with other settings ({shown}): resuming it would train one model "
                "under two settings. Give this run its own --ckpt_dir (an ablation, another seed), start afresh "
                "with --resume false (the earlier checkpoints are moved aside, not deleted), or resume with the "
                "recorded values."
            )
