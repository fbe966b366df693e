"""The heart mask of a stack from a localisation network, slice by slice: what :class:`HeartCropd` centres on."""

from __future__ import annotations

__all__ = ["LocaliseHeartd"]

from collections.abc import Hashable, Mapping, Sequence

import torch
from common.class_maps import class_index
from common.transforms._meta import source_name
from monai.data import MetaTensor
from monai.inferers import SliceInferer
from monai.transforms import MapTransform, ScaleIntensityRangePercentiles


class LocaliseHeartd(MapTransform):
    """Run a heart-localisation network over every slice of a volume and store its foreground mask.

    Chen, Ouyang et al. (STACOM 2019), section 3.2: a U-Net with instance normalisation, trained on the labelled
    bSSFP images, gives coarse masks of the three structures on bSSFP and most LGE slices; the crop is centred on the
    mask summed over the volume's slices (:func:`common.transforms.heart_crop.heart_centre`), so a slice where the
    network misses the heart still gets the volume's box. The network sees the whole resampled slice, scaled per
    volume to ``[0, 1]`` between the ``percentiles`` (as it was trained); the image itself is not changed.

    Args:
        keys: the image (channel-first volume ``(1, H, W, D)`` at the localiser's spacing, e.g. after
            ``ToModelGridd(pixdim=(1.25, 1.25))``).
        network: the localisation network, ``(B, 1, h, w) -> (B, C, h, w)`` class logits (background channel 0);
            put in eval mode here.
        weights: its trained weights (``models/localiser.pt``), loaded at the first call, not when the config is
            read (so ``check_properties()`` and a config check work before any training); ``None``: ``network``
            already holds them.
        weights_hint: how to produce a missing ``weights`` file (the error says it).
        mask_key: where the mask goes: ``(1, H, W, D)`` float 0/1, the image's affine and metadata.
        roi_size: the window the network takes (sliding windows with zero padding cover any slice size).
        sw_batch_size: windows per forward pass.
        percentiles: per-volume intensity scaling of the network's input.
        device: where the network runs (default: its parameters' device).

    Raises:
        ValueError: the image is not a channel-first volume (the file is named).

    Examples::

        {"_target_": "common.transforms.LocaliseHeartd", "keys": "image", "network": "@localiser_def",
         "weights": "@localiser_weights", "mask_key": "heart_mask", "roi_size": [192, 192], "device": "@device"}
    """

    def __init__(
        self,
        keys: str,
        network: torch.nn.Module,
        weights: str | None = None,
        weights_hint: str = "train the heart localiser first (configs/train_localiser.json)",
        mask_key: str = "heart_mask",
        roi_size: Sequence[int] = (192, 192),
        sw_batch_size: int = 8,
        percentiles: Sequence[float] = (1.0, 99.0),
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(keys)
        self.network = network.eval()
        self.weights = weights
        self.weights_hint = weights_hint
        self._loaded = False
        self.mask_key = mask_key
        self.inferer = SliceInferer(roi_size=tuple(roi_size), sw_batch_size=sw_batch_size, spatial_dim=2)
        self.scale = ScaleIntensityRangePercentiles(
            lower=percentiles[0], upper=percentiles[1], b_min=0.0, b_max=1.0, clip=True
        )
        self.device = device

    def load(self) -> torch.nn.Module:
        """Load ``weights`` into the network and move it to ``device``, once (``FileNotFoundError`` with
        ``weights_hint`` when the weights file is missing)."""
        if not self._loaded:
            if self.weights is not None:
                from common.checkpoint import load_weights, require_weights

                load_weights(self.network, require_weights(self.weights, self.weights_hint))
            if self.device is not None:
                self.network.to(self.device)
            self.network.eval()
            self._loaded = True
        return self.network

    @torch.no_grad()
    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            if getattr(image, "ndim", 0) != 4:
                raise ValueError(
                    f"{source_name(d, key)}: '{key}' must be a channel-first volume (C, H, W, D) for the heart "
                    f"localiser, got shape {tuple(getattr(image, 'shape', ()))}; add common.transforms.AsVolumed."
                )
            values = image.as_tensor() if isinstance(image, MetaTensor) else torch.as_tensor(image)
            network = self.load()
            device = next(network.parameters()).device
            scaled = torch.as_tensor(self.scale(values[:1].float()), device=device)
            logits = self.inferer(scaled[None], network)  # (1, C, H, W, D)
            mask = (class_index(logits, keepdim=False) != 0).to(torch.float32).cpu()  # (1, H, W, D)
            meta = {k: v for k, v in image.meta.items() if k != "affine"} if isinstance(image, MetaTensor) else {}
            d[self.mask_key] = MetaTensor(mask, affine=getattr(image, "affine", None), meta=meta)
        return d
