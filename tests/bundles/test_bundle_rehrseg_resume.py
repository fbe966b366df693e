"""Resuming the training stages of the REHRSeg bundle: the plain self-SR network and the segmenter.

A run launched for 2 epochs and killed after epoch 1 (an exception raised once the epoch's checkpoint is on disk,
as when a process dies after its save) is run again with the same command (``resume`` is true by default): it
continues at epoch 2 from its ``train_state`` folder and ends with exactly the weights, optimizer and LR-scheduler
states (and, for the segmenter, the distiller, the best-model tracking and ``model.pt``) of the uninterrupted 2-epoch
run, bit for bit on the CPU:

- the plain self-SR network (``train.json`` + ``train_sr.json``) from ``models/sr/plain_state``; the killed run
  leaves no ``plain.pt``, which the next stage would take for a finished network;
- the segmenter with structural KD and the uncertainty weighting (``train.json``) from ``models/train_state``.

Bit equality needs the random streams of epoch 2 (crops, flips, batch order) to be the same in both runs: the
bundle's ``common.handlers.SeedEachEpoch`` seeds them from ``(seed, epoch, rank)`` at the start of every epoch, so the
resumed epoch 2 draws what the uninterrupted one drew (checked by its seeds and by the final weights).

A run stopped by ``--epochs 1`` and extended by ``--epochs 2`` continues on the 2-epoch schedule: ``ResumeFromLatest``
keeps this run's schedule horizon (the self-SR stage's ``OneCycleLR`` total steps, the segmenter's ``PolynomialLR``
total iterations) instead of the checkpoint's, so epoch 2's learning rates are those of an uninterrupted 2-epoch run.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from bundle_test_utils import bundle_scripts, run_tiny
from common.handlers import SeedEachEpoch
from ignite.engine import Events
from monai.bundle import ConfigWorkflow

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "thick_slice_hr_segmentation_rehrseg"
CONFIGS = BUNDLE / "configs"
SR = ["train.json", "train_sr.json"]
SEG = ["train.json"]
#: 3 training volumes -> 3 iterations an epoch; tiny.json's batch of 4 gives 1 iteration an epoch, and OneCycleLR
#: (total_steps max(2, epochs x 1)) then trains epoch 2 at a learning rate of 2e-9: nothing to compare
SR_STEPS = {"sr_batch_size": 1}

pytestmark = pytest.mark.slow


class _Killed(RuntimeError):
    """Stands for the process dying after an epoch's checkpoint was written."""


def _epoch_seeds(run: dict) -> list[int]:
    """The seeds the bundle's ``SeedEachEpoch`` handler set, one per epoch the run started."""
    return next(h for h in run["handlers"] if isinstance(h, SeedEachEpoch)).seeds


def _killed(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, _Killed):
            return True
        error = error.__cause__ or error.__context__
    return False


def _run(files: list[str], kill_after: int | None = None, **overrides) -> dict:
    """``configs/<files>`` + tiny.json as ``monai.bundle run`` does, with the trainer's epochs and per-iteration
    learning rates recorded; ``kill_after``: die after that epoch's handlers (its checkpoint saved)."""
    epochs: list[int] = []
    lrs: list[float] = []
    with bundle_scripts(BUNDLE):
        workflow = ConfigWorkflow(
            config_file=[str(CONFIGS / f) for f in [*files, "tiny.json"]],
            meta_file=str(CONFIGS / "metadata.json"),
            logging_file=False,
            bundle_root=str(BUNDLE),
            **overrides,
        )
        workflow.initialize()
        trainer = workflow.parser.get_parsed_content("train#trainer")
        optimizer = trainer.optimizers["optimizer"]
        trainer.add_event_handler(Events.EPOCH_STARTED, lambda engine: epochs.append(engine.state.epoch))
        trainer.add_event_handler(Events.ITERATION_STARTED, lambda _: lrs.append(optimizer.param_groups[0]["lr"]))
        if kill_after is not None:

            @trainer.on(Events.EPOCH_COMPLETED(once=kill_after))
            def _die(_):
                raise _Killed(f"killed after epoch {kill_after}")

        handlers = workflow.parser.get_parsed_content("train#handlers")
        try:
            workflow.run()
        except Exception as error:
            if kill_after is None or not _killed(error):
                raise
            return {"epochs": epochs, "lrs": lrs, "trainer": trainer, "killed": True}
        workflow.finalize()
    return {"epochs": epochs, "lrs": lrs, "trainer": trainer, "handlers": handlers, "killed": False}


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _same(a: Any, b: Any) -> bool:
    """Nested state dicts equal: tensors bit for bit, everything else by ``==``."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _checkpoints(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """5 small Meningioma-like phantoms: 3 train, 1 val, 1 test."""
    from common.data import write_meningioma

    return write_meningioma(tmp_path_factory.mktemp("rehrseg_resume_data"), n_subjects=5, seed=0, small=True)


# -------------------------------------------------------------------------------------------- the self-SR network
def _sr_args(data: Path, work: Path) -> dict:
    return {"dataset_dir": str(data), "ckpt_dir": str(work / "models"), "output_dir": str(work / "eval"), **SR_STEPS}


@pytest.fixture(scope="module")
def sr_reference(data, tmp_path_factory) -> dict:
    """The uninterrupted 2-epoch self-SR run."""
    work = tmp_path_factory.mktemp("rehrseg_resume_sr")
    run = _run(SR, **_sr_args(data, work), epochs=2)
    assert run["epochs"] == [1, 2] and run["trainer"].state.epoch_length == 3
    return {**run, "models": work / "models"}


def test_sr_killed_after_epoch_1_resumes_to_the_uninterrupted_result(data, sr_reference, tmp_path):
    args = _sr_args(data, tmp_path)
    models = tmp_path / "models"
    state, reference_state = models / "sr" / "plain_state", sr_reference["models"] / "sr" / "plain_state"

    killed = _run(SR, **args, epochs=2, kill_after=1)
    assert killed["killed"] and killed["epochs"] == [1]
    assert _checkpoints(state) == ["checkpoint_epoch=1.pt"]
    assert not (models / "sr" / "plain.pt").exists(), "a killed run must not leave a 'final' plain.pt"
    assert _same(_load(state / "checkpoint_epoch=1.pt"), _load(reference_state / "checkpoint_epoch=1.pt"))

    resumed = _run(SR, **args, epochs=2)
    assert resumed["handlers"][0].loaded_path == str(state / "checkpoint_epoch=1.pt")
    assert resumed["epochs"] == [2], "the resumed run must start at epoch 2, not repeat epoch 1"
    assert (resumed["trainer"].state.epoch, resumed["trainer"].state.iteration) == (2, 6)
    assert resumed["lrs"] == sr_reference["lrs"][3:], "the OneCycleLR schedule continued where it stopped"
    assert _epoch_seeds(resumed) == _epoch_seeds(sr_reference)[1:], "epoch 2 draws from epoch 2's seed"
    assert _checkpoints(state) == ["checkpoint_epoch=1.pt", "checkpoint_epoch=2.pt"]
    final, reference = _load(state / "checkpoint_epoch=2.pt"), _load(reference_state / "checkpoint_epoch=2.pt")
    assert set(final) == {"trainer", "network", "optimizer", "lr_scheduler", "grad_scaler_optimizer"}
    for key in final:
        assert _same(final[key], reference[key]), key
    assert not _same(final["network"], _load(state / "checkpoint_epoch=1.pt")["network"]), "epoch 2 trained"
    assert _same(_load(models / "sr" / "plain.pt"), _load(sr_reference["models"] / "sr" / "plain.pt"))


def test_sr_stopped_by_epochs_1_extends_to_the_2_epoch_schedule(data, sr_reference, tmp_path):
    args = _sr_args(data, tmp_path)
    _run(SR, **args, epochs=1)
    extended = _run(SR, **args, epochs=2)  # "Tried to step 4 times. The specified number of total steps is 3"
    assert extended["epochs"] == [2] and extended["lrs"] == sr_reference["lrs"][3:]


# ----------------------------------------------------------------------------------------------------- the segmenter
@pytest.fixture(scope="module")
def stage1(data, tmp_path_factory) -> Path:
    """plain.pt, uasr.pt (1 epoch each) and the pseudo-HR data: what the segmenter stage reads."""
    work = tmp_path_factory.mktemp("rehrseg_resume_stage1")
    common = {"dataset_dir": str(data), "ckpt_dir": str(work / "models")}
    run_tiny(BUNDLE, SR, **common, output_dir=str(work / "eval_sr"), epochs=1)
    run_tiny(BUNDLE, [*SR, "train_uasr.json"], **common, output_dir=str(work / "eval_uasr"), epochs=1)
    run_tiny(BUNDLE, ["train.json", "pseudo_hr.json"], **common)
    return work / "models"


def _seg_args(data: Path, stage1: Path, work: Path) -> dict:
    """A models folder holding stage 1's outputs only (no train_state, no model.pt)."""
    models = work / "models"
    shutil.copytree(stage1 / "sr", models / "sr", ignore=shutil.ignore_patterns("*_state"))
    shutil.copytree(stage1 / "pseudo_hr", models / "pseudo_hr")
    return {"dataset_dir": str(data), "ckpt_dir": str(models), "output_dir": str(work / "eval"), "val_interval": 1}


@pytest.fixture(scope="module")
def seg_reference(data, stage1, tmp_path_factory) -> dict:
    """The uninterrupted 2-epoch segmenter run (KD and uncertainty weighting on, validated every epoch)."""
    work = tmp_path_factory.mktemp("rehrseg_resume_seg")
    run = _run(SEG, **_seg_args(data, stage1, work), epochs=2)
    trainer = run["trainer"]
    assert run["epochs"] == [1, 2] and trainer.state.epoch_length == 3
    assert trainer.use_uncertainty and trainer.lambda_kd > 0 and "distiller" in trainer.networks
    return {**run, "models": work / "models"}


def test_segmenter_killed_after_epoch_1_resumes_to_the_uninterrupted_result(data, stage1, seg_reference, tmp_path):
    args = _seg_args(data, stage1, tmp_path)
    models = tmp_path / "models"
    state, reference_state = models / "train_state", seg_reference["models"] / "train_state"

    killed = _run(SEG, **args, epochs=2, kill_after=1)
    assert killed["killed"] and killed["epochs"] == [1]
    assert _checkpoints(state) == ["checkpoint_epoch=1.pt"]
    assert _same(_load(state / "checkpoint_epoch=1.pt"), _load(reference_state / "checkpoint_epoch=1.pt"))

    resumed = _run(SEG, **args, epochs=2)
    assert resumed["handlers"][0].loaded_path == str(state / "checkpoint_epoch=1.pt")
    assert resumed["epochs"] == [2], "the resumed run must start at epoch 2, not repeat epoch 1"
    assert (resumed["trainer"].state.epoch, resumed["trainer"].state.iteration) == (2, 6)
    assert resumed["lrs"] == seg_reference["lrs"][3:] and 0 < resumed["lrs"][0] < seg_reference["lrs"][0]
    assert _checkpoints(state) == ["checkpoint_epoch=1.pt", "checkpoint_epoch=2.pt"]
    final, reference = _load(state / "checkpoint_epoch=2.pt"), _load(reference_state / "checkpoint_epoch=2.pt")
    assert {"segmenter", "distiller", "optimizer", "lr_scheduler", "best_model_saver", "trainer"} <= set(final)
    for key in final:
        assert _same(final[key], reference[key]), key
    assert not _same(final["segmenter"], _load(state / "checkpoint_epoch=1.pt")["segmenter"]), "epoch 2 trained"
    # model.pt is the best of both epochs, tracked across the restart, as in the uninterrupted run
    assert _same(_load(models / "model.pt"), _load(seg_reference["models"] / "model.pt"))


def test_segmenter_stopped_by_epochs_1_extends_to_the_2_epoch_schedule(data, stage1, seg_reference, tmp_path):
    args = _seg_args(data, stage1, tmp_path)
    _run(SEG, **args, epochs=1)
    extended = _run(SEG, **args, epochs=2)
    assert extended["epochs"] == [2]
    assert extended["lrs"] == seg_reference["lrs"][3:], f"epoch 2 trained at {extended['lrs']}"
