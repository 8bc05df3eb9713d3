"""The five analyses of the paper, one declarative page each.

Adding an analysis (e.g. a depth sweep) is one more :class:`AnalysisPage` subclass here and
one entry in :data:`PAGES`: its settings (``build_form``), its job (``make_job``, a report
builder from ``st_app.core.experiments.reports``) and its charts (``st_app.figures``).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QWidget,
)

from st_app.core.methods import METHOD_TITLES, METHODS
from st_app.core.models import ARCHITECTURES

from ..train.form import default_out_root
from .depth_page import DepthPage
from .page import AnalysisPage, ModelPair, dataset_box, int_box, lr_box

__all__ = ["PAGES", "ComparePage", "DepthPage", "ImportancePage", "LoafingPage", "RobustnessPage", "SubnetsPage"]


class LoafingPage(AnalysisPage):
    name = "loafing"
    title = "Loafing"
    shows = ("loafing", "loafing_triangle")
    always_calibrates = True
    intro = ("Paper figure 2. Each chosen ordered sub-network is trained <i>alone</i> with the CT run's own "
             "recipe and compared with the same sub-network evaluated inside the CT and inside the ST model. "
             "A sub-net that does much better alone than inside CT was <i>loafing</i>: it relied on the blocks "
             "that are now switched off. Trains one network per plan, so it takes minutes. "
             "<b>Triangle</b> mode (tables 2-3): CT and ST runs of several sizes of one family; each smaller "
             "net alone vs the same sub-net inside each bigger one (no training, seconds).")
    modeChanged = Signal()

    def build_form(self) -> None:
        self.mode = QComboBox()
        self.mode.addItem("one CT/ST pair (the loaded models)", "pair")
        self.mode.addItem("triangle: several sizes (run folders)", "triangle")
        self.mode.setToolTip("One pair: the chosen sub-nets trained alone vs inside the loaded CT and ST. "
                             "Triangle: as analyze loafing --ct a,b,c --st a,b,c")
        self.form.addRow("Mode:", self.field("mode", self.mode))
        self.plans = QLineEdit()
        self.plans.setPlaceholderText("default: the smallest and two others")
        self.plans.setMinimumWidth(160)
        self.plans.setToolTip("Sub-networks separated by ';' in the plan text (e.g. 0|3|6; 0,1|3,4|6,7) or "
                              "depths:1,2,1; empty: the smallest ordered sub-net and two others")
        self.form.addRow("Sub-networks:", self.field("plans", self.plans, empty_ok=True))
        self.epochs = QSpinBox()
        self.epochs.setRange(0, 10000)
        self.epochs.setSpecialValueText("the CT recipe's")
        self.epochs.setToolTip("Train the alone-nets this many epochs instead of the CT run's (the report "
                               "records the override)")
        self.form.addRow("Epochs alone:", self.field("epochs", self.epochs))
        self.run_lists = {}
        for slot in ("ct", "st"):
            edit = QLineEdit()
            edit.setPlaceholderText("run folders, comma-separated")
            edit.setToolTip(f"{slot.upper()} run folders of several sizes of one family (e.g. resnet20, resnet32, "
                            f"resnet56), comma-separated; the ST list pairs with the CT list in order")
            browse = QToolButton()
            browse.setText("…")
            browse.setToolTip(f"Add a {slot.upper()} run folder")
            browse.clicked.connect(lambda _=False, s=slot: self._browse_run(s))
            box = QWidget()
            bl = QHBoxLayout(box)
            bl.setContentsMargins(0, 0, 0, 0)
            bl.addWidget(edit, 1)
            bl.addWidget(browse)
            self.field(f"{slot}_runs", edit, empty_ok=True)
            self.run_lists[slot] = edit
            self.form.addRow(f"{slot.upper()} runs:", box)
        super().build_form()
        self.current_plan = ""
        self.mode.currentIndexChanged.connect(lambda _i: self._apply_mode())

    def extra_buttons(self, row: QHBoxLayout) -> None:
        add = QToolButton()
        add.setText("+ current plan")
        add.setToolTip("Add the Explore tab's current plan to the sub-networks")
        add.clicked.connect(self.add_current_plan)
        row.addWidget(add)
        self.add_plan_button = add
        loaded = QToolButton()
        loaded.setText("+ loaded CT/ST runs")
        loaded.setToolTip("Add the loaded CT and ST models' run folders to the triangle's lists")
        loaded.clicked.connect(self.add_loaded_runs)
        row.addWidget(loaded)
        self.add_loaded_button = loaded
        row.addStretch(1)

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(settings, parent)
        self._apply_mode()

    def triangle(self) -> bool:
        return self.mode.currentData() == "triangle"

    def _apply_mode(self) -> None:
        """Show the settings of the chosen mode; the triangle reads run folders, not the loaded models."""
        triangle = self.triangle()
        self.needs_models = not triangle
        for widget in (self.plans, self.epochs):
            self.form.setRowVisible(widget, not triangle)
        for edit in self.run_lists.values():
            self.form.setRowVisible(cast(QWidget, edit.parentWidget()), triangle)
        if hasattr(self, "add_plan_button"):
            self.add_plan_button.setVisible(not triangle)
            self.add_loaded_button.setVisible(triangle)
        self.models_label.setVisible(not triangle)
        if not triangle:
            self.models_label.setText(self.pair.describe())
        self.modeChanged.emit()

    def _browse_run(self, slot: str) -> None:
        from PySide6.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(self, f"Add a {slot.upper()} run folder", str(default_out_root()))
        if folder:
            self._append_run(slot, folder)

    def _append_run(self, slot: str, folder: str) -> None:
        edit = self.run_lists[slot]
        parts = [p.strip() for p in edit.text().split(",") if p.strip()]
        if folder not in parts:
            edit.setText(", ".join([*parts, folder]))

    def add_loaded_runs(self) -> None:
        if self.pair.problem:
            self.status.setText(self.pair.problem)
            return
        for slot, ck in (("ct", self.pair.ct), ("st", self.pair.st)):
            self._append_run(slot, str(ck.path))

    def add_current_plan(self) -> None:
        if not self.current_plan:
            return
        parts = [p.strip() for p in self.plans.text().split(";") if p.strip()]
        if self.current_plan not in parts:
            parts.append(self.current_plan)
        self.plans.setText("; ".join(parts))

    def make_job(self, pair: ModelPair) -> Callable[..., dict]:
        o = self.options()
        if self.triangle():
            return self._triangle_job(o)
        from st_app.core.experiments.reports import loafing_report
        from st_app.core.plan import SubnetPlan

        layout = pair.ct.model.layout
        plans = [SubnetPlan.parse(p, layout) for p in o["plans"].split(";") if p.strip()] or None
        ct, st = self.private_pair(pair)
        return lambda **cb: loafing_report(ct, st, pair.data, plans=plans, epochs=o["epochs"] or None, bn=o["bn"],
                                           calib_n=o["calib_n"], seed=o["seed"], device=self.device, **cb)

    def _triangle_job(self, o: dict[str, Any]) -> Callable[..., dict]:
        """``analyze loafing --ct a,b --st a,b``: the runs are loaded in the worker, then the core's report."""
        from st_app.core.experiments.triangle import load_run_pairs, triangle_report
        from st_app.core.train import resolve_device

        cts, sts = ([p.strip() for p in o[f"{s}_runs"].split(",") if p.strip()] for s in ("ct", "st"))
        if len(cts) < 2 or len(cts) != len(sts):
            raise ValueError("the triangle needs CT and ST runs of at least two sizes, one ST run per CT run "
                             f"in the same order (given: {len(cts)} CT, {len(sts)} ST)")

        device = str(resolve_device(self.device))

        def job(**cb: Any) -> dict:
            pairs, data = load_run_pairs(cts, sts, device=device, calib_n=o["calib_n"], seed=o["seed"])
            return triangle_report(pairs, data, bn=o["bn"], calib_n=o["calib_n"], seed=o["seed"], **cb)

        return job


class SubnetsPage(AnalysisPage):
    name = "subnets"
    title = "All sub-networks"
    intro = ("Paper figure 5. Every ordered sub-network (a seeded uniform sample above the limit) is evaluated "
             "in the CT and the ST model through the prefix-sharing tree: the sorted-accuracy curve and the "
             "distribution, with mean ± std and the worst. Try both BN settings: with statistics re-estimated "
             "per sub-net much of CT's gap can vanish on an easy data set.")

    def build_form(self) -> None:
        self.limit = QSpinBox()
        self.limit.setRange(1, 1_000_000)
        self.limit.setValue(1000)
        self.limit.setToolTip("Above this many ordered sub-nets, evaluate a seeded uniform sample of this size")
        self.form.addRow("At most:", self.field("limit", self.limit))
        super().build_form()

    def make_job(self, pair: ModelPair) -> Callable[..., dict]:
        from st_app.core.experiments.reports import subnets_report

        o = self.options()
        ct, st = self.private_pair(pair)
        return lambda **cb: subnets_report(ct, st, pair.data, bn=o["bn"], calib_n=o["calib_n"], limit=o["limit"],
                                           seed=o["seed"], **cb)


class RobustnessPage(AnalysisPage):
    name = "robustness"
    title = "Robustness"
    intro = ("Paper figure 6, after Veit et al. (2016): delete each block in turn; delete k random blocks "
             "(k = 1…K, mean ± std over R seeded draws); swap k random pairs of same-shape blocks. CT and ST see "
             "exactly the same damaged networks. An ensemble of many paths degrades smoothly.")

    def build_form(self) -> None:
        self.max_k = QSpinBox()
        self.max_k.setRange(1, 1000)
        self.max_k.setValue(4)
        self.max_k.setToolTip("Largest number of deleted blocks (at most the number of blocks)")
        self.form.addRow("Delete up to k =", self.field("max_k", self.max_k))
        self.repeats = QSpinBox()
        self.repeats.setRange(1, 10000)
        self.repeats.setValue(10)
        self.repeats.setToolTip("Random draws per k; mean ± std over them")
        self.form.addRow("Draws per k:", self.field("repeats", self.repeats))
        self.max_swaps = QSpinBox()
        self.max_swaps.setRange(-1, 1000)
        self.max_swaps.setValue(-1)
        self.max_swaps.setSpecialValueText("as k, if possible")
        self.max_swaps.setToolTip("Largest number of swapped same-shape pairs (0: no swaps)")
        self.form.addRow("Swap up to:", self.field("max_swaps", self.max_swaps))
        super().build_form()

    def make_job(self, pair: ModelPair) -> Callable[..., dict]:
        from st_app.core.experiments.reports import robustness_report

        o = self.options()
        ct, st = self.private_pair(pair)
        swaps = None if o["max_swaps"] < 0 else o["max_swaps"]
        return lambda **cb: robustness_report(ct, st, pair.data, bn=o["bn"], calib_n=o["calib_n"], max_k=o["max_k"],
                                              repeats=o["repeats"], max_swaps=swaps, seed=o["seed"], **cb)


class ImportancePage(AnalysisPage):
    name = "importance"
    title = "Block importance"
    intro = ("Paper figure 6a on the graph: the accuracy each model loses when one block alone is deleted. "
             "Colour the Explore tab's blocks by it: in a CT net a few blocks carry the load, "
             "while ST spreads it. Takes seconds.")
    showOnGraph = Signal(str)  # "ct" | "st"

    def extra_buttons(self, row: QHBoxLayout) -> None:
        self.show_buttons = {}
        for slot in ("ct", "st"):
            b = QPushButton(f"Colour graph: {slot.upper()}")
            b.setToolTip(f"Colour the Explore tab's blocks by the {slot.upper()} model's accuracy loss")
            b.setEnabled(False)
            b.clicked.connect(lambda _=False, s=slot: self.showOnGraph.emit(s))
            row.addWidget(b)
            self.show_buttons[slot] = b

    def on_finished(self, report: dict[str, Any], elapsed: float) -> None:
        super().on_finished(report, elapsed)
        for b in self.show_buttons.values():
            b.setEnabled(True)

    def make_job(self, pair: ModelPair) -> Callable[..., dict]:
        from st_app.core.experiments.reports import importance_report

        o = self.options()
        ct, st = self.private_pair(pair)
        return lambda **cb: importance_report(ct, st, pair.data, bn=o["bn"], calib_n=o["calib_n"], seed=o["seed"],
                                              **cb)


class ComparePage(AnalysisPage):
    name = "compare"
    title = "Method comparison"
    intro = ("Seed table 1. Trains the table's seven methods with one recipe (same seed, data order and initial "
             "weights): CT, CT with layer or stage supervision, self-distillation, stochastic depth, ST and "
             "ST++. Reports wall time, peak memory, main-net accuracy and all ordered sub-nets' mean ± std. "
             "Does not use the loaded models; the runs it trains can be opened afterwards. Takes minutes "
             "per method.")
    needs_models = False
    openRuns = Signal(dict)  # {"ct": path, "st": path}

    def build_form(self) -> None:
        self.model = QComboBox()
        self.model.addItems(list(ARCHITECTURES))
        self.model.setCurrentText("resnet20")
        self.form.addRow("Model:", self.field("model", self.model))
        self.dataset = dataset_box("A data set name, or imagefolder:/path/to/folder")
        self.form.addRow("Data set:", self.field("dataset", self.dataset))
        self.epochs = int_box(1, 10000, 30)
        self.form.addRow("Epochs:", self.field("epochs", self.epochs))
        methods = QWidget()
        # two columns in table 1's order, filled down: the CT baselines (long titles) in the first, ST and
        # ST++ (short) in the second, so the pair fits a narrow column even with presentation fonts
        ml = QGridLayout(methods)
        ml.setContentsMargins(0, 0, 0, 0)
        self.methods = {}
        rows = max(1, len(METHODS) - 2)
        for i, m in enumerate(METHODS):
            box = QCheckBox(METHOD_TITLES.get(m, m))
            box.setChecked(True)  # table 1 compares all of them (as the CLI's default)
            box.setToolTip(f"Train and compare {METHOD_TITLES.get(m, m)} (method {m!r})")
            ml.addWidget(box, i % rows, i // rows)
            self.methods[m] = box
        self.form.addRow("Methods:", methods)
        self.batch = int_box(1, 65536, 64)
        self.form.addRow("Batch size:", self.field("batch_size", self.batch))
        self.lr = lr_box()
        self.form.addRow("Learning rate:", self.field("lr", self.lr))
        self.isolate = QCheckBox("one process per method")
        self.isolate.setChecked(True)
        self.isolate.setToolTip("On CPU the peak memory is a process-wide high-water mark: a fresh process per "
                                "method gives each its own figure (slower start)")
        self.form.addRow("Memory:", self.field("isolate", self.isolate))
        self.runs_root = QLineEdit(str(default_out_root()))
        self.runs_root.setToolTip("The trained runs go to <folder>/compare-<date-time>/<method>")
        self.form.addRow("Runs folder:", self.field("runs_root", self.runs_root))
        super().build_form()
        self.last_runs: dict[str, str] = {}

    def extra_buttons(self, row: QHBoxLayout) -> None:
        self.open_button = QPushButton("Open CT and ST runs")
        self.open_button.setToolTip("Load the CT and ST runs this comparison trained into the Explore tab")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(lambda: self.openRuns.emit(dict(self.last_runs)))
        row.addWidget(self.open_button)

    def options(self) -> dict[str, Any]:
        # the method check boxes are one setting: the checked methods, comma-separated
        return {**super().options(), "methods": ",".join(m for m, b in self.methods.items() if b.isChecked())}

    def apply_settings(self, values: dict[str, Any]) -> None:
        super().apply_settings(values)
        if isinstance(values.get("methods"), str):
            chosen = set(values["methods"].split(","))
            for m, b in self.methods.items():
                b.setChecked(m in chosen)

    def runs_dir(self) -> Path:
        root = Path(self.runs_root.text().strip() or default_out_root()).expanduser()
        return root / f"compare-{_dt.datetime.now():%Y%m%d-%H%M%S}"

    def make_job(self, pair: ModelPair) -> Callable[..., dict]:
        from st_app.core.experiments.reports import compare_report

        o = self.options()
        methods = [m for m in o["methods"].split(",") if m]
        if not methods:
            raise ValueError("choose at least one method to compare")
        runs = self.runs_dir()
        return lambda **cb: compare_report(model=o["model"], dataset=o["dataset"], epochs=o["epochs"], methods=methods,
                                           seed=o["seed"], batch_size=o["batch_size"], lr=o["lr"], bn=o["bn"],
                                           calib_n=o["calib_n"], runs_dir=runs, isolate=o["isolate"], threads=1,
                                           device=self.device, **cb)

    def on_finished(self, report: dict[str, Any], elapsed: float) -> None:
        super().on_finished(report, elapsed)
        self.last_runs = {r["method"]: r["run"] for r in report["methods"] if r.get("run")}
        self.open_button.setEnabled("ct" in self.last_runs and "st" in self.last_runs)


PAGES: tuple[type[AnalysisPage], ...] = (LoafingPage, SubnetsPage, RobustnessPage, ImportancePage, ComparePage,
                                         DepthPage)


