"""Run several ``python -m monai.bundle run ...`` command lines, in order, in one Python process.

Usage (from a bundle root; each step is one shell-quoted argument list of ``monai.bundle run``)::

    python -m common.bundle_steps "--config_file configs/train.json --epochs 2" "--config_file configs/inference.json"

Why: starting an interpreter and importing MONAI (which imports torch, ignite and MLflow when installed) costs about
6 s of CPU before a step does any work, and the bundles' short demos (``scripts/quickstart.sh``) run over forty
steps. Each step is parsed exactly as the command line would be (the same ``fire`` call as ``monai.bundle``'s
``__main__``), is printed as that command first, and a failing step stops the run with its error (later steps are not
started), as ``set -e`` does for the separate commands.

Under torchrun (``torchrun --nproc_per_node=G -m common.bundle_steps STEP ...``) give every step but the last
``--dist_finalize '$common.distributed.barrier()'``: the ranks then wait for each other between steps and keep their
process group, which cannot be left and joined again in one process (the second ``init_process_group`` reads the
first group's addresses from the store and hangs).
"""

from __future__ import annotations

__all__ = ["run_steps", "shell_word", "main"]

import re
import shlex
import sys
from collections.abc import Sequence


def shell_word(arg: str) -> str:
    """``arg`` as a user would type it: bare when safe, in double quotes when that needs no escape (config lists such
    as ``"['configs/train.json','configs/tiny.json']"``), else single-quoted by ``shlex.quote``."""
    if arg and re.fullmatch(r"[\w@%+=:,./-]+", arg):
        return arg
    if not re.search(r'["$`\\!]', arg):
        return f'"{arg}"'
    return shlex.quote(arg)


def run_steps(steps: Sequence[str]) -> None:
    """Run each step (one ``monai.bundle run`` argument string) in turn, printing its command line first.

    Raises:
        ValueError: an empty step.
        Exception: the first failing step's own error.
    """
    import fire
    from monai.bundle import run

    for step in steps:
        args = shlex.split(step)
        if not args:
            raise ValueError("an empty step: give each step as one string of `monai.bundle run` arguments.")
        print(f"\n=== python -m monai.bundle run {' '.join(map(shell_word, args))}", flush=True)
        fire.Fire({"run": run}, command=["run", *args])


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: each argument is one step."""
    steps = list(sys.argv[1:] if argv is None else argv)
    if not steps:
        raise SystemExit(f"usage: python -m common.bundle_steps STEP [STEP ...]\n{__doc__}")
    run_steps(steps)


if __name__ == "__main__":
    main()
