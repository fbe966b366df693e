"""The engine base's ``stack_passes`` switch: one forward for a network's independent inputs, the same step.

Tolerance: stacking changes only how the convolutions group their sums, so the loss terms and the weights after
one SGD step (lr 0.1: the gradients, scaled) agree with the one-forward-per-call path to 1e-5 absolute (float32,
values of order 1). Not Adam: its first step moves every weight by about +-lr whatever the gradient's size, so a conv
bias before instance norm (true gradient 0, float noise about 1e-9) would move by +-lr in a noise-given direction.
The networks are the bundles' own classes at toy widths (instance norm, AdaIN and layer norm: per sample).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from common.engines import CycleGANTrainer, MUNITTrainer, SuperResolutionTrainer
from common.engines.base import MultiNetworkTrainer, batch_statistics_layers
from common.nets import ResNetGenerator, StyleSwinDiscriminator, patchgan_70
from common.nets.munit import MultiScaleDiscriminator, MUNITGenerator
from torch import nn

ATOL = 1e-5

pytestmark = pytest.mark.usefixtures("one_thread")


class _Counting(nn.Module):
    """Doubles its input and counts its forwards; returns a list (features, logits) like a discriminator."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> list[torch.Tensor]:
        self.calls += 1
        out = x * self.scale if y is None else x * self.scale + y
        return [out, out.mean(dim=(1, 2, 3))]


class _Toy(MultiNetworkTrainer):
    network_names = ("net",)
    uses = ("stack_passes",)

    def _iteration(self, engine, batchdata):  # pragma: no cover - not run
        return {}


def _toy(stack: bool, net: nn.Module) -> _Toy:
    return _Toy("cpu", 1, [], {"net": net}, {}, stack_passes=stack)


@pytest.mark.parametrize("stack, forwards", [(False, 3), (True, 1)])
def test_forward_stacked_makes_one_forward_and_splits_every_output(stack, forwards):
    net = _Counting()
    a, b, c = torch.ones(1, 1, 2, 2), 2 * torch.ones(2, 1, 2, 2), 3 * torch.ones(1, 1, 2, 2)
    outputs = _toy(stack, net).forward_stacked(net, a, b, c)
    assert net.calls == forwards
    assert [type(o) for o in outputs] == [list, list, list]
    for output, x in zip(outputs, (a, b, c)):
        torch.testing.assert_close(output[0], 2 * x)  # each call gets its own samples back, in order
        torch.testing.assert_close(output[1], torch.full((x.shape[0],), 2.0 * x.flatten()[0].item()))


def test_forward_stacked_stacks_tuples_of_arguments_and_runs_unstackable_calls_one_by_one():
    net = _Counting()
    trainer = _toy(True, net)
    x, y = torch.ones(1, 1, 2, 2), torch.full((1, 1, 2, 2), 5.0)
    first, second = trainer.forward_stacked(net, (x, y), (y, x))
    assert net.calls == 1
    torch.testing.assert_close(first[0], 2 * x + y)
    torch.testing.assert_close(second[0], 2 * y + x)
    small = torch.ones(1, 1, 3, 3)  # another size (unpaired images): no stack, same values
    big_out, small_out = trainer.forward_stacked(net, x, small)
    assert net.calls == 3
    torch.testing.assert_close(small_out[0], 2 * small)
    assert big_out[0].shape == x.shape


def test_networks_with_batch_statistics_are_refused_by_name():
    assert batch_statistics_layers(ResNetGenerator(2, 1, 1, ngf=4, n_blocks=1)) == []
    assert batch_statistics_layers(nn.InstanceNorm2d(2, track_running_stats=True)) == ["InstanceNorm2d"]
    # StyleSwin's discriminator: no norm layer, but its minibatch standard deviation mixes the samples
    discriminator = StyleSwinDiscriminator(size=16, max_channels=16)
    assert batch_statistics_layers(discriminator) == ["StyleSwinDiscriminator"]
    with pytest.raises(ValueError, match="net has layers whose training output depends on the batch"):
        _toy(True, discriminator)
    batch_norm = ResNetGenerator(2, 1, 1, ngf=4, n_blocks=1, norm="batch")
    assert batch_statistics_layers(batch_norm)
    with pytest.raises(ValueError, match="stack_passes .* net has layers .*Set `stack_passes` to false"):
        _toy(True, batch_norm)
    _toy(False, batch_norm)  # one forward per call: any network


def test_a_trainer_that_does_not_stack_refuses_the_switch():
    net = nn.Conv2d(1, 1, 1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="does not use stack_passes"):
        SuperResolutionTrainer(
            "cpu", 1, [], {"network": net}, {"optimizer": optimizer}, loss_function=nn.L1Loss(), stack_passes=True
        )


# ------------------------------------------------------------------------------------------- the trainers' steps
def _cyclegan(stack: bool, segmentor: bool) -> CycleGANTrainer:
    torch.manual_seed(0)
    networks = {
        "g_source_to_target": ResNetGenerator(2, 1, 1, ngf=4, n_blocks=2),
        "g_target_to_source": ResNetGenerator(2, 1, 1, ngf=4, n_blocks=2),
        "d_source": patchgan_70(2, 1, channels=4),
        "d_target": patchgan_70(2, 1, channels=4),
    }
    generators = [*networks["g_source_to_target"].parameters(), *networks["g_target_to_source"].parameters()]
    discriminators = [*networks["d_source"].parameters(), *networks["d_target"].parameters()]
    optimizers = {
        "g_optimizer": torch.optim.SGD(generators, lr=0.1),
        "d_optimizer": torch.optim.SGD(discriminators, lr=0.1),
    }
    seg = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))
    return CycleGANTrainer(
        "cpu",
        1,
        [],
        networks,
        optimizers,
        source_key="dti",
        target_key="lge",
        segmentor=seg if segmentor else None,  # frozen, in eval mode: its BatchNorm uses running statistics
        stack_passes=stack,
        decollate=False,
    )


def _munit(stack: bool) -> MUNITTrainer:
    torch.manual_seed(0)
    gen, dis = {"dim": 8, "n_res": 1, "mlp_dim": 32}, {"dim": 8, "n_layer": 2}
    networks = {
        "gen_a": MUNITGenerator(**gen),
        "gen_b": MUNITGenerator(**gen),
        "dis_a": MultiScaleDiscriminator(**dis),
        "dis_b": MultiScaleDiscriminator(**dis),
    }
    optimizers = {
        "g": torch.optim.SGD([*networks["gen_a"].parameters(), *networks["gen_b"].parameters()], lr=0.1),
        "d": torch.optim.SGD([*networks["dis_a"].parameters(), *networks["dis_b"].parameters()], lr=0.1),
    }
    return MUNITTrainer(
        "cpu", 1, [], networks, optimizers, source_key="a", target_key="b", stack_passes=stack, decollate=False
    )


def _step(trainer: MultiNetworkTrainer, batch: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    torch.manual_seed(1)  # the image pools' and MUNIT's random draws
    random.seed(1)
    trainer.state.iteration = 1
    out = trainer._iteration(trainer, batch)
    losses = {k: float(v) for k, v in out.items() if k.startswith("loss")}
    weights = {
        f"{name}.{key}": value.detach().numpy().copy()
        for name, network in trainer.networks.items()
        for key, value in network.state_dict().items()
    }
    return losses, weights


def _assert_same_step(plain, stacked):
    (losses_p, weights_p), (losses_s, weights_s) = plain, stacked
    assert losses_p.keys() == losses_s.keys()
    for key in losses_p:
        assert losses_s[key] == pytest.approx(losses_p[key], abs=ATOL), key
    for name in weights_p:
        np.testing.assert_allclose(weights_s[name], weights_p[name], atol=ATOL, err_msg=name)


def _images(*shapes: tuple[int, ...]) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return [torch.rand(*shape, generator=g) * 2 - 1 for shape in shapes]


@pytest.mark.parametrize("segmentor", [False, True], ids=["cyclegan", "cycleganseg"])
def test_cyclegan_step_with_stacked_passes_equals_the_plain_step(segmentor):
    dti, lge = _images((2, 1, 32, 32), (2, 1, 32, 32))
    plain, stacked = _cyclegan(False, segmentor), _cyclegan(True, segmentor)
    before = {k: v.clone() for k, v in plain.networks["g_source_to_target"].state_dict().items()}
    counts = {"plain": 0, "stacked": 0}
    for key, trainer in (("plain", plain), ("stacked", stacked)):
        trainer.networks["g_source_to_target"].register_forward_hook(
            lambda *_, key=key: counts.__setitem__(key, counts[key] + 1)
        )
    result_plain = _step(plain, {"dti": dti, "lge": lge})
    result_stacked = _step(stacked, {"dti": dti, "lge": lge})
    assert counts == {"plain": 3, "stacked": 2}  # fake, identity, cycle vs [fake + identity], cycle
    _assert_same_step(result_plain, result_stacked)
    if segmentor:
        assert result_plain[0]["loss_transfer_seg"] > 0 and result_plain[0]["loss_recon_seg"] > 0
    changed = any(not torch.equal(before[k], v) for k, v in plain.networks["g_source_to_target"].state_dict().items())
    assert changed  # the comparison is not between two untouched networks


@pytest.mark.parametrize("shape_b", [(1, 1, 32, 32), (1, 1, 24, 24)], ids=["same size", "unpaired sizes"])
def test_munit_step_with_stacked_passes_equals_the_plain_step(shape_b):
    x_a, x_b = _images((1, 1, 32, 32), shape_b)
    plain, stacked = _munit(False), _munit(True)
    decodes = {"plain": 0, "stacked": 0}
    for key, trainer in (("plain", plain), ("stacked", stacked)):
        trainer.networks["gen_a"].decoder.register_forward_hook(
            lambda *_, key=key: decodes.__setitem__(key, decodes[key] + 1)
        )
    _assert_same_step(_step(plain, {"a": x_a, "b": x_b}), _step(stacked, {"a": x_a, "b": x_b}))
    # the D step's translation (1) and the G step's reconstruction + translation (2, or 1 stacked)
    assert decodes == {"plain": 3, "stacked": 3 if shape_b[-1] != 32 else 2}
