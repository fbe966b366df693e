"""REHRSeg's optional SMORE-style stage 1a: its 2D training pairs (``SliceSRPairsd``) and the pre-upsampling of a
thin-grid volume plane by plane (``PreUpsampleThinGridd``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from common.data.degradation import acquire_thick_slices, interpolate_to_thin_slices
from common.nets import SMOREPreUpsampler
from common.transforms import PreUpsampleThinGridd, SliceSRPairsd
from torch import nn


def _volume(shape=(40, 36, 10), along: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth image varying along spatial axis ``along`` only, and a central blob label."""
    coords = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    image = np.sin(coords[along] / 3.0)[None]
    centre = [n / 2 for n in shape]
    label = (sum((c - m) ** 2 for c, m in zip(coords, centre)) < 36).astype(np.float32)[None]
    return torch.as_tensor(image), torch.as_tensor(label)


def test_pairs_degrade_the_last_axis_of_a_slice_patch_as_the_thick_axis_is_acquired():
    image, label = _volume(along=0)  # varies along x, constant along y and z
    transform = SliceSRPairsd(scale=4, patch_size=16, num_samples=24, foreground_prob=0.0)
    transform.set_random_state(0)
    kept = changed = 0
    for sample in transform({"image": image, "label": label}):
        lr, hr = sample["lr"].numpy(), sample["hr"].numpy()
        assert lr.shape == hr.shape == (2, 16, 16) and set(np.unique(hr[1])) <= {0.0, 1.0}
        np.testing.assert_array_equal(lr, transform.degrade(hr))
        if np.ptp(hr[0], axis=0).max() > 0.1:  # x along the rows: the degraded last axis is constant, lr = hr
            np.testing.assert_allclose(lr[0], hr[0], atol=1e-5)
            kept += 1
        else:  # x along the last axis: blurred and decimated there
            assert np.abs(lr[0] - hr[0]).max() > 0.05
            changed += 1
    assert kept and changed  # both of a slice's axes are degraded, each put last


def test_degrade_is_the_thick_acquisition_of_the_last_axis_then_the_thin_grid():
    rng = np.random.default_rng(0)
    patch = np.stack([rng.random((12, 16)), (rng.random((12, 16)) > 0.5)]).astype(np.float32)
    thick = acquire_thick_slices(patch, axis=2, factor=4)
    expected_image = interpolate_to_thin_slices(thick[:1], axis=2, factor=4, order=3)
    expected_label = np.repeat(thick[1:] >= 0.5, 4, axis=2)  # nearest on the thin grid: each thick slice 4 times
    got = SliceSRPairsd(scale=4, patch_size=16).degrade(patch)
    np.testing.assert_allclose(got[:1], expected_image, atol=1e-6)
    np.testing.assert_array_equal(got[1:], expected_label)


def test_pairs_are_patches_of_one_thick_slice_and_foreground_patches_hold_the_label():
    shape = (40, 36, 10)
    x, y, z = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    image = torch.as_tensor((x * 10000 + y * 100 + z).astype(np.float32)[None])
    _, label = _volume(shape)
    transform = SliceSRPairsd(scale=4, patch_size=16, num_samples=12, foreground_prob=1.0)
    transform.set_random_state(1)
    for sample in transform({"image": image, "label": label}):
        hr = sample["hr"].numpy()
        assert len(np.unique(hr[0] % 100)) == 1  # one slice: a single z
        assert len(np.unique(hr[0] // 10000)) == 16 and len(np.unique(hr[0] // 100 % 100)) == 16  # 16 x and 16 y
        assert hr[1].any()


def test_pairs_without_the_label_and_bad_arguments():
    image, label = _volume()
    transform = SliceSRPairsd(scale=4, patch_size=16, num_samples=4, foreground_prob=1.0, use_label=False)
    for sample in transform({"image": image, "label": label}):
        assert not sample["lr"][1].any() and not sample["hr"][1].any()
    with pytest.raises(ValueError, match="multiple of scale"):
        SliceSRPairsd(scale=4, patch_size=18)
    with pytest.raises(ValueError, match="one shape"):
        SliceSRPairsd(scale=4, patch_size=16)({"image": image, "label": label[:, :20]})


class _Recording(nn.Module):
    """Doubles the image, gives label logit 0, and records the planes' shapes."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return torch.cat([2.0 * x[:, :1], torch.zeros_like(x[:, 1:])], dim=1)


class _FlipLast(nn.Module):
    """Reverses each plane along its last (thick) axis, or its first."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.weight, self.dim = nn.Parameter(torch.zeros(())), dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flipped = torch.flip(x, dims=[self.dim])
        return torch.cat([flipped[:, :1], 8.0 * flipped[:, 1:] - 4.0], dim=1)  # label 1 -> logit 4, 0 -> -4


def _thin(shape=(6, 5, 8)) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {"image": torch.rand((1, *shape), generator=generator), "label": (torch.rand((1, *shape)) > 0.5).float()}


def test_pre_upsampling_runs_on_the_x_z_and_y_z_planes_with_the_thick_axis_last_and_averages_them():
    data, network = _thin(), _Recording()
    out = PreUpsampleThinGridd(network=network, planes_per_batch=4)(data)
    # 5 x-z planes (6 x 8) in batches of 4, then 6 y-z planes (5 x 8)
    assert network.shapes == [(4, 2, 6, 8), (1, 2, 6, 8), (4, 2, 5, 8), (2, 2, 5, 8)]
    torch.testing.assert_close(out["image"], 2.0 * data["image"])
    torch.testing.assert_close(out["label"], torch.full_like(data["label"], 0.5))  # sigmoid(0)


def test_pre_upsampling_puts_each_plane_back_where_it_came_from():
    data = _thin()
    out = PreUpsampleThinGridd(network=_FlipLast(-1))(data)  # both orientations reverse z
    torch.testing.assert_close(out["image"], torch.flip(data["image"], dims=[3]))
    expected = torch.sigmoid(8.0 * torch.flip(data["label"], dims=[3]) - 4.0)
    torch.testing.assert_close(out["label"], expected)
    out = PreUpsampleThinGridd(network=_FlipLast(-2))(data)  # x in the x-z planes, y in the y-z planes
    torch.testing.assert_close(out["image"], 0.5 * (torch.flip(data["image"], [1]) + torch.flip(data["image"], [2])))


def test_no_network_passes_the_cubic_zoom_and_a_fresh_network_returns_it():
    data = _thin()
    assert PreUpsampleThinGridd(network=None)(data) == data
    out = PreUpsampleThinGridd(network=SMOREPreUpsampler(channels=4, num_blocks=1))(data)
    torch.testing.assert_close(out["image"], data["image"])  # the last convolution starts at zero
    torch.testing.assert_close(out["label"], torch.sigmoid(8.0 * data["label"] - 4.0))
    with pytest.raises(ValueError, match="one shape"):
        PreUpsampleThinGridd(network=_Recording())({"image": data["image"], "label": data["label"][:, :3]})


def test_the_main_process_runs_a_copy_on_the_device_and_a_loader_worker_the_cpu_network(monkeypatch):
    """A forked data-loader worker cannot use CUDA: there the CPU network runs; in the main process its copy on
    ``device`` (a "meta" device stands for the GPU here: a forward there gives no values, so using it fails)."""
    import common.transforms.self_sr as self_sr

    data, network = _thin(), _Recording()
    step = PreUpsampleThinGridd(network=network, device="meta")
    monkeypatch.setattr(self_sr, "get_worker_info", lambda: object())  # inside a worker
    torch.testing.assert_close(step(data)["image"], 2.0 * data["image"])
    assert step._on_device is None and next(network.parameters()).device.type == "cpu"
    monkeypatch.setattr(self_sr, "get_worker_info", lambda: None)  # the main process
    with pytest.raises(Exception):
        step(data)
    assert next(step._on_device.parameters()).device.type == "meta"
    assert next(network.parameters()).device.type == "cpu"  # the CPU network itself never moves
