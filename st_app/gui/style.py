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


def ui_font(pixel_size: float, bold: bool = False) -> QFont:
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


_BASE = """
QToolTip { padding: 4px; }
QGroupBox { font-weight: 600; border: 1px solid #D5D9E0; border-radius: 6px; margin-top: 14px;
            background: #FFFFFF; }
QGroupBox::title { subcontrol-origin: margin; left: 10px; padding: 0 4px; color: #374151; }
QFrame#accuracyCard { background: #FFFFFF; border: 1px solid #D5D9E0; border-radius: 8px; }
QLabel#captionBanner { background: #FFF7E0; border: 1px solid #E8C66A; border-radius: 6px;
                        padding: 8px 12px; color: #3B2F00; }
QLineEdit#planEdit { padding: 4px 6px; font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; }
QLineEdit#planEdit[invalid="true"] { border: 2px solid #B91C1C; background: #FFF5F5; }
QLabel#planError { color: #B91C1C; }
QLabel#cardSubtitle, QLabel#accDetail, QLabel#pathsLabel { color: #6B7280; }
QLabel#cardTitle { font-weight: 700; }
QLabel#accValue { font-weight: 700; }
QLabel#accValue[state="empty"] { color: #9CA3AF; }
QLabel#accValue[state="estimate"] { font-style: italic; }
QLabel#gapLabel, QLabel#planValue { font-weight: 700; }
QStatusBar[error="true"] { color: #B91C1C; }
QTabWidget#mainTabs::pane { border-top: 1px solid #D5D9E0; }
QTabWidget#mainTabs > QTabBar::tab { padding: 6px 18px; }
QToolBar { spacing: 4px; padding: 2px 4px; }
QToolBar QToolButton { padding: 4px 8px; }
"""

# Pixel sizes of the Explore tab's own labels: (normal, presentation).
_FONT_PX = {
    "cardTitle": (15, 22),
    "cardSubtitle": (12, 17),
    "accValue": (46, 72),
    "accDetail": (12, 17),
    "accReference": (14, 21),
    "gapLabel": (15, 23),
    "planValue": (13, 19),
    "pathsLabel": (12, 16),
}


def stylesheet() -> str:
    """The application style sheet, presentation mode included.

    Presentation mode is the ``presentation`` property of the main window; its rules are
    scoped to the window's own parts (menus, toolbar, Explore tab, docks, status bar) so the
    training panel keeps the fonts it sets itself. All fonts of the Explore tab come from
    here, because a style-sheet repolish resets fonts set with ``setFont``.
    """
    win = 'QMainWindow#stLabMain[presentation="true"]'
    exp = f"{win} QWidget#exploreTab"
    rules = [_BASE]
    for name, (normal, _big) in _FONT_PX.items():
        rules.append(f"QLabel#{name} {{ font-size: {normal}px; }}")
    for slot, color in SLOT_COLORS.items():
        rules.append(f'QLabel#cardTitle[slot="{slot}"], QLabel#accValue[slot="{slot}"] {{ color: {color}; }}')
    rules.append('QLabel#accValue[state="empty"] { color: #9CA3AF; }')
    rules.append("QLineEdit#planEdit { font-size: 14px; }")
    # presentation: everything of ours larger, then the labels above larger still
    rules.append(
        f"{win} QMenuBar, {win} QMenu, {win} QToolBar QToolButton, {win} QToolBar QLabel, {win} QToolBar QComboBox,"
        f" {win} QTabWidget#mainTabs > QTabBar,"
        f" {win} QStatusBar, {win} QStatusBar QLabel, {exp} QLabel, {exp} QComboBox, {exp} QGroupBox,"
        f" {exp} QLineEdit, {win} QDockWidget, {win} QDockWidget QWidget {{ font-size: 14pt; }}"
    )
    for name, (_normal, big) in _FONT_PX.items():
        rules.append(f"{exp} QLabel#{name} {{ font-size: {big}px; }}")
    ana = f"{win} QWidget#analysesTab"
    rules.append(f"{ana} QLabel, {ana} QPushButton, {ana} QToolButton, {ana} QComboBox, {ana} QSpinBox,"
                 f" {ana} QDoubleSpinBox, {ana} QLineEdit, {ana} QCheckBox, {ana} QListWidget, {ana} QTabBar,"
                 f" {ana} QProgressBar {{ font-size: 14pt; }}")
    rules.append(f"{exp} QLineEdit#planEdit {{ font-size: 20px; }}")
    return "\n".join(rules)


STYLESHEET = stylesheet()


def ensure_stylesheet(app: QApplication) -> None:
    """Install ST Lab's style sheet on ``app`` once (the window's fonts and colours need it)."""
    sheet = app.styleSheet()
    if STYLESHEET not in sheet:
        app.setStyleSheet((sheet + "\n" + STYLESHEET) if sheet else STYLESHEET)
