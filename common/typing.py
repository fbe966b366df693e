"""Type aliases shared across `common` (TorchIO style)."""

from __future__ import annotations

import os
from typing import Sequence, Union

PathLike = Union[str, "os.PathLike[str]"]
TypeSpacing = Sequence[float]
TypeShape = Sequence[int]
