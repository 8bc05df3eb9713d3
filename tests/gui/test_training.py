"""The training panel: side-by-side CT/ST training in the worker thread, live plots, control.

Runs real (tiny) trainings on random 8x8 tensors, so the whole file stays fast on 2 cores.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import csv
import time
from unittest.mock import MagicMock

import pytest

from st_app.core.checkpoint import load_checkpoint
from st_app.gui.train import panel as training_panel
from st_app.gui.train.panel import TrainingPanel, format_eta
from st_app.gui.train.worker import _Outbox

SYNTH = "synthetic:1,8,10,128,64"  # 1 channel, 8x8, 10 classes, 128 train, 64 test
TINY = dict(model="resnet20", dataset=SYNTH, batch_size=32, lr=0.05, seed=0, device="cpu")


@pytest.fixture(autouse=True)
def no_message_box(monkeypatch):
    box = MagicMock(name="QMessageBox")
    monkeypatch.setattr(training_panel, "QMessageBox", box)
    return box


@pytest.fixture
def panel(qtbot):
    p = TrainingPanel()
    qtbot.addWidget(p)
    p.resize(1400, 800)
    yield p
    assert p.shutdown(5000)


def _wait_idle(qtbot, panel, timeout=30000):
    qtbot.waitUntil(lambda: not panel.is_training(), timeout=timeout)


def test_side_by_side_training_plots_saves_and_exports(qtbot, panel, tmp_path):
    progress = []
    panel.progressChanged.connect(lambda pct, text: progress.append((pct, text)))
    panel.set_probe_plan("depths:1,2,1")
    t0 = time.monotonic()
    with qtbot.waitSignal(panel.runsFinished, timeout=30000) as finished:
        assert panel.start(("ct", "st"), epochs=2, out_root=str(tmp_path), probe_every=2, **TINY)
        assert panel.is_training()
        assert panel.pause_button.isEnabled() and panel.stop_button.isEnabled()
        assert not panel.side_by_side_button.isEnabled()
    runs = finished.args[0]
    assert set(runs) == {"ct", "st"} and runs["ct"] != runs["st"]
    for run_dir in runs.values():
        for name in ("model.safetensors", "meta.json", "metrics.jsonl"):
            assert (tmp_path / os.path.basename(run_dir) / name).exists()
    _wait_idle(qtbot, panel)

    # step deliveries are throttled to 20 Hz (plus a flush before each start/probe/epoch/end event)
    assert panel.steps_received == 2 * 8
    assert panel.step_signals <= (time.monotonic() - t0) * 20 + 2 * (1 + 4 + 2 + 1)

    # progress went from 0 to 100 with ETA text on the way
    assert progress[0][0] == 0 and progress[-1] == (100, "done")
    assert any(text.startswith("ETA") for _, text in progress)

    # one curve item per series, with every point: 2 epochs x 4 steps, probes every 2 steps
    c = panel.plots.curves
    for run in ("ct", "st"):
        assert len(c[(run, "test_acc")].getData()[0]) == 2
        assert len(c[(run, "loss")].getData()[0]) == 8
        assert len(c[(run, "loss_raw")].getData()[0]) == 8
        probes = [k for k in c if k[0] == run and k[1].startswith("probe:")]
        assert len(probes) >= 4  # smallest + 3 random (+ the user's plan unless it is one of them)
        assert (run, "probe:0|3|6") in c  # the smallest ordered sub-net
        assert (run, "probe:0|3,4|6") in c  # the user's plan, normalised from depths:1,2,1
        assert all(len(c[k].getData()[0]) == 4 for k in probes)

    # same seed: same initial weights and first batch, so the first main-net losses agree
    store = panel.plots.store.series
    assert store[("ct", "loss_raw")].y[0] == pytest.approx(store[("st", "loss_raw")].y[0], rel=1e-5)

    # idle again: start buttons on, pause/resume/stop off
    assert panel.side_by_side_button.isEnabled()
    assert not (panel.pause_button.isEnabled() or panel.resume_button.isEnabled() or panel.stop_button.isEnabled())

    png, svg, table = tmp_path / "plots.png", tmp_path / "plots.svg", tmp_path / "series.csv"
    panel.export_plots(str(png))
    panel.export_plots(str(svg))
    panel.export_csv(str(table))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert b"<svg" in svg.read_bytes()[:2000] and svg.stat().st_size > 5000
    with open(table, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["run", "series", "step", "value"]
    assert {r[0] for r in rows[1:]} == {"ct", "st"}
    assert {"test_acc", "loss", "loss_raw", "probe:0|3|6"} <= {r[1] for r in rows[1:]}


def test_step_signals_are_throttled(qtbot, panel, tmp_path):
    panel.max_rate_hz = 2.0  # 2 Hz instead of 20 Hz, so coalescing must show even on a slow machine
    with qtbot.waitSignal(panel.runsFinished, timeout=30000):
        t0 = time.monotonic()
        panel.start(("ct", "st"), epochs=3, out_root=str(tmp_path), probe_every=1000,
                    **{**TINY, "batch_size": 8})
    elapsed = time.monotonic() - t0
    assert panel.steps_received == 2 * 3 * 16  # every step arrives...
    # ...in at most 2 deliveries a second, plus one flush before each start / epoch / end event
    flushes = 2 + 2 * 3 + 2
    assert panel.step_signals <= elapsed * 2 + flushes + 1
    assert panel.step_signals < panel.steps_received / 2


def test_outbox_coalesces_steps_but_delivers_epochs():
    out = _Outbox(max_rate_hz=20)
    for i in range(500):
        out.on_step({"run": "ct", "step": i + 1})
    out.on_epoch({"run": "ct", "epoch": 1, "test_acc": 50.0})
    events = list(out.drain())
    batches = [e[1] for e in events if e[0] == "steps"]
    assert len(batches) <= 2  # 500 steps in far less than 100 ms
    assert [s["step"] for b in batches for s in b] == list(range(1, 501))  # all delivered, in order
    assert [e[0] for e in events][-1] == "epoch"  # after the steps that preceded it


def test_stop_keeps_last_finished_epoch_and_user_plan_probe(qtbot, panel, tmp_path):
    panel.start(("ct", "st"), epochs=500, out_root=str(tmp_path), probe_every=2, **TINY)
    qtbot.waitUntil(lambda: panel.plots.point_count("st", "test_acc") >= 1, timeout=30000)
    panel.set_probe_plan("0,1|3|6")  # the user's plan joins the probes at the next evaluation
    qtbot.waitUntil(lambda: panel.plots.point_count("st", "probe:0,1|3|6") >= 1, timeout=30000)
    with qtbot.waitSignal(panel.runsFinished, timeout=10000) as finished:
        panel.stop()
        assert not panel.stop_button.isEnabled()
    _wait_idle(qtbot, panel)
    assert not panel.is_training()
    for run_dir in finished.args[0].values():
        ckpt = load_checkpoint(run_dir)
        assert 1 <= ckpt.meta["epoch"] < 500
    assert "Stopped" in panel.status_label.text()


def test_pause_and_resume(qtbot, panel, tmp_path):
    panel.start(("ct", "st"), epochs=500, out_root=str(tmp_path), **TINY)
    qtbot.waitUntil(lambda: panel.steps_received > 0, timeout=30000)
    assert not panel.start(("sd",), out_root=str(tmp_path), **TINY)  # one training at a time
    panel.pause()
    qtbot.waitUntil(lambda: panel.worker_paused, timeout=5000)
    assert panel.resume_button.isEnabled() and not panel.pause_button.isEnabled()
    qtbot.wait(50)
    held = panel.steps_received
    qtbot.wait(400)
    assert panel.steps_received == held  # nothing trains while paused
    panel.resume()
    assert panel.pause_button.isEnabled() and not panel.resume_button.isEnabled()
    qtbot.waitUntil(lambda: panel.steps_received > held, timeout=10000)
    panel.stop()
    _wait_idle(qtbot, panel)


def test_shutdown_during_training_ends_thread_quickly(qtbot, panel, tmp_path):
    panel.start(("ct", "st"), epochs=500, out_root=str(tmp_path), **TINY)
    qtbot.waitUntil(lambda: panel.steps_received > 0, timeout=30000)
    t0 = time.monotonic()
    assert panel.shutdown(2000)
    assert time.monotonic() - t0 < 2.0
    assert not panel.is_training()
    # the panel can train again afterwards (a fresh event loop for the same worker)
    with qtbot.waitSignal(panel.runsFinished, timeout=30000):
        assert panel.start(("ct",), epochs=1, out_root=str(tmp_path / "again"), **TINY)


def test_deleting_a_training_panel_stops_its_training(qtbot, tmp_path):
    doomed = TrainingPanel()
    doomed.start(("ct", "st"), epochs=500, out_root=str(tmp_path), **TINY)
    qtbot.waitUntil(lambda: doomed.steps_received > 0, timeout=30000)
    job = doomed.job
    doomed.deleteLater()
    qtbot.waitUntil(lambda: job.done, timeout=3000)


def test_worker_error_is_reported_and_panel_stays_usable(qtbot, panel, tmp_path, no_message_box):
    empty = tmp_path / "no-data"
    empty.mkdir()
    with qtbot.waitSignal(panel.errorOccurred, timeout=30000) as err:
        panel.start(("ct", "st"), epochs=1, out_root=str(tmp_path / "runs"),
                    **{**TINY, "dataset": "cifar10"}, data_dir=str(empty))
    message = err.args[0]
    assert message.startswith("Could not load the data set") and str(empty) in message
    assert no_message_box.called  # shown to the user too
    shown = no_message_box.return_value.setText.call_args[0][0]
    assert shown == message
    _wait_idle(qtbot, panel)
    assert panel.side_by_side_button.isEnabled()
    with qtbot.waitSignal(panel.runsFinished, timeout=30000):
        assert panel.start(("ct",), epochs=1, out_root=str(tmp_path / "runs"), **TINY)


def test_bad_method_and_option_are_refused(qtbot, panel, tmp_path):
    errors = []
    panel.errorOccurred.connect(errors.append)
    assert not panel.start(("nope",), out_root=str(tmp_path), **TINY)
    assert errors and "nope" in errors[0]
    with pytest.raises(TypeError):
        panel.start(("ct",), colour="red")


def test_presentation_mode_and_idle_states(qtbot, panel):
    assert not panel.is_training()
    assert not panel.pause_button.isEnabled() and not panel.stop_button.isEnabled()
    assert panel.side_by_side_button.toolTip() and panel.epochs_spin.toolTip()
    panel.plots.add_epoch({"run": "ct", "epoch": 1, "test_acc": 50.0, "step": 4})
    panel.plots.refresh()
    item = panel.plots.curves[("ct", "test_acc")]
    normal_width = item.opts["pen"].widthF()
    normal_tick = panel.plots.acc_plot.getAxis("left").style["tickFont"].pointSize()
    panel.set_presentation(True)
    assert item is panel.plots.curves[("ct", "test_acc")]  # restyled, not re-created
    assert item.opts["pen"].widthF() >= 3.5 > normal_width
    assert panel.plots.acc_plot.getAxis("left").style["tickFont"].pointSize() > normal_tick
    panel.set_presentation(False)
    assert item.opts["pen"].widthF() == normal_width


def test_format_eta():
    assert format_eta(5) == "ETA 5 s"
    assert format_eta(65) == "ETA 1 min 05 s"
    assert format_eta(3 * 3600 + 120) == "ETA 3 h 02 min"
    assert format_eta(float("nan")) == "ETA unknown"
