"""Numeric precision and memory format: one choice shared by training, evaluation and sweeps.

A GPU trains these networks 4-8x faster in bfloat16 autocast with channels-last tensors than
in plain fp32; a CPU gains nothing from channels-last and has no fp16 kernels worth using.
``Precision`` holds the resolved choice for one device; :func:`use_precision` makes it the
active one for a block of code, so evaluation helpers deep inside the analyses pick it up
without every signature growing a parameter (the choice is per thread, like autocast itself).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "PRECISIONS",
    "Precision",
    "PrecisionError",
    "active_precision",
    "eval_batch_size",
    "resolve_precision",
    "use_precision",
]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class PrecisionError(ValueError):
    """A precision the device cannot run; the message says what to use instead."""


@dataclass(frozen=True)
class Precision:
    """The resolved numeric setup for one device: autocast dtype (None: fp32) and memory format."""

    name: str = "fp32"
    device_type: str = "cpu"
    channels_last: bool = False

    @property
    def dtype(self) -> torch.dtype | None:
        return _DTYPES.get(self.name)

    @property
    def needs_grad_scaling(self) -> bool:
        """fp16 gradients underflow without loss scaling (GradScaler); bf16 has fp32's range."""
        return self.name == "fp16"

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """Autocast for forward passes; a no-op in fp32."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def prepare_input(self, x: Tensor) -> Tensor:
        """Images in the memory format the model's weights use (NHWC on CUDA)."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def describe(self) -> dict[str, object]:
        return {"precision": self.name, "channels_last": self.channels_last}


def _bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return device.type == "cpu"


def resolve_precision(name: str, device: torch.device | str) -> Precision:
    """``auto``: bf16 autocast + channels-last on CUDA devices that support bf16, fp32 elsewhere.

    fp16 needs a GPU (CPU autocast has no fp16 kernels worth running and no GradScaler path).
    """
    device = torch.device(device)
    key = (name or "auto").lower()
    if key not in PRECISIONS:
        raise PrecisionError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    cuda = device.type == "cuda"
    if key == "auto":
        key = "bf16" if cuda and _bf16_supported(device) else "fp32"
    if key == "fp16" and not cuda:
        raise PrecisionError(f"--precision fp16 needs a CUDA device (this run is on {device.type}); "
                             "use bf16 or fp32")
    if key == "bf16" and not _bf16_supported(device):
        raise PrecisionError(f"--precision bf16 is not supported on {device}; use fp16 or fp32")
    return Precision(name=key, device_type=device.type, channels_last=cuda)


_ACTIVE: contextvars.ContextVar[Precision | None] = contextvars.ContextVar("st_app_precision", default=None)


def active_precision(device: torch.device | str | None = None) -> Precision:
    """The precision set by :func:`use_precision`, or plain fp32 for ``device``."""
    current = _ACTIVE.get()
    if current is not None:
        return current
    return Precision(device_type=torch.device(device).type if device is not None else "cpu")


@contextlib.contextmanager
def use_precision(precision: Precision | None) -> Iterator[None]:
    """Make ``precision`` the one evaluation helpers use inside the block (None: unchanged)."""
    if precision is None:
        yield
        return
    token = _ACTIVE.set(precision)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def eval_batch_size(device: torch.device | str, image_size: int, default: int = 512) -> int:
    """Test-time batch: the CPU default, or enough images to keep a GPU busy (~25M pixels)."""
    if torch.device(device).type != "cuda":
        return default
    return max(default, min(8192, (25_000_000 // max(1, image_size * image_size)) // 256 * 256))
