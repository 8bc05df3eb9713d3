"""Issue 8 in the app: a failed save or export is one dialog naming the path and the cause and
loses nothing; nothing is overwritten without asking; a data path recorded in a checkpoint is
read only after a yes; a damaged checkpoint is one dialog; a second writer is refused."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path
from unittest.mock import MagicMock

import pytest
from PySide6.QtWidgets import QFileDialog, QMessageBox

ROOT = Path(__file__).resolve().parents[2]
YES, NO = QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.No


class Dialogs:
    """Every message box the app opens, recorded; questions get ``answer``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answer: QMessageBox.StandardButton = NO) -> None:
        self.critical: list[tuple[str, str]] = []
        self.questions: list[str] = []
        self.info: list[str] = []
        self.answer = answer
        ok = QMessageBox.StandardButton.Ok
        monkeypatch.setattr(QMessageBox, "critical",
                            staticmethod(lambda _p, title, text, *a: self.critical.append((title, text)) or ok))
        monkeypatch.setattr(QMessageBox, "question",
                            staticmethod(lambda _p, _t, text, *a: self.questions.append(text) or self.answer))
        monkeypatch.setattr(QMessageBox, "information", staticmethod(lambda _p, _t, text, *a: self.info.append(text) or ok))


def _save_to(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[dict]:
    """The save dialog answers ``path``; returns the keyword arguments it was called with."""
    calls: list[dict] = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: calls.append(k) or (str(path), "")))
    return calls


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != ".lock"}


@pytest.fixture
def lock_holder(tmp_path):  # noqa: ANN001, ANN201
    """Another process holding a run folder's writer lock (as a running ``train`` does)."""
    procs: list[subprocess.Popen] = []

    def hold(folder: Path) -> int:
        code = ("import sys; from st_app.core.runfolder import RunFolder; r = RunFolder(sys.argv[1]); "
                "print('locked', flush=True); sys.stdin.read()")
        proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        return proc.pid

    yield hold
    for proc in procs:
        proc.communicate("", timeout=10)


# ---------------------------------------------------------------------------- ONNX export
def test_export_asks_before_replacing_and_no_keeps_the_file(qtbot, make_window, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    win = make_window()
    out = tmp_path / "subnet.onnx"
    out.write_bytes(b"an earlier export")
    calls = _save_to(monkeypatch, out)
    dialogs = Dialogs(monkeypatch, NO)
    win.act_onnx["ct"].trigger()
    assert calls[0]["options"] == QFileDialog.Option.DontConfirmOverwrite  # asked once, by the app
    assert len(dialogs.questions) == 1 and str(out) in dialogs.questions[0]
    assert out.read_bytes() == b"an earlier export" and not dialogs.critical and not dialogs.info
    dialogs.answer = YES
    win.act_onnx["ct"].trigger()
    assert len(dialogs.questions) == 2 and not dialogs.critical and len(dialogs.info) == 1
    assert out.stat().st_size > 1000


def test_export_onto_a_folder_or_a_full_disk_is_one_dialog(qtbot, make_window, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import onnx

    win = make_window()
    folder = tmp_path / "looks-like.onnx"
    folder.mkdir()
    _save_to(monkeypatch, folder)
    dialogs = Dialogs(monkeypatch, YES)
    win.act_onnx["st"].trigger()
    assert len(dialogs.critical) == 1 and not dialogs.questions
    assert str(folder) in dialogs.critical[0][1] and "folder" in dialogs.critical[0][1]

    out = tmp_path / "kept.onnx"
    out.write_bytes(b"the previous export")

    def full_disk(*_a, **_k) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(onnx, "save", full_disk)
    _save_to(monkeypatch, out)
    win.act_onnx["st"].trigger()
    assert len(dialogs.critical) == 2
    title, text = dialogs.critical[1]
    assert "ONNX" in title and str(out) in text and "No space left on device" in text and "\n" not in text
    assert out.read_bytes() == b"the previous export"  # nothing half-written over it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.onnx", "looks-like.onnx"]  # no temp file left


# ------------------------------------------------------------------------------ save models
def test_saving_into_an_existing_run_asks_and_replaces_the_whole_run(qtbot, make_window, tiny_runs,  # noqa: ANN001
                                                                   tmp_path, monkeypatch) -> None:
    from st_app.core.checkpoint import load_checkpoint

    win = make_window()
    target = tmp_path / "saved"
    shutil.copytree(tiny_runs["ct"], target / tiny_runs["ct"].name)  # a run already there
    before = _files(target / tiny_runs["ct"].name)
    assert "metrics.jsonl" in before and "optimizer.safetensors" in before
    dialogs = Dialogs(monkeypatch, NO)
    written = win.files.save_models(target)
    assert len(dialogs.questions) == 1 and "whole run" in dialogs.questions[0]
    assert written == [target / tiny_runs["st"].name]  # the other slot's new run is written
    assert _files(target / tiny_runs["ct"].name) == before  # untouched
    dialogs.answer = YES
    win.session.toggle(1)
    written = win.files.save_models(target)
    assert len(written) == 2 and not dialogs.critical
    replaced = target / tiny_runs["ct"].name
    names = set(_files(replaced))
    assert names == {"model.safetensors", "meta.json", "manifest.json"}  # nothing of the old run mixed in
    assert load_checkpoint(replaced).meta["st_lab"]["plan"] == "0,2|3,4,5|6,7,8"


def test_saving_into_a_locked_run_names_the_writer(qtbot, make_window, tmp_path, monkeypatch,  # noqa: ANN001
                                                  lock_holder) -> None:
    win = make_window()
    target = tmp_path / "saved"
    win.files.save_models(target)
    run = target / win.session.slot("ct").path.name
    before = _files(run)
    pid = lock_holder(run)
    dialogs = Dialogs(monkeypatch, YES)
    assert win.files.save_models(target) == []
    assert len(dialogs.critical) == 1
    text = dialogs.critical[0][1]
    assert f"process {pid}" in text and str(run) in text
    assert _files(run) == before


def test_a_full_disk_while_saving_keeps_the_previous_run(qtbot, make_window, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from st_app.core.checkpoint import load_checkpoint

    win = make_window()
    target = tmp_path / "saved"
    win.files.save_models(target)
    run = target / win.session.slot("ct").path.name
    before = _files(run)
    dialogs = Dialogs(monkeypatch, YES)
    monkeypatch.setenv("ST_APP_FAULT", "enospc:stage:model.safetensors")  # the run folder's test hook
    assert win.files.save_models(target) == []
    assert len(dialogs.critical) == 1
    text = dialogs.critical[0][1]
    assert "No space left on device" in text and str(run) in text and "previous state" in text
    monkeypatch.delenv("ST_APP_FAULT")
    assert _files(run) == before and load_checkpoint(run).model is not None


# ---------------------------------------------------------------------------- sessions, plots
def test_session_save_asks_before_replacing_and_refuses_a_folder(qtbot, make_window, tmp_path,  # noqa: ANN001
                                                                 monkeypatch) -> None:
    win = make_window()
    dialogs = Dialogs(monkeypatch, NO)
    path = tmp_path / "lesson.stlab"
    assert win.files.save_session(path) and not dialogs.questions
    first = path.read_bytes()
    win.session.toggle(2)
    assert not win.files.save_session(path)
    assert len(dialogs.questions) == 1 and path.read_bytes() == first
    dialogs.answer = YES
    assert win.files.save_session(path) and path.read_bytes() != first
    (tmp_path / "folder.stlab").mkdir()
    assert not win.files.save_session(tmp_path / "folder.stlab")
    assert len(dialogs.critical) == 1 and "folder" in dialogs.critical[0][1]


# --------------------------------------------------------------------- checkpoints and their data
def test_recorded_data_paths_are_used_only_after_a_yes(qtbot, make_window, tiny_runs, tmp_path,  # noqa: ANN001
                                                       monkeypatch) -> None:
    from st_app.core.checkpoint import load_checkpoint, save_checkpoint
    from st_app.core.data import files

    ck = load_checkpoint(tiny_runs["ct"])
    folder = tmp_path / "somebody-elses-images"
    save_checkpoint(tmp_path / "foreign", ck.model,
                    dict(ck.meta, config=dict(ck.meta["config"], dataset=f"imagefolder:{folder}"),
                         dataset={"name": f"imagefolder:{folder}"}))
    save_checkpoint(tmp_path / "data-dir", ck.model,
                    dict(ck.meta, config=dict(ck.meta["config"], data_dir=str(tmp_path / "digits-here"))))
    scanned: list = []
    monkeypatch.setattr(files, "list_imagefolder", lambda path: scanned.append(path) or ([], [], []))
    win = make_window()
    dialogs = Dialogs(monkeypatch, NO)
    assert win.open_checkpoint(tmp_path / "foreign", "ct")
    assert len(dialogs.questions) == 1 and str(folder) in dialogs.questions[0]
    assert not scanned  # never read without a yes
    assert win.cards["ct"].value.text() == "n/a" and "confirm" in win.cards["ct"].detail.text()
    dialogs.answer = YES
    assert win.open_checkpoint(tmp_path / "data-dir", "ct")
    assert len(dialogs.questions) == 2 and str(tmp_path / "digits-here") in dialogs.questions[1]
    qtbot.waitUntil(win.wait_for_accuracy, timeout=15000)
    assert win.session.slot("ct").data is not None and not dialogs.critical


def test_a_damaged_checkpoint_is_one_dialog(qtbot, make_window, tiny_runs, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    win = make_window()
    before = win.session.slot("st").key
    damaged = tmp_path / "damaged-run"
    shutil.copytree(tiny_runs["st"], damaged)
    weights = damaged / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte in the tensor data
    weights.write_bytes(bytes(data))
    dialogs = Dialogs(monkeypatch)
    assert not win.open_checkpoint(damaged, "st")
    assert len(dialogs.critical) == 1
    assert str(weights) in dialogs.critical[0][1] and "damaged" in dialogs.critical[0][1]
    assert win.session.slot("st").key == before  # the loaded model stays


# ---------------------------------------------------------------------------- the app's trainer
def test_a_second_writer_in_the_app_trainer_gets_one_dialog(qtbot, tmp_path, monkeypatch, lock_holder) -> None:  # noqa: ANN001
    from st_app.gui.train import panel as training_panel

    box = MagicMock(name="QMessageBox")
    monkeypatch.setattr(training_panel, "QMessageBox", box)
    run = tmp_path / "busy-run"
    pid = lock_holder(run)
    monkeypatch.setattr(training_panel, "_unique_dir", lambda root, name: run)  # the folder another train holds
    panel = training_panel.TrainingPanel()
    qtbot.addWidget(panel)
    errors: list[str] = []
    panel.errorOccurred.connect(errors.append)
    assert panel.start(("ct",), epochs=1, out_root=str(tmp_path), model="resnet20",
                       dataset="synthetic:1,8,10,64,64", batch_size=32, seed=0, device="cpu")
    qtbot.waitUntil(lambda: not panel.is_training(), timeout=30000)
    assert len(errors) == 1 and "\n" not in errors[0]
    assert f"process {pid}" in errors[0] and str(run) in errors[0] and errors[0].startswith("Could not write the run")
    texts = [c.args[0] for c in box.return_value.setText.call_args_list]
    assert texts == errors  # one dialog, the same line
    assert sorted(p.name for p in run.iterdir()) == [".lock"]  # nothing written
    assert panel.shutdown(5000)
