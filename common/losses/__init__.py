"""Losses (``nn.Module``s, weights as constructor arguments; see common/README.md).

The LSGAN loss of CycleGAN is MONAI's ``monai.losses.PatchAdversarialLoss(criterion="least_squares",
no_activation_leastsq=True)``; there is no copy of it here.
"""

from __future__ import annotations

from common.losses.perceptual import (
    CONTENT_LAYERS,
    PAPER_LAMBDA_PERCEPTUAL,
    STYLE_LAYERS,
    ContentStyleLoss,
    SuperResolutionLoss,
    VGG19Features,
    gram_matrix,
)
from common.losses.pscgan import (
    DiscriminatorContentLoss,
    MultiClassBCE,
    PixelCountAuxLoss,
    SyntheticRegularizationLoss,
    class_fractions,
    hinge_discriminator_loss,
    hinge_generator_loss,
    overlapping_group_sparsity,
)
from common.losses.rehrseg import BCEDiceLoss, SelfSRLoss, StructuralKDLoss, UncertaintySRLoss, UncertaintyWeightedCE
from common.losses.segmentor_consistency import SegmentorConsistencyLoss
from common.losses.sobel_edge import PAPER_CLASS_WEIGHTS, PAPER_LAMBDA_EDGE, CompositeSegmentationLoss, SobelEdgeLoss

__all__ = [
    "BCEDiceLoss",
    "CONTENT_LAYERS",
    "CompositeSegmentationLoss",
    "ContentStyleLoss",
    "DiscriminatorContentLoss",
    "MultiClassBCE",
    "PAPER_CLASS_WEIGHTS",
    "PAPER_LAMBDA_EDGE",
    "PAPER_LAMBDA_PERCEPTUAL",
    "PixelCountAuxLoss",
    "STYLE_LAYERS",
    "SegmentorConsistencyLoss",
    "SelfSRLoss",
    "SobelEdgeLoss",
    "StructuralKDLoss",
    "SuperResolutionLoss",
    "SyntheticRegularizationLoss",
    "UncertaintySRLoss",
    "UncertaintyWeightedCE",
    "VGG19Features",
    "class_fractions",
    "gram_matrix",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "overlapping_group_sparsity",
]
