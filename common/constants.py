"""Dataset label values, defined once (STYLE.md rule 6)."""

from __future__ import annotations

__all__ = ["EMIDEC_LABELS", "ACDC_LABELS", "MSCMR_LABELS", "MI_LABELS", "PSCGAN_LABELS", "DTI_CHANNELS"]

# EMIDEC (LGE with scar): https://emidec.com/dataset
EMIDEC_LABELS = {"background": 0, "cavity": 1, "myocardium": 2, "infarction": 3, "no_reflow": 4}
# ACDC cine bSSFP ground truth
ACDC_LABELS = {"background": 0, "rv": 1, "myocardium": 2, "lv": 3}
# MS-CMRSeg 2019 manual labels
MSCMR_LABELS = {"background": 0, "myocardium": 200, "lv": 500, "rv": 600}
# Binary MI mask of the paired DTI-LGE set (the SwinSSegNet / CycleGANSeg paper's private layout)
MI_LABELS = {"background": 0, "infarction": 1}
# PSCGAN's diagnosis-related tissue segmentation (cine -> LGE-equivalent + mask; the CineLGE set): papillary muscles
# count as blood pool, a no-reflow core as scar
PSCGAN_LABELS = {"other": 0, "blood_pool": 1, "myocardium": 2, "scar": 3}
# Channels of the DTI_LGE_MI set's DTI.nii.gz, in file order along the last axis (X, Y, 1, channel): S0 (fitted
# b = 0 signal, arbitrary units), MD (mean diffusivity, 1e-3 mm^2/s) and FA (fractional anisotropy), all three from a
# diffusion-tensor fit of the simulated diffusion-weighted images (common.data.phantom_cardiac.CardiacPhantom.dti)
DTI_CHANNELS = ("S0", "MD", "FA")
