"""Boolean config values that may arrive as strings from the command line."""

from __future__ import annotations

__all__ = ["as_flag"]


def as_flag(value: bool | str | int, name: str) -> bool:
    """A boolean from a config or the command line (`monai.bundle run --resume false` passes the string "false",
    which Python would take as true).

    Raises:
        ValueError: a string other than true/false, 1/0, yes/no, on/off, or a value other than a boolean, 0 or 1;
            the message names the argument.
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise ValueError(f"{name} must be true or false, got {value!r}.")
    if value is None or value not in (0, 1):  # (True == 1 and False == 0, numpy booleans too)
        raise ValueError(f"{name} must be true or false, got {value!r}.")
    return bool(value)
