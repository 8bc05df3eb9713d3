"""Image folders larger than memory (ImageNet), streamed from disk through ``DataLoader``.

The in-memory sets keep whole splits as tensors; a 1.28 M-image ImageNet cannot. Here the
files are decoded by ``DataLoader`` workers (pinned memory, persistent workers, prefetch)
with the standard recipe: RandomResizedCrop(train crop) + horizontal flip (+ the authors'
ColorJitter 0.4 and PCA lighting 0.1 as options) for training, Resize(val resize) +
CenterCrop(val crop) for testing, both normalised with the ImageNet channel statistics.

``StreamingData`` answers the same calls as the in-memory ``ImageData`` that the Trainer
uses (``train_batches``, ``test_batches``, ``calibration_images``...). Under torchrun a
``DistributedSampler`` gives each rank its share. A file that cannot be decoded is skipped
with one warning naming it (the next readable file takes its place, so every batch keeps
its size and every rank its step count), never a crash mid-epoch.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from .types import DatasetError, shard_slice

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "StreamSpec", "StreamingData", "decoded_bytes"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# PCA lighting (AlexNet; fb.resnet.torch): eigenvalues/vectors of ImageNet's RGB covariance
_EIGVAL = (0.2175, 0.0188, 0.0045)
_EIGVEC = ((-0.5675, 0.7192, 0.4009), (-0.5808, -0.0045, -0.8140), (-0.5836, -0.6948, 0.4203))


@dataclass(frozen=True)
class StreamSpec:
    """How images are cropped, augmented and loaded."""

    train_crop: int = 224
    val_resize: int | None = None  # None: train_crop / 0.875 (256 for 224)
    val_crop: int | None = None  # None: train_crop
    color_jitter: float = 0.0  # the authors' recipe: 0.4 (brightness, contrast, saturation)
    lighting: float = 0.0  # PCA lighting alpha std; the authors' recipe: 0.1
    workers: int = 4
    device_type: str = "cpu"  # pinned memory when batches go to a GPU

    @property
    def resize(self) -> int:
        return self.val_resize or round(self.train_crop / 0.875)

    @property
    def crop(self) -> int:
        return self.val_crop or self.train_crop


class _Lighting:
    """AlexNet-style PCA lighting noise on a [0, 1] RGB tensor."""

    def __init__(self, alpha_std: float) -> None:
        self.alpha_std = alpha_std
        self.eigval = torch.tensor(_EIGVAL)
        self.eigvec = torch.tensor(_EIGVEC)

    def __call__(self, img: Tensor) -> Tensor:
        alpha = torch.randn(3) * self.alpha_std
        rgb = (self.eigvec * alpha * self.eigval).sum(dim=1)
        return img + rgb.view(3, 1, 1)


def _transforms(spec: StreamSpec, train: bool) -> Any:
    from torchvision import transforms as T

    steps: list[Any]
    if train:
        steps = [T.RandomResizedCrop(spec.train_crop), T.RandomHorizontalFlip()]
        if spec.color_jitter:
            c = spec.color_jitter
            steps.append(T.ColorJitter(brightness=c, contrast=c, saturation=c))
        steps.append(T.ToTensor())
        if spec.lighting:
            steps.append(_Lighting(spec.lighting))
    else:
        steps = [T.Resize(spec.resize), T.CenterCrop(spec.crop), T.ToTensor()]
    steps.append(T.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    return T.Compose(steps)


class _ImageFiles(Dataset[tuple[Tensor, int]]):
    """(file, label) samples decoded with PIL; an unreadable file is replaced by the next one."""

    def __init__(self, samples: Sequence[tuple[Path, int]], transform: Any) -> None:
        self.samples = list(samples)
        self.transform = transform
        self._warned: set[Path] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        from PIL import Image

        for attempt in range(min(len(self.samples), 50)):
            path, label = self.samples[(index + attempt) % len(self.samples)]
            try:
                with Image.open(path) as img:
                    rgb = img.convert("RGB")
                return self.transform(rgb), label
            except Exception as exc:  # truncated, not an image, decompression bomb...
                if path not in self._warned:
                    self._warned.add(path)
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    print(f"warning: skipping unreadable image {path}: {reason}", file=sys.stderr, flush=True)
        raise DatasetError(f"none of 50 consecutive images from {self.samples[index][0]} could be read")


def decoded_bytes(n_images: int, size: int, channels: int = 3) -> int:
    """Memory the in-memory path needs: float32 tensors of every image."""
    return n_images * channels * size * size * 4


@dataclass
class StreamingData:
    """A train/test pair of image-file lists streamed through DataLoader (see the module doc)."""

    name: str
    classes: tuple[str, ...]
    train_samples: list[tuple[Path, int]]
    test_samples: list[tuple[Path, int]]
    spec: StreamSpec
    augment: bool = True
    _train_loader: DataLoader[Any] | None = field(default=None, init=False, repr=False, compare=False)
    _train_key: tuple[int, int, int] = field(default=(0, 0, 0), init=False, repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return 3

    @property
    def image_size(self) -> int:
        return self.spec.train_crop

    @property
    def n_train(self) -> int:
        return len(self.train_samples)

    @property
    def n_test(self) -> int:
        return len(self.test_samples)

    @property
    def in_memory(self) -> bool:
        return False

    def to(self, device: torch.device | str) -> StreamingData:
        """Batches are moved by the Trainer; the device only decides on pinned memory."""
        return replace(self, spec=replace(self.spec, device_type=torch.device(device).type))

    def describe(self) -> str:
        s = self.spec
        return (f"{self.name}: {self.n_train} train / {self.n_test} test images streamed from disk, "
                f"train crop {s.train_crop}, test {s.resize} -> {s.crop}, {self.num_classes} classes")

    def steps_per_epoch(self, batch_size: int, world_size: int = 1) -> int:
        per_rank = self._per_rank(batch_size, world_size)
        return math.ceil(math.ceil(self.n_train / world_size) / per_rank)

    def _per_rank(self, batch_size: int, world_size: int) -> int:
        if batch_size % world_size:
            raise DatasetError(f"a global batch of {batch_size} does not split evenly over {world_size} ranks; "
                               "choose a multiple of the number of ranks")
        return batch_size // world_size

    def _loader(self, dataset: Dataset[Any], batch_size: int, sampler: Any = None, *, persistent: bool = False,
                seed: int = 0) -> DataLoader[Any]:
        workers = self.spec.workers
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                          pin_memory=self.spec.device_type == "cuda", persistent_workers=persistent and workers > 0,
                          prefetch_factor=4 if workers else None, drop_last=False,
                          generator=torch.Generator().manual_seed(seed))

    def train_batches(
        self, batch_size: int, *, generator: torch.Generator, rank: int = 0, world_size: int = 1
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """One epoch in an order drawn from ``generator`` (the same on every rank).

        The loader and its workers persist across epochs; each epoch reseeds its sampler,
        which gives every rank its own share of one shuffled order.
        """
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        key = (batch_size, rank, world_size)
        if self._train_loader is None or self._train_key != key:
            dataset = _ImageFiles(self.train_samples, _transforms(self.spec, train=True))
            shuffle: DistributedSampler[Any] = DistributedSampler(
                dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=0)
            self._train_loader = self._loader(dataset, self._per_rank(batch_size, world_size), shuffle,
                                              persistent=True, seed=seed)
            self._train_key = key
        current = self._train_loader.sampler
        assert isinstance(current, DistributedSampler)
        current.set_epoch(seed)
        yield from self._train_loader

    def test_batches(
        self, batch_size: int, *, limit: int | None = None, rank: int = 0, world_size: int = 1
    ) -> Iterator[tuple[Tensor, Tensor]]:
        n = self.n_test if limit is None else min(limit, self.n_test)
        part = shard_slice(n, rank, world_size)
        dataset = Subset(_ImageFiles(self.test_samples, _transforms(self.spec, train=False)),
                         range(part.start, part.stop))
        yield from self._loader(dataset, batch_size)

    def test_tensors(self, limit: int | None = None, budget: int | None = None) -> tuple[Tensor, Tensor]:
        """The first ``limit`` test images decoded into memory, for sweeps over many sub-nets.

        Refused (one line naming the size) when they would exceed ``budget`` bytes.
        """
        n = self.n_test if limit is None else min(limit, self.n_test)
        need = decoded_bytes(n, self.spec.crop)
        if budget is not None and need > budget:
            raise DatasetError(f"{n} test images of {self.name} need {need / 2**30:.1f} GiB in memory; "
                               f"evaluate fewer with --test-images N (at most {budget // decoded_bytes(1, self.spec.crop)})")
        xs, ys = zip(*self.test_batches(256, limit=n)) if n else ((torch.empty(0, 3, 1, 1),), (torch.empty(0),))
        return torch.cat(xs), torch.cat(ys).long()

    def calibration_images(self, n: int, seed: int = 0) -> Tensor:
        """``n`` seeded, augmented training images (as the authors re-estimate BN), decoded now."""
        n = min(n, self.n_train)
        order = torch.randperm(self.n_train, generator=torch.Generator().manual_seed(seed))[:n].tolist()
        dataset = _ImageFiles([self.train_samples[i] for i in order], _transforms(self.spec, train=True))
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return torch.stack([dataset[i][0] for i in range(n)]) if n else torch.empty(0, 3, 1, 1)
