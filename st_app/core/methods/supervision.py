"""CT + layer supervision and CT + stage supervision: two of table 1's baselines.

Deeply-supervised nets (Lee et al. 2015) put auxiliary classifiers inside the network. Here
each is a global average pool + a linear layer reading the output of a residual block
(``layersup``: after every block) or of a stage (``stagesup``: after every stage). The main
network's own head already sits after the last block and the last stage, so that point gets
no second classifier: resnet20 has 8 auxiliary heads under ``layersup`` and 2 under
``stagesup``; ResNet-50 has 15 and 3.

Loss: ``CE(main) + aux_weight * mean_k CE(head_k)``. Weighting the *mean* of the auxiliary
terms (default weight 1) keeps the auxiliary signal as strong as the main one whatever the
number of heads: with a weight of 1 per head, ResNet-50's 15 layer-supervision heads would
outweigh the main loss 15 to 1 and the comparison would mostly measure that ratio.

The heads are training-only parts (``training_modules``): the Trainer optimises them and
saves them beside the run (``method.safetensors``); the network, its checkpoint, sub-net
accuracy, the ONNX export and the block graph use the main head only.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..models import ResidualNet
from ..plan import NetLayout
from .base import Method

__all__ = ["DeepSupervision", "supervision_points"]


def supervision_points(layout: NetLayout, where: str) -> list[tuple[int, int]]:
    """``(stage, blocks done)`` of each auxiliary classifier; the network's last point is left out.

    ``(s, d)`` reads the activation after the first ``d`` blocks of stage ``s``, i.e.
    ``taps[s][d]`` of ``forward_with_taps``.
    """
    if where == "block":
        points = [(s, d) for s, stage in enumerate(layout.stages) for d in range(1, len(stage) + 1)]
    elif where == "stage":
        points = [(s, len(stage)) for s, stage in enumerate(layout.stages)]
    else:
        raise ValueError(f"unknown supervision point {where!r}; choose 'block' or 'stage'")
    return points[:-1]


def _channels(layout: NetLayout, s: int, d: int) -> int:
    return layout.shapes[layout.stages[s][d - 1]].out_channels


class _PoolLinear(nn.Module):
    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


@dataclass
class DeepSupervision(Method):
    """``layersup`` (``where="block"``) or ``stagesup`` (``where="stage"``)."""

    where: str = "block"
    aux_weight: float = 1.0
    name: str = field(default="layersup")

    def __post_init__(self) -> None:
        if self.where not in ("block", "stage"):
            raise ValueError(f"unknown supervision point {self.where!r}; choose 'block' or 'stage'")
        if not float(self.aux_weight) >= 0:
            raise ValueError(f"aux_weight must not be negative, got {self.aux_weight}")
        self._heads: nn.ModuleDict | None = None
        self._layout: NetLayout | None = None
        self._points: list[tuple[int, int]] = []

    def options(self) -> dict[str, Any]:
        return {"aux_weight": float(self.aux_weight)}

    def prepare(self, model: ResidualNet) -> None:
        if self._heads is not None and self._layout == model.layout:
            return  # prepared already: keep the heads the optimizer holds
        self._layout = model.layout
        self._points = supervision_points(model.layout, self.where)
        classes = int(model.config.num_classes)
        self._heads = nn.ModuleDict({f"s{s}_d{d}": _PoolLinear(_channels(model.layout, s, d), classes)
                                     for s, d in self._points})

    def training_modules(self) -> nn.Module | None:
        return self._heads

    def step(self, model: ResidualNet, images: Tensor, labels: Tensor, rng: random.Random) -> dict[str, Tensor]:
        if self._heads is None:
            self.prepare(model)
        assert self._heads is not None
        logits, taps = model.forward_with_taps(images)
        ce = F.cross_entropy(logits, labels)
        aux = ce.new_zeros(())
        for s, d in self._points:
            aux = aux + F.cross_entropy(self._heads[f"s{s}_d{d}"](taps[s][d]), labels)
        aux = aux / max(1, len(self._points))
        loss = ce + float(self.aux_weight) * aux
        self.backward(loss)
        return {"loss": loss.detach(), "ce": ce.detach(), "aux": aux.detach()}
