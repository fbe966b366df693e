"""Opt-in speed switches for a network: channels-last memory format and ``torch.compile``, both in place.

Both keep what a checkpoint sees: the module object, its parameters and its state-dict keys are unchanged (the
module's own ``forward`` is replaced by its compiled version, not wrapped in a module with ``_orig_mod.`` keys), so
the checkpoint and resume handlers, ``load_weights`` and DDP work as with the plain network. (``nn.Module.compile``
would do the same but silently compiles nothing for torch's own containers such as ``nn.Sequential`` in torch
2.13: dynamo skips their ``_call_impl`` frame.) The engine base applies them to its networks
(``MultiNetworkTrainer(channels_last=..., compile_networks=...)``); a config with a single network calls
:func:`accelerate` on it (``"network": "$common.acceleration.accelerate(@place(@network_def), channels_last=True)"``).

Results are the same up to floating-point reassociation (channels-last convolutions and compiled kernels sum in a
different order): ``tests/engines/test_engines_acceleration.py`` bounds the difference of the loss and the
gradients after a step.
"""

from __future__ import annotations

__all__ = ["accelerate", "is_channels_last", "is_compiled", "to_channels_last"]

from typing import Any

import torch
from common.distributed import unwrap
from torch.nn.parallel import DistributedDataParallel

#: tensor rank -> its channels-last layout (2D convolution weights: 4D, 3D: 5D)
_LAYOUTS = {4: torch.channels_last, 5: torch.channels_last_3d}


def is_channels_last(network: torch.nn.Module) -> bool:
    """Whether every 4D/5D parameter of the network is in its rank's channels-last layout."""
    return all(
        p.is_contiguous(memory_format=_LAYOUTS[p.ndim]) for p in unwrap(network).parameters() if p.ndim in _LAYOUTS
    )


def _to_layout(tensor: torch.Tensor) -> torch.Tensor:
    layout = _LAYOUTS.get(tensor.ndim)
    return tensor if layout is None else tensor.contiguous(memory_format=layout)


def to_channels_last(network: torch.nn.Module) -> torch.nn.Module:
    """Convert the network's 4D and 5D parameters and buffers to the channels-last layout of their rank, in place
    (a network mixing 2D and 3D convolutions, e.g. REHRSeg's FLAVR with its 2D fusion head, gets both layouts).

    Inputs need no conversion: a convolution with channels-last weights runs in that layout and returns
    channels-last output.

    Raises:
        ValueError: for a DDP-wrapped network not yet in that layout: DDP's gradient buckets keep the parameters it
            was built on, so a conversion afterwards silently stops the gradient averaging (measured: the ranks'
            steps differ from one process on the whole batch). Convert first:
            ``common.distributed.wrap_ddp(net, channels_last=True)``.
    """
    if is_channels_last(network):
        return network
    if isinstance(network, (DistributedDataParallel, torch.nn.DataParallel)):
        raise ValueError(
            "channels-last after DDP wrapping breaks DDP's gradient averaging: convert before wrapping, "
            "common.distributed.wrap_ddp(net, channels_last=True) (the multi_gpu configs' `place`)."
        )
    network._apply(_to_layout)  # what ``Module.to(memory_format=...)`` does, per tensor rank
    return network


def is_compiled(network: torch.nn.Module) -> bool:
    """Whether ``network`` (or the module inside its DDP wrapper) was compiled in place (here or by
    ``nn.Module.compile``)."""
    for module in (network, unwrap(network)):
        if getattr(module, "_compiled_call_impl", None) is not None:
            return True
        if hasattr(module.__dict__.get("forward"), "_torchdynamo_orig_callable"):
            return True
    return False


def accelerate(
    network: torch.nn.Module,
    channels_last: bool = False,
    compile: bool = False,  # noqa: A002 - the switch is named as torch's function
    compile_options: dict[str, Any] | None = None,
) -> torch.nn.Module:
    """Apply the switches to ``network`` in place and return it (the same object, for config expressions).

    Args:
        network: a module, possibly DDP-wrapped (then converted to channels-last before wrapping, see
            :func:`to_channels_last`; compile acts on the inner module).
        channels_last: :func:`to_channels_last`.
        compile: the module's ``forward`` becomes ``torch.compile(forward, **compile_options)`` (the inner module's
            under DDP, whose gradient hooks then fire from the compiled backward as from the plain one): the first
            calls pay the compilation (seconds to minutes on a CPU, with gcc), later ones run the generated kernels.
            Copy a network (an EMA copy) before compiling it: a copy would call the original's compiled forward.
            Double backward (an R1 penalty) is not supported by compiled modules; the engine base refuses that.
        compile_options: keyword arguments of ``torch.compile`` (e.g. ``{"mode": "max-autotune"}``).
    """
    if channels_last:
        to_channels_last(network)
    if compile and not is_compiled(network):
        inner = unwrap(network)
        inner.forward = torch.compile(inner.forward, **(compile_options or {}))
    return network
