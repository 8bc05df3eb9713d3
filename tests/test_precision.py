"""Precision choices on the CPU: bf16 autocast trains, fp16 is refused in one line, the GPU
benchmark script runs as a smoke check, and evaluation honours the active precision."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from st_app.cli import main
from st_app.core.evaluate import accuracy
from st_app.core.precision import PrecisionError, eval_batch_size, resolve_precision, use_precision
from st_app.core.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parent.parent
SYN = "synthetic:1,8,10,96,48"


def test_auto_is_fp32_on_cpu_and_bf16_is_allowed():
    assert resolve_precision("auto", "cpu").name == "fp32"
    bf16 = resolve_precision("bf16", "cpu")
    assert bf16.dtype is torch.bfloat16 and not bf16.channels_last
    with pytest.raises(PrecisionError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(PrecisionError, match="unknown precision"):
        resolve_precision("fp8", "cpu")


def test_bf16_training_on_cpu_uses_autocast(tmp_path):
    cfg = TrainConfig(dataset=SYN, method="st", epochs=1, batch_size=32, device="cpu", precision="bf16")
    tr = Trainer(cfg, out_dir=tmp_path / "r")
    seen = []
    real = tr.model.forward

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(out.dtype)
        return out

    tr.model.forward = spy  # type: ignore[method-assign]
    history = tr.run()
    assert torch.bfloat16 in seen  # forwards ran under bf16 autocast
    assert len(history) == 1 and history[0]["train_loss"] == history[0]["train_loss"]  # finite
    import json

    assert json.loads((tmp_path / "r" / "meta.json").read_text())["runtime"]["precision"] == "bf16"


def test_fp16_on_cpu_is_one_clear_line(tmp_path, capsys):
    code = main(["train", "--dataset", SYN, "--epochs", "1", "--device", "cpu", "--precision", "fp16", "--quiet",
                 "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "fp16 needs a CUDA device" in err[0]


def test_evaluation_follows_the_active_precision(tiny_model):
    x, y = torch.randn(40, 1, 8, 8), torch.randint(0, 10, (40,))
    fp32 = accuracy(tiny_model, None, x, y)
    with use_precision(resolve_precision("bf16", "cpu")):
        bf16 = accuracy(tiny_model, None, x, y)
    assert abs(fp32 - bf16) <= 10.0  # bf16 may flip a few of 40 random-label predictions
    assert eval_batch_size("cpu", 32) == 512 and eval_batch_size("cuda", 32) > 512


def test_linear_lr_scaling_is_recorded():
    cfg = TrainConfig(dataset=SYN, epochs=1, batch_size=32, lr=0.1, device="cpu", lr_scaling="linear",
                      reference_batch=64)
    tr = Trainer(cfg)
    assert tr.base_lr == pytest.approx(0.05) and tr.lr_at(0) == pytest.approx(0.05)
    assert tr.runtime()["base_lr"] == pytest.approx(0.05) and tr.runtime()["world_size"] == 1


def test_gpu_benchmark_smoke_run_on_cpu(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_gpu.py"), "--device", "cpu", "--steps", "1",
                           "--warmup", "1", "--only", "plain-fp32,plain-bf16-cl,ct,st", "--json",
                           str(tmp_path / "b.json")], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("plain-fp32", "plain-bf16-cl", "ct", "st", "st / ct (time)", "ct / plain-bf16-cl"):
        assert name in proc.stdout
    import json

    figures = json.loads((tmp_path / "b.json").read_text())["results"]
    run = next(iter(figures.values()))["runs"]
    assert run["ct"]["img_per_s"] > 0 and run["st"]["precision"] == "fp32"
