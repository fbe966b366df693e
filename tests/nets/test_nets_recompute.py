"""Tests of common/nets/recompute.py and of the networks' recomputation switches: the same outputs and gradients,
fewer bytes kept for the backward pass."""

from __future__ import annotations

import pytest
import torch
from common.nets import HRSegUNet, StyleSwinGenerator, TransMRSR
from common.nets.recompute import call_recomputed, check_recompute_resolutions

TINY = {"img_size": 32, "shallow_channels": 8, "style_dim": 16, "n_mlp": 1, "max_channels": 16, "use_truncation": False}


def _saved_bytes(step) -> int:
    """Bytes of the distinct storages autograd keeps for the backward pass while ``step()`` runs its forward."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step()
    return sum(storages.values())


def _gradients(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}


def test_call_recomputed_keeps_values_and_gradients_and_saves_less():
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.GELU(), torch.nn.Linear(64, 8))
    x = torch.randn(32, 8, requires_grad=True)
    results = {}
    for recompute in (False, True):
        mlp.zero_grad(set_to_none=True)
        x.grad = None
        outputs = []
        saved = _saved_bytes(lambda: outputs.append(call_recomputed(mlp, x) if recompute else mlp(x)))
        outputs[0].square().sum().backward()
        results[recompute] = (outputs[0].detach(), _gradients(mlp), x.grad.clone(), saved)
    plain, recomputed = results[False], results[True]
    torch.testing.assert_close(recomputed[0], plain[0], rtol=0, atol=0)
    assert plain[1].keys() == recomputed[1].keys() and len(plain[1]) == 4
    for name in plain[1]:
        torch.testing.assert_close(recomputed[1][name], plain[1][name], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(recomputed[2], plain[2], rtol=1e-6, atol=1e-7)
    # the plain call keeps the input, the hidden pre-activation and the GELU output; recomputation keeps the input
    assert recomputed[3] < plain[3] / 4, (recomputed[3], plain[3])


def test_call_recomputed_is_the_plain_call_without_autograd():
    mlp = torch.nn.Linear(4, 4)
    with torch.no_grad():
        out = call_recomputed(mlp, torch.ones(2, 4))
    assert out.grad_fn is None
    torch.testing.assert_close(out, mlp(torch.ones(2, 4)).detach())


def test_check_recompute_resolutions_names_unknown_resolutions():
    assert check_recompute_resolutions([16, 8], [4, 8, 16], "Net") == {8, 16}
    assert check_recompute_resolutions(None, [4, 8], "Net") == set()
    with pytest.raises(ValueError, match=r"Net: recompute_resolutions \[12\] are not resolutions of its blocks"):
        check_recompute_resolutions([12, 8], [4, 8, 16], "Net")


def _transmrsr_step(recompute: list[int]) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
    torch.manual_seed(0)
    net = TransMRSR(**TINY, recompute_resolutions=recompute)
    torch.nn.init.normal_(net.output_conv.weight, std=0.1)  # it starts at zero: no gradient would reach the body
    for cwss in net.cwss:  # the CWSS output convs start at zero too: make the modulation (and its gradient) real
        torch.nn.init.normal_(cwss.scale[-1].weight, std=0.1)
        torch.nn.init.normal_(cwss.shift[-1].weight, std=0.1)
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    outputs = []
    saved = _saved_bytes(lambda: outputs.append(net(x)))
    (outputs[0] - x.flip(-1)).abs().mean().backward()
    return outputs[0].detach(), _gradients(net), saved


def test_transmrsr_recomputation_gives_the_same_step_with_less_memory():
    plain_out, plain_grads, plain_saved = _transmrsr_step([])
    out, grads, saved = _transmrsr_step([32, 16])
    torch.testing.assert_close(out, plain_out, rtol=0, atol=0)
    assert grads.keys() == plain_grads.keys()
    encoder_and_decoder = [n for n in grads if n.startswith(("encoder_stages.0.", "decoder.layers.4."))]
    assert encoder_and_decoder and all(grads[n].abs().sum() > 0 for n in encoder_and_decoder)
    for name in grads:
        torch.testing.assert_close(grads[name], plain_grads[name], rtol=1e-5, atol=1e-7, msg=name)
    # the 32 and 16 px blocks hold most activations of a 32 px network
    assert saved < 0.6 * plain_saved, (saved, plain_saved)


def test_recompute_resolutions_are_checked_by_name():
    with pytest.raises(ValueError, match=r"StyleSwinGenerator: recompute_resolutions \[24\]"):
        TransMRSR(**TINY, recompute_resolutions=[24])
    generator = StyleSwinGenerator(size=16, style_dim=16, n_mlp=1, max_channels=16, recompute_resolutions=[16, 8])
    assert generator.recompute_resolutions == {8, 16}


def test_styleswin_generator_recomputation_gives_the_same_gradients():
    results = []
    for recompute in ([], [16, 8]):
        torch.manual_seed(0)
        generator = StyleSwinGenerator(size=16, style_dim=16, n_mlp=1, max_channels=16, recompute_resolutions=recompute)
        z = torch.randn(2, 16, generator=torch.Generator().manual_seed(2))
        generator(z).square().mean().backward()
        results.append(_gradients(generator))
    assert results[0].keys() == results[1].keys()
    for name in results[0]:
        torch.testing.assert_close(results[1][name], results[0][name], rtol=1e-5, atol=1e-7, msg=name)


def _hr_seg_step(recompute: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
    torch.manual_seed(0)
    net = HRSegUNet(features=(8, 16, 16, 16), recompute_full_resolution=recompute)
    x = torch.rand(2, 1, 16, 16, 8, generator=torch.Generator().manual_seed(1))
    outputs = []
    saved = _saved_bytes(lambda: outputs.append(net.forward_all(x)))
    lr_logits, hr_logits, skip1 = outputs[0]
    (lr_logits.square().mean() + hr_logits.square().mean() + skip1.mean()).backward()
    return hr_logits.detach(), _gradients(net), saved


def test_hr_seg_unet_recomputation_gives_the_same_step_with_less_memory():
    plain_hr, plain_grads, plain_saved = _hr_seg_step(False)
    hr, grads, saved = _hr_seg_step(True)
    torch.testing.assert_close(hr, plain_hr, rtol=0, atol=0)
    assert grads.keys() == plain_grads.keys() and any(n.startswith("hr_head.") for n in grads)
    for name in grads:
        torch.testing.assert_close(grads[name], plain_grads[name], rtol=1e-5, atol=1e-7, msg=name)
    # the first encoder stage, the last decoder stage and the HR head hold most activations of the step
    assert saved < 0.6 * plain_saved, (saved, plain_saved)


def test_hr_seg_unet_recomputation_keeps_its_weights_and_scripts():
    small = {"features": (8, 16), "strides": ((1, 1, 1), (2, 2, 1))}
    plain, recomputing = HRSegUNet(**small), HRSegUNet(**small, recompute_full_resolution=True)
    assert plain.state_dict().keys() == recomputing.state_dict().keys()  # weights load either way
    recomputing.load_state_dict(plain.state_dict())
    scripted = torch.jit.script(recomputing)  # the model zoo's CI scripts network_def: the scripted net runs plainly
    x = torch.rand(1, 1, 8, 8, 4, requires_grad=True)
    torch.testing.assert_close(scripted(x), plain(x))
    scripted(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
