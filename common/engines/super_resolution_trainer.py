"""Supervised super-resolution (LR -> SR against HR) with a multi-term loss, on the engine base."""

from __future__ import annotations

__all__ = ["SuperResolutionTrainer"]

from collections.abc import Callable
from typing import Any

import torch
from common.engines.base import MultiNetworkTrainer, named_loss_terms
from monai.engines.utils import IterationEvents
from monai.inferers import Inferer, SimpleInferer


class SuperResolutionTrainer(MultiNetworkTrainer):
    """One SR network, one optimizer, a loss whose terms are logged by name (TransMRSR's SR stage, section 3.5).

    One iteration: ``sr = inferer(lr, network)``; ``terms = loss_function.terms(sr, hr)`` (e.g.
    ``common.losses.SuperResolutionLoss``: ``L = L_1 + 0.5 (L_content + L_style)``); one optimizer step on
    ``terms["loss"]``. The LR input is whatever the network takes (TransMRSR: the LR slice interpolated back to the
    HR grid, so ``lr`` and ``hr`` have one shape).

    Args:
        args, kwargs: ``common.engines.MultiNetworkTrainer``'s, with ``networks = {"network": net}`` and
            ``optimizers = {"optimizer": ...}``; a frozen part (a fixed generative prior) stays out of the optimizer
            or goes in ``frozen_networks``.
        loss_function: an object with ``terms(sr, hr) -> dict`` holding ``loss`` (the total, with graph) and one
            entry per term (``loss_l1``, ``loss_content``, ``loss_style``); a plain callable returning a tensor is
            taken as ``{"loss": ...}``.
        input_key, target_key: batch keys of the LR input and the HR target.
        inferer: forward pass (default ``SimpleInferer``).

    Returns (``engine.state.output`` before decollation):
        ``lr``, ``hr``, ``sr`` (detached), ``error`` (``|sr - hr|`` over the target's channels, detached, for image
        grids) and every loss term, detached, so ``from_engine(["sr", "hr"])`` feeds a PSNR metric and
        ``from_engine(["loss"], first=True)`` the logs.

    Raises:
        ValueError: a batch lacks ``input_key``/``target_key`` (naming it and the keys present), or the loss terms
            lack ``loss``.

    Examples::

        trainer = SuperResolutionTrainer("cpu", 10, loader, {"network": net}, {"optimizer": opt},
                                         loss_function=SuperResolutionLoss(vgg_weights="vgg19.pth"))
    """

    network_names = ("network",)
    optimizer_names = ("optimizer",)

    def __init__(
        self,
        *args: Any,
        loss_function: Callable[..., Any],
        input_key: str = "lr",
        target_key: str = "hr",
        inferer: Inferer | None = None,
        **kwargs: Any,
    ) -> None:
        self.loss_function = loss_function
        self.input_key = input_key
        self.target_key = target_key
        self.inferer = SimpleInferer() if inferer is None else inferer
        super().__init__(*args, **kwargs)

    def loss_terms(self, sr: torch.Tensor, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss as a dict of named terms (``loss`` the total)."""
        return named_loss_terms(self.loss_function, sr, hr)

    def _iteration(self, engine: SuperResolutionTrainer, batchdata: dict[str, torch.Tensor]) -> dict:
        """Forward, named loss terms, one optimizer step; see the class docstring for the returned keys."""
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        missing = [key for key in (engine.input_key, engine.target_key) if key not in batchdata]
        if missing:
            raise ValueError(
                f"batch has no key(s) {missing} (input_key/target_key); keys present: {sorted(batchdata)}."
            )
        to = {"device": engine.state.device, "non_blocking": engine.non_blocking, **engine.to_kwargs}
        lr, hr = batchdata[engine.input_key].to(**to), batchdata[engine.target_key].to(**to)
        engine.state.output = {"lr": lr, "hr": hr}
        engine.train_mode()
        with engine.autocast():
            sr = engine.inferer(lr, engine.networks["network"])
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            terms = engine.loss_terms(sr, hr)
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        engine.optimizer_step("optimizer", terms["loss"], IterationEvents.BACKWARD_COMPLETED)
        engine.state.output["sr"] = sr.detach()
        # the SR output may carry extra channels after the target's (REHRSeg's UASR: its uncertainty map)
        engine.state.output["error"] = (sr.detach()[:, : hr.shape[1]] - hr).abs()
        engine.state.output.update(engine.detached(terms))
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
