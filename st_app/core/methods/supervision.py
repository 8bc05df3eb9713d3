"""CT + layer supervision and CT + stage supervision: two of table 1's baselines.

Deeply-supervised nets (Lee et al. 2015) put auxiliary classifiers inside the network. Here
each is a global average pool (over the positions of a feature map, or the tokens of a
transformer) + a linear layer reading the output of a unit (``layersup``: after every residual
block, dense layer or transformer block) or of a group (``stagesup``: after every stage or
dense block), through the network's ``forward_with_taps``, so every model family works. The main
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

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import ResidualNet
from ..plan import NetLayout
from .base import Method

__all__ = ["DeepSupervision", "pooled", "supervision_points", "tap_index", "tap_shapes"]


def supervision_points(layout: NetLayout, where: str) -> list[int]:
    """The units after which an auxiliary classifier reads; the network's last point is left out.

    ``block``: every unit; ``stage``: the last unit of every group (stage, dense block).
    """
    if where == "block":
        units = [b for stage in layout.stages for b in stage]
    elif where == "stage":
        units = [stage[-1] for stage in layout.stages if stage]
    else:
        raise ValueError(f"unknown supervision point {where!r}; choose 'block' or 'stage'")
    return units[:-1]


def tap_index(model: ResidualNet, unit: int) -> int:
    """Where the main net's activation right after ``unit`` sits in ``forward_with_taps``' taps."""
    return model.plan_ops(None).index(("block", unit)) + 1


def pooled(x: Tensor) -> Tensor:
    """Global average pooling of a feature map (N, C, H, W) or a token sequence (N, T, D)."""
    return x.flatten(2).mean(-1) if x.dim() == 4 else x.mean(1)


@torch.no_grad()
def tap_shapes(model: ResidualNet) -> list[tuple[int, ...]]:
    """Per-sample shapes of every tap of the full net, from one small forward in eval mode."""
    c = model.config
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters())
        _, taps = model.forward_with_taps(torch.zeros(1, c.in_channels, c.image_size, c.image_size, device=p.device,
                                                      dtype=p.dtype))
    finally:
        model.train(was_training)
    return [tuple(t.shape[1:]) for t in taps]


class _PoolLinear(nn.Module):
    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(pooled(x))


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
        self._points: list[int] = []  # tap indices

    def options(self) -> dict[str, Any]:
        return {"aux_weight": float(self.aux_weight)}

    def prepare(self, model: ResidualNet) -> None:
        if self._heads is not None and self._layout == model.layout:
            return  # prepared already: keep the heads the optimizer holds
        self._layout = model.layout
        units = supervision_points(model.layout, self.where)
        self._points = [tap_index(model, b) for b in units]
        shapes = tap_shapes(model)
        classes = int(model.config.num_classes)
        # a feature map (C, H, W) has its channels first, a token sequence (T, D) last
        width = [shapes[i][0] if len(shapes[i]) == 3 else shapes[i][-1] for i in self._points]
        self._heads = nn.ModuleDict({f"unit{b}": _PoolLinear(w, classes) for b, w in zip(units, width)})

    def training_modules(self) -> nn.Module | None:
        return self._heads

    def step(self, model: ResidualNet, images: Tensor, labels: Tensor, rng: random.Random) -> dict[str, Tensor]:
        if self._heads is None:
            self.prepare(model)
        assert self._heads is not None
        logits, taps = model.forward_with_taps(images)
        ce = F.cross_entropy(logits, labels)
        aux = ce.new_zeros(())
        for i, head in zip(self._points, self._heads.values()):
            aux = aux + F.cross_entropy(head(taps[i]), labels)
        aux = aux / max(1, len(self._points))
        loss = ce + float(self.aux_weight) * aux
        self.backward(loss)
        return {"loss": loss.detach(), "ce": ce.detach(), "aux": aux.detach()}
