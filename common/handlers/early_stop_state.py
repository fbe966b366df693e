"""The counter and best score of MONAI's EarlyStopHandler as a checkpoint entry, so a resumed run keeps its patience."""

from __future__ import annotations

__all__ = ["EarlyStopState"]

from collections.abc import Mapping
from typing import Any

from monai.handlers import EarlyStopHandler


class EarlyStopState:
    """``state_dict``/``load_state_dict`` of an ``EarlyStopHandler``'s ignite ``EarlyStopping`` (validations without
    improvement so far, best score), for a checkpoint's ``save_dict`` and a resume's ``load_dict``.

    MONAI's handler keeps no state of its own: resumed without this entry, a run would start counting its patience
    afresh and could train up to ``patience`` validations longer than the uninterrupted run. The handler's trainer
    must be set (``set_trainer``, or the handler attached to the trainer) before the checkpoint is saved or loaded;
    a checkpoint written before this entry existed resumes with a fresh count (``optional_in_checkpoint``, read by
    ``common.handlers.ResumeFromLatest``).

    Args:
        handler: the early-stop handler whose state is kept.

    Examples::

        "save_dict": {"early_stop": {"_target_": "common.handlers.EarlyStopState", "handler": "@validate#early_stop"}}
    """

    #: a checkpoint without this entry still resumes (the count then starts afresh), see ResumeFromLatest
    optional_in_checkpoint = True

    def __init__(self, handler: EarlyStopHandler) -> None:
        self.handler = handler

    def _stopping(self) -> Any:
        stopping = getattr(self.handler, "_handler", None)
        if stopping is None:
            raise RuntimeError(
                "EarlyStopState: the EarlyStopHandler has no trainer yet; call its set_trainer(trainer) (the config's "
                "initialize list) before the checkpoint is saved or loaded."
            )
        return stopping

    def state_dict(self) -> dict[str, Any]:
        return dict(self._stopping().state_dict())

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._stopping().load_state_dict(state)
