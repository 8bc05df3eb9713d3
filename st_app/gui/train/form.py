"""The Train tab's set-up form: recipe, model, data, methods, device, output, advanced options.

Declarative: each row is one entry of :data:`FIELDS` (key, label, widget factory, tooltip),
read and written by key; the collapsible *Advanced* section holds the method options and
recipe-level settings of :data:`.options.ADVANCED_OPTIONS`. The *Recipe* combo applies the
core's presets through the same resolver as ``train --recipe NAME``
(:func:`st_app.core.methods.recipes.resolve_recipe`): ``TrainConfig`` defaults <- the recipe,
keeping only where the run reads and writes (data set, data folder, device, output, probes).
Devices come from ``core.train.describe_devices()`` (each CUDA card with its name and memory).
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
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from st_app.core.data import DATASETS
from st_app.core.methods import METHODS, method_option_names
from st_app.core.methods.recipes import RECIPE_CHOICES, RECIPES, STPP_RUNG, resolve_recipe
from st_app.core.models import ARCHITECTURES
from st_app.core.train import TrainConfig, describe_devices

from .options import ADVANCED_OPTIONS, Choice, ElidingCombo, Option, OptionalValue, applies_to, option_tip
from .plots import method_color, method_label

__all__ = ["ADVANCED_FIELDS", "ENV_KEYS", "FIELDS", "METHOD_TIPS", "RunForm", "default_out_root", "method_options_for"]

METHOD_TIPS = {
    "ct": "Common training: cross-entropy on the main network only (the baseline whose sub-networks loaf).",
    "layersup": "CT + layer supervision: an auxiliary classifier after every block, their mean CE added to the "
                "main CE (table 1's deep-supervision baseline).",
    "stagesup": "CT + stage supervision: an auxiliary classifier after every stage, their mean CE added to the "
                "main CE.",
    "selfdistill": "Self-distillation: shallow classifiers after each stage learn from the labels and, by KD "
                   "(temperature 3) and an L2 feature hint, from the deepest classifier.",
    "sd": "Stochastic depth: residual branches dropped at random, survival decaying linearly to 0.5.",
    "st": "Stimulative training: each step the main net also teaches one sampled ordered sub-network "
          "(KL to the main net's logits, T = 1, the full ordered space).",
    "stpp": "ST++ as the authors run it: KL- (KL on layer-normed logits, the main CE on them too), small inputs "
            "(each sub-net sees a randomly smaller, re-normalised input), 6 sub-nets per step sampled from "
            "space3, and the main net's BN statistics re-estimated after every epoch.",
}

#: where a run reads and writes: a recipe keeps these as the user set them
ENV_KEYS = frozenset({"dataset", "data_dir", "device", "out_root", "probe_every"})


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
     "Network to train, any family the core knows: CIFAR ResNets (resnet20..110, 3 stages), ImageNet ResNets "
     "(resnet18..152), ResNeXt and wide ResNets (resnext50_32x4d.., wide_resnet50_2..), WRN (wrn-16-4.., CIFAR "
     "wide ResNets), DenseNets (densenet-bc-22..100 for CIFAR, densenet121..264; a unit is a dense layer) and "
     "vision transformers (vit-micro, vit-tiny, vit_b_16..vit_h_14; a unit is a transformer block).",
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
    ("device", "Device", lambda: Choice([(label, dev) for dev, label in describe_devices()]),
     "Where the app computes: training, the Explore tab's accuracies and the analyses (one choice, remembered). "
     "'auto' picks CUDA, then Apple MPS, then the CPU; each CUDA card is listed with its name and memory. On "
     "a GPU training uses bf16 autocast and channels-last (precision auto).",
     None),
    ("probe_every", "Probe every", _spin(0, 1_000_000, 0, special="auto (4 per epoch)", suffix=" steps"),
     "Evaluate the probe sub-networks every N optimizer steps (auto: about four times per epoch)", None),
    ("out_root", "Output", _line(str(default_out_root())),
     "Parent folder for the runs: each method gets its own <timestamp>-<method> folder with model.safetensors, "
     "meta.json and metrics.jsonl", "dir"),
]

#: the rows under "Advanced" in FIELDS' shape (key, label, factory, tooltip, browse): method options and
#: recipe-level settings, declared in :mod:`.options`
ADVANCED_FIELDS: list[tuple[str, str, Callable[[], QWidget], str, str | None]] = [
    (o.key, o.label, o.make, option_tip(o), None) for o in ADVANCED_OPTIONS]
_OPTIONS: dict[str, Option] = {o.key: o for o in ADVANCED_OPTIONS}


def method_options_for(method: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options among ``options`` that ``method`` takes (the core says which)."""
    accepted = method_option_names(method)
    return {k: v for k, v in options.items() if k in accepted}



class RunForm(QGroupBox):
    """The set-up form; ``values()`` gives TrainConfig keywords (plus ``out_root``, ``probe_every`` and
    ``method_options``, the options set for any method: :func:`method_options_for` picks each one's)."""

    methodsChanged = Signal()
    deviceChanged = Signal(str)  # the user picked another device
    recipeChanged = Signal(object)  # the recipe the values come from (None: custom)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Run set-up", parent)
        outer = QVBoxLayout(self)
        form = self._form = QFormLayout()
        _form_style(form)
        outer.addLayout(form)
        self.widgets: dict[str, QWidget] = {}
        self.buttons: list[QToolButton] = []
        self._recipe: str | None = None
        self._recipe_state: tuple | None = None
        self._extras: dict[str, Any] = {}  # recipe settings without a widget (nesterov, ...)
        self._applying = False
        self._editable = True
        form.addRow("Recipe", self._recipe_combo())
        for row in FIELDS:
            self._add(form, *row)
            if row[0] == "data_dir":
                form.addRow("Methods", self._methods())
        self.advanced = QGroupBox("Advanced: method options")
        self.advanced.setCheckable(True)
        self.advanced.setChecked(False)
        self.advanced.setToolTip("The authors' method options, BN re-estimation, schedule and image-file settings "
                                 "(check to show). Rows no checked method takes are disabled; an empty field "
                                 "means the method's default.")
        adv_lay = QVBoxLayout(self.advanced)
        adv_lay.setContentsMargins(4, 4, 4, 4)
        self.advanced_body = QWidget()
        adv_lay.addWidget(self.advanced_body)
        adv = self._adv_form = QFormLayout(self.advanced_body)
        _form_style(adv)
        adv.setContentsMargins(0, 0, 0, 0)
        for i, row in enumerate(ADVANCED_FIELDS):
            if i == 0 or (_OPTIONS[row[0]].kind == "config") != (_OPTIONS[ADVANCED_FIELDS[i - 1][0]].kind == "config"):
                head = QLabel("<b>Method options</b>" if _OPTIONS[row[0]].kind == "method"
                              else "<b>Schedule, BN and image files</b>")
                head.setWordWrap(True)
                adv.addRow(head)
            self._add(adv, *row)
        self.advanced_body.setVisible(False)
        self.advanced.toggled.connect(self._on_advanced_toggled)
        outer.addWidget(self.advanced)
        for key, w in self.widgets.items():
            _on_change(w, self._edit_slot(key))
        self.update_applicability()

    # ------------------------------------------------------------------ building
    def _recipe_combo(self) -> QComboBox:
        box = self.recipe_box = ElidingCombo()
        box.addItem("custom", None)
        box.setItemData(0, "Your own settings (no preset)", Qt.ItemDataRole.ToolTipRole)
        for name in RECIPE_CHOICES:
            if "," in name and "," not in str(box.itemData(box.count() - 1)):
                box.insertSeparator(box.count())  # the ImageNet trainer with another rung
            box.addItem(_display(name), name)
            tip = "\n\n".join(f"{part}: {RECIPES[part].summary}\nAuthors' command: {RECIPES[part].authors_flags}"
                               for part in name.split(","))
            box.setItemData(box.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        box.setToolTip("The authors' presets, set exactly as 'python -m st_app train --recipe NAME' resolves them "
                       "(TrainConfig defaults <- the recipe; data set, device and output stay); 'imagenet-r50 + NAME' is "
                       "'--recipe imagenet-r50,NAME'. Every ladder rung "
                       "sets 200 epochs. Editing a setting afterwards shows 'NAME (modified)'; the run records "
                       "the recipe it started from.")
        box.activated.connect(lambda i: self.apply_recipe(box.itemData(i)))
        box.narrow(12)  # "imagenet-r50 + st+kl-+snet6+small-inputs" must not widen the form
        return box

    def _add(self, form: QFormLayout, key: str, label: str, make: Callable[[], QWidget], tip: str,
             browse: str | None) -> None:
        widget = make()
        widget.setToolTip(tip)
        self.widgets[key] = widget
        if browse is None:
            form.addRow(label, widget)
            form.labelForField(widget).setToolTip(tip)
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
            cb.setToolTip(METHOD_TIPS[m])
            cb.setStyleSheet(f"QCheckBox {{ color: {method_color(m)}; font-weight: 600; }}")
            cb.toggled.connect(lambda _on: self._on_methods())
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

    # ------------------------------------------------------------------ recipes
    @property
    def recipe(self) -> str | None:
        """The recipe the values started from (None: custom)."""
        return self._recipe

    def apply_recipe(self, name: str | None) -> None:
        """Set the form as ``train --recipe NAME`` resolves it; None ("custom") keeps the values, drops the recipe."""
        if name is None:
            self._recipe, self._recipe_state, self._extras = None, None, {}
            self._show_recipe()
            self.recipeChanged.emit(None)
            return
        config, method, options = resolve_recipe(name)
        defaults = TrainConfig().to_dict()
        self._applying = True
        try:
            for m, cb in self.method_checks.items():
                cb.setChecked(m == method)
            for key, w in self.widgets.items():
                if key in ENV_KEYS:
                    continue
                opt = _OPTIONS.get(key)
                if opt is not None and opt.kind == "method":
                    value = options.get(key)
                elif opt is not None:
                    value = config.get(key)  # empty: TrainConfig's default
                else:
                    value = config.get(key, defaults.get(key))
                _set(w, value)
        finally:
            self._applying = False
        self._recipe = str(config["recipe"])
        self._extras = {k: v for k, v in config.items() if k not in self.widgets and k not in ("method", "recipe")}
        self._recipe_state = self._state()
        self._show_recipe()
        self.update_applicability()
        self.methodsChanged.emit()
        self.recipeChanged.emit(self._recipe)

    def _state(self) -> tuple:
        """What a recipe sets, as shown (raw widget states, so unparsable text counts as an edit too)."""
        return (self.checked_methods(),
                tuple((k, _raw(w)) for k, w in self.widgets.items() if k not in ENV_KEYS))

    def _show_recipe(self) -> None:
        box = self.recipe_box
        for i in range(1, box.count()):
            if box.itemData(i) is not None:  # not the separator
                box.setItemText(i, _display(str(box.itemData(i))))
        i = box.findData(self._recipe) if self._recipe is not None else 0
        if i < 0:  # a recipe text the menu spells otherwise (a run's imagenet-r50,st+kl-+...+space3)
            box.addItem(str(self._recipe), self._recipe)
            i = box.count() - 1
        if self._recipe is not None and self._state() != self._recipe_state:
            name = _display(self._recipe)
            room = box.width() - 24 if box.isVisible() else 10**6  # a long rung in presentation fonts
            text = next((t for t in (f"{name} (modified)", f"{name} (mod.)") if
                         box.fontMetrics().horizontalAdvance(t) <= room), f"{name}*")
            box.setItemText(i, text)
        box.setCurrentIndex(i)

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        if self._recipe is not None:
            self._show_recipe()  # "(modified)" shortened or spelled out for the new width

    def _edit_slot(self, key: str) -> Callable[[], None]:
        return lambda: self._on_edit(key)

    def _on_edit(self, key: str) -> None:
        if key == "device" and not self._applying:
            self.deviceChanged.emit(self.device())
        if not self._applying and self._recipe is not None and key not in ENV_KEYS:
            self._show_recipe()
        if key in _OPTIONS and not self._applying:
            self.update_applicability()  # the Advanced title counts the rows set

    def _on_methods(self) -> None:
        self.update_applicability()
        if not self._applying:
            if self._recipe is not None:
                self._show_recipe()
            self.methodsChanged.emit()

    def _on_advanced_toggled(self, on: bool) -> None:
        self.advanced_body.setVisible(on)
        self.update_applicability()

    # ------------------------------------------------------------------ devices
    def device(self) -> str:
        w = self.widgets["device"]
        assert isinstance(w, Choice)
        return str(w.value() or "auto")

    def set_device(self, device: str) -> None:
        """Show the app's device choice (no deviceChanged: it came from there)."""
        self._applying = True
        try:
            _set(self.widgets["device"], device)
        finally:
            self._applying = False

    # ------------------------------------------------------------------ values
    def checked_methods(self) -> tuple[str, ...]:
        return tuple(m for m, cb in self.method_checks.items() if cb.isChecked())

    def values(self) -> dict[str, Any]:
        """TrainConfig keywords; ``ValueError`` when an Advanced field's text is not a value."""
        out: dict[str, Any] = dict(self._extras)
        options: dict[str, Any] = {}
        for key, w in self.widgets.items():
            opt = _OPTIONS.get(key)
            try:
                value = _get(w)
            except ValueError:
                label = opt.label if opt is not None else key
                raise ValueError(f"{label}: {_raw(w)!r} is not a valid value") from None
            if opt is None:
                out[key] = value
            elif value is None or opt.kind == "method" and not self._applies(key):
                continue
            elif opt.kind == "method":
                options[key] = value
            else:
                out[key] = value
        out["method_options"] = options
        out["recipe"] = self._recipe
        out["dataset"] = out.get("dataset") or "digits"
        out["data_dir"] = out.get("data_dir") or None
        out["out_root"] = out.get("out_root") or str(default_out_root())
        return out

    def show_values(self, methods: list[str], values: dict[str, Any]) -> None:
        """Show the values being trained with (widening ranges and adding choices as needed)."""
        for m, cb in self.method_checks.items():
            cb.setChecked(m in methods)
        values = dict(values)
        options = values.pop("method_options", None) or {}
        for key, value in {**options, **values}.items():
            w = self.widgets.get(key)
            if w is not None and value is not None:
                _set(w, value)

    def set_editable(self, on: bool) -> None:
        self._editable = on
        for w in [*self.widgets.values(), *self.method_checks.values(), *self.buttons, self.advanced,
                  self.recipe_box]:
            w.setEnabled(on)
        self.update_applicability()

    def _applies(self, key: str) -> bool:
        """Whether a checked method takes Advanced row ``key`` (recipe-level rows: always)."""
        return _OPTIONS[key].kind == "config" or bool(set(self.checked_methods()) & set(applies_to(key)))

    def update_applicability(self) -> None:
        """Disable the method options no checked method takes (their values are not passed)."""
        for key in _OPTIONS:
            w = self.widgets[key]
            on = self._editable and self._applies(key)
            w.setEnabled(on)
            label = self._adv_form.labelForField(w)
            if label is not None:
                label.setEnabled(on)
        n = sum(1 for key, w in self.widgets.items() if key in _OPTIONS and _raw(w) not in ("", "default"))
        self.advanced.setTitle(f"Advanced: {n} option{'s' if n > 1 else ''} set" if n else "Advanced: method options")


def _display(recipe: str) -> str:
    """The combo's text: the core's name, its alias ``st++`` for the longest (ST++ as published)."""
    return " + ".join("st++" if part == STPP_RUNG else part for part in recipe.split(","))


def _form_style(form: QFormLayout) -> None:
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


def _on_change(w: QWidget, slot: Callable[[], None]) -> None:
    if isinstance(w, QComboBox):
        w.currentIndexChanged.connect(lambda *_: slot())
        if w.isEditable():
            w.editTextChanged.connect(lambda *_: slot())
    elif isinstance(w, (QSpinBox, QDoubleSpinBox)):
        w.valueChanged.connect(lambda *_: slot())
    elif isinstance(w, QLineEdit):
        w.textChanged.connect(lambda *_: slot())


def _raw(w: QWidget) -> Any:
    if isinstance(w, QComboBox):
        return w.currentText()
    if isinstance(w, (QSpinBox, QDoubleSpinBox)):
        return w.value()
    if isinstance(w, QLineEdit):
        return w.text().strip()
    return None


def _get(w: QWidget) -> Any:
    if isinstance(w, OptionalValue):
        return w.value()
    if isinstance(w, Choice):
        if w.isEditable() and w.currentText() != w.itemText(w.currentIndex()):
            return w.currentText().strip() or None  # typed space ranges
        return w.value()
    if isinstance(w, QComboBox):
        return w.currentText().strip()
    if isinstance(w, (QSpinBox, QDoubleSpinBox)):
        return w.value()
    if isinstance(w, QLineEdit):
        return w.text().strip()
    return None


def _set(w: QWidget, value: Any) -> None:
    if isinstance(w, (OptionalValue, Choice)):
        w.set_value(value)
    elif value is None:
        return
    elif isinstance(w, QComboBox):
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
