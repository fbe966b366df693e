"""DT-CMR physics: the signal equation, the tensor fit, and the phantom's infarct diffusion contrast."""

from __future__ import annotations

import numpy as np
import pytest
from common.data import TISSUES, CardiacPhantom
from common.data.diffusion import (
    axisymmetric_eigenvalues,
    diffusion_signal,
    fit_tensor,
    gradient_directions,
    tensor_invariants,
)

T = {name: index for index, name in enumerate(TISSUES)}


def _random_fibres(n: int, seed: int = 0) -> np.ndarray:
    fibres = np.random.default_rng(seed).normal(size=(n, 3))
    return fibres / np.linalg.norm(fibres, axis=1, keepdims=True)


@pytest.mark.parametrize("n_directions", [6, 12])
def test_fit_recovers_s0_md_fa_of_noise_free_signals_for_any_fibre(n_directions):
    directions = gradient_directions(n_directions)
    md, fa = np.linspace(0.8, 2.0, 50), np.linspace(0.0, 0.6, 50)  # eigenvalues within the fit's clip
    signals = diffusion_signal(np.full(50, 0.7), md, fa, _random_fibres(50), 500.0, directions)
    fitted = fit_tensor(signals, 500.0, directions)
    np.testing.assert_allclose(fitted["S0"], 0.7, rtol=1e-5)
    np.testing.assert_allclose(fitted["MD"], md, rtol=1e-5)
    np.testing.assert_allclose(fitted["FA"], fa, atol=1e-5)


def test_signal_equation_values_by_hand():
    """S = S0 exp(-b g^T D g): along the fibre the parallel eigenvalue, across it the perpendicular one."""
    parallel, perpendicular = axisymmetric_eigenvalues(1.5, 0.5)
    np.testing.assert_allclose((parallel + 2 * perpendicular) / 3, 1.5)
    np.testing.assert_allclose(tensor_invariants(np.array([parallel, perpendicular, perpendicular]))[1], 0.5)
    along_and_across = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    signal = diffusion_signal(np.array(2.0), np.array(1.5), np.array(0.5), np.array([0.0, 0.0, 1.0]), 500.0,
                              along_and_across)  # fmt: skip
    np.testing.assert_allclose(signal, [2.0, 2.0 * np.exp(-0.5 * parallel), 2.0 * np.exp(-0.5 * perpendicular)])
    assert gradient_directions(6).shape == (6, 3)
    with pytest.raises(ValueError, match="at least 6"):
        gradient_directions(5)


def test_rician_noise_makes_the_md_map_noisy_at_dt_cmr_snr():
    """At a b = 0 SNR of 15 a single voxel's MD scatters by ~10-15 %: the size of the infarct's elevation."""
    directions = gradient_directions(6)
    rng = np.random.default_rng(1)
    clean = diffusion_signal(np.full(4000, 1.0), np.full(4000, 1.5), np.full(4000, 0.42), _random_fibres(4000), 500.0,
                             directions)  # fmt: skip
    sigma = 1.0 / 15
    noisy = np.hypot(clean + sigma * rng.normal(size=clean.shape), sigma * rng.normal(size=clean.shape))
    md = fit_tensor(noisy, 500.0, directions)["MD"]
    assert abs(float(np.median(md)) - 1.5) < 0.1
    assert 0.07 < float(np.std(md)) / 1.5 < 0.25


def _scar_slice(seed: int = 3) -> tuple[CardiacPhantom, float]:
    phantom = CardiacPhantom(seed, group="MINF", scar=True, no_reflow=False)
    return phantom, float(phantom.params["scar_sectors"][0]["z_center"])


def test_phantom_infarct_raises_md_lowers_fa_and_barely_changes_s0():
    """Point-sampled, noise-free: the infarct's MD / FA / S0 are the remote values times the subject's draws."""
    phantom, z = _scar_slice()
    q = phantom.dti_params()
    assert 0.10 <= q["md_elevation"] <= 0.20 and 0.15 <= q["fa_reduction"] <= 0.25 and 0 <= q["s0_elevation"] <= 0.1
    grid = {"z": z, "contraction": 0.0, "noise": False, "bias": False, "supersample": 1}
    maps = phantom.dti((128, 128), (1.25, 1.25), **grid)
    tissue = phantom.labels((128, 128), (1.25, 1.25), z=z)
    scar, myo = tissue == T["scar"], tissue == T["myocardium"]
    assert scar.sum() > 20
    np.testing.assert_allclose(np.median(maps["MD"][scar]) / np.median(maps["MD"][myo]), 1 + q["md_elevation"], 1e-4)
    np.testing.assert_allclose(np.median(maps["FA"][scar]) / np.median(maps["FA"][myo]), 1 - q["fa_reduction"], 1e-4)
    s0_ratio = maps["S0"][scar].mean() / maps["S0"][myo].mean()
    assert abs(s0_ratio - (1 + q["s0_elevation"])) < 0.05  # up to the multiplicative tissue texture
    flat = phantom.dti((128, 128), (1.25, 1.25), infarct={"md_elevation": 0.0, "fa_reduction": 0.0}, **grid)
    np.testing.assert_allclose(np.median(flat["MD"][scar]), np.median(flat["MD"][myo]), rtol=1e-4)
    with pytest.raises(ValueError, match="md_elevation"):
        phantom.dti((16, 16), (10.0, 10.0), infarct={"t2": 1.0})


def test_phantom_dti_is_deterministic_triggered_in_systole_and_has_its_own_noise():
    phantom, z = _scar_slice(4)
    assert 0.85 <= phantom.dti_params()["contraction"] <= 1.0
    first = phantom.dti((64, 64), (2.5, 2.5), z=z)
    again = phantom.dti((64, 64), (2.5, 2.5), z=z)
    for key in ("S0", "MD", "FA", "DWI"):
        np.testing.assert_array_equal(first[key], again[key])
    assert first["DWI"].shape == (64, 64, 7) and first["directions"].shape == (6, 3)
    clean = phantom.dti((64, 64), (2.5, 2.5), z=z, noise=False)
    assert not np.allclose(first["MD"], clean["MD"])
    # systole: the myocardium has moved inward from where the diastolic labels put it (low S0 = blood moves in)
    diastole = phantom.dti((64, 64), (2.5, 2.5), z=z, noise=False, contraction=0.0)
    lv_blood = phantom.labels((64, 64), (2.5, 2.5), z=z) == T["lv_blood"]
    assert clean["S0"][lv_blood].mean() > 1.3 * diastole["S0"][lv_blood].mean()
