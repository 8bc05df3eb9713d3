"""Side panels of the Explore tab: CT/ST accuracy cards, the plan editor and its numbers."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from st_app.core.plan import NetLayout

from ..style import MUTED, SLOT_COLORS, SLOT_NAMES, SLOT_TITLES, ui_font
from .accuracy import BN_LABELS
from .network_info import plural

__all__ = ["AccuracyCard", "AccuracyPanel", "PathsBar", "PlanPanel", "format_count"]

BN_TOOLTIP = (
    "<b>Which BatchNorm statistics a sub-network uses.</b><br><br>"
    "<b>Main network</b> (the paper's setting): the sub-net runs with the running means and "
    "variances collected while training the <i>whole</i> network. Dropping blocks shifts the "
    "activations those statistics describe, so this measures how well the sub-net works "
    "<i>as it sits inside the big net</i>. CT nets lose a lot here (network loafing); ST nets much less.<br><br>"
    "<b>Recalibrated for this sub-net</b>: the statistics are re-estimated on 1000 training "
    "images running only this sub-net (a quick 256-image estimate may show first). This repairs "
    "the statistics, not the weights, so it shows what the sub-net's weights can do on their own. "
    "The difference between the two numbers is the part of the drop caused by mismatched statistics."
)


def format_count(n: int | None, unit: str = "") -> str:
    if n is None:
        return "…"
    for div, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if n >= div:
            return f"{n / div:.2f}{suffix}{unit}"
    return f"{n}{' ' + unit if unit else ''}"


def repolish(widget: QWidget) -> None:
    """Re-apply style-sheet rules after a dynamic property of ``widget`` changed."""
    style = widget.style()
    style.unpolish(widget)
    style.polish(widget)
    widget.update()


class AccuracyCard(QFrame):
    """One slot's accuracy: big number, what it means, and the main net for reference.

    Fonts and colours come from the application style sheet (object names and the ``slot``
    and ``state`` properties), so presentation mode can scale them in one place.
    """

    def __init__(self, slot: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slot = slot
        self.setObjectName("accuracyCard")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(14, 10, 14, 10)
        lay.setSpacing(2)
        self.title = QLabel(f"{SLOT_TITLES[slot]} · {SLOT_NAMES[slot]}")
        self.subtitle = QLabel("no model loaded")
        self.subtitle.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.value = QLabel("—")
        self.detail = QLabel("")
        self.reference = QLabel("")
        for name, w in (("cardTitle", self.title), ("cardSubtitle", self.subtitle), ("accValue", self.value),
                        ("accDetail", self.detail), ("accReference", self.reference)):
            w.setObjectName(name)
            w.setProperty("slot", slot)
            lay.addWidget(w)
        for w in (self.value, self.detail, self.reference):
            w.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.accuracy: float | None = None
        self.final = False
        self.is_main = False
        self.main_accuracy: float | None = None
        self._state = ""
        self._restyle_value()
        self.setToolTip(
            f"Test accuracy of the current sub-network inside the {SLOT_TITLES[slot]} slot's model "
            "(top-1, whole test set). Below: the main (full) network for reference and the drop."
        )

    def _restyle_value(self) -> None:
        state = "empty" if self.accuracy is None else ("final" if self.final else "estimate")
        if state != self._state:
            self._state = state
            self.value.setProperty("state", state)
            repolish(self.value)

    def set_model(self, subtitle: str, tooltip: str) -> None:
        self.subtitle.setText(subtitle)
        self.subtitle.setToolTip(tooltip)
        self.accuracy = None
        self.main_accuracy = None
        self.value.setText("…")
        self.detail.setText("evaluating…")
        self.reference.setText("")
        self._restyle_value()

    def clear(self, reason: str = "no model loaded") -> None:
        self.subtitle.setText(reason)
        self.subtitle.setToolTip("")
        self.accuracy = None
        self.main_accuracy = None
        self.value.setText("—")
        self.detail.setText("")
        self.reference.setText("")
        self._restyle_value()

    def set_unavailable(self, reason: str) -> None:
        self.accuracy = None
        self.value.setText("n/a")
        self.detail.setText(reason)
        self.detail.setToolTip(reason)
        self.reference.setText("")
        self._restyle_value()

    def set_pending(self) -> None:
        """A new plan was asked for: keep the old number visibly stale until the new one lands."""
        self.final = False
        if self.accuracy is not None:
            self._restyle_value()
            self.detail.setText("evaluating…")

    def set_accuracy(self, acc: float, final: bool, detail: str, is_main: bool = False) -> None:
        self.is_main = is_main
        self.accuracy = acc
        self.final = final
        self.value.setText(f"{acc:.1f} %" if final else f"≈ {acc:.1f} %")
        self.detail.setText(detail)
        self._restyle_value()
        self._update_reference()

    def set_main_accuracy(self, acc: float | None) -> None:
        self.main_accuracy = acc
        self._update_reference()

    def _update_reference(self) -> None:
        if self.main_accuracy is None:
            self.reference.setText("")
            return
        text = f"main net {self.main_accuracy:.1f} %"
        if self.is_main and self.accuracy is not None and abs(self.accuracy - self.main_accuracy) < 0.05:
            text = "this is the main (full) network"
        elif self.accuracy is not None:
            d = self.accuracy - self.main_accuracy
            text += f"  ·  {'−' if d < 0 else '+'}{abs(d):.1f} points"
        self.reference.setText(text)


class FitLabel(QLabel):
    """A label that takes the room its layout leaves and shows the longest of its wordings that
    fits there (nothing when none does), so it never pushes or cuts its neighbours."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.variants: tuple[str, ...] = ()
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def set_variants(self, variants: tuple[str, ...]) -> None:
        self.variants = tuple(variants)
        self._fit()

    def _fit(self) -> None:
        fm = self.fontMetrics()
        text = next((t for t in self.variants if fm.horizontalAdvance(t) + 2 <= self.width()), "")
        if text != self.text():
            self.setText(text)

    def minimumSizeHint(self) -> QSize:
        return QSize(0, super().minimumSizeHint().height())

    def resizeEvent(self, event) -> None:  # noqa: ANN001
        super().resizeEvent(event)
        self._fit()

    def changeEvent(self, event) -> None:  # noqa: ANN001 - another font (presentation mode): another wording
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._fit()


class AccuracyPanel(QGroupBox):
    """CT and ST cards side by side, the BN switch and the ST − CT gap."""

    bnModeChanged = Signal(str)
    #: what the BN row says when the models keep no running statistics, longest first
    BN_NOTES = ("no BatchNorm in these models: both settings give the same numbers",
                "no BatchNorm: both settings equal", "(equal: no BatchNorm)")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Accuracy of this sub-network (test set)", parent)
        self.setToolTip("Re-evaluated after every edit, off the GUI thread, for both loaded models.")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 16, 10, 10)
        cards = QHBoxLayout()
        cards.setSpacing(10)
        self.cards = {slot: AccuracyCard(slot) for slot in SLOT_COLORS}
        for card in self.cards.values():
            cards.addWidget(card)
        lay.addLayout(cards, 1)
        row = QHBoxLayout()
        self.bn_label = QLabel("BN statistics:")
        self.bn_label.setToolTip(BN_TOOLTIP)
        self.bn_combo = QComboBox()
        for mode, text in BN_LABELS.items():
            self.bn_combo.addItem(text, mode)
        self.bn_combo.setToolTip(BN_TOOLTIP)
        self.bn_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)  # never elided
        self.bn_combo.currentIndexChanged.connect(lambda _i: self.bnModeChanged.emit(self.bn_mode()))
        self.bn_note = FitLabel()
        self.bn_note.setObjectName("bnNote")
        self.bn_note.setToolTip(
            "These models keep no running statistics (a transformer's LayerNorm normalises each token by its "
            "own mean and variance, in training and at evaluation alike). A sub-net's accuracy is then a "
            "property of the weights alone: 'main network' and 'recalibrated' give the same numbers, and what "
            "remains of loafing is in the weights, not in mismatched statistics.")
        self.gap = QLabel("")
        self.gap.setObjectName("gapLabel")
        self.gap.setToolTip("Sub-net accuracy of ST minus that of CT, in percentage points, for the current plan.")
        self.gap.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        row.addWidget(self.bn_label)
        row.addWidget(self.bn_combo)
        row.addWidget(self.bn_note, 1)
        row.addWidget(self.gap)
        lay.addLayout(row)

    def bn_mode(self) -> str:
        return str(self.bn_combo.currentData())

    def set_running_statistics(self, uses: bool) -> None:
        """False: the loaded models have no BatchNorm, so both BN settings give the same numbers (say so)."""
        self.bn_note.set_variants(() if uses else self.BN_NOTES)

    def set_bn_mode(self, mode: str) -> None:
        idx = self.bn_combo.findData(mode)
        if idx >= 0:
            self.bn_combo.setCurrentIndex(idx)

    def update_gap(self) -> None:
        ct, st = self.cards["ct"], self.cards["st"]
        if ct.accuracy is None or st.accuracy is None:
            self.gap.setText("")
            return
        d = st.accuracy - ct.accuracy
        approx = "" if (ct.final and st.final) else "≈ "
        self.gap.setText(f"ST − CT: {approx}{'+' if d >= 0 else '−'}{abs(d):.1f} points")


class PathsBar(QWidget):
    """Binomial bar chart: how many unraveled paths pass through ℓ of the k active branches."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.counts: list[int] = []
        self.step = "branches"  # what one step of a path is (a DenseNet's chains step through layers)
        self.scale = 1.0
        self.setMinimumHeight(64)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setToolTip(
            "Paths by length: in the unraveled view each of the k active residual branches is taken "
            "or skipped, giving 2^k paths; C(k, ℓ) of them go through exactly ℓ branches. Most paths "
            "have medium length (k/2), and Veit et al. (2016) found most of the gradient flows through "
            "the short ones."
        )

    def sizeHint(self) -> QSize:
        return QSize(240, 72)

    def set_presentation(self, on: bool) -> None:
        self.scale = 1.35 if on else 1.0
        self.update()

    def set_counts(self, counts: list[int]) -> None:
        self.counts = list(counts)
        self.update()

    def paintEvent(self, event) -> None:  # noqa: ANN001
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = QRectF(self.rect()).adjusted(4, 4 + 14 * (self.scale - 1), -4, -18 * self.scale)
        p.setPen(QPen(QColor("#D1D5DB"), 1))
        p.drawLine(r.bottomLeft(), r.bottomRight())
        if not self.counts:
            return
        # log-free: the binomial shape is what matters; normalise by the largest count
        top = max(self.counts)
        n = len(self.counts)
        w = r.width() / n
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#3B82F6"))
        for i, c in enumerate(self.counts):
            h = r.height() * (c / top) if top else 0
            h = max(h, 1.0 if c else 0.0)
            p.drawRect(QRectF(r.left() + i * w + w * 0.12, r.bottom() - h, max(1.0, w * 0.76), h))
        p.setPen(QColor(MUTED))
        p.setFont(ui_font(10 * self.scale))
        h = 14 * self.scale
        p.drawText(QRectF(r.left(), r.bottom() + 2, 60, h), Qt.AlignmentFlag.AlignLeft, "0")
        p.drawText(QRectF(r.right() - 60, r.bottom() + 2, 60, h), Qt.AlignmentFlag.AlignRight, f"{n - 1}")
        p.drawText(QRectF(r.left(), r.bottom() + 2, r.width(), h), Qt.AlignmentFlag.AlignHCenter,
                   f"path length ({self.step} taken)")
        p.drawText(QRectF(r.left() + 2, r.top() - 2, r.width(), h), Qt.AlignmentFlag.AlignLeft,
                   f"{top:,} paths" if top < 10**6 else f"{top:.1e} paths")


class PlanEdit(QLineEdit):
    """The plan field: Enter applies (returnPressed), Escape asks for the current plan back."""

    escapePressed = Signal()

    def keyPressEvent(self, event) -> None:  # noqa: ANN001
        if event.key() == Qt.Key.Key_Escape:
            self.escapePressed.emit()
            event.accept()
            return
        super().keyPressEvent(event)


class PlanPanel(QGroupBox):
    """The plan as text (editable), its size and its unraveled paths."""

    planTextEntered = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Sub-network", parent)
        self.presentation = False
        self.setToolTip("The current sub-network (plan) and what it costs.")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 16, 10, 10)
        lay.setSpacing(6)
        row = QHBoxLayout()
        label = QLabel("Plan:")
        label.setToolTip("Stages joined by '|', block ids by ','.")
        self.edit = PlanEdit()
        self.edit.setObjectName("planEdit")
        self.edit.setClearButtonEnabled(False)
        self.edit.setPlaceholderText("e.g. 0,1|3,4,5|6  ·  depths:1,2,1  ·  full")
        self.edit.setToolTip(
            "The plan: per stage, the blocks that run, in execution order. Stages are joined by '|', "
            "block ids by ','. Examples: <tt>0,1,2|3,4,5|6,7,8</tt> (full resnet20), <tt>0|3,4|6</tt>, "
            "<tt>0,2,1|3,4,5|6,7,8</tt> (blocks 1 and 2 swapped), <tt>depths:1,2,1</tt>, <tt>full</tt>. "
            "Type a plan and press Enter to apply it; Esc restores the current one."
        )
        self.edit.returnPressed.connect(lambda: self.planTextEntered.emit(self.edit.text()))
        self.edit.textEdited.connect(lambda _t: self.set_error(None))
        row.addWidget(label)
        row.addWidget(self.edit, 1)
        lay.addLayout(row)
        self.error = QLabel("")
        self.error.setObjectName("planError")
        self.error.setWordWrap(True)
        self.error.setToolTip("Why the typed plan was not applied.")
        self.error.hide()
        lay.addWidget(self.error)

        grid = QGridLayout()
        grid.setHorizontalSpacing(14)
        grid.setVerticalSpacing(3)
        self.values: dict[str, QLabel] = {}
        self.keys: dict[str, QLabel] = {}
        rows = [
            ("blocks", "Blocks used", "Residual blocks whose branch runs, out of all blocks of the network."),
            ("params", "Parameters", "Weights the sub-network actually uses: stem, head, active blocks "
                                     "and the projection shortcuts it still needs."),
            ("flops", "Multiply-adds", "Multiply-accumulate operations for one image through the sub-network "
                                       "(convolutions and the classifier)."),
            ("paths", "Paths", "Paths of the unraveled view: each of the k active branches is taken or "
                               "skipped, so 2^k paths from input to output."),
        ]
        for i, (key, name, tip) in enumerate(rows):
            k = QLabel(name)
            k.setToolTip(tip)
            v = QLabel("—")
            v.setObjectName("planValue")
            v.setToolTip(tip)
            v.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            grid.addWidget(k, i, 0)
            grid.addWidget(v, i, 1)
            self.values[key] = v
            self.keys[key] = k
        grid.setColumnStretch(1, 1)
        lay.addLayout(grid)
        self.paths_label = QLabel("Paths by length")
        self.paths_label.setObjectName("pathsLabel")
        self.paths_label.setToolTip("Number of unraveled paths through exactly ℓ active branches, ℓ = 0..k.")
        lay.addWidget(self.paths_label)
        chart = QHBoxLayout()
        chart.setSpacing(8)
        self.paths = PathsBar()
        chart.addWidget(self.paths, 3)
        # how this family's paths are defined (a DenseNet's say why the 2^k reading does not carry over)
        self.path_rule = QLabel("")
        self.path_rule.setObjectName("pathRule")
        self.path_rule.setWordWrap(True)
        self.path_rule.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.path_rule.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        rule_scroll = QScrollArea()
        rule_scroll.setObjectName("pathRuleScroll")
        rule_scroll.setWidget(self.path_rule)
        rule_scroll.setWidgetResizable(True)
        rule_scroll.setFrameShape(QFrame.Shape.NoFrame)
        rule_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        rule_scroll.setMinimumWidth(90)
        self.path_rule_scroll = rule_scroll
        chart.addWidget(rule_scroll, 2)
        lay.addLayout(chart, 1)

    def set_layout(self, layout: NetLayout) -> None:
        """Names and rules of the loaded network: its units and groups, and how its paths count."""
        unit, group = layout.unit_name, layout.group_name
        units = plural(unit)
        self.keys["blocks"].setText(f"{units.capitalize()} used")
        tip = (f"{units.capitalize()} that run, out of all {units} of the network"
               + (" (a dropped one leaves zeros in its channels)." if layout.order == "fixed" else "."))
        self.keys["blocks"].setToolTip(tip)
        self.values["blocks"].setToolTip(tip)
        one = len(layout.stages) == 1
        fmt = (f"{unit.capitalize()} ids joined by ','" if one else
               f"{plural(group).capitalize()} joined by '|', {unit} ids by ','")
        example = ",".join(str(b) for b in layout.full_plan().blocks[:6])
        self.edit.setPlaceholderText(f"e.g. {example}  ·  depths:" + ",".join("1" for _ in layout.stages)
                                     + "  ·  full")
        self.edit.setToolTip(
            f"The plan: per {group}, the {units} that run, in execution order. {fmt}. "
            f"<tt>depths:...</tt> keeps the first {units} of each {group}; <tt>full</tt> is the whole network. "
            f"Rule: {layout.order_rule}. Type a plan and press Enter to apply it; Esc restores the current one.")
        self.paths.step = plural(unit) if layout.paths == "dense" else "branches"
        self.paths.update()
        rule = layout.path_rule
        self.path_rule.setText(rule)
        self.path_rule.setToolTip(rule)
        self.paths.setToolTip(rule)
        self.keys["paths"].setToolTip(rule)
        self.values["paths"].setToolTip(rule)

    def set_plan_text(self, text: str) -> None:
        self.edit.setText(text)
        self.set_error(None)
        self.fit_text()

    def set_presentation(self, on: bool) -> None:
        self.presentation = on
        self.paths.set_presentation(on)
        self.fit_text()

    def fit_text(self) -> None:
        """Shrink the plan field's font until the whole plan fits (resnet56's plan is long)."""
        base = 20 if self.presentation else 14
        text = self.edit.text() or self.edit.placeholderText()
        room = max(40, self.edit.width() - 18)
        px = base
        font = self.edit.font()
        while px > 9:
            font.setPixelSize(px)
            if QFontMetrics(font).horizontalAdvance(text) <= room:
                break
            px -= 1
        sheet = f"font-size: {px}px;" if px != base else ""
        if self.edit.styleSheet() != sheet:
            self.edit.setStyleSheet(sheet)

    def resizeEvent(self, event) -> None:  # noqa: ANN001
        super().resizeEvent(event)
        self.fit_text()

    def set_error(self, message: str | None) -> None:
        if bool(self.edit.property("invalid")) != bool(message):
            self.edit.setProperty("invalid", bool(message))
            repolish(self.edit)
        if message:
            self.error.setText(message)
            self.error.show()
        else:
            self.error.clear()
            self.error.hide()

    def set_stats(self, used: int, total: int, params: int, full_params: int, num_paths_exp: int,
                  paths: list[int]) -> None:
        """``num_paths_exp``: branches of the unraveled view (a transformer block holds two)."""
        self.values["blocks"].setText(f"{used} of {total}")
        self.values["params"].setText(f"{format_count(params)}  ({100 * params / max(1, full_params):.0f} % of full)")
        self.values["params"].setToolTip(f"{params:,} parameters ({full_params:,} in the full network)")
        if num_paths_exp <= 40:
            paths_text = f"2^{num_paths_exp} = {2 ** num_paths_exp:,}"
        else:
            mantissa, exponent = f"{2.0 ** num_paths_exp:.2e}".split("e")
            paths_text = f"2^{num_paths_exp} ≈ {mantissa} × 10^{int(exponent)}"
        self.values["paths"].setText(paths_text)
        self.paths.set_counts(paths)
        longest = max(range(len(paths)), key=lambda i: paths[i]) if paths else 0
        step = self.paths.step if longest != 1 else self.paths.step[:-2] if self.paths.step.endswith("hes") else \
            self.paths.step[:-1]
        self.paths_label.setText(f"Paths by length (most common: {longest} {step})")

    def set_flops(self, flops: int | None, full_flops: int | None) -> None:
        if flops is None:
            self.values["flops"].setText("…")
            return
        text = format_count(flops)
        if full_flops:
            text += f"  ({100 * flops / full_flops:.0f} % of full)"
        self.values["flops"].setText(text)
        self.values["flops"].setToolTip(f"{flops:,} multiply-accumulates per image")

    def clear(self) -> None:
        for v in self.values.values():
            v.setText("—")
        self.paths.set_counts([])
        self.path_rule.clear()
        self.edit.clear()

