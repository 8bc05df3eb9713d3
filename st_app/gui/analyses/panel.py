"""The Analyses tab: a list of analyses on the left, the chosen one's page on the right."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QListWidget,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from st_app.figures import report_charts

from .page import ModelPair
from .pages import PAGES, AnalysisPage, ComparePage, DepthPage, ImportancePage, LoafingPage
from .runner import AnalysisRunner

__all__ = ["AnalysesPanel"]


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
        importance, loafing = self.pages["importance"], self.pages["loafing"]
        assert isinstance(importance, ImportancePage) and isinstance(loafing, LoafingPage)
        loafing.modeChanged.connect(self._refresh_buttons)  # the triangle needs no loaded models
        importance.showOnGraph.connect(self.showImportance)
        for other in self.pages.values():  # pages that train runs (compare, depth) open them in Explore
            if isinstance(other, (ComparePage, DepthPage)):
                other.openRuns.connect(self.openRuns)
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
        page.device, page.copies = self.runner.device, []
        try:
            job = page.make_job(self.pair)
        except Exception as exc:  # noqa: BLE001 - bad settings: one message on the page
            from .runner import describe_analysis_error

            page.on_stopped(describe_analysis_error(exc), error=True)
            return False
        page.save_settings()
        page.status.setStyleSheet("")
        self.job_pair[name] = self.pair.key
        self.runner.start(name, job, page.copies)
        page.copies = []  # the job holds them now
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
        self.column.setFixedWidth(205 if on else 170)
        for page in self.pages.values():
            page.result.set_font_scale(1.25 if on else 0.8)
            page.controls.setMinimumWidth(430 if on else 340)
            page.controls.setMaximumWidth(520 if on else 430)
            page.summary_scroll.setMaximumHeight(150 if on else 130)

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
            page_name = next((p.name for p in self.pages.values() if name == p.name or name in p.shows), None)
            if page_name is None:
                raise ValueError("it is not an ST Lab analysis report (no known 'analysis' key)")
            _check_report(report)
        except Exception as exc:  # noqa: BLE001 - one clear message for any unreadable file
            reason = f"not valid JSON ({exc})" if isinstance(exc, json.JSONDecodeError) else str(exc)
            QMessageBox.critical(self, "Cannot open the report", f"{path}: {reason}")
            self.statusMessage.emit(f"Cannot open {path.name}: {reason}", True)
            return False
        page = self.pages[page_name]
        page.on_finished(report, float(report.get("seconds_total") or 0.0))
        page.progress.setFormat("opened from a file")
        page.status.setText(f"Opened {path} (computed earlier; the checkpoints it names are in the "
                            "Report tab).")
        self.show_page(page_name)
        self.settings.setValue("analyses/lastDir", str(path.parent))
        self.statusMessage.emit(f"Opened the {page.title.lower()} report {path.name}.", False)
        return True

    def show_saved_report(self, name: str, report: dict[str, Any]) -> bool:
        """Show a report the session holds (an opened session); False when it cannot be shown."""
        page = self.pages.get(name)
        if page is None or page.result.report is report:
            return False
        try:
            _check_report(report)
        except ValueError:
            return False
        page.on_finished(report, float(report.get("seconds_total") or 0.0))
        page.progress.setFormat("from the session")
        return True

    def notes_from_reports(self, reports: dict[str, Any]) -> list[str]:
        """What of a session's reports could not be shown (incomplete ones), as notes."""
        notes = []
        for name, report in reports.items():
            try:
                _check_report(report)
            except ValueError as exc:
                notes.append(f"its {name} report was left out ({exc})")
        return notes

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

