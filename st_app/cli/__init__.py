"""Command line: ``python -m st_app {train,eval,export,analyze}``, a thin front end over st_app.core.

One module per sub-command (``add_parser`` + ``run``); shared argument types live in ``args``.
Errors that a user can fix (bad plan text, missing data set, wrong checkpoint) exit with
status 2 and one line on stderr; nothing already saved is touched.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from . import analyze, eval, export, train
from .args import OneLineParser, UserError

__all__ = ["UserError", "build_parser", "main"]

EXAMPLES = """examples:
  python -m st_app train  --model resnet20 --dataset digits --method st --epochs 30 --seed 0 --out runs/st
  python -m st_app eval   --checkpoint runs/st --plans all --bn recalibrate --json
  python -m st_app export --checkpoint runs/st --plan "0|3,4|6" --out sub.onnx --verify
plan text: stages joined by '|', global block ids by ',' (resnet20 full: 0,1,2|3,4,5|6,7,8);
shorthand depths:1,2,1 keeps the first 1, 2 and 1 blocks of each stage."""



COMMANDS = {"train": train, "eval": eval, "export": export, "analyze": analyze}


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m st_app",
        description="ST Lab: train residual nets with CT / ST / ST++ / stochastic depth, evaluate "
        "their sub-networks, export any sub-network to ONNX.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"st_app {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def _rank_prefix() -> str:
    """Under torchrun every rank reports for itself: say which one speaks."""
    import os

    return f"rank {os.environ['RANK']}: " if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 else ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if not args.command:
        parser.print_help()
        return 0
    from ..core.checkpoint import CheckpointError
    from ..core.data import DatasetError
    from ..core.export import ExportError
    from ..core.runfolder import describe_os_error
    from ..core.train import TrainingError

    try:
        return COMMANDS[args.command].run(args)
    except (UserError, ValueError, CheckpointError, DatasetError, ExportError, TrainingError) as exc:
        print(f"error: {_rank_prefix()}{_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # a path we were given: unreadable, unwritable, full disk...
        print(f"error: {_rank_prefix()}{describe_os_error(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"error: {_rank_prefix()}out of memory; use a smaller data set, model, batch or image size",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last finished epoch is kept", file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    """The message on one line: a multi-line message from a library keeps its first line."""
    text = str(exc).strip()
    return (text.splitlines()[0].strip() if text else "") or type(exc).__name__
