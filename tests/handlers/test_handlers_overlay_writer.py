"""OverlayWriter: one PNG per case for both bundles (segmentation layout, and custom panels for translations)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from common.handlers import OverlayWriter, overlay_png
from common.handlers.overlay_writer import busiest_slice


def _engine(items, batch=None):
    return SimpleNamespace(state=SimpleNamespace(output=items, batch=batch if batch is not None else items))


def _png_shape(path):
    import matplotlib.image

    return matplotlib.image.imread(str(path)).shape


def test_segmentation_layout_with_a_low_resolution_image_under_one_hot_masks(tmp_path):
    label = torch.zeros(2, 32, 32)
    label[0], label[1, 8:16, 8:16], label[0, 8:16, 8:16] = 1, 1, 0  # one-hot (C, H, W)
    items = [{"image": torch.rand(1, 4, 4), "label": label, "pred": label.clone()}]
    writer = OverlayWriter(str(tmp_path / "overlays"))
    writer(_engine(items, [{"case": "Case_007"}]))  # the case id comes from the batch
    assert [p.name for p in (tmp_path / "overlays").iterdir()] == ["Case_007.png"]
    height, width = _png_shape(tmp_path / "overlays" / "Case_007.png")[:2]
    assert width > 2 * height  # three panels side by side


def test_custom_panels_and_running_index(tmp_path):
    mask = torch.zeros(1, 16, 16, dtype=torch.int64)
    mask[:, 4:8, 4:8] = 1
    item = {"image": torch.rand(1, 16, 16), "pred": torch.rand(1, 16, 16), "label": mask, "segmentor_pred": mask}
    panels = [["DTI", "image", ["label"]], ["translated", "pred", ["label", "segmentor_pred"]]]
    writer = OverlayWriter(str(tmp_path), panels=panels, case_key=None, fill=False)
    writer(_engine([item, dict(item)]))
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["0.png", "1.png"]


def test_overlay_png_draws_empty_and_full_masks(tmp_path):
    """An all-foreground mask has no outline inside the image: the tint is what shows it. An empty mask draws
    nothing (the PNG equals the one without masks)."""
    import matplotlib.image

    full, empty, image = np.ones((8, 8), dtype=np.int64), np.zeros((8, 8), dtype=np.int64), np.zeros((8, 8))
    overlay_png(str(tmp_path / "x.png"), [("a", image, [full, empty])])
    overlay_png(str(tmp_path / "none.png"), [("a", image, [])])
    overlay_png(str(tmp_path / "empty.png"), [("a", image, [empty])])
    overlay_png(str(tmp_path / "outline.png"), [("a", image, [full])], fill=False)
    drawn, none, only_empty, outline = (
        matplotlib.image.imread(str(tmp_path / f"{name}.png")) for name in ("x", "none", "empty", "outline")
    )
    assert np.array_equal(only_empty, none)
    tinted = np.abs(drawn[..., :3] - none[..., :3]).max(axis=-1) > 0.05
    assert tinted.mean() > 0.1  # the tint covers the image area (a black image, so any colour differs)
    assert (
        np.abs(outline[..., :3] - none[..., :3]).max(axis=-1).mean()
        < np.abs(drawn[..., :3] - none[..., :3]).max(axis=-1).mean()
    )  # without the tint much less of the image changes


def test_missing_key_and_bad_panels_raise(tmp_path):
    writer = OverlayWriter(str(tmp_path), panels=[["x", "image", ["segmentor_pred"]]])
    with pytest.raises(KeyError, match="segmentor_pred"):
        writer(_engine([{"image": torch.zeros(1, 4, 4)}]))
    with pytest.raises(ValueError, match="panels"):
        OverlayWriter(str(tmp_path), panels=[["x", "image", "label"]])
    with pytest.raises(ValueError, match="panels"):
        OverlayWriter(str(tmp_path), panels=[])
    with pytest.raises(ValueError, match="2D"):
        OverlayWriter(str(tmp_path), panels=[["x", "image", []]])(_engine([{"image": torch.zeros(1, 2, 4, 4)}]))


def test_busiest_slice_is_the_slice_with_the_most_foreground_else_the_middle():
    labels = torch.zeros(1, 8, 8, 5)
    labels[0, :2, :2, 1], labels[0, :3, :3, 3] = 500, 200  # 4 and 9 voxels
    assert busiest_slice(labels) == 3
    one_hot = torch.cat([1 - (labels != 0).float(), (labels != 0).float()])
    assert busiest_slice(one_hot) == 3  # channel 0 (background) is not counted
    assert busiest_slice(torch.zeros(1, 8, 8, 5)) == 2
    with pytest.raises(ValueError, match="stack"):
        busiest_slice(torch.zeros(1, 8, 8))


def test_stacks_are_drawn_at_the_busiest_slice_of_slice_key_with_the_image_from_the_batch(tmp_path, monkeypatch):
    """A segmentation of a stack: the prediction and label on the input grid in the output item, the input image
    (loaded again on that grid) only in the batch item; every panel is cut at the label's busiest slice."""
    from common.handlers import overlay_writer

    drawn = []
    monkeypatch.setattr(overlay_writer, "overlay_png", lambda path, panels, title, fill: drawn.append((panels, title)))
    label = torch.zeros(1, 16, 16, 6, dtype=torch.int64)
    label[0, 4:8, 4:8, 4], label[0, 6:7, 6:7, 4], label[0, 4:6, 4:6, 1] = 500, 200, 600  # slice 4: 16 voxels
    pred = torch.zeros_like(label)
    source = torch.rand(1, 16, 16, 6)
    writer = OverlayWriter(str(tmp_path), image_key="source", slice_key="label")
    writer(
        _engine([{"image": torch.rand(1, 8, 8, 3), "label": label, "pred": pred}], [{"case": "p1", "source": source}])
    )
    ((panels, title),) = drawn
    assert title == "p1, slice 4"
    assert [name for name, _, _ in panels] == ["image", "truth", "prediction"]
    for _, image, _ in panels:
        np.testing.assert_array_equal(image, source[0, :, :, 4].numpy())
    np.testing.assert_array_equal(panels[1][2][0], label[0, :, :, 4].numpy())
    assert not panels[2][2][0].any()
    with pytest.raises(KeyError, match="neither the output item nor the batch"):
        writer(_engine([{"label": label, "pred": pred}], [{"case": "p1"}]))


def test_stacks_in_a_slices_first_layout_are_cut_along_their_recorded_slice_axis(tmp_path, monkeypatch):
    """``slice_axis_key``: a stack written back slices-first ``(C, D, H, W)`` is drawn as the same stack stored
    ``(C, H, W, D)`` (same slice, same panels); without the key its last axis would be cut."""
    from common.handlers import overlay_writer

    drawn = []
    monkeypatch.setattr(overlay_writer, "overlay_png", lambda path, panels, title, fill: drawn.append((panels, title)))
    label = torch.zeros(1, 16, 12, 6, dtype=torch.int64)
    label[0, 4:8, 4:8, 4] = 500
    source = torch.rand(1, 16, 12, 6)
    writer = OverlayWriter(str(tmp_path), image_key="source", slice_key="label", slice_axis_key="axis")
    writer(_engine([{"label": label, "pred": label}], [{"case": "p1", "source": source}]))
    first = {key: torch.movedim(value, -1, 1) for key, value in {"label": label, "source": source}.items()}
    writer(_engine([{"label": first["label"], "pred": first["label"]}], [{"case": "p1", "axis": 0, **first}]))
    (last_panels, last_title), (first_panels, first_title) = drawn
    assert last_title == first_title == "p1, slice 4"
    for (_, image, labels), (_, other, other_labels) in zip(last_panels, first_panels):
        np.testing.assert_array_equal(other, image)
        for mask, other_mask in zip(labels, other_labels):
            np.testing.assert_array_equal(other_mask, mask)


def test_overlay_png_outlines_label_values_that_are_not_consecutive(tmp_path):
    labels = np.zeros((16, 16), dtype=np.int64)
    labels[2:12, 2:12], labels[4:10, 4:10], labels[6:8, 6:8] = 200, 500, 600  # MS-CMRSeg's values
    overlay_png(str(tmp_path / "mscmr.png"), [("a", np.zeros((16, 16)), [labels])], fill=False)
    overlay_png(str(tmp_path / "none.png"), [("a", np.zeros((16, 16)), [])], fill=False)
    import matplotlib.image

    drawn, none = (matplotlib.image.imread(str(tmp_path / f"{name}.png"))[..., :3] for name in ("mscmr", "none"))
    assert (np.abs(drawn - none).max(-1) > 0.05).mean() > 0.01  # the outlines are drawn
