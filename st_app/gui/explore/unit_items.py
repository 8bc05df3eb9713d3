"""Units that are not one residual branch: a transformer block (two residual halves) and a
dense layer (on a concatenation bus).

Both keep :class:`.graph_items.BlockItem`'s state, colours, importance, tooltips and mouse
handling; they only draw differently. Which one a unit gets is decided by its layout (the
order rule and the unit's kind), never by a family's name.
"""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QStyleOptionGraphicsItem, QWidget

from ..style import ACCENT, stage_color
from .graph_items import ARC_Y, BOX_H, BOX_W, BOX_X, JOIN_R, MID_Y, SLOT_W, BlockItem, _arrow
from .graph_layout import HALF_W, TRANSFORMER_W

__all__ = ["DenseLayerItem", "TransformerBlockItem"]

BUS_Y = ARC_Y  # the concatenation bus runs where residual units draw their skip arcs
IN_X = BOX_X + 18.0  # a dense layer reads the bus here (down into its box)
OUT_X = BOX_X + BOX_W - 18.0  # ... and appends its features here (up into the ‖ junction)


class TransformerBlockItem(BlockItem):
    """One transformer block as one unit: its attention half and its MLP half, each a residual
    branch with its own skip connection, inside one outline (click either: the whole block)."""

    WIDTH = TRANSFORMER_W

    def box_rect(self) -> QRectF:
        return QRectF(BOX_X, 0, HALF_W + BOX_W, BOX_H)

    def half_box(self, half: int) -> QRectF:
        return QRectF(BOX_X + half * HALF_W, 0, BOX_W, BOX_H)

    def width_label(self) -> str:
        return f"{self.out_ch} wide"

    def off_text(self) -> str:
        return "both residual branches are skipped, the tokens take only the skip connections"

    def shape_text(self) -> str:
        return f"tokens of width {self.out_ch} in and out (identity shortcuts)"

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        outline = QRectF(3, ARC_Y - 12, self.WIDTH - 6, BOX_H - ARC_Y + 18)
        edge = QColor(stage_color(self.stage))
        edge.setAlpha(120 if self.active else 70)
        pen = QPen(edge, 1.2)
        pen.setStyle(Qt.PenStyle.SolidLine if self.active else Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRoundedRect(outline, 9, 9)
        for half in (0, 1):
            self._paint_residual(painter, half * HALF_W)
        for half, label, short in ((0, "attention", "attn"), (1, "MLP", "MLP")):
            self._paint_box(painter, self.half_box(half), label, compact_second=short)
        self._paint_marks(painter, self.box_rect())


class DenseLayerItem(BlockItem):
    """One dense layer hanging under its dense block's bus: it reads every feature map on the bus
    (arrow down) and appends ``growth`` channels through a concatenation junction (‖, arrow up).

    A dropped layer stays in place, greyed and labelled *zeros*: its channels are still appended,
    as zeros, which the later layers and the transition read. ``bus`` is the channel range of
    the group (the bus thickens with the channels it carries); ``lead_in`` / ``lead_out`` say
    whether this slot starts or ends a row of its group (the bus bends down to the main line).
    """

    def __init__(self, *args, bus: tuple[int, int] = (0, 1), **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.bus = bus
        self.lead_in = False
        self.lead_out = False

    @property
    def growth(self) -> int:
        return self.out_ch - self.in_ch

    def set_row_ends(self, lead_in: bool, lead_out: bool) -> None:
        self.lead_in, self.lead_out = lead_in, lead_out
        self.update()

    def width_label(self) -> str:
        return f"+{self.growth} ch"

    def status_text(self) -> str:
        return "on" if self.active else "zeros"

    def off_text(self) -> str:
        return (f"it does not run; its {self.growth} channels are zeros, which the later layers and the "
                "transition still read")

    def shape_text(self) -> str:
        return f"reads {self.in_ch} channels, appends {self.growth} ({self.in_ch}→{self.out_ch} on the bus)"

    def _bus_pen(self, channels: int) -> QPen:
        lo, hi = self.bus
        t = (channels - lo) / max(1, hi - lo)
        pen = QPen(self.look.wire, self.look.line * (1.0 + 2.2 * max(0.0, min(1.0, t))))
        pen.setCapStyle(Qt.PenCapStyle.FlatCap)
        return pen

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        look = self.look
        wire, w = look.wire, self.WIDTH
        # the bus: thicker after this layer's junction (more channels); bends to the main line at row ends
        start, end = (14.0 if self.lead_in else 0.0), (w - 14.0 if self.lead_out else w)
        painter.setPen(self._bus_pen(self.in_ch))
        painter.drawLine(QPointF(start, BUS_Y), QPointF(OUT_X - JOIN_R, BUS_Y))
        painter.setPen(self._bus_pen(self.out_ch))
        painter.drawLine(QPointF(OUT_X + JOIN_R, BUS_Y), QPointF(end, BUS_Y))
        bend = QPen(wire, look.line)
        bend.setCapStyle(Qt.PenCapStyle.RoundCap)
        painter.setPen(bend)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if self.lead_in:
            path = QPainterPath(QPointF(0, MID_Y))
            path.lineTo(4, MID_Y)
            path.quadTo(8, MID_Y, 8, MID_Y - 4)
            path.lineTo(8, BUS_Y + 6)
            path.quadTo(8, BUS_Y, 14, BUS_Y)
            painter.drawPath(path)
        if self.lead_out:
            path = QPainterPath(QPointF(w - 14, BUS_Y))
            path.quadTo(w - 8, BUS_Y, w - 8, BUS_Y + 6)
            path.lineTo(w - 8, MID_Y - 4)
            path.quadTo(w - 8, MID_Y, w - 4, MID_Y)
            path.lineTo(w, MID_Y)
            painter.drawPath(path)

        # read: the bus into the box
        read_col = wire if self.active else look.muted
        read = QPen(read_col, look.line)
        if not self.active:
            read.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(read)
        painter.drawLine(QPointF(IN_X, BUS_Y), QPointF(IN_X, -6))
        _arrow(painter, QPointF(IN_X, -1), QPointF(0, 1), 6 + look.line, read_col)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(wire)
        painter.drawEllipse(QPointF(IN_X, BUS_Y), 2.6 * look.line / 1.6, 2.6 * look.line / 1.6)

        # append: the box's features (or zeros) up into the concatenation junction
        write_col = wire if self.active else QColor(ACCENT)
        write = QPen(write_col, look.line)
        if not self.active:
            write.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(write)
        painter.drawLine(QPointF(OUT_X, 0), QPointF(OUT_X, BUS_Y + JOIN_R + 5))
        _arrow(painter, QPointF(OUT_X, BUS_Y + JOIN_R + 1), QPointF(0, -1), 6 + look.line, write_col)
        if not self.active:
            painter.setPen(QColor(ACCENT))
            painter.setFont(look.font(12, bold=True))
            painter.drawText(QRectF(OUT_X + 4, BUS_Y + JOIN_R, 20, -BUS_Y - JOIN_R), Qt.AlignmentFlag.AlignVCenter,
                             "0")
        painter.setPen(QPen(wire, look.line))
        painter.setBrush(QColor("#FFFFFF"))
        painter.drawEllipse(QPointF(OUT_X, BUS_Y), JOIN_R, JOIN_R)
        for dx in (-1.8, 1.8):  # ‖: concatenation
            painter.drawLine(QPointF(OUT_X + dx, BUS_Y - 4), QPointF(OUT_X + dx, BUS_Y + 4))

        self._paint_box(painter, self.box_rect(), self.width_label())
        self._paint_marks(painter, self.box_rect())


assert SLOT_W > OUT_X + JOIN_R  # the junction sits inside the slot
