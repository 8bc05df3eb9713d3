"""Everything the window does with files: checkpoints, sessions, exports, recent files, drag-and-drop.

Each operation shows at most one dialog on failure and changes nothing that is already saved
or loaded (the session raises before it changes; files are written atomically).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from st_app import __version__
from st_app.core.plan import SubnetPlan
from st_app.core.resources import resource_path

from .session import SLOTS, SessionError
from .session_file import SUFFIX, SessionFileError, read_session, write_bundle, write_session
from .style import SLOT_TITLES

__all__ = ["CHECKPOINT_SUFFIXES", "DEFAULT_CHECKPOINTS", "FileOps", "is_checkpoint_path"]

DEFAULT_CHECKPOINTS = {
    "ct": resource_path("checkpoints", "digits-resnet20-ct"),
    "st": resource_path("checkpoints", "digits-resnet20-st"),
}
MAX_RECENT = 8
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt", ".json")
SESSION_FILTER = f"ST Lab sessions (*{SUFFIX} *.zip);;All files (*)"


def is_checkpoint_path(path: Path) -> bool:
    if path.is_dir():
        return (path / "model.safetensors").exists()
    return path.suffix.lower() in CHECKPOINT_SUFFIXES


def is_session_path(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (SUFFIX, ".zip")


def plan_slug(plan: SubnetPlan) -> str:
    if plan.is_full:
        return "full"
    return "_".join("-".join(str(b) for b in stage) or "none" for stage in plan.stages)[:80]


class FileOps(QObject):
    """File operations of one main window (``win``: its session, settings, status and dialogs)."""

    def __init__(self, win: Any) -> None:
        super().__init__(win)
        self.win = win
        self.session = win.session
        self.settings = win.settings

    # ------------------------------------------------------------------ recent
    def recent_files(self) -> list[str]:
        value = self.settings.value("files/recent", [])
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or []) if v]

    def add_recent(self, path: Path) -> None:
        p = str(Path(path).expanduser().resolve())
        items = [x for x in self.recent_files() if x != p]
        items.insert(0, p)
        self.settings.setValue("files/recent", items[:MAX_RECENT])
        self.settings.setValue("files/lastDir", str(Path(p).parent))

    def last_dir(self) -> str:
        return str(self.settings.value("files/lastDir", str(Path.home())))

    def fill_recent_menu(self) -> None:
        menu = self.win.recent_menu
        menu.clear()
        items = self.recent_files()
        if not items:
            menu.addAction("(nothing opened yet)").setEnabled(False)
            return
        for p in items:
            act = menu.addAction(p)
            act.setToolTip(f"Open {p}")
            act.triggered.connect(lambda _=False, path=p: self.open_any(path))
        menu.addSeparator()
        clear = menu.addAction("Clear list")
        clear.setToolTip("Forget the recently opened files")
        clear.triggered.connect(lambda: self.settings.setValue("files/recent", []))

    def open_any(self, path: str | Path) -> bool:
        """A session file opens as a session, anything else as a checkpoint."""
        p = Path(path)
        return self.open_session(p) if is_session_path(p) else self.open_checkpoint(p)

    # ------------------------------------------------------------------ checkpoints
    def open_dialog(self, slot: str, folder: bool = True) -> bool:
        if folder:
            path = QFileDialog.getExistingDirectory(self.win, f"Open run folder into the {SLOT_TITLES[slot]} slot",
                                                    self.last_dir())
        else:
            path, _ = QFileDialog.getOpenFileName(self.win, f"Open weights into the {SLOT_TITLES[slot]} slot",
                                                  self.last_dir(), "Checkpoints (*.safetensors *.pt *.pth *.json);;"
                                                  "All files (*)")
        return bool(path) and self.open_checkpoint(path, slot)

    def open_checkpoint(self, path: str | Path, slot: str | None = None, *, remember: bool = True,
                        avoid: str | None = None) -> bool:
        """Load into ``slot`` (None: by training method); a failure is one dialog, nothing changes."""
        path = Path(path).expanduser()
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            used = self.session.load(path, slot, avoid=avoid)
        except SessionError as exc:
            QApplication.restoreOverrideCursor()
            self.win.error("Cannot open checkpoint", str(exc))
            return False
        QApplication.restoreOverrideCursor()
        if remember:
            self.add_recent(path)
        self.win.show_status(f"Loaded {path} into the {SLOT_TITLES[used]} slot.")
        return True

    def load_defaults(self) -> None:
        missing = [str(p) for p in DEFAULT_CHECKPOINTS.values() if not (p / "model.safetensors").exists()]
        if missing:
            self.win.error("Bundled models missing", "The bundled checkpoints are not installed:\n" + "\n".join(missing))
            return
        for slot, path in DEFAULT_CHECKPOINTS.items():
            self.open_checkpoint(path, slot, remember=False)

    def load_last_runs(self) -> None:
        runs = self.session.last_runs
        for slot in SLOTS:
            if slot in runs:
                self.open_checkpoint(runs[slot], slot)

    def dropped_paths(self, event: Any) -> list[Path]:
        mime = event.mimeData()
        if mime is None or not mime.hasUrls():
            return []
        paths = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
        return [p for p in paths if is_checkpoint_path(p) or is_session_path(p)]

    def drop(self, paths: list[Path]) -> None:
        """A dropped session opens; dropped checkpoints (two at most) go to CT and ST by method."""
        sessions = [p for p in paths if is_session_path(p)]
        if sessions:
            self.open_session(sessions[0])
            return
        used: str | None = None
        for p in paths[:2]:
            before = {s: st.key for s, st in self.session.slots.items()}
            if self.open_checkpoint(p, None, avoid=used):
                changed = [s for s, st in self.session.slots.items() if before.get(s) != st.key]
                used = changed[0] if changed else used

    def save_dialog(self) -> bool:
        if not self.session.slots:
            self.win.show_status("Nothing to save: no model is loaded.", error=True)
            return False
        folder = QFileDialog.getExistingDirectory(self.win, "Save models into folder", self.last_dir())
        return bool(folder) and bool(self.save_models(folder))

    def save_models(self, folder: str | Path) -> list[Path]:
        """Write each loaded slot as a run folder ``<folder>/<run name>`` (safetensors + meta.json)."""
        from st_app.core.checkpoint import save_checkpoint

        folder = Path(folder)
        written: list[Path] = []
        slots = self.session.slots
        names = {s: st.path.stem if st.path.is_file() else st.path.name for s, st in slots.items()}
        if len(set(names.values())) < len(names):
            names = {s: f"{n}-{s}" for s, n in names.items()}
        plan = self.session.plan
        try:
            for slot, state in slots.items():
                out = folder / names[slot]
                if (out / "model.safetensors").exists() and out.resolve() != state.path.resolve():
                    answer = QMessageBox.question(self.win, "Overwrite?", f"{out} already holds a model. Overwrite it?")
                    if answer != QMessageBox.StandardButton.Yes:
                        continue
                meta = dict(state.checkpoint.meta)
                meta["st_lab"] = {"slot": slot, "plan": str(plan) if plan else None,
                                  "saved_from": str(state.path), "version": __version__}
                save_checkpoint(out, state.model, meta)
                written.append(out)
        except Exception as exc:  # noqa: BLE001
            self.win.error("Cannot save", str(exc))
            return written
        if written:
            self.settings.setValue("files/lastDir", str(folder))
            self.win.show_status("Saved " + ", ".join(str(p) for p in written))
        return written

    # ------------------------------------------------------------------ sessions
    def save_session_dialog(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(self.win, "Save session", str(Path(self.last_dir()) / f"lesson{SUFFIX}"),
                                              f"ST Lab session (*{SUFFIX})")
        return bool(path) and self.save_session(path)

    def save_bundle_dialog(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(self.win, "Save session as bundle",
                                              str(Path(self.last_dir()) / "lesson.zip"), "Session bundle (*.zip)")
        return bool(path) and self.save_session(path, bundle=True)

    def save_session(self, path: str | Path, *, bundle: bool = False) -> bool:
        path = Path(path)
        if not bundle and path.suffix.lower() != SUFFIX:
            path = path.with_suffix(SUFFIX)
        if bundle and path.suffix.lower() != ".zip":
            path = path.with_suffix(".zip")
        try:
            data = self.session.to_data()
            (write_bundle if bundle else write_session)(path, data)
        except (OSError, SessionFileError, ValueError) as exc:
            self.win.error("Cannot save the session", f"{path}: {exc}")
            return False
        self.add_recent(path)
        self.win.show_status(f"Saved the session to {path}" + (" (with its checkpoints)" if bundle else ""))
        return True

    def open_session_dialog(self) -> bool:
        path, _ = QFileDialog.getOpenFileName(self.win, "Open session", self.last_dir(), SESSION_FILTER)
        return bool(path) and self.open_session(path)

    def open_session(self, path: str | Path) -> bool:
        """Open a session file; problems are one dialog, and missing checkpoints can be located."""
        path = Path(path)
        try:
            data = read_session(path)
        except SessionFileError as exc:
            self.win.error("Cannot open the session", str(exc))
            return False
        problems = self.session.open_data(data)
        notes = self.win.after_session_opened(data)
        for ref in problems:
            if not self._locate(ref):
                notes.append(f"the {ref.slot.upper()} checkpoint was not loaded: {ref.problem}")
        if problems and any(r.slot in self.session.slots for r in problems):
            notes += self.session.apply_view_state(data)  # the plan needs the network located just now
        self.add_recent(path)
        if notes:
            self.win.error("Session opened with changes", f"{path.name}: " + "; ".join(notes) + ".", title_status=True)
        else:
            self.win.show_status(f"Opened the session {path.name}.")
        return True

    def _locate(self, ref: Any) -> bool:
        """Offer to find a missing or changed checkpoint; it must match the saved sha256."""
        answer = QMessageBox.question(
            self.win, "Locate checkpoint?",
            f"The session's {ref.slot.upper()} checkpoint was not loaded: {ref.problem}.\n\nLocate the run folder?")
        if answer != QMessageBox.StandardButton.Yes:
            return False
        folder = QFileDialog.getExistingDirectory(self.win, f"Locate the {ref.slot.upper()} run folder", self.last_dir())
        if not folder:
            return False
        ref.path = Path(folder)
        if not ref.verify():
            return False
        return self.open_checkpoint(ref.path, ref.slot)

    # ------------------------------------------------------------------ exports
    def export_onnx(self, slot: str, path: str | Path | None = None) -> Any | None:
        """Export the current sub-net of ``slot`` to ONNX, verify it and report the check."""
        state, plan = self.session.slot(slot), self.session.plan
        if state is None or plan is None:
            self.win.show_status(f"No model in the {SLOT_TITLES[slot]} slot to export.", error=True)
            return None
        if path is None:
            suggestion = str(Path(self.last_dir()) / f"{state.model.config.arch}-{slot}-{plan_slug(plan)}.onnx")
            path, _ = QFileDialog.getSaveFileName(self.win, "Export current sub-net to ONNX", suggestion,
                                                  "ONNX model (*.onnx)")
            if not path:
                return None
        path = Path(path)
        if path.suffix.lower() != ".onnx":
            path = path.with_suffix(".onnx")
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            from st_app.core.export import export_onnx, verify_onnx

            export_onnx(state.model, plan, path)
            images = state.data.test_x[:64] if state.data is not None else None
            report = verify_onnx(state.model, plan, path, images=images)
        except Exception as exc:  # noqa: BLE001 - ExportError and anything the exporters raise
            QApplication.restoreOverrideCursor()
            self.win.error("ONNX export failed", str(exc) or type(exc).__name__)
            return None
        QApplication.restoreOverrideCursor()
        self.settings.setValue("files/lastDir", str(path.parent))
        kib = path.stat().st_size / 1024
        self.win.show_status(f"Exported {plan} ({SLOT_TITLES[slot]}) to {path.name}: max |Δ| "
                             f"{report.max_abs_diff:.1e}, top-1 agreement {100 * report.top1_agreement:.0f} %, {report.provider}",
                             timeout=15000)
        summary = (f"Exported plan {plan} of the {SLOT_TITLES[slot]} model to {path} ({kib:.0f} KiB).\n\n"
                   f"Verified with onnxruntime on {report.n_images} images: max |Δ logits| = "
                   f"{report.max_abs_diff:.2e}, top-1 agreement {100 * report.top1_agreement:.1f} %, "
                   f"provider {report.provider}.")
        QMessageBox.information(self.win, "ONNX export verified", summary)
        return report

    def _export(self, title: str, name: str, filters: str, write: Any) -> None:
        panel = self.win.training_or_warn()
        if panel is None:
            return
        path, flt = QFileDialog.getSaveFileName(self.win, title, str(Path(self.last_dir()) / name), filters)
        if not path:
            return
        suffixes = re.findall(r"\*(\.\w+)", filters)
        if Path(path).suffix.lower() not in suffixes:
            path += ".svg" if "svg" in flt.lower() else suffixes[0]
        try:
            write(panel, path)
        except Exception as exc:  # noqa: BLE001
            self.win.error(f"Cannot {title.lower()}", str(exc))
            return
        self.win.show_status(f"Saved {path}")

    def export_plot_dialog(self) -> None:
        self._export("Export training plot", "training.png", "PNG image (*.png);;SVG drawing (*.svg)",
                     lambda panel, p: panel.export_plots(p))

    def export_csv_dialog(self) -> None:
        self._export("Export training data", "training.csv", "CSV (*.csv)", lambda panel, p: panel.export_csv(p))
