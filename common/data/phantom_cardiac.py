"""Seeded short-axis cardiac phantom with per-modality contrast (cine bSSFP, LGE, DT-CMR), rendered at any grid.

The anatomy is analytic, in millimetres, so one subject can be rendered at 0.3125 mm (LGE 512x512), 2.5 mm (DTI
64x64) or 1.25 mm (cine stacks) with the same masks; DESIGN.md section 2 is the specification.

Two LGE contrasts exist: ``lge`` (a fixed intensity table, kept bit-for-bit for the datasets built on it) and
``lge_ir``, a physical magnitude inversion-recovery rendering from post-contrast T1 per tissue (see
:meth:`CardiacPhantom.lge_ir_params` and :func:`inversion_recovery_signal`), which the MS-CMRSeg writer uses; its
phase-sensitive (PSIR, signed) reconstruction (``render(..., phase_sensitive=True)``) is CineLGE's LGE.

Motion: over the cycle the endocardium moves inwards (radial shortening) and the LV shortens along its long axis;
the myocardium keeps its volume, so a short-axis ring gains area and normal wall thickens ~40-50 % in systole (the
MINF group's globally hypokinetic remote wall ~30-45 %); scar segments are hypokinetic and barely thicken (transmural
< ~10 %; see :meth:`CardiacPhantom.get_params`, ``_tissue_slice``).
"""

from __future__ import annotations

import math
import zlib
from typing import Sequence

import numpy as np
from common.constants import ACDC_LABELS, EMIDEC_LABELS, MI_LABELS, MSCMR_LABELS, PSCGAN_LABELS
from common.data.degradation import area_downsample
from common.data.diffusion import diffusion_signal, fit_tensor, gradient_directions
from scipy import ndimage

__all__ = ["CardiacPhantom", "TISSUES", "MODALITIES", "GROUPS", "LABEL_SCHEMES", "inversion_recovery_signal"]

#: Tissue classes of the phantom, in the order of the integer tissue map (``scheme="tissue"``).
TISSUES = (
    "air",
    "body",
    "fat",
    "lung",
    "liver",
    "spine",
    "aorta",
    "lv_blood",
    "myocardium",
    "scar",
    "no_reflow",
    "papillary",
    "rv_blood",
    "rv_wall",
)
_T = {name: index for index, name in enumerate(TISSUES)}

#: Contrasts of :meth:`CardiacPhantom.render`. ``bssfp`` is cine/bSSFP (alias ``cine``, ``c0``); ``lge`` an
#: intensity-table LGE; ``lge_ir`` (alias ``ir``) a physical magnitude inversion-recovery LGE. DTI is not an intensity
#: image: :meth:`CardiacPhantom.dti` simulates the diffusion-weighted acquisition and fits S0, MD and FA.
MODALITIES = ("bssfp", "lge", "lge_ir")
_ALIASES = {"cine": "bssfp", "c0": "bssfp", "bssfp": "bssfp", "lge": "lge", "lge_ir": "lge_ir", "ir": "lge_ir"}
_DTI_NAMES = ("dti", "s0", "md", "fa", "dti_md", "dti_fa")

#: ACDC pathology groups; ``MINF`` subjects have scar, ``DCM`` a dilated thin-walled LV, ``HCM`` a thick wall,
#: ``RV`` an enlarged right ventricle.
GROUPS = ("NOR", "MINF", "DCM", "HCM", "RV")

# Mean tissue values per modality (same order as TISSUES), jittered +-10% per subject. bSSFP: chronic infarct (and
# its former no-reflow core) and the papillary muscles are myocardium to a non-enhanced cine: isointense to remote
# myocardium, and they share its per-subject jitter (see _contrast) so that scar is invisible in every cine frame
# (Zhang et al. 2019 Radiology 291:606, "Deep learning for diagnosis of chronic myocardial infarction on nonenhanced
# cardiac cine MRI": chronic infarcts are not visible on cine and are found from wall motion; PSCGAN's premise).
_CONTRAST = {
    #          air  body  fat   lung  liver spine aorta lv    myo   scar  mvo   pap   rv    rvw
    "bssfp": (0.0, 0.30, 0.75, 0.04, 0.32, 0.35, 0.85, 0.95, 0.27, 0.27, 0.27, 0.27, 0.90, 0.28),
    "lge": (0.0, 0.18, 0.55, 0.03, 0.28, 0.25, 0.60, 0.60, 0.06, 0.95, 0.08, 0.12, 0.55, 0.12),
    # DT-CMR tissue tables of CardiacPhantom.dti (S0, MD in 1e-3 mm^2/s, FA): scar and no-reflow are filled in from
    # the subject's remote myocardium and its drawn infarct contrast (dti_params), so their entries here are unused
    "dti": (0.0, 0.32, 0.07, 0.02, 0.24, 0.20, 0.10, 0.10, 0.50, 0.50, 0.50, 0.45, 0.10, 0.40),
    "dti_md": (0.0, 1.20, 0.30, 0.30, 1.10, 0.80, 3.00, 3.00, 1.50, 1.50, 1.50, 1.50, 3.00, 1.50),
    "dti_fa": (0.0, 0.20, 0.10, 0.05, 0.15, 0.10, 0.10, 0.08, 0.42, 0.42, 0.42, 0.35, 0.08, 0.35),
}
# (noise sigma, Rician?, multiplicative texture amplitude, bias-field strength)
_ACQUISITION = {
    "bssfp": (0.025, True, 0.05, 0.15),
    "lge": (0.03, True, 0.06, 0.15),
    "dti": (None, True, 0.08, 0.2),  # noise from the subject's b = 0 SNR (CardiacPhantom.dti_params)
}


# ---------------------------------------------------------------------------------------------- DT-CMR
# _DTI_NOTES: per-subject draws of CardiacPhantom.dti (in vivo DT-CMR of chronic infarction, 2.5 mm in-plane, 8 mm
# slices; DTI_LGE_MI writes S0, MD, FA of one short-axis slice). Literature, never tuned on a segmentation result:
#   remote myocardium  MD 1.5e-3 mm^2/s, FA 0.42 (table, +-10 % per subject): in vivo spin-echo DT-CMR gives MD
#                      ~1.4-1.6 and FA ~0.3-0.45, STEAM MD ~1.0-1.1 and FA ~0.45 (Khalique et al. 2020 JACC
#                      Cardiovasc Imaging 13:1235, the paper's reference [2]; recalled, not re-checked).
#   infarct            MD x (1 + U(0.10, 0.20)), FA x (1 - U(0.15, 0.25)), S0 x (1 + U(0, 0.10)). MD is raised and FA
#                      lowered in chronic infarcts in every DT study: in vivo in pigs (Stoeck et al. 2021 JCMR 23:103)
#                      and humans (Wu et al. 2006 Circulation 114:1036; recalled, not re-checked); ex vivo at
#                      sub-millimetre resolution and SNR > 100 the changes are larger, MD +43 % and FA -35 %
#                      (Pashakhanloo et al. 2016 JCMR, doi:10.1186/s12968-016-0317-3), and in vivo at 2.5 mm
#                      partial volume with remote tissue and the borders dilutes them, hence the smaller ranges. S0
#                      (spin-echo b = 0, T2-weighted) of a chronic scar is near remote: T2 elevation is an acute
#                      (oedema) finding.
#   fibres             cylindrical tensor about a fibre whose helix angle runs linearly from +U(50, 70) degrees at
#                      the endocardium to -U(50, 70) at the epicardium (the transmural helix-angle range of in vivo
#                      DT-CMR, ~ +60 to -60; Khalique 2020); in the infarct the eigenvector keeps the original fibre
#                      pattern (Pashakhanloo 2016). Other tissues: along the long axis.
#   acquisition        b = 0 plus 6 directions at b = 500 s/mm^2 (clinical DT-CMR uses b ~ 450-600 with 6 or more
#                      directions; Khalique 2020), SNR of the myocardial b = 0 image U(10, 20) per voxel after
#                      averaging (Rician, one channel), blood dark at b = 0 (flow dephasing of the motion-compensated
#                      sequences: a blood S0 of ~0.2 of myocardium), log-linear least-squares tensor fit, eigenvalues
#                      clipped to [0, 4e-3] mm^2/s; the coil profile multiplies every image and cancels in the fit.
#   trigger            systolic: contraction U(0.85, 1.0) of end-systole (DT-CMR triggers at the systolic "sweet
#                      spot", where strain effects on the diffusion signal are smallest; Khalique 2020).
# Simplifications: no strain correction, no sheetlet (second eigenvalue) structure, no EPI distortion, single slice.

# ---------------------------------------------------------------------------------------------- physical IR LGE
# Per-subject draws of the ``lge_ir`` contrast (1.5 T, magnitude inversion-recovery gradient echo ~10-20 min after
# 0.1-0.2 mmol/kg of an extracellular gadolinium agent). Post-contrast relaxation follows the fast-exchange model
# R1_post = R1_native + lambda * dR1_blood (R1 = 1/T1, lambda = tissue/blood partition coefficient, blood lambda = 1),
# so the tissue T1s of one subject come from one blood concentration and stay mutually consistent. Every range below
# is a literature value or range, not a value tuned on any segmentation result:
#   native T1 (ms)      blood 1450-1700: Sharma et al. 2006 JMRI 23:323 (1580 +- 130 ms at 1.5 T);
#                       myocardium 950-1070: Messroghli et al. 2017 JCMR 19:75 (MOLLI 1.5 T normal ranges ~950-1050),
#                       aus dem Siepen et al. 2018 Open Heart 5:e000717 (1017 +- 24 ms), Sharma 2006 (1070 +- 30 ms);
#                       infarct = 1.3 x remote (chronic MI native T1 ~30 % above remote: multi-centre native-T1 study,
#                       PMC7363195, 1621 vs 1225 ms at 3 T); liver 550-650, paravertebral/skeletal muscle 850-1010,
#                       vertebral marrow 500-600, subcutaneous fat 260-340 (de Bazelaire et al. 2004 Radiology 230:652:
#                       3 T column 809 / 898 / 586 / 382 ms, T1 ~21 % shorter at 1.5 T; Gold et al. 2004 AJR 183:343:
#                       fat ~290 ms at 1.5 T, recalled, not re-checked); lung ~1250 (rough).
#   lambda              remote myocardium N(0.43, 0.05): Klein et al. 2004 JCMR (0.40 +- 0.07, 0.2 mmol/kg
#                       Gd-DTPA), Sharma 2006 (0.46 +- 0.06), Jerosch-Herold et al. 2008 (0.41 +- 0.06); infarct
#                       N(0.90, 0.09): Klein 2004 (0.90 +- 0.09; Flacke et al. 2001 Radiology 218:703 report the same
#                       elevation in acute and chronic infarcts); no-reflow core 0.8-1.2 x remote (contrast reaches
#                       the microvascular obstruction late, so at 10-20 min its T1 stays near or above remote and the
#                       core is dark at the myocardial null: Klein 2004; Biglands et al. 2012 JCMR 14:66, fig. 18);
#                       fat 0 (fat T1 does not change with gadolinium: Hamilton et al. ISMRM 2013 #1516); liver
#                       0.30-0.45 and skeletal muscle 0.12-0.25 (extracellular volume / (1 - haematocrit),
#                       approximate); marrow 0.15, lung 0.3 (rough; they barely matter: lung has almost no signal).
#   dR1_blood           2.0-3.2 1/s, giving blood T1 260-385 ms (mean ~315), myocardium 360-590 ms (~475), infarct
#                       240-440 ms (~330), liver 310-455 ms, skeletal muscle 520-800 ms, fat 260-340 ms: the
#                       spread of 0.1-0.2 mmol/kg at 10-20 min (aus dem Siepen 2018: myocardium 426 +- 38 ms 15 min
#                       after 0.2 mmol/kg; Warntjes et al. 2010 (3D PSIR T1): R1 2-2.5 1/s healthy, 3.5-4 1/s fibrotic
#                       ~15 min post-contrast; Klein 2004: infarct and blood T1 cross over at ~20 min, so scar is about
#                       as bright as blood, which is why their border is hard to see: Kellman et al. 2005 JMRI 22:605,
#                       infarct-blood CNR 2.9-3.9 in IR images).
#   proton density      relative water/proton content (blood 0.90, myocardium and infarct 0.80, fat 0.90, liver and
#                       muscle 0.75, marrow 0.70, lung 0.03 effective after its T2* decay): approximate textbook values,
#                       the least constrained inputs of the model.
#   TI                  the operator nulls remote myocardium on a TI scout: TI_null = T1_myo * ln(2 / (1 + E)),
#                       E = exp(-T_rep / T1_myo); the TI used is TI_null * (1 + delta), delta ~ U(-0.12, 0.12)
#                       (imperfect nulling; Kellman et al. 2002 MRM 47:372: a TI 15 ms (~5 %) early costs ~25 % of
#                       the infarct-myocardium CNR and practice "exhibits a wide variability").
#   T_rep               2 R-R intervals (inversion every other heartbeat), R-R 0.75-1.1 s ("Revisiting how we perform
#                       LGE CMR", JCMR 2023, doi:10.1186/s12968-023-00925-0, fig. 7: gating factor 2 for 45-100 bpm).
#   washout drift       during the 5-7 min stack the myocardial null TI rises 15-25 ms (Kellman 2002), i.e. 3-8 % of
#                       ~330 ms, while TI stays fixed: dR1_blood falls along the acquisition order (base to apex or the
#                       reverse) so that T1_myo of the last slice is (1 + drift) x that of the first.
#   scar heterogeneity  infarct lambda = remote + (infarct - remote) * clip(1 + h * n, 0.25, 1.25), n a smooth 3D
#                       random field (wavelengths 4-12 mm), h ~ U(0.15, 0.35): patchy enhancement and a grey peri-
#                       infarct zone (Peters et al. 2009 JMRI 30:794: heterogeneous scar, peri-infarct zone).
#   point spread        Gaussian, FWHM 1.0-2.0 mm, on the signed (phase-corrected) signal before the magnitude:
#                       residual cardiac/respiratory motion over a segmented breath-hold acquisition (Kellman & Arai
#                       2012 JMRI 36:529; Peters 2009: 2D LGE is visibly less sharp than its nominal voxel); it blurs
#                       the blood-scar border too and cancels signal where positive and negative magnetisation share a
#                       voxel (the dark rims of magnitude IR, Kellman 2002).
#   coil profile        an anterior and a posterior phased array, each with the on-axis loop sensitivity
#                       (1 + (d / a)^2)^-1.5 at depth d (a = 80-130 mm, posterior/anterior weight 0.6-1.2), combined
#                       root-sum-of-squares (Roemer et al. 1990 MRM 16:192), not intensity-normalised (Kellman 2002
#                       shows why LGE needs surface-coil normalisation), normalised to 1 at the LV centre and times a
#                       smooth random field of strength 0.1; bSSFP has only the smooth field (strength 0.15).
#   noise               Rician, sigma = blood signal at the LV centre / SNR_blood, SNR_blood ~ U(10, 20) per 1.5 mm
#                       acquired voxel: infarct SNR 19-26 and remote 6-7.5 at 1.5 T in ~15-20 mm^3 voxels (RoFo 2005,
#                       doi:10.1055/s-2005-865263: 25.9 +- 13.0 / 7.5 +- 2.6 with 0.15 mmol/kg; an intra-individual
#                       1.5 T / 3 T IR-GRE study with 0.1 mmol/kg: 19.2 / 6.2), blood ~ infarct (above), scaled to the
#                       smaller 1.5 x 1.5 x 5 mm^3 voxel.
# Simplifications: the readout is ignored (no saturation by the segmented FLASH readout, no T1-dependent k-space
# filtering, no T2*: signal = PD * Mz(TI)); one TI per stack; single-compartment tissues; Rician noise of a single
# channel (sum-of-squares coil combination gives non-central chi noise); no ghosting, no fat-water chemical shift.
# Breath-hold positions are not part of the contrast: a writer passes them as ``slice_motion`` (write_mscmrseg does).
_IR_TISSUES = {  # tissue: (native T1 key, lambda key, proton density)
    "air": (None, None, 0.0),
    "body": ("t1_muscle", "lambda_muscle", 0.75),
    "fat": ("t1_fat", None, 0.90),
    "lung": ("t1_lung", "lambda_lung", 0.03),
    "liver": ("t1_liver", "lambda_liver", 0.75),
    "spine": ("t1_marrow", "lambda_marrow", 0.70),
    "aorta": ("t1_blood", "lambda_blood", 0.90),
    "lv_blood": ("t1_blood", "lambda_blood", 0.90),
    "myocardium": ("t1_myo", "lambda_myo", 0.80),
    "scar": ("t1_scar", "lambda_scar", 0.80),
    "no_reflow": ("t1_scar", "lambda_no_reflow", 0.80),
    "papillary": ("t1_myo", "lambda_myo", 0.80),
    "rv_blood": ("t1_blood", "lambda_blood", 0.90),
    "rv_wall": ("t1_myo", "lambda_myo", 0.80),
}
_IR_TEXTURE = 0.04  # multiplicative proton-density texture (tissue heterogeneity), smaller than the table LGE's 0.06
_IR_COIL_RIPPLE = 0.1  # strength of the smooth random field on top of the coil profile


def inversion_recovery_signal(
    t1: np.ndarray | float, ti: float, pd: np.ndarray | float = 1.0, t_rep: float | None = None, magnitude: bool = True
) -> np.ndarray:
    """Inversion-recovery signal ``PD * |1 - 2 exp(-TI/T1) / (1 + exp(-T_rep/T1))|`` (times in ms).

    A perfect inversion every ``t_rep`` with no readout saturation: the magnetisation before each inversion has
    recovered to ``(1 - E) / (1 + E)`` of equilibrium, ``E = exp(-t_rep / T1)``. ``t_rep=None`` is full recovery,
    the textbook ``PD * |1 - 2 exp(-TI / T1)|``, nulled at ``TI = T1 ln 2``. ``magnitude=False`` keeps the sign (a
    phase-sensitive reconstruction).

    Examples::

        >>> round(float(inversion_recovery_signal(450.0, 450.0 * math.log(2))), 12)
        0.0
        >>> round(float(inversion_recovery_signal(300.0, 300.0)), 4)  # |1 - 2/e|
        0.2642
    """
    t1 = np.asarray(t1, dtype=np.float64)
    recovery = 1.0 if t_rep is None else 1.0 + np.exp(-float(t_rep) / t1)
    mz = 1.0 - 2.0 * np.exp(-float(ti) / t1) / recovery
    signal = np.asarray(pd, dtype=np.float64) * mz
    return np.abs(signal) if magnitude else signal


def _null_time(t1: float, t_rep: float | None = None) -> float:
    """TI (ms) nulling a tissue of ``t1`` in :func:`inversion_recovery_signal`."""
    recovery = 1.0 if t_rep is None else 1.0 + math.exp(-t_rep / t1)
    return float(t1 * math.log(2.0 / recovery))


def _scheme(mapping: dict[str, int], dtype: type) -> np.ndarray:
    table = np.zeros(len(TISSUES), dtype=dtype)
    for tissue, name in mapping.items():
        table[_T[tissue]] = name
    return table


#: Tissue -> dataset label lookup tables. Papillary muscles count as cavity (ACDC/EMIDEC convention); scar and
#: no-reflow count as myocardium where a scheme has no scar class; the RV wall is background.
LABEL_SCHEMES = {
    "tissue": np.arange(len(TISSUES), dtype=np.uint8),
    "emidec": _scheme(
        {
            "lv_blood": EMIDEC_LABELS["cavity"],
            "papillary": EMIDEC_LABELS["cavity"],
            "myocardium": EMIDEC_LABELS["myocardium"],
            "scar": EMIDEC_LABELS["infarction"],
            "no_reflow": EMIDEC_LABELS["no_reflow"],
        },
        np.uint8,
    ),
    "acdc": _scheme(
        {
            "rv_blood": ACDC_LABELS["rv"],
            "myocardium": ACDC_LABELS["myocardium"],
            "scar": ACDC_LABELS["myocardium"],
            "no_reflow": ACDC_LABELS["myocardium"],
            "lv_blood": ACDC_LABELS["lv"],
            "papillary": ACDC_LABELS["lv"],
        },
        np.uint8,
    ),
    "mscmr": _scheme(
        {
            "myocardium": MSCMR_LABELS["myocardium"],
            "scar": MSCMR_LABELS["myocardium"],
            "no_reflow": MSCMR_LABELS["myocardium"],
            "lv_blood": MSCMR_LABELS["lv"],
            "papillary": MSCMR_LABELS["lv"],
            "rv_blood": MSCMR_LABELS["rv"],
        },
        np.uint16,
    ),
    "mi": _scheme({"scar": MI_LABELS["infarction"], "no_reflow": MI_LABELS["infarction"]}, np.uint8),
    "pscgan": _scheme(
        {
            "lv_blood": PSCGAN_LABELS["blood_pool"],
            "papillary": PSCGAN_LABELS["blood_pool"],
            "myocardium": PSCGAN_LABELS["myocardium"],
            "scar": PSCGAN_LABELS["scar"],
            "no_reflow": PSCGAN_LABELS["scar"],
        },
        np.uint8,
    ),
}


def _stable(text: str) -> int:
    return zlib.crc32(text.encode())


def _taper(distance: np.ndarray | float, half_width: float) -> np.ndarray:
    """1 at the centre, smoothly 0 at ``|distance| >= half_width``."""
    x = np.clip(np.abs(distance) / half_width, 0.0, 1.0)
    return np.sqrt(np.clip(1.0 - x**4, 0.0, 1.0))


def _wrap(angle: np.ndarray | float) -> np.ndarray:
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


class CardiacPhantom:
    """Random short-axis heart (LV, myocardium, RV, scar, papillary muscles) rendered as cine, LGE or DTI-like MRI.

    DESIGN.md section 2 ("Cardiac phantom"). One seed fixes one subject: its anatomy (an LV half-ellipsoid of
    long-axis length ``L`` with a myocardial ring of angle-dependent thickness, an RV crescent wrapped around the
    septum, papillary muscles, chest/lungs/liver/spine/aorta around it), its scar sectors (transmural or
    sub-endocardial, optionally with a no-reflow core), its contraction over the cardiac cycle (scar segments
    hypokinetic) and its per-modality contrast, bias field and noise. Everything is analytic in millimetres, so
    :meth:`labels` and :meth:`render` give consistent masks and images on any grid; masks never depend on the
    modality. Following TorchIO, :meth:`get_params` draws every random number and rendering is deterministic
    given them (noise is seeded from the subject seed and the grid).

    Geometry. A grid is ``shape`` ``(X, Y)`` (one slice) or ``(X, Y, Z)`` (a stack) with ``spacing``
    ``(dx, dy[, dz])`` in mm. Array axis 0 is x, axis 1 is y (NIfTI order). ``center`` is the in-plane position of
    the field-of-view centre relative to the LV long axis (mm), so ``center=(0, 0)`` is heart-centred. ``z`` is the
    position along the long axis in mm from the base (0) towards the apex (``~L``): the slice position for 2D, the
    first slice for 3D (``None``: mid-ventricular slice, or a stack centred on the ventricle). :meth:`affine` gives
    the voxel-to-world matrix: world = grid frame + a subject offset, so two grids with the same ``center``
    share a field of view (e.g. the LGE 512x512 grid at 0.3125 mm is the DTI 64x64 grid at 2.5 mm subdivided 8x).

    Rendering: the tissue map is evaluated at ``supersample``-times finer points, mapped to tissue values with a
    smooth multiplicative texture, averaged over ``slice_samples`` positions across the slice thickness, area-
    downsampled to the acquisition grid (output grid coarsened by ``acquisition_factor``), multiplied by a smooth bias
    field, given Rician noise, and interpolated back to the output grid (cubic) when ``acquisition_factor > 1``.

    Contrast (values roughly in [0, 1], arbitrary units): ``bssfp`` bright blood, dark myocardium, scar invisible;
    ``lge`` nulled myocardium, bright scar, blood moderately bright, dark no-reflow core (a fixed table);
    ``lge_ir`` the same tissues from physics: post-contrast T1 per tissue, an imperfectly nulling TI, the magnitude
    inversion-recovery signal, patchy scar, motion blur, an unnormalised surface-coil profile and Rician noise at a
    literature blood SNR (:meth:`lge_ir_params`; scar about as bright as blood, fat bright). DT-CMR is simulated
    as an acquisition, not an intensity table: :meth:`dti` (diffusion-weighted images, Rician noise, tensor fit to S0,
    MD, FA; the infarct differs mainly in MD and FA, barely in S0).

    Args:
        seed: subject seed (non-negative int).
        group: ACDC pathology group, one of :data:`GROUPS`; ``None`` draws one uniformly.
        scar: whether the subject has scar; ``None`` means ``group == "MINF"``. ``scar=True`` with another group
            gives that group's shape plus scar.
        no_reflow: whether a scar has a no-reflow (microvascular obstruction) core; ``None`` draws it (p=0.4).
        papillary: whether papillary muscles are present; ``None`` draws it (p=0.85).

    Raises:
        ValueError: ``seed`` negative or ``group`` unknown.

    Examples::

        >>> phantom = CardiacPhantom(seed=3, group="MINF")
        >>> phantom.render("lge", (64, 64), (2.5, 2.5)).shape
        (64, 64)
        >>> phantom.labels((64, 64, 8), (2.5, 2.5, 10.0), scheme="acdc").shape
        (64, 64, 8)
    """

    def __init__(
        self,
        seed: int = 0,
        group: str | None = None,
        scar: bool | None = None,
        no_reflow: bool | None = None,
        papillary: bool | None = None,
    ) -> None:
        if isinstance(seed, bool) or int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
        if group is not None and group not in GROUPS:
            raise ValueError(f"group must be one of {GROUPS} or None, got {group!r}.")
        self.seed = int(seed)
        rng = np.random.default_rng([self.seed, 1])
        self.params = self.get_params(rng, group, scar, no_reflow, papillary)
        self._geometry_cache: dict[tuple, dict] = {}
        self._geometry_bytes = 0
        self._texture_cache: dict[tuple, np.ndarray] = {}
        self._lge_ir: dict | None = None

    # ------------------------------------------------------------------ parameters
    @staticmethod
    def get_params(
        rng: np.random.Generator,
        group: str | None = None,
        scar: bool | None = None,
        no_reflow: bool | None = None,
        papillary: bool | None = None,
    ) -> dict:
        """Draw one subject's anatomy, motion and placement (all lengths in mm, angles in radians)."""
        u = rng.uniform
        group = str(rng.choice(GROUPS)) if group is None else group
        has_scar = (group == "MINF") if scar is None else bool(scar)
        p: dict = {"group": group, "length": u(76, 92), "r_endo": u(19, 24.5), "thickness": u(7, 10)}
        p["radial_shortening"] = u(0.26, 0.33)
        if group == "DCM":
            p.update(r_endo=u(28, 33), thickness=u(5, 7), radial_shortening=u(0.07, 0.13))
        elif group == "HCM":
            p.update(r_endo=u(15, 19), thickness=u(13, 17), radial_shortening=u(0.33, 0.42))
        elif group == "MINF":
            p.update(radial_shortening=u(0.18, 0.26))
        p["endo_harmonics"] = [(2, u(0.03, 0.09), u(0, 2 * np.pi)), (3, u(0.0, 0.035), u(0, 2 * np.pi))]
        p["thickness_harmonics"] = [(1, u(0.0, 0.14), u(0, 2 * np.pi)), (2, u(0.0, 0.1), u(0, 2 * np.pi))]
        rv_scale = u(1.35, 1.6) if group == "RV" else 1.0
        p["theta_rv"] = np.pi - 0.35 + u(-0.2, 0.2)
        p["rv_radial"] = u(17, 24) * rv_scale
        p["rv_half_angle"] = u(1.0, 1.25) * rv_scale**0.3
        p["rv_asymmetry"] = u(-0.3, 0.3)
        p["rv_wall"] = u(2.5, 3.5)
        p["rv_length"] = u(0.72, 0.85) * p["length"]
        p["rv_shortening"] = u(0.1, 0.16) if group == "RV" else u(0.25, 0.33)
        has_papillary = (rng.uniform() < 0.85) if papillary is None else bool(papillary)
        p["papillary"] = []
        if has_papillary:
            for sign in (-1, 1):
                angle = p["theta_rv"] + np.pi + sign * u(0.45, 0.8)
                p["papillary"].append({"theta": angle, "radius": u(3.0, 5.0)})
        p["papillary_z"] = (u(0.15, 0.25) * p["length"], u(0.65, 0.75) * p["length"])
        p["scar_sectors"] = []
        if has_scar:
            for _ in range(1 if rng.uniform() < 0.75 else 2):
                p["scar_sectors"].append(
                    {
                        "theta": u(0, 2 * np.pi),
                        "half_width": u(0.5, 1.1),
                        "z_center": u(0.3, 0.75) * p["length"],
                        "z_half": u(16, 32),
                        "transmurality": 1.0 if rng.uniform() < 0.5 else u(0.4, 0.75),
                        "jag": [(k, u(0.05, 0.12), u(0, 2 * np.pi)) for k in (5, 7, 11)],
                    }
                )
        p["no_reflow"] = bool(has_scar and ((rng.uniform() < 0.4) if no_reflow is None else no_reflow))
        p["hypokinesis"] = u(0.75, 0.95)
        p["wall_thinning"] = u(0.15, 0.3)
        p["epi_fat"] = [(k, u(0.4, 1.0), u(0, 2 * np.pi)) for k in (1, 2, 3)]
        p["t_es"] = u(0.33, 0.4)
        p["rotation"] = u(-0.35, 0.35)
        p["body_center"] = (u(-40, -20), u(-55, -35))
        p["body_axes"] = (u(150, 180), u(105, 125))
        p["fat_thickness"] = u(8, 16)
        p["lung_axes"] = (u(50, 62), u(75, 90))
        p["lung_offset"] = (u(85, 100), u(0, 20))
        p["liver"] = (u(-75, -50), u(-35, -10), u(80, 100), u(55, 75))
        p["spine_radius"] = u(15, 20)
        p["aorta"] = (u(15, 35), u(-60, -45), u(10, 13))
        p["texture"] = [
            (u(1 / 30, 1 / 6) * math.cos(a), u(1 / 30, 1 / 6) * math.sin(a), u(0, 2 * np.pi))
            for a in rng.uniform(0, 2 * np.pi, 8)
        ]
        p["world_offset"] = tuple(float(v) for v in rng.uniform(-40, 40, 3))
        # Drawn last so that every draw above keeps its value. Longitudinal shortening of the LV in systole (fraction
        # of its long-axis length); myocardium is incompressible, so a short-axis slab of myocardium gains area
        # 1 / (1 - shortening) (see _tissue_slice). Normal: global longitudinal strain -15.9 % to -22.1 % across
        # studies, mean -19.7 % (Yingchoncharoen et al. 2013 JASE 26:185, meta-analysis of 2D speckle tracking); the
        # mid-wall shortening that carries the volume is a little below the endocardial GLS, and a mitral annular
        # excursion of 12-17 mm over a ~90 mm LV gives ~0.13-0.19 (recalled, not re-checked), hence U(0.14, 0.20).
        # DCM: GLS about -5 to -10 %; HCM: reduced despite a normal ejection fraction, about -8 to -14 % (Serri et
        # al. 2006 JACC 47:1175; recalled, not re-checked). Scar segments reduce it like the radial shortening.
        shortening = {"DCM": (0.05, 0.10), "HCM": (0.08, 0.14)}.get(group, (0.14, 0.20))
        p["longitudinal_shortening"] = u(*shortening)
        # Drawn after everything above. Respiratory translation of the heart from end-expiration to end-inspiration
        # in the body frame: caudal 2.4-8.0 mm and anterior -0.4-5.1 mm (the ranges over 10 patients of Shechter et
        # al. 2004 IEEE TMI 23:1046, tidal breathing; its 0.2-3.5 degree rotations are left out). The LV long axis
        # (base to apex) points inferior, anterior and left: inclination from the body's inferior axis 45-70
        # degrees, azimuth between left and anterior 30-60 degrees (textbook anatomy; recalled, not re-checked).
        # The short-axis grid's own orientation about that axis is arbitrary (in_plane_azimuth).
        p["respiratory_shift"] = (u(2.4, 8.0), u(-0.4, 5.1))  # (caudal, anterior) mm
        p["long_axis"] = (math.radians(u(45.0, 70.0)), math.radians(u(30.0, 60.0)))
        p["in_plane_azimuth"] = u(0, 2 * np.pi)
        return p

    @property
    def length(self) -> float:
        """Long-axis length of the LV cavity (mm); the epicardial apex is ``length + 0.9 * thickness``."""
        return float(self.params["length"])

    @property
    def epi_length(self) -> float:
        return float(self.params["length"] + 0.9 * self.params["thickness"])

    def has_scar(self) -> bool:
        return bool(self.params["scar_sectors"])

    def scar_z_range(self) -> tuple[float, float] | None:
        """Long-axis extent (mm from base) of the scar sectors, or ``None`` without scar."""
        if not self.params["scar_sectors"]:
            return None
        lows = [s["z_center"] - s["z_half"] for s in self.params["scar_sectors"]]
        highs = [s["z_center"] + s["z_half"] for s in self.params["scar_sectors"]]
        return max(0.0, min(lows)), min(self.length, max(highs))

    # ------------------------------------------------------------------ cardiac cycle
    def contraction(self, phase: float, n_phases: int = 25) -> float:
        """Contraction ``c`` in [0, 1] at frame ``phase`` of ``n_phases`` (0 end-diastole, 1 end-systole)."""
        t = (float(phase) % n_phases) / n_phases
        t_es = self.params["t_es"]
        if t <= t_es:
            return 0.5 * (1.0 - math.cos(math.pi * t / t_es))
        return 0.5 * (1.0 + math.cos(math.pi * ((t - t_es) / (1.0 - t_es)) ** 0.6))

    def es_phase(self, n_phases: int = 25) -> int:
        """Index of the end-systolic frame (maximal contraction) among ``n_phases`` frames."""
        return int(np.argmax([self.contraction(i, n_phases) for i in range(n_phases)]))

    # ------------------------------------------------------------------ respiration
    def breath_hold_motion(self, levels: Sequence[float] | np.ndarray) -> np.ndarray:
        """Per-slice heart displacement in the short-axis grid for breath-holds at the given respiratory ``levels``.

        ``levels`` (one per slice, 0 end-expiration, 1 end-inspiration) scale the subject's tidal heart translation
        (``params["respiratory_shift"]``: caudal, anterior), which is projected onto the LV long axis (through-plane)
        and the short-axis plane (in-plane, in the grid's axes). Returns ``(len(levels), 4)`` rows for
        ``slice_motion`` (shift x, y, z in mm, angle 0: rotations are left out).
        """
        levels = np.asarray(levels, dtype=np.float64).reshape(-1)
        caudal, anterior = self.params["respiratory_shift"]
        inclination, azimuth = self.params["long_axis"]
        # body frame (left, anterior, inferior); the long axis from base to apex
        axis = np.array([
            math.sin(inclination) * math.cos(azimuth), math.sin(inclination) * math.sin(azimuth), math.cos(inclination)
        ])  # fmt: skip
        first = np.cross(axis, [1.0, 0.0, 0.0])
        first /= np.linalg.norm(first)
        second = np.cross(axis, first)
        turn = self.params["in_plane_azimuth"]
        e_x = math.cos(turn) * first + math.sin(turn) * second
        e_y = -math.sin(turn) * first + math.cos(turn) * second
        shift = np.array([0.0, anterior, caudal])
        per_unit = np.array([shift @ e_x, shift @ e_y, shift @ axis, 0.0])
        return levels[:, None] * per_unit[None, :]

    # ------------------------------------------------------------------ geometry
    def slice_positions(self, n_slices: int, slice_spacing: float, z: float | None = None) -> np.ndarray:
        """Long-axis positions (mm from base) of ``n_slices`` slices ``slice_spacing`` apart starting at ``z``.

        ``z=None`` centres the stack on the ventricle (base to epicardial apex); one slice defaults to mid-ventricle.
        """
        if z is None:
            if n_slices == 1:
                z = 0.45 * self.length
            else:
                z = 0.5 * (self.epi_length - (n_slices - 1) * slice_spacing)
        return float(z) + slice_spacing * np.arange(n_slices)

    @staticmethod
    def _parse_grid(shape: Sequence[int], spacing: Sequence[float]) -> tuple[tuple[int, int, int], tuple[float, ...]]:
        shape = tuple(int(s) for s in shape)
        spacing = tuple(float(s) for s in spacing)
        if len(shape) not in (2, 3) or any(s < 1 for s in shape):
            raise ValueError(f"shape must be (X, Y) or (X, Y, Z) positive sizes, got {shape}.")
        if len(spacing) not in (2, 3) or len(spacing) < len(shape) or any(not s > 0 for s in spacing):
            raise ValueError(f"spacing must give a positive mm size for each axis of shape {shape}, got {spacing}.")
        nz = shape[2] if len(shape) == 3 else 1
        dz = spacing[2] if len(spacing) == 3 else 8.0
        return (shape[0], shape[1], nz), (spacing[0], spacing[1], dz)

    def affine(
        self,
        shape: Sequence[int],
        spacing: Sequence[float],
        center: Sequence[float] = (0.0, 0.0),
        z: float | None = None,
    ) -> np.ndarray:
        """Voxel-to-world ``(4, 4)`` matrix of the grid (the 2D case as ``(X, Y, 1)`` with ``dz = spacing[2]`` or 8 mm).

        Voxel ``(i, j, k)`` has world position ``(cx + (i - (X-1)/2) dx, cy + (j - (Y-1)/2) dy, z_k) + offset``
        where ``offset`` is the subject's world offset; axis-aligned, positive spacing on the diagonal.
        """
        (nx, ny, nz), (dx, dy, dz) = self._parse_grid(shape, spacing)
        z0 = self.slice_positions(nz, dz, z)[0]
        ox, oy, oz = self.params["world_offset"]
        affine = np.diag([dx, dy, dz, 1.0])
        affine[:3, 3] = (ox + center[0] - 0.5 * (nx - 1) * dx, oy + center[1] - 0.5 * (ny - 1) * dy, oz + z0)
        return affine

    def _points(
        self, nx: int, ny: int, dx: float, dy: float, center: Sequence[float], angle: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Anatomical-frame coordinates (mm, float32) of the ``(nx, ny)`` voxel centres.

        ``angle`` (radians) turns the anatomy in the grid by that much more than the subject's own rotation (an
        in-plane misregistration of one acquisition; the grid and its affine do not change).
        """
        gx = (center[0] + (np.arange(nx) - 0.5 * (nx - 1)) * dx).astype(np.float32)
        gy = (center[1] + (np.arange(ny) - 0.5 * (ny - 1)) * dy).astype(np.float32)
        rotation = self.params["rotation"] + float(angle)
        cos, sin = math.cos(rotation), math.sin(rotation)
        x = cos * gx[:, None] + sin * gy[None, :]
        y = -sin * gx[:, None] + cos * gy[None, :]
        return x.astype(np.float32), y.astype(np.float32)

    @staticmethod
    def _slice_motion(slice_motion: np.ndarray | Sequence[Sequence[float]] | None, nz: int) -> np.ndarray:
        """``slice_motion`` as a ``(nz, 4)`` float array (zeros for ``None``), or a ValueError naming the shape."""
        if slice_motion is None:
            return np.zeros((nz, 4))
        motion = np.asarray(slice_motion, dtype=np.float64)
        if motion.shape != (nz, 4) or not np.all(np.isfinite(motion)):
            raise ValueError(
                f"slice_motion must be {nz} finite rows (shift x, shift y, shift z in mm, angle in rad), one per "
                f"slice, got shape {motion.shape}."
            )
        return motion

    @staticmethod
    def _moved(center: Sequence[float], z: float, motion: np.ndarray) -> tuple[tuple[float, float], float, float]:
        """Grid centre, slice position and extra angle at which a slice sees the anatomy moved by ``motion``.

        An anatomy moved by ``+s`` shows at grid point ``g`` what it had at ``g - s``.
        """
        return (center[0] - motion[0], center[1] - motion[1]), float(z - motion[2]), float(motion[3])

    # ------------------------------------------------------------------ tissue map
    def _background(self, x: np.ndarray, y: np.ndarray, z: float) -> np.ndarray:
        p = self.params
        bx, by = p["body_center"]
        ax, ay = p["body_axes"]
        ex, ey = (x - bx) / ax, (y - by) / ay
        tissue = np.where(ex * ex + ey * ey < 1.0, _T["body"], _T["air"]).astype(np.uint8)
        fx, fy = (x - bx) / (ax - p["fat_thickness"]), (y - by) / (ay - p["fat_thickness"])
        inner = fx * fx + fy * fy < 1.0
        tissue[(tissue == _T["body"]) & ~inner] = _T["fat"]
        lx, ly = p["lung_axes"]
        for side in (-1.0, 1.0):
            cx, cy = bx + side * p["lung_offset"][0], by + p["lung_offset"][1]
            lung = ((x - cx) / lx) ** 2 + ((y - cy) / ly) ** 2 < 1.0
            tissue[lung & inner] = _T["lung"]
        growth = float(np.clip((z - 0.35 * self.length) / (0.5 * self.length), 0.0, 1.0))
        if growth > 0:
            lx0, ly0, la, lb = p["liver"]
            liver = ((x - bx - lx0) / (la * growth)) ** 2 + ((y - by - ly0) / (lb * growth)) ** 2 < 1.0
            tissue[liver & inner] = _T["liver"]
        spine = (x - bx) ** 2 + (y - (by - ay + 35.0)) ** 2 < p["spine_radius"] ** 2
        tissue[spine] = _T["spine"]
        ax0, ay0, ar = p["aorta"]
        tissue[(x - bx - ax0) ** 2 + (y - by - ay0) ** 2 < ar * ar] = _T["aorta"]
        return tissue

    def _harmonic(self, theta: np.ndarray, terms: list) -> np.ndarray:
        out = np.ones_like(theta)
        for k, amplitude, phase in terms:
            out += amplitude * np.cos(k * theta - phase)
        return out

    def _scar_fields(self, theta: np.ndarray, z: float) -> tuple[np.ndarray, ...]:
        """Per-angle scar depth (fraction of wall from endocardium), no-reflow depth, and two weights in [0, 1].

        ``weight`` (``taper * transmurality``) sets the chronic wall thinning; ``motion_weight`` (``sqrt(taper) *
        transmurality``, the local transmural extent without the jagged border) sets the hypokinesis: contractile
        function falls with the transmural extent of infarction, already for small extents (Mahrholdt et al. 2003
        JACC 42:505; recalled, not re-checked), so the scar's lateral borders move little, not like remote tissue.
        """
        depth = np.zeros_like(theta)
        core = np.zeros_like(theta)
        weight = np.zeros_like(theta)
        motion = np.zeros_like(theta)
        for index, sector in enumerate(self.params["scar_sectors"]):
            s_z = float(_taper(z - sector["z_center"], sector["z_half"]))
            if s_z <= 0:
                continue
            delta = _wrap(theta - sector["theta"])
            s_t = _taper(delta, sector["half_width"]) * s_z
            jag = self._harmonic(theta, sector["jag"])
            d = np.clip(sector["transmurality"] * np.sqrt(s_t) * jag, 0.0, 1.0)
            d = np.where(d > 0.12, d, 0.0)
            depth = np.maximum(depth, d)
            weight = np.maximum(weight, s_t * sector["transmurality"])
            motion = np.maximum(motion, np.sqrt(s_t) * sector["transmurality"])
            if index == 0 and self.params["no_reflow"]:
                c = np.where((_taper(delta, 0.55 * sector["half_width"]) > 0) & (s_z > 0.5), 0.45 * d, 0.0)
                core = np.maximum(core, np.where(c > 0.1, c, 0.0))
        return depth.astype(np.float32), core.astype(np.float32), weight.astype(np.float32), motion.astype(np.float32)

    @staticmethod
    def _crescent(delta: np.ndarray, half_angle: float, asymmetry: float) -> np.ndarray:
        x = np.clip(delta / half_angle, -1.0, 1.0)
        return (np.clip(1.0 - x * x, 0.0, 1.0) ** 0.6 * (1.0 + asymmetry * x)).astype(np.float32)

    def _geometry(self, x: np.ndarray, y: np.ndarray, z: float) -> dict:
        """Phase-independent part of a slice: background, and the heart's polar fields on the points near it."""
        key = (x.shape, float(x[0, 0]), float(y[0, 0]), float(x[-1, -1]), float(y[-1, -1]), round(float(z), 4))
        if key in self._geometry_cache:
            return self._geometry_cache[key]
        p = self.params
        background = self._background(x, y, z)
        geometry: dict = {"background": background, "heart": False, "z": float(z)}
        length, epi_length = self.length, self.epi_length
        if 0.0 <= z < epi_length:
            f_endo = math.sqrt(max(0.0, 1.0 - (z / length) ** 2)) if z < length else 0.0
            f_epi = math.sqrt(max(0.0, 1.0 - (z / epi_length) ** 2))
            z_rv = p["rv_length"]
            h0 = p["rv_radial"] * math.sqrt(1.0 - (z / z_rv) ** 2) if z < z_rv else 0.0
            reach = (p["r_endo"] * 1.15 + p["thickness"] * 1.3) * f_epi + h0 * 1.3 + p["rv_wall"] + 14.0
            r_all = np.sqrt(x * x + y * y)
            index = np.flatnonzero(r_all.ravel() < reach)
            xs, ys, r = x.ravel()[index], y.ravel()[index], r_all.ravel()[index]
            theta = np.arctan2(ys, xs).astype(np.float32)
            scar_depth, core_depth, scar_weight, motion_weight = self._scar_fields(theta, z)
            endo_shape = p["r_endo"] * self._harmonic(theta, p["endo_harmonics"])
            thick = p["thickness"] * self._harmonic(theta, p["thickness_harmonics"])
            thick = thick * (1.0 - p["wall_thinning"] * scar_weight)
            r_endo0 = endo_shape * f_endo
            r_epi0 = np.maximum((endo_shape + thick) * f_epi, r_endo0 + 1.0)
            delta = _wrap(theta - p["theta_rv"])
            rv_profile = h0 * self._crescent(delta, p["rv_half_angle"], p["rv_asymmetry"])
            wall_profile = (h0 + p["rv_wall"]) * self._crescent(delta, p["rv_half_angle"] + 0.15, p["rv_asymmetry"])
            zone = (r < r_epi0 + 10.0) | (r < r_epi0 + wall_profile + 12.0 * (wall_profile > 0))
            heart_bg = background.ravel()[index]
            heart_bg[zone & (heart_bg == _T["lung"])] = _T["body"]
            fat = self._harmonic(theta, p["epi_fat"]) - 1.6
            kinesis = 1.0 - p["hypokinesis"] * motion_weight  # 1 remote, ~0.05-0.25 in transmural scar
            geometry.update(
                heart=True,
                index=index,
                background_heart=heart_bg,
                r=r.astype(np.float32),
                scale_x=(xs / np.maximum(r, 1e-6)).astype(np.float32),
                scale_y=(ys / np.maximum(r, 1e-6)).astype(np.float32),
                r_endo0=r_endo0.astype(np.float32),
                r_epi0=r_epi0.astype(np.float32),
                area=(r_epi0 * r_epi0 - r_endo0 * r_endo0).astype(np.float32),
                shortening=(p["radial_shortening"] * kinesis).astype(np.float32),
                long_shortening=(p["longitudinal_shortening"] * kinesis).astype(np.float32),
                scar_depth=scar_depth,
                core_depth=core_depth,
                rv_profile=rv_profile,
                wall_profile=wall_profile,
                fat_width=(3.0 * np.maximum(fat, 0.0)).astype(np.float32),
                f_endo=f_endo,
            )
        self._geometry_cache[key] = geometry
        self._geometry_bytes += sum(v.nbytes for v in geometry.values() if isinstance(v, np.ndarray))
        while len(self._geometry_cache) > 1 and (self._geometry_bytes > 2**28 or len(self._geometry_cache) > 64):
            old = self._geometry_cache.pop(next(iter(self._geometry_cache)))
            self._geometry_bytes -= sum(v.nbytes for v in old.values() if isinstance(v, np.ndarray))
        return geometry

    def _tissue_slice(self, x: np.ndarray, y: np.ndarray, z: float, contraction: float) -> np.ndarray:
        """Integer tissue map (``TISSUES`` indices) at anatomical points ``(x, y)``, position ``z``, contraction."""
        g = self._geometry(x, y, z)
        if not g["heart"]:
            return g["background"]
        p, c = self.params, float(contraction)
        r = g["r"]
        r_endo0, area = g["r_endo0"], g["area"]
        r_endo = r_endo0 * (1.0 - g["shortening"] * c)
        # myocardial volume is conserved: the slab shortens along the long axis, so its short-axis area grows
        stretch = 1.0 - g["long_shortening"] * c
        r_epi = np.sqrt(r_endo * r_endo + area / stretch)
        rv_factor = 1.0 - p["rv_shortening"] * c
        tissue = g["background_heart"].copy()
        outside = r >= r_epi
        tissue[outside & (r < r_epi + g["fat_width"])] = _T["fat"]
        tissue[outside & (r < r_epi + g["wall_profile"] * (0.3 + 0.7 * rv_factor))] = _T["rv_wall"]
        tissue[outside & (r < r_epi + g["rv_profile"] * rv_factor)] = _T["rv_blood"]
        myo = ~outside & (r >= r_endo)
        tissue[myo] = _T["myocardium"]
        if p["scar_sectors"]:
            # material (end-diastolic) radius of each point: the area between it and the endocardium scales with
            # the slab's area, so depth is the fraction of the end-diastolic wall between the endocardium and it
            r0 = np.sqrt(r_endo0 * r_endo0 + (r * r - r_endo * r_endo) * stretch)
            depth = (r0 - r_endo0) / (g["r_epi0"] - r_endo0)
            tissue[myo & (depth < g["scar_depth"])] = _T["scar"]
            tissue[myo & (depth < g["core_depth"])] = _T["no_reflow"]
        cavity = r < r_endo
        tissue[cavity] = _T["lv_blood"]
        z_low, z_high = p["papillary_z"]
        if p["papillary"] and z_low <= g["z"] <= z_high and np.any(cavity):
            r0 = r * np.where(r_endo > 0, r_endo0 / np.maximum(r_endo, 1e-6), 1.0)
            x0, y0 = r0 * g["scale_x"], r0 * g["scale_y"]
            for muscle in p["papillary"]:
                tp = np.array([muscle["theta"]], dtype=np.float32)
                rho = float(p["r_endo"] * self._harmonic(tp, p["endo_harmonics"])[0] * g["f_endo"])
                rho -= 0.8 * muscle["radius"]
                px, py = rho * math.cos(muscle["theta"]), rho * math.sin(muscle["theta"])
                disk = (x0 - px) ** 2 + (y0 - py) ** 2 < muscle["radius"] ** 2
                tissue[cavity & disk] = _T["papillary"]
        out = g["background"].copy()
        out.ravel()[g["index"]] = tissue
        return out

    # ------------------------------------------------------------------ public API
    def labels(
        self,
        shape: Sequence[int],
        spacing: Sequence[float],
        *,
        center: Sequence[float] = (0.0, 0.0),
        z: float | None = None,
        phase: float = 0,
        n_phases: int = 25,
        scheme: str = "tissue",
        slice_motion: np.ndarray | Sequence[Sequence[float]] | None = None,
    ) -> np.ndarray:
        """Label map sampled at the voxel centres of the grid (independent of modality).

        Args:
            shape: ``(X, Y)`` or ``(X, Y, Z)``.
            spacing: ``(dx, dy[, dz])`` mm.
            center: field-of-view centre relative to the LV axis, mm.
            z: slice position (2D) or first-slice position (3D) in mm from the base; ``None`` as in
                :meth:`slice_positions`.
            phase: cardiac frame index (0 = end-diastole) out of ``n_phases``.
            n_phases: frames per cycle.
            scheme: ``"tissue"`` (:data:`TISSUES` indices), ``"emidec"``, ``"acdc"``, ``"mscmr"``, ``"mi"`` or
                ``"pscgan"`` (see :data:`LABEL_SCHEMES`).
            slice_motion: per-slice rigid motion of the anatomy in the grid, ``(Z, 4)`` rows ``(shift x mm, shift y
                mm, shift z mm, in-plane angle rad)`` (e.g. each slice's breath-hold position); the grid and its
                affine do not change. ``None``: no motion.

        Returns:
            ``shape`` array, uint8 (uint16 for ``"mscmr"``).
        """
        if scheme not in LABEL_SCHEMES:
            raise ValueError(f"scheme must be one of {sorted(LABEL_SCHEMES)}, got {scheme!r}.")
        (nx, ny, nz), (dx, dy, dz) = self._parse_grid(shape, spacing)
        motion = self._slice_motion(slice_motion, nz)
        c = self.contraction(phase, n_phases)
        table = LABEL_SCHEMES[scheme]
        slices = []
        for k, zk in enumerate(self.slice_positions(nz, dz, z)):
            moved, z_anatomy, angle = self._moved(center, zk, motion[k])
            x, y = self._points(nx, ny, dx, dy, moved, angle)
            slices.append(table[self._tissue_slice(x, y, z_anatomy, c)])
        out = np.stack(slices, axis=-1)
        return out if len(shape) == 3 else out[..., 0]

    def render(
        self,
        modality: str,
        shape: Sequence[int],
        spacing: Sequence[float],
        *,
        center: Sequence[float] = (0.0, 0.0),
        z: float | None = None,
        phase: float = 0,
        n_phases: int = 25,
        supersample: int = 2,
        acquisition_factor: int = 1,
        slice_thickness: float | None = None,
        slice_samples: int = 1,
        noise: bool = True,
        bias: bool = True,
        phase_sensitive: bool = False,
        slice_motion: np.ndarray | Sequence[Sequence[float]] | None = None,
    ) -> np.ndarray:
        """Render one modality on a grid (see the class docstring for the pipeline).

        Args:
            modality: one of :data:`MODALITIES` or an alias (``cine``, ``c0``, ``s0``, ``md``, ``fa``).
            shape, spacing, center, z, phase, n_phases: the grid and frame, as in :meth:`labels`.
            supersample: points per output voxel and axis for the partial-volume average (1 = point sampling).
            acquisition_factor: the image is acquired on a grid this many times coarser (noise lives there) and
                interpolated to the output grid; ``shape[:2]`` must be divisible by it.
            slice_thickness: mm through-plane (default ``0.8 * dz``); used when ``slice_samples > 1``.
            slice_samples: positions averaged across the slice thickness (through-plane partial volume).
            noise: add noise (Rician for magnitude images, Gaussian for MD/FA maps).
            bias: multiply by the smooth bias field.
            phase_sensitive: ``lge_ir`` only: the phase-sensitive (PSIR) reconstruction, the real part of the
                phase-corrected signal with Gaussian noise, signed (tissue below its null is negative, so a too-short
                TI leaves myocardium darker than scar instead of brighter: Kellman et al. 2002 MRM 47:372), instead
                of the magnitude image.
            slice_motion: per-slice rigid motion of the anatomy, as in :meth:`labels` (the bias field and the coil
                stay with the scanner; noise does not depend on it).

        Returns:
            float32 array of ``shape``, values roughly in [0, 1] (MD in 1e-3 mm^2/s; PSIR signed).

        Raises:
            ValueError: unknown modality, non-positive factors, a shape not divisible by ``acquisition_factor``, or
                ``phase_sensitive`` with a modality other than ``lge_ir``.
        """
        modality = self._modality(modality)
        for name, value in (("supersample", supersample), ("acquisition_factor", acquisition_factor)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if int(slice_samples) < 1:
            raise ValueError(f"slice_samples must be >= 1, got {slice_samples}.")
        (nx, ny, nz), (dx, dy, dz) = self._parse_grid(shape, spacing)
        if nx % acquisition_factor or ny % acquisition_factor:
            raise ValueError(f"shape {tuple(shape)} is not divisible by acquisition_factor={acquisition_factor}.")
        if phase_sensitive and modality != "lge_ir":
            raise ValueError(f"phase_sensitive applies to the 'lge_ir' modality only, got modality {modality!r}.")
        motion = self._slice_motion(slice_motion, nz)
        if modality == "lge_ir":
            out = self._render_lge_ir(
                (nx, ny, nz),
                (dx, dy, dz),
                center=center,
                z=z,
                contraction=self.contraction(phase, n_phases),
                phase=phase,
                supersample=int(supersample),
                acquisition_factor=int(acquisition_factor),
                slice_thickness=slice_thickness,
                slice_samples=int(slice_samples),
                noise=noise,
                bias=bias,
                phase_sensitive=bool(phase_sensitive),
                motion=motion,
            )
            return out if len(shape) == 3 else out[..., 0]
        ss = int(supersample)
        table, rng_key = self._contrast(modality), _stable(modality)
        sigma, rician, texture_amplitude, bias_strength = _ACQUISITION[modality]
        thickness = 0.8 * dz if slice_thickness is None else float(slice_thickness)
        offsets = thickness * ((np.arange(slice_samples) + 0.5) / slice_samples - 0.5)
        c = self.contraction(phase, n_phases)
        af = int(acquisition_factor)
        ax_, ay_ = self._points(nx // af, ny // af, dx * af, dy * af, center)
        field = self._bias(ax_, ay_, modality, bias_strength) if bias and bias_strength > 0 else None
        slices = []
        for k, zk in enumerate(self.slice_positions(nz, dz, z)):
            moved, z_anatomy, angle = self._moved(center, zk, motion[k])
            x, y = self._points(nx * ss, ny * ss, dx / ss, dy / ss, moved, angle)
            texture = 1.0 + texture_amplitude * self._texture(nx * ss, ny * ss, dx / ss, dy / ss, moved)
            value = np.zeros(x.shape, dtype=np.float32)
            for offset in offsets:
                value += table[self._tissue_slice(x, y, z_anatomy + offset, c)]
            value *= texture
            if len(offsets) > 1:
                value /= len(offsets)
            acquired = area_downsample(value, ss * af)
            if field is not None:
                acquired *= field
            if noise:
                seed = [self.seed, rng_key, int(round(zk * 100)) + 100000, int(round(phase * 1000)), nx, ny, af]
                acquired = self._add_noise(acquired, sigma, rician, np.random.default_rng(seed))
            if af > 1:
                acquired = ndimage.zoom(acquired, af, order=3, grid_mode=True, mode="reflect")
            slices.append(np.maximum(acquired, 0.0).astype(np.float32))
        out = np.stack(slices, axis=-1)
        return out if len(shape) == 3 else out[..., 0]

    def cine(
        self,
        shape: Sequence[int],
        spacing: Sequence[float],
        *,
        n_phases: int = 25,
        modality: str = "bssfp",
        scheme: str = "emidec",
        **kwargs,
    ) -> tuple[np.ndarray, np.ndarray]:
        """All ``n_phases`` frames of the cycle: images and labels with the frame axis last.

        Scar segments are hypokinetic (radial and longitudinal shortening reduced by ``hypokinesis *
        transmurality``: little inward motion and wall thickening), which is what PSCGAN learns scar from.
        ``kwargs`` go to :meth:`render` (``center``, ``z``, ``supersample``, ...).

        Returns:
            ``(images, labels)`` of shape ``(*shape, n_phases)``: float32 and the ``scheme`` dtype.
        """
        label_kwargs = {k: kwargs[k] for k in ("center", "z") if k in kwargs}
        images = [self.render(modality, shape, spacing, phase=t, n_phases=n_phases, **kwargs) for t in range(n_phases)]
        labels = [
            self.labels(shape, spacing, phase=t, n_phases=n_phases, scheme=scheme, **label_kwargs)
            for t in range(n_phases)
        ]
        return np.stack(images, axis=-1), np.stack(labels, axis=-1)

    # ------------------------------------------------------------------ diffusion tensor (DT-CMR)
    def dti_params(self) -> dict:
        """Per-subject draws of the DT-CMR acquisition and of the infarct's diffusion contrast (see ``_DTI_NOTES``)."""
        rng = np.random.default_rng([self.seed, 5])
        u = rng.uniform
        return {
            "snr_b0": u(10.0, 20.0),
            "md_elevation": u(0.10, 0.20),
            "fa_reduction": u(0.15, 0.25),
            "s0_elevation": u(0.0, 0.10),
            "helix_endo": math.radians(u(50.0, 70.0)),
            "helix_epi": -math.radians(u(50.0, 70.0)),
            "contraction": u(0.85, 1.0),
        }

    def _lv_wall(self, x: np.ndarray, y: np.ndarray, z: float, contraction: float) -> tuple[np.ndarray, np.ndarray]:
        """Polar angle about the LV axis and transmural depth (0 endocardium, 1 epicardium; NaN away from the heart)
        of anatomical points, in the deformed (``contraction``) configuration, as :meth:`_tissue_slice` builds it."""
        g = self._geometry(x, y, z)
        theta = np.arctan2(y, x).astype(np.float32)
        depth = np.full(x.shape, np.nan, dtype=np.float32)
        if g["heart"]:
            c = float(contraction)
            r_endo = g["r_endo0"] * (1.0 - g["shortening"] * c)
            r_epi = np.sqrt(r_endo * r_endo + g["area"] / (1.0 - g["long_shortening"] * c))
            depth.ravel()[g["index"]] = (g["r"] - r_endo) / np.maximum(r_epi - r_endo, 1e-6)
        return theta, depth

    def dti(
        self,
        shape: Sequence[int],
        spacing: Sequence[float],
        *,
        center: Sequence[float] = (0.0, 0.0),
        z: float | None = None,
        angle: float = 0.0,
        contraction: float | None = None,
        b_value: float = 500.0,
        n_directions: int = 6,
        supersample: int = 8,
        noise: bool = True,
        bias: bool = True,
        infarct: dict | None = None,
    ) -> dict[str, np.ndarray]:
        """A DT-CMR acquisition: diffusion-weighted images, then S0, MD and FA from a per-voxel tensor fit.

        Each tissue gets an S0 (b = 0 signal), MD and FA (the ``dti``, ``dti_md``, ``dti_fa`` tables, jittered per
        subject); myocardium is a cylindrical tensor about the local fibre, whose helix angle runs linearly from
        ``helix_endo`` to ``helix_epi`` across the wall; the infarct (scar and its no-reflow core) is the subject's
        remote myocardium with MD raised by ``md_elevation``, FA lowered by ``fa_reduction`` and S0 raised by
        ``s0_elevation`` (:meth:`dti_params`; literature in ``_DTI_NOTES``). The b = 0 and ``n_directions``
        b = ``b_value`` images are computed at ``supersample``-times finer points, area-averaged to the grid (partial
        volume), multiplied by the coil bias field (it cancels in the fit), given Rician noise at the subject's
        myocardial b = 0 SNR, and fitted (:func:`common.data.diffusion.fit_tensor`).

        Args:
            shape, spacing, center, z: the grid, as in :meth:`render` (``(X, Y)`` or ``(X, Y, Z)``).
            angle: extra in-plane rotation of the anatomy (radians; a misregistration, the affine is unchanged).
            contraction: cardiac contraction in [0, 1] at the trigger (DT-CMR is triggered in systole); ``None``: the
                subject's drawn ``contraction``.
            b_value: s/mm^2 of the diffusion-weighted images.
            n_directions: gradient directions (6: the classic scheme; more: a Fibonacci half-sphere).
            supersample: points per voxel and axis for the partial-volume average.
            noise, bias: add Rician noise / the coil bias field.
            infarct: overrides of ``md_elevation``, ``fa_reduction``, ``s0_elevation`` (e.g. a contrast sweep).

        Returns:
            ``{"S0", "MD", "FA"}`` of ``shape`` (float32; MD in 1e-3 mm^2/s) and ``"DWI"`` of ``shape + (1 + n,)``
            (b = 0 first) with the gradient directions (in the grid frame) in ``"directions"``.
        """
        q = self.dti_params()
        unknown = set(infarct or {}) - {"md_elevation", "fa_reduction", "s0_elevation"}
        if unknown:
            raise ValueError(f"infarct overrides must be md_elevation, fa_reduction or s0_elevation, got {unknown}.")
        q.update(infarct or {})
        if int(supersample) < 1:
            raise ValueError(f"supersample must be a positive integer, got {supersample!r}.")
        (nx, ny, nz), (dx, dy, dz) = self._parse_grid(shape, spacing)
        ss = int(supersample)
        c = q["contraction"] if contraction is None else float(contraction)
        directions = gradient_directions(n_directions)
        x, y = self._points(nx * ss, ny * ss, dx / ss, dy / ss, center, angle)
        texture = 1.0 + _ACQUISITION["dti"][2] * self._texture(nx * ss, ny * ss, dx / ss, dy / ss, center)
        s0_table, md_table, fa_table = (self._contrast(m).astype(np.float64) for m in ("dti", "dti_md", "dti_fa"))
        for table, key, sign in (
            (s0_table, "s0_elevation", 1),
            (md_table, "md_elevation", 1),
            (fa_table, "fa_reduction", -1),
        ):
            table[[_T["scar"], _T["no_reflow"]]] = table[_T["myocardium"]] * (1.0 + sign * q[key])
        rotation = self.params["rotation"] + float(angle)
        cos, sin = math.cos(rotation), math.sin(rotation)
        ax_, ay_ = self._points(nx, ny, dx, dy, center, angle)
        field = self._bias(ax_, ay_, "dti", _ACQUISITION["dti"][3]) if bias else None
        sigma = float(s0_table[_T["myocardium"]]) / q["snr_b0"]
        lv_wall = np.asarray([_T["myocardium"], _T["scar"], _T["no_reflow"]])
        out: dict[str, list] = {"S0": [], "MD": [], "FA": [], "DWI": []}
        for zk in self.slice_positions(nz, dz, z):
            tissue = self._tissue_slice(x, y, zk, c)
            theta, depth = self._lv_wall(x, y, zk, c)
            fibre = np.zeros(x.shape + (3,), dtype=np.float64)
            fibre[..., 2] = 1.0  # everything else: along the long axis (through-plane)
            wall = np.isin(tissue, lv_wall) & np.isfinite(depth)
            helix = q["helix_endo"] + (q["helix_epi"] - q["helix_endo"]) * np.clip(depth[wall], 0.0, 1.0)
            circ_x, circ_y = -np.sin(theta[wall]), np.cos(theta[wall])  # circumferential, anatomical frame
            fibre[wall, 0] = np.cos(helix) * (cos * circ_x - sin * circ_y)  # into the grid frame
            fibre[wall, 1] = np.cos(helix) * (sin * circ_x + cos * circ_y)
            fibre[wall, 2] = np.sin(helix)
            signals = diffusion_signal(s0_table[tissue] * texture, md_table[tissue], fa_table[tissue], fibre, b_value,
                                       directions)  # fmt: skip
            acquired = np.stack([area_downsample(signals[..., k], ss) for k in range(signals.shape[-1])], axis=-1)
            if field is not None:
                acquired *= field[..., None]
            if noise:
                seed = [self.seed, _stable("dwi"), int(round(zk * 100)) + 100000, nx, ny, len(directions)]
                acquired = self._add_noise(acquired.astype(np.float32), sigma, True, np.random.default_rng(seed))
            fitted = fit_tensor(acquired, b_value, directions)
            for key in ("S0", "MD", "FA"):
                out[key].append(fitted[key])
            out["DWI"].append(acquired.astype(np.float32))
        result = {key: np.stack(values, axis=2) for key, values in out.items()}
        if len(shape) == 2:
            result = {key: value[:, :, 0] for key, value in result.items()}
        result["directions"] = directions
        return result

    # ------------------------------------------------------------------ physical IR LGE
    def lge_ir_params(self) -> dict:
        """This subject's ``lge_ir`` acquisition and tissue parameters (drawn once, from the seed only).

        The ranges and their literature sources are listed at ``_IR_TISSUES`` in this module. Keys: native T1s
        ``t1_*`` (ms) and partition coefficients ``lambda_*``; ``dr1_blood`` (1/s); ``rr`` and ``t_rep`` (ms);
        ``ti_null`` (the remote-myocardium null at the start of the stack) and ``ti`` (the TI used, ``ti_null * (1 +
        ti_offset)``); ``drift`` (relative rise of the myocardial T1 over the stack) and ``base_to_apex`` (acquisition
        order); ``scar_heterogeneity`` and ``patch_waves``; ``psf_fwhm`` (mm); ``coil_radius`` (mm), ``coil_weight``
        (posterior / anterior); ``snr_blood``; ``gain`` (scanner scaling: nominal blood signal 0.45-0.75 of the
        output range); ``t1_post`` (ms, every tissue at the start of the stack, scar without heterogeneity).
        """
        if self._lge_ir is None:
            rng = np.random.default_rng([self.seed, 4, _stable("lge_ir")])
            u = rng.uniform
            q: dict = {"t1_blood": u(1450, 1700), "t1_myo": u(950, 1070)}
            q["t1_scar"] = 1.3 * q["t1_myo"]
            q.update(t1_fat=u(260, 340), t1_liver=u(550, 650), t1_muscle=u(850, 1010), t1_marrow=u(500, 600))
            q["t1_lung"] = 1250.0
            q["lambda_blood"] = 1.0
            q["lambda_myo"] = float(np.clip(rng.normal(0.43, 0.05), 0.32, 0.56))
            q["lambda_scar"] = float(np.clip(rng.normal(0.90, 0.09), 0.70, 1.10))
            q["lambda_no_reflow"] = q["lambda_myo"] * u(0.8, 1.2)
            q.update(lambda_liver=u(0.30, 0.45), lambda_muscle=u(0.12, 0.25), lambda_marrow=0.15, lambda_lung=0.3)
            q["dr1_blood"] = u(2.0, 3.2)
            q["rr"] = u(750, 1100)
            q["t_rep"] = 2.0 * q["rr"]
            q["ti_offset"] = u(-0.12, 0.12)
            q["drift"] = u(0.03, 0.08)
            q["base_to_apex"] = bool(rng.uniform() < 0.5)
            q["scar_heterogeneity"] = u(0.15, 0.35)
            waves = []
            for _ in range(10):  # random 3D directions, mostly in-plane, wavelengths 4-12 mm
                direction = rng.normal(size=3) * np.array([1.0, 1.0, 0.5])
                direction /= np.linalg.norm(direction)
                waves.append((*(2 * np.pi * direction / u(4.0, 12.0)), u(0, 2 * np.pi)))
            q["patch_waves"] = waves
            q["psf_fwhm"] = u(1.0, 2.0)
            q["coil_radius"] = u(80, 130)
            q["coil_weight"] = u(0.6, 1.2)
            q["snr_blood"] = u(10, 20)
            blood_level = u(0.45, 0.75)
            t1_post = {name: self._ir_t1(q, name, 1.0) for name in TISSUES if name != "air"}
            q["t1_post"] = t1_post
            q["ti_null"] = _null_time(t1_post["myocardium"], q["t_rep"])
            q["ti"] = q["ti_null"] * (1.0 + q["ti_offset"])
            blood = float(
                inversion_recovery_signal(t1_post["lv_blood"], q["ti"], _IR_TISSUES["lv_blood"][2], q["t_rep"])
            )
            q["gain"] = blood_level / blood
            self._lge_ir = q
        return dict(self._lge_ir)

    @staticmethod
    def _ir_t1(q: dict, tissue: str, dr1_scale: float, lam: np.ndarray | float | None = None) -> np.ndarray | float:
        """Post-contrast T1 (ms) of ``tissue``: ``1 / (1/T1_native + lambda * dR1_blood * dr1_scale)``."""
        t1_key, lambda_key, _ = _IR_TISSUES[tissue]
        if lam is None:
            lam = 0.0 if lambda_key is None else q[lambda_key]
        r1 = 1000.0 / q[t1_key] + lam * q["dr1_blood"] * dr1_scale  # 1/s
        return 1000.0 / r1

    def _dr1_scale(self, q: dict, progress: float) -> float:
        """Factor on ``dR1_blood`` at ``progress`` in [0, 1] through the stack: myocardial T1 up by ``drift``."""
        r1_native = 1000.0 / q["t1_myo"]
        r1_start = r1_native + q["lambda_myo"] * q["dr1_blood"]
        r1 = r1_start / (1.0 + q["drift"] * progress)
        return (r1 - r1_native) / (q["lambda_myo"] * q["dr1_blood"])

    def _scar_patch(self, q: dict, x: np.ndarray, y: np.ndarray, z: float) -> np.ndarray:
        """Smooth zero-mean unit-variance 3D field (anatomical frame) for the patchy infarct enhancement."""
        field = np.zeros(x.shape, dtype=np.float64)
        for kx, ky, kz, phase in q["patch_waves"]:
            field += np.cos(kx * x + ky * y + (kz * z + phase))
        return field / math.sqrt(0.5 * len(q["patch_waves"]))

    def _ir_slice(self, q: dict, x: np.ndarray, y: np.ndarray, z: float, contraction: float, dr1_scale: float):
        """Signed inversion-recovery signal (``PD * Mz(TI)``, before gain) at the points, slice position ``z``."""
        tissue = self._tissue_slice(x, y, z, contraction)
        t1 = np.ones(len(TISSUES), dtype=np.float64)
        pd = np.zeros(len(TISSUES), dtype=np.float64)
        for name, (_, _, density) in _IR_TISSUES.items():
            if density > 0:
                t1[_T[name]] = self._ir_t1(q, name, dr1_scale)
                pd[_T[name]] = density
        signal = inversion_recovery_signal(t1[tissue], q["ti"], pd[tissue], q["t_rep"], magnitude=False)
        scar = tissue == _T["scar"]
        if scar.any():
            fraction = np.clip(1.0 + q["scar_heterogeneity"] * self._scar_patch(q, x[scar], y[scar], z), 0.25, 1.25)
            lam = q["lambda_myo"] + (q["lambda_scar"] - q["lambda_myo"]) * fraction
            t1_scar = self._ir_t1(q, "scar", dr1_scale, lam)
            signal[scar] = inversion_recovery_signal(t1_scar, q["ti"], pd[_T["scar"]], q["t_rep"], magnitude=False)
        return signal

    def _coil_field(self, x: np.ndarray, y: np.ndarray, q: dict) -> np.ndarray:
        """Anterior + posterior array sensitivity (root-sum-of-squares), 1 at the LV centre, times a smooth ripple."""
        p = self.params
        by, ay = p["body_center"][1], p["body_axes"][1]
        a, w = q["coil_radius"], q["coil_weight"]

        def profile(yy: np.ndarray) -> np.ndarray:
            anterior = (1.0 + (np.maximum(by + ay - yy, 0.0) / a) ** 2) ** -1.5
            posterior = (1.0 + (np.maximum(yy - (by - ay), 0.0) / a) ** 2) ** -1.5
            return np.sqrt(anterior**2 + (w * posterior) ** 2)

        coil = profile(y.astype(np.float64)) / profile(np.zeros(1))[0]
        return coil * self._bias(x, y, "lge_ir", _IR_COIL_RIPPLE)

    def _render_lge_ir(
        self,
        grid: tuple[int, int, int],
        spacing: tuple[float, float, float],
        *,
        center: Sequence[float],
        z: float | None,
        contraction: float,
        phase: float,
        supersample: int,
        acquisition_factor: int,
        slice_thickness: float | None,
        slice_samples: int,
        noise: bool,
        bias: bool,
        phase_sensitive: bool = False,
        motion: np.ndarray,
    ) -> np.ndarray:
        """``lge_ir`` on a parsed grid: signed signal -> partial volume -> PSF -> coil -> Rician noise -> magnitude
        (``phase_sensitive``: Gaussian noise on the signed real part, no magnitude)."""
        (nx, ny, nz), (dx, dy, dz) = grid, spacing
        q = self.lge_ir_params()
        ss, af = supersample, acquisition_factor
        thickness = 0.8 * dz if slice_thickness is None else float(slice_thickness)
        offsets = thickness * ((np.arange(slice_samples) + 0.5) / slice_samples - 0.5)
        ax_, ay_ = self._points(nx // af, ny // af, dx * af, dy * af, center)
        field = self._coil_field(ax_, ay_, q) if bias else None
        psf = q["psf_fwhm"] / (2.0 * math.sqrt(2.0 * math.log(2.0)))  # mm
        gain = q["gain"]
        sigma = gain * float(
            inversion_recovery_signal(q["t1_post"]["lv_blood"], q["ti"], _IR_TISSUES["lv_blood"][2], q["t_rep"])
        )
        sigma /= q["snr_blood"]
        positions = self.slice_positions(nz, dz, z)
        slices = []
        for k, zk in enumerate(positions):
            progress = 0.0 if nz == 1 else (k if q["base_to_apex"] else nz - 1 - k) / (nz - 1)
            scale = self._dr1_scale(q, progress)
            moved, z_anatomy, angle = self._moved(center, zk, motion[k])
            x, y = self._points(nx * ss, ny * ss, dx / ss, dy / ss, moved, angle)
            texture = 1.0 + _IR_TEXTURE * self._texture(nx * ss, ny * ss, dx / ss, dy / ss, moved)
            value = np.zeros(x.shape, dtype=np.float64)
            for offset in offsets:
                value += self._ir_slice(q, x, y, z_anatomy + offset, contraction, scale)
            value *= texture * (gain / len(offsets))
            acquired = area_downsample(value.astype(np.float32), ss * af).astype(np.float64)
            acquired = ndimage.gaussian_filter(acquired, (psf / (dx * af), psf / (dy * af)), mode="nearest")
            if field is not None:
                acquired *= field
            if noise:
                seed = [
                    self.seed,
                    _stable("lge_ir"),
                    int(round(zk * 100)) + 100000,
                    int(round(phase * 1000)),
                    nx,
                    ny,
                    af,
                ]
                rician = not phase_sensitive
                acquired = self._add_noise(acquired.astype(np.float32), sigma, rician, np.random.default_rng(seed))
            acquired = acquired if phase_sensitive else np.abs(acquired)
            if af > 1:
                acquired = ndimage.zoom(acquired, af, order=3, grid_mode=True, mode="reflect")
            slices.append((acquired if phase_sensitive else np.maximum(acquired, 0.0)).astype(np.float32))
        return np.stack(slices, axis=-1)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _modality(modality: str) -> str:
        key = str(modality).lower()
        if key in _DTI_NAMES:
            raise ValueError(
                f"render() has no {modality!r} contrast: DTI is simulated by CardiacPhantom.dti() (diffusion-weighted "
                "images and a tensor fit giving S0, MD and FA)."
            )
        if key not in _ALIASES:
            raise ValueError(f"modality must be one of {MODALITIES} (or aliases {sorted(_ALIASES)}), got {modality!r}.")
        return _ALIASES[key]

    def _contrast(self, modality: str) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 2, _stable(modality)])
        base = np.asarray(_CONTRAST[modality], dtype=np.float32)
        jitter = rng.uniform(0.9, 1.1, base.shape).astype(np.float32)
        if modality == "lge":  # inversion time: how well the healthy myocardium is nulled
            jitter[_T["myocardium"]] = rng.uniform(0.4, 1.6)
        if modality == "bssfp":  # one tissue to a non-enhanced cine (see _CONTRAST)
            jitter[[_T["scar"], _T["no_reflow"], _T["papillary"]]] = jitter[_T["myocardium"]]
        return base * jitter

    def _texture(self, nx: int, ny: int, dx: float, dy: float, center: Sequence[float]) -> np.ndarray:
        """Smooth zero-mean unit-variance field: plane waves in the anatomical frame (separable in the grid), cached."""
        key = (nx, ny, round(dx, 6), round(dy, 6), round(float(center[0]), 6), round(float(center[1]), 6))
        if key not in self._texture_cache:
            if len(self._texture_cache) >= 4:
                self._texture_cache.pop(next(iter(self._texture_cache)))
            self._texture_cache[key] = self._texture_field(nx, ny, dx, dy, center)
        return self._texture_cache[key]

    def _texture_field(self, nx: int, ny: int, dx: float, dy: float, center: Sequence[float]) -> np.ndarray:
        gx = (center[0] + (np.arange(nx) - 0.5 * (nx - 1)) * dx).astype(np.float64)
        gy = (center[1] + (np.arange(ny) - 0.5 * (ny - 1)) * dy).astype(np.float64)
        cos, sin = math.cos(self.params["rotation"]), math.sin(self.params["rotation"])
        field = np.zeros((nx, ny), dtype=np.float64)
        for kx, ky, phase in self.params["texture"]:
            # x = cos*gx + sin*gy, y = -sin*gx + cos*gy in the anatomical frame
            wx, wy = 2 * np.pi * (kx * cos - ky * sin), 2 * np.pi * (kx * sin + ky * cos)
            field += np.outer(np.cos(wx * gx), np.cos(wy * gy + phase)) - np.outer(
                np.sin(wx * gx), np.sin(wy * gy + phase)
            )
        return (field / math.sqrt(0.5 * len(self.params["texture"]))).astype(np.float32)

    def _bias(self, x: np.ndarray, y: np.ndarray, modality: str, strength: float) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 3, _stable(modality)])
        c = rng.normal(0.0, strength, 5)
        xs, ys = x / 100.0, y / 100.0
        return np.exp(c[0] * xs + c[1] * ys + c[2] * xs * ys + 0.5 * c[3] * xs * xs + 0.5 * c[4] * ys * ys)

    @staticmethod
    def _add_noise(image: np.ndarray, sigma: float, rician: bool, rng: np.random.Generator) -> np.ndarray:
        real = image + np.float32(sigma) * rng.standard_normal(image.shape, dtype=np.float32)
        if not rician:
            return real
        imaginary = np.float32(sigma) * rng.standard_normal(image.shape, dtype=np.float32)
        return np.sqrt(real * real + imaginary * imaginary)
