"""The REHRSeg folder inference's optional SR image and uncertainty map (``scripts/sr_outputs.py``).

The self-SR networks take an (image, label) pair; a new volume has no label, so the segmenter's own LR prediction
stands in for it. Small random networks: what is checked is the wiring (which network gets which input, which
channel is returned), not accuracy (``test_bundle_rehrseg_workflow.py`` runs it on trained ones). Also: the training
transforms read the segmenter's divisor from its strides without building it (bundle 0.2.4 built it early, which
moved its random initialisation and changed every stage-2 training).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from bundle_test_utils import bundle_scripts
from common.inferers import SlidingSliceSR, ThickSliceSegInferer
from common.nets import FLAVRSelfSR

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "thick_slice_hr_segmentation_rehrseg"
SCALE = 4


class TwoHeadStub(torch.nn.Module):
    """A segmenter with an LR and an HR head: foreground where the input is above 0.5 (LR), its repetition (HR)."""

    def forward_lr(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([0.5 - x, x - 0.5], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_lr(x).repeat_interleave(SCALE, -1)


def _sr_networks(seed: int, folder: Path | None = None) -> dict[str, FLAVRSelfSR]:
    """Plain and UASR self-SR networks with random weights (``seed``), saved to ``folder`` when given."""
    torch.manual_seed(seed)
    made = {}
    for head in ("plain", "uasr"):
        net = FLAVRSelfSR(in_channels=2, scale=SCALE, widths=(4, 4, 8, 8, 8), blocks=1, head=head, n_branches=2)
        for parameter in net.parameters():  # away from the zero-initialised last conv: outputs depend on the input
            torch.nn.init.normal_(parameter, std=0.1)
        if folder is not None:
            torch.save(net.state_dict(), folder / f"{head}.pt")
        made[head] = net.eval()
    return made


def _inferer(tmp_path: Path, **kwargs):
    with bundle_scripts(BUNDLE):
        from scripts.sr_outputs import HRSegWithSRInferer

        return HRSegWithSRInferer(divisor=(8, 8, 2), scale=SCALE, **kwargs)


def test_without_sr_networks_it_is_the_hr_head_alone(tmp_path):
    x = torch.rand(1, 1, 16, 16, 6)
    with torch.no_grad():
        expected = ThickSliceSegInferer((8, 8, 2), scale=SCALE)(x, TwoHeadStub())
        got = _inferer(tmp_path)(x, TwoHeadStub())
    assert torch.equal(got, expected) and got.shape == (1, 2, 16, 16, 6 * SCALE)


def test_the_sr_channels_are_the_plain_image_and_the_uasr_uncertainty_of_the_predicted_label(tmp_path):
    nets = _sr_networks(0, tmp_path)
    fresh = _sr_networks(1)  # other random weights, replaced by the saved ones when the inferer loads them
    inferer = _inferer(
        tmp_path,
        sr_network=fresh["plain"],
        uasr_network=fresh["uasr"],
        sr_weights=str(tmp_path / "plain.pt"),
        uasr_weights=str(tmp_path / "uasr.pt"),
        windows_per_batch=3,
    )
    x = torch.rand(1, 1, 16, 16, 6)
    with torch.no_grad():
        out = inferer(x, TwoHeadStub())
        hr = ThickSliceSegInferer((8, 8, 2), scale=SCALE)(x, TwoHeadStub())
        pair = torch.cat([x, (x > 0.5).float()], 1)  # the stub's LR foreground as the label channel
        sliding = SlidingSliceSR(SCALE, 4, 2, divisor=nets["plain"].spatial_divisor)
        image, u = sliding(pair, nets["plain"])[:, :1], sliding(pair, nets["uasr"])[:, 2:3]
        zero_label = sliding(torch.cat([x, torch.zeros_like(x)], 1), nets["plain"])[:, :1]
    assert out.shape == (1, 4, 16, 16, 6 * SCALE)
    torch.testing.assert_close(out[:, :2], hr)
    torch.testing.assert_close(out[:, 2:3], image)
    torch.testing.assert_close(out[:, 3:4], u.clamp(0, 1))
    assert 0 <= float(out[:, 3].min()) and float(out[:, 3].max()) <= 1 and float(out[:, 3].std()) > 0
    assert not torch.allclose(image, zero_label)  # the label channel matters: the prediction reached it


def test_missing_weights_and_half_a_pair_are_refused(tmp_path):
    nets = _sr_networks(0, tmp_path)
    with pytest.raises(FileNotFoundError, match="no_such.pt"):
        _inferer(
            tmp_path,
            sr_network=nets["plain"],
            uasr_network=nets["uasr"],
            sr_weights=str(tmp_path / "no_such.pt"),
            uasr_weights=str(tmp_path / "uasr.pt"),
            hint="train_sr.json first",
        )
    with pytest.raises(ValueError, match="both SR networks"):
        _inferer(tmp_path, sr_network=nets["plain"], sr_weights=str(tmp_path / "plain.pt"))


@pytest.mark.parametrize("files", [["train.json"], ["train.json", "lr_baseline.json"]])
def test_the_training_transforms_do_not_build_the_segmenter(files):
    """The crop's slice multiple comes from the strides: a transform that read ``@network_def`` built the segmenter
    (its random weight initialisation) before the trainer's data loader drew its seed, which changed every stage-2
    training in bundle 0.2.4."""
    from common.nets import HRSegUNet
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(BUNDLE / "configs" / name) for name in files])
    with bundle_scripts(BUNDLE):
        transforms = parser.get_parsed_content("train#preprocessing")
    assert "network_def" not in parser.ref_resolver.resolved_content
    (crop,) = [t for t in transforms.transforms if type(t).__name__ == "RandInPlaneCropd"]
    strides = parser.get_parsed_content("seg_strides")
    assert crop.slice_multiple == HRSegUNet(strides=strides).divisor[2] == HRSegUNet.divisor_of(strides)[2] == 2
