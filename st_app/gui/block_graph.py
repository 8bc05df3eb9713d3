"""The unraveled block graph: input -> stem -> stages of residual blocks -> head.

Every residual block is drawn as ``split -> branch box -> (+)`` with its skip connection as
an arc over the box, so a dropped block visibly leaves the signal only the skip. Blocks that
change shape (first of a stage) have a thicker border, a ``16→32 ↓2`` tag and a labelled
projection shortcut (which keeps running when their branch is dropped). Boxes sit in
execution order: an active block's slot follows the plan, a dropped one stays where network
order puts it.

The view only *asks* for edits (signals); the window owns the plan, validates with
:class:`~st_app.core.plan.SubnetPlan` and calls :meth:`BlockGraphView.set_plan` back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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
    QAction,
    QBrush,
    QColor,
    QFontMetricsF,
    QKeyEvent,
    QLinearGradient,
    QPainter,
    QPainterPath,
    QPen,
    QPolygonF,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QApplication,
    QGraphicsItem,
    QGraphicsObject,
    QGraphicsPathItem,
    QGraphicsScene,
    QGraphicsSceneContextMenuEvent,
    QGraphicsSceneHoverEvent,
    QGraphicsSceneMouseEvent,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QMenu,
    QStyleOptionGraphicsItem,
    QWidget,
)

from st_app.core.plan import NetLayout, SubnetPlan

from .style import ACCENT, MUTED, mix, stage_color, ui_font

__all__ = ["BlockGraphView", "BlockItem", "NetworkInfo", "display_order", "format_drop", "importance_color"]

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
MAX_PER_ROW = 12
SINGLE_ROW_MAX = 12  # up to this many blocks: one row like the paper's figure

# Block importance (accuracy lost when one block alone is deleted, after Veit et al. 2016):
# a sequential, colour-blind safe ramp (ColorBrewer YlOrRd), pale = harmless, dark red = vital.
IMPORTANCE_STOPS = ((0.0, "#FFFFCC"), (0.25, "#FED976"), (0.5, "#FD8D3C"), (0.75, "#E31A1C"), (1.0, "#800026"))
IMPORTANCE_FLOOR = 1.0  # the scale reaches at least this many points: tiny drops stay pale
NA_COLOR = "#D1D5DB"  # not measured (NaN)


@dataclass(frozen=True)
class NetworkInfo:
    """What the drawing needs to know about a network, weights not included."""

    layout: NetLayout
    arch: str = ""
    in_channels: int = 3
    image_size: int = 32
    num_classes: int = 10
    stem_channels: int = 16
    stem_kernel: int = 3
    stem_reduction: int = 1  # 4 for the ImageNet stem (stride-2 conv + max-pool)

    @classmethod
    def from_model(cls, model) -> NetworkInfo:  # noqa: ANN001 - ResidualNet, torch-free here
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
    """Left-to-right order of a stage's boxes: the plan's order, dropped blocks slotted in."""
    layout = plan.layout
    order = list(plan.stages[stage])
    active = set(order)
    for b in layout.stages[stage]:
        if b in active:
            continue
        if layout.shapes[b].changes_shape:
            order.insert(0, b)
            continue
        pos = next((i for i, x in enumerate(order) if x > b), len(order))
        order.insert(pos, b)
    return order


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
    """The change of accuracy when a block is deleted, e.g. ``−12.3`` (lost) or ``+0.4`` (gained)."""
    if not math.isfinite(drop):
        return "n/a"
    if abs(drop) < 0.05:
        return "0.0"
    return f"−{drop:.1f}" if drop > 0 else f"+{-drop:.1f}"


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

    def font(self, pixel_size: float, bold: bool = False):  # noqa: ANN201 - QFont
        return ui_font(pixel_size * (1.12 if self.presentation else 1.0), bold)

    @property
    def muted(self) -> QColor:
        return QColor("#6B7280") if self.presentation else QColor("#9CA3AF")


class BlockItem(QGraphicsObject):
    """One residual block: its slot's wires, skip arc, branch box and (+) junction."""

    clicked = Signal(int)
    dragged = Signal(int, float)  # block, scene x of the box centre when released
    contextMenuRequested = Signal(int, QPoint)

    def __init__(self, block: int, stage: int, in_ch: int, out_ch: int, stride: int, look: _Look) -> None:
        super().__init__()
        self.block = block
        self.stage = stage
        self.in_ch, self.out_ch, self.stride = in_ch, out_ch, stride
        self.changes_shape = in_ch != out_ch or stride != 1
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
        return QRectF(-2, ARC_Y - 20, SLOT_W + 4, FRAME_BOTTOM - ARC_Y + 20)

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
        if self.changes_shape:
            label = f"{self.in_ch}→{self.out_ch}"
            return label + (f" ↓{self.stride}" if self.stride != 1 else "")
        return f"{self.out_ch} ch"

    def _tooltip(self) -> str:
        state = (f"<b>on</b>, runs {self._ordinal(self.position)} in its stage" if self.active
                 else "<b>off</b>: its branch is skipped, the signal takes only the skip connection")
        shape = (f"changes shape {self.in_ch}→{self.out_ch} channels"
                 + (f", stride {self.stride}" if self.stride != 1 else "")
                 + "; its shortcut is a 1×1 projection that keeps running when the block is off"
                 if self.changes_shape else f"{self.out_ch} channels in and out (identity shortcut)")
        moved = "<br>Moved out of network order." if self.moved else ""
        return (f"<b>Block {self.block}</b> · stage {self.stage + 1}<br>{shape}<br>State: {state}.{moved}"
                f"{self._importance_tip()}"
                "<br><i>Click: turn on/off · drag sideways: reorder in its stage · right-click: more</i>")

    def _importance_tip(self) -> str:
        if self.importance is None:
            return ""
        where = f" ({self.importance_title})" if self.importance_title else ""
        d = self.importance
        if not math.isfinite(d):
            return f"<br>Accuracy lost when this block alone is deleted: n/a (not measured){where}."
        verb = "costs" if d >= 0 else "gains"
        return f"<br>Deleting this block alone {verb} {abs(d):.1f} points of accuracy{where}."

    @staticmethod
    def _ordinal(n: int) -> str:
        return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")

    # ------------------------------------------------------------------- paint
    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        look = self.look
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        white = QColor("#FFFFFF")
        wire = look.wire
        branch_col = wire if self.active else look.muted
        solid = QPen(wire, look.line)
        solid.setCapStyle(Qt.PenCapStyle.RoundCap)

        # main line: lead-in to the split point, (+) to the slot's right edge
        painter.setPen(solid)
        painter.drawLine(QPointF(0, MID_Y), QPointF(SPLIT_X, MID_Y))
        painter.drawLine(QPointF(JOIN_X + JOIN_R, MID_Y), QPointF(SLOT_W, MID_Y))
        painter.setBrush(wire)
        painter.drawEllipse(QPointF(SPLIT_X, MID_Y), 2.6 * look.line / 1.6, 2.6 * look.line / 1.6)

        # branch wires into and out of the box
        branch_pen = QPen(branch_col, look.line)
        if not self.active:
            branch_pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(branch_pen)
        painter.drawLine(QPointF(SPLIT_X, MID_Y), QPointF(BOX_X - 5, MID_Y))
        painter.drawLine(QPointF(BOX_X + BOX_W, MID_Y), QPointF(JOIN_X - JOIN_R, MID_Y))
        _arrow(painter, QPointF(BOX_X - 1, MID_Y), QPointF(1, 0), 6 + look.line, branch_col)

        # skip connection: over the box into the (+); emphasised when it is the only path
        skip_col = QColor(ACCENT) if not self.active else wire
        skip_pen = QPen(skip_col, look.line * (1.7 if not self.active else 1.0))
        skip_pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        path = QPainterPath(QPointF(SPLIT_X, MID_Y))
        r = 10.0
        path.lineTo(SPLIT_X, ARC_Y + r)
        path.quadTo(SPLIT_X, ARC_Y, SPLIT_X + r, ARC_Y)
        path.lineTo(JOIN_X - r, ARC_Y)
        path.quadTo(JOIN_X, ARC_Y, JOIN_X, ARC_Y + r)
        path.lineTo(JOIN_X, MID_Y - JOIN_R - 4)
        painter.setPen(skip_pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(path)
        _arrow(painter, QPointF(JOIN_X, MID_Y - JOIN_R), QPointF(0, 1), 6 + look.line, skip_col)
        if self.changes_shape:
            tag = QRectF(SPLIT_X + 8, ARC_Y - 9, JOIN_X - SPLIT_X - 16, 18)
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
        painter.drawEllipse(QPointF(JOIN_X, MID_Y), JOIN_R, JOIN_R)
        painter.drawLine(QPointF(JOIN_X - 4, MID_Y), QPointF(JOIN_X + 4, MID_Y))
        painter.drawLine(QPointF(JOIN_X, MID_Y - 4), QPointF(JOIN_X, MID_Y + 4))

        self._paint_box(painter)

    def _paint_box(self, painter: QPainter) -> None:
        """The branch box, its labels and, when importance is shown, the accuracy drop under it."""
        look, box = self.look, self.box_rect()
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

        if self.current:
            ring = QPen(QColor(ACCENT), 2.5 if not look.presentation else 4.0)
            painter.setPen(ring)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(box.adjusted(-5, -5, 5, 5), 10, 10)

        # text: index, width, state
        text_col = self.text_color()
        painter.setPen(text_col)
        painter.setFont(look.font(17, bold=True))
        painter.drawText(QRectF(box.x(), box.y() + 5, box.width(), 22), Qt.AlignmentFlag.AlignHCenter,
                         f"#{self.block}")
        painter.setFont(look.font(12, bold=self.changes_shape))
        painter.drawText(QRectF(box.x(), box.y() + 27, box.width(), 18), Qt.AlignmentFlag.AlignHCenter,
                         self.width_label())
        painter.setFont(look.font(11, bold=shown and not self.active))
        status = ("moved" if self.moved else "on") if self.active else "off"
        if self.active and not shown:  # stage-tinted state; on importance fills the plain text colour
            text_col = QColor("#B45309") if self.moved else color.darker(140)
        painter.setPen(text_col)
        painter.drawText(QRectF(box.x(), box.y() + 46, box.width(), 16), Qt.AlignmentFlag.AlignHCenter, status)
        if shown:
            self._paint_drop(painter)

    def _paint_drop(self, painter: QPainter) -> None:
        """The accuracy drop in points under the box (clear of the current-block ring)."""
        na = not math.isfinite(self.importance)
        painter.setPen(self.look.muted if na else self.look.text)
        painter.setFont(self.look.font(13, bold=not na))
        painter.drawText(QRectF(BOX_X - 16, BOX_H + 6, BOX_W + 32, FRAME_BOTTOM - BOX_H - 6),
                         Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, format_drop(self.importance))

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
        dx = event.scenePos().x() - self._press.x()
        if not self._dragging and abs(dx) >= QApplication.startDragDistance() and self.active:
            self._dragging = True
            self.stop_animation()
            self.setZValue(10)
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        if self._dragging:
            self.setPos(self._drag_origin.x() + dx, self._drag_origin.y())

    def mouseReleaseEvent(self, event: QGraphicsSceneMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._press is None:
            return
        was_dragging = self._dragging
        self._press = None
        self._dragging = False
        self.setZValue(2)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        if was_dragging:
            self.dragged.emit(self.block, self.scene_box_center().x())
        else:
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


class _NodeItem(QGraphicsObject):
    """Stem or head: a neutral box on the main line with its own lead wires."""

    def __init__(self, title: str, lines: list[str], look: _Look, tooltip: str, lead_in: bool, lead_out: bool) -> None:
        super().__init__()
        self.title, self.lines, self.look = title, lines, look
        self.lead_in, self.lead_out = lead_in, lead_out
        self.setToolTip(tooltip)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    def boundingRect(self) -> QRectF:
        return QRectF(-2, -2, NODE_W + 4, BOX_H + 4)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        look = self.look
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(look.wire, look.line)
        painter.setPen(pen)
        box = QRectF(16, 0, NODE_W - 32, BOX_H)
        if self.lead_in:
            painter.drawLine(QPointF(0, MID_Y), QPointF(box.left() - 5, MID_Y))
            _arrow(painter, QPointF(box.left() - 1, MID_Y), QPointF(1, 0), 6 + look.line, look.wire)
        if self.lead_out:
            painter.drawLine(QPointF(box.right(), MID_Y), QPointF(NODE_W, MID_Y))
        painter.setPen(QPen(QColor("#475569"), look.border))
        painter.setBrush(QColor("#E2E8F0"))
        painter.drawRoundedRect(box, 7, 7)
        painter.setPen(look.text)
        painter.setFont(self.look.font(14, bold=True))
        painter.drawText(QRectF(box.x(), box.y() + 7, box.width(), 20), Qt.AlignmentFlag.AlignHCenter, self.title)
        painter.setFont(self.look.font(11))
        for i, line in enumerate(self.lines):
            painter.drawText(QRectF(box.x() - 4, box.y() + 29 + 15 * i, box.width() + 8, 16),
                             Qt.AlignmentFlag.AlignHCenter, line)


class _EndItem(QGraphicsObject):
    """The input image or the output logits: a label with an arrow."""

    def __init__(self, text: str, look: _Look, arrow_out: bool) -> None:
        super().__init__()
        self.text, self.look, self.arrow_out = text, look, arrow_out
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    def boundingRect(self) -> QRectF:
        return QRectF(-2, -2, 74, BOX_H + 4)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(self.look.text)
        painter.setFont(self.look.font(11))
        lines = self.text.split("\n")
        painter.drawText(QRectF(0, MID_Y - 10 - 15 * len(lines), 70, 15 * len(lines) + 4),
                         Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom, self.text)
        painter.setPen(QPen(self.look.wire, self.look.line))
        painter.drawLine(QPointF(4, MID_Y), QPointF(66, MID_Y))
        if self.arrow_out:
            _arrow(painter, QPointF(70, MID_Y), QPointF(1, 0), 6 + self.look.line, self.look.wire)


class _LegendItem(QGraphicsObject):
    """A one-line key under the graph: what on, off, shape-changing and the blue arc mean."""

    ENTRIES = ("on: branch runs", "off: branch skipped", "changes shape (1×1 projection shortcut)",
               "only path left: the skip connection")

    def __init__(self, look: _Look) -> None:
        super().__init__()
        self.look = look
        self.importance = False  # glyphs in the importance colours, so the key matches the boxes
        self.setToolTip("Click a block to switch it off or on; drag it sideways to reorder; right-click for more.")
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    def set_importance_mode(self, on: bool) -> None:
        if on != self.importance:
            self.importance = on
            self.update()

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, 1100, 26)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setFont(self.look.font(11))
        x = 0.0
        for i, text in enumerate(self.ENTRIES):
            glyph = QRectF(x, 5, 22, 16)
            if i == 3:
                painter.setPen(QPen(QColor(ACCENT), self.look.line * 1.7))
                path = QPainterPath(QPointF(x, 21))
                path.lineTo(x, 9)
                path.lineTo(x + 22, 9)
                path.lineTo(x + 22, 21)
                painter.setBrush(Qt.BrushStyle.NoBrush)
                painter.drawPath(path)
            else:
                self._paint_box_glyph(painter, glyph, off=i == 1, thick=i == 2)
            painter.setPen(QColor(MUTED) if not self.look.presentation else self.look.text)
            w = painter.fontMetrics().horizontalAdvance(text)
            painter.drawText(QRectF(x + 28, 0, w + 4, 26), Qt.AlignmentFlag.AlignVCenter, text)
            x += 28 + w + 26

    def _paint_box_glyph(self, painter: QPainter, glyph: QRectF, off: bool, thick: bool) -> None:
        """A small block box drawn the way BlockItem draws on/off in the current colouring."""
        color = stage_color(0)
        pen = QPen(color.darker(115), self.look.border * (2 if thick else 1))
        fill = importance_color(0.3, 1.0) if self.importance else mix(color, QColor("#FFFFFF"), 0.8)
        if off:
            pen.setColor(QColor("#4B5563") if self.importance else QColor("#9CA3AF"))
            pen.setStyle(Qt.PenStyle.DashLine)
            fill = fill if self.importance else QColor("#F3F4F6")
        painter.setPen(pen)
        painter.setBrush(fill)
        painter.drawRoundedRect(glyph, 4, 4)
        if off and self.importance:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QBrush(QColor(0, 0, 0, 55), Qt.BrushStyle.BDiagPattern))
            painter.drawRoundedRect(glyph.adjusted(1.5, 1.5, -1.5, -1.5), 3, 3)


class _ImportanceLegendItem(QGraphicsObject):
    """Colour bar of the importance view: title, the ramp from 0 to the largest drop, tick labels.

    Only takes room while shown: hidden, its bounding rect is empty, so the scene rect and
    ``fit()`` ignore it.
    """

    BAR_W, BAR_H = 260.0, 14.0

    def __init__(self, look: _Look) -> None:
        super().__init__()
        self.look = look
        self.title = ""
        self.vmax = IMPORTANCE_FLOOR
        self.has_na = False
        self.setVisible(False)
        self.setToolTip("Colour of each block: the accuracy lost when that block alone is deleted from the "
                        "full network (Veit et al. 2016). Pale: harmless to delete; dark red: vital.")
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    def show_scale(self, title: str, vmax: float, has_na: bool) -> None:
        self.prepareGeometryChange()
        self.title, self.vmax, self.has_na = title, vmax, has_na
        self.setVisible(True)
        self.update()

    def hide_scale(self) -> None:
        self.prepareGeometryChange()
        self.setVisible(False)

    def refresh(self) -> None:
        """Fonts changed (presentation mode): new size, new cache."""
        self.prepareGeometryChange()
        self.update()

    def _title(self) -> str:
        return self.title or "Accuracy lost when the block alone is deleted"

    def _rows(self) -> tuple[float, float]:
        """Heights of the title line and of a tick-label line at the current fonts."""
        return (QFontMetricsF(self.look.font(13, bold=True)).height(),
                QFontMetricsF(self.look.font(11)).height())

    def boundingRect(self) -> QRectF:
        if not self.isVisible():
            return QRectF()
        title_h, tick_h = self._rows()
        title_w = QFontMetricsF(self.look.font(13, bold=True)).horizontalAdvance(self._title())
        small = QFontMetricsF(self.look.font(11))
        keys = "points lost" + ("      n/a: not measured" if self.has_na else "")
        width = max(title_w, self.BAR_W + 20 + small.horizontalAdvance(keys) + 40)
        return QRectF(-2, -2, width + 4, title_h + 6 + self.BAR_H + 3 + tick_h + 4)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        title_h, tick_h = self._rows()
        painter.setPen(self.look.text)
        painter.setFont(self.look.font(13, bold=True))
        painter.drawText(QRectF(0, 0, 2000, title_h), Qt.AlignmentFlag.AlignVCenter, self._title())
        bar = QRectF(0, title_h + 6, self.BAR_W, self.BAR_H)
        self._paint_bar(painter, bar, tick_h)
        self._paint_keys(painter, bar)

    def _paint_bar(self, painter: QPainter, bar: QRectF, tick_h: float) -> None:
        """The ramp with ticks at 0, half and the top of the scale."""
        grad = QLinearGradient(bar.topLeft(), bar.topRight())
        for t, c in IMPORTANCE_STOPS:
            grad.setColorAt(t, QColor(c))
        edge = QPen(QColor("#6B7280"), 1.0)
        painter.setPen(edge)
        painter.setBrush(QBrush(grad))
        painter.drawRect(bar)
        painter.setFont(self.look.font(11))
        ticks = ((Qt.AlignmentFlag.AlignLeft, 0.0, "0"),
                 (Qt.AlignmentFlag.AlignHCenter, 0.5, f"{self.vmax / 2:.1f}"),
                 (Qt.AlignmentFlag.AlignRight, 1.0, f"{self.vmax:.1f}"))
        for align, t, label in ticks:
            x = bar.left() + t * bar.width()
            painter.setPen(edge)
            painter.drawLine(QPointF(x, bar.bottom()), QPointF(x, bar.bottom() + 3))
            painter.setPen(self.look.text)
            cell = QRectF(x - 60 * t, bar.bottom() + 3, 60, tick_h)  # label starts, centres, ends at x
            painter.drawText(cell, align | Qt.AlignmentFlag.AlignTop, label)

    def _paint_keys(self, painter: QPainter, bar: QRectF) -> None:
        """The unit right of the bar and, when some blocks have no value, the grey n/a swatch."""
        muted = QColor(MUTED) if not self.look.presentation else self.look.text
        line = QRectF(bar.right() + 12, bar.top() - 4, 200, self.BAR_H + 8)
        unit = "points lost"
        painter.setPen(muted)
        painter.drawText(line, Qt.AlignmentFlag.AlignVCenter, unit)
        if not self.has_na:
            return
        x = line.left() + painter.fontMetrics().horizontalAdvance(unit) + 24
        painter.setPen(QPen(QColor("#6B7280"), 1.0))
        painter.setBrush(QColor(NA_COLOR))
        painter.drawRect(QRectF(x, bar.top(), 22, self.BAR_H))
        painter.setPen(muted)
        painter.drawText(line.translated(x + 28 - line.left(), 0), Qt.AlignmentFlag.AlignVCenter, "n/a: not measured")


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
        self._importance_legend: _ImportanceLegendItem | None = None
        self._legend: _LegendItem | None = None
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

    def importance_legend(self) -> _ImportanceLegendItem | None:
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
            if self._importance_legend is not None:
                self._importance_legend.hide_scale()
                self._legend.set_importance_mode(False)
            self._update_scene_rect()
            return
        if self._info is None:
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

    def set_presentation(self, on: bool) -> None:
        self._look.presentation = on
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
                text = scene.addSimpleText(label, ui_font(13, bold=True))
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

        legend = self._legend = _LegendItem(look)
        legend.setPos(74, (len(rows) - 1) * ROW_H + FRAME_BOTTOM + 18)
        scene.addItem(legend)
        self._importance_legend = _ImportanceLegendItem(look)  # under the on/off key, hidden
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


class _WireItem(QGraphicsPathItem):
    """A plain connection on the main signal line (between stages, rows, to the head)."""

    def __init__(self, path: QPainterPath, look: _Look) -> None:
        super().__init__(path)
        self.look = look
        self.setZValue(1)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        pen = QPen(self.look.wire, self.look.line)
        pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        self.setPen(pen)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(self.path())

