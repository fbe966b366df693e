"""Multi-network trainers on one engine base, ``MultiNetworkTrainer`` (see common/README.md)."""

from __future__ import annotations

from common.engines.base import GradScalerState, MultiNetworkTrainer, discriminator_logits, set_requires_grad
from common.engines.cyclegan_trainer import CycleGANTrainer
from common.engines.image_pool import ImagePool
from common.engines.munit_trainer import MUNITTrainer
from common.engines.segmentation_trainer import SegmentationTrainer
from common.engines.ssl_trainer import SSLTrainer

__all__ = [
    "CycleGANTrainer",
    "GradScalerState",
    "ImagePool",
    "MUNITTrainer",
    "MultiNetworkTrainer",
    "SSLTrainer",
    "SegmentationTrainer",
    "discriminator_logits",
    "set_requires_grad",
]
