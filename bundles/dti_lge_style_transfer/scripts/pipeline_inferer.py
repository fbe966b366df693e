"""The paper's pipeline in one inferer: CycleGANSeg's G_S>T (DTI -> LGE style), then SwinSSegNet (8x MI mask)."""

from __future__ import annotations

from typing import Any, Callable

import torch
from monai.data import MetaTensor
from monai.inferers import Inferer

__all__ = ["TranslateSegmentInferer"]


class TranslateSegmentInferer(Inferer):
    """Translate with the evaluator's network, re-normalise each translated image, then segment it.

    Wang et al., section II and Fig. 2: "The CycleGANSeg initially translates the DTI image into the LGE style, with
    a resolution of 64x64. Subsequently, the SwinSSegNet generates the MI segmentation mask with an upsampled
    resolution of 512x512". The evaluator's ``network`` is the generator ``G_S>T`` (Tanh output in ``[-1, 1]``);
    ``segmenter`` is the SwinSSegNet of the ``lge_mi_sr_segmentation`` bundle, which was trained on LGE normalised by
    ``intensity_transform`` (percentile scaling to ``[0, 1]``). Applying that transform to each translated image makes
    the result identical to saving the LGE-style image and running the other bundle's inference on the file (the
    percentile scaling ignores the affine ``[-1, 1] -> [0, 1]`` map of the saved file).

    Shapes: ``(B, C, H, W)`` DTI in ``[-1, 1]`` (``C = len(dti_channels)``, the generator's input channels) ->
    ``(B, num_classes, s*H, s*W)`` raw logits of the segmenter; with a slice ``inferer``
    (``monai.inferers.SliceInferer``), volumes ``(B, C, H, W, D)`` -> ``(B, num_classes, s*H, s*W, D)``: the whole
    volume is translated slice by slice first, each translated slice re-normalised on its own, then segmented slice by
    slice, so a larger slice (windowed by the inferer) is normalised as one image. The logits keep the input's
    ``MetaTensor`` metadata (the low-resolution affine), so ``SuperResolveAffined`` can give the saved mask the ``s``
    times finer grid over the same field of view.

    Args:
        segmenter: the super-resolution segmentation network (put in eval mode at every call: it is not the
            evaluator's network, so the engine does not switch it).
        intensity_transform: per-image array transform ``(1, H, W) -> (1, H, W)`` giving the segmenter's input
            normalisation; ``None`` feeds the generator output as is.
        inferer: runs each network over the input (e.g. ``SliceInferer`` for volumes); ``None`` calls them directly.

    Examples::

        inferer = TranslateSegmentInferer(swin_sseg, ScaleIntensityRangePercentiles(1, 99, 0.0, 1.0, clip=True))
        logits = inferer(dti_batch, generator)  # (B, 2, 512, 512) for a (B, 1, 64, 64) batch
    """

    def __init__(
        self,
        segmenter: torch.nn.Module,
        intensity_transform: Callable[[torch.Tensor], Any] | None = None,
        inferer: Inferer | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(segmenter, torch.nn.Module):
            raise ValueError(f"segmenter must be a torch.nn.Module, got {type(segmenter).__name__}.")
        self.segmenter = segmenter
        self.intensity_transform = intensity_transform
        self.inferer = inferer

    def _run(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor]) -> torch.Tensor:
        return network(inputs) if self.inferer is None else self.inferer(inputs, network)

    def translate(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor]) -> torch.Tensor:
        """``G_S>T(inputs)``, each image re-normalised by ``intensity_transform`` when given."""
        translated = self._run(inputs, network)
        if self.intensity_transform is None:
            return translated
        plain = translated.as_tensor() if isinstance(translated, MetaTensor) else translated
        if plain.ndim == 5:  # (B, C, H, W, D): every slice on its own, as the segmenter saw its training slices
            images = [
                torch.stack([torch.as_tensor(self.intensity_transform(v[..., k])) for k in range(v.shape[-1])], -1)
                for v in plain
            ]
        else:
            images = [torch.as_tensor(self.intensity_transform(image)) for image in plain]
        return torch.stack(images).to(device=translated.device, dtype=translated.dtype)

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        """
        Args:
            inputs: ``(B, C, H, W)`` DTI batch in the generator's input range.
            network: the generator ``G_S>T``.

        Returns:
            ``(B, num_classes, s*H, s*W)`` logits, a ``MetaTensor`` with the input's metadata when the input has it.
        """
        self.segmenter.eval()
        logits = self._run(self.translate(inputs, network), lambda x: self.segmenter(x, *args, **kwargs))
        if isinstance(inputs, MetaTensor):
            logits = MetaTensor(
                logits.as_tensor() if isinstance(logits, MetaTensor) else logits,
                meta=inputs.meta,
                applied_operations=inputs.applied_operations,
            )
            logits.is_batch = inputs.is_batch
        return logits
