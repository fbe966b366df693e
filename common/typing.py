"""Type aliases shared across `common` (TorchIO style)."""

from __future__ import annotations

import os
from typing import Union

__all__ = ["PathLike"]

PathLike = Union[str, "os.PathLike[str]"]
