"""Resuming the training stages of the REHRSeg bundle: the plain self-SR network, the UASR network and the segmenter.

A run launched for 2 epochs and killed after epoch 1 (an exception raised once the epoch's checkpoint is on disk,
as when a process dies after its save) is run again with the same command (``resume`` is true by default): it
continues at epoch 2 from its ``train_state`` folder and ends with exactly the weights, optimizer and LR-scheduler
states (and, for the segmenter, the distiller, the best-model tracking and ``model.pt``) of the uninterrupted 2-epoch
run, bit for bit on the CPU:

- the plain self-SR network (``train.json`` + ``train_sr.json``) from ``models/sr/plain_state``; the killed run
  leaves no ``plain.pt``, which the next stage would take for a finished network;
- the UASR network (+ ``train_uasr.json``, started from ``plain.pt``) from ``models/sr/uasr_state``;
- the segmenter with structural KD and the uncertainty weighting (``train.json``) from ``models/train_state``; a
  resume after its pseudo-HR volumes were rewritten is refused (``run_settings``' ``pseudo_hr_data``).

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

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_test_utils import (
    exception_messages,
    file_names,
    load_state,
    nudged_state,
    run_recorded,
    run_tiny,
    same_state,
)
from common.handlers import SeedEachEpoch

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "thick_slice_hr_segmentation_rehrseg"
CONFIGS = BUNDLE / "configs"
SR = ["train.json", "train_sr.json"]
SEG = ["train.json"]
#: one volume's patches per step (tiny.json cuts 2 per volume): 3 training volumes -> 3 iterations an epoch, enough to
#: compare resumed runs (tiny.json's 4 patches per step give 2; before bundle 0.2.3 its batch of 4 volumes gave 1, and
#: OneCycleLR then trained epoch 2 at a learning rate of 2e-9)
SR_STEPS = {"sr_batch_size": 2}

# every run is in this process (no torchrun, no command line), but it is not marked in_process: its ~26 s run in the
# user-folders copy, which balances the two halves since the multi-GPU tests share one torchrun launch per bundle
pytestmark = [pytest.mark.slow]


def _epoch_seeds(run: dict) -> list[int]:
    """The seeds the bundle's ``SeedEachEpoch`` handler set, one per epoch the run started."""
    return next(h for h in run["handlers"] if isinstance(h, SeedEachEpoch)).seeds


def _run(files: list[str], kill_after: int | None = None, **overrides) -> dict:
    """The bundle's ``configs/<files>`` + tiny.json, epochs and the optimizer's learning rates recorded."""
    return run_recorded(BUNDLE, files, kill_after=kill_after, lr_optimizer="optimizer", **overrides)


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
    assert file_names(state) == ["checkpoint_epoch=1.pt"]
    assert not (models / "sr" / "plain.pt").exists(), "a killed run must not leave a 'final' plain.pt"
    assert same_state(
        load_state(state / "checkpoint_epoch=1.pt"), load_state(reference_state / "checkpoint_epoch=1.pt")
    )

    resumed = _run(SR, **args, epochs=2)
    assert resumed["handlers"][0].loaded_path == str(state / "checkpoint_epoch=1.pt")
    assert resumed["epochs"] == [2], "the resumed run must start at epoch 2, not repeat epoch 1"
    assert (resumed["trainer"].state.epoch, resumed["trainer"].state.iteration) == (2, 6)
    assert resumed["lrs"] == sr_reference["lrs"][3:], "the OneCycleLR schedule continued where it stopped"
    assert _epoch_seeds(resumed) == _epoch_seeds(sr_reference)[1:], "epoch 2 draws from epoch 2's seed"
    assert file_names(state) == ["checkpoint_epoch=1.pt", "checkpoint_epoch=2.pt"]
    final = load_state(state / "checkpoint_epoch=2.pt")
    reference = load_state(reference_state / "checkpoint_epoch=2.pt")
    assert set(final) == {"trainer", "network", "optimizer", "lr_scheduler", "grad_scaler_optimizer", "run_settings"}
    assert final["run_settings"]["sr_stage"] == "plain" and final["run_settings"]["seed"] == 0
    for key in final:
        assert same_state(final[key], reference[key]), key
    assert not same_state(final["network"], load_state(state / "checkpoint_epoch=1.pt")["network"]), "epoch 2 trained"
    assert same_state(load_state(models / "sr" / "plain.pt"), load_state(sr_reference["models"] / "sr" / "plain.pt"))


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
    assert file_names(state) == ["checkpoint_epoch=1.pt"]
    assert same_state(
        load_state(state / "checkpoint_epoch=1.pt"), load_state(reference_state / "checkpoint_epoch=1.pt")
    )

    # the pseudo-HR volumes are read at every start: rewritten meanwhile (pseudo_hr.json --overwrite true after the
    # self-SR networks were retrained), the resume is refused before anything is loaded
    uncertainty = next((models / "pseudo_hr").glob("*_uncertainty.nii.gz"))
    kept = uncertainty.read_bytes()
    image = nib.load(uncertainty)
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj) * 0.5, image.affine), uncertainty)
    with pytest.raises(Exception) as error:
        _run(SEG, **args, epochs=2)
    assert "RunSettingsMismatchError" in exception_messages(error.value)
    assert "pseudo_hr_data: " in exception_messages(error.value)
    uncertainty.write_bytes(kept)

    resumed = _run(SEG, **args, epochs=2)
    assert resumed["handlers"][0].loaded_path == str(state / "checkpoint_epoch=1.pt")
    assert resumed["epochs"] == [2], "the resumed run must start at epoch 2, not repeat epoch 1"
    assert (resumed["trainer"].state.epoch, resumed["trainer"].state.iteration) == (2, 6)
    assert resumed["lrs"] == seg_reference["lrs"][3:] and 0 < resumed["lrs"][0] < seg_reference["lrs"][0]
    assert file_names(state) == ["checkpoint_epoch=1.pt", "checkpoint_epoch=2.pt"]
    final = load_state(state / "checkpoint_epoch=2.pt")
    reference = load_state(reference_state / "checkpoint_epoch=2.pt")
    assert {"segmenter", "distiller", "optimizer", "lr_scheduler", "best_model_saver", "trainer"} <= set(final)
    for key in final:
        assert same_state(final[key], reference[key]), key
    assert not same_state(
        final["segmenter"], load_state(state / "checkpoint_epoch=1.pt")["segmenter"]
    ), "epoch 2 trained"
    # model.pt is the best of both epochs, tracked across the restart, as in the uninterrupted run
    assert same_state(load_state(models / "model.pt"), load_state(seg_reference["models"] / "model.pt"))


def test_segmenter_stopped_by_epochs_1_extends_to_the_2_epoch_schedule(data, stage1, seg_reference, tmp_path):
    args = _seg_args(data, stage1, tmp_path)
    _run(SEG, **args, epochs=1)
    extended = _run(SEG, **args, epochs=2)
    assert extended["epochs"] == [2]
    assert extended["lrs"] == seg_reference["lrs"][3:], f"epoch 2 trained at {extended['lrs']}"


# ---------------------------------------------------------------------------------------------- the UASR network


def test_uasr_killed_after_epoch_1_resumes_to_the_uninterrupted_result(data, stage1, tmp_path):
    """The UASR stage starts from plain.pt on every launch (``initialise_uasr``); a resumed launch then loads its
    ``models/sr/uasr_state`` over that start, so it ends where the uninterrupted 2-epoch run does, ``uasr.pt``
    included, and the killed launch leaves no ``uasr.pt`` for pseudo_hr.json to take for a finished network."""
    uasr = [*SR, "train_uasr.json"]

    def args(work: Path) -> dict:
        (work / "models" / "sr").mkdir(parents=True)
        shutil.copy(stage1 / "sr" / "plain.pt", work / "models" / "sr")
        return _sr_args(data, work)

    reference = _run(uasr, **args(tmp_path / "reference"), epochs=2)
    assert reference["epochs"] == [1, 2]
    reference_sr = tmp_path / "reference" / "models" / "sr"

    killed_args = args(tmp_path / "killed")
    sr = tmp_path / "killed" / "models" / "sr"
    killed = _run(uasr, **killed_args, epochs=2, kill_after=1)
    assert killed["killed"] and killed["epochs"] == [1]
    assert file_names(sr / "uasr_state") == ["checkpoint_epoch=1.pt"] and not (sr / "uasr.pt").exists()

    # plain.pt, the UASR fine-tune's start, is recorded by content: retrained meanwhile, the resume is refused
    kept = (sr / "plain.pt").read_bytes()
    torch.save(nudged_state(load_state(sr / "plain.pt")), sr / "plain.pt")
    with pytest.raises(Exception) as error:
        _run(uasr, **killed_args, epochs=2)
    assert "RunSettingsMismatchError" in exception_messages(error.value)
    assert "plain_weights: " in exception_messages(error.value)
    (sr / "plain.pt").write_bytes(kept)

    resumed = _run(uasr, **killed_args, epochs=2)
    assert resumed["handlers"][0].loaded_path == str(sr / "uasr_state" / "checkpoint_epoch=1.pt")
    assert resumed["epochs"] == [2] and resumed["lrs"] == reference["lrs"][len(resumed["lrs"]) :]
    final = load_state(sr / "uasr_state" / "checkpoint_epoch=2.pt")
    expected = load_state(reference_sr / "uasr_state" / "checkpoint_epoch=2.pt")
    assert set(final) == set(expected)
    for key in final:
        assert same_state(final[key], expected[key]), key
    assert same_state(load_state(sr / "uasr.pt"), load_state(reference_sr / "uasr.pt"))
    assert same_state(load_state(sr / "plain.pt"), load_state(stage1 / "sr" / "plain.pt")), "plain.pt is only read"
