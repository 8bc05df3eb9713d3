"""Where the block graph's groups, joins and unit slots go: rows packed to fit the view.

Pure geometry (no Qt). Groups are laid out left to right in network order; a group that
does not fit the row's remaining width starts a new row, and a group longer than a row is
split into balanced chunks (each chunk one row, labelled "continued"). The op between two
groups (a DenseNet transition) gets a node of its own. Of all row widths, the one whose
drawing fits the view at the largest scale wins, so a short network stays one row like the
paper's figure and a DenseNet-264 (64 layers in one block) wraps into rows that stay legible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .graph_items import NODE_W, ROW_H, SLOT_W, STAGE_GAP, STAGE_PAD
from .network_info import NetworkInfo

__all__ = ["DEFAULT_VIEW", "LEGIBLE_SCALE", "GraphLayout", "Segment", "choose_layout", "fit_scale", "unit_width"]

#: the block graph's viewport at 1280x720 (used before the view is shown)
DEFAULT_VIEW = (1230.0, 380.0)
MAX_FIT = 1.6  # fit() never enlarges more than this
INPUT_W = 74.0  # the input label's column
LEFT = INPUT_W + NODE_W  # rows start after the input and the stem
HALF_W = 120.0  # a transformer block's second residual half starts here
TRANSFORMER_W = HALF_W + SLOT_W
LEGEND_H = 70.0  # the key under the graph (approximate; it is drawn after packing)
#: at this scale a box's 17 px number shows 12 px tall: legible without enlarging the labels
LEGIBLE_SCALE = 12.0 / 17.0


def unit_width(kind: str) -> float:
    """Scene width of one unit's slot: a transformer block holds its two residual halves."""
    return TRANSFORMER_W if kind == "transformer" else SLOT_W


@dataclass
class Segment:
    """One piece of a row: ``count`` units of a group from ``start`` on, or the join after group ``group``."""

    kind: str  # "group" | "join"
    group: int
    start: int = 0
    count: int = 0
    x: float = 0.0
    width: float = 0.0

    @property
    def continued(self) -> bool:
        return self.kind == "group" and self.start > 0


@dataclass
class GraphLayout:
    """Rows of segments with x positions; ``slot_w[g]`` is the width of each unit slot of group ``g``."""

    rows: list[list[Segment]] = field(default_factory=list)
    slot_w: list[float] = field(default_factory=list)
    row_ends: list[float] = field(default_factory=list)
    cap: float = 0.0

    @property
    def width(self) -> float:
        """Everything drawn: input, stem, the widest row, head and logits, margins."""
        return max(self.row_ends, default=LEFT) + 6 + NODE_W + INPUT_W + 48

    @property
    def height(self) -> float:
        return len(self.rows) * ROW_H + LEGEND_H

    def signature(self) -> tuple[tuple[tuple[str, int, int, int], ...], ...]:
        return tuple(tuple((s.kind, s.group, s.start, s.count) for s in row) for row in self.rows)


def _pack(info: NetworkInfo, slot_w: list[float], cap: float) -> GraphLayout:
    layout = info.layout
    rows: list[list[Segment]] = [[]]
    used = [0.0]

    def place(seg: Segment) -> None:
        if rows[-1]:
            used[0] += STAGE_GAP
        seg.x = LEFT + used[0] + (STAGE_PAD if seg.kind == "group" else 0.0)
        used[0] += seg.width
        rows[-1].append(seg)

    def room(width: float) -> bool:
        return used[0] + (STAGE_GAP if rows[-1] else 0.0) + width <= cap + 1e-6

    def new_row() -> None:
        if rows[-1]:
            rows.append([])
            used[0] = 0.0

    for g, stage in enumerate(layout.stages):
        n, sw = len(stage), slot_w[g]
        whole = 2 * STAGE_PAD + n * sw
        if room(whole) or (not rows[-1] and whole <= cap):
            place(Segment("group", g, 0, n, width=whole))
        elif whole <= cap:
            new_row()
            place(Segment("group", g, 0, n, width=whole))
        else:
            per = max(1, int((cap - 2 * STAGE_PAD) // sw))
            chunks = math.ceil(n / per)
            base, extra = divmod(n, chunks)
            start = 0
            for c in range(chunks):
                count = base + (1 if c < extra else 0)
                new_row()
                place(Segment("group", g, start, count, width=2 * STAGE_PAD + count * sw))
                start += count
        if g < len(info.between) and info.between[g]:
            if not room(NODE_W):
                new_row()
            place(Segment("join", g, width=NODE_W))
    rows = [r for r in rows if r]
    ends = []
    for row in rows:
        last = row[-1]
        ends.append(last.x + last.width - (STAGE_PAD if last.kind == "group" else 0.0))
    return GraphLayout(rows, slot_w, ends, cap)


def fit_scale(graph: GraphLayout, view: tuple[float, float]) -> float:
    """The zoom at which ``fit()`` shows the whole drawing in a viewport of ``view`` pixels."""
    return min(MAX_FIT, view[0] / graph.width, view[1] / graph.height)


def choose_layout(info: NetworkInfo, view: tuple[float, float] = DEFAULT_VIEW) -> GraphLayout:
    """The packing of ``info``'s groups to draw in ``view``: the fewest rows that are legible at
    their fitted scale (resnet20 stays one row, like the paper's figure), else the largest scale."""
    layout = info.layout
    slot_w = [max(unit_width(layout.kind(b)) for b in stage) for stage in layout.stages]
    widest = max([2 * STAGE_PAD + w for w in slot_w] + [NODE_W])
    single = sum(2 * STAGE_PAD + len(s) * w for s, w in zip(layout.stages, slot_w)) + \
        (len(layout.stages) - 1) * STAGE_GAP + sum(NODE_W + STAGE_GAP for j in info.between if j)
    # row widths to try: every whole number of slots of each width, and a fine grid up to one row
    caps = sorted({single, *(2 * STAGE_PAD + k * w for w in set(slot_w)
                             for k in range(1, max(len(s) for s in layout.stages) + 1)),
                   *(widest + i * SLOT_W / 4 for i in range(int((single - widest) / (SLOT_W / 4)) + 1))})
    best: GraphLayout | None = None
    best_key: tuple[bool, int, float] = (False, 0, -1.0)
    for cap in caps:
        if cap < widest - 1e-6:
            continue
        graph = _pack(info, slot_w, cap)
        scale = round(fit_scale(graph, view), 3)
        legible = scale >= LEGIBLE_SCALE
        key = (legible, -len(graph.rows) if legible else 0, scale)
        if key > best_key:
            best, best_key = graph, key
    assert best is not None
    return best
