"""Data sets by name: the registry that resolves ``digits``, ``cifar10``, ``imagefolder:PATH``...

``types`` holds the in-memory ``ImageData`` and batching, ``builtin`` the sets that need no
files (bundled digits, synthetic), ``files`` the torchvision on-disk formats and image folders.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Literal, TypeAlias

import torch

from . import files
from .builtin import DIGITS_FILE, load_digits, load_synthetic
from .streaming import StreamingData, StreamSpec, decoded_bytes
from .types import DatasetError, ImageData, augment_batch, from_uint8, iter_batches, normalise

#: what the Trainer trains on: whole splits as tensors, or files streamed from disk
DataSource: TypeAlias = ImageData | StreamingData
InMemory = Literal["auto", "yes", "no"]

__all__ = [
    "DATASETS",
    "DataSource",
    "StreamSpec",
    "StreamingData",
    "memory_budget",
    "analysis_view",
    "open_checkpoint_data",
    "open_dataset",
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

DATASETS = ("digits", "cifar10", "cifar100", "mnist", "fashion-mnist", "imagefolder:PATH", "imagenet:PATH",
            "synthetic")


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
    if low.startswith(("imagefolder:", "imagenet:")):
        return files.load_imagefolder(Path(key.partition(":")[2]).expanduser(),
                                      image_size=image_size or _default_size(low))
    raise DatasetError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")


def _default_size(low_name: str) -> int:
    return 224 if low_name.startswith("imagenet:") else 32


def memory_budget() -> int:
    """Bytes the in-memory path may use: a quarter of physical memory, at most 8 GiB."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        total = 32 * 2**30
    return min(8 * 2**30, total // 4)


def open_dataset(
    name: str,
    data_dir: str | Path | None = None,
    download: bool = False,
    image_size: int | None = None,
    *,
    in_memory: InMemory = "auto",
    stream: StreamSpec | None = None,
) -> DataSource:
    """What to train on: :func:`load_dataset`'s tensors, or an image folder streamed from disk.

    Image folders (``imagefolder:PATH``, ``imagenet:PATH`` with ``train/`` and ``val/``) stream
    when ``in_memory`` is ``no``, or ``auto`` and their decoded float tensors would exceed
    :func:`memory_budget`; ImageNet always streams under ``auto``. Other sets are in memory.
    """
    low = name.strip().lower()
    folder = low.startswith(("imagefolder:", "imagenet:"))
    if in_memory not in ("auto", "yes", "no"):
        raise DatasetError(f"--data-in-memory must be auto, yes or no, got {in_memory!r}")
    if not folder:
        if in_memory == "no":
            raise DatasetError(f"{name} is an in-memory data set; only image folders (imagefolder:PATH, "
                               "imagenet:PATH) can stream from disk")
        return load_dataset(name, data_dir, download, image_size)
    size = image_size or _default_size(low)
    path = Path(name.strip().partition(":")[2]).expanduser()
    classes, train_s, test_s = files.list_imagefolder(path)
    if in_memory == "auto":
        big = decoded_bytes(len(train_s) + len(test_s), size) > memory_budget()
        in_memory = "no" if big or low.startswith("imagenet:") else "yes"
    if in_memory == "yes":
        return load_dataset(name, data_dir, download, image_size)
    spec = stream or StreamSpec()
    from dataclasses import replace

    spec = replace(spec, train_crop=size)
    prefix = "imagenet" if low.startswith("imagenet:") else "imagefolder"
    return StreamingData(f"{prefix}:{path}", tuple(classes), train_s, test_s, spec)


def open_checkpoint_data(meta: dict, dataset: str | None = None, data_dir: str | None = None) -> DataSource:
    """The data set a checkpoint was trained on, opened as it was (in memory, or streamed from disk).

    A path the checkpoint records is never used on its own: ``dataset`` or ``data_dir`` says
    where the data is (:func:`~st_app.core.meta_schema.recorded_dataset`).
    """
    from ..meta_schema import recorded_dataset

    name, folder = recorded_dataset(meta, dataset, data_dir)
    config = meta["config"] if isinstance(meta.get("config"), dict) else {}
    spec = StreamSpec(val_resize=config.get("val_resize"), val_crop=config.get("val_crop"),
                      workers=int(config.get("data_workers", 4)))
    return open_dataset(name, folder, image_size=config.get("image_size"), in_memory="auto", stream=spec)


def analysis_view(source: DataSource, *, calib_n: int, seed: int, test_images: int | None = None) -> ImageData:
    """The tensors an analysis sweeps over: the test images and the BN-calibration images.

    An in-memory set keeps its training tensors (the analyses draw their calibration subset
    from them); a streamed set decodes only what an analysis reads: the first ``test_images``
    test images (refused with one line when they exceed :func:`memory_budget`) and ``calib_n``
    seeded training images, which then stand in for the training split.
    """
    if isinstance(source, ImageData):
        if test_images is None:
            return source
        return replace(source, test_x=source.test_x[:test_images], test_y=source.test_y[:test_images])
    test_x, test_y = source.test_tensors(test_images, budget=memory_budget())
    calib = source.calibration_images(calib_n, seed)
    return ImageData(source.name, calib, torch.zeros(len(calib), dtype=torch.long), test_x, test_y,
                     source.num_classes, classes=source.classes)
