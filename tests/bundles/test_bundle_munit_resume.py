"""Resuming the MUNIT translator stage of the LGE cardiac segmentation bundle (issue 19), and its seed isolation.

A translator run stopped after epoch 1 of 2 (``--epochs 1``), then run again with ``--epochs 2 --resume true``,
continues from ``models/translator/train_state`` at epoch 2 with its optimizer states, and ends with other weights
than a fresh 1-epoch run. A run launched for 2 epochs and killed after epoch 1's save, run again with the same command,
ends bit for bit where the uninterrupted 2-epoch run does. A seed's run is the same whatever the process trained
before (the benchmark trains its seeds one after another in one process).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
from bundle_test_utils import bundle_scripts, file_names, load_state, run_recorded, same_state
from common.handlers import SeedEachEpoch, epoch_seed
from ignite.engine import Events
from monai.bundle import ConfigWorkflow

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "lge_cardiac_segmentation_munit"
TRANSLATOR = ["train.json", "train_translator.json", "tiny.json"]

pytestmark = pytest.mark.slow


def _run(files: list[str], **overrides) -> dict:
    """Run ``configs/<files>`` as ``monai.bundle run`` does; return the epochs the trainer ran and its handlers."""
    epochs: list[int] = []
    with bundle_scripts(BUNDLE):
        workflow = ConfigWorkflow(
            config_file=[str(BUNDLE / "configs" / f) for f in files],
            meta_file=str(BUNDLE / "configs" / "metadata.json"),
            logging_file=False,  # keep the test session's logging configuration
            bundle_root=str(BUNDLE),
            **overrides,
        )
        workflow.initialize()
        trainer = workflow.parser.get_parsed_content("train#trainer")
        trainer.add_event_handler(Events.EPOCH_STARTED, lambda engine: epochs.append(engine.state.epoch))
        workflow.run()
        workflow.finalize()
    return {"epochs": epochs, "trainer": trainer, "handlers": workflow.parser.get_parsed_content("train#handlers")}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def localised(tmp_path_factory):
    """Small data and a trained heart localiser (the translator crops each LGE around its mask)."""
    from common.data import write_mscmrseg

    work = tmp_path_factory.mktemp("munit_resume")
    data = write_mscmrseg(work / "data", n_patients=6, seed=3, small=True)
    _run(
        ["train.json", "train_localiser.json", "tiny.json"],
        dataset_dir=str(data),
        ckpt_dir=str(work / "models"),
        output_dir=str(work / "eval" / "localiser"),
    )
    localiser = work / "models" / "localiser"
    assert sorted(p.name for p in (work / "models").iterdir()) == ["localiser"]  # MONAI Label's models/*.pt: none
    assert sorted(p.name for p in localiser.iterdir()) == ["localiser.pt", "train_state"]
    assert sorted(p.name for p in (localiser / "train_state").iterdir()) == ["checkpoint_epoch=1.pt"]
    return data, localiser / "localiser.pt"


def _translator(data: Path, localiser: Path, work: Path, **overrides) -> dict:
    models = work / "models"
    if not models.exists():
        (models / "localiser").mkdir(parents=True)
        shutil.copy(localiser, models / "localiser")
    return _run(
        TRANSLATOR,
        dataset_dir=str(data),
        ckpt_dir=str(models),
        synthetic_dir=str(work / "synthetic"),
        output_dir=str(work / "eval"),
        **overrides,
    )


def test_translator_stopped_after_epoch_1_of_2_resumes_at_epoch_2(localised, tmp_path):
    data, localiser = localised
    fresh = _translator(data, localiser, tmp_path / "fresh", epochs=1, resume=False)
    assert fresh["epochs"] == [1]
    fresh_weights = _digest(tmp_path / "fresh" / "models" / "translator" / "translator.pt")

    work = tmp_path / "resumed"
    state = work / "models" / "translator" / "train_state"
    first = _translator(data, localiser, work, epochs=1)  # the run that stopped after epoch 1 of 2
    assert first["epochs"] == [1] and first["handlers"][0].loaded_path is None
    assert sorted(p.name for p in state.iterdir()) == ["checkpoint_epoch=1.pt"]
    assert _digest(work / "models" / "translator" / "translator.pt") == fresh_weights  # seeded: same 1-epoch run
    iterations = first["trainer"].state.epoch_length

    second = _translator(data, localiser, work, epochs=2, resume=True)
    assert second["handlers"][0].loaded_path == str(state / "checkpoint_epoch=1.pt")
    assert second["epochs"] == [2], "the resumed run must start at epoch 2, not repeat epoch 1"
    assert (second["trainer"].state.epoch, second["trainer"].state.iteration) == (2, 2 * iterations)
    assert sorted(p.name for p in state.iterdir()) == ["checkpoint_epoch=1.pt", "checkpoint_epoch=2.pt"]
    checkpoint = torch.load(state / "checkpoint_epoch=2.pt", weights_only=True)
    assert checkpoint["trainer"]["iteration"] == 2 * iterations and checkpoint["trainer"]["max_epochs"] == 2
    for optimizer in ("g", "d"):  # Adam's step counts survived the restart (iterations if they had been lost)
        assert {int(s["step"]) for s in checkpoint[optimizer]["state"].values()} == {2 * iterations}, optimizer
    # the final weights carry epoch 2: not those of the fresh 1-epoch run, and they match the resumed state
    final = work / "models" / "translator" / "translator.pt"
    assert _digest(final) != fresh_weights
    weights = torch.load(final, weights_only=True)
    assert set(weights) == {"gen_a", "gen_b"}
    for key in ("gen_a", "gen_b"):
        assert all(torch.equal(weights[key][k], checkpoint[key][k]) for k in weights[key]), key


def test_a_seeds_translator_does_not_depend_on_what_the_process_ran_before(localised, tmp_path):
    """The benchmark trains its seeds one after another in one process: seed 0's weights must be the same whether
    it runs first or after seed 1 and after other draws from the global random streams (each run seeds itself)."""
    import random

    import numpy as np

    data, localiser = localised
    digests = {}
    for name, seed in (("first", 0), ("other", 1), ("after", 0)):
        if name == "after":
            torch.rand(7), np.random.rand(7), random.random()
        _translator(data, localiser, tmp_path / name, epochs=1, resume=False, seed=seed)
        digests[name] = _digest(tmp_path / name / "models" / "translator" / "translator.pt")
    assert digests["after"] == digests["first"], "seed 0's translator changed after another run in the process"
    assert digests["other"] != digests["first"], "the seed must change the run (else this test cannot fail)"


def test_translator_killed_after_epoch_1_resumes_to_the_uninterrupted_result(localised, tmp_path):
    """A run launched for 2 epochs that dies after epoch 1's save (an exception once the checkpoint is on disk), run
    again with the same command, ends with exactly the uninterrupted run's generators, discriminators and Adam states,
    bit for bit: ``SeedEachEpoch`` seeds epoch 2's random streams (shuffle, style codes) the same way in both. The
    learning rate halves every 3 iterations here, so epoch 2 crosses a step: the two StepLR schedules resume from the
    checkpoint (until bundle 0.1.4 they restarted their count, so the halvings came late after a resume)."""
    data, localiser = localised

    def run(work: Path, **overrides) -> dict:
        models = work / "models"
        if not models.exists():
            (models / "localiser").mkdir(parents=True)
            shutil.copy(localiser, models / "localiser")
        paths = {"ckpt_dir": str(models), "synthetic_dir": str(work / "synthetic"), "output_dir": str(work / "eval")}
        return run_recorded(
            BUNDLE, TRANSLATOR[:2], dataset_dir=str(data), **paths, epochs=2, lr_step_iterations=3, **overrides
        )

    reference = run(tmp_path / "reference")
    assert reference["epochs"] == [1, 2] and not reference["killed"]
    reference_state = tmp_path / "reference" / "models" / "translator" / "train_state"

    work = tmp_path / "killed"
    state = work / "models" / "translator" / "train_state"
    killed = run(work, kill_after=1)
    assert killed["killed"] and killed["epochs"] == [1]
    assert file_names(state) == ["checkpoint_epoch=1.pt"]
    assert not (work / "models" / "translator" / "translator.pt").exists(), "a killed run writes no final weights"

    resumed = run(work)
    assert resumed["handlers"][0].loaded_path == str(state / "checkpoint_epoch=1.pt")
    assert resumed["epochs"] == [2], "the resumed run must start at epoch 2, not repeat epoch 1"
    seeder = next(h for h in resumed["handlers"] if isinstance(h, SeedEachEpoch))
    assert seeder.seeds == [epoch_seed(seeder.seed, 2)]
    final, expected = load_state(state / "checkpoint_epoch=2.pt"), load_state(reference_state / "checkpoint_epoch=2.pt")
    assert {"trainer", "gen_a", "gen_b", "dis_a", "dis_b", "g", "d", "g_lr_scheduler"} <= set(final)
    assert set(final) == set(expected)
    iterations = final["trainer"]["iteration"]
    assert iterations > 3 and final["g"]["param_groups"][0]["lr"] == pytest.approx(1e-4 * 0.5 ** (iterations // 3))
    for key in final:
        assert same_state(final[key], expected[key]), key
    assert not same_state(final["gen_a"], load_state(state / "checkpoint_epoch=1.pt")["gen_a"]), "epoch 2 trained"
    translator = "models/translator/translator.pt"
    assert same_state(load_state(work / translator), load_state(tmp_path / "reference" / translator))
