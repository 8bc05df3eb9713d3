"""Stochastic depth (Huang et al. 2016), table 1's strongest baseline."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from ..models import ResidualNet
from ..plan import SubnetPlan
from .base import Method

__all__ = ["StochasticDepth"]


@dataclass
class StochasticDepth(Method):
    """Huang et al. 2016: drop whole branches at random, survival 1 -> ``final_survival``.

    Survival decays linearly with block depth; at evaluation each branch is scaled by its
    survival probability (``branch_scale``), which the checkpoint records.
    """

    final_survival: float = 0.5
    name: str = field(default="sd")

    def options(self) -> dict[str, Any]:
        return {"final_survival": self.final_survival}

    def survival(self, model: ResidualNet) -> list[float]:
        n = len(model.blocks)
        return [1.0 - (i + 1) / n * (1.0 - self.final_survival) for i in range(n)]

    def prepare(self, model: ResidualNet) -> None:
        for block, p in zip(model.blocks, self.survival(model)):
            block.branch_scale = p

    def step(self, model: ResidualNet, images: Tensor, labels: Tensor, rng: random.Random) -> dict[str, Tensor]:
        keep = [rng.random() < p for p in self.survival(model)]
        stages = tuple(tuple(b for b in stage if keep[b]) for stage in model.layout.stages)
        plan = SubnetPlan(model.layout, stages)
        logits = model(images, plan)
        loss = F.cross_entropy(logits, labels)
        self.backward(loss)
        return {"loss": loss.detach(), "ce": loss.detach()}
