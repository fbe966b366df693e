"""Average the class probabilities of several trained copies of one network (the paper's test-time ensemble)."""

from __future__ import annotations

__all__ = ["ProbabilityEnsemble"]

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn as nn


class ProbabilityEnsemble(nn.Module):
    """``log(mean_k softmax(net_k(x)))``: a softmax afterwards gives the members' mean probabilities exactly.

    Chen, Ouyang et al. (STACOM 2019), section 3.3: "averaging the probabilistic maps from these models and then
    assigning to each pixel the class with the highest score". Returning log-probabilities keeps the output a logit
    map, so the bundle's post-processing (softmax, CRF, argmax) is the same for one model and for an ensemble.

    Args:
        members: the trained networks, each ``(B, C, ...) -> (B, C, ...)`` logits.

    Raises:
        ValueError: no member.

    Examples::

        ensemble = ProbabilityEnsemble.from_weights(CascadedUNet(stage=2), ["m0.pt", "m1.pt"])
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("ProbabilityEnsemble needs at least one member network.")
        self.members = nn.ModuleList(members)

    @classmethod
    def from_weights(cls, template: nn.Module, paths: Sequence[str]) -> ProbabilityEnsemble:
        """One deep copy of ``template`` per weights file (``common.checkpoint.load_weights``, strict)."""
        from common.checkpoint import load_weights

        members = []
        for path in paths:
            member = copy.deepcopy(template)
            load_weights(member, path)
            members.append(member.eval())
        return cls(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probabilities = torch.stack([torch.log_softmax(member(x), dim=1) for member in self.members])
        return torch.logsumexp(log_probabilities, dim=0) - math.log(len(self.members))
