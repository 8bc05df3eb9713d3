"""One analysis result on screen: its figures (the CLI's charts, drawn live), table and JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QPlainTextEdit,
    QScrollArea,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QWidget,
)

from st_app.figures import report_charts, save_report

__all__ = ["ResultView"]


def format_number(value: float) -> str:
    """A table cell: whole numbers as they are, others with two decimals (18.33, not 18.3333)."""
    if isinstance(value, int) or (math.isfinite(value) and float(value).is_integer() and abs(value) < 1e15):
        return str(int(value))
    return f"{value:.2f}" if math.isfinite(value) else str(value)


class NumberItem(QTableWidgetItem):
    """A number shown rounded but sorted by its exact value (the CSV keeps every digit)."""

    def __init__(self, value: float) -> None:
        super().__init__(format_number(value))
        self.value = float(value)
        self.setToolTip(repr(value))
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        if isinstance(other, NumberItem):
            return self.value < other.value
        return super().__lt__(other)


class ResultView(QTabWidget):
    """Figures, table and JSON of one report; Save writes them all like the CLI does."""

    planChosen = Signal(str)  # a table row's plan was double-clicked

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: dict[str, Any] | None = None
        self._redraw = QTimer(self)
        self._redraw.setSingleShot(True)
        self._redraw.setInterval(150)
        self._redraw.timeout.connect(self._redraw_charts)
        self._heights: list[int] = []
        self.font_scale = 0.8  # on-screen plots are smaller than the 900x540 files
        self.plots: list[pg.PlotWidget] = []
        self.figures = QWidget()
        self.grid = QGridLayout(self.figures)
        self.grid.setContentsMargins(0, 4, 0, 0)
        self.grid.setSpacing(6)
        for col in (0, 1):  # two equal columns whatever the charts' contents want
            self.grid.setColumnStretch(col, 1)
        self.table = QTableWidget()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setSortingEnabled(True)
        self.table.cellDoubleClicked.connect(self._on_double_click)
        self.json = QPlainTextEdit()
        self.json.setReadOnly(True)
        self.json.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        scroll = QScrollArea()  # narrow (presentation): the charts stack in one column and scroll
        scroll.setWidget(self.figures)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.figures_scroll = scroll
        self._columns = 2
        self.addTab(scroll, "Figures")
        self.addTab(self.table, "Table")
        self.addTab(self.json, "Report (JSON)")
        self.setTabToolTip(1, "Every number of the report; the CSV that Save writes")
        self.setTabToolTip(2, "The full report, with checkpoint ids, BN setting, seeds and image counts")

    def resizeEvent(self, event: Any) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._redraw.start()  # bar charts size their headroom in pixels: redraw at the new size

    def _on_plot_resized(self, *_: Any) -> None:
        heights = [round(w.getPlotItem().getViewBox().height() / 8) for w in self.plots]
        if heights != self._heights:  # only a real change of size (a redraw can nudge the axes)
            self._heights = heights
            self._redraw.start()

    def _cell_width(self, i: int, n: int) -> float:
        """The width chart ``i`` of ``n`` gets in the grid (the plots may not be laid out yet)."""
        span = _grid_cell(i, n, self._columns)[2]
        return self.figures_scroll.viewport().width() * (span / 2 if self._columns == 2 else 1.0) - 6

    def columns(self) -> int:
        """Two chart columns when each gets at least 360 px (more with larger fonts), else one."""
        need = int(360 * max(1.0, self.font_scale / 0.8))
        return 2 if self.figures_scroll.viewport().width() >= 2 * need else 1

    def _redraw_charts(self) -> None:
        if self.report is not None and self.columns() != self._columns:
            self.show_report(self.report)
            return
        if self.report is not None:
            charts = report_charts(self.report)
            for i, (chart, plot) in enumerate(zip(charts, self.plots)):
                chart.render(plot.getPlotItem())
                _fit_title(plot, self._cell_width(i, len(charts)))

    def show_report(self, report: dict[str, Any]) -> None:
        self.report = report
        self._columns = self.columns()
        charts = report_charts(report)
        while len(self.plots) < len(charts):
            w = pg.PlotWidget(background="w")
            w.setMinimumSize(220, int(160 * max(1.0, self.font_scale / 0.8)))
            w.getPlotItem().getViewBox().sigResized.connect(self._on_plot_resized)
            w.getPlotItem().st_font_scale = self.font_scale
            self.plots.append(w)
        for i, w in enumerate(self.plots):
            self.grid.removeWidget(w)
            w.setVisible(i < len(charts))
        # rows of peers (an even number of charts, e.g. the depth sweep's pairs) share the height: no
        # squeezed first row; a full-width first chart (odd number) keeps its natural, lower height
        rows = _grid_cell(len(charts) - 1, len(charts), self._columns)[0] + 1 if charts else 0
        peers = len(charts) % 2 == 0 or self._columns == 1
        for r in range(max(rows, self.grid.rowCount())):
            self.grid.setRowStretch(r, 1 if r < rows and peers else 0)
        for i, chart in enumerate(charts):
            plot = self.plots[i]
            row, col, span = _grid_cell(i, len(charts), self._columns)
            self.grid.addWidget(plot, row, col, 1, span)
            chart.render(plot.getPlotItem())
            _fit_title(plot, self._cell_width(i, len(charts)))
            plot.setToolTip(f"{chart.title}\nRight-click → Export… saves this figure alone.")
        from st_app.core.experiments.reports import report_table

        header, table_rows = report_table(report)
        self.table.setSortingEnabled(False)
        self.table.clear()
        self.table.setColumnCount(len(header))
        self.table.setRowCount(len(table_rows))
        self.table.setHorizontalHeaderLabels(header)
        for r, cells in enumerate(table_rows):
            for c, value in enumerate(cells):
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    item: QTableWidgetItem = NumberItem(value)
                else:
                    item = QTableWidgetItem("" if value is None else str(value))
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        self.table.setSortingEnabled(True)
        if "plan" in header:
            self.table.setToolTip("Double-click a row to open its sub-network in the Explore tab")
        self.json.setPlainText(json.dumps(report, indent=2))

    def _on_double_click(self, row: int, _column: int) -> None:
        header = [h.text() if (h := self.table.horizontalHeaderItem(c)) is not None else ""
                  for c in range(self.table.columnCount())]
        if "plan" in header:
            item = self.table.item(row, header.index("plan"))
            if item is not None and item.text():
                self.planChosen.emit(item.text())

    def set_font_scale(self, scale: float) -> None:
        """Text size of the plots (presentation mode uses larger); redraws the shown report."""
        self.font_scale = scale
        for w in self.plots:
            w.setMinimumSize(220, int(160 * max(1.0, scale / 0.8)))
            item = w.getPlotItem()
            item.st_font_scale = scale
            legend = item.legend
            if legend is not None:  # a new legend picks the new size up
                if legend.scene() is not None:
                    legend.scene().removeItem(legend)
                item.legend = None
        if self.report is not None:
            self.show_report(self.report)

    def clear_report(self) -> None:
        self.report = None
        for w in self.plots:
            w.getPlotItem().clear()
            w.hide()
        self.table.clear()
        self.table.setRowCount(0)
        self.json.clear()

    def save(self, folder: str | Path) -> Path:
        """Write ``<analysis>.json``, ``.csv`` and the PNG + SVG figures into ``folder``."""
        if self.report is None:
            raise ValueError("there is no result to save yet")
        return save_report(dict(self.report), folder)



def _fit_title(plot: pg.PlotWidget, width: float) -> None:
    """Wrap a title wider than its plot of ``width`` pixels (long, or with the series' keys moved in):
    a title that does not fit widens the plot item past its widget and cuts off its right side."""
    label = plot.getPlotItem().titleLabel
    text = label.item
    text.setTextWidth(-1)
    room = max(120.0, width - 80.0)  # the left axis and the margins take the rest
    if text.boundingRect().width() > room:
        text.setTextWidth(room)
        option = text.document().defaultTextOption()
        option.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        text.document().setDefaultTextOption(option)
    label.updateMin()
    height = max(30.0, text.boundingRect().height())  # pyqtgraph's title row is 30 px: room for every line
    label.setMaximumHeight(height)
    plot.getPlotItem().layout.setRowFixedHeight(0, height)
    label.resizeEvent(None)


def _grid_cell(i: int, n: int, columns: int = 2) -> tuple[int, int, int]:
    """Row, column and column span of chart ``i`` of ``n``: two per row, an odd first one full width."""
    if columns == 1:
        return i, 0, 2
    if n % 2 == 1:
        if i == 0:
            return 0, 0, 2
        i += 1
    return i // 2, i % 2, 1


