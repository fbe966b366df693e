"""Data: phantoms, real-layout writers and readers, brain source, SR degradation, input validation.

See common/README.md ("Data") and DESIGN.md section 2. Quick start::

    from common.data import write_default_data, emidec_cases, split_cases
    write_default_data("data")                      # or: python -m tools.make_data --out data
    parts = split_cases(emidec_cases("data"), seed=0)
"""

from __future__ import annotations

from common.data.brain import BRAIN_LABELS, BrainPhantom, load_mni152, mni152_paths
from common.data.cardiac_thick import CARDIAC_THICK_LABELS, write_cardiac_thick
from common.data.cine_lge import cine_lge_cases, write_cine_lge
from common.data.class_balance import CLASS_WEIGHTINGS, class_pixel_counts, class_weights_for, median_frequency_weights
from common.data.degradation import (
    acquire_thick_slices,
    area_downsample,
    degrade_through_plane,
    fwhm_to_sigma,
    interpolate_through_plane,
    interpolate_to_thin_slices,
    lowres_slice,
    resize_area,
    slice_profile_blur,
    slice_profile_fwhm,
    thick_slice_affine,
    thick_slice_volume,
    thin_slice_affine,
    through_plane_affine,
)
from common.data.hybrid import roi_slices
from common.data.layouts import (
    DATASETS,
    DEFAULT_SIZES,
    SMALL_SIZES,
    write_acdc,
    write_default_data,
    write_dti_lge_mi,
    write_emidec,
    write_ixi,
    write_mscmrseg,
    write_nifti,
)
from common.data.meningioma import (
    MENINGIOMA_LABELS,
    add_meningioma,
    enhancement_ratio,
    meningioma_params,
    render_meningioma,
    write_meningioma,
)
from common.data.phantom_cardiac import GROUPS, LABEL_SCHEMES, MODALITIES, TISSUES, CardiacPhantom
from common.data.readers import (
    acdc_cases,
    dti_lge_mi_cases,
    dti_lge_mi_split,
    emidec_cases,
    hr_truth_cases,
    ixi_cases,
    mscmrseg_cases,
    natural_key,
    nnunet_cases,
    split_cases,
)
from common.data.unpaired import UnpairedDataset
from common.data.validation import (
    MAKE_DATA_HINT,
    DatasetError,
    check_disjoint,
    check_files_exist,
    check_nifti,
    check_pairs,
    file_slice_axis,
    list_nifti,
    partition_readable,
    slice_axis_of,
)

__all__ = [
    # phantoms
    "CardiacPhantom",
    "TISSUES",
    "MODALITIES",
    "GROUPS",
    "LABEL_SCHEMES",
    "BrainPhantom",
    "BRAIN_LABELS",
    "load_mni152",
    "mni152_paths",
    "add_meningioma",
    "meningioma_params",
    "render_meningioma",
    "enhancement_ratio",
    "MENINGIOMA_LABELS",
    "CARDIAC_THICK_LABELS",
    # writers
    "DATASETS",
    "DEFAULT_SIZES",
    "SMALL_SIZES",
    # class weights
    "CLASS_WEIGHTINGS",
    "class_pixel_counts",
    "class_weights_for",
    "median_frequency_weights",
    "write_default_data",
    "write_dti_lge_mi",
    "write_emidec",
    "write_acdc",
    "write_mscmrseg",
    "write_ixi",
    "write_meningioma",
    "write_cine_lge",
    "write_cardiac_thick",
    "write_nifti",
    # datasets
    "UnpairedDataset",
    # readers
    "dti_lge_mi_cases",
    "emidec_cases",
    "acdc_cases",
    "mscmrseg_cases",
    "ixi_cases",
    "nnunet_cases",
    "hr_truth_cases",
    "cine_lge_cases",
    "split_cases",
    "dti_lge_mi_split",
    "natural_key",
    # degradation
    "slice_profile_blur",
    "slice_profile_fwhm",
    "fwhm_to_sigma",
    "degrade_through_plane",
    "interpolate_through_plane",
    "through_plane_affine",
    "acquire_thick_slices",
    "thick_slice_affine",
    "thin_slice_affine",
    "thick_slice_volume",
    "interpolate_to_thin_slices",
    "area_downsample",
    "resize_area",
    "lowres_slice",
    # hybrid U-SSL set
    "roi_slices",
    # validation
    "DatasetError",
    "MAKE_DATA_HINT",
    "check_nifti",
    "check_pairs",
    "check_disjoint",
    "check_files_exist",
    "partition_readable",
    "slice_axis_of",
    "file_slice_axis",
    "list_nifti",
]
