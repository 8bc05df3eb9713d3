"""The session model without a window, session files (round trip and tampering), and exiting quickly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from st_app.gui.jobs import live_jobs
from st_app.gui.session import Session, SessionError
from st_app.gui.session_file import SessionFileError, file_sha256, read_session, write_bundle, write_session

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def session(qtbot, tiny_runs):  # noqa: ANN001, ANN201
    s = Session()
    assert s.load(tiny_runs["ct"]) == "ct" and s.load(tiny_runs["st"]) == "st"  # slots chosen by method
    return s


def _edit(s: Session) -> None:
    s.toggle(4)
    s.block_action("move_right", 0)
    s.preset("smallest")
    s.undo_stack.undo()  # history: 3 edits, at the 2nd
    s.set_bn_mode("recalibrate")
    s.curves.add("ct", "test_acc", 1, 50.0, 4)
    s.curves.add("st", "probe:0|3|6", 4, float("nan"), 4)
    s.curves.set_roles("0|3|6", [], None)


def test_the_session_is_a_model_without_widgets(qtbot, session) -> None:  # noqa: ANN001
    seen: list[str] = []
    session.planChanged.connect(lambda p: seen.append(str(p)))
    assert session.toggle(1) and str(session.plan) == "0,2|3,4,5|6,7,8"
    with pytest.raises(SessionError, match="Not possible"):
        session.block_action("move_left", 3)  # a shape-changing block stays first
    with pytest.raises(SessionError, match="stage 3, not stage 2"):
        session.set_plan_text("0|3,6|")  # stage numbers as the graph shows them: 1-based
    session.undo_stack.undo()
    assert seen == ["0,2|3,4,5|6,7,8", "0,1,2|3,4,5|6,7,8"]
    assert not session.edit(session.plan, "no change")


def test_round_trip_keeps_plan_models_bn_history_and_curves(qtbot, session, tmp_path) -> None:  # noqa: ANN001
    _edit(session)
    path = write_session(tmp_path / "lesson.stlab", session.to_data())
    again = Session()
    assert again.open_data(read_session(path)) == []
    assert again.plan == session.plan and str(again.plan) == "1,0,2|3,5|6,7,8"
    assert again.bn_mode == "recalibrate"
    assert [(t, str(b), str(a)) for t, b, a in again.history()] == \
           [(t, str(b), str(a)) for t, b, a in session.history()]
    assert again.undo_stack.index() == 2 and again.undo_stack.count() == 3
    for slot in ("ct", "st"):
        assert again.slot(slot).sha256 == session.slot(slot).sha256 == file_sha256(
            session.slot(slot).path / "model.safetensors")
    assert again.curves.series[("ct", "test_acc")].y == [50.0]
    assert str(again.curves.series[("st", "probe:0|3|6")].y[0]) == "nan"
    assert again.curves.roles == {"0|3|6": "smallest"}
    again.undo_stack.redo()
    assert str(again.plan) == "0|3|6"  # the redo stack came back too


def test_a_bundle_carries_its_checkpoints(qtbot, session, tmp_path) -> None:  # noqa: ANN001
    _edit(session)
    bundle = write_bundle(tmp_path / "lesson.zip", session.to_data())
    data = read_session(bundle, extract_root=tmp_path / "unpacked")
    again = Session()
    assert again.open_data(data) == []
    assert again.slot("ct").path.is_relative_to(tmp_path / "unpacked")
    assert again.slot("st").sha256 == session.slot("st").sha256 and again.plan == session.plan


def _tamper(tmp_path: Path, session: Session, change) -> Path:  # noqa: ANN001
    doc = json.loads(write_session(tmp_path / "good.stlab", session.to_data()).read_text())
    change(doc)
    bad = tmp_path / "bad.stlab"
    bad.write_text(json.dumps(doc))
    return bad


@pytest.mark.parametrize("change, words", [
    (lambda d: d.update(version=99), "newer ST Lab"),
    (lambda d: d.update(plan="0" * 5000), "at most 4,096"),
    (lambda d: d.update(bn="import os; os.system('x')"), "bn must be one of"),
    (lambda d: d["checkpoints"]["ct"].update(sha256="not-a-sha"), "64 hexadecimal"),
    (lambda d: d["history"].update(index=7), "not a position"),
    (lambda d: d.update(format="other"), "not an ST Lab session"),
])
def test_tampered_files_are_refused_with_one_message(qtbot, session, tmp_path, change, words) -> None:  # noqa: ANN001
    with pytest.raises(SessionFileError, match=words) as err:
        read_session(_tamper(tmp_path, session, change))
    assert "\n" not in str(err.value)


def test_bad_json_and_huge_files_are_refused_unread(qtbot, tmp_path) -> None:  # noqa: ANN001
    bad = tmp_path / "bad.stlab"
    bad.write_text("{not json")
    with pytest.raises(SessionFileError, match="not valid JSON"):
        read_session(bad)
    huge = tmp_path / "huge.stlab"
    huge.write_text('{"format": "st-lab-session", "version": 1, "plan": "' + "x" * (50 * 2**20) + '"}')
    with pytest.raises(SessionFileError, match="at most 16 MiB"):
        read_session(huge)


def test_missing_changed_and_climbing_checkpoints_are_named_not_loaded(qtbot, session, tmp_path,  # noqa: ANN001
                                                                        tiny_runs) -> None:
    copy = tmp_path / "lessons" / "ct-copy"
    shutil.copytree(tiny_runs["ct"], copy)
    session.load(copy, "ct")
    _edit(session)
    path = write_session(tmp_path / "lessons" / "lesson.stlab", session.to_data())
    doc = json.loads(path.read_text())
    assert doc["checkpoints"]["ct"]["path"] == "ct-copy"  # beside the session: relative
    doc["checkpoints"]["ct"]["path"] = "../../etc/ct"
    (tmp_path / "lessons" / "climbing.stlab").write_text(json.dumps(doc))
    problems = Session().open_data(read_session(tmp_path / "lessons" / "climbing.stlab"))
    assert [p.slot for p in problems] == ["ct"] and "leaves the session's folder" in problems[0].problem
    # changed weights: the sha256 differs, so the checkpoint is not loaded
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    again = Session()
    problems = again.open_data(read_session(path))
    assert [p.slot for p in problems] == ["ct"] and "changed" in problems[0].problem
    assert "ct" not in again.slots and "st" in again.slots
    assert str(again.plan) == "1,0,2|3,5|6,7,8"  # the rest opens on the model that is there
    shutil.rmtree(copy)
    problems = Session().open_data(read_session(path))
    assert "missing" in problems[0].problem


def test_window_save_close_reopen_and_refuse_a_bad_file(qtbot, make_window, tmp_path, monkeypatch,  # noqa: ANN001
                                                       settings) -> None:
    from st_app.gui.main_window import MainWindow

    win = make_window(enable_training=True)
    win.session.toggle(4)
    win.set_bn_mode("recalibrate")
    win.training.plots.add_epoch({"run": "ct", "epoch": 1, "test_acc": 61.0, "step": 4})
    win.training.plots.refresh()
    assert win.files.save_session(tmp_path / "lesson")  # the suffix is added
    path = tmp_path / "lesson.stlab"
    win.close()
    reopened = MainWindow(session_path=path, settings=settings, enable_training=True)
    qtbot.addWidget(reopened)
    reopened.show()
    qtbot.waitUntil(reopened.wait_for_accuracy, timeout=15000)
    assert reopened.plan_text() == "0,1,2|3,5|6,7,8" and reopened.bn_mode == "recalibrate"
    assert reopened.session.undo_stack.count() == 1
    assert reopened.training.plots.point_count("ct", "test_acc") == 1  # the plotted curve is back
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "critical", lambda _p, _t, text: shown.append(text))
    (tmp_path / "bad.stlab").write_text('{"format": "st-lab-session", "version": 2}')
    jobs_before = len(live_jobs())
    assert not reopened.files.open_session(tmp_path / "bad.stlab")
    assert len(shown) == 1 and "newer ST Lab" in shown[0]
    assert reopened.plan_text() == "0,1,2|3,5|6,7,8"  # nothing changed, nothing ran
    assert len(live_jobs()) <= jobs_before
    reopened.close()


@pytest.mark.slow
def test_the_process_exits_within_2_s_of_closing_mid_training(tmp_path) -> None:
    """python main.py --demo trains CT and ST live; the window closes mid-training; the process is gone < 2 s later."""
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "--demo", "--close-after", "3"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _out, err = proc.communicate(timeout=120)
    ended = time.monotonic()
    assert proc.returncode == 0, err[-2000:]
    closing = [line for line in err.splitlines() if line.startswith("st-lab: closing at")]
    assert closing, err[-2000:]
    assert closing[0].endswith("(training: yes)"), closing[0]  # closed mid-training
    closed_at = float(closing[0].split()[3])
    assert ended - closed_at < 2.0, ended - closed_at


def test_the_background_engine_import_loads_no_qt_module() -> None:
    """The start-up import runs off the GUI thread; a Qt-wrapping module imported there crashed now and then."""
    code = ("import sys; from st_app.gui.main_window import ENGINE_MODULES; before = set(sys.modules); "
            "import importlib; [importlib.import_module(n) for n in ENGINE_MODULES]; "
            "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in "
            "('PySide6', 'shiboken6', 'pyqtgraph', 'superqt')))")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout
