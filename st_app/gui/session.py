"""The session: everything the app is showing, as one Qt-light model the views subscribe to.

After napari's ``ViewerModel``: one :class:`Session` owns the loaded models (the CT and ST
*slots*), the current :class:`~st_app.core.plan.SubnetPlan` and its undo stack, the BN and
colour modes, the analyses' reports, the last trained runs, the training curves and the
presentation flag. It emits signals when they change and raises :class:`SessionError`
instead of opening dialogs; the window turns errors into one message. Nothing here creates a
widget, so tests drive a session without a window. A session file (``.stlab``) is this
object serialised (:mod:`st_app.gui.session_file`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from st_app.core.plan import SubnetPlan

from .explore.network_info import NetworkInfo
from .series import SeriesStore
from .session_file import CheckpointRef, SessionData, file_sha256, weights_file

__all__ = ["BN_MODES", "COLOUR_MODES", "SLOTS", "PlanEdit", "Session", "SessionError", "Slot"]

SLOTS = ("ct", "st")
SLOT_TITLES = {"ct": "CT", "st": "ST"}
BN_MODES = ("main", "recalibrate")
COLOUR_MODES = ("stage", "ct", "st")
PRESETS = ("full", "smallest", "random")


class SessionError(ValueError):
    """An operation the session refuses; the message is one sentence for the user."""


@dataclass
class Slot:
    """A model loaded into the CT or ST slot, and the test data it is evaluated on."""

    checkpoint: Any  # st_app.core.checkpoint.Checkpoint
    key: str  # unique per load: results are cached and matched by it
    data: Any | None  # ImageData, None when the data set is unavailable
    data_error: str | None = None
    sha256: str = ""  # of the weights file, as loaded
    main_accuracy: float | None = None

    @property
    def model(self) -> Any:
        return self.checkpoint.model

    @property
    def path(self) -> Path:
        return Path(self.checkpoint.path)

    @property
    def method(self) -> str:
        return self.checkpoint.info.method


class PlanEdit(QUndoCommand):
    """One undoable edit: whole (immutable) plans before and after, so undo can never fail."""

    def __init__(self, session: Session, before: SubnetPlan, after: SubnetPlan, text: str) -> None:
        super().__init__(text)
        self.session, self.before, self.after = session, before, after

    def redo(self) -> None:
        self.session._show(self.after)

    def undo(self) -> None:
        self.session._show(self.before)


@dataclass
class _Importance:
    pair: str  # which loads the report was measured on
    report: dict[str, Any] = field(default_factory=dict)


class Session(QObject):
    """The app's state; views subscribe to its signals and call its methods."""

    modelsChanged = Signal()  # a slot was loaded or cleared
    networkChanged = Signal(object)  # NetworkInfo | None: a different network layout (graph rebuilt)
    planChanged = Signal(object)  # SubnetPlan | None
    edited = Signal(str)  # description of an edit just made (not undo/redo)
    bnModeChanged = Signal(str)
    colourModeChanged = Signal(str)
    reportChanged = Signal(str)  # analysis name
    runsChanged = Signal()  # last trained runs
    curvesReplaced = Signal()  # the training curves were replaced wholesale (a session opened)
    presentationChanged = Signal(bool)
    deviceChanged = Signal(str)  # the app-wide compute device ("auto", "cpu", "cuda:0", "mps")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.undo_stack = QUndoStack(self)
        self.curves = SeriesStore()
        self._slots: dict[str, Slot] = {}
        self._info: NetworkInfo | None = None
        self._plan: SubnetPlan | None = None
        self._bn = "main"
        self._colour = "stage"
        self._presentation = False
        self._device = "auto"
        self._reports: dict[str, dict[str, Any]] = {}
        self._last_runs: dict[str, str] = {}
        self._importance: _Importance | None = None
        self._datasets: dict[tuple, Any] = {}
        self._loads = 0
        self.rng = random.Random()
        #: asked before a data location recorded in a checkpoint is used: (checkpoint path, recorded
        #: location) -> yes/no. The window asks the user; without it recorded locations are never used.
        self.confirm_data_path: Callable[[Path, str], bool] | None = None
        self._confirmed_paths: set[str] = set()

    # ================================================================== models
    @property
    def slots(self) -> Mapping[str, Slot]:
        return dict(self._slots)

    def slot(self, name: str) -> Slot | None:
        return self._slots.get(name)

    @property
    def info(self) -> NetworkInfo | None:
        return self._info

    @property
    def pair_key(self) -> str:
        """Identifies the loaded CT/ST pair (changes with every load)."""
        return ":".join(self._slots[s].key if s in self._slots else "-" for s in SLOTS)

    def load(self, path: str | Path, slot: str | None = None, *, avoid: str | None = None) -> str:
        """Load a run folder or weights file into ``slot`` (None: by its training method).

        Returns the slot used. Raises :class:`SessionError` naming the problem; the session
        is unchanged then.
        """
        from st_app.core.checkpoint import load_checkpoint

        path = Path(path).expanduser()
        try:
            ck = load_checkpoint(path)
        except Exception as exc:  # noqa: BLE001 - CheckpointError and anything unexpected alike
            raise SessionError(str(exc) or type(exc).__name__) from exc
        if slot is None:
            slot = "ct" if ck.info.is_common_training else "st"
            if slot == avoid:
                slot = "st" if slot == "ct" else "ct"
        self.install(slot, ck)
        return slot

    def install(self, slot: str, checkpoint: Any) -> None:
        """Put a loaded checkpoint into ``slot`` (its test data is loaded, or its absence noted)."""
        if slot not in SLOTS:
            raise SessionError(f"unknown slot {slot!r}; use 'ct' or 'st'")
        try:
            info = NetworkInfo.from_model(checkpoint.model)
        except Exception as exc:  # noqa: BLE001
            raise SessionError(f"{checkpoint.path}: not a network ST Lab can draw ({exc})") from exc
        data, data_error = self._dataset_for(checkpoint)
        try:
            digest = file_sha256(weights_file(checkpoint.path))
        except OSError:
            digest = ""
        other = "st" if slot == "ct" else "ct"
        if other in self._slots and NetworkInfo.from_model(self._slots[other].model).layout != info.layout:
            self._slots.pop(other)
        self._loads += 1
        self._slots[slot] = Slot(checkpoint, f"{slot}#{self._loads}", data, data_error, digest)
        self._forget_stale_importance()
        if self._info is None or info != self._info:
            self._info = info
            self._plan = None
            self.undo_stack.clear()
            self.networkChanged.emit(info)
            self.modelsChanged.emit()
            self._show(info.layout.full_plan())
        else:
            self.modelsChanged.emit()

    def clear_slot(self, slot: str) -> None:
        if self._slots.pop(slot, None) is not None:
            self._forget_stale_importance()
            self.modelsChanged.emit()

    def set_main_accuracy(self, slot: str, key: str, accuracy: float | None) -> None:
        state = self._slots.get(slot)
        if state is not None and state.key == key:
            state.main_accuracy = accuracy

    def _dataset_for(self, ck: Any) -> tuple[Any | None, str | None]:
        """The checkpoint's test data, or why there is none.

        A data location the checkpoint records (an ``imagefolder:`` / ``imagenet:`` folder, a
        ``data_dir``) is used only once :attr:`confirm_data_path` said yes (asked once per
        location and session): a checkpoint from elsewhere must not make the app read a path it chose.
        """
        from st_app.core.meta_schema import MetaError, recorded_dataset

        info = ck.info
        try:
            recorded_use = recorded_dataset(ck.meta, None, None, allow_recorded_paths=True)
        except MetaError:
            return None, "no data set is recorded in this checkpoint"
        chosen: tuple[str, str | None] | None
        try:
            chosen = recorded_dataset(ck.meta, None, None, allow_recorded_paths=False)
        except MetaError:
            chosen = None  # an image folder: only its recorded path names the data
        if recorded_use != chosen:  # the checkpoint names a location: ask first (once per location)
            recorded = recorded_use[1] or recorded_use[0].partition(":")[2]
            if recorded in self._confirmed_paths or (
                    self.confirm_data_path is not None and self.confirm_data_path(Path(ck.path), recorded)):
                self._confirmed_paths.add(recorded)
                chosen = recorded_use
            elif chosen is None:
                return None, (f"the checkpoint records the image folder {recorded!r}; recorded paths are used only "
                              "when you confirm them (open the checkpoint again to be asked)")
        assert chosen is not None
        name, data_dir = chosen
        key = (name, data_dir, info.image_size)
        data = self._datasets.get(key)
        if data is None:
            try:
                from st_app.core.data import load_dataset

                data = load_dataset(name, data_dir, image_size=info.image_size)
            except Exception as exc:  # noqa: BLE001
                return None, f"data set {name!r} is not available here: {exc}"
            self._datasets[key] = data
        c = ck.model.config
        if (data.num_classes, data.in_channels) != (c.num_classes, c.in_channels):
            return None, (f"data set {name!r} has {data.in_channels} channels / {data.num_classes} "
                          f"classes, the model {c.in_channels} / {c.num_classes}")
        return data, None

    # ==================================================================== plan
    @property
    def plan(self) -> SubnetPlan | None:
        return self._plan

    def _show(self, plan: SubnetPlan) -> None:
        """Make ``plan`` current (undo commands and loads); views follow ``planChanged``."""
        self._plan = plan
        self.planChanged.emit(plan)

    def _require_plan(self) -> SubnetPlan:
        if self._plan is None:
            raise SessionError("Load a model first.")
        return self._plan

    def edit(self, new: SubnetPlan, description: str) -> bool:
        """Apply ``new`` as one undoable edit; False (nothing pushed) when it is the current plan."""
        current = self._require_plan()
        if new == current:
            return False
        self.undo_stack.push(PlanEdit(self, current, new, description))
        self.edited.emit(f"{description}: plan {new}")
        return True

    def apply(self, make: Callable[[SubnetPlan], SubnetPlan], description: str) -> bool:
        """Edit through a plan operation; its ``ValueError`` becomes a :class:`SessionError`."""
        current = self._require_plan()
        try:
            new = make(current)
        except ValueError as exc:
            raise SessionError(f"Not possible: {exc}") from exc
        return self.edit(new, description)

    def _unit(self) -> str:
        """The loaded network's plan unit as edits name it (``block``, ``layer``, ``half``)."""
        return self._require_plan().layout.unit_name

    def toggle(self, block: int) -> bool:
        on = block in self._require_plan().blocks
        return self.apply(lambda p: p.toggle(block), f"Turn {self._unit()} {block} {'off' if on else 'on'}")

    def block_action(self, action: str, block: int) -> bool:
        """``toggle``, ``delete``, ``restore``, ``move_left`` or ``move_right`` on one unit."""
        if action == "toggle":
            return self.toggle(block)
        unit = self._unit()
        if action == "delete":
            return self.apply(lambda p: p.delete(block), f"Delete {unit} {block}")
        if action == "restore":
            return self.apply(lambda p: p.restore(block), f"Restore {unit} {block}")
        if action in ("move_left", "move_right"):
            step = -1 if action == "move_left" else 1
            return self.apply(lambda p: p.move(block, step), f"Move {unit} {block} {'left' if step < 0 else 'right'}")
        raise SessionError(f"unknown block action {action!r}")

    def move_to(self, block: int, index: int) -> bool:
        return self.apply(lambda p: p.move_to(block, index), f"Move {self._unit()} {block} to position {index + 1}")

    def preset(self, name: str) -> bool:
        layout = self._require_plan().layout
        if name == "full":
            return self.edit(layout.full_plan(), "Full network")
        if name == "smallest":
            return self.edit(SubnetPlan.from_depths(layout, [1] * len(layout.stages)), "Smallest sub-net")
        if name == "random":
            plan = self._plan
            for _ in range(20):
                plan = SubnetPlan.sample(layout, self.rng)
                if plan != self._plan:
                    break
            assert plan is not None
            return self.edit(plan, "Random ordered sub-net")
        raise SessionError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")

    def parse_plan(self, text: str) -> SubnetPlan:
        """Read plan text for the loaded network; a :class:`SessionError` says what is wrong."""
        current = self._require_plan()
        try:
            return SubnetPlan.parse(text, current.layout)
        except ValueError as exc:
            raise SessionError(str(exc)) from exc

    def set_plan_text(self, text: str) -> bool:
        new = self.parse_plan(text)
        return self.edit(new, f"Plan {new}")

    def history(self) -> list[tuple[str, SubnetPlan, SubnetPlan]]:
        """The undo stack as (description, before, after), oldest first."""
        out = []
        for i in range(self.undo_stack.count()):
            cmd = self.undo_stack.command(i)
            if isinstance(cmd, PlanEdit):
                out.append((cmd.text(), cmd.before, cmd.after))
        return out

    def restore_history(self, edits: list[tuple[str, SubnetPlan, SubnetPlan]], index: int,
                        fallback: SubnetPlan | None = None) -> None:
        """Rebuild the undo stack from saved edits and go to ``index`` (commands applied)."""
        self.undo_stack.clear()
        if edits:
            self._show(edits[0][1])
        elif fallback is not None:
            self._show(fallback)
        for text, before, after in edits:
            self.undo_stack.push(PlanEdit(self, before, after, text))
        self.undo_stack.setIndex(max(0, min(index, len(edits))))

    # =============================================================== modes
    @property
    def bn_mode(self) -> str:
        return self._bn

    def set_bn_mode(self, mode: str) -> None:
        if mode not in BN_MODES:
            raise SessionError(f"unknown BN setting {mode!r}; choose 'main' or 'recalibrate'")
        if mode != self._bn:
            self._bn = mode
            self.bnModeChanged.emit(mode)

    @property
    def device(self) -> str:
        """Where training, the accuracy worker and the analyses compute (one choice for the app)."""
        return self._device

    def set_device(self, device: str) -> None:
        """Choose the device; an unknown name is refused (availability is checked where it is used)."""
        from st_app.core.train import DEVICE_NAME

        name = (device or "auto").strip().lower()
        if not DEVICE_NAME.fullmatch(name):
            raise SessionError(f"unknown device {device!r}; use auto, cpu, cuda:N or mps")
        if name != self._device:
            self._device = name
            self.deviceChanged.emit(name)

    @property
    def colour_mode(self) -> str:
        return self._colour

    def set_colour_mode(self, mode: str) -> None:
        if mode not in COLOUR_MODES:
            raise SessionError(f"unknown colour mode {mode!r}; choose from {', '.join(COLOUR_MODES)}")
        if mode != self._colour:
            self._colour = mode
            self.colourModeChanged.emit(mode)

    @property
    def presentation(self) -> bool:
        return self._presentation

    def set_presentation(self, on: bool) -> None:
        if bool(on) != self._presentation:
            self._presentation = bool(on)
            self.presentationChanged.emit(self._presentation)

    # ============================================================ reports, runs
    @property
    def reports(self) -> dict[str, dict[str, Any]]:
        return dict(self._reports)

    def set_report(self, name: str, report: dict[str, Any], pair: str | None = None) -> None:
        """Keep an analysis' complete report; an importance report also colours the graph."""
        self._reports[name] = report
        if "importance" in report:
            self._importance = _Importance(pair if pair is not None else self.pair_key, report)
        self.reportChanged.emit(name)

    def importance_report(self) -> dict[str, Any] | None:
        """The latest block-importance report for the loaded pair and BN setting, or None."""
        imp = self._importance
        if imp is None or imp.pair != self.pair_key or imp.report.get("bn") != self._bn:
            return None
        return imp.report

    def _forget_stale_importance(self) -> None:
        if self._importance is not None and self._importance.pair != self.pair_key:
            self._importance = None

    @property
    def last_runs(self) -> dict[str, str]:
        return dict(self._last_runs)

    def set_last_runs(self, runs: Mapping[str, Any]) -> None:
        self._last_runs = {str(k): str(v) for k, v in runs.items()}
        self.runsChanged.emit()

    def replace_curves(self, store: SeriesStore) -> None:
        self.curves.replace_with(store)
        self.curvesReplaced.emit()

    def iter_slots(self) -> Iterator[tuple[str, Slot]]:
        for s in SLOTS:
            if s in self._slots:
                yield s, self._slots[s]

    # ============================================================ session files
    def to_data(self) -> SessionData:
        """This session as :class:`~st_app.gui.session_file.SessionData` (for ``write_session``)."""
        refs = {s: CheckpointRef(s, str(state.path), state.sha256 or file_sha256(weights_file(state.path)),
                                 state.path) for s, state in self.iter_slots()}
        return SessionData(
            checkpoints=refs, plan=str(self._plan) if self._plan is not None else None,
            edits=[(t, str(b), str(a)) for t, b, a in self.history()], history_index=self.undo_stack.index(),
            bn=self._bn, colour=self._colour, presentation=self._presentation, reports=dict(self._reports),
            curves=self.curves.to_dict() if self.curves.series else None)

    def open_data(self, data: SessionData) -> list[CheckpointRef]:
        """Load what a session file describes; returns the checkpoints that could not be loaded
        (missing, changed, refused path: ``ref.problem`` says which). Nothing else runs."""
        problems = []
        for slot, ref in data.checkpoints.items():
            if not ref.verify():
                problems.append(ref)
                continue
            try:
                self.load(ref.path or "", slot)  # verify() checked the path
            except SessionError as exc:
                ref.problem = str(exc)
                problems.append(ref)
        self.apply_view_state(data)
        return problems

    def apply_view_state(self, data: SessionData) -> list[str]:
        """Plan, history, modes, reports and curves of ``data``; returns what had to be repaired."""
        notes: list[str] = []
        self.set_bn_mode(data.bn)
        self.set_presentation(data.presentation)
        if data.curves is not None:
            try:
                self.replace_curves(SeriesStore.from_dict(data.curves))
            except ValueError as exc:
                notes.append(f"the training curves were left out ({exc})")
        for name, report in data.reports.items():
            self._reports[name] = report
            self.reportChanged.emit(name)
        layout = self._info.layout if self._info is not None else None
        if layout is not None:
            try:
                edits = [(t, SubnetPlan.parse(b, layout), SubnetPlan.parse(a, layout)) for t, b, a in data.edits]
                plan = SubnetPlan.parse(data.plan, layout) if data.plan else layout.full_plan()
            except ValueError as exc:
                notes.append(f"its plan does not fit the loaded network ({exc}); showing the full network")
                edits, plan = [], layout.full_plan()
                self.restore_history([], 0, plan)
            else:
                self.restore_history(edits, data.history_index, plan)
                if edits and self._plan != plan:
                    notes.append("its history did not lead to its plan; the plan was applied as one more edit")
                    self.edit(plan, f"Plan {plan}")
        self.set_colour_mode(data.colour)
        return notes
