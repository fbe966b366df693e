"""REHRSeg stage 2 on the engine base: named terms, a loss that falls, the teacher frozen, the switches refused."""

from __future__ import annotations

import pytest
import torch
from common.engines import ForwardAll, HRSegTrainer
from common.losses import StructuralKDLoss, UncertaintyWeightedCE
from common.nets import FLAVRSelfSR, HRSegUNet
from ignite.engine import Events
from monai.losses import DiceCELoss, DiceLoss


def _batch(n=2, scale=4):
    torch.manual_seed(0)
    label = torch.zeros(n, 1, 16, 16, 4)
    label[:, :, 4:12, 5:11, 1:3] = 1
    image = label * 0.8 + 0.1 * torch.rand(n, 1, 16, 16, 4)
    hr_label = label.repeat_interleave(scale, dim=-1)
    uncertainty = torch.rand(n, 1, 16, 16, 4)
    return {"image": image, "label": label, "hr_label": hr_label, "uncertainty": uncertainty}


def _trainer(lambda_kd=1.0, use_uncertainty=True, epochs=1, batches=1, **weights):
    torch.manual_seed(0)
    seg = HRSegUNet(features=(4, 8, 8, 8), scale=4)
    teacher = FLAVRSelfSR(widths=(4, 4, 8, 8, 8), blocks=1, head="uasr", n_branches=2)
    distiller = StructuralKDLoss(student_channels=8, teacher_channels=4)
    params = list(seg.parameters()) + (list(distiller.parameters()) if lambda_kd else [])
    optimizer = torch.optim.Adam(params, lr=3e-3)
    data = [_batch()] * batches
    networks = {"segmenter": ForwardAll(seg)}
    frozen = {}
    if lambda_kd:
        networks["distiller"], frozen["teacher"] = distiller, teacher
    trainer = HRSegTrainer(
        "cpu",
        epochs,
        data,
        networks,
        {"optimizer": optimizer},
        frozen_networks=frozen,
        lr_ce=UncertaintyWeightedCE(),
        lr_dice=DiceLoss(to_onehot_y=True, softmax=True, include_background=False),
        hr_loss=DiceCELoss(to_onehot_y=True, softmax=True, include_background=False),
        use_uncertainty=use_uncertainty,
        lambda_kd=lambda_kd,
        decollate=False,
        **weights,
    )
    return trainer, teacher


def test_every_term_is_a_named_output_and_the_teacher_stays_frozen():
    trainer, teacher = _trainer()
    before = [p.clone() for p in teacher.parameters()]
    trainer.run()
    output = trainer.state.output
    for key in ("loss", "loss_lr_ce", "loss_lr_dice", "loss_hr", "loss_kd_structure", "loss_kd_cosine"):
        assert output[key].ndim == 0 and torch.isfinite(output[key])
    assert output["hr_pred"].shape == (2, 1, 16, 16, 16) and output["lr_pred"].shape == (2, 1, 16, 16, 4)
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters()))
    assert not teacher.training


def test_the_loss_falls():
    trainer, _ = _trainer(epochs=30)
    losses = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: losses.append(float(e.state.output["loss"])))
    trainer.run()
    assert losses[-1] < 0.7 * losses[0]


def test_uncertainty_lowers_the_lr_ce_and_is_optional():
    with_u, _ = _trainer(lambda_kd=0.0)
    with_u.run()
    without, _ = _trainer(lambda_kd=0.0, use_uncertainty=False)
    without.run()
    assert float(with_u.state.output["loss_lr_ce"]) < float(without.state.output["loss_lr_ce"])
    assert "loss_kd_structure" not in without.state.output


@pytest.mark.parametrize("lambda_lr_dice", [1.0, 0.25, 0.0])
def test_the_loss_is_the_weighted_sum_of_its_named_terms(lambda_lr_dice):
    """``loss = lambda_lr (loss_lr_ce + lambda_lr_dice loss_lr_dice) + lambda_hr loss_hr + lambda_kd loss_kd``: every
    term switchable on its own (the LR Dice shared ``lambda_lr`` with the LR CE before ``lambda_lr_dice``)."""
    trainer, _ = _trainer(lambda_kd=0.5, lambda_lr=2.0, lambda_hr=3.0, lambda_lr_dice=lambda_lr_dice)
    trainer.run()
    out = {k: float(v) for k, v in trainer.state.output.items() if k.startswith("loss")}
    kd = out["loss_kd_structure"] + out["loss_kd_cosine"]
    expected = 2.0 * (out["loss_lr_ce"] + lambda_lr_dice * out["loss_lr_dice"]) + 3.0 * out["loss_hr"] + 0.5 * kd
    assert out["loss_lr_dice"] > 0 and out["loss"] == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="lambda_lr_dice -1"):
        _trainer(lambda_lr_dice=-1.0)


def test_kd_without_teacher_is_refused():
    seg = HRSegUNet(features=(4, 8, 8, 8))
    with pytest.raises(ValueError, match="lambda_kd"):
        HRSegTrainer(
            "cpu",
            1,
            [_batch()],
            {"segmenter": ForwardAll(seg)},
            {"optimizer": torch.optim.SGD(seg.parameters(), lr=0.1)},
            lr_ce=UncertaintyWeightedCE(),
            lr_dice=DiceLoss(to_onehot_y=True, softmax=True),
            hr_loss=DiceCELoss(to_onehot_y=True, softmax=True),
            lambda_kd=1.0,
        )


def test_a_batch_without_the_uncertainty_is_refused_when_it_is_on():
    trainer, _ = _trainer(lambda_kd=0.0)
    batch = _batch()
    del batch["uncertainty"]
    with pytest.raises(ValueError, match="uncertainty"):
        trainer._iteration(trainer, batch)


def test_the_lr_only_baseline_needs_no_hr_label():
    trainer, _ = _trainer(lambda_kd=0.0, use_uncertainty=False)
    trainer.lambda_hr = 0.0
    batch = _batch()
    del batch["hr_label"], batch["uncertainty"]
    output = trainer._iteration(trainer, batch)
    assert "loss_hr" not in output and torch.isclose(output["loss"], output["loss_lr_ce"] + output["loss_lr_dice"])
