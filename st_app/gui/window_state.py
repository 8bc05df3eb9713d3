"""Remembering the window between runs: geometry, docks, splitter, BN setting (QSettings)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QByteArray
from PySide6.QtGui import QGuiApplication

__all__ = ["restore", "save"]


def restore(win: Any) -> None:
    """Window geometry, dock layout, splitter and BN setting from the settings."""
    s = win.settings
    geo = s.value("window/geometry")
    if not isinstance(geo, (QByteArray, bytes)) or not win.restoreGeometry(QByteArray(geo)):
        screen = QGuiApplication.primaryScreen()
        avail = screen.availableGeometry() if screen is not None else None
        w, h = 1440, 900
        if avail is not None:
            w, h = min(w, int(avail.width() * 0.92)), min(h, int(avail.height() * 0.92))
        win.resize(w, h)
    state = s.value("window/state")
    if isinstance(state, (QByteArray, bytes)):
        win.restoreState(QByteArray(state))
    split = s.value("window/splitter")
    if isinstance(split, (QByteArray, bytes)):
        win.splitter.restoreState(QByteArray(split))
    else:
        win.splitter.setSizes([470, 400])
    bn = s.value("explore/bn", "main")
    if bn in ("main", "recalibrate"):
        win.session.set_bn_mode(str(bn))
        win.accuracy_panel.set_bn_mode(str(bn))


def save(win: Any) -> None:
    """Remember the layout (not the full-screen one of presentation mode) and the BN setting."""
    s = win.settings
    if not win.session.presentation:
        s.setValue("window/geometry", win.saveGeometry())
        s.setValue("window/state", win.saveState())
    s.setValue("window/splitter", win.splitter.saveState())
    s.setValue("explore/bn", win.session.bn_mode)
    s.sync()
