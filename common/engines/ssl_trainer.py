"""U-SSL pre-training trainer (two augmented views, multi-task loss) on the engine base."""

from __future__ import annotations

__all__ = ["SSLTrainer"]

from collections.abc import Callable
from typing import Any

import torch
from common.engines.base import MultiNetworkTrainer
from monai.engines.utils import IterationEvents


class SSLTrainer(MultiNetworkTrainer):
    """Self-supervised pre-training with two augmented views and a multi-task loss (U-SSL).

    "CycleGANSeg + SwinSSegNet + U-SSL" paper, section II.C and Fig. 5: a batch ``I`` goes through two
    augmentation sets AUG1/AUG2 (rotation by 0/90/180/270 degrees, then random masking); the network sees both
    masked views and is trained on rotation prediction (eq. 3), masked-image reconstruction (eq. 4) and
    contrastive learning between the two views' embeddings (eq. 5). One iteration:

    ``aug = augment(I)``; ``out1 = network(aug["masked_1"])``; ``out2 = network(aug["masked_2"])``;
    ``terms = loss_function(out1, out2, aug)``; ``terms["loss"].backward()``; ``optimizer.step()``.

    Args:
        args, kwargs: ``common.engines.MultiNetworkTrainer``'s (device, max_epochs, train_data_loader, ``networks``,
            ``optimizers``, amp, train_handlers, ...), with ``networks = {"network": e.g. common.ssl.SSLNet,
            forward(x) -> dict(rotation_logits, embedding, reconstruction)}`` and ``optimizers = {"optimizer": over
            its parameters}``.
        augment: e.g. ``common.ssl.TwoViewAugment``: ``(B, C, H, W) -> dict`` with at least ``masked_1`` and
            ``masked_2`` (plus rotations and masks the loss needs).
        loss_function: e.g. ``common.ssl.MultiTaskSSLLoss``: ``forward(out1, out2, aug) -> dict`` with ``loss`` (the
            total, with graph) and one entry per term (``loss_rotation``, ``loss_reconstruction``,
            ``loss_contrastive``).
        image_key: batch key of the image ``(B, C, H, W)``.

    Returns (``engine.state.output`` before decollation):
        every entry of the loss dict, detached (``loss``, ``loss_rotation``, ``loss_reconstruction``,
        ``loss_contrastive``), and ``image``, the input batch ``(B, C, H, W)``, so that the output decollates and
        ``StatsHandler(output_transform=from_engine(["loss"], first=True))`` logs the total.

    Raises:
        ValueError: if a batch lacks ``image_key`` or the loss dict lacks ``loss``.

    Examples::

        trainer = SSLTrainer("cpu", 100, loader, {"network": SSLNet(...)}, {"optimizer": optimizer},
                             augment=TwoViewAugment(), loss_function=MultiTaskSSLLoss(), image_key="image")
        trainer.run()
    """

    network_names = ("network",)
    optimizer_names = ("optimizer",)

    def __init__(
        self,
        *args: Any,
        augment: Callable[[torch.Tensor], dict],
        loss_function: Callable[..., dict],
        image_key: str,
        **kwargs: Any,
    ) -> None:
        self.augment = augment
        self.loss_function = loss_function
        self.image_key = image_key
        super().__init__(*args, **kwargs)

    def _iteration(self, engine: SSLTrainer, batchdata: dict[str, torch.Tensor]) -> dict:
        """Two views, one multi-task loss, one optimizer step; see the class docstring for the returned keys."""
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        if engine.image_key not in batchdata:
            raise ValueError(f"batch has no key {engine.image_key!r} (image_key); keys present: {sorted(batchdata)}.")
        images = batchdata[engine.image_key].to(
            device=engine.state.device, non_blocking=engine.non_blocking, **engine.to_kwargs
        )
        engine.state.output = {"image": images}
        engine.train_mode()
        network = engine.networks["network"]
        with torch.no_grad():
            views = engine.augment(images)
        with engine.autocast():
            out1 = network(views["masked_1"])
            out2 = network(views["masked_2"])
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            terms = engine.loss_function(out1, out2, views)
        if "loss" not in terms:
            raise ValueError(f"loss_function must return a dict with key 'loss'; got keys {sorted(terms)}.")
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        engine.optimizer_step("optimizer", terms["loss"], IterationEvents.BACKWARD_COMPLETED)
        engine.state.output.update(engine.detached(terms))
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
