import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_inprocess(capsys, *args):
    """Same entry point as ``python -m st_app``, without a new interpreter per case."""
    from st_app.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def run(*args, check=True):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "st_app", *args], capture_output=True, text=True, env=env, cwd=ROOT)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "st"
    proc = run("train", "--model", "resnet20", "--dataset", "digits", "--method", "st", "--epochs", "2",
               "--seed", "0", "--out", str(out), "--threads", "1")
    assert "test accuracy" in proc.stdout
    return out


def test_help_everywhere():
    assert "train" in run("--help").stdout
    for cmd in ("train", "eval", "export"):
        out = run(cmd, "--help").stdout
        assert "--help" in out and ("--checkpoint" in out or "--out" in out)


def test_train_writes_a_run(run_dir):
    assert (run_dir / "model.safetensors").exists()
    assert "python -m st_app train" in (run_dir / "command.txt").read_text()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]


def test_eval_json_all_plans(run_dir):
    out = json.loads(run("eval", "--checkpoint", str(run_dir), "--plans", "all", "--json").stdout)
    assert out["checkpoint"] == str(run_dir) and out["bn"] == "main" and out["n_images"] == 360
    assert len(out["results"]) == 27
    assert {"plan", "depths", "accuracy"} <= set(out["results"][0])
    accs = [r["accuracy"] for r in out["results"]]
    assert out["summary"]["min"] == pytest.approx(min(accs), abs=1e-3)
    assert set(out["summary"]) == {"mean", "std", "min", "max"}


def test_eval_several_plans_and_recalibrate(run_dir, capsys):
    out = json.loads(run_inprocess(capsys, "eval", "--checkpoint", str(run_dir), "--plans", "0|3,4|6;depths:1,1,1;main",
                         "--bn", "recalibrate", "--json").stdout)
    assert [r["plan"] for r in out["results"]] == ["0|3,4|6", "0|3|6", "0,1,2|3,4,5|6,7,8"]
    assert out["results"][1]["depths"] == [1, 1, 1] and out["bn"] == "recalibrate"


def test_export_verify(run_dir, tmp_path):
    proc = run("export", "--checkpoint", str(run_dir), "--plan", "0|3,4|6", "--out", str(tmp_path / "s.onnx"), "--verify")
    assert (tmp_path / "s.onnx").stat().st_size > 1000
    assert "max abs difference" in proc.stdout and "CPUExecutionProvider" in proc.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["eval", "--plans", "0|4,3|6"], "permuting blocks of different shapes"),
        (["eval", "--plans", "0,1|2"], "malformed plan"),
        (["eval", "--plans", "9|3|6"], "unknown block 9"),
        (["export", "--plan", "0,0|3|6", "--out", "x.onnx"], "repeated block 0"),
    ],
)
def test_bad_plans_exit_with_one_line(run_dir, args, message, capsys):
    proc = run_inprocess(capsys, args[0], "--checkpoint", str(run_dir), *args[1:])
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_bad_inputs_exit_with_one_line(tmp_path, capsys):
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 100)
    cases = [
        (["eval", "--checkpoint", str(tmp_path / "junk.safetensors")], "not a readable safetensors"),
        (["eval", "--checkpoint", str(tmp_path / "missing")], "checkpoint not found"),
        (["train", "--dataset", "cifar10", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r")], "CIFAR-10"),
        (["train", "--dataset", "nope", "--out", str(tmp_path / "r")], "unknown data set"),
        (["train", "--method", "ct", "--subnets", "3", "--out", str(tmp_path / "r")], "do not apply to ct"),
    ]
    for args, message in cases:
        proc = run_inprocess(capsys, *args)
        assert proc.returncode == 2, args
        assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
