"""``python -m st_app analyze ...``: JSON keys, CSV + PNG/SVG files, one-line errors (exit 2)."""

import json

import pytest

from st_app.cli import main
from st_app.core.data import load_dataset
from st_app.core.train import TrainConfig, Trainer

SYNTH = "synthetic:1,8,10,128,64"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("analyze_runs")
    data = load_dataset(SYNTH)
    for name, model, method in (("ct", "resnet20", "ct"), ("st", "resnet20", "st"), ("st32", "resnet32", "st")):
        cfg = TrainConfig(model=model, dataset=SYNTH, method=method, epochs=1, seed=0, device="cpu")
        Trainer(cfg, data=data, out_dir=root / name).run()
    return root


def _run(capsys, *argv):
    code = main(["analyze", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys, *argv):
    code, out, err = _run(capsys, *argv, "--json", "--device", "cpu")
    assert code == 0, err
    return json.loads(out)


def _assert_figures(report, expected):
    files = report["figures"]
    assert len(files) == 2 * expected
    for f in files:
        data = open(f, "rb").read()
        assert len(data) > 1000, f
        if f.endswith(".png"):
            assert data.startswith(b"\x89PNG")
        else:
            assert f.endswith(".svg") and b"<svg" in data[:2000] and b"</svg>" in data


def _assert_ids(report, runs):
    for name in ("ct", "st"):
        ck = report["checkpoints"][name]
        assert ck["path"] == str(runs / name) and ck["epoch"] == 1
    assert {"bn", "seed", "n_images", "calib_images"} <= set(report)


def test_subnets_json_csv_and_figures(runs, tmp_path, capsys):
    out = tmp_path / "report"
    rep = _json(capsys, "subnets", "--ct", runs / "ct", "--st", runs / "st", "--out", out, "--bn", "recalibrate",
                "--calib-images", 100)
    _assert_ids(rep, runs)
    assert rep["bn"] == "recalibrate" and rep["calib_images"] == 100 and rep["n_images"] == 64
    for name in ("ct", "st"):
        assert {"mean", "std", "min", "max", "results"} <= set(rep[name])
        assert len(rep[name]["results"]) == 27 and {"plan", "accuracy"} <= set(rep[name]["results"][0])
    assert json.loads((out / "subnets.json").read_text())["ct"] == rep["ct"]
    lines = (out / "subnets.csv").read_text().splitlines()
    assert lines[0] == "plan,depths,ct,st,bn" and len(lines) == 28
    _assert_figures(rep, 2)


def test_robustness_json_and_errors(runs, tmp_path, capsys):
    out = tmp_path / "rob"
    rep = _json(capsys, "robustness", "--ct", runs / "ct", "--st", runs / "st", "--out", out, "--max-k", 2,
                "--repeats", 3, "--seed", 5)
    _assert_ids(rep, runs)
    assert rep["seed"] == 5 and rep["repeats"] == 3
    assert [r["block"] for r in rep["delete_one"]["ct"]] == list(range(9))
    assert {"block", "accuracy"} <= set(rep["delete_one"]["st"][0])
    for key in ("delete_k", "swap_k"):
        assert [r["k"] for r in rep[key]["ct"]] == [1, 2] and {"k", "mean", "std"} <= set(rep[key]["st"][0])
    again = _json(capsys, "robustness", "--ct", runs / "ct", "--st", runs / "st", "--out", out, "--max-k", 2,
                  "--repeats", 3, "--seed", 5, "--force")  # replacing a report needs --force
    assert again["draws"] == rep["draws"] and again["delete_k"] == rep["delete_k"]
    assert (out / "robustness.csv").read_text().startswith("experiment,model,block_or_k")
    _assert_figures(rep, 3)
    code, stdout, err = _run(capsys, "robustness", "--ct", runs / "ct", "--st", runs / "st", "--out", out,
                             "--max-k", 10, "--force")
    assert code == 2 and stdout == ""
    assert err.strip().count("\n") == 0 and "cannot delete k=10 blocks" in err and "9 deletable" in err


def test_ct_and_st_of_different_architectures_is_a_one_line_error(runs, tmp_path, capsys):
    for analysis in ("subnets", "robustness", "loafing"):
        code, stdout, err = _run(capsys, analysis, "--ct", runs / "ct", "--st", runs / "st32", "--out", tmp_path)
        assert code == 2 and stdout == ""
        assert err.strip().count("\n") == 0
        assert "resnet20" in err and "resnet32" in err and "same architecture" in err
    code, _, err = _run(capsys, "subnets", "--ct", runs / "nope", "--st", runs / "st", "--out", tmp_path)
    assert code == 2 and "not found" in err and err.strip().count("\n") == 0


def test_loafing_records_the_ct_recipe_and_the_epochs_override(runs, tmp_path, capsys):
    ct_config = json.loads((runs / "ct" / "meta.json").read_text())["config"]
    rep = _json(capsys, "loafing", "--ct", runs / "ct", "--st", runs / "st", "--out", tmp_path / "a",
                "--plans", "depths:1,1,1")
    _assert_ids(rep, runs)
    assert rep["recipe"] == ct_config and rep["overrides"] == {} and rep["trained_with"]["epochs"] == 1
    assert [r["plan"] for r in rep["results"]] == ["0|3|6"]
    assert {"plan", "alone", "within_ct", "within_st"} <= set(rep["results"][0])
    _assert_figures(rep, 1)
    rep = _json(capsys, "loafing", "--ct", runs / "ct", "--st", runs / "st", "--out", tmp_path / "b",
                "--epochs", 2)
    assert rep["recipe"] == ct_config and rep["overrides"] == {"epochs": 2}
    assert rep["trained_with"]["epochs"] == 2 and all(r["alone_epochs"] == 2 for r in rep["results"])
    assert len(rep["results"]) == 3 and rep["results"][0]["plan"] == "0|3|6"
    assert (tmp_path / "b" / "loafing.csv").read_text().count("\n") == 4
    code, _, err = _run(capsys, "loafing", "--ct", runs / "ct", "--st", runs / "st", "--out", tmp_path,
                        "--plans", "0|3|9")
    assert code == 2 and err.strip().count("\n") == 0 and "block 9" in err


def test_compare_in_process_json_table_and_figure(tmp_path, capsys):
    seven = ["ct", "layersup", "stagesup", "selfdistill", "sd", "st", "stpp"]  # table 1's rows
    rep = _json(capsys, "compare", "--model", "resnet20", "--dataset", SYNTH, "--epochs", 1, "--methods",
                ",".join(seven), "--out", tmp_path, "--in-process")
    assert [r["method"] for r in rep["methods"]] == seven
    assert [r["bn_reestimate"] for r in rep["methods"]] == [m == "stpp" for m in seven]
    for r in rep["methods"]:
        assert {"method", "seconds", "peak_memory_mb", "main_accuracy", "subnets_mean", "subnets_std"} <= set(r)
        assert r["seconds"] > 0 and 0 <= r["main_accuracy"] <= 100 and r["epoch"] == 1
        assert (tmp_path / "runs" / r["method"] / "model.safetensors").exists()
    assert "ru_maxrss" in rep["memory_method"] and rep["isolated"] is False
    assert rep["checkpoints"]["ct"]["path"] == str(tmp_path / "runs" / "ct")
    assert {"bn", "seed", "n_images", "calib_images"} <= set(rep)
    assert (tmp_path / "compare.csv").read_text().splitlines()[0].startswith("method,seconds,")
    _assert_figures(rep, 1)
    code, _, err = _run(capsys, "compare", "--dataset", SYNTH, "--methods", "ct,xx", "--out", tmp_path, "--force")
    assert code == 2 and "unknown method 'xx'" in err and err.strip().count("\n") == 0


def test_compare_isolated_measures_memory_in_a_fresh_process(tmp_path, capsys):
    rep = _json(capsys, "compare", "--dataset", SYNTH, "--epochs", 1, "--methods", "st", "--out", tmp_path,
                "--threads", 1)
    assert rep["isolated"] is True and "fresh process" in rep["memory_method"]
    (row,) = rep["methods"]
    assert row["method"] == "st" and row["peak_memory_mb"] >= 0 and row["process_peak_mb"] > row["peak_memory_mb"]


def test_importance_matches_delete_one_of_robustness(runs, tmp_path, capsys):
    """``analyze importance`` is figure 6a alone: the same drops as robustness' delete-one."""
    imp = _json(capsys, "importance", "--ct", runs / "ct", "--st", runs / "st", "--out", tmp_path / "imp")
    _assert_ids(imp, runs)
    _assert_figures(imp, 1)
    rob = _json(capsys, "robustness", "--ct", runs / "ct", "--st", runs / "st", "--out", tmp_path / "rob",
                "--max-k", 1, "--repeats", 1)
    for name in ("ct", "st"):
        assert len(imp["importance"][name]) == 9
        assert imp["importance"][name] == pytest.approx(rob["importance"][name], abs=1e-3)
        assert imp["main"][name] == pytest.approx(rob["main"][name], abs=1e-3)
        for row in imp["delete_one"][name]:
            assert row["accuracy"] == pytest.approx(imp["main"][name] - row["drop"], abs=1e-3)
    lines = (tmp_path / "imp" / "importance.csv").read_text().splitlines()
    assert lines[0] == "block,main,accuracy_without_block,drop,model,bn" and len(lines) == 1 + 2 * 9
