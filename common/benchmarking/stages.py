"""Benchmark stages that run once: a stopped benchmark continues where it stopped instead of retraining everything.

A long benchmark (hours on a 2-core CPU) is a chain of stages (train a model, score it). Each finished stage leaves
``<folder>/.done`` and its JSON result; a rerun reads the result back instead of running the stage again.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from common.benchmarking.measure import Timer

__all__ = ["StageCache"]


class StageCache:
    """Runs each stage once; ``fresh=True`` runs every stage again.

    Args:
        fresh: ignore (and replace) the results of earlier runs.

    Attributes:
        seconds: stage name -> seconds spent running it (a reused stage adds the seconds its run recorded).

    Examples::

        stages = StageCache()
        scores = stages.once(out / "seed0" / "SSeg_N", "SSeg_N", lambda: train_and_score(...))
    """

    def __init__(self, fresh: bool = False) -> None:
        self.fresh = bool(fresh)
        self.seconds: dict[str, float] = {}

    def done(self, folder: str | Path) -> bool:
        """Whether the stage of ``folder`` finished in an earlier run (and is to be reused)."""
        return (Path(folder) / ".done").is_file() and not self.fresh

    def once(self, folder: str | Path, name: str, work: Callable[[], Any], clear: bool = False) -> Any:
        """``work()`` unless ``folder/.done`` exists; its JSON-able result is kept in ``folder/result.json``.

        Args:
            folder: the stage's folder (created; the marker and result go there).
            name: the stage's name in :attr:`seconds` (several stages may share one).
            work: runs the stage, returns a JSON-able result (or ``None``).
            clear: delete what an unfinished earlier run left in ``folder`` before ``work()`` (a stage whose
                outputs must start empty, e.g. a training that refuses to overwrite its checkpoints).

        Returns:
            ``work()``'s result, or the one an earlier run stored.
        """
        folder = Path(folder)
        done, result_file, seconds_file = folder / ".done", folder / "result.json", folder / "seconds.txt"
        if self.done(folder):
            if seconds_file.is_file():  # the earlier run's time, so a continued run reports every stage's cost
                self.seconds[name] = self.seconds.get(name, 0.0) + float(seconds_file.read_text())
            return json.loads(result_file.read_text()) if result_file.is_file() else None
        if clear and folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        done.unlink(missing_ok=True)
        with Timer() as timer:
            result = work()
        self.seconds[name] = self.seconds.get(name, 0.0) + timer.seconds
        result_file.write_text(json.dumps(result))
        seconds_file.write_text(repr(timer.seconds))
        done.touch()
        return result

    def train(
        self,
        folder: str | Path,
        name: str,
        bundle_root: str | os.PathLike,
        files: Sequence[str],
        overrides: dict[str, Any],
    ) -> None:
        """Run the training workflow ``configs/<files>`` with ``overrides`` once, as the stage of ``folder``.

        A training's checkpoints do not mark it finished (a best-metric ``model.pt`` is written from the first
        validation on), so a stopped training leaves no ``.done`` and trains again from an emptied ``folder``.
        """
        from common.benchmarking.workflow import run_workflow

        def work() -> None:
            run_workflow(bundle_root, files, overrides)

        self.once(folder, name, work, clear=True)
