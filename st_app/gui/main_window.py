"""The main window: the unraveled block graph, instant CT-vs-ST accuracy, training, export.

The window owns the current :class:`~st_app.core.plan.SubnetPlan` and two *slots* (``ct``
and ``st``), each holding a loaded checkpoint and its test data. Every edit of the plan goes
through :meth:`MainWindow.edit_plan` as a :class:`~st_app.gui.commands.PlanEditCommand` on
the undo stack; the command's ``redo``/``undo`` call :meth:`MainWindow._show_plan`, which
updates the graph, the numbers and asks the accuracy worker for the new plan.
"""

from __future__ import annotations

import importlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings, Qt, QThread, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QKeySequence,
    QUndoStack,
)
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QTabWidget,
    QToolBar,
    QToolButton,
    QUndoView,
    QVBoxLayout,
    QWidget,
)

from st_app import __version__
from st_app.core.plan import SubnetPlan
from st_app.core.resources import resource_path

from .accuracy import AccuracyResult, AccuracyService, ModelPayload, keep_until_finished
from .block_graph import BlockGraphView, NetworkInfo
from .commands import PlanEditCommand
from .help import PAPER_URL, HelpBrowser, show_about
from .panels import AccuracyPanel, PlanPanel, repolish
from .style import SLOT_TITLES, ensure_stylesheet, light_palette

__all__ = ["DEFAULT_CHECKPOINTS", "MainWindow", "SlotState"]

DEFAULT_CHECKPOINTS = {
    "ct": resource_path("checkpoints", "digits-resnet20-ct"),
    "st": resource_path("checkpoints", "digits-resnet20-st"),
}
SLOTS = ("ct", "st")
MAX_RECENT = 8
DEMO_EPOCHS = 8
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".json")


@dataclass
class SlotState:
    """A loaded model in the CT or ST slot, and the data it is evaluated on."""

    checkpoint: Any  # st_app.core.checkpoint.Checkpoint
    key: str  # unique per load: results are cached and matched by it
    data: Any | None  # ImageData, None when the data set is unavailable
    data_error: str | None = None
    main_accuracy: float | None = None

    @property
    def model(self) -> Any:
        return self.checkpoint.model

    @property
    def method(self) -> str:
        meta = self.checkpoint.meta
        cfg = meta.get("config") or {}
        m = cfg.get("method") or (meta.get("method") or {}).get("name") or ""
        return str(m)


class _Importer(QThread):
    """Imports torch and the engine off the GUI thread so the window paints at once."""

    def run(self) -> None:
        # Failures are not reported here: the same imports run again where they are used, and
        # report there (or the app is already shutting down, when the window closed early).
        for name in ("st_app.core.checkpoint", "st_app.core.data", "st_app.core.evaluate",
                     "st_app.gui.training_panel"):
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001, S112
                continue


def _is_checkpoint_path(path: Path) -> bool:
    if path.is_dir():
        return (path / "model.safetensors").exists()
    return path.suffix.lower() in CHECKPOINT_SUFFIXES


class MainWindow(QMainWindow):
    """ST Lab's main window."""

    accuracyShown = Signal(str, bool)  # slot, final: a label now shows the current plan's accuracy
    planChanged = Signal(str)
    modelsLoaded = Signal()

    def __init__(
        self,
        ct_path: str | Path | None = None,
        st_path: str | Path | None = None,
        *,
        use_defaults: bool = True,
        settings: QSettings | None = None,
        defer_load: bool = False,
        enable_training: bool = True,
        initial_plan: str | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("ST Lab")
        self.setObjectName("stLabMain")
        self.setProperty("presentation", False)
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else QSettings()
        self._slots: dict[str, SlotState] = {}
        self._info: NetworkInfo | None = None
        self._plan: SubnetPlan | None = None
        self._bn = "main"
        self._gen = 0
        self._rng = random.Random()
        self._datasets: dict[tuple, Any] = {}
        self._full_params = 0
        self._full_flops: int | None = None
        self._presentation = False
        self._was_maximized = False
        self._demo_active = False
        self._demo_plan: SubnetPlan | None = None
        self._last_runs: dict[str, str] = {}
        self.demo_out_root: str | None = None  # where the guided demo's runs go (None: the panel's default)
        self._initial_plan = initial_plan
        self._importer: _Importer | None = None
        self._closing = False
        self.training: Any | None = None
        self._training_error: str | None = None
        self.analyses: Any | None = None
        self._importance: dict[str, Any] | None = None  # latest delete-one report for the loaded pair
        self._colour_mode = "stage"
        self._enable_training = enable_training

        self.undo_stack = QUndoStack(self)
        self.accuracy = AccuracyService(self)
        self.accuracy.resultReady.connect(self._on_accuracy)
        self.accuracy.modelReady.connect(self._on_model_ready)
        self.accuracy.flopsReady.connect(self._on_flops)
        self.accuracy.failed.connect(lambda msg: self.show_status(msg, error=True))
        self.accuracy.busyChanged.connect(self._on_busy)
        app = QApplication.instance()
        if app is not None:
            ensure_stylesheet(app)
            app.aboutToQuit.connect(self._shutdown_workers)

        self._probe_timer = QTimer(self)
        self._probe_timer.setSingleShot(True)
        self._probe_timer.setInterval(300)
        self._probe_timer.timeout.connect(self._send_probe_plan)

        self._build_ui()
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._restore_settings()
        self._update_actions()

        paths = {"ct": ct_path, "st": st_path}
        if use_defaults and ct_path is None and st_path is None:
            paths = {s: p for s, p in DEFAULT_CHECKPOINTS.items() if (p / "model.safetensors").exists()}
        paths = {s: p for s, p in paths.items() if p is not None}
        if defer_load:
            self.graph.set_message("Loading models…")
            self.show_status("Loading PyTorch and the models…")
            self._importer = _Importer(self)
            self._importer.finished.connect(lambda: self._finish_startup(paths))
            self._importer.start()
        else:
            self._finish_startup(paths)

    # ================================================================ UI building
    def _build_ui(self) -> None:
        self.tabs = QTabWidget()
        self.tabs.setObjectName("mainTabs")
        self.tabs.setDocumentMode(True)
        self.setCentralWidget(self.tabs)

        explore = QWidget()
        explore.setObjectName("exploreTab")
        ev = QVBoxLayout(explore)
        ev.setContentsMargins(8, 6, 8, 8)
        ev.setSpacing(6)
        self.caption = QLabel("")
        self.caption.setObjectName("captionBanner")
        self.caption.setWordWrap(True)
        self.caption.setTextFormat(Qt.TextFormat.RichText)
        self.caption.setToolTip("What the guided demo just showed. Click to hide.")
        self.caption.mousePressEvent = lambda _e: self.caption.hide()  # type: ignore[method-assign]
        self.caption.hide()
        ev.addWidget(self.caption)

        self.graph = BlockGraphView()
        self.graph.setToolTip("")
        self.graph.setMinimumHeight(180)
        self.graph.blockClicked.connect(self.toggle_block)
        self.graph.blockActionRequested.connect(self.block_action)
        self.graph.blockReordered.connect(self.reorder_block)
        self.graph.presetRequested.connect(self.apply_preset)

        self.accuracy_panel = AccuracyPanel()
        self.accuracy_panel.bnModeChanged.connect(self.set_bn_mode)
        self.cards = self.accuracy_panel.cards
        self.plan_panel = PlanPanel()
        self.plan_panel.planTextEntered.connect(self.apply_plan_text)
        self.plan_panel.edit.escapePressed.connect(
            lambda: self.plan_panel.set_plan_text(str(self._plan) if self._plan else ""))

        bottom = QWidget()
        bl = QHBoxLayout(bottom)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.setSpacing(8)
        bl.addWidget(self.accuracy_panel, 3)
        bl.addWidget(self.plan_panel, 2)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.graph)
        self.splitter.addWidget(bottom)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)
        ev.addWidget(self.splitter, 1)
        self.explore_tab = explore
        self.tabs.addTab(explore, "Explore")
        self.tabs.setTabToolTip(0, "Click blocks of the unraveled network and watch CT vs ST accuracy")

        self.train_tab = QWidget()
        QVBoxLayout(self.train_tab).setContentsMargins(0, 0, 0, 0)
        self.tabs.addTab(self.train_tab, "Train")
        self.tabs.setTabToolTip(1, "Train CT and ST side by side and watch them live")

        self.analyses_tab = QWidget()
        self.analyses_tab.setObjectName("analysesTab")
        QVBoxLayout(self.analyses_tab).setContentsMargins(0, 0, 0, 0)
        self.tabs.addTab(self.analyses_tab, "Analyses")
        self.tabs.setTabToolTip(2, "The paper's experiments on the loaded models: loafing, all sub-nets, "
                                   "robustness, block importance, method comparison")

        # docks: help (hidden until asked for) and the edit history
        self.help_browser = HelpBrowser()
        self.help_dock = QDockWidget("Help: the ideas in plain words", self)
        self.help_dock.setObjectName("helpDock")
        self.help_dock.setWidget(self.help_browser)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.help_dock)
        self.help_dock.hide()
        self.history_view = QUndoView(self.undo_stack)
        self.history_view.setEmptyLabel("loaded plan")
        self.history_view.setToolTip("Every edit of the plan; click an entry to go back to it")
        self.history_dock = QDockWidget("Edit history", self)
        self.history_dock.setObjectName("historyDock")
        self.history_dock.setWidget(self.history_view)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.history_dock)
        self.history_dock.hide()

        sb = self.statusBar()
        self.busy_label = QLabel("")
        self.busy_label.setToolTip("The accuracy worker is evaluating the current plan")
        self.model_label = QLabel("no model")
        self.model_label.setToolTip("Architecture and data set of the loaded models")
        sb.addPermanentWidget(self.busy_label)
        sb.addPermanentWidget(self.model_label)

    def _action(self, text: str, tip: str, slot: Callable[..., Any], shortcut: Any = None,
                checkable: bool = False) -> QAction:
        act = QAction(text, self)
        act.setToolTip(tip)
        act.setStatusTip(tip)
        if shortcut is not None:
            if isinstance(shortcut, (list, tuple)):
                act.setShortcuts([QKeySequence(s) for s in shortcut])
            else:
                act.setShortcut(QKeySequence(shortcut))
        act.setCheckable(checkable)
        act.triggered.connect(slot)
        return act

    def _build_actions(self) -> None:
        A = self._action
        self.act_open_ct = A("Open run folder into &CT slot…", "Load a run folder (model.safetensors + meta.json) "
                             "as the CT model", lambda: self.open_dialog("ct", folder=True), "Ctrl+O")
        self.act_open_st = A("Open run folder into &ST slot…", "Load a run folder as the ST model",
                             lambda: self.open_dialog("st", folder=True), "Ctrl+Shift+O")
        self.act_open_file_ct = A("Weights file into CT slot…", "Load a .safetensors (or a plain .pt/.pth "
                                  "state_dict) as the CT model", lambda: self.open_dialog("ct", folder=False))
        self.act_open_file_st = A("Weights file into ST slot…", "Load a .safetensors (or a plain .pt/.pth "
                                  "state_dict) as the ST model", lambda: self.open_dialog("st", folder=False))
        self.act_defaults = A("Load bundled demo models", "Load the bundled resnet20 digits checkpoints "
                              "(CT and ST, 30 epochs)", self.load_defaults)
        self.act_save = A("&Save models…", "Save the loaded model(s) as run folders (safetensors + meta.json)",
                          self.save_dialog, QKeySequence.StandardKey.Save)
        self.act_onnx = {
            slot: A(f"{SLOT_TITLES[slot]} model…", f"Export the current sub-network of the {SLOT_TITLES[slot]} "
                    "model to ONNX and verify it with onnxruntime", lambda _=False, s=slot: self.export_onnx(s))
            for slot in SLOTS
        }
        self.act_export_plot = A("Export training plot (PNG/SVG)…", "Save the training plots as an image",
                                 self.export_plot_dialog)
        self.act_export_csv = A("Export training data (CSV)…", "Save every training curve as CSV",
                                self.export_csv_dialog)
        self.act_open_report = A("Open analysis report…", "Show a saved analysis report (<analysis>.json from the "
                                 "Analyses tab or python -m st_app analyze) in the Analyses tab",
                                 self._open_report_dialog)
        self.act_quit = A("&Quit", "Close ST Lab", self.close, QKeySequence.StandardKey.Quit)

        self.act_undo = self.undo_stack.createUndoAction(self, "&Undo")
        self.act_undo.setShortcuts([QKeySequence(QKeySequence.StandardKey.Undo)])
        self.act_undo.setToolTip("Undo the last edit of the plan (Ctrl+Z)")
        self.act_redo = self.undo_stack.createRedoAction(self, "&Redo")
        self.act_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.act_redo.setToolTip("Redo the edit just undone (Ctrl+Shift+Z)")
        self.act_full = A("Full network", "Every block on, in network order", lambda: self.apply_preset("full"))
        self.act_random = A("Random ordered sub-net", "Sample an ordered sub-network the way ST does in training: "
                            "each stage keeps its first 1..n blocks", lambda: self.apply_preset("random"), "Ctrl+R")
        self.act_smallest = A("Smallest sub-net", "Keep only the first block of each stage",
                              lambda: self.apply_preset("smallest"))
        self.act_copy_plan = A("Copy plan text", "Copy the current plan (e.g. 0,1|3,4,5|6) to the clipboard",
                               self.copy_plan, "Ctrl+Shift+C")
        self.block_actions: dict[str, QAction] = {}
        for name, text, key, tip in (
            ("toggle", "Turn selected block on/off", "Space", "Turn the selected block's branch off or on"),
            ("delete", "Delete selected block", "Delete", "Drop the selected block's branch"),
            ("restore", "Restore selected block", "Insert", "Put the selected block back"),
            ("move_left", "Move selected block left", "Ctrl+Left", "Run the selected block one place earlier"),
            ("move_right", "Move selected block right", "Ctrl+Right", "Run the selected block one place later"),
        ):
            act = A(text, tip + " (select a block by clicking it or with ←/→ in the graph)",
                    lambda _=False, n=name: self._current_block_action(n), key)
            act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.graph.addAction(act)
            self.block_actions[name] = act

        self.act_zoom_in = A("Zoom in", "Enlarge the block graph (Ctrl+wheel)", self.graph.zoom_in,
                             QKeySequence.StandardKey.ZoomIn)
        self.act_zoom_out = A("Zoom out", "Shrink the block graph (Ctrl+wheel)", self.graph.zoom_out,
                              QKeySequence.StandardKey.ZoomOut)
        self.act_fit = A("Fit to view", "Show the whole network", self.graph.fit, "Ctrl+0")
        self.act_presentation = A("Presentation mode", "Full screen, larger fonts and lines, high contrast "
                                  "(Esc or F11 to leave)", self.set_presentation, "F11", checkable=True)
        self.act_leave_presentation = A("Leave presentation mode", "Back to the normal window",
                                        lambda: self.set_presentation(False), "Esc")
        self.act_leave_presentation.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.act_leave_presentation.setEnabled(False)
        self.addAction(self.act_leave_presentation)
        self.act_demo = A("Loafing in one minute (guided demo)", f"Train CT and ST for {DEMO_EPOCHS} epochs on "
                          "digits, then compare their smallest sub-networks, in presentation mode", self.start_demo)
        self.act_help = A("Explain ST Lab", "Open the plain-words explanation panel", self.show_help, "F1")
        self.act_paper = A("The paper on arXiv", f"Open {PAPER_URL}", lambda: QDesktopServices.openUrl(QUrl(PAPER_URL)))
        self.act_about = A("About ST Lab", "Version and reference", lambda: show_about(self))
        self.act_about_qt = A("About Qt", "Qt version and licence", QApplication.aboutQt)
        self.act_load_trained = A("Load last trained runs", "Load the runs the Train tab just finished into "
                                  "the CT and ST slots", self.load_last_runs)

    def _build_menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.setToolTipsVisible(True)
        m.addAction(self.act_open_ct)
        m.addAction(self.act_open_st)
        files = m.addMenu("Open weights file")
        files.setToolTipsVisible(True)
        files.addAction(self.act_open_file_ct)
        files.addAction(self.act_open_file_st)
        self.recent_menu = m.addMenu("Open recent")
        self.recent_menu.setToolTipsVisible(True)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        m.addAction(self.act_defaults)
        m.addAction(self.act_load_trained)
        m.addSeparator()
        m.addAction(self.act_save)
        m.addSeparator()
        onnx = m.addMenu("Export current sub-net to ONNX")
        onnx.setToolTipsVisible(True)
        for act in self.act_onnx.values():
            onnx.addAction(act)
        m.addAction(self.act_export_plot)
        m.addAction(self.act_export_csv)
        m.addSeparator()
        m.addAction(self.act_open_report)
        m.addSeparator()
        m.addAction(self.act_quit)

        e = mb.addMenu("&Edit")
        e.setToolTipsVisible(True)
        e.addAction(self.act_undo)
        e.addAction(self.act_redo)
        e.addSeparator()
        for act in (self.act_full, self.act_random, self.act_smallest):
            e.addAction(act)
        e.addSeparator()
        for act in self.block_actions.values():
            e.addAction(act)
        e.addSeparator()
        e.addAction(self.act_copy_plan)

        v = mb.addMenu("&View")
        v.setToolTipsVisible(True)
        for act in (self.act_zoom_in, self.act_zoom_out, self.act_fit):
            v.addAction(act)
        v.addSeparator()
        v.addAction(self.act_presentation)
        v.addAction(self.act_demo)
        v.addSeparator()
        hist = self.history_dock.toggleViewAction()
        hist.setToolTip("Show or hide the list of edits (click one to go back to it)")
        v.addAction(hist)
        helpdock = self.help_dock.toggleViewAction()
        helpdock.setToolTip("Show or hide the explanation panel")
        v.addAction(helpdock)

        h = mb.addMenu("&Help")
        h.setToolTipsVisible(True)
        h.addAction(self.act_help)
        h.addAction(self.act_demo)
        h.addAction(self.act_paper)
        h.addSeparator()
        h.addAction(self.act_about)
        h.addAction(self.act_about_qt)

    def _build_toolbar(self) -> None:
        tb = QToolBar("Sub-networks")
        tb.setObjectName("mainToolbar")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        tb.setMovable(False)
        tb.toggleViewAction().setToolTip("Show or hide the toolbar")
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, tb)
        for act in (self.act_full, self.act_random, self.act_smallest):
            tb.addAction(act)
        tb.addSeparator()
        # fixed labels here (the Edit menu's entries name the edit, e.g. "Undo Turn block 4 off")
        self.tb_undo = self._action("Undo", "Undo the last edit of the plan (Ctrl+Z)", self.undo_stack.undo)
        self.tb_redo = self._action("Redo", "Redo the edit just undone (Ctrl+Shift+Z)", self.undo_stack.redo)
        self.tb_undo.setEnabled(False)
        self.tb_redo.setEnabled(False)
        self.undo_stack.canUndoChanged.connect(self.tb_undo.setEnabled)
        self.undo_stack.canRedoChanged.connect(self.tb_redo.setEnabled)
        tb.addAction(self.tb_undo)
        tb.addAction(self.tb_redo)
        tb.addSeparator()
        tb.addAction(self.act_zoom_out)
        tb.addAction(self.act_zoom_in)
        tb.addAction(self.act_fit)
        tb.addSeparator()
        colour_label = QLabel(" Colour blocks: ")
        colour_label.setToolTip("What the block colours show")
        tb.addWidget(colour_label)
        self.colour_box = QComboBox()
        self.colour_box.setObjectName("colourMode")
        self.colour_box.addItem("by stage", "stage")
        self.colour_box.addItem("importance in CT", "ct")
        self.colour_box.addItem("importance in ST", "st")
        self.colour_box.setToolTip("Colour each block by the accuracy the CT or ST model loses when that block "
                                   "alone is deleted (paper figure 6a); computed on first use")
        self.colour_box.currentIndexChanged.connect(lambda _i: self.set_colour_mode(self.colour_box.currentData()))
        tb.addWidget(self.colour_box)
        tb.addSeparator()
        tb.addAction(self.act_presentation)
        tb.addAction(self.act_help)
        for button in tb.findChildren(QToolButton):
            if not button.toolTip():
                button.setToolTip("Show more toolbar buttons")
        self.toolbar = tb

    # =================================================================== startup
    def _finish_startup(self, paths: dict[str, Any]) -> None:
        if self._closing:
            return
        self._build_training_panel()
        self._build_analyses_panel()
        loaded = 0
        for slot, path in paths.items():
            if self.open_checkpoint(path, slot, remember=False):
                loaded += 1
        if not loaded:
            self.graph.set_message("No model loaded: File → Open run folder…, drop a run folder here,\n"
                                   "or train one in the Train tab.")
            self.show_status("No model loaded yet.")
        elif self._initial_plan:
            self.apply_plan_text(self._initial_plan)
        if loaded:
            self.show_status("Click a block to turn it off or on; right-click for more; Ctrl+Z undoes.", timeout=0)
        self.modelsLoaded.emit()

    def _build_training_panel(self) -> None:
        if self.training is not None or not self._enable_training:
            return
        lay = self.train_tab.layout()
        try:
            from .training_panel import TrainingPanel

            panel = TrainingPanel(parent=None)
        except Exception as exc:  # noqa: BLE001 - the explorer must open without it
            self._training_error = f"{type(exc).__name__}: {exc}"
            note = QLabel(f"The training panel could not be loaded ({self._training_error}).")
            note.setWordWrap(True)
            note.setAlignment(Qt.AlignmentFlag.AlignCenter)
            note.setToolTip(self._training_error)
            lay.addWidget(note)
            self._update_actions()
            return
        self.training = panel
        lay.addWidget(panel)
        panel.runsFinished.connect(self._on_runs_finished)
        panel.errorOccurred.connect(self._on_training_error)
        if self._plan is not None:
            self._send_probe_plan()
        if self._presentation:
            panel.set_presentation(True)
        self._update_actions()

    def _build_analyses_panel(self) -> None:
        if self.analyses is not None:
            return
        lay = self.analyses_tab.layout()
        try:
            from .analyses import AnalysesPanel

            panel = AnalysesPanel(self.settings)
        except Exception as exc:  # noqa: BLE001 - the explorer must open without it
            note = QLabel(f"The analyses could not be loaded ({type(exc).__name__}: {exc}).")
            note.setWordWrap(True)
            note.setAlignment(Qt.AlignmentFlag.AlignCenter)
            lay.addWidget(note)
            return
        self.analyses = panel
        lay.addWidget(panel)
        panel.statusMessage.connect(lambda text, error: self.show_status(text, error=error))
        panel.reportReady.connect(self._on_analysis_report)
        panel.showImportance.connect(self._show_importance_from_page)
        panel.openRuns.connect(self._open_runs)
        panel.planChosen.connect(self._open_plan_from_analysis)
        self._update_analyses_pair()
        if self._plan is not None:
            panel.set_current_plan(str(self._plan))

    def _update_analyses_pair(self) -> None:
        if self.analyses is None:
            return
        from .analyses import ModelPair

        pair = ModelPair.from_slots(self._slots)
        if self._importance is not None and self._importance.get("pair") != pair.key:
            self._importance = None  # other models: the colours no longer describe them
            if self.graph.importance is not None:
                self.graph.set_importance(None)
        self.analyses.set_pair(pair)
        if self._colour_mode != "stage":
            self.set_colour_mode(self._colour_mode)

    def _open_report_dialog(self) -> None:
        if self.analyses is None:
            self.show_status("The Analyses tab is not ready yet.", error=True)
            return
        self.tabs.setCurrentWidget(self.analyses_tab)
        self.analyses.open_report_dialog()

    def _open_plan_from_analysis(self, text: str) -> None:
        if self.apply_plan_text(text):
            self.tabs.setCurrentWidget(self.explore_tab)

    def _open_runs(self, runs: dict) -> None:
        for slot in SLOTS:
            if runs.get(slot):
                self.open_checkpoint(runs[slot], slot)
        self.tabs.setCurrentWidget(self.explore_tab)

    # ======================================================== block importance
    def _on_analysis_report(self, name: str, report: dict) -> None:
        if name not in ("importance", "robustness") or "importance" not in report or self.analyses is None:
            return
        key = self.analyses.job_pair.get(name)
        if key == self.analyses.pair.key:
            self._importance = {"pair": key, "report": report}
            if self._colour_mode != "stage":
                self._apply_importance()
        elif self._colour_mode != "stage" and self._importance is None:
            self.set_colour_mode(self._colour_mode)  # the models changed while it ran: measure again

    def _show_importance_from_page(self, slot: str) -> None:
        self.set_colour_mode(slot)
        self.tabs.setCurrentWidget(self.explore_tab)

    def set_colour_mode(self, mode: str) -> bool:
        """Colour the graph's blocks by ``stage`` (normal) or by the ``ct`` / ``st`` model's importance.

        Importance is the accuracy lost when a block alone is deleted; without a result for the
        loaded models yet, the (quick) block-importance analysis runs first, with the Explore
        tab's BN setting.
        """
        if mode not in ("stage", "ct", "st"):
            raise ValueError(f"unknown colour mode {mode!r}")
        self._colour_mode = mode
        i = self.colour_box.findData(mode)
        if i >= 0 and self.colour_box.currentIndex() != i:
            self.colour_box.blockSignals(True)
            self.colour_box.setCurrentIndex(i)
            self.colour_box.blockSignals(False)
        if mode == "stage":
            if self.graph.importance is not None:
                self.graph.set_importance(None)
            return True
        if self._importance is not None:
            self._apply_importance()
            return True
        if self.analyses is None or self.analyses.pair.problem:
            self.show_status("Block importance needs a CT and an ST model with test data.", error=True)
            return False
        if self.analyses.running == "importance":
            return True  # its result will be applied when it arrives
        page = self.analyses.page("importance")
        page.set_bn_mode(self._bn)
        if not self.analyses.run("importance"):
            return False
        self.show_status("Measuring block importance (each block deleted in turn)…", timeout=0)
        return True

    def _apply_importance(self) -> None:
        if self._importance is None or self._colour_mode == "stage" or self._info is None:
            return
        report = self._importance["report"]
        drops = report["importance"].get(self._colour_mode)
        if drops is None or len(drops) != self._info.layout.num_blocks:
            return
        top = max([d for values in report["importance"].values() for d in values] + [0.0])
        title = (f"{SLOT_TITLES[self._colour_mode]}: accuracy lost when the block alone is deleted "
                 f"(BN {report['bn']}, {report['n_images']} test images)")
        self.graph.set_importance(drops, title, scale_max=top)
        self.show_status(f"Blocks coloured by importance in the {SLOT_TITLES[self._colour_mode]} model.")

    # ================================================================== settings
    def _restore_settings(self) -> None:
        s = self.settings
        geo = s.value("window/geometry")
        if isinstance(geo, (QByteArray, bytes)) and not self.restoreGeometry(QByteArray(geo)):
            geo = None
        if not geo:
            screen = QGuiApplication.primaryScreen()
            avail = screen.availableGeometry() if screen is not None else None
            w, h = 1440, 900
            if avail is not None:
                w, h = min(w, int(avail.width() * 0.92)), min(h, int(avail.height() * 0.92))
            self.resize(w, h)
        state = s.value("window/state")
        if isinstance(state, (QByteArray, bytes)):
            self.restoreState(QByteArray(state))
        split = s.value("window/splitter")
        if isinstance(split, (QByteArray, bytes)):
            self.splitter.restoreState(QByteArray(split))
        else:
            self.splitter.setSizes([470, 400])
        bn = s.value("explore/bn", "main")
        if bn in ("main", "recalibrate"):
            self._bn = str(bn)
            self.accuracy_panel.set_bn_mode(self._bn)

    def _save_settings(self) -> None:
        s = self.settings
        if not self._presentation:
            s.setValue("window/geometry", self.saveGeometry())
            s.setValue("window/state", self.saveState())
        s.setValue("window/splitter", self.splitter.saveState())
        s.setValue("explore/bn", self._bn)
        s.sync()

    def recent_files(self) -> list[str]:
        value = self.settings.value("files/recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or []) if v]

    def _add_recent(self, path: Path) -> None:
        p = str(Path(path).expanduser().resolve())
        items = [x for x in self.recent_files() if x != p]
        items.insert(0, p)
        self.settings.setValue("files/recent", items[:MAX_RECENT])
        self.settings.setValue("files/lastDir", str(Path(p).parent))

    def _last_dir(self) -> str:
        return str(self.settings.value("files/lastDir", str(Path.home())))

    def _fill_recent_menu(self) -> None:
        menu = self.recent_menu
        menu.clear()
        items = self.recent_files()
        if not items:
            act = menu.addAction("(nothing opened yet)")
            act.setEnabled(False)
            return
        for p in items:
            act = menu.addAction(p)
            act.setToolTip(f"Open {p} (into the slot its training method suggests)")
            act.triggered.connect(lambda _=False, path=p: self.open_checkpoint(path))
        menu.addSeparator()
        clear = menu.addAction("Clear list")
        clear.setToolTip("Forget the recently opened checkpoints")
        clear.triggered.connect(lambda: self.settings.setValue("files/recent", []))

    # ================================================================== loading
    def open_dialog(self, slot: str, folder: bool = True) -> bool:
        if folder:
            path = QFileDialog.getExistingDirectory(self, f"Open run folder into the {SLOT_TITLES[slot]} slot",
                                                    self._last_dir())
        else:
            path, _ = QFileDialog.getOpenFileName(
                self, f"Open weights into the {SLOT_TITLES[slot]} slot", self._last_dir(),
                "Checkpoints (*.safetensors *.pt *.pth *.json);;All files (*)")
        if not path:
            return False
        return self.open_checkpoint(path, slot)

    def load_defaults(self) -> None:
        missing = [str(p) for p in DEFAULT_CHECKPOINTS.values() if not (p / "model.safetensors").exists()]
        if missing:
            self._error("Bundled models missing", "The bundled checkpoints are not installed:\n" + "\n".join(missing))
            return
        for slot, path in DEFAULT_CHECKPOINTS.items():
            self.open_checkpoint(path, slot, remember=False)

    def open_checkpoint(self, path: str | Path, slot: str | None = None, *, remember: bool = True,
                        avoid: str | None = None) -> bool:
        """Load a run folder or weights file into ``slot`` (None: chosen by its training method).

        Any failure shows one error dialog and leaves the current state untouched.
        """
        path = Path(path).expanduser()
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            from st_app.core.checkpoint import load_checkpoint

            ck = load_checkpoint(path)
        except Exception as exc:  # noqa: BLE001 - CheckpointError and anything unexpected alike
            QApplication.restoreOverrideCursor()
            self._error("Cannot open checkpoint", str(exc) or type(exc).__name__)
            return False
        try:
            if slot is None:
                slot = self._auto_slot(ck, avoid)
            self._install(slot, ck)
        except Exception as exc:  # noqa: BLE001
            QApplication.restoreOverrideCursor()
            self._error("Cannot use checkpoint", f"{path}: {exc}")
            return False
        QApplication.restoreOverrideCursor()
        if remember:
            self._add_recent(path)
        self.show_status(f"Loaded {path} into the {SLOT_TITLES[slot]} slot.")
        return True

    @staticmethod
    def _auto_slot(ck: Any, avoid: str | None = None) -> str:
        meta = ck.meta
        method = str((meta.get("config") or {}).get("method") or (meta.get("method") or {}).get("name") or "")
        slot = "ct" if method.lower() in ("ct", "") else "st"
        if avoid == slot:
            slot = "st" if slot == "ct" else "ct"
        return slot

    def _dataset_for(self, ck: Any) -> tuple[Any | None, str | None]:
        meta = ck.meta
        cfg = meta.get("config") or {}
        name = cfg.get("dataset") or (meta.get("dataset") or {}).get("name")
        if not name:
            return None, "no data set is recorded in this checkpoint"
        key = (name, cfg.get("data_dir"), cfg.get("image_size"))
        data = self._datasets.get(key)
        if data is None:
            try:
                from st_app.core.data import load_dataset

                data = load_dataset(name, cfg.get("data_dir"), image_size=cfg.get("image_size"))
            except Exception as exc:  # noqa: BLE001
                return None, f"data set {name!r} is not available here: {exc}"
            self._datasets[key] = data
        c = ck.model.config
        if (data.num_classes, data.in_channels) != (c.num_classes, c.in_channels):
            return None, (f"data set {name!r} has {data.in_channels} channels / {data.num_classes} classes, "
                          f"the model {c.in_channels} / {c.num_classes}")
        return data, None

    def _install(self, slot: str, ck: Any) -> None:
        if slot not in SLOTS:
            raise ValueError(f"unknown slot {slot!r}")
        info = NetworkInfo.from_model(ck.model)
        data, data_error = self._dataset_for(ck)
        layout_changed = self._info is None or info.layout != self._info.layout or info != self._info
        other = "st" if slot == "ct" else "ct"
        if other in self._slots and NetworkInfo.from_model(self._slots[other].model).layout != info.layout:
            self._clear_slot(other)
            self.show_status(f"The {SLOT_TITLES[other]} slot was cleared: its network has a different layout.")
        self._gen += 1
        state = SlotState(ck, f"{slot}#{self._gen}", data, data_error)
        self._slots[slot] = state
        card = self.cards[slot]
        meta = ck.meta
        cfg = meta.get("config") or {}
        bits = [Path(ck.path).name]
        if state.method:
            bits.append(state.method.upper())
        if meta.get("epoch") is not None:
            bits.append(f"{meta['epoch']} epochs")
        card.set_model(" · ".join(bits), f"{ck.path}\n{ck.model.config.arch} on {cfg.get('dataset', '?')}")
        if data is None:
            card.set_unavailable(data_error or "no test data")
            self.accuracy.set_model(ModelPayload(slot, state.key, ck.model))
        else:
            self.accuracy.set_model(ModelPayload(slot, state.key, ck.model, data.test_x, data.test_y, data.train_x))
        if layout_changed:
            self._info = info
            self.undo_stack.clear()
            self.accuracy.clear_flops()
            self._full_params = int(ck.model.plan_parameters(None))
            self._full_flops = None
            self.graph.set_network(info)
            self._show_plan(info.layout.full_plan())
        else:
            self._request_accuracy()
        self._update_title()
        self._update_actions()
        self._update_analyses_pair()

    def _clear_slot(self, slot: str) -> None:
        self._slots.pop(slot, None)
        self.accuracy.clear_model(slot)
        self.cards[slot].clear()
        self.accuracy_panel.update_gap()
        self._update_analyses_pair()

    def _update_title(self) -> None:
        if not self._slots:
            self.setWindowTitle("ST Lab")
            self.model_label.setText("no model")
            return
        any_state = next(iter(self._slots.values()))
        cfg = any_state.checkpoint.meta.get("config") or {}
        arch = any_state.model.config.arch
        ds = cfg.get("dataset") or "unknown data"
        self.setWindowTitle(f"ST Lab — {arch} on {ds}")
        n_test = len(any_state.data.test_y) if any_state.data is not None else 0
        self.model_label.setText(f"{arch} · {ds}" + (f" · {n_test} test images" if n_test else ""))

    def load_last_runs(self) -> None:
        runs = self._last_runs
        for slot in SLOTS:
            if slot in runs:
                self.open_checkpoint(runs[slot], slot)

    # ============================================================ drag and drop
    @staticmethod
    def _dropped_paths(event: Any) -> list[Path]:
        mime = event.mimeData()
        if mime is None or not mime.hasUrls():
            return []
        out = []
        for url in mime.urls():
            if url.isLocalFile():
                p = Path(url.toLocalFile())
                if _is_checkpoint_path(p):
                    out.append(p)
        return out

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._dropped_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: Any) -> None:
        if self._dropped_paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = self._dropped_paths(event)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        used: str | None = None
        for p in paths[:2]:
            before = {s: st.key for s, st in self._slots.items()}
            if self.open_checkpoint(p, None, avoid=used):
                changed = [s for s, st in self._slots.items() if before.get(s) != st.key]
                used = changed[0] if changed else used

    # ==================================================================== saving
    def save_dialog(self) -> bool:
        if not self._slots:
            self.show_status("Nothing to save: no model is loaded.", error=True)
            return False
        folder = QFileDialog.getExistingDirectory(self, "Save models into folder", self._last_dir())
        if not folder:
            return False
        return bool(self.save_models(folder))

    def save_models(self, folder: str | Path) -> list[Path]:
        """Write each loaded slot as a run folder ``<folder>/<run name>`` (safetensors + meta.json)."""
        from st_app.core.checkpoint import save_checkpoint

        folder = Path(folder)
        written: list[Path] = []
        names = {slot: Path(st.checkpoint.path).stem if Path(st.checkpoint.path).is_file()
                 else Path(st.checkpoint.path).name for slot, st in self._slots.items()}
        if len(set(names.values())) < len(names):
            names = {slot: f"{n}-{slot}" for slot, n in names.items()}
        try:
            for slot, state in self._slots.items():
                out = folder / names[slot]
                if (out / "model.safetensors").exists() and out.resolve() != Path(state.checkpoint.path).resolve():
                    answer = QMessageBox.question(self, "Overwrite?", f"{out} already holds a model. Overwrite it?")
                    if answer != QMessageBox.StandardButton.Yes:
                        continue
                meta = dict(state.checkpoint.meta)
                meta["st_lab"] = {"slot": slot, "plan": str(self._plan) if self._plan else None,
                                  "saved_from": str(state.checkpoint.path), "version": __version__}
                save_checkpoint(out, state.model, meta)
                written.append(out)
        except Exception as exc:  # noqa: BLE001
            self._error("Cannot save", str(exc))
            return written
        if written:
            self.settings.setValue("files/lastDir", str(folder))
            self.show_status("Saved " + ", ".join(str(p) for p in written))
        return written

    # ==================================================================== export
    def export_onnx(self, slot: str, path: str | Path | None = None) -> Any | None:
        """Export the current sub-net of ``slot`` to ONNX, verify it and report the check."""
        state = self._slots.get(slot)
        if state is None or self._plan is None:
            self.show_status(f"No model in the {SLOT_TITLES[slot]} slot to export.", error=True)
            return None
        if path is None:
            arch = state.model.config.arch
            suggestion = str(Path(self._last_dir()) / f"{arch}-{slot}-{_plan_slug(self._plan)}.onnx")
            path, _ = QFileDialog.getSaveFileName(self, "Export current sub-net to ONNX", suggestion,
                                                  "ONNX model (*.onnx)")
            if not path:
                return None
        path = Path(path)
        if path.suffix.lower() != ".onnx":
            path = path.with_suffix(".onnx")
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            from st_app.core.export import export_onnx, verify_onnx

            export_onnx(state.model, self._plan, path)
            images = state.data.test_x[:64] if state.data is not None else None
            report = verify_onnx(state.model, self._plan, path, images=images)
        except Exception as exc:  # noqa: BLE001 - ExportError and anything the exporters raise
            QApplication.restoreOverrideCursor()
            self._error("ONNX export failed", str(exc) or type(exc).__name__)
            return None
        QApplication.restoreOverrideCursor()
        self.settings.setValue("files/lastDir", str(path.parent))
        size_kb = path.stat().st_size / 1024
        summary = (f"Exported plan {self._plan} of the {SLOT_TITLES[slot]} model to {path} ({size_kb:.0f} KiB). "
                   f"Verified with onnxruntime on {report.n_images} images: max |Δ logits| = "
                   f"{report.max_abs_diff:.2e}, top-1 agreement {100 * report.top1_agreement:.1f} %, "
                   f"provider {report.provider}.")
        self.show_status(summary, timeout=15000)
        self._info_box("ONNX export verified", summary.replace(". ", ".\n\n", 1))
        return report

    def _training_or_warn(self) -> Any | None:
        if self.training is None:
            self.show_status("The training panel is not available" + (f": {self._training_error}"
                             if self._training_error else "."), error=True)
        return self.training

    def export_plot_dialog(self) -> None:
        panel = self._training_or_warn()
        if panel is None:
            return
        path, flt = QFileDialog.getSaveFileName(self, "Export training plot", str(Path(self._last_dir()) /
                                                "training.png"), "PNG image (*.png);;SVG drawing (*.svg)")
        if not path:
            return
        if Path(path).suffix.lower() not in (".png", ".svg"):
            path += ".svg" if "svg" in flt.lower() else ".png"
        try:
            panel.export_plots(path)
        except Exception as exc:  # noqa: BLE001
            self._error("Cannot export the plot", str(exc))
            return
        self.show_status(f"Saved the training plot to {path}")

    def export_csv_dialog(self) -> None:
        panel = self._training_or_warn()
        if panel is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export training data", str(Path(self._last_dir()) /
                                              "training.csv"), "CSV (*.csv)")
        if not path:
            return
        if not path.lower().endswith(".csv"):
            path += ".csv"
        try:
            panel.export_csv(path)
        except Exception as exc:  # noqa: BLE001
            self._error("Cannot export the data", str(exc))
            return
        self.show_status(f"Saved the training data to {path}")

    # ===================================================================== plans
    @property
    def plan(self) -> SubnetPlan | None:
        return self._plan

    def plan_text(self) -> str:
        return str(self._plan) if self._plan is not None else ""

    def _show_plan(self, plan: SubnetPlan) -> None:
        """Make ``plan`` current everywhere (called by undo commands and loads)."""
        self._plan = plan
        self.graph.set_plan(plan)
        self.plan_panel.set_plan_text(str(plan))
        model = next(iter(self._slots.values())).model if self._slots else None
        params = int(model.plan_parameters(plan)) if model is not None else 0
        self.plan_panel.set_stats(len(plan.blocks), plan.layout.num_blocks, params, self._full_params,
                                  len(plan.blocks), plan.paths_by_length())
        self._request_accuracy()
        if self.training is not None:
            self._probe_timer.start()
        self._update_actions()
        if self.analyses is not None:
            self.analyses.set_current_plan(str(plan))
        self.planChanged.emit(str(plan))

    def edit_plan(self, new: SubnetPlan, description: str) -> bool:
        """Apply ``new`` as one undoable edit."""
        if self._plan is None:
            return False
        if new == self._plan:
            self.show_status("That is already the current plan.")
            return False
        self.undo_stack.push(PlanEditCommand(self._show_plan, self._plan, new, description))
        self.show_status(f"{description}: plan {new}")
        return True

    def _try_edit(self, make: Callable[[SubnetPlan], SubnetPlan], description: str) -> bool:
        if self._plan is None:
            self.show_status("Load a model first.", error=True)
            return False
        try:
            new = make(self._plan)
        except ValueError as exc:
            self.show_status(f"Not possible: {exc}", error=True)
            return False
        return self.edit_plan(new, description)

    def toggle_block(self, block: int) -> bool:
        on = self._plan is not None and block in self._plan.blocks
        return self._try_edit(lambda p: p.toggle(block), f"Turn block {block} {'off' if on else 'on'}")

    def block_action(self, action: str, block: int) -> bool:
        self.graph.set_current_block(block)
        if action == "toggle":
            return self.toggle_block(block)
        if action == "delete":
            return self._try_edit(lambda p: p.delete(block), f"Delete block {block}")
        if action == "restore":
            return self._try_edit(lambda p: p.restore(block), f"Restore block {block}")
        if action in ("move_left", "move_right"):
            step = -1 if action == "move_left" else 1
            return self._try_edit(lambda p: p.move(block, step),
                                  f"Move block {block} {'left' if step < 0 else 'right'}")
        raise ValueError(f"unknown block action {action!r}")

    def _current_block_action(self, action: str) -> None:
        block = self.graph.current_block
        if block is None:
            self.show_status("Select a block first: click it, or press ←/→ in the graph.", error=True)
            return
        self.block_action(action, block)

    def reorder_block(self, block: int, index: int) -> bool:
        def make(p: SubnetPlan) -> SubnetPlan:
            s = p.layout.stage_of(block)
            if block not in p.stages[s]:
                raise ValueError(f"block {block} is off; turn it on before moving it")
            order = [b for b in p.stages[s] if b != block]
            order.insert(max(0, min(index, len(order))), block)
            stages = list(p.stages)
            stages[s] = tuple(order)
            return SubnetPlan(p.layout, tuple(stages))

        return self._try_edit(make, f"Move block {block} to position {index + 1}")

    def apply_preset(self, name: str) -> bool:
        if self._plan is None:
            self.show_status("Load a model first.", error=True)
            return False
        layout = self._plan.layout
        if name == "full":
            return self.edit_plan(layout.full_plan(), "Full network")
        if name == "smallest":
            return self.edit_plan(SubnetPlan.from_depths(layout, [1] * len(layout.stages)), "Smallest sub-net")
        if name == "random":
            plan = self._plan
            for _ in range(20):
                plan = SubnetPlan.sample(layout, self._rng)
                if plan != self._plan:
                    break
            return self.edit_plan(plan, "Random ordered sub-net")
        raise ValueError(f"unknown preset {name!r}")

    def apply_plan_text(self, text: str) -> bool:
        """Parse typed plan text; errors go inline under the field, never raise."""
        if self._plan is None:
            self.plan_panel.set_error("Load a model first.")
            return False
        try:
            new = SubnetPlan.parse(text, self._plan.layout)
        except ValueError as exc:
            self.plan_panel.set_error(str(exc))
            self.show_status(f"Invalid plan: {exc}", error=True)
            return False
        if new == self._plan:
            self.plan_panel.set_plan_text(str(new))
            return True
        self.edit_plan(new, f"Plan {new}")
        return True

    def copy_plan(self) -> None:
        if self._plan is not None:
            QGuiApplication.clipboard().setText(str(self._plan))
            self.show_status(f"Copied {self._plan}")

    # ================================================================== accuracy
    def set_bn_mode(self, mode: str) -> None:
        if mode not in ("main", "recalibrate") or mode == self._bn:
            return
        self._bn = mode
        self.accuracy_panel.set_bn_mode(mode)
        self.settings.setValue("explore/bn", mode)
        self._request_accuracy()
        if self._colour_mode != "stage" and self._importance is not None \
                and self._importance["report"].get("bn") != mode:
            self._importance = None  # the colours follow the BN setting the cards show
            self.set_colour_mode(self._colour_mode)

    @property
    def bn_mode(self) -> str:
        return self._bn

    def _request_accuracy(self) -> None:
        if self._plan is None or not self._slots:
            return
        for slot, state in self._slots.items():
            if state.data is not None:
                self.cards[slot].set_pending()
        flops = self.accuracy.cached_flops(self._plan)
        self.plan_panel.set_flops(flops, self._full_flops)
        self.accuracy.request(self._plan, self._bn)

    def _on_accuracy(self, res: AccuracyResult) -> None:
        if res.request_id != self.accuracy.current_request:
            return
        state = self._slots.get(res.slot)
        if state is None or state.key != res.model_key or res.plan != self._plan or res.bn != self._bn:
            return
        card = self.cards[res.slot]
        if card.final and not res.final and card.accuracy is not None:
            return
        card.set_accuracy(res.accuracy, res.final, res.detail, is_main=res.plan.is_full)
        self.accuracy_panel.update_gap()
        self.accuracyShown.emit(res.slot, res.final)
        if self._demo_active:
            self._update_demo_caption()

    def _on_model_ready(self, slot: str, key: str, main_acc: Any) -> None:
        state = self._slots.get(slot)
        if state is None or state.key != key:
            return
        state.main_accuracy = main_acc
        self.cards[slot].set_main_accuracy(main_acc)

    def _on_flops(self, plan: SubnetPlan, flops: int) -> None:
        if self._plan is None or plan.layout != self._plan.layout:
            return
        if plan.is_full:
            self._full_flops = flops
        current = flops if plan == self._plan else self.accuracy.cached_flops(self._plan)
        if current is not None:
            self.plan_panel.set_flops(current, self._full_flops)

    def _on_busy(self, busy: bool) -> None:
        self.busy_label.setText("evaluating…" if busy else "")

    def wait_for_accuracy(self) -> bool:
        """True when every slot with data shows the final accuracy of the current plan."""
        return all(self.cards[s].final and self.cards[s].accuracy is not None
                   for s, st in self._slots.items() if st.data is not None)

    # ================================================================ training
    def _send_probe_plan(self) -> None:
        if self.training is not None and self._plan is not None:
            try:
                self.training.set_probe_plan(str(self._plan))
            except Exception as exc:  # noqa: BLE001
                self.show_status(f"Training panel: {exc}", error=True)

    def _on_runs_finished(self, runs: dict) -> None:
        self._last_runs = {k: str(v) for k, v in (runs or {}).items()}
        self._update_actions()
        if not self._demo_active:
            if self._last_runs:
                self.show_status("Training finished: File → Load last trained runs puts them in the CT/ST slots.",
                                 timeout=0)
            return
        missing = [s for s in SLOTS if s not in self._last_runs]
        if missing:
            self._demo_active = False
            self._set_caption("The demo training did not finish (" + ", ".join(m.upper() for m in missing)
                              + " missing).")
            return
        for slot in SLOTS:
            self.open_checkpoint(self._last_runs[slot], slot)
        self.tabs.setCurrentWidget(self.explore_tab)
        self.set_bn_mode("main")
        self.apply_preset("smallest")
        self._demo_plan = self._plan
        self._update_demo_caption()

    def _on_training_error(self, message: str) -> None:
        self.show_status(f"Training: {message}", error=True)
        if self._demo_active and self.training is not None and not self.training.is_training():
            self._demo_active = False
            self._set_caption(f"The demo could not run: {message}")

    def start_demo(self) -> bool:
        """Guided demo: train CT and ST briefly, then compare their smallest sub-nets."""
        panel = self._training_or_warn()
        if panel is None:
            return False
        if panel.is_training():
            self.show_status("A training is already running; stop it first (Train tab).", error=True)
            return False
        self.set_presentation(True)
        self.tabs.setCurrentWidget(self.train_tab)
        self._demo_active = True
        self._demo_plan = None
        extra = {"out_root": str(self.demo_out_root)} if self.demo_out_root else {}
        ok = panel.start(methods=("ct", "st"), model="resnet20", dataset="digits", epochs=DEMO_EPOCHS, **extra)
        if not ok:
            self._demo_active = False
            return False
        self._set_caption(f"<b>Loafing in one minute.</b> Training a resnet20 with common training (CT) and with "
                          f"stimulative training (ST) side by side on handwritten digits for {DEMO_EPOCHS} epochs…")
        self.show_status("Guided demo: training CT and ST…", timeout=0)
        return True

    def _update_demo_caption(self) -> None:
        if self._demo_plan is None or self._plan != self._demo_plan:
            return
        ct, st = self.cards["ct"], self.cards["st"]
        if ct.accuracy is None or st.accuracy is None or not (ct.final and st.final):
            self._set_caption("<b>Loafing in one minute.</b> Both networks are trained. Now only the first block of "
                              "each stage runs (the smallest sub-network); measuring it inside each network…")
            return
        ct_main = f"{ct.main_accuracy:.1f} %" if ct.main_accuracy is not None else "?"
        st_main = f"{st.main_accuracy:.1f} %" if st.main_accuracy is not None else "?"
        better = st.accuracy - ct.accuracy
        verdict = (f"ST's sub-network is <b>{better:.1f} points better</b>: ST trained every sub-network to pull "
                   "its weight, while inside the CT network the sub-network <b>loafs</b>, relying on the blocks "
                   "that are now switched off." if better > 0 else
                   "This time CT's sub-network held up as well; loafing varies from run to run, and grows with "
                   "depth and training time. Try Random ordered sub-net a few times.")
        self._set_caption(
            f"<b>Loafing in one minute.</b> The full networks score CT {ct_main} and ST {st_main}. Keeping only "
            f"the first block of each stage ({self._plan}), the same sub-network scores "
            f"<b>CT {ct.accuracy:.1f} %</b> versus <b>ST {st.accuracy:.1f} %</b>. {verdict} "
            "<i>Click blocks to explore; click this note to hide it.</i>")
        self._demo_active = False

    def _set_caption(self, html: str) -> None:
        self.caption.setText(html)
        self.caption.show()

    # ============================================================== presentation
    def set_presentation(self, on: bool) -> None:
        on = bool(on)
        self.act_presentation.setChecked(on)
        if on == self._presentation:
            return
        self._presentation = on
        app = QApplication.instance()
        if on:
            app.setPalette(light_palette(high_contrast=True))
            self._was_maximized = self.isMaximized()
            self.showFullScreen()
        else:
            app.setPalette(light_palette())
            if self._was_maximized:
                self.showMaximized()
            else:
                self.showNormal()
        # Fonts: the style sheet's presentation rules, scoped to this window's own parts.
        self.setProperty("presentation", on)
        scope = [self, self.menuBar(), self.toolbar, self.tabs.tabBar(), self.explore_tab, self.analyses_tab,
                 self.statusBar(), self.help_dock, self.history_dock]
        seen: set[int] = set()
        for root in scope:
            for w in (root, *root.findChildren(QWidget)):
                if id(w) not in seen and (self.training is None or not self.training.isAncestorOf(w)):
                    seen.add(id(w))
                    repolish(w)
        self.act_leave_presentation.setEnabled(on)
        self.graph.set_presentation(on)
        self.plan_panel.paths.set_presentation(on)
        if self.analyses is not None:
            self.analyses.set_presentation(on)
        if self.training is not None:
            try:
                self.training.set_presentation(on)
            except Exception as exc:  # noqa: BLE001
                self.show_status(f"Training panel: {exc}", error=True)
        QTimer.singleShot(0, self.graph.fit)

    @property
    def presentation(self) -> bool:
        return self._presentation

    def show_help(self) -> None:
        self.help_dock.show()
        self.help_dock.raise_()

    # ==================================================================== misc
    def show_status(self, text: str, *, error: bool = False, timeout: int = 8000) -> None:
        sb = self.statusBar()
        if bool(sb.property("error")) != error:
            sb.setProperty("error", error)
            repolish(sb)
        sb.showMessage(("⚠ " if error else "") + text, timeout)

    def _error(self, title: str, message: str) -> None:
        self.show_status(message.splitlines()[0] if message else title, error=True)
        QMessageBox.critical(self, title, message)

    def _info_box(self, title: str, message: str) -> None:
        QMessageBox.information(self, title, message)

    def _update_actions(self) -> None:
        has_plan = self._plan is not None
        for act in (self.act_full, self.act_random, self.act_smallest, self.act_copy_plan, self.act_fit,
                    self.act_zoom_in, self.act_zoom_out, *self.block_actions.values()):
            act.setEnabled(has_plan)
        self.act_save.setEnabled(bool(self._slots))
        for slot, act in self.act_onnx.items():
            act.setEnabled(slot in self._slots)
        has_panel = self.training is not None
        self.act_export_plot.setEnabled(has_panel)
        self.act_export_csv.setEnabled(has_panel)
        self.act_demo.setEnabled(has_panel)
        self.act_load_trained.setEnabled(bool(self._last_runs))
        self.act_defaults.setEnabled(all((p / "model.safetensors").exists() for p in DEFAULT_CHECKPOINTS.values()))

    # ================================================================= closing
    def _shutdown_workers(self, timeout_ms: int = 1800) -> None:
        if self._closing and not self.accuracy.is_running:
            return
        self._closing = True
        t0 = time.perf_counter()
        self._probe_timer.stop()
        self.accuracy.stop()
        if self.training is not None:
            try:
                self.training.shutdown(2000)
            except Exception:  # noqa: BLE001, S110 - closing must never fail
                pass
        if self.analyses is not None:
            try:
                self.analyses.shutdown(1000)
            except Exception:  # noqa: BLE001, S110 - closing must never fail
                pass
        if self._importer is not None and not self._importer.wait(300):
            keep_until_finished(self._importer)  # still importing torch: must not be destroyed
        left = max(100, timeout_ms - int(1000 * (time.perf_counter() - t0)))
        self.accuracy.shutdown(left)

    def closeEvent(self, event: QCloseEvent) -> None:
        self._save_settings()
        self._shutdown_workers()
        super().closeEvent(event)


def _plan_slug(plan: SubnetPlan) -> str:
    if plan.is_full:
        return "full"
    return "_".join("-".join(str(b) for b in stage) or "none" for stage in plan.stages)[:80]
