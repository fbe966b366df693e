"""Multi-network trainers on ``monai.engines.Trainer`` (see common/README.md)."""

from __future__ import annotations

from common.engines.cyclegan_trainer import CycleGANTrainer
from common.engines.image_pool import ImagePool
from common.engines.ssl_trainer import SSLTrainer

__all__ = ["CycleGANTrainer", "ImagePool", "SSLTrainer"]
