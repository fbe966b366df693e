"""One engine base for every multi-network trainer (CycleGAN, U-SSL, MUNIT, PSCGAN, REHRSeg, TransMRSR)."""

from __future__ import annotations

__all__ = [
    "MultiNetworkTrainer",
    "GradScalerState",
    "batch_statistics_layers",
    "discriminator_logits",
    "named_loss_terms",
    "needs_loss_scaling",
    "set_requires_grad",
]

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import torch
from common.acceleration import accelerate, is_compiled
from common.distributed import unwrap
from monai.engines import Trainer
from monai.engines.utils import default_metric_cmp_fn
from monai.transforms import Transform
from torch.nn.modules.batchnorm import _BatchNorm, _NormBase
from torch.nn.parallel import DistributedDataParallel
from torch.optim.optimizer import Optimizer
from torch.utils.data import DataLoader

if TYPE_CHECKING:
    from ignite.engine import Engine, EventEnum
    from ignite.metrics import Metric


def discriminator_logits(output: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """Logits of a discriminator; ``PatchDiscriminator`` returns all feature maps with the logits last."""
    if isinstance(output, (list, tuple)):
        return output[-1]
    return output


def set_requires_grad(networks: Iterable[torch.nn.Module], flag: bool) -> None:
    """Freeze or unfreeze networks (DistributedDataParallel exposes the wrapped parameters)."""
    for network in networks:
        for parameter in network.parameters():
            parameter.requires_grad_(flag)


def named_loss_terms(loss_function: Any, prediction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """A loss as a dict of named terms (``loss`` the total): ``loss_function.terms(...)`` if it has one, else
    ``{"loss": loss_function(...)}``, so every paper term of a multi-term loss is logged by name.

    Raises:
        ValueError: the terms lack ``loss``.
    """
    terms_fn = getattr(loss_function, "terms", None)
    terms = terms_fn(prediction, target) if callable(terms_fn) else {"loss": loss_function(prediction, target)}
    if "loss" not in terms:
        raise ValueError(f"the loss terms must include 'loss' (the total); got keys {sorted(terms)}.")
    return terms


def needs_loss_scaling(amp: bool, device_type: str, amp_kwargs: dict) -> bool:
    """Whether AMP training needs a ``GradScaler``: on CUDA in float16 (autocast's default dtype there), whose
    narrow exponent range lets small gradients underflow; bfloat16 has float32's range and needs none."""
    return bool(amp) and device_type == "cuda" and amp_kwargs.get("dtype", torch.float16) == torch.float16


class GradScalerState:
    """Checkpointable wrapper of a ``torch.amp.GradScaler``.

    A disabled scaler (AMP off, or AMP on a CPU) has an empty ``state_dict`` that ``GradScaler.load_state_dict``
    refuses; this wrapper saves ``{"enabled": ..., "state": ...}`` and restores the state only when both the saved
    and the live scaler are enabled, so a checkpoint loads whatever the AMP setting, and an AMP run resumes with its
    loss scale and growth tracker instead of restarting them at 65536 (the scale would then overflow again).
    """

    def __init__(self, scaler: torch.amp.GradScaler) -> None:
        self.scaler = scaler

    def state_dict(self) -> dict[str, Any]:
        return {"enabled": self.scaler.is_enabled(), "state": self.scaler.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("enabled") and self.scaler.is_enabled():
            self.scaler.load_state_dict(state["state"])


#: optional features of the base -> their "off" value
OPTIONAL_FEATURES = {"d_steps_per_g_step": 1, "ema": None, "r1_gamma": 0.0, "stack_passes": False}


def batch_statistics_layers(network: torch.nn.Module) -> list[str]:
    """Names of the layers whose training-mode output or buffers depend on the other samples of the batch:
    BatchNorm (batch statistics), any norm layer that tracks running statistics (one update per call), and any module
    that says so with a true ``mixes_batch_samples`` attribute (e.g. StyleGAN's minibatch standard deviation)."""
    return [
        name or type(module).__name__
        for name, module in network.named_modules()
        if isinstance(module, _BatchNorm)
        or (isinstance(module, _NormBase) and module.track_running_stats)
        or getattr(module, "mixes_batch_samples", False) is True
    ]


def _as_call(call: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return call if isinstance(call, tuple) else (call,)


def _stackable(calls: Sequence[tuple[torch.Tensor, ...]]) -> bool:
    """Calls with as many tensor arguments each, argument ``i`` of one shape but the batch axis in every call, and
    one batch size within a call."""
    first = calls[0]
    for call in calls:
        if len(call) != len(first) or not all(isinstance(arg, torch.Tensor) and arg.ndim > 0 for arg in call):
            return False
        if any(arg.shape[0] != call[0].shape[0] for arg in call):
            return False
        if any(arg.shape[1:] != ref.shape[1:] or arg.dtype != ref.dtype for arg, ref in zip(call, first)):
            return False
    return True


def _unstack(output: Any, sizes: list[int]) -> list[Any]:
    """Split a stacked forward's output (a tensor, or a list/tuple of tensors) back into one output per call."""
    if isinstance(output, torch.Tensor):
        return list(output.split(sizes))
    if isinstance(output, (list, tuple)):
        parts = [_unstack(item, sizes) for item in output]
        return [type(output)(part[i] for part in parts) for i in range(len(sizes))]
    raise TypeError(f"stack_passes: cannot split a network output of type {type(output).__name__} per call.")


class MultiNetworkTrainer(Trainer):
    """``monai.engines.Trainer`` with named networks and optimizers: the base of every multi-network trainer.

    A subclass writes only ``_iteration`` (the paper's terms, one named output each) and, for a variant, overrides
    one method (nnU-Net's trainer-variant idea). Its ``__init__`` takes its own paper arguments, sets them as
    attributes and then calls ``super().__init__(*args, **kwargs)``: the base attaches ``train_handlers`` last,
    so handlers see every attribute. The base gives it:

    - ``networks`` / ``optimizers``: named dicts (also on ``engine.state.networks`` / ``engine.state.optimizers``),
      one ``torch.amp.GradScaler`` per optimizer (active with ``amp=True`` on CUDA in float16, autocast's default
      there; not with ``amp_kwargs={"dtype": torch.bfloat16}``, whose range needs no loss scaling);
    - ``frozen_networks``: pretrained networks used but not trained (a CycleGANSeg Segmentor, a REHRSeg teacher):
      put in eval mode without gradients, refused when wrapped in DDP or found inside an optimizer;
    - ``optimizer_step(name, loss)``: zero the gradients, scaled backward, step, scaler update;
    - ``autocast()``: ``torch.autocast`` on the engine's device type with the engine's AMP settings;
    - ``checkpoint_objects()``: every network, optimizer, EMA copy and scaler state by name, which
      ``common.handlers.AtomicCheckpointSaver`` and ``ResumeFromLatest`` add to their dict when given
      ``engine_key`` (so a config lists none of them, and an AMP resume keeps the loss scale).

    Optional features (a class lists those its ``_iteration`` uses in ``uses``; setting one it does not use is
    refused, never silently ignored):

    - ``d_steps_per_g_step`` and ``generator_step_due()``: every iteration makes one discriminator step and every
      ``d_steps_per_g_step``-th iteration also a generator step (PSCGAN: 2);
    - ``ema``: ``{network name: decay}`` keeps an exponential moving average copy of that network,
      ``ema_networks[name]``, updated by ``update_ema(name)`` as ``theta_ema <- decay * theta_ema + (1 - decay) *
      theta`` (buffers copied), in eval mode (StyleSwin/TransMRSR's EMA generator); with ``ema_warmup`` the decay of
      the ``n``-th update (``n`` = the engine's iteration, so it resumes) is ``min(decay, (1 + n) / (10 + n))`` (the
      warm-up of TensorFlow's ``ExponentialMovingAverage(num_updates=...)``), so a short run's EMA copy follows the
      trained network instead of keeping its random initialisation (decay 0.999 keeps 94 % of it after 60 updates);
    - ``r1_penalty(discriminator, real)``: ``r1_gamma / 2 * E[||grad_x D(x)||^2]`` on real images (Mescheder et
      al. 2018, StyleGAN2 / StyleSwin);
    - ``stack_passes`` and ``forward_stacked(network, *calls)``: the calls of one network on independent inputs
      (CycleGAN's ``G_S>T(dti)`` and identity ``G_S>T(lge)``, a discriminator's real and fake batches) run as one
      forward of the inputs stacked on the batch axis: fewer, larger convolutions (a speed switch, issue 17). The
      same results up to float rounding, because every trained network must then be free of batch statistics
      (``batch_statistics_layers``: instance, layer and group norm are per sample); dropout draws other random
      numbers.

    Args:
        device: device of the iteration.
        max_epochs: number of epochs.
        train_data_loader: the training data.
        networks: trained networks by name (the names are checkpoint keys); each class declares the names it needs
            in ``network_names``; ``None`` entries (an optional network switched off) are dropped.
        optimizers: optimizers by name (checkpoint keys too); declared in ``optimizer_names``.
        frozen_networks: pretrained networks that are used but not trained (``None`` entries are dropped).
        d_steps_per_g_step: discriminator steps per generator step (>= 1).
        ema: ``{network name: decay in [0, 1)}`` networks that get an EMA copy.
        ema_warmup: ramp the EMA decay up from 0.1 (``min(decay, (1 + n) / (10 + n))`` at iteration ``n``); needs
            ``ema``.
        r1_gamma: weight of the R1 penalty (``r1_penalty`` returns 0 when it is 0).
        epoch_length, non_blocking, prepare_batch, iteration_update, postprocessing, key_train_metric,
        additional_metrics, metric_cmp_fn, amp, event_names, event_to_attr, decollate, to_kwargs, amp_kwargs:
            as ``monai.engines.Trainer`` / ``Workflow``, except that ``additional_metrics`` are attached without a
            ``key_train_metric`` too (``Workflow`` drops them then).
        train_handlers: handlers with ``attach(engine)``, attached once every attribute exists.
        optim_set_to_none: ``zero_grad(set_to_none=...)``.
        channels_last: convert every trained and frozen network (and EMA copy) to the channels-last memory format
            (``common.acceleration.to_channels_last``; opt-in speed switch, same results up to float rounding).
        stack_passes: ``forward_stacked`` stacks its calls into one forward (else one forward per call).
        compile_networks: ``torch.compile`` in place: ``True`` for every trained and frozen network, or the names
            of those to compile (EMA copies, used for evaluation, are not). State-dict keys are unchanged, so
            checkpoints and resumes work as without it. Refused with an R1 penalty on a compiled network (double
            backward is not supported by compiled modules).

    Raises:
        ValueError: a declared network or optimizer missing, a name used twice, an optional feature that the class
            does not declare in ``uses``, an EMA of an unknown network or a
            decay outside ``[0, 1)``, ``d_steps_per_g_step < 1``, ``r1_gamma < 0``, a frozen network wrapped in
            DDP or inside an optimizer, ``stack_passes`` with a trained network that has batch statistics.

    Examples::

        class MyGAN(MultiNetworkTrainer):
            network_names, optimizer_names = ("g", "d"), ("g_optimizer", "d_optimizer")

            def _iteration(self, engine, batchdata): ...

        MyGAN("cpu", 10, loader, networks={"g": g, "d": d}, optimizers={"g_optimizer": go, "d_optimizer": do})
    """

    network_names: tuple[str, ...] = ()
    optimizer_names: tuple[str, ...] = ()
    #: the optional features of the base that this class's ``_iteration`` uses (of ``OPTIONAL_FEATURES``); a
    #: feature set to a non-default value on a class that does not use it is refused, not silently ignored
    uses: tuple[str, ...] = ()

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable | DataLoader,
        networks: Mapping[str, torch.nn.Module],
        optimizers: Mapping[str, Optimizer],
        frozen_networks: Mapping[str, torch.nn.Module | None] | None = None,
        d_steps_per_g_step: int = 1,
        ema: Mapping[str, float] | None = None,
        ema_warmup: bool = False,
        r1_gamma: float = 0.0,
        epoch_length: int | None = None,
        non_blocking: bool = False,
        prepare_batch: Callable | None = None,
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
        channels_last: bool = False,
        compile_networks: bool | Sequence[str] = False,
        stack_passes: bool = False,
    ) -> None:
        requested = {
            "d_steps_per_g_step": d_steps_per_g_step,
            "ema": ema or None,
            "r1_gamma": r1_gamma,
            "stack_passes": bool(stack_passes),
        }
        for feature, value in requested.items():
            if feature not in self.uses and value != OPTIONAL_FEATURES[feature]:
                raise ValueError(
                    f"{type(self).__name__} does not use {feature} (its iteration has no such step); got {value!r}."
                )
        # an optional network switched off in a config (e.g. REHRSeg's distiller without KD) is passed as None
        networks = {name: net for name, net in dict(networks).items() if net is not None}
        optimizers = dict(optimizers)
        frozen = {name: net for name, net in (frozen_networks or {}).items() if net is not None}
        self._check_names(networks, optimizers, frozen)
        if stack_passes:
            self._check_stackable(networks)
        if int(d_steps_per_g_step) < 1:
            raise ValueError(f"d_steps_per_g_step must be >= 1, got {d_steps_per_g_step!r}.")
        if r1_gamma < 0:
            raise ValueError(f"r1_gamma must be >= 0, got {r1_gamma!r}.")
        ema = dict(ema or {})
        for name, decay in ema.items():
            if name not in networks:
                raise ValueError(f"ema names network {name!r}, which is not among the networks {sorted(networks)}.")
            if not 0.0 <= float(decay) < 1.0:
                raise ValueError(f"ema decay of {name!r} must be in [0, 1), got {decay!r}.")
        if ema_warmup and not ema:
            raise ValueError("ema_warmup needs ema ({network name: decay}); none is set.")
        extra = {} if prepare_batch is None else {"prepare_batch": prepare_batch}
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
            **extra,
        )
        if key_train_metric is None and additional_metrics:
            # monai's Workflow attaches additional_metrics only beside a key metric; a multi-network trainer has
            # none to rank checkpoints by, and its metrics (e.g. common.handlers.LossTermMeans) must not be dropped
            for name, metric in additional_metrics.items():
                metric.attach(self, name)
        self.networks = networks
        self.optimizers = optimizers
        self.frozen_networks = self._freeze(frozen, optimizers)
        self.state.networks = networks
        self.state.optimizers = optimizers
        self.optim_set_to_none = optim_set_to_none
        self.device_type = self.state.device.type if self.state.device is not None else "cpu"
        use_scaler = needs_loss_scaling(amp, self.device_type, self.amp_kwargs)
        self.scalers = {name: torch.amp.GradScaler("cuda", enabled=use_scaler) for name in optimizers}
        self.d_steps_per_g_step = int(d_steps_per_g_step)
        self.r1_gamma = float(r1_gamma)
        self.ema_decay = {name: float(decay) for name, decay in ema.items()}
        self.ema_networks = {name: self._ema_copy(networks[name]) for name in ema}
        self.ema_warmup = bool(ema_warmup)
        self.stack_passes = bool(stack_passes)
        self._accelerate(channels_last, compile_networks)
        if train_handlers is not None:
            self._register_handlers(train_handlers)

    # ------------------------------------------------------------------------------------------- construction
    def _check_names(self, networks: dict, optimizers: dict, frozen: dict) -> None:
        cls = type(self).__name__
        for kind, given, needed in (
            ("networks", networks, self.network_names),
            ("optimizers", optimizers, self.optimizer_names),
        ):
            missing = [name for name in needed if name not in given]
            if missing:
                raise ValueError(f"{cls} needs {kind} {list(needed)}; missing {missing} (given {sorted(given)}).")
        names = [*networks, *optimizers, *frozen]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{cls}: names {repeated} are used twice (networks, optimizers and frozen networks).")

    @staticmethod
    def _check_stackable(networks: dict[str, torch.nn.Module]) -> None:
        for name, network in networks.items():
            layers = batch_statistics_layers(network)
            if layers:
                raise ValueError(
                    f"stack_passes runs independent inputs of a network as one batch, but {name} has layers whose "
                    f"training output depends on the batch ({', '.join(layers[:3])}{', ...' if len(layers) > 3 else ''}"
                    "): the stacked results would differ. Set `stack_passes` to false, or use instance/layer/group "
                    "norm without running statistics and no layer that mixes samples."
                )

    @staticmethod
    def _freeze(frozen: dict[str, torch.nn.Module], optimizers: dict[str, Optimizer]) -> dict[str, torch.nn.Module]:
        for name, network in frozen.items():
            if isinstance(network, (DistributedDataParallel, torch.nn.DataParallel)):
                raise ValueError(f"{name} must not be wrapped in DistributedDataParallel/DataParallel: it is frozen.")
            frozen_parameters = {id(p) for p in network.parameters()}
            for optimizer_name, optimizer in optimizers.items():
                for group in optimizer.param_groups:
                    if any(id(p) in frozen_parameters for p in group["params"]):
                        raise ValueError(f"{name} parameters found in {optimizer_name}: {name} is frozen, remove them.")
            network.eval()
            network.requires_grad_(False)
        return frozen

    def _accelerate(self, channels_last: bool, compile_networks: bool | Sequence[str]) -> None:
        every = {**self.networks, **self.frozen_networks}
        if isinstance(compile_networks, str):
            compile_networks = [compile_networks]
        names = list(every) if compile_networks is True else list(compile_networks or ())
        unknown = sorted(set(names) - set(every))
        if unknown:
            raise ValueError(f"compile_networks names {unknown}, not among the networks {sorted(every)}.")
        for name, network in every.items():
            accelerate(network, channels_last=channels_last, compile=name in names)
        for network in self.ema_networks.values():
            accelerate(network, channels_last=channels_last)

    @staticmethod
    def _ema_copy(network: torch.nn.Module) -> torch.nn.Module:
        copied = copy.deepcopy(unwrap(network))
        copied.eval()
        copied.requires_grad_(False)
        return copied

    # ------------------------------------------------------------------------------------------- iteration helpers
    def autocast(self) -> AbstractContextManager:
        """``torch.autocast`` on the engine's device type, enabled by ``amp``."""
        return torch.autocast(self.device_type, enabled=self.amp, **self.amp_kwargs)

    def train_mode(self, *names: str) -> None:
        """Networks ``names`` (default all) to train mode; frozen networks back to eval mode."""
        for name in names or self.networks:
            self.networks[name].train()
        for network in self.frozen_networks.values():
            network.eval()

    def optimizer_step(
        self,
        name: str,
        loss: torch.Tensor,
        backward_event: EventEnum | None = None,
        step_event: EventEnum | None = None,
    ) -> None:
        """Zero the gradients of optimizer ``name``, backpropagate ``loss`` (scaled under AMP), step, update.

        ``backward_event`` fires after the backward pass and ``step_event`` after the step, so handlers can hook in
        as with MONAI's GAN engines. The gradients are zeroed here, not before the forward pass: the same result,
        because no other backward touches these parameters in between (other networks are frozen with
        ``set_requires_grad`` or see detached inputs).
        """
        optimizer, scaler = self.optimizers[name], self.scalers[name]
        optimizer.zero_grad(set_to_none=self.optim_set_to_none)
        scaler.scale(loss).backward()
        if backward_event is not None:
            self.fire_event(backward_event)
        scaler.step(optimizer)
        scaler.update()
        if step_event is not None:
            self.fire_event(step_event)

    def forward_stacked(
        self, network: torch.nn.Module, *calls: torch.Tensor | tuple[torch.Tensor, ...], **kwargs: Any
    ) -> list[Any]:
        """``[network(*call, **kwargs) for call in calls]`` (a call: a tensor, or a tuple of positional tensors).

        With ``stack_passes`` the calls run as ONE forward of their arguments concatenated on the batch axis, and
        the output (a tensor, or a list/tuple of tensors) is split back per call; calls that cannot be stacked
        (argument shapes that differ beyond the batch axis, e.g. unpaired images of two sizes) run one by one. The
        network must see each sample on its own (no batch statistics; checked for the trained networks when the
        engine is built), so both ways give the same values up to float rounding.
        """
        normalised = [_as_call(call) for call in calls]
        if not self.stack_passes or len(normalised) < 2 or not _stackable(normalised):
            return [network(*call, **kwargs) for call in normalised]
        sizes = [call[0].shape[0] for call in normalised]
        output = network(*(torch.cat(arguments) for arguments in zip(*normalised)), **kwargs)
        return _unstack(output, sizes)

    def generator_step_due(self) -> bool:
        """True on the iterations that make a generator step: every ``d_steps_per_g_step``-th (1-based)."""
        return self.state.iteration % self.d_steps_per_g_step == 0

    def ema_decay_now(self, name: str) -> float:
        """The decay of this iteration's EMA update of ``name``: ``min(decay, (1 + n) / (10 + n))`` at iteration
        ``n`` with ``ema_warmup``, else the configured decay."""
        decay = self.ema_decay[name]
        if not self.ema_warmup:
            return decay
        n = self.state.iteration
        return min(decay, (1.0 + n) / (10.0 + n))

    @torch.no_grad()
    def update_ema(self, name: str) -> None:
        """``theta_ema <- decay * theta_ema + (1 - decay) * theta`` for network ``name`` (``ema_decay_now``); buffers
        are copied."""
        source, target, decay = unwrap(self.networks[name]), self.ema_networks[name], self.ema_decay_now(name)
        for ema_parameter, parameter in zip(target.parameters(), source.parameters()):
            ema_parameter.lerp_(parameter.detach(), 1.0 - decay)
        for ema_buffer, buffer in zip(target.buffers(), source.buffers()):
            ema_buffer.copy_(buffer)

    def r1_penalty(self, discriminator: torch.nn.Module, real: torch.Tensor) -> torch.Tensor:
        """R1 gradient penalty ``r1_gamma / 2 * mean_batch ||grad_x D(x)||^2`` on real images ``x``.

        Args:
            discriminator: returns logits, or a list whose last item is the logits.
            real: real images ``(B, C, *spatial)``; not modified (a detached copy requires the gradient).

        Returns:
            The penalty with graph (so it trains the discriminator); a zero tensor when ``r1_gamma`` is 0.
        """
        if self.r1_gamma == 0:
            return real.new_zeros(())
        if is_compiled(discriminator):
            raise ValueError(
                "the R1 penalty needs a double backward, which compiled modules do not support: leave the "
                "discriminator out of compile_networks (compile only the generator)."
            )
        real = real.detach().requires_grad_(True)
        logits = discriminator_logits(discriminator(real))
        (gradient,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
        return 0.5 * self.r1_gamma * gradient.pow(2).flatten(1).sum(1).mean()

    @staticmethod
    def detached(values: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
        """``(key, value)`` pairs with tensors detached, for the iteration output."""
        for key, value in values.items():
            yield key, value.detach() if isinstance(value, torch.Tensor) else value

    # ------------------------------------------------------------------------------------------- checkpointing
    def checkpoint_objects(self) -> dict[str, Any]:
        """Everything a resume needs besides the engine counters: networks, optimizers, EMA copies, scaler states."""
        objects: dict[str, Any] = {**self.networks, **self.optimizers}
        objects.update({f"{name}_ema": network for name, network in self.ema_networks.items()})
        objects.update({f"grad_scaler_{name}": GradScalerState(s) for name, s in self.scalers.items()})
        return objects
