"""Everything the window does with files: checkpoints, examples, sessions, exports, recent files, drops.

Each operation shows at most one dialog on failure, naming the path and the cause, and
changes nothing that is already saved or loaded (the session raises before it changes; files
are written atomically through :mod:`st_app.core.safeio` and run folders as one transaction).
Nothing is overwritten without asking: the save dialogs leave that question to us, so it is
asked once, the same way, wherever the path came from; saving into an existing run folder
offers to replace the whole run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
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

__all__ = ["CHECKPOINT_SUFFIXES", "DEFAULT_CHECKPOINTS", "Example", "FileOps", "examples", "is_checkpoint_path"]

DEFAULT_CHECKPOINTS = {
    "ct": resource_path("checkpoints", "digits-resnet20-ct"),
    "st": resource_path("checkpoints", "digits-resnet20-st"),
}


@dataclass(frozen=True)
class Example:
    """A bundled CT/ST pair (``resources/checkpoints/<name>-ct`` and ``-st``)."""

    name: str  # e.g. digits-vit-micro
    ct: Path
    st: Path
    title: str  # e.g. "vit-micro on digits"
    description: str


def examples() -> list[Example]:
    """Every bundled CT/ST pair, the resnet20 demo first (File -> Open example)."""
    root = resource_path("checkpoints")
    found = []
    for ct in sorted(root.glob("*-ct")):
        st = ct.with_name(ct.name[:-3] + "-st")
        if not ((ct / "model.safetensors").is_file() and (st / "model.safetensors").is_file()):
            continue
        try:
            meta = json.loads((ct / "meta.json").read_text(encoding="utf-8"))
            arch, dataset = str(meta["model"]["arch"]), str(meta["config"]["dataset"])
            epochs = int(meta.get("epoch", 0))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        from st_app.core.models import describe_arch

        try:
            what = describe_arch(arch)
        except ValueError:
            what = arch
        found.append(Example(ct.name[:-3], ct, st, f"{arch} on {dataset}",
                             f"{what}; CT and ST, {epochs} epochs on {dataset} (bundled, offline)"))
    found.sort(key=lambda e: (e.ct != DEFAULT_CHECKPOINTS["ct"], e.name))
    return found
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
        self.session.confirm_data_path = self.confirm_data_path

    def confirm_data_path(self, checkpoint: Path, recorded: str) -> bool:
        """Ask before a data location recorded in a checkpoint is read (never silently)."""
        answer = QMessageBox.question(
            self.win, "Use the recorded data location?",
            f"{checkpoint} records where its data set lives:\n\n{recorded}\n\nRead its test images from there? "
            "A recorded location is never used without asking: a checkpoint from elsewhere could name any folder. "
            "With No, the checkpoint opens without test data (or with the data set's default location).",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

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

    def open_example(self, name: str) -> bool:
        """Load a bundled CT/ST pair (e.g. ``digits-vit-micro``: does a transformer loaf?) into both slots."""
        example = next((e for e in examples() if e.name == name), None)
        if example is None:
            self.win.error("Example missing", f"No bundled example {name!r} in {resource_path('checkpoints')}")
            return False
        ok = self.open_checkpoint(example.ct, "ct", remember=False)
        ok = ok and self.open_checkpoint(example.st, "st", remember=False)
        if ok:
            self.win.show_status(f"Opened the example {example.title}: CT vs ST. Click a unit to drop it.")
        return ok

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
        """Write each loaded slot as a run folder ``<folder>/<run name>`` (one transaction each).

        A run folder that already holds a run is replaced only when the user says so, and then
        as a whole (its optimizer state, metrics... go too, so nothing of the old run is mixed
        in). A failure (the folder is locked by a writer, a full disk, not a folder) is one
        dialog naming the path and the cause; runs written before it stay, nothing else changes.
        """
        from st_app.core.checkpoint import checkpoint_files
        from st_app.core.runfolder import RUN_FILES, RunFolder, RunFolderError, has_run
        from st_app.core.safeio import OutputError, check_output_folder

        folder = Path(folder)
        written: list[Path] = []
        slots = self.session.slots
        names = {s: st.path.stem if st.path.is_file() else st.path.name for s, st in slots.items()}
        if len(set(names.values())) < len(names):
            names = {s: f"{n}-{s}" for s, n in names.items()}
        plan = self.session.plan
        out = folder
        try:
            check_output_folder(folder, what="folder to save the models into")
            for slot, state in slots.items():
                out = folder / names[slot]
                if out.exists() and not out.is_dir():
                    raise OutputError(f"{out} exists and is not a folder; choose another folder to save into")
                replace = out.is_dir() and (has_run(out) or (out / "model.safetensors").exists())
                if replace and not self._confirm_replace_run(out, slot, state):
                    continue
                meta = dict(state.checkpoint.meta)
                meta["st_lab"] = {"slot": slot, "plan": str(plan) if plan else None,
                                  "saved_from": str(state.path), "version": __version__}
                epoch = meta.get("epoch")
                with RunFolder(out, writer=True) as run:
                    run.commit(checkpoint_files(state.model, meta), epoch=epoch if isinstance(epoch, int) else None,
                               drop=RUN_FILES if replace else ())
                written.append(out)
        except (RunFolderError, OutputError, OSError, ValueError) as exc:
            self.win.error("Cannot save the models", _with_path(out, exc)
                           + ("\n\nSaved before the failure: " + ", ".join(map(str, written)) if written else ""))
            return written
        if written:
            self.settings.setValue("files/lastDir", str(folder))
            self.win.show_status("Saved " + ", ".join(str(p) for p in written))
        return written

    def _confirm_replace_run(self, out: Path, slot: str, state: Any) -> bool:
        own = out.resolve() in (state.path.resolve(), state.path.resolve().parent)
        answer = QMessageBox.question(
            self.win, "Replace the run?",
            f"{out} already holds a run{' (the one this model was loaded from)' if own else ''}.\n\n"
            f"Replace the whole run with the {SLOT_TITLES[slot]} model? Its other files (optimizer state, "
            "metrics, ...) are removed; nothing is mixed.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            self.win.show_status(f"Not saved: {out} was kept as it is.")
            return False
        return True

    # ------------------------------------------------------------------ safe outputs
    def save_path(self, title: str, suggestion: str | Path, filters: str) -> tuple[str, str]:
        """A save dialog that leaves the overwrite question to :meth:`confirm_output` (asked once, always)."""
        path, flt = QFileDialog.getSaveFileName(self.win, title, str(suggestion), filters,
                                                options=QFileDialog.Option.DontConfirmOverwrite)
        return path, flt

    def confirm_output(self, path: Path, what: str) -> bool | None:
        """Whether writing ``path`` must overwrite (the user agreed), or None: not to be written.

        A run's own files and anything that is not a regular file are refused with one dialog;
        an existing file is replaced only after the user said so.
        """
        from st_app.core.safeio import OutputError, check_output_file

        try:
            check_output_file(path, force=True, what=what)
        except OutputError as exc:
            self.win.error(f"Cannot write the {what}", str(exc))
            return None
        if not path.exists():
            return False
        answer = QMessageBox.question(self.win, "Replace the file?", f"{path} already exists.\n\nReplace it?",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            self.win.show_status(f"Not saved: {path} was kept as it is.")
            return None
        return True

    # ------------------------------------------------------------------ sessions
    def save_session_dialog(self) -> bool:
        path, _ = self.save_path("Save session", Path(self.last_dir()) / f"lesson{SUFFIX}", f"ST Lab session (*{SUFFIX})")
        return bool(path) and self.save_session(path)

    def save_bundle_dialog(self) -> bool:
        path, _ = self.save_path("Save session as bundle", Path(self.last_dir()) / "lesson.zip", "Session bundle (*.zip)")
        return bool(path) and self.save_session(path, bundle=True)

    def save_session(self, path: str | Path, *, bundle: bool = False) -> bool:
        path = Path(path)
        if not bundle and path.suffix.lower() != SUFFIX:
            path = path.with_suffix(SUFFIX)
        if bundle and path.suffix.lower() != ".zip":
            path = path.with_suffix(".zip")
        overwrite = self.confirm_output(path, "session bundle" if bundle else "session")
        if overwrite is None:
            return False
        try:
            data = self.session.to_data()
            if bundle:
                write_bundle(path, data, overwrite=overwrite)
            else:
                write_session(path, data, overwrite=overwrite)
        except (OSError, SessionFileError, ValueError) as exc:
            self.win.error("Cannot save the session", _with_path(path, exc))
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
            suggestion = Path(self.last_dir()) / f"{state.model.config.arch}-{slot}-{plan_slug(plan)}.onnx"
            path, _ = self.save_path("Export current sub-net to ONNX", suggestion, "ONNX model (*.onnx)")
            if not path:
                return None
        path = Path(path)
        if path.suffix.lower() != ".onnx":
            path = path.with_suffix(".onnx")
        overwrite = self.confirm_output(path, "ONNX file")
        if overwrite is None:
            return None
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            from st_app.core.export import export_onnx, verify_onnx

            export_onnx(state.model, plan, path, overwrite=overwrite)
            images = state.data.test_x[:64] if state.data is not None else None
            report = verify_onnx(state.model, plan, path, images=images)
        except Exception as exc:  # noqa: BLE001 - ExportError, OutputError and anything the exporters raise
            QApplication.restoreOverrideCursor()
            self.win.error("ONNX export failed", _with_path(path, exc))
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
        path, flt = self.save_path(title, Path(self.last_dir()) / name, filters)
        if not path:
            return
        suffixes = re.findall(r"\*(\.\w+)", filters)
        if Path(path).suffix.lower() not in suffixes:
            path += ".svg" if "svg" in flt.lower() else suffixes[0]
        overwrite = self.confirm_output(Path(path), "file")
        if overwrite is None:
            return
        from st_app.core.safeio import atomic_output

        try:  # written next to its destination and renamed: a failure never leaves half a file
            with atomic_output(path, force=overwrite, what="file", suffix=Path(path).suffix) as tmp:
                write(panel, str(tmp))
        except Exception as exc:  # noqa: BLE001
            self.win.error(f"Cannot {title.lower()}", _with_path(Path(path), exc))
            return
        self.win.show_status(f"Saved {path}")

    def export_plot_dialog(self) -> None:
        self._export("Export training plot", "training.png", "PNG image (*.png);;SVG drawing (*.svg)",
                     lambda panel, p: panel.export_plots(p))

    def export_csv_dialog(self) -> None:
        self._export("Export training data", "training.csv", "CSV (*.csv)", lambda panel, p: panel.export_csv(p))


def _with_path(path: Path, exc: BaseException) -> str:
    """One line naming the path and the cause (the path is added when the message lacks it)."""
    text = str(exc) or type(exc).__name__
    return text if str(path) in text else f"{path}: {text}"
