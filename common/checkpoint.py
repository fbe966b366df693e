"""Checkpoint helpers: newest checkpoint of a run, weight loads that prove they loaded, required weight files.

MONAI's ``CheckpointLoader(strict=False)`` logs "Restored all variables" even when nothing matched, so transfers
(SSL encoder -> segmentation network) go through ``load_encoder``, which counts the keys it copied and raises
below ``min_keys``. Every load uses ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

__all__ = [
    "latest_checkpoint",
    "set_aside_checkpoints",
    "load_encoder",
    "load_weights",
    "require_weights",
    "optional_weights",
    "require_trained_weights",
    "training_record",
    "TRAINING_RECORD_KEY",
    "require_stage_output",
    "MissingStageOutputError",
    "extract_state_dict",
    "require_weights_fit",
    "WeightsMismatchError",
]

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from common.distributed import unwrap
from common.typing import PathLike
from monai.networks.utils import copy_model_state

logger = logging.getLogger(__name__)

#: checkpoint keys tried, in order, when a CheckpointSaver file holds several objects and no key is given
NETWORK_KEYS = ("network", "ssl_network", "model", "net", "state_dict")
#: checkpoint entry in which a training run records what the saved weights went through (see ``training_record``)
TRAINING_RECORD_KEY = "training_record"
_STEP = re.compile(r"(?:^|_)(epoch|iteration)=(\d+)(?=\.|_|$)")


def _step(name: str) -> tuple[str, int] | None:
    """``("epoch", 3)`` for ``checkpoint_epoch=3.pt``, ``("iteration", 120)`` for ``..._final_iteration=120.pt``."""
    matches = _STEP.findall(name)
    return (matches[-1][0], int(matches[-1][1])) if matches else None


def latest_checkpoint(ckpt_dir: PathLike, pattern: str = "*.pt") -> str | None:
    """Newest checkpoint in ``ckpt_dir`` by the step number in MONAI ``CheckpointSaver`` file names.

    ``CheckpointSaver`` names files ``{prefix}_epoch=N.pt``, ``{prefix}_iteration=N.pt`` and
    ``{prefix}_final_iteration=N.pt``; the one with the largest N is the newest (numerically: 10 after 9). Files
    without such a number (``..._key_metric=0.91.pt``, ``model.pt``) are "best" or exported weights, not resume
    points, and are ignored. If epoch- and iteration-numbered files are mixed, the newest of each kind is taken and
    the more recently modified of the two wins (a WARNING says so).

    Args:
        ckpt_dir: folder of the run's checkpoints; a missing folder means "no checkpoint".
        pattern: glob of candidate files.

    Returns:
        the path as a string, or ``None`` when there is no numbered checkpoint.

    Examples::

        latest_checkpoint("models/ckpt")  # -> "models/ckpt/checkpoint_epoch=12.pt"
    """
    folder = Path(ckpt_dir)
    if not folder.is_dir():
        return None
    newest: dict[str, tuple[int, Path]] = {}
    for path in folder.glob(pattern):
        step = _step(path.name)
        if step is None or not path.is_file():
            continue
        kind, number = step
        if kind not in newest or number > newest[kind][0]:
            newest[kind] = (number, path)
    if not newest:
        return None
    if len(newest) > 1:
        logger.warning(f"{ckpt_dir} mixes epoch- and iteration-numbered checkpoints; taking the newest file on disk.")
    return str(max((entry[1] for entry in newest.values()), key=lambda p: p.stat().st_mtime))


def set_aside_checkpoints(ckpt_dir: PathLike, pattern: str = "*.pt") -> str | None:
    """Move the numbered checkpoints of ``ckpt_dir`` (the files :func:`latest_checkpoint` would resume from) into a
    new ``previous_<UTC time>`` folder inside it; return that folder, or ``None`` when there were none.

    A run started afresh (``--resume false``) over a folder of an earlier, longer run would otherwise leave that run's
    higher-numbered files beside its own: killed before they rotate out, the next resume would pick the earlier run.
    Set aside, they are kept (nothing is deleted) and never resumed from; other files (``model.pt``, "best" weights)
    stay where they are.
    """
    import datetime

    folder = Path(ckpt_dir)
    numbered = [p for p in folder.glob(pattern) if p.is_file() and _step(p.name) is not None] if folder.is_dir() else []
    if not numbered:
        return None
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    target, n = folder / f"previous_{stamp}", 1
    while target.exists():
        n += 1
        target = folder / f"previous_{stamp}_{n}"
    target.mkdir()
    for path in numbered:
        os.replace(path, target / path.name)
    return str(target)


def extract_state_dict(checkpoint: Mapping, key: str | None = None, path: PathLike = "<checkpoint>") -> dict:
    """The network ``state_dict`` inside a loaded checkpoint.

    Handles a bare ``state_dict`` (``torch.save(net.state_dict())``) and a ``CheckpointSaver`` dict of several
    objects (``{"network": ..., "optimizer": ..., "trainer": ...}``): with ``key`` that entry, otherwise the first of
    ``NETWORK_KEYS`` present. A ``module.`` prefix left by saving a DDP-wrapped network is stripped.

    Raises:
        ValueError: naming ``path`` and the available keys when ``key`` is missing or no network entry is found.
    """
    if key is not None:
        if key not in checkpoint:
            raise ValueError(f"{path} has no key {key!r}; keys: {sorted(checkpoint)}.")
        state = checkpoint[key]
    elif checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        state = checkpoint
    else:
        found = [k for k in NETWORK_KEYS if k in checkpoint]
        if not found:
            raise ValueError(f"{path}: no network state found; pass key= one of {sorted(checkpoint)}.")
        state = checkpoint[found[0]]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: entry {key!r} is a {type(state).__name__}, not a state_dict.")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return dict(state)


class WeightsMismatchError(ValueError):
    """A weights file does not fit the network the config built (most often: trained under another overlay)."""


#: how many differing keys a mismatch message lists
_MISMATCH_EXAMPLES = 3


def require_weights_fit(network: torch.nn.Module, state: Mapping, path: PathLike) -> None:
    """Raise ``WeightsMismatchError`` unless ``state`` has exactly ``network``'s keys with the same shapes.

    PyTorch's own error lists every differing tensor and not the likely cause: weights trained with an overlay (the
    quickstart and the tests train with ``configs/tiny.json``, the benchmark with ``configs/quick.json``) loaded by
    a config without it. The message names the file, the first differences, the parameter counts and that fix.

    Args:
        network: the network the weights are for (a DDP wrapper is unwrapped).
        state: the file's ``state_dict`` (see ``extract_state_dict``).
        path: the file, for the message.

    Raises:
        WeightsMismatchError: naming ``path`` when a key is missing, unexpected or of another shape.
    """
    target = unwrap(network).state_dict()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    reshaped = [k for k in target if k in state and tuple(state[k].shape) != tuple(target[k].shape)]
    if not (missing or unexpected or reshaped):
        return
    differences = [f"{k}: {tuple(state[k].shape)} in the file, {tuple(target[k].shape)} here" for k in reshaped]
    differences += [f"{k}: not in the file" for k in missing] + [f"{k}: in the file only" for k in unexpected]
    counts = (
        sum(v.numel() for v in state.values() if isinstance(v, torch.Tensor)),
        sum(v.numel() for v in target.values()),
    )
    # the top-level modules of the absent and surplus keys tell a layout change (a renamed or new part) at a glance
    groups = [
        f"{where}: {', '.join(sorted({k.split('.')[0] + '.' for k in keys}))}"
        for where, keys in (("not in the file", missing), ("in the file only", unexpected))
        if keys
    ]
    raise WeightsMismatchError(
        f"{path} does not fit the network this config builds ({len(reshaped)} tensors of another shape, "
        f"{len(missing)} missing, {len(unexpected)} unexpected; {counts[0]:,} values in the file, {counts[1]:,} "
        f"here{''.join('; keys ' + g for g in groups)}), e.g. {'; '.join(differences[:_MISMATCH_EXAMPLES])}. Weights "
        "trained with an overlay need the same overlay in every later run: the quickstart and the tests train with "
        "configs/tiny.json, the benchmark with configs/quick.json, e.g. --config_file "
        "\"['configs/inference.json','configs/tiny.json']\"; otherwise the file holds another network (or an older "
        "layout of this one): retrain with this config."
    )


def _load(path: PathLike, map_location: str | torch.device | None = "cpu") -> Mapping:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path} does not exist.")
    return torch.load(path, map_location=map_location, weights_only=True)


def load_encoder(
    network: torch.nn.Module,
    path: PathLike,
    prefix: str = "encoder.",
    min_keys: int = 1,
    dst_prefix: str | None = None,
    key: str | None = None,
) -> int:
    """Copy the ``prefix`` weights of a checkpoint (e.g. a U-SSL pre-trained encoder) into ``network``.

    Uses ``monai.networks.utils.copy_model_state``: a checkpoint key ``prefix + k`` is copied to the network key
    ``dst_prefix + k`` when that exists with the same shape; everything else in ``network`` is left as is. The
    number of copied keys is logged and returned, so a transfer that silently matched nothing cannot pass.

    Args:
        network: the network to update in place (a DDP wrapper is unwrapped).
        path: checkpoint file (a bare ``state_dict`` or a ``CheckpointSaver`` dict, see ``extract_state_dict``).
        prefix: key prefix of the weights to take from the checkpoint.
        min_keys: fewest keys that must be copied.
        dst_prefix: key prefix of the same weights in ``network``; default ``prefix``.
        key: entry of a ``CheckpointSaver`` dict holding the network (default: first of ``NETWORK_KEYS``).

    Returns:
        number of keys copied.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: naming ``path`` when fewer than ``min_keys`` keys were copied.

    Examples::

        load_encoder(swin_sseg, "models/ssl/model.pt", prefix="encoder.", min_keys=100)
    """
    dst_prefix = prefix if dst_prefix is None else dst_prefix
    state = extract_state_dict(_load(path), key=key, path=path)
    source = {dst_prefix + k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    target = unwrap(network)
    target_state = target.state_dict()
    mismatched = [k for k, v in source.items() if k in target_state and target_state[k].shape != v.shape]
    _, updated, _ = copy_model_state(target, source, inplace=True)
    logger.info(
        f"load_encoder: copied {len(updated)} of {len(source)} '{prefix}' keys from {path} into "
        f"{len(target_state)} network keys ({len(mismatched)} shape mismatches)."
    )
    if mismatched:
        logger.warning(f"load_encoder: shape mismatch, not loaded: {mismatched[:10]}")
    if len(updated) < min_keys:
        raise ValueError(
            f"load_encoder: only {len(updated)} keys of {path} with prefix {prefix!r} matched the network "
            f"(as {dst_prefix!r}...), fewer than min_keys={min_keys}; checkpoint keys start with "
            f"{sorted({k.split('.')[0] for k in state})[:10]}, network keys with "
            f"{sorted({k.split('.')[0] for k in target_state})[:10]}."
        )
    return len(updated)


def load_weights(
    network: torch.nn.Module,
    path: PathLike,
    key: str | None = None,
    strict: bool = True,
    map_location: str | torch.device | None = "cpu",
) -> int:
    """Load a checkpoint's network weights into ``network`` (``weights_only=True``).

    Args:
        network: network to update in place (a DDP wrapper is unwrapped).
        path: checkpoint file (a bare ``state_dict`` or a ``CheckpointSaver`` dict, see ``extract_state_dict``).
        key: entry of a ``CheckpointSaver`` dict holding the network (default: first of ``NETWORK_KEYS``).
        strict: ``load_state_dict(strict=...)``; even when ``False`` at least one key must match.
        map_location: ``torch.load`` map location.

    Returns:
        number of network keys loaded.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: naming ``path`` if no key matched (``strict=False``).
        WeightsMismatchError: naming ``path`` when ``strict`` and the keys or shapes differ (``require_weights_fit``).

    Examples::

        load_weights(segmentor, require_weights(segmentor_path, "train the Segmentor first: ..."))
    """
    state = extract_state_dict(_load(path, map_location), key=key, path=path)
    target = unwrap(network)
    if strict:
        require_weights_fit(target, state, path)
    result = target.load_state_dict(state, strict=strict)
    loaded = len(set(target.state_dict()) - set(result.missing_keys))
    if loaded == 0:
        raise ValueError(f"load_weights: no key of {path} matched the network ({len(state)} keys in the file).")
    logger.info(f"load_weights: loaded {loaded} keys from {path} ({len(result.missing_keys)} missing).")
    return loaded


def require_weights(path: PathLike, what: str) -> str:
    """Return ``path`` if it is a file, else raise ``FileNotFoundError`` saying how to produce it.

    Used to refuse a stage that must not start from random weights, e.g. CycleGANSeg without a trained Segmentor.

    Args:
        path: the weights file the stage needs.
        what: how to produce it, e.g. ``"train the Segmentor first: python -m monai.bundle run --config_file
            configs/train_segmentor.json"``.

    Raises:
        FileNotFoundError: with ``path`` and ``what`` in the message.

    Examples::

        "segmentor_path": "$common.checkpoint.require_weights(@bundle_root + '/models/segmentor.pt', 'train ...')"
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"required weights file {path} does not exist: {what}")
    return str(path)


def optional_weights(path: PathLike, skipped: str) -> bool:
    """Whether the optional weights file ``path`` exists; if not, say once at WARNING what is ``skipped``.

    For a network that only adds something (an independent judge's metrics in an evaluation), so its absence is
    stated in the log rather than silently dropping the output, and is no error. Resolve it once (a config scalar).

    Args:
        path: the weights file.
        skipped: what runs without it, and how to produce it, e.g. ``"the judge metrics are skipped; train ..."``.

    Examples::

        "use_judge": "$common.checkpoint.optional_weights(@judge_path, 'judge metrics skipped: train the judge')"
    """
    if os.path.isfile(path):
        return True
    logger.warning(f"optional weights file {path} does not exist: {skipped}")
    return False


def training_record(epochs: int, metric_name: str, metric: float) -> dict[str, int | str | float]:
    """The ``TRAINING_RECORD_KEY`` entry a training run saves next to its weights (plain numbers and a string, so the
    file stays loadable with ``torch.load(weights_only=True)``).

    Args:
        epochs: training epochs completed when the weights were saved (the trainer's epoch).
        metric_name: the validation metric, e.g. ``"val_mean_dice"``.
        metric: its value for these weights (NaN when none was computed).

    Examples::

        torch.save({"model": net.state_dict(), TRAINING_RECORD_KEY: training_record(5, "val_mean_dice", 0.71)}, path)
    """
    return {"epochs": int(epochs), "metric_name": str(metric_name), "metric": float(metric)}


def require_trained_weights(path: PathLike, what: str, min_epochs: int = 1) -> str:
    """``require_weights``, and the file must record that its weights were trained (``training_record``).

    A file that exists is not yet a trained network: a hand-made or interrupted checkpoint holds random weights, and a
    stage that needs a trained network (CycleGANSeg's Segmentor) would run without complaint and learn nothing from
    it. The training that writes the weights (``common.handlers.AtomicCheckpointSaver(training_record=True)``) saves
    a ``TRAINING_RECORD_KEY`` entry with the epochs trained and the validation metric; this checks it.

    Args:
        path: the weights file the stage needs.
        what: how to produce it (appended to every error message).
        min_epochs: fewest training epochs the record must show.

    Returns:
        ``path`` as a string.

    Raises:
        FileNotFoundError: ``path`` does not exist (``require_weights``).
        ValueError: naming ``path`` and ``what`` when the file has no training record or records fewer than
            ``min_epochs`` epochs.

    Examples::

        "$common.checkpoint.load_weights(@segmentor, common.checkpoint.require_trained_weights(@segmentor_path, @hint))"
    """
    require_weights(path, what)
    checkpoint = _load(path)
    record = checkpoint.get(TRAINING_RECORD_KEY) if isinstance(checkpoint, Mapping) else None
    if not isinstance(record, Mapping):
        raise ValueError(
            f"{path} has no training record (the {TRAINING_RECORD_KEY!r} entry with the epochs trained and the "
            f"validation metric that the training saves with its weights), so nothing shows that these weights were "
            f"trained: {what}"
        )
    epochs = record.get("epochs")
    if not isinstance(epochs, (int, float)) or epochs < min_epochs:
        raise ValueError(f"{path} records {epochs!r} training epochs, fewer than {min_epochs}: it is untrained: {what}")
    logger.info(f"{path}: trained {epochs} epochs, {record.get('metric_name')} {record.get('metric')}.")
    return str(path)


class MissingStageOutputError(FileNotFoundError):
    """An earlier stage's output (weights, or data such as REHRSeg's pseudo-HR volumes) is not there yet.

    ``path`` is the missing file; ``tools.verify_bundles`` reports a config that stops on it as WARN (the stage
    runs after the one that writes it), not FAIL.
    """

    path: str | None = None


def require_stage_output(paths: PathLike | list[PathLike], what: str) -> list[str]:
    """Return ``paths`` if every one is a file, else raise :class:`MissingStageOutputError` for the first missing one,
    saying how to produce it (``what``)."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    for path in paths:
        if not os.path.isfile(path):
            error = MissingStageOutputError(f"{path} does not exist: {what}")
            error.path = str(path)
            raise error
    return [str(p) for p in paths]
