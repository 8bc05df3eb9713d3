"""Data-parallel training under ``torchrun``: PyTorch DDP, nothing home-made.

Every rank runs the same Trainer. The global batch is split into per-rank parts, every rank
draws the same sub-nets and input sizes (the same seeded ``random.Random``), DDP averages the
gradients, and rank 0 alone writes the run folder. NCCL on CUDA, gloo on CPU.

Why BN running statistics are averaged at each epoch's end instead of broadcast at every
forward: a step makes up to seven forwards (ST++), and each rank's statistics are as good an
estimate as rank 0's; their mean is a better one, and evaluation then sees one model.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "DistributedError",
    "World",
    "all_reduce_sum",
    "average_buffers",
    "average_gradients",
    "barrier",
    "init_world",
]


class DistributedError(RuntimeError):
    """The process group cannot be set up or a rank failed; the message names the rank."""


@dataclass(frozen=True)
class World:
    """This process's place in the job: rank, number of ranks and local GPU index."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_writer(self) -> bool:
        """Only rank 0 writes checkpoints, metrics and progress."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise DistributedError(f"environment variable {name}={os.environ[name]!r} is not an integer") from None


def init_world(device_type: str) -> World:
    """Join the process group torchrun describes in the environment (a no-op for one process)."""
    size = _env_int("WORLD_SIZE", 1)
    if size <= 1:
        return World()
    rank, local = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if not dist.is_available():
        raise DistributedError("this PyTorch build has no torch.distributed")
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local)
        try:
            dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DistributedError(f"rank {rank}: cannot join the process group ({backend}): {first}") from None
    return World(rank=rank, size=size, local_rank=local)


def all_reduce_sum(values: Tensor, world: World) -> Tensor:
    """Sum a tensor over ranks (in place; returned for chaining)."""
    if world.distributed:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def barrier(world: World) -> None:
    """Wait for every rank (a no-op for one process)."""
    if world.distributed:
        dist.barrier()


def average_gradients(module: nn.Module | None, world: World) -> None:
    """Average gradients of parameters DDP does not manage (a method's auxiliary heads)."""
    if module is None or not world.distributed:
        return
    for p in module.parameters():
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        p.grad.div_(world.size)


def average_buffers(module: nn.Module, world: World) -> None:
    """Average floating buffers (BN running mean/var) over ranks; integer ones are equal already."""
    if not world.distributed:
        return
    for buf in module.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf.div_(world.size)
