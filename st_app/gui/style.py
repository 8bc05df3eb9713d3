"""Colours, fonts and the two looks of the app (normal, presentation)."""

from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication

# Slot colours: the hues of the training plots (Okabe-Ito orange for CT, blue for ST), the
# orange darkened so that text in it stays readable on white.
SLOT_COLORS = {"ct": "#A35F00", "st": "#0072B2"}
SLOT_TITLES = {"ct": "CT", "st": "ST"}
SLOT_NAMES = {"ct": "common training", "st": "stimulative training"}
# Stage tints (blue, green, violet, amber, then repeat).
STAGE_COLORS = ["#2563EB", "#059669", "#7C3AED", "#D97706", "#DB2777", "#0891B2"]
ACCENT = "#1D4ED8"
ERROR = "#B91C1C"
MUTED = "#6B7280"
TEXT = "#111827"


def stage_color(stage: int) -> QColor:
    return QColor(STAGE_COLORS[stage % len(STAGE_COLORS)])


def mix(a: QColor, b: QColor, t: float) -> QColor:
    """``a`` blended towards ``b`` by ``t`` (0: a, 1: b)."""
    return QColor(
        round(a.red() + (b.red() - a.red()) * t),
        round(a.green() + (b.green() - a.green()) * t),
        round(a.blue() + (b.blue() - a.blue()) * t),
    )


def ui_font(pixel_size: int, bold: bool = False) -> QFont:
    f = QFont(QApplication.font())
    f.setPixelSize(max(6, int(pixel_size)))
    f.setBold(bold)
    return f


def light_palette(high_contrast: bool = False) -> QPalette:
    pal = QPalette()
    window = QColor("#FFFFFF") if high_contrast else QColor("#F5F6F8")
    text = QColor("#000000") if high_contrast else QColor(TEXT)
    pal.setColor(QPalette.ColorRole.Window, window)
    pal.setColor(QPalette.ColorRole.WindowText, text)
    pal.setColor(QPalette.ColorRole.Base, QColor("#FFFFFF"))
    pal.setColor(QPalette.ColorRole.AlternateBase, QColor("#EEF0F3"))
    pal.setColor(QPalette.ColorRole.Text, text)
    pal.setColor(QPalette.ColorRole.Button, QColor("#FFFFFF") if high_contrast else QColor("#ECEEF2"))
    pal.setColor(QPalette.ColorRole.ButtonText, text)
    pal.setColor(QPalette.ColorRole.ToolTipBase, QColor("#FFFFE8"))
    pal.setColor(QPalette.ColorRole.ToolTipText, QColor("#000000"))
    pal.setColor(QPalette.ColorRole.Highlight, QColor(ACCENT))
    pal.setColor(QPalette.ColorRole.HighlightedText, QColor("#FFFFFF"))
    pal.setColor(QPalette.ColorRole.PlaceholderText, QColor("#8A8F98"))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#9CA3AF"))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#9CA3AF"))
    pal.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText, QColor("#9CA3AF"))
    return pal


STYLESHEET = """
QToolTip { padding: 4px; }
QGroupBox { font-weight: 600; border: 1px solid #D5D9E0; border-radius: 6px; margin-top: 14px;
            background: #FFFFFF; }
QGroupBox::title { subcontrol-origin: margin; left: 10px; padding: 0 4px; color: #374151; }
QFrame#accuracyCard { background: #FFFFFF; border: 1px solid #D5D9E0; border-radius: 8px; }
QLabel#cardTitle { font-weight: 700; }
QLabel#captionBanner { background: #FFF7E0; border: 1px solid #E8C66A; border-radius: 6px;
                        padding: 8px 12px; color: #3B2F00; }
QLineEdit#planEdit { font-family: monospace; padding: 4px 6px; }
QLineEdit#planEdit[invalid="true"] { border: 2px solid #B91C1C; background: #FFF5F5; }
QLabel#planError { color: #B91C1C; }
QTabWidget::pane { border-top: 1px solid #D5D9E0; }
QTabBar::tab { padding: 6px 18px; }
QToolBar { spacing: 4px; padding: 2px 4px; }
QToolBar QToolButton { padding: 4px 8px; }
"""
