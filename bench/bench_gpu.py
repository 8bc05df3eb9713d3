"""Training throughput on a GPU: plain PyTorch loops vs the project's Trainer (not a test).

    python bench/bench_gpu.py                     # CUDA: resnet56@32 (batch 128, 512), ResNet-50@224 (128)
    python bench/bench_gpu.py --device cpu        # a quick smoke run on the CPU (tiny sizes)
    python bench/bench_gpu.py --json out.json     # also write every figure as JSON

For each model and batch it prints images/s and peak memory of:
  plain-fp32       a plain loop: forward, cross-entropy, backward, SGD, fp32, NCHW
  plain-bf16-cl    the same loop under bf16 autocast with channels-last tensors
  ct / st / st-paper / stpp   the project's Trainer (st: prefix sharing, one backward;
                   st-paper: the paper's loop, one backward per forward)
and the ratios the README's targets are stated in. Data are synthetic tensors on the device,
so the figures measure the training step, not data loading.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from st_app.core.data import load_synthetic  # noqa: E402
from st_app.core.models import build_model  # noqa: E402
from st_app.core.train import TrainConfig, Trainer  # noqa: E402

PROJECT_RUNS = {
    "ct": ("ct", {}),
    "st": ("st", {}),
    "st-paper": ("st", {"share_prefix": False}),
    "stpp": ("stpp", {}),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def plain_loop(arch: str, size: int, batch: int, steps: int, warmup: int, device: torch.device,
               bf16_cl: bool) -> dict[str, Any]:
    """The baseline any PyTorch user writes: no plans, no events, no checkpoints."""
    torch.manual_seed(0)
    model = build_model(arch, 10, 3, size).to(device)
    fmt = torch.channels_last if bf16_cl else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if bf16_cl else torch.autocast(device.type, enabled=False)
    _reset_peak(device)
    t0 = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with amp:
            logits = model(x)
        F.cross_entropy(logits.float(), y).backward()
        opt.step()
    _sync(device)
    seconds = time.perf_counter() - t0
    return {"img_per_s": steps * batch / seconds, "peak_mib": _peak_mib(device)}


def project_run(arch: str, size: int, batch: int, steps: int, warmup: int, device: torch.device,
                method: str, options: dict[str, Any], precision: str) -> dict[str, Any]:
    """The Trainer exactly as ``python -m st_app train`` runs it, timed over ``steps`` steps."""
    n_train = batch * (warmup + steps + 1)  # one epoch outlasts the measurement
    data = load_synthetic(f"3,{size},10,{n_train},{batch}")
    config = TrainConfig(model=arch, dataset=data.name, method=method, method_options=dict(options), epochs=1,
                         batch_size=batch, lr=0.05, seed=0, device=str(device), precision=precision)
    trainer = Trainer(config, data=data, probe_images=None)
    del data
    _reset_peak(device)
    steps_iter = trainer.iter_steps()
    t0 = 0.0
    for i, _ in enumerate(steps_iter):
        if i + 1 == warmup:
            _sync(device)
            t0 = time.perf_counter()
        if i + 1 == warmup + steps:
            break
    _sync(device)
    seconds = time.perf_counter() - t0
    steps_iter.close()
    out = {"img_per_s": steps * batch / seconds, "peak_mib": _peak_mib(device),
           "precision": trainer.precision.name, "channels_last": trainer.precision.channels_last}
    del trainer
    return out


def bench(cases: list[tuple[str, int, int]], steps: int, warmup: int, device: torch.device,
          precision: str, only: set[str] | None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for arch, size, batch in cases:
        key = f"{arch}@{size} batch {batch}"
        row: dict[str, Any] = {}
        for name, bf16 in (("plain-fp32", False), ("plain-bf16-cl", True)):
            if only is None or name in only:
                row[name] = plain_loop(arch, size, batch, steps, warmup, device, bf16)
                _print(key, name, row[name])
        for name, (method, options) in PROJECT_RUNS.items():
            if only is None or name in only:
                row[name] = project_run(arch, size, batch, steps, warmup, device, method, options, precision)
                _print(key, name, row[name])
        ratios = {}
        if "ct" in row and "plain-bf16-cl" in row:
            ratios["ct / plain-bf16-cl"] = row["ct"]["img_per_s"] / row["plain-bf16-cl"]["img_per_s"]
        if "ct" in row and "plain-fp32" in row:
            ratios["ct / plain-fp32"] = row["ct"]["img_per_s"] / row["plain-fp32"]["img_per_s"]
        for name in ("st", "st-paper", "stpp"):
            if "ct" in row and name in row:  # time ratio: how much longer a step takes than CT's
                ratios[f"{name} / ct (time)"] = row["ct"]["img_per_s"] / row[name]["img_per_s"]
        for k, v in ratios.items():
            print(f"  {key:28s} {k:24s} {v:6.2f}x", flush=True)
        results[key] = {"runs": row, "ratios": ratios}
    return results


def _print(key: str, name: str, r: dict[str, Any]) -> None:
    mem = f"{r['peak_mib']:8.0f} MiB" if r.get("peak_mib") is not None else "        -"
    print(f"  {key:28s} {name:14s} {r['img_per_s']:10.0f} img/s  peak {mem}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (a tiny smoke run)")
    p.add_argument("--precision", default="auto", help="the project's --precision (default auto)")
    p.add_argument("--steps", type=int, default=None, help="measured steps per run")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (cudnn autotuning)")
    p.add_argument("--only", default=None, help="comma-separated subset of runs, e.g. plain-bf16-cl,ct,st")
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device here; use --device cpu for a smoke run", file=sys.stderr)
        return 2
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the Trainer sets it: the plain loops get it too
        cases = [("resnet56", 32, 128), ("resnet56", 32, 512), ("resnet50", 224, 128)]
        steps, warmup = args.steps or 40, args.warmup or 15
        name = torch.cuda.get_device_name(device)
    else:
        torch.set_num_threads(max(1, torch.get_num_threads()))
        cases = [("resnet20", 8, 32)]
        steps, warmup = args.steps or 3, args.warmup or 2
        name = "cpu"
    print(f"device: {name}, torch {torch.__version__}, {steps} measured steps after {warmup} warm-up", flush=True)
    only = set(args.only.split(",")) if args.only else None
    results = bench(cases, steps, warmup, device, args.precision, only)
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "torch": torch.__version__, "steps": steps,
                                               "warmup": warmup, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
