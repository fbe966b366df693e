"""Self-supervised super-resolution pairs from the thick-slice volume itself (REHRSeg / SMORE), and the stage-2 crops.

A thick-slice volume has no high-resolution truth, but its in-plane axes are already high-resolution. REHRSeg's
self-SR (public code zhiyuns/REHRSeg, following SMORE) therefore simulates thick slices along an in-plane axis:
slice-profile blur (FWHM ``sqrt(s**2 - 1)`` voxels) and decimation by ``s`` turn ``n_inputs * s`` in-plane rows into
``n_inputs`` "thick slices", and the network learns to give back the ``s`` rows between the middle two. At inference
the same network runs along the real through-plane axis (:class:`common.inferers.SlidingSliceSR`).

Grid convention (as :func:`common.data.degradation.acquire_thick_slices`): thick slice ``k`` covers thin rows
``k*s .. k*s + s - 1`` and is centred at ``k*s + (s - 1)/2``; the rows predicted for the gap between thick slices
``k`` and ``k + 1`` start at :func:`gap_start`, so the predictions of all gaps tile the thin grid without overlap.
"""

from __future__ import annotations

__all__ = [
    "SelfSRPatchesd",
    "SliceSRPairsd",
    "PreUpsampleThinGridd",
    "AcquireThickSlicesd",
    "RandInPlaneCropd",
    "gap_start",
]

import copy
import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
from common.data.degradation import acquire_thick_slices, interpolate_to_thin_slices, thick_slice_affine
from common.flags import as_flag
from common.transforms._meta import affine_of, source_name
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Randomizable
from torch.utils.data import get_worker_info


def gap_start(scale: int, gap: int) -> int:
    """First thin row predicted for the gap between thick slices ``gap`` and ``gap + 1`` (``ceil(gap*s + (s-1)/2)``).

    For ``s = 4`` the gap between thick slices 1 and 2 (centres 5.5 and 9.5) is rows 6..9; for odd ``s`` the gap
    owns its left thick slice's centre row (``s = 3``: rows 4, 5, 6 for centres 4 and 7).
    """
    return math.ceil(gap * scale + (scale - 1) / 2.0)


def _as_array(value: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


class _SelfSupervisedPairsd(Randomizable, MapTransform):
    """What the self-supervised pair makers share: their arguments, the (image, label) volume checked and joined, and
    the random patch centre (a label voxel with probability ``foreground_prob``)."""

    def __init__(
        self,
        image_key: str,
        label_key: str,
        scale: int,
        num_samples: int,
        foreground_prob: float,
        lr_key: str,
        hr_key: str,
        use_label: bool,
    ) -> None:
        MapTransform.__init__(self, [image_key, label_key])
        if int(scale) < 2:
            raise ValueError(f"scale must be an integer >= 2, got {scale!r}.")
        if int(num_samples) < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples!r}.")
        if not 0.0 <= float(foreground_prob) <= 1.0:
            raise ValueError(f"foreground_prob must be in [0, 1], got {foreground_prob!r}.")
        self.image_key, self.label_key = image_key, label_key
        self.scale, self.num_samples = int(scale), int(num_samples)
        self.foreground_prob = float(foreground_prob)
        self.lr_key, self.hr_key = lr_key, hr_key
        self.use_label = as_flag(use_label, "use_label")

    def _volume(self, data: Mapping[Hashable, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        """``(2, X, Y, Z)`` (image, binary label; the label all zeros without ``use_label``) and the label's voxels.

        Raises:
            ValueError: naming the file when the image and label are not single-channel volumes of one shape.
        """
        image = _as_array(data[self.image_key]).astype(np.float32)
        label = (_as_array(data[self.label_key]) > 0.5).astype(np.float32)
        if image.ndim != 4 or image.shape[0] != 1 or label.shape != image.shape:
            raise ValueError(
                f"{source_name(dict(data), self.image_key)}: expected single-channel (1, X, Y, Z) image and label of "
                f"one shape, got {image.shape} and {label.shape}."
            )
        if not self.use_label:
            label = np.zeros_like(label)  # image-only SR: the network never sees the annotation
        return np.concatenate([image, label]), np.argwhere(label[0] > 0)

    def _centre(self, foreground: np.ndarray, shape: Sequence[int]) -> np.ndarray:
        """A patch centre: a random label voxel with probability ``foreground_prob`` (when there is one), else a
        random voxel of ``shape``."""
        if len(foreground) and self.R.rand() < self.foreground_prob:
            return foreground[self.R.randint(len(foreground))]
        return np.array([self.R.randint(n) for n in shape])


class SelfSRPatchesd(_SelfSupervisedPairsd):
    """``num_samples`` self-SR training pairs from one thick-slice (image, label) volume on its thin grid.

    The volume is the thick-slice input interpolated onto the thin grid (:class:`common.transforms.ThinSliceGridd`,
    cubic for the image, nearest for the label: the public code's fallback when its SMORE pre-upsampling stage is
    off). Per sample an in-plane axis ``a`` is drawn; a block of ``n_inputs * scale`` rows along ``a`` and
    ``patch_size`` x ``patch_size`` pixels across it (the other in-plane axis and the through-plane axis) is cut,
    centred on a random label voxel with probability ``foreground_prob`` (the label channel is learnt too), and
    turned into ``lr = acquire_thick_slices(block, a, s)`` (label: the partial-volume majority, ``>= 0.5``) and
    ``hr`` = the ``scale`` rows of the middle gap. Random flips of the two in-slice axes augment it; the row order is
    not flipped, because for odd ``s`` the gap rows are not symmetric about the gap.

    Args:
        image_key, label_key: channel-first single-channel volumes ``(1, X, Y, Z)`` on the thin grid.
        scale: slice-thickness ratio ``s``.
        axis: the spatial through-plane axis (0, 1, 2); the two others are the in-plane axes.
        patch_size: in-slice patch size (pixels); smaller volumes are zero-padded.
        num_samples: pairs per volume.
        n_inputs: thick slices per network input (FLAVR: 4; even).
        foreground_prob: probability that a patch is centred on a label voxel (when the label has any).
        lr_key, hr_key: output keys.
        use_label: ``False`` makes an image-only pair (a SMORE-like SR network): the label channel is all zeros in
            ``lr`` and ``hr``, whatever the label file holds, and every patch is centred at random.

    Returns:
        A list of ``num_samples`` dicts ``{lr_key: (2, n_inputs, P, P), hr_key: (2, scale, P, P)}`` (channels: image,
        binary label), float32.

    Raises:
        ValueError: bad arguments, or a volume too short along an in-plane axis (naming the file).
    """

    def __init__(
        self,
        image_key: str = "image",
        label_key: str = "label",
        scale: int = 4,
        axis: int = 2,
        patch_size: int = 32,
        num_samples: int = 8,
        n_inputs: int = 4,
        foreground_prob: float = 0.5,
        lr_key: str = "lr",
        hr_key: str = "hr",
        use_label: bool = True,
    ) -> None:
        super().__init__(image_key, label_key, scale, num_samples, foreground_prob, lr_key, hr_key, use_label)
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be a spatial axis 0, 1 or 2, got {axis!r}.")
        if int(n_inputs) < 2 or int(n_inputs) % 2:
            raise ValueError(f"n_inputs must be an even integer >= 2, got {n_inputs!r}.")
        if int(patch_size) < 1:
            raise ValueError(f"patch_size must be >= 1, got {patch_size!r}.")
        self.axis, self.n_inputs, self.patch_size = int(axis), int(n_inputs), int(patch_size)
        self.first_row = gap_start(self.scale, self.n_inputs // 2 - 1)

    def _start(self, centre: int, length: int, size: int) -> int:
        return int(np.clip(centre - length // 2, 0, max(size - length, 0)))

    def _block(self, volume: np.ndarray, in_plane: int, centre: np.ndarray) -> np.ndarray:
        """``(2, n*s, P, P)`` block, axes (rows along ``in_plane``, the other in-plane axis, the through-plane axis)."""
        other = 3 - in_plane - self.axis
        order = (in_plane, other, self.axis)
        lengths = (self.n_inputs * self.scale, self.patch_size, self.patch_size)
        moved = np.transpose(volume, (0, *(a + 1 for a in order)))
        slices = []
        for dim, (axis, length) in enumerate(zip(order, lengths)):
            start = self._start(int(centre[axis]), length, moved.shape[dim + 1])
            slices.append(slice(start, start + length))
        block = moved[(slice(None), *slices)]
        pad = [(0, 0)] + [(0, max(length - n, 0)) for length, n in zip(lengths, block.shape[1:])]
        return np.pad(block, pad) if any(p[1] for p in pad) else block

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> list[dict[Hashable, torch.Tensor]]:
        volume, foreground = self._volume(data)
        in_plane_axes = [a for a in range(3) if a != self.axis]
        rows = self.n_inputs * self.scale
        short = [a for a in in_plane_axes if volume.shape[a + 1] < rows]
        if short:
            raise ValueError(
                f"{source_name(dict(data), self.image_key)}: in-plane size {volume.shape[1:]} is below "
                f"n_inputs x scale = {rows} along axis {short}: too small to simulate {self.n_inputs} thick slices."
            )
        samples = []
        for _ in range(self.num_samples):
            in_plane = int(in_plane_axes[self.R.randint(len(in_plane_axes))])
            centre = self._centre(foreground, volume.shape[1:])
            block = self._block(volume, in_plane, centre)
            lr = acquire_thick_slices(block, axis=1, factor=self.scale)
            lr[1] = lr[1] >= 0.5  # the label of a thick slice: its partial-volume majority
            hr = block[:, self.first_row : self.first_row + self.scale]
            for dim in (2, 3):  # flip the in-slice axes only (see the class docstring)
                if self.R.rand() < 0.5:
                    lr, hr = np.flip(lr, dim), np.flip(hr, dim)
            samples.append(
                {
                    self.lr_key: torch.as_tensor(np.ascontiguousarray(lr), dtype=torch.float32),
                    self.hr_key: torch.as_tensor(np.ascontiguousarray(hr), dtype=torch.float32),
                }
            )
        return samples


class SliceSRPairsd(_SelfSupervisedPairsd):
    """``num_samples`` 2D training pairs of the SMORE-style pre-upsampler (REHRSeg's optional stage 1a) from one
    thick-slice (image, label) volume, slices last.

    A thick slice is high-resolution in both its axes. Per sample a slice and one of its two axes ``a`` are drawn, a
    ``patch_size`` x ``patch_size`` patch is cut (centred on a random label voxel with probability
    ``foreground_prob``), and ``a`` is degraded as the real through-plane axis was acquired and then put on the thin
    grid as the self-SR stage puts the thick volume (:class:`common.transforms.ThinSliceGridd`): slice-profile blur
    and decimation by ``scale`` (:func:`common.data.degradation.acquire_thick_slices`; the label's partial-volume
    majority), then cubic interpolation back (the label: nearest, order 0). The target is the patch itself. The
    degraded axis is put last, the position of the thick axis in the planes :class:`PreUpsampleThinGridd` runs the
    network on; random flips of both axes augment.

    Args:
        image_key, label_key: channel-first single-channel thick-slice volumes ``(1, X, Y, Z)``, slices last.
        scale: slice-thickness ratio ``s``.
        patch_size: patch side in pixels, a multiple of ``scale``; smaller slices are zero-padded.
        num_samples: pairs per volume.
        foreground_prob: probability that a patch is centred on a label voxel (when the label has any).
        lr_key, hr_key: output keys.
        use_label: ``False``: the label channel is all zeros in ``lr`` and ``hr`` (an image-only network).

    Returns:
        A list of ``num_samples`` dicts ``{lr_key: (2, P, P), hr_key: (2, P, P)}`` (channels: image, binary label),
        float32, the degraded axis last.

    Raises:
        ValueError: bad arguments, or an image and label of different shapes (naming the file).
    """

    def __init__(
        self,
        image_key: str = "image",
        label_key: str = "label",
        scale: int = 4,
        patch_size: int = 32,
        num_samples: int = 8,
        foreground_prob: float = 0.5,
        lr_key: str = "lr",
        hr_key: str = "hr",
        use_label: bool = True,
    ) -> None:
        super().__init__(image_key, label_key, scale, num_samples, foreground_prob, lr_key, hr_key, use_label)
        if int(patch_size) < self.scale or int(patch_size) % self.scale:
            raise ValueError(f"patch_size must be a positive multiple of scale ({scale}), got {patch_size!r}.")
        self.patch_size = int(patch_size)

    def _patch(self, slab: np.ndarray, centre: np.ndarray) -> np.ndarray:
        """``(2, P, P)`` patch of the ``(2, X, Y)`` slice ``slab`` around ``centre``, zero-padded where it is small."""
        size = self.patch_size
        starts = [int(np.clip(c - size // 2, 0, max(n - size, 0))) for c, n in zip(centre, slab.shape[1:])]
        patch = slab[:, starts[0] : starts[0] + size, starts[1] : starts[1] + size]
        pad = [(0, 0)] + [(0, size - n) for n in patch.shape[1:]]
        return np.pad(patch, pad) if any(p[1] for p in pad) else patch

    def degrade(self, patch: np.ndarray) -> np.ndarray:
        """The network's input for a ``(2, P, P)`` target whose last axis stands for the thick one: that axis
        acquired in thick slices and interpolated back onto the thin grid (image cubic, label nearest)."""
        thick = acquire_thick_slices(patch, axis=2, factor=self.scale)
        image = interpolate_to_thin_slices(thick[:1], axis=2, factor=self.scale, order=3)
        label = interpolate_to_thin_slices((thick[1:] >= 0.5).astype(np.float32), 2, self.scale, order=0)
        return np.concatenate([image, label]).astype(np.float32)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> list[dict[Hashable, torch.Tensor]]:
        volume, foreground = self._volume(data)
        samples = []
        for _ in range(self.num_samples):
            centre = self._centre(foreground, volume.shape[1:])
            patch = self._patch(volume[..., int(centre[2])], centre[:2])
            if self.R.rand() < 0.5:  # degrade the slice's first axis instead of its second: move it last
                patch = np.swapaxes(patch, 1, 2)
            for dim in (1, 2):
                if self.R.rand() < 0.5:
                    patch = np.flip(patch, dim)
            patch = np.ascontiguousarray(patch)
            samples.append(
                {
                    self.lr_key: torch.as_tensor(self.degrade(patch), dtype=torch.float32),
                    self.hr_key: torch.as_tensor(patch, dtype=torch.float32),
                }
            )
        return samples


class PreUpsampleThinGridd(MapTransform):
    """REHRSeg's optional stage 1a applied: a thick (image, label) volume already interpolated onto its thin grid
    (:class:`common.transforms.ThinSliceGridd`, slices last) refined by the SMORE-style 2D network, plane by plane.

    The network (:class:`common.nets.SMOREPreUpsampler`, trained on :class:`SliceSRPairsd`'s pairs) runs on every
    plane that contains the through-plane axis, in both orientations (the x-z planes and the y-z planes, the thick
    axis last as in training); the two images are averaged and so are the two label probabilities (SMORE combines
    its orientations too). The self-SR stages then cut their pairs from this volume instead of the cubic zoom. With
    ``network=None`` (``sr_initialization: "cubic"``) the data pass unchanged.

    The network stays on the CPU as given; in the main process it runs on a copy on ``device`` (made once), in a data
    loader worker on the CPU one: a forked worker cannot use CUDA (the training configs cache the volumes in the main
    process, ``cache_rate`` 1; a smaller one with ``num_workers`` > 0 runs this in the workers).

    Args:
        image_key, label_key: ``(1, X, Y, Z)`` thin-grid image and label (nearest-interpolated, 0/1).
        network: the trained pre-upsampler on the CPU (eval mode is set here), or ``None``.
        planes_per_batch: planes per forward pass (memory).
        device: where the main process runs it (e.g. the training's GPU).
    """

    def __init__(
        self,
        image_key: str = "image",
        label_key: str = "label",
        network: torch.nn.Module | None = None,
        planes_per_batch: int = 16,
        device: str | torch.device = "cpu",
    ) -> None:
        MapTransform.__init__(self, [image_key, label_key])
        if int(planes_per_batch) < 1:
            raise ValueError(f"planes_per_batch must be >= 1, got {planes_per_batch!r}.")
        self.image_key, self.label_key = image_key, label_key
        self.network, self.planes_per_batch = network, int(planes_per_batch)
        self.device = torch.device(device)
        self._on_device: torch.nn.Module | None = None

    def _network_here(self) -> torch.nn.Module:
        """The CPU network in a loader worker or when ``device`` is the CPU, else its copy on ``device``."""
        if self.device.type == "cpu" or get_worker_info() is not None:
            return self.network.eval()
        if self._on_device is None:
            self._on_device = copy.deepcopy(self.network).to(self.device).eval()
        return self._on_device

    @torch.no_grad()
    def _planes(self, planes: torch.Tensor) -> torch.Tensor:
        """``(N, 2, H, Z)`` planes -> ``(N, 2, H, Z)`` (image, label probability)."""
        network = self._network_here()
        device = next(network.parameters()).device
        outputs = []
        for start in range(0, planes.shape[0], self.planes_per_batch):
            out = network(planes[start : start + self.planes_per_batch].to(device)).float().cpu()
            outputs.append(torch.cat([out[:, :1], torch.sigmoid(out[:, 1:2])], dim=1))
        return torch.cat(outputs)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if self.network is None:
            return d
        image, label = d[self.image_key], d[self.label_key]
        if image.ndim != 4 or image.shape[0] != 1 or tuple(label.shape) != tuple(image.shape):
            raise ValueError(
                f"{source_name(d, self.image_key)}: expected single-channel (1, X, Y, Z) image and label of one "
                f"shape, got {tuple(image.shape)} and {tuple(label.shape)}."
            )
        volume = torch.cat([torch.as_tensor(image), torch.as_tensor(label)]).float()  # (2, X, Y, Z)
        along_x = self._planes(volume.permute(2, 0, 1, 3)).permute(1, 2, 0, 3)  # the x-z planes, one per y
        along_y = self._planes(volume.permute(1, 0, 2, 3)).permute(1, 0, 2, 3)  # the y-z planes, one per x
        refined = 0.5 * (along_x + along_y)
        for index, key in enumerate((self.image_key, self.label_key)):
            value = refined[index : index + 1].to(dtype=torch.float32)
            d[key] = MetaTensor(value, meta=d[key].meta) if isinstance(d[key], MetaTensor) else value
        return d


def _majority_thick_slices(labels: np.ndarray, axis: int, factor: int) -> np.ndarray:
    """Thick slices of a class-label volume: per thick voxel the class whose slice-profile-weighted share is largest
    (for a binary label: the weighted mean ``>= 0.5``, ties to the foreground)."""
    n_classes = int(labels.max()) + 1 if labels.size else 1
    if n_classes <= 2:  # binary: the foreground's share alone, without argmax's tie to the lower class
        return (acquire_thick_slices((labels == 1).astype(np.float32), axis, factor) >= 0.5).astype(np.float32)
    shares = np.stack([acquire_thick_slices((labels == c).astype(np.float32), axis, factor) for c in range(n_classes)])
    return np.argmax(shares, axis=0).astype(np.float32)


class AcquireThickSlicesd(MapTransform):
    """Thick slices of thin-grid volumes (:func:`common.data.degradation.acquire_thick_slices`), with their affine.

    REHRSeg's stage-2 LR input is made from the pseudo-HR image by a through-plane slice-profile blur and decimation
    (the public code blurs an in-plane axis instead and then takes every ``s``-th slice: the wrong axis); the
    uncertainty map goes to the LR grid the same way (its slice-profile-weighted mean over each thick slice).

    Args:
        keys: channel-first volumes ``(C, X, Y, Z)`` on the thin grid (the through-plane size a multiple of ``factor``).
        factor: slice-thickness ratio ``s``.
        axis: spatial through-plane axis.
        output_keys: where to write each result (default: in place).
        label_keys: which of ``keys`` hold class labels: a thick voxel takes the class with the largest
            slice-profile-weighted share (the partial-volume majority), not the weighted mean of the class values.
    """

    def __init__(
        self,
        keys: KeysCollection,
        factor: int,
        axis: int = 2,
        output_keys: Sequence[str] | str | None = None,
        label_keys: KeysCollection = (),
    ) -> None:
        super().__init__(keys)
        self.label_keys = {label_keys} if isinstance(label_keys, str) else set(label_keys)
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be a spatial axis 0, 1 or 2, got {axis!r}.")
        self.factor, self.axis = int(factor), int(axis)
        outputs = [output_keys] if isinstance(output_keys, str) else output_keys
        self.output_keys = list(self.keys) if outputs is None else list(outputs)
        if len(self.output_keys) != len(self.keys):
            raise ValueError(f"output_keys {self.output_keys} must match keys {list(self.keys)} one to one.")

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key, out in zip(self.keys, self.output_keys):
            value = d[key]
            array = _as_array(value).astype(np.float32)
            if array.ndim != 4 or array.shape[self.axis + 1] % self.factor:
                raise ValueError(
                    f"{source_name(d, key)}: expected (C, X, Y, Z) with a multiple of {self.factor} slices along "
                    f"axis {self.axis}, got {array.shape}."
                )
            if key in self.label_keys:
                thick = _majority_thick_slices(array, self.axis + 1, self.factor)
            else:
                thick = acquire_thick_slices(array, self.axis + 1, self.factor)
            affine = thick_slice_affine(affine_of(value).numpy(), self.axis, self.factor)
            meta = dict(value.meta) if isinstance(value, MetaTensor) else {}
            meta["affine"] = torch.as_tensor(affine)
            d[out] = MetaTensor(torch.as_tensor(thick), meta=meta)
        return d


class RandInPlaneCropd(Randomizable, MapTransform):
    """One random in-plane crop, the same for volumes of different through-plane sizes (LR and HR grids).

    MONAI's spatial crops take one box for all keys, which cannot serve an LR volume with ``Z`` slices and its HR
    label with ``s * Z`` slices at once; this crop leaves the through-plane axis whole and cuts the same in-plane
    window from every key, centred on a foreground voxel of ``foreground_key`` with probability ``foreground_prob``.
    Volumes smaller than ``roi_size`` in-plane are zero-padded at the end. With ``slice_multiple`` > 1 the
    through-plane axis is cut too, to the largest multiple of it, at a random start (a network whose strides need it:
    a real stack has any number of slices); a key with ``k`` times the slices of the thinnest-sliced key (the HR grid)
    is cut at ``k`` times the start and length, so LR and HR stay aligned.

    Args:
        keys: channel-first volumes ``(C, X, Y, Z)`` with equal in-plane sizes.
        roi_size: in-plane crop size (two ints, in the order of the in-plane axes).
        axis: spatial through-plane axis (not cropped unless ``slice_multiple`` > 1).
        foreground_key: a label whose voxels > 0 can centre the crop (through-plane index ignored).
        foreground_prob: probability of a foreground-centred crop.
        slice_multiple: the through-plane size (of the key with the fewest slices) is cut to a multiple of this.

    Raises:
        ValueError: naming the file, for in-plane sizes that differ, through-plane sizes that are not multiples of
            the smallest, or fewer slices than ``slice_multiple``.
    """

    def __init__(
        self,
        keys: KeysCollection,
        roi_size: Sequence[int],
        axis: int = 2,
        foreground_key: str | None = None,
        foreground_prob: float = 0.5,
        slice_multiple: int = 1,
    ) -> None:
        MapTransform.__init__(self, keys)
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be a spatial axis 0, 1 or 2, got {axis!r}.")
        if len(roi_size) != 2 or min(int(r) for r in roi_size) < 1:
            raise ValueError(f"roi_size must be two positive in-plane sizes, got {roi_size!r}.")
        self.roi_size, self.axis = [int(r) for r in roi_size], int(axis)
        self.foreground_key, self.foreground_prob = foreground_key, float(foreground_prob)
        if int(slice_multiple) < 1:
            raise ValueError(f"slice_multiple must be a positive integer, got {slice_multiple!r}.")
        self.slice_multiple = int(slice_multiple)

    def _slice_window(self, d: Mapping[Hashable, torch.Tensor]) -> tuple[int, int, int]:
        """``(start, length, fewest)`` on the fewest-sliced grid (``fewest`` slices): the through-plane cut (the whole
        axis for ``slice_multiple`` 1)."""
        counts = {key: int(d[key].shape[self.axis + 1]) for key in self.keys}
        fewest = min(counts.values())
        for key, count in counts.items():
            if count % fewest:
                raise ValueError(
                    f"{source_name(d, key)}: {count} slices, not a multiple of the {fewest} of the thinnest-sliced key."
                )
        length = fewest - fewest % self.slice_multiple
        if length == 0:
            key = min(counts, key=counts.get)
            raise ValueError(
                f"{source_name(d, key)}: {fewest} slice(s) along axis {self.axis}; the network needs a multiple of "
                f"{self.slice_multiple} (at least {self.slice_multiple})."
            )
        return (self.R.randint(fewest - length + 1) if length < fewest else 0), length, fewest

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        in_plane = [a for a in range(3) if a != self.axis]
        first = d[self.keys[0]]
        sizes = [first.shape[a + 1] for a in in_plane]
        for key in self.keys:
            if [d[key].shape[a + 1] for a in in_plane] != sizes:
                raise ValueError(f"{source_name(d, key)}: in-plane size differs from {self.keys[0]}'s {sizes}.")
        centre = [self.R.randint(n) for n in sizes]
        if self.foreground_key is not None and self.R.rand() < self.foreground_prob:
            label = torch.as_tensor(d[self.foreground_key]).amax(dim=(0, self.axis + 1))
            voxels = torch.nonzero(label > 0)
            if len(voxels):
                centre = voxels[self.R.randint(len(voxels))].tolist()
        starts = [int(np.clip(c - r // 2, 0, max(n - r, 0))) for c, r, n in zip(centre, self.roi_size, sizes)]
        slice_start, slice_length, fewest = self._slice_window(d)
        for key in self.keys:
            value = d[key]
            index: list[slice] = [slice(None)] * 4
            for a, start, r in zip(in_plane, starts, self.roi_size):
                index[a + 1] = slice(start, start + r)
            if slice_length < fewest:
                k = int(value.shape[self.axis + 1]) // fewest  # 1 on the LR grid, the slice factor on the HR grid
                index[self.axis + 1] = slice(k * slice_start, k * (slice_start + slice_length))
            cropped = value[tuple(index)]
            pad = [0] * 6  # torch.nn.functional.pad: (left, right) pairs from the last axis backwards
            for a, r in zip(in_plane, self.roi_size):
                pad[2 * (2 - a) + 1] = max(r - cropped.shape[a + 1], 0)
            if any(pad):
                cropped = torch.nn.functional.pad(torch.as_tensor(cropped), pad)
            d[key] = cropped
        return d
