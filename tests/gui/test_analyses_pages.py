"""The method comparison's table 1 methods and the Loafing page's triangle mode (tables 2-3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SYNTH = "synthetic:1,8,10,64,32"


@pytest.fixture
def window(make_window):  # noqa: ANN001, ANN201
    win = make_window()
    win.tabs.setCurrentWidget(win.analyses_tab)
    return win


def test_compare_offers_table_1s_seven_methods(qtbot, settings) -> None:  # noqa: ANN001
    from st_app.core.methods import METHOD_TITLES, METHODS
    from st_app.gui.analyses.pages import ComparePage

    page = ComparePage(settings)
    qtbot.addWidget(page)
    assert list(page.methods) == list(METHODS) and len(METHODS) == 7
    assert [b.text() for b in page.methods.values()] == [METHOD_TITLES[m] for m in METHODS]
    assert page.options()["methods"] == ",".join(METHODS)  # all checked: table 1, as the CLI's default
    assert "seven" in page.intro and "self-distillation" in page.intro


@pytest.fixture(scope="module")
def family_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """CT and ST runs of resnet20 and resnet32 (one epoch, 8x8 synthetic images): a two-size family."""
    from st_app.core.train import TrainConfig, Trainer

    root = tmp_path_factory.mktemp("family")
    runs: dict[str, list[str]] = {"ct": [], "st": []}
    for arch in ("resnet32", "resnet20"):  # biggest first: the report sorts them
        for method in ("ct", "st"):
            out = root / f"{arch}-{method}"
            Trainer(TrainConfig(model=arch, dataset=SYNTH, method=method, epochs=1, seed=0, device="cpu"),
                    out_dir=out).run()
            runs[method].append(str(out))
    return runs


def test_loafing_triangle_mode_runs_the_clis_report(qtbot, window, family_runs, tmp_path: Path,  # noqa: ANN001
                                                    capsys) -> None:
    from st_app.cli import main

    panel = window.analyses
    page = panel.page("loafing")
    assert page.needs_models and page.plans.isVisibleTo(page) and not page.run_lists["ct"].isVisibleTo(page)
    page.mode.setCurrentIndex(page.mode.findData("triangle"))
    assert not page.needs_models and not page.plans.isVisibleTo(page) and page.run_lists["st"].isVisibleTo(page)
    assert not panel.run("loafing", ct_runs=family_runs["ct"][0], st_runs=family_runs["st"][0])
    assert "at least two sizes" in page.status.text() and panel.running is None
    cts, sts = ",".join(family_runs["ct"]), ",".join(family_runs["st"])
    with qtbot.waitSignal(panel.reportReady, timeout=60000) as done:
        assert panel.run("loafing", ct_runs=cts, st_runs=sts, bn="main", calib_n=16, seed=0)
    report = done.args[1]
    assert report["analysis"] == "loafing_triangle" and report["archs"] == ["resnet20", "resnet32"]
    assert [(r["subnet"], r["inside"]) for r in report["results"]] == [
        ("resnet20", "alone"), ("resnet20", "resnet32"), ("resnet32", "alone")]
    assert page.result.table.rowCount() == 3 and "loafing triangle" in page.summary.text()
    # the same numbers as the CLI's analyze loafing --ct a,b --st a,b
    assert main(["analyze", "loafing", "--ct", cts, "--st", sts, "--calib-images", "16", "--threads", "1",
                 "--quiet", "--json", "--out", str(tmp_path / "cli")]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli["results"] == report["results"]
    # Save writes loafing_triangle.json, which opens again on this page
    out = tmp_path / "saved"
    assert page.save_to(out) == out / "loafing_triangle.json"
    page.result.clear_report()
    assert panel.open_report(out / "loafing_triangle.json") and page.result.report["archs"] == report["archs"]
    # back to one pair: the loaded models count again
    page.mode.setCurrentIndex(page.mode.findData("pair"))
    assert page.needs_models and "resnet20" in page.models_label.text()
