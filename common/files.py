"""Small files written whole or not at all."""

from __future__ import annotations

__all__ = ["write_json_atomically"]

import json
import os
import tempfile
from typing import Any

from common.typing import PathLike


def write_json_atomically(path: PathLike, data: Any, indent: int | None = None) -> None:
    """``json.dump`` ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``: a run killed
    while writing leaves the previous file (or none), never a truncated one that later runs cannot parse.

    Raises:
        TypeError: ``data`` is not JSON-serialisable (``path`` is left as it was).
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "w") as f:
            json.dump(data, f, indent=indent)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
