"""The main window: composition only.

It owns one :class:`~st_app.gui.session.Session` (the state) and puts the views and
controllers around it: the Explore tab (:mod:`.explore.tab`), the Train and Analyses tabs,
the declared actions, menus and toolbar (:mod:`.actions`), file operations
(:mod:`.file_ops`), the guided demo (:mod:`.demo`), presentation mode (:mod:`.presentation`)
and importance colouring (:mod:`.importance`). Errors from the session become one message.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any, cast

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QUndoView,
    QVBoxLayout,
    QWidget,
)

from st_app.core.plan import SubnetPlan

from . import actions, window_state
from .demo import Demo
from .devices import wire_device
from .explore.panels import repolish
from .explore.tab import ExploreTab
from .file_ops import DEFAULT_CHECKPOINTS, FileOps
from .help import HelpBrowser
from .importance import ImportanceColouring
from .jobs import run_in_thread, shutdown_all
from .presentation import Presentation
from .session import Session, SessionError
from .session_file import SessionData
from .style import ensure_stylesheet

__all__ = ["DEFAULT_CHECKPOINTS", "MainWindow"]

TAB_TIPS = {
    "Explore": "Click blocks of the unraveled network and watch CT vs ST accuracy",
    "Train": "Train CT and ST side by side and watch them live",
    "Analyses": "The paper's experiments on the loaded models: loafing, all sub-nets, robustness, block importance, "
                "method comparison",
}


ENGINE_MODULES = ("st_app.core.checkpoint", "st_app.core.data", "st_app.core.evaluate",
                  "st_app.core.subnet_eval.incremental")


def _import_engine() -> None:
    """Import torch and the engine off the GUI thread, so the window paints at once. Qt-free
    modules only: pyqtgraph imported there crashed the process now and then."""
    for name in ENGINE_MODULES:
        importlib.import_module(name)


class MainWindow(QMainWindow):
    """ST Lab's main window."""

    accuracyShown = Signal(str, bool)  # slot, final
    planChanged = Signal(str)
    modelsLoaded = Signal()

    def __init__(self, ct_path: str | Path | None = None, st_path: str | Path | None = None, *,
                 use_defaults: bool = True, settings: QSettings | None = None, defer_load: bool = False,
                 enable_training: bool = True, initial_plan: str | None = None, session_path: str | Path | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("stLabMain")
        self.setProperty("presentation", False)
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else QSettings()
        self.session = Session(self)
        self.training: Any | None = None
        self.analyses: Any | None = None
        self._training_error: str | None = None
        self._enable_training = enable_training
        self._initial_plan = initial_plan
        self._session_path = session_path
        self._closing = False
        self.loaded = False  # start-up finished (models loaded or not): modelsLoaded was emitted
        app = QApplication.instance()
        if isinstance(app, QApplication):
            ensure_stylesheet(app)
            app.aboutToQuit.connect(self.shutdown_workers)
        self._build_ui()
        self.files = FileOps(self)
        self.demo = Demo(self)
        self.presentation_mode = Presentation(self)
        self.act, self.act_block, self.act_onnx = actions.build(self)
        self.colouring = ImportanceColouring(self)
        self._connect_session()
        window_state.restore(self)
        self._update_actions()
        self._update_title()
        self._probe_timer = QTimer(self)
        self._probe_timer.setSingleShot(True)
        self._probe_timer.setInterval(300)
        self._probe_timer.timeout.connect(self._send_probe_plan)

        paths = {"ct": ct_path, "st": st_path}
        if use_defaults and ct_path is None and st_path is None and session_path is None:
            paths = {s: p for s, p in DEFAULT_CHECKPOINTS.items() if (p / "model.safetensors").exists()}
        paths = {s: p for s, p in paths.items() if p is not None}
        if defer_load:
            self.graph.set_message("Loading models…")
            self.show_status("Loading PyTorch and the models…")
            run_in_thread(_import_engine, name="import-engine",
                          connect={"finished": lambda: self._finish_startup(paths)})
        else:
            self._finish_startup(paths)

    # ================================================================ building
    def _build_ui(self) -> None:
        self.tabs = QTabWidget()
        self.tabs.setObjectName("mainTabs")
        self.tabs.setDocumentMode(True)
        self.setCentralWidget(self.tabs)
        self.explore = self.explore_tab = ExploreTab(self.session)
        self.graph, self.cards = self.explore.graph, self.explore.cards
        self.accuracy_panel, self.plan_panel = self.explore.accuracy_panel, self.explore.plan_panel
        self.caption, self.splitter, self.accuracy = self.explore.caption, self.explore.splitter, self.explore.accuracy
        self.train_tab = QWidget()
        QVBoxLayout(self.train_tab).setContentsMargins(0, 0, 0, 0)
        self.analyses_tab = QWidget()
        self.analyses_tab.setObjectName("analysesTab")
        QVBoxLayout(self.analyses_tab).setContentsMargins(0, 0, 0, 0)
        for tab, title in ((self.explore_tab, "Explore"), (self.train_tab, "Train"), (self.analyses_tab, "Analyses")):
            self.tabs.setTabToolTip(self.tabs.addTab(tab, title), TAB_TIPS[title])
        self.help_browser = HelpBrowser()
        self.help_dock = self._dock("Help", "helpDock", self.help_browser)
        self.history_view = QUndoView(self.session.undo_stack)
        self.history_view.setEmptyLabel("loaded plan")
        self.history_view.setToolTip("Every edit of the plan; click an entry to go back to it")
        self.history_dock = self._dock("Edit history", "historyDock", self.history_view)
        sb = self.statusBar()
        sb.messageChanged.connect(self._on_status_message)
        self.busy_label = QLabel("")
        self.busy_label.setToolTip("The accuracy worker is evaluating the current plan")
        self.model_label = QLabel("no model")
        self.model_label.setToolTip("Architecture and data set of the loaded models")
        sb.addPermanentWidget(self.busy_label)
        sb.addPermanentWidget(self.model_label)

    def _dock(self, title: str, name: str, widget: QWidget) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        dock.hide()
        return dock

    def _connect_session(self) -> None:
        s = self.session
        s.planChanged.connect(self._on_plan)
        s.modelsChanged.connect(self._on_models)
        s.edited.connect(lambda text: self.show_status(text))
        s.bnModeChanged.connect(lambda mode: self.settings.setValue("explore/bn", mode))
        s.presentationChanged.connect(self._on_presentation)
        s.runsChanged.connect(self._update_actions)
        s.undo_stack.indexChanged.connect(self._on_undo_index)
        self.explore.message.connect(lambda text, error: self.show_status(text, error=error))
        self.explore.accuracyShown.connect(self._on_accuracy_shown)
        self.accuracy.busyChanged.connect(lambda busy: self.busy_label.setText("evaluating…" if busy else ""))

    def when_loaded(self, fn: Any) -> None:
        """Call ``fn`` once start-up has loaded the models (now, if it has)."""
        fn() if self.loaded else self.modelsLoaded.connect(fn)

    def _finish_startup(self, paths: dict[str, Any]) -> None:
        if self._closing:
            return
        self._build_training_panel()
        self._build_analyses_panel()
        wire_device(self)  # before any model is loaded: the accuracy worker snapshots on the chosen device
        loaded = sum(self.files.open_checkpoint(p, slot, remember=False) for slot, p in paths.items())
        if self._session_path is not None:
            loaded += self.files.open_session(self._session_path)
        if not loaded:
            self.graph.set_message("No model loaded: File → Open run folder…, drop a run folder here,\n"
                                   "or train one in the Train tab.")
            self.show_status("No model loaded yet.")
        elif self._initial_plan:
            self.apply_plan_text(self._initial_plan)
        if loaded and not self._session_path:
            unit = self.session.info.unit if self.session.info is not None else "block"
            self.show_status(f"Click a {unit} to turn it off or on; right-click for more; Ctrl+Z undoes.", timeout=0)
        self.loaded = True
        self.modelsLoaded.emit()

    def _build_training_panel(self) -> None:
        if self.training is not None or not self._enable_training:
            return
        try:
            from .train.panel import TrainingPanel

            panel = TrainingPanel(self.session.curves)
        except Exception as exc:  # noqa: BLE001 - the explorer must open without it
            self._training_error = f"{type(exc).__name__}: {exc}"
            self._note(self.train_tab, f"The training panel could not be loaded ({self._training_error}).")
            return
        self.training = panel
        self._tab_layout(self.train_tab).addWidget(panel)
        panel.runsFinished.connect(self._on_runs_finished)
        panel.errorOccurred.connect(self._on_training_error)
        panel.stateChanged.connect(self._on_training_state)
        self.session.curvesReplaced.connect(panel.plots.reload)
        self._send_probe_plan()
        if self.session.presentation:
            panel.set_presentation(True)
        self._update_actions()

    def _build_analyses_panel(self) -> None:
        try:
            from .analyses.panel import AnalysesPanel

            panel = AnalysesPanel(self.settings)
        except Exception as exc:  # noqa: BLE001 - the explorer must open without it
            self._note(self.analyses_tab, f"The analyses could not be loaded ({type(exc).__name__}: {exc}).")
            return
        self.analyses = panel
        self._tab_layout(self.analyses_tab).addWidget(panel)
        panel.statusMessage.connect(lambda text, error: self.show_status(text, error=error))
        panel.reportReady.connect(lambda name, report: self.session.set_report(name, report,
                                                                               pair=panel.job_pair.get(name, "")))
        panel.showImportance.connect(self._show_importance_from_page)
        panel.openRuns.connect(self._open_runs)
        panel.planChosen.connect(self._open_plan)
        self.session.reportChanged.connect(lambda name: panel.show_saved_report(name, self.session.reports[name])
                                           if panel.running != name else None)
        self._on_models()

    @staticmethod
    def _tab_layout(tab: QWidget) -> QVBoxLayout:
        return cast(QVBoxLayout, tab.layout())

    @staticmethod
    def _note(tab: QWidget, text: str) -> None:
        note = QLabel(text)
        note.setWordWrap(True)
        note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        MainWindow._tab_layout(tab).addWidget(note)

    # ================================================================ session events
    def _on_plan(self, plan: SubnetPlan | None) -> None:
        text = str(plan) if plan is not None else ""
        if self.training is not None:
            self._probe_timer.start()
        if self.analyses is not None:
            self.analyses.set_current_plan(text)
        self._update_actions()
        self.planChanged.emit(text)

    def _on_models(self) -> None:
        self._update_title()
        self._update_actions()
        if self.analyses is not None:
            from .analyses.page import ModelPair

            self.analyses.set_pair(ModelPair.from_slots(dict(self.session.slots)))
        if not self.demo.active:
            self.demo.hide_caption_if_stale()

    def _on_undo_index(self, _index: int) -> None:
        """After undo/redo the status bar says what is current, not the undone edit's message."""
        plan = self.session.plan
        if plan is not None and not self._closing:
            stack = self.session.undo_stack
            what = stack.text(stack.index() - 1) if stack.index() > 0 else "loaded plan"
            self.show_status(f"Now: {what} (plan {plan})")

    def _on_accuracy_shown(self, slot: str, final: bool) -> None:
        self.accuracyShown.emit(slot, final)
        self.demo.update_caption()

    def _on_runs_finished(self, runs: dict) -> None:
        self.session.set_last_runs(runs)
        if not self.demo.on_runs_finished(runs) and runs:
            self.show_status("Training finished: File → Load last trained runs puts them in the CT/ST slots.", timeout=0)

    def _on_training_state(self, state: str) -> None:
        if state in ("training", "stopping", "paused"):
            self.show_status({"training": "Training…", "stopping": "Stopping the training…",
                              "paused": "Training paused."}[state], timeout=0)
        elif state == "stopped":
            self.show_status("Training stopped; finished epochs are saved (File → Load last trained runs).")

    def _on_training_error(self, message: str) -> None:
        self.show_status(f"Training: {message}", error=True)
        self.demo.on_training_error(message)

    def _on_presentation(self, on: bool) -> None:
        self.act["presentation"].setChecked(on)
        self.presentation_mode.apply(on)

    def after_session_opened(self, data: SessionData) -> list[str]:
        """Window-side state of an opened session; returns notes for the user."""
        notes: list[str] = []
        if self.analyses is not None:
            notes += self.analyses.notes_from_reports(data.reports)
        self.colouring.set_mode(data.colour)
        return notes

    # ================================================================ commands
    def _try(self, fn: Any, *args: Any) -> bool:
        try:
            return bool(fn(*args))
        except SessionError as exc:
            self.show_status(str(exc), error=True)
            return False

    def apply_preset(self, name: str) -> bool:
        return self._try(self.session.preset, name)

    def apply_plan_text(self, text: str) -> bool:
        return self.explore.apply_plan_text(text)

    def block_action(self, action: str, block: int) -> bool:
        self.graph.set_current_block(block)
        return self._try(self.session.block_action, action, block)

    def current_block_action(self, action: str) -> None:
        block = self.graph.current_block
        if block is None:
            self.show_status("Select a block first: click it, or press ←/→ in the graph.", error=True)
            return
        self.block_action(action, block)

    def copy_plan(self) -> None:
        if self.session.plan is not None:
            QGuiApplication.clipboard().setText(str(self.session.plan))
            self.show_status(f"Copied {self.session.plan}")

    def set_bn_mode(self, mode: str) -> None:
        self._try(self.session.set_bn_mode, mode)

    def set_colour_mode(self, mode: str) -> bool:
        return self.colouring.set_mode(mode)

    def set_presentation(self, on: bool) -> None:
        self.session.set_presentation(bool(on))
        self.act["presentation"].setChecked(self.session.presentation)

    def start_demo(self) -> bool:
        return self.demo.start()

    def show_help(self) -> None:
        self.help_dock.show()
        self.help_dock.raise_()

    def open_checkpoint(self, path: str | Path, slot: str | None = None, **kw: Any) -> bool:
        return self.files.open_checkpoint(path, slot, **kw)

    def open_report_dialog(self) -> None:
        if self.analyses is None:
            self.show_status("The Analyses tab is not ready yet.", error=True)
            return
        self.tabs.setCurrentWidget(self.analyses_tab)
        self.analyses.open_report_dialog()

    def _show_importance_from_page(self, slot: str) -> None:
        self.set_colour_mode(slot)
        self.tabs.setCurrentWidget(self.explore_tab)

    def _open_plan(self, text: str) -> None:
        if self.apply_plan_text(text):
            self.tabs.setCurrentWidget(self.explore_tab)

    def _open_runs(self, runs: dict) -> None:
        for slot in ("ct", "st"):
            if runs.get(slot):
                self.files.open_checkpoint(runs[slot], slot)
        self.tabs.setCurrentWidget(self.explore_tab)

    def _send_probe_plan(self) -> None:
        if self.training is not None and self.session.plan is not None:
            self.training.set_probe_plan(str(self.session.plan))

    def training_or_warn(self) -> Any | None:
        if self.training is None:
            self.show_status("The training panel is not available" + (f": {self._training_error}"
                             if self._training_error else "."), error=True)
        return self.training

    # ================================================================ queries (tests, scripts)
    @property
    def plan(self) -> SubnetPlan | None:
        return self.session.plan

    def plan_text(self) -> str:
        return str(self.session.plan) if self.session.plan is not None else ""

    @property
    def bn_mode(self) -> str:
        return self.session.bn_mode

    @property
    def presentation(self) -> bool:
        return self.session.presentation

    def wait_for_accuracy(self) -> bool:
        return self.explore.accuracy_ready()

    # ================================================================ status and messages
    def show_status(self, text: str, *, error: bool = False, timeout: int = 8000) -> None:
        sb = self.statusBar()
        if bool(sb.property("error")) != error:
            sb.setProperty("error", error)
            repolish(sb)
        sb.showMessage(("⚠ " if error else "") + text, timeout)
        sb.setToolTip(text)  # the whole message, also when the bar cuts it

    def _on_status_message(self, text: str) -> None:
        """A message that is not one of ours (a status tip, or none): never in the error style."""
        sb = self.statusBar()
        if sb.property("error") and not text.startswith("⚠ "):
            sb.setProperty("error", False)
            repolish(sb)

    def error(self, title: str, message: str, *, title_status: bool = False) -> None:
        self.show_status(message.splitlines()[0] if message else title, error=True)
        QMessageBox.critical(self, title, message)

    def _update_title(self) -> None:
        first = next(iter(self.session.slots.values()), None)
        if first is None:
            self.setWindowTitle("")  # the application display name alone: "ST Lab"
            self.model_label.setText("no model")
            return
        arch, ds = first.model.config.arch, first.checkpoint.info.dataset or "unknown data"
        self.setWindowTitle(f"{arch} on {ds}")  # Qt appends " — ST Lab" (the display name)
        n_test = len(first.data.test_y) if first.data is not None else 0
        self.model_label.setText(f"{arch} · {ds}" + (f" · {n_test} test images" if n_test else ""))

    def _update_actions(self) -> None:
        has_plan = self.session.plan is not None
        for act in (self.act["full"], self.act["random"], self.act["smallest"], self.act["copy_plan"], self.act["fit"],
                    self.act["zoom_in"], self.act["zoom_out"], *self.act_block.values()):
            act.setEnabled(has_plan)
        slots = self.session.slots
        for act in (self.act["save"], self.act["save_session"], self.act["save_bundle"]):
            act.setEnabled(bool(slots))
        for slot, act in self.act_onnx.items():
            act.setEnabled(slot in slots)
        for act in (self.act["export_plot"], self.act["export_csv"], self.act["demo"]):
            act.setEnabled(self.training is not None)
        self.act["load_trained"].setEnabled(bool(self.session.last_runs))
        self.act["defaults"].setEnabled(all((p / "model.safetensors").exists() for p in DEFAULT_CHECKPOINTS.values()))

    # ================================================================ settings, drops, closing
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        event.acceptProposedAction() if self.files.dropped_paths(event) else event.ignore()

    def dragMoveEvent(self, event: Any) -> None:
        event.acceptProposedAction() if self.files.dropped_paths(event) else event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = self.files.dropped_paths(event)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.files.drop(paths)

    def shutdown_workers(self, timeout_ms: int = 1000) -> bool:
        """Stop training, analyses and evaluation; wait at most ``timeout_ms`` in all."""
        if self._closing:
            return True
        self._closing = True
        t0 = time.perf_counter()
        self._probe_timer.stop()
        self.accuracy.stop()
        if self.training is not None:
            self.training.shutdown(0)
        if self.analyses is not None:
            self.analyses.shutdown(0)
        left = max(50, timeout_ms - int(1000 * (time.perf_counter() - t0)))
        return shutdown_all(left)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        if self.session.presentation:  # the toolbar's text size follows the width
            QTimer.singleShot(0, self.presentation_mode.fit)

    def closeEvent(self, event: QCloseEvent) -> None:
        window_state.save(self)
        self.shutdown_workers()
        super().closeEvent(event)
