"""Instant accuracy: evaluate the current plan off the GUI thread, latest request wins.

One long-lived :class:`AccuracyWorker` lives in its own ``QThread`` and owns *snapshots* of
the loaded models (a ``copy.deepcopy`` made once per load, in the worker thread), so it never
races whatever the GUI or a training run does with the originals. The GUI talks to it only
through :class:`AccuracyService`:

* ``request(plan, bn)`` supersedes every earlier request. The worker checks between units of
  work (one model, one pass) and drops stale requests; the GUI also drops any result whose
  request id is no longer current.
* Results are cached per ``(model key, plan, BN setting, pass)``; plans are hashable. The
  service mirrors the final results, so undo/redo to a known plan answers without a round
  trip through the worker.
* A fast first estimate comes before the exact number where one is expensive: with
  recalibrated BN, statistics from 256 calibration images first, then from all 1000; on a
  large test set (> 2000 images), a fixed 1000-image subset first, then the whole set.

Everything that crosses the thread boundary is plain Python data.
"""

from __future__ import annotations

import atexit
import copy
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from st_app.core.plan import SubnetPlan

__all__ = ["AccuracyResult", "AccuracyService", "AccuracyWorker", "BN_LABELS", "ModelPayload", "keep_until_finished"]

BN_LABELS = {
    "main": "main network (paper's setting)",
    "recalibrate": "recalibrated for this sub-net",
}
CALIB_FULL = 1000
CALIB_QUICK = 256
LARGE_TEST = 2000
QUICK_TEST = 1000
CHUNK = 1000  # test images per forward; cancellation is checked between chunks
PREFIX_CACHE_MAX_IMAGES = CHUNK  # larger test sets: no activation cache, chunked evaluation
PREFIX_CACHE_BYTES = 64 * 2**20  # per model


class _Cancelled(Exception):
    """The request went stale (or the app is closing) in the middle of an evaluation."""


@dataclass(frozen=True)
class ModelPayload:
    """What the worker needs to evaluate one slot; tensors are shared read-only."""

    slot: str
    key: str
    model: Any  # ResidualNet (the GUI's copy; the worker deep-copies it)
    test_x: Any | None = None
    test_y: Any | None = None
    train_x: Any | None = None


@dataclass(frozen=True)
class AccuracyResult:
    request_id: int
    slot: str
    model_key: str
    plan: SubnetPlan
    bn: str
    accuracy: float
    final: bool
    detail: str
    seconds: float = 0.0
    cached: bool = False


@dataclass(frozen=True)
class _Request:
    id: int
    plan: SubnetPlan
    bn: str


@dataclass(frozen=True)
class _Pass:
    tag: str  # cache key part: which calibration/test subset
    final: bool
    detail: str
    n_calib: int  # 0: main-network statistics
    n_test: int  # 0: the whole test set


@dataclass
class _Snapshot:
    key: str
    model: Any
    test_x: Any | None
    test_y: Any | None
    calib: Any | None
    main_accuracy: float | None = None
    # main-BN activations of the whole test set after each prefix of operations (see
    # _PrefixCache); None when the test set is too large to keep activations around
    prefixes: _PrefixCache | None = None


class _PrefixCache:
    """LRU of test-set activations keyed by the operations that produced them.

    With main-network BN statistics (eval mode) a sub-network is a fixed chain of operations
    (stem, then per stage an optional projection of a dropped entry block and the active
    blocks in order), so the activation after any prefix of that chain depends on the prefix
    alone. An edit usually changes the chain somewhere in the middle: everything before the
    change comes from here, which halves the work of a typical click.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        self.used = 0
        self.items: OrderedDict[tuple, Any] = OrderedDict()

    def get(self, key: tuple) -> Any | None:
        x = self.items.get(key)
        if x is not None:
            self.items.move_to_end(key)
        return x

    def longest(self, key: Any, length: int, shortest: int = 0) -> tuple[int, Any | None]:
        """The longest cached prefix ``key(n)``, ``length >= n >= shortest``: ``(n, value)``, or ``(0, None)``."""
        for n in range(length, shortest - 1, -1):
            x = self.get(key(n))
            if x is not None:
                return n, x
        return 0, None

    def put(self, key: tuple, x: Any) -> None:
        """Keep ``x`` (a tensor, or a tuple/list of tensors) unless it is too big to be worth it."""
        if key in self.items:
            return
        size = _nbytes(x)
        if size > self.budget // 4:
            return
        self.items[key] = x
        self.used += size
        while self.used > self.budget and self.items:
            _, old = self.items.popitem(last=False)
            self.used -= _nbytes(old)


def _recal_key(n_calib: int, ops: tuple) -> tuple:
    """Cache key of a recalibrated prefix: (calibration activations per batch, test activations)."""
    return ("recal", n_calib, ops)


def _nbytes(x: Any) -> int:
    if isinstance(x, (tuple, list)):
        return sum(_nbytes(v) for v in x)
    return int(x.numel() * x.element_size())


def _passes(bn: str, n_test: int) -> list[_Pass]:
    large = n_test > LARGE_TEST
    if bn == "main":
        out = []
        if large:
            out.append(_Pass("main@sub", False, f"estimate on {QUICK_TEST} test images", 0, QUICK_TEST))
        out.append(_Pass("main", True, "main-network BN statistics", 0, 0))
        return out
    return [
        _Pass("recal@quick", False, f"estimate: BN from {CALIB_QUICK} images", CALIB_QUICK,
              QUICK_TEST if large else 0),
        _Pass("recal", True, f"BN recalibrated on {CALIB_FULL} images", CALIB_FULL, 0),
    ]


class AccuracyWorker(QObject):
    """Lives in the accuracy thread; every slot here runs there."""

    resultReady = Signal(object)  # AccuracyResult
    modelReady = Signal(str, str, object)  # slot, model key, main-net accuracy (float | None)
    flopsReady = Signal(object, int)  # plan, multiply-accumulates
    failed = Signal(str)
    busyChanged = Signal(bool)

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._pending: _Request | None = None
        self._pending_models: dict[str, ModelPayload] = {}
        self._latest = 0
        self._snapshots: dict[str, _Snapshot] = {}
        self._cache: dict[tuple[str, SubnetPlan, str], float] = {}
        self._torch: Any = None

    # ------------------------------------------------------------ thread-safe entry
    def post(self, request: _Request) -> None:
        """Called from the GUI thread: replace whatever is waiting."""
        with self._lock:
            self._pending = request
            self._latest = request.id

    def post_model(self, payload: ModelPayload) -> None:
        """Called from the GUI thread: a slot's model changed (applied before the next request)."""
        with self._lock:
            self._pending_models[payload.slot] = payload

    def cancel(self, latest_id: int) -> None:
        with self._lock:
            self._pending = None
            self._latest = latest_id

    def _superseded(self, req: _Request) -> bool:
        with self._lock:
            return self._latest != req.id

    # ----------------------------------------------------------------- worker slots
    def _ensure_torch(self) -> Any:
        """Import torch on first use (not at thread start: an idle thread must quit at once)."""
        if self._torch is None:
            import torch

            # Leave the other core to the GUI. (torch's setting is process-wide.)
            torch.set_num_threads(1)
            self._torch = torch
        return self._torch

    def _set_model(self, payload: ModelPayload) -> None:
        """Snapshot a model for a slot (None model: clear the slot)."""
        if payload.model is None:
            self._snapshots.pop(payload.slot, None)
            return
        try:
            torch = self._ensure_torch()
            from st_app.core.evaluate import calibration_images

            with torch.no_grad():
                model = copy.deepcopy(payload.model).cpu().eval()
                # Channels-last runs these small convolutions ~25% faster on CPU.
                model = model.to(memory_format=torch.channels_last)
            test_x = calib = None
            if payload.test_x is not None:
                test_x = payload.test_x.cpu().contiguous(memory_format=torch.channels_last)
                calib = calibration_images(payload.train_x.cpu(), CALIB_FULL).contiguous(
                    memory_format=torch.channels_last
                )
            snap = _Snapshot(payload.key, model, test_x, payload.test_y, calib)
            if test_x is not None and len(payload.test_y) <= PREFIX_CACHE_MAX_IMAGES:
                snap.prefixes = _PrefixCache(PREFIX_CACHE_BYTES)
            self._snapshots[payload.slot] = snap
            if test_x is not None:
                snap.main_accuracy = self._accuracy(model, None, test_x, payload.test_y, None, None)
                self._cache[(snap.key, model.layout.full_plan(), "main")] = snap.main_accuracy
            self.modelReady.emit(payload.slot, payload.key, snap.main_accuracy)
            # the full network's cost, the reference for every "% of full"
            self.flopsReady.emit(model.layout.full_plan(), int(model.plan_flops(None)))
        except _Cancelled:
            self._snapshots.pop(payload.slot, None)
        except Exception as exc:  # noqa: BLE001 - report, never kill the worker thread
            self._snapshots.pop(payload.slot, None)
            self.failed.emit(f"cannot prepare the {payload.slot.upper()} model for evaluation: {exc}")

    @Slot()
    def process(self) -> None:
        """Apply model changes, then take the newest request (older ones were overwritten)."""
        while True:
            with self._lock:
                req, self._pending = self._pending, None
                models, self._pending_models = self._pending_models, {}
            for payload in models.values():
                self._set_model(payload)
            if req is None:
                if models:
                    continue  # a request may have arrived meanwhile
                return
            self.busyChanged.emit(True)
            try:
                self._run(req)
            except _Cancelled:
                pass
            except Exception as exc:  # noqa: BLE001
                self.failed.emit(f"evaluation of plan {req.plan} failed: {exc}")
            finally:
                self.busyChanged.emit(False)

    # ------------------------------------------------------------------- the work
    def _evaluate(self, snap: _Snapshot, plan: SubnetPlan, p: _Pass, req: _Request) -> float:
        x, y = snap.test_x, snap.test_y
        if not p.n_test and snap.prefixes is not None:
            if not p.n_calib:
                return self._accuracy_from_prefixes(snap, plan)
            return self._recalibrated_from_prefixes(snap, plan, p.n_calib, req)
        if p.n_test:
            x, y = x[: p.n_test], y[: p.n_test]
        calib = snap.calib[: p.n_calib] if p.n_calib else None
        return self._accuracy(snap.model, plan, x, y, calib, req)

    def _accuracy_from_prefixes(self, snap: _Snapshot, plan: SubnetPlan) -> float:
        """Main-BN accuracy of ``plan``, reusing cached activations of shared prefixes.

        Runs exactly the operations of ``ResidualNet.forward(x, plan)`` (stem, per stage the
        projection of a dropped shape-changing entry block, then the active blocks in plan
        order, then the head), in eval mode.
        """
        from st_app.core.experiments.prefix_sweep import plan_ops, run_op

        torch = self._ensure_torch()
        model, cache = snap.model, snap.prefixes
        ops = plan_ops(model, plan)
        start, x = cache.longest(lambda n: ops[:n], len(ops))
        with torch.no_grad():
            if x is None:
                x = run_op(model, None, snap.test_x)
                cache.put((), x)
            for n in range(start, len(ops)):
                x = run_op(model, ops[n], x)
                cache.put(ops[: n + 1], x)
            pred = model.forward_head(x).argmax(dim=1)
        return 100.0 * float((pred == snap.test_y).sum()) / max(1, len(snap.test_y))

    def _recalibrated_from_prefixes(self, snap: _Snapshot, plan: SubnetPlan, n_calib: int, req: _Request) -> float:
        """Recalibrated-BN accuracy of ``plan``, reusing the work of shared prefixes.

        Exactly ``core.evaluate.accuracy(bn="recalibrate")``: BN statistics re-estimated as a
        cumulative average over the calibration images in batches of ``CALIB_BATCH`` (train
        mode), then the test set in eval mode. In train mode a layer normalises with the
        batch's own statistics, so the calibration activations after a chain of operations,
        and the statistics each operation re-estimates, depend on that chain alone: a prefix
        cached once (per batch of calibration images, plus the test activations it leads to)
        serves every plan that starts the same way. The model's main statistics are restored.
        """
        from st_app.core.evaluate import bn_state
        from st_app.core.experiments.prefix_sweep import CALIB_BATCH, plan_ops

        torch = self._ensure_torch()
        model, cache = snap.model, snap.prefixes
        ops = plan_ops(model, plan)
        calib = snap.calib[:n_calib]
        start, entry = cache.longest(lambda n: _recal_key(n_calib, ops[:n]), len(ops))
        with torch.no_grad(), bn_state(model):
            if entry is None:
                batches = [calib[i : i + CALIB_BATCH] for i in range(0, len(calib), CALIB_BATCH)]
                entry = self._recalibrate_op(model, None, batches, snap.test_x)
                cache.put(_recal_key(n_calib, ()), entry)
            for n in range(start, len(ops)):
                self._check_current(req)
                entry = self._recalibrate_op(model, ops[n], entry[0], entry[1])
                cache.put(_recal_key(n_calib, ops[: n + 1]), entry)
            model.eval()
            pred = model.forward_head(entry[1]).argmax(dim=1)
        return 100.0 * float((pred == snap.test_y).sum()) / max(1, len(snap.test_y))

    @staticmethod
    def _mostly_cached(snap: _Snapshot, plan: SubnetPlan, final: _Pass) -> bool:
        """True when the recalibrated prefix cache already covers at least half of ``plan``'s chain."""
        if not final.n_calib or final.n_test or snap.prefixes is None:
            return False
        from st_app.core.experiments.prefix_sweep import plan_ops

        ops = plan_ops(snap.model, plan)
        _, entry = snap.prefixes.longest(lambda n: _recal_key(final.n_calib, ops[:n]), len(ops),
                                         shortest=max(1, (len(ops) + 1) // 2))
        return entry is not None

    @staticmethod
    def _recalibrate_op(model: Any, op: Any, calib_in: list, test_in: Any) -> tuple[list, Any]:
        """One operation (None: the stem): re-estimate its BN statistics, then run the test set."""
        from st_app.core.experiments.prefix_sweep import op_bn_layers, run_op

        for m in op_bn_layers(model, op):
            m.reset_running_stats()
            m.momentum = None  # cumulative average, as recalibrate_bn
        model.train()
        calib_out = [run_op(model, op, x) for x in calib_in]
        model.eval()
        return calib_out, run_op(model, op, test_in)

    def _accuracy(self, model: Any, plan: SubnetPlan | None, x: Any, y: Any, calib: Any | None,
                  req: _Request | None) -> float:
        """``core.evaluate.accuracy`` in chunks, so a stale request or shutdown stops it early.

        Same semantics: main-network statistics, or (``calib`` given) statistics recalibrated
        for ``plan`` on ``calib`` and restored afterwards.
        """
        from st_app.core.evaluate import accuracy

        self._ensure_torch()
        bn = "main" if calib is None else "recalibrate"
        return accuracy(model, plan, x, y, bn=bn, calib_images=calib, batch_size=CHUNK,
                        before_batch=lambda: self._check_current(req))

    def _check_current(self, req: _Request | None) -> None:
        """Raise ``_Cancelled`` once ``req`` is superseded (or the app is closing)."""
        with self._lock:
            stale = self._latest == -1 or (req is not None and self._latest != req.id)
        if stale:
            raise _Cancelled

    def _run(self, req: _Request) -> None:
        snaps = [(slot, s) for slot, s in self._snapshots.items() if s.test_x is not None]
        plan_passes = {slot: _passes(req.bn, len(s.test_y)) for slot, s in snaps}
        # Skip estimates for slots whose exact answer is already known, or cheap: most of the
        # plan's chain is cached, so the exact value comes about as fast as an estimate would.
        for slot, s in snaps:
            final = plan_passes[slot][-1]
            if (s.key, req.plan, final.tag) in self._cache or self._mostly_cached(s, req.plan, final):
                plan_passes[slot] = [final]
        n_rounds = max((len(v) for v in plan_passes.values()), default=0)
        flops_done = False
        for rnd in range(n_rounds):
            for slot, s in snaps:
                passes = plan_passes[slot]
                # Align the final pass to the last round so both slots finish together.
                idx = rnd - (n_rounds - len(passes))
                if idx < 0:
                    continue
                p = passes[idx]
                if self._superseded(req):
                    return
                key = (s.key, req.plan, p.tag)
                t0 = time.perf_counter()
                cached = key in self._cache
                if not cached:
                    self._cache[key] = self._evaluate(s, req.plan, p, req)
                self.resultReady.emit(
                    AccuracyResult(req.id, slot, s.key, req.plan, req.bn, self._cache[key], p.final,
                                   p.detail, time.perf_counter() - t0, cached)
                )
            if not flops_done:
                flops_done = self._emit_flops(req)
        if not flops_done:
            self._emit_flops(req)

    def _emit_flops(self, req: _Request) -> bool:
        if self._superseded(req) or not self._snapshots:
            return False
        model = next(iter(self._snapshots.values())).model
        if req.plan.layout != model.layout:
            return True
        self.flopsReady.emit(req.plan, int(model.plan_flops(req.plan)))
        return True


_ORPHANS: list[tuple[QThread, QObject]] = []


def _forget(thread: QThread) -> None:
    _ORPHANS[:] = [(t, w) for t, w in _ORPHANS if t is not thread]


def keep_until_finished(thread: QThread, companion: QObject | None = None) -> None:
    """Hold a still-running QThread (and its worker) until it ends, waited for at exit.

    Destroying a running QThread aborts the whole process, so a window that closes while a
    thread is busy (importing torch, one last evaluation) hands the thread over to here.
    """
    if thread.parent() is not None:
        thread.setParent(None)
    _ORPHANS.append((thread, companion if companion is not None else thread))
    thread.finished.connect(lambda t=thread: _forget(t))


@atexit.register
def _join_orphans() -> None:
    for thread, _worker in list(_ORPHANS):
        thread.wait(10000)


class AccuracyService(QObject):
    """GUI-thread facade: owns the worker thread, mirrors finished results."""

    resultReady = Signal(object)  # AccuracyResult, for the current request or a cached answer
    modelReady = Signal(str, str, object)
    flopsReady = Signal(object, int)
    failed = Signal(str)
    busyChanged = Signal(bool)

    _wake = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("st-lab-accuracy")
        self._worker = AccuracyWorker()
        self._worker.moveToThread(self._thread)
        self._wake.connect(self._worker.process, Qt.ConnectionType.QueuedConnection)
        self._worker.resultReady.connect(self._on_result, Qt.ConnectionType.QueuedConnection)
        self._worker.modelReady.connect(self.modelReady, Qt.ConnectionType.QueuedConnection)
        self._worker.flopsReady.connect(self._on_flops, Qt.ConnectionType.QueuedConnection)
        self._worker.failed.connect(self.failed, Qt.ConnectionType.QueuedConnection)
        self._worker.busyChanged.connect(self.busyChanged, Qt.ConnectionType.QueuedConnection)
        self._next_id = 0
        self._current = 0
        self._keys: dict[str, str] = {}  # slot -> model key with data
        self._final: dict[tuple[str, SubnetPlan, str], AccuracyResult] = {}
        self._flops: dict[SubnetPlan, int] = {}
        self._running = True
        self._thread.start()

    # ------------------------------------------------------------------- models
    def set_model(self, payload: ModelPayload) -> None:
        if payload.model is not None and payload.test_x is not None:
            self._keys[payload.slot] = payload.key
        else:
            self._keys.pop(payload.slot, None)
        self._worker.post_model(payload)
        self._wake.emit()

    def clear_model(self, slot: str) -> None:
        self.set_model(ModelPayload(slot, "", None))

    # ----------------------------------------------------------------- requests
    @property
    def current_request(self) -> int:
        return self._current

    def request(self, plan: SubnetPlan, bn: str) -> int:
        """Ask for ``plan``'s accuracy under ``bn`` on every slot; earlier requests go stale."""
        self._next_id += 1
        rid = self._current = self._next_id
        answered = []
        for slot, key in self._keys.items():
            hit = self._final.get((key, plan, bn))
            if hit is not None:
                answered.append(AccuracyResult(rid, slot, key, plan, bn, hit.accuracy, True, hit.detail,
                                               0.0, True))
        flops = self._flops.get(plan)
        if len(answered) == len(self._keys) and flops is not None:
            self._worker.cancel(rid)  # nothing to compute: stop stale work at once
        else:
            self._worker.post(_Request(rid, plan, bn))
            self._wake.emit()
        for res in answered:
            self.resultReady.emit(res)
        if flops is not None:
            self.flopsReady.emit(plan, flops)
        return rid

    def cached_flops(self, plan: SubnetPlan) -> int | None:
        return self._flops.get(plan)

    def _on_result(self, res: AccuracyResult) -> None:
        if res.final:
            self._final[(res.model_key, res.plan, res.bn)] = res
        if res.request_id == self._current and self._keys.get(res.slot) == res.model_key:
            self.resultReady.emit(res)

    def _on_flops(self, plan: SubnetPlan, flops: int) -> None:
        self._flops[plan] = flops
        self.flopsReady.emit(plan, flops)

    def clear_flops(self) -> None:
        self._flops.clear()

    # ------------------------------------------------------------------ shutdown
    def stop(self) -> None:
        """Drop pending work and ask the thread to end after its current unit (no waiting)."""
        self._worker.cancel(-1)
        self._thread.quit()

    def shutdown(self, timeout_ms: int = 1500) -> bool:
        """Drop pending work, stop the thread and wait for it (at most ``timeout_ms``)."""
        if not self._running:
            return True
        self._running = False
        self.stop()
        ok = bool(self._thread.wait(timeout_ms))
        if not ok:
            # Still inside one unit of work: keep it alive until it ends (see keep_until_finished).
            keep_until_finished(self._thread, self._worker)
        return ok

    @property
    def is_running(self) -> bool:
        return self._running
