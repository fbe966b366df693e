"""OverlayWriter: one PNG per case for both bundles (segmentation layout, and custom panels for translations)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from common.handlers import OverlayWriter, overlay_png


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
