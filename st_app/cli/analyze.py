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

from .args import int_at_least, positive_float

__all__ = ["add_parser", "run"]

ANALYSES = ("loafing", "subnets", "robustness", "importance", "compare")

EXAMPLES = """examples:
  python -m st_app analyze loafing    --ct runs/ct --st runs/st --out report/
  python -m st_app analyze subnets    --ct runs/ct --st runs/st --bn recalibrate --out report/ --json
  python -m st_app analyze robustness --ct runs/ct --st runs/st --max-k 4 --repeats 10 --out report/
  python -m st_app analyze importance --ct runs/ct --st runs/st --bn recalibrate --out report/
  python -m st_app analyze compare    --model resnet20 --dataset digits --epochs 30 \\
                                      --methods ct,layersup,stagesup,selfdistill,sd,st,stpp --out report/"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``analyze`` and its four analyses on the main parser's sub-commands."""
    from ..core.methods import METHODS
    from ..core.models import ARCHITECTURES

    a = subparsers.add_parser(
        "analyze", help="the paper's experiments: loafing, sub-net statistics, robustness, method comparison",
        description="Run one of the paper's experiments and write JSON, CSV and PNG + SVG figures.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = a.add_subparsers(dest="analysis", metavar="{" + ",".join(ANALYSES) + "}", required=True)

    def common(p: argparse.ArgumentParser, checkpoints: bool = True) -> None:
        if checkpoints:
            p.add_argument("--ct", required=True, help="run folder (or .safetensors) of the CT model")
            p.add_argument("--st", required=True, help="run folder (or .safetensors) of the ST model")
            p.add_argument("--dataset", default=None, help="data set (default: the one the checkpoints record)")
            p.add_argument("--test-images", type=int_at_least(1), default=None,
                           help="evaluate on the first N test images only (default: all)")
            p.add_argument("--seed", type=int, default=0, help="seed of calibration subset, samples and draws")
        p.add_argument("--bn", default="main", choices=["main", "recalibrate"],
                       help="BN statistics of sub-nets: the main net's (paper) or re-estimated per sub-net")
        p.add_argument("--calib-images", type=int_at_least(1), default=1000,
                       help="training images used to re-estimate BN statistics (default 1000)")
        p.add_argument("--data-dir", default=None, help="folder holding the data set files")
        p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
        p.add_argument("--threads", type=int_at_least(1), default=None, help="CPU threads for torch")
        p.add_argument("--out", required=True, help="report folder to write")
        p.add_argument("--json", action="store_true", help="print the report as one JSON object")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    lo = sub.add_parser("loafing", help="sub-nets trained alone vs inside CT and ST (figure 2)",
                        description="Train chosen ordered sub-nets alone with the CT run's recipe and compare "
                        "them with the same sub-nets evaluated inside the CT and ST models.")
    common(lo)
    lo.add_argument("--plans", default=None,
                    help="sub-nets separated by ';' (plan text or depths:1,1,1; default: the smallest and two others)")
    lo.add_argument("--epochs", type=int_at_least(1), default=None,
                    help="train the alone-nets this many epochs instead of the recipe's (recorded)")

    su = sub.add_parser("subnets", help="accuracy of every ordered sub-net, CT vs ST (figure 5)",
                        description="Evaluate all ordered sub-nets (prefix-sharing tree) of both models.")
    common(su)
    su.add_argument("--limit", type=int_at_least(1), default=1000,
                    help="sample this many sub-nets (seeded, uniform) when there are more")

    ro = sub.add_parser("robustness", help="delete / swap blocks, CT vs ST (figure 6)",
                        description="Delete each block; delete k random blocks; swap k random same-shape pairs "
                        "(the same seeded draws for both models).")
    common(ro)
    ro.add_argument("--max-k", type=int_at_least(1), default=4, help="largest number of deleted blocks (default 4)")
    ro.add_argument("--repeats", type=int_at_least(1), default=10, help="random draws per k (default 10)")
    ro.add_argument("--max-swaps", type=int_at_least(0), default=None,
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
    co.add_argument("--epochs", type=int_at_least(1), default=30)
    co.add_argument("--methods", default=",".join(METHODS),
                    help=f"comma-separated, from {','.join(METHODS)} (default: all, table 1's order)")
    co.add_argument("--seed", type=int, default=0)
    co.add_argument("--batch-size", type=int_at_least(1), default=64)
    co.add_argument("--lr", type=positive_float, default=0.05)
    co.add_argument("--in-process", action="store_true",
                    help="train all methods in this process (faster start; CPU memory peaks then overlap)")
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
    from ..core.checkpoint import load_checkpoint
    from ..core.data import load_dataset
    from ..core.experiments import check_same_architecture
    from ..core.train import resolve_device

    device = resolve_device(args.device)
    ct = load_checkpoint(args.ct, device=device)
    st = load_checkpoint(args.st, device=device)
    check_same_architecture({"ct": ct.model, "st": st.model})

    def recorded(meta: dict[str, Any]) -> str | None:
        return meta.get("dataset", {}).get("name") or meta.get("config", {}).get("dataset")

    name = args.dataset
    if name is None:
        names = {recorded(ct.meta), recorded(st.meta)} - {None}
        if not names:
            raise ValueError("the checkpoints do not record their data set; pass --dataset")
        if len(names) > 1:
            raise ValueError(f"the CT and ST checkpoints were trained on different data sets "
                             f"({recorded(ct.meta)} and {recorded(st.meta)}); pass --dataset to choose one")
        name = names.pop()
    config = ct.meta.get("config", {})
    data = load_dataset(name, args.data_dir or config.get("data_dir"), image_size=config.get("image_size"))
    c = ct.model.config
    if (data.num_classes, data.in_channels) != (c.num_classes, c.in_channels):
        raise ValueError(f"data set {data.name} ({data.in_channels} channels, {data.num_classes} classes) does not "
                         f"fit the checkpoints' {c.arch} ({c.in_channels} channels, {c.num_classes} classes)")
    if args.test_images is not None:
        from dataclasses import replace

        data = replace(data, test_x=data.test_x[: args.test_images], test_y=data.test_y[: args.test_images])
    return ct, st, data.to(device), device


def _finish(args: argparse.Namespace, report: dict[str, Any], t0: float) -> int:
    from ..core.experiments.reports import summary_lines
    from ..figures import save_report

    out = Path(args.out)
    json_path = save_report(report, out, started=t0)
    if args.json:
        print(json.dumps(report))
        return 0
    for line in summary_lines(report):
        print(line)
    print(f"wrote {json_path}, {report['csv']} and {len(report['figures'])} figure files in {out}")
    return 0


def _prepare(args: argparse.Namespace) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)


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

    ct, st, data, device = _load_pair(args)
    plans = None
    if args.plans:
        plans = [SubnetPlan.parse(p, ct.model.layout) for p in args.plans.split(";") if p.strip()]
        if not plans:
            raise ValueError("--plans names no sub-network")
    report = _with_bar("loafing", args, loafing_report, ct=ct, st=st, data=data, plans=plans, epochs=args.epochs,
                       bn=args.bn, calib_n=args.calib_images, seed=args.seed, device=str(device))
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


RUNNERS = {"loafing": _run_loafing, "subnets": _run_subnets, "robustness": _run_robustness,
           "importance": _run_importance, "compare": _run_compare}


def run(args: argparse.Namespace) -> int:
    """Run the analysis the parsed ``args`` name; user errors raise ValueError (exit 2 in the CLI)."""
    t0 = time.perf_counter()
    _prepare(args)
    return RUNNERS[args.analysis](args, t0)
