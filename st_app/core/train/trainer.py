"""The one training loop shared by the command line and the app.

``Trainer.iter_steps()`` yields after every optimizer step, so a front end can interleave two
trainers (CT and ST side by side), pause between batches or stop; ``run()`` just drains it.
Progress goes out as plain dicts through ``TrainEvents``; nothing here knows about Qt.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import checkpoint as ckpt
from ..data import DataSource
from ..evaluate import count_correct, recalibrate_bn
from ..meta_schema import MetaError, resume_data_location
from ..methods import CommonTraining, Method, make_method, method_from_description
from ..models import ResidualNet, build_model
from ..plan import SubnetPlan
from ..precision import PrecisionError, eval_batch_size, resolve_precision, use_precision
from ..runfolder import RUN_FILES, RunFolder, has_run
from .config import (
    TrainConfig,
    TrainControl,
    TrainEvents,
    TrainingError,
    check_config,
    open_training_data,
    resolve_device,
)
from .distributed import (
    DistributedError,
    all_reduce_sum,
    average_buffers,
    average_gradients,
    barrier,
    init_world,
)
from .recipe_options import data_recipe_problem, init_classifier
from .stepmodel import DispatchModule, StepModel

__all__ = ["TrainConfig", "TrainControl", "TrainEvents", "Trainer", "TrainingError", "open_training_data", "resolve_device"]


class Trainer:
    """One run: model, data, method, SGD + per-step cosine schedule, checkpoints, events."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        data: DataSource | None = None,
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
        check_config(config)
        if config.lr_scaling not in ("none", "linear") or config.reference_batch < 1:
            raise TrainingError(f"lr scaling must be 'none' or 'linear' with a reference batch of at least 1, "
                                f"got {config.lr_scaling!r} and {config.reference_batch}")
        device = resolve_device(config.device)
        try:
            self.world = init_world(device.type)
            self.precision = resolve_precision(config.precision, device)
        except (DistributedError, PrecisionError) as exc:
            raise TrainingError(str(exc)) from None
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", self.world.local_rank if self.world.distributed else torch.cuda.current_device())
        self.device = device
        if config.sync_bn and device.type != "cuda":
            raise TrainingError("--sync-bn needs CUDA devices (torch.nn.SyncBatchNorm runs only on GPUs); "
                                "on CPUs each rank normalises its own part of the batch")
        if self.world.size > config.batch_size:
            raise TrainingError(f"a global batch of {config.batch_size} cannot be split over {self.world.size} ranks")
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes per plan: autotuned kernels pay off
        self.data: DataSource = (data or open_training_data(config, self.device.type)).to(self.device)
        if problem := data_recipe_problem(config.to_dict(), self.data):
            raise TrainingError(problem)
        torch.manual_seed(config.seed)
        if model is None:
            model = build_model(config.model, self.data.num_classes, self.data.in_channels, self.data.image_size,
                                granularity=config.granularity)
            init_classifier(model, config.fc_init_std)
        self._check_model(model)
        self.model = model.to(self.device)
        self.method: Method = method or make_method(config.method, **config.method_options)
        if config.bn_reestimate is None:  # the method's default, recorded as what ran
            self.config = config = replace(config, bn_reestimate=self.method.default_bn_reestimate())
        self.method.prepare(self.model)
        extra = self.method.training_modules()
        if extra is not None:
            extra.to(self.device)
        self.step_model, self.scaler = self._prepare_for_speed_and_scale()
        self.base_lr = config.lr * (config.batch_size / config.reference_batch if config.lr_scaling == "linear" else 1.0)
        params = list(self.model.parameters()) + (list(extra.parameters()) if extra is not None else [])
        self.optimizer = torch.optim.SGD(
            params,
            lr=self.base_lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
            weight_decay=config.weight_decay,
            **({"fused": True} if device.type == "cuda" else {}),
        )
        # The run folder: locked by its one writer (rank 0 under DDP, and the caller may say no),
        # recovered from an interrupted commit, and written one whole epoch at a time.
        self.writer = writer and self.world.is_writer
        if not self.writer:
            out_dir, events = None, ()  # rank 0 alone writes the run folder and reports progress
        self.run_folder: RunFolder | None = None
        self.out_dir: Path | None = None
        self.extra_files: dict[str, bytes] = {}  # more per-epoch files (command.txt...), committed with each epoch
        self._drop_previous = False
        if isinstance(out_dir, RunFolder):  # resume(): already locked and read
            self.run_folder, self.out_dir = out_dir, out_dir.path
        elif out_dir is not None:
            if not str(out_dir).strip():
                raise TrainingError("the run folder path is empty; choose a folder with --out")
            self.out_dir = Path(out_dir)
            self.run_folder = RunFolder(self.out_dir, writer=True)
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
        self.steps_per_epoch = self.data.steps_per_epoch(config.batch_size, self.world.size)
        if self.steps_per_epoch < 1:
            raise TrainingError(f"{self.data.n_train} training images make no batch for {self.world.size} ranks")
        self.log_every = config.log_every or (25 if device.type == "cuda" else 1)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.epoch = 0  # completed epochs
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self._calib: Tensor | None = None  # BN re-estimation images, decoded on first use

    def _prepare_for_speed_and_scale(self) -> tuple[StepModel, torch.amp.GradScaler | None]:
        """Memory format, SyncBN, compilation, DDP and fp16 loss scaling, in the order they nest."""
        cfg, model = self.config, self.model
        if self.precision.channels_last:
            model.to(memory_format=torch.channels_last)
        if cfg.sync_bn:
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # swaps the BN children in place
        if cfg.compile:
            for block in model.blocks:  # per block: a plan changes which blocks run, not their code
                block.compile()
        ddp = None
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            # sub-nets leave parameters unused; CT's full net never does (no graph search then)
            find_unused = not isinstance(self.method, CommonTraining)
            ddp = DistributedDataParallel(
                DispatchModule(model), device_ids=[self.device.index] if self.device.type == "cuda" else None,
                broadcast_buffers=False, find_unused_parameters=find_unused)
        scaler = None
        if self.precision.needs_grad_scaling:
            scaler = torch.amp.GradScaler(self.device.type)
            self.method.scale_loss = scaler.scale
        return StepModel(model, self.precision, ddp), scaler

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
        writer: bool | None = None,
        **kwargs: Any,
    ) -> Trainer:
        """Continue a run from its last committed epoch (weights, momentum, method parts, metrics).

        The writer takes the run's lock first (finishing or undoing an interrupted commit),
        then reads one consistent epoch. ``data_dir`` replaces the recorded data location (for
        an image folder, the folder itself); with ``allow_recorded_paths=False`` a recorded
        path is refused unless ``data_dir`` is given (the command line never uses one silently).
        ``writer`` (default: rank 0 of a torchrun job, or the only process) takes the lock; the
        other ranks only read.
        """
        out_dir = Path(out_dir)
        if writer is None:
            writer = _rank_from_env() == 0
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
            try:
                config.dataset, config.data_dir = resume_data_location(config.dataset, config.data_dir, data_dir,
                                                                       allow_recorded_paths)
            except MetaError as exc:
                raise TrainingError(f"cannot resume {out_dir}: {exc}") from None
            # a method outside the registry (an analysis' fixed-plan training) is passed in again
            method = kwargs.pop("method", None)
            try:
                method = method or method_from_description(meta.get("method", {"name": config.method}))
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

    def close(self) -> None:
        """Release the run folder's lock (``iter_steps`` does when it ends; the OS does at exit)."""
        if self.run_folder is not None:
            self.run_folder.release()

    # --------------------------------------------------------------- schedule
    def lr_at(self, step: int) -> float:
        """Cosine decay per step from the base rate (batch-scaled if asked) to zero, floored at ``min_lr``."""
        return max(0.5 * self.base_lr * (1.0 + math.cos(math.pi * step / max(1, self.total_steps))), self.config.min_lr)

    def _emit(self, kind: str, info: dict[str, Any]) -> None:
        for ev in self.events:
            getattr(ev, kind)(info)

    # ---------------------------------------------------------------- training
    def iter_steps(self) -> Iterator[dict[str, Any]]:
        """Train, yielding after every step; stops early (keeping saved epochs) on request.

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
        """The step loop of :meth:`iter_steps`.

        Loss terms stay on the device: the host reads them every ``log_every`` steps (every
        step on a CPU, where reading is free) and at each epoch's end. Only then does
        ``on_step`` fire and the NaN check run; in between, the yielded info repeats the
        last numbers read, so a GPU never waits for the host.
        """
        cfg = self.config
        self._emit("on_start", {"run": self.name, "epochs": cfg.epochs, "total_steps": self.total_steps,
                                "start_epoch": self.epoch, "device": str(self.device),
                                "precision": self.precision.name, "world_size": self.world.size})
        t_start = time.perf_counter()
        done_at_start = self.global_step
        stopped = False
        values: dict[str, float] = {}
        while self.epoch < cfg.epochs and not stopped:
            epoch = self.epoch
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
            rng = random.Random(cfg.seed * 1_000_003 + epoch)  # the same sub-nets on every rank
            self.model.train()
            self.method.begin_epoch(epoch, cfg.epochs)
            loss_sum = torch.zeros((), device=self.device)
            n_seen, t_epoch = 0, time.perf_counter()
            batches = self.data.train_batches(cfg.batch_size, generator=gen, rank=self.world.rank,
                                              world_size=self.world.size)
            for i, (xb, yb) in enumerate(batches):
                self.control.wait_while_paused()
                if self.control.stopped:
                    stopped = True
                    break
                lr = self.lr_at(self.global_step)
                terms = self._train_step(xb, yb, rng, lr)
                loss_sum += terms["loss"] * len(yb)
                n_seen += len(yb)
                if (i + 1) % self.log_every == 0 or i + 1 == self.steps_per_epoch:
                    values = {k: float(v) for k, v in terms.items()}
                    self._check_finite(float(loss_sum), epoch, i)
                elapsed = time.perf_counter() - t_start
                done = self.global_step - done_at_start
                info = {"run": self.name, "epoch": epoch + 1, "step": self.global_step,
                        "total_steps": self.total_steps, "epoch_step": i + 1,
                        "steps_per_epoch": self.steps_per_epoch, "lr": lr, "elapsed": elapsed,
                        "eta": elapsed / done * (self.total_steps - self.global_step), **values}
                if (i + 1) % self.log_every == 0 or i + 1 == self.steps_per_epoch:
                    self._emit("on_step", info)
                if self.probes and self.probe_every and self.global_step % self.probe_every == 0:
                    self._emit("on_probe", self.probe())
                    self.model.train()
                yield info
            if stopped:
                break
            epoch_seconds = time.perf_counter() - t_epoch
            counts = all_reduce_sum(torch.stack([loss_sum, torch.tensor(float(n_seen), device=self.device)]),
                                    self.world)
            self._finish_epoch(epoch, float(counts[0] / counts[1].clamp_min(1)), epoch_seconds)
        self._emit("on_end", {"run": self.name, "epoch": self.epoch, "stopped": stopped,
                              "history": list(self.history)})

    def _train_step(self, xb: Tensor, yb: Tensor, rng: random.Random, lr: float) -> dict[str, Tensor]:
        """One optimizer step: the method's forwards and backwards, then SGD (fp16: via GradScaler)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        xb = self.precision.prepare_input(xb.to(self.device, non_blocking=True))
        yb = yb.to(self.device, non_blocking=True)
        terms = self.method.step(self.step_model, xb, yb, rng)  # type: ignore[arg-type]
        average_gradients(self.method.training_modules(), self.world)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skips the step when fp16 gradients overflowed
            self.scaler.update()
        else:
            self.optimizer.step()
        self.global_step += 1
        return {k: v.detach() for k, v in terms.items()}

    def _check_finite(self, loss_sum: float, epoch: int, index: int) -> None:
        if math.isfinite(loss_sum):
            return
        kept = (f"epoch {self.epoch} is kept" + (f" in {self.out_dir}" if self.out_dir else "")
                if self.epoch else "no epoch had finished, so nothing was saved")
        raise TrainingError(
            f"{self.name}: loss became {loss_sum} at epoch {epoch + 1}, step {index + 1}"
            + (f" (or in the {self.log_every - 1} steps before it)" if self.log_every > 1 else "") + "; "
            f"training stopped (try a lower learning rate); {kept}"
        )

    def _finish_epoch(self, epoch: int, train_loss: float, epoch_seconds: float) -> None:
        cfg = self.config
        plan = self.method.eval_plan()  # None: the main net (a fixed-plan run measures its plan)
        average_buffers(self.model, self.world)  # one set of BN statistics before evaluating
        with use_precision(self.precision):
            if cfg.bn_reestimate:
                if self._calib is None:
                    self._calib = self.data.calibration_images(cfg.bn_reestimate_images, cfg.seed).to(self.device)
                recalibrate_bn(self.model, plan, self._calib)  # the evaluated net's statistics, as the authors do
            t0 = time.perf_counter()
            test_acc = self._test_accuracy(plan)
        row: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss, "test_acc": test_acc,
                               "epoch_seconds": epoch_seconds, "eval_seconds": time.perf_counter() - t0,
                               "lr": self.lr_at(self.global_step), "step": self.global_step}
        if plan is not None:
            row["eval_plan"] = str(plan)
        self.epoch = epoch + 1
        self.history.append(row)
        if self.run_folder is not None and self.writer:
            self.save(self.out_dir, row)
        barrier(self.world)  # no rank runs ahead of the checkpoint it may resume from
        self._emit("on_epoch", {"run": self.name, **row})

    def _test_accuracy(self, plan: SubnetPlan | None, limit: int | None = None) -> float:
        """Main-BN top-1 (%) on the test set, each rank counting its share."""
        batch = eval_batch_size(self.device, self.data.image_size)
        batches = self.data.test_batches(batch, limit=limit, rank=self.world.rank, world_size=self.world.size)
        correct, seen = count_correct(self.model, plan, batches)
        totals = all_reduce_sum(torch.stack([correct, seen]), self.world)
        return float(totals[0].double() / totals[1].clamp_min(1) * 100.0)

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
        with use_precision(self.precision):
            results = {str(p): self._test_accuracy(p, self.probe_images) for p in self.probes}
        return {"run": self.name, "step": self.global_step, "epoch": self.epoch, "results": results}

    # ------------------------------------------------------------------ saving
    def metadata(self, row: dict[str, Any] | None = None) -> dict[str, Any]:
        d = self.data
        return {
            "config": self.config.to_dict(),
            "method": self.method.describe(),
            "dataset": {"name": d.name, "num_classes": d.num_classes, "in_channels": d.in_channels,
                        "image_size": d.image_size, "n_train": d.n_train,
                        "n_test": d.n_test, "classes": list(d.classes)},
            "epoch": self.epoch,
            "metrics": row or (self.history[-1] if self.history else {}),
            "torch_version": torch.__version__,
            "runtime": self.runtime(),
        }

    def runtime(self) -> dict[str, Any]:
        """How this run was executed (may change on resume; the config says what was asked)."""
        cfg = self.config
        return {**self.precision.describe(), "compile": cfg.compile, "device": str(self.device),
                "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else None,
                "world_size": self.world.size, "global_batch": cfg.batch_size,
                "per_device_batch": -(-cfg.batch_size // self.world.size), "base_lr": self.base_lr,
                "lr_scaling": cfg.lr_scaling, "reference_batch": cfg.reference_batch, "sync_bn": cfg.sync_bn}

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


def _rank_from_env() -> int:
    """This process' rank under torchrun (0 alone), before the process group exists."""
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0
