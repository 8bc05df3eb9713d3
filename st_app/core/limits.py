"""Hard bounds on every number a user (or a meta.json) can hand us.

Why: an unbounded number is either an absurd allocation (``--image-size 100000`` asks for
196 GiB) or a run that never ends (``--epochs 10**23``). The CLI's argument types, the meta.json
schema, the Trainer's config check and the synthetic data set read the same table, so a bound
is changed in one place and every door enforces it with the same words.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "LIMITS",
    "Bound",
    "LimitError",
    "check_number",
    "is_ascii_int",
]


class LimitError(ValueError):
    """A number outside its bound; the message names it, the bound and the value."""


class Bound:
    """An inclusive range; ``integer`` numbers must be whole, floats must be finite."""

    def __init__(self, low: float, high: float, integer: bool, low_open: bool = False, high_open: bool = False) -> None:
        self.low, self.high, self.integer = low, high, integer
        self.low_open, self.high_open = low_open, high_open

    def describe(self) -> str:
        lo = f"greater than {self.low:g}" if self.low_open else f"at least {self.low:g}"
        hi = f"less than {self.high:g}" if self.high_open else f"at most {self.high:g}"
        kind = "an integer" if self.integer else "a number"
        return f"{kind} {lo} and {hi}"

    def contains(self, v: float | int) -> bool:
        if not isinstance(v, int) and not math.isfinite(v):
            return False
        above = v > self.low if self.low_open else v >= self.low
        below = v < self.high if self.high_open else v <= self.high
        return above and below


# One row per quantity; keys are the names users see (CLI option names without the dashes).
LIMITS: dict[str, Bound] = {
    "epochs": Bound(1, 10_000, True),
    "batch-size": Bound(1, 65_536, True),
    "lr": Bound(0, 10.0, False, low_open=True),
    "momentum": Bound(0, 1, False, high_open=True),
    "weight-decay": Bound(0, 1, False),
    "seed": Bound(0, 2**32 - 1, True),
    "threads": Bound(1, 1024, True),
    "image-size": Bound(1, 1024, True),
    "subnets": Bound(1, 64, True),
    "min-scale": Bound(0, 1, False, low_open=True),
    "min-side": Bound(1, 1024, True),
    "final-survival": Bound(0, 1, False, low_open=True),
    "repeats": Bound(1, 10_000, True),
    "max-k": Bound(1, 10_000, True),
    "max-swaps": Bound(0, 10_000, True),
    "limit": Bound(1, 100_000, True),
    "calib-images": Bound(1, 1_000_000, True),
    "test-images": Bound(1, 10_000_000, True),
    "bn-reestimate-images": Bound(1, 1_000_000, True),
    "num-classes": Bound(2, 100_000, True),
    "in-channels": Bound(1, 64, True),
    "images": Bound(1, 10_000_000, True),
    "epoch": Bound(0, 10_000, True),
    "branch-scale": Bound(0, 1, False),
    "log-every": Bound(1, 1_000_000, True),
    "data-workers": Bound(0, 256, True),
    "jitter": Bound(0, 10, False),
    # the authors' ST / ST++ options and the other baselines' weights (issue 9)
    "temperature": Bound(0, 100, False, low_open=True),
    "amplitude": Bound(0, 1000, False, low_open=True),
    "norm-eps": Bound(0, 1, False, low_open=True),
    "kl-weight": Bound(0, 1000, False),
    "main-weight": Bound(0, 1000, False),
    "sampling-begin-epoch": Bound(0, 10_000, True),
    "min-lr": Bound(0, 10, False),
    "fc-init-std": Bound(0, 10, False, low_open=True),
    "aux-weight": Bound(0, 1000, False),
    "distill-weight": Bound(0, 1, False),
    "hint-weight": Bound(0, 1000, False),
}

# Synthetic tensors: at most this many float32 values in total (1 GiB).
MAX_SYNTHETIC_VALUES = 2**28


def is_ascii_int(text: str) -> bool:
    """``int()`` reads '１２' and '١٢' as 12; user-facing numbers must be plain ASCII digits."""
    t = text.strip()
    if t[:1] in "+-":
        t = t[1:]
    return t.isascii() and t.isdigit()


def check_number(name: str, value: Any, *, label: str | None = None) -> float | int:
    """``value`` as a number within ``LIMITS[name]``, else a one-line :class:`LimitError`.

    ``label`` is how the message names the value (default: ``name``). Booleans are refused
    (JSON ``true`` is not an epoch count); integers must be whole.
    """
    bound = LIMITS[name]
    label = label or name
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LimitError(f"{label} must be {bound.describe()}, got {value!r}")
    if bound.integer and not isinstance(value, int):
        if not (math.isfinite(value) and float(value).is_integer()):
            raise LimitError(f"{label} must be {bound.describe()}, got {value!r}")
        value = int(value)
    if not bound.contains(value):
        shown = value if isinstance(value, float) or abs(value) < 10**30 else "a number with more than 30 digits"
        raise LimitError(f"{label} must be {bound.describe()}, got {shown}")
    return value
