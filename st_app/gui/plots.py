"""Live training plots: main-net test accuracy, training loss, probe sub-nets (figure 3 live).

Data and view are kept apart. :class:`SeriesStore` keeps every number that arrived (the CSV
export writes all of it); :class:`TrainingPlots` shows some of those series, with exactly one
``PlotDataItem`` per (run, series) that is created once and then only fed with ``setData``.
Redraws are rate-limited: new data marks a series dirty and arms a 50 ms single-shot timer,
so the plots are redrawn at most 20 times a second however fast the data comes in.

Colours follow the Okabe-Ito colour-blind-safe palette, one colour per training method in
every plot (CT orange and dashed, ST blue and solid).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QVBoxLayout, QWidget

__all__ = [
    "METHOD_COLORS",
    "METHOD_LABELS",
    "SeriesStore",
    "TrainingPlots",
    "method_color",
    "method_label",
]

METHOD_COLORS = {"ct": "#E69F00", "st": "#0072B2", "stpp": "#009E73", "sd": "#CC79A7"}
_SPARE_COLORS = ["#D55E00", "#56B4E9", "#000000", "#F0E442"]
METHOD_LABELS = {"ct": "CT", "st": "ST", "stpp": "ST++", "sd": "Stoch. depth"}
METHOD_DASH = {"ct": Qt.PenStyle.DashLine, "st": Qt.PenStyle.SolidLine,
               "stpp": Qt.PenStyle.DashDotLine, "sd": Qt.PenStyle.DotLine}

#: series drawn as curves (others, e.g. ``lr`` or ``kl``, only go to the CSV export)
ACC, LOSS, LOSS_RAW, PROBE = "test_acc", "loss", "loss_raw", "probe:"
SMOOTHING = 0.9  # EMA weight of the smoothed loss (bias-corrected, as TensorBoard does)
REDRAW_MS = 50  # at most 20 redraws a second

_THEMES = {
    False: {"bg": "#FCFCFD", "fg": "#3A3A3A", "grid": 0.22, "tick": 9, "label": 10, "title": 11,
            "legend": 9, "width": 2.2, "thin": 1.2, "symbol": 6},
    True: {"bg": "#FFFFFF", "fg": "#000000", "grid": 0.35, "tick": 15, "label": 16, "title": 18,
           "legend": 14, "width": 4.0, "thin": 2.0, "symbol": 11},
}


def method_color(run: str) -> str:
    key = run.lower()
    if key in METHOD_COLORS:
        return METHOD_COLORS[key]
    return _SPARE_COLORS[sum(map(ord, key)) % len(_SPARE_COLORS)]


def method_label(run: str) -> str:
    return METHOD_LABELS.get(run.lower(), run)


@dataclass
class Series:
    """x as plotted (epoch or step), the value, and the optimizer step it was taken at."""

    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    step: list[int] = field(default_factory=list)

    def add(self, x: float, y: float, step: int) -> None:
        self.x.append(float(x))
        self.y.append(float(y))
        self.step.append(int(step))


class SeriesStore:
    """Every number of a training, keyed by (run, series); plain Python, no Qt."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str], Series] = {}
        self._ema: dict[str, tuple[float, int]] = {}

    def add(self, run: str, name: str, x: float, y: float, step: int) -> tuple[str, str]:
        key = (run, name)
        self.series.setdefault(key, Series()).add(x, y, step)
        return key

    def smoothed(self, run: str, value: float) -> float:
        s, n = self._ema.get(run, (0.0, 0))
        s, n = SMOOTHING * s + (1.0 - SMOOTHING) * value, n + 1
        self._ema[run] = (s, n)
        return s / (1.0 - SMOOTHING**n)

    def clear(self) -> None:
        self.series.clear()
        self._ema.clear()

    def rows(self) -> Iterable[tuple[str, str, int, float]]:
        for (run, name), s in self.series.items():
            for step, value in zip(s.step, s.y):
                yield run, name, step, value

    def write_csv(self, path: str | Path) -> None:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["run", "series", "step", "value"])
            for run, name, step, value in self.rows():
                w.writerow([run, name, step, repr(value) if math.isfinite(value) else str(value)])


class TrainingPlots(QWidget):
    """Three linked plots of a (side-by-side) training, fed with the core's event dicts."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = SeriesStore()
        self.curves: dict[tuple[str, str], pg.PlotDataItem] = {}
        self.presentation = False
        self._dirty: set[tuple[str, str]] = set()
        self._roles: dict[str, str] = {}  # plan text -> "smallest" | "random" | "user"
        self._random_order: list[str] = []
        self._user_plan: str | None = None
        self.redraws = 0  # for tests and diagnostics

        self.view = pg.GraphicsLayoutWidget()
        self.view.setToolTip("")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.view)
        ci = self.view.ci
        ci.setContentsMargins(6, 6, 6, 6)
        ci.setSpacing(10)

        self.acc_plot = ci.addPlot(row=0, col=0)
        self.loss_plot = ci.addPlot(row=0, col=1)
        bottom = ci.addLayout(row=1, col=0, colspan=2)
        self.probe_plot = bottom.addPlot(row=0, col=0)
        self.probe_legend = pg.LegendItem(colCount=1, verSpacing=-4)
        bottom.addItem(self.probe_legend, row=0, col=1)
        bottom.layout.setColumnStretchFactor(0, 5)
        bottom.layout.setColumnStretchFactor(1, 0)
        ci.layout.setRowStretchFactor(0, 1)
        ci.layout.setRowStretchFactor(1, 1)

        self.acc_legend = self.acc_plot.addLegend(offset=(-8, -8), verSpacing=-4)
        self.loss_legend = self.loss_plot.addLegend(offset=(-8, 8), verSpacing=-4)
        self.legends = [self.acc_legend, self.loss_legend, self.probe_legend]

        self.acc_plot.setYRange(0, 100, padding=0.02)
        self.acc_plot.setLimits(yMin=-5, yMax=105)
        self.probe_plot.setYRange(0, 100, padding=0.02)
        self.probe_plot.setLimits(yMin=-5, yMax=105)
        self.probe_plot.setXLink(self.loss_plot)
        for p in (self.loss_plot, self.probe_plot):
            p.setClipToView(True)
            p.setDownsampling(auto=True, mode="peak")
        self._hints = {}
        for plot, text in ((self.acc_plot, "a point per finished epoch"),
                           (self.loss_plot, "one point per optimizer step"),
                           (self.probe_plot, "Train CT vs ST to watch sub-networks loaf (CT) or keep up (ST)")):
            hint = pg.TextItem(text, anchor=(0.5, 0.5), color="#8A8A8A")
            hint.setParentItem(plot.getViewBox())
            self._hints[id(plot)] = hint
        for plot in (self.acc_plot, self.loss_plot, self.probe_plot):
            plot.getViewBox().sigResized.connect(self._place_hints)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self.refresh)
        self._apply_theme()
        self._place_hints()

    # ------------------------------------------------------------------ feeding
    def add_steps(self, infos: Iterable[dict[str, Any]]) -> None:
        """Core ``on_step`` dicts: main-net cross-entropy per step (raw and smoothed)."""
        for info in infos:
            run, step = str(info["run"]), int(info["step"])
            ce = float(info.get("ce", info.get("loss", math.nan)))
            self._mark(self.store.add(run, LOSS_RAW, step, ce, step))
            self._mark(self.store.add(run, LOSS, step, self.store.smoothed(run, ce), step))
            for extra in ("loss", "kl", "lr"):
                if extra in info:
                    name = "objective" if extra == "loss" else extra
                    self.store.add(run, name, step, float(info[extra]), step)

    def add_epoch(self, info: dict[str, Any]) -> None:
        """Core ``on_epoch`` dict: the main net's test accuracy after the epoch."""
        run, epoch, step = str(info["run"]), int(info["epoch"]), int(info.get("step", 0))
        self._mark(self.store.add(run, ACC, epoch, float(info["test_acc"]), step))
        if "train_loss" in info:
            self.store.add(run, "train_loss", epoch, float(info["train_loss"]), step)

    def add_probe(self, info: dict[str, Any]) -> None:
        """Core ``on_probe`` dict: each probe plan's accuracy inside the training net."""
        run, step = str(info["run"]), int(info["step"])
        for plan, acc in info.get("results", {}).items():
            self._mark(self.store.add(run, PROBE + plan, step, float(acc), step))

    def set_probe_roles(self, smallest: str, random_plans: list[str], user: str | None) -> None:
        """Which probe is the smallest sub-net, which are random, which is the user's plan."""
        old_user = self._user_plan
        self._roles = {p: "random" for p in random_plans}
        self._roles[smallest] = "smallest"
        self._random_order = list(random_plans)
        if user is not None and user not in self._roles:
            self._roles[user] = "user"
        self._user_plan = user
        if old_user is not None and old_user != user and old_user not in self._roles:
            for key in [k for k in self.curves if k[1] == PROBE + old_user]:
                self._remove_curve(key)  # its numbers stay in the store (CSV export)

    def set_epochs(self, epochs: int) -> None:
        """Fix the accuracy plot's epoch axis to whole epochs 1..epochs."""
        epochs = max(1, int(epochs))
        spacing = max(1, math.ceil(epochs / 10))
        self.acc_plot.getAxis("bottom").setTickSpacing(spacing, spacing)
        self.acc_plot.setXRange(0.75, epochs + 0.25, padding=0)

    def _mark(self, key: tuple[str, str]) -> None:
        self._dirty.add(key)
        if not self._timer.isActive():
            self._timer.start()

    # ------------------------------------------------------------------ drawing
    def refresh(self) -> None:
        """Push dirty series into their (one, persistent) curve items."""
        self._timer.stop()
        dirty, self._dirty = self._dirty, set()
        for key in dirty:
            run, name = key
            if name.startswith(PROBE) and name[len(PROBE):] not in self._roles:
                continue  # a former user plan: kept in the store, no longer drawn
            item = self.curves.get(key) or self._create_curve(key)
            if item is None:
                continue
            s = self.store.series[key]
            item.setData(s.x, s.y)
        if dirty:
            self.redraws += 1
            for hint in self._hints.values():
                hint.setVisible(False)

    def _plot_for(self, name: str) -> pg.PlotItem | None:
        if name == ACC:
            return self.acc_plot
        if name in (LOSS, LOSS_RAW):
            return self.loss_plot
        if name.startswith(PROBE):
            return self.probe_plot
        return None

    def _create_curve(self, key: tuple[str, str]) -> pg.PlotDataItem | None:
        run, name = key
        plot = self._plot_for(name)
        if plot is None:
            return None
        item = pg.PlotDataItem()
        item.setZValue(self._z(key))
        plot.addItem(item)
        self.curves[key] = item
        self._style(key, item)
        legend_name = self._legend_name(key)
        if legend_name:
            legend = self.probe_legend if name.startswith(PROBE) else (
                self.acc_legend if name == ACC else self.loss_legend)
            legend.addItem(item, legend_name)
            self._sort_probe_legend()
            self._apply_legend_theme(legend)
        return item

    def _remove_curve(self, key: tuple[str, str]) -> None:
        item = self.curves.pop(key)
        for legend in self.legends:
            legend.removeItem(item)
        plot = self._plot_for(key[1])
        if plot is not None:
            plot.removeItem(item)

    def _sort_probe_legend(self) -> None:
        """Legend rows: smallest first, then random ones, then the user's plan; CT before ST."""
        items = list(self.probe_legend.items)
        if len(items) < 2:
            return
        inverse = {id(v): k for k, v in self.curves.items()}
        def order(pair: Any) -> tuple:
            key = inverse.get(id(pair[0].item), ("", ""))
            return (self._role_rank(key[1][len(PROBE):]), key[1], _run_rank(key[0]), key[0])
        items.sort(key=order)
        self.probe_legend.clear()
        for sample, label in items:
            self.probe_legend.addItem(sample.item, label.text)

    def _role_rank(self, plan: str) -> int:
        role = self._roles.get(plan, "user")
        if role == "smallest":
            return 0
        if role == "random":
            return 1 + (self._random_order.index(plan) if plan in self._random_order else 0)
        return 99

    def _legend_name(self, key: tuple[str, str]) -> str | None:
        run, name = key
        if name == ACC:
            return method_label(run)
        if name == LOSS:
            return f"{method_label(run)} (smoothed)"
        if name.startswith(PROBE):
            plan = name[len(PROBE):]
            role = self._roles.get(plan, "user")
            tag = {"smallest": "  smallest", "user": "  your plan"}.get(role, "")
            return f"{method_label(run)}  {plan}{tag}"
        return None

    def _z(self, key: tuple[str, str]) -> float:
        run, name = key
        base = {"st": 2.0, "ct": 1.0}.get(run, 0.0)
        if name == LOSS_RAW:
            return -10 + base
        if name.startswith(PROBE) and self._roles.get(name[len(PROBE):]) == "smallest":
            return 10 + base
        return base

    def _style(self, key: tuple[str, str], item: pg.PlotDataItem) -> None:
        run, name = key
        t = _THEMES[self.presentation]
        color = pg.mkColor(method_color(run))
        dash = METHOD_DASH.get(run.lower(), Qt.PenStyle.SolidLine)
        width, symbol, size = t["width"], None, t["symbol"]
        if name == LOSS_RAW:
            color.setAlpha(70)
            width, dash = t["thin"], Qt.PenStyle.SolidLine
        elif name.startswith(PROBE):
            role = self._roles.get(name[len(PROBE):], "user")
            if role == "smallest":
                width, symbol, size = t["width"] * 1.35, "o", size + 1
            elif role == "random":
                idx = self._random_order.index(name[len(PROBE):]) if name[len(PROBE):] in self._random_order else 0
                symbol = ("t", "s", "d", "p")[idx % 4]
                width = t["thin"] + 0.3
                color.setAlpha(200)
            else:
                symbol, size = "star", size + 4
        elif name == ACC:
            symbol = "o"
        pen = pg.mkPen(color, width=width, style=dash)
        pen.setCosmetic(True)
        item.setPen(pen)
        if symbol:
            fill = pg.mkColor(method_color(run))
            fill.setAlpha(color.alpha())
            item.setSymbol(symbol)
            item.setSymbolSize(size)
            item.setSymbolBrush(pg.mkBrush(fill if name != LOSS_RAW else color))
            item.setSymbolPen(pg.mkPen(t["bg"], width=1))
        else:
            item.setSymbol(None)

    # ------------------------------------------------------------------ look
    def set_presentation(self, on: bool) -> None:
        """Larger fonts and tick labels, line width ~4, black on white."""
        self.presentation = bool(on)
        self._apply_theme()
        for key, item in self.curves.items():
            self._style(key, item)

    def _apply_theme(self) -> None:
        t = _THEMES[self.presentation]
        self.view.setBackground(t["bg"])
        labels = {
            id(self.acc_plot): ("Main network: test accuracy", "Epoch", "Test accuracy (%)"),
            id(self.loss_plot): ("Training loss (main-net cross-entropy)", "Optimizer step", "Loss (nats)"),
            id(self.probe_plot): ("Probe sub-networks inside the training net (main-net BN)",
                                  "Optimizer step", "Test accuracy (%)"),
        }
        tick_font = QFont()
        tick_font.setPointSize(t["tick"])
        for plot in (self.acc_plot, self.loss_plot, self.probe_plot):
            title, xl, yl = labels[id(plot)]
            plot.setTitle(title, color=t["fg"], size=f"{t['title']}pt", bold=True)
            plot.showGrid(x=True, y=True, alpha=t["grid"])
            for name, text in (("bottom", xl), ("left", yl)):
                axis = plot.getAxis(name)
                axis.enableAutoSIPrefix(False)
                axis.setPen(pg.mkPen(t["fg"], width=2 if self.presentation else 1))
                axis.setTextPen(pg.mkPen(t["fg"]))
                axis.setTickFont(tick_font)
                axis.setStyle(tickTextOffset=6 if self.presentation else 4)
                axis.setLabel(text, **{"color": t["fg"], "font-size": f"{t['label']}pt"})
            plot.getAxis("left").setWidth(int(t["tick"] * 4.2 + t["label"] * 1.6))
        for legend in self.legends:
            self._apply_legend_theme(legend)
        for hint in self._hints.values():
            hint.setFont(tick_font)

    def _apply_legend_theme(self, legend: pg.LegendItem) -> None:
        t = _THEMES[self.presentation]
        legend.setLabelTextColor(t["fg"])
        legend.setLabelTextSize(f"{t['legend']}pt")
        legend.setBrush(pg.mkBrush(255, 255, 255, 235))
        legend.setPen(pg.mkPen("#B0B0B0" if not self.presentation else "#000000"))

    def _place_hints(self, *_: Any) -> None:
        for plot in (self.acc_plot, self.loss_plot, self.probe_plot):
            vb = plot.getViewBox()
            r = vb.boundingRect()
            self._hints[id(plot)].setPos(r.center())

    # ------------------------------------------------------------------ data
    def clear(self) -> None:
        """Forget everything (a new training starts)."""
        for key in list(self.curves):
            self._remove_curve(key)
        self.store.clear()
        self._dirty.clear()
        self._roles.clear()
        self._random_order = []
        self._user_plan = None
        for hint in self._hints.values():
            hint.setVisible(True)
        for plot in (self.acc_plot, self.loss_plot, self.probe_plot):
            plot.enableAutoRange(x=True)

    def point_count(self, run: str, series: str) -> int:
        item = self.curves.get((run, series))
        if item is None:
            return 0
        x, _ = item.getData()
        return 0 if x is None else len(x)

    def export_image(self, path: str | Path) -> None:
        """PNG (or any raster suffix Qt writes) or SVG of the whole plot layout."""
        from pyqtgraph.exporters import ImageExporter, SVGExporter

        path = Path(path)
        self.refresh()
        if path.suffix.lower() == ".svg":
            SVGExporter(self.view.scene()).export(str(path))
            return
        exporter = ImageExporter(self.view.scene())
        width = max(1600, int(self.view.width() * 2))
        exporter.parameters()["width"] = width
        exporter.export(str(path))
        if not path.exists() or path.stat().st_size == 0:
            raise OSError(f"could not write the image {path}")

    def export_csv(self, path: str | Path) -> None:
        self.refresh()
        self.store.write_csv(path)


def _run_rank(run: str) -> int:
    order = list(METHOD_COLORS)
    return order.index(run) if run in order else len(order)
