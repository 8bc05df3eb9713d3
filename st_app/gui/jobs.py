"""The one background-job pattern of the app: ``run_in_thread(fn)`` (after superqt's ``create_worker``).

Every piece of work that must not block the window (importing torch, evaluating a plan,
training, an analysis) is a :class:`Job`:

- ``fn`` is a plain function or a generator function. A generator's yields arrive in the GUI
  thread as ``yielded``; its return value (or a plain function's) as ``returned``; an
  exception as ``errored``; a cancel as ``cancelled``; then always ``finished``.
- ``job.cancel()`` is thread-safe. A generator stops at its next ``yield``; long work checks
  ``job.check()`` (raises :class:`JobCancelled`) or ``job.is_cancelled`` between units.
  With ``with_job=True`` the function receives the job as its first argument, to report
  (``job.send(value)``, the same as a yield) and check from inside callbacks.
- Jobs on the same *lane* run one after another on one long-lived thread (the accuracy
  evaluator keeps its snapshots there); ``lane=None`` gives the job a thread of its own.
  A job cancelled before its turn never runs.

Signals are relayed into the GUI thread before they are emitted, so any callable may be
connected. Python's cyclic garbage collector runs only in the GUI thread once jobs exist
(:class:`MainThreadCollector`): a Qt object caught in a garbage cycle must never be destroyed in
a worker, where its destructor would take Qt's locks and then wait for the GIL that the GUI
thread, blocked on those locks, holds (a deadlock seen in PySide). Nothing here sets torch's
thread count: that happens once, at start-up (:func:`st_app.gui.app.configure_torch_threads`).
"""

from __future__ import annotations

import atexit
import gc
import inspect
import itertools
import queue
import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, QTimer, Signal, Slot

__all__ = ["Job", "JobCancelled", "MainThreadCollector", "live_jobs", "run_in_thread", "shutdown_all"]


class JobCancelled(Exception):
    """Raised by :meth:`Job.check` once the job was cancelled."""


class Job(QObject):
    """One unit of background work and its outcome, as signals in the GUI thread."""

    yielded = Signal(object)
    returned = Signal(object)
    errored = Signal(object)  # the exception (its formatted traceback is in ``job.traceback``)
    cancelled = Signal()
    finished = Signal()

    _relay = Signal(str, object)  # worker thread -> GUI thread

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict, with_job: bool, name: str) -> None:
        super().__init__()
        self.name = name
        self._fn, self._args, self._kwargs, self._with_job = fn, args, kwargs, with_job
        self._cancel = threading.Event()
        self._done = threading.Event()
        self.traceback = ""
        self.outcome: str | None = None  # "returned" | "errored" | "cancelled", once delivered
        self.lane: _Lane | None = None
        self.cancel_hook: Callable[[], None] | None = None  # set by the work: unblocks a wait on cancel
        self._relay.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    # ------------------------------------------------------------ any thread
    def cancel(self) -> None:
        self._cancel.set()
        hook = self.cancel_hook
        if hook is not None:
            hook()

    @property
    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise :class:`JobCancelled` once cancelled (call between units of work)."""
        if self._cancel.is_set():
            raise JobCancelled

    def send(self, value: Any) -> None:
        """Send ``value`` to the GUI thread as ``yielded`` (from inside the work)."""
        self._relay.emit("yielded", value)

    @property
    def done(self) -> bool:
        """True once the work has ended in its thread (the signals may still be on their way)."""
        return self._done.is_set()

    def wait(self, timeout_ms: int = 5000) -> bool:
        """Block until the work has ended in its thread; True when it did in time."""
        return self._done.wait(max(0.0, timeout_ms / 1000))

    # ------------------------------------------------------------ worker thread
    def _run(self) -> None:
        try:
            if self._cancel.is_set():
                self._relay.emit("cancelled", None)
                return
            args = (self, *self._args) if self._with_job else self._args
            result = self._fn(*args, **self._kwargs)
            if inspect.isgenerator(result):
                result = self._drain(result)
            if self._cancel.is_set():
                self._relay.emit("cancelled", None)
            else:
                self._relay.emit("returned", result)
        except BaseException as exc:  # noqa: BLE001 - every failure reaches the GUI as one signal
            if self._cancel.is_set():
                self._relay.emit("cancelled", None)
            else:
                self.traceback = traceback.format_exc()
                self._relay.emit("errored", exc)
        finally:
            self._done.set()

    def _drain(self, gen: Any) -> Any:
        try:
            while True:
                if self._cancel.is_set():
                    gen.close()
                    return None
                value = next(gen)
                self._relay.emit("yielded", value)
        except StopIteration as stop:
            return stop.value

    # ------------------------------------------------------------ GUI thread
    @Slot(str, object)
    def _deliver(self, kind: str, value: Any) -> None:
        if kind == "yielded":
            self.yielded.emit(value)  # emitted before any cancel: listeners filter stale values
            return
        self.outcome = kind
        if kind == "returned":
            self.returned.emit(value)
        elif kind == "errored":
            self.errored.emit(value)
        else:
            self.cancelled.emit()
        self.finished.emit()
        _LIVE.discard(self)


class MainThreadCollector(QObject):
    """Automatic garbage collection off; the GUI thread collects on a timer, generation by generation
    as CPython would (after PyQt's well-known recipe)."""

    _instance: MainThreadCollector | None = None

    def __init__(self, parent: QObject | None = None, interval_ms: int = 500) -> None:
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        gc.disable()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check)
        self.timer.start(interval_ms)

    @classmethod
    def install(cls) -> None:
        """Once per process, in the GUI thread (a no-op without a Qt application)."""
        app = QCoreApplication.instance()
        if cls._instance is None and app is not None and QThread.currentThread() is app.thread():
            cls._instance = cls(app)

    def check(self) -> None:
        c0, c1, c2 = gc.get_count()
        if c0 > self.threshold[0]:
            gc.collect(0)
            if c1 > self.threshold[1]:
                gc.collect(1)
                if c2 > self.threshold[2]:
                    gc.collect(2)


class _Lane(QThread):
    """A thread that runs the jobs queued on it, one after another."""

    def __init__(self, name: str, single: bool) -> None:
        super().__init__()
        self.setObjectName(f"st-lab-{name}")
        self.queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.single = single
        self.current: Job | None = None

    def run(self) -> None:
        while True:
            job = self.queue.get()
            if job is None:
                return
            self.current = job
            job._run()
            self.current = None
            if self.single:
                return


_LANES: dict[str, _Lane] = {}
_SINGLES: list[_Lane] = []
_LIVE: set[Job] = set()
_COUNTER = itertools.count(1)


def run_in_thread(fn: Callable[..., Any], *args: Any, lane: str | None = None, with_job: bool = False,
                  name: str | None = None, connect: dict[str, Callable[..., Any]] | None = None,
                  **kwargs: Any) -> Job:
    """Run ``fn(*args, **kwargs)`` off the GUI thread; returns its :class:`Job` (already queued).

    ``connect`` maps signal names (``yielded``, ``returned``, ``errored``, ``cancelled``,
    ``finished``) to callables, connected before the job can start.
    """
    MainThreadCollector.install()
    job = Job(fn, args, kwargs, with_job, name or str(getattr(fn, "__name__", "job")))
    for signal, slot in (connect or {}).items():
        getattr(job, signal).connect(slot)
    _LIVE.add(job)
    if lane is None:
        thread = _Lane(f"{job.name}-{next(_COUNTER)}", single=True)
        _SINGLES[:] = [t for t in _SINGLES if t.isRunning()]
        _SINGLES.append(thread)
    else:
        found = _LANES.get(lane)
        if found is None or not found.isRunning():
            found = _LANES[lane] = _Lane(lane, single=False)
        thread = found
    job.lane = thread
    thread.queue.put(job)
    if not thread.isRunning():
        thread.start()
    return job


def live_jobs() -> list[Job]:
    """Jobs whose outcome has not been delivered yet (diagnostics, tests)."""
    return list(_LIVE)


def shutdown_all(timeout_ms: int = 1500, lanes: tuple[str, ...] | None = None) -> bool:
    """Cancel every job (or those of ``lanes``), end the threads and wait at most ``timeout_ms``.

    True when every thread ended in time. A thread still inside one long step stays
    referenced here (destroying a running QThread aborts the process) and is joined at exit.
    """
    import time

    deadline = time.monotonic() + timeout_ms / 1000
    chosen = [t for n, t in _LANES.items() if lanes is None or n in lanes]
    threads = chosen + (list(_SINGLES) if lanes is None else [])
    for job in list(_LIVE):
        if lanes is None or job.lane in chosen:
            job.cancel()
    for t in chosen:
        t.queue.put(None)
    ok = True
    for t in threads:
        left = max(0, int(1000 * (deadline - time.monotonic())))
        if t.isRunning() and not t.wait(left):
            ok = False
    for name in [n for n, t in _LANES.items() if t in chosen]:
        lane = _LANES.pop(name)
        if lane.isRunning():  # a later job on this lane name gets a fresh thread
            _SINGLES.append(lane)
    return ok


@atexit.register
def _join_at_exit() -> None:
    for t in [*_LANES.values(), *_SINGLES]:
        try:
            if t.isRunning():
                t.queue.put(None)
                t.wait(10000)
        except RuntimeError:  # already gone
            pass
