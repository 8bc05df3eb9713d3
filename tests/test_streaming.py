"""Image folders streamed from disk through DataLoader workers (real JPEG files, one corrupt)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import st_app.core.data as data_mod
from st_app.core.data import ImageData, StreamingData, StreamSpec, open_dataset

ROOT = Path(__file__).resolve().parent.parent


def _jpeg_folder(root: Path, per_class: int = 40, size: int = 48, corrupt: bool = True) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", per_class - 8), ("val", 8)):
        for c, name in enumerate(("ant", "bee", "cat")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
                img[..., c] += 150  # a colour per class: learnable
                Image.fromarray(img).save(folder / f"{i:03d}.JPEG", quality=90)
    if corrupt:
        (root / "train" / "bee" / "007.JPEG").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def test_auto_keeps_small_folders_in_memory_and_streams_big_ones(tmp_path, monkeypatch):
    root = _jpeg_folder(tmp_path / "imgs", per_class=12, corrupt=False)
    small = open_dataset(f"imagefolder:{root}", image_size=16)
    assert isinstance(small, ImageData) and small.in_memory
    monkeypatch.setattr(data_mod, "memory_budget", lambda: 1000)  # as if the set were too big
    big = open_dataset(f"imagefolder:{root}", image_size=16, stream=StreamSpec(workers=0))
    assert isinstance(big, StreamingData) and not big.in_memory
    assert (big.n_train, big.n_test, big.num_classes) == (12, 24, 3)  # 4 + 8 images per class
    assert isinstance(open_dataset(f"imagenet:{root}", image_size=16), StreamingData)  # ImageNet streams


def test_streamed_batches_have_the_recipe_shapes(tmp_path):
    root = _jpeg_folder(tmp_path / "imgs", per_class=12, corrupt=False)
    data = open_dataset(f"imagenet:{root}", image_size=24, stream=StreamSpec(workers=0, val_resize=30))
    assert isinstance(data, StreamingData)
    xb, yb = next(iter(data.train_batches(6, generator=torch.Generator().manual_seed(0))))
    assert xb.shape == (6, 3, 24, 24) and yb.dtype == torch.long
    xt, _ = next(iter(data.test_batches(5)))
    assert xt.shape == (5, 3, 24, 24)  # Resize(30) then CenterCrop(24)
    # two ranks split one epoch's order between them, without overlap
    firsts = [next(iter(data.train_batches(6, generator=torch.Generator().manual_seed(1), rank=r, world_size=2)))
              for r in (0, 1)]
    assert firsts[0][0].shape[0] == 3 and not torch.equal(firsts[0][0], firsts[1][0])
    assert data.calibration_images(4, seed=0).shape == (4, 3, 24, 24)


@pytest.mark.slow
def test_resnet18_trains_one_epoch_with_two_workers_and_skips_the_corrupt_file(tmp_path):
    root = _jpeg_folder(tmp_path / "imgs")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "st_app", "train", "--model", "resnet18", "--dataset", f"imagenet:{root}",
         "--image-size", "32", "--data-in-memory", "no", "--data-workers", "2", "--method", "ct", "--epochs", "1",
         "--batch-size", "16", "--device", "cpu", "--threads", "1", "--quiet", "--out", str(out)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: skipping unreadable image")]
    assert len(warnings) == 1 and "007.JPEG" in warnings[0]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["dataset"]["n_train"] == 96 and meta["dataset"]["name"].startswith("imagenet:")
    assert meta["config"]["data_workers"] == 2 and meta["epoch"] == 1
    # the run evaluates from the same streamed set (test images decoded into memory for the sweep)
    # (the recorded image folder is used only when named again: --data-dir)
    ev = subprocess.run([sys.executable, "-m", "st_app", "eval", "--checkpoint", str(out), "--plans", "main;depths:1,1,1,1",
                         "--bn", "recalibrate", "--calib-images", "8", "--test-images", "10", "--json",
                         "--data-dir", str(root)],
                        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert ev.returncode == 0, ev.stderr[-2000:]
    report = json.loads(ev.stdout)
    assert report["n_images"] == 10 and len(report["results"]) == 2
    # the analyses open it the same way: only the test and calibration images they read are decoded
    an = subprocess.run([sys.executable, "-m", "st_app", "analyze", "subnets", "--ct", str(out), "--st", str(out),
                         "--bn", "recalibrate", "--calib-images", "8", "--test-images", "12", "--limit", "3",
                         "--data-dir", str(root), "--threads", "1", "--out", str(tmp_path / "report"), "--json"],
                        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert an.returncode == 0, an.stderr[-2000:]
    subnets = json.loads(an.stdout)
    assert subnets["dataset"].startswith("imagenet:") and subnets["n_images"] == 12


def test_analysis_view_decodes_only_what_an_analysis_reads(tmp_path, monkeypatch):
    root = _jpeg_folder(tmp_path / "imgs", per_class=12, corrupt=False)
    streamed = open_dataset(f"imagenet:{root}", image_size=24, stream=StreamSpec(workers=0, val_resize=30))
    view = data_mod.analysis_view(streamed, calib_n=5, seed=3, test_images=7)
    assert isinstance(view, ImageData) and view.num_classes == 3 and view.classes == streamed.classes
    assert view.test_x.shape == (7, 3, 24, 24) and view.test_y.tolist() == streamed.test_tensors(7)[1].tolist()
    assert torch.equal(view.train_x, streamed.calibration_images(5, seed=3))  # seeded: the same images again
    # an in-memory set is only cut to its test images
    small = data_mod.load_synthetic("3,8,4,20,10")
    cut = data_mod.analysis_view(small, calib_n=5, seed=0, test_images=6)
    assert cut.n_test == 6 and torch.equal(cut.train_x, small.train_x)
    # too many test images for the memory budget: one line that names the way out
    monkeypatch.setattr(data_mod, "memory_budget", lambda: 100)
    with pytest.raises(data_mod.DatasetError, match="--test-images"):
        data_mod.analysis_view(streamed, calib_n=2, seed=0)
