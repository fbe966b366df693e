"""The docs' overlay figure: a coronal view of one held-out subject, where the slice thickness shows."""

from __future__ import annotations

__all__ = ["busiest_plane", "overlay_figure"]

import numpy as np


def busiest_plane(label: np.ndarray, axis: int = 1) -> int:
    """The index along ``axis`` of the plane with the most foreground voxels (the lesion's widest cut)."""
    other = tuple(a for a in range(label.ndim) if a != axis)
    return int(np.argmax((label > 0).sum(axis=other)))


def overlay_figure(
    thick: np.ndarray,
    image: np.ndarray,
    truth: np.ndarray,
    predictions: dict[str, np.ndarray],
    out_png: str,
    plane: int,
    title: str = "",
) -> str:
    """One coronal plane (x-z, index ``plane`` along y; z, the through-plane axis, vertical) of each volume.

    Panels: the thick-slice input repeated onto the thin grid (``thick``: nearest, so its 4x slices show), the HR
    image with the HR truth's outline, then each prediction's outline (orange) over the HR image with the truth's
    (cyan). All volumes are ``(X, Y, Z)`` on the thin grid.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = float(np.percentile(image, 99.5))
    names = ["thick slices (input)", "HR image + truth", *predictions]
    figure, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 3.2))
    for axis, name in zip(axes, names):
        background = thick if name == names[0] else image
        axis.imshow(background[:, plane, :].T, cmap="gray", vmin=0, vmax=top, origin="lower", aspect="auto")
        if name != names[0]:
            axis.contour(truth[:, plane, :].T > 0, levels=[0.5], colors="cyan", linewidths=0.8)
        if name in predictions:
            mask = predictions[name][:, plane, :].T > 0
            if mask.any():
                axis.contour(mask, levels=[0.5], colors="orange", linewidths=0.8)
        axis.set_title(name, fontsize=8)
        axis.axis("off")
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(out_png, dpi=110)
    plt.close(figure)
    return out_png
