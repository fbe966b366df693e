"""ResumeFromLatest and AtomicCheckpointSaver: resume exactly where a run stopped, survive an interrupted save."""

from __future__ import annotations

import logging
import shutil
import stat

import numpy as np
import pytest
import torch
from common.checkpoint import latest_checkpoint
from common.handlers import AtomicCheckpointSaver, ResumeFromLatest
from common.run_settings import (
    RunSettings,
    RunSettingsMismatchError,
    file_fingerprint,
    files_fingerprint,
    plain_setting,
)
from ignite.engine import Events
from monai.engines import SupervisedTrainer
from monai.handlers import CheckpointSaver, LrScheduleHandler
from torch import nn
from torch.utils.data import DataLoader


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 2, generator=g)
    y = x @ torch.tensor([[1.5], [-2.0]]) + 0.5
    return [{"image": a, "label": b} for a, b in zip(x, y)]


def _trainer(max_epochs, seed=0, handlers=(), batch_size=4):
    torch.manual_seed(seed)
    network = nn.Linear(2, 1)
    optimizer = torch.optim.Adam(network.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    trainer = SupervisedTrainer(
        "cpu", max_epochs, DataLoader(_data(), batch_size=batch_size), network, optimizer, nn.MSELoss(), decollate=False
    )
    objects = {"trainer": trainer, "network": network, "optimizer": optimizer, "lr_scheduler": scheduler}
    LrScheduleHandler(scheduler, print_lr=False).attach(trainer)
    for make in handlers:
        make(objects).attach(trainer)
    return trainer, objects


def _adam_steps(optimizer):
    return [int(state["step"]) for state in optimizer.state.values()]


@pytest.mark.parametrize("saver_class", [CheckpointSaver, AtomicCheckpointSaver])
def test_resume_runs_only_remaining_epochs_with_optimizer_state(tmp_path, saver_class):
    ckpt = tmp_path / "ckpt"
    _trainer(2, handlers=[lambda o: saver_class(str(ckpt), o, save_interval=1)])[0].run()
    assert sorted(p.name for p in ckpt.iterdir()) == ["checkpoint_epoch=1.pt", "checkpoint_epoch=2.pt"]

    resume = []
    trainer, objects = _trainer(4, seed=123, handlers=[lambda o: resume.append(ResumeFromLatest(ckpt, o)) or resume[0]])
    seen = []

    @trainer.on(Events.EPOCH_STARTED)
    def _record(engine):
        seen.append((engine.state.epoch, _adam_steps(objects["optimizer"]), objects["optimizer"].param_groups[0]["lr"]))

    trainer.run()
    assert [epoch for epoch, _, _ in seen] == [3, 4]
    assert seen[0][1] == [4, 4]  # 2 epochs x 2 iterations of Adam restored
    assert seen[0][2] == pytest.approx(0.1 * 0.5**2)  # StepLR state restored
    assert resume[0].loaded_path == str(ckpt / "checkpoint_epoch=2.pt")
    assert trainer.state.iteration == 8

    reference, reference_objects = _trainer(4)
    reference.run()
    for a, b in zip(objects["network"].parameters(), reference_objects["network"].parameters()):
        assert torch.equal(a, b)  # interrupted + resumed == uninterrupted


def test_resume_without_checkpoint_starts_from_scratch(tmp_path, caplog):
    seen = []
    trainer, _ = _trainer(2, handlers=[lambda o: ResumeFromLatest(tmp_path / "empty", o, name="resume_test")])
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: seen.append(e.state.epoch))
    with caplog.at_level(logging.INFO, logger="resume_test"):
        trainer.run()
    assert seen == [1, 2]
    assert caplog.text.count("no checkpoint") == 1


def test_resuming_a_finished_run_trains_nothing_and_says_so(tmp_path, caplog):
    """A second run with other settings in the same folder (an ablation switch leaves the shapes alone) would
    otherwise end silently with the first run's models."""
    ckpt = tmp_path / "ckpt"
    _trainer(2, handlers=[lambda o: AtomicCheckpointSaver(str(ckpt), o, save_interval=1)])[0].run()
    seen = []
    trainer, _ = _trainer(2, handlers=[lambda o: ResumeFromLatest(ckpt, o, name="resume_test")])
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: seen.append(e.state.epoch))
    with caplog.at_level(logging.WARNING, logger="resume_test"):
        trainer.run()
    assert seen == []
    [record] = [r for r in caplog.records if r.name == "resume_test"]
    assert "is a finished run (epoch 2 of 2)" in record.getMessage() and "--ckpt_dir" in record.getMessage()
    caplog.clear()
    trainer, _ = _trainer(3, handlers=[lambda o: ResumeFromLatest(ckpt, o, name="resume_test")])
    with caplog.at_level(logging.WARNING, logger="resume_test"):
        trainer.run()  # more epochs: trains on, no warning
    assert not [r for r in caplog.records if r.name == "resume_test"]


def test_resume_disabled_does_not_load(tmp_path):
    _trainer(1, handlers=[lambda o: CheckpointSaver(str(tmp_path), o, save_interval=1)])[0].run()
    seen = []
    trainer, _ = _trainer(2, handlers=[lambda o: ResumeFromLatest(tmp_path, o, enabled=False)])
    trainer.add_event_handler(Events.EPOCH_STARTED, lambda e: seen.append(e.state.epoch))
    trainer.run()
    assert seen == [1, 2]


def test_a_fresh_start_sets_the_earlier_runs_checkpoints_aside(tmp_path, caplog):
    """``--resume false`` over a folder of a 3-epoch run, killed after its first epoch: without setting aside, the
    earlier run's epoch-3 file would stay beside the new epoch-1 file and the next resume would continue the earlier
    run. The earlier files move into ``previous_<time>/`` (kept), ``model.pt`` stays, and the resume continues the
    fresh run from its epoch 1."""
    saver = lambda o: AtomicCheckpointSaver(str(tmp_path), o, save_interval=1, n_saved=2)  # noqa: E731
    _trainer(3, handlers=[saver])[0].run()
    (tmp_path / "model.pt").write_bytes(b"exported weights: not a resume point")
    fresh, _ = _trainer(1, seed=1, handlers=[lambda o: ResumeFromLatest(tmp_path, o, enabled="false"), saver])
    with caplog.at_level(logging.WARNING):
        fresh.run()  # as a 3-epoch fresh run killed after its first epoch's save
    (aside,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert aside.name.startswith("previous_") and str(aside) in caplog.text
    assert sorted(p.name for p in aside.iterdir()) == ["checkpoint_epoch=2.pt", "checkpoint_epoch=3.pt"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["checkpoint_epoch=1.pt", "model.pt"]
    seen = []
    resumed, _ = _trainer(3, seed=2, handlers=[lambda o: ResumeFromLatest(tmp_path, o)])
    resumed.add_event_handler(Events.EPOCH_STARTED, lambda e: seen.append(e.state.epoch))
    resumed.run()
    assert seen == [2, 3]  # the fresh run's epoch 1 was resumed, not the earlier run's epoch 3 (which trains nothing)
    assert latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint_epoch=1.pt")


@pytest.mark.parametrize("saved_batch,resumed_batch", [(4, 2), (2, 4)], ids=["fewer per epoch", "more per epoch"])
def test_resume_keeps_this_runs_iterations_per_epoch(tmp_path, caplog, saved_batch, resumed_batch):
    """A checkpoint written at another number of iterations per epoch (another process count under DDP, here another
    batch size over the same 8 items) resumes at this run's count: every resumed epoch reads the whole loader once
    (ignite would end it after the checkpoint's count, or draw past the loader's end), and says so."""
    saver = lambda o: AtomicCheckpointSaver(str(tmp_path), o, save_interval=1)  # noqa: E731
    _trainer(1, handlers=[saver], batch_size=saved_batch)[0].run()
    per_epoch: dict[int, int] = {}
    resumed, _ = _trainer(3, handlers=[lambda o: ResumeFromLatest(tmp_path, o)], batch_size=resumed_batch)
    resumed.add_event_handler(
        Events.ITERATION_COMPLETED, lambda e: per_epoch.update({e.state.epoch: per_epoch.get(e.state.epoch, 0) + 1})
    )
    with caplog.at_level(logging.WARNING):
        resumed.run()
    length = 8 // resumed_batch
    assert per_epoch == {2: length, 3: length}
    assert resumed.state.epoch == 3 and resumed.state.iteration == 3 * length
    assert f"written with {8 // saved_batch} iterations per epoch, this run has {length}" in caplog.text


def test_resume_from_a_checkpoint_of_another_network_names_the_file_and_the_fix(tmp_path):
    """A train_state written for other networks (e.g. an earlier bundle version's discriminator) is not loaded
    half-way: the run stops naming the checkpoint, what did not fit and how to start afresh."""
    _trainer(1, handlers=[lambda o: CheckpointSaver(str(tmp_path), o, save_interval=1)])[0].run()
    (path,) = tmp_path.glob("*.pt")
    trainer, objects = _trainer(2)
    objects["network"] = nn.Linear(3, 1)  # another network under the same key
    ResumeFromLatest(tmp_path, objects).attach(trainer)
    with pytest.raises(RuntimeError) as error:
        trainer.run()
    message = str(error.value)
    assert str(path) in message and "size mismatch" in message and "--resume false" in message, message


def test_a_run_with_other_settings_is_refused_before_anything_is_loaded(tmp_path, caplog):
    """An ablation started in a half-finished run's folder (same networks, another loss switch) would train on from
    that run's weights and epoch: the recorded settings are compared first and the run stops naming each difference;
    the same settings (a CLI "false" is the boolean) resume, and a checkpoint without a record resumes with a
    warning."""
    ckpt = tmp_path / "ckpt"
    settings = {"adversarial": True, "seed": 0, "weights": (0.2, 0.8)}
    saver = lambda o: AtomicCheckpointSaver(str(ckpt), o, save_interval=1, run_settings=settings)  # noqa: E731
    _trainer(1, handlers=[saver])[0].run()
    (path,) = ckpt.glob("*.pt")
    assert torch.load(path, weights_only=True)["run_settings"] == {
        "adversarial": True,
        "seed": 0,
        "weights": [0.2, 0.8],
    }

    ablation = {**settings, "adversarial": "false"}
    trainer, objects = _trainer(2, seed=5, handlers=[lambda o: ResumeFromLatest(ckpt, o, run_settings=ablation)])
    before = objects["network"].weight.detach().clone()
    with pytest.raises(RunSettingsMismatchError) as error:
        trainer.run()
    message = str(error.value)
    assert str(path) in message and "adversarial: True in the checkpoint, False now" in message, message
    assert "seed" not in message.split("(")[1].split(")")[0] and "--resume false" in message and "--ckpt_dir" in message
    assert torch.equal(objects["network"].weight, before), "refused before any state was loaded"

    same = {"adversarial": "true", "seed": 0, "weights": [0.2, 0.8], "added_since": 1}
    trainer, _ = _trainer(2, handlers=[lambda o: ResumeFromLatest(ckpt, o, run_settings=same)])
    trainer.run()
    assert trainer.state.epoch == 2 and trainer.state.iteration == 4  # resumed after epoch 1

    bare = tmp_path / "bare"
    _trainer(1, handlers=[lambda o: AtomicCheckpointSaver(str(bare), o, save_interval=1)])[0].run()
    trainer, _ = _trainer(2, handlers=[lambda o: ResumeFromLatest(bare, o, run_settings=settings)])
    with caplog.at_level(logging.WARNING, logger="common.run_settings"):
        trainer.run()
    assert "records no run settings" in caplog.text and trainer.state.iteration == 4


def test_run_settings_are_plain_values():
    assert plain_setting({"a": ("x", np.float32(0.5)), "b": "False", "c": torch.tensor(3)}) == {
        "a": ["x", 0.5],
        "b": False,
        "c": 3,
    }
    with pytest.raises(TypeError, match="run_settings"):
        RunSettings([("seed", 0)])


def test_file_fingerprint_follows_the_content(tmp_path):
    """The fingerprint of a frozen upstream file: equal for a copy, different once a byte changes, None if absent."""
    path, copy = tmp_path / "pri.pt", tmp_path / "copy.pt"
    torch.save({"w": torch.arange(5.0)}, path)
    copy.write_bytes(path.read_bytes())
    assert file_fingerprint(path) == file_fingerprint(copy) and len(file_fingerprint(path)) == 16
    torch.save({"w": torch.arange(5.0) + 1}, copy)
    assert file_fingerprint(path) != file_fingerprint(copy)
    assert file_fingerprint(tmp_path / "absent.pt") is None and file_fingerprint(None) is None


def test_files_fingerprint_follows_names_and_contents_not_the_folder(tmp_path):
    """The fingerprint of derived training data (REHRSeg's pseudo-HR volumes): a moved copy of the folder keeps it,
    one rewritten file or a renamed one changes it; missing files are left out, none at all gives None."""
    first, moved = tmp_path / "pseudo_hr", tmp_path / "elsewhere"
    first.mkdir()
    for name in ("a_image.nii.gz", "b_image.nii.gz"):
        (first / name).write_bytes(name.encode() * 100)
    shutil.copytree(first, moved)
    names = ["b_image.nii.gz", "a_image.nii.gz"]
    fingerprint = files_fingerprint(first / n for n in names)
    assert len(fingerprint) == 16 and fingerprint == files_fingerprint(moved / n for n in reversed(names))
    (moved / "a_image.nii.gz").write_bytes(b"rewritten")
    assert files_fingerprint(moved / n for n in names) != fingerprint
    (moved / "a_image.nii.gz").write_bytes((first / "a_image.nii.gz").read_bytes())
    (moved / "a_image.nii.gz").rename(moved / "c_image.nii.gz")
    assert files_fingerprint([moved / "c_image.nii.gz", moved / "b_image.nii.gz"]) != fingerprint
    assert files_fingerprint([first / "a_image.nii.gz", first / "absent"]) == files_fingerprint(
        [first / "a_image.nii.gz"]
    )
    assert files_fingerprint([tmp_path / "absent"]) is None and files_fingerprint([]) is None


def test_resume_needs_objects(tmp_path):
    with pytest.raises(ValueError, match="load_dict"):
        ResumeFromLatest(tmp_path, {})


def _crash_during_save(monkeypatch):
    """Replace torch.save by one that writes a truncated file then fails, as a killed or disk-full save would."""

    def broken_save(obj, f, *args, **kwargs):
        partial = b"PK\x03\x04truncated"
        if hasattr(f, "write"):
            f.write(partial)
            f.flush()
        else:
            with open(f, "wb") as handle:
                handle.write(partial)
        raise OSError("simulated interruption during torch.save")

    monkeypatch.setattr(torch, "save", broken_save)


def _run_with_crash_in_second_save(tmp_path, saver_class, monkeypatch):
    trainer, objects = _trainer(
        2,
        handlers=[
            lambda o: saver_class(
                str(tmp_path), {"network": o["network"], "trainer": o["trainer"]}, save_interval=1, n_saved=1
            )
        ],
    )
    saved = {}

    @trainer.on(Events.EPOCH_COMPLETED(once=1))
    def _after_first_save(engine):  # attached after the saver, so epoch 1 is on disk
        saved.update({k: v.clone() for k, v in objects["network"].state_dict().items()})
        _crash_during_save(monkeypatch)

    with pytest.raises(OSError, match="simulated interruption"):
        trainer.run()
    monkeypatch.undo()
    return saved


def test_monai_checkpoint_saver_is_not_atomic(tmp_path, monkeypatch):
    """Documents why AtomicCheckpointSaver exists: MONAI 1.6.1 uses DiskSaver(atomic=False) and removes first."""
    _run_with_crash_in_second_save(tmp_path, CheckpointSaver, monkeypatch)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_epoch=2.pt"]  # epoch 1 already deleted
    with pytest.raises(Exception):
        torch.load(tmp_path / "checkpoint_epoch=2.pt", weights_only=True)


def test_atomic_saver_keeps_previous_checkpoint_on_interrupted_save(tmp_path, monkeypatch):
    saved = _run_with_crash_in_second_save(tmp_path, AtomicCheckpointSaver, monkeypatch)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_epoch=1.pt"]  # no partial file, no temp file
    assert latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint_epoch=1.pt")
    checkpoint = torch.load(tmp_path / "checkpoint_epoch=1.pt", weights_only=True)
    assert checkpoint["trainer"]["iteration"] == 2  # end of epoch 1 (2 iterations per epoch)
    for key, value in saved.items():
        assert torch.equal(checkpoint["network"][key], value)


def test_atomic_saver_rotation_and_fixed_final_name(tmp_path):
    saver = []
    trainer, _ = _trainer(
        3,
        handlers=[
            lambda o: saver.append(
                AtomicCheckpointSaver(
                    str(tmp_path), o, save_interval=1, n_saved=2, save_final=True, final_filename="model_final.pt"
                )
            )
            or saver[0]
        ],
    )
    trainer.run()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint_epoch=2.pt", "checkpoint_epoch=3.pt", "model_final.pt"]
    mode = (tmp_path / "checkpoint_epoch=3.pt").stat().st_mode
    assert mode & stat.S_IRGRP and mode & stat.S_IROTH  # the reason MONAI gave for atomic=False is gone
    trainer.state.max_epochs = 4
    trainer.run()  # one more epoch: the final file is replaced under the same name, not deleted
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint_epoch=3.pt", "checkpoint_epoch=4.pt", "model_final.pt"]
    assert torch.load(tmp_path / "model_final.pt", weights_only=True)["trainer"]["iteration"] == 8


def _scheduled(kind: str, steps: int):
    network = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    if kind == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=steps)
    else:
        scheduler = torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=steps, power=0.9)
    return optimizer, scheduler


def _stepped(optimizer, scheduler, n: int) -> list[float]:
    lrs = []
    for _ in range(n):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.mark.parametrize("kind", ["onecycle", "polynomial"])
def test_resume_with_a_longer_schedule_continues_on_that_schedule(tmp_path, kind, caplog):
    """A run scheduled for 3 steps, finished, resumed with a 6-step schedule (``--epochs`` doubled): the learning
    rates of steps 4-6 are those of a 6-step run (not OneCycleLR's "Tried to step 4 times", not PolynomialLR's 0)."""
    reference = _scheduled(kind, 6)
    expected = _stepped(*reference, 6)[3:]
    short = _scheduled(kind, 3)
    _stepped(*short, 3)
    (tmp_path / "state").mkdir()
    torch.save({"optimizer": short[0].state_dict(), "lr_scheduler": short[1].state_dict()},
               tmp_path / "state" / "checkpoint_epoch=1.pt")  # fmt: skip
    optimizer, scheduler = _scheduled(kind, 6)
    trainer = SupervisedTrainer("cpu", 2, DataLoader(_data(), batch_size=4), nn.Linear(2, 1), optimizer, nn.MSELoss())
    with caplog.at_level(logging.WARNING):
        ResumeFromLatest(tmp_path / "state", {"optimizer": optimizer, "lr_scheduler": scheduler})(trainer)
    assert scheduler.last_epoch == 3
    assert _stepped(optimizer, scheduler, 3) == pytest.approx(expected, rel=1e-6)
    assert expected[0] > 0 and "horizon differs" in caplog.text


def test_resume_with_the_same_schedule_leaves_the_restored_state_as_it_was(tmp_path, caplog):
    saved = _scheduled("polynomial", 6)
    _stepped(*saved, 2)
    (tmp_path / "state").mkdir()
    torch.save({"optimizer": saved[0].state_dict(), "lr_scheduler": saved[1].state_dict()},
               tmp_path / "state" / "checkpoint_epoch=1.pt")  # fmt: skip
    optimizer, scheduler = _scheduled("polynomial", 6)
    trainer = SupervisedTrainer("cpu", 2, DataLoader(_data(), batch_size=4), nn.Linear(2, 1), optimizer, nn.MSELoss())
    with caplog.at_level(logging.WARNING):
        ResumeFromLatest(tmp_path / "state", {"optimizer": optimizer, "lr_scheduler": scheduler})(trainer)
    assert scheduler.state_dict() == saved[1].state_dict()
    assert optimizer.param_groups[0]["lr"] == saved[0].param_groups[0]["lr"] and "horizon" not in caplog.text
