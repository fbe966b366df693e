"""Copy batch entries that an evaluator does not put into its output (a paired target image, a case id)."""

from __future__ import annotations

__all__ = ["CopyBatchKeys"]

from collections.abc import Sequence

from ignite.engine import Engine
from monai.engines.utils import IterationEvents


class CopyBatchKeys:
    """Ignite handler copying ``keys`` of each decollated batch item into the matching output item.

    A ``SupervisedEvaluator``'s output holds ``image``, ``label`` and ``pred`` only, while metric handlers
    (``from_engine``) read the output. Evaluating an image translation against its paired real image needs that
    image in the output: ``CopyBatchKeys(["lge"])``. Runs at ``IterationEvents.MODEL_COMPLETED``, after the
    evaluator's decollation and postprocessing and before the metrics (``ITERATION_COMPLETED``); handlers listed
    after it in ``val_handlers`` see the copied keys.

    Args:
        keys: batch keys to copy; an output key of the same name is overwritten.

    Raises:
        ValueError: naming ``keys`` when empty.
        KeyError: naming the key when a batch item lacks it.

    Examples::

        {"_target_": "common.handlers.CopyBatchKeys", "keys": ["lge"]}
    """

    def __init__(self, keys: str | Sequence[str]) -> None:
        self.keys = [keys] if isinstance(keys, str) else list(keys)
        if not self.keys:
            raise ValueError("keys must name at least one batch key.")

    def attach(self, engine: Engine) -> None:
        """Run at every ``IterationEvents.MODEL_COMPLETED`` of ``engine`` (a MONAI workflow)."""
        engine.add_event_handler(IterationEvents.MODEL_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        batch, output = engine.state.batch, engine.state.output
        batch_items = batch if isinstance(batch, list) else [batch]
        output_items = output if isinstance(output, list) else [output]
        if len(batch_items) != len(output_items):
            raise ValueError(f"{len(batch_items)} batch items but {len(output_items)} output items: decollate both.")
        for index, (source, target) in enumerate(zip(batch_items, output_items)):
            for key in self.keys:
                if key not in source:
                    raise KeyError(f"CopyBatchKeys: batch item {index} has no {key!r}.")
                target[key] = source[key]
