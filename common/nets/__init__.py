"""Networks (one public network per file; see common/README.md)."""

from __future__ import annotations

from common.nets.cascaded_unet import CascadedUNet, UNetBN
from common.nets.edsr import EDSRBaseline
from common.nets.encoders import ENCODER_NAMES, ConvNeXtEncoder, ResNetEncoder, SwinEncoder, build_encoder
from common.nets.flavr import FLAVRSelfSR, from_flavr_names, load_plain_into_uasr
from common.nets.hr_seg_unet import HRSegUNet
from common.nets.latent_centroids import kmeans, latent_centroids, load_centroids, save_centroids
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
from common.nets.pscgan import (
    CINE_ENCODER_KINDS,
    SCLN,
    CausalTemporalConv,
    CineEncoder,
    ConvLSTMCell,
    DilatedStack,
    MultiAttentionWeighing,
    PSCGANDiscriminator,
    PSCGANGenerator,
    SelfAttention,
    SpatialDilatedConv,
    TimeReduction,
)
from common.nets.pscgan_cascade import JointOutput, PSCGANCascade
from common.nets.resnet_generator import ResNetGenerator
from common.nets.smore import SMOREPreUpsampler
from common.nets.styleswin import StyleSwinDiscriminator, StyleSwinGenerator
from common.nets.swin_sseg import SwinSSeg
from common.nets.transmrsr import ChannelSplitScaleShift, TransMRSR, nearest_centroid_truncation

__all__ = [
    "EDSRBaseline",
    "SMOREPreUpsampler",
    "FLAVRSelfSR",
    "from_flavr_names",
    "HRSegUNet",
    "load_plain_into_uasr",
    "kmeans",
    "latent_centroids",
    "load_centroids",
    "save_centroids",
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
    "ChannelSplitScaleShift",
    "ConvNeXtEncoder",
    "ENCODER_NAMES",
    "ResNetEncoder",
    "ResNetGenerator",
    "StyleSwinDiscriminator",
    "StyleSwinGenerator",
    "SwinEncoder",
    "SwinSSeg",
    "TransMRSR",
    "UNetBN",
    "build_encoder",
    "nearest_centroid_truncation",
    "patchgan_70",
    "CINE_ENCODER_KINDS",
    "CausalTemporalConv",
    "CineEncoder",
    "ConvLSTMCell",
    "DilatedStack",
    "MultiAttentionWeighing",
    "PSCGANDiscriminator",
    "PSCGANGenerator",
    "SCLN",
    "SelfAttention",
    "SpatialDilatedConv",
    "TimeReduction",
    "JointOutput",
    "PSCGANCascade",
]
