"""The depth sweep page: ``python -m st_app analyze depth`` in the Analyses tab (paper figure 2's trend).

A thin door onto :func:`st_app.core.experiments.depth.depth_sweep`: the page collects the same
settings as the CLI, the core trains (or reuses, or resumes) the runs in the runs folder and
reports after each depth. A finished depth's CT and ST runs open in the Explore tab.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QToolButton,
    QWidget,
)

from st_app.core.methods import METHODS

from ..train.form import default_out_root
from .page import CALIB_TIP, AnalysisPage, ModelPair, dataset_box, int_box, lr_box

__all__ = ["DEFAULT_MODELS", "DepthPage"]

DEFAULT_MODELS = "resnet20,resnet32,resnet44,resnet56"
BN_SETTINGS = [("both", "both settings"), ("main", "main net's (paper)"),
               ("recalibrate", "re-estimated per sub-net")]


def default_runs_dir() -> Path:
    """Where the sweep's runs live unless the user says otherwise; reused by every rerun."""
    return default_out_root() / "depth"


def _split(text: str) -> list[str]:
    return [p for p in (t.strip() for t in text.split(",")) if p]


class DepthPage(AnalysisPage):
    """Settings of ``analyze depth``; the sweep's report drawn after each depth; a depth opens in Explore."""

    name = "depth"
    title = "Depth sweep"
    intro = ("Paper figure 2's trend: does loafing grow with depth? Trains CT and ST at each depth of one family "
             "(not the loaded models) and the smallest sub-net alone once; per depth, that sub-net alone vs "
             "inside CT and ST, and all sub-nets' mean ± std. Finished runs in the runs folder are reused, "
             "stopped ones resumed.")
    needs_models = False
    openRuns = Signal(dict)  # {"ct": path, "st": path}

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(settings, parent)
        self.models.setCursorPosition(0)  # the list's start (resnet20, …) rather than its end
        table = self.result.table  # the result view exists only now, after the base built both halves
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.itemSelectionChanged.connect(self._update_open_button)
        table.cellDoubleClicked.connect(lambda r, _c: self.open_depth(self._model_at(r)))

    def build_form(self) -> None:
        self.models = QLineEdit(DEFAULT_MODELS)
        self.models.setToolTip("Comma-separated depths of one family (their one-block-per-stage sub-net must be "
                               "the same network), e.g. resnet20,resnet32 or densenet-bc-22,densenet-bc-40")
        self.form.addRow("Models:", self.field("models", self.models))
        self.dataset = dataset_box("A data set name, synthetic:C,S,K,NTRAIN,NTEST or imagefolder:/path/to/folder")
        self.form.addRow("Data set:", self.field("dataset", self.dataset))
        self.epochs = int_box(1, 10000, 30, "Epochs of every run; a run folder that finished fewer epochs is resumed")
        self.form.addRow("Epochs:", self.field("epochs", self.epochs))
        self.methods = QLineEdit("ct,st")
        self.methods.setToolTip(f"Comma-separated, must include ct (loafing is measured inside CT); "
                                f"from {', '.join(METHODS)}")
        self.form.addRow("Methods:", self.field("methods", self.methods))
        self.bn = QComboBox()
        for key, text in BN_SETTINGS:
            self.bn.addItem(text, key)
        self.bn.setToolTip("BN statistics of each sub-network: the main net's, re-estimated from training images, "
                           "or both (the report then has a chart pair per setting)")
        self.form.addRow("BN statistics:", self.field("bn", self.bn))
        self.calib = int_box(16, 100000, 1000, CALIB_TIP, step=100)
        self.form.addRow("Calibration images:", self.field("calib_n", self.calib))
        # the base's own BN row is not used: here "both" is a choice, and it needs the images too
        self.bn.currentIndexChanged.connect(lambda _i: self.calib.setEnabled(self.bn_mode() != "main"))
        self.limit = int_box(1, 1_000_000, 1000, "Above this many ordered sub-nets per model, evaluate a seeded "
                             "uniform sample")
        self.form.addRow("Sub-nets at most:", self.field("limit", self.limit))
        self.seed = int_box(0, 2**31 - 1, 0, "Seed of the runs, the calibration subset and the sub-net sample")
        self.form.addRow("Seed:", self.field("seed", self.seed))
        self.batch = int_box(1, 65536, 64, "Batch size of every run")
        self.lr = lr_box("Learning rate of every run")
        recipe = QWidget()  # one row for both: the page must fit a 720-pixel window with its progress bar
        rl = QHBoxLayout(recipe)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.field("batch_size", self.batch), 1)
        rl.addWidget(self.field("lr", self.lr), 1)
        self.form.addRow("Batch, learning rate:", recipe)
        runs = QWidget()
        rl = QHBoxLayout(runs)
        rl.setContentsMargins(0, 0, 0, 0)
        self.runs_dir = QLineEdit(str(default_runs_dir()))
        self.runs_dir.setToolTip("RUNS/<model>-<method> and RUNS/alone-<plan>: finished runs with the same recipe "
                                 "are reused, stopped ones resumed; a run with another recipe is refused "
                                 "(as the CLI's --runs)")
        browse = QToolButton()
        browse.setText("…")
        browse.setToolTip("Choose the runs folder")
        browse.clicked.connect(self._choose_runs_dir)
        rl.addWidget(self.runs_dir, 1)
        rl.addWidget(browse)
        self.field("runs_dir", self.runs_dir)
        self.form.addRow("Runs folder:", runs)

    def extra_buttons(self, row: QHBoxLayout) -> None:
        self.open_button = QPushButton("Open this depth in Explore")
        self.open_button.setToolTip("Load the selected depth's CT and ST runs into the Explore tab "
                                    "(or double-click its row in the Table tab)")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(lambda: self.open_depth(self.selected_model()))
        row.addWidget(self.open_button)

    def _choose_runs_dir(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Runs folder of the depth sweep", self.runs_dir.text())
        if folder:
            self.runs_dir.setText(folder)

    # ------------------------------------------------------------- the job
    def make_job(self, pair: ModelPair) -> Callable[..., dict]:
        """The CLI's ``analyze depth`` call; the data set is loaded in the worker, not the GUI thread."""
        from st_app.core.data import load_dataset
        from st_app.core.experiments.depth import depth_sweep
        from st_app.core.train import resolve_device

        o = self.options()
        models, methods = _split(o["models"]), _split(o["methods"])
        if len(models) < 2:
            raise ValueError("a depth sweep needs at least two models, e.g. resnet20,resnet32")
        if "ct" not in methods:
            raise ValueError("a depth sweep needs ct among its methods: loafing is measured inside the CT net")
        bn = ["main", "recalibrate"] if o["bn"] == "both" else [o["bn"]]
        runs = Path(o["runs_dir"] or default_runs_dir()).expanduser()
        device = str(resolve_device(self.device))

        def job(**cb: Any) -> dict:
            data = load_dataset(o["dataset"]).to(device)
            return depth_sweep(models, data, runs_dir=runs, epochs=o["epochs"], methods=methods, bn=bn,
                               seed=o["seed"], batch_size=o["batch_size"], lr=o["lr"], limit=o["limit"],
                               calib_n=o["calib_n"], device=device, **cb)

        return job

    # ------------------------------------------------------- open a depth
    def runs_of(self, model: str) -> dict[str, str]:
        """The CT and ST run folders of ``model`` in the shown report (empty when it has none yet)."""
        for row in (self.result.report or {}).get("rows", []):
            if row["model"] == model:
                return {m: r["run"] for m, r in row["runs"].items() if m in ("ct", "st")}
        return {}

    def _model_at(self, row: int) -> str:
        table = self.result.table
        for c in range(table.columnCount()):
            head = table.horizontalHeaderItem(c)
            if head is not None and head.text() == "model":
                item = table.item(row, c)
                return item.text() if item is not None else ""
        return ""

    def selected_model(self) -> str:
        rows = self.result.table.selectionModel().selectedRows() or self.result.table.selectedIndexes()
        return self._model_at(rows[0].row()) if rows else ""

    def _update_open_button(self) -> None:
        self.open_button.setEnabled(bool(self.runs_of(self.selected_model())))

    def open_depth(self, model: str) -> None:
        """Ask the window to load ``model``'s CT and ST runs into its slots (Explore tab)."""
        runs = self.runs_of(model)
        if runs:
            self.openRuns.emit(runs)
            self.status.setText(f"Opened {model}'s {' and '.join(m.upper() for m in runs)} runs in Explore.")

    def on_partial(self, report: dict[str, Any]) -> None:
        super().on_partial(report)
        self._update_open_button()

    def on_finished(self, report: dict[str, Any], elapsed: float) -> None:
        super().on_finished(report, elapsed)
        self._update_open_button()

    def on_stopped(self, message: str, error: bool) -> None:
        super().on_stopped(message, error)
        self._update_open_button()
