"""ProbabilityEnsemble (mean of the members' probabilities as logits) and LocalisedNetwork (one weights file)."""

from __future__ import annotations

import pytest
import torch
from common.nets import CascadedUNet, LocalisedNetwork, ProbabilityEnsemble


class _Constant(torch.nn.Module):
    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.tensor(logits))

    def forward(self, x):
        return self.logits[None, :, None, None].expand(x.shape[0], -1, *x.shape[2:])


def test_softmax_of_the_output_is_the_mean_of_the_members_probabilities():
    a, b = _Constant([0.0, 2.0]), _Constant([1.0, -1.0])
    x = torch.zeros(2, 1, 3, 3)
    expected = (torch.softmax(a(x), 1) + torch.softmax(b(x), 1)) / 2
    torch.testing.assert_close(torch.softmax(ProbabilityEnsemble([a, b])(x), 1), expected)
    # by hand: p1 = (sigmoid(2) + sigmoid(-2)) / 2 = 0.5 for these two members
    assert torch.softmax(ProbabilityEnsemble([a, b])(x), 1)[0, 1, 0, 0].item() == pytest.approx(0.5)
    # members that are not mirror images: the mean of probabilities, (sigmoid(2) + 1/2) / 2 = 0.6904, is not the
    # softmax of the mean logits, sigmoid(1) = 0.7311
    p1 = torch.softmax(ProbabilityEnsemble([a, _Constant([0.0, 0.0])])(x), 1)[0, 1, 0, 0].item()
    assert p1 == pytest.approx((torch.sigmoid(torch.tensor(2.0)).item() + 0.5) / 2) and p1 == pytest.approx(
        0.6904, abs=1e-4
    )
    with pytest.raises(ValueError, match="at least one member"):
        ProbabilityEnsemble([])


def test_from_weights_loads_one_copy_per_file(tmp_path):
    torch.manual_seed(0)
    template = CascadedUNet(features=(4, 8), stage=2).eval()
    paths = []
    for k in range(2):
        member = CascadedUNet(features=(4, 8), stage=2)
        paths.append(str(tmp_path / f"m{k}.pt"))
        torch.save(member.state_dict(), paths[-1])
    ensemble = ProbabilityEnsemble.from_weights(template, paths).eval()
    assert ensemble.members[0] is not ensemble.members[1] and ensemble.members[0] is not template
    for member, path in zip(ensemble.members, paths):
        for key, value in torch.load(path).items():
            torch.testing.assert_close(member.state_dict()[key], value)


def test_localised_network_runs_the_segmenter_and_saves_both():
    segmenter, localiser = CascadedUNet(features=(4, 8), stage=2).eval(), torch.nn.Conv2d(1, 4, 1)
    network = LocalisedNetwork(segmenter, localiser).eval()
    x = torch.rand(1, 1, 16, 16)
    torch.testing.assert_close(network(x), segmenter(x))
    keys = set(network.state_dict())
    assert {k.split(".")[0] for k in keys} == {"segmenter", "localiser"}
    torch.jit.script(network)  # the model zoo scripts network_def
