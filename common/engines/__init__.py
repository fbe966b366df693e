"""Multi-network trainers on one engine base, ``MultiNetworkTrainer`` (see common/README.md)."""

from __future__ import annotations

from common.engines.base import (
    GradScalerState,
    MultiNetworkTrainer,
    discriminator_logits,
    named_loss_terms,
    set_requires_grad,
)
from common.engines.cyclegan_trainer import CycleGANTrainer
from common.engines.hr_seg_trainer import ForwardAll, HRSegTrainer
from common.engines.image_pool import ImagePool
from common.engines.munit_trainer import MUNITTrainer
from common.engines.prior_gan_trainer import PriorGANTrainer
from common.engines.pscgan_trainer import (
    JointTrainer,
    PrepareCineBatch,
    PriTrainer,
    PSCGANPhaseTrainer,
    SegTrainer,
    SysTrainer,
    mask_as_image,
)
from common.engines.segmentation_trainer import SegmentationTrainer
from common.engines.ssl_trainer import SSLTrainer
from common.engines.super_resolution_trainer import SuperResolutionTrainer

__all__ = [
    "CycleGANTrainer",
    "ForwardAll",
    "HRSegTrainer",
    "GradScalerState",
    "ImagePool",
    "MUNITTrainer",
    "MultiNetworkTrainer",
    "PriorGANTrainer",
    "PSCGANPhaseTrainer",
    "PriTrainer",
    "SysTrainer",
    "SegTrainer",
    "JointTrainer",
    "PrepareCineBatch",
    "mask_as_image",
    "SSLTrainer",
    "SegmentationTrainer",
    "SuperResolutionTrainer",
    "discriminator_logits",
    "named_loss_terms",
    "set_requires_grad",
]
