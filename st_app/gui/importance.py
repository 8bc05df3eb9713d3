"""Colouring the block graph by block importance (the accuracy lost when one block alone is deleted).

The numbers come from the block-importance analysis (measured on first use, with the Explore
tab's BN setting, and again when the models or the BN setting change); the session keeps the
latest report. The scale is shared by CT and ST, so switching between them compares like with like.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject

from .explore.network_info import plural
from .session import SessionError
from .style import SLOT_TITLES

__all__ = ["ImportanceColouring"]


class ImportanceColouring(QObject):
    def __init__(self, win: Any) -> None:
        super().__init__(win)
        self.win = win
        self.session = win.session
        self.session.colourModeChanged.connect(lambda _m: self.refresh())
        self.session.reportChanged.connect(self._on_report)
        self.session.modelsChanged.connect(self.refresh)
        self.session.bnModeChanged.connect(lambda _m: self.refresh())

    def set_mode(self, mode: str) -> bool:
        """``stage`` (normal colours), or ``ct`` / ``st`` importance; False when it cannot be shown."""
        try:
            self.session.set_colour_mode(mode)
        except SessionError as exc:
            self.win.show_status(str(exc), error=True)
            return False
        box = self.win.colour_box
        i = box.findData(mode)
        if i >= 0 and box.currentIndex() != i:
            box.blockSignals(True)
            box.setCurrentIndex(i)
            box.blockSignals(False)
        return self.refresh()

    def _on_report(self, name: str) -> None:
        if name in ("importance", "robustness"):
            self.refresh()

    def refresh(self) -> bool:
        mode, graph = self.session.colour_mode, self.win.graph
        if mode == "stage" or self.session.info is None:
            if graph.importance is not None:
                graph.set_importance(None)
            return True
        report = self.session.importance_report()
        if report is not None:
            self._apply(report, mode)
            return True
        if graph.importance is not None:
            graph.set_importance(None)  # stale colours never describe other models
        analyses = self.win.analyses
        if analyses is None or analyses.pair.problem:
            self.win.show_status("Block importance needs a CT and an ST model with test data.", error=True)
            return False
        if analyses.running == "importance":
            return True  # its result will be applied when it arrives
        if analyses.running is not None:
            return False
        analyses.page("importance").set_bn_mode(self.session.bn_mode)
        if not analyses.run("importance"):
            return False
        unit = self.session.info.unit if self.session.info is not None else "block"
        self.win.show_status(f"Measuring block importance (each {unit} deleted in turn)…", timeout=0)
        return True

    def _apply(self, report: dict[str, Any], mode: str) -> None:
        info = self.session.info
        drops = report["importance"].get(mode)
        if info is None or drops is None or len(drops) != info.layout.num_blocks:
            return
        top = max([d for values in report["importance"].values() for d in values] + [0.0])
        title = (f"{SLOT_TITLES[mode]}: points of accuracy lost when the {info.unit} alone is deleted "
                 f"(BN {report['bn']}, {report['n_images']} test images)")
        self.win.graph.set_importance(drops, title, scale_max=top)
        self.win.show_status(f"{plural(info.unit).capitalize()} coloured by importance in the {SLOT_TITLES[mode]} model.")
