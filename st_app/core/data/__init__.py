"""Data sets by name: the registry that resolves ``digits``, ``cifar10``, ``imagefolder:PATH``...

``types`` holds the in-memory ``ImageData`` and batching, ``builtin`` the sets that need no
files (bundled digits, synthetic), ``files`` the torchvision on-disk formats and image folders.
"""

from __future__ import annotations

from pathlib import Path

from . import files
from .builtin import DIGITS_FILE, load_digits, load_synthetic
from .types import DatasetError, ImageData, augment_batch, from_uint8, iter_batches, normalise

__all__ = [
    "DATASETS",
    "DIGITS_FILE",
    "DatasetError",
    "ImageData",
    "augment_batch",
    "from_uint8",
    "iter_batches",
    "load_dataset",
    "load_digits",
    "load_synthetic",
    "normalise",
]

DATASETS = ("digits", "cifar10", "cifar100", "mnist", "fashion-mnist", "imagefolder:PATH", "synthetic")


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
    key = name.strip()
    low = key.lower()
    root = Path(data_dir).expanduser() if data_dir else Path("data")
    if low == "digits":
        return load_digits()
    if low.startswith("synthetic"):
        return load_synthetic(key.partition(":")[2])
    if low in ("cifar10", "cifar100"):
        return files.load_cifar(low, root, download=download)
    if low in ("mnist", "fashion-mnist", "fashionmnist"):
        return files.load_mnist("fashion-mnist" if low.startswith("fashion") else "mnist", root, download=download)
    if low.startswith("imagefolder:"):
        return files.load_imagefolder(Path(key.partition(":")[2]).expanduser(), image_size=image_size or 32)
    raise DatasetError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
