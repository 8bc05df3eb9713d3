"""Command line: ``python -m st_app {train,eval,export}``, a thin front end over st_app.core.

Errors that a user can fix (bad plan text, missing data set, wrong checkpoint) exit with
status 2 and one line on stderr; nothing already saved is touched.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from . import __version__

EXAMPLES = """examples:
  python -m st_app train  --model resnet20 --dataset digits --method st --epochs 30 --seed 0 --out runs/st
  python -m st_app eval   --checkpoint runs/st --plans all --bn recalibrate --json
  python -m st_app export --checkpoint runs/st --plan "0|3,4|6" --out sub.onnx --verify
plan text: stages joined by '|', global block ids by ',' (resnet20 full: 0,1,2|3,4,5|6,7,8);
shorthand depths:1,2,1 keeps the first 1, 2 and 1 blocks of each stage."""


class UserError(Exception):
    """An error the user can fix; printed as one line."""


def _int_at_least(low: int) -> Callable[[str], int]:
    """argparse type: an integer no smaller than ``low``, with a plain-words error."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {v}")
        return v

    return parse


_positive_int = _int_at_least(1)


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    from .core.data import DATASETS
    from .core.methods import METHODS
    from .core.models import ARCHITECTURES

    parser = argparse.ArgumentParser(
        prog="python -m st_app",
        description="ST Lab: train residual nets with CT / ST / ST++ / stochastic depth, evaluate "
        "their sub-networks, export any sub-network to ONNX.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"st_app {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,eval,export,analyze}")

    t = sub.add_parser("train", help="train a model (CT, ST, ST++ or stochastic depth)",
                       description="Train a residual network and write a run folder (model.safetensors, "
                       "meta.json, metrics.jsonl), checkpointed after every epoch.")
    t.add_argument("--model", default="resnet20", choices=ARCHITECTURES, help="architecture (default resnet20)")
    t.add_argument("--dataset", default="digits", help=f"data set: {', '.join(DATASETS)} (default digits, bundled)")
    t.add_argument("--data-dir", default=None, help="folder holding the data set files (default ./data)")
    t.add_argument("--download", action="store_true", help="download the data set if it is not in --data-dir")
    t.add_argument("--image-size", type=_positive_int, default=None, help="resize imagefolder images to this size (default 32)")
    t.add_argument("--method", default="st", choices=METHODS, help="training scheme (default st)")
    t.add_argument("--epochs", type=_positive_int, default=None, help="epochs (default 30; with --resume: extend the run)")
    t.add_argument("--batch-size", type=_positive_int, default=64)
    t.add_argument("--lr", type=_positive_float, default=0.05, help="peak learning rate, cosine decay per step")
    t.add_argument("--momentum", type=float, default=0.9)
    t.add_argument("--weight-decay", type=float, default=5e-4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    t.add_argument("--threads", type=_positive_int, default=None, help="CPU threads for torch")
    t.add_argument("--bn-reestimate", action="store_true",
                   help="re-estimate the main net's BN statistics after every epoch (as the authors' code)")
    t.add_argument("--out", required=True, help="run folder to write")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last finished epoch")
    g = t.add_argument_group("ST / ST++ options")
    g.add_argument("--subnets", type=_positive_int, default=None, help="sub-nets sampled per step (st: 1, stpp: 6)")
    g.add_argument("--kl-minus", action=argparse.BooleanOptionalAction, default=None,
                   help="z-score logits before the KL (ST++ 'KL-'; stpp default on)")
    g.add_argument("--small-inputs", action=argparse.BooleanOptionalAction, default=None,
                   help="feed sub-nets randomly down-scaled inputs (stpp default on)")
    g.add_argument("--min-scale", type=_positive_float, default=None, help="smallest input scale for sub-nets (0.43)")
    g.add_argument("--min-side", type=_int_at_least(1), default=None,
                   help="smallest sub-net input side in pixels (default: 3 x the network's total stride, "
                   "e.g. 12 for CIFAR ResNets, so 8x8 digits are never shrunk)")
    g.add_argument("--space", default=None, help="per-stage drop ranges, e.g. '0|0-1|0-3|0' (default: all)")
    g.add_argument("--no-share-prefix", action="store_true",
                   help="ST: run each sub-net from the input instead of reusing the main net's shared prefix")
    g.add_argument("--final-survival", type=_positive_float, default=None, help="sd: survival of the last block (0.5)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    e = sub.add_parser("eval", help="accuracy of the main net or of sub-networks",
                       description="Evaluate plans of a checkpoint on its test set.")
    e.add_argument("--checkpoint", required=True, help="run folder, .safetensors, or a .pt/.pth state_dict")
    e.add_argument("--plans", default="main",
                   help="main | all | plan text ('0|3,4|6') | depths:1,2,1; several separated by ';'")
    e.add_argument("--bn", default="main", choices=["main", "recalibrate"],
                   help="BN statistics: the main net's (paper) or re-estimated per sub-net")
    e.add_argument("--calib-images", type=_positive_int, default=1000, help="training images for --bn recalibrate")
    e.add_argument("--limit", type=_positive_int, default=1000, help="with 'all': sample this many plans when there are more")
    e.add_argument("--seed", type=int, default=0, help="seed of the plan sample and calibration subset")
    e.add_argument("--dataset", default=None, help="data set (default: the one recorded in the checkpoint)")
    e.add_argument("--data-dir", default=None)
    e.add_argument("--model", default=None, help="architecture, for foreign .pt/.pth files")
    e.add_argument("--device", default="auto")
    e.add_argument("--json", action="store_true", help="print one JSON object")

    x = sub.add_parser("export", help="export a sub-network to ONNX",
                       description="Export one plan of a checkpoint to ONNX (dynamic batch axis).")
    x.add_argument("--checkpoint", required=True)
    x.add_argument("--plan", default="main", help="plan text, depths:..., or main (default)")
    x.add_argument("--out", required=True, help="output .onnx file")
    x.add_argument("--verify", action="store_true", help="run it in onnxruntime and compare with PyTorch")
    x.add_argument("--model", default=None, help="architecture, for foreign .pt/.pth files")
    try:
        from .cli_analyze import add_analyze_parser
    except ImportError:  # pragma: no cover - analyses not installed
        pass
    else:
        add_analyze_parser(sub)
    return parser


# ------------------------------------------------------------------------------- train
def _method_options(args: argparse.Namespace, layout: Any) -> dict[str, Any]:
    from .core.plan import parse_space

    opts: dict[str, Any] = {}
    if args.method in ("st", "stpp"):
        opts = {"n_subnets": args.subnets, "kl_minus": args.kl_minus, "small_inputs": args.small_inputs,
                "min_scale": args.min_scale, "min_side": args.min_side}
        if args.space:
            opts["space"] = parse_space(args.space, layout)
        if args.no_share_prefix:
            opts["share_prefix"] = False
    elif args.method == "sd":
        opts = {"final_survival": args.final_survival}
    else:
        used = [n for n in ("subnets", "kl_minus", "small_inputs", "min_scale", "min_side", "space", "final_survival")
                if getattr(args, n) is not None]
        if used or args.no_share_prefix:
            raise UserError(f"options {', '.join('--' + u.replace('_', '-') for u in used)} do not apply to ct")
    return {k: v for k, v in opts.items() if v is not None}


class _Progress:
    """tqdm progress bar with loss and ETA; one summary line per epoch."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None

    def on_start(self, info: dict[str, Any]) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        done = info["start_epoch"] * (info["total_steps"] // max(1, info["epochs"]))
        self.bar = tqdm(total=info["total_steps"], initial=done, unit="step", dynamic_ncols=True,
                        desc=f"{info['run']} on {info['device']}", file=sys.stderr)

    def on_step(self, info: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(epoch=f"{info['epoch']}", loss=f"{info['loss']:.3f}", refresh=False)

    def on_probe(self, info: dict[str, Any]) -> None: ...

    def on_epoch(self, info: dict[str, Any]) -> None:
        line = (f"epoch {info['epoch']}: train loss {info['train_loss']:.4f}, test acc {info['test_acc']:.2f}%, "
                f"{info['epoch_seconds']:.1f}s")
        if self.bar is not None:
            self.bar.write(line)
        elif not self.quiet:
            print(line, file=sys.stderr)

    def on_end(self, info: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .core.models import build_model
    from .core.train import TrainConfig, Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    progress = _Progress(args.quiet)
    out = Path(args.out)
    if args.resume:
        trainer = Trainer.resume(out, events=[progress], device=args.device if args.device != "auto" else None,
                                 epochs=args.epochs)
    else:
        config = TrainConfig(
            model=args.model, dataset=args.dataset, method=args.method, epochs=args.epochs or 30,
            batch_size=args.batch_size, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
            seed=args.seed, device=args.device, bn_reestimate=args.bn_reestimate,
            data_dir=args.data_dir, image_size=args.image_size,
        )
        from .core.data import load_dataset

        data = load_dataset(args.dataset, args.data_dir, download=args.download, image_size=args.image_size)
        layout = build_model(args.model, data.num_classes, data.in_channels, data.image_size).layout
        config.method_options = _method_options(args, layout)
        trainer = Trainer(config, data=data, out_dir=out, events=[progress])
    (out).mkdir(parents=True, exist_ok=True)
    _record_command(out, args.argv)
    history = trainer.run()
    if history:
        last = history[-1]
        print(f"{out}: epoch {last['epoch']}, test accuracy {last['test_acc']:.2f}%")
    return 0


def _record_command(out: Path, argv: Sequence[str]) -> None:
    """Append the exact command line to the run folder, so a run can be repeated."""
    line = "python -m st_app " + " ".join(shlex.quote(a) for a in argv)
    with open(out / "command.txt", "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


# -------------------------------------------------------------------------------- eval
def _load(args: argparse.Namespace) -> Any:
    from .core.checkpoint import load_checkpoint

    return load_checkpoint(args.checkpoint, arch=getattr(args, "model", None))


def parse_plans(text: str, model: Any, limit: int, seed: int) -> tuple[list[Any], bool]:
    """``main``, ``all`` or plan texts separated by ';' -> list of plans (None = main net)."""
    from .core.evaluate import select_plans
    from .core.plan import SubnetPlan

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


def _eval_data(args: argparse.Namespace, meta: dict[str, Any]) -> Any:
    from .core.data import load_dataset

    name = args.dataset or meta.get("dataset", {}).get("name") or meta.get("config", {}).get("dataset")
    if not name:
        raise UserError("the checkpoint does not record its data set; pass --dataset")
    data_dir = args.data_dir or meta.get("config", {}).get("data_dir")
    return load_dataset(name, data_dir, image_size=meta.get("config", {}).get("image_size"))


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from .core.evaluate import calibration_images, sweep
    from .core.train import resolve_device

    loaded = _load(args)
    device = resolve_device(args.device)
    model = loaded.model.to(device)
    data = _eval_data(args, loaded.meta)
    if (data.num_classes, data.in_channels) != (model.config.num_classes, model.config.in_channels):
        raise UserError(f"data set {data.name} ({data.in_channels} channels, {data.num_classes} classes) does not "
                        f"fit the checkpoint's {model.config.arch} ({model.config.in_channels} channels, "
                        f"{model.config.num_classes} classes)")
    data = data.to(device)
    plans, sampled = parse_plans(args.plans, model, args.limit, args.seed)
    calib = calibration_images(data.train_x, args.calib_images, args.seed) if args.bn == "recalibrate" else None
    with torch.no_grad():
        result = sweep(model, plans, data.test_x, data.test_y, bn=args.bn, calib_images=calib)
    report = {"checkpoint": str(loaded.path), "epoch": loaded.meta.get("epoch"), "dataset": data.name,
              "bn": args.bn, "n_images": result.n_images, "calib_images": 0 if calib is None else len(calib),
              "sampled": sampled, "seed": args.seed, **{k: v for k, v in result.to_dict().items()
                                                          if k in ("results", "summary")}}
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


# ------------------------------------------------------------------------------ export
def cmd_export(args: argparse.Namespace) -> int:
    from .core.export import export_onnx, verify_onnx
    from .core.plan import SubnetPlan

    loaded = _load(args)
    plan = SubnetPlan.parse(args.plan, loaded.model.layout)
    path = export_onnx(loaded.model, plan, args.out)
    print(f"wrote {path} (plan {plan}, {loaded.model.plan_parameters(plan):,} parameters)")
    if args.verify:
        rep = verify_onnx(loaded.model, plan, path)
        print(f"verified on {rep.n_images} images with {rep.provider}: max abs difference "
              f"{rep.max_abs_diff:.3g}, top-1 agreement {rep.top1_agreement * 100:.1f}%")
        if rep.max_abs_diff > 1e-3 or rep.top1_agreement < 1.0:
            raise UserError("the ONNX file does not reproduce PyTorch closely enough")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from .cli_analyze import run_analyze

    return run_analyze(args)


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "export": cmd_export, "analyze": cmd_analyze}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if not args.command:
        parser.print_help()
        return 0
    from .core.checkpoint import CheckpointError
    from .core.data import DatasetError
    from .core.export import ExportError
    from .core.train import TrainingError

    try:
        return COMMANDS[args.command](args)
    except (UserError, ValueError, CheckpointError, DatasetError, ExportError, TrainingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last finished epoch is kept", file=sys.stderr)
        return 130
