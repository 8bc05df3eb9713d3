"""Sub-network plans: which residual blocks run, and in which order.

A plan is the one vocabulary shared by the engine, the command line and the app. It is
immutable and hashable so it can key caches (instant accuracy in the GUI, sweeps) and be
written as text (``0,1,2|3,4,5|6,7,8``) in JSON, on the command line and in the status bar.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .limits import is_ascii_int

__all__ = ["BlockShape", "NetLayout", "SubnetPlan", "insertion_index", "ordered_space", "space_size", "parse_space"]


@dataclass(frozen=True)
class BlockShape:
    """Input/output signature of a residual block; equal shapes may trade places."""

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
    """The block structure of a residual net, enough to validate plans without the weights."""

    stages: tuple[tuple[int, ...], ...]
    shapes: tuple[BlockShape, ...]

    def __post_init__(self) -> None:
        flat = [b for stage in self.stages for b in stage]
        if flat != list(range(len(self.shapes))):
            raise ValueError("layout blocks must be numbered 0..B-1 in network order")

    @property
    def num_blocks(self) -> int:
        return len(self.shapes)

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(len(s) for s in self.stages)

    def stage_of(self, block: int) -> int:
        for s, stage in enumerate(self.stages):
            if block in stage:
                return s
        raise ValueError(f"unknown block {block}: this network has blocks 0..{self.num_blocks - 1}")

    def full_plan(self) -> SubnetPlan:
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
    """Per stage, the global ids of the blocks whose branch runs, in execution order.

    A block missing from its stage has its branch dropped: an identity-shortcut block then
    vanishes, a shape-changing block still applies its projection shortcut. Only blocks of
    identical shape may be permuted, and only within their own stage.
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
        if len(self.stages) != len(lay.stages):
            raise ValueError(
                f"wrong number of stages: plan has {len(self.stages)}, network has {len(lay.stages)}"
            )
        seen: set[int] = set()
        for s, blocks in enumerate(self.stages):
            for b in blocks:
                if not 0 <= b < lay.num_blocks:
                    raise ValueError(
                        f"unknown block {b}: this network has blocks 0..{lay.num_blocks - 1}"
                    )
                if b in seen:
                    raise ValueError(f"repeated block {b}: a block may run at most once")
                seen.add(b)
                if b not in lay.stages[s]:
                    raise ValueError(
                        f"block {b} in the wrong stage: it belongs to stage {lay.stage_of(b) + 1}, "
                        f"not stage {s + 1}"
                    )
            self._check_shapes(s, blocks)

    def _check_shapes(self, s: int, blocks: tuple[int, ...]) -> None:
        lay = self.layout
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
                    f"permuting blocks of different shapes: block {b} ({shape}) cannot run at "
                    f"position {pos + 1} of stage {s + 1}; only blocks of identical shape may be permuted"
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
                f"malformed plan {text!r}: expected {len(layout.stages)} stages joined by '|', "
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
        """The ordered sub-net keeping the first ``depths[s]`` blocks of each stage."""
        if len(depths) != len(layout.stages):
            raise ValueError(
                f"malformed depths: expected {len(layout.stages)} values, got {len(depths)}"
            )
        stages = []
        for s, (d, stage) in enumerate(zip(depths, layout.stages)):
            if not 0 <= d <= len(stage):
                raise ValueError(f"depth {d} out of range for stage {s + 1} (0..{len(stage)})")
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
    def num_paths(self) -> int:
        """Paths of the unraveled view: each active branch is taken or skipped."""
        return 2 ** len(self.blocks)

    def paths_by_length(self) -> list[int]:
        """Binomial count of unraveled paths through k of the active branches, k = 0..n."""
        n = len(self.blocks)
        return [math.comb(n, k) for k in range(n + 1)]

    @property
    def is_full(self) -> bool:
        return self.stages == self.layout.stages

    @property
    def is_ordered(self) -> bool:
        """True when every stage keeps a prefix of its blocks in network order."""
        return all(s == full[: len(s)] for s, full in zip(self.stages, self.layout.stages))

    # ----------------------------------------------------------------- operations
    def _replace_stage(self, s: int, blocks: Iterable[int]) -> SubnetPlan:
        stages = list(self.stages)
        stages[s] = tuple(blocks)
        return SubnetPlan(self.layout, tuple(stages))

    def delete(self, block: int) -> SubnetPlan:
        s = self.layout.stage_of(block)
        if block not in self.stages[s]:
            raise ValueError(f"block {block} is not in the plan, so it cannot be deleted")
        return self._replace_stage(s, (b for b in self.stages[s] if b != block))

    def restore(self, block: int) -> SubnetPlan:
        """Put a dropped block back where network order places it among the others."""
        s = self.layout.stage_of(block)
        cur = list(self.stages[s])
        if block in cur:
            raise ValueError(f"block {block} is already in the plan")
        cur.insert(insertion_index(self.layout, cur, block), block)
        return self._replace_stage(s, cur)

    def toggle(self, block: int) -> SubnetPlan:
        s = self.layout.stage_of(block)
        return self.delete(block) if block in self.stages[s] else self.restore(block)

    def swap(self, i: int, j: int) -> SubnetPlan:
        si, sj = self.layout.stage_of(i), self.layout.stage_of(j)
        if si != sj:
            raise ValueError(
                f"blocks {i} and {j} are in different stages ({si + 1} and {sj + 1}); "
                "blocks may only be permuted inside their stage"
            )
        cur = list(self.stages[si])
        for b in (i, j):
            if b not in cur:
                raise ValueError(f"block {b} is not in the plan, so it cannot be moved")
        if self.layout.shapes[i] != self.layout.shapes[j]:
            raise ValueError(
                f"permuting blocks of different shapes: block {i} ({self.layout.shapes[i]}) and "
                f"block {j} ({self.layout.shapes[j]})"
            )
        a, b = cur.index(i), cur.index(j)
        cur[a], cur[b] = cur[b], cur[a]
        return self._replace_stage(si, cur)

    def move(self, block: int, offset: int) -> SubnetPlan:
        """Move a block ``offset`` places left (<0) or right (>0) inside its stage."""
        s = self.layout.stage_of(block)
        cur = self.stages[s]
        if block not in cur:
            raise ValueError(f"block {block} is not in the plan, so it cannot be moved")
        target = cur.index(block) + offset
        if not 0 <= target < len(cur):
            raise ValueError(f"block {block} cannot move {offset:+d}: it would leave stage {s + 1}")
        return self.swap(block, cur[target])

    def move_to(self, block: int, index: int) -> SubnetPlan:
        """Run ``block`` at position ``index`` (0-based, clamped) among its stage's running blocks."""
        s = self.layout.stage_of(block)
        if block not in self.stages[s]:
            raise ValueError(f"block {block} is off; turn it on before moving it")
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
        """Ordered residual sampling: per stage drop k trailing blocks, k uniform in the space."""
        space = _check_space(layout, space)
        depths = [len(stage) - rng.choice(drops) for stage, drops in zip(layout.stages, space)]
        return cls.from_depths(layout, depths)


def insertion_index(layout: NetLayout, order: Sequence[int], block: int) -> int:
    """Where a block that is not in ``order`` (one stage's blocks, in run order) goes back in.

    A shape-changing block goes first (nothing else can run before it); any other block goes
    before the first block with a higher id, i.e. where network order places it. ``restore``
    and the app's block graph (which slots dropped blocks among the running ones) share it.
    """
    if layout.shapes[block].changes_shape:
        return 0
    return next((i for i, b in enumerate(order) if b > block), len(order))


def _check_space(layout: NetLayout, space: Sequence[Sequence[int]] | None) -> list[list[int]]:
    """Per-stage allowed numbers of trailing blocks to drop; default ``0..n-1`` (keep one)."""
    if space is None:
        return [list(range(len(stage))) for stage in layout.stages]
    if len(space) != len(layout.stages):
        raise ValueError(
            f"malformed space: expected {len(layout.stages)} per-stage drop ranges, got {len(space)}"
        )
    out = []
    for s, (drops, stage) in enumerate(zip(space, layout.stages)):
        drops = sorted(set(int(k) for k in drops))
        if not drops:
            raise ValueError(f"malformed space: stage {s + 1} allows no drop count")
        if drops[0] < 0 or drops[-1] > len(stage) - 1:
            raise ValueError(
                f"space for stage {s + 1} must drop between 0 and {len(stage) - 1} blocks "
                "(ordered sampling keeps each stage's first block)"
            )
        out.append(drops)
    return out


def parse_space(text: str, layout: NetLayout) -> list[list[int]]:
    """Read a per-stage drop space like ``0|0-1|0-3|0`` (ranges or comma lists per stage)."""
    parts = text.split("|")
    space: list[list[int]] = []
    for s, p in enumerate(parts):
        most = len(layout.stages[s]) - 1 if s < len(layout.stages) else 0
        vals: list[int] = []
        for tok in p.split(","):
            tok = tok.strip()
            ends = tok.split("-", 1) if "-" in tok else [tok]
            if not all(is_ascii_int(e) and not e.strip().startswith(("+", "-")) for e in ends):
                raise ValueError(f"malformed space {text!r}: {tok!r} is not a number or range (ASCII digits)")
            lo, hi = int(ends[0]), int(ends[-1])
            if hi > most:  # checked before range() so '0-99999999999999' cannot exhaust memory
                raise ValueError(f"space for stage {s + 1} must drop between 0 and {most} blocks, got {tok!r} "
                                 "(ordered sampling keeps each stage's first block)")
            vals.extend(range(lo, hi + 1))
        space.append(vals)
    return _check_space(layout, space)


def space_size(layout: NetLayout, space: Sequence[Sequence[int]] | None = None) -> int:
    return math.prod(len(d) for d in _check_space(layout, space))


def ordered_space(layout: NetLayout, space: Sequence[Sequence[int]] | None = None) -> list[SubnetPlan]:
    """Every ordered sub-net of the space, smallest-first per stage (ResNet-56: 729 plans)."""
    space = _check_space(layout, space)
    depth_choices = [sorted(len(stage) - k for k in drops) for stage, drops in zip(layout.stages, space)]
    return [SubnetPlan.from_depths(layout, d) for d in itertools.product(*depth_choices)]
