"""``python -m st_app export``: one sub-network to ONNX, optionally verified in onnxruntime."""

from __future__ import annotations

import argparse
from typing import Any

from .args import UserError, out_path
from .eval import load_checkpoint_arg

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    x = sub.add_parser("export", help="export a sub-network to ONNX",
                       description="Export one plan of a checkpoint to ONNX (dynamic batch axis).")
    x.add_argument("--checkpoint", required=True)
    x.add_argument("--plan", default="main", help="plan text, depths:..., or main (default)")
    x.add_argument("--out", required=True, type=out_path, help="output .onnx file")
    x.add_argument("--force", action="store_true", help="overwrite --out if it exists (never a run's own files)")
    x.add_argument("--verify", action="store_true", help="run it in onnxruntime and compare with PyTorch")
    x.add_argument("--model", default=None, help="architecture, for foreign .pt/.pth files")
    return x


def run(args: argparse.Namespace) -> int:
    from ..core.export import export_onnx, verify_onnx
    from ..core.plan import SubnetPlan
    from ..core.safeio import check_output_file

    check_output_file(args.out, force=args.force, what="ONNX file")  # before any work
    loaded = load_checkpoint_arg(args)
    plan = SubnetPlan.parse(args.plan, loaded.model.layout)
    path = export_onnx(loaded.model, plan, args.out, overwrite=args.force)
    print(f"wrote {path} (plan {plan}, {loaded.model.plan_parameters(plan):,} parameters)")
    if args.verify:
        rep = verify_onnx(loaded.model, plan, path)
        print(f"verified on {rep.n_images} images with {rep.provider}: max abs difference "
              f"{rep.max_abs_diff:.3g}, top-1 agreement {rep.top1_agreement * 100:.1f}%")
        if rep.max_abs_diff > 1e-3 or rep.top1_agreement < 1.0:
            raise UserError("the ONNX file does not reproduce PyTorch closely enough")
    return 0
