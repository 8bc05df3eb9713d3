"""Headless report figures (PNG + SVG) drawn with pyqtgraph, for ``python -m st_app analyze``.

Works without a display: when neither ``DISPLAY`` nor ``WAYLAND_DISPLAY`` is set, Qt's
``offscreen`` platform is selected before Qt is first imported. :func:`report_figures` takes
the plain report dict of an analysis and a path stem, and writes ``<stem><chart>.png`` and
``.svg`` for each of its charts. No matplotlib: the app already ships pyqtgraph. Inside the running app, call
these from the GUI thread (Qt widgets may not be created in worker threads).

SVG: pyqtgraph's SVGExporter is tried first; with Qt >= 6.8 it fails on the closing ``Z`` of
the paths Qt emits (pyqtgraph 0.13/0.14 parse coordinate pairs only), and then the scene is
rendered by Qt's own QSvgGenerator, which gives an equivalent vector file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "COLORS",
    "Chart",
    "compare_charts",
    "depth_charts",
    "draw_bars",
    "draw_histogram",
    "draw_lines",
    "importance_charts",
    "loafing_charts",
    "report_charts",
    "report_figures",
    "robustness_charts",
    "save_charts",
    "save_report",
    "save_scene",
    "subnets_charts",
]

COLORS = {"ct": "#E69F00", "st": "#0072B2", "stpp": "#009E73", "sd": "#CC79A7", "alone": "#4D4D4D",
          "layersup": "#D55E00", "stagesup": "#F0E442", "selfdistill": "#999999",
          "main": "#4D4D4D", "subnets": "#56B4E9", "within_ct": "#E69F00", "within_st": "#0072B2"}
LABELS = {"ct": "CT", "st": "ST", "stpp": "ST++", "sd": "Stoch. depth", "alone": "trained alone",
          "layersup": "CT + layer sup.", "stagesup": "CT + stage sup.", "selfdistill": "Self-distill.",
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


def add_legend(plot: Any, corner: str = "top-left", columns: int = 1) -> Any:
    """A legend in ``corner`` (top-left, top-right, bottom-left or bottom-right of the plot area).

    ``columns`` > 1 lays the entries side by side (one short row above bar charts). The text
    size is the plot's ``st_font_scale`` times 11 pt (the app's smaller plots use less).
    """
    if plot.legend is not None:
        plot.legend.setColumnCount(columns)
        return plot.legend
    # pyqtgraph offsets: negative x anchors to the right edge, negative y to the bottom
    offset = (-10 if corner.endswith("right") else 30, -30 if corner.startswith("bottom") else 10)
    size = 11 * getattr(plot, "st_font_scale", 1.0)
    legend = plot.addLegend(offset=offset, labelTextColor="k", labelTextSize=f"{size:.1f}pt",
                            brush=(255, 255, 255, 220), pen="#999999")
    legend.setColumnCount(columns)
    return legend


def style_plot(plot: Any, title: str, xlabel: str = "", ylabel: str = "") -> None:
    """Black-on-white axes and a title: the report look, on screen and in files alike."""
    plot.setTitle(title, color="k", size=f"{12 * getattr(plot, 'st_font_scale', 1.0):.1f}pt")
    for side in ("left", "bottom"):
        axis = plot.getAxis(side)
        axis.setPen("k")
        axis.setTextPen("k")
        axis.enableAutoSIPrefix(False)  # no "(x0.001)" on category axes
    plot.setLabel("bottom", xlabel, color="k")
    plot.setLabel("left", ylabel, color="k")
    plot.showGrid(x=False, y=True, alpha=0.25)


@dataclass
class Chart:
    """One figure of a report: a title, axis labels and how to draw it into a pyqtgraph PlotItem.

    The app draws charts into its own plot widgets, the CLI into off-screen canvases
    (:func:`save_charts`); both get the same picture from the same code.
    """

    key: str  # file-name suffix ("" or "_sorted", ...)
    title: str
    xlabel: str
    ylabel: str
    draw: Callable[[Any], None]

    def render(self, plot: Any) -> None:
        plot.clear()
        if plot.legend is not None:
            plot.legend.clear()
        plot.enableAutoRange()  # a reused plot may hold the fixed range of an earlier bar chart
        style_plot(plot, self.title, self.xlabel, self.ylabel)
        self.draw(plot)


class _Figure:
    """One plot on a white canvas of fixed size, never shown on screen."""

    def __init__(self, width: int = WIDTH, height: int = HEIGHT) -> None:
        pg = _pg()
        self.pg = pg
        self.widget = pg.GraphicsLayoutWidget()
        self.widget.setBackground("w")
        self.widget.resize(width, height)
        self.widget.resizeEvent(None)  # apply the size to the scene without showing the widget
        self.plot = self.widget.addPlot()

    def save(self, stem: str | Path, overwrite: bool = True) -> list[Path]:
        self.pg.QtWidgets.QApplication.processEvents()
        try:
            return save_scene(self.widget.scene(), stem, self.widget.width(), overwrite=overwrite)
        finally:
            self.widget.close()
            self.widget.deleteLater()


def save_charts(charts: Sequence[Chart], stem: str | Path, *, overwrite: bool = True) -> list[Path]:
    """Write each chart as ``<stem><key>.png`` and ``.svg``, off screen."""
    stem = Path(stem)
    out: list[Path] = []
    for chart in charts:
        fig = _Figure()
        chart.render(fig.plot)
        out += fig.save(stem.with_name(stem.name + chart.key), overwrite=overwrite)
    return out


def save_scene(scene: Any, stem: str | Path, width: int, *, overwrite: bool = True) -> list[Path]:
    """PNG (at ``SCALE`` x ``width``) and SVG of a live pyqtgraph scene (the app's Save buttons).

    Each file is written under a temporary name and renamed (:func:`st_app.core.safeio.atomic_output`).
    """
    from pyqtgraph.exporters import ImageExporter

    from .core.safeio import OutputError, atomic_output

    stem = Path(stem)
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    with atomic_output(png, force=overwrite, what="figure", suffix=".png") as tmp:
        exporter = ImageExporter(scene)
        exporter.parameters()["width"] = int(width * SCALE)
        exporter.export(str(tmp))
        if tmp.stat().st_size == 0:
            raise OutputError(f"could not write the figure {png}")
    with atomic_output(svg, force=overwrite, what="figure", suffix=".svg") as tmp:
        _export_svg(scene, tmp)
        if tmp.stat().st_size == 0:
            raise OutputError(f"could not write the figure {svg}")
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


# ------------------------------------------------------------------------------ drawing
def draw_bars(
    plot: Any,
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    errors: Mapping[str, Sequence[float]] | None = None,
    colors: Mapping[str, str] | None = None,
    values_on_bars: bool = True,
) -> None:
    """Grouped bars: one group per category, one bar per series (optional +- error bars).

    The legend sits above the tallest bar (the y range gets headroom for it), so it never
    hides a bar or its value label.
    """
    pg = _pg()
    n = max(1, len(series))
    width = 0.8 / n
    x0 = np.arange(len(categories), dtype=np.float64)
    legend = add_legend(plot, "top-right", columns=len(series)) if len(series) > 1 else None
    top = bottom = 0.0
    for i, (name, values) in enumerate(series.items()):
        v = _finite(values)
        x = x0 - 0.4 + width * (i + 0.5)
        brush = (colors or {}).get(name) or color(name, i)
        bars = pg.BarGraphItem(x=x, height=v, width=width * 0.92, brush=brush, pen=pg.mkPen("#333333", width=0.5))
        plot.addItem(bars)
        if legend is not None:
            legend.addItem(bars, label(name))
        err = None if errors is None else errors.get(name)
        e = np.zeros_like(v)
        if err is not None:
            e = _finite(err)
            plot.addItem(pg.ErrorBarItem(x=x, y=v, top=e, bottom=e, beam=width * 0.4, pen=pg.mkPen("k", width=1.2)))
            top = max(top, float((v + e).max(initial=0)))
        top = max(top, float(v.max(initial=0)))
        bottom = min(bottom, float(v.min(initial=0)))
        if values_on_bars:
            for xi, vi, ei in zip(x, v, e):
                # above the bar (and its error bar); under it when the value is negative
                t = pg.TextItem(f"{vi:.1f}", color="k", anchor=(0.5, 1.0) if vi >= 0 else (0.5, 0.0))
                t.setPos(float(xi), float(vi + ei) if vi >= 0 else float(vi))
                plot.addItem(t)
    axis = plot.getAxis("bottom")
    axis.setTicks([[(float(i), str(c)) for i, c in enumerate(categories)]])
    lines = max((str(c).count("\n") + 1 for c in categories), default=1)
    if lines > 1:  # room for multi-line category labels (pyqtgraph drops labels that do not fit)
        axis.setStyle(tickTextHeight=lines * 18)
        axis.setHeight(lines * 18 + 24)
    plot.setXRange(-0.6, len(categories) - 0.4, padding=0)
    # room above the bars for the value labels and, above them, the legend's one row: measured in
    # pixels of this plot (a small on-screen plot needs relatively more room than a 900x540 file);
    # a plot too low for that names the series in its title instead
    legend = _keys_in_title_if_cramped(plot, legend, {n: (colors or {}).get(n) or color(n, i)
                                                      for i, n in enumerate(series)})
    headroom = _headroom(plot, legend, values_on_bars)
    top = max(1.0, top)
    low = 0.0 if bottom >= 0 else bottom - 0.06 * (top - bottom) - (0.04 * top if values_on_bars else 0.0)
    plot.setYRange(low, top * headroom, padding=0)


def _keys_in_title_if_cramped(plot: Any, legend: Any, colours: Mapping[str, str]) -> Any:
    """A plot too low for its legend names the series in its title instead; returns the legend or None."""
    if legend is None or _legend_share(plot, legend) <= 0.3:
        return legend
    # each key's square and name stay together when a narrow title wraps
    keys = " ".join(f"<span style='white-space:nowrap'><span style='color:{c}'>■</span>&nbsp;{label(n)}&nbsp;</span>"
                    for n, c in colours.items())
    plot.setTitle(f"{plot.titleLabel.text}&nbsp;&nbsp;{keys}", color="k",
                  size=f"{12 * getattr(plot, 'st_font_scale', 1.0):.1f}pt")
    if legend.scene() is not None:
        legend.scene().removeItem(legend)
    plot.legend = None
    return None


def _view_height(plot: Any) -> float:
    view_h = float(plot.getViewBox().height())
    return view_h if view_h >= 60 else HEIGHT * 0.78  # not laid out yet (a file's canvas): about this tall


def _legend_share(plot: Any, legend: Any) -> float:
    """The part of the plot's height a legend above the bars would take."""
    return (float(legend.boundingRect().height()) + 14) / _view_height(plot)


def _headroom(plot: Any, legend: Any, values_on_bars: bool) -> float:
    """Factor over the tallest bar so that value labels and the legend sit above every bar."""
    view_h = _view_height(plot)
    scale = getattr(plot, "st_font_scale", 1.0)
    needed = (18 * scale if values_on_bars else 4) + 8
    if legend is not None:
        needed += float(legend.boundingRect().height()) + 14
    return 1.0 / max(0.4, 1.0 - needed / view_h)


def draw_lines(
    plot: Any,
    series: Mapping[str, tuple[Any, Any, Any]],  # x, y, error or None (sequences or arrays)
    *,
    xticks: Sequence[tuple[float, str]] | None = None,
    symbols: bool = True,
    legend: str = "top-left",
) -> None:
    """One curve per series ``name: (x, y, err or None)``; error bars where given."""
    pg = _pg()
    add_legend(plot, legend)
    for i, (name, (x, y, err)) in enumerate(series.items()):
        c = color(name, i)
        xa, ya = np.asarray(x, dtype=np.float64), _finite(y)
        plot.plot(xa, ya, pen=pg.mkPen(c, width=2.5), name=label(name),
                  symbol="o" if symbols else None, symbolSize=7, symbolBrush=c, symbolPen=None)
        if err is not None:
            e = _finite(err)
            plot.addItem(pg.ErrorBarItem(x=xa, y=ya, top=e, bottom=e, beam=0.15, pen=pg.mkPen(c, width=1.5)))
    plot.getAxis("bottom").setTicks(None if xticks is None else [list(xticks)])
    _keys_in_title_if_cramped(plot, plot.legend, {n: color(n, i) for i, n in enumerate(series)})


def draw_histogram(plot: Any, series: Mapping[str, Sequence[float]], *, bins: int = 20) -> None:
    """Overlaid step histograms over a common range (distribution of sub-net accuracies)."""
    pg = _pg()
    add_legend(plot)
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
        plot.plot(edges, counts, stepMode="center", fillLevel=0, brush=fill, pen=pg.mkPen(qc, width=2.5),
                  name=label(name))
    plot.getAxis("bottom").setTicks(None)


# ----------------------------------------------------------------------------- report charts
def loafing_charts(report: Mapping[str, Any]) -> list[Chart]:
    """Bars per sub-net: trained alone vs inside CT vs inside ST (paper figure 2)."""
    rows = report["results"]
    cats = [r["plan"] for r in rows]
    series = {key: [r[key] for r in rows] for key in ("alone", "within_ct", "within_st")}
    colors = {"alone": COLORS["alone"], "within_ct": COLORS["ct"], "within_st": COLORS["st"]}
    return [Chart("", f"Loafing: sub-nets alone vs inside (BN: {report['bn']})", "sub-network plan",
                  "accuracy (%)", lambda p: draw_bars(p, cats, series, colors=colors))]


def _mean_lines(plot: Any, stats: Mapping[str, tuple[float, float, float]]) -> None:
    """A dashed line at each series' mean, labelled with mean +- std and the minimum."""
    pg = _pg()
    for i, (name, (mean, std, low)) in enumerate(stats.items()):
        if not np.isfinite(mean):
            continue
        c = color(name, i)
        line = pg.InfiniteLine(pos=mean, angle=0, pen=pg.mkPen(c, width=1.5, style=pg.QtCore.Qt.PenStyle.DashLine),
                               label=f"{label(name)}: {mean:.1f} ± {std:.1f}, min {low:.1f}",
                               # under the line, where the sorted curves (rising to the right) are not
                               labelOpts={"position": 0.45 - 0.15 * i, "color": c, "anchors": [(0, 0), (0, 0)]})
        plot.addItem(line)


def subnets_charts(report: Mapping[str, Any], names: Sequence[str] = ("ct", "st")) -> list[Chart]:
    """Sorted-accuracy curves and histograms of all sub-nets, CT vs ST (paper figure 5)."""
    names = [n for n in names if n in report]
    sorted_series = {}
    for n in names:
        acc = np.sort(np.array([r["accuracy"] for r in report[n]["results"]], dtype=np.float64))
        sorted_series[n] = (np.arange(1, len(acc) + 1), acc, None)
    hist = {n: [r["accuracy"] for r in report[n]["results"]] for n in names}
    bn = report.get("bn", "?")
    count = report.get("n_plans", len(next(iter(sorted_series.values()))[0]) if sorted_series else 0)
    stats = {n: (float(report[n]["mean"]), float(report[n]["std"]), float(report[n]["min"])) for n in names}

    def draw_sorted(p: Any) -> None:
        draw_lines(p, sorted_series, symbols=count <= 60, legend="bottom-right")
        _mean_lines(p, stats)

    return [
        Chart("_sorted", f"All {count} sub-nets, sorted (BN: {bn})", "rank (worst to best)", "accuracy (%)",
              draw_sorted),
        Chart("_hist", f"Distribution of sub-net accuracy (BN: {bn})", "accuracy (%)", "sub-networks",
              lambda p: draw_histogram(p, hist)),
    ]


def robustness_charts(report: Mapping[str, Any], names: Sequence[str] = ("ct", "st")) -> list[Chart]:
    """Delete-one bars, delete-k and swap-k curves with +- std (paper figure 6)."""
    names = [n for n in names if n in report["delete_one"]]
    first = report["delete_one"][names[0]]
    blocks = [str(r["block"]) for r in first]
    one = {n: [r["accuracy"] for r in report["delete_one"][n]] for n in names}
    charts = [Chart("_delete_one", f"Delete one block (BN: {report['bn']})", "deleted block", "accuracy (%)",
                    lambda p: draw_bars(p, blocks, one, values_on_bars=len(blocks) <= 12))]
    for key, what in (("delete_k", "Delete k blocks"), ("swap_k", "Swap k pairs")):
        rows = report[key]
        if not rows or not rows[names[0]]:
            continue
        series = {}
        for n in names:
            ks = [0] + [r["k"] for r in rows[n]]
            series[n] = (ks, [report["main"][n]] + [r["mean"] for r in rows[n]], [0.0] + [r["std"] for r in rows[n]])
        ticks = [(float(k), str(k)) for k in series[names[0]][0]]
        charts.append(Chart(f"_{key}", f"{what} ({report['repeats']} draws, BN: {report['bn']})",
                            "k", "accuracy (%), mean ± std",
                            partial(draw_lines, series=series, xticks=ticks, legend="bottom-left")))
    return charts


def importance_charts(report: Mapping[str, Any], names: Sequence[str] = ("ct", "st")) -> list[Chart]:
    """Accuracy lost per deleted block, CT vs ST (what the block graph colours by)."""
    names = [n for n in names if n in report["importance"]]
    drops = {n: report["importance"][n] for n in names}
    blocks = [str(b) for b in range(len(drops[names[0]]))]
    return [Chart("", f"Block importance (BN: {report['bn']})",
                  "deleted block", "points of accuracy lost",
                  lambda p: draw_bars(p, blocks, drops, values_on_bars=len(blocks) <= 12))]


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 100 else f"{s:.0f} s"


def compare_charts(report: Mapping[str, Any]) -> list[Chart]:
    """Main-net accuracy and sub-nets mean +- std per method, time and memory under the bars."""
    rows = report["methods"]
    # two lines per category: with table 1's seven methods one line would overlap its neighbours
    cats = [f"{label(r['method'])}\n{_seconds(r['seconds'])}, {r['peak_memory_mb']:.0f} MiB" for r in rows]
    series = {"main": [r["main_accuracy"] for r in rows], "subnets": [r["subnets_mean"] for r in rows]}
    errors = {"subnets": [r["subnets_std"] for r in rows]}
    colors = {"main": COLORS["main"], "subnets": COLORS["subnets"]}
    return [Chart("", f"{report['model']} on {report['dataset']}, {report['epochs']} epochs: main net and all "
                      f"{report['n_subnets']} sub-nets (BN: {report['bn']})", "", "accuracy (%)",
                  lambda p: draw_bars(p, cats, series, errors=errors, colors=colors))]


def _depth_lines(plot: Any, series: Mapping[str, tuple[Any, Any, Any]], xticks: Sequence[tuple[float, str]]) -> None:
    """Lines over depth, with room left and right: a model's name under the first or last point
    would stick out of the axis, and pyqtgraph then leaves it out."""
    draw_lines(plot, series, xticks=xticks, legend="bottom-left")
    xs = [x for x, _ in xticks]
    pad = max(1.0, 0.12 * (max(xs) - min(xs)))
    plot.getViewBox().setXRange(min(xs) - pad, max(xs) + pad, padding=0)


def depth_charts(report: Mapping[str, Any]) -> list[Chart]:
    """Figure 2's trend, per BN setting: the smallest sub-net alone vs inside CT and ST over depth,
    and every ordered sub-net's mean +- std over depth."""
    rows = report["rows"]
    x = [float(r["blocks"]) for r in rows]
    ticks = [(float(r["blocks"]), r["model"]) for r in rows]
    charts = []
    for mode in report["bn"]:
        smallest: dict[str, tuple[Sequence[float], Sequence[float], Sequence[float] | None]] = {
            "alone": (x, [report["alone"]["accuracy"]] * len(rows), None)}
        bands: dict[str, tuple[Sequence[float], Sequence[float], Sequence[float] | None]] = {}
        for method in report["methods"]:
            smallest[f"within_{method}"] = (x, [r["smallest"][method][mode] for r in rows], None)
            bands[method] = (x, [r["subnets"][method][mode]["mean"] for r in rows],
                             [r["subnets"][method][mode]["std"] for r in rows])
        # short titles (the summary names the plan): the app draws these two side by side
        charts.append(Chart(f"_smallest_{mode}", f"Smallest sub-net alone vs inside (BN: {mode})",
                            "depth (residual blocks)", "accuracy (%)",
                            partial(_depth_lines, series=smallest, xticks=ticks)))
        charts.append(Chart(f"_subnets_{mode}", f"All sub-nets, mean +- std (BN: {mode})",
                            "depth (residual blocks)", "accuracy (%)",
                            partial(_depth_lines, series=bands, xticks=ticks)))
    return charts


def triangle_charts(report: Mapping[str, Any]) -> list[Chart]:
    """Paper tables 2-3 as bars: each smaller net alone, then inside each bigger one; CT vs ST."""
    rows = report["results"]
    common = os.path.commonprefix(list(report["archs"])).rstrip("0123456789")  # "densenet-bc-22, -40" -> "22, 40"
    short = {a: a[len(common):] or a for a in report["archs"]}
    cats = [f"{short[r['subnet']]} {'alone' if r['inside'] == 'alone' else 'in ' + short[r['inside']]}" for r in rows]
    series = {"ct": [r["ct"] for r in rows], "st": [r["st"] for r in rows]}
    return [Chart("", f"Loafing: {common.rstrip('-_')}{{{', '.join(short.values())}}} alone vs inside bigger nets "
                      f"(BN: {report['bn']})",
                  "sub-network", "accuracy (%)", lambda p: draw_bars(p, cats, series))]


_CHARTS = {"importance": importance_charts, "loafing": loafing_charts, "subnets": subnets_charts,
           "robustness": robustness_charts, "compare": compare_charts, "depth": depth_charts,
           "loafing_triangle": triangle_charts}


def report_charts(report: Mapping[str, Any]) -> list[Chart]:
    """The charts of any analysis report (by its ``analysis`` key)."""
    return _CHARTS[report["analysis"]](report)


def save_report(report: dict[str, Any], out: str | Path, started: float | None = None, *,
                overwrite: bool = True) -> Path:
    """A complete report folder: the figures, then ``<analysis>.csv`` and ``.json`` (naming them).

    What ``python -m st_app analyze`` and the app's Save report both write. Existing files are
    replaced only with ``overwrite`` (see :mod:`st_app.core.safeio`).
    """
    from .core.experiments.reports import write_report
    from .core.safeio import check_output_folder

    out = check_output_folder(out, what="report folder")
    figures = report_figures(report, out / report["analysis"], overwrite=overwrite)
    return write_report(report, out, figures, started=started, overwrite=overwrite)


def report_figures(report: Mapping[str, Any], stem: str | Path, *, overwrite: bool = True) -> list[Path]:
    """PNG + SVG of every chart of a report, named ``<stem><key>``."""
    return save_charts(report_charts(report), stem, overwrite=overwrite)
