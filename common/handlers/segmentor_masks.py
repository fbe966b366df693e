"""Run a frozen segmentation network on images of each evaluated item and store its argmax label maps."""

from __future__ import annotations

__all__ = ["SegmentorMasks"]

from collections.abc import Sequence

import torch
from common.class_maps import class_index
from ignite.engine import Engine
from monai.engines.utils import IterationEvents


class SegmentorMasks:
    """Ignite handler putting a Segmentor's masks of ``keys`` into each decollated output item as ``output_keys``.

    CycleGANSeg (Wang et al., section II.A, Fig. 3) judges a translation by the frozen Segmentor: its mask of the
    translated image should match its mask of the real LGE and the manual mask. For every output item this
    handler stacks the ``(C_in, H, W)`` images of ``keys`` into one batch ``(len(keys), C_in, H, W)``, runs the
    Segmentor once in eval mode without gradients and stores ``argmax`` over its logits' channel axis as
    ``(1, H, W)`` int64 label maps under ``output_keys`` (on the CPU). ``common.handlers.LabelDice`` then scores
    them, ``OverlayWriter`` draws them.

    Runs at ``IterationEvents.MODEL_COMPLETED`` (after decollation, before the metrics); an image that the
    evaluator does not output (``lge``) must be copied from the batch by ``CopyBatchKeys`` listed before this
    handler.

    Args:
        segmentor: the segmentation network, ``(B, C_in, H, W) -> (B, C, H, W)`` logits.
        keys: output keys of the images to segment.
        output_keys: where to store their masks, one per key.

    Raises:
        ValueError: naming ``output_keys`` when their number differs from ``keys``, or ``segmentor`` when it is
            not a module with parameters.
        KeyError: naming the key (and ``CopyBatchKeys``) when an output item lacks it.

    Examples::

        SegmentorMasks(segmentor, ["pred", "lge"], ["segmentor_pred", "segmentor_lge"]).attach(evaluator)
    """

    def __init__(
        self,
        segmentor: torch.nn.Module,
        keys: Sequence[str] = ("pred",),
        output_keys: Sequence[str] = ("segmentor_pred",),
    ) -> None:
        if not isinstance(segmentor, torch.nn.Module) or next(segmentor.parameters(), None) is None:
            raise ValueError(f"segmentor must be a torch.nn.Module with parameters, got {type(segmentor).__name__}.")
        self.keys, self.output_keys = list(keys), list(output_keys)
        if not self.keys or len(self.output_keys) != len(self.keys):
            raise ValueError(f"output_keys must name one key per key of {self.keys}, got {self.output_keys}.")
        self.segmentor = segmentor

    def attach(self, engine: Engine) -> None:
        """Run at every ``IterationEvents.MODEL_COMPLETED`` of ``engine`` (a MONAI workflow)."""
        engine.add_event_handler(IterationEvents.MODEL_COMPLETED, self)

    @torch.no_grad()
    def segment(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """Argmax label maps ``(N, H, W)`` of the Segmentor on ``N`` ``(C_in, H, W)`` images, as one batch."""
        self.segmentor.eval()
        device = next(self.segmentor.parameters()).device
        batch = torch.stack([torch.as_tensor(image).float().to(device) for image in images])
        return class_index(self.segmentor(batch), keepdim=False).cpu()

    def __call__(self, engine: Engine) -> None:
        output = engine.state.output
        for index, item in enumerate(output if isinstance(output, list) else [output]):
            missing = [key for key in self.keys if key not in item]
            if missing:
                raise KeyError(
                    f"SegmentorMasks: output item {index} has no {missing}; copy batch keys into the output with "
                    "common.handlers.CopyBatchKeys listed before SegmentorMasks."
                )
            masks = self.segment([item[key] for key in self.keys])
            for key, mask in zip(self.output_keys, masks):
                item[key] = mask[None]
