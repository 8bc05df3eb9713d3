"""The Analyses tab: runs in a worker with progress and cancel, shows and saves the CLI's report."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from st_app.gui.analyses.runner import AnalysisRunner


def _finish(qtbot, panel, timeout: int = 60000) -> None:  # noqa: ANN001
    qtbot.waitUntil(lambda: panel.running is None, timeout=timeout)


@pytest.fixture
def window(make_window):  # noqa: ANN001, ANN201
    win = make_window()
    win.tabs.setCurrentWidget(win.analyses_tab)
    return win


def test_subnets_run_shows_report_and_saves_like_the_cli(qtbot, window, tmp_path: Path) -> None:  # noqa: ANN001
    panel = window.analyses
    assert [p.title for p in panel.pages.values()] == ["Loafing", "All sub-networks", "Robustness",
                                                       "Block importance", "Method comparison", "Depth sweep"]
    page = panel.page("subnets")
    assert page.run_button.isEnabled() and not page.save_button.isEnabled()
    progress: list[tuple[int, int]] = []
    panel.runner.progress.connect(lambda _n, d, t: progress.append((d, t)))
    with qtbot.waitSignal(panel.reportReady, timeout=60000) as sig:
        assert panel.run("subnets", bn="recalibrate", calib_n=64)
        assert not page.run_button.isEnabled() and page.cancel_button.isEnabled()
    name, report = sig.args
    assert name == "subnets" and report["bn"] == "recalibrate" and report["calib_images"] == 64
    assert report["n_plans"] == 27 and len(report["ct"]["results"]) == 27
    assert progress and progress[-1] == (54, 54)  # 27 plans x 2 models, the last report always arrives
    assert page.result.table.rowCount() == 27
    visible = [w for w in page.result.plots if not w.isHidden()]
    assert len(visible) == 2  # sorted curve + histogram
    assert "CT: mean" in page.summary.text() and "ST: mean" in page.summary.text()
    assert json.loads(page.result.json.toPlainText())["checkpoints"]["ct"]["epoch"] == 1
    assert page.save_button.isEnabled() and page.run_button.isEnabled()

    path = page.save_to(tmp_path / "report")
    saved = json.loads(path.read_text())
    assert saved["ct"]["mean"] == report["ct"]["mean"]
    for suffix in ("_sorted.png", "_sorted.svg", "_hist.png", "_hist.svg"):
        f = tmp_path / "report" / f"subnets{suffix}"
        assert f.stat().st_size > 1000, f
    assert (tmp_path / "report" / "subnets.csv").read_text().count("\n") == 28


def test_cancel_keeps_previous_result_and_frees_the_runner(qtbot, window) -> None:  # noqa: ANN001
    panel = window.analyses
    page = panel.page("robustness")
    with qtbot.waitSignal(panel.reportReady, timeout=60000):
        panel.run("robustness", max_k=2, repeats=2, max_swaps=1)
    first = page.result.report
    assert first["delete_k"]["ct"][-1]["k"] == 2
    # a long run (hundreds of draws per k), cancelled at its first progress report
    with qtbot.waitSignal(panel.runner.progress, timeout=30000):
        assert panel.run("robustness", max_k=8, repeats=300, max_swaps=3)
    with qtbot.waitSignal(panel.runner.cancelled, timeout=30000):
        panel.cancel()
    assert page.result.report is first  # nothing half-done replaces the last good result
    assert "Cancelled" in page.status.text() and page.progress.format() == "cancelled"
    assert panel.running is None and page.run_button.isEnabled()


def test_bad_settings_give_one_clear_message(qtbot, window) -> None:  # noqa: ANN001
    panel = window.analyses
    page = panel.page("robustness")
    with qtbot.waitSignal(panel.runner.failed, timeout=30000) as sig:
        panel.run("robustness", max_k=50)
    assert "cannot delete k=50 blocks" in sig.args[1]
    assert "cannot delete k=50" in page.status.text() and page.progress.format() == "failed"
    loafing = panel.page("loafing")
    assert not panel.run("loafing", plans="0|3|6; 9|9")  # malformed plan: refused before any thread starts
    assert panel.running is None and "malformed plan" in loafing.status.text()


def test_needs_both_models(qtbot, make_window, tiny_runs, settings) -> None:  # noqa: ANN001
    from st_app.gui.main_window import MainWindow

    win = MainWindow(tiny_runs["ct"], None, use_defaults=False, settings=settings, enable_training=False)
    qtbot.addWidget(win)
    page = win.analyses.page("subnets")
    assert not page.run_button.isEnabled() and "ST" in page.run_button.toolTip()
    assert not win.analyses.run("subnets")
    assert win.analyses.page("compare").run_button.isEnabled()  # trains its own models


def test_block_importance_colours_the_graph(qtbot, window) -> None:  # noqa: ANN001
    panel = window.analyses
    window.tabs.setCurrentWidget(window.explore_tab)
    assert window.graph.importance is None
    with qtbot.waitSignal(panel.reportReady, timeout=60000) as sig:
        assert window.set_colour_mode("ct")  # no result yet: measures it first
    report = sig.args[1]
    assert sig.args[0] == "importance" and report["bn"] == window.bn_mode
    qtbot.waitUntil(lambda: window.graph.importance is not None, timeout=5000)
    assert window.graph.importance == pytest.approx(report["importance"]["ct"])
    assert "CT" in window.graph.importance_title and window.colour_box.currentData() == "ct"
    window.colour_box.setCurrentIndex(window.colour_box.findData("st"))  # cached: no new run
    assert panel.running is None
    assert window.graph.importance == pytest.approx(report["importance"]["st"])
    # the colours follow the BN setting of the accuracy cards
    with qtbot.waitSignal(panel.reportReady, timeout=60000) as recal:
        window.set_bn_mode("recalibrate")
    assert recal.args[1]["bn"] == "recalibrate" and "BN recalibrate" in window.graph.importance_title
    assert window.graph.importance == pytest.approx(recal.args[1]["importance"]["st"])
    window.set_bn_mode("main")
    qtbot.waitUntil(lambda: panel.running is None and "BN main" in window.graph.importance_title, timeout=60000)
    window.set_colour_mode("stage")
    assert window.graph.importance is None
    # the page's buttons colour the graph too
    panel.page("importance").show_buttons["ct"].click()
    assert window.graph.importance == pytest.approx(report["importance"]["ct"])
    # other models: the colours are stale and are measured again
    with qtbot.waitSignal(panel.reportReady, timeout=60000):
        assert window.open_checkpoint(window.session.slot("ct").path, "ct")
    qtbot.waitUntil(lambda: window.graph.importance is not None, timeout=5000)


def test_compare_trains_and_opens_its_runs(qtbot, window, tmp_path: Path) -> None:  # noqa: ANN001
    panel = window.analyses
    page = panel.page("compare")
    with qtbot.waitSignal(panel.reportReady, timeout=180000) as sig:
        assert panel.run("compare", model="resnet20", dataset="digits", epochs=1, methods="ct,st", isolate=False,
                         runs_root=str(tmp_path))
    report = sig.args[1]
    assert [r["method"] for r in report["methods"]] == ["ct", "st"]
    assert all(Path(r["run"]).is_relative_to(tmp_path) for r in report["methods"])
    assert page.open_button.isEnabled() and page.result.table.rowCount() == 2
    page.open_button.click()
    assert window.tabs.currentWidget() is window.explore_tab
    assert Path(window.session.slot("st").path) == Path(report["methods"][1]["run"])


def test_closing_mid_analysis_returns_quickly(qtbot, make_window) -> None:  # noqa: ANN001
    win = make_window()
    with qtbot.waitSignal(win.analyses.runner.progress, timeout=30000):
        win.analyses.run("robustness", max_k=8, repeats=300, max_swaps=3)
    t0 = time.perf_counter()
    win.close()
    assert time.perf_counter() - t0 < 5.0
    assert win.analyses.running is None


def test_runner_progress_cancel_and_errors(qtbot) -> None:  # noqa: ANN001
    from st_app.core.experiments import ExperimentCancelled

    runner = AnalysisRunner(max_rate_hz=1000)
    seen: list[int] = []
    runner.progress.connect(lambda _n, d, _t: seen.append(d))
    gate = threading.Event()

    def job(progress, should_stop, partial):  # noqa: ANN001, ANN202
        for i in range(1, 1000):
            if should_stop():
                raise ExperimentCancelled("stopped")
            progress(i, 1000)
            if i == 3:
                gate.set()
            time.sleep(0.002)
        return {"done": True}

    with qtbot.waitSignal(runner.cancelled, timeout=10000):
        assert runner.start("a", job)
        assert not runner.start("b", job)  # one at a time
        assert gate.wait(5)
        runner.cancel()
    assert seen and seen == sorted(seen) and runner.running is None

    with qtbot.waitSignal(runner.failed, timeout=10000) as sig:
        runner.start("c", lambda **_: {}["missing"])
    assert sig.args[0] == "c" and "KeyError" in sig.args[1] and "KeyError" in runner.last_traceback
    parts: list[dict] = []
    runner.partial.connect(lambda _n, r: parts.append(r))
    def two_parts(partial, **_):  # noqa: ANN001, ANN003, ANN202
        partial({"x": [1]})
        return {"x": [1, 2]}

    with qtbot.waitSignal(runner.finished, timeout=10000) as sig:
        runner.start("d", two_parts)
    assert sig.args == ["d", {"x": [1, 2]}] and parts == [{"x": [1]}]


def test_presentation_mode_enlarges_the_plots(qtbot, window) -> None:  # noqa: ANN001
    panel = window.analyses
    page = panel.page("importance")
    with qtbot.waitSignal(panel.reportReady, timeout=60000):
        panel.run("importance")
    item = page.result.plots[0].getPlotItem()
    assert item.st_font_scale == pytest.approx(0.8) and item.legend is not None
    window.set_presentation(True)
    try:
        assert item.st_font_scale == pytest.approx(1.25)
        assert item.legend is not None and len(item.legend.items) == 2  # redrawn: CT and ST, once each
        assert page.run_button.font().pointSizeF() >= 13 or page.run_button.font().pixelSize() >= 17
    finally:
        window.set_presentation(False)
    assert item.st_font_scale == pytest.approx(0.8) and len(item.legend.items) == 2


def test_open_a_saved_report_and_reject_bad_files(qtbot, window, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from PySide6.QtWidgets import QMessageBox

    panel = window.analyses
    with qtbot.waitSignal(panel.reportReady, timeout=60000):
        panel.run("importance")
    saved = panel.page("importance").save_to(tmp_path / "rep")
    report = json.loads(saved.read_text())
    errors: list[str] = []
    monkeypatch.setattr(QMessageBox, "critical", lambda _p, _t, text: errors.append(text))
    bad = tmp_path / "bad.json"
    for text, expected in (("{not json", "not valid JSON"), ('{"analysis": "nope"}', "not an ST Lab"),
                           (json.dumps({**report, "analysis": "robustness"}), "incomplete robustness report")):
        bad.write_text(text)
        assert not panel.open_report(bad)
        assert expected in errors[-1]
    panel.show_page("loafing")
    assert panel.open_report(saved)
    page = panel.page("importance")
    assert panel.stack.currentWidget() is page and page.result.report["importance"] == report["importance"]
    assert page.result.table.rowCount() == 18 and "Opened" in page.status.text()


def test_loafing_page_trains_the_plans_it_is_given(qtbot, window) -> None:  # noqa: ANN001
    panel = window.analyses
    page = panel.page("loafing")
    page.plans.setText("")
    assert window.apply_plan_text("0|3,4|6")
    page.add_plan_button.click()
    page.add_plan_button.click()  # once is enough
    assert page.plans.text() == "0|3,4|6"
    with qtbot.waitSignal(panel.reportReady, timeout=120000) as sig:
        assert panel.run("loafing", epochs=1)
    report = sig.args[1]
    assert [r["plan"] for r in report["results"]] == ["0|3,4|6"]
    row = report["results"][0]
    assert row["alone_epochs"] == 1 and report["overrides"] == {"epochs": 1}
    assert len(row["alone_curve"]) == 1 and row["alone_curve"][-1] == pytest.approx(row["alone"], abs=1e-3)
    assert page.result.table.rowCount() == 1 and "inside CT" in page.summary.text()


def test_double_click_opens_a_result_row_in_explore(qtbot, window) -> None:  # noqa: ANN001
    panel = window.analyses
    page = panel.page("subnets")
    with qtbot.waitSignal(panel.reportReady, timeout=60000):
        panel.run("subnets")
    table = page.result.table
    header = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    row = next(r for r in range(table.rowCount()) if table.item(r, header.index("plan")).text() == "0|3|6")
    table.cellDoubleClicked.emit(row, 0)
    assert window.plan_text() == "0|3|6" and window.tabs.currentWidget() is window.explore_tab


def test_partial_results_are_drawn_and_a_cancel_restores_the_last_complete_one(qtbot, window) -> None:  # noqa: ANN001
    panel = window.analyses
    page = panel.page("robustness")
    with qtbot.waitSignal(panel.runner.partial, timeout=60000) as part:
        assert panel.run("robustness", max_k=2, repeats=2, max_swaps=1)
    assert set(part.args[1]["delete_one"]) == {"ct"}  # CT done, ST still running
    assert "partial" in page.summary.text() and not page.save_button.isEnabled()
    assert page.result.table.rowCount() > 0
    with qtbot.waitSignal(panel.reportReady, timeout=60000):
        pass
    complete = page.result.report
    assert set(complete["delete_one"]) == {"ct", "st"} and "partial" not in page.summary.text()
    assert page.save_button.isEnabled()
    # a longer run, cancelled after its CT half was drawn: the complete result comes back
    with qtbot.waitSignal(panel.runner.partial, timeout=60000):
        assert panel.run("robustness", max_k=8, repeats=300, max_swaps=3)
    assert page.result.report["repeats"] == 300
    with qtbot.waitSignal(panel.runner.cancelled, timeout=30000):
        panel.cancel()
    assert page.result.report is complete and page.result.report["repeats"] == 2
    assert "partial" not in page.summary.text() and page.progress.format() == "cancelled"


def test_save_dialog_asks_before_replacing_a_report(qtbot, window, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    panel = window.analyses
    page = panel.page("importance")
    with qtbot.waitSignal(panel.reportReady, timeout=60000):
        panel.run("importance")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path))
    asked: list[str] = []
    answer = [QMessageBox.StandardButton.No]
    monkeypatch.setattr(QMessageBox, "question", lambda _p, _t, text, *a: asked.append(text) or answer[0])
    page.save_dialog()
    saved = (tmp_path / "importance.json").read_text()
    assert not asked  # nothing to replace yet
    (tmp_path / "importance.json").write_text('{"keep": true}')
    page.save_dialog()
    assert len(asked) == 1 and (tmp_path / "importance.json").read_text() == '{"keep": true}'
    answer[0] = QMessageBox.StandardButton.Yes
    page.save_dialog()
    assert json.loads((tmp_path / "importance.json").read_text())["importance"] == json.loads(saved)["importance"]


def test_a_result_computed_on_replaced_models_says_so(qtbot, window) -> None:  # noqa: ANN001
    panel = window.analyses
    page = panel.page("robustness")
    with qtbot.waitSignal(panel.runner.progress, timeout=30000):
        assert panel.run("robustness", max_k=8, repeats=100, max_swaps=3)
    ct_path = window.session.slot("ct").path
    assert window.open_checkpoint(ct_path, "ct")  # a new load while the analysis runs
    with qtbot.waitSignal(panel.reportReady, timeout=120000) as sig:
        pass
    assert sig.args[1]["checkpoints"]["ct"]["path"] == str(ct_path)
    assert "changed since" in page.status.text()


def test_page_settings_round_trip_and_ignore_values_of_the_wrong_kind(qtbot, settings) -> None:  # noqa: ANN001
    from st_app.gui.analyses.pages import ComparePage, LoafingPage

    page = ComparePage(settings)
    qtbot.addWidget(page)
    page.apply_settings({"bn": "recalibrate", "calib_n": 300, "seed": 7, "model": "resnet32", "dataset": "mnist",
                         "epochs": 3, "batch_size": 32, "lr": 0.1, "isolate": False, "runs_root": "/tmp/x",
                         "methods": "ct,sd"})
    expected = {"bn": "recalibrate", "calib_n": 300, "seed": 7, "model": "resnet32", "dataset": "mnist", "epochs": 3,
                "batch_size": 32, "lr": 0.1, "isolate": False, "runs_root": "/tmp/x", "methods": "ct,sd"}
    assert page.options() == expected
    page.save_settings()
    again = ComparePage(settings)
    qtbot.addWidget(again)
    assert again.options() == expected
    # wrong kinds, unknown choices and empty names change nothing
    again.apply_settings({"bn": "main net's (paper)", "calib_n": "300", "model": "resnet9000", "dataset": "",
                          "lr": 1, "isolate": "yes", "runs_root": "", "epochs": 2.5})
    assert again.options() == expected
    loafing = LoafingPage(settings)
    qtbot.addWidget(loafing)
    loafing.apply_settings({"plans": "0|3|6", "epochs": 2})
    loafing.apply_settings({"plans": ""})  # empty plans mean the default sub-nets
    assert loafing.options()["plans"] == "" and loafing.options()["epochs"] == 2
