"""The one training loop shared by the command line and the app.

``Trainer.iter_steps()`` yields after every optimizer step, so a front end can interleave two
trainers (CT and ST side by side), pause between batches or stop; ``run()`` just drains it.
Progress goes out as plain dicts through ``TrainEvents``; nothing here knows about Qt.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from .. import checkpoint as ckpt
from ..data import ImageData, iter_batches, load_dataset
from ..evaluate import accuracy, calibration_images, recalibrate_bn
from ..methods import Method, make_method, method_from_description
from ..models import ResidualNet, build_model
from ..plan import SubnetPlan

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
    # None: the method's default (on for stpp, as the authors' trainer; off otherwise);
    # the Trainer writes the resolved value back, so meta.json records what ran
    bn_reestimate: bool | None = None
    bn_reestimate_images: int = 2000
    data_dir: str | None = None
    image_size: int | None = None
    min_lr: float = 0.0  # floor of the per-step cosine (the authors' --min_lr: lr x min_lr_coef)
    fc_init_std: float | None = None  # None: the model's init; 0.01: N(0, 0.01), bias 0 (authors)
    # Data recipe of image files (the authors' ImageNet loader); applied by the streaming data
    # pipeline, which the in-memory data sets do not go through (see _check_data_recipe).
    train_crop: int | None = None
    val_resize: int | None = None
    val_crop: int | None = None
    color_jitter: float = 0.0
    lighting: float = 0.0
    recipe: str | None = None  # the --recipe preset this config came from, if any

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


DATA_RECIPE_FIELDS = ("train_crop", "val_resize", "val_crop", "color_jitter", "lighting")


def _check_data_recipe(config: TrainConfig) -> None:
    """The image-file data recipe needs the streaming loader; say so instead of ignoring it."""
    used = [f for f in DATA_RECIPE_FIELDS if getattr(config, f)]
    if used:
        raise TrainingError(
            f"{', '.join(used)} (the authors' ImageNet data recipe) act on images decoded from files, which "
            "this build's in-memory data sets do not do; they are recorded by --print-config but cannot be "
            "trained with here"
        )


def _init_classifier(model: torch.nn.Module, std: float) -> None:
    """The authors' classifier init: weight ~ N(0, std), bias 0 (the network's last linear layer)."""
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    torch.nn.init.normal_(linear.weight, 0.0, std)
    if linear.bias is not None:
        torch.nn.init.zeros_(linear.bias)


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
    try:
        return torch.device(name)
    except RuntimeError:
        raise TrainingError(f"unknown device {name!r}; use auto, cpu, cuda or mps") from None


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
        out_dir: str | Path | None = None,
        events: Sequence[TrainEvents] = (),
        control: TrainControl | None = None,
        probes: Sequence[SubnetPlan] = (),
        probe_every: int = 0,
        probe_images: int | None = 2000,
        name: str | None = None,
        overwrite: bool = False,
        method: Method | None = None,
    ) -> None:
        self.config = config
        self.name = name or config.method
        self.device = resolve_device(config.device)
        if config.epochs < 1 or config.batch_size < 1 or not config.lr > 0:
            raise TrainingError("epochs and batch size must be at least 1 and the learning rate positive")
        if not config.min_lr >= 0:
            raise TrainingError(f"min_lr must not be negative, got {config.min_lr}")
        _check_data_recipe(config)
        self.data = (data or load_dataset(config.dataset, config.data_dir, image_size=config.image_size)).to(self.device)
        torch.manual_seed(config.seed)
        if model is None:
            model = build_model(config.model, self.data.num_classes, self.data.in_channels, self.data.image_size)
            if config.fc_init_std is not None:
                _init_classifier(model, config.fc_init_std)
        self._check_model(model)
        self.model = model.to(self.device)
        self.method: Method = method or make_method(config.method, **config.method_options)
        if config.bn_reestimate is None:
            self.config = config = replace(config, bn_reestimate=self.method.default_bn_reestimate())
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
        self.out_dir = Path(out_dir) if out_dir is not None else None
        if self.out_dir is not None and not overwrite and (self.out_dir / ckpt.MODEL_FILE).exists():
            raise TrainingError(
                f"{self.out_dir} already holds a run; pass --resume to continue it or choose another --out"
            )
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
    def resume(cls, out_dir: str | Path, **kwargs: Any) -> Trainer:
        """Continue a run from its last finished epoch (weights, momentum, metrics)."""
        out_dir = Path(out_dir)
        meta_path = out_dir / ckpt.META_FILE
        if not meta_path.exists():
            raise TrainingError(f"cannot resume: {meta_path} not found")
        loaded = ckpt.load_checkpoint(out_dir)
        meta = loaded.meta
        if "config" not in meta:
            raise TrainingError(f"cannot resume {out_dir}: it was not written by st_app train")
        config = TrainConfig.from_dict(meta["config"])
        for key in ("device", "epochs"):
            if kwargs.get(key) is not None:
                setattr(config, key, kwargs.pop(key))
        kwargs.pop("device", None)
        kwargs.pop("epochs", None)
        method = method_from_description(meta.get("method", {"name": config.method}))
        trainer = cls(config, model=loaded.model, out_dir=out_dir, overwrite=True, method=method, **kwargs)
        ckpt.load_method_state(out_dir, method.training_modules())
        ckpt.load_optimizer_state(out_dir, trainer.optimizer)
        trainer.epoch = int(meta.get("epoch", 0))
        trainer.global_step = trainer.epoch * trainer.steps_per_epoch
        trainer.history = ckpt.read_metrics(out_dir)[: trainer.epoch]
        return trainer

    # --------------------------------------------------------------- schedule
    def lr_at(self, step: int) -> float:
        """Cosine decay per step from the base rate to zero, held at ``min_lr`` from below."""
        cosine = 0.5 * self.config.lr * (1.0 + math.cos(math.pi * step / max(1, self.total_steps)))
        return max(cosine, self.config.min_lr)

    def _emit(self, kind: str, info: dict[str, Any]) -> None:
        for ev in self.events:
            getattr(ev, kind)(info)

    # ---------------------------------------------------------------- training
    def iter_steps(self) -> Iterator[dict[str, Any]]:
        """Train, yielding each step's info; stops early (keeping saved epochs) on request."""
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
                        "training stopped (try a lower learning rate); the last finished epoch is kept"
                        + (f" in {self.out_dir}" if self.out_dir else "")
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
        if self.out_dir is not None:
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

    def save(self, out_dir: str | Path, row: dict[str, Any] | None = None) -> Path:
        """Write weights + meta atomically and append the epoch's metrics line."""
        out_dir = Path(out_dir)
        path = ckpt.save_checkpoint(out_dir, self.model, self.metadata(row), self.optimizer)
        ckpt.save_method_state(out_dir, self.method.training_modules())
        lines = "".join(json.dumps(r) + "\n" for r in self.history)
        ckpt.atomic_write_text(out_dir / ckpt.METRICS_FILE, lines)
        return path
