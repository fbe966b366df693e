"""Which IXI subjects train the prior, which train and validate the SR network, and which are held out for testing.

TransMRSR (section 4.1) pre-trains the generative prior on many HR volumes (536) and trains SR on a separate,
small set (25 train / 5 validation / 10 test). Here the subjects are split once, deterministically by ``seed``:
``prior_fraction`` of them for the prior, the rest train/val/test for SR (``common.data.split_cases``), so no
subject is in two roles and no test subject is ever trained or selected on.
"""

from __future__ import annotations

__all__ = ["subject_split", "role_cases", "check_ablation", "record_trained_scale", "check_trained_scale"]

import json
import logging
import os

from common.data import DatasetError, ixi_cases, split_cases
from common.files import write_json_atomically

logger = logging.getLogger(__name__)

#: written beside the SR weights by train.json: the scale they are trained for (the network itself is scale-free, so
#: x4 weights would load into an x8 run without complaint)
TRAINED_SCALE_FILE = "trained_scale.json"

ROLES = ("prior", "train", "val", "test")


def subject_split(
    dataset_dir: str,
    prior_fraction: float = 0.5,
    sr_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    contrast: str = "T1",
) -> dict[str, list[dict[str, str]]]:
    """``{"prior", "train", "val", "test"}`` -> IXI cases (``{"case", "image"}``), disjoint by subject.

    The prior gets ``round(prior_fraction * n)`` subjects (at least 1 when ``prior_fraction > 0``), the rest are
    split by ``sr_fractions``; with 4 or more subjects every role is non-empty.

    Raises:
        common.data.DatasetError: fewer than 4 subjects (the folder is named).
    """
    cases = ixi_cases(dataset_dir, contrast=contrast)
    if len(cases) < 4:
        raise DatasetError(
            f"{dataset_dir}: {len(cases)} IXI {contrast} volume(s); the prior, SR training, validation and test roles "
            "need at least 4 subjects (python -m tools.make_data writes 6)."
        )
    n_prior = min(len(cases) - 3, max(1 if prior_fraction > 0 else 0, round(prior_fraction * len(cases))))
    sr = split_cases(cases[n_prior:], fractions=tuple(sr_fractions), seed=seed)
    return {"prior": cases[:n_prior], **sr}


def role_cases(dataset_dir: str, role: str, **split_args) -> list[dict[str, str]]:
    """The cases of one role (``prior``, ``train``, ``val``, ``test``), refusing an unknown role."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}.")
    return subject_split(dataset_dir, **split_args)[role]


def check_ablation(use_prior: bool | str, use_truncation: bool | str) -> None:
    """Refuse ``use_prior`` false with ``use_truncation`` true: the truncation's centroids are the prior's latents.

    Without a generative prior (the paper's "w/o GP" row) there is no latent space to truncate toward; the centroids
    of some other prior would pull the latents toward another generator's codes.
    """
    from common.flags import as_flag

    if not as_flag(use_prior, "use_prior") and as_flag(use_truncation, "use_truncation"):
        raise ValueError(
            "use_prior false needs use_truncation false: the self-distilled truncation pulls latents toward the "
            "centroids of the prior's latents, and there is no prior ('w/o GP' ablation: --use_prior false "
            "--use_truncation false)."
        )


def record_trained_scale(ckpt_dir: str, scale: int, write: bool = True) -> None:
    """train.json (the last step of ``initialize``, so a stage refused before writes nothing): refuse a folder that
    holds a training at another scale, else write ``<ckpt_dir>/trained_scale.json`` (``write``: the config's
    ``is_main_process``, so one rank writes under torchrun).

    Training x8 into an x4 folder would resume the x4 training state or overwrite its ``model.pt``.

    Raises:
        ValueError: naming the file, both scales and the fix.
    """
    path = os.path.join(ckpt_dir, TRAINED_SCALE_FILE)
    trained = _recorded_scale(path)
    if trained == int(scale):  # recorded by an earlier run of this training
        return
    if trained is not None:
        raise ValueError(
            f"{path}: {ckpt_dir} holds an x{trained} SR training; an x{scale} one there would resume or overwrite it. "
            f"Pass --ckpt_dir <another folder> for x{scale} (the prior can stay: --prior_dir "
            f"{os.path.join(ckpt_dir, 'prior')}), or --scale {trained}, or delete {path} and the x{trained} weights "
            "to replace them."
        )
    if not write:
        return
    write_json_atomically(path, {"scale": int(scale)})


def check_trained_scale(weights: str, scale: int) -> None:
    """inference.json: refuse weights trained for another scale than ``scale`` (read from ``trained_scale.json``
    beside them); without that file (weights from elsewhere) say once that the scale is not checked.

    Raises:
        ValueError: naming the file, both scales and the fix.
    """
    path = os.path.join(os.path.dirname(os.path.abspath(weights)), TRAINED_SCALE_FILE)
    trained = _recorded_scale(path)
    if trained is None:
        logger.warning(f"{path} not found: the scale {weights} was trained for is not checked (this run: x{scale}).")
    elif trained != int(scale):
        raise ValueError(
            f"{path}: {weights} was trained for x{trained}, this run is set to x{scale}. Pass --scale {trained} for "
            f"x{trained} volumes, or --ckpt_dir of an x{scale} training (python -m monai.bundle run --config_file "
            f"configs/train.json --scale {scale} --ckpt_dir <folder>)."
        )


def _recorded_scale(path: str) -> int | None:
    """The scale in a ``trained_scale.json``, or ``None`` when there is none."""
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return int(json.load(f)["scale"])
