"""Application start-up: check that Qt can open a window, then show the main window.

Qt aborts the whole process (no Python exception) when its xcb platform plugin lacks system
libraries or no X server answers, so :func:`qt_platform_problem` looks before Qt is imported:
``dlopen`` of the libraries the plugin needs (a few milliseconds) and a look for the X
server's socket. The answer is one line naming what to install or set.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["XCB_PACKAGES", "create_app", "main", "qt_platform_problem"]

# shared library the xcb plugin (or Qt GUI itself) loads -> Debian/Ubuntu package providing it
XCB_LIBRARIES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
}
XCB_PACKAGES = tuple(XCB_LIBRARIES.values())


def _loadable(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def _x_server_missing(display: str) -> bool:
    """True when DISPLAY names a local X server whose socket does not exist."""
    host, _, rest = display.partition(":")
    if host not in ("", "unix") or not rest:
        return False  # remote or unusual display: let Qt try
    number = rest.split(".", 1)[0]
    if not number.isdigit():
        return False
    return not Path(f"/tmp/.X11-unix/X{number}").exists()


def qt_platform_problem(env: Mapping[str, str] | None = None, loadable=_loadable) -> str | None:  # noqa: ANN001
    """One line saying why Qt cannot open a window here, or None when it should work."""
    env = os.environ if env is None else env
    if not sys.platform.startswith("linux") or env.get("ST_LAB_SKIP_QT_CHECK"):
        return None
    platform = env.get("QT_QPA_PLATFORM", "").split(":", 1)[0].strip().lower()
    if platform and platform != "xcb":
        return None  # offscreen, wayland, vnc, eglfs...: not the xcb plugin
    if not platform and env.get("WAYLAND_DISPLAY"):
        return None  # Qt will use its Wayland plugin
    missing = [pkg for so, pkg in XCB_LIBRARIES.items() if not loadable(so)]
    if missing:
        return (
            "ST Lab cannot start Qt: system libraries for its xcb platform plugin are missing "
            f"({', '.join(missing)}); install them with: sudo apt-get install {' '.join(XCB_PACKAGES)}"
        )
    display = env.get("DISPLAY", "")
    if not display:
        return (
            "ST Lab cannot open a window: no display (DISPLAY is not set); run it in a desktop session, "
            "over ssh -X, or under Xvfb (xvfb-run python main.py)"
        )
    if _x_server_missing(display):
        return f"ST Lab cannot open a window: no X server is running on display {display}"
    return None


def _parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="st-lab",
        description="ST Lab: explore residual networks as ensembles of sub-networks "
        "(network loafing, stimulative training).",
    )
    parser.add_argument("session", nargs="?", metavar="SESSION.stlab",
                        help="open a saved session (.stlab, or a session bundle .zip)")
    parser.add_argument("--ct", metavar="PATH", help="run folder or weights file for the CT slot")
    parser.add_argument("--st", metavar="PATH", help="run folder or weights file for the ST slot")
    parser.add_argument("--plan", metavar="TEXT", help="start on this sub-network, e.g. 0,1|3,4,5|6")
    parser.add_argument("--bn", choices=("main", "recalibrate"), help="BatchNorm statistics to evaluate with")
    parser.add_argument("--presentation", action="store_true", help="start in presentation mode")
    parser.add_argument("--demo", action="store_true", help="start the guided demo 'Loafing in one minute'")
    parser.add_argument("--reset-settings", action="store_true", help="forget window layout and recent files")
    parser.add_argument("--screenshot", metavar="OUT.png",
                        help="render the window once the models are loaded and evaluated, save it, and exit")
    parser.add_argument("--tab", choices=("explore", "train", "analyses"), default="explore",
                        help="the tab to show (with --screenshot: the tab to capture)")
    parser.add_argument("--analysis", choices=("loafing", "subnets", "robustness", "importance", "compare", "depth"),
                        help="the analysis page to show on the Analyses tab (with --screenshot: run it first)")
    parser.add_argument("--colour", choices=("stage", "ct", "st"),
                        help="colour the blocks by stage or by their importance in the CT / ST model")
    parser.add_argument("--size", metavar="WxH", default="1280x720", help="window size for --screenshot")
    parser.add_argument("--close-after", type=float, metavar="SECONDS",
                        help="close the window this many seconds after the models are loaded (scripted demos, timing)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch threads (default: all cores but one, which stays with the window)")
    return parser.parse_known_args(list(argv))


def configure_torch_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads once, at start-up: all cores but one (kept for the window).

    Workers never change it, so evaluation, training and analyses all use the same setting.
    Applied before torch is imported (``OMP_NUM_THREADS``) and again once it is.
    """
    n = n if n and n > 0 else max(1, (os.cpu_count() or 2) - 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    return n
def create_app(argv: Sequence[str] | None = None):  # noqa: ANN201 - QApplication
    """The QApplication with ST Lab's names, style and palette (reuses a running one)."""
    from PySide6.QtCore import QCoreApplication, Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from .style import ensure_stylesheet, light_palette

    app = QApplication.instance()
    if not isinstance(app, QApplication):
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication([sys.argv[0] if sys.argv else "st-lab", *(argv or [])])
    QCoreApplication.setOrganizationName("ST Lab")
    QCoreApplication.setApplicationName("ST Lab")
    from st_app import __version__

    QCoreApplication.setApplicationVersion(__version__)
    QGuiApplication.setApplicationDisplayName("ST Lab")
    app.setStyle("Fusion")
    app.setPalette(light_palette())
    ensure_stylesheet(app)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    args, qt_args = _parse_args(sys.argv[1:] if argv is None else argv)
    problem = qt_platform_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if args.session and not Path(args.session).is_file():
        print(f"st-lab: no such session file: {args.session}", file=sys.stderr)
        return 2
    threads = configure_torch_threads(args.threads)
    app = create_app(qt_args)

    from PySide6.QtCore import QSettings, QTimer

    from .main_window import MainWindow

    settings = QSettings()
    if args.reset_settings:
        settings.clear()
    if args.bn:
        settings.setValue("explore/bn", args.bn)
    window = MainWindow(ct_path=args.ct, st_path=args.st, settings=settings, defer_load=not args.screenshot,
                        initial_plan=args.plan, session_path=args.session)
    window.modelsLoaded.connect(lambda: _torch_threads_after_import(threads))
    tabs = {"explore": window.explore_tab, "train": window.train_tab, "analyses": window.analyses_tab}
    window.tabs.setCurrentWidget(tabs[args.tab])
    if args.analysis:
        window.when_loaded(lambda: window.analyses is not None and window.analyses.show_page(args.analysis))
    if args.colour:
        window.when_loaded(lambda: window.set_colour_mode(args.colour))
    if args.screenshot:
        from .screenshot import take_screenshot

        return take_screenshot(app, window, args.screenshot, args.size, presentation=args.presentation,
                               demo=args.demo, tab=args.tab, bn=args.bn)
    window.show()
    if args.presentation:
        QTimer.singleShot(0, lambda: window.set_presentation(True))
    if args.demo:
        window.modelsLoaded.connect(lambda: QTimer.singleShot(200, window.start_demo))
    if args.close_after is not None:  # counted from the moment the models are loaded
        window.modelsLoaded.connect(lambda: QTimer.singleShot(int(1000 * args.close_after),
                                                              lambda: _close_and_note(window)))
    code = int(app.exec())
    return _fast_exit(code)


def _torch_threads_after_import(n: int) -> None:
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def _close_and_note(window) -> None:  # noqa: ANN001
    import time

    training = window.training is not None and window.training.is_training()
    print(f"st-lab: closing at {time.monotonic():.3f} (training: {'yes' if training else 'no'})", file=sys.stderr,
          flush=True)
    window.close()


def _fast_exit(code: int) -> int:
    """End the process now that the window is closed and its workers stopped or abandoned.

    The interpreter's own teardown (torch, Qt, pyqtgraph modules; a worker thread still inside
    one long step) can take seconds; everything worth keeping is already on disk (settings
    synced, checkpoints written atomically), so leave without it.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
