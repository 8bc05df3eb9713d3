"""The unraveled block graph: input -> stem -> stages of residual blocks -> head.

Boxes sit in execution order: an active block's slot follows the plan, a dropped one stays
where ``SubnetPlan.restore`` would put it back (:func:`.network_info.display_order`). The view
only *asks* for edits (signals); the session owns the plan, validates with
:class:`~st_app.core.plan.SubnetPlan` and the window calls :meth:`BlockGraphView.set_plan` back.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import (
    QPoint,
    QPointF,
    QRectF,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QBrush,
    QColor,
    QKeyEvent,
    QPainter,
    QPainterPath,
    QPen,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QMenu,
    QWidget,
)

from st_app.core.plan import SubnetPlan

from ..style import MUTED, stage_color, ui_font
from .graph_items import (
    FRAME_BOTTOM,
    FRAME_TOP,
    IMPORTANCE_FLOOR,
    MAX_PER_ROW,
    MID_Y,
    NODE_W,
    ROW_H,
    SINGLE_ROW_MAX,
    SLOT_W,
    STAGE_GAP,
    STAGE_PAD,
    BlockItem,
    _EndItem,
    _Look,
    _NodeItem,
    _WireItem,
)
from .legends import ImportanceLegendItem, LegendItem
from .network_info import NetworkInfo, display_order

__all__ = ["BlockGraphView", "NetworkInfo", "display_order"]


class BlockGraphView(QGraphicsView):
    """Scrollable, zoomable view of the unraveled network; emits edit requests."""

    blockClicked = Signal(int)
    blockActionRequested = Signal(str, int)  # toggle | delete | restore | move_left | move_right
    blockReordered = Signal(int, int)  # block, new index among the active blocks of its stage
    presetRequested = Signal(str)  # full | smallest | random
    currentBlockChanged = Signal(int)

    ACTIONS = {
        "delete": ("Delete", "Delete", "Turn this block off: drop its residual branch (plan.delete)"),
        "restore": ("Restore", "Insert", "Turn this block back on where network order places it"),
        "move_left": ("Move left", "Ctrl+Left", "Run this block one place earlier in its stage"),
        "move_right": ("Move right", "Ctrl+Right", "Run this block one place later in its stage"),
    }

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.NoDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.BoundingRectViewportUpdate)
        self.setBackgroundBrush(QBrush(QColor("#FBFBFC")))
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(False)
        self.viewport().setAcceptDrops(False)
        self.setToolTip("")
        self._look = _Look()
        self._info: NetworkInfo | None = None
        self._plan: SubnetPlan | None = None
        self._items: dict[int, BlockItem] = {}
        self._slots: list[list[QPointF]] = []  # per stage, slot positions left to right
        self._slot_rows: list[list[int]] = []  # per stage, row index of each slot
        self._current: int | None = None
        self._auto_fit = True
        self._message: QGraphicsSimpleTextItem | None = None
        self._importance: list[float] | None = None
        self._importance_title = ""
        self._importance_legend: ImportanceLegendItem | None = None
        self._legend: LegendItem | None = None
        self._stage_labels: list[QGraphicsSimpleTextItem] = []
        self.set_message("No network loaded")

    # ------------------------------------------------------------------ public
    @property
    def plan(self) -> SubnetPlan | None:
        return self._plan

    @property
    def current_block(self) -> int | None:
        return self._current

    def block_item(self, block: int) -> BlockItem:
        return self._items[block]

    def block_items(self) -> list[BlockItem]:
        return [self._items[b] for b in sorted(self._items)]

    @property
    def importance(self) -> list[float] | None:
        """The accuracy drops shown (points, one per block), or None for the stage colours."""
        return None if self._importance is None else list(self._importance)

    @property
    def importance_title(self) -> str:
        return self._importance_title

    def importance_legend(self) -> ImportanceLegendItem | None:
        """The colour-bar legend (hidden unless importance is shown); None without a network."""
        return self._importance_legend

    def set_importance(self, drops: Sequence[float] | None, title: str = "", scale_max: float | None = None) -> None:
        """Colour blocks by accuracy drop in points (index = block number, len == num_blocks).

        None returns to the normal stage colours. The scale runs from 0 to the largest drop but
        at least ``IMPORTANCE_FLOOR`` points, so a net whose blocks barely matter stays pale;
        negative drops (deleting helped) get the 0 colour, NaN is shown as grey "n/a".
        ``scale_max`` fixes the top of the scale (the window passes the larger of CT's and ST's
        maxima, so switching between the two models compares like with like).
        """
        if drops is None:
            self._importance, self._importance_title = None, ""
            for item in self._items.values():
                item.set_importance(None)
            if self._importance_legend is not None and self._legend is not None:
                self._importance_legend.hide_scale()
                self._legend.set_importance_mode(False)
            self._update_scene_rect()
            return
        if self._info is None or self._importance_legend is None or self._legend is None:
            raise ValueError("no network loaded: set_network() before set_importance()")
        values = [float(d) for d in drops]
        n = self._info.layout.num_blocks
        if len(values) != n:
            raise ValueError(f"importance needs one accuracy drop per block: got {len(values)} values "
                             f"for the {n} blocks of {self._info.arch or 'this network'}")
        finite = [d for d in values if math.isfinite(d)]
        vmax = max([IMPORTANCE_FLOOR, *finite, *([scale_max] if scale_max is not None else [])])
        self._importance, self._importance_title = values, title
        for b, item in self._items.items():
            item.set_importance(values[b], vmax, title)
        self._importance_legend.show_scale(title, vmax, len(finite) < n)
        self._legend.set_importance_mode(True)
        self._update_scene_rect()

    def set_message(self, text: str) -> None:
        """Show only a centred message (no network, loading...)."""
        scene = self.scene()
        scene.clear()
        self._items.clear()
        self._importance, self._importance_title, self._importance_legend = None, "", None
        self._legend = None
        self._stage_labels.clear()
        self._info = None
        self._plan = None
        self._current = None
        self._message = scene.addSimpleText(text, ui_font(18))
        self._message.setBrush(QColor(MUTED))
        self.setSceneRect(self._message.boundingRect().adjusted(-40, -40, 40, 40))
        self.centerOn(self._message)

    def set_network(self, info: NetworkInfo, plan: SubnetPlan | None = None) -> None:
        """Rebuild the scene for a network layout (keeps nothing of the previous one)."""
        scene = self.scene()
        scene.clear()
        self._items.clear()
        self._stage_labels.clear()
        self._importance, self._importance_title = None, ""  # a new network: block count may differ
        self._message = None
        self._info = info
        self._current = None
        self._build(info)
        self.set_plan(plan or info.layout.full_plan(), animate=False)
        self._auto_fit = True
        self.fit()

    def set_plan(self, plan: SubnetPlan, animate: bool = True) -> None:
        if self._info is None or plan.layout != self._info.layout:
            raise ValueError("the plan does not belong to the network shown")
        self._plan = plan
        layout = plan.layout
        for s, stage in enumerate(layout.stages):
            order = display_order(plan, s)
            active = plan.stages[s]
            natural = [b for b in stage if b in active]
            for i, b in enumerate(order):
                item = self._items[b]
                on = b in active
                pos = active.index(b) + 1 if on else 0
                moved = on and natural.index(b) != active.index(b)
                item.set_state(on, pos, moved)
                item.move_to(self._slots[s][i], animate and self.isVisible())

    def set_current_block(self, block: int | None) -> None:
        if block is not None and block not in self._items:
            block = None
        if block == self._current:
            return
        if self._current is not None and self._current in self._items:
            self._items[self._current].set_current(False)
        self._current = block
        if block is not None:
            item = self._items[block]
            item.set_current(True)
            self.ensureVisible(item, 20, 20)
            self.currentBlockChanged.emit(block)

    @property
    def presentation(self) -> bool:
        return self._look.presentation

    def slot_position(self, stage: int, index: int) -> QPointF:
        """Where the ``index``-th box of ``stage`` sits (scene coordinates)."""
        return self._slots[stage][index]

    def set_presentation(self, on: bool) -> None:
        self._look.presentation = on
        for text in self._stage_labels:  # scene text follows the look too
            text.setFont(self._look.font(14 if on else 13, bold=True))
        for item in self.scene().items():
            item.update()  # also re-renders the items' pixmap caches
        if self._importance_legend is not None and self._importance is not None:
            self._importance_legend.refresh()  # bigger fonts: a wider legend
            self._update_scene_rect()

    # --------------------------------------------------------------- building
    def _build(self, info: NetworkInfo) -> None:
        layout, look, scene = info.layout, self._look, self.scene()
        single = layout.num_blocks <= SINGLE_ROW_MAX
        sizes = info.stage_sizes()

        # rows of (stage, number of slots); long stages are split into balanced chunks
        rows: list[list[tuple[int, int]]] = [[]] if single else []
        for s, stage in enumerate(layout.stages):
            n = len(stage)
            if single:
                rows[0].append((s, n))
                continue
            chunks = max(1, math.ceil(n / MAX_PER_ROW))
            base, extra = divmod(n, chunks)
            for c in range(chunks):
                rows.append([(s, base + (1 if c < extra else 0))])

        x0 = 74.0 + NODE_W  # after the input label and the stem
        self._slots = [[] for _ in layout.stages]
        self._slot_rows = [[] for _ in layout.stages]
        row_ends: list[float] = []
        seen_stage: set[int] = set()
        for r, row in enumerate(rows):
            y = r * ROW_H
            x = x0
            for k, (s, n) in enumerate(row):
                if k > 0:
                    x += STAGE_GAP
                    self._gap_wire(x - STAGE_GAP, x, y)
                frame = QRectF(x - STAGE_PAD, y + FRAME_TOP, n * SLOT_W + 2 * STAGE_PAD, FRAME_BOTTOM - FRAME_TOP)
                color = QColor(stage_color(s))
                fill = QColor(color)
                fill.setAlpha(20)
                edge = QColor(color)
                edge.setAlpha(110)
                path = QPainterPath()
                path.addRoundedRect(frame, 10, 10)
                frame_item = scene.addPath(path, QPen(edge, 1.2), QBrush(fill))
                frame_item.setZValue(0)
                cont = s in seen_stage
                seen_stage.add(s)
                stage_blocks = layout.stages[s]
                shape = layout.shapes[stage_blocks[0]]
                label = (f"Stage {s + 1}" + (" (continued)" if cont else "")
                         + f"  ·  {shape.out_channels} channels  ·  {sizes[s]}×{sizes[s]}"
                         + ("" if cont else f"  ·  {len(stage_blocks)} blocks"))
                text = scene.addSimpleText(label, look.font(13, bold=True))
                self._stage_labels.append(text)
                text.setBrush(color.darker(135))
                text.setPos(frame.left() + 10, frame.top() + 6)
                text.setZValue(1)
                frame_item.setToolTip(
                    f"Stage {s + 1}: blocks {stage_blocks[0]}–{stage_blocks[-1]}, {shape.out_channels} "
                    f"channels at {sizes[s]}×{sizes[s]}. Blocks may be reordered only inside their "
                    "stage, and only blocks of identical shape.")
                for i in range(n):
                    self._slots[s].append(QPointF(x + i * SLOT_W, y))
                    self._slot_rows[s].append(r)
                x += n * SLOT_W
            row_ends.append(x)

        # stem, input, head, output
        stem_lines = [f"conv {info.stem_kernel}×{info.stem_kernel} · {info.stem_channels}"]
        if info.stem_reduction > 1:
            stem_lines.append(f"+ max-pool ↓{info.stem_reduction}")
        stem = _NodeItem("Stem", stem_lines, look,
                         "Stem: the first convolution, always part of every sub-network.", True, True)
        stem.setPos(74, 0)
        scene.addItem(stem)
        inp = _EndItem(f"input\n{info.in_channels}×{info.image_size}×{info.image_size}", look, True)
        inp.setPos(0, 0)
        scene.addItem(inp)
        last_y = (len(rows) - 1) * ROW_H
        head = _NodeItem("Head", ["pool · fc", f"→ {info.num_classes} classes"], look,
                         "Head: global average pooling and the classifier, always part of every sub-network.",
                         True, True)
        head.setPos(row_ends[-1] + 6, last_y)
        scene.addItem(head)
        self._gap_wire(row_ends[-1], row_ends[-1] + 6, last_y)
        out = _EndItem(f"logits\n({info.num_classes})", look, True)
        out.setPos(row_ends[-1] + 6 + NODE_W, last_y)
        scene.addItem(out)

        # wires between rows: down from a row's end, back to the next row's start
        for r in range(len(rows) - 1):
            y0 = r * ROW_H + MID_Y
            y1 = (r + 1) * ROW_H + MID_Y
            ymid = r * ROW_H + FRAME_BOTTOM + 22
            xa, xb = row_ends[r], x0
            path = QPainterPath(QPointF(xa, y0))
            path.lineTo(xa + 20, y0)
            path.lineTo(xa + 20, ymid)
            path.lineTo(xb - STAGE_PAD - 22, ymid)
            path.lineTo(xb - STAGE_PAD - 22, y1)
            path.lineTo(xb, y1)
            wire = _WireItem(path, look)
            scene.addItem(wire)

        legend = self._legend = LegendItem(look)
        legend.setPos(74, (len(rows) - 1) * ROW_H + FRAME_BOTTOM + 18)
        scene.addItem(legend)
        self._importance_legend = ImportanceLegendItem(look)  # under the on/off key, hidden
        self._importance_legend.setPos(74, legend.y() + legend.boundingRect().height() + 14)
        scene.addItem(self._importance_legend)

        for s, stage in enumerate(layout.stages):
            for b in stage:
                sh = layout.shapes[b]
                item = BlockItem(b, s, sh.in_channels, sh.out_channels, sh.stride, look)
                item.clicked.connect(self._on_item_clicked)
                item.dragged.connect(self._on_item_dragged)
                item.contextMenuRequested.connect(self._on_context_menu)
                scene.addItem(item)
                self._items[b] = item
        self._update_scene_rect()

    def _update_scene_rect(self) -> None:
        """Scene rect = everything drawn (the importance legend only while shown), refitted."""
        if self._info is None:
            return
        self.setSceneRect(self.scene().itemsBoundingRect().adjusted(-24, -24, 24, 24))
        if self._auto_fit:
            self.fit()

    def _gap_wire(self, xa: float, xb: float, y: float) -> None:
        path = QPainterPath(QPointF(xa, y + MID_Y))
        path.lineTo(xb, y + MID_Y)
        self.scene().addItem(_WireItem(path, self._look))

    # ------------------------------------------------------------ interaction
    def _on_item_clicked(self, block: int) -> None:
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        self.set_current_block(block)
        self.blockClicked.emit(block)

    def _on_item_dragged(self, block: int, x: float) -> None:
        """Turn a drop position into an index among the stage's other active blocks."""
        plan = self._plan
        if plan is None:
            return
        s = plan.layout.stage_of(block)
        item = self._items[block]
        row = self._slot_rows[s][self._slot_index(item)]
        others = [b for b in plan.stages[s] if b != block]
        index = 0
        for b in others:
            other = self._items[b]
            orow = self._slot_rows[s][self._slot_index(other)]
            if (orow, other.scene_box_center().x()) < (row, x):
                index += 1
        current = plan.stages[s].index(block) if block in plan.stages[s] else -1
        if index == current:
            self.set_plan(plan)  # snap back
            return
        self.set_current_block(block)
        self.blockReordered.emit(block, index)
        if self._plan is plan:  # the window refused the edit: snap back
            self.set_plan(plan)

    def _slot_index(self, item: BlockItem) -> int:
        """Nearest slot of the item's stage (by the slot it was laid out in)."""
        slots = self._slots[item.stage]
        target = item._drag_origin if item._drag_origin is not None else item.pos()
        return min(range(len(slots)), key=lambda i: (slots[i] - target).manhattanLength())

    def _on_context_menu(self, block: int, screen_pos: QPoint) -> None:
        self.set_current_block(block)
        menu = self.build_context_menu(block)
        menu.exec(screen_pos)

    def action_allowed(self, action: str, block: int) -> tuple[bool, str]:
        """Whether an edit would give a valid plan, and why not."""
        plan = self._plan
        if plan is None:
            return False, "no network loaded"
        try:
            if action == "delete":
                plan.delete(block)
            elif action == "restore":
                plan.restore(block)
            elif action == "move_left":
                plan.move(block, -1)
            elif action == "move_right":
                plan.move(block, +1)
            elif action == "toggle":
                plan.toggle(block)
        except ValueError as exc:
            return False, str(exc)
        return True, ""

    def build_context_menu(self, block: int) -> QMenu:
        """The right-click menu of a block; unavailable edits are disabled with the reason."""
        menu = QMenu(self)
        menu.setToolTipsVisible(True)
        item = self._items[block]
        title = QAction(f"Block {block} · stage {item.stage + 1} · {item.width_label()}", menu)
        title.setEnabled(False)
        menu.addAction(title)
        menu.addSeparator()
        for name, (text, key, tip) in self.ACTIONS.items():
            act = QAction(text, menu)
            act.setShortcut(key)
            act.setShortcutVisibleInContextMenu(True)
            ok, why = self.action_allowed(name, block)
            act.setEnabled(ok)
            act.setToolTip(tip if ok else f"{tip}. Not possible here: {why}")
            act.setData(name)
            act.triggered.connect(lambda _=False, n=name, b=block: self.blockActionRequested.emit(n, b))
            menu.addAction(act)
        menu.addSeparator()
        for name, text, tip in (
            ("full", "Full network", "Turn every block on, in network order"),
            ("smallest", "Smallest sub-net", "Keep only the first block of each stage"),
            ("random", "Random ordered sub-net", "Sample an ordered sub-network as ST does during training"),
        ):
            act = QAction(text, menu)
            act.setToolTip(tip)
            act.setData(name)
            act.triggered.connect(lambda _=False, n=name: self.presetRequested.emit(n))
            menu.addAction(act)
        return menu

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key, mods = event.key(), event.modifiers()
        blocks = self._ordered_blocks()
        if not blocks:
            super().keyPressEvent(event)
            return
        cur = self._current
        move_mod = mods & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier)
        if key in (Qt.Key.Key_Left, Qt.Key.Key_Right) and move_mod and cur is not None:
            self.blockActionRequested.emit("move_left" if key == Qt.Key.Key_Left else "move_right", cur)
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Home, Qt.Key.Key_End):
            if cur is None or cur not in blocks:
                nxt = blocks[0]
            elif key == Qt.Key.Key_Home:
                nxt = blocks[0]
            elif key == Qt.Key.Key_End:
                nxt = blocks[-1]
            else:
                i = blocks.index(cur) + (1 if key == Qt.Key.Key_Right else -1)
                nxt = blocks[max(0, min(len(blocks) - 1, i))]
            self.set_current_block(nxt)
        elif key in (Qt.Key.Key_Space, Qt.Key.Key_Return, Qt.Key.Key_Enter) and cur is not None:
            self.blockActionRequested.emit("toggle", cur)
        elif key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and cur is not None:
            self.blockActionRequested.emit("delete", cur)
        elif key in (Qt.Key.Key_Insert, Qt.Key.Key_R) and cur is not None and not mods:
            self.blockActionRequested.emit("restore", cur)
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_in()
        elif key == Qt.Key.Key_Minus:
            self.zoom_out()
        elif key == Qt.Key.Key_0:
            self.fit()
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def _ordered_blocks(self) -> list[int]:
        """Blocks left to right (then top to bottom), as displayed."""
        return sorted(self._items, key=lambda b: (self._items[b].pos().y(), self._items[b].pos().x()))

    # -------------------------------------------------------------------- zoom
    def wheelEvent(self, event: QWheelEvent) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            factor = 1.0015 ** event.angleDelta().y()
            self._zoom(factor)
            event.accept()
        else:
            super().wheelEvent(event)

    def _zoom(self, factor: float) -> None:
        scale = self.transform().m11() * factor
        if not 0.1 <= scale <= 4.0:
            return
        self._auto_fit = False
        self.scale(factor, factor)

    def zoom_in(self) -> None:
        self._zoom(1.2)

    def zoom_out(self) -> None:
        self._zoom(1 / 1.2)

    def fit(self) -> None:
        """Fit the whole network in view (not larger than 1.6x), and keep fitting on resize."""
        self._auto_fit = True
        rect = self.sceneRect()
        if rect.isEmpty():
            return
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        if self.transform().m11() > 1.6:
            self.resetTransform()
            self.scale(1.6, 1.6)
        self.centerOn(rect.center())

    def zoom(self) -> float:
        return self.transform().m11()

    def resizeEvent(self, event) -> None:  # noqa: ANN001
        super().resizeEvent(event)
        if self._auto_fit:
            self.fit()


