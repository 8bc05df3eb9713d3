"""The data sets that need no files from the user: the bundled digits and synthetic tensors."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import torch

from ..limits import MAX_SYNTHETIC_VALUES, LimitError, check_number, is_ascii_int
from ..resources import resource_path
from .types import DatasetError, ImageData, from_uint8

__all__ = ["DIGITS_FILE", "load_digits", "load_synthetic"]

DIGITS_FILE = resource_path("digits", "optdigits.csv.gz")


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
        given = spec.split(",")
        if len(given) > 5 or not all(is_ascii_int(v) for v in given):
            raise DatasetError(f"malformed synthetic spec {spec!r}: expected synthetic:C,H,classes[,n_train,n_test]")
        vals[: len(given)] = [int(v) for v in given]
    c, h, k, n_tr, n_te = vals
    for key, v, what in (("in-channels", c, "C"), ("image-size", h, "H"), ("num-classes", k, "classes"),
                         ("images", n_tr, "n_train"), ("images", n_te, "n_test")):
        try:
            check_number(key, v, label=f"synthetic {what}")
        except LimitError as exc:
            raise DatasetError(f"malformed synthetic spec {spec!r}: {exc}") from None
    if (n_tr + n_te) * c * h * h > MAX_SYNTHETIC_VALUES:
        raise DatasetError(f"synthetic spec {spec!r} asks for {(n_tr + n_te) * c * h * h * 4 / 2**30:.1f} GiB of "
                           f"images; at most {MAX_SYNTHETIC_VALUES * 4 // 2**30} GiB")
    g = torch.Generator().manual_seed(seed)
    return ImageData(
        name=f"synthetic:{c},{h},{k},{n_tr},{n_te}",
        train_x=torch.randn(n_tr, c, h, h, generator=g),
        train_y=torch.randint(0, k, (n_tr,), generator=g),
        test_x=torch.randn(n_te, c, h, h, generator=g),
        test_y=torch.randint(0, k, (n_te,), generator=g),
        num_classes=k,
    )
