"""``python main.py --screenshot out.png``: the window as it looks after start-up, saved as PNG.

The README's screenshots are made by it, so they show what the app shows. It waits until the
models are loaded and both accuracy cards show exact values (and, on the Analyses tab, until
the shown page has a result), renders the window at the given size and exits.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["take_screenshot"]


def _wait(app: Any, done: Any, timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        app.processEvents()
        if done():
            return True
        time.sleep(0.01)
    return False


def take_screenshot(app: Any, window: Any, out: str | Path, size: str = "1280x720", *,
                    presentation: bool = False, demo: bool = False, tab: str = "explore", bn: str | None = None,
                    timeout_s: float = 60.0) -> int:
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        print(f"st-lab: --size must look like 1280x720, not {size!r}", file=sys.stderr)
        return 2
    window.resize(width, height)
    window.show()
    _wait(app, lambda: window.session.plan is not None and window.wait_for_accuracy(), timeout_s)
    if demo:  # the guided demo, to its end: trained, loaded, the smallest sub-net explained
        window.demo.out_root = window.demo.out_root or str(Path.home() / "st_lab_runs" / "demo")
        if window.start_demo():
            _wait(app, lambda: not window.demo.active and window.wait_for_accuracy(), 600)
        if not presentation:
            window.set_presentation(False)
            _wait(app, lambda: False, 0.3)
            window.showNormal()
            window.setGeometry(0, 0, width, height)
        window.tabs.setCurrentWidget({"train": window.train_tab, "analyses": window.analyses_tab}.get(
            tab, window.explore_tab))
    if window.session.colour_mode != "stage":
        _wait(app, lambda: window.graph.importance is not None, timeout_s)
    if window.tabs.currentWidget() is window.analyses_tab and window.analyses is not None:
        panel = window.analyses
        page = panel.stack.currentWidget()
        # pages that train networks (method comparison, depth sweep) are shown with their settings:
        # a screenshot must not start minutes of training into the user's runs folder
        if page.result.report is None and not panel.pair.problem and page.needs_models:
            if bn:
                page.set_bn_mode(bn)
            panel.run(page.name)
            _wait(app, lambda: panel.running is None, 600)
    if presentation:
        window.set_presentation(True)
        _wait(app, lambda: False, 0.3)
        window.showNormal()  # the screen of an offscreen platform may be another size: keep the requested one
        window.setGeometry(0, 0, width, height)
    _wait(app, lambda: False, 0.5)  # layouts, the graph's fit, plot redraws
    pixmap = window.grab()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not pixmap.save(str(out)):
        print(f"st-lab: could not write {out}", file=sys.stderr)
        return 2
    print(f"st-lab: saved {out} ({pixmap.width()}x{pixmap.height()})")
    window.close()
    sys.stdout.flush()
    import os

    os._exit(0)
