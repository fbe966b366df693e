"""The engine base's speed switches (channels-last, torch.compile): same step as the plain path, checkpoints, DDP.

Tolerances: the switches change only the order of floating-point sums, so the loss terms and the weights after SGD
steps (a step is the gradient, scaled) agree with the plain path to 1e-5 absolute (float32 on values of order 1).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from common.acceleration import accelerate, is_channels_last, is_compiled, to_channels_last
from common.engines import MultiNetworkTrainer
from common.handlers import AtomicCheckpointSaver, ResumeFromLatest
from ignite.engine import Events
from torch import nn

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "dist_scripts" / "ddp_accelerated.py"
ATOL = 1e-5


def _toy():
    spec = importlib.util.spec_from_file_location("ddp_accelerated_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


toy = _toy()


def _assert_same_run(a, b, atol=ATOL):
    (losses_a, weights_a), (losses_b, weights_b) = a, b
    assert len(losses_a) == len(losses_b)
    for la, lb in zip(losses_a, losses_b):
        assert la.keys() == lb.keys()
        for key in la:
            assert la[key] == pytest.approx(lb[key], abs=atol), key
    for name in weights_a:
        np.testing.assert_allclose(weights_a[name], weights_b[name], atol=atol, err_msg=name)


@pytest.fixture(scope="module")
def plain_run():
    return toy.one_run(max_epochs=1)


def test_memory_format_follows_the_convolutions():
    mlp = nn.Linear(3, 2)
    assert is_channels_last(mlp) and to_channels_last(mlp) is mlp  # nothing to reorder
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 2, 3))
    keys = list(net.state_dict())
    assert to_channels_last(net) is net
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in net.parameters() if p.ndim == 4)
    assert not net[1].weight.is_contiguous()  # really reordered (with 4 input channels the layouts differ)
    assert list(net.state_dict()) == keys


def test_a_network_mixing_2d_and_3d_convolutions_gets_each_rank_its_layout():
    # REHRSeg's FLAVR: a 3D U-Net with a 2D fusion head (Module.to(memory_format=...) refuses such a network)
    net = nn.ModuleDict({"body": nn.Conv3d(2, 4, 3), "head": nn.Conv2d(4, 3, 3)})
    assert not is_channels_last(net)
    to_channels_last(net)
    assert net["body"].weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert net["head"].weight.is_contiguous(memory_format=torch.channels_last)
    assert not net["head"].weight.is_contiguous() and is_channels_last(net)
    x = torch.randn(1, 2, 3, 6, 6)
    plain = nn.ModuleDict({"body": nn.Conv3d(2, 4, 3), "head": nn.Conv2d(4, 3, 3)})
    plain.load_state_dict(net.state_dict())
    out, ref = (m["head"](m["body"](x)[:, :, 0]) for m in (net, plain))
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)


def test_the_switches_change_no_output_of_a_network():
    plain = toy.networks()["g"]
    fast = accelerate(toy.networks()["g"], channels_last=True)
    fast.load_state_dict(plain.state_dict())
    assert is_channels_last(fast) and not is_channels_last(plain)  # the layout really changed
    x = torch.randn(2, 1, 16, 16)
    torch.testing.assert_close(fast(x), plain(x), atol=ATOL, rtol=0)


def test_the_plain_step_is_not_a_no_op(plain_run):
    # the comparisons below would pass trivially if nothing trained
    before = toy.flat_weights(toy.build())
    _, after = plain_run
    assert max(abs(a - b) for a, b in zip(before["g"], after["g"])) > 1e-3


def test_channels_last_step_matches_the_plain_step(plain_run):
    _assert_same_run(toy.one_run(max_epochs=1, channels_last=True), plain_run)


@pytest.mark.slow
def test_compiled_step_matches_the_plain_step_and_keeps_checkpoint_keys(plain_run, tmp_path):
    from torch._dynamo.utils import counters

    trainer = toy.build(max_epochs=1, compile_networks=True, channels_last=True)
    assert all(is_compiled(net) for net in trainer.networks.values())
    assert list(trainer.networks["g"].state_dict()) == list(toy.networks()["g"].state_dict())  # no _orig_mod.
    graphs = counters["stats"]["unique_graphs"]
    _assert_same_run(toy.one_run(max_epochs=1, compile_networks=True, channels_last=True), plain_run)
    assert counters["stats"]["unique_graphs"] > graphs  # dynamo really traced the networks (nothing skipped)


@pytest.mark.slow
def test_a_compiled_run_checkpoints_and_resumes_as_an_uninterrupted_one(tmp_path):
    uninterrupted = toy.one_run(max_epochs=2)
    first = toy.build(max_epochs=1, compile_networks=["g"])
    AtomicCheckpointSaver(str(tmp_path), engine_key="trainer", save_interval=1, epoch_level=True).attach(first)
    first.run()
    assert list(tmp_path.glob("*.pt")), "no checkpoint written"
    resumed = toy.build(max_epochs=2, compile_networks=["g"])
    ResumeFromLatest(tmp_path, engine_key="trainer").attach(resumed)
    losses = []
    resumed.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(
        {k: float(v) for k, v in e.state.output.items()}))  # fmt: skip
    resumed.run()
    assert resumed.state.epoch == 2 and len(losses) == 2  # only epoch 2 ran
    _assert_same_run((losses, toy.flat_weights(resumed)), (uninterrupted[0][2:], uninterrupted[1]))


def test_channels_last_after_ddp_wrapping_is_refused_with_the_fix():
    net = nn.parallel.DistributedDataParallel.__new__(nn.parallel.DistributedDataParallel)  # no process group here
    nn.Module.__init__(net)
    net.module = nn.Conv2d(4, 2, 3)
    with pytest.raises(ValueError, match=r"wrap_ddp\(net, channels_last=True\)"):
        to_channels_last(net)
    to_channels_last(net.module)
    assert to_channels_last(net) is net  # already converted before wrapping: nothing to do


def test_unknown_compile_names_and_a_compiled_r1_discriminator_are_refused():
    with pytest.raises(ValueError, match=r"compile_networks names \['x'\]"):
        toy.build(compile_networks=["x"])

    class R1Toy(MultiNetworkTrainer):
        network_names, optimizer_names, uses = ("d",), ("d_optimizer",), ("r1_gamma",)

        def _iteration(self, engine, batchdata):
            return {}

    d = nn.Sequential(nn.Conv2d(1, 1, 3), nn.Flatten(), nn.LazyLinear(1))
    trainer = R1Toy("cpu", 1, [], {"d": d}, {"d_optimizer": torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=1)},
                    r1_gamma=1.0, compile_networks=["d"])  # fmt: skip
    with pytest.raises(ValueError, match="double backward"):
        trainer.r1_penalty(d, torch.randn(1, 1, 5, 5))


@pytest.mark.dist
@pytest.mark.slow
def test_ddp_with_both_switches_matches_one_plain_process_on_the_whole_batch(plain_run, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "PYTHONFAULTHANDLER": "1",
        "TMPDIR": str(tmp_path),  # torchrun's own torchelastic_* folders: not left in /tmp
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT)]
    proc = subprocess.run([*command, str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["weights"] == ranks[1]["weights"]  # DDP kept the replicas identical
    mean_losses = [{k: (a[k] + b[k]) / 2 for k in a} for a, b in zip(ranks[0]["losses"], ranks[1]["losses"])]
    _assert_same_run((mean_losses, ranks[0]["weights"]), plain_run)
