"""Building the block graph's scene: frames and labels of groups, joins, stem, head, wires, units.

A mixin of :class:`.block_graph.BlockGraphView` (which owns the state and the interaction);
kept apart so each module stays small. Which item a unit gets follows the layout: a dense
layer under the ``fixed`` order rule, a two-half transformer block for the ``transformer``
kind, else a residual block.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFontMetricsF, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsScene, QGraphicsSimpleTextItem

from ..style import stage_color
from .graph_items import (
    FRAME_BOTTOM,
    FRAME_TOP,
    MID_Y,
    NODE_W,
    ROW_H,
    STAGE_PAD,
    BlockItem,
    _Look,
)
from .graph_layout import INPUT_W, LEFT, GraphLayout
from .graph_nodes import _EndItem, _NodeItem, _WireItem
from .legends import ImportanceLegendItem, LegendItem, legend_entries
from .network_info import NetworkInfo, plural
from .unit_items import DenseLayerItem, TransformerBlockItem

__all__ = ["GraphBuilder"]


class GraphBuilder:
    """Scene building for :class:`~.block_graph.BlockGraphView` (a mixin: it reads the view's state)."""

    _look: _Look
    _items: dict[int, BlockItem]
    _slots: list[list[QPointF]]
    _labels: list[tuple[QGraphicsSimpleTextItem, list[str], float]]
    _legend: LegendItem | None
    _importance_legend: ImportanceLegendItem | None

    if TYPE_CHECKING:  # provided by QGraphicsView and the view (never defined here: they would shadow them)
        def scene(self) -> QGraphicsScene: ...

        def _update_scene_rect(self) -> None: ...

        def _item_signals(self, item: BlockItem) -> None: ...

    def _label_font(self):  # noqa: ANN202 - QFont
        return self._look.font(14 if self._look.presentation else 13, bold=True, boost=self._look.boost > 1.0)

    def _fit_label(self, text: QGraphicsSimpleTextItem, variants: list[str], room: float) -> None:
        """The longest variant of a group's label that fits its frame (elided as a last resort)."""
        font = self._label_font()
        fm = QFontMetricsF(font)
        chosen = next((v for v in variants if fm.horizontalAdvance(v) <= room), None)
        if chosen is None:
            chosen = fm.elidedText(variants[-1], Qt.TextElideMode.ElideRight, room)
        text.setFont(font)
        text.setText(chosen)

    # --------------------------------------------------------------- building
    def _build(self, info: NetworkInfo, graph: GraphLayout) -> None:
        layout, look, scene = info.layout, self._look, self.scene()
        self._slots = [[QPointF() for _ in stage] for stage in layout.stages]
        group_rows: dict[int, set[int]] = {}
        row_starts: list[float] = []
        for r, row in enumerate(graph.rows):
            y = r * ROW_H
            prev_end: float | None = None
            for seg in row:
                left = seg.x if seg.kind == "join" else seg.x
                if prev_end is not None:
                    self._wire([(prev_end, y + MID_Y), (left, y + MID_Y)])
                else:
                    row_starts.append(left)
                if seg.kind == "join":
                    self._join_node(info, seg.group, QPointF(seg.x, y))
                    prev_end = seg.x + NODE_W
                    continue
                sw = graph.slot_w[seg.group]
                self._frame(info, seg.group, seg.start, seg.count, QRectF(
                    seg.x - STAGE_PAD, y + FRAME_TOP, seg.width, FRAME_BOTTOM - FRAME_TOP))
                for i in range(seg.count):
                    self._slots[seg.group][seg.start + i] = QPointF(seg.x + i * sw, y)
                group_rows.setdefault(seg.group, set()).add(r)
                prev_end = seg.x + seg.count * sw
        self._wire([(LEFT, MID_Y), (row_starts[0], MID_Y)])  # stem to the first group
        self._ends(info, graph, row_starts)

        legend = self._legend = LegendItem(look, legend_entries(info))
        legend.setPos(INPUT_W, (len(graph.rows) - 1) * ROW_H + FRAME_BOTTOM + 18)
        scene.addItem(legend)
        self._importance_legend = ImportanceLegendItem(look)  # under the on/off key, hidden
        self._importance_legend.setPos(INPUT_W, legend.y() + legend.boundingRect().height() + 14)
        scene.addItem(self._importance_legend)
        self._add_items(info, group_rows)
        self._update_scene_rect()

    def _add_items(self, info: NetworkInfo, group_rows: dict[int, set[int]]) -> None:
        layout = info.layout
        unit, group = layout.unit_name, layout.group_name
        hint = {"shape": "drag sideways: reorder in its stage" if group == "stage" else
                f"drag sideways: reorder in its {group}",
                "free": f"drag: run it anywhere in its {group}",
                "fixed": f"{plural(unit)} are never moved"}[layout.order]
        for s, stage in enumerate(layout.stages):
            for b in stage:
                sh, kind = layout.shapes[b], layout.kind(b)
                kw: dict[str, Any] = {"kind": kind, "names": (unit, group, info.group_title(s)),
                                      "draggable": layout.order != "fixed", "order_hint": hint}
                args = (b, s, sh.in_channels, sh.out_channels, sh.stride, self._look)
                item: BlockItem
                if layout.order == "fixed":
                    item = DenseLayerItem(*args, bus=info.group_channels(s), **kw)
                elif kind == "transformer":
                    item = TransformerBlockItem(*args, **kw)
                else:
                    item = BlockItem(*args, **kw)
                item.drag_vertical = len(group_rows.get(s, ())) > 1
                self._item_signals(item)
                self.scene().addItem(item)
                self._items[b] = item
        if layout.order == "fixed":  # the bus bends to the main line where a row of its group starts or ends
            for s, slots in enumerate(self._slots):
                ys = [p.y() for p in slots]
                for i, b in enumerate(layout.stages[s]):
                    item = self._items[b]
                    assert isinstance(item, DenseLayerItem)
                    item.set_row_ends(i == 0 or ys[i - 1] != ys[i], i == len(ys) - 1 or ys[i + 1] != ys[i])

    def _frame(self, info: NetworkInfo, s: int, start: int, count: int, frame: QRectF) -> None:
        """A group's (or a row's part of a group's) tinted frame and its label."""
        layout, scene = info.layout, self.scene()
        color = QColor(stage_color(s))
        fill = QColor(color)
        fill.setAlpha(20)
        edge = QColor(color)
        edge.setAlpha(110)
        path = QPainterPath()
        path.addRoundedRect(frame, 10, 10)
        frame_item = scene.addPath(path, QPen(edge, 1.2), QBrush(fill))
        frame_item.setZValue(0)
        stage = layout.stages[s]
        size = info.stage_sizes()[s]
        c_in, c_out = info.group_channels(s)
        width = (f"width {c_out}" if info.tokens(s) else
                 f"{c_in}→{c_out} channels" if c_in != c_out else f"{c_out} channels")
        grid = f"{size}×{size}" + (" patch grid" if info.tokens(s) else "")  # a grid of tokens, not a patch size
        title = info.group_title(s) + (" (continued)" if start > 0 else "")
        units = f"{len(stage)} {plural(layout.unit_name, len(stage))}"
        variants = [f"{title}  ·  {width}  ·  {grid}" + ("" if start else f"  ·  {units}"),
                    f"{title}  ·  {width}" + ("" if start else f"  ·  {units}"),
                    title + ("" if start else f"  ·  {units}"), title]
        if self._look.compact:
            variants = variants[2:]
        text = scene.addSimpleText("")
        text.setBrush(color.darker(135))
        text.setPos(frame.left() + 10, frame.top() + 6)
        text.setZValue(1)
        room = frame.width() - 20
        self._labels.append((text, variants, room))
        self._fit_label(text, variants, room)
        rule = layout.order_rule
        frame_item.setToolTip(
            f"{info.group_title(s)}: {plural(layout.unit_name)} {stage[0]}–{stage[-1]}, {width} at {grid}. "
            f"{rule[:1].upper()}{rule[1:]}.")

    def _join_node(self, info: NetworkInfo, s: int, at: QPointF) -> None:
        """The op between group ``s`` and the next (a transition): part of every sub-network."""
        kind = info.between[s]
        c_in, c_out = info.join_channels(s)
        sizes = info.stage_sizes()
        lines = [f"{c_in}→{c_out} ch"]
        if sizes[s] != sizes[s + 1]:
            lines.append(f"{sizes[s]}×{sizes[s]} → {sizes[s + 1]}×{sizes[s + 1]}")
        node = _NodeItem(kind.capitalize(), lines, self._look,
                         f"{kind.capitalize()} between {info.group_title(s)} and {info.group_title(s + 1)}: "
                         f"{c_in} → {c_out} channels, {sizes[s]}×{sizes[s]} → {sizes[s + 1]}×{sizes[s + 1]}; "
                         "part of every sub-network.", True, True)
        node.setPos(at)
        self.scene().addItem(node)

    def _ends(self, info: NetworkInfo, graph: GraphLayout, row_starts: list[float]) -> None:
        """Input, stem, the wires between rows, head and logits."""
        scene, look = self.scene(), self._look
        stem = _NodeItem("Stem", self._wrap(info.stem_text or f"conv {info.stem_kernel}x{info.stem_kernel}, "
                                            f"{info.stem_channels}"), look,
                         f"Stem: {info.stem_text or 'the first convolution'}; part of every sub-network.", True, True)
        stem.setPos(INPUT_W, 0)
        scene.addItem(stem)
        inp = _EndItem(f"input\n{info.in_channels}×{info.image_size}×{info.image_size}", look, True)
        inp.setPos(0, 0)
        scene.addItem(inp)
        last_y = (len(graph.rows) - 1) * ROW_H
        end = graph.row_ends[-1]
        lines = ["classifier", f"→ {info.num_classes} classes"]
        if "norm" in info.tail:
            lines.insert(0, "final norm")
        head = _NodeItem("Head", lines, look, "Head: " + ("the final norm, " if "norm" in info.tail else "")
                         + "the read-out and the classifier; part of every sub-network.", True, True)
        head.setPos(end + 6, last_y)
        scene.addItem(head)
        self._wire([(end, last_y + MID_Y), (end + 6, last_y + MID_Y)])
        out = _EndItem(f"logits\n({info.num_classes})", look, True)
        out.setPos(end + 6 + NODE_W, last_y)
        scene.addItem(out)
        for r in range(len(graph.rows) - 1):  # down from a row's end, back to the next row's start
            y0, y1 = r * ROW_H + MID_Y, (r + 1) * ROW_H + MID_Y
            ymid = r * ROW_H + FRAME_BOTTOM + 22
            xa, xb = graph.row_ends[r], row_starts[r + 1]
            self._wire([(xa, y0), (xa + 20, y0), (xa + 20, ymid), (xb - STAGE_PAD - 22, ymid),
                        (xb - STAGE_PAD - 22, y1), (xb, y1)])

    def _wrap(self, text: str, width: float = 76.0, max_lines: int = 5) -> list[str]:
        """The stem's description in lines that fit its box."""
        text = text.replace("->", "→").replace("x", "×") if "x" in text and any(c.isdigit() for c in text) else text
        fm = QFontMetricsF(self._look.font(11))
        lines: list[str] = []
        for word in text.split():
            if lines and fm.horizontalAdvance(f"{lines[-1]} {word}") <= width:
                lines[-1] = f"{lines[-1]} {word}"
            else:
                lines.append(word)
        return lines[:max_lines]

    def _wire(self, points: list[tuple[float, float]]) -> None:
        path = QPainterPath(QPointF(*points[0]))
        for p in points[1:]:
            path.lineTo(QPointF(*p))
        self.scene().addItem(_WireItem(path, self._look))

