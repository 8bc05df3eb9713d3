"""The main window as a user drives it: clicks, menus, typed plans, files, export, closing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QComboBox,
    QFileDialog,
    QLineEdit,
    QMessageBox,
)

from st_app.gui import main_window as mw
from st_app.gui.app import XCB_PACKAGES, qt_platform_problem

ROOT = Path(__file__).resolve().parents[2]


def _click_block(qtbot, win, block: int, button=Qt.MouseButton.LeftButton) -> None:  # noqa: ANN001
    view = win.graph
    item = view.block_item(block)
    view.ensureVisible(item)
    pos = view.mapFromScene(item.scene_box_center())
    qtbot.mouseClick(view.viewport(), button, Qt.KeyboardModifier.NoModifier, pos)


def _record(monkeypatch, owner, name: str) -> list:  # noqa: ANN001
    calls: list = []

    def fake(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(args)
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(owner, name, staticmethod(fake))
    return calls


# ---------------------------------------------------------------------------- start-up
def test_window_opens_on_given_checkpoints(make_window, tiny_runs) -> None:
    win = make_window()
    # Qt appends the application's display name ("ST Lab") once; the title itself must not repeat it
    assert win.windowTitle() == "resnet20 on digits"
    assert win.plan_text() == "0,1,2|3,4,5|6,7,8"
    assert win.plan_panel.edit.text() == "0,1,2|3,4,5|6,7,8"
    for slot in ("ct", "st"):
        card = win.cards[slot]
        assert card.final and card.accuracy is not None
        assert card.value.text().endswith("%")
        assert tiny_runs[slot].name in card.subtitle.text()
    assert win.plan_panel.values["blocks"].text() == "9 of 9"
    assert win.plan_panel.values["paths"].text().startswith("2^9 = 512")
    assert len(win.graph.block_items()) == 9


def test_click_block_changes_plan_and_accuracy(qtbot, make_window) -> None:
    from st_app.core.evaluate import accuracy

    win = make_window()
    full_ct = win.cards["ct"].accuracy
    _click_block(qtbot, win, 1)
    assert win.plan_text() == "0,2|3,4,5|6,7,8"
    assert win.plan_panel.edit.text() == "0,2|3,4,5|6,7,8"
    assert not win.graph.block_item(1).active
    qtbot.waitUntil(win.wait_for_accuracy, timeout=10000)
    # the label shows exactly what the engine computes for this plan
    state = win.session.slot("ct")
    expected = accuracy(state.model, win.plan, state.data.test_x, state.data.test_y)
    assert win.cards["ct"].accuracy == pytest.approx(expected, abs=100 / len(state.data.test_y) + 1e-6)
    assert win.cards["ct"].value.text() == f"{win.cards['ct'].accuracy:.1f} %"
    assert win.plan_panel.values["blocks"].text() == "8 of 9"
    qtbot.waitUntil(lambda: "%" in win.plan_panel.values["flops"].text(), timeout=5000)
    assert full_ct is not None


def test_undo_redo_restore_the_plan(qtbot, make_window) -> None:
    win = make_window()
    _click_block(qtbot, win, 4)
    _click_block(qtbot, win, 7)
    assert win.plan_text() == "0,1,2|3,5|6,8"
    win.graph.setFocus()
    qtbot.keyClick(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert win.plan_text() == "0,1,2|3,5|6,7,8"
    win.act_undo.trigger()
    assert win.plan_text() == "0,1,2|3,4,5|6,7,8"
    assert win.graph.block_item(4).active
    qtbot.keyClick(win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert win.plan_text() == "0,1,2|3,5|6,7,8"
    qtbot.waitUntil(win.wait_for_accuracy, timeout=10000)
    # undo to a plan evaluated before: answered from the cache, at once
    win.act_undo.trigger()
    assert win.wait_for_accuracy()


def test_context_menu_move_right_permutes(qtbot, make_window) -> None:
    win = make_window()
    menu = win.graph.build_context_menu(0)
    actions = {a.text(): a for a in menu.actions()}
    assert not actions["Move left"].isEnabled()  # already first in its stage
    assert not actions["Restore"].isEnabled()  # already on
    actions["Move right"].trigger()
    assert win.plan_text() == "1,0,2|3,4,5|6,7,8"
    assert win.graph.block_item(0).moved
    # a shape-changing block cannot leave the front of its stage: disabled, with the reason
    menu = win.graph.build_context_menu(3)
    move = next(a for a in menu.actions() if a.text() == "Move right")
    assert not move.isEnabled() and "shape" in move.toolTip()
    win.act_undo.trigger()
    assert win.plan_text() == "0,1,2|3,4,5|6,7,8"


def test_keyboard_edits_on_the_selected_block(qtbot, make_window) -> None:
    win = make_window()
    view = win.graph
    view.setFocus()
    view.set_current_block(4)
    qtbot.keyClick(view, Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier)
    assert win.plan_text() == "0,1,2|3,5,4|6,7,8"
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert win.plan_text() == "0,1,2|3,5|6,7,8"
    qtbot.keyClick(view, Qt.Key.Key_Insert)
    assert win.plan_text() == "0,1,2|3,4,5|6,7,8"
    # an invalid edit is reported in the status bar, not raised
    view.set_current_block(3)
    qtbot.keyClick(view, Qt.Key.Key_Left, Qt.KeyboardModifier.ControlModifier)
    assert win.plan_text() == "0,1,2|3,4,5|6,7,8"
    assert "Not possible" in win.statusBar().currentMessage()


def test_drag_block_reorders_within_stage(qtbot, make_window) -> None:
    win = make_window(wait=False)
    view = win.graph
    item = view.block_item(6 + 1)  # block 7, drag it past block 8
    target = view.block_item(8)
    start = view.mapFromScene(item.scene_box_center())
    end = view.mapFromScene(target.scene_box_center() + QPointF(30, 0))
    vp = view.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for k in range(1, 9):
        qtbot.mouseMove(vp, start + (end - start) * (k / 8))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    assert win.plan_text() == "0,1,2|3,4,5|6,8,7"


def test_presets_and_typed_plans(qtbot, make_window) -> None:
    win = make_window()
    win.act_smallest.trigger()
    assert win.plan_text() == "0|3|6"
    assert win.plan_panel.values["paths"].text().startswith("2^3 = 8")
    win.act_random.trigger()
    assert win.plan.is_ordered and win.plan != win.plan.layout.full_plan() or win.plan_text() != "0|3|6"
    win.act_full.trigger()
    assert win.plan_text() == "0,1,2|3,4,5|6,7,8"

    edit = win.plan_panel.edit
    edit.selectAll()
    qtbot.keyClicks(edit, "0,2,1|3|6,7")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert win.plan_text() == "0,2,1|3|6,7"
    assert win.plan_panel.error.isHidden()
    edit.setText("depths:1,2,1")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert win.plan_text() == "0|3,4|6"


def test_invalid_plan_text_shows_inline_error(qtbot, make_window) -> None:
    win = make_window()
    edit = win.plan_panel.edit
    for bad, words in (("0,1|3,4", "stages"), ("0,1|6|3", "wrong stage"), ("0,0|3|6", "repeated"),
                       ("a,b|3|6", "not a block number"), ("0|4,3|6", "shape")):
        edit.setText(bad)
        qtbot.keyClick(edit, Qt.Key.Key_Return)
        assert win.plan_text() == "0,1,2|3,4,5|6,7,8", bad
        assert not win.plan_panel.error.isHidden()
        assert words in win.plan_panel.error.text(), (bad, win.plan_panel.error.text())
        assert edit.property("invalid") is True
    # typing again clears the error; Escape puts the current plan back
    qtbot.keyClicks(edit, "x")
    assert win.plan_panel.error.isHidden()
    qtbot.keyClick(edit, Qt.Key.Key_Escape)
    assert edit.text() == "0,1,2|3,4,5|6,7,8"
    # still fully usable
    _click_block(qtbot, win, 2)
    assert win.plan_text() == "0,1|3,4,5|6,7,8"


def test_bn_switch_recalibrates(qtbot, make_window, settings) -> None:
    win = make_window()
    _click_block(qtbot, win, 1)
    qtbot.waitUntil(win.wait_for_accuracy, timeout=10000)
    combo = win.accuracy_panel.bn_combo
    assert combo.toolTip() and "recalibrated" in combo.toolTip().lower()
    combo.setCurrentIndex(combo.findData("recalibrate"))
    assert win.bn_mode == "recalibrate"
    qtbot.waitUntil(win.wait_for_accuracy, timeout=15000)
    assert "recalibrated" in win.cards["st"].detail.text()
    assert settings.value("explore/bn") == "recalibrate"


def test_corrupt_checkpoint_shows_one_error_and_app_keeps_running(qtbot, make_window, tmp_path,
                                                                 monkeypatch) -> None:
    win = make_window()
    before = win.session.slot("ct").key
    bad = tmp_path / "broken-run"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes(b"\x00\x01 definitely not safetensors" * 10)
    (bad / "meta.json").write_text(json.dumps({"model": {"arch": "resnet20"}}))
    calls = _record(monkeypatch, QMessageBox, "critical")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(bad)))
    win.act_open_ct.trigger()  # File -> Open run folder into CT slot
    assert len(calls) == 1
    title, message = calls[0][1], calls[0][2]
    assert "Cannot open" in title and "safetensors" in message and str(bad) in message
    assert win.session.slot("ct").key == before  # untouched
    # a file that is not a checkpoint at all, through the same path
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    assert not win.open_checkpoint(junk, "st")
    assert len(calls) == 2
    # still alive and working
    _click_block(qtbot, win, 5)
    assert win.plan_text() == "0,1,2|3,4|6,7,8"
    qtbot.waitUntil(win.wait_for_accuracy, timeout=10000)


def test_onnx_export_writes_file_and_reports_provider(qtbot, make_window, tmp_path, monkeypatch) -> None:
    win = make_window()
    _click_block(qtbot, win, 2)
    out = tmp_path / "subnet.onnx"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(out), "")))
    infos = _record(monkeypatch, QMessageBox, "information")
    errors = _record(monkeypatch, QMessageBox, "critical")
    win.act_onnx["st"].trigger()
    assert not errors, errors
    assert out.exists() and out.stat().st_size > 1000
    assert len(infos) == 1
    text = infos[0][2]
    assert "ExecutionProvider" in text and "agreement" in text and "0,1|3,4,5|6,7,8" in text
    assert "ExecutionProvider" in win.statusBar().currentMessage()


def test_drop_run_folder_loads_it(qtbot, make_window, tiny_runs, tmp_path) -> None:
    import shutil

    win = make_window()
    copy = tmp_path / "dropped-st-run"
    shutil.copytree(tiny_runs["st"], copy)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(copy))])
    enter = QDragEnterEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    win.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    win.dropEvent(drop)
    assert "dropped-st-run" in win.cards["st"].subtitle.text()  # ST run -> ST slot
    qtbot.waitUntil(win.wait_for_accuracy, timeout=10000)
    assert str(copy.resolve()) in win.files.recent_files()
    # something that is not a checkpoint is refused at the door
    other = QMimeData()
    other.setUrls([QUrl.fromLocalFile(str(tmp_path))])
    enter = QDragEnterEvent(QPointF(5, 5), Qt.DropAction.CopyAction, other, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    win.dragEnterEvent(enter)
    assert not enter.isAccepted()


def test_save_models_round_trip(qtbot, make_window, tmp_path) -> None:
    from st_app.core.checkpoint import load_checkpoint

    win = make_window()
    _click_block(qtbot, win, 1)
    written = win.files.save_models(tmp_path / "saved")
    assert len(written) == 2
    for path in written:
        ck = load_checkpoint(path)
        assert ck.meta["st_lab"]["plan"] == "0,2|3,4,5|6,7,8"
        assert ck.meta["config"]["dataset"] == "digits"


def test_settings_remember_bn_and_recent_files(qtbot, make_window, tiny_runs, settings) -> None:
    win = make_window()
    win.set_bn_mode("recalibrate")
    win.open_checkpoint(tiny_runs["ct"], "ct")
    win.close()
    assert settings.value("explore/bn") == "recalibrate"
    assert settings.value("window/geometry") is not None
    win2 = make_window(wait=False)
    assert win2.bn_mode == "recalibrate"
    assert win2.accuracy_panel.bn_mode() == "recalibrate"
    assert str(Path(tiny_runs["ct"]).resolve()) in win2.files.recent_files()


def test_deeper_network_scales(qtbot, make_window, tmp_path, tiny_runs) -> None:
    """resnet56 (27 blocks) is drawn one stage per row, fits the view, and stays clickable."""
    import torch

    from st_app.core.checkpoint import load_checkpoint, save_checkpoint
    from st_app.core.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet56", num_classes=10, in_channels=1, image_size=8)
    meta = dict(load_checkpoint(tiny_runs["st"]).meta)
    meta["config"] = dict(meta["config"], model="resnet56")
    save_checkpoint(tmp_path / "r56", model, meta)
    win = make_window(wait=False)
    assert win.open_checkpoint(tmp_path / "r56", "st")
    assert "ct" not in win.session.slots  # a different layout clears the other slot
    assert len(win.graph.block_items()) == 27
    rows = {round(item.pos().y()) for item in win.graph.block_items()}
    assert len(rows) == 3
    win.graph.fit()
    assert win.graph.zoom() < 1.0
    _click_block(qtbot, win, 20)
    assert win.plan_text() == "0,1,2,3,4,5,6,7,8|9,10,11,12,13,14,15,16,17|18,19,21,22,23,24,25,26"
    qtbot.waitUntil(win.wait_for_accuracy, timeout=15000)
    edit = win.plan_panel.edit  # the whole plan is readable in the field (its text shrinks to fit)
    assert edit.fontMetrics().horizontalAdvance(edit.text()) <= edit.width() - 10


def test_every_control_has_a_tooltip(make_window) -> None:
    win = make_window(wait=False)
    win.history_dock.show()
    win.help_dock.show()
    missing = []
    for cls in (QAbstractButton, QLineEdit, QComboBox):
        for w in win.findChildren(cls):
            if w.objectName().startswith("qt_") or not w.isVisibleTo(win):
                continue
            if not w.toolTip():
                missing.append(f"{type(w).__name__} {w.objectName() or w.text() if hasattr(w, 'text') else ''}")
    for menu_action in win.menuBar().actions():
        menu = menu_action.menu()
        for act in menu.actions():
            if act.isSeparator() or act.menu() is not None:
                continue
            if not act.toolTip() or act.toolTip() == act.text().replace("&", ""):
                missing.append(f"menu action {act.text()!r}")
    assert not missing, missing


def test_help_and_about(qtbot, make_window, monkeypatch) -> None:
    win = make_window(wait=False)
    win.act_help.trigger()
    assert win.help_dock.isVisible()
    html = win.help_browser.toPlainText()
    for words in ("unraveled", "loafing", "Stimulative", "BatchNorm", "2210.04153", "NeurIPS 2022"):
        assert words.lower() in html.lower(), words
    shown = []
    monkeypatch.setattr(QMessageBox, "exec", lambda self: shown.append(self.text()) or 0)
    win.act_about.trigger()
    assert shown and "0.1.0" in shown[0] or "ST Lab" in shown[0]


def test_presentation_mode(qtbot, make_window) -> None:
    win = make_window(wait=False)
    size = win.cards["ct"].value.font().pixelSize()
    label = win.plan_panel.paths_label.font().pointSizeF(), win.plan_panel.paths_label.font().pixelSize()
    menu_font = win.menuBar().font().pointSizeF()
    win.act_presentation.trigger()
    assert win.presentation and win.isFullScreen()
    assert win.cards["ct"].value.font().pixelSize() > size
    assert win.menuBar().font().pointSizeF() > menu_font
    assert (win.plan_panel.paths_label.font().pointSizeF(), win.plan_panel.paths_label.font().pixelSize()) != label
    assert win.graph.presentation
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win, timeout=3000)
    qtbot.keyClick(win, Qt.Key.Key_Escape)
    assert not win.presentation and not win.isFullScreen()
    assert win.cards["ct"].value.font().pixelSize() == size
    assert win.menuBar().font().pointSizeF() == menu_font


def test_demo_trains_loads_and_explains(qtbot, make_window, tmp_path, monkeypatch) -> None:

    win = make_window(enable_training=True)
    if win.training is None:
        pytest.skip("training panel unavailable")
    win.demo.out_root = str(tmp_path / "demo-runs")
    win.demo.epochs = 1
    assert win.start_demo()
    assert win.presentation
    assert win.tabs.currentWidget() is win.train_tab
    qtbot.waitUntil(lambda: win.plan_text() == "0|3|6" and win.wait_for_accuracy(), timeout=40000)
    assert win.tabs.currentWidget() is win.explore_tab
    for slot in ("ct", "st"):
        assert str(tmp_path / "demo-runs") in str(win.session.slot(slot).checkpoint.path)
    qtbot.waitUntil(lambda: "versus" in win.caption.text(), timeout=5000)
    assert win.caption.isVisible()
    win.set_presentation(False)


def test_close_during_training_is_quick(qtbot, make_window, tmp_path) -> None:
    win = make_window(enable_training=True)
    if win.training is None:
        pytest.skip("training panel unavailable")
    assert win.training.start(methods=("ct", "st"), epochs=50, out_root=str(tmp_path / "runs"))
    qtbot.waitUntil(lambda: win.training.is_training(), timeout=5000)
    time.sleep(1.0)  # let the worker get into its loop
    _click_block(qtbot, win, 1)  # and keep the accuracy worker busy too
    t0 = time.perf_counter()
    win.close()
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0, elapsed
    assert not win.accuracy.is_running


# ------------------------------------------------------------------------ start-up checks
def test_qt_platform_problem_names_the_packages() -> None:
    env = {"DISPLAY": ":0"}
    line = qt_platform_problem(env, loadable=lambda so: "icccm" not in so)
    assert line is not None and "\n" not in line
    assert "libxcb-icccm4" in line
    for pkg in XCB_PACKAGES:
        assert pkg in line
    assert qt_platform_problem({"QT_QPA_PLATFORM": "offscreen"}, loadable=lambda so: False) is None
    assert qt_platform_problem({"WAYLAND_DISPLAY": "wayland-0"}, loadable=lambda so: False) is None
    assert "DISPLAY" in qt_platform_problem({}, loadable=lambda so: True)
    assert "X server" in qt_platform_problem({"DISPLAY": ":987"}, loadable=lambda so: True)


def test_main_py_help_is_fast() -> None:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, str(ROOT / "main.py"), "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0
    assert "--ct" in out.stdout and "--plan" in out.stdout
    assert time.perf_counter() - t0 < 20


def test_app_main_reports_missing_display(monkeypatch, capsys) -> None:
    from st_app.gui import app

    monkeypatch.setattr(app, "qt_platform_problem", lambda: "ST Lab cannot open a window: test")
    assert app.main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ST Lab cannot open a window: test"]


def test_no_stray_windows_left(qtbot) -> None:
    """Every window of the tests above was closed (their worker threads joined)."""
    stray = [w for w in QApplication.topLevelWidgets() if isinstance(w, mw.MainWindow) and w.isVisible()]
    assert not stray


def test_training_exports_through_the_file_menu(qtbot, make_window, tmp_path, monkeypatch) -> None:
    win = make_window(wait=False, enable_training=True)
    if win.training is None:
        pytest.skip("training panel unavailable")
    for suffix, act, filt in ((".png", win.act_export_plot, "PNG image (*.png)"),
                              (".svg", win.act_export_plot, "SVG drawing (*.svg)"),
                              (".csv", win.act_export_csv, "CSV (*.csv)")):
        target = tmp_path / f"out{suffix}"
        monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, t=target, f=filt, **k: (str(t), f)))
        act.trigger()
        assert target.exists() and target.stat().st_size > 0, suffix


# ------------------------------------------------------------------ rough edges a newcomer hit
def test_status_after_undo_names_what_is_current(qtbot, make_window) -> None:
    win = make_window()
    win.session.toggle(4)
    assert "Turn block 4 off" in win.statusBar().currentMessage()
    win.act_undo.trigger()
    message = win.statusBar().currentMessage()
    assert "Turn block 4 off" not in message and "loaded plan" in message and "0,1,2|3,4,5|6,7,8" in message


def test_demo_caption_goes_when_other_models_are_loaded(qtbot, make_window, tiny_runs) -> None:
    win = make_window()
    win.explore.set_caption("<b>Loafing in one minute.</b> …")
    assert win.caption.isVisible()
    assert win.open_checkpoint(tiny_runs["st"], "st")
    assert not win.caption.isVisible()


def test_importance_signs_agree_in_graph_legend_chart_and_summary(qtbot, make_window) -> None:
    """Points *lost*: positive for a harmful deletion, everywhere (graph, legend, chart, summary)."""
    from st_app.core.experiments.reports import summary_lines
    from st_app.figures import importance_charts

    win = make_window()
    with qtbot.waitSignal(win.analyses.reportReady, timeout=60000) as sig:
        assert win.set_colour_mode("ct")
    report = sig.args[1]
    qtbot.waitUntil(lambda: win.graph.importance is not None, timeout=5000)
    drops = report["importance"]["ct"]
    worst = max(range(len(drops)), key=lambda b: drops[b])
    assert drops[worst] > 0
    item = win.graph.block_item(worst)
    assert f"costs {drops[worst]:.1f} points" in item.toolTip()
    from st_app.gui.explore.graph_items import format_drop

    assert format_drop(drops[worst]) == f"{drops[worst]:.1f}"  # drawn under the box, no minus sign
    assert "points of accuracy lost" in win.graph.importance_title
    legend = win.graph.importance_legend()
    assert legend.isVisible() and legend.vmax >= drops[worst]  # the bar runs 0 .. the largest loss
    chart = importance_charts(report)[0]
    assert "lost" in chart.ylabel
    ct_line = next(line for line in summary_lines(report) if line.strip().startswith("CT"))
    assert f"{worst} ({drops[worst]:.1f})" in ct_line and "--" not in ct_line and "(-" not in ct_line


def test_analyses_table_rounds_numbers_and_sorts_by_value(qtbot, make_window) -> None:
    win = make_window()
    page = win.analyses.page("importance")
    with qtbot.waitSignal(win.analyses.reportReady, timeout=60000):
        win.analyses.run("importance")
    table = page.result.table
    header = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    col = header.index("accuracy_without_block")
    texts = [table.item(r, col).text() for r in range(table.rowCount())]
    assert all(len(t.split(".")[-1]) <= 2 for t in texts if "." in t)  # 18.33, not 18.3333
    table.sortItems(col)
    values = [table.item(r, col).value for r in range(table.rowCount())]
    assert values == sorted(values)


def test_status_after_stop_says_stopped_not_finished(qtbot, make_window, tmp_path) -> None:
    win = make_window(enable_training=True)
    panel = win.training
    assert panel.start(("ct",), epochs=500, out_root=str(tmp_path), dataset="synthetic:1,8,10,128,64",
                       batch_size=32, device="cpu")
    qtbot.waitUntil(lambda: panel.steps_received > 0, timeout=30000)
    panel.pause()
    assert panel.eta_label.text() == "paused"  # no ETA while nothing moves
    panel.resume()
    panel.stop()
    qtbot.waitUntil(lambda: not panel.is_training(), timeout=10000)
    message = win.statusBar().currentMessage()
    assert "stopped" in message.lower() and "Training finished" not in message
