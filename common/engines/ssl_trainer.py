"""U-SSL pre-training trainer (two augmented views, multi-task loss) on ``monai.engines.Trainer``."""

from __future__ import annotations

__all__ = ["SSLTrainer"]

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from monai.engines import Trainer
from monai.engines.utils import IterationEvents, default_metric_cmp_fn
from monai.transforms import Transform
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

if TYPE_CHECKING:
    from ignite.engine import Engine, EventEnum
    from ignite.metrics import Metric


class SSLTrainer(Trainer):
    """Self-supervised pre-training with two augmented views and a multi-task loss (U-SSL).

    "CycleGANSeg + SwinSSegNet + U-SSL" paper, section II.C and Fig. 5: a batch ``I`` goes through two
    augmentation sets AUG1/AUG2 (rotation by 0/90/180/270 degrees, then random masking); the network sees both
    masked views and is trained on rotation prediction (eq. 3), masked-image reconstruction (eq. 4) and
    contrastive learning between the two views' embeddings (eq. 5). One iteration:

    ``aug = augment(I)``; ``out1 = network(aug["masked_1"])``; ``out2 = network(aug["masked_2"])``;
    ``terms = loss_function(out1, out2, aug)``; ``terms["loss"].backward()``; ``optimizer.step()``.

    Args:
        device: device of the iteration.
        max_epochs: number of epochs.
        train_data_loader: yields dicts with ``image_key`` tensors ``(B, C, H, W)``.
        network: e.g. ``common.ssl.SSLNet``: ``forward(x) -> dict(rotation_logits, embedding, reconstruction)``.
        optimizer: optimizer over ``network``'s parameters.
        augment: e.g. ``common.ssl.TwoViewAugment``: ``(B, C, H, W) -> dict`` with at least ``masked_1`` and
            ``masked_2`` (plus rotations and masks the loss needs).
        loss_function: e.g. ``common.ssl.MultiTaskSSLLoss``: ``forward(out1, out2, aug) -> dict`` with ``loss`` (the
            total, with graph) and one entry per term (``loss_rotation``, ``loss_reconstruction``,
            ``loss_contrastive``).
        image_key: batch key of the image.
        epoch_length: iterations per epoch, default ``len(train_data_loader)``.
        non_blocking: passed to ``Tensor.to``.
        iteration_update: replaces ``_iteration`` when given (ignite).
        postprocessing: transform applied to the output at ``MODEL_COMPLETED``.
        key_train_metric: key metric attached to the engine.
        additional_metrics: other metrics attached to the engine.
        metric_cmp_fn: compares a metric with the best so far.
        train_handlers: handlers with ``attach(engine)``.
        amp: automatic mixed precision (``torch.autocast`` on the device type; gradient scaling on CUDA).
        event_names: extra events to register.
        event_to_attr: map of events to state attributes.
        decollate: decollate the output into per-sample dicts (needed by ``from_engine([...], first=True)``).
        optim_set_to_none: ``zero_grad(set_to_none=...)``.
        to_kwargs: extra ``Tensor.to`` arguments.
        amp_kwargs: extra ``torch.autocast`` arguments.

    Returns (``engine.state.output`` before decollation):
        every entry of the loss dict, detached (``loss``, ``loss_rotation``, ``loss_reconstruction``,
        ``loss_contrastive``), and ``image``, the input batch ``(B, C, H, W)``, so that the output decollates and
        ``StatsHandler(output_transform=from_engine(["loss"], first=True))`` logs the total.

    Raises:
        ValueError: if a batch lacks ``image_key`` or the loss dict lacks ``loss``.

    Examples::

        trainer = SSLTrainer("cpu", 100, loader, SSLNet(...), optimizer, TwoViewAugment(), MultiTaskSSLLoss())
        trainer.run()
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        network: torch.nn.Module,
        optimizer: Optimizer,
        augment: Callable[[torch.Tensor], dict],
        loss_function: Callable[..., dict],
        image_key: str = "image",
        epoch_length: int | None = None,
        non_blocking: bool = False,
        iteration_update: Callable[[Engine, Any], Any] | None = None,
        postprocessing: Transform | None = None,
        key_train_metric: dict[str, Metric] | None = None,
        additional_metrics: dict[str, Metric] | None = None,
        metric_cmp_fn: Callable = default_metric_cmp_fn,
        train_handlers: Sequence | None = None,
        amp: bool = False,
        event_names: list[str | EventEnum | type[EventEnum]] | None = None,
        event_to_attr: dict | None = None,
        decollate: bool = True,
        optim_set_to_none: bool = False,
        to_kwargs: dict | None = None,
        amp_kwargs: dict | None = None,
    ) -> None:
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            data_loader=train_data_loader,
            epoch_length=epoch_length,
            non_blocking=non_blocking,
            iteration_update=iteration_update,
            postprocessing=postprocessing,
            key_metric=key_train_metric,
            additional_metrics=additional_metrics,
            metric_cmp_fn=metric_cmp_fn,
            handlers=None,  # attached at the end, once every attribute exists
            amp=amp,
            event_names=event_names,
            event_to_attr=event_to_attr,
            decollate=decollate,
            to_kwargs=to_kwargs,
            amp_kwargs=amp_kwargs,
        )
        self.network = network
        self.optimizer = optimizer
        self.augment = augment
        self.loss_function = loss_function
        self.image_key = image_key
        self.optim_set_to_none = optim_set_to_none
        self.device_type = self.state.device.type if self.state.device is not None else "cpu"
        self.grad_scaler = torch.amp.GradScaler("cuda", enabled=amp and self.device_type == "cuda")
        if train_handlers is not None:
            self._register_handlers(train_handlers)

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
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        with torch.no_grad():
            views = engine.augment(images)
        with torch.autocast(engine.device_type, enabled=engine.amp, **engine.amp_kwargs):
            out1 = engine.network(views["masked_1"])
            out2 = engine.network(views["masked_2"])
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            terms = engine.loss_function(out1, out2, views)
        if "loss" not in terms:
            raise ValueError(f"loss_function must return a dict with key 'loss'; got keys {sorted(terms)}.")
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        engine.grad_scaler.scale(terms["loss"]).backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        engine.grad_scaler.step(engine.optimizer)
        engine.grad_scaler.update()
        for key, value in terms.items():
            engine.state.output[key] = value.detach() if isinstance(value, torch.Tensor) else value
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
