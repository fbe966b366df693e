"""CineLGE (PSCGAN's default data): layout, consistency, and the premise that scar shows in cine motion only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from common.constants import PSCGAN_LABELS
from common.data import (
    DATASETS,
    DEFAULT_SIZES,
    SMALL_SIZES,
    TISSUES,
    CardiacPhantom,
    DatasetError,
    cine_lge_cases,
    write_cine_lge,
    write_default_data,
)
from common.data.cine_lge import _case_setup
from common.metrics import roc_auc
from scipy import ndimage

T = {name: index for index, name in enumerate(TISSUES)}
N_CASES = 6  # indices 0-5: case003 is the normal control (2 of every 11 cases), five MINF cases


@pytest.fixture(scope="module")
def cine_lge(tmp_path_factory) -> Path:
    return write_cine_lge(tmp_path_factory.mktemp("cine_lge"), n_cases=N_CASES, seed=0)


def _load(path: str) -> np.ndarray:
    return np.asanyarray(nib.load(path).dataobj)


def _notes(folder: Path) -> list[dict]:
    return json.loads((folder / "cases.json").read_text())


def test_registered_as_a_default_dataset():
    assert DATASETS.index("CineLGE") == 6  # appended: earlier datasets keep their subject seeds
    assert DEFAULT_SIZES["CineLGE"] == 100 and SMALL_SIZES["CineLGE"] == 4


def test_layout_shapes_zooms_labels_and_shared_affine(cine_lge):
    cases = cine_lge_cases(cine_lge)
    notes = _notes(cine_lge)
    assert [c["case"] for c in cases] == [f"case{i:03d}" for i in range(1, N_CASES + 1)] == [n["case"] for n in notes]
    assert [n["group"] for n in notes] == ["MINF", "MINF", "NOR", "MINF", "MINF", "MINF"]
    for case, note in zip(cases, notes):
        cine, lge, label = (nib.load(case[key]) for key in ("cine", "lge", "label"))
        assert cine.shape == (64, 64, 3, 25) and lge.shape == (64, 64, 3) and label.shape == (64, 64, 3)
        assert label.get_data_dtype() == np.uint8 and cine.get_data_dtype() in (np.int16, np.float32)
        zooms = cine.header.get_zooms()
        np.testing.assert_allclose(zooms[:2], (340 / 256, 340 / 256), rtol=1e-6)
        assert zooms[3] == 40.0 and cine.header.get_xyzt_units() == ("mm", "msec")
        np.testing.assert_allclose(zooms[2], np.diff(note["slice_positions_mm"]).mean(), atol=0.02)
        np.testing.assert_allclose(lge.header.get_zooms(), zooms[:3])
        np.testing.assert_array_equal(cine.affine, lge.affine)
        np.testing.assert_array_equal(cine.affine, label.affine)
        values = _load(case["label"])
        assert set(np.unique(values)) <= set(PSCGAN_LABELS.values())
        assert {1, 2} <= set(np.unique(values[..., 1]))  # mid slice: blood pool and myocardium
        assert (values == PSCGAN_LABELS["scar"]).any() == note["has_scar"] == (note["group"] == "MINF")
        positions = np.array(note["slice_positions_mm"]) / note["lv_length_mm"]
        np.testing.assert_allclose(positions, (0.2, 0.45, 0.7), atol=0.04)  # basal, mid, apical


def test_label_is_the_phantoms_end_diastole_and_images_follow_it(cine_lge):
    for index, case in enumerate(cine_lge_cases(cine_lge)):
        phantom, grid, spacing, _ = _case_setup(index, 0, 3)
        label = _load(case["label"])
        np.testing.assert_array_equal(label, phantom.labels((64, 64, 3), spacing, phase=0, scheme="pscgan", **grid))
        affine = phantom.affine((64, 64, 3), spacing, **grid)
        np.testing.assert_allclose(nib.load(case["cine"]).affine, affine, atol=1e-4)  # stored as float32
        ed, lge = _load(case["cine"])[..., 0].astype(np.float32), _load(case["lge"]).astype(np.float32)
        core = ndimage.binary_erosion(np.isin(label, (2, 3)), structure=np.ones((3, 3, 1)))
        blood, myo, scar = label == 1, core & (label == 2), core & (label == 3)
        assert ed[blood].mean() > 2.5 * ed[myo].mean()  # bright-blood cine on the label's grid
        assert lge[blood].mean() - lge[myo].mean() > 200  # PSIR: bright blood, (near-)nulled myocardium
        if scar.any():  # enhanced scar, whatever the TI (a magnitude image could show it darker than myocardium)
            assert lge[scar].mean() - lge[myo].mean() > 0.3 * (lge[blood].mean() - lge[myo].mean())


def test_world_frame_is_anterior_plus_y_with_the_rv_to_the_right():
    """The phantom's world frame: +y anterior (spine posterior), the RV (patient's right, liver side) towards -x."""
    for index in range(4):
        phantom, _, _, note = _case_setup(index, 0, 3)
        z = note["slice_positions_mm"][1]
        tissue = phantom.labels((200, 200), (1.5, 1.5), z=z)
        affine = phantom.affine((200, 200), (1.5, 1.5), z=z)

        def world(name):
            i, j = np.argwhere(tissue == T[name]).mean(0)
            return (affine @ np.array([i, j, 0.0, 1.0]))[:2]

        lv, rv, spine = world("lv_blood"), world("rv_blood"), world("spine")
        assert spine[1] < lv[1] - 60 and rv[0] < lv[0] - 10


def test_blood_snr_is_realistic_for_cine():
    phantom, grid, spacing, _ = _case_setup(0, 0, 3)
    kwargs = {"phase": 0, "supersample": 2, "slice_thickness": 8.0, "slice_samples": 3, **grid}
    noisy = phantom.render("bssfp", (64, 64, 3), spacing, **kwargs)
    clean = phantom.render("bssfp", (64, 64, 3), spacing, noise=False, **kwargs)
    blood = ndimage.binary_erosion(phantom.labels((64, 64, 3), spacing, scheme="pscgan", **grid) == 1)
    snr = clean[blood].mean() / (noisy - clean)[blood].std()
    assert 20 < snr < 60


def test_phase_sensitive_lge_is_the_signed_magnitude_image():
    phantom, grid, spacing, _ = _case_setup(1, 0, 3)  # a subject whose TI is short: remote myocardium below its null
    kwargs = {"supersample": 2, "noise": False, **grid}
    psir = phantom.render("lge_ir", (64, 64, 3), spacing, phase_sensitive=True, **kwargs)
    magnitude = phantom.render("lge_ir", (64, 64, 3), spacing, **kwargs)
    np.testing.assert_allclose(np.abs(psir), magnitude, atol=1e-6)
    myo = phantom.labels((64, 64, 3), spacing, scheme="pscgan", **grid) == 2
    assert phantom.lge_ir_params()["ti_offset"] < 0 and np.median(psir[myo]) < 0
    with pytest.raises(ValueError, match="phase_sensitive"):
        phantom.render("bssfp", (8, 8), (1.0, 1.0), phase_sensitive=True)


def _myocardium_pixels(label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scar and healthy myocardium at end-diastole, eroded by one pixel (no partial volume with blood or fat)."""
    core = ndimage.binary_erosion(np.isin(label, (2, 3)))
    return core & (label == 3), core & (label == 2)


def test_no_single_cine_frame_shows_the_scar(cine_lge):
    """A per-pixel intensity classifier on any one frame cannot find scar: AUC near chance in every frame."""
    scar_values, healthy_values = [[] for _ in range(25)], [[] for _ in range(25)]
    for case, note in zip(cine_lge_cases(cine_lge), _notes(cine_lge)):
        if not note["has_scar"]:
            continue
        cine, label = _load(case["cine"]).astype(np.float32), _load(case["label"])
        for s in range(label.shape[2]):
            scar, healthy = _myocardium_pixels(label[..., s])
            for t in range(25):
                scar_values[t].append(cine[..., s, t][scar])
                healthy_values[t].append(cine[..., s, t][healthy])
    aucs = [roc_auc(np.concatenate(a), np.concatenate(b)) for a, b in zip(scar_values, healthy_values)]
    assert sum(len(v) for v in scar_values[0]) > 200
    # 0.44-0.49 on this data; an AUC of 0.65 (or 0.35, the sign flipped) would already separate scar a little
    assert all(0.40 <= a <= 0.60 for a in aucs), np.round(aucs, 3)


def _endocardial_shortening(cine: np.ndarray, label: np.ndarray, es: int, n_angles: int = 90):
    """Per-angle endocardial radius shortening ED -> ES read from the cine images (a blood/myocardium threshold
    crossing along rays from the ED cavity centroid), and which rays cross end-diastolic scar / only healthy wall."""
    cavity, myo = label == 1, np.isin(label, (2, 3))
    centre = np.argwhere(cavity).mean(0)
    theta = np.linspace(0, 2 * np.pi, n_angles, endpoint=False)
    radii = np.arange(0.0, 25.0, 0.25)
    rays = [centre[0] + radii[None] * np.cos(theta)[:, None], centre[1] + radii[None] * np.sin(theta)[:, None]]
    on_ray = ndimage.map_coordinates(label, rays, order=0)

    def endocardium(image: np.ndarray) -> np.ndarray:
        threshold = 0.5 * (np.median(image[cavity]) + np.median(image[myo]))
        below = ndimage.map_coordinates(image, rays, order=1) < threshold
        return radii[np.where(below.any(1), below.argmax(1), len(radii) - 1)]

    shortening = 1.0 - endocardium(cine[..., es]) / np.maximum(endocardium(cine[..., 0]), 1e-3)
    scar = (on_ray == 3).any(1)
    healthy = ~ndimage.binary_dilation(scar, iterations=3) & (on_ray == 2).any(1)  # 12 degrees off any scar
    return shortening, scar, healthy


def test_the_motion_signal_is_in_the_cine(cine_lge):
    """Scar segments barely move inwards: per-angle endocardial shortening from the images separates them."""
    scar_values, healthy_values = [], []
    for case, note in zip(cine_lge_cases(cine_lge), _notes(cine_lge)):
        if not note["has_scar"]:
            continue
        cine, label = _load(case["cine"]).astype(np.float32), _load(case["label"])
        for s in range(label.shape[2]):
            if (label[..., s] == 3).sum() < 5:
                continue
            shortening, scar, healthy = _endocardial_shortening(cine[..., s, :], label[..., s], note["es_frame"])
            scar_values.append(shortening[scar])
            healthy_values.append(shortening[healthy])
    auc = roc_auc(-np.concatenate(scar_values), -np.concatenate(healthy_values))
    assert auc >= 0.75, auc
    assert np.median(np.concatenate(healthy_values)) > 0.15  # remote endocardium moves inwards 15-25 %


def _wall_thickness(phantom: CardiacPhantom, z: float, phase: int, n_angles: int = 180):
    """Per-angle radial wall thickness (mm) and scar thickness from the phantom's labels on a 0.25 mm grid."""
    n, dx = 320, 0.25
    label = phantom.labels((n, n), (dx, dx), z=z, phase=phase, scheme="pscgan")
    theta = np.linspace(0, 2 * np.pi, n_angles, endpoint=False)
    radii = np.arange(0.0, 39.0, 0.1) / dx
    c = (n - 1) / 2
    rays = [c + radii * np.cos(theta)[:, None], c + radii * np.sin(theta)[:, None]]
    on_ray = ndimage.map_coordinates(label, rays, order=0)
    return np.isin(on_ray, (2, 3)).sum(1) * 0.1, (on_ray == 3).sum(1) * 0.1


def test_systolic_wall_thickening_remote_and_transmural_scar():
    """Remote myocardium thickens ~40-60 % (longitudinal shortening at constant volume), transmural scar < 20 %."""
    remote, normal = [], []
    for seed in range(4):
        phantom = CardiacPhantom(seed, group="MINF", no_reflow=False)
        sector = phantom.params["scar_sectors"][0]
        sector.update(transmurality=1.0)  # make the first sector transmural (parameters are plain data)
        phantom._geometry_cache.clear()
        es = phantom.es_phase(25)
        ed_wall, ed_scar = _wall_thickness(phantom, sector["z_center"], 0)
        es_wall, _ = _wall_thickness(phantom, sector["z_center"], es)
        thickening = es_wall / ed_wall - 1.0
        fraction = ed_scar / ed_wall
        transmural = fraction > 0.9
        assert transmural.sum() >= 10 and np.percentile(thickening[transmural], 90) < 0.2
        remote.append(thickening[~ndimage.binary_dilation(fraction > 0, iterations=15)])  # 30 degrees off scar
        control = CardiacPhantom(seed, group="NOR")
        z = 0.45 * control.length
        ratio = _wall_thickness(control, z, control.es_phase(25))[0] / _wall_thickness(control, z, 0)[0]
        normal.append(float(np.median(ratio)) - 1.0)
    assert 0.35 <= np.median(np.concatenate(remote)) <= 0.65  # MINF remote (globally reduced function): ~0.38
    assert all(0.35 <= value <= 0.65 for value in normal), normal  # normal controls: ~0.40-0.50


def test_deterministic_for_a_seed(tmp_path):
    first, second, other = (
        write_cine_lge(tmp_path / name, n_cases=1, seed=s) for name, s in (("a", 3), ("b", 3), ("c", 4))
    )
    data = [{k: _load(v) for k, v in cine_lge_cases(root)[0].items() if k != "case"} for root in (first, second, other)]
    for key in ("cine", "lge", "label"):
        np.testing.assert_array_equal(data[0][key], data[1][key])
    assert not np.array_equal(data[0]["cine"], data[2]["cine"])
    assert _notes(first) == _notes(second)


def test_write_default_data_small_writes_cine_lge(tmp_path):
    folder = write_default_data(tmp_path, small=True, datasets=["CineLGE"])["CineLGE"]
    cases = cine_lge_cases(tmp_path)  # the parent works too
    assert len(cases) == SMALL_SIZES["CineLGE"] and cases == cine_lge_cases(folder)
    assert all(Path(v).is_absolute() and Path(v).is_file() for case in cases for k, v in case.items() if k != "case")


def test_cine_lge_cases_errors_and_natural_order(tmp_path, cine_lge):
    for missing in (tmp_path / "nowhere", tmp_path / "empty"):
        if missing.name == "empty":
            missing.mkdir()
        with pytest.raises(FileNotFoundError, match=str(missing)) as error:
            cine_lge_cases(missing)
        assert "python -m tools.make_data --datasets CineLGE" in str(error.value)
        assert isinstance(error.value, DatasetError)
    source = cine_lge_cases(cine_lge)[0]
    root = tmp_path / "copy" / "CineLGE"
    for name in ("case2", "case10"):
        (root / name).mkdir(parents=True)
        for key in ("cine", "lge", "label"):
            shutil.copy(source[key], root / name / f"{name}_{key}.nii.gz")
    assert [c["case"] for c in cine_lge_cases(root.parent)] == ["case2", "case10"]
    (root / "case10" / "case10_lge.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="case10_lge.nii.gz") as error:
        cine_lge_cases(root)
    assert str(root / "case10") in str(error.value)


def test_bad_arguments_raise(tmp_path):
    with pytest.raises(ValueError, match="n_cases"):
        write_cine_lge(tmp_path, n_cases=0)
    with pytest.raises(ValueError, match="n_slices"):
        write_cine_lge(tmp_path, n_cases=1, n_slices=0)
