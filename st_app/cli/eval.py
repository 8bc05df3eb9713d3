"""``python -m st_app eval``: accuracy of the main net or of sub-networks, in either BN setting."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .args import UserError, bounded_int

__all__ = ["add_parser", "load_checkpoint_arg", "parse_plans", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    e = sub.add_parser("eval", help="accuracy of the main net or of sub-networks",
                       description="Evaluate plans of a checkpoint on its test set.")
    e.add_argument("--checkpoint", required=True, help="run folder, .safetensors, or a .pt/.pth state_dict")
    e.add_argument("--plans", default="main",
                   help="main | all | plan text ('0|3,4|6') | depths:1,2,1; several separated by ';'")
    e.add_argument("--bn", default="main", choices=["main", "recalibrate"],
                   help="BN statistics: the main net's (paper) or re-estimated per sub-net")
    e.add_argument("--calib-images", type=bounded_int("calib-images"), default=1000,
                   help="training images for --bn recalibrate")
    e.add_argument("--limit", type=bounded_int("limit"), default=1000,
                   help="with 'all': sample this many plans when there are more")
    e.add_argument("--seed", type=bounded_int("seed"), default=0, help="seed of the plan sample and calibration subset")
    e.add_argument("--dataset", default=None, help="data set (default: the one recorded in the checkpoint)")
    e.add_argument("--test-images", type=bounded_int("test-images"), default=None,
                   help="evaluate on the first N test images only (default: all)")
    e.add_argument("--data-dir", default=None,
                   help="folder of the data set files (for an image folder: the folder itself); paths recorded "
                   "in a checkpoint are never used silently")
    e.add_argument("--model", default=None, help="architecture, for foreign .pt/.pth files")
    e.add_argument("--device", default="auto")
    e.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="auto: bf16 autocast on CUDA (accuracies within a point of fp32), fp32 elsewhere")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    return e


def load_checkpoint_arg(args: argparse.Namespace) -> Any:
    from ..core.checkpoint import load_checkpoint

    return load_checkpoint(args.checkpoint, arch=getattr(args, "model", None))


def parse_plans(text: str, model: Any, limit: int, seed: int) -> tuple[list[Any], bool]:
    """``main``, ``all`` or plan texts separated by ';' -> list of plans (None = main net)."""
    from ..core.evaluate import select_plans
    from ..core.plan import SubnetPlan

    plans: list[Any] = []
    sampled = False
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        if part == "all":
            found, sampled = select_plans(model, limit, seed)
            plans.extend(found)
        else:
            plans.append(SubnetPlan.parse(part, model.layout))
    if not plans:
        raise UserError("no plans given")
    return plans, sampled


def run(args: argparse.Namespace) -> int:
    import torch

    from ..core.data import memory_budget, open_checkpoint_data
    from ..core.evaluate import sweep
    from ..core.precision import resolve_precision, use_precision
    from ..core.train import resolve_device

    device = resolve_device(args.device)
    loaded = load_checkpoint_arg(args)
    model = loaded.model.to(device)
    data = open_checkpoint_data(loaded.meta, args.dataset, args.data_dir)
    if (data.num_classes, data.in_channels) != (model.config.num_classes, model.config.in_channels):
        raise UserError(f"data set {data.name} ({data.in_channels} channels, {data.num_classes} classes) does not "
                        f"fit the checkpoint's {model.config.arch} ({model.config.in_channels} channels, "
                        f"{model.config.num_classes} classes)")
    plans, sampled = parse_plans(args.plans, model, args.limit, args.seed)
    calib = data.calibration_images(args.calib_images, args.seed).to(device) if args.bn == "recalibrate" else None
    if data.in_memory:
        test_x, test_y = data.test_tensors(args.test_images)
    else:
        test_x, test_y = data.test_tensors(args.test_images, budget=memory_budget())
    precision = resolve_precision(args.precision, device)
    with torch.no_grad(), use_precision(precision):
        result = sweep(model, plans, test_x.to(device), test_y.to(device), bn=args.bn, calib_images=calib)
    report = {"checkpoint": str(loaded.path), "epoch": loaded.meta.get("epoch"), "dataset": data.name,
              "bn": args.bn, "precision": precision.name, "n_images": result.n_images,
              "calib_images": 0 if calib is None else len(calib), "sampled": sampled, "seed": args.seed,
              **{k: v for k, v in result.to_dict().items() if k in ("results", "summary")}}
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{loaded.path} ({model.config.arch}, {data.name}, {result.n_images} test images, BN: {args.bn})")
    width = max(len(r["plan"]) for r in report["results"])
    for r in report["results"]:
        print(f"  {r['plan']:<{width}}  {r['accuracy']:7.2f}%")
    if len(report["results"]) > 1:
        s = report["summary"]
        print(f"  {len(report['results'])} plans{' (sampled)' if sampled else ''}: mean {s['mean']:.2f}% "
              f"+- {s['std']:.2f}, min {s['min']:.2f}%, max {s['max']:.2f}%")
    return 0
