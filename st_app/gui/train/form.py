"""The Train tab's set-up form: model, data, methods, recipe, device, output.

Declarative: each row is one entry of :data:`FIELDS` (key, label, widget factory, tooltip),
read and written by key. Method options (issue 9: ST++ switches, new methods) go into the
collapsible *Advanced* section as more entries of :data:`ADVANCED_FIELDS`; devices come from
``core.train.available_devices()`` (CUDA devices appear there when torch sees them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from st_app.core.data import DATASETS
from st_app.core.methods import METHODS
from st_app.core.models import ARCHITECTURES
from st_app.core.train import TrainConfig, available_devices

from .plots import method_color, method_label

__all__ = ["ADVANCED_FIELDS", "FIELDS", "METHOD_TIPS", "RunForm", "default_out_root"]

METHOD_TIPS = {
    "ct": "Common training: cross-entropy on the main network only (the baseline that loafs).",
    "st": "Stimulative training: each step the main net also teaches one sampled ordered sub-network (KL).",
    "stpp": "ST++: KL on z-scored logits, smaller inputs for sub-networks, 6 sub-networks per step.",
    "sd": "Stochastic depth: residual branches dropped at random, survival decaying linearly to 0.5.",
}


def default_out_root() -> Path:
    """Where runs go unless the user says otherwise: ``~/st_lab_runs``."""
    return Path.home() / "st_lab_runs"


def _combo(items: list[str], current: str, editable: bool = False) -> Callable[[], QComboBox]:
    def make() -> QComboBox:
        box = QComboBox()
        box.setEditable(editable)
        box.addItems(items)
        box.setCurrentText(current)
        return box
    return make


def _spin(lo: int, hi: int, value: int, special: str = "", suffix: str = "") -> Callable[[], QSpinBox]:
    def make() -> QSpinBox:
        box = QSpinBox()
        box.setRange(lo, hi)
        box.setValue(value)
        if special:
            box.setSpecialValueText(special)
        if suffix:
            box.setSuffix(suffix)
        return box
    return make


def _lr() -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setDecimals(5)
    box.setRange(0.00001, 10.0)
    box.setSingleStep(0.01)
    box.setValue(TrainConfig.lr)
    return box


def _line(text: str = "", placeholder: str = "") -> Callable[[], QLineEdit]:
    def make() -> QLineEdit:
        edit = QLineEdit(text)
        edit.setPlaceholderText(placeholder)
        return edit
    return make


# key, label, widget factory, tooltip, browse ("dir" | "imagefolder" | None)
FIELDS: list[tuple[str, str, Callable[[], QWidget], str, str | None]] = [
    ("model", "Model", _combo(list(ARCHITECTURES), "resnet20"),
     "Residual network to train. CIFAR-style resnet20..110 have 3 stages; resnet18..152 are the ImageNet family.",
     None),
    ("dataset", "Data set", _combo([d for d in DATASETS if d != "imagefolder:PATH"], "digits", editable=True),
     "Data set: 'digits' (bundled 8x8 handwritten digits, trains in seconds), cifar10, cifar100, mnist, "
     "fashion-mnist (files in the data folder), imagefolder:PATH (one sub-folder per class; use the folder "
     "button), or synthetic:C,H,classes,n_train,n_test (random tensors).", "imagefolder"),
    ("data_dir", "Data folder", _line(placeholder="./data (default)"),
     "Folder holding the CIFAR / MNIST files. Nothing is downloaded; a missing file is reported with the names "
     "to provide.", "dir"),
    ("epochs", "Epochs", _spin(1, 10000, TrainConfig.epochs),
     "Passes over the training set. The learning rate follows a cosine schedule to zero over all epochs; every "
     "epoch is checkpointed.", None),
    ("batch_size", "Batch size", _spin(1, 65536, TrainConfig.batch_size), "Images per optimizer step", None),
    ("lr", "Learning rate", _lr,
     "Initial SGD learning rate (Nesterov momentum 0.9, weight decay 5e-4, cosine decay)", None),
    ("seed", "Seed", _spin(0, 2**31 - 1, TrainConfig.seed),
     "Random seed shared by all methods: same initial weights, same data order, same probe sub-networks", None),
    ("device", "Device", _combo(available_devices(), "auto"),
     "Where to train: 'auto' picks CUDA, then Apple MPS, then the CPU. Only devices torch can see are listed.",
     None),
    ("probe_every", "Probe every", _spin(0, 1_000_000, 0, special="auto (4 per epoch)", suffix=" steps"),
     "Evaluate the probe sub-networks every N optimizer steps (auto: about four times per epoch)", None),
    ("out_root", "Output", _line(str(default_out_root())),
     "Parent folder for the runs: each method gets its own <timestamp>-<method> folder with model.safetensors, "
     "meta.json and metrics.jsonl", "dir"),
]

#: method options shown under "Advanced" (issue 9 adds ST++ / new-method switches here)
ADVANCED_FIELDS: list[tuple[str, str, Callable[[], QWidget], str, str | None]] = []


class RunForm(QGroupBox):
    """The set-up form; ``values()`` gives TrainConfig keywords (plus ``out_root``, ``probe_every``)."""

    methodsChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Run set-up", parent)
        outer = QVBoxLayout(self)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        outer.addLayout(form)
        self.widgets: dict[str, QWidget] = {}
        self.buttons: list[QToolButton] = []
        for row in FIELDS:
            self._add(form, *row)
            if row[0] == "data_dir":
                form.addRow("Methods", self._methods())
        self.advanced = QGroupBox("Advanced: method options")
        self.advanced.setCheckable(True)
        self.advanced.setChecked(False)
        self.advanced.setToolTip("Options of the training methods (shown when checked)")
        adv = QFormLayout(self.advanced)
        for row in ADVANCED_FIELDS:
            self._add(adv, *row)
        self.advanced.setVisible(bool(ADVANCED_FIELDS))
        outer.addWidget(self.advanced)

    def _add(self, form: QFormLayout, key: str, label: str, make: Callable[[], QWidget], tip: str,
             browse: str | None) -> None:
        widget = make()
        widget.setToolTip(tip)
        self.widgets[key] = widget
        if browse is None:
            form.addRow(label, widget)
            return
        button = QToolButton()
        button.setText("…")
        button.setToolTip("Choose an image folder (one sub-folder per class) as the data set"
                          if browse == "imagefolder" else f"Choose the {label.lower()}")
        button.clicked.connect(lambda _=False, k=key, b=browse, t=label: self._browse(k, b, t))
        self.buttons.append(button)
        row = QWidget()
        lay = QHBoxLayout(row)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(widget, 1)
        lay.addWidget(button)
        form.addRow(label, row)

    def _methods(self) -> QWidget:
        box = QWidget()
        grid = QGridLayout(box)  # two per row: nothing is cut at presentation font sizes
        grid.setContentsMargins(0, 0, 0, 0)
        self.method_checks: dict[str, QCheckBox] = {}
        for i, m in enumerate(METHODS):
            cb = QCheckBox(method_label(m) if m != "sd" else "SD")
            cb.setChecked(m in ("ct", "st"))
            cb.setToolTip(METHOD_TIPS.get(m, m))
            cb.setStyleSheet(f"QCheckBox {{ color: {method_color(m)}; font-weight: 600; }}")
            cb.toggled.connect(lambda _on: self.methodsChanged.emit())
            self.method_checks[m] = cb
            grid.addWidget(cb, i // 2, i % 2)
        return box

    def _browse(self, key: str, kind: str, title: str) -> None:
        widget = self.widgets[key]
        if kind == "imagefolder":
            path = QFileDialog.getExistingDirectory(self, "Image folder (one sub-folder per class)")
            if path:
                assert isinstance(widget, QComboBox)
                widget.setCurrentText(f"imagefolder:{path}")
            return
        assert isinstance(widget, QLineEdit)
        path = QFileDialog.getExistingDirectory(self, title, widget.text() or str(Path.home()))
        if path:
            widget.setText(path)

    # ------------------------------------------------------------------ values
    def checked_methods(self) -> tuple[str, ...]:
        return tuple(m for m, cb in self.method_checks.items() if cb.isChecked())

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, w in self.widgets.items():
            if isinstance(w, QComboBox):
                out[key] = w.currentText().strip()
            elif isinstance(w, (QSpinBox, QDoubleSpinBox)):
                out[key] = w.value()
            elif isinstance(w, QCheckBox):
                out[key] = w.isChecked()
            elif isinstance(w, QLineEdit):
                out[key] = w.text().strip()
        out["dataset"] = out.get("dataset") or "digits"
        out["data_dir"] = out.get("data_dir") or None
        out["out_root"] = out.get("out_root") or str(default_out_root())
        return out

    def show_values(self, methods: list[str], values: dict[str, Any]) -> None:
        """Show the values being trained with (widening ranges and adding choices as needed)."""
        for m, cb in self.method_checks.items():
            cb.setChecked(m in methods)
        for key, value in values.items():
            w = self.widgets.get(key)
            if w is None or value is None:
                continue
            if isinstance(w, QComboBox):
                if not w.isEditable() and w.findText(str(value)) < 0:
                    w.addItem(str(value))
                w.setCurrentText(str(value))
            elif isinstance(w, QSpinBox):
                w.setMaximum(max(w.maximum(), int(value)))
                w.setValue(int(value))
            elif isinstance(w, QDoubleSpinBox):
                w.setValue(float(value))
            elif isinstance(w, QLineEdit):
                w.setText(str(value))

    def set_editable(self, on: bool) -> None:
        for w in [*self.widgets.values(), *self.method_checks.values(), *self.buttons, self.advanced]:
            w.setEnabled(on)
