"""What a run is (``TrainConfig``) and how a front end talks to it (events, pause/stop, devices).

Separate from the loop itself (:mod:`.trainer`) so the app and the CLI can build and check a
configuration, list devices and open data without importing the training machinery.
"""

from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from ..data import DataSource, StreamSpec, open_dataset
from ..meta_schema import MetaError, check_train_config

__all__ = [
    "DEVICE_NAME",
    "TrainConfig",
    "TrainControl",
    "TrainEvents",
    "TrainingError",
    "check_config",
    "describe_devices",
    "open_training_data",
    "resolve_device",
]


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
    bn_reestimate: bool | None = None  # None: the method's default (stpp: on), resolved into meta.json
    bn_reestimate_images: int = 2000
    data_dir: str | None = None
    image_size: int | None = None
    granularity: str = "block"  # plan unit of a vision transformer: "block" or "half"
    # speed and scale (issue 11): none of these changes what is computed beyond rounding
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (auto: bf16 autocast on CUDA, fp32 elsewhere)
    compile: bool = False  # torch.compile each block (minutes of compilation, once)
    lr_scaling: str = "none"  # none | linear: lr x batch_size / reference_batch
    reference_batch: int = 64  # the batch the learning rate was tuned for
    sync_bn: bool = False  # SyncBatchNorm across ranks (CUDA only)
    log_every: int = 0  # read losses on the host every N steps (0: every step on CPU, 25 on CUDA)
    # data loading: image folders too big for memory stream from disk (see core/data/streaming.py)
    data_in_memory: str = "auto"  # auto | yes | no
    data_workers: int = 4  # DataLoader worker processes for streamed sets
    val_resize: int | None = None  # streamed test images: resize (None: train crop / 0.875) ...
    val_crop: int | None = None  # ... then centre crop (None: the train crop, image_size)
    color_jitter: float = 0.0  # streamed training images: ColorJitter strength (authors: 0.4)
    lighting: float = 0.0  # streamed training images: PCA lighting std (authors: 0.1)
    min_lr: float = 0.0  # floor of the per-step cosine (the authors' --min_lr: lr x min_lr_coef)
    fc_init_std: float | None = None  # None: the model's init; 0.01: N(0, 0.01), bias 0 (authors)
    recipe: str | None = None  # the --recipe preset this config came from, if any

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def open_training_data(config: TrainConfig, device_type: str = "cpu", download: bool = False) -> DataSource:
    """The data set a config names: in memory, or streamed with the config's crops and workers."""
    spec = StreamSpec(val_resize=config.val_resize, val_crop=config.val_crop, color_jitter=config.color_jitter,
                      lighting=config.lighting, workers=config.data_workers, device_type=device_type)
    return open_dataset(config.dataset, config.data_dir, download, config.image_size,
                        in_memory=config.data_in_memory, stream=spec)  # type: ignore[arg-type]


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


#: the device names a user may write (availability is checked by :func:`resolve_device`)
DEVICE_NAME = re.compile(r"auto|cpu|mps|cuda(:[0-9]{1,3})?")


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
    if not DEVICE_NAME.fullmatch(name):
        raise TrainingError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        raise TrainingError(f"device {name!r} was asked for, but torch sees {torch.cuda.device_count()} CUDA "
                            "device(s) here")
    return torch.device(name)


def describe_devices() -> list[tuple[str, str]]:
    """``(device, label)`` for every device a user may pick, for a front end's device list.

    Each CUDA device is listed as ``cuda:N`` with its name and memory (``"cuda:0 — NVIDIA H200,
    139 GiB"``), so a multi-GPU machine shows which card is which; then Apple MPS, then the CPU.
    ``auto`` comes first and says what it picks here.
    """
    out: list[tuple[str, str]] = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            out.append((f"cuda:{i}", f"cuda:{i} — {props.name}, {round(props.total_memory / 2**30)} GiB"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append(("mps", "mps — Apple GPU"))
    out.append(("cpu", f"cpu — {torch.get_num_threads()} threads"))
    return [("auto", f"auto ({out[0][0]})"), *out]  # auto takes the first of them


def check_config(config: TrainConfig) -> None:
    """Types and hard bounds of every setting, before anything is allocated."""
    try:
        check_train_config(config.to_dict())
    except MetaError as exc:
        raise TrainingError(str(exc)) from None
