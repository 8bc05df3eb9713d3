"""The in-memory data types every data set becomes, and batching over them.

The small image sets this tool trains on fit in memory, so a whole split lives as one tensor
and batches are index slices: no per-batch Python data loading, which on 2 CPU cores would
cost more than the 8x8 digits network itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DatasetError",
    "ImageData",
    "augment_batch",
    "batches_per_epoch",
    "calibration_subset",
    "from_uint8",
    "iter_batches",
    "normalise",
    "shard_slice",
]


class DatasetError(ValueError):
    """A data set is missing, malformed or unknown; the message says what to do."""


@dataclass(frozen=True)
class ImageData:
    """Normalised train/test images (N, C, H, W) with integer labels."""

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    augment: bool = False
    classes: tuple[str, ...] = ()

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    def to(self, device: torch.device | str) -> ImageData:
        return replace(
            self,
            train_x=self.train_x.to(device),
            train_y=self.train_y.to(device),
            test_x=self.test_x.to(device),
            test_y=self.test_y.to(device),
        )

    def describe(self) -> str:
        return (
            f"{self.name}: {len(self.train_y)} train / {len(self.test_y)} test images, "
            f"{self.in_channels}x{self.image_size}x{self.image_size}, {self.num_classes} classes"
        )

    # The data-source interface the Trainer uses (a streaming set offers the same calls).
    @property
    def n_train(self) -> int:
        return int(len(self.train_y))

    @property
    def n_test(self) -> int:
        return int(len(self.test_y))

    @property
    def in_memory(self) -> bool:
        return True

    def steps_per_epoch(self, batch_size: int, world_size: int = 1) -> int:
        return batches_per_epoch(self.n_train, batch_size, world_size)

    def train_batches(
        self, batch_size: int, *, generator: torch.Generator, rank: int = 0, world_size: int = 1
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch of (images, labels); with several ranks, this rank's part of each global batch."""
        yield from iter_batches(self.train_x, self.train_y, batch_size, generator=generator,
                                augment=self.augment, part=(rank, world_size))

    def test_batches(
        self, batch_size: int, *, limit: int | None = None, rank: int = 0, world_size: int = 1
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The first ``limit`` test images (all: None) in order; with several ranks, this rank's share."""
        n = self.n_test if limit is None else min(limit, self.n_test)
        part = shard_slice(n, rank, world_size)
        x, y = self.test_x[part], self.test_y[part]
        for start in range(0, len(y), batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]

    def calibration_images(self, n: int, seed: int = 0) -> Tensor:
        return calibration_subset(self.train_x, n, seed)

    def test_tensors(self, limit: int | None = None) -> tuple[Tensor, Tensor]:
        """The first ``limit`` test images and labels (all: None) as tensors, for sweeps."""
        return self.test_x[:limit], self.test_y[:limit]


def normalise(train: Tensor, test: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel standardisation with the training split's statistics."""
    dims = (0, 2, 3)
    mean = train.mean(dim=dims, keepdim=True)
    std = train.std(dim=dims, keepdim=True).clamp_min(1e-6)
    return (train - mean) / std, (test - mean) / std


def from_uint8(
    name: str,
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    num_classes: int,
    *,
    scale: float = 255.0,
    augment: bool = False,
    classes: tuple[str, ...] = (),
) -> ImageData:
    """Build ImageData from (N, C, H, W) integer pixel arrays."""
    tr = torch.from_numpy(np.ascontiguousarray(train_x)).float() / scale
    te = torch.from_numpy(np.ascontiguousarray(test_x)).float() / scale
    tr, te = normalise(tr, te)
    return ImageData(
        name=name,
        train_x=tr.contiguous(),
        train_y=torch.as_tensor(np.asarray(train_y), dtype=torch.long),
        test_x=te.contiguous(),
        test_y=torch.as_tensor(np.asarray(test_y), dtype=torch.long),
        num_classes=num_classes,
        augment=augment,
        classes=classes,
    )


def augment_batch(x: Tensor, generator: torch.Generator | None = None, pad: int = 4) -> Tensor:
    """Random crop with zero padding and random horizontal flip, done on the whole batch."""
    n, c, h, w = x.shape
    dev = x.device
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(dev)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(dev)
    flip = (torch.rand(n, generator=generator) < 0.5).to(dev)
    rows = oy[:, None] + torch.arange(h, device=dev)[None, :]
    cols = ox[:, None] + torch.arange(w, device=dev)[None, :]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch_idx = torch.arange(n, device=dev)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch_idx, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def shard_slice(n: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s contiguous part of ``n`` items; part sizes differ by at most one."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def batches_per_epoch(n: int, batch_size: int, world_size: int = 1) -> int:
    """Global batches :func:`iter_batches` yields: a last batch smaller than the number of
    ranks is dropped, so every rank always has at least one image (DDP needs each rank to step)."""
    full, rest = divmod(n, batch_size)
    return full + (1 if rest >= world_size else 0)


def iter_batches(
    x: Tensor,
    y: Tensor,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
    augment: bool = False,
    part: tuple[int, int] = (0, 1),
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield (images, labels) batches; the order comes only from ``generator``.

    ``part=(rank, world_size)`` yields rank's contiguous part of each global batch. The whole
    global batch is built (and augmented) first, so every rank consumes the same random
    numbers and the parts together are exactly the single-process batch.
    """
    rank, world_size = part
    n = len(y)
    if shuffle:
        order = torch.randperm(n, generator=generator).to(x.device)
    else:
        order = torch.arange(n, device=x.device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        if len(idx) < world_size:
            break  # see batches_per_epoch
        xb = x.index_select(0, idx)
        if augment:
            xb = augment_batch(xb, generator)
        yb = y.index_select(0, idx)
        if world_size > 1:
            mine = shard_slice(len(idx), rank, world_size)
            xb, yb = xb[mine], yb[mine]
        yield xb, yb


def calibration_subset(train_x: Tensor, n: int = 1000, seed: int = 0) -> Tensor:
    """A fixed, seeded subset of training images for BN recalibration."""
    n = min(n, len(train_x))
    idx = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(seed))[:n]
    return train_x[idx.to(train_x.device)]
