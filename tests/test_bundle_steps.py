"""common.bundle_steps: several `monai.bundle run` command lines in one process, parsed as the command line would be,
in order, stopping at the first failure."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from common.bundle_steps import shell_word

STEP_CONFIG = {
    "imports": ["$import json"],
    "out": "out.txt",
    "value": 0,
    "items": [],
    "run": ["$open(@out, 'a').write(json.dumps([@value, @items]) + '\\n')"],
}


def _bundle(root: Path) -> Path:
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "step.json").write_text(json.dumps(STEP_CONFIG))
    (root / "configs" / "fail.json").write_text(json.dumps({"run": ["$1 / 0"]}))
    return root


def _run(root: Path, *steps: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "common.bundle_steps", *steps]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300)


def _written(root: Path) -> list:
    path = root / "out.txt"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_steps_run_in_order_with_the_command_lines_parsing(tmp_path):
    root = _bundle(tmp_path)
    proc = _run(
        root,
        "--config_file configs/step.json --value 2 --items \"['a','b']\"",
        "--config_file configs/step.json --value x",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # as `python -m monai.bundle run ...` parses them: a number, a list literal, a bare word
    assert _written(root) == [[2, ["a", "b"]], ["x", []]]
    printed = [line for line in proc.stdout.splitlines() if line.startswith("=== ")]
    assert printed == [
        "=== python -m monai.bundle run --config_file configs/step.json --value 2 --items \"['a','b']\"",
        "=== python -m monai.bundle run --config_file configs/step.json --value x",
    ]


def test_a_failing_step_stops_the_run_before_the_next(tmp_path):
    root = _bundle(tmp_path)
    proc = _run(
        root, "--config_file configs/step.json", "--config_file configs/fail.json", "--config_file configs/step.json"
    )
    assert proc.returncode != 0 and "ZeroDivisionError" in proc.stderr
    assert _written(root) == [[0, []]], "the step after the failure must not run"


def test_no_step_is_a_usage_error(tmp_path):
    proc = _run(tmp_path)
    assert proc.returncode != 0 and "usage: python -m common.bundle_steps" in proc.stderr


@pytest.mark.parametrize("arg", ["--epochs", "a b", "['configs/train.json','configs/tiny.json']", 'x"y', "$HOME", ""])
def test_printed_words_split_back_to_the_argument(arg):
    assert shlex.split(shell_word(arg)) == [arg]
