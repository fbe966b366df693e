"""Reliability of SwinSSegNet training: a SIGKILLed run resumes exactly, and seeded runs reproduce.

The kill test drives ``python -m monai.bundle run --config_file configs/train.json`` as a user would, kills it in
the middle of epoch 2, runs the same command with more epochs and checks that no epoch is lost or repeated, that the
optimizer state and the best-model tracking came back, and that the checkpoint folder still holds ``n_saved`` files.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from bundle_test_utils import eight_cases, handler_ids, tiny_overrides
from common.handlers import AtomicCheckpointSaver, ResumeFromLatest
from ignite.engine import Events
from monai.bundle import ConfigWorkflow
from monai.engines import SupervisedTrainer
from torch import nn
from torch.utils.data import DataLoader

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "lge_mi_sr_segmentation"
CONFIGS = BUNDLE / "configs"
NET = tiny_overrides(BUNDLE.name)
TINY = {**NET, "batch_size": 2, "num_workers": 0}
ITERATIONS = 6  # 8 cases -> 6 training cases at batch size 1
PROGRESS = re.compile(r"epoch (\d+)/(\d+) iter (\d+)/(\d+)")
BEST = re.compile(r"Got new best metric of val_mean_dice: ([0-9.eE+-]+)")


def _command(data: Path, work: Path, epochs: int) -> list[str]:
    values = {
        "config_file": CONFIGS / "train.json",
        "meta_file": CONFIGS / "metadata.json",
        "logging_file": CONFIGS / "logging.conf",
        "bundle_root": BUNDLE,
        "dataset_dir": data,
        "ckpt_dir": work / "models",
        "output_dir": work / "eval",
        "use_ssl_pretrained": "false",
        "epochs": epochs,
        "val_interval": 1,
        "batch_size": 1,
        "num_workers": 0,
        # a ProgressLogger line per iteration, to see epoch 2 start
        **{f"{i}#log_every": 1 for i in handler_ids([CONFIGS / "train.json"], "ProgressLogger")},
        **NET,
    }
    args = [sys.executable, "-m", "monai.bundle", "run"]
    for key, value in values.items():
        args += [f"--{key}", json.dumps(value).replace(" ", "") if isinstance(value, list) else str(value)]
    return args


def _env() -> dict:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _run_until(command: list[str], pattern: str, timeout: float = 180) -> list[str]:
    """Start ``command``, SIGKILL it as soon as a line matches ``pattern``; return the lines it printed."""
    proc = subprocess.Popen(
        command, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] + [lines.put(None)], daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            if line is None:
                raise AssertionError("the run ended before it could be killed:\n" + "".join(seen[-40:]))
            seen.append(line)
            if re.search(pattern, line):
                os.kill(proc.pid, signal.SIGKILL)
                break
    except queue.Empty:
        raise AssertionError(f"no line matched {pattern!r} within {timeout} s:\n" + "".join(seen[-40:])) from None
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return seen


def _epochs_completed(lines) -> list[int]:
    """Epochs whose last iteration ProgressLogger reported (``epoch e/E iter n/n``)."""
    return [int(m[1]) for m in (PROGRESS.search(line) for line in lines) if m and m[3] == m[4]]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_continues_exactly(tiny_data, tmp_path):
    data = eight_cases(tiny_data, tmp_path / "DTI_LGE_MI")
    state = tmp_path / "models" / "train_state"

    first = _run_until(_command(data, tmp_path, epochs=3), rf"epoch 2/3 iter 1/{ITERATIONS}\b")
    assert sorted(p.name for p in state.iterdir()) == ["checkpoint_epoch=1.pt"], "killed too late: epoch 2 was saved"
    assert _epochs_completed(first) == [1]
    best_before = [float(v) for v in BEST.findall("".join(first))]
    model_before = (_sha(tmp_path / "models" / "model.pt"), (tmp_path / "models" / "model.pt").stat().st_mtime_ns)

    proc = subprocess.run(_command(data, tmp_path, epochs=4), cwd=REPO, env=_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    second = proc.stdout.splitlines()
    log = proc.stdout

    # resumed from the last complete checkpoint, and the epochs continue from there: 2, 3, 4
    assert f"resuming from {state / 'checkpoint_epoch=1.pt'}" in log
    assert f"at epoch 1, iteration {ITERATIONS}" in log
    progress = [PROGRESS.search(line) for line in second]
    progress = [tuple(map(int, m.groups())) for m in progress if m]
    assert progress[0] == (2, 4, 1, ITERATIONS)
    assert progress == [(e, 4, i, ITERATIONS) for e in (2, 3, 4) for i in range(1, ITERATIONS + 1)]
    assert _epochs_completed(second) == [2, 3, 4]

    # n_saved=2 holds across the restart: the interrupted run's file joined the rotation
    assert sorted(p.name for p in state.iterdir()) == ["checkpoint_epoch=3.pt", "checkpoint_epoch=4.pt"]
    final = torch.load(state / "checkpoint_epoch=4.pt", weights_only=True)
    assert final["trainer"]["iteration"] == 4 * ITERATIONS and final["trainer"]["max_epochs"] == 4
    steps = {int(s["step"]) for s in final["optimizer"]["state"].values()}
    assert steps == {4 * ITERATIONS}  # AdamW's step count survived the restart (18 if the state were lost)

    from common.nets import SwinSSeg

    net = SwinSSeg(spatial_dims=2, in_channels=1, out_channels=2, scale=8, window_size=7, patch_size=2, **NET)
    net.load_state_dict(final["network"], strict=True)
    net.load_state_dict(torch.load(tmp_path / "models" / "model.pt", weights_only=True), strict=True)

    # the best model survives the restart: replaced only if a later validation beat the pre-kill best
    best_after = [float(v) for v in BEST.findall(log)]
    assert best_before and best_after
    ((tracked, _),) = final["best_model_saver"]["_saved"]
    assert tracked == pytest.approx(max(best_before[-1], best_after[-1]), abs=1e-9)
    model_after = (_sha(tmp_path / "models" / "model.pt"), (tmp_path / "models" / "model.pt").stat().st_mtime_ns)
    assert (model_after != model_before) == (best_after[-1] > best_before[-1])


def _train_once(tiny_data: Path, work: Path, seed: int, epochs: int = 2) -> dict:
    workflow = ConfigWorkflow(
        config_file=str(CONFIGS / "train.json"),
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=False,  # keep the global logging configuration of the test session
        bundle_root=str(BUNDLE),
        dataset_dir=str(tiny_data / "DTI_LGE_MI"),
        ckpt_dir=str(work / "models"),
        output_dir=str(work / "eval"),
        use_ssl_pretrained=False,
        resume=False,
        seed=seed,
        epochs=epochs,
        val_interval=1,
        **TINY,
    )
    workflow.initialize()
    trainer = workflow.parser.get_parsed_content("train#trainer")
    evaluator = workflow.parser.get_parsed_content("validate#evaluator")
    losses, dice = [], []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output[0]["loss"])))
    evaluator.add_event_handler(Events.EPOCH_COMPLETED, lambda e: dice.append(e.state.metrics["val_mean_dice"]))
    workflow.run()
    workflow.finalize()
    digest = hashlib.sha256()
    for key, value in sorted(workflow.parser.get_parsed_content("network").state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().numpy().tobytes())
    n_train = len(workflow.parser.get_parsed_content("split")["lge_train"])
    return {"losses": losses, "dice": dice, "weights": digest.hexdigest(), "steps_per_epoch": -(-n_train // 2)}


@pytest.mark.slow
def test_seeded_runs_reproduce_metrics_and_weights(tiny_data, tmp_path):
    a = _train_once(tiny_data, tmp_path / "a", seed=0)
    b = _train_once(tiny_data, tmp_path / "b", seed=0)
    # every training batch of both epochs logged its loss, and validation ran every epoch
    assert len(a["losses"]) == 2 * a["steps_per_epoch"] >= 2 and len(a["dice"]) == 2
    assert a == b  # bitwise: losses, validation Dice per epoch, final weights
    c = _train_once(tiny_data, tmp_path / "c", seed=1, epochs=1)
    assert c["losses"][0] != a["losses"][0]  # the seed matters (initial weights, split, augmentation): can fail


# ------------------------------------------------------------------------------- resume helpers, fast unit checks
def _tiny_trainer(max_epochs: int) -> tuple[SupervisedTrainer, dict]:
    torch.manual_seed(0)
    network = nn.Linear(2, 1)
    optimizer = torch.optim.Adam(network.parameters(), lr=0.1)
    data = [{"image": torch.randn(2), "label": torch.randn(1)} for _ in range(4)]
    trainer = SupervisedTrainer(
        "cpu", max_epochs, DataLoader(data, batch_size=2), network, optimizer, nn.MSELoss(), decollate=False
    )
    return trainer, {"network": network, "optimizer": optimizer}


def test_fresh_run_rotates_out_checkpoints_left_in_the_folder(tmp_path):
    """The saver alone over an old folder (what ``ResumeFromLatest(enabled=False)`` prevents by setting the old files
    aside first): the old numbered files leave by rotation, oldest first."""
    for epoch in (7, 8):
        torch.save({"old": torch.zeros(1)}, tmp_path / f"checkpoint_epoch={epoch}.pt")
    (tmp_path / "model.pt").write_bytes(b"not a numbered checkpoint: never touched")
    trainer, objects = _tiny_trainer(max_epochs=1)
    AtomicCheckpointSaver(str(tmp_path), objects, save_interval=1, n_saved=2, engine_key="trainer").attach(trainer)
    trainer.run()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_epoch=1.pt", "checkpoint_epoch=8.pt", "model.pt"]
    trainer.state.max_epochs = 3
    trainer.run()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_epoch=2.pt", "checkpoint_epoch=3.pt", "model.pt"]


@pytest.mark.parametrize("flag,enabled", [("false", False), ("False", False), (" true ", True), (False, False)])
def test_resume_switch_reads_command_line_booleans(tmp_path, flag, enabled):
    """``monai.bundle run --resume false`` passes the string "false", which must switch resuming off."""
    net = nn.Linear(1, 1)
    assert ResumeFromLatest(tmp_path, {"network": net}, enabled=flag).enabled is enabled
    with pytest.raises(ValueError, match="enabled"):
        ResumeFromLatest(tmp_path, {"network": net}, enabled="maybe")
