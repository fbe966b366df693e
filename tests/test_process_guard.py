"""tests/conftest.py's process guard: a test marked ``in_process`` runs in the main session instead of the
user-folders copy, so it must start no process (one would escape the main session's in-process guard)."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import PROCESS_GUARD, ProcessStarted


def test_the_guard_refuses_a_subprocess_and_a_shell_command_while_active_and_nothing_otherwise():
    assert not PROCESS_GUARD.active  # this test is not marked
    PROCESS_GUARD.active = True
    try:
        with pytest.raises(ProcessStarted, match="remove its `in_process` mark"):
            subprocess.run(["true"])
        with pytest.raises(ProcessStarted, match="os.system"):
            os.system("true")
    finally:
        PROCESS_GUARD.active = False
    assert subprocess.run(["true"]).returncode == 0


@pytest.mark.in_process
def test_the_mark_turns_the_guard_on_for_its_test():
    assert PROCESS_GUARD.active
    with pytest.raises(ProcessStarted):
        subprocess.run(["true"])
