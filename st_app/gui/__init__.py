"""ST Lab's desktop front end (PySide6 + pyqtgraph).

Qt lives only here; the engine in :mod:`st_app.core` never imports it. Start the app with
``python main.py`` or :func:`st_app.gui.app.main`. Importing this package imports only
QtCore (for the guard below); the modules import the rest of Qt, and torch, when used.
"""

from ._pyside_fix import keep_none_alive

keep_none_alive()
