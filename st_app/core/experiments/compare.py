"""Method comparison (paper table 1): its seven methods trained on one recipe.

CT, CT + layer supervision, CT + stage supervision, self-distillation, stochastic depth, ST
and ST++, each with its own defaults (ST++ re-estimates BN after every epoch, as the authors).

Per method: wall time, peak memory, main-net accuracy and the mean +- std of all ordered
sub-nets (prefix tree). Memory is measured as the hardware allows and the report says how:

- CUDA: ``torch.cuda.max_memory_allocated`` during training (reset before each method).
- CPU: the rise of the process's peak resident set size (``getrusage().ru_maxrss``) over
  its value just before training. ``ru_maxrss`` is a high-water mark for the whole process,
  so by default each method trains in a fresh child process (``isolate=True``); in one
  process the later methods would only show memory above the earlier peaks.
"""

from __future__ import annotations

import copy
import math
import multiprocessing as mp
import queue as queue_mod
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..evaluate import accuracy, calibration_images
from ..methods import METHODS
from ..plan import space_size
from .common import ExperimentCancelled, Partial, Progress, ShouldStop, Steps
from .prefix_sweep import prefix_sweep

__all__ = ["CompareReport", "compare_methods"]

_RSS_UNIT = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux


def _maxrss_bytes() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * _RSS_UNIT


class _QueueEvents:
    """Trainer events forwarded from a child process (steps only; plain tuples)."""

    def __init__(self, q: Any) -> None:
        self.q = q

    def on_start(self, info: dict[str, Any]) -> None: ...

    def on_step(self, info: dict[str, Any]) -> None:
        self.q.put(("step", int(info["step"]), int(info["total_steps"])))

    def on_probe(self, info: dict[str, Any]) -> None: ...

    def on_epoch(self, info: dict[str, Any]) -> None: ...

    def on_end(self, info: dict[str, Any]) -> None: ...


def _train_measured(config_dict: dict[str, Any], run_dir: str, events: Sequence[Any] = (),
                    control: Any = None) -> dict[str, Any]:
    """Train one method into ``run_dir``; time and peak memory of the training alone."""
    from ..train import TrainConfig, Trainer

    config = TrainConfig.from_dict(config_dict)
    trainer = Trainer(config, out_dir=run_dir, overwrite=True, events=list(events), control=control)
    cuda = trainer.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    before = _maxrss_bytes()
    t0 = time.perf_counter()
    history = trainer.run()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    out = {
        "seconds": seconds,
        "train_seconds": float(sum(h["epoch_seconds"] for h in history)),
        "epochs_done": len(history),
        "stopped": trainer.control.stopped,
        "process_peak_mb": _maxrss_bytes() / 2**20,
    }
    if cuda:
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out["baseline_memory_mb"] = base / 2**20
    else:
        out["peak_memory_mb"] = (_maxrss_bytes() - before) / 2**20
        out["baseline_memory_mb"] = before / 2**20
    return out


def _child(config_dict: dict[str, Any], run_dir: str, threads: int | None, q: Any) -> None:
    try:
        if threads:
            torch.set_num_threads(threads)
        q.put(("done", _train_measured(config_dict, run_dir, events=[_QueueEvents(q)])))
    except BaseException as exc:  # report, never hang the parent
        q.put(("error", f"{type(exc).__name__}: {exc}"))


@dataclass
class CompareReport:
    model: str
    dataset: str
    epochs: int
    seed: int
    recipe: dict[str, Any]
    bn: str
    n_images: int
    calib_images: int
    n_subnets: int
    memory_method: str
    isolated: bool
    device: str
    methods: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "epochs": self.epochs,
            "seed": self.seed,
            "recipe": self.recipe,
            "bn": self.bn,
            "n_images": self.n_images,
            "calib_images": self.calib_images,
            "n_subnets": self.n_subnets,
            "device": self.device,
            "isolated": self.isolated,
            "memory_method": self.memory_method,
            "methods": self.methods,
        }


def compare_methods(
    *,
    model: str = "resnet20",
    dataset: str = "digits",
    epochs: int = 30,
    methods: Sequence[str] = METHODS,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 0.05,
    device: str = "auto",
    data_dir: str | None = None,
    runs_dir: str | Path | None = None,
    bn: str = "main",
    n_calib: int = 1000,
    isolate: bool | None = None,
    threads: int | None = None,
    progress: Progress = None,
    should_stop: ShouldStop = None,
    partial: Partial = None,
) -> CompareReport:
    """Train every method with the same recipe, then measure it (see the module docstring).

    Runs are written to ``runs_dir/<method>`` (a temporary folder when None) so that the
    other analyses can use them. ``isolate`` (default: on for CPU) trains each method in a
    fresh process for a per-method memory peak.
    """
    from ..checkpoint import load_checkpoint
    from ..data import load_dataset
    from ..models import build_model
    from ..train import TrainConfig, TrainControl, resolve_device

    methods = [m.strip().lower() for m in methods if m.strip()]
    if not methods:
        raise ValueError("no methods to compare")
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    if len(set(methods)) != len(methods):
        raise ValueError(f"a method is listed twice: {','.join(methods)}")
    if bn not in ("main", "recalibrate"):
        raise ValueError(f"unknown BN setting {bn!r}; choose 'main' or 'recalibrate'")
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    if isolate is None:
        isolate = not cuda
    data = load_dataset(dataset, data_dir)
    layout = build_model(model, data.num_classes, data.in_channels, data.image_size).layout
    n_plans = space_size(layout)
    base = TrainConfig(model=model, dataset=dataset, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                       device=str(device), data_dir=data_dir)
    steps_each = math.ceil(len(data.train_y) / batch_size) * epochs
    steps = Steps(len(methods) * (steps_each + n_plans), progress, should_stop)
    if cuda:
        memory_method = "torch.cuda.max_memory_allocated during training (MiB)"
    else:
        memory_method = ("peak resident set size (getrusage ru_maxrss) during training minus its value just "
                         "before training (MiB), " + ("each method in a fresh process" if isolate else
                                                      "all methods in one process: later methods only show "
                                                      "memory above earlier peaks"))
    tmp = None
    if runs_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="st_app_compare_")
        runs_dir = tmp.name
    runs_dir = Path(runs_dir)
    calib = calibration_images(data.train_x, n_calib, seed) if bn == "recalibrate" else None
    d = data.to(dev)
    report = CompareReport(model=model, dataset=data.name, epochs=epochs, seed=seed,
                           recipe={k: v for k, v in base.to_dict().items() if k not in ("method", "method_options")},
                           bn=bn, n_images=int(len(data.test_y)), calib_images=0 if calib is None else len(calib),
                           n_subnets=n_plans, memory_method=memory_method, isolated=bool(isolate), device=str(dev))
    try:
        for k, method in enumerate(methods):
            steps.check()
            offset = k * (steps_each + n_plans)
            config = TrainConfig.from_dict({**base.to_dict(), "method": method})
            run_dir = runs_dir / method
            if isolate:
                measured = _train_in_child(config.to_dict(), str(run_dir), threads, steps, offset)
            else:
                control = TrainControl()
                measured = _train_measured(config.to_dict(), str(run_dir),
                                           events=[_InlineEvents(steps, offset, control)], control=control)
                if measured["stopped"]:
                    raise ExperimentCancelled("comparison cancelled")
            loaded = load_checkpoint(run_dir, device=dev)
            net = loaded.model
            main_acc = accuracy(net, None, d.test_x, d.test_y)
            sweep = prefix_sweep(net, d.test_x, d.test_y, bn=bn, calib_images=None if calib is None else calib.to(dev),
                                 progress=steps.sub(offset + steps_each), should_stop=should_stop)
            if len(sweep.results) < n_plans:
                raise ExperimentCancelled("comparison cancelled")
            s = sweep.summary()
            report.methods.append({
                "method": method,
                "seconds": round(measured["seconds"], 3),
                "train_seconds": round(measured["train_seconds"], 3),
                "peak_memory_mb": round(measured["peak_memory_mb"], 2),
                "process_peak_mb": round(measured["process_peak_mb"], 2),
                "main_accuracy": round(main_acc, 4),
                "subnets_mean": round(s["mean"], 4),
                "subnets_std": round(s["std"], 4),
                "subnets_min": round(s["min"], 4),
                "subnets_max": round(s["max"], 4),
                "run": str(run_dir) if tmp is None else None,
                "epoch": loaded.meta.get("epoch"),
                "bn_reestimate": bool(loaded.meta.get("config", {}).get("bn_reestimate")),
                "method_options": loaded.meta.get("method", {}),
            })
            if partial is not None and len(report.methods) < len(methods):
                partial(copy.deepcopy(report.to_dict()))  # a snapshot: the worker keeps filling its dicts
    finally:
        if tmp is not None:
            tmp.cleanup()
    return report


class _InlineEvents(_QueueEvents):
    def __init__(self, steps: Steps, offset: int, control: Any) -> None:
        self.steps, self.offset, self.control = steps, offset, control

    def on_step(self, info: dict[str, Any]) -> None:
        self.steps.sub(self.offset)(int(info["step"]), int(info["total_steps"]))
        if self.steps.should_stop is not None and self.steps.should_stop():
            self.control.stop()


def _train_in_child(config_dict: dict[str, Any], run_dir: str, threads: int | None, steps: Steps,
                    offset: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")  # never fork a process that already runs torch threads
    q = ctx.Queue()
    proc = ctx.Process(target=_child, args=(config_dict, run_dir, threads or torch.get_num_threads(), q),
                       daemon=True)
    proc.start()
    report = steps.sub(offset)
    try:
        while True:
            if steps.should_stop is not None and steps.should_stop():
                proc.terminate()
                raise ExperimentCancelled("comparison cancelled")
            try:
                msg = q.get(timeout=0.1)
            except queue_mod.Empty:
                if not proc.is_alive() and q.empty():
                    raise RuntimeError(f"training {config_dict['method']} in a child process ended without a "
                                       f"result (exit code {proc.exitcode})") from None
                continue
            if msg[0] == "step":
                report(msg[1], msg[2])
            elif msg[0] == "done":
                return msg[1]
            else:
                raise RuntimeError(f"training {config_dict['method']} failed: {msg[1]}")
    finally:
        # after "done" the child only has to exit; otherwise (cancel, error) stop it now
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()
            proc.join()
