"""On-disk data set formats: tiny fakes in the real formats, loaded through load_dataset."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

from st_app.core.data import DatasetError, ImageData, load_dataset, normalise

# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def pattern_image() -> np.ndarray:
    """One 3x32x32 image whose layout is recognisable: R rises down rows, G across columns, B falls down rows."""
    rows = np.arange(32)[:, None] * 7 * np.ones((1, 32), dtype=np.int64)
    cols = np.ones((32, 1), dtype=np.int64) * np.arange(32)[None, :] * 7
    return np.stack([rows, cols, 255 - rows]).astype(np.uint8)


def random_images(rng: np.random.Generator, n: int, shape: tuple[int, ...] = (3, 32, 32)) -> np.ndarray:
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)


def expected(train: np.ndarray, test: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """What load_dataset must produce from uint8 (N, C, H, W) arrays."""
    return normalise(torch.from_numpy(train).float() / 255, torch.from_numpy(test).float() / 255)


def check_pattern(x: torch.Tensor) -> None:
    """The pattern image survived as N, C, H, W with channels in R, G, B order."""
    r, g, b = x[0], x[1], x[2]
    assert (r[1:, :] > r[:-1, :]).all() and torch.allclose(r, r[:, :1].expand_as(r))
    assert (g[:, 1:] > g[:, :-1]).all() and torch.allclose(g, g[:1, :].expand_as(g))
    assert (b[1:, :] < b[:-1, :]).all() and torch.allclose(b, b[:, :1].expand_as(b))


def check_common(d: ImageData, channels: int, size: int, n_train: int, n_test: int, classes: int) -> None:
    assert d.train_x.shape == (n_train, channels, size, size)
    assert d.test_x.shape == (n_test, channels, size, size)
    assert d.in_channels == channels and d.image_size == size and d.num_classes == classes
    assert d.train_y.dtype == torch.long and d.test_y.dtype == torch.long
    assert d.train_x.dtype == torch.float32
    mean = d.train_x.mean(dim=(0, 2, 3))
    assert torch.allclose(mean, torch.zeros(channels), atol=1e-4)


def dump(path: Path, obj: object, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar10_py(root: Path, rng: np.random.Generator, protocol: int = 2) -> tuple[np.ndarray, ...]:
    folder = root / "cifar-10-batches-py"
    xs, ys = [], []
    for i in range(1, 6):
        x = random_images(rng, 2)
        if i == 1:
            x[0] = pattern_image()
        y = [(2 * i) % 10, (2 * i + 3) % 10]
        dump(folder / f"data_batch_{i}", {b"batch_label": b"training batch", b"labels": y, b"data": x.reshape(2, -1)}, protocol)
        xs.append(x)
        ys += y
    tx = random_images(rng, 3)
    ty = [9, 0, 4]
    dump(folder / "test_batch", {b"batch_label": b"testing batch", b"labels": ty, b"data": tx.reshape(3, -1)}, protocol)
    dump(folder / "batches.meta", {b"label_names": [n.encode() for n in CIFAR10_NAMES], b"num_vis": 3072}, protocol)
    return np.concatenate(xs), np.array(ys), tx, np.array(ty)


def write_idx(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    n, h, w = images.shape
    blobs = {
        f"{prefix}-images-idx3-ubyte": struct.pack(">IIII", 2051, n, h, w) + images.tobytes(),
        f"{prefix}-labels-idx1-ubyte": struct.pack(">II", 2049, n) + labels.astype(np.uint8).tobytes(),
    }
    for name, blob in blobs.items():
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(blob))
        else:
            (folder / name).write_bytes(blob)


def write_png(path: Path, rgb: tuple[int, int, int], size: tuple[int, int] = (10, 12)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, rgb).save(path)


class Evil:
    """Unpickling this runs a shell command that leaves a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ---------------------------------------------------------------------------------------
# CIFAR
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_python_format(tmp_path: Path, protocol: int) -> None:
    train_x, train_y, test_x, test_y = write_cifar10_py(tmp_path, np.random.default_rng(0), protocol)
    d = load_dataset("cifar10", data_dir=tmp_path, download=False)
    check_common(d, 3, 32, 10, 3, 10)
    assert d.train_y.tolist() == train_y.tolist() and d.test_y.tolist() == test_y.tolist()
    want_train, want_test = expected(train_x, test_x)
    assert torch.allclose(d.train_x, want_train, atol=1e-5) and torch.allclose(d.test_x, want_test, atol=1e-5)
    check_pattern(d.train_x[0])
    assert d.classes == tuple(CIFAR10_NAMES) and d.augment
    # the extracted folder itself works as --data-dir too
    d2 = load_dataset("cifar10", data_dir=str(tmp_path / "cifar-10-batches-py"))
    assert torch.equal(d2.train_x, d.train_x)


def py2_cifar_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """What Python 2 cPickle (protocol 2, old numpy) wrote for the original CIFAR batches.

    Byte strings are BINSTRINGs and the globals name ``numpy.core.multiarray``, which is why
    the loader must unpickle with a latin1 encoding and map the old numpy module names.
    """

    def short(b: bytes) -> bytes:
        return b"U" + bytes([len(b)]) + b

    n, m = data.shape
    arr = (
        b"cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02K\x00\x85" + short(b"b") + b"\x87Rq\x03"
        + b"(K\x01M" + struct.pack("<H", n) + b"M" + struct.pack("<H", m) + b"\x86cnumpy\ndtype\nq\x04" + short(b"u1")
        + b"K\x00K\x01\x87Rq\x05(K\x03" + short(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89"
        + b"T" + struct.pack("<I", data.size) + data.tobytes() + b"tb"
    )
    label_list = b"]q\x06(" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return b"\x80\x02}q\x00(" + short(b"data") + arr + short(b"labels") + label_list + b"u."


def test_cifar10_python2_pickles(tmp_path: Path) -> None:
    train_x, train_y, test_x, test_y = write_cifar10_py(tmp_path, np.random.default_rng(7))
    folder = tmp_path / "cifar-10-batches-py"
    for i in range(5):
        blob = py2_cifar_pickle(train_x[2 * i : 2 * i + 2].reshape(2, -1), train_y[2 * i : 2 * i + 2].tolist())
        (folder / f"data_batch_{i + 1}").write_bytes(blob)
    (folder / "test_batch").write_bytes(py2_cifar_pickle(test_x.reshape(3, -1), test_y.tolist()))
    d = load_dataset("cifar10", data_dir=folder)  # the extracted folder itself as --data-dir
    assert d.train_y.tolist() == train_y.tolist() and d.test_y.tolist() == test_y.tolist()
    assert torch.allclose(d.train_x, expected(train_x, test_x)[0], atol=1e-5)
    check_pattern(d.train_x[0])


def test_cifar10_binary_format(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    xs, ys = [], []
    for i, fn in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        x = random_images(rng, 2)
        if i == 0:
            x[1] = pattern_image()
        y = np.array([i % 10, 9 - i], dtype=np.uint8)
        (folder / fn).write_bytes(np.concatenate([y[:, None], x.reshape(2, -1)], axis=1).tobytes())
        xs.append(x)
        ys.append(y)
    (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_NAMES) + "\n\n")
    d = load_dataset("cifar10", data_dir=tmp_path)
    check_common(d, 3, 32, 10, 2, 10)
    assert d.train_y.tolist() == np.concatenate(ys[:5]).tolist() and d.test_y.tolist() == ys[5].tolist()
    want_train, want_test = expected(np.concatenate(xs[:5]), xs[5])
    assert torch.allclose(d.train_x, want_train, atol=1e-5) and torch.allclose(d.test_x, want_test, atol=1e-5)
    check_pattern(d.train_x[1])
    assert d.classes == tuple(CIFAR10_NAMES)


def test_cifar100_python_format(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    folder = tmp_path / "cifar-100-python"
    train_x, test_x = random_images(rng, 4), random_images(rng, 2)
    train_x[2] = pattern_image()
    fine, coarse = [0, 57, 99, 3], [0, 1, 19, 2]
    dump(folder / "train", {b"data": train_x.reshape(4, -1), b"fine_labels": fine, b"coarse_labels": coarse})
    dump(folder / "test", {b"data": test_x.reshape(2, -1), b"fine_labels": np.array([98, 1]), b"coarse_labels": [5, 6]})
    names = [f"class{i}" for i in range(100)]
    dump(folder / "meta", {b"fine_label_names": [n.encode() for n in names], b"coarse_label_names": [b"x"] * 20})
    d = load_dataset("cifar100", data_dir=tmp_path)
    check_common(d, 3, 32, 4, 2, 100)
    assert d.train_y.tolist() == fine and d.test_y.tolist() == [98, 1]
    assert torch.allclose(d.train_x, expected(train_x, test_x)[0], atol=1e-5)
    check_pattern(d.train_x[2])
    assert d.classes == tuple(names)


def test_cifar_missing_names_folder_and_download(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset("cifar10", data_dir=tmp_path / "nowhere")
    msg = str(err.value)
    assert "nowhere" in msg and "cifar-10-batches-py" in msg and "--download" in msg and "\n" not in msg
    with pytest.raises(DatasetError, match="cifar-100-python"):
        load_dataset("cifar100", data_dir=tmp_path)


def test_cifar_incomplete_folder_lists_missing_files(tmp_path: Path) -> None:
    write_cifar10_py(tmp_path, np.random.default_rng(3))
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="data_batch_3"):
        load_dataset("cifar10", data_dir=tmp_path)
    with pytest.raises(DatasetError, match="data_batch_3"):
        load_dataset("cifar10", data_dir=tmp_path / "cifar-10-batches-py")


def test_cifar_download_failure_is_a_dataset_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.utils as tv_utils

    calls = []

    def offline(url: str, *args: object, **kwargs: object) -> None:
        calls.append((url, kwargs.get("filename"), kwargs.get("md5")))
        raise URLError("no network")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(DatasetError, match="no network"):
        load_dataset("cifar10", data_dir=tmp_path, download=True)
    assert calls and calls[0][1] == "cifar-10-python.tar.gz" and calls[0][2]
    # without download=True nothing is fetched
    calls.clear()
    with pytest.raises(DatasetError):
        load_dataset("cifar100", data_dir=tmp_path, download=False)
    assert not calls


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    write_cifar10_py(tmp_path, np.random.default_rng(4))
    marker = tmp_path / "pwned"
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    payload = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": Evil(marker)}
    dump(batch, payload)
    assert b"system" in batch.read_bytes()
    with pytest.raises(DatasetError, match="data_batch_1"):
        load_dataset("cifar10", data_dir=tmp_path)
    assert not marker.exists()
    # the meta file goes through the same gate
    write_cifar10_py(tmp_path, np.random.default_rng(4))
    dump(tmp_path / "cifar-10-batches-py" / "batches.meta", Evil(marker), protocol=2)
    with pytest.raises(DatasetError, match="batches.meta"):
        load_dataset("cifar10", data_dir=tmp_path)
    assert not marker.exists()


def test_corrupt_cifar_files(tmp_path: Path) -> None:
    write_cifar10_py(tmp_path, np.random.default_rng(5))
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:100])  # truncated pickle
    with pytest.raises(DatasetError, match="data_batch_2"):
        load_dataset("cifar10", data_dir=tmp_path)
    dump(batch, {b"data": np.zeros((1, 100), np.uint8), b"labels": [0]})  # wrong shape
    with pytest.raises(DatasetError, match="malformed"):
        load_dataset("cifar10", data_dir=tmp_path)
    dump(batch, {b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]})  # label out of range
    with pytest.raises(DatasetError, match="labels"):
        load_dataset("cifar10", data_dir=tmp_path)

    binf = tmp_path / "bin" / "cifar-10-batches-bin"
    binf.mkdir(parents=True)
    for fn in [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]:
        (binf / fn).write_bytes(bytes(3073))
    (binf / "test_batch.bin").write_bytes(bytes(3000))
    with pytest.raises(DatasetError, match="test_batch.bin"):
        load_dataset("cifar10", data_dir=tmp_path / "bin")


# ---------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "folder", "gz"), [("mnist", "MNIST", True), ("fashion-mnist", "FashionMNIST", False)])
def test_mnist_idx_files(tmp_path: Path, name: str, folder: str, gz: bool) -> None:
    rng = np.random.default_rng(6)
    train_x = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    train_x[0] = (np.arange(28)[:, None] * 9 + np.zeros((1, 28), np.int64)).astype(np.uint8)  # rises down rows
    test_x = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    train_y, test_y = np.array([7, 0, 9, 3, 3]), np.array([1, 2, 8])
    raw = tmp_path / folder / "raw"
    write_idx(raw, "train", train_x, train_y, gz)
    write_idx(raw, "t10k", test_x, test_y, gz)
    d = load_dataset(name, data_dir=tmp_path)
    check_common(d, 1, 28, 5, 3, 10)
    assert d.train_y.tolist() == train_y.tolist() and d.test_y.tolist() == test_y.tolist()
    want_train, want_test = expected(train_x[:, None], test_x[:, None])
    assert torch.allclose(d.train_x, want_train, atol=1e-5) and torch.allclose(d.test_x, want_test, atol=1e-5)
    img = d.train_x[0, 0]
    assert (img[1:] > img[:-1]).all()
    assert not d.augment and len(d.classes) == 10


def test_mnist_missing_names_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        load_dataset("mnist", data_dir=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "MNIST" / "raw") in msg and "--download" in msg
    for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert f in msg
    with pytest.raises(DatasetError, match="FashionMNIST"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


def test_corrupt_idx_file(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw, "train", np.zeros((2, 28, 28), np.uint8), np.array([1, 2]), gz=False)
    write_idx(raw, "t10k", np.zeros((1, 28, 28), np.uint8), np.array([3]), gz=False)
    (raw / "t10k-images-idx3-ubyte").write_bytes(b"\xff\x00garbage" * 3)
    with pytest.raises(DatasetError, match="MNIST"):
        load_dataset("mnist", data_dir=tmp_path)
    (raw / "t10k-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, 5, 28, 28) + bytes(100))  # truncated
    with pytest.raises(DatasetError, match="MNIST"):
        load_dataset("mnist", data_dir=tmp_path)
    (raw / "t10k-images-idx3-ubyte").unlink()
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte.gz"):
        load_dataset("mnist", data_dir=tmp_path)


def test_mnist_download_failure_is_a_dataset_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets.mnist as tv_mnist

    def offline(*args: object, **kwargs: object) -> None:
        raise URLError("no network")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", offline)
    with pytest.raises(DatasetError, match="no network"):
        load_dataset("mnist", data_dir=tmp_path, download=True)


# ---------------------------------------------------------------------------------------
# ImageFolder
# ---------------------------------------------------------------------------------------

RED, BLUE, GREEN = (250, 10, 0), (0, 20, 240), (5, 200, 30)


def assert_colours(d: ImageData) -> None:
    """Class 0 images are red, class 1 blue: channel order survives as ordering of values."""
    for x, y in ((d.train_x, d.train_y), (d.test_x, d.test_y)):
        red, blue = x[y == 0], x[y == 1]
        if len(red) and len(blue):
            assert red[:, 0].min() > blue[:, 0].max()  # more red
            assert red[:, 2].max() < blue[:, 2].min()  # less blue


def test_imagefolder_train_test_layout(tmp_path: Path) -> None:
    for split, n in (("train", 3), ("val", 1)):
        for i in range(n):
            write_png(tmp_path / split / "a_red" / f"{i}.png", RED)
            write_png(tmp_path / split / "b_blue" / f"{i}.PNG", BLUE)
    write_png(tmp_path / "train" / "c_green" / "0.png", GREEN)
    (tmp_path / "train" / "a_red" / "notes.txt").write_text("not an image")
    write_png(tmp_path / "train" / ".hidden" / "0.png", GREEN)
    d = load_dataset(f"imagefolder:{tmp_path}", image_size=16)
    check_common(d, 3, 16, 7, 2, 3)
    assert d.classes == ("a_red", "b_blue", "c_green") and d.augment
    assert d.train_y.tolist() == [0, 0, 0, 1, 1, 1, 2] and d.test_y.tolist() == [0, 1]
    assert_colours(d)


def test_imagefolder_flat_layout_is_split_80_20_reproducibly(tmp_path: Path) -> None:
    for i in range(5):
        write_png(tmp_path / "imgs" / "cat" / f"{i}.png", RED)
        write_png(tmp_path / "imgs" / "dog" / f"{i}.jpg", BLUE)
    d = load_dataset(f"imagefolder:{tmp_path / 'imgs'}")
    check_common(d, 3, 32, 8, 2, 2)
    assert sorted(d.train_y.tolist() + d.test_y.tolist()) == [0] * 5 + [1] * 5
    assert_colours(d)
    again = load_dataset(f"imagefolder:{tmp_path / 'imgs'}")
    assert torch.equal(again.test_y, d.test_y) and torch.equal(again.train_x, d.train_x)


def test_imagefolder_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(f"imagefolder:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no class folders"):
        load_dataset(f"imagefolder:{tmp_path / 'empty'}")
    write_png(tmp_path / "bad" / "a" / "0.png", RED)
    write_png(tmp_path / "bad" / "a" / "1.png", RED)
    broken = tmp_path / "bad" / "b" / "broken.png"
    write_png(broken, BLUE)
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    with pytest.raises(DatasetError) as err:
        load_dataset(f"imagefolder:{tmp_path / 'bad'}")
    assert str(broken) in str(err.value) and "\n" not in str(err.value)
