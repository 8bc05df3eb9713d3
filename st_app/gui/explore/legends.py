"""The keys under the block graph: what on, off, shape-changing, the skip arc or the dense bus look
like (by the layout's order rule), and the importance colour bar (points lost, 0 to the largest loss)."""
from __future__ import annotations

from PySide6.QtCore import (
    QPointF,
    QRectF,
    Qt,
)
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFontMetricsF,
    QLinearGradient,
    QPainter,
    QPainterPath,
    QPen,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsObject,
    QStyleOptionGraphicsItem,
    QWidget,
)

from ..style import ACCENT, MUTED, mix, stage_color
from .graph_items import IMPORTANCE_FLOOR, IMPORTANCE_STOPS, NA_COLOR, _Look, importance_color
from .network_info import NetworkInfo

__all__ = ["ImportanceLegendItem", "LegendItem", "legend_entries"]


def legend_entries(info: NetworkInfo) -> list[tuple[str, str]]:
    """The key's (glyph, text) entries for a network, from its layout's order rule and kinds."""
    layout = info.layout
    unit = layout.unit_name
    if layout.order == "fixed":
        return [("on", f"on: the {unit} runs"), ("zeros", "off: zeros in its channels"),
                ("bus", "bus: every earlier feature map, concatenated (‖)")]
    entries = [("on", "on: branch runs"), ("off", "off: branch skipped")]
    if any(layout.shapes[b].changes_shape for b in range(layout.num_blocks)):
        entries.append(("thick", "changes shape (1×1 projection shortcut)"))
    entries.append(("arc", "only path left: the skip connection"))
    if layout.order == "free":
        entries.append(("drag", f"drag a {unit} anywhere in its {layout.group_name}"))
    return entries


class LegendItem(QGraphicsObject):
    """A one-line key under the graph: what on, off, shape-changing, the blue arc or the bus mean."""

    ENTRIES = ("on: branch runs", "off: branch skipped", "changes shape (1×1 projection shortcut)",
               "only path left: the skip connection")

    def __init__(self, look: _Look, entries: list[tuple[str, str]] | None = None) -> None:
        super().__init__()
        self.look = look
        self.entries = entries or [("on", self.ENTRIES[0]), ("off", self.ENTRIES[1]), ("thick", self.ENTRIES[2]),
                                   ("arc", self.ENTRIES[3])]
        self.importance = False  # glyphs in the importance colours, so the key matches the boxes
        self.setToolTip("Click a unit to switch it off or on; drag it to reorder where its network allows; "
                        "right-click for more.")
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    @property
    def texts(self) -> list[str]:
        return [text for _glyph, text in self.entries]

    def set_importance_mode(self, on: bool) -> None:
        if on != self.importance:
            self.importance = on
            self.update()

    def refresh(self) -> None:
        """Fonts changed (presentation mode, a boosted look): new size, new cache."""
        self.prepareGeometryChange()
        self.update()

    def _font(self):  # noqa: ANN202 - QFont
        return self.look.font(11, boost=True)

    def boundingRect(self) -> QRectF:
        fm = QFontMetricsF(self._font())
        width = sum(28 + fm.horizontalAdvance(text) + 26 for text in self.texts)
        return QRectF(0, 0, width, max(26.0, fm.height() + 8))

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setFont(self._font())
        height = self.boundingRect().height()
        fm = QFontMetricsF(self._font())
        x = 0.0
        top = (height - 16) / 2
        for glyph, text in self.entries:
            self._paint_glyph(painter, glyph, QRectF(x, top, 22, 16))
            painter.setPen(QColor(MUTED) if not self.look.presentation else self.look.text)
            w = fm.horizontalAdvance(text)
            painter.drawText(QRectF(x + 28, 0, w + 4, height), Qt.AlignmentFlag.AlignVCenter, text)
            x += 28 + w + 26

    def _paint_glyph(self, painter: QPainter, glyph: str, box: QRectF) -> None:
        x, top, bottom = box.left(), box.top(), box.bottom()
        if glyph == "arc":
            painter.setPen(QPen(QColor(ACCENT), self.look.line * 1.7))
            path = QPainterPath(QPointF(x, bottom))
            path.lineTo(x, top + 4)
            path.lineTo(x + 22, top + 4)
            path.lineTo(x + 22, bottom)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPath(path)
        elif glyph == "bus":
            painter.setPen(QPen(self.look.wire, self.look.line * 2.2))
            painter.drawLine(QPointF(x, box.center().y()), QPointF(x + 22, box.center().y()))
            painter.setPen(QPen(self.look.wire, 1.2))
            painter.setBrush(QColor("#FFFFFF"))
            painter.drawEllipse(box.center(), 6, 6)
            for dx in (-1.6, 1.6):
                painter.drawLine(QPointF(box.center().x() + dx, box.center().y() - 3.5),
                                 QPointF(box.center().x() + dx, box.center().y() + 3.5))
        elif glyph == "drag":
            painter.setPen(QPen(self.look.wire, self.look.line))
            y = box.center().y()
            painter.drawLine(QPointF(x + 2, y), QPointF(x + 20, y))
            for tip, d in ((x + 1, 1), (x + 21, -1)):
                painter.drawLine(QPointF(tip, y), QPointF(tip + 5 * d, y - 4))
                painter.drawLine(QPointF(tip, y), QPointF(tip + 5 * d, y + 4))
        else:
            self._paint_box_glyph(painter, box, off=glyph in ("off", "zeros"), thick=glyph == "thick")
            if glyph == "zeros":
                painter.setPen(QColor("#6B7280"))
                painter.setFont(self.look.font(10, bold=True))
                painter.drawText(box, Qt.AlignmentFlag.AlignCenter, "0")
                painter.setFont(self._font())

    def _paint_box_glyph(self, painter: QPainter, glyph: QRectF, off: bool, thick: bool) -> None:
        """A small unit box drawn the way BlockItem draws on/off in the current colouring."""
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


class ImportanceLegendItem(QGraphicsObject):
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


