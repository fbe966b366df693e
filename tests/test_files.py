"""common.files: a JSON file is replaced whole or left as it was."""

from __future__ import annotations

import json

import pytest
from common.files import write_json_atomically


def test_json_is_written_and_replaced_without_temporary_files(tmp_path):
    path = tmp_path / "sub" / "record.json"
    write_json_atomically(path, {"scale": 4})
    assert json.loads(path.read_text()) == {"scale": 4}
    write_json_atomically(path, {"scale": 8}, indent=2)
    assert path.read_text() == '{\n  "scale": 8\n}'
    assert [p.name for p in path.parent.iterdir()] == ["record.json"]


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "record.json"
    write_json_atomically(path, {"scale": 4})
    with pytest.raises(TypeError):
        write_json_atomically(path, {"scale": object()})  # fails halfway through json.dump
    assert json.loads(path.read_text()) == {"scale": 4}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]
