"""Helpers shared by the bundle tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Sequence

import nibabel as nib
import numpy as np
from common.benchmarking import TINY_OVERLAY, read_overlay

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"


def tiny_overrides(bundle_name: str, keys: Sequence[str] | None = None) -> dict[str, Any]:
    """``bundles/<bundle_name>/configs/tiny.json`` (the smallest networks that run), or only its ``keys``."""
    tiny = read_overlay(BUNDLES / bundle_name, TINY_OVERLAY)
    return tiny if keys is None else {key: tiny[key] for key in keys}


def exception_messages(error: BaseException | None) -> str:
    """`Type: message` of an exception and of its causes (MONAI wraps config errors in RuntimeError)."""
    messages = []
    while error is not None:
        messages.append(f"{type(error).__name__}: {error}")
        error = error.__cause__ or error.__context__
    return "\n".join(messages)


def eight_cases(tiny_data: Path, out: Path) -> Path:
    """The 4 tiny DTI_LGE_MI cases plus their up-down flips (distinct images and masks), as Case_001..Case_008, all
    paired: a case without DTI gets the DTI of the first paired case, so the shared split (val and test from the
    paired cases, ``common.data.dti_lge_mi_split``) is ``split_cases`` of all eight."""
    sources = sorted((tiny_data / "DTI_LGE_MI").glob("Case_*"))
    dti = next(source / "DTI.nii.gz" for source in sources if (source / "DTI.nii.gz").is_file())
    for index in range(8):
        case = out / f"Case_{index + 1:03d}"
        case.mkdir(parents=True)
        source = sources[index % len(sources)]
        for name in ("LGE.nii.gz", "LGE_MI.nii.gz", "DTI.nii.gz"):
            image = nib.load(source / name if (source / name).is_file() else dti)
            data = np.asarray(image.dataobj)
            if index >= len(sources):
                data = np.ascontiguousarray(data[::-1])
            nib.save(nib.Nifti1Image(data, image.affine, image.header), case / name)
    return out


def bundle_cli(values: dict) -> list[str]:
    """``--key value`` pairs as ``monai.bundle run`` parses them (lists as Python literals, booleans as JSON)."""
    args = []
    for key, value in values.items():
        text = json.dumps(value) if isinstance(value, (bool, list)) else str(value)
        args += [f"--{key}", text.replace(" ", "")]
    return args


def bundle_step(files: Sequence[str], overrides: dict) -> list[str]:
    """``monai.bundle run``'s arguments, from a bundle root, for ``files`` (names in ``configs/``, or absolute paths)
    and ``overrides`` (the bundle's logging.conf and ``bundle_root`` ``.`` unless given)."""
    config_file = str([f if Path(f).is_absolute() else f"configs/{f}" for f in files])
    values = {"logging_file": "configs/logging.conf", "bundle_root": ".", **overrides}
    return ["--config_file", config_file, *bundle_cli(values)]


def tiny_sseg_bundle(root: Path) -> Path:
    """A stand-in for the lge_mi_sr_segmentation bundle (what the DTI pipeline's ``sseg_bundle_root`` points at):
    its inference.json with the tiny network of its tiny.json, and untrained weights in ``models/model.pt``."""
    import torch
    from common.nets import SwinSSeg

    tiny = tiny_overrides("lge_mi_sr_segmentation")
    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    config = json.loads((BUNDLES / "lge_mi_sr_segmentation" / "configs" / "inference.json").read_text())
    config.update(tiny)
    (root / "configs" / "inference.json").write_text(json.dumps(config))
    network = SwinSSeg(scale=config["scale"], out_channels=config["num_classes"], **tiny)
    torch.save(network.state_dict(), root / "models" / "model.pt")
    return root


def small_dti_lge_mi(out: Path) -> Path:
    """A small paired DTI-LGE MI dataset (5 cases, 4 with DTI, seed 0) in ``out``, its DTI files ``(64, 64, 1, 3)``
    (S0, MD, FA; ``conftest.add_dti_channels``); returns its ``DTI_LGE_MI`` folder."""
    from common.data import write_dti_lge_mi
    from conftest import add_dti_channels

    write_dti_lge_mi(out, n_cases=5, n_paired=4, seed=0)
    return add_dti_channels(out / "DTI_LGE_MI")


@contextmanager
def bundle_scripts(bundle: Path) -> Iterator[None]:
    """Make `scripts` resolve to ``bundle``'s package (every bundle has a `scripts` package; tests share a process)."""
    saved = {name: module for name, module in sys.modules.items() if name == "scripts" or name.startswith("scripts.")}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(bundle))
    try:
        yield
    finally:
        sys.path.remove(str(bundle))
        for name in [n for n in sys.modules if n == "scripts" or n.startswith("scripts.")]:
            del sys.modules[name]
        sys.modules.update(saved)


def torchrun_tmpdir(log_dir: Path) -> Path:
    """A ``TMPDIR`` for a torchrun launched by a test, beside its ``log_dir``: torchrun's agent writes its own
    ``torchelastic_*`` folders there instead of leaving them in the machine's /tmp."""
    folder = log_dir.with_name(f"{log_dir.name}_tmp")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def torchrun(cwd: Path, target: list[str], log_dir: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run --standalone --nproc_per_node=2 --redirects 3`` in ``cwd`` (a bundle folder,
    as a user runs it, or the repository), this repository on ``PYTHONPATH``, each rank's output in ``log_dir``."""
    repo = Path(__file__).resolve().parents[2]
    path = os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}
    env["TMPDIR"] = str(torchrun_tmpdir(log_dir))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "--redirects", "3", "--log-dir", str(log_dir), *target,
    ]  # fmt: skip
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


#: what ``common.bundle_steps`` prints before each step (its command line follows)
STEP_MARKER = "\n=== python -m monai.bundle run "


def torchrun_steps(
    cwd: Path, steps: Sequence[Sequence[str]], log_dir: Path, timeout: int = 600
) -> subprocess.CompletedProcess:
    """One :func:`torchrun` of ``python -m common.bundle_steps``: each step one ``monai.bundle run`` argument list,
    parsed as the command line would be, in order, in the same two rank processes (the interpreters and MONAI imported
    once instead of once a step: about 10 s of a launch). Between steps the ranks meet at a barrier, as the next
    command would start after this one ended, but the process group stays up (``--dist_finalize
    '$common.distributed.barrier()'`` on every step but the last, whose ``finalize`` leaves the group): a group torn
    down and joined again in one process reads the previous group's addresses from the store and hangs.
    :func:`step_logs` splits each rank's output by step."""
    from common.bundle_steps import shell_word

    words = []
    for i, args in enumerate(steps):
        keep_group = ["--dist_finalize", "$common.distributed.barrier()"] if i < len(steps) - 1 else []
        words.append(" ".join(shell_word(str(a)) for a in [*args, *keep_group]))
    return torchrun(cwd, ["-m", "common.bundle_steps", *words], log_dir, timeout=timeout)


def step_logs(log_dir: Path) -> list[list[str]]:
    """Per rank (0, 1), the stdout of each step of a :func:`torchrun_steps` run, in order."""
    return [log.split(STEP_MARKER)[1:] for log in rank_logs(log_dir)]


def rank_logs(log_dir: Path) -> list[str]:
    """stdout of rank 0 and rank 1 of a :func:`torchrun` run."""
    logs = []
    for rank in range(2):
        (path,) = log_dir.glob(f"*/attempt_0/{rank}/stdout.log")
        logs.append(path.read_text())
    return logs


def torchrun_failure(proc: subprocess.CompletedProcess, log_dir: Path) -> str:
    """What to show when a :func:`torchrun` run failed: its own output and the end of every rank's logs."""
    errors = "".join(p.read_text()[-3000:] for p in sorted(log_dir.glob("*/attempt_0/*/std*.log")))
    return proc.stdout[-2000:] + proc.stderr[-3000:] + errors


def handler_ids(config_files: list[Path], target: str, section: str = "train") -> list[str]:
    """The config ids (``"<section>#handlers#<i>"``) of the handlers whose ``_target_`` ends with ``target`` in the
    merged ``config_files``: tests address a handler by what it is, not by its position in the list."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(f) for f in config_files])
    handlers = parser[f"{section}#handlers"]
    return [
        f"{section}#handlers#{i}"
        for i, h in enumerate(handlers)
        if isinstance(h, dict) and str(h.get("_target_", "")).endswith(target)
    ]


def bundle_workflow(bundle: Path, files: list[str], **overrides: Any) -> Any:
    """The initialized ``ConfigWorkflow`` of ``configs/<files>`` with ``overrides`` (the test session's logging
    kept); call it inside ``bundle_scripts(bundle)``."""
    from monai.bundle import ConfigWorkflow

    configs = bundle / "configs"
    workflow = ConfigWorkflow(
        config_file=[str(configs / f) for f in files],
        meta_file=str(configs / "metadata.json"),
        logging_file=False,
        bundle_root=str(bundle),
        **overrides,
    )
    workflow.initialize()
    return workflow


def tiny_workflow(bundle: Path, files: list[str], **overrides: Any) -> Any:
    """:func:`bundle_workflow` of ``configs/<files>`` + tiny.json."""
    return bundle_workflow(bundle, [*files, "tiny.json"], **overrides)


def run_bundle(bundle: Path, files: list[str], **overrides: Any) -> Any:
    """``python -m monai.bundle run --config_file "[configs/<files>...]" --key value...`` in this process (the test
    session's logging kept); returns the finalized ``ConfigWorkflow``."""
    with bundle_scripts(bundle):
        workflow = bundle_workflow(bundle, files, **overrides)
        workflow.run()
        workflow.finalize()
    return workflow


def run_tiny(bundle: Path, files: list[str], **overrides: Any) -> Any:
    """:func:`run_bundle` of ``configs/<files>`` + tiny.json."""
    return run_bundle(bundle, [*files, "tiny.json"], **overrides)


# ------------------------------------------------------------------------------------ resume: kill, rerun, compare
class Killed(RuntimeError):
    """Stands for the process dying after an epoch's checkpoint was written."""


def _is_killed(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, Killed):
            return True
        error = error.__cause__ or error.__context__
    return False


def run_recorded(
    bundle: Path, files: list[str], kill_after: int | None = None, lr_optimizer: str | None = None, **overrides: Any
) -> dict[str, Any]:
    """``configs/<files>`` + tiny.json as ``monai.bundle run`` does, with the trainer's epochs (and, with
    ``lr_optimizer``, that optimizer's learning rate at every iteration) recorded; ``kill_after``: die after that
    epoch's handlers (its checkpoint saved), as a process killed after its save.

    Returns:
        ``epochs``, ``lrs``, ``trainer``, ``killed`` and, for a finished run, ``handlers`` (the train handlers).
    """
    from ignite.engine import Events

    epochs: list[int] = []
    lrs: list[float] = []
    with bundle_scripts(bundle):
        workflow = tiny_workflow(bundle, files, **overrides)
        trainer = workflow.parser.get_parsed_content("train#trainer")
        trainer.add_event_handler(Events.EPOCH_STARTED, lambda engine: epochs.append(engine.state.epoch))
        if lr_optimizer is not None:
            optimizer = trainer.optimizers[lr_optimizer]
            trainer.add_event_handler(Events.ITERATION_STARTED, lambda _: lrs.append(optimizer.param_groups[0]["lr"]))
        if kill_after is not None:

            @trainer.on(Events.EPOCH_COMPLETED(once=kill_after))
            def _die(_):
                raise Killed(f"killed after epoch {kill_after}")

        handlers = workflow.parser.get_parsed_content("train#handlers")
        try:
            workflow.run()
        except Exception as error:
            if kill_after is None or not _is_killed(error):
                raise
            return {"epochs": epochs, "lrs": lrs, "trainer": trainer, "killed": True}
        workflow.finalize()
    return {"epochs": epochs, "lrs": lrs, "trainer": trainer, "handlers": handlers, "killed": False}


def load_state(path: Path) -> dict:
    """A checkpoint or weights file on the CPU (``weights_only``)."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def nudged_state(state: Any) -> Any:
    """A weights file's content with one floating tensor changed (a retrained network, as far as the file goes)."""
    import torch

    if isinstance(state, torch.Tensor):
        return state + 1e-3
    for key, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return {**state, key: value + 1e-3}
        if isinstance(value, dict):
            try:
                return {**state, key: nudged_state(value)}
            except AssertionError:
                continue
    raise AssertionError("no floating tensor to change")


def same_state(a: Any, b: Any) -> bool:
    """Nested state dicts equal: tensors bit for bit, everything else by ``==``."""
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b))
    return a == b


def file_names(folder: Path) -> list[str]:
    """The sorted names in ``folder`` (e.g. the checkpoints a run left)."""
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------ volumes stored with the slices first
def slices_first(volume: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same physical volume stored with its third array axis first (the affine's columns permuted with it), as a
    converter that puts the slice axis first would write it."""
    moved = np.asarray(affine, dtype=np.float64).copy()
    moved[:, :3] = affine[:, [2, 0, 1]]
    return np.ascontiguousarray(np.moveaxis(volume, 2, 0)), moved


def copy_slices_first(source: Path, target: Path) -> None:
    """Every ``.nii.gz`` under ``source`` written under ``target`` (same relative path) by :func:`slices_first`."""
    for path in Path(source).rglob("*.nii.gz"):
        image = nib.load(path)
        out = Path(target) / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(*slices_first(np.asarray(image.dataobj), image.affine)), out)
