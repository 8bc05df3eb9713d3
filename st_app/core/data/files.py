"""The torchvision data sets and user image folders, read from their on-disk formats.

Everything here ends in ``types.from_uint8`` so every set becomes the same in-memory
``ImageData``. Nothing is downloaded unless asked; a missing or damaged file becomes a
``DatasetError`` whose one-line message says which file and what to do, never a traceback.
The CIFAR python files are pickles, so they go through a restricted unpickler that can only
rebuild numpy arrays: a downloaded or shared file must not be able to run code.
"""

from __future__ import annotations

import codecs
import gzip
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..limits import LimitError, check_number
from .types import DatasetError, ImageData, from_uint8

__all__ = ["list_imagefolder", "load_cifar", "load_imagefolder", "load_mnist", "safe_unpickle"]

# ----------------------------------------------------------------------------------------
# Restricted unpickling
# ----------------------------------------------------------------------------------------

try:  # numpy >= 2 moved the internals to numpy._core; old pickles still name numpy.core
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]


def _latin1_encode(obj: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Python 3 pickles bytes as ``_codecs.encode(text, 'latin1')`` below protocol 3; allow only that."""
    if encoding.lower().replace("-", "").replace("_", "") not in ("latin1", "iso88591") or not isinstance(obj, str):
        raise DatasetError(f"pickle asks for _codecs.encode with encoding {encoding!r}")
    return codecs.encode(obj, "latin1", errors)


# (module, name) -> the object it may resolve to. Everything else is refused, so a pickle can
# build numpy arrays, dtypes and scalars and plain containers, and nothing that runs code.
_PICKLE_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}
for _mod in ("numpy.core", "numpy._core"):
    _PICKLE_ALLOWED[(f"{_mod}.multiarray", "_reconstruct")] = _multiarray._reconstruct
    _PICKLE_ALLOWED[(f"{_mod}.multiarray", "scalar")] = _multiarray.scalar
    _PICKLE_ALLOWED[(f"{_mod}.numeric", "_frombuffer")] = _numeric._frombuffer  # type: ignore[attr-defined]


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler whose globals are limited to what rebuilding numpy arrays needs."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _PICKLE_ALLOWED[(module, name)]
        except KeyError:
            raise DatasetError(f"refusing to load {module}.{name} from a pickle") from None

    def persistent_load(self, pid: Any) -> Any:
        raise DatasetError("refusing a pickle with persistent ids")


def safe_unpickle(path: Path) -> Any:
    """Unpickle ``path`` allowing only numpy arrays and plain Python data; DatasetError otherwise.

    ``latin1`` is what the original (Python 2) CIFAR pickles need, as in torchvision.
    """
    try:
        with open(path, "rb") as fh:
            return _NumpyOnlyUnpickler(fh, encoding="latin1").load()
    except DatasetError as exc:
        raise DatasetError(f"{path} is not a plain data pickle: {exc}") from None
    except Exception as exc:  # corrupt pickles raise all sorts: EOFError, UnpicklingError, ValueError...
        raise DatasetError(f"{path} is corrupt or not a pickle: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _str_keys(obj: Any, path: Path) -> dict[str, Any]:
    """CIFAR dicts have bytes or str keys depending on who wrote them; normalise to str."""
    if not isinstance(obj, dict):
        raise DatasetError(f"{path} is malformed: expected a dict, got {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


def _names(values: Any) -> tuple[str, ...]:
    return tuple(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values)


# ----------------------------------------------------------------------------------------
# CIFAR
# ----------------------------------------------------------------------------------------

_CIFAR_PIXELS = 3 * 32 * 32


class _CifarFormat:
    """One on-disk variant: its folder, its files, and how to read a split from them."""

    def __init__(
        self,
        folder: str,
        train: tuple[str, ...],
        test: tuple[str, ...],
        meta: str,
        read: Callable[[Path, _CifarFormat], tuple[np.ndarray, np.ndarray]],
        read_meta: Callable[[Path, _CifarFormat], tuple[str, ...]],
        key: str = "",
    ) -> None:
        self.folder, self.train, self.test, self.meta = folder, train, test, meta
        self.read, self.read_meta, self.key = read, read_meta, key

    @property
    def files(self) -> tuple[str, ...]:
        return self.train + self.test


def _read_py_batch(path: Path, fmt: _CifarFormat) -> tuple[np.ndarray, np.ndarray]:
    d = _str_keys(safe_unpickle(path), path)
    if "data" not in d or fmt.key not in d:
        raise DatasetError(f"{path} is malformed: expected keys 'data' and {fmt.key!r}, found {sorted(d)}")
    try:
        x = np.asarray(d["data"])
        y = np.asarray(d[fmt.key]).astype(np.int64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{path} is malformed: {_one_line(exc)}") from None
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != _CIFAR_PIXELS:
        raise DatasetError(f"{path} is malformed: 'data' must be uint8 (N, {_CIFAR_PIXELS}), got {x.dtype} {x.shape}")
    if len(y) != len(x):
        raise DatasetError(f"{path} is malformed: {len(x)} images but {len(y)} labels")
    return x.reshape(-1, 3, 32, 32), y


def _read_py_meta(path: Path, fmt: _CifarFormat) -> tuple[str, ...]:
    d = _str_keys(safe_unpickle(path), path)
    key = "fine_label_names" if fmt.key == "fine_labels" else "label_names"
    return _names(d.get(key, ()))


def _read_bin_batch(path: Path, fmt: _CifarFormat) -> tuple[np.ndarray, np.ndarray]:
    """Binary records: label byte(s) then 3072 pixel bytes (CIFAR-100: coarse, fine)."""
    n_label = 2 if fmt.key == "fine_labels" else 1
    rec = n_label + _CIFAR_PIXELS
    try:
        raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {_one_line(exc)}") from None
    if raw.size == 0 or raw.size % rec:
        raise DatasetError(f"{path} is corrupt: {raw.size} bytes is not a whole number of {rec}-byte records")
    table = raw.reshape(-1, rec)
    return table[:, n_label:].reshape(-1, 3, 32, 32), table[:, n_label - 1].astype(np.int64)


def _read_bin_meta(path: Path, fmt: _CifarFormat) -> tuple[str, ...]:
    try:
        return tuple(line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip())
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {_one_line(exc)}") from None


_CIFAR: dict[str, dict[str, Any]] = {
    "cifar10": {
        "title": "CIFAR-10",
        "classes": 10,
        "formats": (
            _CifarFormat(
                "cifar-10-batches-py",
                tuple(f"data_batch_{i}" for i in range(1, 6)),
                ("test_batch",),
                "batches.meta",
                _read_py_batch,
                _read_py_meta,
                key="labels",
            ),
            _CifarFormat(
                "cifar-10-batches-bin",
                tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
                ("test_batch.bin",),
                "batches.meta.txt",
                _read_bin_batch,
                _read_bin_meta,
                key="labels",
            ),
        ),
    },
    "cifar100": {
        "title": "CIFAR-100",
        "classes": 100,
        "formats": (
            _CifarFormat("cifar-100-python", ("train",), ("test",), "meta", _read_py_batch, _read_py_meta, key="fine_labels"),
            _CifarFormat(
                "cifar-100-binary", ("train.bin",), ("test.bin",), "fine_label_names.txt",
                _read_bin_batch, _read_bin_meta, key="fine_labels",
            ),
        ),
    },
}


def _find_cifar(root: Path, formats: tuple[_CifarFormat, ...]) -> tuple[Path, _CifarFormat] | None:
    """The first folder (root/<folder>, then root itself) holding every file of a format."""
    for fmt in formats:
        for folder in (root / fmt.folder, root):
            if all((folder / f).is_file() for f in fmt.files):
                return folder, fmt
    return None


def _cifar_missing_message(title: str, root: Path, formats: tuple[_CifarFormat, ...]) -> str:
    py = formats[0]
    for fmt in formats:  # a half-copied folder: say exactly which files are missing
        folder = root if root.name == fmt.folder else root / fmt.folder
        if folder.is_dir():
            missing = [f for f in fmt.files if not (folder / f).is_file()]
            return f"{title} in {folder}/ is incomplete: missing {', '.join(missing)}; copy them there, or pass --download"
    return (
        f"{title} not found in {root}/: put {py.folder}/ (from {_cifar_tarball(py)}, with "
        f"{', '.join(py.files)}) or {formats[1].folder}/ there, or pass --download "
        f"(--data-dir DIR chooses the folder)"
    )


def _cifar_tarball(fmt: _CifarFormat) -> str:
    return "cifar-10-python.tar.gz" if fmt.folder.startswith("cifar-10-") else "cifar-100-python.tar.gz"


def _download_cifar(name: str, title: str, root: Path) -> None:
    """Fetch and unpack the python version with torchvision's URL, file name and checksum."""
    from torchvision.datasets import CIFAR10, CIFAR100
    from torchvision.datasets.utils import download_and_extract_archive

    cls = CIFAR10 if name == "cifar10" else CIFAR100
    try:
        root.mkdir(parents=True, exist_ok=True)
        download_and_extract_archive(cls.url, str(root), filename=cls.filename, md5=cls.tgz_md5)
    except Exception as exc:  # offline: URLError; bad checksum: RuntimeError; disk: OSError
        raise DatasetError(
            f"downloading {title} from {cls.url} into {root}/ failed: {_one_line(exc)}; "
            f"put {cls.base_folder}/ (from {cls.filename}) in {root}/ by hand"
        ) from None


def load_cifar(name: str, root: Path, download: bool = False) -> ImageData:
    """CIFAR-10 / CIFAR-100 from the python (pickle) or binary version under ``root``.

    ``root`` may be the data folder or the extracted folder itself. File checksums are not
    checked, so hand-made or re-packed copies load; the pickles are read with
    ``safe_unpickle`` whatever their origin.
    """
    if name not in _CIFAR:
        raise DatasetError(f"unknown CIFAR variant {name!r}; choose cifar10 or cifar100")
    spec = _CIFAR[name]
    title, num_classes, formats = spec["title"], spec["classes"], spec["formats"]
    root = Path(root)
    found = _find_cifar(root, formats)
    if found is None and download:
        _download_cifar(name, title, root)
        found = _find_cifar(root, formats)
    if found is None:
        raise DatasetError(_cifar_missing_message(title, root, formats))
    folder, fmt = found

    def read_split(files: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        parts = [fmt.read(folder / f, fmt) for f in files]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    train_x, train_y = read_split(fmt.train)
    test_x, test_y = read_split(fmt.test)
    for split, y in (("train", train_y), ("test", test_y)):
        if len(y) == 0:
            raise DatasetError(f"{title} in {folder}/ has an empty {split} split")
        if y.min() < 0 or y.max() >= num_classes:
            raise DatasetError(f"{title} in {folder}/ has {split} labels outside 0..{num_classes - 1}")
    classes: tuple[str, ...] = ()
    if (folder / fmt.meta).is_file():
        classes = fmt.read_meta(folder / fmt.meta, fmt)
        if len(classes) != num_classes:
            classes = ()  # a damaged or foreign meta file only costs the names
    return from_uint8(name, train_x, train_y, test_x, test_y, num_classes, augment=True, classes=classes)


# ----------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST
# ----------------------------------------------------------------------------------------

_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _gunzip_missing(raw: Path) -> None:
    """torchvision reads only un-gzipped idx files; unpack any ``.gz`` that lacks its twin.

    This is what torchvision's own download step does, so hand-copied ``.gz`` files work too.
    """
    for f in _IDX_FILES:
        plain, packed = raw / f, raw / f"{f}.gz"
        if plain.is_file() or not packed.is_file():
            continue
        tmp = raw / f"{f}.partial"
        try:
            with gzip.open(packed, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(tmp, plain)
        except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
            tmp.unlink(missing_ok=True)
            raise DatasetError(f"cannot unpack {packed}: {_one_line(exc)}") from None


def load_mnist(name: str, root: Path, download: bool = False) -> ImageData:
    """MNIST / Fashion-MNIST through torchvision, from idx files in ``root/<MNIST|FashionMNIST>/raw``."""
    from torchvision.datasets import MNIST, FashionMNIST

    if name not in ("mnist", "fashion-mnist"):
        raise DatasetError(f"unknown MNIST variant {name!r}; choose mnist or fashion-mnist")
    cls = MNIST if name == "mnist" else FashionMNIST
    title = "MNIST" if name == "mnist" else "Fashion-MNIST"
    root = Path(root)
    raw = root / cls.__name__ / "raw"
    if raw.is_dir():
        _gunzip_missing(raw)
    have = raw.is_dir() and all((raw / f).is_file() for f in _IDX_FILES)
    legacy = all((root / cls.__name__ / "processed" / f).is_file() for f in ("training.pt", "test.pt"))
    if not (have or legacy or download):
        missing = [f for f in _IDX_FILES if not (raw / f).is_file()]
        raise DatasetError(
            f"{title} not found in {root}/: put {', '.join(_IDX_FILES)} (or their .gz) in {raw}/"
            f"{' (missing: ' + ', '.join(missing) + ')' if len(missing) < len(_IDX_FILES) else ''}, "
            f"or pass --download (--data-dir DIR chooses the folder)"
        )
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except RuntimeError as exc:
        if download and str(exc).startswith("Error downloading"):
            raise DatasetError(f"downloading {title} into {raw}/ failed: {_one_line(exc)}") from None
        raise DatasetError(f"{title} in {raw}/ could not be read: {_one_line(exc)}") from None
    except Exception as exc:  # corrupt idx: AssertionError, KeyError, ValueError, TypeError...
        raise DatasetError(f"{title} in {raw}/ is corrupt ({', '.join(_IDX_FILES)}): {_one_line(exc)}") from None

    def split(ds: Any) -> tuple[np.ndarray, np.ndarray]:
        x, y = torch.as_tensor(ds.data), torch.as_tensor(ds.targets)
        if x.dtype != torch.uint8 or x.ndim != 3 or len(x) != len(y) or len(x) == 0:
            raise DatasetError(f"{title} in {raw}/ is malformed: images {tuple(x.shape)} vs labels {tuple(y.shape)}")
        return x.numpy()[:, None], y.long().numpy()

    train_x, train_y = split(train)
    test_x, test_y = split(test)
    for y in (train_y, test_y):
        if y.min() < 0 or y.max() > 9:
            raise DatasetError(f"{title} in {raw}/ has labels outside 0..9")
    return from_uint8(name, train_x, train_y, test_x, test_y, 10, augment=False, classes=tuple(cls.classes))


# ----------------------------------------------------------------------------------------
# ImageFolder
# ----------------------------------------------------------------------------------------


# torchvision.datasets.folder.IMG_EXTENSIONS, copied so image folders load without importing torchvision
_IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _image_extensions() -> tuple[str, ...]:
    return _IMG_EXTENSIONS


def _class_dirs(folder: Path) -> list[str]:
    """Sub-folders as classes, sorted like torchvision's ImageFolder; hidden ones skipped."""
    return sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _list_images(folder: Path, classes: list[str]) -> list[tuple[Path, int]]:
    exts = _image_extensions()
    samples: list[tuple[Path, int]] = []
    for idx, cls in enumerate(classes):
        for dirpath, dirnames, filenames in os.walk(folder / cls):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))  # walk order = sorted
            for fn in sorted(filenames):
                if fn.lower().endswith(exts) and not fn.startswith("."):
                    samples.append((Path(dirpath) / fn, idx))
    return samples


def _load_images(samples: list[tuple[Path, int]], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode with PIL into (N, 3, size, size) uint8; the first bad file stops with its name."""
    from PIL import Image

    x = np.empty((len(samples), 3, size, size), dtype=np.uint8)
    y = np.empty(len(samples), dtype=np.int64)
    for i, (path, label) in enumerate(samples):
        try:
            with Image.open(path) as img:
                rgb = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            x[i] = np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)
        except Exception as exc:  # UnidentifiedImageError, truncated files, decompression bombs...
            raise DatasetError(f"cannot read image {path}: {_one_line(exc)}") from None
        y[i] = label
    return x, y


Samples = list[tuple[Path, int]]


def list_imagefolder(path: Path) -> tuple[list[str], Samples, Samples]:
    """Classes and (file, label) train/test samples of an ImageFolder layout.

    ``train/`` + ``test/`` (or ``val/``), or a flat ``path/<class>/...`` folder split 80/20
    with a fixed seed so reruns see the same test images. Both the in-memory loader and the
    streaming one (:mod:`.streaming`) read a folder through this one function.
    """
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(
            f"image folder {path} not found: expected {path}/<class>/*.png "
            f"or {path}/train/<class>/ + {path}/test/<class>/"
        )
    test_dir = next((path / d for d in ("test", "val") if (path / d).is_dir()), None)
    train_dir = path / "train"
    if train_dir.is_dir() and test_dir is None and _class_dirs(train_dir):
        raise DatasetError(f"image folder {path} has train/ but no test/ or val/ next to it")

    if train_dir.is_dir() and test_dir is not None:
        classes = _class_dirs(train_dir)
        if not classes:
            raise DatasetError(f"no class folders in {train_dir}: expected {train_dir}/<class>/*.png")
        extra = sorted(set(_class_dirs(test_dir)) - set(classes))
        if extra:
            raise DatasetError(f"{test_dir} has classes not in {train_dir}: {', '.join(extra)}")
        train_s, test_s = _list_images(train_dir, classes), _list_images(test_dir, classes)
        empty = sorted(set(classes) - {classes[i] for _, i in train_s})
        if empty:
            raise DatasetError(f"no images in {train_dir}/{empty[0]} (image files: {', '.join(_image_extensions())})")
        if not test_s:
            raise DatasetError(f"no images in {test_dir}/<class>/")
    else:
        classes = _class_dirs(path)
        if not classes:
            raise DatasetError(f"no class folders in {path}: expected {path}/<class>/*.png")
        samples = _list_images(path, classes)
        empty = sorted(set(classes) - {classes[i] for _, i in samples})
        if empty:
            raise DatasetError(f"no images in {path / empty[0]} (image files: {', '.join(_image_extensions())})")
        if len(samples) < 2:
            raise DatasetError(f"image folder {path} needs at least 2 images to split into train and test")
        order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(0)).tolist()
        n_test = (len(samples) + 4) // 5  # ceil(20%), at least one
        test_s = [samples[i] for i in order[:n_test]]
        train_s = [samples[i] for i in order[n_test:]]

    if len(classes) < 2:
        raise DatasetError(f"image folder {path} has only one class ({classes[0]}); a classifier needs at least two "
                           "class folders (accuracy on one class is always 100%)")
    return classes, train_s, test_s


def load_imagefolder(path: Path, image_size: int = 32) -> ImageData:
    """A user's images in ImageFolder layout (see :func:`list_imagefolder`), decoded into memory.

    Images are converted to RGB and resized to ``image_size`` squared.
    """
    try:
        check_number("image-size", image_size)
    except LimitError as exc:
        raise DatasetError(str(exc)) from None
    classes, train_s, test_s = list_imagefolder(path)
    label = f"imagefolder:{Path(path)}"
    train_x, train_y = _load_images(train_s, image_size)
    test_x, test_y = _load_images(test_s, image_size)
    return from_uint8(label, train_x, train_y, test_x, test_y, len(classes), augment=True, classes=tuple(classes))
