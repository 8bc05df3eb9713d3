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

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFont, QTextOption
from PySide6.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

from ..series import PROBE_PREFIX, SeriesStore

__all__ = [
    "METHOD_COLORS",
    "METHOD_LABELS",
    "TrainingPlots",
    "method_color",
    "method_label",
]

#: one colour per method of table 1 (Okabe-Ito, readable on white; yellow left out for that reason),
#: in the order the legends list them
METHOD_COLORS = {"ct": "#E69F00", "st": "#0072B2", "stpp": "#009E73", "sd": "#CC79A7", "layersup": "#56B4E9",
                 "stagesup": "#D55E00", "selfdistill": "#6A3D9A"}
_SPARE_COLORS = ["#000000", "#8C564B", "#7F7F7F"]
METHOD_LABELS = {"ct": "CT", "st": "ST", "stpp": "ST++", "sd": "Stoch. depth", "layersup": "Layer sup.",
                 "stagesup": "Stage sup.", "selfdistill": "Self-distil."}
METHOD_DASH = {"ct": Qt.PenStyle.DashLine, "st": Qt.PenStyle.SolidLine,
               "stpp": Qt.PenStyle.DashDotLine, "sd": Qt.PenStyle.DotLine}

#: series drawn as curves (others, e.g. ``lr`` or ``kl``, only go to the CSV export)
ACC, LOSS, LOSS_RAW, PROBE = "test_acc", "loss", "loss_raw", PROBE_PREFIX
_CENTRED = QTextOption(Qt.AlignmentFlag.AlignHCenter)
REDRAW_MS = 50  # at most 20 redraws a second
MAX_MARKERS = 24  # probe curves: plan markers on about this many points

_THEMES: dict[bool, dict[str, Any]] = {
    False: {"bg": "#FCFCFD", "fg": "#3A3A3A", "grid": 0.22, "tick": 9, "label": 10, "title": 11,
            "legend": 9, "width": 2.2, "thin": 1.2, "symbol": 6},
    True: {"bg": "#FFFFFF", "fg": "#000000", "grid": 0.28, "tick": 14, "label": 15, "title": 16,
           "legend": 13, "width": 4.0, "thin": 2.0, "symbol": 10},
}


def method_color(run: str) -> str:
    key = run.lower()
    if key in METHOD_COLORS:
        return METHOD_COLORS[key]
    return _SPARE_COLORS[sum(map(ord, key)) % len(_SPARE_COLORS)]


def method_label(run: str) -> str:
    return METHOD_LABELS.get(run.lower(), run)


class TrainingPlots(QWidget):
    """Three linked plots of a (side-by-side) training, fed with the core's event dicts."""

    def __init__(self, store: SeriesStore | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store if store is not None else SeriesStore()
        self.curves: dict[tuple[str, str], pg.PlotDataItem] = {}
        self.presentation = False
        self._dirty: set[tuple[str, str]] = set()
        self._legend_proxies: list[pg.PlotDataItem] = []
        self._marker_size: dict[tuple[str, str], float] = {}
        self.redraws = 0  # for tests and diagnostics

        self.view = pg.GraphicsLayoutWidget()
        self.view.setToolTip("")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.view)
        ci = self.view.ci
        ci.setContentsMargins(6, 6, 14, 6)
        ci.setSpacing(10)

        self.acc_plot = ci.addPlot(row=0, col=0)
        self.loss_plot = ci.addPlot(row=0, col=1)
        bottom = ci.addLayout(row=1, col=0, colspan=2)
        self.probe_plot = bottom.addPlot(row=0, col=0)
        self.probe_legend = pg.LegendItem(colCount=1, verSpacing=-4)
        bottom.addItem(self.probe_legend, row=0, col=1)
        self.probe_legend.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        bottom.layout.setAlignment(self.probe_legend, Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        bottom.layout.setColumnStretchFactor(0, 5)
        bottom.layout.setColumnStretchFactor(1, 0)
        ci.layout.setRowStretchFactor(0, 1)
        ci.layout.setRowStretchFactor(1, 1)

        self.acc_legend = self.acc_plot.addLegend(offset=(-8, -8), verSpacing=-4)
        self.loss_legend = self.loss_plot.addLegend(offset=(-8, 8), verSpacing=-4)
        self.legends = [self.acc_legend, self.loss_legend, self.probe_legend]

        self.acc_plot.setLimits(yMin=-2, yMax=102)
        self.acc_plot.enableAutoRange(y=True)
        self.probe_plot.setYRange(0, 100, padding=0.02)
        self.probe_plot.setLimits(yMin=-5, yMax=105)
        for p in (self.loss_plot, self.probe_plot):
            p.setLimits(xMin=-1)
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
        self._show_empty_state()

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
        old_user = self.store.user_plan
        self.store.set_roles(smallest, random_plans, user)
        if old_user is not None and old_user != user and old_user not in self.store.roles:
            for key in [k for k in self.curves if k[1] == PROBE + old_user]:
                self._remove_curve(key)  # its numbers stay in the store (CSV export)
        for key, item in self.curves.items():
            self._style(key, item)
            self._mark(key)  # re-push the data: marker sizes are per point
        self._rebuild_probe_legend()

    def set_epochs(self, epochs: int) -> None:
        """Fix the accuracy plot's epoch axis to whole epochs 1..epochs."""
        epochs = max(1, int(epochs))
        self.store.epochs = epochs
        spacing = max(1, math.ceil(epochs / 10))
        self.acc_plot.getAxis("bottom").setTickSpacing(spacing, spacing)
        self.acc_plot.setXRange(0.75, epochs + 0.25, padding=0)

    def set_total_steps(self, total: int, steps_per_epoch: int) -> None:
        """Show the whole training's step range, so the curves grow across it; the loss is
        smoothed over about a tenth of an epoch (2 to 50 steps)."""
        total = max(1, int(total))
        self.store.total_steps = total
        for p in (self.loss_plot, self.probe_plot):
            p.setXRange(0, total, padding=0.01)
        window = min(50.0, max(2.0, steps_per_epoch / 10))
        self.store.smoothing = 1.0 - 1.0 / window

    def _mark(self, key: tuple[str, str]) -> None:
        self._dirty.add(key)
        if not self._timer.isActive():
            self._timer.start()

    # ------------------------------------------------------------------ drawing
    def refresh(self) -> None:
        """Push dirty series into their (one, persistent) curve items."""
        self._timer.stop()
        dirty, self._dirty = self._dirty, set()
        for key in sorted(dirty, key=lambda k: (_run_rank(k[0]), k[0], k[1])):  # stable legend order
            run, name = key
            if name.startswith(PROBE) and name[len(PROBE):] not in self.store.roles:
                continue  # a former user plan: kept in the store, no longer drawn
            item = self.curves.get(key) or self._create_curve(key)
            if item is None:
                continue
            s = self.store.series[key]
            size = self._marker_size.get(key)
            if size:  # markers on at most ~MAX_MARKERS points (and the newest), or long runs clutter
                n = len(s.x)
                every = max(1, math.ceil(n / MAX_MARKERS))
                item.setData(s.x, s.y, symbolSize=[size if i % every == 0 or i == n - 1 else 0 for i in range(n)])
            else:
                item.setData(s.x, s.y)
        if dirty:
            self.redraws += 1
            for hint in self._hints.values():
                hint.setVisible(False)
        self._show_empty_state()

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
        if name.startswith(PROBE):
            self._rebuild_probe_legend()
        else:
            legend_name = self._legend_name(key)
            if legend_name is not None:
                legend = self.acc_legend if name == ACC else self.loss_legend
                legend.addItem(item, legend_name)
                self._apply_legend_theme(legend)
        return item

    def _remove_curve(self, key: tuple[str, str]) -> None:
        item = self.curves.pop(key)
        for legend in self.legends:
            legend.removeItem(item)
        plot = self._plot_for(key[1])
        if plot is not None:
            plot.removeItem(item)

    def _rebuild_probe_legend(self) -> None:
        """Colour and dash name the method, marker and width name the plan: one row each
        (methods first, then smallest, random and the user's plan) instead of a row per curve."""
        self.probe_legend.clear()
        self._legend_proxies = []
        probe_keys = [k for k in self.curves if k[1].startswith(PROBE)]
        runs = sorted({k[0] for k in probe_keys}, key=lambda r: (_run_rank(r), r))
        plans = sorted({k[1][len(PROBE):] for k in probe_keys}, key=lambda p: (self._role_rank(p), p))
        for run in runs:
            proxy = pg.PlotDataItem()
            self._style((run, LOSS), proxy)  # the method's plain line
            self._legend_proxies.append(proxy)
            self.probe_legend.addItem(proxy, method_label(run))
        for plan in plans:
            proxy = pg.PlotDataItem()
            self._style(("", PROBE + plan), proxy, color_name=_THEMES[self.presentation]["fg"])
            proxy.setSymbolSize(max(9, proxy.opts["symbolSize"] + 3))  # markers legible in the key
            self._legend_proxies.append(proxy)
            self.probe_legend.addItem(proxy, self._legend_name(("", PROBE + plan)))
        self._apply_legend_theme(self.probe_legend)
        self.probe_legend.setVisible(bool(self.probe_legend.items))

    def _role_rank(self, plan: str) -> int:
        role = self.store.roles.get(plan, "user")
        if role == "smallest":
            return 0
        if role == "random":
            return 1 + (self.store.random_order.index(plan) if plan in self.store.random_order else 0)
        return 99

    def _legend_name(self, key: tuple[str, str]) -> str | None:
        run, name = key
        if name == ACC:
            return method_label(run)
        if name == LOSS:
            return f"{method_label(run)} (smoothed)"
        if name.startswith(PROBE):
            plan = name[len(PROBE):]
            role = self.store.roles.get(plan, "user")
            tag = {"smallest": "  (smallest)", "user": "  (your plan)"}.get(role, "")
            return f"{plan}{tag}"
        return None

    def _z(self, key: tuple[str, str]) -> float:
        run, name = key
        base = {"st": 2.0, "ct": 1.0}.get(run, 0.0)
        if name == LOSS_RAW:
            return -10 + base
        if name.startswith(PROBE) and self.store.roles.get(name[len(PROBE):]) == "smallest":
            return 10 + base
        return base

    def _style(self, key: tuple[str, str], item: pg.PlotDataItem, color_name: str | None = None) -> None:
        run, name = key
        t = _THEMES[self.presentation]
        base = color_name or method_color(run)
        color = pg.mkColor(base)
        dash = METHOD_DASH.get(run.lower(), Qt.PenStyle.SolidLine)
        width, symbol, size = t["width"], None, t["symbol"]
        if name == LOSS_RAW:
            color.setAlpha(70)
            width, dash = t["thin"], Qt.PenStyle.SolidLine
        elif name.startswith(PROBE):
            role = self.store.roles.get(name[len(PROBE):], "user")
            if role == "smallest":
                width, symbol, size = t["width"] * 1.35, "o", size + 1
            elif role == "random":
                idx = self.store.random_order.index(name[len(PROBE):]) if name[len(PROBE):] in self.store.random_order else 0
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
        self._marker_size.pop(key, None)
        if symbol and name.startswith(PROBE) and run:
            self._marker_size[key] = size
        if symbol:
            fill = pg.mkColor(base)
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
            self._dirty.add(key)
        self._rebuild_probe_legend()
        self.refresh()

    def _apply_theme(self) -> None:
        t = _THEMES[self.presentation]
        self.view.setBackground(t["bg"])
        labels = {
            id(self.acc_plot): ("Main network: test accuracy", "Epoch", "Test accuracy (%)"),
            id(self.loss_plot): ("Training loss", "Optimizer step", "Main-net cross-entropy (nats)"),
            id(self.probe_plot): ("Sub-networks inside the training net (main-net BN)",
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
        for _sample, label in legend.items:  # the labels already there keep their size otherwise
            label.setText(label.text, size=f"{t['legend']}pt", color=t["fg"])
        legend.updateSize()
        legend.setBrush(pg.mkBrush(255, 255, 255, 235))
        legend.setPen(pg.mkPen("#B0B0B0" if not self.presentation else "#000000"))

    def _show_empty_state(self) -> None:
        """No stray legend frames on empty plots, and a 0-100 % axis before the first epoch."""
        for legend in self.legends:
            legend.setVisible(bool(legend.items))
        if not any(k[1] == ACC for k in self.curves):
            self.acc_plot.setYRange(0, 100, padding=0.02)
        for plot in (self.acc_plot, self.loss_plot, self.probe_plot):  # no 0.2 … 0.8 on an empty axis
            has_data = any(self._plot_for(k[1]) is plot for k in self.curves)
            plot.getAxis("bottom").setStyle(showValues=has_data or plot is self.acc_plot)
            if plot is self.loss_plot:
                plot.getAxis("left").setStyle(showValues=has_data)

    def _place_hints(self, *_: Any) -> None:
        for plot in (self.acc_plot, self.loss_plot, self.probe_plot):
            vb = plot.getViewBox()
            r = vb.boundingRect()
            hint = self._hints[id(plot)]
            hint.setTextWidth(max(60.0, r.width() - 16))  # wraps where a big font would cut it off
            hint.textItem.document().setDefaultTextOption(_CENTRED)
            hint.setPos(r.center())

    # ------------------------------------------------------------------ data
    def clear(self) -> None:
        """Forget everything (a new training starts)."""
        for key in list(self.curves):
            self._remove_curve(key)
        self.store.clear()
        self._dirty.clear()
        self._rebuild_probe_legend()
        for hint in self._hints.values():
            hint.setVisible(True)
        self._show_empty_state()
        for plot in (self.acc_plot, self.loss_plot, self.probe_plot):
            plot.enableAutoRange(x=True)

    def reload(self) -> None:
        """Redraw everything from the store (it was replaced: a session was opened)."""
        for key in list(self.curves):
            self._remove_curve(key)
        if self.store.epochs:
            self.set_epochs(self.store.epochs)
        if self.store.total_steps:
            for p in (self.loss_plot, self.probe_plot):
                p.setXRange(0, self.store.total_steps, padding=0.01)
        for key in self.store.series:
            self._dirty.add(key)
        self._rebuild_probe_legend()
        self.refresh()
        self._show_empty_state()

    def point_count(self, run: str, series: str) -> int:
        item = self.curves.get((run, series))
        if item is None:
            return 0
        x, _ = item.getData()
        return 0 if x is None else len(x)

    def export_image(self, path: str | Path, scale: float = 2.0) -> None:
        """The whole plot layout as SVG (by suffix, pyqtgraph's SVGExporter) or a raster image
        (PNG...) rendered at ``scale`` x the on-screen resolution, lines and text alike."""
        path = Path(path)
        self.refresh()
        if path.suffix.lower() == ".svg":
            _export_svg(self.view.scene(), path)
        else:
            self._export_raster(path, scale)
        if not path.exists() or path.stat().st_size == 0:
            raise OSError(f"could not write {path}")

    def _export_raster(self, path: Path, scale: float) -> None:
        # pyqtgraph's ImageExporter enlarges axis text but not legend text when asked for a
        # larger width; a device pixel ratio scales everything, cosmetic pens included.
        from PySide6.QtCore import QRectF
        from PySide6.QtGui import QImage, QPainter

        ci = self.view.ci
        source = ci.mapRectToScene(ci.boundingRect())
        image = QImage(round(source.width() * scale), round(source.height() * scale),
                       QImage.Format.Format_ARGB32)
        image.setDevicePixelRatio(scale)
        image.fill(pg.mkColor(_THEMES[self.presentation]["bg"]))
        painter = QPainter(image)
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
            self.view.scene().render(painter, QRectF(0, 0, source.width(), source.height()), source)
        finally:
            painter.end()
        if not image.save(str(path)):
            raise OSError(f"could not write the image {path} (unknown format or no permission)")

    def export_csv(self, path: str | Path) -> None:
        self.refresh()
        self.store.write_csv(path)


def _export_svg(scene: Any, path: Path) -> None:
    """pyqtgraph's SVGExporter, taught to read the closed paths ("... Z") Qt 6.12 writes.

    Its coordinate fix-up expects every path token to be "x,y"; dropping a standalone close
    command changes nothing visible (the paths it meets are rectangles ending where they
    start, and SVG fills close open paths anyway).
    """
    import sys

    from pyqtgraph.exporters import SVGExporter

    module: Any = sys.modules[SVGExporter.__module__]
    original = module.correctCoordinates

    def tolerant(node: Any, defs: Any, item: Any, options: Any) -> Any:
        for element in node.getElementsByTagName("path"):
            d = element.getAttribute("d")
            if "Z" in d or "z" in d:
                element.setAttribute("d", " ".join(t for t in d.split() if t not in ("Z", "z")))
        return original(node, defs, item, options)

    module.correctCoordinates = tolerant
    try:
        SVGExporter(scene).export(str(path))
    finally:
        module.correctCoordinates = original


def _run_rank(run: str) -> int:
    order = list(METHOD_COLORS)
    return order.index(run) if run in order else len(order)
