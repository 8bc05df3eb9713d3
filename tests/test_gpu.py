"""The GPU fast path on a real CUDA device (skipped where there is none, as on CI).

Run on a lent GPU machine with ``PYTHONPATH=. python -m pytest tests/test_gpu.py``.
"""

from __future__ import annotations

import json

import pytest
import torch

from st_app.cli import main
from st_app.core.checkpoint import load_checkpoint
from st_app.core.data import load_digits
from st_app.core.evaluate import select_plans, sweep
from st_app.core.precision import resolve_precision, use_precision
from st_app.core.resources import resource_path
from st_app.core.train import TrainConfig, Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _train(tmp_path, **kw):
    cfg = dict(model="resnet20", dataset="digits", method="ct", epochs=3, batch_size=64, seed=0, device="cuda")
    cfg.update(kw)
    tr = Trainer(TrainConfig(**cfg), out_dir=tmp_path / "run")
    return tr, tr.run()


def test_auto_is_bf16_channels_last_and_trains(tmp_path):
    tr, history = _train(tmp_path, epochs=5)
    assert tr.precision.name == "bf16" and tr.precision.channels_last
    assert history[-1]["test_acc"] > 80
    runtime = json.loads((tmp_path / "run" / "meta.json").read_text())["runtime"]
    assert runtime["precision"] == "bf16" and runtime["channels_last"] and runtime["device_name"]


@pytest.mark.parametrize("method,options", [("st", {}), ("st", {"share_prefix": False}), ("stpp", {}), ("sd", {})])
def test_every_method_runs_in_bf16(tmp_path, method, options):
    _, history = _train(tmp_path, method=method, method_options=options, epochs=2)
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in history)


def test_fp16_uses_a_grad_scaler(tmp_path):
    tr, history = _train(tmp_path, precision="fp16", epochs=3)
    assert tr.scaler is not None and history[-1]["test_acc"] > 50


def test_sync_bn_and_compile_run(tmp_path):
    tr, history = _train(tmp_path, sync_bn=True, compile=True, epochs=1)
    assert any(isinstance(m, torch.nn.SyncBatchNorm) for m in tr.model.modules())
    assert len(history) == 1


def test_bf16_sub_net_accuracy_is_close_to_fp32():
    """The documented tolerance: bf16 evaluation changes a sub-net's accuracy by little."""
    ck = load_checkpoint(resource_path("checkpoints", "digits-resnet20-ct"), device="cuda")
    data = load_digits().to("cuda")
    plans, _ = select_plans(ck.model, 1000, 0)
    fp32 = sweep(ck.model, plans, data.test_x, data.test_y).accuracies
    with use_precision(resolve_precision("bf16", "cuda")):
        bf16 = sweep(ck.model, plans, data.test_x, data.test_y).accuracies
    diff = abs(fp32 - bf16)
    print(f"bf16 vs fp32 over {len(plans)} sub-nets: mean |diff| {diff.mean():.3f}, max {diff.max():.3f} points")
    assert diff.mean() <= 0.5 and diff.max() <= 2.0


def test_cli_train_eval_resume_on_cuda(tmp_path):
    out = str(tmp_path / "r")
    assert main(["train", "--dataset", "digits", "--method", "st", "--epochs", "2", "--device", "cuda",
                 "--batch-size", "256", "--lr-scaling", "linear", "--quiet", "--out", out]) == 0
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    assert meta["runtime"]["base_lr"] == pytest.approx(0.05 * 256 / 64)
    assert main(["eval", "--checkpoint", out, "--plans", "all", "--bn", "recalibrate", "--json"]) == 0
    assert main(["train", "--resume", "--out", out, "--epochs", "3", "--quiet"]) == 0
