"""What the block graph needs to know about a network (no weights, no widgets)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from st_app.core.plan import NetLayout, SubnetPlan, insertion_index

__all__ = ["NetworkInfo", "display_order"]


@dataclass(frozen=True)
class NetworkInfo:
    """Layout and the few shapes the drawing labels (stem, input, classes)."""

    layout: NetLayout
    arch: str = ""
    in_channels: int = 3
    image_size: int = 32
    num_classes: int = 10
    stem_channels: int = 16
    stem_kernel: int = 3
    stem_reduction: int = 1  # 4 for the ImageNet stem (stride-2 conv + max-pool)

    @classmethod
    def from_model(cls, model: Any) -> NetworkInfo:
        """From a ResidualNet (read without importing torch here).

        Other model families (issue 12) add their own ``from_model`` branch here, keyed by the
        layout they provide; the graph draws units, groups and rules from the layout.
        """
        c = model.config
        conv = model.conv1
        reduction = conv.stride[0] * (2 if type(model.maxpool).__name__ == "MaxPool2d" else 1)
        return cls(model.layout, c.arch, c.in_channels, c.image_size, c.num_classes,
                   conv.out_channels, conv.kernel_size[0], reduction)

    def stage_sizes(self) -> list[int]:
        """Spatial size of each stage's output."""
        size = max(1, math.ceil(self.image_size / self.stem_reduction))
        out = []
        for stage in self.layout.stages:
            size = max(1, math.ceil(size / self.layout.shapes[stage[0]].stride))
            out.append(size)
        return out


def display_order(plan: SubnetPlan, stage: int) -> list[int]:
    """Left-to-right order of a stage's boxes: the plan's order, each dropped block slotted in
    where ``SubnetPlan.restore`` would put it back (:func:`st_app.core.plan.insertion_index`)."""
    order = list(plan.stages[stage])
    active = set(order)
    for b in plan.layout.stages[stage]:
        if b not in active:
            order.insert(insertion_index(plan.layout, order, b), b)
    return order
