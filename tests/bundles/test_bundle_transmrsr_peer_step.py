"""TransMRSR's side of ``tools.side_by_side``: ``scripts/peer_step.py`` times our SR step at the reference's shapes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from bundle_test_utils import bundle_scripts

from tools.benchmark import read_benchmark_info

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "brain_mri_super_resolution_transmrsr"


def test_pair_is_one_channel_noise_and_its_thick_slice_on_the_hr_grid():
    with bundle_scripts(BUNDLE):
        from scripts.peer_step import _pair

        pair = _pair(2, 16, 4, torch.Generator().manual_seed(0))
        again = _pair(2, 16, 4, torch.Generator().manual_seed(0))
    assert pair["hr"].shape == pair["lr"].shape == (2, 1, 16, 16)
    assert 0 <= float(pair["hr"].min()) and float(pair["hr"].max()) <= 1
    assert 0 <= float(pair["lr"].min()) and float(pair["lr"].max()) <= 1
    assert not torch.allclose(pair["lr"], pair["hr"])  # degraded
    # the degradation is along the rows only: the row-to-row variation is smoothed much more than the column one
    assert pair["lr"].diff(dim=2).abs().mean() < 0.5 * pair["lr"].diff(dim=3).abs().mean()
    assert torch.equal(pair["hr"], again["hr"]) and torch.equal(pair["lr"], again["lr"])  # seeded inputs


def test_step_trains_the_sr_network_with_the_vgg_content_and_style_terms():
    with bundle_scripts(BUNDLE):
        from scripts.peer_step import build

        torch.manual_seed(0)
        step = build(batch=2, size=16, quick=True)
    network, trainer, optimizer = step["network"], step["trainer"], step["optimizer"]
    vgg = step["loss"].content_style.vgg
    # built without files: the truncation is on, toward random centroids (not the zeros of an unloaded buffer)
    assert network.use_truncation and network.centroids.abs().sum() > 0
    # the optimizer holds exactly the trainable parameters: the decoder (prior not frozen, as freeze_prior false)
    # but not its unused mapping network, nor the VGG19
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for p in network.parameters() if p.requires_grad}
    assert not any(id(p) in in_optimizer for p in vgg.parameters())
    assert not any(id(p) in in_optimizer for p in network.decoder.style.parameters())
    encoder = next(network.encoder_stages[0].parameters())
    decoder = next(p for p in network.decoder.parameters() if p.requires_grad)
    before = {
        "encoder": encoder.detach().clone(),
        "decoder": decoder.detach().clone(),
        "mapping": next(network.decoder.style.parameters()).detach().clone(),
        "vgg": vgg[0].weight.detach().clone(),
    }
    outputs = [trainer._iteration(trainer, step["next_batch"]()) for _ in range(2)]
    for output in outputs:  # decollated by the trainer: one dict per sample, the loss terms as floats
        assert len(output) == 2 and output[0]["sr"].shape == output[0]["hr"].shape == (1, 16, 16)
        terms = output[0]
        assert terms["loss_l1"] > 0 and terms["loss_content"] > 0 and terms["loss_style"] > 0
        expected = terms["loss_l1"] + 0.5 * (terms["loss_content"] + terms["loss_style"])
        assert math.isclose(terms["loss"], expected, rel_tol=1e-5)
    # the residual head starts at zero, so the body gets its first gradient in the second step
    assert not torch.equal(encoder, before["encoder"]) and not torch.equal(decoder, before["decoder"])
    assert torch.equal(next(network.decoder.style.parameters()), before["mapping"])
    assert torch.equal(vgg[0].weight, before["vgg"])


def test_peer_step_times_our_sr_iteration_and_prints_what_the_tool_reads():
    with bundle_scripts(BUNDLE):
        from scripts.peer_step import measure

        result = measure(n=1, warmup=1, batch=1, size=16, threads=1, flops=False, quick=True)
    assert set(result["params"]) == {"transmrsr"} and result["params"]["transmrsr"] > 0
    assert result["train_iter_s"]["median"] > 0 and result["infer_s"]["median"] > 0
    assert "bs1" in result["config"] and "16x16" in result["config"] and "quick.json" in result["config"]
    assert "recompute_resolutions [16, 8]" in result["config"]  # the config's default: img_size and img_size / 2
    json.dumps(result)  # one JSON line


def test_benchmark_declares_the_side_by_side_with_the_public_code():
    spec = read_benchmark_info(BUNDLE).peer_step  # what tools.side_by_side reads
    assert spec["repository"] == "goddesshs/TransMRSR" and spec["harness"] == "transmrsr_step.py"
    assert spec["ours_args"][:2] == ["-m", "scripts.peer_step"] and "--n" in spec["harness_args"]
    assert "256x256" in spec["configuration"] and "batch 4" in spec["configuration"]
