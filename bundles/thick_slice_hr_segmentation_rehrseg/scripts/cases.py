"""Which thick-slice subjects train, validate and test REHRSeg, and where their derived files live.

Every stage reads the nnU-Net raw layout (``imagesTr/<case>_0000.nii.gz``, ``labelsTr/<case>.nii.gz``): thick-slice
images with LR annotations only. The subjects are split once, deterministically by ``seed``
(``common.data.split_cases``): the self-SR networks and the segmenter train on ``train``, the segmenter is selected
on ``val`` by LR Dice (no HR label exists there either), and ``test`` is only ever scored, by ``evaluate.json``,
against the HR truth that is kept apart (``Meningioma_HR``). No training config can reach the HR truth: the split
functions below read ``dataset_dir`` only.
"""

from __future__ import annotations

__all__ = ["subject_split", "pseudo_hr_paths", "pseudo_hr_datalist", "hr_truth_datalist", "evaluation_datalist"]

import os

from common.checkpoint import require_stage_output
from common.data import DatasetError, nnunet_cases, split_cases


def subject_split(
    dataset_dir: str, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2), seed: int = 0
) -> dict[str, list[dict[str, str]]]:
    """``{"train", "val", "test"}`` -> nnU-Net cases (``{"case", "image", "label"}``), disjoint by subject.

    Raises:
        common.data.DatasetError: fewer than 3 subjects (the folder is named).
    """
    cases = nnunet_cases(dataset_dir)
    if len(cases) < 3:
        raise DatasetError(
            f"{dataset_dir}: {len(cases)} labelled thick-slice volume(s); training, validation and test need at least "
            "3 subjects (python -m tools.make_data writes 40)."
        )
    return split_cases(cases, fractions=tuple(fractions), seed=seed)


def pseudo_hr_paths(pseudo_hr_dir: str, case: str) -> dict[str, str]:
    """The pseudo-HR files of one case: SR image, SR label, UASR uncertainty (thin grid, written by pseudo_hr.json)."""
    return {
        "image": os.path.join(pseudo_hr_dir, f"{case}_image.nii.gz"),
        "hr_label": os.path.join(pseudo_hr_dir, f"{case}_label.nii.gz"),
        "uncertainty": os.path.join(pseudo_hr_dir, f"{case}_uncertainty.nii.gz"),
    }


def pseudo_hr_datalist(cases: list[dict[str, str]], pseudo_hr_dir: str, hint: str) -> list[dict[str, str]]:
    """Stage-2 training items: each case's pseudo-HR files and its real LR label.

    Raises:
        common.checkpoint.MissingStageOutputError: a pseudo-HR file is missing, naming it and ``hint`` (the command
            that writes them).
    """
    items = []
    for case in cases:
        paths = pseudo_hr_paths(pseudo_hr_dir, case["case"])
        require_stage_output(list(paths.values()), hint)
        items.append({**paths, "label": case["label"], "case": case["case"]})
    return items


def hr_truth_datalist(cases: list[dict[str, str]], hr_dir: str) -> list[dict[str, str]]:
    """Evaluation items: the LR image and the held-back HR label (``hr_dir/labelsHR/<case>.nii.gz``) of each case.

    Raises:
        FileNotFoundError: an HR label is missing (naming it).
    """
    items = []
    for case in cases:
        label = os.path.join(hr_dir, "labelsHR", f"{case['case']}.nii.gz")
        if not os.path.isfile(label):
            raise FileNotFoundError(f"{label} does not exist: evaluate.json scores against the HR truth in hr_dir.")
        items.append({"image": case["image"], "lr_label": case["label"], "label": label, "case": case["case"]})
    return items


def evaluation_datalist(cases: list[dict[str, str]], hr_dir: str, grid: str = "hr") -> list[dict[str, str]]:
    """Items scored by ``evaluate.json``: the LR image and the truth on the ``grid`` of the prediction.

    ``grid="hr"``: the held-back HR label (:func:`hr_truth_datalist`); ``grid="lr"``: the LR annotation (the paper's
    claim that REHRSeg also improves LR segmentation).
    """
    if grid == "lr":
        return [{"image": c["image"], "label": c["label"], "case": c["case"]} for c in cases]
    if grid != "hr":
        raise ValueError(f"grid must be 'hr' or 'lr', got {grid!r}.")
    return [{"image": i["image"], "label": i["label"], "case": i["case"]} for i in hr_truth_datalist(cases, hr_dir)]
