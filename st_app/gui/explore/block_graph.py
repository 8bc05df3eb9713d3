"""The unraveled block graph: input -> stem -> groups of units (with joins between them) -> head.

What is drawn follows the network's layout, never its family's name: under the ``shape``
order rule residual blocks with skip arcs (a projection where ``shapes[b].changes_shape``);
under ``free`` any unit may be dragged anywhere in its group, and a ``transformer`` unit shows
its two residual halves; under ``fixed`` each group is a concatenation bus with its layers
hanging under it (a dropped one stays, as zeros) and no dragging. Ops that run between groups
(a transition) get a node. Rows are packed to fit the view (:mod:`.graph_layout`), and box
labels grow when a long network is fitted small, so the whole graph stays legible.

Boxes sit in execution order: an active unit's slot follows the plan, a dropped one stays
where ``SubnetPlan.restore`` would put it back (:func:`.network_info.display_order`). The view
only *asks* for edits (signals); the session owns the plan, validates with
:class:`~st_app.core.plan.SubnetPlan` and the window calls :meth:`BlockGraphView.set_plan` back.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import QPoint, QPointF, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QBrush,
    QColor,
    QFontMetricsF,
    QKeyEvent,
    QPainter,
    QWheelEvent,
)
from PySide6.QtWidgets import QGraphicsScene, QGraphicsSimpleTextItem, QGraphicsView, QMenu, QWidget

from st_app.core.plan import SubnetPlan

from ..style import MUTED, ui_font
from .graph_build import GraphBuilder
from .graph_items import (
    IMPORTANCE_FLOOR,
    BlockItem,
    _Look,
)
from .graph_layout import DEFAULT_VIEW, LEGIBLE_SCALE, GraphLayout, choose_layout, fit_scale
from .legends import ImportanceLegendItem, LegendItem
from .network_info import NetworkInfo, display_order, plural

__all__ = ["BlockGraphView", "NetworkInfo", "display_order"]

MAX_BOOST = 2.1


def boost_for(scale: float) -> float:
    """How much box labels grow when the fitted graph is drawn at ``scale`` (1: not at all), so a
    box's number still shows about 12 px tall on screen."""
    return round(min(MAX_BOOST, max(1.0, LEGIBLE_SCALE / max(scale, 1e-3))), 2)


class BlockGraphView(GraphBuilder, QGraphicsView):
    """Scrollable, zoomable view of the unraveled network; emits edit requests."""

    blockClicked = Signal(int)
    blockActionRequested = Signal(str, int)  # toggle | delete | restore | move_left | move_right
    blockReordered = Signal(int, int)  # unit, new index among the active units of its group
    presetRequested = Signal(str)  # full | smallest | random
    currentBlockChanged = Signal(int)
    orderRefused = Signal(str)  # a drag the layout's order rule forbids: why, in one sentence

    ACTIONS = {  # {unit} / {group}: the layout's names
        "delete": ("Delete", "Delete", "Turn this {unit} off: {off}"),
        "restore": ("Restore", "Insert", "Turn this {unit} back on where network order places it"),
        "move_left": ("Move left", "Ctrl+Left", "Run this {unit} one place earlier in its {group}"),
        "move_right": ("Move right", "Ctrl+Right", "Run this {unit} one place later in its {group}"),
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
        self._slots: list[list[QPointF]] = []  # per group, slot positions in display order
        self._slot_of: dict[int, QPointF] = {}  # unit -> the slot it sits in now
        self._graph: GraphLayout | None = None
        self._labels: list[tuple[QGraphicsSimpleTextItem, list[str], float]] = []  # text, variants, room
        self._current: int | None = None
        self._auto_fit = True
        self._message: QGraphicsSimpleTextItem | None = None
        self._importance: list[float] | None = None
        self._importance_title = ""
        self._importance_max: float | None = None
        self._importance_legend: ImportanceLegendItem | None = None
        self._legend: LegendItem | None = None
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
            unit = self._info.unit
            raise ValueError(f"importance needs one accuracy drop per {unit}: got {len(values)} values "
                             f"for the {n} {plural(unit)} of {self._info.arch or 'this network'}")
        finite = [d for d in values if math.isfinite(d)]
        vmax = max([IMPORTANCE_FLOOR, *finite, *([scale_max] if scale_max is not None else [])])
        self._importance, self._importance_title, self._importance_max = values, title, scale_max
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
        self._labels.clear()
        self._graph = None
        self._info = None
        self._plan = None
        self._current = None
        self._message = scene.addSimpleText(text, ui_font(18))
        self._message.setBrush(QColor(MUTED))
        self.setSceneRect(self._message.boundingRect().adjusted(-40, -40, 40, 40))
        self.centerOn(self._message)

    def set_network(self, info: NetworkInfo, plan: SubnetPlan | None = None) -> None:
        """Rebuild the scene for a network layout (keeps nothing of the previous one)."""
        self._importance, self._importance_title = None, ""  # a new network: unit count may differ
        self._current = None
        self._rebuild(info, plan or info.layout.full_plan(), choose_layout(info, self._view_size()))
        self._auto_fit = True
        self.fit()

    @property
    def info(self) -> NetworkInfo | None:
        return self._info

    @property
    def graph_layout(self) -> GraphLayout | None:
        """The rows the network is drawn in (what :func:`.graph_layout.choose_layout` picked)."""
        return self._graph

    def _view_size(self) -> tuple[float, float]:
        vp = self.viewport()
        if self.isVisible() and vp.width() > 200 and vp.height() > 100:
            return float(vp.width()), float(vp.height())
        return DEFAULT_VIEW

    def _rebuild(self, info: NetworkInfo, plan: SubnetPlan, graph: GraphLayout) -> None:
        """Draw ``info`` in the rows of ``graph``; keeps the current unit and the importance colours."""
        importance, title, scale_max = self._importance, self._importance_title, self._importance_max
        current = self._current
        scene = self.scene()
        scene.clear()
        self._items.clear()
        self._labels.clear()
        self._slot_of.clear()
        self._message = None
        self._info, self._graph = info, graph
        self._look.boost = boost_for(fit_scale(graph, self._view_size()))
        self._current = None
        self._build(info, graph)
        self.set_plan(plan, animate=False)
        if current is not None and current in self._items:
            self._current = current
            self._items[current].set_current(True)
        if importance is not None:
            self.set_importance(importance, title, scale_max)

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
                self._slot_of[b] = self._slots[s][i]
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
        self._refresh_look()

    def _refresh_look(self) -> None:
        """Fonts changed (presentation mode, a new boost): labels re-fitted, items repainted."""
        for text, variants, room in self._labels:  # scene text follows the look too
            self._fit_label(text, variants, room)
        for item in self.scene().items():
            item.update()  # also re-renders the items' pixmap caches
        if self._legend is not None:
            self._legend.refresh()
        if self._importance_legend is not None and self._importance is not None:
            self._importance_legend.refresh()  # bigger fonts: a wider legend
        self._update_scene_rect()

    def _update_scene_rect(self) -> None:
        """Scene rect = everything drawn (the importance legend only while shown), refitted."""
        if self._info is None:
            return
        self.setSceneRect(self.scene().itemsBoundingRect().adjusted(-24, -24, 24, 24))
        if self._auto_fit:
            self.fit()

    # ------------------------------------------------------------ interaction
    def _item_signals(self, item: BlockItem) -> None:
        item.clicked.connect(self._on_item_clicked)
        item.dragged.connect(self._on_item_dragged)
        item.dragRefused.connect(self._on_drag_refused)
        item.contextMenuRequested.connect(self._on_context_menu)

    def _on_item_clicked(self, block: int) -> None:
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        self.set_current_block(block)
        self.blockClicked.emit(block)

    def _on_item_dragged(self, block: int, pos: QPointF) -> None:
        """Turn a drop position (the box centre) into an index among the group's other active units."""
        plan = self._plan
        if plan is None:
            return
        s = plan.layout.stage_of(block)
        item = self._items[block]
        rows = sorted({p.y() for p in self._slots[s]})
        row = min(rows, key=lambda y: abs(y + item.box_rect().center().y() - pos.y()))
        others = [b for b in plan.stages[s] if b != block]
        index = 0
        for b in others:
            slot = self._slot_of[b]
            if (slot.y(), slot.x() + self._items[b].box_rect().center().x()) < (row, pos.x()):
                index += 1
        current = plan.stages[s].index(block) if block in plan.stages[s] else -1
        if index == current:
            self.set_plan(plan)  # snap back
            return
        self.set_current_block(block)
        self.blockReordered.emit(block, index)
        if self._plan is plan:  # the window refused the edit: snap back
            self.set_plan(plan)

    def _on_drag_refused(self, block: int) -> None:
        if self._info is None:
            return
        layout = self._info.layout
        self.set_current_block(block)
        self.orderRefused.emit(f"{plural(layout.unit_name).capitalize()} cannot be dragged: {layout.order_rule}.")

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
        info = self._info
        assert info is not None
        layout = info.layout
        unit, group = layout.unit_name, layout.group_name
        title = QAction(f"{info.unit_title(block)} · {info.group_title(item.stage)} · {item.width_label()}", menu)
        title.setEnabled(False)
        menu.addAction(title)
        menu.addSeparator()
        off = "zeros in its channels" if layout.order == "fixed" else "skip its residual branch (plan.delete)"
        for name, (text, key, template) in self.ACTIONS.items():
            tip = template.format(unit=unit, group=group, off=off)
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
            ("full", "Full network", f"Turn every {unit} on, in network order"),
            ("smallest", "Smallest sub-net", f"Keep only the first {unit} of each {group}"),
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

    def label_px(self) -> float:
        """On-screen size in pixels of a box's number (17 px in the scene, grown when fitted small),
        without presentation mode's enlargement."""
        look = self._look
        px = look.font(17, bold=True, boost=look.compact).pixelSize() / (1.15 if look.presentation else 1.0)
        if self._items and look.compact:  # the widest number may have been shrunk to fit its box
            item = self._items[max(self._items)]
            fm = QFontMetricsF(look.font(17, bold=True, boost=True))
            px *= min(1.0, (item.box_rect().width() + 10) / max(1.0, fm.horizontalAdvance(item.compact_number())))
        return self.zoom() * px

    def resizeEvent(self, event) -> None:  # noqa: ANN001
        super().resizeEvent(event)
        self._follow_size()
        if self._auto_fit:
            self.fit()

    def _follow_size(self) -> None:
        """A new viewport size: re-pack the rows when that fits clearly better; re-size the labels."""
        if self._info is None or self._graph is None or self._plan is None or not self.isVisible():
            return
        view = self._view_size()
        best = choose_layout(self._info, view)
        if best.signature() != self._graph.signature() and \
                fit_scale(best, view) > 1.08 * fit_scale(self._graph, view):
            self._rebuild(self._info, self._plan, best)
            return
        boost = boost_for(fit_scale(self._graph, view))
        if abs(boost - self._look.boost) >= 0.05:
            compact = self._look.compact
            self._look.boost = boost
            if self._look.compact != compact:  # the labels' variants depend on it
                self._rebuild(self._info, self._plan, self._graph)
            else:
                self._refresh_look()


