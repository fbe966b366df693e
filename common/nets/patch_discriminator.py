"""CycleGAN's 70x70 PatchGAN, built from MONAI's ``PatchDiscriminator`` (no own copy)."""

from __future__ import annotations

from monai.networks.nets import PatchDiscriminator

__all__ = ["patchgan_70"]


def patchgan_70(spatial_dims: int = 2, in_channels: int = 1, channels: int = 64) -> PatchDiscriminator:
    """CycleGAN's 70x70 PatchGAN discriminator (``NLayerDiscriminator(n_layers=3, norm="instance")``).

    Zhu et al., "Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks" (ICCV 2017),
    appendix 7.2; the discriminator of CycleGANSeg (Wang et al., section II.A). MONAI's
    ``PatchDiscriminator(num_layers_d=3, norm="INSTANCE")`` has the same layers (4x4 convs with strides
    2, 2, 2, 1, 1, channels ``channels * (1, 2, 4, 8)`` then 1, LeakyReLU 0.2, InstanceNorm without affine
    parameters after all but the first and last conv, receptive field 70x70). This factory adds what the MONAI
    defaults miss: a bias in every conv (CycleGAN sets ``use_bias`` with instance norm), so the parameter count is
    the reference's (2,762,689 for one input channel). MONAI initialises the weights with ``N(0, 0.02)``.

    Shapes: ``(B, in_channels, H, W)`` -> a list of 5 maps (4 intermediate features, then the logits ``[-1]``).
    Logit map: ``(B, 1, H/8 - 2, W/8 - 2)``: 30x30 for 256x256 (CycleGAN), **6x6 for the paper's 64x64 images**
    (each logit's 70x70 receptive field then covers nearly the whole image, partly zero padding). Logits are raw:
    use ``monai.losses.PatchAdversarialLoss(criterion="least_squares", no_activation_leastsq=True)`` (LSGAN).

    Args:
        spatial_dims: 2 (the paper) or 3.
        in_channels: input channels.
        channels: filters of the first conv (``ndf``, 64).

    Returns:
        the ``monai.networks.nets.PatchDiscriminator``.

    Raises:
        ValueError: naming the offending argument.

    Examples::

        >>> patchgan_70()(torch.zeros(1, 1, 64, 64))[-1].shape
        torch.Size([1, 1, 6, 6])
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
    for name, value in (("in_channels", in_channels), ("channels", channels)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return PatchDiscriminator(
        spatial_dims=spatial_dims,
        channels=channels,
        in_channels=in_channels,
        out_channels=1,
        num_layers_d=3,
        kernel_size=4,
        norm="INSTANCE",
        bias=True,
        padding=1,
    )
