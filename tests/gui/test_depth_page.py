"""The Depth sweep page: the CLI's ``analyze depth`` in the app, with partial results, run reuse,
cancel, Save report and opening one depth's runs in the Explore tab."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SYNTH = "synthetic:1,8,10,64,32"  # 1 channel, 8x8, 10 classes: a sweep of two depths takes seconds
TINY = {"models": "resnet32,resnet20", "dataset": SYNTH, "epochs": 1, "methods": "ct,st", "bn": "main",
        "limit": 4, "calib_n": 16, "seed": 0, "batch_size": 64, "lr": 0.05}


@pytest.fixture
def window(make_window):  # noqa: ANN001, ANN201
    win = make_window()
    win.tabs.setCurrentWidget(win.analyses_tab)
    win.analyses.show_page("depth")
    return win


def _stamps(runs: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in runs.glob("*/model.safetensors")}


def test_depth_sweep_draws_each_depth_reuses_its_runs_and_opens_one_in_explore(  # noqa: ANN001
        qtbot, window, tmp_path: Path) -> None:
    panel = window.analyses
    page = panel.page("depth")
    assert not page.needs_models and page.run_button.isEnabled()
    runs = tmp_path / "runs"
    with qtbot.waitSignal(panel.runner.partial, timeout=60000) as part:
        assert panel.run("depth", runs_dir=str(runs), **TINY)
    partial = part.args[1]
    assert [r["model"] for r in partial["rows"]] == ["resnet20"]  # shallowest first, drawn before the next
    assert "partial" in page.summary.text() and not page.save_button.isEnabled()
    assert page.result.table.rowCount() == 2  # one model x CT, ST x one BN setting
    with qtbot.waitSignal(panel.reportReady, timeout=60000) as done:
        pass
    report = done.args[1]
    assert report["analysis"] == "depth" and report["models"] == ["resnet20", "resnet32"]
    assert report["alone"]["how"] == "trained" and report["bn"] == ["main"]
    assert all(r["runs"][m]["how"] == "trained" for r in report["rows"] for m in ("ct", "st"))
    assert len(partial["rows"]) == 1  # the partial report was a copy: the next depth did not grow it
    assert page.result.table.rowCount() == 4 and len(page.result.plots) >= 2
    assert page.progress.format().startswith("done in") and "partial" not in page.summary.text()
    assert "resnet32" in page.summary.text() and page.save_button.isEnabled()
    # the charts fit their cells: long titles wrap instead of widening the plot past its widget,
    # and the depth axis leaves room for the first and last model's name
    qtbot.wait(400)
    shown = [p for p in page.result.plots if p.isVisible()]
    assert len(shown) == 2
    for plot in shown:
        item = plot.getPlotItem()
        assert item.width() <= plot.width() + 1
        (x0, x1), _ = item.getViewBox().viewRange()
        assert x0 < 9 and x1 > 15  # resnet20 has 9 blocks, resnet32 15

    # Save report writes what the CLI writes
    out = tmp_path / "report"
    assert page.save_to(out) == out / "depth.json"
    saved = json.loads((out / "depth.json").read_text())
    assert saved["rows"] == report["rows"] and (out / "depth.csv").read_text().count("\n") == 1 + 4
    assert sorted(p.name for p in out.glob("*.png")) == ["depth_smallest_main.png", "depth_subnets_main.png"]

    # a rerun on the same runs folder trains nothing: every run is reused, byte for byte
    before = _stamps(runs)
    assert set(before) == {"alone-1,1,1", "resnet20-ct", "resnet20-st", "resnet32-ct", "resnet32-st"}
    with qtbot.waitSignal(panel.reportReady, timeout=60000) as again:
        assert panel.run("depth")
    rerun = again.args[1]
    assert rerun["alone"]["how"] == "reused"
    assert all(r["runs"][m]["how"] == "reused" for r in rerun["rows"] for m in ("ct", "st"))
    assert _stamps(runs) == before
    assert [r["runs"]["st"]["main_acc"] for r in rerun["rows"]] == [r["runs"]["st"]["main_acc"]
                                                                    for r in report["rows"]]

    # one depth's CT and ST runs open in the window's slots
    assert not page.open_button.isEnabled()  # nothing selected yet
    table = page.result.table
    header = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    row = next(r for r in range(table.rowCount()) if table.item(r, header.index("model")).text() == "resnet32")
    table.selectRow(row)
    assert page.selected_model() == "resnet32" and page.open_button.isEnabled()
    page.open_button.click()
    assert window.tabs.currentWidget() is window.explore_tab
    assert Path(window.session.slot("ct").path) == runs / "resnet32-ct"
    assert Path(window.session.slot("st").path) == runs / "resnet32-st"
    qtbot.waitUntil(window.wait_for_accuracy, timeout=15000)
    assert window.session.slot("ct").model.config.arch == "resnet32"


def test_depth_sweep_cancel_and_bad_settings(qtbot, window, tmp_path: Path) -> None:  # noqa: ANN001
    panel = window.analyses
    page = panel.page("depth")
    assert not panel.run("depth", **{**TINY, "models": "resnet20"})  # one model: one clear message, no job
    assert panel.running is None and "at least two models" in page.status.text()
    assert not panel.run("depth", **{**TINY, "methods": "st"})
    assert "needs ct" in page.status.text()
    with qtbot.waitSignal(panel.runner.progress, timeout=30000):
        assert panel.run("depth", runs_dir=str(tmp_path / "runs"), **{**TINY, "epochs": 200})
    assert not page.run_button.isEnabled() and page.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: page.progress.value() >= 1, timeout=30000)  # epochs of all runs: done / total, ETA
    assert page.progress.maximum() == 200 * (2 * 2 + 1) and "ETA " in page.progress.format()
    assert "unknown" not in page.progress.format()
    with qtbot.waitSignal(panel.runner.cancelled, timeout=30000):
        page.cancel_button.click()
    assert panel.running is None and page.progress.format() == "cancelled"
    assert page.result.report is None and page.run_button.isEnabled()
    # the finished epochs are kept: the stopped run resumes next time
    meta = json.loads((tmp_path / "runs" / "alone-1,1,1" / "meta.json").read_text())
    assert 1 <= meta["epoch"] < 200
