"""Presentation mode: full screen, larger fonts and lines, high contrast, and nothing cut off.

The style sheet scales the window's own parts (``presentation`` property of the main
window); the graph, plots and panels get told directly. The toolbar's font shrinks step by
step until every action fits, so none hides behind the overflow button, and leaving the mode
restores every font and style it changed.
"""

from __future__ import annotations

from typing import Any, cast

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication, QToolButton, QWidget

from .explore.panels import repolish
from .style import light_palette

__all__ = ["Presentation", "toolbar_overflows"]

TOOLBAR_POINTS = (14, 13, 12, 11, 10, 9)


def toolbar_overflows(toolbar: Any) -> bool:
    """True when some toolbar action sits behind the overflow ("»") button."""
    ext = toolbar.findChild(QToolButton, "qt_toolbar_ext_button")
    return ext is not None and ext.isVisible()


class Presentation(QObject):
    def __init__(self, win: Any) -> None:
        super().__init__(win)
        self.win = win
        self.was_maximized = False

    def apply(self, on: bool) -> None:
        win = self.win
        app = cast(QApplication, QApplication.instance())
        if on:
            app.setPalette(light_palette(high_contrast=True))
            self.was_maximized = win.isMaximized()
            win.showFullScreen()
        else:
            app.setPalette(light_palette())
            if self.was_maximized:
                win.showMaximized()
            else:
                win.showNormal()
        win.setProperty("presentation", on)
        scope = [win, win.menuBar(), win.toolbar, win.tabs.tabBar(), win.explore_tab, win.analyses_tab,
                 win.statusBar(), win.help_dock, win.history_dock]
        seen: set[int] = set()
        for root in scope:
            for w in (root, *root.findChildren(QWidget)):
                if id(w) not in seen and (win.training is None or not win.training.isAncestorOf(w)):
                    seen.add(id(w))
                    repolish(w)
        win.act["leave_presentation"].setEnabled(on)
        win.graph.set_presentation(on)
        win.plan_panel.set_presentation(on)
        if win.analyses is not None:
            win.analyses.set_presentation(on)
        if win.training is not None:
            win.training.set_presentation(on)
        win.toolbar.setStyleSheet("")
        QTimer.singleShot(0, self.fit)

    def fit(self) -> None:
        """Refit the graph and shrink the toolbar's text until every action is shown."""
        win = self.win
        win.graph.fit()
        if not win.property("presentation"):
            win.toolbar.setStyleSheet("")
            return
        tb = win.toolbar
        for pt in TOOLBAR_POINTS:
            tb.setStyleSheet(f"QToolButton, QLabel, QComboBox {{ font-size: {pt}pt; }}")
            tb.layout().invalidate()
            tb.layout().activate()
            if tb.sizeHint().width() <= tb.width() - 8 and not toolbar_overflows(tb):
                break
