"""The window's actions, menus and toolbar, declared as tables.

An action is one row of :data:`ACTIONS` (name, text, tip, shortcut, handler on the window);
menus and the toolbar list action names. Adding a command is one row here and, if it needs
one, a method on the window or one of its controllers.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence
from PySide6.QtWidgets import QApplication, QComboBox, QLabel, QMainWindow, QToolBar, QToolButton

from .file_ops import examples
from .help import PAPER_URL, show_about

__all__ = ["ACTIONS", "BLOCK_ACTIONS", "MENUS", "TOOLBAR", "build"]

SK = QKeySequence.StandardKey
DEMO_TIP = "Train CT and ST for a few epochs on digits, then compare their smallest sub-networks, in presentation mode"

# name, text, tip, shortcut(s), handler(window) -> callable
ACTIONS: list[tuple[str, str, str, Any, Any]] = [
    ("open_ct", "Open run folder into &CT slot…", "Load a run folder (model.safetensors + meta.json) as the CT model",
     "Ctrl+O", lambda w: lambda: w.files.open_dialog("ct", folder=True)),
    ("open_st", "Open run folder into &ST slot…", "Load a run folder as the ST model", "Ctrl+Shift+O",
     lambda w: lambda: w.files.open_dialog("st", folder=True)),
    ("open_file_ct", "Weights file into CT slot…", "Load a .safetensors (or a plain .pt/.pth state_dict) as the CT "
     "model", None, lambda w: lambda: w.files.open_dialog("ct", folder=False)),
    ("open_file_st", "Weights file into ST slot…", "Load a .safetensors (or a plain .pt/.pth state_dict) as the ST "
     "model", None, lambda w: lambda: w.files.open_dialog("st", folder=False)),
    ("defaults", "Load bundled demo models", "Load the bundled resnet20 digits checkpoints (CT and ST, 30 epochs)",
     None, lambda w: w.files.load_defaults),
    ("load_trained", "Load last trained runs", "Load the runs the Train tab just finished into the CT and ST slots",
     None, lambda w: w.files.load_last_runs),
    ("open_session", "&Open session…", "Open a saved session (.stlab, or a bundle .zip): models, plan, history, "
     "reports and curves", SK.Open, lambda w: w.files.open_session_dialog),
    ("save_session", "Save session…", "Save the models (by path and sha256), plan, undo history, BN and colour "
     "modes, reports and training curves as a .stlab file", SK.Save, lambda w: w.files.save_session_dialog),
    ("save_bundle", "Save session as bundle…", "One .zip holding the session and its checkpoints, to hand a lesson "
     "to a class", None, lambda w: w.files.save_bundle_dialog),
    ("save", "Save &models…", "Save the loaded model(s) as run folders (safetensors + meta.json)", "Ctrl+Alt+S",
     lambda w: w.files.save_dialog),
    ("onnx_ct", "CT model…", "Export the current sub-network of the CT model to ONNX and verify it with onnxruntime",
     None, lambda w: lambda: w.files.export_onnx("ct")),
    ("onnx_st", "ST model…", "Export the current sub-network of the ST model to ONNX and verify it with onnxruntime",
     None, lambda w: lambda: w.files.export_onnx("st")),
    ("export_plot", "Export training plot (PNG/SVG)…", "Save the training plots as an image", None,
     lambda w: w.files.export_plot_dialog),
    ("export_csv", "Export training data (CSV)…", "Save every training curve as CSV", None,
     lambda w: w.files.export_csv_dialog),
    ("open_report", "Open analysis report…", "Show a saved analysis report (<analysis>.json from the Analyses tab or "
     "python -m st_app analyze) in the Analyses tab", None, lambda w: w.open_report_dialog),
    ("quit", "&Quit", "Close ST Lab", SK.Quit, lambda w: w.close),
    ("full", "Full network", "Every block on, in network order", None, lambda w: lambda: w.apply_preset("full")),
    ("random", "Random ordered sub-net", "Sample an ordered sub-network the way ST does in training: each stage "
     "keeps its first 1..n blocks", "Ctrl+R", lambda w: lambda: w.apply_preset("random")),
    ("smallest", "Smallest sub-net", "Keep only the first block of each stage", None,
     lambda w: lambda: w.apply_preset("smallest")),
    ("copy_plan", "Copy plan text", "Copy the current plan (e.g. 0,1|3,4,5|6) to the clipboard", "Ctrl+Shift+C",
     lambda w: w.copy_plan),
    ("zoom_in", "Zoom in", "Enlarge the block graph (Ctrl+wheel)", SK.ZoomIn, lambda w: w.graph.zoom_in),
    ("zoom_out", "Zoom out", "Shrink the block graph (Ctrl+wheel)", SK.ZoomOut, lambda w: w.graph.zoom_out),
    ("fit", "Fit to view", "Show the whole network", "Ctrl+0", lambda w: w.graph.fit),
    ("presentation", "Presentation", "Presentation mode: full screen, larger fonts and lines, high contrast (Esc or "
     "F11 to leave)", "F11", lambda w: w.set_presentation),
    ("leave_presentation", "Leave presentation mode", "Back to the normal window", "Esc",
     lambda w: lambda: w.set_presentation(False)),
    ("demo", "Loafing in one minute (guided demo)", DEMO_TIP, None, lambda w: w.start_demo),
    ("help", "Explain", "Explain ST Lab: open the plain-words explanation panel (F1)", "F1", lambda w: w.show_help),
    ("paper", "The paper on arXiv", f"Open {PAPER_URL}", None,
     lambda w: lambda: QDesktopServices.openUrl(QUrl(PAPER_URL))),
    ("about", "About ST Lab", "Version and reference", None, lambda w: lambda: show_about(w)),
    ("about_qt", "About Qt", "Qt version and licence", None, lambda w: QApplication.aboutQt),
]

# name, text, key, tip: edits of the block selected in the graph
BLOCK_ACTIONS = [
    ("toggle", "Turn selected block on/off", "Space", "Turn the selected block's branch off or on"),
    ("delete", "Delete selected block", "Delete", "Drop the selected block's branch"),
    ("restore", "Restore selected block", "Insert", "Put the selected block back"),
    ("move_left", "Move selected block left", "Ctrl+Left", "Run the selected block one place earlier"),
    ("move_right", "Move selected block right", "Ctrl+Right", "Run the selected block one place later"),
]

# menu title -> entries: an action name, "-" (separator), "undo"/"redo", "@block" (block actions),
# "recent" (recent files), "examples" (the bundled CT/ST pairs), ("Submenu", [names]),
# "dock:help" / "dock:history" (toggle a dock)
MENUS: list[tuple[str, list[Any]]] = [
    ("&File", ["open_ct", "open_st", ("Open weights file", ["open_file_ct", "open_file_st"]), "recent",
               "examples", "defaults", "load_trained", "-", "open_session", "save_session", "save_bundle", "-", "save", "-",
               ("Export current sub-net to ONNX", ["onnx_ct", "onnx_st"]), "export_plot", "export_csv", "-",
               "open_report", "-", "quit"]),
    ("&Edit", ["undo", "redo", "-", "full", "random", "smallest", "-", "@block", "-", "copy_plan"]),
    ("&View", ["zoom_in", "zoom_out", "fit", "-", "presentation", "demo", "-", "dock:history", "dock:help"]),
    ("&Help", ["help", "demo", "paper", "-", "about", "about_qt"]),
]

TOOLBAR = ["full", "random", "smallest", "-", "tb_undo", "tb_redo", "-", "zoom_out", "zoom_in", "fit", "-",
           "colour", "-", "presentation", "help"]


def _make(win: QMainWindow, text: str, tip: str, shortcut: Any, slot: Any, checkable: bool = False) -> QAction:
    act = QAction(text, win)
    act.setToolTip(tip)
    act.setStatusTip(tip)
    if shortcut is not None:
        act.setShortcut(QKeySequence(shortcut))
    act.setCheckable(checkable)
    act.triggered.connect(slot)
    return act


def build(win: Any) -> tuple[dict[str, QAction], dict[str, QAction], dict[str, QAction]]:
    """Every action (also as ``win.act_<name>``), the menus and the toolbar.

    Returns the actions by name, the block actions and the ONNX export actions by slot.
    """
    acts: dict[str, QAction] = {}
    for name, text, tip, shortcut, handler in ACTIONS:
        acts[name] = _make(win, text, tip, shortcut, handler(win), checkable=(name == "presentation"))
        setattr(win, f"act_{name}", acts[name])
    win.act_onnx = {"ct": win.act_onnx_ct, "st": win.act_onnx_st}
    win.act_leave_presentation.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    win.act_leave_presentation.setEnabled(False)
    win.addAction(win.act_leave_presentation)
    stack = win.session.undo_stack
    win.act_undo = stack.createUndoAction(win, "&Undo")
    win.act_undo.setShortcuts([QKeySequence(SK.Undo)])
    win.act_undo.setToolTip("Undo the last edit of the plan (Ctrl+Z)")
    win.act_redo = stack.createRedoAction(win, "&Redo")
    win.act_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
    win.act_redo.setToolTip("Redo the edit just undone (Ctrl+Shift+Z)")
    # fixed labels on the toolbar (the Edit menu's entries name the edit, e.g. "Undo Turn block 4 off")
    win.act_tb_undo = _make(win, "Undo", "Undo the last edit of the plan (Ctrl+Z)", None, stack.undo)
    win.act_tb_redo = _make(win, "Redo", "Redo the edit just undone (Ctrl+Shift+Z)", None, stack.redo)
    win.act_tb_undo.setEnabled(False)
    win.act_tb_redo.setEnabled(False)
    stack.canUndoChanged.connect(win.act_tb_undo.setEnabled)
    stack.canRedoChanged.connect(win.act_tb_redo.setEnabled)
    win.block_actions = {}
    for name, text, key, tip in BLOCK_ACTIONS:
        act = _make(win, text, tip + " (select a block by clicking it or with ←/→ in the graph)",
                    key, lambda _=False, n=name: win.current_block_action(n))
        act.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        win.graph.addAction(act)
        win.block_actions[name] = act
    _menus(win)
    _toolbar(win)
    for name in ("undo", "redo", "tb_undo", "tb_redo"):
        acts[name] = getattr(win, f"act_{name}")
    return acts, dict(win.block_actions), dict(win.act_onnx)


def _fill(win: Any, menu: Any, entries: list[Any]) -> None:
    menu.setToolTipsVisible(True)
    for entry in entries:
        if entry == "-":
            menu.addSeparator()
        elif entry in ("undo", "redo"):
            menu.addAction(getattr(win, f"act_{entry}"))
        elif entry == "@block":
            for act in win.block_actions.values():
                menu.addAction(act)
        elif entry == "recent":
            win.recent_menu = menu.addMenu("Open recent")
            win.recent_menu.setToolTipsVisible(True)
            win.recent_menu.aboutToShow.connect(win.files.fill_recent_menu)
        elif entry == "examples":
            _examples_menu(win, menu.addMenu("Open &example"))
        elif isinstance(entry, str) and entry.startswith("dock:"):
            dock = win.help_dock if entry == "dock:help" else win.history_dock
            act = dock.toggleViewAction()
            act.setToolTip("Show or hide the explanation panel" if entry == "dock:help"
                           else "Show or hide the list of edits (click one to go back to it)")
            menu.addAction(act)
        elif isinstance(entry, tuple):
            _fill(win, menu.addMenu(entry[0]), entry[1])
        else:
            menu.addAction(getattr(win, f"act_{entry}"))


def _examples_menu(win: Any, menu: Any) -> None:
    """One action per bundled CT/ST pair (``win.act_examples[name]``): offline, one click."""
    menu.setToolTipsVisible(True)
    win.act_examples = {}
    for ex in examples():
        act = _make(win, f"{ex.title}: CT vs ST", f"Open the bundled {ex.title} pair in both slots: {ex.description}",
                    None, lambda _=False, n=ex.name: win.files.open_example(n))
        menu.addAction(act)
        win.act_examples[ex.name] = act
    if not win.act_examples:
        menu.addAction("(no bundled examples installed)").setEnabled(False)


def _menus(win: Any) -> None:
    for title, entries in MENUS:
        _fill(win, win.menuBar().addMenu(title), entries)


def _toolbar(win: Any) -> None:
    tb = QToolBar("Sub-networks")
    tb.setObjectName("mainToolbar")
    tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    tb.setMovable(False)
    tb.toggleViewAction().setToolTip("Show or hide the toolbar")
    win.addToolBar(Qt.ToolBarArea.TopToolBarArea, tb)
    for entry in TOOLBAR:
        if entry == "-":
            tb.addSeparator()
        elif entry == "colour":
            label = QLabel(" Colour: ")
            label.setToolTip("What the block colours show")
            tb.addWidget(label)
            box = QComboBox()
            box.setObjectName("colourMode")
            box.addItem("by stage", "stage")
            box.addItem("importance in CT", "ct")
            box.addItem("importance in ST", "st")
            box.setToolTip("Colour each block by the accuracy the CT or ST model loses when that block alone is "
                           "deleted (paper figure 6a); computed on first use")
            box.currentIndexChanged.connect(lambda _i, b=box: win.set_colour_mode(b.currentData()))
            tb.addWidget(box)
            win.colour_box = box
        else:
            tb.addAction(getattr(win, f"act_{entry}"))
    for button in tb.findChildren(QToolButton):
        if not button.toolTip():
            button.setToolTip("Show more toolbar buttons")
    win.toolbar = tb
