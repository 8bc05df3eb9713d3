"""The Train tab's *Advanced* rows: the authors' method options and the recipe-level settings.

Declarative, like :data:`.form.FIELDS`: one :class:`Option` per row. ``kind="method"`` rows are
options of the training methods (``make_method(name, **options)``: the same names the CLI's
flags map to); which methods take each one is asked of the core
(:func:`st_app.core.methods.method_option_names`), so tooltips say where an option applies and
the form disables rows no checked method takes. ``kind="config"`` rows are ``TrainConfig``
fields the recipes set (schedule, BN re-estimation, the image-file data recipe).

Every method-option widget has an empty "method default" state (``None``): ST and ST++ differ in
their defaults (1 vs 6 sub-nets, KL- off vs on), so the form passes only what the user (or a
recipe) set, and the core fills in the rest exactly as ``python -m st_app train`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QDoubleValidator, QIntValidator, QPaintEvent
from PySide6.QtWidgets import QComboBox, QLineEdit, QStyle, QStyleOptionComboBox, QStylePainter, QWidget

from st_app.core.methods import (
    KL_RAMPS,
    MAIN_CE,
    METHOD_TITLES,
    METHODS,
    NAMED_SPACES,
    NORM_TYPES,
    SUB_INPUTS,
    SUB_LOSSES,
    make_method,
    method_option_names,
)

__all__ = ["ADVANCED_OPTIONS", "Choice", "Option", "OptionalValue", "applies_to", "option_tip"]


class OptionalValue(QLineEdit):
    """A number (or short text) that may be left empty: empty means the method's default."""

    def __init__(self, parse: Callable[[str], Any], placeholder: str = "default", integer: bool = False) -> None:
        super().__init__()
        self._parse = parse
        self.setPlaceholderText(placeholder)
        if integer:
            self.setValidator(QIntValidator(0, 1_000_000, self))
        elif parse is float:
            validator = QDoubleValidator(0.0, 1e6, 8, self)
            validator.setNotation(QDoubleValidator.Notation.StandardNotation)
            self.setValidator(validator)

    def value(self) -> Any:
        """The parsed value, None when empty; ``ValueError`` names the field's text when it is bad."""
        text = self.text().strip()
        return None if not text else self._parse(text)

    def set_value(self, value: Any) -> None:
        self.setText("" if value is None else _fmt(value))


class ElidingCombo(QComboBox):
    """A combo that may be narrower than its longest entry: the closed box elides the current
    text in the middle ("imagenet-r50 + st+k…all-inputs") instead of clipping it, the open list
    shows every entry whole."""

    def narrow(self, chars: int) -> None:
        """Size the box for ``chars`` characters, whatever its entries (presentation fonts)."""
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(chars)
        self.view().setTextElideMode(Qt.TextElideMode.ElideNone)

    def showPopup(self) -> None:  # noqa: N802 - Qt's name
        self.view().setMinimumWidth(self.view().sizeHintForColumn(0) + 24)
        super().showPopup()

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        painter = QStylePainter(self)
        opt = QStyleOptionComboBox()
        self.initStyleOption(opt)
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, opt)
        room = self.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, opt,
                                           QStyle.SubControl.SC_ComboBoxEditField, self).width()
        opt.currentText = self.fontMetrics().elidedText(opt.currentText, Qt.TextElideMode.ElideMiddle, room)
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, opt)


class Choice(ElidingCombo):
    """A combo whose entries carry values (``None``: the method's default)."""

    def __init__(self, items: list[tuple[str, Any]], narrow: bool = False) -> None:
        super().__init__()
        for label, value in items:
            self.addItem(label, value)
        if narrow:  # the Advanced rows: never wider than the side column (presentation fonts)
            self.narrow(8)

    def value(self) -> Any:
        return self.currentData()

    def set_value(self, value: Any) -> None:
        for i in range(self.count()):
            if self.itemData(i) == value and type(self.itemData(i)) is type(value):
                self.setCurrentIndex(i)
                return
        self.addItem(_fmt(value), value)  # a value the list lacks (a space given as ranges)
        self.setCurrentIndex(self.count() - 1)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _side(text: str) -> int | str:
    return "auto" if text.strip().lower() == "auto" else int(text)


def _tri(on: str = "on", off: str = "off") -> Callable[[], QWidget]:
    return lambda: Choice([("default", None), (on, True), (off, False)], narrow=True)


def _pick(values: tuple[str, ...], labels: dict[str, str] | None = None) -> Callable[[], QWidget]:
    labels = labels or {}
    return lambda: Choice([("default", None), *((labels.get(v, v), v) for v in values)], narrow=True)


def _num(parse: Callable[[str], Any] = float, placeholder: str = "default") -> Callable[[], QWidget]:
    return lambda: OptionalValue(parse, placeholder, integer=parse is int)


def _space() -> QWidget:
    box = Choice([("default", None), *((s, s) for s in NAMED_SPACES)], narrow=True)
    box.setEditable(True)  # drop ranges like 0|0-1|0-3|0 too
    return box


@dataclass(frozen=True)
class Option:
    """One Advanced row: a method option (``kind="method"``) or a TrainConfig field (``"config"``)."""

    key: str
    label: str
    make: Callable[[], QWidget]
    tip: str
    kind: str = "method"


ADVANCED_OPTIONS: list[Option] = [
    # --- ST / ST++ (the authors' flags, README "Authors' flag -> our flag")
    Option("n_subnets", "Sub-nets", _num(int), "--multi_Snet: how many ordered sub-networks the main "
           "net teaches each step (their gradients add up)."),
    Option("kl_minus", "KL-", _tri(), "--norm_kd: normalise the main and sub-net logits before the KL "
           "(layer norm x amplitude); the main cross-entropy uses the normalised logits too."),
    Option("norm_type", "Norm. type", _pick(NORM_TYPES), "--norm_kd_type: layernorm (A x layer norm, their "
           "default), v1 (layer norm with an adaptive amplitude), v2 (A x L2-normalise)."),
    Option("amplitude", "Amplitude", _num(), "--amplitude: A, the scale of the normalised logits under KL-."),
    Option("norm_eps", "Norm. eps", _num(), "eps of the logit normalisation (authors 1e-7; 1e-5 is "
           "F.layer_norm's default, a deviation)."),
    Option("temperature", "Temperature", _num(), "--Temp: T of the KL between teacher and sub-net (the loss is "
           "T²-scaled); for self-distillation its KD temperature."),
    Option("kl_weight", "KL weight", _num(), "--kl_coef: weight of each sub-net's loss (summed over sub-nets); "
           "0 turns the teaching off (the authors' CT)."),
    Option("main_weight", "Main weight", _num(), "--main_coef: weight of the main network's cross-entropy."),
    Option("kl_ramp", "KL ramp", _pick(KL_RAMPS), "Per-epoch ramp of the KL weight: none, cos (--kl_cos, "
           "rises from 0 to the weight), rcos (--kl_rcos, falls from the weight to 0)."),
    Option("sampling_begin_epoch", "Sampling from", _num(int, "default (epoch 0)"),
           "--sampling_begin_epoch: no sub-nets are trained before this (0-based) epoch."),
    Option("sub_loss", "Sub-net loss", _pick(SUB_LOSSES), "--st_loss: kl (KL to the teacher), soft-ce (CE to the "
           "teacher's softmax), label-ce (CE to the labels), mse (MSE between the softmaxes)."),
    Option("space", "Space", _space, "--sample_space: which ordered sub-nets are drawn: default (all), "
           "space1..space7 (every stage keeps at least k blocks), or drop ranges per stage like 0|0-1|0-3|0."),
    Option("small_inputs", "Small inputs", _tri(), "--Snet_Dtrans --Dtrans=Dtrans7: each sub-net sees a randomly "
           "smaller input, side randint(int(crop x min scale), crop)."),
    Option("min_scale", "Min scale", _num(), "--mini_size: the smallest sub-net input side as a fraction of the "
           "crop (0.43)."),
    Option("same_scale_image", "Same scale", _tri(), "--same_mscale_image: the main net's batch is "
           "randomly downscaled the same way first."),
    Option("sub_input", "Sub-net input", _pick(SUB_INPUTS), "Deviation: authors (each sub-net resizes and "
           "re-normalises the previous one's input) or independent (every sub-net resizes the main batch, no "
           "re-normalisation)."),
    Option("main_ce", "Main CE on", _pick(MAIN_CE), "Deviation: under KL-, the main CE on the normalised "
           "logits (authors) or on the raw ones."),
    Option("min_side", "Min side (px)", _num(_side, "default (none)"), "Deviation: a floor on the sub-net input "
           "side in pixels, or 'auto' (3 x the total stride; 8x8 digits are then never shrunk). Authors: none."),
    Option("share_prefix", "Share prefix", _tri(), "Speed only, exact either way: sub-nets reuse the main "
           "net's activations for their common prefix unless their inputs are resized."),
    # --- the other methods
    Option("aux_weight", "Aux. weight", _num(), "Weight of the mean auxiliary cross-entropy of the "
           "intermediate classifiers."),
    Option("distill_weight", "Distill weight", _num(), "KD share of the shallow classifiers' loss (the rest is "
           "their CE)."),
    Option("hint_weight", "Hint weight", _num(), "Weight of the L2 feature hint towards the deepest features."),
    Option("final_survival", "Final survival", _num(), "Survival probability of the last block; earlier blocks "
           "decay linearly from 1 to it."),
    # --- recipe-level settings (TrainConfig fields): apply to every method
    Option("bn_reestimate", "BN re-est.", _tri(), "Re-estimate the main net's BN statistics after every "
           "epoch on training images, as the authors' trainer does (default: on for ST++ and the recipes, off "
           "otherwise). Applies to every method.", "config"),
    Option("bn_reestimate_images", "BN images", _num(int, "2000"), "Training images the BN "
           "re-estimation uses (2000). Applies to every method.", "config"),
    Option("min_lr", "Min lr", _num(float, "0"), "Floor of the cosine learning-rate schedule (the authors' "
           "--min_lr: lr x min_lr_coef). Applies to every method.", "config"),
    Option("momentum", "Momentum", _num(float, "0.9"), "SGD momentum (Nesterov). Applies to every method.",
           "config"),
    Option("weight_decay", "Weight decay", _num(float, "0.0005"), "On every parameter (the authors' ImageNet "
           "recipe: 1e-4). Applies to every method.", "config"),
    Option("fc_init_std", "fc init std", _num(float, "model's init"), "Initialise the classifier "
           "N(0, std), bias 0 (authors: 0.01). Applies to every method.", "config"),
    Option("image_size", "Image size", _num(int, "data set's"), "Image side: image folders are resized, streamed "
           "images cropped to it (the authors' train crop: 200). Applies to every method.", "config"),
    Option("val_resize", "Val. resize", _num(int, "crop / 0.875"), "Streamed test images are resized to this "
           "side (authors 240), then centre-cropped. Only for image files that stream from disk.", "config"),
    Option("val_crop", "Val. crop", _num(int, "image size"), "Centre crop of streamed test images (authors 224). "
           "Only for image files that stream from disk.", "config"),
    Option("color_jitter", "Colour jitter", _num(float, "0"), "ColorJitter strength of streamed training images "
           "(authors 0.4). Only for image files that stream from disk.", "config"),
    Option("lighting", "PCA lighting", _num(float, "0"), "PCA lighting noise std of streamed training images "
           "(authors 0.1). Only for image files that stream from disk.", "config"),
]


@cache
def applies_to(key: str) -> tuple[str, ...]:
    """The methods (table 1's order) whose ``make_method`` accepts option ``key``."""
    return tuple(m for m in METHODS if key in method_option_names(m))


@cache
def _defaults(key: str) -> dict[str, Any]:
    return {m: getattr(make_method(m), key, None) for m in applies_to(key)}


def option_tip(option: Option) -> str:
    """The row's tooltip: what it means, then where it applies and each method's default."""
    if option.kind == "config":
        return option.tip
    methods = applies_to(option.key)
    defaults = _defaults(option.key)
    unset = "default" if option.key == "space" else "none"
    shown = ", ".join(f"{METHOD_TITLES[m]} {_fmt(defaults[m]) if defaults[m] is not None else unset}"
                      for m in methods)
    return (f"{option.tip}\nApplies to: {', '.join(METHOD_TITLES[m] for m in methods)}.\n"
            f"Empty / default: the method's own ({shown}).")
