"""Sub-network plans: which units run, and in which order, for any model family.

A plan is the one vocabulary shared by the engine, the command line and the app. It is
immutable and hashable so it can key caches (instant accuracy in the GUI, sweeps) and be
written as text (``0,1,2|3,4,5|6,7,8``) in JSON, on the command line and in the status bar.

What a plan may do is not decided here but by the network's :class:`NetLayout`, which each
model family fills in: its units (residual blocks, dense layers, transformer blocks or their
halves), how they group (stages, dense blocks, one encoder), which units may be deleted,
which may trade places (``order``), what an ordered sub-net keeps (``min_keep`` per group) and
how the unraveled view counts paths (``branches_per_unit``, ``paths``). Messages number
groups from 1, as the block graph labels them; units keep their global ids from 0.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .limits import is_ascii_int

__all__ = [
    "BlockShape",
    "NetLayout",
    "ORDER_RULES",
    "PATH_RULES",
    "SubnetPlan",
    "insertion_index",
    "ordered_space",
    "space_size",
    "parse_space",
]

#: How the units of one group may be reordered (a layout's ``order``).
ORDER_RULES = {
    "shape": "units of identical input/output shape may trade places inside their group",
    "fixed": "units run in network order: any may be deleted, none may be permuted",
    "free": "any unit may run at any position of its group",
}

#: How the unraveled view counts paths (a layout's ``paths``); the texts are shown to users.
PATH_RULES = {
    "residual": (
        "Each residual branch is either taken or skipped, so n active branches unravel into 2^n paths; "
        "C(n, k) of them pass through k branches (lengths Binomial(n, 1/2)), and the output is their sum."
    ),
    "dense": (
        "Inside a dense block every layer reads the concatenation of all earlier features, so a path is any "
        "increasing chain of kept layers: a block with n kept layers has 2^n input-to-output chains and C(n, k) "
        "of length k (transitions add no choice). The count equals a ResNet's, but the 2^n ensemble reading "
        "does not carry over: the chains are concatenated into separate channels, not summed into one "
        "feature map, each later layer weighs every earlier layer's channels with its own weights, and a "
        "deleted layer leaves zeros in its channels that the following layers and transition still read."
    ),
}


@dataclass(frozen=True)
class BlockShape:
    """Input/output signature of a unit; in the ``shape`` order rule equal shapes may trade places."""

    in_channels: int
    out_channels: int
    stride: int

    @property
    def changes_shape(self) -> bool:
        return self.in_channels != self.out_channels or self.stride != 1

    def __str__(self) -> str:
        return f"{self.in_channels}->{self.out_channels}, stride {self.stride}"


@dataclass(frozen=True)
class NetLayout:
    """The unit structure of a network, enough to validate plans without the weights.

    ``stages`` holds the groups (ResNet stages, dense blocks, a transformer's one encoder) as
    tuples of global unit ids numbered ``0..U-1`` in network order. Empty ``droppable`` and
    ``kinds`` mean "every unit may be deleted" and "no per-unit kind labels".
    """

    stages: tuple[tuple[int, ...], ...]
    shapes: tuple[BlockShape, ...]
    order: str = "shape"
    droppable: tuple[bool, ...] = ()
    min_keep: int = 1
    branches_per_unit: int = 1
    paths: str = "residual"
    kinds: tuple[str, ...] = ()
    group_name: str = "stage"
    unit_name: str = "block"
    order_reason: str = ""

    def __post_init__(self) -> None:
        flat = [b for stage in self.stages for b in stage]
        if flat != list(range(len(self.shapes))):
            raise ValueError("layout units must be numbered 0..U-1 in network order")
        if self.order not in ORDER_RULES:
            raise ValueError(f"unknown order rule {self.order!r}; choose one of {', '.join(ORDER_RULES)}")
        if self.paths not in PATH_RULES:
            raise ValueError(f"unknown path rule {self.paths!r}; choose one of {', '.join(PATH_RULES)}")
        for name, seq in (("droppable", self.droppable), ("kinds", self.kinds)):
            if seq and len(seq) != len(self.shapes):
                raise ValueError(f"layout {name} must have one entry per unit")

    @property
    def num_blocks(self) -> int:
        return len(self.shapes)

    @property
    def groups(self) -> tuple[tuple[int, ...], ...]:
        """The family-neutral name of ``stages``."""
        return self.stages

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(len(s) for s in self.stages)

    def group_label(self, s: int) -> str:
        """``stage 2``, ``dense block 3``: groups as users see them, numbered from 1."""
        return f"{self.group_name} {s + 1}"

    def can_drop(self, block: int) -> bool:
        return not self.droppable or self.droppable[block]

    def kind(self, block: int) -> str:
        return self.kinds[block] if self.kinds else self.unit_name

    @property
    def path_rule(self) -> str:
        """How this family's unraveled paths are defined (shown beside the path statistics)."""
        return PATH_RULES[self.paths]

    @property
    def order_rule(self) -> str:
        return ORDER_RULES[self.order] + (f" ({self.order_reason})" if self.order_reason else "")

    def stage_of(self, block: int) -> int:
        for s, stage in enumerate(self.stages):
            if block in stage:
                return s
        raise ValueError(f"unknown {self.unit_name} {block}: this network has {self.unit_name}s 0..{self.num_blocks - 1}")

    def full_plan(self) -> SubnetPlan:
        return self._full

    @functools.cached_property
    def _full(self) -> SubnetPlan:  # built (and validated) once: every plain forward asks for it
        return SubnetPlan(self, self.stages)


def _parse_ints(text: str, what: str) -> list[int]:
    out = []
    for tok in text.split(","):
        tok = tok.strip()
        if not tok:
            raise ValueError(f"malformed {what}: empty entry in {text!r}")
        if not is_ascii_int(tok):  # int() would read '１' or '١' as 1
            raise ValueError(f"malformed {what}: {tok!r} is not a block number (ASCII digits)")
        out.append(int(tok))
    return out


@dataclass(frozen=True)
class SubnetPlan:
    """Per group, the global ids of the units that run, in execution order.

    What a missing unit means is the family's: a ResNet block's branch is dropped (an
    identity-shortcut block vanishes, a shape-changing one keeps its projection shortcut); a
    dense layer's features become zeros; a transformer block (or half) is skipped. Which units
    may be permuted is the layout's ``order`` rule.
    """

    layout: NetLayout
    stages: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        stages = tuple(tuple(int(b) for b in s) for s in self.stages)
        object.__setattr__(self, "stages", stages)
        self._validate()

    # ----------------------------------------------------------------- validation
    def _validate(self) -> None:
        lay = self.layout
        unit, group = lay.unit_name, lay.group_name
        if len(self.stages) != len(lay.stages):
            raise ValueError(
                f"wrong number of {group}s: plan has {len(self.stages)}, network has {len(lay.stages)}"
            )
        seen: set[int] = set()
        for s, blocks in enumerate(self.stages):
            for b in blocks:
                if not 0 <= b < lay.num_blocks:
                    raise ValueError(f"unknown {unit} {b}: this network has {unit}s 0..{lay.num_blocks - 1}")
                if b in seen:
                    raise ValueError(f"repeated {unit} {b}: a {unit} may run at most once")
                seen.add(b)
                if b not in lay.stages[s]:
                    raise ValueError(
                        f"{unit} {b} in the wrong {group}: it belongs to {lay.group_label(lay.stage_of(b))}, "
                        f"not {lay.group_label(s)}"
                    )
            self._check_order(s, blocks)
        for b in range(lay.num_blocks):
            if b not in seen and not lay.can_drop(b):
                raise ValueError(f"{unit} {b} cannot be deleted: this network needs it in every sub-net")

    def _check_order(self, s: int, blocks: tuple[int, ...]) -> None:
        lay = self.layout
        if lay.order == "free":
            return
        if lay.order == "fixed":
            for a, b in zip(blocks, blocks[1:]):
                if a > b:
                    raise ValueError(
                        f"{lay.unit_name}s cannot be permuted{': ' + lay.order_reason if lay.order_reason else ''} "
                        f"({lay.unit_name} {a} is listed before {b} in {lay.group_label(s)}); "
                        f"a {lay.unit_name} may only be deleted"
                    )
            return
        stage = lay.stages[s]
        entry = lay.shapes[stage[0]]
        # Track (channels, already downsampled) through the stage. A dropped shape-changing
        # entry block still applies its projection, so the rest sees its output shape.
        channels, downsampled = entry.in_channels, False
        if entry.changes_shape and stage[0] not in blocks:
            channels, downsampled = entry.out_channels, entry.stride != 1
        for pos, b in enumerate(blocks):
            shape = lay.shapes[b]
            if shape.in_channels != channels or (shape.stride != 1 and downsampled):
                raise ValueError(
                    f"permuting {lay.unit_name}s of different shapes: {lay.unit_name} {b} ({shape}) cannot run at "
                    f"position {pos + 1} of {lay.group_label(s)}; only {lay.unit_name}s of identical shape may be "
                    "permuted"
                )
            channels, downsampled = shape.out_channels, downsampled or shape.stride != 1

    # ------------------------------------------------------------------ text form
    @classmethod
    def parse(cls, text: str, layout: NetLayout) -> SubnetPlan:
        """Read ``0,1|3,4,5|6``, ``depths:1,2,1``, ``full`` or ``main``."""
        if not isinstance(text, str):
            raise ValueError(f"malformed plan: expected text, got {type(text).__name__}")
        t = text.strip()
        if t in ("full", "main"):
            return layout.full_plan()
        if t.startswith("depths:"):
            return cls.from_depths(layout, _parse_ints(t[len("depths:"):], "depths"))
        parts = t.split("|")
        if len(parts) != len(layout.stages):
            raise ValueError(
                f"malformed plan {text!r}: expected {len(layout.stages)} {layout.group_name}s joined by '|', "
                f"got {len(parts)}"
            )
        stages = [tuple(_parse_ints(p, f"plan {text!r}")) if p.strip() else () for p in parts]
        return cls(layout, tuple(stages))

    def __str__(self) -> str:
        return "|".join(",".join(str(b) for b in s) for s in self.stages)

    def __repr__(self) -> str:
        return f"SubnetPlan('{self}')"

    # --------------------------------------------------------------- constructors
    @classmethod
    def from_depths(cls, layout: NetLayout, depths: Sequence[int]) -> SubnetPlan:
        """The ordered sub-net keeping the first ``depths[s]`` units of each group."""
        if len(depths) != len(layout.stages):
            raise ValueError(
                f"malformed depths: expected {len(layout.stages)} values (one per {layout.group_name}), "
                f"got {len(depths)}"
            )
        stages = []
        for s, (d, stage) in enumerate(zip(depths, layout.stages)):
            if not 0 <= d <= len(stage):
                raise ValueError(f"depth {d} out of range for {layout.group_label(s)} (0..{len(stage)})")
            stages.append(stage[:d])
        return cls(layout, tuple(stages))

    # ----------------------------------------------------------------- properties
    @property
    def blocks(self) -> tuple[int, ...]:
        return tuple(b for s in self.stages for b in s)

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(len(s) for s in self.stages)

    @property
    def num_branches(self) -> int:
        """Branches of the unraveled view the plan keeps (a transformer block holds two)."""
        return len(self.blocks) * self.layout.branches_per_unit

    @property
    def num_paths(self) -> int:
        """Paths of the unraveled view (see the layout's ``path_rule``)."""
        return 2 ** self.num_branches

    def paths_by_length(self) -> list[int]:
        """Binomial count of unraveled paths through k of the kept branches, k = 0..n."""
        n = self.num_branches
        return [math.comb(n, k) for k in range(n + 1)]

    @property
    def is_full(self) -> bool:
        return self.stages == self.layout.stages

    @property
    def is_ordered(self) -> bool:
        """True when every group keeps a prefix of its units in network order."""
        return all(s == full[: len(s)] for s, full in zip(self.stages, self.layout.stages))

    # ----------------------------------------------------------------- operations
    def _replace_stage(self, s: int, blocks: Iterable[int]) -> SubnetPlan:
        stages = list(self.stages)
        stages[s] = tuple(blocks)
        return SubnetPlan(self.layout, tuple(stages))

    def delete(self, block: int) -> SubnetPlan:
        unit = self.layout.unit_name
        s = self.layout.stage_of(block)
        if block not in self.stages[s]:
            raise ValueError(f"{unit} {block} is not in the plan, so it cannot be deleted")
        if not self.layout.can_drop(block):
            raise ValueError(f"{unit} {block} cannot be deleted: this network needs it in every sub-net")
        return self._replace_stage(s, (b for b in self.stages[s] if b != block))

    def restore(self, block: int) -> SubnetPlan:
        """Put a dropped unit back where network order places it among the others."""
        s = self.layout.stage_of(block)
        cur = list(self.stages[s])
        if block in cur:
            raise ValueError(f"{self.layout.unit_name} {block} is already in the plan")
        cur.insert(insertion_index(self.layout, cur, block), block)
        return self._replace_stage(s, cur)

    def toggle(self, block: int) -> SubnetPlan:
        s = self.layout.stage_of(block)
        return self.delete(block) if block in self.stages[s] else self.restore(block)

    def swap(self, i: int, j: int) -> SubnetPlan:
        lay = self.layout
        unit = lay.unit_name
        si, sj = lay.stage_of(i), lay.stage_of(j)
        if si != sj:
            raise ValueError(
                f"{unit}s {i} and {j} are in different {lay.group_name}s ({si + 1} and {sj + 1}); "
                f"{unit}s may only be permuted inside their {lay.group_name}"
            )
        cur = list(self.stages[si])
        for b in (i, j):
            if b not in cur:
                raise ValueError(f"{unit} {b} is not in the plan, so it cannot be moved")
        if lay.order == "fixed" and i != j:
            raise ValueError(
                f"{unit}s cannot be permuted{': ' + lay.order_reason if lay.order_reason else ''}; "
                f"a {unit} may only be deleted"
            )
        if lay.order == "shape" and lay.shapes[i] != lay.shapes[j]:
            raise ValueError(
                f"permuting {unit}s of different shapes: {unit} {i} ({lay.shapes[i]}) and "
                f"{unit} {j} ({lay.shapes[j]})"
            )
        a, b = cur.index(i), cur.index(j)
        cur[a], cur[b] = cur[b], cur[a]
        return self._replace_stage(si, cur)

    def move(self, block: int, offset: int) -> SubnetPlan:
        """Move a unit ``offset`` places left (<0) or right (>0) inside its group."""
        lay = self.layout
        s = lay.stage_of(block)
        cur = self.stages[s]
        if block not in cur:
            raise ValueError(f"{lay.unit_name} {block} is not in the plan, so it cannot be moved")
        target = cur.index(block) + offset
        if not 0 <= target < len(cur):
            raise ValueError(
                f"{lay.unit_name} {block} cannot move {offset:+d}: it would leave {lay.group_label(s)}"
            )
        return self.swap(block, cur[target])

    def move_to(self, block: int, index: int) -> SubnetPlan:
        """Run ``block`` at position ``index`` (0-based, clamped) among its group's running units."""
        s = self.layout.stage_of(block)
        if block not in self.stages[s]:
            raise ValueError(f"{self.layout.unit_name} {block} is off; turn it on before moving it")
        order = [b for b in self.stages[s] if b != block]
        order.insert(max(0, min(int(index), len(order))), block)
        return self._replace_stage(s, order)

    # ------------------------------------------------------------------ sampling
    @classmethod
    def sample(
        cls,
        layout: NetLayout,
        rng: random.Random,
        space: Sequence[Sequence[int]] | None = None,
    ) -> SubnetPlan:
        """Ordered residual sampling: per group drop k trailing units, k uniform in the space."""
        space = _check_space(layout, space)
        depths = [len(stage) - rng.choice(drops) for stage, drops in zip(layout.stages, space)]
        return cls.from_depths(layout, depths)


def insertion_index(layout: NetLayout, order: Sequence[int], block: int) -> int:
    """Where a unit that is not in ``order`` (one group's units, in run order) goes back in.

    Under the ``shape`` order rule (ResNets) a shape-changing block goes first (nothing else
    can run before it); any other unit goes before the first unit with a higher id, i.e. where
    network order places it. ``restore`` and the app's block graph (which slots dropped units
    among the running ones) share it.
    """
    if layout.order == "shape" and layout.shapes[block].changes_shape:
        return 0
    return next((i for i, b in enumerate(order) if b > block), len(order))


def _check_space(layout: NetLayout, space: Sequence[Sequence[int]] | None) -> list[list[int]]:
    """Per-group allowed numbers of trailing units to drop; default ``0..n-min_keep``."""
    keep = layout.min_keep
    if space is None:
        return [list(range(max(1, len(stage) - keep + 1))) for stage in layout.stages]
    if len(space) != len(layout.stages):
        raise ValueError(
            f"malformed space: expected {len(layout.stages)} per-{layout.group_name} drop ranges, got {len(space)}"
        )
    out = []
    unit, group = layout.unit_name, layout.group_name
    for s, (drops, stage) in enumerate(zip(space, layout.stages)):
        drops = sorted(set(int(k) for k in drops))
        most = max(0, len(stage) - keep)
        if not drops:
            raise ValueError(f"malformed space: {layout.group_label(s)} allows no drop count")
        if drops[0] < 0 or drops[-1] > most:
            first = f"first {unit}" if keep == 1 else f"first {keep} {unit}s"
            raise ValueError(
                f"space for {layout.group_label(s)} must drop between 0 and {most} {unit}s "
                f"(ordered sampling keeps each {group}'s {first})"
            )
        out.append(drops)
    return out


def parse_space(text: str, layout: NetLayout) -> list[list[int]]:
    """Read a per-group drop space like ``0|0-1|0-3|0`` (ranges or comma lists per group)."""
    parts = text.split("|")
    space: list[list[int]] = []
    unit, group = layout.unit_name, layout.group_name
    for s, p in enumerate(parts):
        most = max(0, len(layout.stages[s]) - layout.min_keep) if s < len(layout.stages) else 0
        vals: list[int] = []
        for tok in p.split(","):
            tok = tok.strip()
            ends = tok.split("-", 1) if "-" in tok else [tok]
            if not all(is_ascii_int(e) and not e.strip().startswith(("+", "-")) for e in ends):
                raise ValueError(f"malformed space {text!r}: {tok!r} is not a number or range (ASCII digits)")
            lo, hi = int(ends[0]), int(ends[-1])
            if hi > most:  # checked before range() so '0-99999999999999' cannot exhaust memory
                raise ValueError(f"space for {layout.group_label(s)} must drop between 0 and {most} {unit}s, got "
                                 f"{tok!r} (ordered sampling keeps each {group}'s first {unit})")
            vals.extend(range(lo, hi + 1))
        space.append(vals)
    return _check_space(layout, space)


def space_size(layout: NetLayout, space: Sequence[Sequence[int]] | None = None) -> int:
    return math.prod(len(d) for d in _check_space(layout, space))


def ordered_space(layout: NetLayout, space: Sequence[Sequence[int]] | None = None) -> list[SubnetPlan]:
    """Every ordered sub-net of the space, smallest-first per group (ResNet-56: 729 plans)."""
    space = _check_space(layout, space)
    depth_choices = [sorted(len(stage) - k for k in drops) for stage, drops in zip(layout.stages, space)]
    return [SubnetPlan.from_depths(layout, d) for d in itertools.product(*depth_choices)]
