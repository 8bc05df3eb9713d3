"""Runs one analysis at a time off the GUI thread, with throttled progress and cancel.

An analysis is any callable ``job(progress=..., should_stop=..., partial=...) -> dict`` (the
report builders of :mod:`st_app.core.experiments.reports`). The runner owns one short-lived
QThread per job; the GUI hears ``progress`` and ``partial`` (the report so far, after each
model, plan or method), then exactly one of ``finished``, ``failed`` or ``cancelled``. Jobs get their own copies of
the models (see :func:`private_checkpoint`), so the Explore tab keeps working on its models while an analysis runs.
"""

from __future__ import annotations

import copy
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from .accuracy import keep_until_finished

__all__ = ["AnalysisRunner", "describe_analysis_error", "private_checkpoint"]

Job = Callable[..., dict]


def private_checkpoint(checkpoint: Any) -> Any:
    """The checkpoint with a deep copy of its model: analyses switch BN statistics and modes."""
    return replace(checkpoint, model=copy.deepcopy(checkpoint.model), meta=copy.deepcopy(checkpoint.meta))


def describe_analysis_error(exc: BaseException) -> str:
    """One sentence for the user; the exception type only when the error is unexpected."""
    from st_app.core.checkpoint import CheckpointError
    from st_app.core.data import DatasetError

    if isinstance(exc, DatasetError):
        return f"Could not load the data set: {exc}"
    if isinstance(exc, CheckpointError):
        return f"Could not read a checkpoint: {exc}"
    if isinstance(exc, ValueError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "The analysis ran out of memory; try fewer sub-networks or test images."
    if isinstance(exc, OSError):
        return f"File system error: {exc}"
    return f"Unexpected error ({type(exc).__name__}): {exc}"


class _JobThread(QThread):
    progressed = Signal(str, int, int)  # name, done, total
    partialReady = Signal(str, object)  # name, report so far
    succeeded = Signal(str, object)
    errored = Signal(str, str, str)  # name, message, traceback
    stopped = Signal(str)

    def __init__(self, name: str, job: Job, stop: threading.Event, max_rate_hz: float) -> None:
        super().__init__()
        self.name = name
        self.job = job
        self.stop_event = stop
        self.min_interval = 1.0 / max_rate_hz
        self._last = 0.0

    def _progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self._last >= self.min_interval:
            self._last = now
            self.progressed.emit(self.name, int(done), int(total))

    def run(self) -> None:
        from st_app.core.experiments import ExperimentCancelled

        try:
            report = self.job(progress=self._progress, should_stop=self.stop_event.is_set,
                              partial=lambda r: self.partialReady.emit(self.name, r))
        except ExperimentCancelled:
            self.stopped.emit(self.name)
            return
        except BaseException as exc:  # noqa: BLE001 - everything reaches the user as one message
            if self.stop_event.is_set():
                self.stopped.emit(self.name)
            else:
                self.errored.emit(self.name, describe_analysis_error(exc), traceback.format_exc())
            return
        if self.stop_event.is_set():
            self.stopped.emit(self.name)
        else:
            self.succeeded.emit(self.name, report)


class AnalysisRunner(QObject):
    """One analysis at a time: ``start(name, job)``, ``cancel()``; results as signals."""

    started = Signal(str)
    progress = Signal(str, int, int)  # name, done, total
    partial = Signal(str, object)  # name, report so far (dict)
    finished = Signal(str, object)  # name, report (dict)
    failed = Signal(str, str)  # name, message
    cancelled = Signal(str)
    busyChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None, max_rate_hz: float = 10.0) -> None:
        super().__init__(parent)
        self.max_rate_hz = max_rate_hz
        self._thread: _JobThread | None = None
        self._stop = threading.Event()
        self._name: str | None = None
        self.started_at = 0.0
        self.last_traceback = ""

    @property
    def running(self) -> str | None:
        """The name of the analysis that is running, or None."""
        return self._name

    def start(self, name: str, job: Job) -> bool:
        """Run ``job`` in a fresh thread; False (nothing started) while another one runs."""
        if self._name is not None:
            return False
        self._stop = threading.Event()
        thread = _JobThread(name, job, self._stop, self.max_rate_hz)
        # bound slots of this GUI-thread object: Qt queues the calls into the GUI thread
        thread.progressed.connect(self._on_progress)
        thread.partialReady.connect(self._on_partial)
        thread.succeeded.connect(self._on_succeeded)
        thread.errored.connect(self._on_errored)
        thread.stopped.connect(self._on_stopped)
        thread.finished.connect(thread.deleteLater)
        self._thread = thread
        self._name = name
        self.started_at = time.perf_counter()
        thread.start()
        self.started.emit(name)
        self.busyChanged.emit(True)
        return True

    def cancel(self) -> None:
        """Ask the running analysis to stop at its next check (between sub-nets or batches)."""
        self._stop.set()

    @Slot(str, int, int)
    def _on_progress(self, name: str, done: int, total: int) -> None:
        if self._name == name:
            self.progress.emit(name, done, total)

    @Slot(str, object)
    def _on_partial(self, name: str, report: dict) -> None:
        if self._name == name and not self._stop.is_set():
            self.partial.emit(name, report)

    @Slot(str, object)
    def _on_succeeded(self, name: str, report: dict) -> None:
        self._end(name, "finished", report)

    @Slot(str, str, str)
    def _on_errored(self, name: str, message: str, tb: str) -> None:
        self._end(name, "failed", message, tb)

    @Slot(str)
    def _on_stopped(self, name: str) -> None:
        self._end(name, "cancelled")

    def _end(self, name: str, how: str, payload: Any = None, tb: str = "") -> None:
        if self._name != name:
            return
        thread = self._thread
        self._name = None
        self._thread = None
        if thread is not None:
            thread.wait(2000)
        self.busyChanged.emit(False)
        if how == "finished":
            self.finished.emit(name, payload)
        elif how == "failed":
            self.last_traceback = tb
            self.failed.emit(name, payload)
        else:
            self.cancelled.emit(name)

    def wait(self, timeout_ms: int = 5000) -> bool:
        """Block until the current job's thread ends (tests, shutdown); True when it did."""
        thread = self._thread
        return thread is None or thread.wait(timeout_ms)

    def shutdown(self, timeout_ms: int = 2000) -> None:
        """Cancel and wait briefly; a thread still busy (one long pass) is kept alive to its end."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        for signal in (thread.progressed, thread.partialReady, thread.succeeded, thread.errored, thread.stopped):
            try:
                signal.disconnect()
            except (RuntimeError, TypeError):
                pass
        self._name = None
        self._thread = None
        if not thread.wait(max(1, timeout_ms)):
            keep_until_finished(thread)
