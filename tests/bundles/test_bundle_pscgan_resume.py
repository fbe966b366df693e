"""Resuming the training phases of the PSCGAN bundle: phase I (Pri, the first) and phase III (Seg, the cascade).

A run of 1 epoch is run again with ``--epochs 2`` (``resume`` is true by default), and a run launched for 2 epochs and
killed after epoch 1 (an exception raised once the epoch's checkpoint is on disk, as when a process dies after its
save) is run again with the same command: both continue at epoch 2 from the phase's ``<ckpt_dir>/<phase>/train_state``
folder and end with exactly the generator, discriminator, both Adam states and the best-model tracking (``pri.pt``,
``model.pt``) of the uninterrupted 2-epoch run, bit for bit on the CPU. Unlike REHRSeg's, these phases have no
learning-rate schedule (constant Adam, paper 6.3), so extending a finished run with more epochs is a plain resume.

- Pri (``train.json``) from ``models/pri/train_state``: both ways above, and the log says where it resumed;
- Seg (``train.json`` + ``train_seg.json``, conditioned on the frozen Pri and Sys) from ``models/seg/train_state``:
  killed and resumed; the frozen phases come from ``pri.pt`` / ``sys.pt`` again and ``model.pt`` holds them unchanged.
- Sys (``train.json`` + ``train_sys.json``, conditioned on the frozen Pri) from ``models/sys/train_state``: killed and
  resumed, ``sys.pt`` (the best validation PSNR) as the uninterrupted run's.

Bit equality needs the random streams of epoch 2 (the loader's shuffle) to be the same in both runs: the bundle's
``common.handlers.SeedEachEpoch`` seeds them from ``(seed, epoch, rank)`` at the start of every epoch, so the resumed
epoch 2 draws what the uninterrupted one drew (checked by its seed and by the final weights).

1 training patient (3 slices: 3 iterations an epoch, a generator step every 2nd) and 1 validation patient of 5, the
space attentions' keys pooled 2 x 2 (``attention_key_pool``: speed only, no weight changes).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch
from bundle_test_utils import exception_messages, file_names, load_state, run_recorded, run_tiny, same_state
from common.handlers import SeedEachEpoch, epoch_seed

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "cine_lge_synthesis_segmentation"
CONFIGS = BUNDLE / "configs"
PRI = ["train.json"]
SYS = ["train.json", "train_sys.json"]
SEG = ["train.json", "train_seg.json"]
#: 1 training, 1 validation and 3 test patients of 5
FRACTIONS = [0.2, 0.2, 0.6]
#: 4x fewer keys in the tiny networks' 64 x 64 space attentions (no weight changes; ~3x faster on the CPU)
FAST = {"attention_key_pool": 2}
#: 1 patient x 3 slices at batch size 1
EPOCH_LENGTH = 3
CHECKPOINT_KEYS = {"trainer", "g", "d", "g_optimizer", "d_optimizer", "best_model_saver", "run_settings"}

# in_process: every run is in this process (no torchrun, no command line), so the suite runs it in the main session
pytestmark = [pytest.mark.slow, pytest.mark.in_process]


def _run(files: list[str], kill_after: int | None = None, **overrides) -> dict:
    """The bundle's ``configs/<files>`` + tiny.json (``FAST`` attention keys), epochs recorded."""
    return run_recorded(BUNDLE, files, kill_after=kill_after, **FAST, **overrides)


def _resumed_like_the_reference(resumed: dict, state: Path, reference_state: Path) -> None:
    """The resumed run started at epoch 2 from epoch 1's checkpoint and ended where the reference did."""
    assert resumed["handlers"][0].loaded_path == str(state / "checkpoint_epoch=1.pt")
    assert resumed["epochs"] == [2], "the resumed run must start at epoch 2, not repeat epoch 1"
    seeder = next(h for h in resumed["handlers"] if isinstance(h, SeedEachEpoch))
    assert seeder.seeds == [epoch_seed(seeder.seed, 2)], "epoch 2 draws from epoch 2's seed, as uninterrupted"
    trainer = resumed["trainer"]
    assert (trainer.state.epoch, trainer.state.iteration) == (2, 2 * EPOCH_LENGTH)
    assert trainer.state.epoch_length == EPOCH_LENGTH
    assert file_names(state) == ["checkpoint_epoch=1.pt", "checkpoint_epoch=2.pt"]
    final = load_state(state / "checkpoint_epoch=2.pt")
    reference = load_state(reference_state / "checkpoint_epoch=2.pt")
    assert CHECKPOINT_KEYS <= set(final)
    for key in final:
        assert same_state(final[key], reference[key]), key
    assert not same_state(final["g"], load_state(state / "checkpoint_epoch=1.pt")["g"]), "epoch 2 trained"


def _shifted(state: dict) -> dict:
    """Every floating tensor of a (nested) state plus 1: other weights of the same networks."""
    return {
        k: _shifted(v) if isinstance(v, dict) else v + 1 if torch.is_tensor(v) and v.is_floating_point() else v
        for k, v in state.items()
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """5 CineLGE phantoms: 1 train, 1 val, 3 test."""
    from common.data import write_cine_lge

    return write_cine_lge(tmp_path_factory.mktemp("pscgan_resume_data"), n_cases=5, seed=0)


# --------------------------------------------------------------------------------------------------- phase I (Pri)
def _pri_args(data: Path, work: Path) -> dict:
    return {
        "dataset_dir": str(data), "ckpt_dir": str(work / "models"), "output_dir": str(work / "eval"),
        "fractions": FRACTIONS,
    }  # fmt: skip


@pytest.fixture(scope="module")
def pri_reference(data, tmp_path_factory) -> dict:
    """The uninterrupted 2-epoch Pri run."""
    work = tmp_path_factory.mktemp("pscgan_resume_pri")
    run = _run(PRI, **_pri_args(data, work), epochs=2)
    assert run["epochs"] == [1, 2] and run["trainer"].state.epoch_length == EPOCH_LENGTH
    return {**run, "models": work / "models"}


def test_pri_run_for_1_epoch_extends_to_2_epochs(data, pri_reference, tmp_path, caplog):
    args = _pri_args(data, tmp_path)
    models = tmp_path / "models"
    state, reference_state = models / "pri" / "train_state", pri_reference["models"] / "pri" / "train_state"

    first = _run(PRI, **args, epochs=1)
    assert first["epochs"] == [1] and first["handlers"][0].loaded_path is None
    assert (first["trainer"].state.epoch, first["trainer"].state.iteration) == (1, EPOCH_LENGTH)
    assert file_names(state) == ["checkpoint_epoch=1.pt"]
    saved = load_state(state / "checkpoint_epoch=1.pt")
    reference = load_state(reference_state / "checkpoint_epoch=1.pt")
    assert (saved["trainer"]["max_epochs"], reference["trainer"]["max_epochs"]) == (1, 2)  # all that differs
    assert same_state({**saved, "trainer": None}, {**reference, "trainer": None})

    with caplog.at_level(logging.INFO):
        extended = _run(PRI, **args, epochs=2)
    _resumed_like_the_reference(extended, state, reference_state)
    logged = [r.getMessage() for r in caplog.records]
    assert f"resumed from {state / 'checkpoint_epoch=1.pt'} at epoch 1, iteration {EPOCH_LENGTH}" in logged, logged
    assert same_state(load_state(models / "pri" / "pri.pt"), load_state(pri_reference["models"] / "pri" / "pri.pt"))


def test_pri_killed_after_epoch_1_resumes_to_the_uninterrupted_result(data, pri_reference, tmp_path):
    args = _pri_args(data, tmp_path)
    models = tmp_path / "models"
    state, reference_state = models / "pri" / "train_state", pri_reference["models"] / "pri" / "train_state"

    killed = _run(PRI, **args, epochs=2, kill_after=1)
    assert killed["killed"] and killed["epochs"] == [1]
    assert file_names(state) == ["checkpoint_epoch=1.pt"]
    assert same_state(
        load_state(state / "checkpoint_epoch=1.pt"), load_state(reference_state / "checkpoint_epoch=1.pt")
    )

    # the "no adversarial" ablation started in this half-finished folder is refused before anything is loaded
    with pytest.raises(Exception) as error:
        _run(PRI, **args, epochs=2, adversarial="false")
    assert "RunSettingsMismatchError" in exception_messages(error.value)
    assert "adversarial: True in the checkpoint, False now" in exception_messages(error.value)
    assert file_names(state) == ["checkpoint_epoch=1.pt"]

    resumed = _run(PRI, **args, epochs=2)
    _resumed_like_the_reference(resumed, state, reference_state)
    # pri.pt is the best of both epochs, tracked across the restart, as in the uninterrupted run
    assert same_state(load_state(models / "pri" / "pri.pt"), load_state(pri_reference["models"] / "pri" / "pri.pt"))


# ------------------------------------------------------------------------------------------------- phase III (Seg)
@pytest.fixture(scope="module")
def earlier_phases(data, tmp_path_factory) -> Path:
    """pri.pt and sys.pt (1 epoch each): what the Seg phase reads."""
    work = tmp_path_factory.mktemp("pscgan_resume_earlier")
    common = {"dataset_dir": str(data), "ckpt_dir": str(work / "models"), "fractions": FRACTIONS, **FAST}
    run_tiny(BUNDLE, PRI, **common, output_dir=str(work / "eval_pri"))
    run_tiny(BUNDLE, SYS, **common, output_dir=str(work / "eval_sys"))
    return work / "models"


def _seg_args(data: Path, earlier: Path, work: Path) -> dict:
    """A models folder holding pri.pt and sys.pt only (no train_state, no model.pt)."""
    models = work / "models"
    for phase in ("pri", "sys"):
        (models / phase).mkdir(parents=True)
        shutil.copy(earlier / phase / f"{phase}.pt", models / phase)
    return {"dataset_dir": str(data), "ckpt_dir": str(models), "output_dir": str(work / "eval"), "fractions": FRACTIONS}


@pytest.fixture(scope="module")
def seg_reference(data, earlier_phases, tmp_path_factory) -> dict:
    """The uninterrupted 2-epoch Seg run."""
    work = tmp_path_factory.mktemp("pscgan_resume_seg")
    run = _run(SEG, **_seg_args(data, earlier_phases, work), epochs=2)
    assert run["epochs"] == [1, 2] and run["trainer"].state.epoch_length == EPOCH_LENGTH
    assert set(run["trainer"].frozen_networks) == {"pri", "sys"}
    return {**run, "models": work / "models"}


def test_seg_killed_after_epoch_1_resumes_to_the_uninterrupted_result(data, earlier_phases, seg_reference, tmp_path):
    args = _seg_args(data, earlier_phases, tmp_path)
    models = tmp_path / "models"
    state, reference_state = models / "seg" / "train_state", seg_reference["models"] / "seg" / "train_state"

    killed = _run(SEG, **args, epochs=2, kill_after=1)
    assert killed["killed"] and killed["epochs"] == [1]
    assert file_names(state) == ["checkpoint_epoch=1.pt"]
    assert same_state(
        load_state(state / "checkpoint_epoch=1.pt"), load_state(reference_state / "checkpoint_epoch=1.pt")
    )

    resumed = _run(SEG, **args, epochs=2)
    _resumed_like_the_reference(resumed, state, reference_state)
    # model.pt (the cascade) is the best of both epochs, tracked across the restart, as in the uninterrupted run
    model = load_state(models / "model.pt")
    assert same_state(model, load_state(seg_reference["models"] / "model.pt"))
    for phase in ("pri", "sys"):  # the frozen phases, reloaded by the resumed run, are unchanged in the cascade
        frozen = load_state(earlier_phases / phase / f"{phase}.pt")
        assert same_state(
            {k.removeprefix(f"{phase}."): v for k, v in model.items() if k.startswith(f"{phase}.")}, frozen
        )


# ------------------------------------------------------------------------------------------------- phase II (Sys)
def test_sys_killed_after_epoch_1_resumes_to_the_uninterrupted_result(data, earlier_phases, tmp_path):
    """Sys (the LGE-equivalent synthesis, conditioned on the frozen Pri; ``sys.pt`` the best validation PSNR): killed
    after epoch 1 and run again, it ends where the uninterrupted 2-epoch run does, ``sys.pt`` included."""

    def args(work: Path) -> dict:
        models = work / "models"
        (models / "pri").mkdir(parents=True)
        shutil.copy(earlier_phases / "pri" / "pri.pt", models / "pri")
        return {
            "dataset_dir": str(data),
            "ckpt_dir": str(models),
            "output_dir": str(work / "eval"),
            "fractions": FRACTIONS,
        }

    reference = _run(SYS, **args(tmp_path / "reference"), epochs=2)
    assert reference["epochs"] == [1, 2] and set(reference["trainer"].frozen_networks) == {"pri"}
    reference_models = tmp_path / "reference" / "models"

    killed_args = args(tmp_path / "killed")
    models = tmp_path / "killed" / "models"
    state = models / "sys" / "train_state"
    killed = _run(SYS, **killed_args, epochs=2, kill_after=1)
    assert killed["killed"] and killed["epochs"] == [1]
    assert file_names(state) == ["checkpoint_epoch=1.pt"]

    # the frozen Pri is read from pri.pt at every start: a pri.pt replaced meanwhile (Pri retrained) is refused
    pri = models / "pri" / "pri.pt"
    kept = pri.read_bytes()
    torch.save(_shifted(load_state(pri)), pri)
    with pytest.raises(Exception) as error:
        _run(SYS, **killed_args, epochs=2)
    assert "RunSettingsMismatchError" in exception_messages(error.value)
    assert "pri_weights: " in exception_messages(error.value)
    pri.write_bytes(kept)

    resumed = _run(SYS, **killed_args, epochs=2)
    _resumed_like_the_reference(resumed, state, reference_models / "sys" / "train_state")
    assert same_state(load_state(models / "sys" / "sys.pt"), load_state(reference_models / "sys" / "sys.pt"))
    assert same_state(load_state(models / "pri" / "pri.pt"), load_state(earlier_phases / "pri" / "pri.pt"))
