"""TensorBoard grid of one source image translated with several style codes (a multi-modal translator's diversity)."""

from __future__ import annotations

__all__ = ["StyleGridHandler"]

from typing import TYPE_CHECKING, Any

import torch
from common.handlers.gan_image_grid import GanImageGridHandler, image_grid
from common.nets.munit import translate

if TYPE_CHECKING:
    from ignite.engine import Engine


class StyleGridHandler(GanImageGridHandler):
    """Every N iterations: the first source image of the batch and its translations with ``num_styles`` style codes.

    The codes are drawn once from ``N(0, I)`` with a fixed seed, so the columns of successive grids show how the same
    styles render as training goes on (MUNIT, "Unsupervised Multi-modal Style Transfer for Cardiac MR Segmentation",
    Fig. 5: one bSSFP image, several synthetic LGE). The trainer's networks ``gen_a`` (source) and ``gen_b`` (target)
    are used through ``common.nets.translate``.

    Args:
        num_styles: translations per grid.
        source_key: output key of the source images (``x_a`` for ``common.engines.MUNITTrainer``).
        seed: seed of the style codes.
        log_dir, summary_writer, every_n_iterations, value_range, tag: as :class:`GanImageGridHandler`.
    """

    def __init__(
        self, num_styles: int = 4, source_key: str = "x_a", seed: int = 0, tag: str = "styles", **kwargs: Any
    ) -> None:
        super().__init__(keys=(source_key,), max_samples=1, tag=tag, **kwargs)
        if num_styles < 1:
            raise ValueError(f"num_styles must be >= 1, got {num_styles}.")
        self.num_styles = int(num_styles)
        self.seed = int(seed)

    def __call__(self, engine: Engine) -> None:
        (source,) = self.columns(engine.state.output)  # (1, C, H, W)
        gen_a, gen_b = engine.networks["gen_a"], engine.networks["gen_b"]
        device = next(gen_b.parameters()).device
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        style_dim = getattr(gen_b, "module", gen_b).style_dim  # DistributedDataParallel keeps the net in .module
        styles = torch.randn(self.num_styles, style_dim, 1, 1, generator=generator).to(device)
        translated = translate(gen_a, gen_b, source.to(device), styles)  # (N, C, H, W)
        columns = [source.cpu()] + [translated[i : i + 1].cpu() for i in range(self.num_styles)]
        grid = image_grid(columns, self.value_range)
        self.writer.add_image(self.tag, grid, global_step=engine.state.iteration, dataformats="CHW")
