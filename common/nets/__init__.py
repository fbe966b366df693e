"""Networks (one public network per file; see common/README.md)."""

from __future__ import annotations

from common.nets.cascaded_unet import CascadedUNet, UNetBN
from common.nets.encoders import ENCODER_NAMES, ConvNeXtEncoder, ResNetEncoder, SwinEncoder, build_encoder
from common.nets.localised_network import LocalisedNetwork
from common.nets.munit import (
    AdaptiveInstanceNorm2d,
    MultiScaleDiscriminator,
    MUNITContentEncoder,
    MUNITDecoder,
    MUNITGenerator,
    MUNITStyleEncoder,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    translate,
)
from common.nets.patch_discriminator import patchgan_70
from common.nets.probability_ensemble import ProbabilityEnsemble
from common.nets.resnet_generator import ResNetGenerator
from common.nets.swin_sseg import SwinSSeg

__all__ = [
    "AdaptiveInstanceNorm2d",
    "LocalisedNetwork",
    "MUNITContentEncoder",
    "MUNITDecoder",
    "MUNITGenerator",
    "MUNITStyleEncoder",
    "MultiScaleDiscriminator",
    "ProbabilityEnsemble",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "translate",
    "CascadedUNet",
    "ConvNeXtEncoder",
    "ENCODER_NAMES",
    "ResNetEncoder",
    "ResNetGenerator",
    "SwinEncoder",
    "SwinSSeg",
    "UNetBN",
    "build_encoder",
    "patchgan_70",
]
