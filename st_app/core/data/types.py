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

__all__ = ["DatasetError", "ImageData", "augment_batch", "from_uint8", "iter_batches", "normalise"]


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


def iter_batches(
    x: Tensor,
    y: Tensor,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
    augment: bool = False,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield (images, labels) batches; the order comes only from ``generator``."""
    n = len(y)
    if shuffle:
        order = torch.randperm(n, generator=generator).to(x.device)
    else:
        order = torch.arange(n, device=x.device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        xb = x.index_select(0, idx)
        if augment:
            xb = augment_batch(xb, generator)
        yield xb, y.index_select(0, idx)
