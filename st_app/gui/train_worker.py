"""The training worker: one long-lived QObject in its own QThread.

The GUI never touches the models being trained. It sends a :class:`TrainRequest` through a
queued signal; the worker builds one core ``Trainer`` per method, steps them round-robin (one
optimizer step of each in turn, so CT and ST curves grow together) and forwards the core's
plain-dict events as Qt signals. Step events are coalesced and delivered at most
``max_rate_hz`` times a second; start, probe, epoch and end events are always delivered, each
after the steps that preceded it. Pause / resume / stop go through a thread-safe
``TrainControl`` and take effect between batches.
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from PySide6.QtCore import QObject, Signal, Slot

from st_app.core import checkpoint as ckpt
from st_app.core.data import DatasetError, load_dataset
from st_app.core.plan import NetLayout, SubnetPlan, ordered_space
from st_app.core.train import TrainConfig, TrainControl, Trainer, TrainEvents, TrainingError

__all__ = ["TrainRequest", "TrainWorker", "probe_plans", "describe_error"]

#: how many seeded random ordered sub-nets are probed besides the smallest one
RANDOM_PROBES = 3


@dataclass
class TrainRequest:
    """Everything the worker needs for one side-by-side training (plain data, no Qt)."""

    configs: list[TrainConfig]
    out_dirs: list[str]
    control: TrainControl
    probe_every: int = 0  # 0: about four probe evaluations per epoch
    random_probes: int = RANDOM_PROBES


def probe_plans(layout: NetLayout, seed: int, n_random: int = RANDOM_PROBES) -> list[SubnetPlan]:
    """The fixed probe set: the smallest ordered sub-net, then seeded random ordered ones."""
    smallest = SubnetPlan.from_depths(layout, [1] * len(layout.stages))
    full = layout.full_plan()
    others = [p for p in ordered_space(layout) if p != smallest and p != full]
    rng = random.Random(seed * 7919 + 17)
    picked = rng.sample(others, min(n_random, len(others)))
    picked.sort(key=lambda p: (sum(p.depths), p.depths))
    return [smallest, *picked]


def describe_error(exc: BaseException, starting: bool = False) -> str:
    """One clear sentence for the user; the type is named only when it is unexpected."""
    if isinstance(exc, DatasetError):
        return f"Could not load the data set: {exc}"
    if isinstance(exc, ckpt.CheckpointError):
        return f"Could not save or read a checkpoint: {exc}"
    if isinstance(exc, TrainingError):
        return f"Could not start training: {exc}" if starting else f"Training stopped: {exc}"
    if isinstance(exc, (ValueError, TypeError)):
        return f"Invalid training settings: {exc}"
    if isinstance(exc, MemoryError):
        return "Training ran out of memory; try a smaller batch size or model."
    if isinstance(exc, OSError):
        return f"File system error: {exc}"
    return f"Unexpected error during training ({type(exc).__name__}): {exc}"


class _Forwarder(TrainEvents):
    """Core events -> worker signals; step events coalesced to at most ``rate`` per second."""

    def __init__(self, worker: TrainWorker) -> None:
        self.worker = worker
        self.pending: list[dict[str, Any]] = []
        self.last_emit = 0.0

    def flush(self) -> None:
        if self.pending:
            batch, self.pending = self.pending, []
            self.last_emit = time.monotonic()
            self.worker.stepsReady.emit(batch)

    def maybe_flush(self) -> None:
        if self.pending and time.monotonic() - self.last_emit >= self.worker.min_interval:
            self.flush()

    def on_start(self, info: dict[str, Any]) -> None:
        self.flush()
        self.worker.runStarted.emit(dict(info))

    def on_step(self, info: dict[str, Any]) -> None:
        self.pending.append(dict(info))
        self.maybe_flush()

    def on_probe(self, info: dict[str, Any]) -> None:
        self.flush()
        self.worker.probed.emit(dict(info))

    def on_epoch(self, info: dict[str, Any]) -> None:
        self.flush()
        self.worker.epochEnded.emit(dict(info))

    def on_end(self, info: dict[str, Any]) -> None:
        self.flush()
        self.worker.runEnded.emit(dict(info))


class TrainWorker(QObject):
    """Lives in its own QThread; ``train`` is invoked there through a queued connection."""

    runStarted = Signal(object)  # core on_start dict
    stepsReady = Signal(object)  # list of core on_step dicts (coalesced)
    probed = Signal(object)  # core on_probe dict
    epochEnded = Signal(object)  # core on_epoch dict
    runEnded = Signal(object)  # core on_end dict
    probesChanged = Signal(object)  # {"smallest": text, "random": [texts], "user": text | None}
    pausedChanged = Signal(bool)  # the loop really is waiting (True) / going again (False)
    notice = Signal(str)  # non-fatal information (e.g. a plan that does not fit the model)
    error = Signal(str)  # one clear message per failure
    finished = Signal(object)  # {"runs": {name: dir}, "stopped": bool, "errors": [str]}

    def __init__(self, max_rate_hz: float = 20.0) -> None:
        super().__init__()
        self.min_interval = 1.0 / max_rate_hz
        self._lock = threading.Lock()
        self._user_plan: str | None = None
        self._plan_version = 0
        self._seen = 0
        self._fixed: list[SubnetPlan] = []
        self._forwarder = _Forwarder(self)

    # ------------------------------------------------------------ from any thread
    def set_probe_plan(self, text: str | None) -> None:
        """Thread-safe: the next probe evaluation of a running training includes this plan."""
        with self._lock:
            self._user_plan = (text or "").strip() or None
            self._plan_version += 1

    def _take_plan(self, seen: int) -> tuple[int, str | None] | None:
        with self._lock:
            if self._plan_version == seen:
                return None
            return self._plan_version, self._user_plan

    # ------------------------------------------------------------ worker thread
    @Slot(object)
    def train(self, request: TrainRequest) -> None:
        """Run one request to the end (or to stop / error); always emits ``finished``."""
        errors: list[str] = []
        trainers: list[Trainer] = []
        stopped = False
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # leave a core to the GUI thread
        starting = True
        try:
            trainers = self._build(request)
            starting = False
            stopped = self._loop(request, trainers, errors)
        except BaseException as exc:  # never lost, never a crash of the thread
            self._report(exc, errors, starting)
        finally:
            torch.set_num_threads(threads)
            runs = {}
            for t in trainers:
                if t.out_dir is not None and (t.out_dir / ckpt.MODEL_FILE).exists():
                    runs[t.name] = str(t.out_dir)
            self.finished.emit({"runs": runs, "stopped": stopped or request.control.stopped, "errors": errors})

    def _report(self, exc: BaseException, errors: list[str], starting: bool = False) -> None:
        msg = describe_error(exc, starting)
        if not isinstance(exc, (DatasetError, TrainingError, ckpt.CheckpointError, ValueError)):
            traceback.print_exception(exc)  # an unexpected failure: keep the trace for a bug report
        errors.append(msg)
        self.error.emit(msg)

    def _build(self, req: TrainRequest) -> list[Trainer]:
        if not req.configs:
            raise ValueError("no training method selected")
        first = req.configs[0]
        data = load_dataset(first.dataset, first.data_dir, image_size=first.image_size)
        self._forwarder = _Forwarder(self)
        trainers = []
        for cfg, out in zip(req.configs, req.out_dirs):
            if req.control.stopped:
                break
            trainers.append(Trainer(cfg, data=data, out_dir=out, events=[self._forwarder],
                                    control=req.control, name=cfg.method))
        if trainers:
            t0 = trainers[0]
            every = req.probe_every or max(1, t0.steps_per_epoch // 4)
            self._fixed = probe_plans(t0.model.layout, first.seed, req.random_probes)
            for t in trainers:
                t.probe_every = every
            with self._lock:
                self._seen, text = self._plan_version, self._user_plan
            self._apply_plan(trainers, text)
        return trainers

    def _apply_plan(self, trainers: list[Trainer], text: str | None) -> None:
        """Give every trainer the fixed probes plus the user's plan (worker thread only)."""
        probes = list(self._fixed)
        user: str | None = None
        if text:
            try:
                plan = SubnetPlan.parse(text, trainers[0].model.layout)
            except ValueError as exc:
                self.notice.emit(f"Plan {text!r} is not probed: {exc}")
            else:
                user = str(plan)
                if plan not in probes:
                    probes.append(plan)
        for t in trainers:
            t.set_probes(probes)
        self.probesChanged.emit({"smallest": str(self._fixed[0]),
                                 "random": [str(p) for p in self._fixed[1:]], "user": user})

    def _loop(self, req: TrainRequest, trainers: list[Trainer], errors: list[str]) -> bool:
        control = req.control
        fwd = self._forwarder
        seen = self._seen
        gens: dict[str, Iterator[dict[str, Any]]] = {t.name: t.iter_steps() for t in trainers}
        while gens:
            for name in list(gens):
                change = self._take_plan(seen)
                if change is not None:
                    seen, text = change
                    self._apply_plan(trainers, text)
                if control.paused and not control.stopped:
                    fwd.flush()
                    self.pausedChanged.emit(True)
                    control.wait_while_paused()
                    self.pausedChanged.emit(False)
                try:
                    next(gens[name])
                except StopIteration:
                    del gens[name]
                except Exception as exc:
                    gens.pop(name).close()
                    fwd.flush()
                    self._report(exc, errors)
        fwd.flush()
        return control.stopped
