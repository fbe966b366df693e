"""Which thick-slice subjects train, validate and test REHRSeg, and where their derived files live.

Every stage reads the nnU-Net raw layout (``imagesTr/<case>_0000.nii.gz``, ``labelsTr/<case>.nii.gz``): thick-slice
images with LR annotations only. The subjects are split once, deterministically by ``seed``
(``common.data.split_cases``): the self-SR networks and the segmenter train on ``train``, the segmenter is selected
on ``val`` by LR Dice (no HR label exists there either), and ``test`` is only ever scored, by ``evaluate.json``,
against the HR truth that is kept apart (``Meningioma_HR``). No training config can reach the HR truth: the split
functions below read ``dataset_dir`` only.
"""

from __future__ import annotations

__all__ = [
    "LR_INPUTS",
    "LR_TARGETS",
    "UNCERTAINTY_SCALINGS",
    "minmax_uncertainty",
    "subject_split",
    "pseudo_hr_paths",
    "pseudo_hr_files",
    "pseudo_hr_datalist",
    "thin_grid_keys",
    "hr_truth_datalist",
    "evaluation_datalist",
]

import os

from common.checkpoint import require_stage_output
from common.data import DatasetError, file_slice_axis, nnunet_cases, split_cases
from common.transforms import recorded_axis_key

#: where the stage-2 segmenter's thick-slice input comes from (``pseudo_hr_datalist``)
LR_INPUTS = ("pseudo_hr", "acquired")
#: what the LR head learns: the user's own LR annotation, or the pseudo-HR label's thick slices (the public code's)
LR_TARGETS = ("annotation", "pseudo_hr")
#: how stage 2 takes the UASR uncertainty before weighting: min-max to [0, 1] per subject (the public code's
#: zeroonenorm) or as the UASR head gives it (a sigmoid, already in [0, 1]; near the image error it was trained on)
UNCERTAINTY_SCALINGS = ("minmax", "raw")


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


def pseudo_hr_files(cases: list[dict[str, str]], pseudo_hr_dir: str) -> list[str]:
    """Every pseudo-HR file of ``cases`` (image, label, uncertainty): what the segmenter's ``run_settings`` records by
    content (``common.run_settings.files_fingerprint``), so a resume after ``pseudo_hr.json --overwrite true`` wrote
    other volumes is refused."""
    return [path for case in cases for path in pseudo_hr_paths(pseudo_hr_dir, case["case"]).values()]


def pseudo_hr_datalist(
    cases: list[dict[str, str]],
    pseudo_hr_dir: str,
    hint: str,
    lr_input: str = "pseudo_hr",
    lr_target: str = "annotation",
) -> list[dict[str, str]]:
    """Stage-2 training items: each case's pseudo-HR files, its LR label and its thick-slice axis (read from the
    acquired file's header, under ``common.transforms.recorded_axis_key("image")``: what ``SlicesLastd(axis="auto",
    reference_key="image")`` moves every file of the item along).

    ``lr_input`` says where the segmenter's thick-slice input comes from: ``"pseudo_hr"`` (the pseudo-HR image, to be
    re-acquired as thick slices by ``AcquireThickSlicesd``: the public code's and the issue's way) or ``"acquired"``
    (the subject's own thick-slice image, the input the segmenter gets at test time); ``image`` is that file.
    ``lr_target`` says what ``label`` (the LR head's target) is: ``"annotation"``, the subject's own LR label, or
    ``"pseudo_hr"``, the pseudo-HR label (re-acquired as thick slices, partial-volume majority: the public code takes
    every ``s``-th slice of it), where the uncertainty weighting has errors to discount.

    Raises:
        common.checkpoint.MissingStageOutputError: a pseudo-HR file is missing, naming it and ``hint`` (the command
            that writes them).
        ValueError: an unknown ``lr_input`` or ``lr_target``.
    """
    if lr_input not in LR_INPUTS:
        raise ValueError(f"lr_input must be one of {LR_INPUTS}, got {lr_input!r}.")
    if lr_target not in LR_TARGETS:
        raise ValueError(f"lr_target must be one of {LR_TARGETS}, got {lr_target!r}.")
    items = []
    for case in cases:
        paths = pseudo_hr_paths(pseudo_hr_dir, case["case"])
        require_stage_output(list(paths.values()), hint)
        image = paths["image"] if lr_input == "pseudo_hr" else case["image"]
        label = case["label"] if lr_target == "annotation" else paths["hr_label"]
        # the subject's thick axis, from its acquired file: the pseudo-HR files' headers no longer show it
        axis = {recorded_axis_key("image"): file_slice_axis(case["image"])}
        items.append({**paths, "image": image, "label": label, "case": case["case"], **axis})
    return items


def minmax_uncertainty(uncertainty_scaling: str) -> bool:
    """Whether stage 2 min-max scales each subject's uncertainty map (``uncertainty_scaling`` ``"minmax"``).

    With ``"minmax"`` every subject's most uncertain voxel gets weight ``1 - floor`` (0.01) whatever its error; with
    ``"raw"`` the weight follows the error scale the UASR head learnt, so a subject whose pseudo-HR volume is good
    everywhere keeps weights near 1.

    Raises:
        ValueError: an unknown ``uncertainty_scaling``.
    """
    if uncertainty_scaling not in UNCERTAINTY_SCALINGS:
        raise ValueError(f"uncertainty_scaling must be one of {UNCERTAINTY_SCALINGS}, got {uncertainty_scaling!r}.")
    return uncertainty_scaling == "minmax"


def thin_grid_keys(lr_input: str, lr_target: str = "annotation") -> list[str]:
    """The stage-2 keys still on the thin (pseudo-HR) grid that ``AcquireThickSlicesd`` takes to thick slices."""
    keys = ["image", "uncertainty"] if lr_input == "pseudo_hr" else ["uncertainty"]
    return keys + (["label"] if lr_target == "pseudo_hr" else [])


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
