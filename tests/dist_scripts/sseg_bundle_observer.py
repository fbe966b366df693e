"""Run ``python -m monai.bundle <args>`` on each torchrun rank and record what this rank did (for the DDP tests).

Used by ``tests/bundles/test_bundle_sseg_dist.py``::

    torchrun --standalone --nproc_per_node=2 tests/dist_scripts/sseg_bundle_observer.py OUT_DIR \\
        run --config_file "['configs/train.json','configs/multi_gpu_train.json']" --bundle_root ... [overrides]

Everything after ``OUT_DIR`` is handed unchanged to ``monai.bundle``'s command line (``runpy``, as ``python -m
monai.bundle`` does); the only addition is an observer on ``ConfigWorkflow.run``/``finalize`` that writes
``OUT_DIR/rank<R>.json`` before the process group is left:

- ``rank``, ``world_size``, ``epoch``, ``iteration``: this rank's trainer state at the end;
- ``train_cases``/``val_cases``: ``{epoch: [case, ...]}`` seen by this rank's trainer and evaluator;
- ``val_dice``: ``{epoch: val_mean_dice}`` as this rank's evaluator reported it (reduced over ranks);
- ``full_val_dice``: Dice of the final network over the whole validation set in this process alone;
- ``shard_val_dice``: the same over this rank's validation shard only (differs from the reduced value);
- ``weights``: sha256 of the unwrapped network's ``state_dict``; ``gathered_weights``: every rank's, all_gather'd;
- ``train_handlers``/``val_handlers``: type names of the handlers this rank attached.
"""

from __future__ import annotations

import hashlib
import json
import runpy
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from common import distributed
from ignite.engine import Events
from monai.bundle.workflows import ConfigWorkflow
from monai.metrics import compute_dice
from monai.networks.utils import one_hot
from torch import nn

__all__ = ["state_hash", "main"]


def state_hash(state_dict: dict) -> str:
    """sha256 over the sorted keys and tensor bytes of a ``state_dict``."""
    digest = hashlib.sha256()
    for key, value in sorted(state_dict.items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


@torch.no_grad()
def _dice(network: nn.Module, items: list, num_classes: int) -> float:
    """Mean foreground Dice of ``network`` on preprocessed items, as the bundle's ``val_mean_dice`` computes it.

    ``compute_dice`` per item, not ``DiceMetric``: the latter's buffers are all-gathered over the process group.
    """
    network.eval()
    scores = []
    for item in items:
        logits = network(item["image"][None].float())
        pred = one_hot(logits.softmax(1).argmax(1, keepdim=True), num_classes)
        label = one_hot(item["label"][None].long(), num_classes)
        scores.append(compute_dice(pred, label, include_background=False))
    return float(torch.nanmean(torch.cat(scores)).item())


def main() -> None:
    out_dir = Path(sys.argv[1])
    record: dict = {"train_cases": {}, "val_cases": {}, "val_dice": {}}
    original_run, original_finalize = ConfigWorkflow.run, ConfigWorkflow.finalize

    def observed_run(self):
        trainer = self.parser.get_parsed_content("train#trainer")
        evaluator = self.parser.get_parsed_content("validate#evaluator")

        def seen(key):  # the workflows decollate: state.batch is a list of per-item dicts after each iteration
            return lambda e: record[key].setdefault(str(e.state.epoch), []).extend(i["case"] for i in e.state.batch)

        trainer.add_event_handler(Events.ITERATION_COMPLETED, seen("train_cases"))
        evaluator.add_event_handler(Events.ITERATION_COMPLETED, seen("val_cases"))
        evaluator.add_event_handler(
            Events.EPOCH_COMPLETED,
            lambda e: record["val_dice"].update({str(e.state.epoch): e.state.metrics["val_mean_dice"]}),
        )
        return original_run(self)

    def observed_finalize(self):
        parser = self.parser
        trainer = parser.get_parsed_content("train#trainer")
        network = _unwrap(parser.get_parsed_content("network"))
        num_classes = parser.get_parsed_content("num_classes")
        dataset = parser.get_parsed_content("validate#dataset")
        items = [dataset[i] for i in range(len(dataset))]
        last = str(trainer.state.epoch)
        mine = set(record["val_cases"].get(last, []))
        weights = state_hash(network.state_dict())
        gathered = [None] * distributed.world_size()
        dist.all_gather_object(gathered, weights)
        record.update(
            rank=distributed.rank(),
            world_size=distributed.world_size(),
            epoch=trainer.state.epoch,
            iteration=trainer.state.iteration,
            full_val_dice=_dice(network, items, num_classes),
            shard_val_dice=_dice(network, [item for item in items if item["case"] in mine], num_classes),
            weights=weights,
            gathered_weights=gathered,
            train_handlers=[type(h).__name__ for h in parser.get_parsed_content("train#trainer#train_handlers")],
            val_handlers=[type(h).__name__ for h in parser.get_parsed_content("validate#evaluator#val_handlers")],
        )
        (out_dir / f"rank{record['rank']}.json").write_text(json.dumps(record))
        return original_finalize(self)

    ConfigWorkflow.run = observed_run
    ConfigWorkflow.finalize = observed_finalize
    sys.argv = ["monai.bundle", *sys.argv[2:]]
    runpy.run_module("monai.bundle", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
