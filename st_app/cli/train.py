"""``python -m st_app train``: train a model and write a run folder."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .args import UserError, bounded_float, bounded_int, out_path

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    from ..core.data import DATASETS
    from ..core.methods import METHODS
    from ..core.models import ARCHITECTURES, GRANULARITIES

    t = sub.add_parser("train", help="train a model (CT, ST, ST++ or stochastic depth)",
                       description="Train a residual network and write a run folder (model.safetensors, "
                       "meta.json, metrics.jsonl), checkpointed after every epoch.")
    t.add_argument("--model", default="resnet20", choices=ARCHITECTURES, help="architecture (default resnet20)")
    t.add_argument("--dataset", default="digits", help=f"data set: {', '.join(DATASETS)} (default digits, bundled)")
    t.add_argument("--data-dir", default=None, help="folder holding the data set files (default ./data)")
    t.add_argument("--download", action="store_true", help="download the data set if it is not in --data-dir")
    t.add_argument("--image-size", type=bounded_int("image-size"), default=None,
                   help="resize imagefolder images to this size (default 32)")
    t.add_argument("--vit-granularity", default="block", choices=GRANULARITIES,
                   help="vision transformers: a plan unit is a whole block or each residual half (default block)")
    t.add_argument("--method", default="st", choices=METHODS, help="training scheme (default st)")
    t.add_argument("--epochs", type=bounded_int("epochs"), default=None,
                   help="epochs (default 30; with --resume: extend the run)")
    t.add_argument("--batch-size", type=bounded_int("batch-size"), default=64)
    t.add_argument("--lr", type=bounded_float("lr"), default=0.05, help="peak learning rate, cosine decay per step")
    t.add_argument("--momentum", type=bounded_float("momentum"), default=0.9)
    t.add_argument("--weight-decay", type=bounded_float("weight-decay"), default=5e-4)
    t.add_argument("--seed", type=bounded_int("seed"), default=0)
    t.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    t.add_argument("--threads", type=bounded_int("threads"), default=None, help="CPU threads for torch")
    t.add_argument("--bn-reestimate", action="store_true",
                   help="re-estimate the main net's BN statistics after every epoch (as the authors' code)")
    t.add_argument("--out", required=True, type=out_path, help="run folder to write")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last finished epoch")
    g = t.add_argument_group("ST / ST++ options")
    g.add_argument("--subnets", type=bounded_int("subnets"), default=None, help="sub-nets sampled per step (st: 1, stpp: 6)")
    g.add_argument("--kl-minus", action=argparse.BooleanOptionalAction, default=None,
                   help="z-score logits before the KL (ST++ 'KL-'; stpp default on)")
    g.add_argument("--small-inputs", action=argparse.BooleanOptionalAction, default=None,
                   help="feed sub-nets randomly down-scaled inputs (stpp default on)")
    g.add_argument("--min-scale", type=bounded_float("min-scale"), default=None, help="smallest input scale for sub-nets (0.43)")
    g.add_argument("--min-side", type=bounded_int("min-side"), default=None,
                   help="smallest sub-net input side in pixels (default: 3 x the network's total stride, "
                   "e.g. 12 for CIFAR ResNets, so 8x8 digits are never shrunk)")
    g.add_argument("--space", default=None, help="per-stage drop ranges, e.g. '0|0-1|0-3|0' (default: all)")
    g.add_argument("--no-share-prefix", action="store_true",
                   help="ST: run each sub-net from the input instead of reusing the main net's shared prefix")
    g.add_argument("--final-survival", type=bounded_float("final-survival"), default=None,
                   help="sd: survival of the last block (0.5)")
    _add_speed_options(t)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    return t


def _add_speed_options(t: argparse.ArgumentParser) -> None:
    from ..core.precision import PRECISIONS

    s = t.add_argument_group("speed and scale", "GPU fast path and data-parallel training; under "
                             "torchrun --batch-size is the global batch, split over the ranks")
    s.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: bf16 autocast + channels-last on CUDA, fp32 on CPU/MPS; fp16 uses a GradScaler "
                   "(CUDA only)")
    s.add_argument("--compile", action="store_true",
                   help="torch.compile every block: costs minutes of compilation once, may or may not pay off")
    s.add_argument("--lr-scaling", default="none", choices=["none", "linear"],
                   help="linear: lr x batch-size / reference-batch (default none)")
    s.add_argument("--reference-batch", type=bounded_int("batch-size"), default=64,
                   help="the batch size --lr was tuned for (default 64), for --lr-scaling linear")
    s.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across ranks (CUDA only)")
    s.add_argument("--log-every", type=bounded_int("log-every"), default=None,
                   help="read the loss on the host every N steps (default: every step on CPU, 25 on CUDA)")
    d = t.add_argument_group("image folders (imagefolder:PATH, imagenet:PATH)",
                             "sets whose decoded images exceed the memory budget stream from disk through "
                             "DataLoader workers: RandomResizedCrop(--image-size) + flip for training, "
                             "Resize(--val-resize) + CenterCrop(--val-crop) for testing")
    d.add_argument("--data-in-memory", default="auto", choices=["auto", "yes", "no"],
                   help="auto: in memory when the decoded images fit (ImageNet always streams)")
    d.add_argument("--data-workers", type=bounded_int("data-workers"), default=4, help="DataLoader workers (default 4)")
    d.add_argument("--val-resize", type=bounded_int("image-size"), default=None,
                   help="resize test images to this side (default: --image-size / 0.875)")
    d.add_argument("--val-crop", type=bounded_int("image-size"), default=None,
                   help="centre-crop test images (default --image-size)")
    d.add_argument("--color-jitter", type=bounded_float("jitter"), default=0.0, help="ColorJitter strength (the authors': 0.4)")
    d.add_argument("--lighting", type=bounded_float("jitter"), default=0.0, help="PCA lighting noise std (the authors': 0.1)")


def _method_options(args: argparse.Namespace, layout: Any) -> dict[str, Any]:
    from ..core.plan import parse_space

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
        if self.quiet or not sys.stderr.isatty():
            return  # a log file gets the per-epoch lines, not bar redraws
        from tqdm import tqdm

        done = info["start_epoch"] * (info["total_steps"] // max(1, info["epochs"]))
        self.bar = tqdm(total=info["total_steps"], initial=done, unit="step", dynamic_ncols=True,
                        desc=f"{info['run']} on {info['device']}", file=sys.stderr)

    def on_step(self, info: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.update(info["step"] - self.bar.n)  # steps arrive every --log-every
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
        self.close()

    def close(self, keep: bool = True) -> None:
        """Close the bar; after an error it is cleared so the error line comes last."""
        bar, self.bar = self.bar, None
        if bar is not None:
            bar.leave = keep
            bar.close()


def run(args: argparse.Namespace) -> int:
    import torch

    from ..core.models import build_model
    from ..core.train import TrainConfig, Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    progress = _Progress(args.quiet)
    out = Path(args.out)
    if args.resume:
        trainer = Trainer.resume(out, events=[progress], device=args.device if args.device != "auto" else None,
                                 epochs=args.epochs, data_dir=args.data_dir, allow_recorded_paths=False)
    else:
        config = TrainConfig(
            model=args.model, dataset=args.dataset, method=args.method, epochs=args.epochs or 30,
            batch_size=args.batch_size, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
            seed=args.seed, device=args.device, bn_reestimate=args.bn_reestimate,
            data_dir=args.data_dir, image_size=args.image_size, granularity=args.vit_granularity,
            precision=args.precision, compile=args.compile,
            lr_scaling=args.lr_scaling, reference_batch=args.reference_batch, sync_bn=args.sync_bn,
            log_every=args.log_every or 0, data_in_memory=args.data_in_memory, data_workers=args.data_workers,
            val_resize=args.val_resize, val_crop=args.val_crop, color_jitter=args.color_jitter, lighting=args.lighting,
        )
        from ..core.train import open_training_data, resolve_device

        resolve_device(args.device)  # an unknown device fails before the data set loads
        data = open_training_data(config, download=args.download)
        layout = build_model(args.model, data.num_classes, data.in_channels, data.image_size,
                             granularity=args.vit_granularity).layout
        config.method_options = _method_options(args, layout)
        trainer = Trainer(config, data=data, out_dir=out, events=[progress])
    # command.txt is one more file of each epoch's commit: it appears with the first saved epoch
    # (under torchrun only rank 0 writes; the others have no run folder)
    previous = trainer.extra_files.get("command.txt", b"")
    trainer.extra_files["command.txt"] = previous + (_command_line(args.argv) + "\n").encode()
    try:
        history = trainer.run()
    except BaseException:
        progress.close(keep=False)
        raise
    if history and trainer.world.is_writer:
        last = history[-1]
        print(f"{out}: epoch {last['epoch']}, test accuracy {last['test_acc']:.2f}%")
    return 0


def _command_line(argv: Sequence[str]) -> str:
    """The exact command line, so a run can be repeated."""
    return "python -m st_app " + " ".join(shlex.quote(a) for a in argv)
