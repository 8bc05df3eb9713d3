"""Argument types and the user-error type every sub-command shares."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["UserError", "int_at_least", "positive_float", "positive_int"]


class UserError(Exception):
    """An error the user can fix; printed as one line."""


def int_at_least(low: int) -> Callable[[str], int]:
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


positive_int = int_at_least(1)


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return v
