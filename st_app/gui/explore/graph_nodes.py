"""The block graph's fixed parts: stem, joins between groups (a transition), head, the input and
output labels, and the wires of the main signal line."""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFontMetricsF, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QGraphicsObject, QGraphicsPathItem, QStyleOptionGraphicsItem, QWidget

from .graph_items import BOX_H, MID_Y, NODE_W, _arrow, _Look

__all__ = ["_EndItem", "_NodeItem", "_WireItem"]


class _NodeItem(QGraphicsObject):
    """Stem, a join between groups (a transition) or head: a neutral box on the main line with its
    own lead wires; taller than a unit's box when its description needs more lines."""

    def __init__(self, title: str, lines: list[str], look: _Look, tooltip: str, lead_in: bool, lead_out: bool) -> None:
        super().__init__()
        self.title, self.lines, self.look = title, lines, look
        self.lead_in, self.lead_out = lead_in, lead_out
        self.setToolTip(tooltip)
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    @property
    def box_height(self) -> float:
        return max(BOX_H, 29 + 15 * len(self.lines) + 6)

    def boundingRect(self) -> QRectF:
        return QRectF(-2, -2, NODE_W + 4, self.box_height + 4)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        look = self.look
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pen = QPen(look.wire, look.line)
        painter.setPen(pen)
        box = QRectF(16, 0, NODE_W - 32, self.box_height)
        if self.lead_in:
            painter.drawLine(QPointF(0, MID_Y), QPointF(box.left() - 5, MID_Y))
            _arrow(painter, QPointF(box.left() - 1, MID_Y), QPointF(1, 0), 6 + look.line, look.wire)
        if self.lead_out:
            painter.drawLine(QPointF(box.right(), MID_Y), QPointF(NODE_W, MID_Y))
        painter.setPen(QPen(QColor("#475569"), look.border))
        painter.setBrush(QColor("#E2E8F0"))
        painter.drawRoundedRect(box, 7, 7)
        painter.setPen(look.text)
        px = 14.0
        while px > 9 and QFontMetricsF(self.look.font(px, bold=True)).horizontalAdvance(self.title) > box.width() - 6:
            px -= 0.5
        painter.setFont(self.look.font(px, bold=True))
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


