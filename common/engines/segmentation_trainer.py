"""Supervised segmentation with a multi-term loss (each term a named output) on the engine base."""

from __future__ import annotations

__all__ = ["SegmentationTrainer"]

from collections.abc import Callable
from typing import Any

import torch
from common.class_maps import class_index
from common.engines.base import MultiNetworkTrainer, named_loss_terms
from monai.engines.utils import IterationEvents
from monai.inferers import Inferer, SimpleInferer


class SegmentationTrainer(MultiNetworkTrainer):
    """One network, one optimizer, a loss whose terms are logged by name (e.g. the composite segmentation loss).

    MONAI's ``SupervisedTrainer`` keeps only the total loss; a paper's loss with several terms (the cascaded U-Net's
    ``L_seg = L_wce + lambda * L_edge``, Chen et al. 2019, Sec. 2.2) should show each term in TensorBoard and in the
    epoch means (``common.handlers.LossTermMeans``). One iteration:
    ``logits = inferer(image, network)``; ``terms = loss_function.terms(logits, label)``;
    ``terms["loss"].backward()``; ``optimizer.step()``.

    Args:
        args, kwargs: ``common.engines.MultiNetworkTrainer``'s, with ``networks = {"network": net}`` and
            ``optimizers = {"optimizer": ...}`` over the parameters to train (e.g. only U-Net 2's of a cascade
            whose U-Net 1 is frozen: ``common.nets.CascadedUNet.trainable_parameters()``).
        loss_function: an object with ``terms(logits, label) -> dict`` holding ``loss`` (the total, with graph) and
            one entry per term (``loss_wce``, ``loss_edge``), e.g. ``common.losses.CompositeSegmentationLoss``; a
            plain callable returning a tensor is taken as ``{"loss": ...}``.
        image_key, label_key: batch keys.
        inferer: forward pass (default ``SimpleInferer``).

    Returns (``engine.state.output`` before decollation):
        ``image``, ``label``, ``pred`` (the logits, detached), ``label_image`` and ``pred_image`` (class maps over
        ``C - 1``: ``[0, 1]`` images for grids) and every loss term, detached, so that
        ``from_engine(["pred", "label"])`` feeds a Dice metric and ``from_engine(["loss"], first=True)`` the logs.

    Raises:
        ValueError: a batch lacks ``image_key``/``label_key``, or the loss terms lack ``loss``.

    Examples::

        trainer = SegmentationTrainer("cpu", 10, loader, {"network": net}, {"optimizer": opt},
                                      loss_function=CompositeSegmentationLoss())
    """

    network_names = ("network",)
    optimizer_names = ("optimizer",)

    def __init__(
        self,
        *args: Any,
        loss_function: Callable[..., Any],
        image_key: str = "image",
        label_key: str = "label",
        inferer: Inferer | None = None,
        **kwargs: Any,
    ) -> None:
        self.loss_function = loss_function
        self.image_key = image_key
        self.label_key = label_key
        self.inferer = SimpleInferer() if inferer is None else inferer
        super().__init__(*args, **kwargs)

    def loss_terms(self, logits: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss as a dict of named terms (``loss`` the total)."""
        return named_loss_terms(self.loss_function, logits, label)

    def _iteration(self, engine: SegmentationTrainer, batchdata: dict[str, torch.Tensor]) -> dict:
        """Forward, named loss terms, one optimizer step; see the class docstring for the returned keys."""
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        missing = [k for k in (engine.image_key, engine.label_key) if k not in batchdata]
        if missing:
            raise ValueError(f"batch has no key(s) {missing} (image_key/label_key); keys present: {sorted(batchdata)}.")
        to = {"device": engine.state.device, "non_blocking": engine.non_blocking, **engine.to_kwargs}
        image, label = batchdata[engine.image_key].to(**to), batchdata[engine.label_key].to(**to)
        engine.state.output = {"image": image, "label": label}
        engine.train_mode()
        with engine.autocast():
            logits = engine.inferer(image, engine.networks["network"])
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            terms = engine.loss_terms(logits, label)
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        engine.optimizer_step("optimizer", terms["loss"], IterationEvents.BACKWARD_COMPLETED)
        engine.state.output["pred"] = logits.detach()
        # label maps as [0, 1] images for TensorBoard grids (common.handlers.GanImageGridHandler)
        last_class = max(logits.shape[1] - 1, 1)
        engine.state.output["label_image"] = label.detach().float() / last_class
        engine.state.output["pred_image"] = class_index(logits.detach()).float() / last_class
        engine.state.output.update(engine.detached(terms))
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
