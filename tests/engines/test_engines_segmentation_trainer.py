"""SegmentationTrainer: the composite loss's terms as named outputs, a falling loss, a frozen U-Net 1 in stage 2."""

from __future__ import annotations

import pytest
import torch
from common.engines import SegmentationTrainer
from common.losses import CompositeSegmentationLoss
from common.nets import CascadedUNet
from ignite.engine import Events
from torch.utils.data import DataLoader

FEATURES = (4, 8, 16)


pytestmark = pytest.mark.usefixtures("one_thread")


def _toy_hearts(n: int = 8, size: int = 32) -> list[dict]:
    """A bright disc (LV, 1) in a ring (MYO, 2) beside a crescent-like blob (RV, 3), at random positions."""
    generator = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    items = []
    for _ in range(n):
        cy, cx = (torch.randint(10, size - 10, (2,), generator=generator)).tolist()
        r2 = (yy - cy) ** 2 + (xx - cx) ** 2
        label = torch.zeros(size, size, dtype=torch.long)
        label[r2 < 36] = 2
        label[r2 < 12] = 1
        label[((yy - cy) ** 2 + (xx - cx - 8) ** 2 < 16) & (label == 0)] = 3
        image = torch.tensor([0.1, 0.9, 0.3, 0.7])[label] + 0.05 * torch.randn(size, size, generator=generator)
        items.append({"image": image[None], "label": label[None]})
    return items


def _trainer(network, parameters, epochs: int, lr: float = 1e-2) -> SegmentationTrainer:
    loader = DataLoader(_toy_hearts(), batch_size=4, shuffle=False)
    return SegmentationTrainer(
        device=torch.device("cpu"),
        max_epochs=epochs,
        train_data_loader=loader,
        networks={"network": network},
        optimizers={"optimizer": torch.optim.Adam(parameters, lr=lr)},
        loss_function=CompositeSegmentationLoss(edge_distance="rms"),
    )


def test_each_term_is_a_named_output_and_the_total_falls():
    torch.manual_seed(0)
    net = CascadedUNet(features=FEATURES, stage=1)
    trainer = _trainer(net, net.parameters(), epochs=15)
    totals = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: totals.append(float(e.state.output[0]["loss"])))
    trainer.run()
    output = trainer.state.output[0]  # decollated
    assert {"loss", "loss_wce", "loss_edge", "pred", "label", "image"} <= set(output)
    assert float(output["loss"]) == pytest.approx(float(output["loss_wce"]) + 0.5 * float(output["loss_edge"]), 1e-5)
    assert sum(totals[-4:]) < 0.75 * sum(totals[:4]), totals


def test_stage_two_trains_unet2_only():
    torch.manual_seed(0)
    net = CascadedUNet(features=FEATURES, stage=2).set_unet1_frozen(True)
    before1 = {k: v.clone() for k, v in net.unet1.state_dict().items()}
    before2 = {k: v.clone() for k, v in net.unet2.state_dict().items()}
    _trainer(net, net.trainable_parameters(), epochs=1).run()
    assert all(torch.equal(before1[k], v) for k, v in net.unet1.state_dict().items())  # BN statistics included
    assert not net.unet1.training
    assert any(not torch.equal(before2[k], v) for k, v in net.unet2.state_dict().items())


def test_missing_label_is_named():
    net = CascadedUNet(features=FEATURES, stage=1)
    trainer = _trainer(net, net.parameters(), epochs=1)
    trainer.data_loader = DataLoader([{"image": torch.zeros(1, 32, 32)}], batch_size=1)
    with pytest.raises(ValueError, match=r"no key\(s\) \['label'\]"):
        trainer.run()
