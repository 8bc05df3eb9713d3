"""The training panel: set up a run, train CT vs ST side by side, watch it live.

The panel owns one long-lived :class:`~st_app.gui.train_worker.TrainWorker` in its own
QThread and talks to it only through queued signals and the thread-safe ``TrainControl``;
it never touches a model being trained. Each checked method gets its own run folder
(``<output>/<timestamp>-<method>``), all share the seed (same initial weights, same data
order) and are stepped round-robin, so their curves grow together.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, Qt, QThread, Signal, Slot
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from st_app.core.data import DATASETS
from st_app.core.methods import METHODS
from st_app.core.models import ARCHITECTURES
from st_app.core.train import TrainConfig, TrainControl, available_devices

from .plots import TrainingPlots, method_color, method_label
from .train_worker import TrainRequest, TrainWorker

__all__ = ["TrainingPanel", "default_out_root", "format_eta"]



METHOD_TIPS = {
    "ct": "Common training: cross-entropy on the main network only (the baseline that loafs).",
    "st": "Stimulative training: each step the main net also teaches one sampled ordered sub-network (KL).",
    "stpp": "ST++: KL on z-scored logits, smaller inputs for sub-networks, 6 sub-networks per step.",
    "sd": "Stochastic depth: residual branches dropped at random, survival decaying linearly to 0.5.",
}
_OVERRIDES = {"model", "dataset", "epochs", "batch_size", "lr", "device", "seed", "out_root",
              "probe_every", "data_dir", "momentum", "weight_decay", "nesterov", "bn_reestimate",
              "image_size"}


def default_out_root() -> Path:
    """Where runs go unless the user says otherwise: ``~/st_lab_runs``."""
    return Path.home() / "st_lab_runs"


def format_eta(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "ETA unknown"
    s = int(round(seconds))
    if s < 60:
        return f"ETA {s} s"
    if s < 3600:
        return f"ETA {s // 60} min {s % 60:02d} s"
    return f"ETA {s // 3600} h {(s % 3600) // 60:02d} min"


def _unique_dir(root: Path, name: str) -> Path:
    path, n = root / name, 2
    while path.exists():
        path, n = root / f"{name}-{n}", n + 1
    return path


class TrainingPanel(QWidget):
    """Run setup, side-by-side training, live plots, progress, pause / resume / stop."""

    runsFinished = Signal(dict)  # {"ct": "/path/run_dir", ...}: runs with a saved epoch
    errorOccurred = Signal(str)  # also shown in a message box by the panel itself
    progressChanged = Signal(int, str)  # percent, ETA text
    _trainRequested = Signal(object)  # -> worker (queued: it lives in its own thread)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("TrainingPanel")
        self._training = False
        self._paused = False
        self._stopping = False
        self._control: TrainControl | None = None
        self._probe_plan: str | None = None
        self._runs: dict[str, dict[str, Any]] = {}
        self._epochs = 0
        self._last_progress: tuple[int, str] | None = None
        self._presentation = False
        self.worker_paused = False
        self.step_signals = 0  # coalesced step deliveries received (diagnostics, tests)
        self.steps_received = 0

        self._build_ui()
        self._update_states()

        self._live: dict[str, Any] = {"control": None, "thread": None}
        self._make_worker()
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        # Deleted without shutdown() (e.g. with its parent window): still stop and join the
        # thread, since destroying a running QThread aborts the process.
        live = self._live
        self.destroyed.connect(lambda *_: _stop_and_join(live["thread"], live["control"]))

    def _make_worker(self) -> None:
        """One long-lived worker in its own thread (made again only after ``shutdown()``)."""
        self._thread = QThread()
        self._thread.setObjectName("st-lab-training")
        self.worker = TrainWorker()
        self.worker.moveToThread(self._thread)
        self._trainRequested.connect(self.worker.train, Qt.ConnectionType.QueuedConnection)
        w = self.worker
        w.runStarted.connect(self._on_run_started)
        w.stepsReady.connect(self._on_steps)
        w.probed.connect(self._on_probe)
        w.epochEnded.connect(self._on_epoch)
        w.runEnded.connect(self._on_run_ended)
        w.probesChanged.connect(self._on_probes_changed)
        w.pausedChanged.connect(self._on_paused_changed)
        w.notice.connect(self._on_notice)
        w.error.connect(self._on_error)
        w.finished.connect(self._on_finished)
        self._live["thread"] = self._thread
        self._thread.start()

    # ================================================================== UI
    def _build_ui(self) -> None:
        outer = QHBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        outer.addWidget(splitter)

        side = QWidget()
        side_lay = QVBoxLayout(side)
        side_lay.setContentsMargins(10, 10, 10, 10)
        side_lay.setSpacing(8)

        # ---- set-up form
        setup = QGroupBox("Run set-up")
        form = QFormLayout(setup)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        self.model_combo = QComboBox()
        self.model_combo.addItems(list(ARCHITECTURES))
        self.model_combo.setCurrentText("resnet20")
        self.model_combo.setToolTip("Residual network to train. CIFAR-style resnet20..110 have 3 stages; "
                                    "resnet18..152 are the ImageNet family.")
        form.addRow("Model", self.model_combo)

        self.dataset_combo = QComboBox()
        self.dataset_combo.setEditable(True)
        for name in DATASETS:
            if name == "imagefolder:PATH":
                continue
            self.dataset_combo.addItem(name)
        self.dataset_combo.setCurrentText("digits")
        self.dataset_combo.setToolTip(
            "Data set: 'digits' (bundled 8x8 handwritten digits, trains in seconds), cifar10, cifar100, "
            "mnist, fashion-mnist (files in the data folder), imagefolder:PATH (one sub-folder per class; "
            "use the folder button), or synthetic:C,H,classes,n_train,n_test (random tensors).")
        self.browse_images = QToolButton()
        self.browse_images.setText("…")
        self.browse_images.setToolTip("Choose an image folder (one sub-folder per class) as the data set")
        self.browse_images.clicked.connect(self._browse_imagefolder)
        form.addRow("Data set", _row(self.dataset_combo, self.browse_images))

        self.data_dir_edit = QLineEdit()
        self.data_dir_edit.setPlaceholderText("./data (default)")
        self.data_dir_edit.setToolTip("Folder holding the CIFAR / MNIST files. Nothing is downloaded; "
                                      "a missing file is reported with the names to provide.")
        self.browse_data = QToolButton()
        self.browse_data.setText("…")
        self.browse_data.setToolTip("Choose the data folder")
        self.browse_data.clicked.connect(lambda: self._browse_dir(self.data_dir_edit, "Data folder"))
        form.addRow("Data folder", _row(self.data_dir_edit, self.browse_data))

        methods_box = QWidget()
        mlay = QHBoxLayout(methods_box)
        mlay.setContentsMargins(0, 0, 0, 0)
        self.method_checks: dict[str, QCheckBox] = {}
        for m in METHODS:
            cb = QCheckBox(method_label(m) if m != "sd" else "SD")
            cb.setChecked(m in ("ct", "st"))
            cb.setToolTip(METHOD_TIPS.get(m, m))
            cb.setStyleSheet(f"QCheckBox {{ color: {method_color(m)}; font-weight: 600; }}")
            cb.toggled.connect(self._update_states)
            self.method_checks[m] = cb
            mlay.addWidget(cb)
        mlay.addStretch(1)
        form.addRow("Methods", methods_box)

        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 10000)
        self.epochs_spin.setValue(TrainConfig.epochs)
        self.epochs_spin.setToolTip("Passes over the training set. The learning rate follows a cosine "
                                    "schedule to zero over all epochs; every epoch is checkpointed.")
        form.addRow("Epochs", self.epochs_spin)

        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 65536)
        self.batch_spin.setValue(TrainConfig.batch_size)
        self.batch_spin.setToolTip("Images per optimizer step")
        form.addRow("Batch size", self.batch_spin)

        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(5)
        self.lr_spin.setRange(0.00001, 10.0)
        self.lr_spin.setSingleStep(0.01)
        self.lr_spin.setValue(TrainConfig.lr)
        self.lr_spin.setToolTip("Initial SGD learning rate (Nesterov momentum 0.9, weight decay 5e-4, cosine decay)")
        form.addRow("Learning rate", self.lr_spin)

        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setValue(TrainConfig.seed)
        self.seed_spin.setToolTip("Random seed shared by all methods: same initial weights, same data order, "
                                  "same probe sub-networks")
        form.addRow("Seed", self.seed_spin)

        self.device_combo = QComboBox()
        self.device_combo.addItems(available_devices())
        self.device_combo.setToolTip("Where to train: 'auto' picks CUDA, then Apple MPS, then the CPU. "
                                     "Only devices torch can see are listed.")
        form.addRow("Device", self.device_combo)

        self.probe_spin = QSpinBox()
        self.probe_spin.setRange(0, 1_000_000)
        self.probe_spin.setSpecialValueText("auto (4 per epoch)")
        self.probe_spin.setSuffix(" steps")
        self.probe_spin.setToolTip("Evaluate the probe sub-networks every N optimizer steps "
                                   "(auto: about four times per epoch)")
        form.addRow("Probe every", self.probe_spin)

        self.out_edit = QLineEdit(str(default_out_root()))
        self.out_edit.setToolTip("Parent folder for the runs: each method gets its own "
                                 "<timestamp>-<method> folder with model.safetensors, meta.json and metrics.jsonl")
        self.browse_out = QToolButton()
        self.browse_out.setText("…")
        self.browse_out.setToolTip("Choose the output folder")
        self.browse_out.clicked.connect(lambda: self._browse_dir(self.out_edit, "Output folder"))
        form.addRow("Output", _row(self.out_edit, self.browse_out))
        side_lay.addWidget(setup)
        self._setup_widgets = [self.model_combo, self.dataset_combo, self.browse_images, self.data_dir_edit,
                               self.browse_data, *self.method_checks.values(), self.epochs_spin,
                               self.batch_spin, self.lr_spin, self.seed_spin, self.device_combo,
                               self.probe_spin, self.out_edit, self.browse_out]

        # ---- actions
        self.side_by_side_button = QPushButton("Train CT vs ST side by side")
        self.side_by_side_button.setObjectName("primaryButton")
        self.side_by_side_button.setMinimumHeight(36)
        f = self.side_by_side_button.font()
        f.setBold(True)
        self.side_by_side_button.setFont(f)
        self.side_by_side_button.setDefault(True)
        self.side_by_side_button.setToolTip(
            "Train common training (CT) and stimulative training (ST) interleaved, one step of each in "
            "turn, from the same initial weights and data order, and watch their sub-networks diverge")
        self.side_by_side_button.clicked.connect(lambda: self.start(("ct", "st")))
        side_lay.addWidget(self.side_by_side_button)

        self.train_checked_button = QPushButton("Train checked methods")
        self.train_checked_button.setToolTip("Train every checked method side by side (round-robin, one step each)")
        self.train_checked_button.clicked.connect(lambda: self.start(self.checked_methods()))
        side_lay.addWidget(self.train_checked_button)

        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Pause between batches; nothing is lost")
        self.pause_button.clicked.connect(self.pause)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue a paused training")
        self.resume_button.clicked.connect(self.resume)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current batch; every finished epoch stays saved in its run folder")
        self.stop_button.clicked.connect(self.stop)
        side_lay.addWidget(_row(self.pause_button, self.resume_button, self.stop_button))

        # ---- progress and status
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.progress.setToolTip("Optimizer steps done over all runs")
        self.eta_label = QLabel("")
        self.eta_label.setToolTip("Estimated time left for the whole side-by-side training")
        self.eta_label.setMinimumWidth(110)
        self.eta_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        side_lay.addWidget(_row(self.progress, self.eta_label))

        self.status_label = QLabel("Ready. Digits trains in seconds per epoch on a CPU.")
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(Qt.TextFormat.RichText)
        self.status_label.setFrameShape(QFrame.Shape.StyledPanel)
        self.status_label.setMinimumHeight(72)
        self.status_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.status_label.setContentsMargins(6, 4, 6, 4)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status_label.setToolTip("Current epoch, smoothed training loss and last test accuracy of each run")
        side_lay.addWidget(self.status_label)

        # ---- view and export
        self.presentation_check = QCheckBox("Presentation mode")
        self.presentation_check.setToolTip("Larger fonts, thicker lines and black-on-white plots for a projector")
        self.presentation_check.toggled.connect(self.set_presentation)
        side_lay.addWidget(self.presentation_check)
        self.save_plots_button = QPushButton("Save plots…")
        self.save_plots_button.setToolTip("Save the three plots as one PNG or SVG image")
        self.save_plots_button.clicked.connect(self._ask_export_plots)
        self.save_csv_button = QPushButton("Save CSV…")
        self.save_csv_button.setToolTip("Save every series (run, series, step, value) as CSV")
        self.save_csv_button.clicked.connect(self._ask_export_csv)
        side_lay.addWidget(_row(self.save_plots_button, self.save_csv_button))
        side_lay.addStretch(1)

        self._side = side
        scroll = QScrollArea()
        scroll.setWidget(side)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(330)
        scroll.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        splitter.addWidget(scroll)

        self.plots = TrainingPlots()
        self.plots.setToolTip("Live curves: drag to pan, wheel to zoom, right-click for options and export")
        splitter.addWidget(self.plots)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([350, 1050])
        splitter.setChildrenCollapsible(False)
        self.splitter = splitter

    # ================================================================== public API
    def checked_methods(self) -> tuple[str, ...]:
        return tuple(m for m, cb in self.method_checks.items() if cb.isChecked())

    def is_training(self) -> bool:
        return self._training

    def start(self, methods: Iterable[str] = ("ct", "st"), **overrides: Any) -> bool:
        """Train the methods side by side in the worker; False if it could not start."""
        unknown = set(overrides) - _OVERRIDES
        if unknown:
            raise TypeError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        if self._training:
            self._on_notice("A training is already running; stop it before starting another.")
            return False
        names: list[str] = []
        for m in methods:
            key = str(m).lower().replace("+", "p")
            if key not in METHODS:
                self._on_error(f"Unknown training method {m!r}; choose from {', '.join(METHODS)}.")
                return False
            if key not in names:
                names.append(key)
        if not names:
            self._on_error("No training method is checked; check at least one of CT, ST, ST++, SD.")
            return False

        self._reflect(names, overrides)
        common = {
            "model": self.model_combo.currentText().strip(),
            "dataset": self.dataset_combo.currentText().strip() or "digits",
            "epochs": self.epochs_spin.value(),
            "batch_size": self.batch_spin.value(),
            "lr": self.lr_spin.value(),
            "seed": self.seed_spin.value(),
            "device": self.device_combo.currentText(),
            "data_dir": self.data_dir_edit.text().strip() or None,
        }
        extra = {k: v for k, v in overrides.items() if k not in ("out_root", "probe_every")}
        common.update(extra)  # exact values even where a widget rounds
        out_root = Path(str(overrides.get("out_root") or self.out_edit.text().strip() or default_out_root())).expanduser()
        probe_every = int(overrides.get("probe_every", self.probe_spin.value()) or 0)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        configs, out_dirs = [], []
        try:
            for m in names:
                configs.append(TrainConfig(**{**common, "method": m}))
                out_dirs.append(str(_unique_dir(out_root, f"{stamp}-{m}")))
        except (TypeError, ValueError) as exc:
            self._on_error(f"Invalid training settings: {exc}")
            return False

        self.plots.clear()
        self.plots.set_epochs(int(common["epochs"]))
        self._runs = {m: {"step": 0, "total": 0, "eta": None, "epoch": 0, "loss": None, "acc": None}
                      for m in names}
        self._epochs = int(common["epochs"])
        self._last_progress = None
        self.step_signals = self.steps_received = 0
        self._control = self._live["control"] = TrainControl()
        self._training, self._paused, self._stopping = True, False, False
        if not self._thread.isRunning():  # after shutdown(): a fresh worker and thread
            self._trainRequested.disconnect(self.worker.train)
            self._make_worker()
        self.worker.set_probe_plan(self._probe_plan)
        self._update_states()
        self.progress.setValue(0)
        self._emit_progress(0, "starting…")
        label = " vs ".join(method_label(m) for m in names)
        self._set_status(f"Loading <b>{common['dataset']}</b> and building {label} "
                         f"({common['model']}, {common['epochs']} epochs)…")
        self._trainRequested.emit(TrainRequest(configs=configs, out_dirs=out_dirs, control=self._control,
                                               probe_every=probe_every))
        return True

    def set_probe_plan(self, plan_text: str) -> None:
        """Probe the user's plan too, from the next probe evaluation on (and in later trainings)."""
        self._probe_plan = (plan_text or "").strip() or None
        self.worker.set_probe_plan(self._probe_plan)

    def pause(self) -> None:
        if self._training and self._control is not None and not self._stopping:
            self._control.pause()
            self._paused = True
            self._update_states()
            self._set_status(self._status_text(prefix="<b>Paused</b> between batches. "))

    def resume(self) -> None:
        if self._training and self._control is not None:
            self._control.resume()
            self._paused = False
            self._update_states()
            self._set_status(self._status_text())

    def stop(self) -> None:
        if self._training and self._control is not None:
            self._control.stop()
            self._stopping, self._paused = True, False
            self._update_states()
            self._set_status("Stopping after the current batch; finished epochs stay saved…")

    def shutdown(self, timeout_ms: int = 2000) -> bool:
        """Stop the worker and end its thread; True if it ended within ``timeout_ms``."""
        ok = _stop_and_join(self._thread, self._control, timeout_ms)
        if ok:
            self._training = self._paused = self._stopping = False
            try:
                # take the ended worker's last queued events now (plots, status; no runsFinished),
                # so none arrives after a later start()
                QCoreApplication.sendPostedEvents(self, QEvent.Type.MetaCall)
                self._update_states()
            except RuntimeError:  # the widgets are already being destroyed
                pass
        return ok

    def export_plots(self, path: str) -> None:
        """Write the whole plot layout as PNG or SVG (by suffix)."""
        self.plots.export_image(path)

    def export_csv(self, path: str) -> None:
        """Write every series of the current/last training: run, series, step, value."""
        self.plots.export_csv(path)

    def set_presentation(self, on: bool) -> None:
        """Larger fonts, thicker lines, high contrast (for a projector)."""
        self._presentation = bool(on)
        if self.presentation_check.isChecked() != self._presentation:
            self.presentation_check.blockSignals(True)
            self.presentation_check.setChecked(self._presentation)
            self.presentation_check.blockSignals(False)
        self.plots.set_presentation(self._presentation)
        f = QFont(self.font())
        if self._presentation:
            f.setPointSizeF(max(13.0, self.font().pointSizeF() * 1.5))
        for w in (self.status_label, self.eta_label, self.progress):
            w.setFont(f if self._presentation else self.font())
        # the set-up form too: larger text, and a wider side column so nothing is clipped
        self._side.setStyleSheet("QWidget { font-size: 14pt; }" if self._presentation else "")
        total = sum(self.splitter.sizes()) or 1400
        side = min(560, total * 2 // 5) if self._presentation else 350
        self.splitter.setSizes([side, max(1, total - side)])

    # ================================================================== worker events
    @Slot(object)
    def _on_run_started(self, info: dict[str, Any]) -> None:
        run = self._runs.setdefault(info["run"], {"step": 0, "eta": None, "epoch": 0, "loss": None, "acc": None})
        run["total"] = int(info.get("total_steps", 0))
        run["step"] = 0
        run["device"] = info.get("device")
        epochs = max(1, int(info.get("epochs", self._epochs) or 1))
        self.plots.set_total_steps(run["total"], run["total"] // epochs)
        self._set_status(self._status_text())

    @Slot(object)
    def _on_steps(self, batch: list[dict[str, Any]]) -> None:
        self.step_signals += 1
        self.steps_received += len(batch)
        self.plots.add_steps(batch)
        for info in batch:
            run = self._runs.setdefault(info["run"], {"epoch": 0, "acc": None})
            run.update(step=int(info["step"]), total=int(info["total_steps"]), eta=info.get("eta"),
                       epoch_now=int(info["epoch"]), loss=info.get("ce", info.get("loss")))
        self._update_progress()
        if not self._paused and not self._stopping:
            self._set_status(self._status_text())

    @Slot(object)
    def _on_probe(self, info: dict[str, Any]) -> None:
        self.plots.add_probe(info)

    @Slot(object)
    def _on_epoch(self, info: dict[str, Any]) -> None:
        self.plots.add_epoch(info)
        run = self._runs.setdefault(info["run"], {})
        run.update(epoch=int(info["epoch"]), acc=float(info["test_acc"]))
        if not self._paused and not self._stopping:
            self._set_status(self._status_text())

    @Slot(object)
    def _on_run_ended(self, info: dict[str, Any]) -> None:
        self._runs.setdefault(info["run"], {})["ended"] = True

    @Slot(object)
    def _on_probes_changed(self, roles: dict[str, Any]) -> None:
        self.plots.set_probe_roles(roles["smallest"], list(roles["random"]), roles.get("user"))

    @Slot(bool)
    def _on_paused_changed(self, paused: bool) -> None:
        self.worker_paused = paused  # the worker really is waiting between batches
        if paused:
            self.plots.refresh()

    @Slot(str)
    def _on_notice(self, text: str) -> None:
        self._set_status(f"<span style='color:#A15C00'>{_escape(text)}</span>")

    @Slot(str)
    def _on_error(self, message: str) -> None:
        self.errorOccurred.emit(message)
        self._show_error(message)

    @Slot(object)
    def _on_finished(self, summary: dict[str, Any]) -> None:
        was_training = self._training
        self._training = self._paused = self._stopping = False
        self.plots.refresh()
        try:
            self._update_states()
        except RuntimeError:
            return
        runs: dict[str, str] = dict(summary.get("runs", {}))
        stopped = bool(summary.get("stopped"))
        errors = summary.get("errors", [])
        if errors and not runs:
            self._emit_progress(self.progress.value(), "failed")
            self._set_status("<b>Training failed.</b> " + _escape(errors[-1]))
        else:
            if stopped:
                self._emit_progress(self.progress.value(), "stopped")
                head = "<b>Stopped.</b> Finished epochs are saved in:"
            else:
                self.progress.setValue(100)
                self._emit_progress(100, "done")
                head = "<b>Done.</b> Runs saved in:" if not errors else "<b>Finished with errors.</b> Saved:"
            where = "<br>".join(f"<span style='color:{method_color(r)}'>{method_label(r)}</span>: "
                                f"{_escape(d)}" for r, d in runs.items()) or "nothing (no epoch finished)"
            self._set_status(self._status_text(prefix=f"{head}<br>{where}<br>", live=False))
        if runs and was_training:
            self.runsFinished.emit(runs)

    # ================================================================== helpers
    def _show_error(self, message: str) -> None:
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Critical)
        box.setWindowTitle("Training problem")
        box.setText(message)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()  # window-modal, does not block the event loop

    def _reflect(self, methods: list[str], o: dict[str, Any]) -> None:
        """Show the values being trained with in the widgets."""
        for m, cb in self.method_checks.items():
            cb.setChecked(m in methods)
        if "model" in o:
            if self.model_combo.findText(str(o["model"])) < 0:
                self.model_combo.addItem(str(o["model"]))
            self.model_combo.setCurrentText(str(o["model"]))
        if "dataset" in o:
            self.dataset_combo.setCurrentText(str(o["dataset"]))
        if "data_dir" in o:
            self.data_dir_edit.setText(str(o["data_dir"] or ""))
        for key, spin in (("epochs", self.epochs_spin), ("batch_size", self.batch_spin),
                          ("seed", self.seed_spin), ("probe_every", self.probe_spin)):
            if key in o and o[key] is not None:
                spin.setMaximum(max(spin.maximum(), int(o[key])))
                spin.setValue(int(o[key]))
        if "lr" in o:
            self.lr_spin.setValue(float(o["lr"]))
        if "device" in o:
            if self.device_combo.findText(str(o["device"])) < 0:
                self.device_combo.addItem(str(o["device"]))
            self.device_combo.setCurrentText(str(o["device"]))
        if "out_root" in o and o["out_root"]:
            self.out_edit.setText(str(o["out_root"]))

    def _update_states(self, *_: Any) -> None:
        idle = not self._training
        for w in self._setup_widgets:
            w.setEnabled(idle)
        self.side_by_side_button.setEnabled(idle)
        self.train_checked_button.setEnabled(idle and bool(self.checked_methods()))
        live = self._training and not self._stopping
        self.pause_button.setEnabled(live and not self._paused)
        self.resume_button.setEnabled(live and self._paused)
        self.stop_button.setEnabled(live)

    def _update_progress(self) -> None:
        done = sum(r.get("step", 0) for r in self._runs.values())
        total = sum(r.get("total", 0) for r in self._runs.values())
        pct = int(100 * done / total) if total else 0
        etas = [r["eta"] for r in self._runs.values() if r.get("eta") is not None and not r.get("ended")]
        self.progress.setValue(pct)
        self._emit_progress(pct, format_eta(max(etas)) if etas else "")

    def _emit_progress(self, pct: int, text: str) -> None:
        self.eta_label.setText(text)
        if self._last_progress != (pct, text):
            self._last_progress = (pct, text)
            self.progressChanged.emit(int(pct), text)

    def _status_text(self, prefix: str = "", live: bool = True) -> str:
        if not self._runs:
            return prefix
        epoch_now = max((r.get("epoch_now", r.get("epoch", 0)) for r in self._runs.values()), default=0)
        parts = []
        if live:
            parts.append(f"Epoch <b>{epoch_now}</b> / {self._epochs}")
        for name, r in self._runs.items():
            bits = []
            if r.get("loss") is not None:
                bits.append(f"loss {r['loss']:.3f}")
            bits.append(f"test {r['acc']:.1f}%" if r.get("acc") is not None else "test –")
            parts.append(f"<span style='color:{method_color(name)}'><b>{method_label(name)}</b></span> "
                         + ", ".join(bits))
        return prefix + "<br>".join(parts)

    def _set_status(self, html: str) -> None:
        self.status_label.setText(html)

    def _browse_imagefolder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Image folder (one sub-folder per class)")
        if path:
            self.dataset_combo.setCurrentText(f"imagefolder:{path}")

    def _browse_dir(self, edit: QLineEdit, title: str) -> None:
        path = QFileDialog.getExistingDirectory(self, title, edit.text() or str(Path.home()))
        if path:
            edit.setText(path)

    def _ask_export_plots(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save plots", str(Path.home() / "training.png"),
                                              "PNG image (*.png);;SVG image (*.svg)")
        if path:
            try:
                self.export_plots(path)
            except Exception as exc:  # a full disk or a bad path must not crash the app
                self._on_error(f"Could not save the plots: {exc}")

    def _ask_export_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save CSV", str(Path.home() / "training.csv"),
                                              "CSV (*.csv)")
        if path:
            try:
                self.export_csv(path)
            except Exception as exc:
                self._on_error(f"Could not save the CSV: {exc}")

    def closeEvent(self, event: Any) -> None:  # when used as a window of its own
        self.shutdown()
        super().closeEvent(event)


def _stop_and_join(thread: QThread, control: TrainControl | None, timeout_ms: int = 2000) -> bool:
    if control is not None:
        control.stop()
    try:
        if not thread.isRunning():
            return True
        thread.quit()
        return bool(thread.wait(int(timeout_ms)))
    except RuntimeError:  # the QThread is already gone (interpreter exit): nothing to join
        return True


def _row(*widgets: QWidget) -> QWidget:
    box = QWidget()
    lay = QHBoxLayout(box)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(6)
    for w in widgets:
        lay.addWidget(w, 1 if isinstance(w, (QComboBox, QLineEdit, QProgressBar, QPushButton)) else 0)
    return box


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
