"""Ignite handlers shared by the bundles: resume, atomic checkpoints, progress with ETA, GAN image grids,
PNG overlays, HD95 in mm, loss-term logging."""

from __future__ import annotations

from common.handlers.atomic_checkpoint_saver import AtomicCheckpointSaver
from common.handlers.gan_image_grid import GanImageGridHandler, image_grid
from common.handlers.hausdorff_mm import HausdorffDistanceMM, HausdorffDistanceMMMetric
from common.handlers.loss_terms import loss_terms
from common.handlers.overlay_writer import OverlayWriter, overlay_png
from common.handlers.progress_logger import ProgressLogger
from common.handlers.resume_from_latest import ResumeFromLatest

__all__ = [
    "AtomicCheckpointSaver",
    "GanImageGridHandler",
    "HausdorffDistanceMM",
    "HausdorffDistanceMMMetric",
    "OverlayWriter",
    "ProgressLogger",
    "ResumeFromLatest",
    "image_grid",
    "loss_terms",
    "overlay_png",
]
