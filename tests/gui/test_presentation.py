"""Presentation mode at classroom resolutions: nothing is cut off, and leaving it restores everything."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QAbstractButton, QAbstractScrollArea, QComboBox, QLabel, QWidget

from st_app.gui.presentation import toolbar_overflows


def _clip_right(w: QWidget, win: QWidget) -> int:
    """The right edge (window coordinates) of what can show ``w``: its scroll viewport or the window."""
    p = w.parentWidget()
    while p is not None and p is not win:
        if isinstance(p, QAbstractScrollArea):
            vp = p.viewport()
            return vp.mapTo(win, QPoint(vp.width(), 0)).x()
        p = p.parentWidget()
    return win.width()


def cut_off(win: QWidget) -> list[str]:
    """Visible buttons, labels and combo boxes whose text does not fit, or that stick out of view."""
    bad = []
    for w in win.findChildren(QWidget):
        if not isinstance(w, (QAbstractButton, QLabel, QComboBox)) or not w.isVisible() or w.width() <= 1:
            continue
        if w.objectName().startswith("qt_") or w.window() is not win:
            continue
        right = w.mapTo(win, QPoint(w.width(), 0)).x()
        text = w.currentText() if isinstance(w, QComboBox) else w.text()
        if not text or text.startswith("<"):
            continue
        if right > _clip_right(w, win) + 1:
            bad.append(f"{type(w).__name__} {text[:40]!r} sticks out ({right} > {_clip_right(w, win)})")
        elif isinstance(w, QLabel) and not w.wordWrap() and w.width() < w.minimumSizeHint().width() - 1:
            bad.append(f"QLabel {text[:40]!r} cut ({w.width()} < {w.minimumSizeHint().width()})")
        elif isinstance(w, QAbstractButton) and w.width() < w.minimumSizeHint().width() - 1:
            bad.append(f"{type(w).__name__} {text[:40]!r} cut ({w.width()} < {w.minimumSizeHint().width()})")
        elif isinstance(w, QComboBox) and w.fontMetrics().horizontalAdvance(text) + 24 > w.width():
            bad.append(f"QComboBox {text[:40]!r} elided ({w.width()})")
    return bad


@pytest.mark.parametrize("size", [(1280, 720), (1920, 1080)])
def test_presentation_mode_cuts_nothing_off(qtbot, make_window, size) -> None:  # noqa: ANN001
    win = make_window(enable_training=True)
    win.set_presentation(True)
    try:
        win.showNormal()  # the offscreen screen is 800x600: a window of the classroom screen's size instead
        win.setGeometry(0, 0, *size)
        qtbot.wait(50)
        assert (win.width(), win.height()) == size, "the window cannot be as small as the screen"
        problems = []
        for tab in (win.explore_tab, win.train_tab, win.analyses_tab):
            win.tabs.setCurrentWidget(tab)
            qtbot.wait(60)
            win.presentation_mode.fit()
            qtbot.wait(20)
            assert not toolbar_overflows(win.toolbar), "toolbar actions hidden behind »"
            pages = list(win.analyses.pages) if tab is win.analyses_tab else [None]
            for page in pages:
                if page is not None:
                    win.analyses.show_page(page)
                    qtbot.wait(20)
                where = win.tabs.tabText(win.tabs.currentIndex()) + (f"/{page}" if page else "")
                problems += [f"{where}: {p}" for p in cut_off(win)]
        assert not problems, "\n".join(problems)
    finally:
        win.set_presentation(False)


@pytest.mark.parametrize("family", ["vit-micro", "densenet-bc-22"])
def test_presentation_fits_the_explore_tab_for_every_family(qtbot, make_window, dense_runs, family) -> None:  # noqa: ANN001
    """The transformer (its BN row says both settings are equal) and the DenseNet (transitions, the
    path rule beside the chart) in presentation mode at 1280x720: nothing cut off, the graph legible."""
    from st_app.core.resources import resource_path

    runs = ({s: resource_path("checkpoints", f"digits-vit-micro-{s}") for s in ("ct", "st")}
            if family == "vit-micro" else dense_runs)
    win = make_window(runs["ct"], runs["st"])
    win.set_presentation(True)
    try:
        win.showNormal()
        win.setGeometry(0, 0, 1280, 720)
        qtbot.wait(60)
        assert (win.width(), win.height()) == (1280, 720), "the window cannot be as small as the screen"
        assert not cut_off(win)
        assert win.graph.label_px() >= 10
        assert win.plan_panel.path_rule.text() == win.plan.layout.path_rule
    finally:
        win.set_presentation(False)


def test_leaving_presentation_restores_fonts_and_styles(qtbot, make_window) -> None:  # noqa: ANN001
    win = make_window(enable_training=True)
    legend = win.training.plots.acc_legend
    win.training.plots.add_epoch({"run": "ct", "epoch": 1, "test_acc": 50.0, "step": 4})
    win.training.plots.refresh()
    size = legend.opts["labelTextSize"]
    toolbar_sheet = win.toolbar.styleSheet()
    win.set_presentation(True)
    qtbot.wait(50)
    assert legend.opts["labelTextSize"] != size
    win.set_presentation(False)
    qtbot.wait(50)
    assert legend.opts["labelTextSize"] == size and win.toolbar.styleSheet() == toolbar_sheet
    assert all(label.opts["size"] == size for _sample, label in legend.items)  # the shown labels too
    # an error message's red style does not leak into the status tips shown after it
    win.show_status("something failed", error=True)
    assert win.statusBar().property("error")
    win.statusBar().showMessage("Zoom in: enlarge the block graph")  # what a hovered action does
    assert not win.statusBar().property("error")


def test_presentation_fits_the_train_tab_with_a_recipe_and_advanced_open(qtbot, make_window) -> None:  # noqa: ANN001
    """The recipe combo (a modified ladder rung: its longest text) and every Advanced row at 1280x720."""
    win = make_window(wait=False, enable_training=True)
    win.set_presentation(True)
    try:
        win.showNormal()
        win.setGeometry(0, 0, 1280, 720)
        win.tabs.setCurrentWidget(win.train_tab)
        form = win.training.form
        form.apply_recipe("st+kl-+snet6+small-inputs")
        form.widgets["epochs"].setValue(3)
        form.advanced.setChecked(True)
        qtbot.wait(60)
        win.presentation_mode.fit()
        qtbot.wait(20)
        assert form.recipe_box.currentText().startswith("st+kl-+snet6+small-inputs")  # (modified) / (mod.) / *
        assert form.recipe_box.currentText() != "st+kl-+snet6+small-inputs"
        assert not cut_off(win), "\n".join(cut_off(win))
    finally:
        win.set_presentation(False)
