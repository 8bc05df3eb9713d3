"""The one training loop shared by the command line and the app.

``Trainer.iter_steps()`` yields after every optimizer step, so a front end can interleave two
trainers (CT and ST side by side), pause between batches or stop; ``run()`` just drains it.
Progress goes out as plain dicts through ``TrainEvents``; nothing here knows about Qt.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from .. import checkpoint as ckpt
from ..data import ImageData, iter_batches, load_dataset
from ..evaluate import accuracy, calibration_images, recalibrate_bn
from ..meta_schema import MetaError, check_train_config
from ..methods import Method, make_method, method_from_description
from ..models import ResidualNet, build_model
from ..plan import SubnetPlan
from ..runfolder import RUN_FILES, RunFolder, has_run

__all__ = ["TrainConfig", "TrainControl", "TrainEvents", "Trainer", "TrainingError", "resolve_device"]


class TrainingError(RuntimeError):
    """Training cannot go on (NaN loss, bad run folder); saved epochs are kept."""


@dataclass
class TrainConfig:
    """Every hyper-parameter of a run; recorded in ``meta.json`` so a run can be repeated."""

    model: str = "resnet20"
    dataset: str = "digits"
    method: str = "st"
    method_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    seed: int = 0
    device: str = "auto"
    bn_reestimate: bool = False
    bn_reestimate_images: int = 2000
    data_dir: str | None = None
    image_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class TrainEvents:
    """Receiver of progress; override what you need. All arguments are plain dicts."""

    def on_start(self, info: dict[str, Any]) -> None: ...

    def on_step(self, info: dict[str, Any]) -> None: ...

    def on_probe(self, info: dict[str, Any]) -> None: ...

    def on_epoch(self, info: dict[str, Any]) -> None: ...

    def on_end(self, info: dict[str, Any]) -> None: ...


class TrainControl:
    """Thread-safe pause / resume / stop, checked between batches."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_while_paused(self) -> None:
        while not self._running.wait(timeout=0.05):
            if self._stop.is_set():
                return


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; an unavailable choice is an error."""
    name = (name or "auto").lower()
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if has_mps else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError("device 'cuda' was asked for, but torch sees no CUDA device here")
    if name == "mps" and not has_mps:
        raise TrainingError("device 'mps' was asked for, but torch sees no Apple MPS device here")
    if not re.fullmatch(r"cpu|mps|cuda(:[0-9]{1,3})?", name):
        raise TrainingError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    return torch.device(name)


def available_devices() -> list[str]:
    """Devices a user may pick: ``auto`` and whatever torch actually sees."""
    out = ["auto", "cpu"]
    if torch.cuda.is_available():
        out.insert(1, "cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.insert(1, "mps")
    return out


class Trainer:
    """One run: model, data, method, SGD + per-step cosine schedule, checkpoints, events."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        data: ImageData | None = None,
        model: ResidualNet | None = None,
        out_dir: str | Path | RunFolder | None = None,
        events: Sequence[TrainEvents] = (),
        control: TrainControl | None = None,
        probes: Sequence[SubnetPlan] = (),
        probe_every: int = 0,
        probe_images: int | None = 2000,
        name: str | None = None,
        overwrite: bool = False,
        method: Method | None = None,
        writer: bool = True,
    ) -> None:
        self.config = config
        self.name = name or config.method
        _check_config(config)
        self.device = resolve_device(config.device)
        self.data = (data or load_dataset(config.dataset, config.data_dir, image_size=config.image_size)).to(self.device)
        torch.manual_seed(config.seed)
        if model is None:
            model = build_model(config.model, self.data.num_classes, self.data.in_channels, self.data.image_size)
        self._check_model(model)
        self.model = model.to(self.device)
        self.method: Method = method or make_method(config.method, **config.method_options)
        self.method.prepare(self.model)
        extra = self.method.training_modules()
        params = list(self.model.parameters())
        if extra is not None:
            params += list(extra.to(self.device).parameters())
        self.optimizer = torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
            weight_decay=config.weight_decay,
        )
        # The run folder: locked by its one writer (rank 0 under DDP; the caller says which),
        # recovered from an interrupted commit, and written one whole epoch at a time.
        self.run_folder: RunFolder | None = None
        self.out_dir: Path | None = None
        self.writer = writer
        self.extra_files: dict[str, bytes] = {}  # more per-epoch files (command.txt...), committed with each epoch
        self._drop_previous = False
        if isinstance(out_dir, RunFolder):  # resume(): already locked and read
            self.run_folder, self.out_dir = out_dir, out_dir.path
        elif out_dir is not None:
            if not str(out_dir).strip():
                raise TrainingError("the run folder path is empty; choose a folder with --out")
            self.out_dir = Path(out_dir)
            self.run_folder = RunFolder(self.out_dir, writer=writer)
            if self.run_folder.has_run():
                if not overwrite:
                    self.run_folder.release()
                    raise TrainingError(
                        f"{self.out_dir} already holds a run; pass --resume to continue it or choose another --out"
                    )
                self._drop_previous = True  # a fresh run replaces the old one's files at its first epoch
        self.events = list(events)
        self.control = control or TrainControl()
        self.probes = list(probes)
        self.probe_every = probe_every
        self.probe_images = probe_images
        self.steps_per_epoch = math.ceil(len(self.data.train_y) / config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.epoch = 0  # completed epochs
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self._calib = calibration_images(self.data.train_x, config.bn_reestimate_images, config.seed)

    def _check_model(self, model: ResidualNet) -> None:
        c = model.config
        d = self.data
        if (c.num_classes, c.in_channels) != (d.num_classes, d.in_channels):
            raise TrainingError(
                f"model {c.arch} expects {c.in_channels} channels and {c.num_classes} classes, "
                f"the data set has {d.in_channels} and {d.num_classes}"
            )

    # ----------------------------------------------------------------- resume
    @classmethod
    def resume(
        cls,
        out_dir: str | Path,
        *,
        data_dir: str | None = None,
        allow_recorded_paths: bool = True,
        writer: bool = True,
        **kwargs: Any,
    ) -> Trainer:
        """Continue a run from its last committed epoch (weights, momentum, method parts, metrics).

        The writer takes the run's lock first (finishing or undoing an interrupted commit),
        then reads one consistent epoch. ``data_dir`` replaces the recorded data location (for
        an image folder, the folder itself); with ``allow_recorded_paths=False`` a recorded
        path is refused unless ``data_dir`` is given (the command line never uses one silently).
        """
        out_dir = Path(out_dir)
        if not out_dir.is_dir():
            raise TrainingError(f"cannot resume: {out_dir} is not a run folder")
        if not has_run(out_dir):
            raise TrainingError(f"cannot resume: {out_dir} holds no finished epoch")
        run = RunFolder(out_dir, writer=writer)
        try:
            loaded, view = ckpt.load_run_state(out_dir)
            meta = loaded.meta
            if not isinstance(meta.get("config"), dict):
                raise TrainingError(f"cannot resume {out_dir}: it was not written by st_app train")
            config = TrainConfig.from_dict(meta["config"])
            for key in ("device", "epochs"):
                if kwargs.get(key) is not None:
                    setattr(config, key, kwargs.pop(key))
            kwargs.pop("device", None)
            kwargs.pop("epochs", None)
            _resume_data_location(config, out_dir, data_dir, allow_recorded_paths)
            try:
                method = method_from_description(meta.get("method", {"name": config.method}))
            except (TypeError, ValueError) as exc:
                raise TrainingError(f"cannot resume {out_dir}: its method description is not usable: {exc}") from None
            trainer = cls(config, model=loaded.model, out_dir=run, overwrite=True, method=method, writer=writer,
                          **kwargs)
            ckpt.load_method_state(view, method.training_modules())
            ckpt.load_optimizer_state(view, trainer.optimizer)
            trainer.epoch = int(meta.get("epoch", 0))
            trainer.global_step = trainer.epoch * trainer.steps_per_epoch
            trainer.history = ckpt.read_metrics(view)[: trainer.epoch]
            command = view.get(ckpt.COMMAND_FILE)
            if command is not None:
                trainer.extra_files[ckpt.COMMAND_FILE] = command
        except BaseException:
            run.release()
            raise
        return trainer

    def _kept_note(self) -> str:
        """What a failure leaves behind, in words (no epoch finished: nothing was saved)."""
        if self.out_dir is None:
            return "nothing is saved (no run folder)"
        if self.epoch == 0:
            return f"no epoch finished, so nothing was saved in {self.out_dir}"
        return f"epoch {self.epoch} is kept in {self.out_dir}"

    def close(self) -> None:
        """Release the run folder's lock (``iter_steps`` does when it ends; the OS does at exit)."""
        if self.run_folder is not None:
            self.run_folder.release()

    # --------------------------------------------------------------- schedule
    def lr_at(self, step: int) -> float:
        """Cosine decay per step from the base rate to zero."""
        return 0.5 * self.config.lr * (1.0 + math.cos(math.pi * step / max(1, self.total_steps)))

    def _emit(self, kind: str, info: dict[str, Any]) -> None:
        for ev in self.events:
            getattr(ev, kind)(info)

    # ---------------------------------------------------------------- training
    def iter_steps(self) -> Iterator[dict[str, Any]]:
        """Train, yielding each step's info; stops early (keeping saved epochs) on request.

        The run folder's lock is held while this runs and released when it ends in any way
        (finished, stopped, failed, closed), so a stopped run can be resumed at once.
        """
        if self.run_folder is not None and self.writer:
            self.run_folder.acquire()
        try:
            yield from self._iter_steps()
        finally:
            self.close()

    def _iter_steps(self) -> Iterator[dict[str, Any]]:
        cfg = self.config
        self._emit("on_start", {"run": self.name, "epochs": cfg.epochs, "total_steps": self.total_steps,
                                "start_epoch": self.epoch, "device": str(self.device)})
        t_start = time.perf_counter()
        done_at_start = self.global_step
        stopped = False
        while self.epoch < cfg.epochs and not stopped:
            epoch = self.epoch
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
            rng = random.Random(cfg.seed * 1_000_003 + epoch)
            self.model.train()
            self.method.begin_epoch(epoch, cfg.epochs)
            loss_sum, n_seen, t_epoch = 0.0, 0, time.perf_counter()
            for i, (xb, yb) in enumerate(iter_batches(self.data.train_x, self.data.train_y, cfg.batch_size,
                                                      generator=gen, augment=self.data.augment)):
                self.control.wait_while_paused()
                if self.control.stopped:
                    stopped = True
                    break
                lr = self.lr_at(self.global_step)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                self.optimizer.zero_grad(set_to_none=True)
                terms = self.method.step(self.model, xb, yb, rng)
                values = {k: float(v) for k, v in terms.items()}
                if not math.isfinite(values["loss"]):
                    raise TrainingError(
                        f"{self.name}: loss became {values['loss']} at epoch {epoch + 1}, step {i + 1}; "
                        f"training stopped (try a lower learning rate); {self._kept_note()}"
                    )
                self.optimizer.step()
                self.global_step += 1
                loss_sum += values["loss"] * len(yb)
                n_seen += len(yb)
                elapsed = time.perf_counter() - t_start
                done = self.global_step - done_at_start
                info = {"run": self.name, "epoch": epoch + 1, "step": self.global_step,
                        "total_steps": self.total_steps, "epoch_step": i + 1,
                        "steps_per_epoch": self.steps_per_epoch, "lr": lr, "elapsed": elapsed,
                        "eta": elapsed / done * (self.total_steps - self.global_step), **values}
                self._emit("on_step", info)
                if self.probes and self.probe_every and self.global_step % self.probe_every == 0:
                    self._emit("on_probe", self.probe())
                    self.model.train()
                yield info
            if stopped:
                break
            epoch_seconds = time.perf_counter() - t_epoch
            self._finish_epoch(epoch, loss_sum / max(1, n_seen), epoch_seconds)
        self._emit("on_end", {"run": self.name, "epoch": self.epoch, "stopped": stopped,
                              "history": list(self.history)})

    def _finish_epoch(self, epoch: int, train_loss: float, epoch_seconds: float) -> None:
        cfg = self.config
        plan = self.method.eval_plan()  # None: the main net (a fixed-plan run measures its plan)
        if cfg.bn_reestimate:
            recalibrate_bn(self.model, plan, self._calib)  # the evaluated net's statistics, as the authors do
        t0 = time.perf_counter()
        test_acc = accuracy(self.model, plan, self.data.test_x, self.data.test_y)
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss, "test_acc": test_acc,
               "epoch_seconds": epoch_seconds, "eval_seconds": time.perf_counter() - t0,
               "lr": self.lr_at(self.global_step), "step": self.global_step}
        if plan is not None:
            row["eval_plan"] = str(plan)
        self.epoch = epoch + 1
        self.history.append(row)
        if self.run_folder is not None and self.writer:
            self.save(self.out_dir, row)
        self._emit("on_epoch", {"run": self.name, **row})

    def run(self) -> list[dict[str, Any]]:
        for _ in self.iter_steps():
            pass
        return self.history

    def set_probes(self, plans: Sequence[SubnetPlan]) -> None:
        """Replace the probe plans; call from the thread that runs ``iter_steps``."""
        for plan in plans:
            if plan.layout != self.model.layout:
                raise ValueError(f"probe plan {plan} does not fit {self.model.config.arch}")
        self.probes = list(plans)

    @torch.no_grad()
    def probe(self) -> dict[str, Any]:
        """Main-BN accuracy of the probe plans right now (the live CT-vs-ST curves).

        At most ``probe_images`` test images are used, so probing stays cheap on large sets.
        """
        n = self.probe_images or len(self.data.test_y)
        x, y = self.data.test_x[:n], self.data.test_y[:n]
        results = {str(p): accuracy(self.model, p, x, y) for p in self.probes}
        return {"run": self.name, "step": self.global_step, "epoch": self.epoch, "results": results}

    # ------------------------------------------------------------------ saving
    def metadata(self, row: dict[str, Any] | None = None) -> dict[str, Any]:
        d = self.data
        return {
            "config": self.config.to_dict(),
            "method": self.method.describe(),
            "dataset": {"name": d.name, "num_classes": d.num_classes, "in_channels": d.in_channels,
                        "image_size": d.image_size, "n_train": int(len(d.train_y)),
                        "n_test": int(len(d.test_y)), "classes": list(d.classes)},
            "epoch": self.epoch,
            "metrics": row or (self.history[-1] if self.history else {}),
            "torch_version": torch.__version__,
        }

    def save(self, out_dir: str | Path | None = None, row: dict[str, Any] | None = None) -> Path:
        """Commit the epoch: weights, optimizer, method parts, meta, metrics and extra files, together.

        One :meth:`RunFolder.commit`: a kill or a full disk at any moment leaves either the
        previous epoch or this one, never a mix. ``out_dir`` other than the run's own folder
        takes that folder's lock for the one commit.
        """
        own = self.run_folder is not None and (out_dir is None or Path(out_dir) == self.out_dir)
        if out_dir is None and not own:
            raise TrainingError("this trainer has no run folder to save into")
        files = ckpt.checkpoint_files(self.model, self.metadata(row), self.optimizer, self.method.training_modules())
        files[ckpt.METRICS_FILE] = "".join(json.dumps(r) + "\n" for r in self.history).encode()
        files.update(self.extra_files)
        if own:
            assert self.run_folder is not None
            drop = RUN_FILES if self._drop_previous else ()
            self.run_folder.commit(files, epoch=self.epoch, drop=drop)
            self._drop_previous = False
            return self.run_folder.path / ckpt.MODEL_FILE
        with RunFolder(Path(str(out_dir)), writer=True) as other:
            other.commit(files, epoch=self.epoch)
        return Path(str(out_dir)) / ckpt.MODEL_FILE


def _check_config(config: TrainConfig) -> None:
    """Types and hard bounds of every setting, before anything is allocated."""
    try:
        check_train_config(config.to_dict())
    except MetaError as exc:
        raise TrainingError(str(exc)) from None


def _resume_data_location(config: TrainConfig, out_dir: Path, data_dir: str | None, allow_recorded: bool) -> None:
    """Where a resumed run's data comes from: ``data_dir`` if given, a recorded path only if allowed."""
    folder = config.dataset.lower().startswith("imagefolder:")
    recorded = config.dataset.partition(":")[2] if folder else config.data_dir
    if data_dir is not None:
        if folder:
            config.dataset = f"imagefolder:{data_dir}"
        else:
            config.data_dir = data_dir
    elif recorded and not allow_recorded:
        raise TrainingError(
            f"{out_dir} records the data location {recorded!r}; recorded paths are never used silently: "
            f"pass --data-dir {recorded} to confirm it (or another folder)"
        )
