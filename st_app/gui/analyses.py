"""The Analyses tab: the paper's experiments as one-click runs on the loaded CT and ST models.

One page per analysis (loafing, all sub-nets, robustness, block importance, method
comparison). A page holds its settings, Run / Cancel, a progress bar, and the result: the
summary, the figures (the same charts ``python -m st_app analyze`` writes, drawn by
``st_app.figures`` into live plot widgets), the table and the full JSON report. Reports are
built by :mod:`st_app.core.experiments.reports` in an :class:`AnalysisRunner` thread on
private copies of the models; Save writes JSON, CSV, PNG and SVG like the CLI.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from st_app.core.data import DATASETS
from st_app.core.methods import METHODS
from st_app.core.models import ARCHITECTURES
from st_app.figures import report_charts, save_report

from .analysis_worker import AnalysisRunner, private_checkpoint
from .training_panel import default_out_root, format_eta

__all__ = ["AnalysesPanel", "AnalysisPage", "ModelPair", "ResultView"]

BN_CHOICES = [("main", "main net's (paper)"), ("recalibrate", "re-estimated per sub-net")]


class ModelPair:
    """The CT and ST checkpoints (and test data) an analysis runs on, or why there are none."""

    def __init__(self, ct: Any = None, st: Any = None, data: Any = None, problem: str | None = None,
                 key: str | None = None) -> None:
        self.ct, self.st, self.data = ct, st, data
        self.problem = problem
        # which loads these are (the window's slot keys are unique per load; ids could be reused)
        self.key = "" if problem else (key or f"{id(ct)}:{id(st)}")

    @classmethod
    def from_slots(cls, slots: dict[str, Any]) -> ModelPair:
        """From the main window's slot states (``checkpoint``, ``data``, ``data_error``)."""
        missing = [{"ct": "a CT", "st": "an ST"}[s] for s in ("ct", "st") if s not in slots]
        if missing:
            return cls(problem=f"Load {' and '.join(missing)} model first (File → Open, or the Train tab).")
        ct, st = slots["ct"], slots["st"]
        for name, state in (("CT", ct), ("ST", st)):
            if state.data is None:
                return cls(problem=f"The {name} model's test data is unavailable: {state.data_error or 'unknown'}")
        if ct.data.name != st.data.name:
            return cls(problem=f"The CT model was trained on {ct.data.name} and the ST model on {st.data.name}; "
                               "analyses compare models on the same data.")
        if ct.model.config.arch != st.model.config.arch:
            return cls(problem=f"The CT model is a {ct.model.config.arch} and the ST model a "
                               f"{st.model.config.arch}; analyses need the same architecture.")
        return cls(ct.checkpoint, st.checkpoint, ct.data, key=f"{ct.key}:{st.key}")

    def describe(self) -> str:
        if self.problem:
            return self.problem
        def one(ck: Any) -> str:
            epoch = ck.meta.get("epoch")
            return f"{Path(ck.path).name}" + (f" ({epoch} epochs)" if epoch is not None else "")
        return (f"<b>CT</b> {one(self.ct)} · <b>ST</b> {one(self.st)} · {self.ct.model.config.arch} on "
                f"{self.data.name}, {len(self.data.test_y)} test images")


# ================================================================================ results
class ResultView(QTabWidget):
    """Figures, table and JSON of one report; Save writes them all like the CLI does."""

    planChosen = Signal(str)  # a table row's plan was double-clicked

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: dict[str, Any] | None = None
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
        self.addTab(self.figures, "Figures")
        self.addTab(self.table, "Table")
        self.addTab(self.json, "Report (JSON)")
        self.setTabToolTip(1, "Every number of the report; the CSV that Save writes")
        self.setTabToolTip(2, "The full report, with checkpoint ids, BN setting, seeds and image counts")

    def show_report(self, report: dict[str, Any]) -> None:
        self.report = report
        charts = report_charts(report)
        while len(self.plots) < len(charts):
            w = pg.PlotWidget(background="w")
            w.setMinimumSize(300, 240)
            w.getPlotItem().st_font_scale = self.font_scale
            self.plots.append(w)
        for i, w in enumerate(self.plots):
            self.grid.removeWidget(w)
            w.setVisible(i < len(charts))
        for i, chart in enumerate(charts):
            plot = self.plots[i]
            row, col, span = _grid_cell(i, len(charts))
            self.grid.addWidget(plot, row, col, 1, span)
            chart.render(plot.getPlotItem())
            plot.setToolTip(f"{chart.title}\nRight-click → Export… saves this figure alone.")
        from st_app.core.experiments.reports import report_table

        header, rows = report_table(report)
        self.table.setSortingEnabled(False)
        self.table.clear()
        self.table.setColumnCount(len(header))
        self.table.setRowCount(len(rows))
        self.table.setHorizontalHeaderLabels(header)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                item = QTableWidgetItem()
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    item.setData(Qt.ItemDataRole.DisplayRole, value)
                else:
                    item.setText("" if value is None else str(value))
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        self.table.setSortingEnabled(True)
        if "plan" in header:
            self.table.setToolTip("Double-click a row to open its sub-network in the Explore tab")
        self.json.setPlainText(json.dumps(report, indent=2))

    def _on_double_click(self, row: int, _column: int) -> None:
        header = [self.table.horizontalHeaderItem(c).text() for c in range(self.table.columnCount())]
        if "plan" in header:
            item = self.table.item(row, header.index("plan"))
            if item is not None and item.text():
                self.planChosen.emit(item.text())

    def set_font_scale(self, scale: float) -> None:
        """Text size of the plots (presentation mode uses larger); redraws the shown report."""
        self.font_scale = scale
        for w in self.plots:
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


# ================================================================================= pages
class AnalysisPage(QWidget):
    """Settings, Run / Cancel, progress and the result of one analysis."""

    name = ""
    title = ""
    intro = ""
    needs_models = True
    always_calibrates = False  # True: the report gives both BN settings, so calibration images always count
    runRequested = Signal(str)
    cancelRequested = Signal()

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.pair = ModelPair(problem="No models loaded yet.")
        self.fields: dict[str, tuple[QWidget, bool]] = {}
        self.complete_report: dict[str, Any] | None = None
        self.showing_partial = False
        self.setObjectName(f"analysisPage_{self.name}")
        # left: what it is, its settings, Run / Cancel / Save, progress; right: the result
        left = QWidget()
        left.setObjectName("analysisControls")
        lay = QVBoxLayout(left)
        lay.setContentsMargins(10, 8, 10, 8)
        lay.setSpacing(8)
        head = QLabel(f"<h3 style='margin:0'>{self.title}</h3><p style='margin-top:4px'>{self.intro}</p>")
        head.setWordWrap(True)
        head.setTextFormat(Qt.TextFormat.RichText)
        head.setObjectName("analysisIntro")
        lay.addWidget(head)
        self.models_label = QLabel("")
        self.models_label.setWordWrap(True)
        self.models_label.setTextFormat(Qt.TextFormat.RichText)
        self.models_label.setObjectName("analysisModels")
        self.models_label.setVisible(self.needs_models)
        lay.addWidget(self.models_label)
        form_box = QWidget()
        self.form = QFormLayout(form_box)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.build_form()
        lay.addWidget(form_box)
        buttons = QGridLayout()
        buttons.setSpacing(6)
        self.run_button = QPushButton(f"Run {self.title.lower()}")
        self.run_button.setObjectName("runAnalysis")
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(lambda: self.runRequested.emit(self.name))
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.setToolTip("Stop the analysis at its next check; nothing half-done is kept")
        self.cancel_button.clicked.connect(self.cancelRequested.emit)
        self.save_button = QPushButton("Save report…")
        self.save_button.setEnabled(False)
        self.save_button.setToolTip("Write JSON, CSV and PNG + SVG figures into a folder (as the CLI does)")
        self.save_button.clicked.connect(self.save_dialog)
        self.copy_button = QPushButton("Copy summary")
        self.copy_button.setEnabled(False)
        self.copy_button.setToolTip("Copy the summary lines to the clipboard")
        self.copy_button.clicked.connect(self.copy_summary)
        for i, b in enumerate((self.run_button, self.cancel_button, self.save_button, self.copy_button)):
            buttons.addWidget(b, i // 2, i % 2)
        extra = QHBoxLayout()
        self.extra_buttons(extra)
        lay.addLayout(buttons)
        if extra.count():
            lay.addLayout(extra)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        lay.addWidget(self.progress)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setObjectName("analysisStatus")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.status)
        lay.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(340)
        scroll.setMaximumWidth(430)
        self.controls = scroll

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(4, 8, 8, 8)
        rl.setSpacing(6)
        self.summary = QLabel("")
        self.summary.setObjectName("analysisSummary")
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setWordWrap(True)
        rl.addWidget(self.summary)
        self.placeholder = QLabel(f"Run the analysis to see its figures, table and report here.\n\n"
                                  f"The same report comes from the command line:\n"
                                  f"python -m st_app analyze {self.name} …")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setObjectName("analysisPlaceholder")
        self.placeholder.setStyleSheet("color: #6B7280;")
        rl.addWidget(self.placeholder, 1)
        self.result = ResultView()
        rl.addWidget(self.result, 1)
        self.result.hide()

        outer = QHBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        outer.addWidget(scroll)
        outer.addWidget(right, 1)
        self._load_settings()

    # ----------------------------------------------------------- to override
    def build_form(self) -> None:
        self.bn = QComboBox()
        for key, text in BN_CHOICES:
            self.bn.addItem(text, key)
        self.bn.setToolTip("BN statistics of each sub-network: the main net's (paper) or re-estimated from "
                           "training images (removes the BN mismatch, leaving what the weights learned)")
        self.form.addRow("BN statistics:", self.field("bn", self.bn))
        self.calib = QSpinBox()
        self.calib.setRange(16, 100000)
        self.calib.setValue(1000)
        self.calib.setSingleStep(100)
        self.calib.setToolTip("Training images used to re-estimate BN statistics (recalibrated BN only)")
        self.form.addRow("Calibration images:", self.field("calib_n", self.calib))
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("Seed of the calibration subset, samples and random draws: same seed, same result")
        self.form.addRow("Seed:", self.field("seed", self.seed))
        if not self.always_calibrates:  # the images matter only with recalibrated statistics
            self.bn.currentIndexChanged.connect(lambda _i: self.calib.setEnabled(self.bn_mode() == "recalibrate"))
            self.calib.setEnabled(False)

    def extra_buttons(self, row: QHBoxLayout) -> None:
        """Room for page-specific buttons next to Run."""

    def field(self, key: str, widget: QWidget, empty_ok: bool = False) -> QWidget:
        """Register a settings widget: ``options()`` reads it, ``apply_settings()`` writes it.

        ``empty_ok``: an empty text is a value (a line edit whose empty means "the default").
        """
        self.fields[key] = (widget, empty_ok)
        return widget

    def options(self) -> dict[str, Any]:
        return {key: _read(widget) for key, (widget, _) in self.fields.items()}

    def make_job(self, pair: ModelPair) -> Callable[..., dict]:
        raise NotImplementedError

    # ------------------------------------------------------------------ state
    def bn_mode(self) -> str:
        return str(self.bn.currentData())

    def set_bn_mode(self, mode: str) -> None:
        i = self.bn.findData(mode)
        if i >= 0:
            self.bn.setCurrentIndex(i)

    def set_pair(self, pair: ModelPair) -> None:
        stale = self.result.report is not None and self.needs_models and pair.key != self.pair.key
        self.pair = pair
        if self.needs_models:
            self.models_label.setText(pair.describe())
        if stale:
            self.status.setText("The models changed since this result was computed; run again to update it.")
        self.update_enabled(busy=False)

    def update_enabled(self, busy: bool, other_running: bool = False) -> None:
        ready = not (self.needs_models and self.pair.problem)
        self.run_button.setEnabled(ready and not busy and not other_running)
        self.run_button.setToolTip(self.pair.problem if self.needs_models and self.pair.problem else
                                   "Another analysis is running" if other_running else
                                   "Run with the settings on the left (on private copies of the models)")
        self.cancel_button.setEnabled(busy)

    def settings_values(self) -> dict[str, Any]:
        return {k: v for k, v in self.options().items() if isinstance(v, (int, float, str, bool))}

    def _load_settings(self) -> None:
        stored = self.settings.value(f"analyses/{self.name}")
        if not isinstance(stored, str):
            return
        try:
            values = json.loads(stored)
        except ValueError:
            return
        self.apply_settings(values if isinstance(values, dict) else {})

    def apply_settings(self, values: dict[str, Any]) -> None:
        """Set the registered widgets from ``values``; a value of the wrong kind is ignored."""
        for key, (widget, empty_ok) in self.fields.items():
            if key in values:
                _write(widget, values[key], empty_ok)

    def save_settings(self) -> None:
        self.settings.setValue(f"analyses/{self.name}", json.dumps(self.settings_values()))

    # ----------------------------------------------------------------- results
    def on_started(self) -> None:
        self.progress.setRange(0, 0)  # busy until the first progress report
        self.progress.setFormat("starting…")
        self.status.setText("Running…")
        self.update_enabled(busy=True)

    def on_progress(self, done: int, total: int, elapsed: float) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)
        eta = elapsed / done * (total - done) if done else None
        self.progress.setFormat(f"%v / %m · {format_eta(eta)}")

    def on_partial(self, report: dict[str, Any]) -> None:
        """Draw the part computed so far; Save waits for the whole report."""
        self.showing_partial = True
        self._show_summary(report, partial=True)
        self.result.show_report(report)
        self.placeholder.hide()
        self.result.show()
        self.save_button.setEnabled(False)
        self.copy_button.setEnabled(False)

    def _show_summary(self, report: dict[str, Any], partial: bool = False) -> None:
        from st_app.core.experiments.reports import summary_lines

        lines = summary_lines(report)
        note = " <span style='color:#B45309'>(partial: still running)</span>" if partial else ""
        # monospace keeps the columns; pre-wrap keeps the spaces yet wraps long lines
        self.summary.setText("<b>" + _esc(lines[0]) + "</b>" + note + "<p style='white-space: pre-wrap; "
                             "font-family: monospace; margin: 2px 0 0 0'>"
                             + "<br>".join(_esc(line) for line in lines[1:]) + "</p>")

    def on_finished(self, report: dict[str, Any], elapsed: float) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.progress.setFormat(f"done in {elapsed:.1f} s")
        self.update_enabled(busy=False)
        self._show_summary(report)
        self.status.setText(f"Finished {_dt.datetime.now():%H:%M:%S}.")
        self.result.show_report(report)
        self.placeholder.hide()
        self.result.show()
        self.save_button.setEnabled(True)
        self.copy_button.setEnabled(True)
        self.showing_partial = False
        self.complete_report = report

    def on_stopped(self, message: str, error: bool) -> None:
        if self.showing_partial:  # a half-done run never replaces the last complete result
            self.showing_partial = False
            if self.complete_report is not None:
                self.on_finished(self.complete_report, 0.0)
            else:
                self.result.clear_report()
                self.result.hide()
                self.summary.setText("")
                self.placeholder.show()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("failed" if error else "cancelled")
        self.status.setText(("⚠ " if error else "") + message)
        self.status.setStyleSheet("color: #B91C1C;" if error else "")
        self.update_enabled(busy=False)

    def save_dialog(self) -> None:
        root = str(self.settings.value("analyses/lastDir", str(Path.home())))
        folder = QFileDialog.getExistingDirectory(self, f"Save the {self.title.lower()} report into a folder", root)
        if not folder:
            return
        existing = Path(folder) / f"{self.name}.json"
        if existing.exists():
            answer = QMessageBox.question(
                self, "Replace the saved report?",
                f"{folder} already holds a {self.title.lower()} report ({existing.name}, its CSV and figures). "
                "Replace them?", QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.save_to(folder)

    def save_to(self, folder: str | Path) -> Path | None:
        try:
            path = self.result.save(folder)
        except Exception as exc:  # noqa: BLE001 - one clear message, nothing else lost
            QMessageBox.critical(self, "Cannot save the report", f"{folder}: {exc}")
            return None
        self.settings.setValue("analyses/lastDir", str(folder))
        self.status.setText(f"Saved {path.name}, {self.result.report['analysis']}.csv and the figures in {folder}.")
        return path

    def copy_summary(self) -> None:
        from st_app.core.experiments.reports import summary_lines

        if self.result.report is not None:
            QGuiApplication.clipboard().setText("\n".join(summary_lines(self.result.report)))


def _read(widget: QWidget) -> Any:
    """A settings widget's value: combo data (else its text), number, check state or stripped text."""
    if isinstance(widget, QComboBox):
        data = widget.currentData()
        return widget.currentText().strip() if data is None else data
    if isinstance(widget, (QSpinBox, QDoubleSpinBox)):
        return widget.value()
    if isinstance(widget, QCheckBox):
        return widget.isChecked()
    return widget.text().strip()  # QLineEdit


def _write(widget: QWidget, value: Any, empty_ok: bool) -> None:
    """Set a settings widget from a stored value of the widget's own kind; anything else is ignored."""
    if isinstance(widget, QComboBox):
        if not isinstance(value, str) or not (value or empty_ok):
            return
        keyed = widget.count() and widget.itemData(0) is not None  # items carry keys: match those only
        i = widget.findData(value) if keyed else widget.findText(value)
        if i >= 0:
            widget.setCurrentIndex(i)
        elif widget.isEditable():
            widget.setCurrentText(value)
    elif isinstance(widget, QSpinBox):
        if isinstance(value, int):
            widget.setValue(value)
    elif isinstance(widget, QDoubleSpinBox):
        if isinstance(value, float):
            widget.setValue(value)
    elif isinstance(widget, QCheckBox):
        if isinstance(value, bool):
            widget.setChecked(value)
    elif isinstance(value, str) and (value or empty_ok):  # QLineEdit
        widget.setText(value)


def _grid_cell(i: int, n: int) -> tuple[int, int, int]:
    """Row, column and column span of chart ``i`` of ``n``: two per row, an odd first one full width."""
    if n % 2 == 1:
        if i == 0:
            return 0, 0, 2
        i += 1
    return i // 2, i % 2, 1


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class LoafingPage(AnalysisPage):
    name = "loafing"
    title = "Loafing"
    always_calibrates = True
    intro = ("Paper figure 2. Each chosen ordered sub-network is trained <i>alone</i> with the CT run's own "
             "recipe and compared with the same sub-network evaluated inside the CT and inside the ST model. "
             "A sub-net that does much better alone than inside CT was <i>loafing</i>: it relied on the blocks "
             "that are now switched off. Trains one network per plan, so it takes minutes.")

    def build_form(self) -> None:
        self.plans = QLineEdit()
        self.plans.setPlaceholderText("default: the smallest and two others")
        self.plans.setMinimumWidth(260)
        self.plans.setToolTip("Sub-networks separated by ';' in the plan text (e.g. 0|3|6; 0,1|3,4|6,7) or "
                              "depths:1,2,1; empty: the smallest ordered sub-net and two others")
        self.form.addRow("Sub-networks:", self.field("plans", self.plans, empty_ok=True))
        self.epochs = QSpinBox()
        self.epochs.setRange(0, 10000)
        self.epochs.setSpecialValueText("the CT recipe's")
        self.epochs.setToolTip("Train the alone-nets this many epochs instead of the CT run's (the report "
                               "records the override)")
        self.form.addRow("Epochs alone:", self.field("epochs", self.epochs))
        super().build_form()
        self.current_plan = ""

    def extra_buttons(self, row: QHBoxLayout) -> None:
        add = QToolButton()
        add.setText("+ current plan")
        add.setToolTip("Add the Explore tab's current plan to the sub-networks")
        add.clicked.connect(self.add_current_plan)
        row.addWidget(add)
        self.add_plan_button = add

    def add_current_plan(self) -> None:
        if not self.current_plan:
            return
        parts = [p.strip() for p in self.plans.text().split(";") if p.strip()]
        if self.current_plan not in parts:
            parts.append(self.current_plan)
        self.plans.setText("; ".join(parts))

    def make_job(self, pair: ModelPair) -> Callable[..., dict]:
        from st_app.core.experiments.reports import loafing_report
        from st_app.core.plan import SubnetPlan

        o = self.options()
        layout = pair.ct.model.layout
        plans = [SubnetPlan.parse(p, layout) for p in o["plans"].split(";") if p.strip()] or None
        ct, st = private_checkpoint(pair.ct), private_checkpoint(pair.st)
        return lambda **cb: loafing_report(ct, st, pair.data, plans=plans, epochs=o["epochs"] or None, bn=o["bn"],
                                           calib_n=o["calib_n"], seed=o["seed"], **cb)


class SubnetsPage(AnalysisPage):
    name = "subnets"
    title = "All sub-networks"
    intro = ("Paper figure 5. Every ordered sub-network (a seeded uniform sample above the limit) is evaluated "
             "in the CT and the ST model through the prefix-sharing tree: the sorted-accuracy curve and the "
             "distribution, with mean ± std and the worst. Try both BN settings: with statistics re-estimated "
             "per sub-net much of CT's gap can vanish on an easy data set.")

    def build_form(self) -> None:
        self.limit = QSpinBox()
        self.limit.setRange(1, 1_000_000)
        self.limit.setValue(1000)
        self.limit.setToolTip("Above this many ordered sub-nets, evaluate a seeded uniform sample of this size")
        self.form.addRow("At most:", self.field("limit", self.limit))
        super().build_form()

    def make_job(self, pair: ModelPair) -> Callable[..., dict]:
        from st_app.core.experiments.reports import subnets_report

        o = self.options()
        ct, st = private_checkpoint(pair.ct), private_checkpoint(pair.st)
        return lambda **cb: subnets_report(ct, st, pair.data, bn=o["bn"], calib_n=o["calib_n"], limit=o["limit"],
                                           seed=o["seed"], **cb)


class RobustnessPage(AnalysisPage):
    name = "robustness"
    title = "Robustness"
    intro = ("Paper figure 6, after Veit et al. (2016): delete each block in turn; delete k random blocks "
             "(k = 1…K, mean ± std over R seeded draws); swap k random pairs of same-shape blocks. CT and ST see "
             "exactly the same damaged networks. An ensemble of many paths degrades smoothly.")

    def build_form(self) -> None:
        self.max_k = QSpinBox()
        self.max_k.setRange(1, 1000)
        self.max_k.setValue(4)
        self.max_k.setToolTip("Largest number of deleted blocks (at most the number of blocks)")
        self.form.addRow("Delete up to k =", self.field("max_k", self.max_k))
        self.repeats = QSpinBox()
        self.repeats.setRange(1, 10000)
        self.repeats.setValue(10)
        self.repeats.setToolTip("Random draws per k; mean ± std over them")
        self.form.addRow("Draws per k:", self.field("repeats", self.repeats))
        self.max_swaps = QSpinBox()
        self.max_swaps.setRange(-1, 1000)
        self.max_swaps.setValue(-1)
        self.max_swaps.setSpecialValueText("as k, if possible")
        self.max_swaps.setToolTip("Largest number of swapped same-shape pairs (0: no swaps)")
        self.form.addRow("Swap up to:", self.field("max_swaps", self.max_swaps))
        super().build_form()

    def make_job(self, pair: ModelPair) -> Callable[..., dict]:
        from st_app.core.experiments.reports import robustness_report

        o = self.options()
        ct, st = private_checkpoint(pair.ct), private_checkpoint(pair.st)
        swaps = None if o["max_swaps"] < 0 else o["max_swaps"]
        return lambda **cb: robustness_report(ct, st, pair.data, bn=o["bn"], calib_n=o["calib_n"], max_k=o["max_k"],
                                              repeats=o["repeats"], max_swaps=swaps, seed=o["seed"], **cb)


class ImportancePage(AnalysisPage):
    name = "importance"
    title = "Block importance"
    intro = ("Paper figure 6a on the graph: the accuracy each model loses when one block alone is deleted. "
             "Colour the Explore tab's blocks by it: in a CT net a few blocks carry the load, "
             "while ST spreads it. Takes seconds.")
    showOnGraph = Signal(str)  # "ct" | "st"

    def extra_buttons(self, row: QHBoxLayout) -> None:
        self.show_buttons = {}
        for slot in ("ct", "st"):
            b = QPushButton(f"Colour graph: {slot.upper()}")
            b.setToolTip(f"Colour the Explore tab's blocks by the {slot.upper()} model's accuracy loss")
            b.setEnabled(False)
            b.clicked.connect(lambda _=False, s=slot: self.showOnGraph.emit(s))
            row.addWidget(b)
            self.show_buttons[slot] = b

    def on_finished(self, report: dict[str, Any], elapsed: float) -> None:
        super().on_finished(report, elapsed)
        for b in self.show_buttons.values():
            b.setEnabled(True)

    def make_job(self, pair: ModelPair) -> Callable[..., dict]:
        from st_app.core.experiments.reports import importance_report

        o = self.options()
        ct, st = private_checkpoint(pair.ct), private_checkpoint(pair.st)
        return lambda **cb: importance_report(ct, st, pair.data, bn=o["bn"], calib_n=o["calib_n"], seed=o["seed"],
                                              **cb)


class ComparePage(AnalysisPage):
    name = "compare"
    title = "Method comparison"
    intro = ("Seed table 1. Trains CT, ST, ST++ and stochastic depth with one recipe (same seed, data order "
             "and initial weights) and reports wall time, peak memory, main-net accuracy and all ordered "
             "sub-nets' mean ± std. Does not use the loaded models; the runs it trains can be opened "
             "afterwards. Takes minutes per method.")
    needs_models = False
    openRuns = Signal(dict)  # {"ct": path, "st": path}

    def build_form(self) -> None:
        self.model = QComboBox()
        self.model.addItems(list(ARCHITECTURES))
        self.model.setCurrentText("resnet20")
        self.form.addRow("Model:", self.field("model", self.model))
        self.dataset = QComboBox()
        self.dataset.setEditable(True)
        self.dataset.addItems([d for d in DATASETS if "PATH" not in d])
        self.dataset.setCurrentText("digits")
        self.dataset.setToolTip("A data set name, or imagefolder:/path/to/folder")
        self.form.addRow("Data set:", self.field("dataset", self.dataset))
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 10000)
        self.epochs.setValue(30)
        self.form.addRow("Epochs:", self.field("epochs", self.epochs))
        methods = QWidget()
        ml = QHBoxLayout(methods)
        ml.setContentsMargins(0, 0, 0, 0)
        self.methods = {}
        for m in METHODS:
            box = QCheckBox(m)
            box.setChecked(m in ("ct", "st", "stpp", "sd"))
            ml.addWidget(box)
            self.methods[m] = box
        self.form.addRow("Methods:", methods)
        self.batch = QSpinBox()
        self.batch.setRange(1, 65536)
        self.batch.setValue(64)
        self.form.addRow("Batch size:", self.field("batch_size", self.batch))
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(4)
        self.lr.setRange(0.0001, 10.0)
        self.lr.setSingleStep(0.01)
        self.lr.setValue(0.05)
        self.form.addRow("Learning rate:", self.field("lr", self.lr))
        self.isolate = QCheckBox("each method in its own process")
        self.isolate.setChecked(True)
        self.isolate.setToolTip("On CPU the peak memory is a process-wide high-water mark: a fresh process per "
                                "method gives each its own figure (slower start)")
        self.form.addRow("Memory:", self.field("isolate", self.isolate))
        self.runs_root = QLineEdit(str(default_out_root()))
        self.runs_root.setToolTip("The trained runs go to <folder>/compare-<date-time>/<method>")
        self.form.addRow("Runs folder:", self.field("runs_root", self.runs_root))
        super().build_form()
        self.last_runs: dict[str, str] = {}

    def extra_buttons(self, row: QHBoxLayout) -> None:
        self.open_button = QPushButton("Open CT and ST runs")
        self.open_button.setToolTip("Load the CT and ST runs this comparison trained into the Explore tab")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(lambda: self.openRuns.emit(dict(self.last_runs)))
        row.addWidget(self.open_button)

    def options(self) -> dict[str, Any]:
        # the method check boxes are one setting: the checked methods, comma-separated
        return {**super().options(), "methods": ",".join(m for m, b in self.methods.items() if b.isChecked())}

    def apply_settings(self, values: dict[str, Any]) -> None:
        super().apply_settings(values)
        if isinstance(values.get("methods"), str):
            chosen = set(values["methods"].split(","))
            for m, b in self.methods.items():
                b.setChecked(m in chosen)

    def runs_dir(self) -> Path:
        root = Path(self.runs_root.text().strip() or default_out_root()).expanduser()
        return root / f"compare-{_dt.datetime.now():%Y%m%d-%H%M%S}"

    def make_job(self, pair: ModelPair) -> Callable[..., dict]:
        from st_app.core.experiments.reports import compare_report

        o = self.options()
        methods = [m for m in o["methods"].split(",") if m]
        if not methods:
            raise ValueError("choose at least one method to compare")
        runs = self.runs_dir()
        return lambda **cb: compare_report(model=o["model"], dataset=o["dataset"], epochs=o["epochs"], methods=methods,
                                           seed=o["seed"], batch_size=o["batch_size"], lr=o["lr"], bn=o["bn"],
                                           calib_n=o["calib_n"], runs_dir=runs, isolate=o["isolate"], threads=1,
                                           **cb)

    def on_finished(self, report: dict[str, Any], elapsed: float) -> None:
        super().on_finished(report, elapsed)
        self.last_runs = {r["method"]: r["run"] for r in report["methods"] if r.get("run")}
        self.open_button.setEnabled("ct" in self.last_runs and "st" in self.last_runs)


PAGES: tuple[type[AnalysisPage], ...] = (LoafingPage, SubnetsPage, RobustnessPage, ImportancePage, ComparePage)


# ================================================================================= panel
class AnalysesPanel(QWidget):
    """The tab: a list of analyses on the left, the chosen one's page on the right."""

    reportReady = Signal(str, object)  # analysis name, report dict
    planChosen = Signal(str)  # open this plan in the Explore tab
    showImportance = Signal(str)  # "ct" | "st": colour the graph with the latest importance
    openRuns = Signal(dict)
    statusMessage = Signal(str, bool)  # text, error
    busyChanged = Signal(bool)

    def __init__(self, settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings if settings is not None else QSettings()
        self.runner = AnalysisRunner(self)
        self.runner.progress.connect(self._on_progress)
        self.runner.partial.connect(self._on_partial)
        self.runner.finished.connect(self._on_finished)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        self.runner.busyChanged.connect(self.busyChanged)
        self.pages: dict[str, AnalysisPage] = {}
        self.job_pair: dict[str, str] = {}  # analysis -> key of the model pair its last run used
        self.list = QListWidget()
        self.list.setObjectName("analysisList")
        self.stack = QStackedWidget()
        for cls in PAGES:
            page = cls(self.settings)
            page.runRequested.connect(self.run)
            page.cancelRequested.connect(self.cancel)
            page.result.planChosen.connect(self.planChosen)
            self.pages[page.name] = page
            self.stack.addWidget(page)
            self.list.addItem(page.title)
            self.list.item(self.list.count() - 1).setToolTip(_plain(page.intro))
        self.pages["importance"].showOnGraph.connect(self.showImportance)
        self.pages["compare"].openRuns.connect(self.openRuns)
        self.list.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.list.setCurrentRow(0)
        self.open_button = QPushButton("Open report…")
        self.open_button.setToolTip("Show a saved report (<analysis>.json from Save report… or "
                                    "python -m st_app analyze) on its page")
        self.open_button.clicked.connect(self.open_report_dialog)
        column = QWidget()
        column.setFixedWidth(170)
        self.column = column
        cl = QVBoxLayout(column)
        cl.setContentsMargins(0, 0, 0, 6)
        cl.addWidget(self.list, 1)
        cl.addWidget(self.open_button)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(column)
        lay.addWidget(self.stack, 1)
        self.set_pair(ModelPair(problem="No models loaded yet."))

    def page(self, name: str) -> AnalysisPage:
        return self.pages[name]

    def show_page(self, name: str) -> None:
        self.list.setCurrentRow(list(self.pages).index(name))

    def set_pair(self, pair: ModelPair) -> None:
        self.pair = pair
        for page in self.pages.values():
            page.set_pair(pair)
        self._refresh_buttons()

    def set_current_plan(self, text: str) -> None:
        page = self.pages["loafing"]
        assert isinstance(page, LoafingPage)
        page.current_plan = text

    @property
    def running(self) -> str | None:
        return self.runner.running

    def run(self, name: str, **overrides: Any) -> bool:
        """Start analysis ``name`` with its page's settings (``overrides`` set page options first)."""
        page = self.pages[name]
        if self.runner.running is not None:
            self.statusMessage.emit(f"{self.pages[self.runner.running].title} is still running; cancel it first.",
                                    True)
            return False
        if page.needs_models and self.pair.problem:
            page.on_stopped(self.pair.problem, error=True)
            self.statusMessage.emit(self.pair.problem, True)
            return False
        if overrides:
            page.apply_settings(overrides)
        try:
            job = page.make_job(self.pair)
        except Exception as exc:  # noqa: BLE001 - bad settings: one message on the page
            from .analysis_worker import describe_analysis_error

            page.on_stopped(describe_analysis_error(exc), error=True)
            return False
        page.save_settings()
        page.status.setStyleSheet("")
        self.job_pair[name] = self.pair.key
        self.runner.start(name, job)
        page.on_started()
        self._refresh_buttons()
        self.statusMessage.emit(f"{page.title}: running…", False)
        return True

    def cancel(self) -> None:
        self.runner.cancel()

    def _refresh_buttons(self) -> None:
        running = self.runner.running
        for name, page in self.pages.items():
            page.update_enabled(busy=name == running, other_running=running is not None and name != running)

    def _elapsed_s(self) -> float:
        return time.perf_counter() - self.runner.started_at

    def _on_progress(self, name: str, done: int, total: int) -> None:
        self.pages[name].on_progress(done, total, self._elapsed_s())

    def _on_partial(self, name: str, report: dict) -> None:
        self.pages[name].on_partial(report)

    def _on_finished(self, name: str, report: dict) -> None:
        page = self.pages[name]
        page.on_finished(report, self._elapsed_s())
        if page.needs_models and self.job_pair.get(name) != self.pair.key:
            page.status.setText("Finished, on the models loaded when it started; they have changed since "
                                "(the Report tab names the checkpoints). Run again for the current ones.")
        self._refresh_buttons()
        self.statusMessage.emit(f"{page.title}: finished.", False)
        self.reportReady.emit(name, report)

    def _on_failed(self, name: str, message: str) -> None:
        self.pages[name].on_stopped(message, error=True)
        self._refresh_buttons()
        self.statusMessage.emit(f"{self.pages[name].title}: {message}", True)

    def _on_cancelled(self, name: str) -> None:
        self.pages[name].on_stopped("Cancelled; the previous result (if any) is unchanged.", error=False)
        self._refresh_buttons()
        self.statusMessage.emit(f"{self.pages[name].title}: cancelled.", False)

    def set_presentation(self, on: bool) -> None:
        """Larger plot text for a projector (the widgets' fonts come from the style sheet)."""
        self.column.setFixedWidth(250 if on else 170)
        for page in self.pages.values():
            page.result.set_font_scale(1.25 if on else 0.8)
            page.controls.setMinimumWidth(500 if on else 340)
            page.controls.setMaximumWidth(640 if on else 430)

    def open_report_dialog(self) -> None:
        root = str(self.settings.value("analyses/lastDir", str(Path.home())))
        path, _ = QFileDialog.getOpenFileName(self, "Open an analysis report", root, "Reports (*.json);;All files (*)")
        if path:
            self.open_report(path)

    def open_report(self, path: str | Path) -> bool:
        """Show a saved ``<analysis>.json`` on its page; a bad file gives one message, changes nothing."""
        path = Path(path)
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
            name = report.get("analysis") if isinstance(report, dict) else None
            if name not in self.pages:
                raise ValueError("it is not an ST Lab analysis report (no known 'analysis' key)")
            _check_report(report)
        except Exception as exc:  # noqa: BLE001 - one clear message for any unreadable file
            reason = f"not valid JSON ({exc})" if isinstance(exc, json.JSONDecodeError) else str(exc)
            QMessageBox.critical(self, "Cannot open the report", f"{path}: {reason}")
            self.statusMessage.emit(f"Cannot open {path.name}: {reason}", True)
            return False
        page = self.pages[name]
        page.on_finished(report, float(report.get("seconds_total") or 0.0))
        page.progress.setFormat("opened from a file")
        page.status.setText(f"Opened {path} (computed earlier; the checkpoints it names are in the "
                            "Report tab).")
        self.show_page(name)
        self.settings.setValue("analyses/lastDir", str(path.parent))
        self.statusMessage.emit(f"Opened the {page.title.lower()} report {path.name}.", False)
        return True

    def wait(self, timeout_ms: int = 5000) -> bool:
        return self.runner.wait(timeout_ms)

    def shutdown(self, timeout_ms: int = 2000) -> None:
        for page in self.pages.values():
            page.save_settings()
        self.runner.shutdown(timeout_ms)


def _check_report(report: dict[str, Any]) -> None:
    """Raise ValueError naming what is missing when a report cannot be shown."""
    from st_app.core.experiments.reports import report_table, summary_lines

    try:
        report_table(report)
        summary_lines(report)
        report_charts(report)
    except (KeyError, TypeError, IndexError, ValueError, StopIteration) as exc:
        what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__
        raise ValueError(f"an incomplete {report.get('analysis')} report ({what})") from None


def _plain(html: str) -> str:
    import re

    return re.sub(r"<[^>]+>", "", html)
