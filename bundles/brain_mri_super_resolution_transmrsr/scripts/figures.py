"""Figures of the docs: samples of the generative prior, and a coronal view of x8 super-resolution with error maps."""

from __future__ import annotations

__all__ = ["prior_samples_figure", "super_resolution_figure"]

import numpy as np
import torch


def prior_samples_figure(generator: torch.nn.Module, prior_path: str, out_png: str, n: int = 16, seed: int = 0) -> str:
    """A 4-column grid of the EMA generator's images from ``n`` seeded latents (``prior.pt``'s ``g_ema``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    checkpoint = torch.load(prior_path, map_location="cpu", weights_only=True)
    generator.load_state_dict(checkpoint["g_ema"] if "g_ema" in checkpoint else checkpoint["g"])
    generator.eval()
    z = torch.randn(n, generator.style_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        images = generator(z)[:, 0].numpy()
    columns = 4
    rows = int(np.ceil(n / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2 * rows))
    for axis, image in zip(axes.flat, images):
        axis.imshow(image.T, cmap="gray", vmin=0, vmax=1, origin="lower")
    for axis in axes.flat:
        axis.axis("off")
    figure.suptitle("generative prior: EMA generator, seeded latents")
    figure.tight_layout()
    figure.savefig(out_png, dpi=100)
    plt.close(figure)
    return out_png


def super_resolution_figure(panels: dict[str, np.ndarray], truth: np.ndarray, out_png: str, slice_index: int) -> str:
    """One coronal slice (x-z, z vertical: the thick-slice axis) of each volume in ``panels`` and of the truth, with
    the absolute error of each panel below it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(panels)
    top = np.percentile(truth, 99.5)
    figure, axes = plt.subplots(2, len(names) + 1, figsize=(2.4 * (len(names) + 1), 5.2))
    for column, name in enumerate([*names, "HR truth"]):
        volume = truth if name == "HR truth" else panels[name]
        axes[0, column].imshow(volume[:, slice_index, :].T, cmap="gray", vmin=0, vmax=top, origin="lower")
        axes[0, column].set_title(name, fontsize=9)
        if name != "HR truth":
            error = np.abs(volume - truth)[:, slice_index, :].T
            axes[1, column].imshow(error, cmap="magma", vmin=0, vmax=0.3 * top, origin="lower")
            axes[1, column].set_title("|error|", fontsize=8)
    for axis in axes.flat:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(out_png, dpi=100)
    plt.close(figure)
    return out_png
