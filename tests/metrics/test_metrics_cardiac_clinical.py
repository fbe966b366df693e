"""PSCGAN clinical metrics on drawn short-axis phantoms: areas, RV insertion points, AHA segments, agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from common.metrics import (
    aha_segments,
    bland_altman_plot,
    clinical_metrics,
    cohort_agreement,
    find_rv_insertion,
    lv_centre,
    segment_detection,
    segment_scar,
    slice_level,
)

DEG = np.pi / 180
BASAL, MID, APICAL = set(range(1, 7)), set(range(7, 13)), set(range(13, 17))


def _phantom(spacing=(1.0, 1.0), rv_centre=np.pi, rv=True):
    """A ring drawn in mm about the LV centre, with an RV crescent of +-60 degrees about ``rv_centre``.

    Blood pool r <= 10 mm, myocardium 10 < r <= 18 mm, RV cavity 21 < r <= 30 mm; the grid covers +-48 mm with the
    centre on a pixel, so the blood-pool centroid is exact. Returns (label, cine, affine, centre voxel).
    """
    half = (round(48 / spacing[0]), round(48 / spacing[1]))
    x, y = np.indices((2 * half[0] + 1, 2 * half[1] + 1), dtype=float)
    dx, dy = (x - half[0]) * spacing[0], (y - half[1]) * spacing[1]
    radius, angle = np.hypot(dx, dy), np.arctan2(dy, dx)
    label = np.zeros(x.shape, dtype=np.int64)
    label[radius <= 18] = 2
    label[radius <= 10] = 1
    cine = np.full(x.shape, 0.2)
    cine[label == 2] = 0.3
    cine[label == 1] = 1.0
    if rv:
        off_centre = np.abs(np.angle(np.exp(1j * (angle - rv_centre))))
        cine[(radius > 21) & (radius <= 30) & (off_centre <= 60 * DEG)] = 1.0
    affine = np.diag([spacing[0], spacing[1], 8.0, 1.0])
    return label, cine, affine, half


def _ring_pixel(half, spacing, angle_deg, radius_mm=14.0):
    """The voxel index of the mid-wall point at ``angle_deg``."""
    a = angle_deg * DEG
    return (
        int(round(half[0] + radius_mm * np.cos(a) / spacing[0])),
        int(round(half[1] + radius_mm * np.sin(a) / spacing[1])),
    )


def _angle_error(a, b):
    return abs(np.angle(np.exp(1j * (a - b))))


# --- areas and ratios -----------------------------------------------------------------------------------------------


def test_clinical_metrics_on_a_drawn_ring():
    label = np.zeros((12, 12), dtype=np.int64)
    label[2:10, 2:10] = 2  # 64 myocardium pixels
    label[4:8, 4:8] = 1  # 16 blood pool -> 48 myocardium
    label[2:4, 2:8] = 3  # 12 scar (a 2 x 6 rectangle, all on the ring) -> 36 healthy
    values = clinical_metrics(torch.as_tensor(label), (1.5, 2.0))  # 3 mm^2 per pixel
    assert values["scar_size_mm2"] == pytest.approx(36.0)
    assert values["myocardium_area_mm2"] == pytest.approx(48 * 3.0)
    assert values["blood_pool_area_mm2"] == pytest.approx(16 * 3.0)
    assert values["scar_ratio"] == pytest.approx(12 / 48)
    assert values["scar_to_healthy_ratio"] == pytest.approx(12 / 36)


def test_clinical_metrics_edge_cases():
    only_scar = np.full((3, 3), 3)
    values = clinical_metrics(only_scar, 1.0)
    assert values["scar_ratio"] == 1.0 and np.isnan(values["scar_to_healthy_ratio"])
    assert np.isnan(clinical_metrics(np.zeros((3, 3)), 1.0)["scar_ratio"])
    with pytest.raises(ValueError, match="`label`"):
        clinical_metrics(np.zeros((3, 3, 2)), 1.0)
    with pytest.raises(ValueError, match="`spacing`"):
        clinical_metrics(only_scar, (1.0, 1.0, 1.0))


# --- LV centre and slice level ----------------------------------------------------------------------------------------


def test_lv_centre_blood_pool_then_myocardium():
    label = np.zeros((8, 8), dtype=np.int64)
    label[1:6, 2:5] = 2
    label[2:4, 3] = 1  # blood pool (2, 3), (3, 3)
    assert lv_centre(label) == pytest.approx((2.5, 3.0))
    label[label == 1] = 3  # no blood pool: centroid of labels 2 + 3 = the 5 x 3 block
    assert lv_centre(label) == pytest.approx((3.0, 3.0))
    with pytest.raises(ValueError, match="no myocardium"):
        lv_centre(np.where(label == 3, 1, 0))


def test_slice_level_thirds():
    assert [slice_level(i, 9) for i in range(9)] == ["basal"] * 3 + ["mid"] * 3 + ["apical"] * 3
    assert [slice_level(i, 4) for i in range(4)] == ["basal", "basal", "mid", "apical"]
    assert slice_level(0, 1) == "mid"
    with pytest.raises(ValueError, match="`index`"):
        slice_level(3, 3)
    with pytest.raises(ValueError, match="`n_slices`"):
        slice_level(0, 0)


# --- RV insertion points and AHA segments -----------------------------------------------------------------------------

GEOMETRIES = [((1.0, 1.0), np.pi), ((1.0, 1.0), 0.75 * np.pi), ((1.0, 1.0), 1.25 * np.pi), ((1.0, 2.0), np.pi)]


@pytest.mark.parametrize("spacing, rv_centre", GEOMETRIES)
def test_rv_insertion_points_at_the_crescent_ends(spacing, rv_centre):
    label, cine, affine, half = _phantom(spacing, rv_centre)
    rv = find_rv_insertion(cine, label, affine)
    assert rv["rv_found"] and rv["warning"] is None
    # drawn ends at rv_centre -+ 60 degrees; for these centres the -60 end is the one at larger world (= voxel) y
    assert _angle_error(rv["anterior_angle"], rv_centre - 60 * DEG) < 10 * DEG
    assert _angle_error(rv["inferior_angle"], rv_centre + 60 * DEG) < 10 * DEG
    assert _angle_error(rv["septum_angle"], rv_centre) < 3 * DEG
    assert np.sin(rv["anterior_angle"]) > np.sin(rv["inferior_angle"])
    assert rv["lv_centre"] == pytest.approx(half) and rv["spacing"] == pytest.approx(spacing)
    assert cine[rv["rv_mask"]].min() == 1.0 and not (label[rv["rv_mask"]] > 0).any()


@pytest.mark.parametrize("spacing, rv_centre", GEOMETRIES)
def test_aha_segments_follow_the_insertion_points(spacing, rv_centre):
    label, cine, affine, half = _phantom(spacing, rv_centre)
    rv = find_rv_insertion(cine, label, affine)
    anterior, inferior = rv["anterior_angle"], rv["inferior_angle"]
    basal = aha_segments(label, anterior, inferior, "basal", spacing=spacing)
    mid = aha_segments(label, anterior, inferior, "mid", spacing=spacing)
    apical = aha_segments(label, anterior, inferior, "apical", spacing=spacing)
    c = rv_centre / DEG  # crescent centre = septum, in degrees; anterior insertion at c - 60, inferior at c + 60
    # (angle from c, basal, mid) well inside each sector, travelling anterior -> septum -> inferior
    for offset, basal_number, mid_number in [
        (-50, 2, 8),  # just past the anterior insertion towards the septum: anteroseptal
        (10, 3, 9),  # just past the septum mid-line: inferoseptal
        (90, 4, 10),  # inferior
        (170, 5, 11),  # opposite the septum, inferior side: inferolateral
        (190, 6, 12),  # opposite the septum, anterior side: anterolateral
        (-90, 1, 7),  # anterior
    ]:
        pixel = _ring_pixel(half, spacing, c + offset)
        assert label[pixel] == 2
        assert (basal[pixel], mid[pixel]) == (basal_number, mid_number), offset
    for offset, apical_number in [(0, 14), (90, 15), (180, 16), (-90, 13)]:
        assert apical[_ring_pixel(half, spacing, c + offset)] == apical_number, offset

    ring = label == 2
    for segments, expected in [(basal, BASAL), (mid, MID), (apical, APICAL)]:
        assert not segments[~ring].any()
        numbers, counts = np.unique(segments[ring], return_counts=True)
        assert set(numbers) == expected
        np.testing.assert_allclose(counts / ring.sum(), 1 / len(expected), atol=0.03)


def test_the_rv_is_the_component_with_most_pixels_in_the_band():
    label, cine, affine, half = _phantom()
    fat = np.zeros(label.shape, dtype=bool)
    fat[half[0] + 30 :, :] = True  # bright slab at x > 30 mm: ~1750 px, ~55 of them within 15 mm of the epicardium
    cine[fat] = 1.0
    rv = find_rv_insertion(cine, label, affine)
    crescent_pixels = int(rv["rv_mask"].sum())
    assert rv["rv_found"] and not (rv["rv_mask"] & fat).any() and 0 < crescent_pixels < fat.sum()
    assert _angle_error(rv["septum_angle"], np.pi) < 3 * DEG


def test_flipped_y_axis_swaps_anterior_and_inferior():
    label, cine, affine, half = _phantom()
    flipped = affine.copy()
    flipped[1, 1] = -1.0  # world y (anterior) now runs along voxel -y
    straight = find_rv_insertion(cine, label, affine)
    mirrored = find_rv_insertion(cine, label, flipped)
    assert mirrored["anterior_angle"] == pytest.approx(straight["inferior_angle"])
    assert mirrored["inferior_angle"] == pytest.approx(straight["anterior_angle"])
    assert _angle_error(mirrored["anterior_angle"], -120 * DEG) < 10 * DEG
    basal = aha_segments(label, mirrored["anterior_angle"], mirrored["inferior_angle"], "basal")
    # the direction of travel reverses too: anteroseptal now lies at voxel angle -130 degrees
    assert basal[_ring_pixel(half, (1.0, 1.0), -130)] == 2
    assert basal[_ring_pixel(half, (1.0, 1.0), 130)] == 3
    assert basal[_ring_pixel(half, (1.0, 1.0), 90)] == 4


def test_no_rv_falls_back_without_raising():
    label, cine, affine, _ = _phantom(rv=False)
    rv = find_rv_insertion(cine, label, affine)
    assert rv["rv_found"] is False and "fallback_septum_angle" in rv["warning"]
    assert not rv["rv_mask"].any()
    assert rv["septum_angle"] == pytest.approx(np.pi)
    assert rv["anterior_angle"] == pytest.approx(120 * DEG)  # pi -+ 60 degrees, the +y one is anterior
    assert rv["inferior_angle"] == pytest.approx(-120 * DEG)
    lateral_rv = find_rv_insertion(cine, label, affine, fallback_septum_angle=0.0)
    assert lateral_rv["anterior_angle"] == pytest.approx(60 * DEG)
    assert lateral_rv["inferior_angle"] == pytest.approx(-60 * DEG)


def test_aha_segments_septum_angle_picks_the_arc_and_bad_arguments_raise():
    label, _, _, half = _phantom()
    shorter = aha_segments(label, 120 * DEG, -120 * DEG, "basal")
    explicit = aha_segments(label, 120 * DEG, -120 * DEG, "basal", septum_angle=np.pi)
    np.testing.assert_array_equal(shorter, explicit)
    # a septum on the far side makes the long arc septal: travel runs the other way from the anterior insertion
    long_arc = aha_segments(label, 120 * DEG, -120 * DEG, "basal", septum_angle=0.0)
    assert long_arc[_ring_pixel(half, (1.0, 1.0), 110)] == 2
    with pytest.raises(ValueError, match="`level`"):
        aha_segments(label, 1.0, -1.0, "apex")
    with pytest.raises(ValueError, match="`anterior_angle` and `inferior_angle`"):
        aha_segments(label, 1.0, 1.0 + 2 * np.pi, "mid")
    with pytest.raises(ValueError, match="`cine_ed` and `label`"):
        find_rv_insertion(np.zeros((4, 4)), label, np.eye(4))
    with pytest.raises(ValueError, match="`affine`"):
        find_rv_insertion(np.zeros(label.shape), label, np.eye(3))


# --- per-segment scar -------------------------------------------------------------------------------------------------


def test_segment_scar_whole_segment_is_transmural_and_a_rim_is_not():
    label, _, _, half = _phantom()
    segments = aha_segments(label, 120 * DEG, -120 * DEG, "mid")
    x, y = np.indices(label.shape)
    outer_rim = np.hypot(x - half[0], y - half[1]) > 16.5  # epicardial 1.5 mm of an 8 mm wall
    label[segments == 10] = 3  # the whole inferior segment
    label[(segments == 7) & outer_rim] = 3  # a thin epicardial rim of the anterior segment
    per_segment = segment_scar(label, segments)
    assert sorted(per_segment) == list(range(7, 13))
    assert sum(s["myocardium_pixels"] for s in per_segment.values()) == int((label >= 2).sum())
    whole, rim, clean = per_segment[10], per_segment[7], per_segment[9]
    assert whole["scar_fraction"] == 1.0 and whole["has_scar"] and whole["transmural"]
    assert rim["scar_pixels"] == int(((segments == 7) & outer_rim).sum())
    assert 0.05 <= rim["scar_fraction"] < 0.5 and rim["has_scar"] and not rim["transmural"]
    assert clean["scar_pixels"] == 0 and not clean["has_scar"] and not clean["transmural"]
    assert not segment_scar(label, segments, min_fraction=0.9)[7]["has_scar"]
    with pytest.raises(ValueError, match="`min_fraction`"):
        segment_scar(label, segments, min_fraction=1.5)


# --- cohort statistics and plot ---------------------------------------------------------------------------------------


def test_cohort_agreement_by_hand():
    pred, true = [2.0, 4.0, 6.0, 8.0, 10.0], [1.0, 4.0, 5.0, 9.0, 8.0]
    # differences 1, 0, 1, -1, 2: bias 0.6; squared deviations sum 5.2, / 4 -> SD sqrt(1.3)
    result = cohort_agreement(pred, true)
    assert result["bias"] == pytest.approx(0.6)
    assert result["sd_difference"] == pytest.approx(np.sqrt(1.3))
    assert result["loa_lower"] == pytest.approx(0.6 - 1.96 * np.sqrt(1.3))
    assert result["loa_upper"] == pytest.approx(0.6 + 1.96 * np.sqrt(1.3))
    assert result["pearson_r"] == pytest.approx(np.corrcoef(pred, true)[0, 1])
    assert 0 < result["p_value"] < 0.05
    assert result["n"] == 5 and result["n_excluded"] == 0


def test_cohort_agreement_undefined_cases():
    two = cohort_agreement([1.0, 2.0], [1.0, 3.0])
    assert np.isnan(two["pearson_r"]) and np.isnan(two["p_value"]) and two["bias"] == pytest.approx(-0.5)
    assert np.isnan(cohort_agreement([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])["pearson_r"])  # zero variance
    with_nan = cohort_agreement([1.0, np.nan, 3.0, 5.0], [1.0, 2.0, 2.0, 6.0])
    assert with_nan["n"] == 3 and with_nan["n_excluded"] == 1 and with_nan["bias"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="`pred_values` and `true_values`"):
        cohort_agreement([1.0, 2.0], [1.0])


def test_segment_detection_counts():
    pred = np.array([1, 1, 0, 0, 1, 0, 0], dtype=bool)
    true = np.array([1, 0, 0, 1, 1, 0, 0], dtype=bool)
    result = segment_detection(pred, true)
    assert (result["tp"], result["fp"], result["tn"], result["fn"]) == (2, 1, 3, 1)
    assert result["sensitivity"] == pytest.approx(2 / 3)
    assert result["specificity"] == pytest.approx(3 / 4)
    assert result["ppv"] == pytest.approx(2 / 3)
    assert result["npv"] == pytest.approx(3 / 4)
    none_true = segment_detection([0, 1], [0, 0])
    assert np.isnan(none_true["sensitivity"]) and none_true["specificity"] == 0.5 and none_true["ppv"] == 0.0
    with pytest.raises(ValueError, match=r"`pred_flags` and `true_flags` must have the same shape, got \(2, 3\)"):
        segment_detection(np.zeros((2, 3), bool), np.zeros((3, 2), bool))  # (patients, segments) transposed


def test_bland_altman_plot_writes_a_png_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "plots" / "scar_size.png"
    written = bland_altman_plot([2.0, 4.0, 6.0, 8.0], [1.0, 4.0, 5.0, 9.0], path, "Scar size", "cm^2")
    assert written == path and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileExistsError, match="scar_size.png"):
        bland_altman_plot([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], path)
    bland_altman_plot([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], path, overwrite=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
