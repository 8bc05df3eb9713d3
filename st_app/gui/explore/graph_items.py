"""Items of the block graph's scene: residual units, stem, joins and head, wires, and their look.

Every residual unit is drawn as ``split -> branch box -> (+)`` with its skip connection as
an arc over the box, so a dropped unit visibly leaves the signal only the skip. Blocks that
change shape (first of a stage) have a thicker border, a ``16→32 ↓2`` tag and a labelled
projection shortcut (which keeps running when their branch is dropped). Transformer blocks
and dense layers (:mod:`.unit_items`) reuse this item's state, colours and mouse handling.

Block importance is shown as *points of accuracy lost* when the block alone is deleted: a
positive number is a loss (the legend's unit), a negative one means deleting it helped. The
graph, its legend, the Analyses chart and the summary all use this one sign convention.
"""
from __future__ import annotations

import math

from PySide6.QtCore import (
    QEasingCurve,
    QPoint,
    QPointF,
    QPropertyAnimation,
    QRectF,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFontMetricsF,
    QPainter,
    QPainterPath,
    QPen,
    QPolygonF,
)
from PySide6.QtWidgets import (
    QApplication,
    QGraphicsItem,
    QGraphicsObject,
    QGraphicsSceneContextMenuEvent,
    QGraphicsSceneHoverEvent,
    QGraphicsSceneMouseEvent,
    QStyleOptionGraphicsItem,
    QWidget,
)

from st_app.core.report_text import format_points_lost

from ..style import ACCENT, mix, stage_color, ui_font

__all__ = ["BlockItem", "format_drop", "importance_color"]

# Geometry in scene units (pixels at zoom 1).
SLOT_W = 128.0  # room per block: lead-in, split dot, box, (+), lead-out
BOX_X, BOX_W, BOX_H = 22.0, 80.0, 66.0
MID_Y = BOX_H / 2
SPLIT_X = 9.0
JOIN_X = SLOT_W - 15.0
JOIN_R = 7.0
ARC_Y = -26.0  # height of the skip arcs (box top is y = 0)
NODE_W = 112.0
STAGE_PAD = 10.0
STAGE_GAP = 26.0
FRAME_TOP = ARC_Y - 40.0
FRAME_BOTTOM = BOX_H + 24.0  # room under the boxes for the importance value
ROW_H = FRAME_BOTTOM - FRAME_TOP + 44.0

# Block importance (accuracy lost when one block alone is deleted, after Veit et al. 2016):
# a sequential, colour-blind safe ramp (ColorBrewer YlOrRd), pale = harmless, dark red = vital.
IMPORTANCE_STOPS = ((0.0, "#FFFFCC"), (0.25, "#FED976"), (0.5, "#FD8D3C"), (0.75, "#E31A1C"), (1.0, "#800026"))
IMPORTANCE_FLOOR = 1.0  # the scale reaches at least this many points: tiny drops stay pale
NA_COLOR = "#D1D5DB"  # not measured (NaN)


def importance_color(drop: float, vmax: float) -> QColor:
    """Colour of an accuracy drop on the importance ramp, 0..vmax; helping (negative) clamps to 0."""
    if not math.isfinite(drop):
        return QColor(NA_COLOR)
    t = min(1.0, max(0.0, drop / vmax)) if vmax > 0 else 0.0
    for (t0, c0), (t1, c1) in zip(IMPORTANCE_STOPS, IMPORTANCE_STOPS[1:]):
        if t <= t1:
            return mix(QColor(c0), QColor(c1), (t - t0) / (t1 - t0))
    return QColor(IMPORTANCE_STOPS[-1][1])


def format_drop(drop: float) -> str:
    """Points of accuracy lost when the block is deleted (``27.5``; ``-0.6``: deleting it helped)."""
    return format_points_lost(drop)


def _is_dark(color: QColor) -> bool:
    """Whether white text contrasts better than black on ``color`` (WCAG relative luminance)."""
    def lin(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    lum = 0.2126 * lin(color.red()) + 0.7152 * lin(color.green()) + 0.0722 * lin(color.blue())
    return lum < 0.179


def _arrow(painter: QPainter, tip: QPointF, direction: QPointF, size: float, color: QColor) -> None:
    d = direction / max(1e-6, math.hypot(direction.x(), direction.y()))
    n = QPointF(-d.y(), d.x())
    base = tip - d * size
    poly = QPolygonF([tip, base + n * size * 0.55, base - n * size * 0.55])
    painter.save()
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(color)
    painter.drawPolygon(poly)
    painter.restore()


class _Look:
    """Shared pen widths and contrast, switched by presentation mode."""

    def __init__(self) -> None:
        self.presentation = False
        self.boost = 1.0  # >1 when the fitted graph is small: box labels grow so they stay legible

    @property
    def line(self) -> float:
        return 3.0 if self.presentation else 1.6

    @property
    def border(self) -> float:
        return 3.0 if self.presentation else 1.5

    @property
    def text(self) -> QColor:
        return QColor("#000000") if self.presentation else QColor("#1F2937")

    @property
    def wire(self) -> QColor:
        return QColor("#111827") if self.presentation else QColor("#4B5563")

    def font(self, pixel_size: float, bold: bool = False, boost: bool = False):  # noqa: ANN201 - QFont
        """``boost``: text that must stay legible when a long network is fitted small (box labels, keys)."""
        return ui_font(pixel_size * (1.15 if self.presentation else 1.0) * (self.boost if boost else 1.0), bold)

    @property
    def compact(self) -> bool:
        """Boxes show only their number and state (the width line would not fit the boosted text)."""
        return self.boost >= 1.25

    @property
    def muted(self) -> QColor:
        return QColor("#6B7280") if self.presentation else QColor("#9CA3AF")


#: what each unit kind of a layout computes (tooltips)
KIND_TEXT = {
    "basic": "residual block: two 3×3 convolutions on its branch",
    "bottleneck": "bottleneck residual block: 1×1, 3×3 and 1×1 convolutions on its branch",
    "preact": "pre-activation residual block (norm and ReLU before each convolution)",
    "transformer": "transformer block: x + attention(norm(x)), then x + MLP(norm(x)), two residual branches",
    "attention": "attention half of a transformer block: x + attention(norm(x))",
    "mlp": "MLP half of a transformer block: x + MLP(norm(x))",
    "dense": "dense layer: reads every earlier feature map of its dense block and appends its own",
}


class BlockItem(QGraphicsObject):
    """One residual unit: its slot's wires, skip arc, branch box and (+) junction.

    ``names`` = (unit, group noun, group title) as the layout calls them (``block``, ``stage``,
    ``Stage 2``); ``draggable`` is False where the layout's order rule fixes every position.
    """

    WIDTH = SLOT_W
    clicked = Signal(int)
    dragged = Signal(int, QPointF)  # unit, scene position of the box centre when released
    dragRefused = Signal(int)  # a drag of a unit that may not move
    contextMenuRequested = Signal(int, QPoint)

    def __init__(self, block: int, stage: int, in_ch: int, out_ch: int, stride: int, look: _Look, *,
                 kind: str = "", names: tuple[str, str, str] = ("block", "stage", ""), draggable: bool = True,
                 order_hint: str = "drag sideways: reorder in its stage") -> None:
        super().__init__()
        self.block = block
        self.stage = stage
        self.in_ch, self.out_ch, self.stride = in_ch, out_ch, stride
        self.changes_shape = in_ch != out_ch or stride != 1
        self.kind = kind
        self.unit, self.group_noun = names[0], names[1]
        self.group_title = names[2] or f"{names[1]} {stage + 1}"
        self.draggable = draggable
        self.drag_vertical = False  # its group spans rows: drags may go up and down too
        self.order_hint = order_hint
        self._refused = False
        self.look = look
        self.active = True
        self.current = False
        self.moved = False  # active but out of network order
        self.position = 0  # 1-based position in the stage's execution order (0: off)
        self.importance: float | None = None  # accuracy drop in points when shown (NaN: not measured)
        self.importance_max = IMPORTANCE_FLOOR  # the drop that gets the darkest colour
        self.importance_title = ""
        self._hover = False
        self._press: QPointF | None = None
        self._drag_origin: QPointF | None = None
        self._dragging = False
        self._animation: QPropertyAnimation | None = None
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsFocusable, False)
        # Paint once into a pixmap; moving (animations, drags) then only blits it.
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.setZValue(2)

    # --------------------------------------------------------------- geometry
    def boundingRect(self) -> QRectF:  # down to the importance value under the box
        return QRectF(-2, ARC_Y - 20, self.WIDTH + 4, FRAME_BOTTOM - ARC_Y + 20)

    def box_rect(self) -> QRectF:
        return QRectF(BOX_X, 0, BOX_W, BOX_H)

    def shape(self) -> QPainterPath:  # only the box is clickable
        path = QPainterPath()
        path.addRect(self.box_rect().adjusted(-3, -3, 3, 3))
        return path

    def scene_box_center(self) -> QPointF:
        return self.mapToScene(self.box_rect().center())

    # ------------------------------------------------------------------ state
    def set_state(self, active: bool, position: int, moved: bool) -> None:
        self.active, self.position, self.moved = active, position, moved
        self.setToolTip(self._tooltip())
        self.update()

    def set_importance(self, drop: float | None, vmax: float = IMPORTANCE_FLOOR, title: str = "") -> None:
        """Show the accuracy lost when this block alone is deleted (None: back to stage colours)."""
        self.importance, self.importance_max, self.importance_title = drop, vmax, title
        self.setToolTip(self._tooltip())
        self.update()  # also refreshes the pixmap cache

    def fill_color(self) -> QColor:
        """The box fill that paint uses: the importance colour when shown, else the stage tint."""
        if self.importance is not None:
            color = importance_color(self.importance, self.importance_max)
            return color.darker(110) if self._hover else color
        if self.active:
            return mix(stage_color(self.stage), QColor("#FFFFFF"), 0.80 if not self._hover else 0.68)
        return QColor("#F3F4F6") if not self._hover else QColor("#E5E7EB")

    def text_color(self) -> QColor:
        """Box text: white on dark importance fills, greyed when off on the normal fill."""
        if self.importance is not None:
            return QColor("#FFFFFF") if _is_dark(self.fill_color()) else QColor("#000000")
        return self.look.text if self.active else QColor("#6B7280")

    def set_current(self, on: bool) -> None:
        if on != self.current:
            self.current = on
            self.update()

    def width_label(self) -> str:
        if self.kind == "attention":
            return "attention"
        if self.kind == "mlp":
            return "MLP"
        if self.changes_shape:
            label = f"{self.in_ch}→{self.out_ch}"
            return label + (f" ↓{self.stride}" if self.stride != 1 else "")
        return f"{self.out_ch} ch"

    def _tooltip(self) -> str:
        group = self.group_noun
        state = (f"<b>on</b>, runs {self._ordinal(self.position)} in its {group}" if self.active
                 else f"<b>off</b>: {self.off_text()}")
        moved = "<br>Moved out of network order." if self.moved else ""
        what = KIND_TEXT.get(self.kind, "")
        what = f"<br>{what[:1].upper()}{what[1:]}." if what else ""
        return (f"<b>{self.unit.capitalize()} {self.block}</b> · {self.group_title}{what}<br>{self.shape_text()}"
                f"<br>State: {state}.{moved}{self._importance_tip()}"
                f"<br><i>Click: turn on/off · {self.order_hint} · right-click: more</i>")

    def off_text(self) -> str:
        """What the network does without this unit."""
        return "its branch is skipped, the signal takes only the skip connection"

    def shape_text(self) -> str:
        if self.changes_shape:
            return (f"changes shape {self.in_ch}→{self.out_ch} channels"
                    + (f", stride {self.stride}" if self.stride != 1 else "")
                    + "; its shortcut is a 1×1 projection that keeps running when the block is off")
        return f"{self.out_ch} channels in and out (identity shortcut)"

    def _importance_tip(self) -> str:
        if self.importance is None:
            return ""
        where = f" ({self.importance_title})" if self.importance_title else ""
        d = self.importance
        if not math.isfinite(d):
            return f"<br>Accuracy lost when this {self.unit} alone is deleted: n/a (not measured){where}."
        verb = "costs" if d >= 0 else "gains"
        return f"<br>Deleting this {self.unit} alone {verb} {abs(d):.1f} points of accuracy{where}."

    @staticmethod
    def _ordinal(n: int) -> str:
        return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")

    # ------------------------------------------------------------------- paint
    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        self._paint_residual(painter, 0.0)
        self._paint_box(painter, self.box_rect(), self.width_label())
        self._paint_marks(painter, self.box_rect())

    def _paint_residual(self, painter: QPainter, x0: float) -> None:
        """One residual half at ``x0``: lead wires, split dot, branch wires, skip arc (+ tag), (+) junction."""
        look = self.look
        white = QColor("#FFFFFF")
        wire = look.wire
        branch_col = wire if self.active else look.muted
        solid = QPen(wire, look.line)
        solid.setCapStyle(Qt.PenCapStyle.RoundCap)
        split, join, box_x = x0 + SPLIT_X, x0 + JOIN_X, x0 + BOX_X

        # main line: lead-in to the split point, (+) to the slot's right edge
        painter.setPen(solid)
        painter.drawLine(QPointF(x0, MID_Y), QPointF(split, MID_Y))
        painter.drawLine(QPointF(join + JOIN_R, MID_Y), QPointF(x0 + SLOT_W, MID_Y))
        painter.setBrush(wire)
        painter.drawEllipse(QPointF(split, MID_Y), 2.6 * look.line / 1.6, 2.6 * look.line / 1.6)

        # branch wires into and out of the box
        branch_pen = QPen(branch_col, look.line)
        if not self.active:
            branch_pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(branch_pen)
        painter.drawLine(QPointF(split, MID_Y), QPointF(box_x - 5, MID_Y))
        painter.drawLine(QPointF(box_x + BOX_W, MID_Y), QPointF(join - JOIN_R, MID_Y))
        _arrow(painter, QPointF(box_x - 1, MID_Y), QPointF(1, 0), 6 + look.line, branch_col)

        # skip connection: over the box into the (+); emphasised when it is the only path
        skip_col = QColor(ACCENT) if not self.active else wire
        skip_pen = QPen(skip_col, look.line * (1.7 if not self.active else 1.0))
        skip_pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        path = QPainterPath(QPointF(split, MID_Y))
        r = 10.0
        path.lineTo(split, ARC_Y + r)
        path.quadTo(split, ARC_Y, split + r, ARC_Y)
        path.lineTo(join - r, ARC_Y)
        path.quadTo(join, ARC_Y, join, ARC_Y + r)
        path.lineTo(join, MID_Y - JOIN_R - 4)
        painter.setPen(skip_pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(path)
        _arrow(painter, QPointF(join, MID_Y - JOIN_R), QPointF(0, 1), 6 + look.line, skip_col)
        if self.changes_shape:
            tag = QRectF(split + 8, ARC_Y - 9, JOIN_X - SPLIT_X - 16, 18)
            painter.setPen(QPen(skip_col, 1.0))
            painter.setBrush(QColor("#EEF2FF"))
            painter.drawRoundedRect(tag, 4, 4)
            painter.setPen(look.text)
            painter.setFont(self.look.font(11))
            painter.drawText(tag, Qt.AlignmentFlag.AlignCenter,
                             "1×1 conv" + (f" ↓{self.stride}" if self.stride != 1 else ""))

        # (+) junction
        painter.setPen(QPen(wire, look.line))
        painter.setBrush(white)
        painter.drawEllipse(QPointF(join, MID_Y), JOIN_R, JOIN_R)
        painter.drawLine(QPointF(join - 4, MID_Y), QPointF(join + 4, MID_Y))
        painter.drawLine(QPointF(join, MID_Y - 4), QPointF(join, MID_Y + 4))

    def status_text(self) -> str:
        return ("moved" if self.moved else "on") if self.active else "off"

    def compact_number(self) -> str:
        """The unit's number as a compact box shows it (``#7``; three digits without the ``#``)."""
        return f"#{self.block}" if self.block < 100 else str(self.block)

    def _paint_box(self, painter: QPainter, box: QRectF, label: str, compact_second: str | None = None) -> None:
        """A branch box and its labels: number, what it is, state; when compact, the number and
        ``compact_second`` (default: the state)."""
        look = self.look
        color = stage_color(self.stage)
        shown = self.importance is not None
        fill = self.fill_color()
        border = QPen(color.darker(150 if self.changes_shape else 115),
                      look.border * (2.0 if self.changes_shape else 1.0))
        if not self.active:  # dashed; darker on importance fills so it reads on yellow and red
            border.setColor(QColor("#4B5563") if shown else QColor("#9CA3AF"))
            border.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(border)
        painter.setBrush(fill)
        painter.drawRoundedRect(box, 7, 7)
        if shown and not self.active:  # hatch: the colour stays readable, the box looks switched off
            hatch = QColor(255, 255, 255, 150) if _is_dark(fill) else QColor(0, 0, 0, 55)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QBrush(hatch, Qt.BrushStyle.BDiagPattern))
            painter.drawRoundedRect(box.adjusted(2, 2, -2, -2), 6, 6)

        # text: index, width, state
        text_col = self.text_color()
        status = self.status_text()
        status_col = text_col
        if self.active and not shown:  # stage-tinted state; on importance fills the plain text colour
            status_col = QColor("#B45309") if self.moved else color.darker(140)
        top = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter
        if look.compact:  # a long network fitted small: number and state only, larger
            painter.setPen(text_col)
            label_text = self.compact_number()
            number = look.font(17, bold=True, boost=True)
            while number.pixelSize() > 12 and QFontMetricsF(number).horizontalAdvance(label_text) > box.width() + 10:
                number.setPixelSize(number.pixelSize() - 1)
            painter.setFont(number)
            painter.drawText(QRectF(box.x() - 6, box.y() + 2, box.width() + 12, box.height() * 0.56), top, label_text)
            painter.setPen(status_col if compact_second is None else text_col)
            painter.setFont(look.font(11, bold=shown and not self.active, boost=True))
            painter.drawText(QRectF(box.x() - 6, box.y() + box.height() * 0.56, box.width() + 12,
                                    box.height() * 0.42), top, compact_second or status)
            return
        painter.setPen(text_col)
        painter.setFont(look.font(17, bold=True))
        painter.drawText(QRectF(box.x(), box.y() + 5, box.width(), 22), Qt.AlignmentFlag.AlignHCenter,
                         f"#{self.block}")
        painter.setFont(look.font(12, bold=self.changes_shape))
        painter.drawText(QRectF(box.x(), box.y() + 27, box.width(), 18), Qt.AlignmentFlag.AlignHCenter, label)
        painter.setFont(look.font(11, bold=shown and not self.active))
        painter.setPen(status_col)
        painter.drawText(QRectF(box.x(), box.y() + 46, box.width(), 16), Qt.AlignmentFlag.AlignHCenter, status)

    def _paint_marks(self, painter: QPainter, box: QRectF) -> None:
        """The current-unit ring around ``box`` and, when importance is shown, the drop under it."""
        if self.current:
            ring = QPen(QColor(ACCENT), 2.5 if not self.look.presentation else 4.0)
            painter.setPen(ring)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(box.adjusted(-5, -5, 5, 5), 10, 10)
        if self.importance is not None:
            self._paint_drop(painter, box)

    def _paint_drop(self, painter: QPainter, box: QRectF) -> None:
        """The accuracy drop in points under the box (clear of the current-unit ring)."""
        drop = self.importance if self.importance is not None else math.nan
        na = not math.isfinite(drop)
        painter.setPen(self.look.muted if na else self.look.text)
        font = self.look.font(13 * min(self.look.boost, 1.35), bold=not na)
        painter.setFont(font)
        painter.drawText(QRectF(box.x() - 16, BOX_H + 6, box.width() + 32, FRAME_BOTTOM - BOX_H - 6),
                         Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, format_drop(drop))

    # ------------------------------------------------------------------- mouse
    def hoverEnterEvent(self, event: QGraphicsSceneHoverEvent) -> None:
        self._hover = True
        self.update()
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event: QGraphicsSceneHoverEvent) -> None:
        self._hover = False
        self.update()
        super().hoverLeaveEvent(event)

    def mousePressEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._press = event.scenePos()
            self._drag_origin = self.pos()
            self._dragging = False
            event.accept()
        else:
            event.ignore()

    def mouseMoveEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if self._press is None or self._drag_origin is None:
            return
        delta = event.scenePos() - self._press
        dy = delta.y() if self.drag_vertical else 0.0
        far = max(abs(delta.x()), abs(dy)) >= QApplication.startDragDistance()
        if far and not self.draggable:
            if not self._refused:  # say once why it does not move; the release is then no click
                self._refused = True
                self.dragRefused.emit(self.block)
            return
        if not self._dragging and far and self.active:
            self._dragging = True
            self.stop_animation()
            self.setZValue(10)
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        if self._dragging:
            self.setPos(self._drag_origin.x() + delta.x(), self._drag_origin.y() + dy)

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._press is None:
            return
        was_dragging, refused = self._dragging, self._refused
        self._press = None
        self._dragging = self._refused = False
        self.setZValue(2)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        if was_dragging:
            self.dragged.emit(self.block, self.scene_box_center())
        elif not refused:
            self.clicked.emit(self.block)
        event.accept()

    def contextMenuEvent(self, event: QGraphicsSceneContextMenuEvent) -> None:
        self.contextMenuRequested.emit(self.block, event.screenPos())
        event.accept()

    # --------------------------------------------------------------- animation
    def move_to(self, pos: QPointF, animate: bool) -> None:
        self.stop_animation()
        if not animate or (self.pos() - pos).manhattanLength() < 0.5:
            self.setPos(pos)
            return
        anim = QPropertyAnimation(self, b"pos", self)
        anim.setDuration(170)
        anim.setStartValue(self.pos())
        anim.setEndValue(pos)
        anim.setEasingCurve(QEasingCurve.Type.OutCubic)
        anim.start()
        self._animation = anim

    def stop_animation(self) -> None:
        if self._animation is not None:
            end = self._animation.endValue()
            self._animation.stop()
            self._animation = None
            if end is not None and not self._dragging:
                self.setPos(end)
