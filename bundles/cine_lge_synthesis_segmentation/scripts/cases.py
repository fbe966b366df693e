"""Which patients train, validate and test PSCGAN, and the per-slice items every config reads.

The dataset is the CineLGE layout (``common.data.cine_lge_cases``): one folder per patient with a 2D+T cine stack
``(X, Y, S, T)``, its end-diastolic LGE ``(X, Y, S)`` and 4-class label ``(X, Y, S)``. Patients are split once,
deterministically by ``seed`` (``common.data.split_cases``), so that no patient's slices fall into two splits; each
split is then expanded to one item per short-axis slice (the networks take one 2D+T slice).
"""

from __future__ import annotations

__all__ = ["patient_split", "slice_items"]

from common.data import DatasetError, check_nifti, cine_lge_cases, file_slice_axis, split_cases


def patient_split(
    dataset_dir: str, fractions: tuple[float, float, float] = (0.65, 0.1, 0.25), seed: int = 0
) -> dict[str, list[dict[str, str]]]:
    """``{"train", "val", "test"}`` -> CineLGE cases (``{"case", "cine", "lge", "label"}``), disjoint by patient.

    The default fractions follow the paper (6.3: 3/4 of the patients train, 1/4 test), with a tenth of them moved
    from training to validation for model selection.

    Raises:
        common.data.DatasetError: fewer than 3 patients (the folder is named).
    """
    cases = cine_lge_cases(dataset_dir)
    if len(cases) < 3:
        raise DatasetError(
            f"{dataset_dir}: {len(cases)} patient folder(s); training, validation and test need at least 3 "
            "(python -m tools.make_data --datasets CineLGE writes 100)."
        )
    return split_cases(cases, fractions=tuple(fractions), seed=seed)


def slice_items(cases: list[dict[str, str]]) -> list[dict]:
    """One item per short-axis slice: the case's files, ``slice`` (index in the stack) and ``n_slices``.

    Every file is read once here (``common.data.check_nifti``), so a missing, corrupt or truncated file, NaN voxels,
    a cine that is not 4D or an LGE / label that is not 3D is refused naming the file before any training starts.
    """
    items = []
    for case in cases:
        shape = check_nifti(case["cine"], ndim=4)
        for key in ("lge", "label"):
            check_nifti(case[key], ndim=3)
        n_slices = int(shape[file_slice_axis(case["cine"])])  # (S, X, Y, T) files are moved slices-last on loading
        items += [{**case, "slice": k, "n_slices": n_slices} for k in range(n_slices)]
    return items
