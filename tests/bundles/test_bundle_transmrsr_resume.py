"""Resuming the two training stages of the TransMRSR brain MRI super-resolution bundle.

A run stopped after epoch 1 of 2 (``--epochs 1``), then run again with ``--epochs 2`` (``resume`` is true by default),
continues from its ``train_state`` folder at epoch 2 with its optimizer (and LR-scheduler) states:

- the generative prior (``train.json`` + ``train_prior.json``) from ``models/prior/train_state``, and ends with
  another ``prior.pt`` than a fresh 1-epoch run; a prior run launched for 2 epochs and killed after epoch 1's save,
  run again with the same command, ends bit for bit where the uninterrupted 2-epoch run does;
- the SR network (``train.json``) from ``models/train_state``; with ``--resume false`` the same command starts over.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from bundle_test_utils import bundle_scripts, exception_messages, file_names, nudged_state, run_recorded, same_state
from common.handlers import SeedEachEpoch, epoch_seed
from common.nets.latent_centroids import PRIOR_FINGERPRINT_KEY
from common.run_settings import file_fingerprint
from ignite.engine import Events
from monai.bundle import ConfigWorkflow

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "brain_mri_super_resolution_transmrsr"
CONFIGS = BUNDLE / "configs"
PRIOR = ["train.json", "train_prior.json", "tiny.json"]
SR = ["train.json", "tiny.json"]

pytestmark = pytest.mark.slow


def _run(files: list[str], trains: bool = True, **overrides) -> dict:
    """Run ``configs/<files>`` as ``monai.bundle run`` does; return the epochs the trainer ran and its handlers."""
    epochs: list[int] = []
    trainer, handlers = None, None
    with bundle_scripts(BUNDLE):
        workflow = ConfigWorkflow(
            config_file=[str(CONFIGS / f) for f in files],
            meta_file=str(CONFIGS / "metadata.json"),
            logging_file=False,  # keep the test session's logging configuration
            bundle_root=str(BUNDLE),
            **overrides,
        )
        workflow.initialize()
        if trains:
            trainer = workflow.parser.get_parsed_content("train#trainer")
            trainer.add_event_handler(Events.EPOCH_STARTED, lambda engine: epochs.append(engine.state.epoch))
            handlers = workflow.parser.get_parsed_content("train#handlers")
        workflow.run()
        workflow.finalize()
    return {"epochs": epochs, "trainer": trainer, "handlers": handlers, "workflow": workflow}


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _equal(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def _adam_steps(optimizer_state: dict) -> set[int]:
    return {int(s["step"]) for s in optimizer_state["state"].values()}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> dict:
    """Small data and a fresh 1-epoch prior with its centroids (the SR stage needs both)."""
    from common.data import write_ixi

    work = tmp_path_factory.mktemp("transmrsr_resume")
    data = write_ixi(work / "data", n_subjects=6, seed=4, small=True)
    models = work / "models"
    common = {"dataset_dir": str(data), "ckpt_dir": str(models)}
    run = _run(PRIOR, **common, output_dir=str(work / "eval"), epochs=1, resume=False)
    assert run["epochs"] == [1]
    _run(["train.json", "centroids.json", "tiny.json"], trains=False, **common)
    return {"data": data, "prior": models / "prior"}


def test_prior_stopped_after_epoch_1_of_2_resumes_at_epoch_2(fresh, tmp_path):
    data, models = fresh["data"], tmp_path / "models"
    common = {"dataset_dir": str(data), "ckpt_dir": str(models), "output_dir": str(tmp_path / "eval")}
    fresh_prior = _load(fresh["prior"] / "prior.pt")
    state = models / "prior" / "train_state"

    first = _run(PRIOR, **common, epochs=1)  # the run that stopped after epoch 1 of 2
    assert first["epochs"] == [1] and first["handlers"][0].loaded_path is None
    assert sorted(p.name for p in state.iterdir()) == ["checkpoint_epoch=1.pt"]
    assert _equal(_load(models / "prior" / "prior.pt")["g_ema"], fresh_prior["g_ema"])  # seeded: same 1-epoch run
    iterations = first["trainer"].state.epoch_length
    assert iterations >= 1

    second = _run(PRIOR, **common, epochs=2)
    assert second["handlers"][0].loaded_path == str(state / "checkpoint_epoch=1.pt")
    assert second["epochs"] == [2], "the resumed run must start at epoch 2, not repeat epoch 1"
    assert (second["trainer"].state.epoch, second["trainer"].state.iteration) == (2, 2 * iterations)
    assert sorted(p.name for p in state.iterdir()) == ["checkpoint_epoch=1.pt", "checkpoint_epoch=2.pt"]
    checkpoint = _load(state / "checkpoint_epoch=2.pt")
    assert checkpoint["trainer"]["iteration"] == 2 * iterations and checkpoint["trainer"]["max_epochs"] == 2
    for optimizer in ("g_optimizer", "d_optimizer"):  # Adam's step counts survived the restart
        assert _adam_steps(checkpoint[optimizer]) == {2 * iterations}, optimizer
    # the final prior carries epoch 2: not the fresh 1-epoch run's, and it is the resumed state's
    final = _load(models / "prior" / "prior.pt")
    assert final["trainer"]["iteration"] == 2 * iterations
    for key in ("g", "g_ema", "d"):
        assert not _equal(final[key], fresh_prior[key]), key
        assert _equal(final[key], checkpoint[key]), key


def test_prior_killed_after_epoch_1_resumes_to_the_uninterrupted_result(fresh, tmp_path):
    """A prior run launched for 2 epochs that dies after epoch 1's save (an exception once the checkpoint is on disk),
    run again with the same command, ends with exactly the uninterrupted run's generator, EMA generator,
    discriminator and Adam states, bit for bit: ``SeedEachEpoch`` seeds epoch 2's latents and shuffle the same way."""

    def run(work: Path, **overrides) -> dict:
        paths = {"ckpt_dir": str(work / "models"), "output_dir": str(work / "eval")}
        return run_recorded(BUNDLE, PRIOR[:2], dataset_dir=str(fresh["data"]), **paths, epochs=2, **overrides)

    reference = run(tmp_path / "reference")
    assert reference["epochs"] == [1, 2] and not reference["killed"]
    reference_prior = tmp_path / "reference" / "models" / "prior"

    prior = tmp_path / "killed" / "models" / "prior"
    state = prior / "train_state"
    killed = run(tmp_path / "killed", kill_after=1)
    assert killed["killed"] and killed["epochs"] == [1]
    assert file_names(state) == ["checkpoint_epoch=1.pt"]
    assert not (prior / "prior.pt").exists(), "a killed run writes no final prior"

    resumed = run(tmp_path / "killed")
    assert resumed["handlers"][0].loaded_path == str(state / "checkpoint_epoch=1.pt")
    assert resumed["epochs"] == [2], "the resumed run must start at epoch 2, not repeat epoch 1"
    seeder = next(h for h in resumed["handlers"] if isinstance(h, SeedEachEpoch))
    assert seeder.seeds == [epoch_seed(seeder.seed, 2)]
    final = _load(state / "checkpoint_epoch=2.pt")
    expected = _load(reference_prior / "train_state" / "checkpoint_epoch=2.pt")
    assert {"trainer", "g", "g_ema", "d", "g_optimizer", "d_optimizer"} <= set(final) and set(final) == set(expected)
    for key in final:
        assert same_state(final[key], expected[key]), key
    assert not _equal(final["g_ema"], _load(state / "checkpoint_epoch=1.pt")["g_ema"]), "epoch 2 trained"
    assert same_state(_load(prior / "prior.pt"), _load(reference_prior / "prior.pt"))


def _sr_models(fresh: dict, folder: Path) -> Path:
    """A models folder holding the prior stage's prior.pt and centroids.pt."""
    (folder / "prior").mkdir(parents=True)
    for name in ("prior.pt", "centroids.pt"):
        shutil.copy(fresh["prior"] / name, folder / "prior" / name)
    return folder


def test_sr_stopped_after_epoch_1_of_2_resumes_at_epoch_2(fresh, tmp_path):
    common = {"dataset_dir": str(fresh["data"]), "output_dir": str(tmp_path / "eval"), "val_interval": 1}
    fresh_models = _sr_models(fresh, tmp_path / "fresh")
    _run(SR, **common, ckpt_dir=str(fresh_models), epochs=1)
    fresh_network = _load(fresh_models / "train_state" / "checkpoint_epoch=1.pt")["network"]

    models = _sr_models(fresh, tmp_path / "models")
    state = models / "train_state"
    first = _run(SR, **common, ckpt_dir=str(models), epochs=1)
    assert first["epochs"] == [1] and first["handlers"][0].loaded_path is None
    assert sorted(p.name for p in state.iterdir()) == ["checkpoint_epoch=1.pt"]
    assert (models / "model.pt").is_file()
    assert _equal(_load(state / "checkpoint_epoch=1.pt")["network"], fresh_network)  # seeded: same 1-epoch run
    iterations = first["trainer"].state.epoch_length

    # the prior and its centroids are read at every start and recorded by content: rewritten meanwhile (a retrained
    # prior and centroids.json --overwrite true, or the centroids alone), the resume is refused before the SR
    # network's state is loaded (a retrained prior under its old centroids is refused earlier, by the centroids)
    prior, centroids = models / "prior" / "prior.pt", models / "prior" / "centroids.pt"
    kept = {path: path.read_bytes() for path in (prior, centroids)}
    for rewritten, setting in (((centroids,), "centroids: "), ((prior, centroids), "prior_weights: ")):
        for path in rewritten:
            content = nudged_state(_load(path))
            if path == centroids and prior in rewritten:  # recomputed from the retrained prior
                content[PRIOR_FINGERPRINT_KEY] = file_fingerprint(prior)
            torch.save(content, path)
        with pytest.raises(Exception) as error:
            _run(SR, **common, ckpt_dir=str(models), epochs=2)
        messages = exception_messages(error.value)
        assert "RunSettingsMismatchError" in messages and setting in messages, messages
        for path, content in kept.items():
            path.write_bytes(content)

    second = _run(SR, **common, ckpt_dir=str(models), epochs=2)
    assert second["handlers"][0].loaded_path == str(state / "checkpoint_epoch=1.pt")
    assert second["epochs"] == [2], "the resumed run must start at epoch 2, not repeat epoch 1"
    assert (second["trainer"].state.epoch, second["trainer"].state.iteration) == (2, 2 * iterations)
    assert sorted(p.name for p in state.iterdir()) == ["checkpoint_epoch=1.pt", "checkpoint_epoch=2.pt"]
    checkpoint = _load(state / "checkpoint_epoch=2.pt")
    assert checkpoint["trainer"]["iteration"] == 2 * iterations and checkpoint["trainer"]["max_epochs"] == 2
    assert _adam_steps(checkpoint["optimizer"]) == {2 * iterations}
    assert checkpoint["lr_scheduler"]["last_epoch"] == 2, "the LR schedule continued, it did not restart"
    assert not _equal(checkpoint["network"], fresh_network)
    # model.pt is the best of both epochs: the best-metric tracking came back with the trainer (without it, epoch 2
    # would replace model.pt whatever its score)
    first_score = _load(state / "checkpoint_epoch=1.pt")["best_model_saver"]["_saved"][0][0]
    second_score = second["workflow"].parser.get_parsed_content("validate#evaluator").state.metrics["val_psnr"]
    best = max((first_score, 1), (second_score, 2))
    assert checkpoint["best_model_saver"]["_saved"][0][0] == pytest.approx(best[0])
    best_network = _load(state / f"checkpoint_epoch={best[1]}.pt")["network"]
    assert _equal(_load(models / "model.pt"), best_network), f"model.pt is not epoch {best[1]}'s network"


def test_sr_with_resume_false_starts_over(fresh, tmp_path):
    models = _sr_models(fresh, tmp_path / "models")
    common = {"dataset_dir": str(fresh["data"]), "ckpt_dir": str(models), "output_dir": str(tmp_path / "eval")}
    _run(SR, **common, epochs=1)
    again = _run(SR, **common, epochs=2, resume=False)
    assert again["epochs"] == [1, 2] and again["handlers"][0].loaded_path is None
    assert again["trainer"].state.iteration == 2 * again["trainer"].state.epoch_length


def test_sr_stops_early_when_validation_psnr_stops_improving(fresh, tmp_path):
    """The paper's early stop on validation PSNR (MONAI's EarlyStopHandler on ``val_psnr``): with a patience of 1
    validation and an improvement of 1000 dB required, a run launched for 4 epochs stops after epoch 2 (epoch 1's
    validation sets the best; epoch 2's does not beat it by 1000 dB); with a patience of 4 validations it runs all 4
    (3 without improvement after the first)."""
    models = _sr_models(fresh, tmp_path / "models")
    common = {"dataset_dir": str(fresh["data"]), "ckpt_dir": str(models), "output_dir": str(tmp_path / "eval")}
    stopped = _run(SR, **common, epochs=4, val_interval=1, early_stop_patience=1, early_stop_min_delta=1000.0)
    assert stopped["epochs"] == [1, 2]
    assert stopped["trainer"].state.epoch == 2 and stopped["trainer"].should_terminate
    assert file_names(models / "train_state") == ["checkpoint_epoch=1.pt", "checkpoint_epoch=2.pt"]  # none later
    assert (models / "model.pt").is_file()

    full = _sr_models(fresh, tmp_path / "full")
    common["ckpt_dir"] = str(full)
    ran = _run(SR, **common, epochs=4, val_interval=1, early_stop_patience=4, early_stop_min_delta=1000.0)
    assert ran["epochs"] == [1, 2, 3, 4]


def test_sr_resume_keeps_the_early_stop_count(fresh, tmp_path):
    """The early-stop count and best PSNR are in the training state (``common.handlers.EarlyStopState``): a run
    stopped after epoch 1 (its validation set the best) and resumed for 4 epochs with a patience of 1 stops after
    epoch 2, as the uninterrupted run does; counted afresh, epoch 2 would set a new best and the run go on to 3."""
    models = _sr_models(fresh, tmp_path / "models")
    common = {"dataset_dir": str(fresh["data"]), "ckpt_dir": str(models), "output_dir": str(tmp_path / "eval")}
    stop = {"val_interval": 1, "early_stop_patience": 1, "early_stop_min_delta": 1000.0}
    assert _run(SR, **common, epochs=1, **stop)["epochs"] == [1]
    saved = torch.load(models / "train_state" / "checkpoint_epoch=1.pt", weights_only=True)["early_stop"]
    assert saved["counter"] == 0 and saved["best_score"] is not None
    resumed = _run(SR, **common, epochs=4, **stop)
    assert resumed["epochs"] == [2] and resumed["trainer"].should_terminate
