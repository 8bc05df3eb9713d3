"""The engine stays Qt-free: importing every st_app.core module pulls in no GUI toolkit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_PROBE = r"""
import importlib, json, pkgutil, sys
import st_app.core as core
names = ["st_app.core"]
for mod in pkgutil.walk_packages(core.__path__, prefix="st_app.core."):
    names.append(mod.name)
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:  # an optional dependency missing is not our question here
        failed[name] = f"{type(exc).__name__}: {exc}"
gui = sorted(m for m in sys.modules
             if m.split(".")[0] in ("PySide6", "PySide2", "PyQt5", "PyQt6", "shiboken6", "shiboken2",
                                    "pyqtgraph", "qtpy")
             or m.startswith("st_app.gui"))
print(json.dumps({"modules": names, "failed": failed, "gui": gui}))
"""


def test_core_imports_no_qt() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=180)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(report["modules"]) >= 10, report["modules"]
    assert "st_app.core.plan" in report["modules"] and "st_app.core.evaluate" in report["modules"]
    assert not report["failed"], report["failed"]
    assert report["gui"] == [], f"st_app.core imported GUI modules: {report['gui']}"
