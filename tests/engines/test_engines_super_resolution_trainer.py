"""SuperResolutionTrainer: a falling loss on a toy mapping, the named outputs, sr = network(lr), a missing key."""

from __future__ import annotations

import copy

import pytest
import torch
from common.engines import SuperResolutionTrainer
from common.losses import SuperResolutionLoss
from ignite.engine import Events
from torch import nn
from torch.utils.data import DataLoader

OFFSET = 0.5
OUTPUT_KEYS = {"lr", "hr", "sr", "error", "loss", "loss_l1", "loss_content", "loss_style"}


def _pairs(n: int = 8, size: int = 8) -> list[dict]:
    """LR images and their HR targets ``hr = lr + OFFSET`` (an identity-plus-offset mapping to learn)."""
    generator = torch.Generator().manual_seed(0)
    items = []
    for _ in range(n):
        lr = torch.rand(1, size, size, generator=generator)
        items.append({"lr": lr, "hr": lr + OFFSET})
    return items


def _trainer(epochs: int = 1, loss_function=None, network=None, **kwargs) -> SuperResolutionTrainer:
    torch.manual_seed(0)
    network = nn.Conv2d(1, 1, 3, padding=1) if network is None else network
    return SuperResolutionTrainer(
        device=torch.device("cpu"),
        max_epochs=epochs,
        train_data_loader=DataLoader(_pairs(), batch_size=4, shuffle=False),
        networks={"network": network},
        optimizers={"optimizer": torch.optim.Adam(network.parameters(), lr=0.05)},
        loss_function=SuperResolutionLoss() if loss_function is None else loss_function,
        **kwargs,
    )


def test_the_loss_falls_and_every_term_is_an_output():
    trainer = _trainer(epochs=20, decollate=False)
    totals = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: totals.append(float(e.state.output["loss"])))
    trainer.run()
    output = trainer.state.output
    assert OUTPUT_KEYS <= set(output)
    assert all(not v.requires_grad for v in output.values())
    assert float(output["loss"]) == pytest.approx(float(output["loss_l1"]))  # no VGG weights: L1 only
    torch.testing.assert_close(output["error"], (output["sr"] - output["hr"]).abs())
    torch.testing.assert_close(output["hr"], output["lr"] + OFFSET)
    assert sum(totals[-2:]) < 0.25 * sum(totals[:2]), totals


def test_sr_is_the_networks_output_before_the_step():
    trainer = _trainer(decollate=False, epoch_length=1)
    before = copy.deepcopy(trainer.networks["network"])
    trainer.run()
    output = trainer.state.output
    torch.testing.assert_close(output["sr"], before(output["lr"]).detach())
    assert not torch.equal(before.weight, trainer.networks["network"].weight)  # one step was taken


def test_a_plain_callable_loss_and_decollated_outputs():
    trainer = _trainer(loss_function=nn.L1Loss())
    trainer.run()
    items = trainer.state.output  # decollated: one dict per sample
    assert len(items) == 4 and {"lr", "hr", "sr", "error", "loss"} <= set(items[0])
    assert items[0]["sr"].shape == (1, 8, 8)
    sr, hr = torch.stack([item["sr"] for item in items]), torch.stack([item["hr"] for item in items])
    torch.testing.assert_close(hr, torch.stack([item["lr"] for item in items]) + OFFSET)
    # the plain callable's value on (sr, hr) of the batch is the loss every item reports
    assert all(float(item["loss"]) == pytest.approx(float(nn.L1Loss()(sr, hr)), rel=1e-6) for item in items)


def test_loss_terms_without_a_total_are_refused():
    trainer = _trainer(loss_function=type("NoTotal", (), {"terms": lambda self, sr, hr: {"loss_l1": sr.mean()}})())
    with pytest.raises(ValueError, match="must include 'loss'"):
        trainer.run()


def test_missing_key_is_named():
    trainer = _trainer(target_key="hr_image")
    with pytest.raises(ValueError, match=r"no key\(s\) \['hr_image'\].*\['hr', 'lr'\]"):
        trainer.run()


class _WithIdleBranch(nn.Module):
    """A conv that makes the output, and a branch whose parameter never reaches the loss."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.idle = nn.Conv2d(1, 1, 3, padding=1), nn.Linear(1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_gradients_set_to_none_train_the_same_weights_and_leave_an_idle_branch_alone():
    """The engine base's ``optim_set_to_none`` switch: where every parameter gets a gradient each step the weights
    equal the zero-filled path's exactly, and a parameter that never gets one stays as it was."""
    weights = {}
    for set_to_none in (False, True):
        torch.manual_seed(0)
        trainer = _trainer(network=_WithIdleBranch(), decollate=False, epoch_length=2, optim_set_to_none=set_to_none)
        idle = copy.deepcopy(trainer.networks["network"].idle.state_dict())
        start = trainer.networks["network"].conv.weight.detach().clone()
        trainer.run()
        network = trainer.networks["network"]
        weights[set_to_none] = copy.deepcopy(network.conv.state_dict())
        assert all(torch.equal(idle[k], v) for k, v in network.idle.state_dict().items())
        grads = [p.grad for p in network.conv.parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads)  # the last step's gradients stay
        assert not torch.equal(network.conv.weight, start)  # trained at all
    assert all(torch.equal(weights[False][k], weights[True][k]) for k in weights[False])
