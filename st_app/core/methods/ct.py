"""CT: common training, the baseline every other scheme is compared with."""

from __future__ import annotations

import random

import torch.nn.functional as F
from torch import Tensor

from ..models import ResidualNet
from .base import Method

__all__ = ["CommonTraining"]


class CommonTraining(Method):
    """CT: cross-entropy on the main network only."""

    name = "ct"

    def step(self, model: ResidualNet, images: Tensor, labels: Tensor, rng: random.Random) -> dict[str, Tensor]:
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        self.backward(loss)
        return {"loss": loss.detach(), "ce": loss.detach()}
