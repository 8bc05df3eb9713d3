"""The Train tab: set up a run (:class:`.form.RunForm`), train CT vs ST side by side, watch it live.

A training is one background job (:func:`st_app.gui.jobs.run_in_thread` on the ``training``
lane) running :func:`.worker.train`; the panel hears its events as the job's ``yielded``
signal and talks back only through the thread-safe ``TrainControl`` (pause, resume, stop) and
``ProbePlan``; it never touches a model being trained. Each checked method gets its own run
folder (``<output>/<timestamp>-<method>``), all share the seed (same initial weights, same
data order) and are stepped round-robin, so their curves grow together.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from st_app.core.methods import METHODS
from st_app.core.train import TrainConfig, TrainControl

from ..jobs import Job, run_in_thread
from ..series import SeriesStore
from .form import RunForm, default_out_root, method_options_for
from .plots import TrainingPlots, method_color, method_label
from .worker import ProbePlan, TrainRequest, train

__all__ = ["TrainingPanel", "default_out_root", "format_eta"]

LANE = "training"
_OVERRIDES = {"model", "dataset", "epochs", "batch_size", "lr", "device", "seed", "out_root",
              "probe_every", "data_dir", "momentum", "weight_decay", "nesterov", "bn_reestimate",
              "image_size", "method_options"}


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


def _button(text: str, tip: str, slot: Any) -> QPushButton:
    b = QPushButton(text)
    b.setToolTip(tip)
    b.clicked.connect(slot)
    return b


class TrainingPanel(QWidget):
    """Run set-up, side-by-side training, live plots, progress, pause / resume / stop."""

    runsFinished = Signal(dict)  # {"ct": "/path/run_dir", ...}: runs with a saved epoch
    errorOccurred = Signal(str)  # also shown in a message box by the panel itself
    progressChanged = Signal(int, str)  # percent, ETA text
    stateChanged = Signal(str)  # "training" | "paused" | "stopping" | "idle"

    def __init__(self, store: SeriesStore | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("TrainingPanel")
        self._job: Job | None = None
        self._paused = False
        self._stopping = False
        self._control: TrainControl | None = None
        self.probe = ProbePlan()
        self._runs: dict[str, dict[str, Any]] = {}
        self._epochs = 0
        self._last_progress: tuple[int, str] | None = None
        self._presentation = False
        self.max_rate_hz = 20.0  # step deliveries per second at most
        self.worker_paused = False
        self.step_signals = 0  # coalesced step deliveries received (diagnostics, tests)
        self.steps_received = 0
        self._build_ui(store)
        self._update_states()
        app = QCoreApplication.instance()
        if app is not None:  # stop, do not wait: the process is about to end
            app.aboutToQuit.connect(lambda: _stop(self._control, self._job))
        # Deleted without shutdown() (e.g. with its parent window): still stop the training.
        box: dict[str, Any] = {"control": None, "job": None}
        self._live = box
        self.destroyed.connect(lambda *_: _stop(box["control"], box["job"]))

    # ================================================================== UI
    def _build_ui(self, store: SeriesStore | None) -> None:
        """Left: the run controls (always in view), then the set-up form (scrolls); right: the plots."""
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        outer.addWidget(self.splitter)
        side = self._side = QWidget()
        lay = QVBoxLayout(side)
        lay.setContentsMargins(10, 10, 10, 6)
        lay.setSpacing(6)
        self.side_by_side_button = _button(
            "Train CT vs ST side by side",
            "Train common training (CT) and stimulative training (ST) interleaved, one step of each in turn, from "
            "the same initial weights and data order, and watch their sub-networks diverge",
            lambda: self.start(("ct", "st")))
        self.side_by_side_button.setObjectName("primaryButton")
        self.side_by_side_button.setMinimumHeight(36)
        self.side_by_side_button.setDefault(True)
        self.train_checked_button = _button("Train checked methods", "Train every checked method side by side "
                                            "(round-robin, one step each)", lambda: self.start(self.checked_methods()))
        self.pause_button = _button("Pause", "Pause between batches; nothing is lost", self.pause)
        self.resume_button = _button("Resume", "Continue a paused training", self.resume)
        self.stop_button = _button("Stop", "Stop after the current batch; every finished epoch stays saved in its "
                                   "run folder", self.stop)
        grid = QGridLayout()  # a grid cuts nothing off at presentation font sizes
        grid.addWidget(self.side_by_side_button, 0, 0, 1, 3)
        grid.addWidget(self.train_checked_button, 1, 0, 1, 3)
        for i, b in enumerate((self.pause_button, self.resume_button, self.stop_button)):
            grid.addWidget(b, 2, i)
        lay.addLayout(grid)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setFormat("%p%")
        self.progress.setToolTip("Optimizer steps done over all runs")
        self.eta_label = QLabel("")
        self.eta_label.setToolTip("Estimated time left for the whole side-by-side training")
        row = QGridLayout()
        row.addWidget(self.progress, 0, 0)
        row.addWidget(self.eta_label, 0, 1)
        row.setColumnStretch(0, 1)
        lay.addLayout(row)
        self.status_label = QLabel("Ready. Digits trains in seconds per epoch on a CPU.")
        self.status_label.setWordWrap(True)
        self.status_label.setTextFormat(Qt.TextFormat.RichText)
        self.status_label.setFrameShape(QFrame.Shape.StyledPanel)
        self.status_label.setMinimumHeight(48)
        self.status_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.status_label.setContentsMargins(6, 4, 6, 4)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status_label.setToolTip("Current epoch, smoothed training loss and last test accuracy of each run")
        lay.addWidget(self.status_label)

        setup = self.setup = QWidget()
        setup_lay = QVBoxLayout(setup)
        setup_lay.setContentsMargins(0, 0, 4, 0)
        self.form = RunForm()
        self.form.methodsChanged.connect(self._update_states)
        self.epochs_spin = self.form.widgets["epochs"]
        self.method_checks = self.form.method_checks
        setup_lay.addWidget(self.form)
        self.presentation_check = QCheckBox("Presentation mode")
        self.presentation_check.setToolTip("Larger fonts, thicker lines and black-on-white plots for a projector")
        self.presentation_check.toggled.connect(self.set_presentation)
        setup_lay.addWidget(self.presentation_check)
        self.save_plots_button = _button("Save plots…", "Save the three plots as one PNG or SVG image",
                                         self._ask_export_plots)
        self.save_csv_button = _button("Save CSV…", "Save every series (run, series, step, value) as CSV",
                                       self._ask_export_csv)
        exports = QGridLayout()
        exports.addWidget(self.save_plots_button, 0, 0)
        exports.addWidget(self.save_csv_button, 0, 1)
        setup_lay.addLayout(exports)
        setup_lay.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(setup)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        self.setup_scroll = scroll
        lay.addWidget(scroll, 1)
        side.setMinimumWidth(340)
        self.side_scroll = side
        self.splitter.addWidget(side)
        self.plots = TrainingPlots(store)
        self.plots.setToolTip("Live curves: drag to pan, wheel to zoom, right-click for options and export")
        self.splitter.addWidget(self.plots)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([360, 1040])
        self.splitter.setChildrenCollapsible(False)
        self.plots.set_epochs(int(self.form.values()["epochs"]))  # whole epochs on the axis from the start

    # ================================================================== public API
    def checked_methods(self) -> tuple[str, ...]:
        return self.form.checked_methods()

    @property
    def job(self) -> Job | None:
        """The running training's job (None when idle)."""
        return self._job

    def is_training(self) -> bool:
        return self._job is not None

    def start(self, methods: Iterable[str] = ("ct", "st"), **overrides: Any) -> bool:
        """Train the methods side by side in a background job; False if it could not start."""
        unknown = set(overrides) - _OVERRIDES
        if unknown:
            raise TypeError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        if self._job is not None:
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
            self._on_error("No training method is checked; check at least one method.")
            return False
        self.form.show_values(names, overrides)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        try:
            values = {**self.form.values(), **overrides}  # exact values even where a widget rounds
            out_root = Path(str(values.pop("out_root") or default_out_root())).expanduser()
            probe_every = int(values.pop("probe_every", 0) or 0)
            options = values.pop("method_options", None) or {}
            # each method gets the options it takes; precision stays "auto" (the GPU fast path)
            configs = [TrainConfig(**{**values, "method": m, "method_options": method_options_for(m, options)})
                       for m in names]
        except (TypeError, ValueError) as exc:
            self._on_error(f"Invalid training settings: {exc}")
            return False
        out_dirs = [str(_unique_dir(out_root, f"{stamp}-{m}")) for m in names]
        self.plots.clear()
        self.plots.set_epochs(int(values["epochs"]))
        self._runs = {m: {"step": 0, "total": 0, "eta": None, "epoch": 0, "loss": None, "acc": None} for m in names}
        self._epochs = int(values["epochs"])
        self._last_progress = None
        self.step_signals = self.steps_received = 0
        self._control = TrainControl()
        self._paused = self._stopping = False
        request = TrainRequest(configs=configs, out_dirs=out_dirs, control=self._control, probe_every=probe_every)
        self._job = run_in_thread(train, request, self.probe, self.max_rate_hz, lane=LANE, with_job=True,
                                  name="train", connect={"yielded": self._on_event, "returned": self._on_finished,
                                                         "errored": self._on_crash,
                                                         "cancelled": self._on_cancelled})
        self._live.update(control=self._control, job=self._job)
        self._update_states()
        self.progress.setValue(0)
        self._emit_progress(0, "starting…")
        label = " vs ".join(method_label(m) for m in names)
        self._set_status(f"Loading <b>{values['dataset']}</b> and building {label} "
                         f"({values['model']}, {values['epochs']} epochs)…")
        return True

    def set_probe_plan(self, plan_text: str) -> None:
        """Probe the user's plan too, from the next probe evaluation on (and in later trainings)."""
        self.probe.set(plan_text)

    def pause(self) -> None:
        if self._job is not None and self._control is not None and not self._stopping:
            self._control.pause()
            self._paused = True
            self._update_states()
            self._emit_progress(self.progress.value(), "paused")
            self._set_status(self._status_text(prefix="<b>Paused</b> between batches. "))

    def resume(self) -> None:
        if self._job is not None and self._control is not None:
            self._control.resume()
            self._paused = False
            self._update_states()
            self._set_status(self._status_text())

    def stop(self) -> None:
        if self._job is not None and self._control is not None:
            self._control.stop()
            self._stopping, self._paused = True, False
            self._update_states()
            self._emit_progress(self.progress.value(), "stopping…")
            self._set_status("Stopping after the current batch; finished epochs stay saved…")

    def shutdown(self, timeout_ms: int = 2000) -> bool:
        """Stop the training and wait for its job to end; True if it ended within ``timeout_ms``."""
        job = self._job
        _stop(self._control, job)
        ok = job is None or job.wait(timeout_ms)
        if ok and job is not None:
            try:  # take the ended job's last queued events now, so none arrives after a later start()
                QCoreApplication.sendPostedEvents(job, QEvent.Type.MetaCall)
                if self._job is job:
                    self._job = None
                    self._paused = self._stopping = False
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
        """Larger fonts, thicker lines, high contrast, and a side column wide enough for them."""
        self._presentation = bool(on)
        if self.presentation_check.isChecked() != self._presentation:
            self.presentation_check.blockSignals(True)
            self.presentation_check.setChecked(self._presentation)
            self.presentation_check.blockSignals(False)
        self.plots.set_presentation(self._presentation)
        self._side.setStyleSheet("QWidget { font-size: 14pt; }" if self._presentation else "")
        self._side.adjustSize()
        need = max(self._side.minimumSizeHint().width(), self.setup.minimumSizeHint().width()) + 30
        self.side_scroll.setMinimumWidth(max(340, need) if self._presentation else 340)
        total = sum(self.splitter.sizes()) or 1400
        side = max(need, 360) if self._presentation else 360
        self.splitter.setSizes([side, max(1, total - side)])

    # ================================================================== job events
    def _on_event(self, event: tuple[str, Any]) -> None:
        kind, info = event
        handler: Any = {"started": self._on_run_started, "steps": self._on_steps, "probed": self.plots.add_probe,
                   "epoch": self._on_epoch, "ended": self._on_run_ended, "probes": self._on_probes_changed,
                   "paused": self._on_paused_changed, "notice": self._on_notice, "error": self._on_error}[kind]
        handler(info)

    def _on_run_started(self, info: dict[str, Any]) -> None:
        run = self._runs.setdefault(info["run"], {"step": 0, "eta": None, "epoch": 0, "loss": None, "acc": None})
        run["total"] = int(info.get("total_steps", 0))
        run["step"] = 0
        epochs = max(1, int(info.get("epochs", self._epochs) or 1))
        self.plots.set_total_steps(run["total"], run["total"] // epochs)
        self._set_status(self._status_text())

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

    def _on_epoch(self, info: dict[str, Any]) -> None:
        self.plots.add_epoch(info)
        self._runs.setdefault(info["run"], {}).update(epoch=int(info["epoch"]), acc=float(info["test_acc"]))
        if not self._paused and not self._stopping:
            self._set_status(self._status_text())

    def _on_run_ended(self, info: dict[str, Any]) -> None:
        self._runs.setdefault(info["run"], {})["ended"] = True

    def _on_probes_changed(self, roles: dict[str, Any]) -> None:
        self.plots.set_probe_roles(roles["smallest"], list(roles["random"]), roles.get("user"))

    def _on_paused_changed(self, paused: bool) -> None:
        self.worker_paused = paused  # the loop really is waiting between batches
        if paused:
            self.plots.refresh()

    def _on_notice(self, text: str) -> None:
        self._set_status(f"<span style='color:#A15C00'>{_escape(text)}</span>")

    def _on_error(self, message: str) -> None:
        self.errorOccurred.emit(message)
        self._show_error(message)

    def _on_crash(self, exc: BaseException) -> None:
        self._on_error(f"Unexpected error during training ({type(exc).__name__}): {exc}")
        self._on_finished({"runs": {}, "stopped": False, "errors": [str(exc)]})

    def _on_cancelled(self) -> None:
        self._on_finished({"runs": {}, "stopped": True, "errors": []})

    def _on_finished(self, summary: dict[str, Any]) -> None:
        was_training = self._job is not None
        self._job = None
        self._paused = self._stopping = self.worker_paused = False
        self.plots.refresh()
        try:
            self._update_states()
        except RuntimeError:
            return
        runs: dict[str, str] = dict(summary.get("runs", {}))
        errors = summary.get("errors", [])
        if errors and not runs:
            self._emit_progress(self.progress.value(), "failed")
            self._set_status("<b>Training failed.</b> " + _escape(errors[-1]))
        else:
            if summary.get("stopped"):
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
        self.stateChanged.emit("stopped" if summary.get("stopped") else "idle")  # last: its message stays

    # ================================================================== helpers
    def _show_error(self, message: str) -> None:
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Critical)
        box.setWindowTitle("Training problem")
        box.setText(message)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()  # window-modal, does not block the event loop

    def _update_states(self, *_: Any) -> None:
        idle = self._job is None
        self.form.set_editable(idle)
        self.side_by_side_button.setEnabled(idle)
        self.train_checked_button.setEnabled(idle and bool(self.checked_methods()))
        live = not idle and not self._stopping
        self.pause_button.setEnabled(live and not self._paused)
        self.resume_button.setEnabled(live and self._paused)
        self.stop_button.setEnabled(live)
        self.stateChanged.emit("idle" if idle else "stopping" if self._stopping else
                               "paused" if self._paused else "training")

    def _update_progress(self) -> None:
        done = sum(r.get("step", 0) for r in self._runs.values())
        total = sum(r.get("total", 0) for r in self._runs.values())
        pct = int(100 * done / total) if total else 0
        etas = [r["eta"] for r in self._runs.values() if r.get("eta") is not None and not r.get("ended")]
        self.progress.setValue(pct)
        if self._paused:
            text = "paused"  # no ETA while nothing moves
        elif self._stopping:
            text = "stopping…"
        else:
            text = format_eta(max(etas)) if etas else ""
        self._emit_progress(pct, text)

    def _emit_progress(self, pct: int, text: str) -> None:
        self.eta_label.setText(text)
        if self._last_progress != (pct, text):
            self._last_progress = (pct, text)
            self.progressChanged.emit(int(pct), text)

    def _status_text(self, prefix: str = "", live: bool = True) -> str:
        if not self._runs:
            return prefix
        epoch_now = max((r.get("epoch_now", r.get("epoch", 0)) for r in self._runs.values()), default=0)
        parts = [f"Epoch <b>{epoch_now}</b> / {self._epochs}"] if live else []
        for name, r in self._runs.items():
            bits = [f"loss {r['loss']:.3f}"] if r.get("loss") is not None else []
            bits.append(f"test {r['acc']:.1f}%" if r.get("acc") is not None else "test –")
            parts.append(f"<span style='color:{method_color(name)}'><b>{method_label(name)}</b></span> "
                         + ", ".join(bits))
        return prefix + "<br>".join(parts)

    def _set_status(self, html: str) -> None:
        self.status_label.setText(html)

    def _ask_export_plots(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save plots", str(Path.home() / "training.png"),
                                              "PNG image (*.png);;SVG image (*.svg)")
        if path:
            try:
                self.export_plots(path)
            except Exception as exc:  # noqa: BLE001 - a full disk or a bad path must not crash the app
                self._on_error(f"Could not save the plots: {exc}")

    def _ask_export_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save CSV", str(Path.home() / "training.csv"), "CSV (*.csv)")
        if path:
            try:
                self.export_csv(path)
            except Exception as exc:  # noqa: BLE001
                self._on_error(f"Could not save the CSV: {exc}")

    def closeEvent(self, event: Any) -> None:  # when used as a window of its own
        self.shutdown()
        super().closeEvent(event)


def _stop(control: TrainControl | None, job: Job | None) -> None:
    if control is not None:
        control.stop()
    if job is not None:
        job.cancel()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
