"""Data-parallel training with real torchrun processes (gloo on CPU, one thread each).

The reference is a single process that computes every global batch as the same per-rank
parts (BatchNorm normalising each part separately, as each rank does), with the same sub-net
draws for every part, and averages the parts' gradients as DDP does.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from st_app.cli import main
from st_app.core.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parent.parent
DATA = "synthetic:1,8,10,160,64"  # 160 images: two full global batches and a part one of 32
WORLD = 2
BATCH = 64


def _torchrun(*args: str, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
           "--nproc-per-node", str(WORLD), "-m", "st_app", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)


def _config(method: str, **options: object) -> TrainConfig:
    return TrainConfig(model="resnet20", dataset=DATA, method=method, method_options=dict(options), epochs=2,
                       batch_size=BATCH, lr=0.05, seed=0, device="cpu")


def _reference(config: TrainConfig) -> dict[str, torch.Tensor]:
    """Single process: each global batch as WORLD parts, gradients averaged over the parts."""
    tr = Trainer(config)
    model, method, opt = tr.model, tr.method, tr.optimizer
    for epoch in range(config.epochs):
        rng = random.Random(config.seed * 1_000_003 + epoch)
        parts = [tr.data.train_batches(BATCH, generator=torch.Generator().manual_seed(config.seed * 1_000_003 + epoch),
                                       rank=r, world_size=WORLD) for r in range(WORLD)]
        model.train()
        for batch in zip(*parts):
            for group in opt.param_groups:
                group["lr"] = tr.lr_at(tr.global_step)
            opt.zero_grad(set_to_none=True)
            state = rng.getstate()
            for xb, yb in batch:
                rng.setstate(state)  # every rank draws the same sub-nets and sizes
                method.step(model, xb, yb, rng)
            for p in model.parameters():
                if p.grad is not None:
                    p.grad.div_(WORLD)
            opt.step()
            tr.global_step += 1
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _weights_only(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


@pytest.mark.slow
@pytest.mark.parametrize("method,flags,options", [
    ("ct", [], {}),
    ("st", [], {}),  # prefix sharing: one backward of CE + KL
    ("st", ["--no-share-prefix"], {"share_prefix": False}),  # the paper's two backwards, no_sync on the first
])
def test_two_ranks_match_the_single_process_reference(tmp_path, method, flags, options):
    out = tmp_path / "run"
    proc = _torchrun("train", "--model", "resnet20", "--dataset", DATA, "--method", method, *flags,
                     "--epochs", "2", "--batch-size", str(BATCH), "--lr", "0.05", "--seed", "0", "--device", "cpu",
                     "--threads", "1", "--quiet", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("test accuracy") == 1  # rank 0 alone reports
    meta = __import__("json").loads((out / "meta.json").read_text())
    assert meta["runtime"]["world_size"] == WORLD and meta["runtime"]["per_device_batch"] == BATCH // WORLD
    got = _weights_only(load_file(str(out / "model.safetensors")))
    want = _weights_only(_reference(_config(method, **options)))
    assert got.keys() == want.keys()
    worst = max(float((got[k] - want[k]).abs().max()) for k in got)
    assert worst <= 1e-4, f"max abs difference {worst:.3g}"
    if method != "ct":
        return
    # the 2-process checkpoint evaluates, and resumes on another world size (one process)
    assert main(["eval", "--checkpoint", str(out), "--device", "cpu", "--json"]) == 0
    assert main(["train", "--resume", "--out", str(out), "--epochs", "3", "--quiet", "--threads", "1"]) == 0
    assert __import__("json").loads((out / "meta.json").read_text())["epoch"] == 3


def test_sync_bn_on_cpu_is_one_clear_error(tmp_path, capsys):
    code = main(["train", "--dataset", DATA, "--epochs", "1", "--device", "cpu", "--sync-bn", "--quiet",
                 "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "SyncBatchNorm" in err[0] and "CUDA" in err[0]
    assert not (tmp_path / "r" / "model.safetensors").exists()
