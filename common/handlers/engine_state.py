"""What a checkpoint holds for an engine: the engine itself and, for a multi-network trainer, its own objects."""

from __future__ import annotations

__all__ = ["EngineSlot", "engine_checkpoint_objects"]

from collections.abc import Mapping
from typing import Any


def engine_checkpoint_objects(engine: Any, engine_key: str, explicit: Mapping[str, Any]) -> dict[str, Any]:
    """``{engine_key: engine}`` plus the engine's ``checkpoint_objects()`` when it has one.

    ``common.engines.MultiNetworkTrainer.checkpoint_objects`` names its networks, optimizers, EMA copies and
    GradScaler states, so a config's saver and resume handlers list none of them. A name that the config lists too
    must be the same object (a different one would be saved under a name that resumes the wrong thing).

    Raises:
        ValueError: naming the key when ``explicit`` maps one of the engine's names to another object.
    """
    objects: dict[str, Any] = {engine_key: engine}
    own = getattr(engine, "checkpoint_objects", None)
    if callable(own):
        for name, obj in own().items():
            if explicit.get(name) is not None and explicit[name] is not obj:
                raise ValueError(f"checkpoint key {name!r} names another object than the engine's {name!r}.")
            objects[name] = obj
    return objects


class EngineSlot:
    """Stands for the engine in a saver's dict until ``attach`` puts the engine there (MONAI refuses an empty one)."""

    def state_dict(self) -> dict:
        raise RuntimeError("the checkpoint handler was not attached to an engine: attach it before saving.")

    def load_state_dict(self, state: dict) -> None:
        self.state_dict()
