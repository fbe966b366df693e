"""The UASR fine-tune's uncertainty ``U`` (REHRSeg bundle, stage 1): where it starts and its learning rates.

A fresh UASR head's ``U`` used to start near 0.5 everywhere and stay there through the short fine-tune (measured on
the default data: 0.49 +- 0.004 after 50 Adam steps at 1e-4, rank correlation 0.02 with the error), so the
weighted LR cross-entropy of stage 2 was a constant factor of about one half. Whether the trained U then ranks the
pseudo-HR label's errors is a benchmark row (``UASR U`` against the label-boundary distance), not a timed test.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from bundle_test_utils import bundle_scripts
from common.nets import FLAVRSelfSR

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "thick_slice_hr_segmentation_rehrseg"
UASR = json.loads((BUNDLE / "configs" / "train_uasr.json").read_text())
WIDTHS = (4, 4, 8, 8, 8)


def _uasr() -> FLAVRSelfSR:
    torch.manual_seed(0)
    return FLAVRSelfSR(widths=WIDTHS, scale=2, head="uasr")


def _param_groups(network: torch.nn.Module, lr: float, head_lr: float) -> list[dict]:
    with bundle_scripts(BUNDLE):
        from scripts.weights import uasr_param_groups

        return uasr_param_groups(network, lr, head_lr)


def test_a_fresh_uasr_head_starts_u_at_the_error_scale_not_at_one_half():
    u = _uasr()(torch.rand(2, 2, 4, 16, 16))[:, 2]
    assert abs(float(u.mean()) - 0.05) < 0.005 and float(u.std()) > 0  # not 0.5; not constant (random read-out)


def test_uasr_param_groups_put_the_new_head_at_its_own_rate_and_every_parameter_once():
    network = _uasr()
    body, head = _param_groups(network, 1e-4, 1e-3)
    assert (body["lr"], head["lr"]) == (1e-4, 1e-3)
    head_ids = {id(p) for p in network.head.parameters()}
    assert {id(p) for p in head["params"]} == head_ids
    assert not head_ids & {id(p) for p in body["params"]}
    assert len(body["params"]) + len(head["params"]) == len(list(network.parameters()))
