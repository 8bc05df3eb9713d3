"""``python -m st_app train``: train a model and write a run folder.

Settings resolve as ``TrainConfig`` defaults <- ``--recipe`` preset <- the flags given, so
``--recipe st+kl- --epochs 30`` is the authors' rung with 30 epochs. ``--print-config`` prints
the resolved configuration (and the method's resolved options) as JSON and trains nothing.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from .args import UserError, bounded_float, bounded_int, out_path

__all__ = ["add_parser", "run"]

# CLI dest -> TrainConfig field (when they differ, nothing; listed: the ones a recipe may set)
CONFIG_FLAGS = ("model", "dataset", "data_dir", "image_size", "method", "epochs", "batch_size", "lr", "min_lr",
                "momentum", "weight_decay", "seed", "device", "bn_reestimate", "fc_init_std", "val_resize",
                "val_crop", "color_jitter", "lighting", "granularity", "precision", "compile", "lr_scaling",
                "reference_batch",
                "sync_bn", "log_every", "data_in_memory", "data_workers")
# CLI dest -> method option
METHOD_FLAGS = {
    "subnets": "n_subnets", "kl_minus": "kl_minus", "norm_type": "norm_type", "amplitude": "amplitude",
    "norm_eps": "norm_eps", "temperature": "temperature", "kl_weight": "kl_weight", "main_weight": "main_weight",
    "kl_ramp": "kl_ramp", "sampling_begin_epoch": "sampling_begin_epoch", "sub_loss": "sub_loss",
    "small_inputs": "small_inputs", "min_scale": "min_scale", "min_side": "min_side",
    "same_scale_image": "same_scale_image", "sub_input": "sub_input", "main_ce": "main_ce", "space": "space",
    "share_prefix": "share_prefix", "aux_weight": "aux_weight", "distill_weight": "distill_weight",
    "hint_weight": "hint_weight", "final_survival": "final_survival",
}


def _min_side(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    return bounded_int("min-side")(text)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    from ..core.data import DATASETS
    from ..core.methods import KL_RAMPS, MAIN_CE, METHODS, NAMED_SPACES, NORM_TYPES, SUB_INPUTS, SUB_LOSSES
    from ..core.methods.recipes import RECIPES
    from ..core.models import ARCHITECTURES, GRANULARITIES

    t = sub.add_parser("train", help="train a model (CT, layer/stage supervision, self-distillation, SD, ST, ST++)",
                       description="Train a residual network and write a run folder (model.safetensors, "
                       "meta.json, metrics.jsonl), checkpointed after every epoch. Settings: defaults <- "
                       "--recipe <- the flags given.")
    t.add_argument("--recipe", default=None,
                   help=f"the authors' preset: {', '.join(RECIPES)}; or imagenet-r50,<ladder name>")
    t.add_argument("--print-config", action="store_true", help="print the resolved configuration as JSON and exit")
    t.add_argument("--model", default=None, choices=ARCHITECTURES, help="architecture (default resnet20)")
    t.add_argument("--dataset", default=None, help=f"data set: {', '.join(DATASETS)} (default digits, bundled)")
    t.add_argument("--data-dir", default=None, help="folder holding the data set files (default ./data)")
    t.add_argument("--download", action="store_true", help="download the data set if it is not in --data-dir")
    t.add_argument("--image-size", type=bounded_int("image-size"), default=None,
                   help="image side: imagefolder images are resized, streamed ones cropped to it (default 32)")
    t.add_argument("--vit-granularity", dest="granularity", default=None, choices=GRANULARITIES,
                   help="vision transformers: a plan unit is a whole block or each residual half (default block)")
    t.add_argument("--method", default=None, choices=METHODS, help="training scheme (default st)")
    t.add_argument("--epochs", type=bounded_int("epochs"), default=None,
                   help="epochs (default 30; with --resume: extend the run)")
    t.add_argument("--batch-size", type=bounded_int("batch-size"), default=None, help="default 64")
    t.add_argument("--lr", type=bounded_float("lr"), default=None, help="peak learning rate, cosine decay per step (0.05)")
    t.add_argument("--min-lr", type=bounded_float("min-lr"), default=None,
                   help="floor of the cosine (authors' --min_lr --min_lr_coef c: lr x c; default 0)")
    t.add_argument("--momentum", type=bounded_float("momentum"), default=None, help="SGD momentum, Nesterov (0.9)")
    t.add_argument("--weight-decay", type=bounded_float("weight-decay"), default=None, help="on every parameter (5e-4)")
    t.add_argument("--seed", type=bounded_int("seed"), default=None)
    t.add_argument("--device", default=None, help="auto, cpu, cuda or mps (default auto)")
    t.add_argument("--threads", type=bounded_int("threads"), default=None, help="CPU threads for torch")
    t.add_argument("--bn-reestimate", action=argparse.BooleanOptionalAction, default=None,
                   help="re-estimate the main net's BN statistics after every epoch, as the authors' trainer "
                   "(default: on for stpp and the recipes, off otherwise)")
    t.add_argument("--fc-init-std", type=bounded_float("fc-init-std"), default=None,
                   help="initialise the classifier N(0, std), bias 0 (authors: 0.01; default: PyTorch's)")
    t.add_argument("--out", default=None, type=out_path, help="run folder to write (required unless --print-config)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last finished epoch")
    g = t.add_argument_group("ST / ST++: the authors' options (README: authors' flag -> our flag)")
    g.add_argument("--subnets", type=bounded_int("subnets"), default=None, help="sub-nets per step, --multi_Snet (st 1, stpp 6)")
    g.add_argument("--kl-minus", action=argparse.BooleanOptionalAction, default=None,
                   help="--norm_kd: normalise main and sub-net logits; the main CE is on the normalised ones")
    g.add_argument("--norm-type", choices=NORM_TYPES, default=None,
                   help="--norm_kd_type: layernorm (their default), v1 (no amplitude, adaptive), v2 (L2)")
    g.add_argument("--amplitude", type=bounded_float("amplitude"), default=None,
                   help="--amplitude A of the normalised logits (1)")
    g.add_argument("--norm-eps", type=bounded_float("norm-eps"), default=None, help="eps of the normalisation (authors 1e-7)")
    g.add_argument("--temperature", type=bounded_float("temperature"), default=None,
                   help="--Temp of the KL (1); selfdistill: its KD temperature (3)")
    g.add_argument("--kl-weight", type=bounded_float("kl-weight"), default=None,
                   help="--kl_coef: weight of each sub-net loss (1)")
    g.add_argument("--main-weight", type=bounded_float("main-weight"), default=None,
                   help="--main_coef: weight of the main CE (1)")
    g.add_argument("--kl-ramp", choices=KL_RAMPS, default=None,
                   help="per-epoch KL-weight ramp: cos (--kl_cos, rises from 0), rcos (--kl_rcos, falls to 0)")
    g.add_argument("--sampling-begin-epoch", type=bounded_int("sampling-begin-epoch"), default=None,
                   help="--sampling_begin_epoch: no sub-nets before this (0-based) epoch")
    g.add_argument("--sub-loss", choices=SUB_LOSSES, default=None,
                   help="--st_loss: kl (default), soft-ce (CE), label-ce (CE_target), mse (MSE)")
    g.add_argument("--small-inputs", action=argparse.BooleanOptionalAction, default=None,
                   help="--Snet_Dtrans --Dtrans=Dtrans7: sub-nets see randomly smaller inputs (stpp on)")
    g.add_argument("--min-scale", type=bounded_float("min-scale"), default=None,
                   help="--mini_size: sub-net sides are randint(int(crop x this), crop) (0.43)")
    g.add_argument("--same-scale-image", action=argparse.BooleanOptionalAction, default=None,
                   help="--same_mscale_image: the main net's batch is randomly downscaled too")
    g.add_argument("--space", default=None,
                   help=f"--sample_space: {', '.join(NAMED_SPACES)} or drop ranges like '0|0-1|0-3|0' "
                   "(st: default, stpp: space3)")
    g.add_argument("--sub-input", choices=SUB_INPUTS, default=None,
                   help="deviation: 'independent' resizes the main batch for every sub-net without "
                   "re-normalising (authors: each sub-net resizes and re-normalises the previous one's input)")
    g.add_argument("--main-ce", choices=MAIN_CE, default=None,
                   help="deviation: 'raw' computes the main CE on the raw logits under --kl-minus")
    g.add_argument("--min-side", type=_min_side, default=None,
                   help="deviation: floor on the sub-net input side in pixels, or 'auto' (3 x the total "
                   "stride: 8x8 digits are then never shrunk); authors: none")
    g.add_argument("--no-share-prefix", dest="share_prefix", action="store_const", const=False, default=None,
                   help="ST: run each sub-net from the input instead of reusing the main net's shared prefix")
    o = t.add_argument_group("other methods")
    o.add_argument("--aux-weight", type=bounded_float("aux-weight"), default=None,
                   help="layersup/stagesup: weight of the mean auxiliary CE (1)")
    o.add_argument("--distill-weight", type=bounded_float("distill-weight"), default=None,
                   help="selfdistill: KD share a of the shallow classifiers' loss (0.3)")
    o.add_argument("--hint-weight", type=bounded_float("hint-weight"), default=None,
                   help="selfdistill: L2 feature hint weight (0.1)")
    o.add_argument("--final-survival", type=bounded_float("final-survival"), default=None,
                   help="sd: survival of the last block (0.5)")
    _add_speed_options(t)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    return t


def _add_speed_options(t: argparse.ArgumentParser) -> None:
    from ..core.precision import PRECISIONS

    s = t.add_argument_group("speed and scale", "GPU fast path and data-parallel training; under "
                             "torchrun --batch-size is the global batch, split over the ranks")
    s.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="auto (default): bf16 autocast + channels-last on CUDA, fp32 on CPU/MPS; fp16 uses a "
                   "GradScaler (CUDA only)")
    s.add_argument("--compile", action="store_const", const=True, default=None,
                   help="torch.compile every block: costs minutes of compilation once, may or may not pay off")
    s.add_argument("--lr-scaling", default=None, choices=["none", "linear"],
                   help="linear: lr x batch-size / reference-batch (default none)")
    s.add_argument("--reference-batch", type=bounded_int("batch-size"), default=None,
                   help="the batch size --lr was tuned for (default 64), for --lr-scaling linear")
    s.add_argument("--sync-bn", action="store_const", const=True, default=None,
                   help="SyncBatchNorm across ranks (CUDA only)")
    s.add_argument("--log-every", type=bounded_int("log-every"), default=None,
                   help="read the loss on the host every N steps (default: every step on CPU, 25 on CUDA)")
    d = t.add_argument_group("image folders (imagefolder:PATH, imagenet:PATH)",
                             "sets whose decoded images exceed the memory budget stream from disk through "
                             "DataLoader workers: RandomResizedCrop(--image-size) + flip (+ the authors' jitter "
                             "and lighting) for training, Resize(--val-resize) + CenterCrop(--val-crop) for testing; "
                             "in-memory sets refuse these four options")
    d.add_argument("--data-in-memory", default=None, choices=["auto", "yes", "no"],
                   help="auto (default): in memory when the decoded images fit (ImageNet always streams)")
    d.add_argument("--data-workers", type=bounded_int("data-workers"), default=None,
                   help="DataLoader workers (default 4)")
    d.add_argument("--val-resize", type=bounded_int("image-size"), default=None,
                   help="resize test images to this side (default: --image-size / 0.875; authors 256 / 240)")
    d.add_argument("--val-crop", type=bounded_int("image-size"), default=None,
                   help="centre-crop test images (default --image-size; authors 224)")
    d.add_argument("--color-jitter", type=bounded_float("jitter"), default=None,
                   help="ColorJitter strength (the authors': 0.4)")
    d.add_argument("--lighting", type=bounded_float("jitter"), default=None,
                   help="PCA lighting noise std (the authors': 0.1)")


def _explicit_method_options(args: argparse.Namespace) -> dict[str, Any]:
    return {opt: getattr(args, dest) for dest, opt in METHOD_FLAGS.items() if getattr(args, dest) is not None}


def resolve_config(args: argparse.Namespace) -> Any:
    """TrainConfig from defaults <- recipe <- explicit flags; method options checked by name."""
    from ..core.methods import method_option_names
    from ..core.methods.recipes import resolve_recipe
    from ..core.train import TrainConfig

    values: dict[str, Any] = {}
    method_options: dict[str, Any] = {}
    if args.recipe:
        recipe_config, recipe_method, method_options = resolve_recipe(args.recipe)
        values.update(recipe_config)
        if args.method is not None and args.method != recipe_method:
            if any(p.strip().lower() != "imagenet-r50" for p in args.recipe.split(",")):
                raise UserError(f"recipe {args.recipe!r} trains {recipe_method}; --method {args.method} contradicts "
                                "it (use --recipe imagenet-r50 --method NAME for another method on that recipe)")
            method_options = {}
    for name in CONFIG_FLAGS:
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    values.setdefault("method", "st")
    method = values["method"]
    explicit = _explicit_method_options(args)
    accepted = method_option_names(method)
    wrong = [k for k in explicit if k not in accepted]
    if wrong:
        flags = ", ".join("--" + next(d for d, o in METHOD_FLAGS.items() if o == k).replace("_", "-") for k in wrong)
        raise UserError(f"options {flags} do not apply to {method}")
    method_options.update(explicit)
    known = {f.name for f in fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in values.items() if k in known})
    config.method_options = method_options
    return config


def _print_config(config: Any, args: argparse.Namespace) -> int:
    """The resolved run as JSON: config, the method's options resolved for the architecture."""
    from ..core.data import DatasetError
    from ..core.methods import make_method
    from ..core.methods.recipes import RECIPES
    from ..core.models import build_model
    from ..core.train import DATA_RECIPE_FIELDS, open_training_data

    notes = []
    in_memory = None
    try:
        data = open_training_data(config)
        classes, channels, side, in_memory = data.num_classes, data.in_channels, data.image_size, data.in_memory
    except DatasetError as exc:
        classes, channels, side = 1000, 3, config.image_size or 224
        notes.append(f"data set not opened ({str(exc).splitlines()[0]}); method options resolved for "
                     f"{channels} channels")
    model = build_model(config.model, classes, channels, side, granularity=config.granularity)
    method = make_method(config.method, **config.method_options)
    method.prepare(model)
    resolved = config.to_dict()
    if resolved["bn_reestimate"] is None:
        resolved["bn_reestimate"] = method.default_bn_reestimate()
    used = [f for f in DATA_RECIPE_FIELDS if resolved.get(f)]
    if used and in_memory is not False:
        notes.append(f"{', '.join(used)} act on images streamed from files (imagenet:PATH, or imagefolder:PATH "
                     f"with --data-in-memory no); {config.dataset} {'is held in memory' if in_memory else 'must stream'} "
                     "and training refuses them otherwise")
    names = [p.strip().lower() for p in (config.recipe or "").split(",") if p.strip()]
    out = {"recipe": config.recipe,
           "authors_flags": {n: RECIPES[n].authors_flags for n in names if n in RECIPES},
           "config": resolved, "method": method.describe(), "notes": notes}
    print(_dumps(out))
    return 0


def _dumps(obj: Any) -> str:
    """Indented JSON with lists of numbers (spaces, constants) kept on one line."""
    compact: dict[str, str] = {}

    def fold(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: fold(x) for k, x in v.items()}
        if isinstance(v, list) and all(isinstance(x, (int, float, list)) and not isinstance(x, bool) for x in v):
            key = f"@@{len(compact)}@@"
            compact[key] = json.dumps(v)
            return key
        return v

    text = json.dumps(fold(obj), indent=2, default=str)
    for key, value in compact.items():
        text = text.replace(f'"{key}"', value)
    return text


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

    from ..core.train import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.resume and (args.recipe or args.print_config):
        raise UserError("--resume continues a run with its recorded settings; --recipe and --print-config "
                        "do not apply")
    config = None if args.resume else resolve_config(args)
    if args.print_config:
        return _print_config(config, args)
    if args.out is None:
        raise UserError("--out is required: the run folder to write")
    progress = _Progress(args.quiet)
    out = Path(args.out)
    if args.resume:
        trainer = Trainer.resume(out, events=[progress], device=args.device if args.device not in (None, "auto") else None,
                                 epochs=args.epochs, data_dir=args.data_dir, allow_recorded_paths=False)
    else:
        from ..core.train import open_training_data, resolve_device

        assert config is not None
        resolve_device(config.device)  # an unknown device fails before the data set loads
        data = open_training_data(config, download=args.download)
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
