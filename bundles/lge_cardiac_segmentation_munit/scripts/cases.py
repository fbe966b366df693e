"""Which MS-CMRSeg patients train which stage, and which are held out for evaluation only."""

from __future__ import annotations

__all__ = ["held_out_patients", "evaluation_cases", "training_cases", "translator_datalists", "epochs_for_iterations"]

import logging
from typing import Sequence

from common.data import DatasetError, mscmrseg_cases, natural_key

logger = logging.getLogger(__name__)

#: the 4 classes of the networks (paper, section 3.2 order BG/LV/MYO/RV) and the MS-CMRSeg values they come from
CLASS_NAMES = ("background", "LV", "MYO", "RV")
MSCMR_VALUES = (500, 200, 600)  # LV, MYO, RV -> classes 1, 2, 3


def held_out_patients(dataset_dir: str, patients: str | Sequence[str] | None = None) -> set[str]:
    """The held-out patients: ``patients`` (names, or one comma-separated string) or, by default, every patient whose
    LGE has a manual label.

    Raises:
        common.data.DatasetError: a named patient has no labelled LGE stack (the folder and the name are given); or,
            by default, every patient with a labelled bSSFP has a labelled LGE (nothing could be trained: a model
            evaluated on that default would be scored on the patients it was trained on).
    """
    labelled = {c["case"] for c in mscmrseg_cases(dataset_dir, "LGE") if "label" in c}
    if patients is None:
        trainable = {c["case"] for c in mscmrseg_cases(dataset_dir, "C0") if "label" in c}
        if trainable and trainable <= labelled:  # training refuses this set, so evaluation must not guess either
            raise DatasetError(
                f"{dataset_dir}: every patient with a labelled bSSFP also has a labelled LGE (MS-CMRSeg's later "
                "release), so holding out the LGE-labelled patients leaves nothing to train on: name the held-out "
                "patients, the same for training and evaluation, e.g. --evaluation_patients "
                "'patient1,patient2,patient3,patient4,patient5' (the 5 LGE labels of the original release)."
            )
        return labelled
    names = [p.strip() for p in patients.split(",")] if isinstance(patients, str) else [str(p) for p in patients]
    names = [n for n in names if n]
    missing = sorted(set(names) - labelled, key=natural_key)
    if not names or missing:
        raise DatasetError(
            f"{dataset_dir}: evaluation_patients {missing or names} have no patientN_LGE.nii.gz with "
            f"patientN_LGE_manual.nii.gz; name patients with labelled LGE (found: {sorted(labelled, key=natural_key)})."
        )
    return set(names)


def evaluation_cases(
    dataset_dir: str, modality: str = "LGE", patients: str | Sequence[str] | None = None
) -> list[dict[str, str]]:
    """The held-out patients' cases (:func:`held_out_patients`): evaluation only, nothing of them (C0 or LGE) is
    trained on.

    MS-CMRSeg 2019 released labels for 5 LGE stacks, which the paper used for validation (section 3.1); the labels of
    its test stacks came later, and with them every patient has a labelled LGE: then name the held-out ones
    (``patients``). ``modality="C0"`` gives the same patients' labelled bSSFP stacks (the premise check:
    bSSFP-only training is scored on held-out bSSFP and on held-out LGE of the same patients).
    """
    held_out = held_out_patients(dataset_dir, patients)
    if modality == "LGE":
        return [c for c in mscmrseg_cases(dataset_dir, "LGE") if c["case"] in held_out and "label" in c]
    return [c for c in mscmrseg_cases(dataset_dir, modality) if c["case"] in held_out and "label" in c]


def training_cases(
    dataset_dir: str, evaluation_patients: str | Sequence[str] | None = None
) -> dict[str, list[dict[str, str]]]:
    """``{"bssfp": labelled C0 cases, "lge": LGE cases}`` of the patients that are not held out for evaluation
    (``evaluation_patients``, as :func:`held_out_patients`).

    A C0 stack without its ``_manual`` label cannot train a segmenter: it is left out, with a warning naming the files
    (MS-CMRSeg's own test patients have none; with your data it is more likely a misnamed label file).

    Raises:
        common.data.DatasetError: no labelled C0 or no LGE is left for training (the folder is named).
    """
    held_out = held_out_patients(dataset_dir, evaluation_patients)
    c0 = [c for c in mscmrseg_cases(dataset_dir, "C0") if c["case"] not in held_out]
    bssfp = [c for c in c0 if "label" in c]
    unlabelled = [c["image"] for c in c0 if "label" not in c]
    if unlabelled:
        logger.warning(
            f"{len(unlabelled)} bSSFP stack(s) left out of training, no <case>_C0_manual.nii.gz beside them: "
            + ", ".join(unlabelled)
        )
    lge = [{"case": c["case"], "image": c["image"]} for c in mscmrseg_cases(dataset_dir, "LGE")]
    lge = [c for c in lge if c["case"] not in held_out]
    for name, cases, what in (
        ("bssfp", bssfp, "patientN_C0.nii.gz with patientN_C0_manual.nii.gz"),
        ("lge", lge, "patientN_LGE.nii.gz"),
    ):
        if not cases:
            raise DatasetError(
                f"{dataset_dir}: no {what} outside the {len(held_out)} evaluation patients; the {name} stages need "
                "some. By default every patient with an LGE label is held out; with MS-CMRSeg's later test labels "
                "every patient has one: name the held-out patients, e.g. --evaluation_patients "
                "'patient1,patient2,patient3,patient4,patient5' (the 5 LGE labels of the original release)."
            )
    return {"bssfp": bssfp, "lge": lge}


def translator_datalists(
    dataset_dir: str, evaluation_patients: str | Sequence[str] | None = None
) -> dict[str, list[dict[str, str]]]:
    """The translator's two unpaired domains: ``{"bssfp": [{"bssfp", "bssfp_label"}], "lge": [{"lge"}]}`` of the
    training patients (:func:`training_cases`); the bSSFP label only centres the crop.

    They are read through ``common.data.UnpairedDataset``, which draws a new partner every time an item is read, so
    no two volumes are tied together for the whole training (as the reference's two shuffled loaders).
    """
    cases = training_cases(dataset_dir, evaluation_patients)
    return {
        "bssfp": [{"bssfp": c["image"], "bssfp_label": c["label"]} for c in cases["bssfp"]],
        "lge": [{"lge": c["image"]} for c in cases["lge"]],
    }


def epochs_for_iterations(iterations: int, items: int, batch_size: int = 1) -> int:
    """The number of epochs of ``items`` per epoch (batches of ``batch_size``) that gives at least ``iterations``
    optimiser steps: how a schedule stated in iterations (the paper's translator, 20k) becomes an engine's epochs."""
    if iterations < 1 or items < 1 or batch_size < 1:
        raise ValueError(f"iterations, items and batch_size must be positive, got {iterations}, {items}, {batch_size}.")
    steps_per_epoch = -(-int(items) // int(batch_size))
    return -(-int(iterations) // steps_per_epoch)


def stage_settings(stages: dict[str, dict], stage: str) -> dict:
    """The settings of one training stage (``configs/train.json``'s ``stages``), refusing an unknown stage name."""
    if stage not in stages:
        raise ValueError(f"stage must be one of {list(stages)} (run in that order), got {stage!r}.")
    return stages[stage]


def synthetic_datalist(path: str) -> list[dict[str, str]]:
    """The synthetic labelled LGE set written by ``configs/generate.json`` (``datalist.json``: image/label pairs)."""
    import json
    import os

    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"synthetic LGE set {path} does not exist; write it first: python -m monai.bundle run --config_file "
            "\"['configs/train.json','configs/generate.json']\" (with the same --member), after the translator."
        )
    with open(path) as f:
        items = json.load(f)["training"]
    folder = os.path.dirname(path)
    return [{key: os.path.join(folder, item[key]) for key in ("image", "label")} for item in items]
