"""Runs one analysis at a time as a background job, with throttled progress and cancel.

An analysis is any callable ``job(progress=..., should_stop=..., partial=...) -> dict`` (the
report builders of :mod:`st_app.core.experiments.reports`). The runner runs it with
:func:`st_app.gui.jobs.run_in_thread` on the ``analysis`` lane; the GUI hears ``progress`` and
``partial`` (the report so far, after each model, plan or method), then exactly one of
``finished``, ``failed`` or ``cancelled``. Jobs get their own copies of the models (see
:func:`private_checkpoint`), so the Explore tab keeps working on its models while an analysis runs;
the runner moves the copies it is given to the app's device (:attr:`AnalysisRunner.device`) in the
worker thread before the analysis starts, so a transfer to a GPU never blocks the window.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from PySide6.QtCore import QObject, Signal

from ..jobs import Job, run_in_thread, shutdown_all

__all__ = ["AnalysisRunner", "describe_analysis_error", "private_checkpoint"]

Job_ = Callable[..., dict]


def private_checkpoint(checkpoint: Any) -> Any:
    """The checkpoint with a deep copy of its model: analyses switch BN statistics and modes."""
    return replace(checkpoint, model=copy.deepcopy(checkpoint.model), meta=copy.deepcopy(checkpoint.meta))


def move_models(checkpoints: list[Any], device: str) -> None:
    """Move the private copies' models to ``device`` (worker thread; the analyses move their data
    to the model's device themselves)."""
    from st_app.core.train import resolve_device

    if not checkpoints:
        return
    dev = resolve_device(device)
    for ck in checkpoints:
        ck.model.to(dev)


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


LANE = "analysis"


def _run_report(job: Job, fn: Job_, min_interval: float, copies: list[Any] | None = None,
                device: str = "cpu") -> dict:
    """The worker side: the copies go to the device, the builder's callbacks become job events
    (progress throttled)."""
    move_models(copies or [], device)
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last[0] >= min_interval:
            last[0] = now
            job.send(("progress", int(done), int(total)))

    return fn(progress=progress, should_stop=lambda: job.is_cancelled,
              partial=lambda r: job.send(("partial", r)))


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
        self._job: Job | None = None
        self._name: str | None = None
        self.started_at = 0.0
        self.last_traceback = ""
        self.device = "cpu"  # the app's device choice (set by the window); private copies are moved there

    @property
    def running(self) -> str | None:
        """The name of the analysis that is running, or None."""
        return self._name

    def start(self, name: str, job: Job_, copies: Sequence[Any] = ()) -> bool:
        """Run ``job`` in the background; False (nothing started) while another one runs.

        ``copies``: the job's private checkpoints (:func:`private_checkpoint`), moved to
        :attr:`device` in the worker thread before the job runs.
        """
        if self._name is not None:
            return False
        self._name = name
        self.started_at = time.perf_counter()
        self._job = run_in_thread(_run_report, job, 1.0 / self.max_rate_hz, list(copies), self.device, lane=LANE,
                                  with_job=True, name=name,
                                  connect={"yielded": lambda e, n=name: self._on_event(n, e),
                                           "returned": lambda r, n=name: self._end(n, "finished", r),
                                           "errored": lambda exc, n=name: self._on_error(n, exc),
                                           "cancelled": lambda n=name: self._end(n, "cancelled")})
        self.started.emit(name)
        self.busyChanged.emit(True)
        return True

    def cancel(self) -> None:
        """Ask the running analysis to stop at its next check (between sub-nets or batches)."""
        if self._job is not None:
            self._job.cancel()

    def _on_event(self, name: str, event: tuple) -> None:
        if self._name != name:
            return
        if event[0] == "progress":
            self.progress.emit(name, event[1], event[2])
        else:
            self.partial.emit(name, event[1])

    def _on_error(self, name: str, exc: BaseException) -> None:
        from st_app.core.experiments import ExperimentCancelled

        if isinstance(exc, ExperimentCancelled):
            self._end(name, "cancelled")
            return
        self._end(name, "failed", describe_analysis_error(exc), self._job.traceback if self._job else "")

    def _end(self, name: str, how: str, payload: Any = None, tb: str = "") -> None:
        if self._name != name:
            return
        self._name = None
        self._job = None
        self.busyChanged.emit(False)
        if how == "finished":
            self.finished.emit(name, payload)
        elif how == "failed":
            self.last_traceback = tb
            self.failed.emit(name, payload)
        else:
            self.cancelled.emit(name)

    def wait(self, timeout_ms: int = 5000) -> bool:
        """Block until the current job's work ends (tests, shutdown); True when it did."""
        job = self._job
        return job is None or job.wait(timeout_ms)

    def shutdown(self, timeout_ms: int = 2000) -> None:
        """Cancel and stop listening; the lane ends when its current step does."""
        if self._job is not None:
            self._job.cancel()
        self._name = None
        self._job = None
        shutdown_all(timeout_ms, lanes=(LANE,))
