"""Data sets as tensors on the training device.

The small image sets this tool trains on fit in memory, so a whole split lives as one tensor
and batches are index slices: no per-batch Python data loading, which on 2 CPU cores would
cost more than the 8x8 digits network itself.
"""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DATASETS",
    "DatasetError",
    "ImageData",
    "RESOURCES",
    "iter_batches",
    "load_dataset",
    "augment_batch",
]

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
DIGITS_FILE = RESOURCES / "digits" / "optdigits.csv.gz"
DATASETS = ("digits", "cifar10", "cifar100", "mnist", "fashion-mnist", "imagefolder:PATH", "synthetic")


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

    def to(self, device: torch.device | str) -> "ImageData":
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


def load_digits(path: Path = DIGITS_FILE, test_fraction: float = 0.2, split_seed: int = 0) -> ImageData:
    """The bundled UCI 8x8 digits with a fixed, seeded 80/20 split (1437 / 360)."""
    if not path.exists():
        raise DatasetError(f"the bundled digits file is missing: {path} (reinstall st_app)")
    try:
        with gzip.open(path, "rt") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"the digits file {path} is corrupt: {exc}") from None
    if table.shape[1] != 65:
        raise DatasetError(f"the digits file {path} is malformed: expected 65 columns per line")
    images = table[:, :64].reshape(-1, 1, 8, 8)
    labels = table[:, 64]
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(split_seed)).numpy()
    n_test = math.ceil(test_fraction * len(labels))
    test_idx, train_idx = order[:n_test], order[n_test:]
    return from_uint8(
        "digits",
        images[train_idx],
        labels[train_idx],
        images[test_idx],
        labels[test_idx],
        10,
        scale=16.0,
        classes=tuple(str(i) for i in range(10)),
    )


def load_synthetic(spec: str = "", seed: int = 0) -> ImageData:
    """Random tensors, for benchmarks only: ``synthetic[:C,H,classes[,n_train[,n_test]]]``."""
    vals = [1, 8, 10, 1024, 256]
    if spec:
        try:
            given = [int(v) for v in spec.split(",")]
        except ValueError:
            raise DatasetError(f"malformed synthetic spec {spec!r}: expected synthetic:C,H,classes[,n_train,n_test]") from None
        vals[: len(given)] = given
    c, h, k, n_tr, n_te = vals
    g = torch.Generator().manual_seed(seed)
    return ImageData(
        name=f"synthetic:{c},{h},{k},{n_tr},{n_te}",
        train_x=torch.randn(n_tr, c, h, h, generator=g),
        train_y=torch.randint(0, k, (n_tr,), generator=g),
        test_x=torch.randn(n_te, c, h, h, generator=g),
        test_y=torch.randint(0, k, (n_te,), generator=g),
        num_classes=k,
    )


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    download: bool = False,
    image_size: int | None = None,
) -> ImageData:
    """Resolve a data set name (see DATASETS) to in-memory tensors.

    Nothing is downloaded unless ``download`` is true; without files the error names the
    folder and files to provide.
    """
    from . import data_files  # on-disk formats of the torchvision data sets

    key = name.strip()
    low = key.lower()
    root = Path(data_dir).expanduser() if data_dir else Path("data")
    if low == "digits":
        return load_digits()
    if low.startswith("synthetic"):
        return load_synthetic(key.partition(":")[2])
    if low in ("cifar10", "cifar100"):
        return data_files.load_cifar(low, root, download=download)
    if low in ("mnist", "fashion-mnist", "fashionmnist"):
        return data_files.load_mnist("fashion-mnist" if low.startswith("fashion") else "mnist", root, download=download)
    if low.startswith("imagefolder:"):
        return data_files.load_imagefolder(Path(key.partition(":")[2]).expanduser(), image_size=image_size or 32)
    raise DatasetError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")


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
