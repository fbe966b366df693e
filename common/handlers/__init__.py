"""Ignite handlers shared by the bundles: resume, atomic checkpoints, training and inference progress with ETA,
GAN image grids, PNG overlays, HD95 in mm, per-case image-quality and label Dice metrics, the Segmentor masks of an
evaluation, CycleGAN's linear LR decay, per-epoch seeding (resume-invariant random streams), loss-term logging and
epoch means, the early-stop count in checkpoints, rank-0-only writers under DDP, a weights loader that names the
overlay when a file does not fit.
"""

from __future__ import annotations

from common.handlers.atomic_checkpoint_saver import AtomicCheckpointSaver
from common.handlers.copy_batch_keys import CopyBatchKeys
from common.handlers.early_stop_state import EarlyStopState
from common.handlers.gan_image_grid import GanImageGridHandler, image_grid
from common.handlers.hausdorff_mm import HausdorffDistanceMM, HausdorffDistanceMMMetric
from common.handlers.inference_progress import InferenceProgress, slices_in_batch
from common.handlers.label_asd import LabelASD
from common.handlers.label_dice import LabelDice
from common.handlers.linear_decay_lr import LinearDecayLR
from common.handlers.loss_term_means import LossTermMeans
from common.handlers.loss_terms import loss_terms
from common.handlers.masked_psnr import MaskedPSNR
from common.handlers.masked_ssim import MaskedSSIM
from common.handlers.overlay_writer import OverlayWriter, overlay_png
from common.handlers.progress_logger import ProgressLogger
from common.handlers.rank0 import RANK0_ONLY_HANDLER_TYPES, rank0_handlers
from common.handlers.resume_from_latest import ResumeFromLatest
from common.handlers.seed_each_epoch import SeedEachEpoch, epoch_seed
from common.handlers.segmentor_masks import SegmentorMasks
from common.handlers.style_grid import StyleGridHandler
from common.handlers.weights_loader import WeightsLoader

__all__ = [
    "AtomicCheckpointSaver",
    "CopyBatchKeys",
    "EarlyStopState",
    "GanImageGridHandler",
    "HausdorffDistanceMM",
    "HausdorffDistanceMMMetric",
    "InferenceProgress",
    "LabelASD",
    "LabelDice",
    "LinearDecayLR",
    "LossTermMeans",
    "MaskedPSNR",
    "MaskedSSIM",
    "OverlayWriter",
    "ProgressLogger",
    "RANK0_ONLY_HANDLER_TYPES",
    "ResumeFromLatest",
    "SeedEachEpoch",
    "SegmentorMasks",
    "StyleGridHandler",
    "WeightsLoader",
    "image_grid",
    "loss_terms",
    "slices_in_batch",
    "overlay_png",
    "rank0_handlers",
    "epoch_seed",
]
