"""MONAI inferers shared by the bundles (one public class per file)."""

from __future__ import annotations

from common.inferers.upsample_inferer import UpsampleInferer

__all__ = ["UpsampleInferer"]
