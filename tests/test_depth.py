"""``analyze depth``: figure 2's depth trend as one command; runs are reused and resumed."""

from __future__ import annotations

import json

import pytest

from st_app.cli import main
from st_app.core.train import TrainConfig, Trainer

DATA = "synthetic:1,8,10,64,32"
ARGS = ["analyze", "depth", "--models", "resnet32,resnet20", "--dataset", DATA, "--limit", "6",
        "--calib-images", "16", "--threads", "1", "--quiet", "--json"]


@pytest.mark.slow
def test_depth_sweep_reports_every_depth_and_reuses_its_runs(tmp_path, capsys):
    runs = tmp_path / "runs"
    # an interrupted earlier sweep: resnet20's CT run stopped after 1 of 2 epochs
    Trainer(TrainConfig(model="resnet20", dataset=DATA, method="ct", epochs=1, seed=0, device="cpu"),
            out_dir=runs / "resnet20-ct").run()
    assert main([*ARGS, "--epochs", "2", "--runs", str(runs), "--out", str(tmp_path / "rep")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["analysis"] == "depth" and report["models"] == ["resnet20", "resnet32"]  # shallow first
    assert report["bn"] == ["main", "recalibrate"] and report["smallest_plan"] == "depths:1,1,1"
    assert report["alone"]["how"] == "trained" and 0 <= report["alone"]["accuracy"] <= 100
    r20, r32 = report["rows"]
    assert r20["runs"]["ct"]["how"] == "resumed" and r20["runs"]["st"]["how"] == "trained"
    assert (r20["n_subnets"], r32["n_subnets"]) == (6, 6) and r20["sampled"] and r32["sampled"]
    for row in report["rows"]:
        for method in ("ct", "st"):
            for mode in ("main", "recalibrate"):
                assert set(row["subnets"][method][mode]) == {"mean", "std", "min", "max"}
                assert 0 <= row["smallest"][method][mode] <= 100
    assert set(report["trend"]) == {"ct/main", "ct/recalibrate", "st/main", "st/recalibrate"}
    out = tmp_path / "rep"
    assert (out / "depth.json").exists() and (out / "depth.csv").read_text().count("\n") == 1 + 2 * 2 * 2
    assert sum(1 for f in report["figures"] if f.endswith(".png")) == 4  # smallest + sub-nets, per BN
    stamp = (runs / "resnet32-st" / "model.safetensors").stat().st_mtime_ns
    assert json.loads((runs / "resnet20-ct" / "meta.json").read_text())["epoch"] == 2

    # rerun: nothing is retrained
    assert main([*ARGS, "--epochs", "2", "--runs", str(runs), "--out", str(tmp_path / "rep2"), "--bn", "main"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["alone"]["how"] == "reused"
    assert all(r["runs"][m]["how"] == "reused" for r in again["rows"] for m in ("ct", "st"))
    assert (runs / "resnet32-st" / "model.safetensors").stat().st_mtime_ns == stamp
    assert again["rows"][1]["runs"]["st"]["main_acc"] == r32["runs"]["st"]["main_acc"]

    # a run folder with another recipe is refused, not overwritten
    assert main([*ARGS, "--epochs", "2", "--runs", str(runs), "--out", str(tmp_path / "rep3"), "--lr", "0.1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lr=0.05" in err[0] and "--runs" in err[0]


def test_depth_sweep_needs_one_family_and_ct(tmp_path, capsys):
    assert main([*ARGS, "--models", "resnet20,resnet18", "--epochs", "1", "--out", str(tmp_path / "a")]) == 2
    assert "one family" in capsys.readouterr().err
    assert main([*ARGS, "--models", "densenet-bc-40,densenet-bc-100", "--epochs", "1",
                 "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "these differ" in err and "'analyze loafing'" in err and len(err.strip().splitlines()) == 1
    assert not any((tmp_path / "d").iterdir())  # refused before anything was trained or written
    assert main([*ARGS, "--methods", "st", "--epochs", "1", "--out", str(tmp_path / "b")]) == 2
    assert "needs ct" in capsys.readouterr().err
