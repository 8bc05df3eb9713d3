"""GUI test fixtures: offscreen Qt, isolated settings, tiny 1-epoch CT/ST runs."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import pytest

import st_app.gui  # noqa: E402,F401 - installs the guard against PySide6's None refcount bug


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One-epoch resnet20 runs on digits (CT and ST), trained once per test session."""
    from st_app.core.train import TrainConfig, Trainer

    root = tmp_path_factory.mktemp("tiny-runs")
    runs = {}
    for method in ("ct", "st"):
        out = root / f"digits-resnet20-{method}"
        Trainer(TrainConfig(method=method, epochs=1, seed=0, device="cpu"), out_dir=out).run()
        runs[method] = out
    return runs


SYNTH = "synthetic:1,8,10,64,64"  # 1 channel, 8x8, 10 classes, 64 train, 64 test


@pytest.fixture(scope="session")
def dense_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One-epoch DenseNet-BC-22 runs (3 dense blocks of 3 layers) on synthetic 8x8 images, CT and ST."""
    from st_app.core.train import TrainConfig, Trainer

    root = tmp_path_factory.mktemp("dense-runs")
    runs = {}
    for method in ("ct", "st"):
        out = root / f"densenet-bc-22-{method}"
        Trainer(TrainConfig(model="densenet-bc-22", dataset=SYNTH, method=method, epochs=1, seed=0, device="cpu",
                            batch_size=32), out_dir=out).run()
        runs[method] = out
    return runs


@pytest.fixture
def settings(tmp_path: Path):
    """A QSettings file of the test's own, so nothing touches the user's settings."""
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "st-lab-test.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def make_window(qtbot, tiny_runs, settings):  # noqa: ANN001, ANN201
    """Build a MainWindow on the tiny runs and wait until both accuracies are shown."""
    from st_app.gui.main_window import MainWindow

    def make(ct=None, st=None, *, wait: bool = True, **kwargs):  # noqa: ANN001, ANN202
        kwargs.setdefault("enable_training", False)
        win = MainWindow(ct or tiny_runs["ct"], st or tiny_runs["st"], settings=settings, **kwargs)
        qtbot.addWidget(win)
        win.resize(1280, 820)
        win.show()
        if wait:
            qtbot.waitUntil(win.wait_for_accuracy, timeout=15000)
        return win

    return make
