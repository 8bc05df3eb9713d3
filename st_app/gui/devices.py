"""One compute device for the whole app: training, the Explore tab's accuracies, the analyses.

The choice lives in the session (:attr:`Session.device`, ``deviceChanged``), is shown and
changed in the Train tab's device list (labels from :func:`st_app.core.train.describe_devices`:
each CUDA card with its name and memory) and is remembered in QSettings. Each consumer only
records the device; the models move in their own worker threads, so the window never blocks.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SETTINGS_KEY", "apply_device", "wire_device"]

SETTINGS_KEY = "app/device"


def wire_device(win: Any) -> None:
    """Restore the saved device (``auto`` when it is gone) and keep every consumer on the choice."""
    from st_app.core.train import describe_devices

    session, settings = win.session, win.settings
    saved = str(settings.value(SETTINGS_KEY, "auto") or "auto")
    session.set_device(saved if saved in {d for d, _ in describe_devices()} else "auto")
    session.deviceChanged.connect(lambda device: settings.setValue(SETTINGS_KEY, device))
    session.deviceChanged.connect(lambda device: apply_device(win, device))
    if win.training is not None:
        win.training.form.deviceChanged.connect(session.set_device)
    apply_device(win, session.device)


def apply_device(win: Any, device: str) -> None:
    """Tell the accuracy worker, the Train tab and the analysis runner where to compute."""
    win.accuracy.set_device(device)
    if win.training is not None:
        win.training.form.set_device(device)
    if win.analyses is not None:
        win.analyses.runner.device = device  # each page takes it for its next job
