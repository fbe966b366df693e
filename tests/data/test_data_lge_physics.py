"""The physical inversion-recovery LGE contrast (``lge_ir``) of CardiacPhantom and the MS-CMRSeg writer that uses it.

Expected ranges come from the literature listed at ``_IR_TISSUES`` in common/data/phantom_cardiac.py (not from
segmentation results). Everything is measured in the phantom's own label masks.
"""

from __future__ import annotations

import hashlib
import math

import nibabel as nib
import numpy as np
import pytest
from common.data import TISSUES, CardiacPhantom, mscmrseg_cases, write_mscmrseg
from common.data.layouts import _subject_seed, _to_int16
from common.data.phantom_cardiac import _null_time, inversion_recovery_signal
from scipy import ndimage

T = {name: index for index, name in enumerate(TISSUES)}
GRID = {"shape": (128, 128), "spacing": (1.25, 1.25), "phase": 17}


def _interior(mask: np.ndarray, iterations: int = 2) -> np.ndarray:
    return ndimage.binary_erosion(mask, iterations=iterations)


def _scar_slice(seed: int, **kwargs) -> tuple[CardiacPhantom, float, np.ndarray]:
    phantom = CardiacPhantom(seed, group="MINF", scar=True, **kwargs)
    low, high = phantom.scar_z_range()
    z = 0.5 * (low + high)
    return phantom, z, phantom.labels(GRID["shape"], GRID["spacing"], z=z, phase=GRID["phase"])


def _means(image: np.ndarray, tissue: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for name in names:
        mask = _interior(tissue == T[name], 2 if name in ("lv_blood", "myocardium") else 1)
        out[name] = float(image[mask].mean()) if mask.sum() >= 5 else math.nan
    return out


def test_inversion_recovery_signal_hand_values():
    # textbook full recovery: |1 - 2 exp(-TI/T1)|
    assert float(inversion_recovery_signal(300.0, 300.0)) == pytest.approx(abs(1 - 2 / math.e), abs=1e-12)
    assert float(inversion_recovery_signal(300.0, 300.0)) == pytest.approx(0.2642411177, abs=1e-9)
    assert float(inversion_recovery_signal(500.0, 250.0, pd=0.8)) == pytest.approx(0.1704490555, abs=1e-9)
    assert float(inversion_recovery_signal(450.0, 450.0 * math.log(2))) == pytest.approx(0.0, abs=1e-12)
    # inversion every 1600 ms: Mz(TI) = 1 - 2 exp(-TI/T1) / (1 + exp(-T_rep/T1)), signed before the magnitude
    signed = float(inversion_recovery_signal(400.0, 200.0, t_rep=1600.0, magnitude=False))
    assert signed == pytest.approx(-0.1912429438, abs=1e-9)
    assert float(inversion_recovery_signal(400.0, 200.0, t_rep=1600.0)) == pytest.approx(-signed)
    # the null time of that model nulls the tissue; long T1 tissue is still negative there (magnitude bright)
    ti = _null_time(450.0, 1800.0)
    assert ti == pytest.approx(450.0 * math.log(2 / (1 + math.exp(-4.0))))
    assert float(inversion_recovery_signal(450.0, ti, t_rep=1800.0)) == pytest.approx(0.0, abs=1e-12)
    values = inversion_recovery_signal(np.array([300.0, 900.0]), ti, t_rep=1800.0, magnitude=False)
    assert values[0] > 0 > values[1]


def test_post_contrast_t1_within_literature_ranges():
    """1.5 T, 10-20 min after 0.1-0.2 mmol/kg (envelopes of the cited studies, e.g. myocardium 426 +- 38 ms at
    0.2 mmol/kg and 540 +- 88 ms in AMI patients; infarct 425 +- 68 ms; fat unchanged by gadolinium)."""
    t1 = {name: [] for name in ("myocardium", "lv_blood", "scar", "fat", "liver", "body")}
    for seed in range(40):
        params = CardiacPhantom(seed).lge_ir_params()
        for name in t1:
            t1[name].append(params["t1_post"][name])
        assert params["ti"] == pytest.approx(params["ti_null"] * (1 + params["ti_offset"]))
        assert abs(params["ti_offset"]) <= 0.12 and 10 <= params["snr_blood"] <= 20
    limits = {
        "myocardium": (340, 620),
        "lv_blood": (240, 420),
        "scar": (220, 460),
        "fat": (250, 350),
        "liver": (300, 470),
        "body": (500, 850),
    }
    for name, (low, high) in limits.items():
        assert low <= min(t1[name]) and max(t1[name]) <= high, (name, min(t1[name]), max(t1[name]))
    assert all(s < m for s, m in zip(t1["scar"], t1["myocardium"]))  # infarct T1 shorter than remote
    assert all(b < m for b, m in zip(t1["lv_blood"], t1["myocardium"]))  # blood shorter than myocardium


@pytest.mark.parametrize("seed", [1, 4, 10])
def test_lge_ir_nulled_myocardium_bright_blood_and_scar_in_masks(seed):
    phantom, z, tissue = _scar_slice(seed)
    image = phantom.render("lge_ir", **GRID, z=z, noise=False, bias=False)
    means = _means(image, tissue, ("lv_blood", "myocardium", "scar", "fat"))
    blood, myo, scar = means["lv_blood"], means["myocardium"], means["scar"]
    # remote myocardium near the null: at most ~1/3 of blood (measured remote SNR 6-7.5 vs infarct 19-26 at 1.5 T)
    assert 0.0 <= myo / blood <= 0.35
    assert blood > 3 * myo  # blood brighter than myocardium
    assert scar > 2.5 * myo and scar > myo + 0.2 * blood  # enhancement
    assert 0.5 <= scar / blood <= 1.3  # infarct about as bright as blood 10-20 min post-contrast (Klein 2004)
    bssfp = phantom.render("bssfp", **GRID, z=z, noise=False, bias=False)
    b_means = _means(bssfp, tissue, ("lv_blood", "myocardium", "scar"))
    assert b_means["scar"] < 1.2 * b_means["myocardium"]  # the scar is what LGE adds


def test_scar_enhancement_is_heterogeneous_and_no_reflow_core_dark():
    phantom = CardiacPhantom(10, group="MINF", scar=True, no_reflow=True)
    z = phantom.params["scar_sectors"][0]["z_center"]  # through the no-reflow core
    tissue = phantom.labels(GRID["shape"], GRID["spacing"], z=z, phase=GRID["phase"])
    assert abs(phantom.lge_ir_params()["ti_offset"]) < 0.05  # TI near the myocardial null
    image = phantom.render("lge_ir", **GRID, z=z, noise=False, bias=False, supersample=1)
    scar = image[_interior(tissue == T["scar"], 1)]
    assert scar.size >= 10 and scar.std() / scar.mean() > 0.1  # patchy (noise-free, bias-free)
    core = _means(image, tissue, ("no_reflow", "scar"))
    assert core["no_reflow"] < 0.5 * core["scar"]


def test_imperfect_nulling_varies_across_subjects():
    ratios, offsets = [], []
    for seed in range(8):
        phantom, z, tissue = _scar_slice(seed)
        image = phantom.render("lge_ir", **GRID, z=z, noise=False, bias=False, supersample=1)
        means = _means(image, tissue, ("lv_blood", "myocardium"))
        ratios.append(means["myocardium"] / means["lv_blood"])
        offsets.append(phantom.lge_ir_params()["ti_offset"])
    assert max(ratios) - min(ratios) > 0.1 and min(ratios) < 0.05  # some nulled well, some grey
    assert min(offsets) < 0 < max(offsets)  # TI early and late
    assert len({round(r, 4) for r in ratios}) == len(ratios)


def test_washout_drift_greys_the_myocardium_along_the_acquisition():
    phantom = CardiacPhantom(2, group="NOR")
    params = phantom.lge_ir_params()
    shape, spacing = (96, 96, 6), (1.5, 1.5, 8.0)
    image = phantom.render("lge_ir", shape, spacing, phase=17, z=20.0, noise=False, bias=False, supersample=1)
    tissue = phantom.labels(shape, spacing, phase=17, z=20.0)
    first, last = (0, 5) if params["base_to_apex"] else (5, 0)
    ratio = []
    for k in (first, last):  # myocardium/blood ratio at each end of the acquisition
        means = _means(image[..., k], tissue[..., k], ("lv_blood", "myocardium"))
        ratio.append(means["myocardium"] / means["lv_blood"])
    # fixed TI, rising T1: the myocardium moves away from (or through) its null, never towards zero from the start
    mz = [
        float(inversion_recovery_signal(phantom._ir_t1(params, "myocardium", s), params["ti"], 1.0, params["t_rep"]))
        for s in (phantom._dr1_scale(params, 0.0), phantom._dr1_scale(params, 1.0))
    ]
    assert phantom._ir_t1(params, "myocardium", phantom._dr1_scale(params, 1.0)) == pytest.approx(
        params["t1_post"]["myocardium"] * (1 + params["drift"])
    )
    assert ratio[0] != pytest.approx(ratio[1], abs=1e-4) and mz[0] != mz[1]


@pytest.mark.parametrize("seed", [3, 6])
def test_blood_snr_in_literature_range(seed):
    """Blood SNR 10-20 per acquired voxel, measured in the LV blood pool (noisy minus noise-free render)."""
    phantom, z, tissue = _scar_slice(seed)
    clean = phantom.render("lge_ir", **GRID, z=z, noise=False, bias=False)
    noisy = phantom.render("lge_ir", **GRID, z=z, bias=False)
    blood = _interior(tissue == T["lv_blood"], 3)
    snr = clean[blood].mean() / (noisy - clean)[blood].std()
    assert 9 <= snr <= 22
    assert snr == pytest.approx(phantom.lge_ir_params()["snr_blood"], rel=0.15)
    air = _interior(tissue == T["air"], 3)  # Rician floor in the air: mean = sigma sqrt(pi/2)
    sigma = noisy[air].mean() / math.sqrt(math.pi / 2)
    assert sigma == pytest.approx((noisy - clean)[blood].std(), rel=0.15)


def test_coil_bias_stronger_than_bssfp():
    spreads = {"lge_ir": [], "bssfp": []}
    for seed in range(4):
        phantom = CardiacPhantom(seed)
        body = phantom.labels((96, 96), (2.0, 2.0)) != T["air"]
        for modality in spreads:
            with_bias = phantom.render(modality, (96, 96), (2.0, 2.0), noise=False, supersample=1)
            without = phantom.render(modality, (96, 96), (2.0, 2.0), noise=False, bias=False, supersample=1)
            use = body & (without > 0.05)
            log_field = np.log(with_bias[use] / without[use])
            spreads[modality].append(np.percentile(log_field, 95) - np.percentile(log_field, 5))
    assert all(a > b for a, b in zip(spreads["lge_ir"], spreads["bssfp"])), spreads


def test_lge_ir_deterministic_and_old_lge_unchanged():
    phantom = CardiacPhantom(11, group="MINF", scar=True, no_reflow=True)
    z = float(np.mean(phantom.scar_z_range()))
    a = phantom.render("lge_ir", (48, 48, 2), (2.5, 2.5, 8.0), z=z, phase=17)
    np.testing.assert_array_equal(
        a,
        CardiacPhantom(11, group="MINF", scar=True, no_reflow=True).render(
            "ir", (48, 48, 2), (2.5, 2.5, 8.0), z=z, phase=17
        ),
    )
    # checksums of the table contrast "lge": end-diastole is bit-for-bit what it was before the volume-conserving
    # contraction (longitudinal shortening) came in; phase 17 (partly contracted) pinned since then
    old = phantom.render("lge", (48, 48, 2), (2.5, 2.5, 8.0), z=z, phase=0)
    digest = hashlib.sha256(np.ascontiguousarray(old).tobytes()).hexdigest()
    assert digest == "8594490ee50a566ce31dcb5b70d87b89a1b15f7822db10d3300807a86e230587"
    old = phantom.render("lge", (48, 48, 2), (2.5, 2.5, 8.0), z=z, phase=17)
    digest = hashlib.sha256(np.ascontiguousarray(old).tobytes()).hexdigest()
    assert digest == "316a115eb19270290815f19a0fd6b99358a2e118bf0734dd21d74c0b6b7627b8"
    old = phantom.render("lge", (32, 32), (1.5, 1.5), acquisition_factor=4, supersample=1)
    digest = hashlib.sha256(np.ascontiguousarray(old).tobytes()).hexdigest()
    assert digest == "dcb10c8a8de0f9d86ac7160e3149b2f551ab2a655015130063547ea4cb10d327"


@pytest.mark.parametrize("n_lge_labelled, expected", [(None, 2), (0, 0), (3, 3), (4, 4)])
def test_n_lge_labelled_writes_that_many_lge_labels(tmp_path, n_lge_labelled, expected):
    folder = write_mscmrseg(tmp_path, n_patients=4, seed=5, small=True, n_lge_labelled=n_lge_labelled)
    labels = sorted(p.name for p in folder.glob("*_LGE_manual.nii.gz"))
    assert labels == [f"patient{i}_LGE_manual.nii.gz" for i in range(1, expected + 1)]
    assert len(list(folder.glob("*_C0_manual.nii.gz"))) == 4
    assert [c["case"] for c in mscmrseg_cases(folder, "LGE") if "label" in c] == [
        f"patient{i}" for i in range(1, expected + 1)
    ]


@pytest.mark.parametrize("bad", [-1, 5, 2.5, True])
def test_n_lge_labelled_rejects_bad_values(tmp_path, bad):
    with pytest.raises(ValueError, match="n_lge_labelled"):
        write_mscmrseg(tmp_path, n_patients=4, small=True, n_lge_labelled=bad)


def test_mscmrseg_lge_is_the_ir_rendering_acquired_at_twice_the_voxel(tmp_path):
    """The written LGE equals lge_ir rendered on its grid (rebuilt from the affine) at acquisition_factor 2, each
    slice with the heart where its own breath-hold left it (not in the affine: without the motion the labels differ)."""
    seed = 8
    folder = write_mscmrseg(tmp_path, n_patients=2, seed=seed, small=True, n_lge_labelled=2)
    for index, case in enumerate(mscmrseg_cases(folder, "LGE")):
        subject = _subject_seed(seed, "MSCMRSeg", index)
        group = "MINF" if np.random.default_rng([subject, 99]).uniform() < 0.6 else "NOR"
        phantom = CardiacPhantom(subject, group=group)
        image = nib.load(case["image"])
        shape, affine = image.shape, image.affine
        spacing = [float(affine[i, i]) for i in range(3)]
        ox, oy, oz = phantom.params["world_offset"]
        center = tuple(affine[i, 3] - (ox, oy)[i] + 0.5 * (shape[i] - 1) * spacing[i] for i in range(2))
        grid = {"center": center, "z": float(affine[2, 3] - oz), "phase": 17}
        still = phantom.labels(shape, spacing, scheme="mscmr", **grid)
        levels = np.random.default_rng([subject, 97, 1]).uniform(0.0, 1.0, shape[2])
        grid["slice_motion"] = phantom.breath_hold_motion(levels)
        expected = phantom.render("lge_ir", shape, spacing, supersample=1, acquisition_factor=2, **grid)
        written = np.asarray(image.dataobj).astype(np.int64)
        difference = np.abs(written - _to_int16(expected))  # the centre rebuilt from the affine differs by ~1e-13 mm
        assert difference.max() <= 1 and (difference > 0).mean() < 1e-3
        label = np.asarray(nib.load(case["label"]).dataobj)
        np.testing.assert_array_equal(label, phantom.labels(shape, spacing, scheme="mscmr", **grid))
        assert not np.array_equal(label, still)
