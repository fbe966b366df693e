"""CardiacPhantom: determinism, label consistency across modalities and schemes, contrast, motion, geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest
from common.constants import ACDC_LABELS, EMIDEC_LABELS, MSCMR_LABELS
from common.data import LABEL_SCHEMES, MODALITIES, TISSUES, CardiacPhantom

T = {name: index for index, name in enumerate(TISSUES)}
GRID = {"shape": (64, 64), "spacing": (2.0, 2.0)}


def _scar_phantom(seed: int = 1) -> tuple[CardiacPhantom, float]:
    phantom = CardiacPhantom(seed, group="MINF", no_reflow=False)
    low, high = phantom.scar_z_range()
    return phantom, 0.5 * (low + high)


@pytest.mark.parametrize("modality", MODALITIES)
def test_render_is_deterministic_per_seed(modality):
    a = CardiacPhantom(7).render(modality, **GRID)
    b = CardiacPhantom(7).render(modality, **GRID)
    c = CardiacPhantom(8).render(modality, **GRID)
    assert a.shape == (64, 64) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_labels_deterministic_and_seed_dependent():
    a = CardiacPhantom(3).labels((48, 48, 6), (2.5, 2.5, 10.0))
    np.testing.assert_array_equal(a, CardiacPhantom(3).labels((48, 48, 6), (2.5, 2.5, 10.0)))
    assert not np.array_equal(a, CardiacPhantom(4).labels((48, 48, 6), (2.5, 2.5, 10.0)))
    assert a.shape == (48, 48, 6) and a.dtype == np.uint8


def test_params_depend_only_on_seed_and_group():
    p = CardiacPhantom(5, group="HCM").params
    q = CardiacPhantom(5, group="HCM").params
    assert p["thickness"] == q["thickness"] and p["group"] == "HCM"
    assert CardiacPhantom(5, group="HCM").params["thickness"] > CardiacPhantom(5, group="DCM").params["thickness"]


def test_same_anatomy_same_masks_in_every_modality():
    """Each modality's image follows the one label map: its tissue means follow that modality's contrast."""
    phantom, z = _scar_phantom()
    tissue = phantom.labels((96, 96), (1.5, 1.5), z=z)
    blood, myo, scar = tissue == T["lv_blood"], tissue == T["myocardium"], tissue == T["scar"]
    assert blood.sum() > 50 and myo.sum() > 50 and scar.sum() > 10
    means = {}
    for modality in ("bssfp", "lge"):
        image = phantom.render(modality, (96, 96), (1.5, 1.5), z=z, noise=False, bias=False, supersample=1)
        means[modality] = {
            name: float(image[mask].mean()) for name, mask in (("blood", blood), ("myo", myo), ("scar", scar))
        }
    assert means["bssfp"]["blood"] > 2.5 * means["bssfp"]["myo"]  # bright blood, dark myocardium
    assert abs(means["bssfp"]["scar"] - means["bssfp"]["myo"]) < 0.1  # scar invisible in cine
    assert means["lge"]["scar"] > means["lge"]["blood"] > 3 * means["lge"]["myo"]  # nulled myocardium
    dti = phantom.dti((96, 96), (1.5, 1.5), z=z, contraction=0.0, noise=False, bias=False, supersample=1)
    assert dti["S0"][myo].mean() > 2 * dti["S0"][blood].mean()  # dark blood at b = 0
    assert dti["MD"][scar].mean() > 1.05 * dti["MD"][myo].mean()  # the infarct shows in MD, not as an LGE would


def test_label_schemes_describe_the_same_anatomy():
    phantom, z = _scar_phantom(2)
    kwargs = {"shape": (80, 80), "spacing": (1.5, 1.5), "z": z}
    tissue = phantom.labels(**kwargs)
    emidec = phantom.labels(scheme="emidec", **kwargs)
    acdc = phantom.labels(scheme="acdc", **kwargs)
    mscmr = phantom.labels(scheme="mscmr", **kwargs)
    mi = phantom.labels(scheme="mi", **kwargs)
    pscgan = phantom.labels(scheme="pscgan", **kwargs)
    for scheme, labels in (("emidec", emidec), ("acdc", acdc), ("mscmr", mscmr), ("mi", mi), ("pscgan", pscgan)):
        np.testing.assert_array_equal(labels, LABEL_SCHEMES[scheme][tissue])
    assert mscmr.dtype == np.uint16
    whole_myo = np.isin(emidec, [EMIDEC_LABELS[k] for k in ("myocardium", "infarction", "no_reflow")])
    np.testing.assert_array_equal(whole_myo, acdc == ACDC_LABELS["myocardium"])
    np.testing.assert_array_equal(acdc == ACDC_LABELS["lv"], emidec == EMIDEC_LABELS["cavity"])
    np.testing.assert_array_equal(acdc == ACDC_LABELS["rv"], mscmr == MSCMR_LABELS["rv"])
    np.testing.assert_array_equal(acdc == ACDC_LABELS["myocardium"], mscmr == MSCMR_LABELS["myocardium"])
    np.testing.assert_array_equal(mi == 1, np.isin(emidec, [3, 4]))
    np.testing.assert_array_equal(pscgan, np.array([0, 1, 2, 3, 3])[emidec])  # PSCGAN_LABELS: no-reflow is scar
    assert mi.any() and (acdc == ACDC_LABELS["rv"]).any()


def test_lge_scar_is_obvious_while_the_dti_infarct_is_noisy_per_voxel():
    """LGE shows the scar at a high contrast-to-noise ratio; DT-CMR's MD map only at about 1 per voxel."""
    phantom, z = _scar_phantom(1)
    tissue = phantom.labels((128, 128), (1.25, 1.25), z=z)
    image = phantom.render("lge", (128, 128), (1.25, 1.25), z=z)
    clean = phantom.render("lge", (128, 128), (1.25, 1.25), z=z, noise=False)
    sigma = float(np.std(image - clean))
    assert (image[tissue == T["scar"]].mean() - image[tissue == T["myocardium"]].mean()) / sigma > 8
    grid = {"z": z, "contraction": 0.0, "supersample": 4}
    tissue = phantom.labels((64, 64), (2.5, 2.5), z=z)
    md = phantom.dti((64, 64), (2.5, 2.5), **grid)["MD"]
    md_clean = phantom.dti((64, 64), (2.5, 2.5), noise=False, **grid)["MD"]
    myo, scar = tissue == T["myocardium"], tissue == T["scar"]
    noise = float(np.std((md - md_clean)[myo]))
    cnr = (md_clean[scar].mean() - md_clean[myo].mean()) / noise
    assert 0.3 < cnr < 2.0, cnr


def test_cine_contracts_and_scar_is_hypokinetic():
    phantom = CardiacPhantom(11, group="MINF", no_reflow=False)
    sector = phantom.params["scar_sectors"][0]
    sector.update(transmurality=1.0)  # make the first sector transmural (parameters are plain data)
    phantom._geometry_cache.clear()
    z = sector["z_center"]
    es = phantom.es_phase(25)
    assert 5 <= es <= 12
    images, labels = phantom.cine((100, 100), (1.0, 1.0), n_phases=25, scheme="tissue", z=z, supersample=1)
    assert images.shape == (100, 100, 25) and labels.shape == (100, 100, 25)
    cavity = (labels == T["lv_blood"]) | (labels == T["papillary"])
    assert cavity[..., es].sum() < 0.8 * cavity[..., 0].sum()

    def endocardial_radius(label2d, theta):
        angle = theta + phantom.params["rotation"]  # anatomical angle -> grid angle
        for r in np.arange(0.0, 45.0, 0.25):
            i = int(round(49.5 + r * math.cos(angle)))
            j = int(round(49.5 + r * math.sin(angle)))
            if label2d[i, j] not in (T["lv_blood"], T["papillary"]):
                return r
        raise AssertionError("no endocardium along the ray")

    scar_theta = sector["theta"]
    remote_theta = scar_theta + math.pi
    shortening = {
        name: 1 - endocardial_radius(labels[..., es], theta) / endocardial_radius(labels[..., 0], theta)
        for name, theta in (("scar", scar_theta), ("remote", remote_theta))
    }
    assert shortening["scar"] < 0.5 * shortening["remote"]


def test_stack_covers_base_to_apex_and_affine_matches_grid():
    phantom = CardiacPhantom(2, group="NOR")
    shape, spacing = (40, 40, 12), (4.0, 4.0, 10.0)
    labels = phantom.labels(shape, spacing, scheme="acdc")
    per_slice = (labels > 0).sum(axis=(0, 1))
    heart = per_slice[per_slice > 0]
    assert len(heart) >= 8 and heart[0] > 3 * heart[-1]  # larger at the base than at the apex
    assert per_slice[-1] == 0  # the stack reaches past the apex
    affine = phantom.affine(shape, spacing, center=(5.0, -3.0))
    np.testing.assert_allclose(np.diag(affine)[:3], spacing)
    # the field-of-view centre sits at the world offset plus `center`
    centre_world = affine @ np.array([(shape[0] - 1) / 2, (shape[1] - 1) / 2, 0, 1.0])
    offset = phantom.params["world_offset"]
    np.testing.assert_allclose(centre_world[:2], (offset[0] + 5.0, offset[1] - 3.0))


def test_same_field_of_view_at_two_resolutions_gives_consistent_masks():
    phantom, z = _scar_phantom(4)
    high = phantom.labels((256, 256), (0.625, 0.625), z=z, scheme="acdc") > 0
    low = phantom.labels((32, 32), (5.0, 5.0), z=z, scheme="acdc") > 0
    fraction = high.reshape(32, 8, 32, 8).mean(axis=(1, 3))
    assert np.mean((fraction > 0.5) == low) > 0.97


def test_acquisition_factor_and_supersample_shapes():
    phantom = CardiacPhantom(0)
    image = phantom.render("lge", (128, 128), (0.5, 0.5), supersample=1, acquisition_factor=4)
    assert image.shape == (128, 128) and image.min() >= 0
    volume = phantom.render("bssfp", (32, 32, 3), (3.0, 3.0, 10.0), slice_samples=3)
    assert volume.shape == (32, 32, 3)


@pytest.mark.parametrize(
    "kwargs, match", [({"seed": -1}, "seed"), ({"seed": 1.5}, "seed"), ({"seed": 0, "group": "XYZ"}, "group")]
)
def test_bad_constructor_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CardiacPhantom(**kwargs)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda p: p.render("ct", (8, 8), (1.0, 1.0)), "modality"),
        (lambda p: p.render("lge", (10, 10), (1.0, 1.0), acquisition_factor=4), "acquisition_factor"),
        (lambda p: p.render("lge", (8, 8), (1.0, 1.0), supersample=0), "supersample"),
        (lambda p: p.labels((8, 8), (1.0, 1.0), scheme="nope"), "scheme"),
        (lambda p: p.labels((8,), (1.0,)), "shape"),
        (lambda p: p.labels((8, 8), (1.0, -1.0)), "spacing"),
    ],
)
def test_bad_render_arguments_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call(CardiacPhantom(0))


# ---------------------------------------------------------------------------------------------- breath-hold motion
STACK = {"shape": (48, 48, 4), "spacing": (2.0, 2.0, 10.0)}


@pytest.mark.parametrize("modality", ["bssfp", "lge_ir"])
def test_zero_slice_motion_is_no_motion(modality):
    phantom = CardiacPhantom(4, group="MINF")
    still = phantom.render(modality, **STACK)
    np.testing.assert_array_equal(still, phantom.render(modality, **STACK, slice_motion=np.zeros((4, 4))))
    np.testing.assert_array_equal(phantom.labels(**STACK), phantom.labels(**STACK, slice_motion=np.zeros((4, 4))))


def test_in_plane_slice_motion_moves_that_slice_by_whole_voxels():
    """A 2-voxel shift in x (4 mm) of slice 1 only: that slice's labels are the still ones rolled by 2 voxels."""
    phantom = CardiacPhantom(4, group="MINF")
    motion = np.zeros((4, 4))
    motion[1, 0] = 4.0
    still, moved = phantom.labels(**STACK), phantom.labels(**STACK, slice_motion=motion)
    np.testing.assert_array_equal(moved[..., [0, 2, 3]], still[..., [0, 2, 3]])
    np.testing.assert_array_equal(moved[2:, :, 1], still[:-2, :, 1])
    assert not np.array_equal(moved[..., 1], still[..., 1])


def test_through_plane_slice_motion_shows_the_anatomy_of_another_position():
    """The anatomy moved 3 mm towards the apex shows at z what the still anatomy had at z - 3 mm (image and labels)."""
    phantom = CardiacPhantom(4, group="MINF")
    grid = {"shape": (48, 48), "spacing": (2.0, 2.0), "z": 40.0}
    motion = [[0.0, 0.0, 3.0, 0.0]]
    moved = phantom.labels(**grid, slice_motion=motion)
    np.testing.assert_array_equal(moved, phantom.labels(**{**grid, "z": 37.0}))
    image = phantom.render("bssfp", **grid, slice_motion=motion, noise=False)
    np.testing.assert_allclose(image, phantom.render("bssfp", **{**grid, "z": 37.0}, noise=False), atol=1e-6)


def test_breath_hold_motion_scales_the_tidal_translation_and_keeps_its_length():
    phantom = CardiacPhantom(6)
    motion = phantom.breath_hold_motion([0.0, 0.5, 1.0])
    caudal, anterior = phantom.params["respiratory_shift"]
    assert motion.shape == (3, 4)
    np.testing.assert_array_equal(motion[0], 0.0)
    np.testing.assert_allclose(motion[1], 0.5 * motion[2])
    np.testing.assert_allclose(np.linalg.norm(motion[2, :3]), math.hypot(caudal, anterior))  # a rotation of frames
    assert motion[2, 2] > 0  # breathing in moves the heart caudally, towards the apex along the long axis
    assert np.all(motion[:, 3] == 0.0)


@pytest.mark.parametrize("motion", [np.zeros((3, 4)), np.zeros((4, 3)), np.full((4, 4), np.nan)])
def test_bad_slice_motion_raises_naming_the_expected_rows(motion):
    with pytest.raises(ValueError, match="slice_motion must be 4 finite rows"):
        CardiacPhantom(4).labels(**STACK, slice_motion=motion)
