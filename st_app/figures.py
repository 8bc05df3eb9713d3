"""Headless report figures (PNG + SVG) drawn with pyqtgraph, for ``python -m st_app analyze``.

Works without a display: when neither ``DISPLAY`` nor ``WAYLAND_DISPLAY`` is set, Qt's
``offscreen`` platform is selected before Qt is first imported. Every figure function takes
the plain report dict of an analysis and a path stem, and writes ``stem.png`` and
``stem.svg``. No matplotlib: the app already ships pyqtgraph. Inside the running app, call
these from the GUI thread (Qt widgets may not be created in worker threads).

SVG: pyqtgraph's SVGExporter is tried first; with Qt >= 6.8 it fails on the closing ``Z`` of
the paths Qt emits (pyqtgraph 0.13/0.14 parse coordinate pairs only), and then the scene is
rendered by Qt's own QSvgGenerator, which gives an equivalent vector file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = [
    "COLORS",
    "bar_chart",
    "compare_figure",
    "histogram",
    "line_chart",
    "loafing_figure",
    "robustness_figures",
    "subnets_figures",
]

COLORS = {"ct": "#E69F00", "st": "#0072B2", "stpp": "#009E73", "sd": "#CC79A7", "alone": "#4D4D4D",
          "main": "#4D4D4D", "subnets": "#56B4E9"}
LABELS = {"ct": "CT", "st": "ST", "stpp": "ST++", "sd": "Stoch. depth", "alone": "trained alone",
          "within_ct": "inside CT", "within_st": "inside ST", "main": "main net",
          "subnets": "all sub-nets (mean +- std)"}
_SPARE = ["#D55E00", "#56B4E9", "#000000", "#F0E442"]
WIDTH, HEIGHT, SCALE = 900, 540, 2


def _ensure_headless() -> None:
    if "PySide6.QtCore" in sys.modules:
        return  # Qt already imported (the app): use whatever platform it runs on
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and sys.platform.startswith("linux"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _pg() -> Any:
    _ensure_headless()
    import pyqtgraph as pg

    pg.mkQApp()
    return pg


def color(name: str, index: int = 0) -> str:
    return COLORS.get(name, _SPARE[index % len(_SPARE)])


def label(name: str) -> str:
    return LABELS.get(name, name)


class _Figure:
    """One plot on a white canvas of fixed size, never shown on screen."""

    def __init__(self, title: str, xlabel: str = "", ylabel: str = "", width: int = WIDTH,
                 height: int = HEIGHT) -> None:
        pg = _pg()
        self.pg = pg
        self.widget = pg.GraphicsLayoutWidget()
        self.widget.setBackground("w")
        self.widget.resize(width, height)
        self.widget.resizeEvent(None)  # apply the size to the scene without showing the widget
        self.plot = self.widget.addPlot()
        self.plot.setTitle(title, color="k", size="12pt")
        for side in ("left", "bottom"):
            axis = self.plot.getAxis(side)
            axis.setPen("k")
            axis.setTextPen("k")
        if xlabel:
            self.plot.setLabel("bottom", xlabel, color="k")
        if ylabel:
            self.plot.setLabel("left", ylabel, color="k")
        self.plot.showGrid(x=False, y=True, alpha=0.25)
        self.legend = None

    def add_legend(self, corner: str = "top-left") -> Any:
        """``corner``: top-left, top-right, bottom-left or bottom-right of the plot area."""
        if self.legend is None:
            # pyqtgraph offsets: negative x anchors to the right edge, negative y to the bottom
            offset = (-10 if corner.endswith("right") else 30, -30 if corner.startswith("bottom") else 10)
            self.legend = self.plot.addLegend(offset=offset, labelTextColor="k", labelTextSize="11pt",
                                              brush=(255, 255, 255, 220), pen="#999999")
        return self.legend

    def save(self, stem: str | Path) -> list[Path]:
        from pyqtgraph.exporters import ImageExporter

        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        self.pg.QtWidgets.QApplication.processEvents()
        png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
        exporter = ImageExporter(self.widget.scene())
        exporter.parameters()["width"] = int(self.widget.width() * SCALE)
        exporter.export(str(png))
        _export_svg(self.widget.scene(), svg)
        for path in (png, svg):
            if not path.exists() or path.stat().st_size == 0:
                raise OSError(f"could not write the figure {path}")
        self.widget.close()
        self.widget.deleteLater()
        return [png, svg]


def _export_svg(scene: Any, path: Path) -> None:
    from pyqtgraph.exporters import SVGExporter
    from pyqtgraph.Qt import QtCore, QtGui, QtSvg

    try:
        SVGExporter(scene).export(str(path))
        if path.exists() and path.stat().st_size > 0:
            return
    except (ValueError, IndexError):  # see the module docstring
        pass
    rect = scene.sceneRect()
    gen = QtSvg.QSvgGenerator()
    gen.setFileName(str(path))
    gen.setSize(QtCore.QSize(int(rect.width()), int(rect.height())))
    gen.setViewBox(rect)
    gen.setTitle(path.stem)
    gen.setDescription("ST Lab report figure")
    painter = QtGui.QPainter(gen)
    try:
        scene.render(painter, QtCore.QRectF(0, 0, rect.width(), rect.height()), rect)
    finally:
        painter.end()


def _finite(values: Sequence[float]) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(a), a, 0.0)


# ----------------------------------------------------------------------------- basic charts
def bar_chart(
    stem: str | Path,
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    ylabel: str = "accuracy (%)",
    xlabel: str = "",
    errors: Mapping[str, Sequence[float]] | None = None,
    colors: Mapping[str, str] | None = None,
    values_on_bars: bool = True,
) -> list[Path]:
    """Grouped bars: one group per category, one bar per series (optional +- error bars)."""
    fig = _Figure(title, xlabel, ylabel)
    pg = fig.pg
    n = max(1, len(series))
    width = 0.8 / n
    x0 = np.arange(len(categories), dtype=np.float64)
    legend = fig.add_legend("top-right") if len(series) > 1 else None
    top = 0.0
    for i, (name, values) in enumerate(series.items()):
        v = _finite(values)
        x = x0 - 0.4 + width * (i + 0.5)
        brush = (colors or {}).get(name) or color(name, i)
        bars = pg.BarGraphItem(x=x, height=v, width=width * 0.92, brush=brush, pen=pg.mkPen("#333333", width=0.5))
        fig.plot.addItem(bars)
        if legend is not None:
            legend.addItem(bars, label(name))
        err = None if errors is None else errors.get(name)
        e = np.zeros_like(v)
        if err is not None:
            e = _finite(err)
            fig.plot.addItem(pg.ErrorBarItem(x=x, y=v, top=e, bottom=e, beam=width * 0.4, pen=pg.mkPen("k", width=1.2)))
            top = max(top, float((v + e).max(initial=0)))
        top = max(top, float(v.max(initial=0)))
        if values_on_bars:
            for xi, vi, ei in zip(x, v, e):
                t = pg.TextItem(f"{vi:.1f}", color="k", anchor=(0.5, 1.0))
                t.setPos(float(xi), float(vi + ei))  # above the error bar, if any
                fig.plot.addItem(t)
    fig.plot.getAxis("bottom").setTicks([[(float(i), str(c)) for i, c in enumerate(categories)]])
    fig.plot.setXRange(-0.6, len(categories) - 0.4, padding=0)
    headroom = 1.12 + 0.07 * len(series) if legend is not None else 1.12  # the legend sits above the bars
    fig.plot.setYRange(0, max(1.0, top) * headroom, padding=0)
    return fig.save(stem)


def line_chart(
    stem: str | Path,
    series: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float] | None]],
    *,
    title: str,
    xlabel: str,
    ylabel: str = "accuracy (%)",
    xticks: Sequence[tuple[float, str]] | None = None,
    symbols: bool = True,
    legend: str = "top-left",
) -> list[Path]:
    """One curve per series ``name: (x, y, err or None)``; error bars where given."""
    fig = _Figure(title, xlabel, ylabel)
    pg = fig.pg
    fig.add_legend(legend)
    for i, (name, (x, y, err)) in enumerate(series.items()):
        c = color(name, i)
        xa, ya = np.asarray(x, dtype=np.float64), _finite(y)
        fig.plot.plot(xa, ya, pen=pg.mkPen(c, width=2.5), name=label(name),
                      symbol="o" if symbols else None, symbolSize=7, symbolBrush=c, symbolPen=None)
        if err is not None:
            e = _finite(err)
            fig.plot.addItem(pg.ErrorBarItem(x=xa, y=ya, top=e, bottom=e, beam=0.15, pen=pg.mkPen(c, width=1.5)))
    if xticks is not None:
        fig.plot.getAxis("bottom").setTicks([list(xticks)])
    return fig.save(stem)


def histogram(
    stem: str | Path,
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    xlabel: str = "accuracy (%)",
    bins: int = 20,
) -> list[Path]:
    """Overlaid step histograms over a common range (distribution of sub-net accuracies)."""
    fig = _Figure(title, xlabel, "sub-networks")
    pg = fig.pg
    fig.add_legend()
    every = np.concatenate([_finite(v) for v in series.values()]) if series else np.zeros(1)
    lo, hi = (float(every.min()), float(every.max())) if every.size else (0.0, 100.0)
    lo, hi = float(np.floor(lo)), float(np.ceil(hi))
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    for i, (name, values) in enumerate(series.items()):
        counts, _ = np.histogram(_finite(values), bins=edges)
        qc = pg.mkColor(color(name, i))
        fill = pg.mkColor(qc)
        fill.setAlpha(70)
        fig.plot.plot(edges, counts, stepMode="center", fillLevel=0, brush=fill, pen=pg.mkPen(qc, width=2.5),
                      name=label(name))
    return fig.save(stem)


# --------------------------------------------------------------------------- report figures
def loafing_figure(report: Mapping[str, Any], stem: str | Path) -> list[Path]:
    """Bars per sub-net: trained alone vs inside CT vs inside ST (paper figure 2)."""
    rows = report["results"]
    cats = [r["plan"] for r in rows]
    series = {key: [r[key] for r in rows] for key in ("alone", "within_ct", "within_st")}
    return bar_chart(stem, cats, series, title=f"Loafing: sub-nets alone vs inside (BN: {report['bn']})",
                     xlabel="sub-network plan", colors={"alone": COLORS["alone"], "within_ct": COLORS["ct"],
                                                        "within_st": COLORS["st"]})


def subnets_figures(report: Mapping[str, Any], stem: str | Path, names: Sequence[str] = ("ct", "st")) -> list[Path]:
    """Sorted-accuracy curves and histograms of all sub-nets, CT vs ST (paper figure 5)."""
    stem = Path(stem)
    names = [n for n in names if n in report]
    sorted_series = {}
    for n in names:
        acc = np.sort(np.array([r["accuracy"] for r in report[n]["results"]], dtype=np.float64))
        sorted_series[n] = (np.arange(1, len(acc) + 1), acc, None)
    bn = report.get("bn", "?")
    count = report.get("n_plans", len(next(iter(sorted_series.values()))[0]) if sorted_series else 0)
    out = line_chart(stem.with_name(stem.name + "_sorted"), sorted_series,
                     title=f"All {count} sub-nets, sorted (BN: {bn})", xlabel="rank (worst to best)",
                     symbols=count <= 60, legend="bottom-right")
    out += histogram(stem.with_name(stem.name + "_hist"),
                     {n: [r["accuracy"] for r in report[n]["results"]] for n in names},
                     title=f"Distribution of sub-net accuracy (BN: {bn})")
    return out


def robustness_figures(report: Mapping[str, Any], stem: str | Path, names: Sequence[str] = ("ct", "st")) -> list[Path]:
    """Delete-one bars, delete-k and swap-k curves with +- std (paper figure 6)."""
    stem = Path(stem)
    names = [n for n in names if n in report["delete_one"]]
    first = report["delete_one"][names[0]]
    out = bar_chart(stem.with_name(stem.name + "_delete_one"), [str(r["block"]) for r in first],
                    {n: [r["accuracy"] for r in report["delete_one"][n]] for n in names},
                    title=f"Delete one block (BN: {report['bn']})", xlabel="deleted block",
                    values_on_bars=len(first) <= 12)
    for key, what in (("delete_k", "Delete k random blocks"), ("swap_k", "Swap k random pairs")):
        rows = report[key]
        if not rows or not rows[names[0]]:
            continue
        series = {}
        for n in names:
            ks = [0] + [r["k"] for r in rows[n]]
            series[n] = (ks, [report["main"][n]] + [r["mean"] for r in rows[n]], [0.0] + [r["std"] for r in rows[n]])
        out += line_chart(stem.with_name(f"{stem.name}_{key}"), series,
                          title=f"{what}: mean +- std over {report['repeats']} draws (BN: {report['bn']})",
                          xlabel="k", xticks=[(float(k), str(k)) for k in series[names[0]][0]],
                          legend="bottom-left")
    return out


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 100 else f"{s:.0f} s"


def compare_figure(report: Mapping[str, Any], stem: str | Path) -> list[Path]:
    """Main-net accuracy and sub-nets mean +- std per method, time and memory under the bars."""
    rows = report["methods"]
    cats = [f"{label(r['method'])}  {_seconds(r['seconds'])}, {r['peak_memory_mb']:.0f} MiB" for r in rows]
    return bar_chart(stem, cats, {"main": [r["main_accuracy"] for r in rows],
                                  "subnets": [r["subnets_mean"] for r in rows]},
                     errors={"subnets": [r["subnets_std"] for r in rows]},
                     colors={"main": COLORS["main"], "subnets": COLORS["subnets"]},
                     title=f"{report['model']} on {report['dataset']}, {report['epochs']} epochs: main net and "
                           f"all {report['n_subnets']} sub-nets (BN: {report['bn']})")
