"""The bundle tests pass in a repository where the main job has already run, and leave its folders alone.

tests/user_folders_copy.py's ``CopyRun`` copies the repository, plants bogus files in every bundle's ``models``,
``outputs``, ``eval`` and ``synthetic`` folders the way ``tools/quickstart.sh`` lays them out, and runs the bundle
tests of that copy in a fresh pytest with ``USER_FOLDERS_GUARD=all`` (tests/conftest.py: any open/mkdir/remove under
those folders in the test process raises). This test checks that every planted file has the same bytes and mtime,
that nothing was added or removed there, and that the guard logged nothing. A test that read a planted file in a
subprocess (torchrun, ``monai.bundle`` command line) fails there loudly, since none of them loads.

The planted files live only in the temporary copy: a user's own ``bundles/*/models`` is never written.

Each bundle test runs once per session: when this test is selected with bundle tests, tests/conftest.py deselects
those in the main process, starts the copy's run of them when the session starts (in the background, on the second
core, while the main process runs the other tests) and runs this test last, which waits for it (its terminal
summary prints the copy's result line; a failure here lists the copy's failed tests); a test marked ``in_place`` (it
needs the git history) stays in the repository, and so does one marked ``in_process`` (it starts no process, which
tests/conftest.py's process guard enforces, so the main session's in-process guard covers it; the mark moves time
from the copy's half, the longer one, to the main session's). Run alone, it runs its default paths (tests/bundles and
the MONAI Label driver); ``USER_FOLDERS_TEST_PATHS`` names others (e.g. tests/tools too)::

    USER_FOLDERS_TEST_PATHS="tests/bundles tests/test_monailabel_driver.py tests/tools" \\
        .venv/bin/python -m pytest tests/test_user_folders_untouched.py
"""

from __future__ import annotations

import pytest
from user_folders_copy import file_state


@pytest.mark.slow
def test_bundle_tests_leave_user_folders_untouched(request):
    run = request.config.user_folder_copy_run  # tests/conftest.py started it with the session's test loop
    assert set(map(str, run.planted)) <= set(run.before)
    returncode, lines = run.wait()
    request.config.user_folder_copy_result = run.result_line(returncode, lines)

    touched = run.guard_log.read_text() if run.guard_log.exists() else ""
    assert not touched, f"tests touched a user's bundle folder (in-process):\n{touched}"
    after = file_state(run.folders)
    changed = sorted(p for p in run.before if after.get(p) != run.before[p])
    added = sorted(set(after) - set(run.before))
    assert not changed, f"planted files changed or removed: {changed}"
    assert not added, f"tests wrote into a user's bundle folder: {added}"
    for folder in run.folders:  # no new (empty) folder either
        present = {str(p) for p in folder.rglob("*") if p.is_dir()} if folder.exists() else set()
        planted_dirs = {str(p.parent) for p in run.planted if p.parent != folder and folder in p.parents}
        assert present <= planted_dirs, f"tests created folders in {folder}: {sorted(present - planted_dirs)}"
    failed = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    kept = f"the copy and its log are kept in {run.root}"
    report = "\n".join(failed) + "\n...\n" + "\n".join(lines[-150:])
    assert returncode == 0, f"tests fail in a tree with bogus trained files in bundles/*/models ({kept}):\n{report}"
    run.remove()
