"""Argument types, the one-line parser and the user-error type every sub-command shares.

Every number has a hard bound from :mod:`st_app.core.limits` (the table the meta.json schema
and the Trainer also enforce), so no option can allocate absurd memory or run forever; whole
numbers must be plain ASCII digits ('１２' is refused, not read as 12).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import NoReturn

from ..core.limits import LIMITS, is_ascii_int

__all__ = [
    "OneLineParser",
    "UserError",
    "bounded_float",
    "bounded_int",
    "int_at_least",
    "out_path",
    "positive_float",
    "positive_int",
]


class UserError(Exception):
    """An error the user can fix; printed as one line."""


class OneLineParser(argparse.ArgumentParser):
    """argparse with usage errors on one line (exit 2), like every other error of the CLI."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _int(text: str) -> int:
    if not is_ascii_int(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (ASCII digits)")
    return int(text)


def int_at_least(low: int) -> Callable[[str], int]:
    """argparse type: an integer no smaller than ``low``, with a plain-words error."""

    def parse(text: str) -> int:
        v = _int(text)
        if v < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {v}")
        return v

    return parse


positive_int = int_at_least(1)


def bounded_int(key: str) -> Callable[[str], int]:
    """argparse type: an integer inside ``LIMITS[key]``; the message states the bound."""
    bound = LIMITS[key]

    def parse(text: str) -> int:
        v = _int(text)
        if not bound.contains(v):
            shown = text if len(text) <= 24 else text[:21] + "..."
            raise argparse.ArgumentTypeError(f"must be {bound.describe()}, got {shown}")
        return v

    parse.__name__ = key  # argparse names the type in some messages
    return parse


def _float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return v


def bounded_float(key: str) -> Callable[[str], float]:
    """argparse type: a finite number inside ``LIMITS[key]``."""
    bound = LIMITS[key]

    def parse(text: str) -> float:
        v = _float(text)
        if not bound.contains(v):
            raise argparse.ArgumentTypeError(f"must be {bound.describe()}, got {text}")
        return v

    parse.__name__ = key
    return parse


def positive_float(text: str) -> float:
    v = _float(text)
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return v


def out_path(text: str) -> str:
    """argparse type: a non-empty path (``--out ''`` would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the path is empty")
    if "\x00" in text:
        raise argparse.ArgumentTypeError("the path contains a NUL character")
    return text
