"""The U-SSL hybrid LGE set (paper III.A): our LGE slices plus heart ROIs from public cine/LGE datasets."""

from __future__ import annotations

import logging
import os

from common.data import acdc_cases, dti_lge_mi_cases, dti_lge_mi_split, emidec_cases
from common.data.hybrid import roi_slices
from common.flags import as_flag

__all__ = ["hybrid_lge_slices"]

logger = logging.getLogger(__name__)


def hybrid_lge_slices(
    dataset_dir: str,
    public_dirs: dict[str, str] | None = None,
    use_public_data: bool = True,
    size: int = 64,
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> list[dict]:
    """Unlabelled 2D slices for SSL pre-training, each `{"image": (1, size, size) float32 in [0, 1], "source"}`.

    Only the *training* cases of `dataset_dir` are used (`lge_train` of `common.data.dti_lge_mi_split`, the split
    both DTI-LGE bundles share), so validation/test images never leak into pre-training. `use_public_data=False`
    gives the paper's "_SSL" set; `True` adds the public datasets named in `public_dirs` (keys `acdc`, `emidec`) and
    gives the "_U-SSL" hybrid set. A public folder that is missing raises (no silent fallback): set
    `use_public_data` to false instead.
    """
    own = dti_lge_mi_split(dti_lge_mi_cases(dataset_dir), fractions=split_fractions, seed=seed)["lge_train"]
    slices = roi_slices([{"image": c["lge"], "label": c["mask"]} for c in own], label_key=None, size=size)
    counts = {"own LGE": len(slices)}
    if as_flag(use_public_data, "use_public_data"):
        readers = {"acdc": acdc_cases, "emidec": emidec_cases}
        for name, folder in (public_dirs or {}).items():
            if name not in readers:
                raise ValueError(f"public_dirs: unknown dataset '{name}', expected one of {sorted(readers)}.")
            extra = roi_slices(readers[name](folder), size=size)
            counts[f"{name} ({os.path.basename(os.path.normpath(folder))})"] = len(extra)
            slices += extra
    logger.info("U-SSL pre-training slices: %s, total %d", counts, len(slices))
    return slices
