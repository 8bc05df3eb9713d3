"""The Explore tab: the block graph, the CT/ST accuracy cards and the plan panel, following the session.

The tab subscribes to the :class:`~st_app.gui.session.Session` (network, plan, models, BN
mode) and renders; edits the user makes in the graph or the plan field go back to the
session. Accuracy comes from the :class:`.accuracy.AccuracyService` (background jobs); a result
is shown only while it still matches the current plan, models and BN setting.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget

from st_app.core.plan import SubnetPlan

from ..session import SLOTS, Session, SessionError
from ..style import SLOT_TITLES
from .accuracy import AccuracyResult, AccuracyService, ModelPayload
from .block_graph import BlockGraphView
from .panels import AccuracyPanel, PlanPanel

__all__ = ["ExploreTab"]


class ExploreTab(QWidget):
    """Graph + accuracy cards + plan panel for one session."""

    accuracyShown = Signal(str, bool)  # slot, final: a card now shows the current plan's accuracy
    message = Signal(str, bool)  # status text, error

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("exploreTab")
        self.session = session
        self.accuracy = AccuracyService(self)
        self._payload_keys: dict[str, str] = {}
        self._full_params = 0
        self._full_flops: int | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 6, 8, 8)
        lay.setSpacing(6)
        self.caption = QLabel("")
        self.caption.setObjectName("captionBanner")
        self.caption.setWordWrap(True)
        self.caption.setTextFormat(Qt.TextFormat.RichText)
        self.caption.setToolTip("What the guided demo just showed. Click to hide.")
        self.caption.mousePressEvent = lambda _e: self.caption.hide()  # type: ignore[method-assign]
        self.caption.hide()
        lay.addWidget(self.caption)
        self.graph = BlockGraphView()
        self.graph.setMinimumHeight(180)
        self.accuracy_panel = AccuracyPanel()
        self.cards = self.accuracy_panel.cards
        self.plan_panel = PlanPanel()
        bottom = QWidget()
        bl = QHBoxLayout(bottom)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.setSpacing(8)
        bl.addWidget(self.accuracy_panel, 3)
        bl.addWidget(self.plan_panel, 2)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.graph)
        self.splitter.addWidget(bottom)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)
        lay.addWidget(self.splitter, 1)

        # user -> session
        self.graph.blockClicked.connect(lambda b: self._try(self.session.toggle, b))
        self.graph.blockActionRequested.connect(lambda a, b: self._try(self.session.block_action, a, b))
        self.graph.blockReordered.connect(lambda b, i: self._try(self.session.move_to, b, i))
        self.graph.presetRequested.connect(lambda name: self._try(self.session.preset, name))
        self.graph.orderRefused.connect(lambda text: self.message.emit(text, True))
        self.plan_panel.planTextEntered.connect(self.apply_plan_text)
        self.plan_panel.edit.escapePressed.connect(self._reset_plan_text)
        self.accuracy_panel.bnModeChanged.connect(lambda m: self._try(self.session.set_bn_mode, m))
        # session -> views
        session.networkChanged.connect(self._on_network)
        session.modelsChanged.connect(self._on_models)
        session.planChanged.connect(self._on_plan)
        session.bnModeChanged.connect(self._on_bn)
        self.accuracy.resultReady.connect(self._on_accuracy)
        self.accuracy.modelReady.connect(self._on_model_ready)
        self.accuracy.flopsReady.connect(self._on_flops)
        self.accuracy.failed.connect(lambda msg: self.message.emit(msg, True))

    # ------------------------------------------------------------------ edits
    def _try(self, fn: Any, *args: Any) -> bool:
        try:
            return bool(fn(*args))
        except SessionError as exc:
            self.message.emit(str(exc), True)
            if self.graph.plan is not None and self.session.plan is not None:
                self.graph.set_plan(self.session.plan)  # snap a refused drag back
            return False

    def apply_plan_text(self, text: str) -> bool:
        """Parse typed plan text; errors go inline under the field (1-based stage numbers)."""
        try:
            new = self.session.parse_plan(text)
        except SessionError as exc:
            self.plan_panel.set_error(str(exc))
            self.message.emit(f"Invalid plan: {exc}", True)
            return False
        if new == self.session.plan:
            self.plan_panel.set_plan_text(str(new))
            return True
        return self._try(self.session.edit, new, f"Plan {new}")

    def _reset_plan_text(self) -> None:
        self.plan_panel.set_plan_text(str(self.session.plan) if self.session.plan else "")

    # ------------------------------------------------------------------ session events
    def _on_network(self, info: Any) -> None:
        self.accuracy.clear_flops()
        self._full_flops = None
        if info is None:
            self.graph.set_message("No model loaded")
            return
        self.graph.set_network(info)
        self.plan_panel.set_layout(info.layout)

    def _on_models(self) -> None:
        slots = self.session.slots
        for slot in SLOTS:
            state = slots.get(slot)
            if state is None:
                if slot in self._payload_keys:
                    del self._payload_keys[slot]
                    self.accuracy.clear_model(slot)
                    self.cards[slot].clear()
                continue
            if self._payload_keys.get(slot) == state.key:
                continue
            self._payload_keys[slot] = state.key
            self._show_model_card(slot, state)
            data = state.data
            self.accuracy.set_model(ModelPayload(slot, state.key, state.model, *(
                (data.test_x, data.test_y, data.train_x) if data is not None else ())))
        first = next(iter(slots.values()), None)
        self._full_params = int(first.model.plan_parameters(None)) if first is not None else 0
        self.accuracy_panel.set_running_statistics(
            any(state.model.uses_running_statistics() for state in slots.values()) if slots else True)
        self.accuracy_panel.update_gap()
        if self.session.plan is not None:
            self._show_stats(self.session.plan)
            self.request_accuracy()

    def _show_model_card(self, slot: str, state: Any) -> None:
        info = state.checkpoint.info
        bits = [state.path.name]
        if info.method:
            bits.append(info.method.upper())
        if info.epoch is not None:
            bits.append(f"{info.epoch} epochs")
        card = self.cards[slot]
        card.set_model(" · ".join(bits), f"{state.path}\n{state.model.config.arch} on {info.dataset or '?'}")
        if state.data is None:
            card.set_unavailable(state.data_error or "no test data")

    def _on_plan(self, plan: SubnetPlan | None) -> None:
        if plan is None:
            return
        if self.graph.plan is None or self.graph.plan.layout != plan.layout:
            if self.session.info is None:
                return
            self.graph.set_network(self.session.info, plan)
        else:
            self.graph.set_plan(plan)
        self.plan_panel.set_plan_text(str(plan))
        self._show_stats(plan)
        self.request_accuracy()

    def _show_stats(self, plan: SubnetPlan) -> None:
        first = next(iter(self.session.slots.values()), None)
        params = int(first.model.plan_parameters(plan)) if first is not None else 0
        self.plan_panel.set_stats(len(plan.blocks), plan.layout.num_blocks, params, self._full_params,
                                  plan.num_branches, plan.paths_by_length())

    def _on_bn(self, mode: str) -> None:
        self.accuracy_panel.set_bn_mode(mode)
        self.request_accuracy()

    # ------------------------------------------------------------------ accuracy
    def request_accuracy(self) -> None:
        plan = self.session.plan
        if plan is None or not self.session.slots:
            return
        for slot, state in self.session.iter_slots():
            if state.data is not None:
                self.cards[slot].set_pending()
        self.plan_panel.set_flops(self.accuracy.cached_flops(plan), self._full_flops)
        self.accuracy.request(plan, self.session.bn_mode)

    def _on_accuracy(self, res: AccuracyResult) -> None:
        if res.request_id != self.accuracy.current_request:
            return
        state = self.session.slot(res.slot)
        if (state is None or state.key != res.model_key or res.plan != self.session.plan
                or res.bn != self.session.bn_mode):
            return
        card = self.cards[res.slot]
        if card.final and not res.final and card.accuracy is not None:
            return
        card.set_accuracy(res.accuracy, res.final, res.detail, is_main=res.plan.is_full)
        self.accuracy_panel.update_gap()
        self.accuracyShown.emit(res.slot, res.final)

    def _on_model_ready(self, slot: str, key: str, main_acc: Any) -> None:
        state = self.session.slot(slot)
        if state is None or state.key != key:
            return
        self.session.set_main_accuracy(slot, key, main_acc)
        self.cards[slot].set_main_accuracy(main_acc)

    def _on_flops(self, plan: SubnetPlan, flops: int) -> None:
        current = self.session.plan
        if current is None or plan.layout != current.layout:
            return
        if plan.is_full:
            self._full_flops = flops
        shown = flops if plan == current else self.accuracy.cached_flops(current)
        if shown is not None:
            self.plan_panel.set_flops(shown, self._full_flops)

    def accuracy_ready(self) -> bool:
        """True when every slot with data shows the final accuracy of the current plan."""
        return all(self.cards[s].final and self.cards[s].accuracy is not None
                   for s, st in self.session.iter_slots() if st.data is not None)

    def set_caption(self, html: str) -> None:
        self.caption.setText(html)
        self.caption.show()

    def slot_title(self, slot: str) -> str:
        return SLOT_TITLES[slot]
