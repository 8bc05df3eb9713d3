"""Side-by-side training as a background job (:func:`st_app.gui.jobs.run_in_thread`).

The GUI never touches the models being trained. :func:`train` builds one core ``Trainer`` per
method, steps them round-robin (one optimizer step of each in turn, so CT and ST curves grow
together) and yields the core's plain-dict events as ``(kind, payload)`` tuples, which reach
the GUI thread as the job's ``yielded`` signal. Step events are coalesced and delivered at most
``max_rate_hz`` times a second; start, probe, epoch and end events are always delivered, each
after the steps that preceded it. Pause / resume / stop go through a thread-safe
``TrainControl`` and take effect between batches; cancelling the job stops it too.
"""

from __future__ import annotations

import random
import threading
import time
import traceback
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

from st_app.core import checkpoint as ckpt
from st_app.core.data import DatasetError, load_dataset
from st_app.core.plan import NetLayout, SubnetPlan, ordered_space
from st_app.core.runfolder import RunFolderError
from st_app.core.safeio import OutputError
from st_app.core.train import TrainConfig, TrainControl, Trainer, TrainEvents, TrainingError

__all__ = ["ProbePlan", "TrainRequest", "probe_plans", "describe_error", "train"]

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
    if isinstance(exc, (RunFolderError, OutputError)):  # a locked run folder (names the holder), a full disk
        return f"Could not write the run: {exc}"
    if isinstance(exc, TrainingError):
        return f"Could not start training: {exc}" if starting else f"Training stopped: {exc}"
    if isinstance(exc, (ValueError, TypeError)):
        return f"Invalid training settings: {exc}"
    if isinstance(exc, MemoryError):
        return "Training ran out of memory; try a smaller batch size or model."
    if isinstance(exc, OSError):
        return f"File system error: {exc}"
    return f"Unexpected error during training ({type(exc).__name__}): {exc}"


class ProbePlan:
    """The user's plan to probe, set from the GUI thread and read by the training (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._text: str | None = None
        self.version = 0

    def set(self, text: str | None) -> None:
        with self._lock:
            self._text = (text or "").strip() or None
            self.version += 1

    def take(self, seen: int) -> tuple[int, str | None] | None:
        """``(version, text)`` when it changed since version ``seen``, else None."""
        with self._lock:
            return None if self.version == seen else (self.version, self._text)


class _Outbox(TrainEvents):
    """Core events -> queued ``(kind, payload)`` tuples; steps coalesced to at most ``rate`` per second."""

    def __init__(self, max_rate_hz: float) -> None:
        self.min_interval = 1.0 / max_rate_hz
        self.events: list[tuple[str, Any]] = []
        self.pending: list[dict[str, Any]] = []
        self.last_emit = 0.0

    def flush(self) -> None:
        if self.pending:
            batch, self.pending = self.pending, []
            self.last_emit = time.monotonic()
            self.events.append(("steps", batch))

    def put(self, kind: str, payload: Any) -> None:
        self.flush()
        self.events.append((kind, payload))

    def on_start(self, info: dict[str, Any]) -> None:
        self.put("started", dict(info))

    def on_step(self, info: dict[str, Any]) -> None:
        self.pending.append(dict(info))
        if time.monotonic() - self.last_emit >= self.min_interval:
            self.flush()

    def on_probe(self, info: dict[str, Any]) -> None:
        self.put("probed", dict(info))

    def on_epoch(self, info: dict[str, Any]) -> None:
        self.put("epoch", dict(info))

    def on_end(self, info: dict[str, Any]) -> None:
        self.put("ended", dict(info))

    def drain(self) -> Iterator[tuple[str, Any]]:
        while self.events:
            yield self.events.pop(0)


def train(job: Any, request: TrainRequest, probe: ProbePlan,
          max_rate_hz: float = 20.0) -> Generator[tuple[str, Any], None, dict[str, Any]]:
    """Run one request to the end (or to stop / cancel / error); returns the summary
    ``{"runs": {name: dir}, "stopped": bool, "errors": [str]}``."""
    errors: list[str] = []
    trainers: list[Trainer] = []
    stopped = False
    out = _Outbox(max_rate_hz)
    job.cancel_hook = request.control.stop  # a cancel also ends a pause
    try:
        try:
            trainers, fixed = _build(request, out)
            seen = _apply_plan(trainers, fixed, probe, -1, out)
        except BaseException as exc:  # noqa: BLE001 - reported, never a crash of the thread
            _report(exc, errors, out, starting=True)
        else:
            yield from out.drain()
            gens: dict[str, Iterator[dict[str, Any]]] = {t.name: t.iter_steps() for t in trainers}
            control = request.control
            while gens:
                for name in list(gens):
                    if job.is_cancelled:
                        control.stop()
                    seen = _apply_plan(trainers, fixed, probe, seen, out)
                    if control.paused and not control.stopped:
                        out.put("paused", True)
                        yield from out.drain()
                        control.wait_while_paused()
                        out.put("paused", False)
                    try:
                        next(gens[name])
                    except StopIteration:
                        del gens[name]
                    except Exception as exc:  # noqa: BLE001
                        getattr(gens.pop(name), "close", lambda: None)()
                        _report(exc, errors, out)
                    yield from out.drain()
            out.flush()
            stopped = control.stopped
        yield from out.drain()
    finally:
        runs = {t.name: str(t.out_dir) for t in trainers
                if t.out_dir is not None and (t.out_dir / ckpt.MODEL_FILE).exists()}
        summary = {"runs": runs, "stopped": stopped or request.control.stopped, "errors": errors}
    return summary


def _report(exc: BaseException, errors: list[str], out: _Outbox, starting: bool = False) -> None:
    msg = describe_error(exc, starting)
    if not isinstance(exc, (DatasetError, TrainingError, ckpt.CheckpointError, ValueError)):
        traceback.print_exception(exc)  # an unexpected failure: keep the trace for a bug report
    errors.append(msg)
    out.put("error", msg)


def _build(req: TrainRequest, out: _Outbox) -> tuple[list[Trainer], list[SubnetPlan]]:
    if not req.configs:
        raise ValueError("no training method selected")
    first = req.configs[0]
    data = load_dataset(first.dataset, first.data_dir, image_size=first.image_size)
    trainers = []
    for cfg, out_dir in zip(req.configs, req.out_dirs):
        if req.control.stopped:
            break
        trainers.append(Trainer(cfg, data=data, out_dir=out_dir, events=[out], control=req.control, name=cfg.method))
    fixed: list[SubnetPlan] = []
    if trainers:
        t0 = trainers[0]
        every = req.probe_every or max(1, t0.steps_per_epoch // 4)
        fixed = probe_plans(t0.model.layout, first.seed, req.random_probes)
        for t in trainers:
            t.probe_every = every
    return trainers, fixed


def _apply_plan(trainers: list[Trainer], fixed: list[SubnetPlan], probe: ProbePlan, seen: int, out: _Outbox) -> int:
    """Give every trainer the fixed probes plus the user's plan, when it changed."""
    change = probe.take(seen)
    if change is None or not trainers:
        return seen
    version, text = change
    probes = list(fixed)
    user: str | None = None
    if text:
        try:
            plan = SubnetPlan.parse(text, trainers[0].model.layout)
        except ValueError as exc:
            out.put("notice", f"Plan {text!r} is not probed: {exc}")
        else:
            user = str(plan)
            if plan not in probes:
                probes.append(plan)
    for t in trainers:
        t.set_probes(probes)
    out.put("probes", {"smallest": str(fixed[0]), "random": [str(p) for p in fixed[1:]], "user": user})
    return version
