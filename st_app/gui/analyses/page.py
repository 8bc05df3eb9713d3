"""The base of every Analyses page: settings on the left, Run / Cancel, progress, the result.

A page is declarative: a subclass names itself (``name``, ``title``, ``intro``), registers its
settings widgets with :meth:`AnalysisPage.field` in ``build_form`` and returns the job that
builds its report from ``make_job``. :data:`st_app.gui.analyses.pages.PAGES` lists them.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..train.panel import format_eta
from .result_view import ResultView

__all__ = ["AnalysisPage", "BN_CHOICES", "ModelPair"]

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


# ================================================================================= pages
class AnalysisPage(QWidget):
    """Settings, Run / Cancel, progress and the result of one analysis."""

    name = ""
    title = ""
    intro = ""
    needs_models = True
    shows: tuple[str, ...] = ()  # report kinds (``analysis`` keys) this page shows besides its own name
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
        self.device = "auto"  # the app's device (set by the panel): where the job trains and evaluates
        self.copies: list[Any] = []  # the last job's private checkpoints, for the runner to move to the device
        self.setObjectName(f"analysisPage_{self.name}")
        # left: what it is and its settings (scrolling), then Run / Cancel / Save and progress; right: the result
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
        self.form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)  # labels above fields when narrow
        self.build_form()
        lay.addWidget(form_box)
        lay.addStretch(1)
        # Run / Cancel / Save, progress and status stay in view below the settings, which scroll
        footer = QWidget()
        footer.setObjectName("analysisActions")
        foot = QVBoxLayout(footer)
        foot.setContentsMargins(10, 6, 10, 8)
        foot.setSpacing(8)
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
        buttons.addWidget(self.run_button, 0, 0, 1, 2)  # "Run method comparison" gets the whole row
        for i, b in enumerate((self.cancel_button, self.save_button, self.copy_button)):
            buttons.addWidget(b, 1 + i // 2, i % 2)
        extra = QHBoxLayout()
        self.extra_buttons(extra)
        foot.addLayout(buttons)
        if extra.count():
            foot.addLayout(extra)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        self.progress.setFormat("idle")
        foot.addWidget(self.progress)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setObjectName("analysisStatus")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        foot.addWidget(self.status)
        scroll = QScrollArea()
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        column = QWidget()
        col = QVBoxLayout(column)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(0)
        col.addWidget(scroll, 1)
        col.addWidget(footer)
        column.setMinimumWidth(340)
        column.setMaximumWidth(430)
        self.controls = column

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(4, 8, 8, 8)
        rl.setSpacing(6)
        self.summary = QLabel("")
        self.summary.setObjectName("analysisSummary")
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setWordWrap(True)
        self.summary.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        summary_scroll = QScrollArea()  # a long summary scrolls instead of squeezing the figures
        summary_scroll.setWidget(self.summary)
        summary_scroll.setWidgetResizable(True)
        summary_scroll.setFrameShape(QFrame.Shape.NoFrame)
        summary_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        summary_scroll.setMaximumHeight(130)
        self.summary_scroll = summary_scroll
        rl.addWidget(summary_scroll)
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
        outer.addWidget(column)
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
        self.calib = int_box(16, 100000, 1000, CALIB_TIP, step=100)
        self.form.addRow("Calibration images:", self.field("calib_n", self.calib))
        self.seed = int_box(0, 2**31 - 1, 0, "Seed of the calibration subset, samples and random draws: same seed, "
                            "same result")
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
        """The job building this page's report (keyword callbacks ``progress``, ``should_stop``,
        ``partial``); it runs on :attr:`device` with the copies :meth:`private_pair` made."""
        raise NotImplementedError

    def private_pair(self, pair: ModelPair) -> tuple[Any, Any]:
        """Copies of the CT and ST checkpoints for a job (analyses change BN statistics and modes);
        the runner moves them to the app's device in its worker thread."""
        from .runner import private_checkpoint

        self.copies = [private_checkpoint(pair.ct), private_checkpoint(pair.st)]
        return self.copies[0], self.copies[1]

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
        existing = Path(folder) / f"{(self.result.report or {}).get('analysis', self.name)}.json"
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
        name = (self.result.report or {}).get("analysis", self.name)
        self.status.setText(f"Saved {path.name}, {name}.csv and the figures in {folder}.")
        return path

    def copy_summary(self) -> None:
        from st_app.core.experiments.reports import summary_lines

        if self.result.report is not None:
            QGuiApplication.clipboard().setText("\n".join(summary_lines(self.result.report)))


# --------------------------------------------------------------- settings widgets the pages share
def dataset_box(tooltip: str) -> QComboBox:
    """An editable data set choice (names, or a typed ``imagefolder:PATH``), digits first."""
    from st_app.core.data import DATASETS

    box = QComboBox()
    box.setEditable(True)
    box.addItems([d for d in DATASETS if "PATH" not in d])
    box.setCurrentText("digits")
    box.setToolTip(tooltip)
    return box


def int_box(lo: int, hi: int, value: int, tooltip: str = "", step: int = 1) -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setValue(value)
    box.setSingleStep(step)
    if tooltip:
        box.setToolTip(tooltip)
    return box


def lr_box(tooltip: str = "") -> QDoubleSpinBox:
    """The recipe's learning rate (0.05 for batch 64, the project's reference)."""
    box = QDoubleSpinBox()
    box.setDecimals(4)
    box.setRange(0.0001, 10.0)
    box.setSingleStep(0.01)
    box.setValue(0.05)
    if tooltip:
        box.setToolTip(tooltip)
    return box


CALIB_TIP = "Training images used to re-estimate BN statistics (recalibrated BN only)"


def _read(widget: QWidget) -> Any:
    """A settings widget's value: combo data (else its text), number, check state or stripped text."""
    if isinstance(widget, QComboBox):
        data = widget.currentData()
        return widget.currentText().strip() if data is None else data
    if isinstance(widget, (QSpinBox, QDoubleSpinBox)):
        return widget.value()
    if isinstance(widget, QCheckBox):
        return widget.isChecked()
    assert isinstance(widget, QLineEdit)
    return widget.text().strip()


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
    elif isinstance(widget, QLineEdit) and isinstance(value, str) and (value or empty_ok):
        widget.setText(value)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


