"""``python -m st_app analyze {loafing,subnets,robustness,compare}``: the paper's experiments.

Each analysis writes ``OUT/<analysis>.json``, ``OUT/<analysis>.csv`` and PNG + SVG figures
(headless), and with ``--json`` prints the JSON object. The JSON always names the
checkpoints (path + epoch), the BN setting, the seeds and the image counts. The numbers come
from ``st_app.core.experiments``; this module only parses, loads, writes and prints.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .args import UserError, bounded_float, bounded_int, out_path

__all__ = ["add_parser", "run"]

ANALYSES = ("loafing", "subnets", "robustness", "importance", "compare", "depth")

EXAMPLES = """examples:
  python -m st_app analyze loafing    --ct runs/ct --st runs/st --out report/
  python -m st_app analyze loafing    --ct runs/bc22-ct,runs/bc40-ct --st runs/bc22-st,runs/bc40-st --out report/
  python -m st_app analyze subnets    --ct runs/ct --st runs/st --bn recalibrate --out report/ --json
  python -m st_app analyze robustness --ct runs/ct --st runs/st --max-k 4 --repeats 10 --out report/
  python -m st_app analyze importance --ct runs/ct --st runs/st --bn recalibrate --out report/
  python -m st_app analyze compare    --model resnet20 --dataset digits --epochs 30 \\
                                      --methods ct,layersup,stagesup,selfdistill,sd,st,stpp --out report/
  python -m st_app analyze depth      --models resnet20,resnet32,resnet44,resnet56 --dataset digits \
                                      --epochs 30 --bn both --out report/"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``analyze`` and its four analyses on the main parser's sub-commands."""
    from ..core.methods import METHODS
    from ..core.models import ARCHITECTURES

    a = subparsers.add_parser(
        "analyze", help="the paper's experiments: loafing, sub-net statistics, robustness, method comparison",
        description="Run one of the paper's experiments and write JSON, CSV and PNG + SVG figures.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = a.add_subparsers(dest="analysis", metavar="{" + ",".join(ANALYSES) + "}", required=True)

    def common(p: argparse.ArgumentParser, checkpoints: bool = True, both_bn: bool = False) -> None:
        if checkpoints:
            p.add_argument("--ct", required=True, help="run folder (or .safetensors) of the CT model")
            p.add_argument("--st", required=True, help="run folder (or .safetensors) of the ST model")
            p.add_argument("--dataset", default=None, help="data set (default: the one the checkpoints record)")
            p.add_argument("--test-images", type=bounded_int("test-images"), default=None,
                           help="evaluate on the first N test images only (default: all)")
            p.add_argument("--seed", type=bounded_int("seed"), default=0, help="seed of calibration subset, samples and draws")
        if both_bn:
            p.add_argument("--bn", default="both", choices=["main", "recalibrate", "both"],
                           help="BN setting(s) of the sub-nets: main, recalibrate or both (default both)")
        else:
            p.add_argument("--bn", default="main", choices=["main", "recalibrate"],
                           help="BN statistics of sub-nets: the main net's (paper) or re-estimated per sub-net")
        p.add_argument("--calib-images", type=bounded_int("calib-images"), default=1000,
                       help="training images used to re-estimate BN statistics (default 1000)")
        p.add_argument("--data-dir", default=None, help="folder holding the data set files (for an image folder: the "
                       "folder itself); paths recorded in checkpoints are never used silently")
        p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
        p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                       help="evaluation precision; auto: bf16 autocast on CUDA, fp32 elsewhere")
        p.add_argument("--threads", type=bounded_int("threads"), default=None, help="CPU threads for torch")
        p.add_argument("--out", required=True, type=out_path, help="report folder to write")
        p.add_argument("--force", action="store_true", help="replace a report of the same analysis already in --out")
        p.add_argument("--json", action="store_true", help="print the report as one JSON object")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    lo = sub.add_parser("loafing", help="sub-nets trained alone vs inside CT and ST (figure 2, tables 2-3)",
                        description="Train chosen ordered sub-nets alone with the CT run's recipe and compare "
                        "them with the same sub-nets evaluated inside the CT and ST models. With several "
                        "comma-separated --ct and --st runs of one family (e.g. densenet-bc-22,-40,-64), run "
                        "the paper's tables 2-3 instead: each smaller net alone vs inside each bigger one.")
    common(lo)
    lo.add_argument("--plans", default=None,
                    help="sub-nets separated by ';' (plan text or depths:1,1,1; default: the smallest and two others)")
    lo.add_argument("--epochs", type=bounded_int("epochs"), default=None,
                    help="train the alone-nets this many epochs instead of the recipe's (recorded)")

    su = sub.add_parser("subnets", help="accuracy of every ordered sub-net, CT vs ST (figure 5)",
                        description="Evaluate all ordered sub-nets (prefix-sharing tree) of both models.")
    common(su)
    su.add_argument("--limit", type=bounded_int("limit"), default=1000,
                    help="sample this many sub-nets (seeded, uniform) when there are more")

    ro = sub.add_parser("robustness", help="delete / swap blocks, CT vs ST (figure 6)",
                        description="Delete each block; delete k random blocks; swap k random same-shape pairs "
                        "(the same seeded draws for both models).")
    common(ro)
    ro.add_argument("--max-k", type=bounded_int("max-k"), default=4, help="largest number of deleted blocks (default 4)")
    ro.add_argument("--repeats", type=bounded_int("repeats"), default=10, help="random draws per k (default 10)")
    ro.add_argument("--max-swaps", type=bounded_int("max-swaps"), default=None,
                    help="largest number of swapped pairs (default: --max-k, capped at what the network allows)")

    im = sub.add_parser("importance", help="accuracy lost when each block alone is deleted, CT vs ST",
                        description="Delete each block of the full network in turn (what the app's block graph "
                        "colours blocks by).")
    common(im)

    co = sub.add_parser("compare", help="table 1's seven methods on one recipe (CT, layer/stage supervision, "
                        "self-distillation, SD, ST, ST++)",
                        description="Train each method with the same recipe; report wall time, peak memory, "
                        "main-net accuracy and all-sub-nets mean +- std.")
    common(co, checkpoints=False)
    co.add_argument("--model", default="resnet20", choices=ARCHITECTURES)
    co.add_argument("--dataset", default="digits")
    co.add_argument("--epochs", type=bounded_int("epochs"), default=30)
    co.add_argument("--methods", default=",".join(METHODS),
                    help=f"comma-separated, from {','.join(METHODS)} (default: all, table 1's order)")
    co.add_argument("--seed", type=bounded_int("seed"), default=0)
    co.add_argument("--batch-size", type=bounded_int("batch-size"), default=64)
    co.add_argument("--lr", type=bounded_float("lr"), default=0.05)
    co.add_argument("--in-process", action="store_true",
                    help="train all methods in this process (faster start; CPU memory peaks then overlap)")
    de = sub.add_parser("depth", help="does loafing grow with depth? CT and ST at several depths (figure 2)",
                        description="Train (or reuse) CT and ST at each depth and the smallest sub-net alone once; "
                        "report the smallest sub-net alone vs inside CT and ST, and all ordered sub-nets' "
                        "mean +- std, per depth and BN setting.")
    common(de, checkpoints=False, both_bn=True)
    de.add_argument("--models", default="resnet20,resnet32,resnet44,resnet56",
                    help="comma-separated depths of one family (default resnet20,resnet32,resnet44,resnet56)")
    de.add_argument("--dataset", default="digits")
    de.add_argument("--epochs", type=bounded_int("epochs"), default=30)
    de.add_argument("--methods", default="ct,st", help="comma-separated, must include ct (default ct,st)")
    de.add_argument("--runs", default=None,
                    help="run folders to reuse and resume (default OUT/runs); finished runs are not retrained")
    de.add_argument("--limit", type=bounded_int("limit"), default=1000,
                    help="sample this many ordered sub-nets (seeded) per model when there are more")
    de.add_argument("--seed", type=bounded_int("seed"), default=0)
    de.add_argument("--batch-size", type=bounded_int("batch-size"), default=64)
    de.add_argument("--lr", type=bounded_float("lr"), default=0.05)
    return a


# --------------------------------------------------------------------------------- helpers
class _Bar:
    """A tqdm bar on stderr (when it is a terminal), fed by ``progress(done, total)``."""

    def __init__(self, enabled: bool, desc: str) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.desc = desc
        self.bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, file=sys.stderr, dynamic_ncols=True)
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _load_pair(args: argparse.Namespace) -> tuple[Any, Any, Any, Any]:
    """CT and ST checkpoints (same architecture), their data set and the device."""
    from ..core.train import resolve_device

    device = resolve_device(args.device)
    [(ct, st)], data = _open_runs(args, [args.ct], [args.st], device)
    return ct, st, data, device


def _split(text: str) -> list[str]:
    return [p for p in (t.strip() for t in text.split(",")) if p]


def _load_pairs(args: argparse.Namespace) -> tuple[list[tuple[Any, Any]], Any]:
    """Several CT/ST run pairs (``--ct a,b --st a,b``, same order) and their one data set."""
    from ..core.train import resolve_device

    return _open_runs(args, _split(args.ct), _split(args.st), resolve_device(args.device))


def _open_runs(args: argparse.Namespace, cts: list[str], sts: list[str], device: Any) -> tuple[list[Any], Any]:
    from ..core.experiments.triangle import load_run_pairs

    return load_run_pairs(cts, sts, device=device, dataset=args.dataset, data_dir=args.data_dir,
                          calib_n=args.calib_images, seed=args.seed, test_images=args.test_images)


def _finish(args: argparse.Namespace, report: dict[str, Any], t0: float) -> int:
    from ..core.experiments.reports import summary_lines
    from ..figures import save_report

    out = Path(args.out)
    json_path = save_report(report, out, started=t0, overwrite=args.force)
    if args.json:
        print(json.dumps(report))
        return 0
    for line in summary_lines(report):
        print(line)
    print(f"wrote {json_path}, {report['csv']} and {len(report['figures'])} figure files in {out}")
    return 0


def _prepare(args: argparse.Namespace) -> None:
    """Refuse an output that cannot or may not be written before any work is done."""
    from ..core.safeio import check_output_folder

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = check_output_folder(args.out, what="report folder (--out)", create=False)
    existing = out / f"{args.analysis}.json"
    if existing.exists() and not args.force:
        raise UserError(f"{out} already holds a {args.analysis} report ({existing.name}); pass --force to replace it")
    check_output_folder(out, what="report folder (--out)")


def _with_bar(desc: str, args: argparse.Namespace, fn: Callable[..., dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    bar = _Bar(not args.quiet, desc)
    try:
        return fn(progress=bar, **kwargs)
    finally:
        bar.close()


# ------------------------------------------------------------------------------- analyses
def _run_loafing(args: argparse.Namespace, t0: float) -> int:
    from ..core.experiments.reports import loafing_report
    from ..core.plan import SubnetPlan

    if len(_split(args.ct)) > 1 or len(_split(args.st)) > 1:
        return _run_triangle(args, t0)
    ct, st, data, device = _load_pair(args)
    plans = None
    if args.plans:
        plans = [SubnetPlan.parse(p, ct.model.layout) for p in args.plans.split(";") if p.strip()]
        if not plans:
            raise ValueError("--plans names no sub-network")
    report = _with_bar("loafing", args, loafing_report, ct=ct, st=st, data=data, plans=plans, epochs=args.epochs,
                       bn=args.bn, calib_n=args.calib_images, seed=args.seed, device=str(device))
    return _finish(args, report, t0)


def _run_triangle(args: argparse.Namespace, t0: float) -> int:
    from ..core.experiments.triangle import triangle_report

    if args.plans or args.epochs:
        raise ValueError("--plans and --epochs apply to one CT/ST pair; the triangle uses each run's own training")
    pairs, data = _load_pairs(args)
    report = _with_bar("loafing triangle", args, triangle_report, pairs=pairs, data=data, bn=args.bn,
                       calib_n=args.calib_images, seed=args.seed)
    return _finish(args, report, t0)


def _run_subnets(args: argparse.Namespace, t0: float) -> int:
    from ..core.experiments.reports import subnets_report

    ct, st, data, _ = _load_pair(args)
    report = _with_bar("sub-nets", args, subnets_report, ct=ct, st=st, data=data, bn=args.bn,
                       calib_n=args.calib_images, limit=args.limit, seed=args.seed)
    return _finish(args, report, t0)


def _run_robustness(args: argparse.Namespace, t0: float) -> int:
    from ..core.experiments.reports import robustness_report

    ct, st, data, _ = _load_pair(args)
    report = _with_bar("robustness", args, robustness_report, ct=ct, st=st, data=data, bn=args.bn,
                       calib_n=args.calib_images, max_k=args.max_k, repeats=args.repeats,
                       max_swaps=args.max_swaps, seed=args.seed)
    return _finish(args, report, t0)


def _run_importance(args: argparse.Namespace, t0: float) -> int:
    from ..core.experiments.reports import importance_report

    ct, st, data, _ = _load_pair(args)
    report = _with_bar("importance", args, importance_report, ct=ct, st=st, data=data, bn=args.bn,
                       calib_n=args.calib_images, seed=args.seed)
    return _finish(args, report, t0)


def _run_compare(args: argparse.Namespace, t0: float) -> int:
    from ..core.experiments.reports import compare_report

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    out = Path(args.out)
    report = _with_bar("compare", args, compare_report, model=args.model, dataset=args.dataset,
                       epochs=args.epochs, methods=methods, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
                       device=args.device, data_dir=args.data_dir, runs_dir=out / "runs", bn=args.bn,
                       calib_n=args.calib_images, isolate=False if args.in_process else None,
                       threads=args.threads)
    return _finish(args, report, t0)


def _run_depth(args: argparse.Namespace, t0: float) -> int:
    from ..core.data import load_dataset
    from ..core.experiments.depth import depth_sweep
    from ..core.train import resolve_device

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bn = ["main", "recalibrate"] if args.bn == "both" else [args.bn]
    data = load_dataset(args.dataset, args.data_dir)
    runs = Path(args.runs) if args.runs else Path(args.out) / "runs"
    report = _with_bar("depth", args, depth_sweep, models=models, data=data, runs_dir=runs, epochs=args.epochs,
                       methods=methods, bn=bn, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
                       limit=args.limit, calib_n=args.calib_images, device=str(resolve_device(args.device)))
    return _finish(args, report, t0)


RUNNERS = {"loafing": _run_loafing, "subnets": _run_subnets, "robustness": _run_robustness,
           "importance": _run_importance, "compare": _run_compare, "depth": _run_depth}


def run(args: argparse.Namespace) -> int:
    """Run the analysis the parsed ``args`` name; user errors raise ValueError (exit 2 in the CLI)."""
    from ..core.precision import resolve_precision, use_precision
    from ..core.train import resolve_device

    t0 = time.perf_counter()
    precision = resolve_precision(args.precision, resolve_device(args.device))  # before anything is written
    _prepare(args)
    with use_precision(precision):
        return RUNNERS[args.analysis](args, t0)
