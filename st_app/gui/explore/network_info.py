"""What the block graph needs to know about a network (no weights, no widgets).

Everything is read through the model protocol (:class:`st_app.core.models.ResidualNet`):
the layout (units, groups, order rule, kinds), ``stem_summary()``, ``group_sizes()`` and the
ops of the full plan (what runs *between* groups, e.g. a DenseNet's transitions, and after
the last one). Nothing here names a family.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from st_app.core.plan import NetLayout, SubnetPlan, insertion_index

__all__ = ["NetworkInfo", "display_order", "plural"]

#: unit kinds whose units map tokens to tokens (their groups are labelled by width and patch grid)
TOKEN_KINDS = frozenset({"transformer", "attention", "mlp"})


def plural(noun: str, n: int = 2) -> str:
    """``block`` -> ``blocks``, ``half`` -> ``halves`` (units and groups as users read them)."""
    if n == 1:
        return noun
    if noun.endswith("f"):
        return noun[:-1] + "ves"
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"


@dataclass(frozen=True)
class NetworkInfo:
    """Layout and the few shapes the drawing labels (stem, groups, joins, input, classes)."""

    layout: NetLayout
    arch: str = ""
    in_channels: int = 3
    image_size: int = 32
    num_classes: int = 10
    stem_channels: int = 16
    stem_kernel: int = 3
    stem_reduction: int = 1  # 4 for the ImageNet stem (stride-2 conv + max-pool)
    stem_text: str = ""
    group_sizes: tuple[int, ...] = ()  # spatial side of each group's output (a ViT: its patch grid)
    between: tuple[str, ...] = ()  # per group boundary: the op kind that runs there ("" when none)
    tail: tuple[str, ...] = ()  # op kinds after the last group, before the head (a final norm)

    @classmethod
    def from_model(cls, model: Any) -> NetworkInfo:
        """From any :class:`~st_app.core.models.ResidualNet` (read without importing torch here)."""
        c = model.config
        stem = model.stem_summary()
        layout: NetLayout = model.layout
        between, tail = _joins(layout, model.plan_ops(None))
        return cls(layout, c.arch, c.in_channels, c.image_size, c.num_classes, stem.channels, stem.kernel,
                   stem.reduction, stem.text, tuple(int(s) for s in model.group_sizes()), between, tail)

    def stage_sizes(self) -> list[int]:
        """Spatial size of each group's output."""
        if self.group_sizes:
            return list(self.group_sizes)
        size = max(1, math.ceil(self.image_size / self.stem_reduction))
        out = []
        for stage in self.layout.stages:
            size = max(1, math.ceil(size / self.layout.shapes[stage[0]].stride))
            out.append(size)
        return out

    @property
    def unit(self) -> str:
        return self.layout.unit_name

    def unit_title(self, block: int) -> str:
        """``Block 4``, ``Layer 12``, ``Half 7``."""
        return f"{self.unit.capitalize()} {block}"

    def group_title(self, s: int) -> str:
        """``Stage 2``, ``Dense block 3``; a network of one group shows its name alone (``Encoder``)."""
        label = self.layout.group_name if len(self.layout.stages) == 1 else self.layout.group_label(s)
        return label[:1].upper() + label[1:]

    def tokens(self, s: int) -> bool:
        """Whether group ``s`` holds token-to-token units (labelled by width and patch grid)."""
        return all(self.layout.kind(b) in TOKEN_KINDS for b in self.layout.stages[s])

    def group_channels(self, s: int) -> tuple[int, int]:
        """Channels entering and leaving group ``s`` (a dense block grows; a stage's entry block may change them)."""
        stage = self.layout.stages[s]
        first, last = self.layout.shapes[stage[0]], self.layout.shapes[stage[-1]]
        if self.layout.order == "fixed":
            return first.in_channels, last.out_channels
        return last.out_channels, last.out_channels

    def join_channels(self, s: int) -> tuple[int, int]:
        """Channels into and out of the op between group ``s`` and ``s + 1``."""
        out = self.layout.shapes[self.layout.stages[s][-1]].out_channels
        nxt = self.layout.shapes[self.layout.stages[s + 1][0]].in_channels
        return out, nxt


def _joins(layout: NetLayout, ops: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Op kinds of the full plan that run between groups, and after the last group."""
    group_of = {b: s for s, stage in enumerate(layout.stages) for b in stage}
    between = [""] * max(0, len(layout.stages) - 1)
    tail: list[str] = []
    current = -1
    for kind, index in ops:
        if kind == "block":
            current = group_of[int(index)]
            continue
        if current < 0:
            continue
        if current < len(between):
            between[current] = between[current] or str(kind)
        else:
            tail.append(str(kind))
    return tuple(between), tuple(tail)


def display_order(plan: SubnetPlan, stage: int) -> list[int]:
    """Left-to-right order of a group's boxes: the plan's order, each dropped unit slotted in
    where ``SubnetPlan.restore`` would put it back (:func:`st_app.core.plan.insertion_index`)."""
    order = list(plan.stages[stage])
    active = set(order)
    for b in plan.layout.stages[stage]:
        if b not in active:
            order.insert(insertion_index(plan.layout, order, b), b)
    return order
