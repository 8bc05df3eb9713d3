"""Instant accuracy: the GUI's scheduling and cancelling around the core's incremental evaluator.

The evaluation itself is :class:`st_app.core.subnet_eval.incremental.IncrementalEvaluator`
(one per loaded model, a private snapshot of its weights). Here it only gets scheduled:

* every job runs on one *lane* (:func:`st_app.gui.jobs.run_in_thread`), so the evaluators are
  only ever touched from that thread, and model changes apply in order with requests;
* ``request(plan, bn)`` cancels the previous request's job (it stops at its next check, or
  never starts) and answers at once from the results already known;
* a fast estimate comes before the exact number where that is expensive: with recalibrated
  BN, statistics from 256 calibration images first; on a large test set (> 2000 images), a
  1000-image subset first. An estimate is skipped when most of the plan's chain is cached.

Everything that crosses the thread boundary is plain Python data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from st_app.core.plan import SubnetPlan

from ..jobs import Job, run_in_thread, shutdown_all

__all__ = ["AccuracyResult", "AccuracyService", "BN_LABELS", "NO_RUNNING_STATS", "ModelPayload", "Pass", "passes"]

BN_LABELS = {
    "main": "main network (paper)",
    "recalibrate": "recalibrated per sub-net",
}
LANE = "accuracy"
CALIB_FULL = 1000
CALIB_QUICK = 256
LARGE_TEST = 2000
QUICK_TEST = 1000


@dataclass(frozen=True)
class ModelPayload:
    """What the evaluator needs for one slot (None model: clear the slot); tensors are read only."""

    slot: str
    key: str
    model: Any
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
class Pass:
    """One evaluation of a request: which calibration/test subset, and whether it is the exact one."""

    tag: str
    final: bool
    detail: str
    n_calib: int  # 0: main-network statistics
    n_test: int  # 0: the whole test set


#: what the card says when a model keeps no running statistics (both BN settings are the same number)
NO_RUNNING_STATS = "no BatchNorm: both settings equal"


def passes(bn: str, n_test: int, running_stats: bool = True) -> list[Pass]:
    """The estimate(s) and the exact pass for a BN setting and test-set size.

    A model without running statistics (a transformer's LayerNorm) has nothing to recalibrate:
    both settings are its main-network passes, computed once.
    """
    large = n_test > LARGE_TEST
    if bn == "main" or not running_stats:
        out = []
        if large:
            out.append(Pass("main@sub", False, f"estimate on {QUICK_TEST} test images", 0, QUICK_TEST))
        out.append(Pass("main", True, "main-network BN statistics" if running_stats else NO_RUNNING_STATS, 0, 0))
        return out
    return [
        Pass("recal@quick", False, f"estimate: BN from {CALIB_QUICK} images", CALIB_QUICK, QUICK_TEST if large else 0),
        Pass("recal", True, f"BN recalibrated on {CALIB_FULL} images", CALIB_FULL, 0),
    ]


class _Evaluators:
    """The lane's state: one evaluator per slot and the results computed so far (lane thread only)."""

    def __init__(self) -> None:
        self.by_slot: dict[str, tuple[str, Any]] = {}  # slot -> (model key, IncrementalEvaluator | None)
        self.running_stats: dict[str, bool] = {}  # slot -> whether its model keeps BN running statistics
        self.cache: dict[tuple[str, SubnetPlan, str], float] = {}

    def set_model(self, payload: ModelPayload, device: str = "cpu") -> Any:
        """Snapshot a model on ``device`` (generator job): yields ("model", ...) and ("flops", ...) events."""
        if payload.model is None:
            self.by_slot.pop(payload.slot, None)
            return
        self.running_stats[payload.slot] = bool(payload.model.uses_running_statistics())
        from st_app.core.subnet_eval.incremental import IncrementalEvaluator
        from st_app.core.train import resolve_device

        try:
            if payload.test_x is None:
                self.by_slot[payload.slot] = (payload.key, None)
                main = None
                model = payload.model
            else:
                assert payload.test_y is not None
                ev = IncrementalEvaluator.snapshot(payload.model, payload.test_x, payload.test_y, payload.train_x,
                                                   CALIB_FULL, device=resolve_device(device))
                self.by_slot[payload.slot] = (payload.key, ev)
                main = ev.accuracy(None)
                model = ev.model
                self.cache[(payload.key, model.layout.full_plan(), "main")] = main
            yield ("model", payload.slot, payload.key, main)
            yield ("flops", model.layout.full_plan(), int(model.plan_flops(None)))
        except Exception as exc:  # noqa: BLE001 - report, never kill the lane
            self.by_slot.pop(payload.slot, None)
            yield ("failed", f"cannot prepare the {payload.slot.upper()} model for evaluation: {exc}")

    def evaluate(self, job: Job, rid: int, plan: SubnetPlan, bn: str) -> Any:
        """All passes of one request, both slots' exact values last (generator job)."""
        snaps = [(slot, key, ev) for slot, (key, ev) in self.by_slot.items() if ev is not None]
        plan_passes = {slot: passes(bn, ev.n_test, self.running_stats.get(slot, True)) for slot, _, ev in snaps}
        for slot, key, ev in snaps:
            final = plan_passes[slot][-1]
            if (key, plan, final.tag) in self.cache or ev.mostly_cached(plan, final.n_calib if not final.n_test else 0):
                plan_passes[slot] = [final]
        rounds = max((len(v) for v in plan_passes.values()), default=0)
        for rnd in range(rounds):
            for slot, key, ev in snaps:
                ps = plan_passes[slot]
                idx = rnd - (rounds - len(ps))  # the exact passes all land in the last round
                if idx < 0:
                    continue
                p = ps[idx]
                job.check()
                t0 = time.perf_counter()
                cache_key = (key, plan, p.tag)
                cached = cache_key in self.cache
                if not cached:
                    self.cache[cache_key] = ev.accuracy(plan, n_calib=p.n_calib, n_test=p.n_test, check=job.check)
                yield ("result", AccuracyResult(rid, slot, key, plan, bn, self.cache[cache_key], p.final, p.detail,
                                                time.perf_counter() - t0, cached))
        if snaps and plan.layout == snaps[0][2].model.layout:
            yield ("flops", plan, int(snaps[0][2].model.plan_flops(plan)))


class AccuracyService(QObject):
    """GUI-thread side: schedules jobs on the accuracy lane, mirrors finished results."""

    resultReady = Signal(object)  # AccuracyResult of the current request (or a known answer)
    modelReady = Signal(str, str, object)  # slot, model key, main-net accuracy (float | None)
    flopsReady = Signal(object, int)  # plan, multiply-accumulates
    failed = Signal(str)
    busyChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._state = _Evaluators()
        self._job: Job | None = None
        self._next_id = 0
        self._current = 0
        self._keys: dict[str, str] = {}  # slot -> model key with data
        self._final: dict[tuple[str, SubnetPlan, str], AccuracyResult] = {}
        self._flops: dict[SubnetPlan, int] = {}
        self._running = True
        self._busy = False
        self._device = "cpu"
        self._payloads: dict[str, ModelPayload] = {}  # slot -> last model, re-snapshotted on a device change

    # ------------------------------------------------------------------- models
    @property
    def device(self) -> str:
        return self._device

    def set_device(self, device: str) -> None:
        """Evaluate on ``device`` from now on (the app's choice): the loaded models are snapshotted
        again there on the lane, and results from the old device are forgotten (bf16 on a GPU
        may differ from fp32 in the last digit)."""
        if device == self._device:
            return
        self._device = device
        self._final.clear()
        if self._job is not None:
            self._job.cancel()
            self._job = None
        if self._running:
            run_in_thread(self._state.cache.clear, lane=LANE, name="forget-results")
        for payload in list(self._payloads.values()):
            self.set_model(payload)

    def set_model(self, payload: ModelPayload) -> None:
        if payload.model is not None and payload.test_x is not None:
            self._keys[payload.slot] = payload.key
        else:
            self._keys.pop(payload.slot, None)
        if payload.model is not None:
            self._payloads[payload.slot] = payload
        else:
            self._payloads.pop(payload.slot, None)
        if self._running:
            run_in_thread(self._state.set_model, payload, self._device, lane=LANE, name="prepare-model",
                          connect={"yielded": self._on_event})

    def clear_model(self, slot: str) -> None:
        self.set_model(ModelPayload(slot, "", None))

    # ----------------------------------------------------------------- requests
    @property
    def current_request(self) -> int:
        return self._current

    def request(self, plan: SubnetPlan, bn: str) -> int:
        """Ask for ``plan``'s accuracy under ``bn`` on every slot; earlier requests are cancelled."""
        self._next_id += 1
        rid = self._current = self._next_id
        if self._job is not None:
            self._job.cancel()
            self._job = None
        answered = [AccuracyResult(rid, slot, key, plan, bn, hit.accuracy, True, hit.detail, 0.0, True)
                    for slot, key in self._keys.items() if (hit := self._final.get((key, plan, bn))) is not None]
        flops = self._flops.get(plan)
        if self._running and (len(answered) < len(self._keys) or flops is None):
            self._job = run_in_thread(self._state.evaluate, rid, plan, bn, lane=LANE, with_job=True, name="evaluate",
                                      connect={"yielded": self._on_event, "finished": self._on_job_finished,
                                               "errored": lambda exc, p=plan: self.failed.emit(
                                                   f"evaluation of plan {p} failed: {exc}")})
            self._set_busy(True)
        for res in answered:
            self.resultReady.emit(res)
        if flops is not None:
            self.flopsReady.emit(plan, flops)
        return rid

    def cached_flops(self, plan: SubnetPlan) -> int | None:
        return self._flops.get(plan)

    def clear_flops(self) -> None:
        self._flops.clear()

    def _on_event(self, event: tuple) -> None:
        kind = event[0]
        if kind == "result":
            res: AccuracyResult = event[1]
            if res.final:
                self._final[(res.model_key, res.plan, res.bn)] = res
            if res.request_id == self._current and self._keys.get(res.slot) == res.model_key:
                self.resultReady.emit(res)
        elif kind == "flops":
            self._flops[event[1]] = event[2]
            self.flopsReady.emit(event[1], event[2])
        elif kind == "model":
            self.modelReady.emit(event[1], event[2], event[3])
        elif kind == "failed":
            self.failed.emit(event[1])

    def _on_job_finished(self) -> None:
        if self._job is None or self._job.outcome is not None:
            self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busyChanged.emit(busy)

    # ------------------------------------------------------------------ shutdown
    def stop(self) -> None:
        """Cancel pending work; nothing new starts (no waiting)."""
        self._running = False
        if self._job is not None:
            self._job.cancel()

    def shutdown(self, timeout_ms: int = 1500) -> bool:
        """Cancel, end the lane and wait for it (at most ``timeout_ms``)."""
        self.stop()
        return shutdown_all(timeout_ms, lanes=(LANE,))

    @property
    def is_running(self) -> bool:
        return self._running
